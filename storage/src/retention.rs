//! History retention: deleting a tenant's finished history older than a cutoff, so a
//! long-running data directory stops growing with every event it ever saw.
//!
//! What goes, per [`Store::prune_history`] call and tenant:
//! - executions in a terminal state that finished (or, lacking a finish time, were created)
//!   before the cutoff, each with everything keyed under it — its state, its trigger and
//!   input, its time-index entry, its step journal, and any loop iterations, retry or wait
//!   records left — in one atomic batch, so a crash never leaves half an execution;
//! - routed events received before the cutoff;
//! - resolved DLQ items whose last replay (or failure) was before the cutoff.
//!
//! Nothing unfinished goes, whatever its age: executions pending, running or waiting (a
//! months-long approval) and DLQ items pending or being replayed stay. The scan reads
//! each tenant's expired ranges (executions by creation time, events by sequence, which
//! follows receipt time), so a pass over a store with nothing to delete costs a few reads
//! per tenant, plus one per unfinished execution older than the cutoff (read again at each
//! pass) and one per DLQ item (the DLQ is read whole: resolution is not in its key).

use crate::codec::{Record, decode};
use crate::error::Result;
use crate::keys;
use crate::records::{DlqRecord, DlqState, EventRecord, ExecutionRecord};
use crate::store::{Ks, Store};
use crate::write_set::WriteSet;

/// Keyspaces holding per-step records keyed under an execution's key (`space tenant
/// execution-id …`).
const PER_EXECUTION: [Ks; 4] = [Ks::Journal, Ks::Iterations, Ks::Retries, Ks::Waits];

/// Executions deleted per durable batch (each with its journal).
const EXECUTIONS_PER_BATCH: usize = 256;

/// What one [`Store::prune_history`] call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Executions, with their journals.
    pub executions: usize,
    /// Routed events.
    pub events: usize,
    /// Resolved DLQ items.
    pub dlq_items: usize,
    /// True when a kind reached `max`: call again for the rest.
    pub more: bool,
}

impl Store {
    /// Deletes one tenant's finished history from before `cutoff_ms` (Unix ms): at most
    /// `max` records of each kind per call (see the module docs for what is kept).
    ///
    /// # Errors
    /// Engine or decode errors; what was committed before the error stays deleted.
    pub async fn prune_history(
        &self,
        space: &str,
        tenant: &str,
        cutoff_ms: u64,
        max: usize,
    ) -> Result<Pruned> {
        let executions = self.prune_executions(space, tenant, cutoff_ms, max).await?;
        let events = self.prune_events(space, tenant, cutoff_ms, max).await?;
        let dlq_items = self.prune_dlq(space, tenant, cutoff_ms, max).await?;
        Ok(Pruned {
            executions,
            events,
            dlq_items,
            more: executions == max || events == max || dlq_items == max,
        })
    }

    async fn prune_executions(
        &self,
        space: &str,
        tenant: &str,
        cutoff_ms: u64,
        max: usize,
    ) -> Result<usize> {
        let start = keys::tenant_prefix(space, tenant).build();
        // Every index key created before the cutoff sorts below this one.
        let end = keys::tenant_prefix(space, tenant).u64(cutoff_ms).build();
        let mut expired = Vec::new();
        for guard in self
            .handles
            .get(Ks::ExecutionsByTime)
            .range(start.clone()..end)
        {
            if expired.len() == max {
                break;
            }
            let index_key = guard.key()?.to_vec();
            let Some(id) = index_key
                .get(start.len() + 8..index_key.len().saturating_sub(1))
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
            else {
                continue;
            };
            let key = keys::execution(space, tenant, &id);
            match self.get::<ExecutionRecord>(Ks::Executions, &key)? {
                // The index outlived its record: drop the entry alone.
                None => expired.push((index_key, key, false)),
                Some(e)
                    if e.status.is_terminal()
                        && e.finished_at_ms.unwrap_or(e.created_at_ms) < cutoff_ms =>
                {
                    expired.push((index_key, key, true));
                }
                Some(_) => {}
            }
        }
        for chunk in expired.chunks(EXECUTIONS_PER_BATCH) {
            let mut w = WriteSet::new();
            for (index_key, key, has_record) in chunk {
                w.delete(Ks::ExecutionsByTime, index_key.clone());
                if !has_record {
                    continue;
                }
                for ks in PER_EXECUTION {
                    for guard in self.handles.get(ks).prefix(key) {
                        w.delete(ks, guard.key()?.to_vec());
                    }
                }
                w.delete(Ks::ExecutionPayloads, key.clone());
                w.delete(Ks::Executions, key.clone());
            }
            self.commit(w).await?;
        }
        Ok(expired.len())
    }

    async fn prune_events(
        &self,
        space: &str,
        tenant: &str,
        cutoff_ms: u64,
        max: usize,
    ) -> Result<usize> {
        // Oldest first (keys end in the outbox sequence, which follows receipt time).
        self.prune_records(Ks::Events, space, tenant, max, |event: &EventRecord| {
            if event.received_at_ms < cutoff_ms {
                Verdict::Delete
            } else {
                Verdict::Stop
            }
        })
        .await
    }

    async fn prune_dlq(
        &self,
        space: &str,
        tenant: &str,
        cutoff_ms: u64,
        max: usize,
    ) -> Result<usize> {
        self.prune_records(Ks::Dlq, space, tenant, max, |item: &DlqRecord| {
            let last = item
                .replays
                .iter()
                .map(|r| r.at_ms)
                .max()
                .unwrap_or(item.failed_at_ms);
            if item.state == DlqState::Resolved && last < cutoff_ms {
                Verdict::Delete
            } else {
                Verdict::Keep
            }
        })
        .await
    }

    /// Deletes, in one batch, up to `max` of a tenant's records in `ks` that `verdict`
    /// condemns, reading them in key order until it says stop; returns how many.
    async fn prune_records<R: Record>(
        &self,
        ks: Ks,
        space: &str,
        tenant: &str,
        max: usize,
        verdict: impl Fn(&R) -> Verdict,
    ) -> Result<usize> {
        let mut w = WriteSet::new();
        let mut n = 0;
        for guard in self
            .handles
            .get(ks)
            .prefix(keys::tenant_prefix(space, tenant).build())
        {
            if n == max {
                break;
            }
            let (key, value) = guard.into_inner()?;
            match verdict(&decode(&value)?) {
                Verdict::Delete => {
                    w.delete(ks, key.to_vec());
                    n += 1;
                }
                Verdict::Keep => {}
                Verdict::Stop => break,
            }
        }
        if n > 0 {
            self.commit(w).await?;
        }
        Ok(n)
    }
}

/// What [`Store::prune_records`] does with one record.
enum Verdict {
    Delete,
    Keep,
    /// Keep it and read no further (the rest is newer).
    Stop,
}
