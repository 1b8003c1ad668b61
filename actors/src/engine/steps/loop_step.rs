//! `loop` steps: the `over` template gives an array; for each item the nested steps run in
//! their order with `{{item}}` and `{{index}}` in scope and earlier nested outputs under
//! `steps.NAME`. At most `concurrency` iterations run at once. The output is an array with
//! one entry per item, in item order: an object of the nested steps' outputs by name, or
//! `{"error": …}` for an iteration that failed under the loop's `onError: continue`. Under
//! `halt` (default) a failed iteration fails the loop: iterations already running finish,
//! none starts after it (and a loop resumed after a crash with a failure journaled starts
//! none, not even those in flight at the crash). Iterations start in item order (one at a time unless
//! `concurrency` says more). An empty array gives `[]`. A nested
//! output may nest at most two levels less than `json_depth::MAX_DEPTH`, the two the loop's
//! output adds; a deeper one fails its step with `MAPPING_ERROR`.
//!
//! Each finished iteration is journaled as an [`IterationRecord`] before its slot is given to
//! another, so a loop resumed after a crash runs only the iterations that had not finished;
//! one in flight at the crash runs again, and each nested call carries the idempotency key
//! of (execution, `loop/step`, index), so the repeat has the same key.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};
use sluice_storage::{IterationRecord, StepRecord, StepStatus, StorageError, Store, WriteSet};
use tokio::sync::Semaphore;

use super::action::ActionEnv;
use super::{action, notification};
use crate::engine::StepError;
use crate::engine::context::{completed, failed, record_output};
use crate::flow::{NestedPlan, OnError, StepSpec};
use crate::ids::{iteration_idempotency_key, now_ms};
use crate::json_depth::{self, parse_stored};
use crate::mapping::template::render_value;

/// Most items a loop iterates.
pub const MAX_LOOP_ITEMS: usize = 10_000;

