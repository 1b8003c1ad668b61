// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)

use super::writer::Writer;
use crate::Keyspace;
use lsm_tree::{AbstractTree, SeqNo};
use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

/// Stores the highest seqno of a keyspace found in a journal.
#[derive(Clone)]
pub struct EvictionWatermark {
    pub(crate) keyspace: Keyspace,
    pub(crate) lsn: SeqNo,
}

impl std::fmt::Debug for EvictionWatermark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.keyspace.name, self.lsn)
    }
}

pub struct Item {
    pub(crate) path: PathBuf,
    pub(crate) size_in_bytes: u64,
    pub(crate) watermarks: Vec<EvictionWatermark>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "JournalManagerItem {:?} => {:#?}",
            self.path, self.watermarks
        )
    }
}

/// The [`JournalManager`] keeps track of sealed journals that are being flushed.
///
/// Each journal may contain items of different keyspaces.
#[expect(clippy::module_name_repetitions)]
#[derive(Debug)]
pub struct JournalManager {
    items: Vec<Item>,
    disk_space_in_bytes: u64,

    /// PATCHED (see `PATCHED.md`): journals [`JournalManager::maintenance`] evicted and
    /// [`delete_evicted_journals`] has not deleted yet, oldest first. They count in
    /// `journal_count` (they are still on disk) but no longer in `disk_space_in_bytes`,
    /// which the journal size limit reads, as upstream.
    pending_deletions: VecDeque<PathBuf>,

    /// PATCHED: held by whoever runs [`delete_evicted_journals`], so that journals are
    /// deleted one at a time and oldest first, as upstream deleted them under this
    /// manager's lock.
    deleter: Arc<Mutex<()>>,
}

impl Drop for JournalManager {
    fn drop(&mut self) {
        log::trace!("Dropping journal manager");

        #[cfg(feature = "__internal_whitebox")]
        crate::drop::decrement_drop_counter();
    }
}

impl JournalManager {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "__internal_whitebox")]
        crate::drop::increment_drop_counter();

        Self {
            items: Vec::with_capacity(10),
            disk_space_in_bytes: 0,
            pending_deletions: VecDeque::new(),
            deleter: Arc::default(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }

    pub(crate) fn enqueue(&mut self, item: Item) {
        self.disk_space_in_bytes = self.disk_space_in_bytes.saturating_add(item.size_in_bytes);
        self.items.push(item);
    }

    /// Returns the number of journals
    pub(crate) fn journal_count(&self) -> usize {
        // NOTE: + 1 = active journal
        // PATCHED: evicted journals count until they are deleted.
        self.sealed_journal_count() + self.pending_deletions.len() + 1
    }

    /// Returns the number of sealed journals
    pub(crate) fn sealed_journal_count(&self) -> usize {
        self.items.len()
    }

    /// Returns the number of bytes used on disk by journals
    pub(crate) fn disk_space_used(&self) -> u64 {
        self.disk_space_in_bytes
    }

    /// Gets keyspaces to be flushed so that the oldest journal can be safely evicted
    pub(crate) fn get_keyspaces_to_flush_for_oldest_journal_eviction(&self) -> Vec<Keyspace> {
        let mut items = vec![];

        if let Some(item) = self.items.first() {
            for item in &item.watermarks {
                let Some(partition_seqno) = item.keyspace.tree.get_highest_persisted_seqno() else {
                    items.push(item.keyspace.clone());
                    continue;
                };

                if partition_seqno < item.lsn {
                    items.push(item.keyspace.clone());
                }
            }
        }

        items
    }

    /// Performs maintenance: moves the journals that every keyspace has flushed, oldest
    /// first, from the list of sealed journals to the pending deletions, which
    /// [`delete_evicted_journals`] deletes.
    ///
    /// PATCHED (see `PATCHED.md`): upstream deleted the files here, under the journal
    /// manager's write lock, which a flush worker about to rotate the journal waits for
    /// while it holds the journal writer (every commit's lock). Deleting a 64 MB journal
    /// on a filesystem mounted with `discard` waits for the device's TRIM.
    pub(crate) fn maintenance(&mut self) {
        log::debug!("Running journal maintenance");

        loop {
            let Some(item) = self.items.first() else {
                return;
            };

            // TODO: unit test: check deleted keyspace does not prevent journal eviction
            for item in &item.watermarks {
                // Only check keyspace seqno if not deleted
                if !item
                    .keyspace
                    .is_deleted
                    .load(std::sync::atomic::Ordering::Acquire)
                {
                    let Some(keyspace_seqno) = item.keyspace.tree.get_highest_persisted_seqno()
                    else {
                        return;
                    };

                    if keyspace_seqno < item.lsn {
                        log::trace!(
                            "Keyspace {:?} not flushed enough to evict journal",
                            item.keyspace.name,
                        );
                        return;
                    }
                }
            }

            // NOTE: Once the LSN of *every* keyspace's tables [1] is higher than the journal's stored keyspace seqno,
            // it can be deleted from disk, as we know the entire journal has been flushed to tables [2].
            //
            // [1] We cannot use the keyspace's max seqno, because the memtable will get writes, which increase the seqno.
            // We *need* to check the tables specifically, they are the source of truth for flushed data.
            //
            // [2] Checking the seqno is safe because the queues inside the flush manager are FIFO.
            //
            // IMPORTANT: On recovery, the journals need to be flushed from oldest to newest.
            log::trace!("Evicting fully flushed journal at {}", item.path.display());

            self.disk_space_in_bytes = self.disk_space_in_bytes.saturating_sub(item.size_in_bytes);
            let item = self.items.remove(0);
            self.pending_deletions.push_back(item.path);
        }
    }

    pub(crate) fn rotate_journal(
        &mut self,
        journal_writer: &mut MutexGuard<Writer>,
        watermarks: Vec<EvictionWatermark>,
    ) -> crate::Result<()> {
        let journal_size = journal_writer.len()?;

        let (sealed_path, _) = journal_writer.rotate()?;

        self.enqueue(Item {
            path: sealed_path,
            watermarks,
            size_in_bytes: journal_size,
        });

        Ok(())
    }
}

