//! The cron scheduler: one per process. Every [`TICK`] it looks at the live flows with a
//! `cron` trigger and submits one P3 event (source `cron`, event name = the flow name) per run
//! due, through the outbox like any event. The event's idempotency key is (flow id, scheduled
//! instant), so a run is never submitted twice, even across a crash between submitting and
//! recording. Missed runs follow the flow's catch-up policy ([`crate::schedule::due_runs`]);
//! with `overlap: skip`, a run due while an execution of the flow is unfinished is dropped.
//!
//! The trigger payload is `{"scheduledAt": <RFC 3339 UTC>, "scheduledAtMs": <Unix ms>,
//! "flow": <name>}`.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use sluice_storage::{CronStateRecord, FlowStatus, StorageError, Store, WriteSet};

use crate::flow::{FlowSpec, Trigger, versions};
use crate::ids::now_ms;
use crate::pipeline::submit::{P3_SCHEDULE, Submission, submit};
use crate::schedule::{CatchUp, Schedule, due_runs};

/// How often the scheduler looks at the clock.
pub const TICK: Duration = Duration::from_millis(500);

/// Runs forever (abort the task to stop it).
pub async fn run(store: Store) {
    loop {
        if let Err(e) = tick(&store, now_ms()).await {
            tracing::warn!(error = %e, "cron scheduler tick failed");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// One look at the clock, as if it were `now_ms`: submits the runs due and records progress.
/// Returns the `(flow id, scheduled ms)` of the runs submitted.
///
/// # Errors
/// Storage errors.
pub async fn tick(store: &Store, now_ms: u64) -> Result<Vec<(String, u64)>, StorageError> {
    let mut fired = Vec::new();
    for space in store.spaces()? {
        for tenant in store.tenants(&space.id)? {
            for flow in store.flows(&space.id, &tenant.id)? {
                if flow.status != FlowStatus::Live {
                    continue;
                }
                // What runs is the latest *published* release (an environment-only release
                // does not count); a flow published before releases were kept runs its record.
                let live = versions::live(store, &space.id, &tenant.id, &flow.id)?
                    .unwrap_or_else(|| flow.clone());
                // Most flows are not scheduled: a spec without the word cannot have a cron
                // trigger, and skipping the parse keeps a tick cheap with many tenants.
                if !live.spec_json.contains("\"cron\"") {
                    continue;
                }
                let Ok(spec) = serde_json::from_str::<FlowSpec>(&live.spec_json) else {
                    continue;
                };
                let Trigger::Cron {
                    schedule,
                    timezone,
                    catch_up,
                    catch_up_window_ms,
                    overlap,
                } = &spec.trigger
                else {
                    continue;
                };
                let (Ok(sched), Ok(policy)) = (
                    Schedule::parse(schedule, timezone.as_deref()),
                    CatchUp::parse(catch_up.as_deref(), *catch_up_window_ms),
                ) else {
                    continue;
                };
                let key = format!("{}\u{1f}{}", schedule, timezone.as_deref().unwrap_or("UTC"));
                let state = store.cron_state(&space.id, &tenant.id, &flow.id)?;
                let last = match &state {
                    Some(s) if s.schedule == key => s.last_scheduled_ms,
                    // First sight (or a changed schedule): start from now, no backfill.
                    _ => now_ms,
                };
                let (runs, new_last) = due_runs(&sched, last, now_ms, policy);
                let busy = overlap.as_deref() == Some("skip")
                    && store
                        .unfinished_executions_of(&space.id, &tenant.id)?
                        .iter()
                        .any(|e| e.flow_id == flow.id);
                for (n, at) in runs.iter().enumerate() {
                    if busy || (overlap.as_deref() == Some("skip") && n > 0) {
                        tracing::info!(flow = %flow.name, scheduled = at, "cron run skipped: previous run unfinished");
                        continue;
                    }
                    let at_text = i64::try_from(*at)
                        .ok()
                        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    submit(
                        store,
                        Submission {
                            space_id: space.id.clone(),
                            tenant_id: tenant.id.clone(),
                            source: "cron".into(),
                            event: flow.name.clone(),
                            payload: json!({"scheduledAt": at_text, "scheduledAtMs": at, "flow": flow.name})
                                .to_string()
                                .into_bytes(),
                            priority: P3_SCHEDULE,
                            idempotency_key: Some(format!("{}:{at}", flow.id)),
                        },
                    )
                    .await?;
                    metrics::counter!("sluice_cron_runs_total").increment(1);
                    fired.push((flow.id.clone(), *at));
                }
                if state
                    .as_ref()
                    .is_none_or(|s| s.last_scheduled_ms != new_last || s.schedule != key)
                {
                    let mut w = WriteSet::new();
                    w.put_cron_state(
                        &space.id,
                        &tenant.id,
                        &flow.id,
                        &CronStateRecord {
                            schedule: key,
                            last_scheduled_ms: new_last,
                        },
                    )?;
                    store.commit(w).await?;
                }
            }
        }
    }
    Ok(fired)
}
