// Copyright (c) 2024-present, fjall-rs
// This source code is licensed under both the Apache 2.0 and MIT License
// (found in the LICENSE-* files in the repository)

use crate::{
    memtable::Memtable,
    tree::sealed::SealedMemtables,
    version::{persist_version, Version},
    SeqNo, SequenceNumberCounter,
};
use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, RwLock, RwLockWriteGuard},
};

/// A super version is a point-in-time snapshot of memtables and a [`Version`] (list of disk files)
#[derive(Clone)]
pub struct SuperVersion {
    /// Active memtable that is being written to
    #[doc(hidden)]
    pub active_memtable: Arc<Memtable>,

    /// Frozen memtables that are being flushed
    pub(crate) sealed_memtables: Arc<SealedMemtables>,

    /// Current tree version
    pub(crate) version: Version,

    pub(crate) seqno: SeqNo,
}

pub struct SuperVersions(VecDeque<SuperVersion>);

/// Old versions taken off a tree's history by [`SuperVersions::maintenance`], with the
/// paths of their version files (`v<id>` in the tree's folder).
///
/// PATCHED (see `PATCHED.md` in this crate's folder): disposing of them is slow (see
/// `maintenance`), so it happens after the version lock is released. Dropping this
/// without [`VersionGarbage::dispose`] still drops the versions but leaves their files,
/// which the next recovery deletes as orphans.
#[derive(Default)]
#[must_use = "dispose of the old versions after releasing the version lock"]
pub struct VersionGarbage {
    versions: Vec<SuperVersion>,
    files: Vec<PathBuf>,
}

