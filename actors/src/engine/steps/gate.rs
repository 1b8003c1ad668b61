//! `gate` steps: the first case whose condition holds is taken, else the default. The output
//! is `{"branch": <case index, or the number of cases for default>, "case": <condition or
//! "default">}`; steps listed on the other branches end as `skipped`.

use serde_json::{Value, json};
use sluice_storage::StepRecord;

use crate::engine::StepError;
use crate::engine::context::{completed, failed};
use crate::flow::{StepSpec, condition};
use crate::ids::now_ms;

/// Evaluates the cases against the context.
pub fn run(index: u32, step: &StepSpec, ctx: &Value) -> StepRecord {
    let started = now_ms();
    let cases = step.cases.as_deref().unwrap_or_default();
    for (i, case) in cases.iter().enumerate() {
        match condition::evaluate(&case.when, ctx) {
            Ok(true) => {
                return completed(
                    index,
                    &step.name,
                    started,
                    &Value::Null,
                    &json!({"branch": i, "case": case.when}),
                );
            }
            Ok(false) => {}
            // A condition that cannot be evaluated (a missing field) is not true.
            Err(e) if is_missing_field(&e.reason) => {}
            Err(e) => {
                return failed(
                    index,
                    &step.name,
                    started,
                    &Value::Null,
                    &StepError::new("CONDITION_ERROR", 400, &step.name, e.to_string()),
                );
            }
        }
    }
    completed(
        index,
        &step.name,
        started,
        &Value::Null,
        &json!({"branch": cases.len(), "case": "default"}),
    )
}

/// True for CEL's "no such key" style errors, which mean the data lacks the field.
pub fn is_missing_field(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("no such key") || r.contains("undeclared reference") || r.contains("nosuchkey")
}

/// The branch a completed gate took, from its output.
pub fn taken_branch(output: &Value) -> Option<usize> {
    output
        .get("branch")
        .and_then(Value::as_u64)
        .and_then(|b| usize::try_from(b).ok())
}
