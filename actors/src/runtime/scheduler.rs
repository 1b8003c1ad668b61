//! The cron scheduler: one per process. Every [`TICK`] it looks at the live flows with a
//! `cron` trigger — those in its index, the `cron_state` keyspace, which publishing a cron
//! flow joins ([`register`]) — and submits one P3 event (source `cron`, event name = the flow
//! name) per run due, through the outbox like any event. The event's idempotency key is (flow id, scheduled
//! instant), so a run is never submitted twice, even across a crash between submitting and
//! recording. Missed runs follow the flow's catch-up policy ([`crate::schedule::due_runs`]);
//! with `overlap: skip`, a run due while an execution of the flow is unfinished is dropped.
//!
//! The trigger payload is `{"scheduledAt": <RFC 3339 UTC>, "scheduledAtMs": <Unix ms>,
//! "flow": <name>}`.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use sluice_storage::{CronStateRecord, FlowRecord, FlowStatus, StorageError, Store, WriteSet};

use crate::flow::{FlowSpec, Trigger, versions};
use crate::ids::now_ms;
use crate::pipeline::submit::{P3_SCHEDULE, Submission, submit};
use crate::schedule::{CatchUp, Schedule, due_runs};

/// How often the scheduler looks at the clock.
pub const TICK: Duration = Duration::from_millis(500);

/// How long the scheduler trusts what it remembers about a schedule (see [`Scheduler`]).
pub const FORGET_AFTER_MS: u64 = 60_000;

