//! Running one execution.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sluice_storage::{
    AttemptRecord, ExecutionRecord, ExecutionStatus, StepRecord, StepStatus, StorageError, Store,
    WriteSet,
};

use super::step_error::StepError;
use crate::connector::{ActionCall, ActionInvoker};
use crate::flow::{OnError, Plan, StepSpec};
use crate::ids::{now_ms, step_idempotency_key};
use crate::mapping::{field_map, template::render_value};

/// Default per-attempt time limit when a step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs executions against a store (for the journal) and an invoker (for connector calls).
#[derive(Clone)]
pub struct Engine {
    store: Store,
    invoker: Arc<dyn ActionInvoker>,
}

impl Engine {
    /// An engine writing to `store` and calling out through `invoker`.
    pub fn new(store: Store, invoker: Arc<dyn ActionInvoker>) -> Self {
        Self { store, invoker }
    }

    /// Runs (or resumes) `exec` to a terminal status and returns the final record.
    ///
    /// # Errors
    /// Storage errors only: step failures are outcomes recorded in the journal, not errors.
    pub async fn run(
        &self,
        mut exec: ExecutionRecord,
        plan: &Plan,
    ) -> Result<ExecutionRecord, StorageError> {
        if exec.status.is_terminal() {
            return Ok(exec);
        }
        let journal: HashMap<u32, StepRecord> = self
            .store
            .journal(&exec.space_id, &exec.tenant_id, &exec.id)?
            .into_iter()
            .map(|r| (r.index, r))
            .collect();
        let mut ctx = json!({
            "trigger": parse_json(&exec.trigger_json),
            "input": parse_json(&exec.input_json),
            "steps": {},
        });
        if exec.status == ExecutionStatus::Pending {
            exec.status = ExecutionStatus::Running;
            exec.started_at_ms = Some(now_ms());
            let mut w = WriteSet::new();
            w.put_execution(&exec)?;
            self.store.commit(w).await?;
        }
        let mut halted: Option<StepError> = None;
        for &i in &plan.order {
            let Some(step) = plan.spec.steps.get(i) else {
                continue;
            };
            let index = i as u32;
            if let Some(done) = journal.get(&index) {
                record_output(&mut ctx, &step.name, done);
                if done.status == StepStatus::Failed && step.on_error == OnError::Halt {
                    halted = Some(failed_error(done, &step.name));
                }
                continue;
            }
            let record = if halted.is_some() {
                skipped(index, &step.name)
            } else {
                let record = self.run_step(&exec, index, step, &ctx).await;
                if record.status == StepStatus::Failed && step.on_error == OnError::Halt {
                    halted = Some(failed_error(&record, &step.name));
                }
                record
            };
            let mut w = WriteSet::new();
            w.put_step(&exec.space_id, &exec.tenant_id, &exec.id, &record)?;
            self.store.commit(w).await?;
            record_output(&mut ctx, &step.name, &record);
        }
        exec.status = if halted.is_some() {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Completed
        };
        exec.error_json = halted.map(|e| e.to_json().to_string());
        exec.finished_at_ms = Some(now_ms());
        let mut w = WriteSet::new();
        w.put_execution(&exec)?;
        self.store.commit(w).await?;
        metrics::counter!("sluice_executions_total", "status" => exec.status.as_str()).increment(1);
        Ok(exec)
    }

