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
use crate::dlq;
use crate::flow::{OnError, Plan, StepSpec, Trigger};
use crate::ids::{now_ms, step_idempotency_key};
use crate::mapping::{field_map, template::render_value};
use crate::sync::{IdMaps, RecordRef};

/// Default per-attempt time limit when a step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs executions against a store (for the journal) and an invoker (for connector calls).
#[derive(Clone)]
pub struct Engine {
    store: Store,
    invoker: Arc<dyn ActionInvoker>,
    id_maps: IdMaps,
}

impl Engine {
    /// An engine writing to `store` and calling out through `invoker`.
    pub fn new(store: Store, invoker: Arc<dyn ActionInvoker>) -> Self {
        let id_maps = IdMaps::new(store.clone());
        Self {
            store,
            invoker,
            id_maps,
        }
    }

    /// The ID maps the engine records `idMap` links in.
    pub fn id_maps(&self) -> &IdMaps {
        &self.id_maps
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
        self.finish(exec, plan).await
    }

    /// Records a terminal status, and with it (in the same batch) the DLQ bookkeeping: a
    /// failed execution becomes a DLQ item, and a replay updates the item it replays.
    async fn finish(
        &self,
        mut exec: ExecutionRecord,
        plan: &Plan,
    ) -> Result<ExecutionRecord, StorageError> {
        exec.finished_at_ms = Some(now_ms());
        let mut w = WriteSet::new();
        w.put_execution(&exec)?;
        let failed = exec.status == ExecutionStatus::Failed;
        match &exec.replay_of {
            Some(item_id) => {
                if let Some(item) = self
                    .store
                    .dlq_item(&exec.space_id, &exec.tenant_id, item_id)?
                {
                    let detail = if failed { "failed" } else { "completed" };
                    let mut item = dlq::record_outcome(item, !failed, detail);
                    if failed {
                        item.error = exec.error_json.clone().unwrap_or_default();
                    } else {
                        metrics::gauge!("sluice_dlq_depth").decrement(1.0);
                    }
                    w.put_dlq(&exec.space_id, &exec.tenant_id, &item)?;
                }
            }
            None if failed => {
                let (source, event) = match &plan.spec.trigger {
                    Trigger::Event { source, event, .. } if event != "*" => {
                        (source.as_str(), event.as_str())
                    }
                    Trigger::Event { source, .. } => (source.as_str(), ""),
                    other => (other.kind(), ""),
                };
                w.put_dlq(
                    &exec.space_id,
                    &exec.tenant_id,
                    &dlq::for_execution(&exec, source, event),
                )?;
                metrics::gauge!("sluice_dlq_depth").increment(1.0);
                metrics::counter!("sluice_dlq_total", "kind" => "execution").increment(1);
            }
            None => {}
        }
        self.store.commit(w).await?;
        metrics::counter!("sluice_executions_total", "status" => exec.status.as_str()).increment(1);
        Ok(exec)
    }

