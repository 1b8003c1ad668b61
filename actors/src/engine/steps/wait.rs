//! `wait` and `approval` steps: durable pauses.
//!
//! The first time the engine reaches such a step it writes a [`WaitRecord`] (start time, due
//! time, deadline) before anything else, so a restart resumes the same wait rather than
//! starting it again. A wait that cannot end now is *pending*: the engine parks the execution
//! (`waiting`, no concurrency slot) with durable timers at the times something may change,
//! and polls the step again when one fires, an event arrives or a person decides.
//!
//! - `durationMs`: ends at start + duration. Output `{"waitedMs"}`.
//! - `until`: a CEL condition checked at start and then every `checkEveryMs` (default
//!   1000); it sees `trigger`, `input`, `steps` and `now` (Unix ms). Output `{"checks",
//!   "waitedMs"}`.
//! - `event`: ends when an event of the source and name arrives whose condition (over
//!   `event` and the context) holds; events that arrived after the execution began count,
//!   even before it reached this step (see [`crate::runtime::event_waits`]).
//!   Output: the event payload.
//! - `approval`: ends on `…/approve` (completed, output `{"approved": true, "approver",
//!   "comment", "at"}`) or `…/reject` (failed with `REJECTED`).
//!
//! Each may have `timeoutMs`: past it the step fails with `TIMED_OUT`.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_storage::{
    EventWaitRecord, ExecutionRecord, StepRecord, StorageError, Store, WaitRecord, WriteSet,
};

use super::gate::is_missing_field;
use crate::engine::StepError;
use crate::engine::context::{completed, failed};
use crate::flow::{StepSpec, condition};
use crate::ids::now_ms;
use crate::json_depth::parse_stored;

/// A wait ending this soon (ms) is waited for in-process instead of parking the execution.
pub const INLINE_WAIT_MS: u64 = 500;
/// Default interval of `until` checks, ms.
pub const DEFAULT_CHECK_EVERY_MS: u64 = 1_000;

/// Where a waiting step stands.
#[derive(Debug)]
pub enum Poll {
    /// It ended: journal this record.
    Done(StepRecord),
    /// It goes on; wake the execution at these times (Unix ms).
    Pending(Vec<u64>),
}

fn kind_of(step: &StepSpec) -> &'static str {
    if step.kind == "approval" {
        "approval"
    } else if step.duration_ms.is_some() {
        "duration"
    } else if step.until.is_some() {
        "until"
    } else {
        "event"
    }
}