/// Deletes the journals [`JournalManager::maintenance`] evicted, oldest first, one at a
/// time, without holding the journal manager's lock while a file is deleted.
///
/// PATCHED (see `PATCHED.md`). The journals on disk stay an unbroken run of ids ending
/// at the active journal, as upstream: deletions are serialized by the manager's deleter
/// mutex (held by no commit), a journal leaves the pending list only once its file is
/// gone, and a failed deletion stays at the front and is retried first next time.
///
/// # Errors
///
/// Returns the error deleting the oldest pending journal (a file already gone counts
/// as deleted); the newer ones wait for it.
pub(crate) fn delete_evicted_journals(manager: &RwLock<JournalManager>) -> crate::Result<()> {
    #[expect(clippy::expect_used)]
    let deleter = Arc::clone(&manager.read().expect("lock is poisoned").deleter);
    #[expect(clippy::expect_used)]
    let _deleting = deleter.lock().expect("lock is poisoned");

    loop {
        #[expect(clippy::expect_used)]
        let Some(path) = manager
            .read()
            .expect("lock is poisoned")
            .pending_deletions
            .front()
            .cloned()
        else {
            return Ok(());
        };

        log::trace!("Removing fully flushed journal at {}", path.display());

        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                log::error!(
                    "Failed to clean up stale journal file at {}: {e:?}",
                    path.display(),
                );
                return Err(e.into());
            }
        }

        #[expect(clippy::expect_used)]
        manager
            .write()
            .expect("lock is poisoned")
            .pending_deletions
            .pop_front();
    }
}

// PATCHED (see PATCHED.md §3): evicted journals are deleted oldest first, and a failed
// deletion holds back the newer ones.
#[cfg(test)]
mod deletion_order_test {
    use super::*;
    use test_log::test;

    #[test]
    fn evicted_journals_are_deleted_in_order_and_a_failure_holds_back_newer_ones(
    ) -> crate::Result<()> {
        let dir = tempfile::tempdir()?;
        let manager = RwLock::new(JournalManager::new());
        let paths = (0..3)
            .map(|id| dir.path().join(format!("{id}.jnl")))
            .collect::<Vec<_>>();

        // 0.jnl cannot be deleted as a file: it is a folder.
        std::fs::create_dir(&paths[0])?;
        std::fs::write(&paths[1], b"1")?;
        std::fs::write(&paths[2], b"2")?;
        {
            let mut m = manager.write().expect("lock is poisoned");
            for path in &paths {
                m.pending_deletions.push_back(path.clone());
            }
        }

        assert!(delete_evicted_journals(&manager).is_err());
        assert!(
            paths[1].try_exists()?,
            "a newer journal went before an older one"
        );
        assert!(paths[2].try_exists()?);
        {
            let m = manager.read().expect("lock is poisoned");
            assert_eq!(m.pending_deletions.len(), 3);
            assert_eq!(m.journal_count(), 4);
        }

        // Once the oldest can go, all go, oldest first; one already gone counts as deleted.
        std::fs::remove_dir(&paths[0])?;
        std::fs::write(&paths[0], b"0")?;
        std::fs::remove_file(&paths[2])?;
        delete_evicted_journals(&manager)?;
        for path in &paths {
            assert!(!path.try_exists()?);
        }
        let m = manager.read().expect("lock is poisoned");
        assert!(m.pending_deletions.is_empty());
        assert_eq!(m.journal_count(), 1);

        Ok(())
    }
}
