//! The dedup keys the committer wrote most recently, and the group commit that wrote each.
//!
//! An ingest's caller looks its dedup key up in the database *before* queuing the request
//! (on its own thread, in parallel with other callers), noting the last group commit that
//! was visible to that lookup. A miss there leaves only the groups committed since — and the
//! group being built — to check. This window holds exactly those keys, so the committer, the
//! one serial thread every write goes through, answers from memory instead of repeating the
//! lookup. It holds a bounded number of keys; once it has dropped a key written after the
//! caller's lookup it no longer [`covers`](RecentKeys::covers) that lookup, and the committer
//! falls back to reading the database.

use std::collections::{HashMap, VecDeque};

/// Dedup keys written by recent group commits, oldest first, with the event id each names.
#[derive(Debug)]
pub(crate) struct RecentKeys {
    by_key: HashMap<Vec<u8>, (u64, String)>,
    /// (group, key) in insertion order; an entry whose key has since been removed stays until
    /// it is evicted.
    order: VecDeque<(u64, Vec<u8>)>,
    capacity: usize,
    /// The newest group any evicted key belonged to: lookups made before it was committed
    /// are no longer covered.
    evicted_through: u64,
}

impl RecentKeys {
    /// Keys the committer remembers by default: at 20,000 webhooks a second, the last ~0.8 s,
    /// against a lookup-to-commit gap of milliseconds. About 300 bytes each.
    pub(crate) const DEFAULT_CAPACITY: usize = 16 * 1024;

    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            evicted_through: 0,
        }
    }

    /// The event id recorded for `key`, if a group still in the window wrote it.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&str> {
        self.by_key.get(key).map(|(_, event_id)| event_id.as_str())
    }

    /// True when every key written by a group after `checked_through` is still here, so a
    /// database lookup that saw every group up to `checked_through` plus this window
    /// together see every key.
    pub(crate) fn covers(&self, checked_through: u64) -> bool {
        self.evicted_through <= checked_through
    }

    /// Records that group `group` writes `key` for `event_id`, evicting the oldest keys past
    /// the capacity — but never a key of `group` itself: the group being built is not in the
    /// database yet, so it is checked only here, and the window may hold one group more than
    /// its capacity.
    pub(crate) fn insert(&mut self, key: Vec<u8>, group: u64, event_id: String) {
        self.order.push_back((group, key.clone()));
        self.by_key.insert(key, (group, event_id));
        while self.order.len() > self.capacity {
            if self.order.front().is_none_or(|(g, _)| *g >= group) {
                break;
            }
            let Some((old_group, old_key)) = self.order.pop_front() else {
                break;
            };
            // The key may have been removed, or removed and written again by a later group.
            if self
                .by_key
                .get(&old_key)
                .is_some_and(|(g, _)| *g == old_group)
            {
                self.by_key.remove(&old_key);
            }
            self.evicted_through = self.evicted_through.max(old_group);
        }
    }

    /// Forgets `key`: a write deleted it from the database (the dedup pruner).
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.by_key.remove(key);
    }

    /// Forgets everything and covers no lookup any more (after a failed commit, whose keys
    /// were staged here but never written).
    pub(crate) fn forget_all(&mut self) {
        self.by_key.clear();
        self.order.clear();
        self.evicted_through = u64::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::RecentKeys;

    #[test]
    fn answers_for_kept_keys_and_covers_lookups_until_an_eviction() {
        let mut recent = RecentKeys::new(2);
        recent.insert(b"a".to_vec(), 1, "evt_a".into());
        recent.insert(b"b".to_vec(), 2, "evt_b".into());
        assert_eq!(recent.get(b"a"), Some("evt_a"));
        assert!(recent.covers(0));
        // A third key evicts "a" (group 1): a lookup that saw group 0 only could have missed it.
        recent.insert(b"c".to_vec(), 3, "evt_c".into());
        assert_eq!(recent.get(b"a"), None);
        assert_eq!(recent.get(b"c"), Some("evt_c"));
        assert!(!recent.covers(0));
        assert!(recent.covers(1));
    }

    #[test]
    fn a_removed_key_written_again_survives_the_eviction_of_its_first_write() {
        let mut recent = RecentKeys::new(2);
        recent.insert(b"a".to_vec(), 1, "evt_1".into());
        recent.remove(b"a");
        assert_eq!(recent.get(b"a"), None);
        recent.insert(b"a".to_vec(), 2, "evt_2".into());
        // Evicts the first (group 1) entry of "a", not its second write.
        recent.insert(b"b".to_vec(), 3, "evt_b".into());
        assert_eq!(recent.get(b"a"), Some("evt_2"));
    }

    /// A group larger than the window keeps all its keys until the next group: they are not
    /// in the database yet, so a repeat within the group is caught only here.
    #[test]
    fn keys_of_the_group_being_built_are_never_evicted() {
        let mut recent = RecentKeys::new(2);
        recent.insert(b"old".to_vec(), 4, "evt_old".into());
        for (i, key) in [b"a", b"b", b"c"].into_iter().enumerate() {
            recent.insert(key.to_vec(), 5, format!("evt_{i}"));
        }
        assert_eq!(recent.get(b"old"), None);
        assert!(!recent.covers(3) && recent.covers(4));
        for key in [b"a", b"b", b"c"] {
            assert!(recent.get(key).is_some(), "{key:?} kept");
        }
        // The next group trims the window back to its capacity.
        recent.insert(b"d".to_vec(), 6, "evt_d".into());
        assert_eq!(recent.get(b"a"), None);
        assert!(!recent.covers(4) && recent.covers(5));
    }

    #[test]
    fn after_forget_all_no_lookup_is_covered() {
        let mut recent = RecentKeys::new(8);
        recent.insert(b"a".to_vec(), 1, "evt_a".into());
        recent.forget_all();
        assert_eq!(recent.get(b"a"), None);
        assert!(!recent.covers(u64::MAX - 1));
    }
}