impl VersionGarbage {
    /// Drops the old versions (which may delete tables and blob files no other version
    /// references) and deletes their version files, oldest first.
    ///
    /// # Errors
    ///
    /// Returns the first error deleting a version file; the files after it are left
    /// for the next recovery, which deletes every version file but `CURRENT`'s.
    pub fn dispose(self) -> crate::Result<()> {
        drop(self.versions);

        for path in self.files {
            // Gone already (its keyspace's folder deleted meanwhile) counts as deleted.
            match crate::file::retry_transient_io(|| std::fs::remove_file(&path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }

        Ok(())
    }
}

impl SuperVersions {
    pub fn new(version: Version) -> Self {
        Self(
            vec![SuperVersion {
                active_memtable: Arc::new(Memtable::new(0)),
                sealed_memtables: Arc::default(),
                version,
                seqno: 0,
            }]
            .into(),
        )
    }

    pub fn memtable_size_sum(&self) -> u64 {
        let mut set = crate::HashMap::default();

        for super_version in &self.0 {
            set.entry(super_version.active_memtable.id)
                .and_modify(|bytes| *bytes += super_version.active_memtable.size())
                .or_insert_with(|| super_version.active_memtable.size());

            for sealed in super_version.sealed_memtables.iter() {
                set.entry(sealed.id)
                    .and_modify(|bytes| *bytes += sealed.size())
                    .or_insert_with(|| sealed.size());
            }
        }

        set.into_values().sum()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn free_list_len(&self) -> usize {
        self.len().saturating_sub(1)
    }

    /// Takes the versions below `gc_watermark` off the history (all but the newest of
    /// them) and returns them with their version files, for the caller to
    /// [`VersionGarbage::dispose`] of once it has released the version lock.
    ///
    /// PATCHED (see `PATCHED.md` in this crate's folder): upstream deleted the version
    /// files and dropped the old versions here, under the write lock. Dropping a version
    /// can drop the last reference to a compacted-away table (whose `Drop` unlinks its
    /// file) or to a flushed memtable (freeing every skiplist node), and an unlink on a
    /// filesystem mounted with `discard` waits for the device's TRIM: every write to the
    /// tree waited behind that too.
    pub fn maintenance(&mut self, folder: &Path, gc_watermark: SeqNo) -> VersionGarbage {
        let mut garbage = VersionGarbage::default();

        if gc_watermark == 0 {
            return garbage;
        }

        if self.free_list_len() < 1 {
            return garbage;
        }

        log::trace!("Running manifest GC with watermark={gc_watermark}");

        if let Some(hi_idx) = self.0.iter().rposition(|x| x.seqno < gc_watermark) {
            for _ in 0..hi_idx {
                let Some(head) = self.0.pop_front() else {
                    break;
                };

                log::trace!(
                    "Removing version #{} (seqno={})",
                    head.version.id(),
                    head.seqno,
                );

                garbage
                    .files
                    .push(folder.join(format!("v{}", head.version.id())));
                garbage.versions.push(head);
            }
        }

        log::trace!("Manifest GC done, version length now {}", self.0.len());

        garbage
    }

    /// Modifies the level manifest atomically.
    ///
    /// The function accepts a transition function that receives the current version
    /// and returns a new version.
    ///
    /// The function takes care of persisting the version changes on disk.
    pub(crate) fn upgrade_version<F: FnOnce(&SuperVersion) -> crate::Result<SuperVersion>>(
        &mut self,
        tree_path: &Path,
        f: F,
        seqno: &SequenceNumberCounter,
        visible_seqno: &SequenceNumberCounter,
    ) -> crate::Result<()> {
        self.upgrade_version_with_seqno(tree_path, f, seqno.next(), visible_seqno)
    }

    /// Like `upgrade_version`, but takes an already-allocated sequence number.
    ///
    /// This is useful when the seqno must be coordinated with other operations
    /// (e.g., bulk ingestion where tables are recovered with the same seqno).
    pub(crate) fn upgrade_version_with_seqno<
        F: FnOnce(&SuperVersion) -> crate::Result<SuperVersion>,
    >(
        &mut self,
        tree_path: &Path,
        f: F,
        seqno: SeqNo,
        visible_seqno: &SequenceNumberCounter,
    ) -> crate::Result<()> {
        let mut next_version = f(&self.latest_version())?;
        next_version.seqno = seqno;
        log::trace!("Next version seqno={}", next_version.seqno);

        persist_version(tree_path, &next_version.version)?;
        self.append_version(next_version);

        visible_seqno.fetch_max(seqno + 1);

        Ok(())
    }

    /// Installs the version `f` computes from the latest one, like
    /// [`SuperVersions::upgrade_version`], but writes and syncs the version file
    /// (`persist_version`: the file, the folder, `CURRENT`) *before* taking the write
    /// lock, and holds the lock only to swap the new version in. Returns the write
    /// guard so that the caller can run maintenance under it.
    ///
    /// PATCHED (see `PATCHED.md` in this crate's folder): upstream holds the write lock
    /// through the syncs, and every write to the tree (`append_entry` reads the active
    /// memtable under the read lock) and every read waits behind them.
    ///
    /// The caller must hold the tree's compaction state lock. Every installer that
    /// changes the version's disk part (flushes, compactions, ingestion and `clear`)
    /// holds it, so that part cannot change between `f` and the swap. Only the
    /// memtables can (a rotation seals the active memtable and starts a new one); the
    /// swap takes them from the latest version, minus the sealed memtables `f` removed.
    /// `f` must not replace the active memtable.
    pub(crate) fn install_version<'a, F: FnOnce(&SuperVersion) -> crate::Result<SuperVersion>>(
        lock: &'a RwLock<Self>,
        tree_path: &Path,
        f: F,
        seqno: &SequenceNumberCounter,
        visible_seqno: &SequenceNumberCounter,
    ) -> crate::Result<RwLockWriteGuard<'a, Self>> {
        #[expect(clippy::expect_used, reason = "lock is expected to not be poisoned")]
        let base = lock.read().expect("lock is poisoned").latest_version();

        let next = f(&base)?;
        debug_assert_eq!(next.active_memtable.id, base.active_memtable.id);

        persist_version(tree_path, &next.version)?;

        #[expect(clippy::expect_used, reason = "lock is expected to not be poisoned")]
        let mut guard = lock.write().expect("lock is poisoned");
        let latest = guard.latest_version();

        // The compaction state lock keeps other installers out, so this holds; the
        // version file above is already `CURRENT`, so going on would leave memory and
        // disk disagreeing.
        assert_eq!(
            latest.version.id(),
            base.version.id(),
            "a version was installed without the compaction state lock",
        );

        let mut sealed_memtables = latest.sealed_memtables;
        for memtable in base.sealed_memtables.iter() {
            if !next.sealed_memtables.contains(&memtable.id) {
                sealed_memtables = Arc::new(sealed_memtables.remove(memtable.id));
            }
        }

        let seqno = seqno.next();
        log::trace!("Next version seqno={seqno}");
        guard.append_version(SuperVersion {
            active_memtable: latest.active_memtable,
            sealed_memtables,
            version: next.version,
            seqno,
        });
        visible_seqno.fetch_max(seqno + 1);

        Ok(guard)
    }

    pub fn append_version(&mut self, version: SuperVersion) {
        self.0.push_back(version);
    }

    pub fn replace_latest_version(&mut self, version: SuperVersion) {
        if self.0.pop_back().is_some() {
            self.0.push_back(version);
        }
    }

    pub fn latest_version(&self) -> SuperVersion {
        #[expect(clippy::expect_used, reason = "SuperVersion is expected to exist")]
        self.0
            .iter()
            .last()
            .cloned()
            .expect("should always have a SuperVersion")
    }

    pub fn get_version_for_snapshot(&self, seqno: SeqNo) -> SuperVersion {
        if seqno == 0 {
            #[expect(clippy::expect_used, reason = "SuperVersion is expected to exist")]
            return self
                .0
                .front()
                .cloned()
                .expect("should always find a SuperVersion");
        }

        let version = self
            .0
            .iter()
            .rev()
            .find(|version| version.seqno < seqno)
            .cloned();

        if version.is_none() {
            log::error!("Failed to find a SuperVersion for snapshot with seqno={seqno}");
            log::error!("SuperVersions:");

            for version in self.0.iter().rev() {
                log::error!("-> {}, seqno={}", version.version.id(), version.seqno);
            }
        }

        #[expect(clippy::expect_used, reason = "SuperVersion is expected to exist")]
        version.expect("should always find a SuperVersion")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_log::test;

    #[test]
    fn super_version_gc_above_watermark() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 1,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 0).dispose()?;

        assert_eq!(history.free_list_len(), 2);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_simple() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 1,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3).dispose()?;

        assert_eq!(history.len(), 1);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_simple_2() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 1,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 8,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3).dispose()?;

        assert_eq!(history.len(), 2);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_keep() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 8,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3).dispose()?;

        assert_eq!(history.len(), 2);

        Ok(())
    }

    #[test]
    fn super_version_gc_below_watermark_shadowed() -> crate::Result<()> {
        let mut history = SuperVersions(
            vec![
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 0,
                },
                SuperVersion {
                    active_memtable: Arc::new(Memtable::new(0)),
                    sealed_memtables: Arc::default(),
                    version: Version::new(0, crate::TreeType::Standard),
                    seqno: 2,
                },
            ]
            .into(),
        );

        history.maintenance(Path::new("."), 3).dispose()?;

        assert_eq!(history.len(), 1);

        Ok(())
    }
}
