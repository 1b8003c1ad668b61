//! The timer task: one per process. Fires durable timers ([`sluice_storage::TimerRecord`])
//! when due by queueing their executions again, and deletes them. It sleeps until the earliest
//! timer (at most [`MAX_SLEEP`]) or until the engine writes a new one. Timers that came due
//! while the server was down fire at start.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use sluice_storage::{Store, WriteSet};
use tokio::sync::Notify;

use super::root::RootMsg;
use super::tenant::ExecutionRef;
use crate::ids::now_ms;

/// Longest sleep between two looks at the timers.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Timers fired per batch.
const BATCH: usize = 512;

/// Runs until the root supervisor is gone.
pub async fn run(store: Store, root: ActorRef<RootMsg>, wake: Arc<Notify>) {
    loop {
        match fire_due(&store, &root).await {
            Ok(n) if n == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "firing timers failed; retrying"),
        }
        // Only a root that is going away ends the task: right after `Actor::spawn` returns
        // the root may still read `Starting` (ractor marks it `Running` from its own task),
        // and returning then would leave every timer of the process unfired.
        if matches!(
            root.get_status(),
            ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
        ) {
            return;
        }
        let sleep = match store.next_timer() {
            Ok(Some(t)) => Duration::from_millis(t.due_ms.saturating_sub(now_ms())).min(MAX_SLEEP),
            _ => MAX_SLEEP,
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
        }
    }
}

/// Fires the timers due now; returns how many.
async fn fire_due(
    store: &Store,
    root: &ActorRef<RootMsg>,
) -> Result<usize, Box<dyn std::error::Error>> {
    let due = store.due_timers(now_ms(), BATCH)?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut w = WriteSet::new();
    for t in &due {
        w.delete_timer(t);
    }
    store.commit(w).await?;
    for t in &due {
        root.cast(RootMsg::Run(ExecutionRef {
            space: t.space_id.clone(),
            tenant: t.tenant_id.clone(),
            id: t.execution_id.clone(),
            priority: t.priority,
        }))?;
    }
    Ok(due.len())
}
