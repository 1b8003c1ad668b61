//! I/O adapters behind the traits `sluice-actors` defines: the connector executor
//! ([`ConnectorInvoker`]) with its credentials vault, network policy, OAuth2 refresh, rate
//! limits and SMTP sender.

mod auth;
pub mod credentials;
mod email;
mod exchange;
mod invoker;
mod limits;
pub mod net_policy;
pub mod oauth;
pub mod vault;

pub use invoker::ConnectorInvoker;
pub use net_policy::NetPolicy;
pub use vault::Vault;

#[cfg(test)]
mod tests;
