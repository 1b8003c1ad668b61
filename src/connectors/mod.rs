//! I/O adapters behind the traits `sluice-actors` defines.

mod http_request;

pub use http_request::HttpInvoker;
