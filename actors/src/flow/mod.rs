//! Flow definitions: the JSON document ([`spec`]) and save-time validation ([`validate`]).

pub mod spec;
pub mod validate;

pub use spec::{FlowSpec, IdMapSpec, OnError, RetrySpec, StepSpec, Trigger};
pub use validate::{FlowError, Plan, plan};