/// Runs (or resumes) the loop to a record, skipping the iterations journaled already.
///
/// # Errors
/// Storage errors reading or journaling iterations.
pub async fn run(
    store: &Store,
    env: ActionEnv,
    execution_id: &str,
    index: u32,
    step: &StepSpec,
    nested: &NestedPlan,
    ctx: &Value,
) -> Result<StepRecord, StorageError> {
    let started = now_ms();
    let over = Value::String(step.over.clone().unwrap_or_default());
    let items = match render_value(&over, ctx) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Null) => Vec::new(),
        Ok(other) => {
            let e = StepError::new(
                "MAPPING_ERROR",
                400,
                &step.name,
                format!("over must give an array, got {}", kind_of(&other)),
            );
            return Ok(failed(index, &step.name, started, &Value::Null, &e));
        }
        Err(e) => {
            return Ok(failed(
                index,
                &step.name,
                started,
                &Value::Null,
                &StepError::from_template(&step.name, &e),
            ));
        }
    };
    if items.len() > MAX_LOOP_ITEMS {
        let e = StepError::new(
            "MAPPING_ERROR",
            400,
            &step.name,
            format!(
                "over gave {} items; a loop takes at most {MAX_LOOP_ITEMS}",
                items.len()
            ),
        );
        return Ok(failed(index, &step.name, started, &Value::Null, &e));
    }
    let input = json!({"items": items.len()});
    let mut results: Vec<Option<Result<Value, Value>>> = vec![None; items.len()];
    for it in store.iterations(&env.space, &env.tenant, execution_id, index)? {
        if let Some(slot) = results.get_mut(it.iteration as usize) {
            let value = parse_stored(&it.value_json);
            *slot = Some(if it.ok { Ok(value) } else { Err(value) });
        }
    }
    let limit = step.concurrency.unwrap_or(1).max(1) as usize;
    let permits = Arc::new(Semaphore::new(limit));
    let contexts = Arc::new(Contexts::new(ctx.clone(), nested));
    let nested = Arc::new(nested.clone());
    // Under `halt`, a failed iteration stops the loop: iterations not started yet are not.
    let halt = step.on_error == OnError::Halt;
    // Resumed after a crash with a failed iteration journaled: the loop has failed already,
    // so nothing more starts (not even the iterations in flight at the crash).
    let failed_before = results.iter().any(|r| matches!(r, Some(Err(_))));
    let halted = Arc::new(AtomicBool::new(halt && failed_before));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        // Iterations start in item order, at most `limit` at once (a task spawned first is
        // not necessarily polled first, so the permit is taken here, not in the task).
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        if halted.load(Ordering::SeqCst) {
            break;
        }
        let contexts = contexts.clone();
        let store = store.clone();
        let env = env.clone();
        let nested = nested.clone();
        let exec = execution_id.to_owned();
        let loop_name = step.name.clone();
        let halted = halted.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let mut ctx = contexts.take();
            if let Value::Object(obj) = &mut ctx {
                obj.insert("item".into(), item);
                obj.insert("index".into(), json!(i));
            }
            let outcome = iteration(&env, &exec, &loop_name, i, &nested, &mut ctx).await;
            contexts.give_back(ctx);
            let (ok, value) = match &outcome {
                Ok(v) => (true, v),
                Err(v) => {
                    if halt {
                        halted.store(true, Ordering::SeqCst);
                    }
                    (false, v)
                }
            };
            let record = IterationRecord {
                iteration: u32::try_from(i).unwrap_or(u32::MAX),
                ok,
                value_json: value.to_string(),
            };
            let mut w = WriteSet::new();
            w.put_iteration(&env.space, &env.tenant, &exec, index, &record)?;
            store.commit(w).await?;
            Ok::<_, StorageError>((i, outcome))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, outcome) = match joined {
            Ok(v) => v?,
            Err(e) => {
                let err = StepError::new("INTERNAL_ERROR", 500, &step.name, e.to_string());
                return Ok(failed(index, &step.name, started, &input, &err));
            }
        };
        results[i] = Some(outcome);
    }
    let mut output = Vec::with_capacity(results.len());
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(v)) => output.push(v),
            Some(Err(e)) if step.on_error == OnError::Continue => output.push(json!({"error": e})),
            Some(Err(e)) => {
                let message = format!(
                    "iteration {i} failed: {}",
                    e.get("message").and_then(Value::as_str).unwrap_or("error")
                );
                let mut err = StepError::new("INTERNAL_ERROR", 500, &step.name, message);
                if let Some(code) = e.get("code").and_then(Value::as_str) {
                    err.code = match code {
                        "DATASOURCE_CONNECTION_ERROR" => "DATASOURCE_CONNECTION_ERROR",
                        "TIMED_OUT" => "TIMED_OUT",
                        "MAPPING_ERROR" => "MAPPING_ERROR",
                        _ => "INTERNAL_ERROR",
                    };
                }
                err.datasource_debug = e.get("datasourceDebug").cloned();
                return Ok(failed(index, &step.name, started, &input, &err));
            }
            None => output.push(Value::Null),
        }
    }
    Ok(completed(
        index,
        &step.name,
        started,
        &input,
        &Value::Array(output),
    ))
}

/// One iteration: the nested steps in order. `Ok` holds the outputs by name; `Err` the error
/// body of the nested step that failed under `halt`.
async fn iteration(
    env: &ActionEnv,
    execution_id: &str,
    loop_name: &str,
    i: usize,
    nested: &NestedPlan,
    ctx: &mut Value,
) -> Result<Value, Value> {
    let mut outputs = Map::new();
    for &n in &nested.order {
        let Some(s) = nested.steps.get(n) else {
            continue;
        };
        let key = iteration_idempotency_key(execution_id, &format!("{loop_name}/{}", s.name), i);
        let record = match s.kind.as_str() {
            "notification" => notification::run(n as u32, s, ctx),
            _ => action::run(env, key, n as u32, s, ctx).await,
        };
        let (record, output) = within_loop_output(record);
        record_output(ctx, &s.name, &record);
        if record.status == StepStatus::Failed && s.on_error == OnError::Halt {
            return Err(record
                .error_json
                .as_deref()
                .map(parse_stored)
                .unwrap_or(Value::Null));
        }
        outputs.insert(s.name.clone(), output);
    }
    Ok(Value::Object(outputs))
}

/// Levels a loop's output puts around a nested step's output: the array of iterations and
/// each iteration's object of outputs by name.
const LOOP_OUTPUT_LEVELS: usize = 2;

