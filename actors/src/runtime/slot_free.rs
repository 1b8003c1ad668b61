//! How many executions each tenant runs outside its concurrency slots (executions that a
//! synchronous call from one of its running executions waits for, see
//! [`super::TenantMsg::RunCalled`]). Tenant supervisors keep the counts; the execute API reads
//! them to refuse new synchronous calls of a tenant past [`tenant_bound`], so one tenant's
//! runaway fan-out of calls cannot take the server's connections and memory from the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Executions a tenant may run outside its slots at once, per slot.
pub const PER_SLOT: usize = 64;

/// The most executions a tenant running `concurrency` at once may run outside its slots:
/// [`PER_SLOT`] per slot (1,024 at the default 16).
pub fn tenant_bound(concurrency: usize) -> usize {
    concurrency.max(1).saturating_mul(PER_SLOT)
}

/// Per (space, tenant), the executions running outside the slots. Cloning shares the counts.
#[derive(Debug, Clone, Default)]
pub struct SlotFreeCounts {
    counts: Arc<Mutex<HashMap<(String, String), usize>>>,
}

impl SlotFreeCounts {
    /// The tenant's count.
    pub fn get(&self, space: &str, tenant: &str) -> usize {
        self.lock()
            .get(&(space.to_owned(), tenant.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Sets the tenant's count (its supervisor's own, at start and after every change).
    pub(crate) fn set(&self, space: &str, tenant: &str, count: usize) {
        let key = (space.to_owned(), tenant.to_owned());
        let mut counts = self.lock();
        if count == 0 {
            counts.remove(&key);
        } else {
            counts.insert(key, count);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), usize>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_tenant_and_forget_zero() {
        let counts = SlotFreeCounts::default();
        counts.set("sp", "a", 3);
        assert_eq!(counts.get("sp", "a"), 3);
        assert_eq!(counts.get("sp", "b"), 0);
        counts.set("sp", "a", 0);
        assert!(counts.lock().is_empty());
        assert_eq!(tenant_bound(16), 1_024);
        assert_eq!(tenant_bound(0), 64);
    }
}