/// Polls a `wait` or `approval` step, creating its durable record on first sight.
///
/// # Errors
/// Storage errors.
pub async fn poll(
    store: &Store,
    exec: &ExecutionRecord,
    index: u32,
    step: &StepSpec,
    ctx: &Value,
) -> Result<Poll, StorageError> {
    let (space, tenant) = (&exec.space_id, &exec.tenant_id);
    let mut rec = match store.wait(space, tenant, &exec.id, index)? {
        Some(r) => r,
        None => {
            let now = now_ms();
            let r = WaitRecord {
                index,
                name: step.name.clone(),
                kind: kind_of(step).to_owned(),
                started_at_ms: now,
                due_ms: step.duration_ms.map(|d| now.saturating_add(d)),
                deadline_ms: step.timeout_ms.map(|t| now.saturating_add(t)),
                next_check_ms: step.until.as_ref().map(|_| now),
                checks: 0,
                resolution: None,
            };
            let mut w = WriteSet::new();
            w.put_wait(space, tenant, &exec.id, &r)?;
            if let Some(ev) = &step.event {
                w.put_event_wait(
                    space,
                    tenant,
                    &ev.source,
                    &ev.event,
                    &EventWaitRecord {
                        execution_id: exec.id.clone(),
                        index,
                        priority: exec.priority,
                        condition: ev.condition.clone(),
                        context_json: ctx.to_string(),
                        since_ms: exec.created_at_ms,
                    },
                )?;
            }
            store.commit(w).await?;
            r
        }
    };
    let started = rec.started_at_ms;
    let timed_out = |now: u64| rec.deadline_ms.is_some_and(|d| now >= d);
    let timeout_record = |rec: &WaitRecord| {
        let e = StepError::new(
            "TIMED_OUT",
            408,
            &step.name,
            format!(
                "{} not over after {} ms",
                if step.kind == "approval" {
                    "approval"
                } else {
                    "wait"
                },
                rec.deadline_ms.unwrap_or(started).saturating_sub(started)
            ),
        );
        failed(index, &step.name, started, &Value::Null, &e)
    };
    match rec.kind.as_str() {
        "duration" => {
            let due = rec.due_ms.unwrap_or(started);
            let now = now_ms();
            if due > now && due - now <= INLINE_WAIT_MS {
                tokio::time::sleep(Duration::from_millis(due - now)).await;
            }
            let now = now_ms();
            if now >= due {
                let out = json!({"waitedMs": now.saturating_sub(started)});
                return Ok(Poll::Done(completed(
                    index,
                    &step.name,
                    started,
                    &Value::Null,
                    &out,
                )));
            }
            Ok(Poll::Pending(vec![due]))
        }
        "until" => {
            let expr = step.until.clone().unwrap_or_default();
            let every = step.check_every_ms.unwrap_or(DEFAULT_CHECK_EVERY_MS);
            loop {
                let now = now_ms();
                let mut vars = ctx.clone();
                if let Value::Object(o) = &mut vars {
                    o.insert("now".into(), json!(now));
                }
                rec.checks += 1;
                match condition::evaluate(&expr, &vars) {
                    Ok(true) => {
                        let out =
                            json!({"checks": rec.checks, "waitedMs": now.saturating_sub(started)});
                        return Ok(Poll::Done(completed(
                            index,
                            &step.name,
                            started,
                            &Value::Null,
                            &out,
                        )));
                    }
                    Ok(false) => {}
                    Err(e) if is_missing_field(&e.reason) => {}
                    Err(e) => {
                        let err = StepError::new("CONDITION_ERROR", 400, &step.name, e.to_string());
                        return Ok(Poll::Done(failed(
                            index,
                            &step.name,
                            started,
                            &Value::Null,
                            &err,
                        )));
                    }
                }
                if timed_out(now) {
                    return Ok(Poll::Done(timeout_record(&rec)));
                }
                let mut next = now.saturating_add(every);
                if let Some(d) = rec.deadline_ms {
                    next = next.min(d);
                }
                if next - now <= INLINE_WAIT_MS {
                    tokio::time::sleep(Duration::from_millis(next - now)).await;
                    continue;
                }
                rec.next_check_ms = Some(next);
                let mut w = WriteSet::new();
                w.put_wait(space, tenant, &exec.id, &rec)?;
                store.commit(w).await?;
                return Ok(Poll::Pending(vec![next]));
            }
        }
        _ => {
            if let Some(resolution) = &rec.resolution {
                let value = parse_stored(resolution);
                if rec.kind == "approval" && value.get("approved") != Some(&Value::Bool(true)) {
                    let by = value.get("approver").and_then(Value::as_str).unwrap_or("?");
                    let comment = value.get("comment").and_then(Value::as_str).unwrap_or("");
                    let mut e = StepError::new(
                        "REJECTED",
                        400,
                        &step.name,
                        format!("rejected by {by}: {comment}"),
                    );
                    e.datasource_debug = None;
                    let mut r = failed(index, &step.name, started, &Value::Null, &e);
                    r.output_json = value.to_string();
                    return Ok(Poll::Done(r));
                }
                return Ok(Poll::Done(completed(
                    index,
                    &step.name,
                    started,
                    &Value::Null,
                    &value,
                )));
            }
            if timed_out(now_ms()) {
                return Ok(Poll::Done(timeout_record(&rec)));
            }
            Ok(Poll::Pending(rec.deadline_ms.into_iter().collect()))
        }
    }
}

/// Adds to `w` the deletes that end a wait: its record and, for an event wait, its index
/// entry.
pub fn clear(w: &mut WriteSet, exec: &ExecutionRecord, index: u32, step: &StepSpec) {
    w.delete_wait(&exec.space_id, &exec.tenant_id, &exec.id, index);
    if let Some(ev) = &step.event {
        w.delete_event_wait(
            &exec.space_id,
            &exec.tenant_id,
            &ev.source,
            &ev.event,
            &exec.id,
            index,
        );
    }
}
