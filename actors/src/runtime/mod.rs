//! The actors.
//!
//! ```text
//! RootSupervisor ──spawns/links──▶ OutboxRelay        (one per process)
//!        └────────spawns/links──▶ TenantSupervisor    (one per tenant, on first use)
//! ```
//!
//! Durable state lives in storage; messages are wake-ups. A tenant supervisor that dies is
//! removed and the relay rewinds, so entries its mailbox held are read again from the outbox
//! (routing is idempotent: an entry already routed is no longer in the outbox, and execution
//! ids are derived, so nothing starts twice).

pub mod event_waits;
mod lanes;
pub mod poller;
mod relay;
mod root;
pub mod scheduler;
pub mod slot_free;
mod tenant;
pub mod timers;

pub use lanes::PriorityLanes;
pub use relay::{Dispatched, DispatchedThrough, OutboxRelay, RelayLimits, RelayMsg, RelayPermit};
pub use root::{RootArgs, RootMsg, RootSupervisor};
pub use tenant::{ExecutionRef, TenantArgs, TenantMsg, TenantSupervisor};
