//! The workflow engine: runs one execution of a validated [`Plan`](crate::flow::Plan), step by
//! step, journaling every step before the next starts.
//!
//! - Steps start once their dependencies are settled; independent steps run concurrently.
//!   Joins: a step runs if at least one dependency completed for it; it is skipped when all
//!   were skipped (a gate counts as skipped for the steps of its untaken branches).
//! - `wait` and `approval` steps park the execution as `waiting` with durable timers.
//! - Cancellation and the flow's `timeoutMs` abandon in-flight calls and skip what is left.
//! - Resume: steps already in the journal are not run again; their outputs are loaded back
//!   into the template context. A step that was in flight at a crash has no journal record and
//!   runs again, with the same outbound idempotency key.
//! - Retries: per the step's `retry`, only for errors the connector marks retryable, waiting
//!   the longer of the backoff delay and the provider's `Retry-After`; a `Retry-After` longer
//!   than the step's `maxDelayMs` ends the retries (the provider is never called early).
//! - `onError: halt` (default) stops the execution as `failed`; later steps are journaled as
//!   `skipped`. `onError: continue` records the failure and goes on; its output is `null`.

pub mod context;
mod run;
mod step_error;
pub mod steps;

pub use run::{Engine, RunOutcome};
pub use step_error::StepError;
