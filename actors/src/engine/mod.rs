//! The workflow engine: runs one execution of a validated [`Plan`](crate::flow::Plan), step by
//! step, journaling every step before the next starts.
//!
//! - Steps run in the plan's topological order.
//! - Resume: steps already in the journal are not run again; their outputs are loaded back
//!   into the template context. A step that was in flight at a crash has no journal record and
//!   runs again, with the same outbound idempotency key.
//! - Retries: per the step's `retry`, only for errors the connector marks retryable, waiting
//!   the longer of the backoff delay and the provider's `Retry-After`; a `Retry-After` longer
//!   than the step's `maxDelayMs` ends the retries (the provider is never called early).
//! - `onError: halt` (default) stops the execution as `failed`; later steps are journaled as
//!   `skipped`. `onError: continue` records the failure and goes on; its output is `null`.

mod run;
mod step_error;

pub use run::Engine;
pub use step_error::StepError;
