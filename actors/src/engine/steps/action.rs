//! `action` steps: a connector call with retries, or a data mapping with no call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sluice_storage::{AttemptRecord, RetryRecord, StepRecord, StepStatus};

use crate::connector::{ActionCall, ActionError, ActionInvoker};
use crate::engine::StepError;
use crate::flow::StepSpec;
use crate::ids::now_ms;
use crate::json_depth;
use crate::mapping::{field_map, template::render_value};
use crate::sync::IdMaps;

use super::upsert;

/// What an action step needs from the engine and its execution.
#[derive(Clone)]
pub struct ActionEnv {
    /// Performs connector calls.
    pub invoker: Arc<dyn ActionInvoker>,
    /// Where `idMap` links live.
    pub id_maps: IdMaps,
    /// Space of the execution.
    pub space: String,
    /// Tenant of the execution.
    pub tenant: String,
    /// Lineage of the execution, its correlation id filled in (see
    /// [`hops`](crate::pipeline::hops)).
    pub lineage: crate::pipeline::hops::Lineage,
    /// Id of the execution.
    pub execution_id: String,
}

/// Default per-attempt time limit when a step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A retry backoff longer than this (ms) parks the execution on a durable timer (see
/// [`run_durable`]); shorter ones are waited in process.
pub const INLINE_BACKOFF_MS: u64 = 1_000;

/// How a [`run_durable`] call ended.
#[derive(Debug)]
pub enum ActionOutcome {
    /// The step is over: journal this record.
    Done(StepRecord),
    /// The step failed an attempt and its next one is due after a backoff longer than
    /// [`INLINE_BACKOFF_MS`]: persist this state and park the execution until `due_ms`.
    Backoff(RetryRecord),
}

/// Runs an action step to a record (completed or failed), waiting every retry backoff in
/// process; `idempotency_key` is sent with every attempt. Used for a loop's nested steps.
pub async fn run(
    env: &ActionEnv,
    idempotency_key: String,
    index: u32,
    step: &StepSpec,
    ctx: &Value,
) -> StepRecord {
    match execute(env, idempotency_key, index, step, ctx, None, false).await {
        ActionOutcome::Done(record) => record,
        // Not produced when parking is off; kept total rather than panicking.
        ActionOutcome::Backoff(state) => StepRecord {
            index,
            name: step.name.clone(),
            status: StepStatus::Failed,
            input_json: "null".into(),
            output_json: "null".into(),
            error_json: state.error_json,
            attempts: state.attempts,
            started_at_ms: state.started_at_ms,
            finished_at_ms: now_ms(),
        },
    }
}

/// Runs an action step, resuming from `resume` (the attempts made before a parked backoff:
/// the next attempt is `attempts.len() + 1`, with the same `idempotency_key`). A backoff longer
/// than [`INLINE_BACKOFF_MS`] is not waited: the attempts so far come back as
/// [`ActionOutcome::Backoff`] for the engine to persist and park on.
pub async fn run_durable(
    env: &ActionEnv,
    idempotency_key: String,
    index: u32,
    step: &StepSpec,
    ctx: &Value,
    resume: Option<RetryRecord>,
) -> ActionOutcome {
    execute(env, idempotency_key, index, step, ctx, resume, true).await
}

async fn execute(
    env: &ActionEnv,
    idempotency_key: String,
    index: u32,
    step: &StepSpec,
    ctx: &Value,
    resume: Option<RetryRecord>,
    park: bool,
) -> ActionOutcome {
    let started = resume.as_ref().map_or_else(now_ms, |r| r.started_at_ms);
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
    let done = ActionOutcome::Done;
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
            return done(record);
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
        return done(record);
    };
    let max_attempts = step.retry.as_ref().map_or(1, |r| r.max_attempts.max(1));
    let timeout = step
        .timeout_ms
        .map_or(DEFAULT_STEP_TIMEOUT, Duration::from_millis);
    let upsert = match upsert::plan(
        &env.id_maps,
        &env.space,
        &env.tenant,
        step,
        ctx,
        connector,
        action,
    ) {
        Ok(u) => u,
        Err(e) => {
            let error = StepError::new("INTERNAL_ERROR", 500, &step.name, &e);
            record.error_json = Some(error.to_json().to_string());
            record.finished_at_ms = now_ms();
            return done(record);
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
        idempotency_key,
        timeout,
        space: env.space.clone(),
        tenant: env.tenant.clone(),
        credential: step.credential.clone(),
        lineage: env.lineage.clone(),
        execution_id: Some(env.execution_id.clone()),
    };
    let mut first = 1;
    if let Some(r) = resume {
        first = u32::try_from(r.attempts.len()).map_or(u32::MAX, |n| n.saturating_add(1));
        record.attempts = r.attempts;
        record.error_json = r.error_json;
    }
    for attempt in first..=max_attempts {
        let attempt_start = now_ms();
        let outcome = tokio::time::timeout(timeout, env.invoker.invoke(call.clone())).await;
        let (error, retryable, retry_after) = match outcome {
            Ok(Ok(output)) => {
                if let Some(u) = &upsert
                    && let Err(e) =
                        upsert::link(&env.id_maps, &env.space, &env.tenant, u, &output).await
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
                    &ActionError::new(
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
        let wait = Duration::from_millis(retry.jittered_delay_ms(attempt + 1)).max(asked);
        if park && wait > Duration::from_millis(INLINE_BACKOFF_MS) {
            return ActionOutcome::Backoff(RetryRecord {
                index,
                name: step.name.clone(),
                started_at_ms: started,
                attempts: record.attempts,
                error_json: record.error_json,
                due_ms: now_ms()
                    .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
            });
        }
        tokio::time::sleep(wait).await;
    }
    record.finished_at_ms = now_ms();
    observe_step(step, clock);
    done(record)
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
    json_depth::check(&input)
        .map_err(|m| StepError::new("MAPPING_ERROR", 400, &step.name, format!("input: {m}")))?;
    Ok(input)
}