    /// Marks an execution whose task panicked as failed with `INTERNAL_ERROR` (and
    /// dead-letters it like any failed execution).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn fail(
        &self,
        mut exec: ExecutionRecord,
        plan: &Plan,
        reason: &str,
    ) -> Result<ExecutionRecord, StorageError> {
        exec.status = ExecutionStatus::Failed;
        exec.error_json = Some(
            json!({"code": "INTERNAL_ERROR", "statusCode": 500, "isCustomAuthError": false,
                   "message": reason})
            .to_string(),
        );
        self.finish(exec, plan).await
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
        let upsert = match self.plan_upsert(exec, step, ctx, connector, action) {
            Ok(u) => u,
            Err(e) => {
                let error = StepError {
                    code: "INTERNAL_ERROR",
                    status_code: 500,
                    step: step.name.clone(),
                    message: e,
                    datasource_debug: None,
                    is_custom_auth_error: false,
                };
                record.error_json = Some(error.to_json().to_string());
                record.finished_at_ms = now_ms();
                return record;
            }
        };
        let mut input = input;
        let mut action = action.clone();
        if let Some(u) = &upsert
            && let Some(existing) = &u.existing
        {
            action = u.update_action.clone();
            if let Value::Object(obj) = &mut input {
                obj.insert("id".into(), Value::String(existing.id.clone()));
            }
            record.input_json = input.to_string();
        }
        let action = &action;
        let call = ActionCall {
            connector: connector.clone(),
            action: action.clone(),
            input,
            idempotency_key: step_idempotency_key(&exec.id, &step.name),
            timeout,
            space: exec.space_id.clone(),
            tenant: exec.tenant_id.clone(),
            credential: step.credential.clone(),
        };
        for attempt in 1..=max_attempts {
            let attempt_start = now_ms();
            let outcome = tokio::time::timeout(timeout, self.invoker.invoke(call.clone())).await;
            let (error, retryable, retry_after) = match outcome {
                Ok(Ok(output)) => {
                    if let Some(u) = &upsert
                        && let Err(e) = self.link_upsert(exec, u, &output).await
                    {
                        tracing::error!(error = %e, step = %step.name, "recording the ID map link failed");
                    }
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
                        &crate::connector::ActionError::new(
                            format!("attempt timed out after {} ms", timeout.as_millis()),
                            true,
                        ),
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
            let Some(retry) = step.retry.as_ref() else {
                break;
            };
            // The provider's Retry-After is honoured up to the step's maxDelayMs; a provider
            // that asks for longer ends the retries rather than being called early.
            let asked = retry_after.unwrap_or_default();
            if asked > Duration::from_millis(retry.max_delay_ms) {
                break;
            }
            let wait = Duration::from_millis(retry.delay_ms(attempt + 1)).max(asked);
            tokio::time::sleep(wait).await;
        }
        record.finished_at_ms = now_ms();
        observe_step(step, clock);
        record
    }
}

/// What an `idMap` step will do: the source record, the target entity, the link found (if
/// any) and the update action used when it exists.
struct Upsert {
    source: RecordRef,
    target_system: String,
    target_entity: String,
    existing: Option<RecordRef>,
    update_action: String,
}

impl Engine {
    fn plan_upsert(
        &self,
        exec: &ExecutionRecord,
        step: &StepSpec,
        ctx: &Value,
        connector: &str,
        action: &str,
    ) -> Result<Option<Upsert>, String> {
        let Some(spec) = &step.id_map else {
            return Ok(None);
        };
        let (def, act) = crate::connectors::registry()
            .action(connector, action)
            .ok_or_else(|| format!("unknown action {connector}.{action}"))?;
        let entity = act
            .entity
            .as_deref()
            .and_then(|e| def.entities.iter().find(|d| d.name == e))
            .ok_or_else(|| format!("{connector}.{action} has no entity for idMap"))?;
        let update_action = entity
            .update
            .clone()
            .ok_or_else(|| format!("{connector}.{} has no update action", entity.name))?;
        let id = render_value(&Value::String(spec.id.clone()), ctx)
            .ok()
            .as_ref()
            .and_then(crate::connectors::select::id_text)
            .ok_or_else(|| format!("idMap.id {:?} rendered to no id", spec.id))?;
        let source = RecordRef {
            system: spec.system.clone(),
            entity: spec.entity.clone(),
            id,
        };
        let existing = self
            .id_maps
            .lookup(&exec.space_id, &exec.tenant_id, &source, connector)
            .map_err(|e| e.to_string())?;
        Ok(Some(Upsert {
            source,
            target_system: connector.to_owned(),
            target_entity: entity.name.clone(),
            existing,
            update_action,
        }))
    }

    async fn link_upsert(
        &self,
        exec: &ExecutionRecord,
        u: &Upsert,
        output: &Value,
    ) -> Result<(), StorageError> {
        let id = u.existing.as_ref().map(|e| e.id.clone()).or_else(|| {
            output
                .get("id")
                .and_then(crate::connectors::select::id_text)
        });
        let Some(id) = id else {
            tracing::warn!("idMap: the action answered without an id; no link recorded");
            return Ok(());
        };
        let target = RecordRef {
            system: u.target_system.clone(),
            entity: u.target_entity.clone(),
            id,
        };
        self.id_maps
            .link(&exec.space_id, &exec.tenant_id, &u.source, &target)
            .await
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
        is_custom_auth_error: parsed.get("isCustomAuthError").and_then(Value::as_bool)
            == Some(true),
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
