//! Background housekeeping of the data directory: forgetting expired delivery ids (the dedup
//! window) and deleting finished history past the retention period. Both delete in bounded
//! batches through the committer, which interleaves them with ingestion.

use std::time::Duration;

use sluice_actors::ids::now_ms;
use sluice_storage::Store;

/// How often expired dedup records are pruned at most: a tenth of the window, between
/// these bounds (a 7-day window prunes every minute, a 2-second one every 200 ms).
const DEDUP_PRUNE_MAX: Duration = Duration::from_secs(60);
const DEDUP_PRUNE_MIN: Duration = Duration::from_millis(100);

/// How often history past the retention period is pruned: a tenth of the period, between
/// these bounds (30 days prune hourly, 2 seconds every 500 ms). A pass with nothing to
/// delete costs a few reads per tenant.
const HISTORY_PRUNE_MAX: Duration = Duration::from_secs(3600);
const HISTORY_PRUNE_MIN: Duration = Duration::from_millis(500);

/// Records of each kind deleted per tenant per call.
const HISTORY_BATCH: usize = 1024;

/// Forgets delivery ids older than the dedup window, in bounded batches, off the ingestion
/// path.
pub async fn prune_dedup(store: Store, window: Duration) {
    const BATCH: usize = 10_000;
    let every = (window / 10).clamp(DEDUP_PRUNE_MIN, DEDUP_PRUNE_MAX);
    loop {
        let cutoff = cutoff_before(window);
        loop {
            match store.prune_dedup(cutoff, BATCH).await {
                Ok(n) if n == BATCH => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(pruned = n, "expired dedup records removed");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dedup pruning failed; retrying later");
                    break;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Deletes every tenant's finished executions, routed events and resolved DLQ items older
/// than `retention` (see `sluice_storage::Store::prune_history` for what is kept), counting
/// them in `sluice_history_pruned_total{kind}`. Returns at once when `retention` is zero
/// (keep everything).
pub async fn prune_history(store: Store, retention: Duration) {
    if retention.is_zero() {
        return;
    }
    let every = (retention / 10).clamp(HISTORY_PRUNE_MIN, HISTORY_PRUNE_MAX);
    loop {
        let cutoff = cutoff_before(retention);
        if let Err(e) = prune_pass(&store, cutoff).await {
            tracing::warn!(error = %e, "history pruning failed; retrying later");
        }
        tokio::time::sleep(every).await;
    }
}

/// Unix ms `age` ago; 0 (nothing is that old) for an age beyond the clock, where a plain
/// conversion to u64 ms would wrap (`--retention 18446744073709552s` pruned everything).
fn cutoff_before(age: Duration) -> u64 {
    now_ms().saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))
}

async fn prune_pass(store: &Store, cutoff_ms: u64) -> sluice_storage::Result<()> {
    for space in store.spaces()? {
        for tenant in store.tenants(&space.id)? {
            loop {
                let pruned = store
                    .prune_history(&space.id, &tenant.id, cutoff_ms, HISTORY_BATCH)
                    .await?;
                for (kind, n) in [
                    ("execution", pruned.executions),
                    ("event", pruned.events),
                    ("dlq", pruned.dlq_items),
                ] {
                    if n > 0 {
                        metrics::counter!("sluice_history_pruned_total", "kind" => kind)
                            .increment(n as u64);
                    }
                }
                if !pruned.more {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_beyond_the_clock_cuts_nothing_off() {
        assert_eq!(
            cutoff_before(Duration::from_secs(18_446_744_073_709_552)),
            0
        );
        assert_eq!(cutoff_before(Duration::MAX), 0);
        let day = cutoff_before(Duration::from_secs(86_400));
        assert!(day > 0 && day < now_ms());
    }
}