/// Runs forever (abort the task to stop it).
pub async fn run(store: Store) {
    let mut scheduler = Scheduler::default();
    loop {
        if let Err(e) = scheduler.tick(&store, now_ms()).await {
            tracing::warn!(error = %e, "cron scheduler tick failed");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// One look at the clock with nothing remembered (see [`Scheduler::tick`]).
///
/// # Errors
/// Storage errors.
pub async fn tick(store: &Store, now_ms: u64) -> Result<Vec<(String, u64)>, StorageError> {
    Scheduler::default().tick(store, now_ms).await
}

/// The scheduler's memory between ticks: for each indexed flow, the cron state it last saw
/// and when that schedule fires next. A tick skips a flow whose state is unchanged and
/// whose next run is not due, without reading the flow, parsing its spec or searching its
/// schedule again; a state changed by a publication, or a run due, takes the full path.
/// Everything is forgotten every [`FORGET_AFTER_MS`], so a schedule that never fires
/// (stored before such schedules were refused) costs its search once a minute instead of at
/// every tick.
#[derive(Debug, Default)]
pub struct Scheduler {
    known: HashMap<(String, String, String), Known>,
    forget_at_ms: u64,
}

/// A live flow's schedule as last seen: its cron state and its next run (`None`: never).
#[derive(Debug)]
struct Known {
    schedule: String,
    last_ms: u64,
    next_ms: Option<u64>,
}

impl Scheduler {
    /// One look at the clock, as if it were `now_ms`: submits the runs due and records
    /// progress. Returns the `(flow id, scheduled ms)` of the runs submitted.
    ///
    /// Only the flows in the cron index (the `cron_state` keyspace, see [`register`]) are
    /// read, so the cost of a tick follows the scheduled flows, not the tenants. A data
    /// directory from before the index gets it built at the first tick.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn tick(
        &mut self,
        store: &Store,
        now_ms: u64,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        if !store.cron_indexed()? {
            build_index(store, now_ms).await?;
        }
        if now_ms >= self.forget_at_ms {
            self.known.clear();
            self.forget_at_ms = now_ms.saturating_add(FORGET_AFTER_MS);
        }
        let mut fired = Vec::new();
        for entry in store.cron_states()? {
            let id = (entry.space, entry.tenant, entry.flow_id);
            if self.known.get(&id).is_some_and(|k| {
                k.schedule == entry.state.schedule
                    && k.last_ms == entry.state.last_scheduled_ms
                    && k.next_ms.is_none_or(|next| now_ms < next)
            }) {
                continue;
            }
            self.known.remove(&id);
            let (space, tenant, flow_id) = &id;
            let Some(flow) = store.flow(space, tenant, flow_id)? else {
                continue;
            };
            // A flow that is not live is looked at again every tick: publishing it with an
            // unchanged schedule leaves its state as it was.
            if flow.status != FlowStatus::Live {
                continue;
            }
            let Some(spec) = live_spec(store, space, &flow)? else {
                continue;
            };
            if let Some(state) = fire_due(
                store,
                (space, tenant),
                &flow,
                &spec,
                entry.state,
                now_ms,
                &mut fired,
            )
            .await?
            {
                let next_ms = next_run(&state);
                self.known.insert(
                    id,
                    Known {
                        schedule: state.schedule,
                        last_ms: state.last_scheduled_ms,
                        next_ms,
                    },
                );
            }
        }
        Ok(fired)
    }
}

/// The first run of `state`'s schedule after its last handled instant; `None` when it never
/// runs again or its schedule no longer parses.
fn next_run(state: &CronStateRecord) -> Option<u64> {
    let (expr, timezone) = state.schedule.split_once(SCHEDULE_KEY_SEPARATOR)?;
    Schedule::parse(expr, Some(timezone))
        .ok()?
        .next_after(state.last_scheduled_ms)
}

/// The spec that runs for a live flow: its latest *published* release (an environment-only
/// release does not count), or the record itself for a flow published before releases were
/// kept. `None` when it does not parse.
fn live_spec(
    store: &Store,
    space: &str,
    flow: &FlowRecord,
) -> Result<Option<FlowSpec>, StorageError> {
    let live =
        versions::live(store, space, &flow.tenant_id, &flow.id)?.unwrap_or_else(|| flow.clone());
    Ok(serde_json::from_str::<FlowSpec>(&live.spec_json).ok())
}

/// Separates the expression from the time zone in a schedule key.
const SCHEDULE_KEY_SEPARATOR: char = '\u{1f}';

/// The state key of a schedule: a changed expression or time zone starts afresh.
fn schedule_key(schedule: &str, timezone: Option<&str>) -> String {
    format!(
        "{schedule}{SCHEDULE_KEY_SEPARATOR}{}",
        timezone.unwrap_or("UTC")
    )
}

/// Adds `flow` (being published with `spec`) to the cron index when its trigger is a cron
/// schedule: a state record counting from `now_ms`, unless one for the same schedule exists
/// (a flow published again keeps its progress, as it did before the index). Call it in the
/// same write set as the publication.
///
/// # Errors
/// Storage errors.
pub fn register(
    w: &mut WriteSet,
    store: &Store,
    space: &str,
    flow: &FlowRecord,
    spec: &FlowSpec,
    now_ms: u64,
) -> Result<(), StorageError> {
    let Trigger::Cron {
        schedule, timezone, ..
    } = &spec.trigger
    else {
        return Ok(());
    };
    let key = schedule_key(schedule, timezone.as_deref());
    let known = store.cron_state(space, &flow.tenant_id, &flow.id)?;
    if known.is_none_or(|s| s.schedule != key) {
        w.put_cron_state(
            space,
            &flow.tenant_id,
            &flow.id,
            &CronStateRecord {
                schedule: key,
                last_scheduled_ms: now_ms,
            },
        )?;
    }
    Ok(())
}

/// Indexes every live cron flow of every tenant once (data directories written before the
/// index existed), then marks the index built.
async fn build_index(store: &Store, now_ms: u64) -> Result<(), StorageError> {
    let mut w = WriteSet::new();
    for space in store.spaces()? {
        for tenant in store.tenants(&space.id)? {
            for flow in store.flows(&space.id, &tenant.id)? {
                if flow.status != FlowStatus::Live {
                    continue;
                }
                if let Some(spec) = live_spec(store, &space.id, &flow)? {
                    register(&mut w, store, &space.id, &flow, &spec, now_ms)?;
                }
            }
        }
    }
    w.mark_cron_indexed();
    store.commit(w).await
}

/// Submits the runs of one live flow due by `now_ms` and records its progress; returns
/// the flow's cron state afterwards (`None` when its trigger is not a valid schedule).
async fn fire_due(
    store: &Store,
    (space, tenant): (&str, &str),
    flow: &FlowRecord,
    spec: &FlowSpec,
    state: CronStateRecord,
    now_ms: u64,
    fired: &mut Vec<(String, u64)>,
) -> Result<Option<CronStateRecord>, StorageError> {
    let Trigger::Cron {
        schedule,
        timezone,
        catch_up,
        catch_up_window_ms,
        overlap,
    } = &spec.trigger
    else {
        return Ok(None);
    };
    let (Ok(sched), Ok(policy)) = (
        Schedule::parse(schedule, timezone.as_deref()),
        CatchUp::parse(catch_up.as_deref(), *catch_up_window_ms),
    ) else {
        return Ok(None);
    };
    let key = schedule_key(schedule, timezone.as_deref());
    // A changed schedule (published since the last tick) starts from now, no backfill.
    let last = if state.schedule == key {
        state.last_scheduled_ms
    } else {
        now_ms
    };
    let (runs, new_last) = due_runs(&sched, last, now_ms, policy);
    let busy = overlap.as_deref() == Some("skip")
        && store
            .unfinished_executions_of(space, tenant)?
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
                space_id: space.to_owned(),
                tenant_id: tenant.to_owned(),
                source: "cron".into(),
                event: flow.name.clone(),
                payload: json!({"scheduledAt": at_text, "scheduledAtMs": at, "flow": flow.name})
                    .to_string()
                    .into_bytes(),
                priority: P3_SCHEDULE,
                idempotency_key: Some(format!("{}:{at}", flow.id)),
                lineage: Default::default(),
            },
        )
        .await?;
        metrics::counter!("sluice_cron_runs_total").increment(1);
        fired.push((flow.id.clone(), *at));
    }
    let after = CronStateRecord {
        schedule: key,
        last_scheduled_ms: new_last,
    };
    if after != state {
        let mut w = WriteSet::new();
        w.put_cron_state(space, tenant, &flow.id, &after)?;
        store.commit(w).await?;
    }
    Ok(Some(after))
}
