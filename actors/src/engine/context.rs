//! The template context of an execution (`{"trigger", "input", "steps"}`) and the small
//! helpers that build journal records.

use serde_json::{Map, Value};
use sluice_storage::{AttemptRecord, ExecutionRecord, StepRecord, StepStatus};

use super::step_error::StepError;
use crate::ids::now_ms;
use crate::json_depth::{self, parse_stored};

/// The context of `exec` with no step outputs yet.
pub fn initial(exec: &ExecutionRecord) -> Value {
    let trigger = parse_stored(&exec.trigger_json);
    let input = if exec.input_json.is_empty() {
        trigger.clone()
    } else {
        parse_stored(&exec.input_json)
    };
    // Built by hand: `json!` serializes the values it is given, a second copy of each.
    let mut ctx = Map::with_capacity(3);
    ctx.insert("trigger".into(), trigger);
    ctx.insert("input".into(), input);
    ctx.insert("steps".into(), Value::Object(Map::new()));
    Value::Object(ctx)
}

/// Adds a journaled step to the context: `steps.NAME = {"output", "status", "error"}`.
pub fn record_output(ctx: &mut Value, name: &str, record: &StepRecord) {
    let output = parse_stored(&record.output_json);
    let error = record.error_json.as_deref().map(parse_stored);
    if let Some(steps) = ctx.get_mut("steps").and_then(Value::as_object_mut) {
        let mut entry = Map::with_capacity(3);
        entry.insert("output".into(), output);
        entry.insert("status".into(), record.status.as_str().into());
        entry.insert("error".into(), error.unwrap_or(Value::Null));
        steps.insert(name.to_owned(), Value::Object(entry));
    }
}

/// A record for a step that did not run.
pub fn skipped(index: u32, name: &str) -> StepRecord {
    let now = now_ms();
    StepRecord {
        index,
        name: name.to_owned(),
        status: StepStatus::Skipped,
        input_json: "null".into(),
        output_json: "null".into(),
        error_json: None,
        attempts: Vec::new(),
        started_at_ms: now,
        finished_at_ms: now,
    }
}

/// A completed record with one attempt. A step whose input or output nests deeper than
/// [`json_depth::MAX_DEPTH`] is recorded as failed with `MAPPING_ERROR` instead: such a value
/// is neither stored nor handed to the next step.
pub fn completed(
    index: u32,
    name: &str,
    started: u64,
    input: &Value,
    output: &Value,
) -> StepRecord {
    let too_deep = json_depth::check(input)
        .map_err(|m| format!("input: {m}"))
        .and_then(|()| json_depth::check(output).map_err(|m| format!("output: {m}")));
    if let Err(message) = too_deep {
        let error = StepError::new("MAPPING_ERROR", 400, name, message);
        return failed(index, name, started, input, &error);
    }
    let now = now_ms();
    StepRecord {
        index,
        name: name.to_owned(),
        status: StepStatus::Completed,
        input_json: input.to_string(),
        output_json: output.to_string(),
        error_json: None,
        attempts: vec![AttemptRecord {
            started_at_ms: started,
            finished_at_ms: now,
            error_json: None,
        }],
        started_at_ms: started,
        finished_at_ms: now,
    }
}

/// A failed record with one attempt carrying `error`; its input is stored as `null` when it
/// nests deeper than [`json_depth::MAX_DEPTH`].
pub fn failed(
    index: u32,
    name: &str,
    started: u64,
    input: &Value,
    error: &StepError,
) -> StepRecord {
    let now = now_ms();
    let e = error.to_json().to_string();
    StepRecord {
        index,
        name: name.to_owned(),
        status: StepStatus::Failed,
        input_json: match json_depth::check(input) {
            Ok(()) => input.to_string(),
            Err(_) => "null".into(),
        },
        output_json: "null".into(),
        error_json: Some(e.clone()),
        attempts: vec![AttemptRecord {
            started_at_ms: started,
            finished_at_ms: now,
            error_json: Some(e),
        }],
        started_at_ms: started,
        finished_at_ms: now,
    }
}

/// The execution-level error for a step that failed: the step's own error body.
pub fn failed_error(record: &StepRecord, step: &str) -> StepError {
    let parsed = record
        .error_json
        .as_deref()
        .map(parse_stored)
        .unwrap_or(Value::Null);
    let code = match parsed.get("code").and_then(Value::as_str) {
        Some("DATASOURCE_CONNECTION_ERROR") => "DATASOURCE_CONNECTION_ERROR",
        Some("TIMED_OUT") => "TIMED_OUT",
        Some("MAPPING_ERROR") => "MAPPING_ERROR",
        Some("REJECTED") => "REJECTED",
        Some("CONDITION_ERROR") => "CONDITION_ERROR",
        _ => "INTERNAL_ERROR",
    };
    StepError {
        code,
        status_code: parsed
            .get("statusCode")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(500),
        step: step.to_owned(),
        message: parsed
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("step failed")
            .to_owned(),
        datasource_debug: parsed.get("datasourceDebug").cloned(),
        is_custom_auth_error: parsed
            .get("isCustomAuthError")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_storage::ExecutionStatus;

    fn exec(trigger: &str, input: &str) -> ExecutionRecord {
        ExecutionRecord {
            id: "exe".into(),
            space_id: "sp".into(),
            tenant_id: "t".into(),
            flow_id: "flw".into(),
            flow_name: "f".into(),
            flow_version: 1,
            status: ExecutionStatus::Pending,
            event_id: "evt".into(),
            trigger_kind: "event".into(),
            trigger_json: trigger.into(),
            input_json: input.into(),
            created_at_ms: 1,
            started_at_ms: None,
            finished_at_ms: None,
            error_json: None,
            priority: 2,
            attempt: 1,
            replay_of: None,
            idempotency_key: "k".into(),
            hops: 0,
            correlation_id: String::new(),
        }
    }

    #[test]
    fn an_input_stored_as_the_trigger_reads_as_the_trigger() {
        let ctx = initial(&exec(r#"{"a": 1}"#, ""));
        assert_eq!(ctx["input"], json!({"a": 1}));
        assert_eq!(ctx["trigger"], json!({"a": 1}));
        assert_eq!(exec(r#"{"a": 1}"#, "").input_json(), r#"{"a": 1}"#);
        // Records written before inputs were stored once keep both, and a distinct input wins.
        let ctx = initial(&exec(r#"{"a": 1}"#, r#"{"b": 2}"#));
        assert_eq!(ctx["input"], json!({"b": 2}));
        assert_eq!(ctx["trigger"], json!({"a": 1}));
    }

    #[test]
    fn a_step_value_deeper_than_the_bound_is_stored_as_a_failure() {
        let mut deep = json!(1);
        for _ in 0..=json_depth::MAX_DEPTH {
            deep = json!([deep]);
        }
        let record = completed(0, "s", 1, &json!({"a": 1}), &deep);
        assert_eq!(record.status, StepStatus::Failed);
        assert_eq!(record.output_json, "null");
        assert_eq!(record.input_json, r#"{"a":1}"#);
        let error = parse_stored(record.error_json.as_deref().expect("error"));
        assert_eq!(error["code"], "MAPPING_ERROR");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("output: ")),
            "{error}"
        );
        let record = completed(0, "s", 1, &deep, &json!(2));
        assert_eq!(record.status, StepStatus::Failed);
        assert_eq!(
            record.input_json, "null",
            "an input too deep to store is not stored"
        );
        let record = completed(0, "s", 1, &json!([[1]]), &json!(2));
        assert_eq!(record.status, StepStatus::Completed);
    }
}
