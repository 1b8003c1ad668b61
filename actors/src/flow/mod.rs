//! Flow definitions: the JSON document ([`spec`]) and save-time validation ([`validate`]).

pub mod builder;
pub mod condition;
pub mod request_schema;
pub mod spec;
pub mod validate;
mod validate_steps;
pub mod versions;

pub use spec::{
    EventWaitSpec, FlowSpec, GateCase, IdMapSpec, OnError, ResponseSpec, RetrySpec, StepSpec,
    Trigger,
};
pub use validate::{FlowError, NestedPlan, Plan, plan};