/// A nested step's record and its output, failed with `MAPPING_ERROR` when the output nests
/// so deep that the loop's own output would pass [`json_depth::MAX_DEPTH`]: the step fails
/// in its iteration, before later iterations run, rather than the whole loop failing after
/// every iteration ran.
fn within_loop_output(mut record: StepRecord) -> (StepRecord, Value) {
    let output = parse_stored(&record.output_json);
    let limit = json_depth::MAX_DEPTH - LOOP_OUTPUT_LEVELS;
    let levels = json_depth::depth(&output);
    if record.status != StepStatus::Completed || levels <= limit {
        return (record, output);
    }
    let error = StepError::new(
        "MAPPING_ERROR",
        400,
        &record.name,
        format!(
            "the output nests {levels} levels deep; inside a loop, outputs are limited to \
             {limit} levels (the loop's output adds {LOOP_OUTPUT_LEVELS} to the {} allowed)",
            json_depth::MAX_DEPTH
        ),
    );
    let body = error.to_json().to_string();
    record.status = StepStatus::Failed;
    record.output_json = "null".into();
    if let Some(last) = record.attempts.last_mut() {
        last.error_json = Some(body.clone());
    }
    record.error_json = Some(body);
    (record, Value::Null)
}

/// The iterations' contexts: the loop's context with `item`, `index` and the nested steps'
/// outputs set per iteration. At most `concurrency` exist, each made once from the loop's
/// context and reset between iterations: a copy per item made a 10,000-item loop in a 1 MB
/// event hold gigabytes before its first iteration ran.
struct Contexts {
    base: Value,
    /// The nested steps' names: the `steps.NAME` entries an iteration writes.
    names: Vec<String>,
    idle: std::sync::Mutex<Vec<Value>>,
}

impl Contexts {
    fn new(base: Value, nested: &NestedPlan) -> Self {
        Self {
            base,
            names: nested.steps.iter().map(|s| s.name.clone()).collect(),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// An idle context, or a new copy of the loop's when all are in use.
    fn take(&self) -> Value {
        let idle = self.idle.lock().map(|mut idle| idle.pop());
        idle.ok().flatten().unwrap_or_else(|| self.base.clone())
    }

    /// Puts back the nested outputs the loop's context had (usually none) and keeps `ctx` for
    /// the next iteration, which sets its own `item` and `index`.
    fn give_back(&self, mut ctx: Value) {
        let before = self.base.get("steps");
        if let Some(steps) = ctx.get_mut("steps").and_then(Value::as_object_mut) {
            for name in &self.names {
                match before.and_then(|b| b.get(name)) {
                    Some(v) => steps.insert(name.clone(), v.clone()),
                    None => steps.remove(name),
                };
            }
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(ctx);
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(names: &[&str]) -> NestedPlan {
        let steps = names
            .iter()
            .map(|n| {
                serde_json::from_value(
                    json!({"name": n, "type": "notification", "channel": "in_app", "message": "m"}),
                )
                .expect("step")
            })
            .collect();
        NestedPlan {
            steps,
            deps: vec![Vec::new(); names.len()],
            order: (0..names.len()).collect(),
        }
    }

    /// A context given back is reused, with the nested outputs of its iteration gone and the
    /// loop's own `steps` entries as they were.
    #[test]
    fn contexts_are_reused_and_reset_between_iterations() {
        let base = json!({"trigger": {"big": [1, 2, 3]}, "steps": {"before": {"output": 1},
                                                                  "n": {"output": "outer"}}});
        let contexts = Contexts::new(base.clone(), &nested(&["n", "m"]));
        let mut first = contexts.take();
        let second = contexts.take();
        assert_eq!(first, base);
        assert_eq!(second, base, "a second context in use is a new copy");
        first["item"] = json!("x");
        first["index"] = json!(0);
        first["steps"]["n"] = json!({"output": "inner"});
        first["steps"]["m"] = json!({"output": 2});
        contexts.give_back(first);
        let again = contexts.take();
        assert_eq!(again["steps"], base["steps"], "nested outputs reset");
        assert_eq!(again["trigger"], base["trigger"]);
        assert_eq!(
            again["item"], "x",
            "item and index are set by the next iteration"
        );
        assert!(
            contexts.idle.lock().expect("lock").is_empty(),
            "the idle context was taken, not copied again"
        );
    }
}
