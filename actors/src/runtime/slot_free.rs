//! How many executions each tenant runs outside its concurrency slots (executions that a
//! synchronous call from one of its running executions waits for, see
//! [`super::TenantMsg::RunCalled`]), so the execute API can refuse new such calls past
//! [`tenant_bound`]: one tenant's runaway fan-out of calls cannot take the server's
//! connections and memory from the others.
//!
//! A tenant's count is what its supervisor publishes (the executions callers wait for, and
//! those still running outside the slots after their caller stopped waiting) plus the calls
//! admitted but not yet seen by the supervisor ([`Reservation`]), so a burst of calls cannot
//! all pass on the same old count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Executions a tenant may run outside its slots at once, per slot.
pub const PER_SLOT: usize = 64;

/// The most executions a tenant running `concurrency` at once may run outside its slots:
/// [`PER_SLOT`] per slot (1,024 at the default 16).
pub fn tenant_bound(concurrency: usize) -> usize {
    concurrency.max(1).saturating_mul(PER_SLOT)
}

/// Per (space, tenant), the counts. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct SlotFreeCounts {
    counts: Arc<Mutex<HashMap<(String, String), Count>>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    published: usize,
    reserved: usize,
}

/// One admitted call not yet seen by its tenant's supervisor; released when dropped (the
/// supervisor drops it once the call's execution is counted, and a message that never
/// arrives drops it too).
#[derive(Debug)]
pub struct Reservation {
    counts: SlotFreeCounts,
    key: (String, String),
}

impl SlotFreeCounts {
    /// The tenant's count: published plus reserved.
    pub fn get(&self, space: &str, tenant: &str) -> usize {
        self.lock()
            .get(&(space.to_owned(), tenant.to_owned()))
            .map_or(0, |c| c.published + c.reserved)
    }

    /// Admits one more call of the tenant unless its count has reached `bound`.
    pub fn try_reserve(&self, space: &str, tenant: &str, bound: usize) -> Option<Reservation> {
        let key = (space.to_owned(), tenant.to_owned());
        let mut counts = self.lock();
        let count = counts.entry(key.clone()).or_default();
        if count.published + count.reserved >= bound {
            return None;
        }
        count.reserved += 1;
        Some(Reservation {
            counts: self.clone(),
            key,
        })
    }

    /// Sets the tenant's published count (its supervisor's, after every change).
    pub(crate) fn publish(&self, space: &str, tenant: &str, count: usize) {
        let key = (space.to_owned(), tenant.to_owned());
        let mut counts = self.lock();
        let entry = counts.entry(key.clone()).or_default();
        entry.published = count;
        if entry.published == 0 && entry.reserved == 0 {
            counts.remove(&key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Count>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(c) = counts.get_mut(&self.key) {
            c.reserved = c.reserved.saturating_sub(1);
            if c.published == 0 && c.reserved == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_and_published_counts_share_the_bound() {
        let counts = SlotFreeCounts::default();
        counts.publish("sp", "a", 2);
        let r1 = counts.try_reserve("sp", "a", 4).expect("3rd");
        let r2 = counts.try_reserve("sp", "a", 4).expect("4th");
        assert!(counts.try_reserve("sp", "a", 4).is_none(), "at the bound");
        assert!(counts.try_reserve("sp", "b", 4).is_some(), "another tenant");
        assert_eq!(counts.get("sp", "a"), 4);
        drop(r1);
        assert_eq!(counts.get("sp", "a"), 3);
        counts.publish("sp", "a", 0);
        drop(r2);
        assert!(counts.lock().is_empty(), "forgotten at zero");
        assert_eq!(tenant_bound(16), 1_024);
        assert_eq!(tenant_bound(0), 64);
    }
}