    async fn run_step(
        &self,
        exec: &ExecutionRecord,
        index: u32,
        step: &StepSpec,
        ctx: &Value,
    ) -> StepRecord {
        let started = now_ms();
        let clock = Instant::now();
        let mut record = StepRecord {
            index,
            name: step.name.clone(),
            status: StepStatus::Failed,
            input_json: "null".into(),
            output_json: "null".into(),
            error_json: None,
            attempts: Vec::new(),
            started_at_ms: started,
            finished_at_ms: started,
        };
        let input = match render_input(step, ctx) {
            Ok(v) => v,
            Err(e) => {
                record.error_json = Some(e.to_json().to_string());
                record.attempts.push(AttemptRecord {
                    started_at_ms: started,
                    finished_at_ms: now_ms(),
                    error_json: record.error_json.clone(),
                });
                record.finished_at_ms = now_ms();
                return record;
            }
        };
        record.input_json = input.to_string();
        let (Some(connector), Some(action)) = (&step.connector, &step.action) else {
            // A data-mapping step: its output is the rendered mapping.
            record.status = StepStatus::Completed;
            record.output_json = input.to_string();
            record.attempts.push(AttemptRecord {
                started_at_ms: started,
                finished_at_ms: now_ms(),
                error_json: None,
            });
            record.finished_at_ms = now_ms();
            observe_step(step, clock);
            return record;
        };
        let max_attempts = step.retry.as_ref().map_or(1, |r| r.max_attempts.max(1));
        let timeout = step
            .timeout_ms
            .map_or(DEFAULT_STEP_TIMEOUT, Duration::from_millis);
        let call = ActionCall {
            connector: connector.clone(),
            action: action.clone(),
            input,
            idempotency_key: step_idempotency_key(&exec.id, &step.name),
            timeout,
        };
        for attempt in 1..=max_attempts {
            let attempt_start = now_ms();
            let outcome = tokio::time::timeout(timeout, self.invoker.invoke(call.clone())).await;
            let (error, retryable, retry_after) = match outcome {
                Ok(Ok(output)) => {
                    record.attempts.push(AttemptRecord {
                        started_at_ms: attempt_start,
                        finished_at_ms: now_ms(),
                        error_json: None,
                    });
                    record.status = StepStatus::Completed;
                    record.output_json = output.to_string();
                    record.error_json = None;
                    break;
                }
                Ok(Err(e)) => (
                    StepError::from_action(&step.name, action, &e, false),
                    e.retryable,
                    e.retry_after,
                ),
                Err(_) => (
                    StepError::from_action(
                        &step.name,
                        action,
                        &crate::connector::ActionError {
                            message: format!("attempt timed out after {} ms", timeout.as_millis()),
                            retryable: true,
                            retry_after: None,
                            status: None,
                            debug: None,
                        },
                        true,
                    ),
                    true,
                    None,
                ),
            };
            let error_json = error.to_json().to_string();
            record.attempts.push(AttemptRecord {
                started_at_ms: attempt_start,
                finished_at_ms: now_ms(),
                error_json: Some(error_json.clone()),
            });
            record.error_json = Some(error_json);
            if !retryable || attempt == max_attempts {
                break;
            }
            let backoff = step.retry.as_ref().map_or(0, |r| r.delay_ms(attempt + 1));
            let wait = Duration::from_millis(backoff).max(retry_after.unwrap_or_default());
            tokio::time::sleep(wait).await;
        }
        record.finished_at_ms = now_ms();
        observe_step(step, clock);
        record
    }
}

fn observe_step(step: &StepSpec, clock: Instant) {
    let connector = step.connector.clone().unwrap_or_else(|| "mapping".into());
    metrics::histogram!("sluice_step_duration_seconds", "connector" => connector)
        .record(clock.elapsed().as_secs_f64());
}

/// The step's rendered input: `input` rendered, with the rendered `mapping` as `body` for a
/// connector call that has no body of its own, or as the whole input of a mapping step.
fn render_input(step: &StepSpec, ctx: &Value) -> Result<Value, StepError> {
    let tmpl = |e| StepError::from_template(&step.name, &e);
    let mut input = match &step.input {
        Some(v) => render_value(v, ctx).map_err(tmpl)?,
        None => Value::Object(Map::new()),
    };
    if let Some(mapping) = &step.mapping {
        let mapped =
            field_map::apply(mapping, ctx).map_err(|e| StepError::from_mapping(&step.name, &e))?;
        if step.connector.is_none() {
            return Ok(mapped);
        }
        if let Value::Object(obj) = &mut input {
            obj.entry("body").or_insert(mapped);
        }
    }
    Ok(input)
}

fn skipped(index: u32, name: &str) -> StepRecord {
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

/// The execution-level error for a step that failed: the step's own error body.
fn failed_error(record: &StepRecord, step: &str) -> StepError {
    let parsed = record
        .error_json
        .as_deref()
        .map(parse_json)
        .unwrap_or(Value::Null);
    let code = match parsed.get("code").and_then(Value::as_str) {
        Some("DATASOURCE_CONNECTION_ERROR") => "DATASOURCE_CONNECTION_ERROR",
        Some("TIMED_OUT") => "TIMED_OUT",
        Some("MAPPING_ERROR") => "MAPPING_ERROR",
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
    }
}

fn record_output(ctx: &mut Value, name: &str, record: &StepRecord) {
    let output = parse_json(&record.output_json);
    let error = record.error_json.as_deref().map(parse_json);
    if let Some(steps) = ctx.get_mut("steps").and_then(Value::as_object_mut) {
        steps.insert(
            name.to_owned(),
            json!({"output": output, "status": record.status.as_str(), "error": error}),
        );
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}
