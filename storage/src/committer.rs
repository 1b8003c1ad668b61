//! The single committer: one thread that owns every write to the database.
//!
//! Requests arrive on a channel. The thread takes the first, drains whatever else is already
//! waiting (up to `max_batch`), applies all of them as **one** fjall batch, persists once
//! (`fdatasync` of the journal in [`Durability::Fsync`] mode: it covers the data and the file
//! length, which is all an appended journal needs, as PostgreSQL's default `wal_sync_method`),
//! and only then answers every waiting caller. This is group commit: under concurrency the
//! cost of one sync is shared by every request in the group, and a caller is never told
//! "done" before its data is on disk.
//!
//! Dedup for ingestion is decided inside the same thread, against the database and the group
//! being built, so two identical deliveries racing on different connections produce one
//! outbox entry. The caller has already looked the key up in the database on its own thread
//! (a repeat delivery is answered there, without queuing); the committer then checks only
//! what was committed after that lookup, which it keeps in memory ([`RecentKeys`]), and reads
//! the database again only when that window has moved past the lookup.
//!
//! Outbox sequence numbers are assigned here, in commit order, so the relay can read the
//! outbox in sequence without ever seeing a gap filled later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use fjall::{Database, PersistMode};
use tokio::sync::{oneshot, watch};

use crate::codec::{decode, encode};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::recent_keys::RecentKeys;
use crate::records::{DedupRecord, OutboxEntry};
use crate::store::{Handles, Ks, StoreOptions};
use crate::write_set::{Op, WriteSet};

/// When a write counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the journal before answering (the default; survives power loss and `kill -9`).
    #[default]
    Fsync,
    /// Hand writes to the OS and answer (survives `kill -9` of the process, not power loss).
    /// For benchmarks; never the default.
    Buffered,
}

/// The answer to an ingestion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// A new outbox entry was written durably.
    Accepted {
        /// Its outbox sequence.
        seq: u64,
        /// Its event id.
        event_id: String,
    },
    /// The idempotency key was seen before; nothing was written.
    Duplicate {
        /// The event id of the first delivery.
        event_id: String,
    },
}

pub(crate) enum Request {
    Apply {
        writes: WriteSet,
        reply: oneshot::Sender<Result<()>>,
    },
    Ingest {
        /// `None` for an entry that skips dedup (a DLQ replay).
        dedup: Option<DedupCheck>,
        entry: Box<OutboxEntry>,
        reply: oneshot::Sender<Result<IngestOutcome>>,
    },
}

enum Pending {
    Apply(oneshot::Sender<Result<()>>),
    Ingest(oneshot::Sender<Result<IngestOutcome>>, IngestOutcome),
    Failed(Reply, StorageError),
}

enum Reply {
    Apply(oneshot::Sender<Result<()>>),
    Ingest(oneshot::Sender<Result<IngestOutcome>>),
}

/// The dedup key of an ingest and what the caller's own lookup of it saw.
pub(crate) struct DedupCheck {
    /// The full `dedup` keyspace key ([`keys::dedup`]).
    pub(crate) key: Vec<u8>,
    /// The last group commit visible to that lookup, which found nothing.
    pub(crate) checked_through: u64,
}

/// Set once, at the first failed commit; its reason is every later write's answer.
pub(crate) type WriteFailure = Arc<OnceLock<String>>;

/// Number of the last group commit whose writes are visible to readers (groups are numbered
/// from 1 in each process). A caller that reads it before a lookup knows the lookup saw every
/// group up to that number.
pub(crate) type CommittedGroups = Arc<AtomicU64>;

/// The sending side of the committer's queue.
///
/// The committer never waits in the channel's own blocking `recv`: crossbeam's backs off with
/// `sched_yield` before it parks, and on a busy machine a thread that yielded stays runnable
/// but unscheduled for milliseconds (`perf sched timehist` at 8 k webhooks/s showed ~1,400
/// yields per second, gaps of 2–16 ms after them, and every request that arrived meanwhile
/// waiting). It drains with `try_recv` and parks; every send unparks it (a futex wake if it
/// is parked, an atomic swap otherwise).
///
/// Dropping the last one (with the last [`crate::Store`] clone) waits for the committer to
/// finish the groups already queued and exit, so that its handle on the database is gone
/// and the data directory can be opened again at once.
#[derive(Clone)]
pub(crate) struct CommitterTx {
    /// `Some` until dropped; taken in `drop` so that the wake-up that follows sees the
    /// disconnection.
    tx: Option<crossbeam_channel::Sender<Request>>,
    committer: thread::Thread,
    /// Shared by every clone and declared last: its last reference drops after the last
    /// sender, and then joins the committer.
    _join_on_last_drop: Arc<JoinOnDrop>,
}

/// Joins the committer thread when dropped.
struct JoinOnDrop(Option<thread::JoinHandle<()>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // A panic on the committer thread was already reported by the panic hook.
            let _ = handle.join();
        }
    }
}

impl CommitterTx {
    /// Queues `request` (blocking while the queue is full) and wakes the committer. `Err` once
    /// the committer has stopped.
    pub(crate) fn send(&self, request: Request) -> std::result::Result<(), ()> {
        let tx = self.tx.as_ref().ok_or(())?;
        tx.send(request).map_err(|_| ())?;
        self.committer.unpark();
        Ok(())
    }
}

impl Drop for CommitterTx {
    fn drop(&mut self) {
        // Disconnect first, then wake: the last sender's wake-up lets the committer see the
        // channel closed and exit instead of parking for ever.
        drop(self.tx.take());
        self.committer.unpark();
    }
}

pub(crate) fn start(
    db: Database,
    handles: Handles,
    options: StoreOptions,
    last_seq: u64,
    head: watch::Sender<u64>,
    failure: WriteFailure,
    committed: CommittedGroups,
) -> Result<CommitterTx> {
    let (tx, rx) = crossbeam_channel::bounded::<Request>(options.max_batch.max(1) * 4);
    let mut committer = Committer {
        db,
        handles,
        options,
        next_seq: last_seq + 1,
        head,
        failure,
        committed,
        recent: RecentKeys::new(RecentKeys::DEFAULT_CAPACITY),
    };
    let thread = thread::Builder::new()
        .name("sluice-committer".into())
        .spawn(move || {
            loop {
                let first = match rx.try_recv() {
                    Ok(request) => request,
                    Err(crossbeam_channel::TryRecvError::Empty) => {
                        // Woken by the next send (or spuriously: the loop checks again).
                        thread::park();
                        continue;
                    }
                    Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                };
                let mut group = vec![first];
                while group.len() < committer.options.max_batch {
                    match rx.try_recv() {
                        Ok(r) => group.push(r),
                        Err(_) => break,
                    }
                }
                if let Some(reason) = committer.failure.get() {
                    // Refuse at once: no retry loop against a full or failing disk.
                    for request in group {
                        request
                            .reply_to()
                            .fail(StorageError::Unavailable(reason.clone()));
                    }
                    continue;
                }
                committer.commit_group(group);
            }
        })
        .map_err(|e| StorageError::Engine(fjall::Error::Io(e)))?;
    Ok(CommitterTx {
        tx: Some(tx),
        committer: thread.thread().clone(),
        _join_on_last_drop: Arc::new(JoinOnDrop(Some(thread))),
    })
}

struct Committer {
    db: Database,
    handles: Handles,
    options: StoreOptions,
    next_seq: u64,
    head: watch::Sender<u64>,
    failure: WriteFailure,
    committed: CommittedGroups,
    recent: RecentKeys,
}

impl Committer {
    fn commit_group(&mut self, group: Vec<Request>) {
        let first_seq = self.next_seq;
        let group_no = self.committed.load(Ordering::Relaxed) + 1;
        let mut batch = self.db.batch();
        // Spelled out rather than left to fjall's default for batches (`Buffer`, unless the
        // database is opened with manual journal persistence, which would leave a group in the
        // journal's user-space buffer, lost with a killed process).
        batch = batch.durability(Some(match self.options.durability {
            Durability::Fsync => PersistMode::SyncData,
            Durability::Buffered => PersistMode::Buffer,
        }));
        let mut pending = Vec::with_capacity(group.len());
        for request in group {
            match request {
                Request::Apply { writes, reply } => {
                    for op in writes.ops {
                        match op {
                            Op::Put(ks, k, v) => batch.insert(self.handles.get(ks), k, v),
                            Op::Delete(ks, k) => {
                                if ks == Ks::Dedup {
                                    self.recent.remove(&k);
                                }
                                batch.remove(self.handles.get(ks), k);
                            }
                        }
                    }
                    pending.push(Pending::Apply(reply));
                }
                Request::Ingest {
                    dedup,
                    entry,
                    reply,
                } => match self.stage_ingest(&mut batch, group_no, dedup, *entry) {
                    Ok(outcome) => pending.push(Pending::Ingest(reply, outcome)),
                    Err(e) => pending.push(Pending::Failed(Reply::Ingest(reply), e)),
                },
            }
        }
        let wrote_outbox = self.next_seq != first_seq;
        if wrote_outbox {
            let mut meta = Vec::with_capacity(8);
            meta.extend_from_slice(&(self.next_seq - 1).to_be_bytes());
            batch.insert(self.handles.get(Ks::Meta), keys::META_OUTBOX_SEQ, meta);
        }
        let group_size = pending.len();
        let started = Instant::now();
        let committed = batch.commit();
        Self::record_metrics(group_size, started.elapsed());
        match committed {
            Ok(()) => {
                // After the commit returns its writes are visible: a lookup that reads this
                // number first sees them.
                self.committed.store(group_no, Ordering::Release);
                if wrote_outbox {
                    self.head.send_replace(self.next_seq - 1);
                }
                for p in pending {
                    match p {
                        Pending::Apply(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                        Pending::Ingest(reply, outcome) => {
                            let _ = reply.send(Ok(outcome));
                        }
                        Pending::Failed(reply, e) => reply.fail(e),
                    }
                }
            }
            Err(e) => {
                // Nothing of this group was acknowledged. A failed journal write poisons the
                // database (fjall's guidance: stop writing and recover by reopening), so from
                // now on every write is refused with the reason, and a restart recovers.
                tracing::error!(error = %e, "group commit failed; refusing writes until restart");
                self.next_seq = first_seq;
                self.recent.forget_all();
                let reason = self.failure.get_or_init(|| e.to_string()).clone();
                for p in pending {
                    let reply = match p {
                        Pending::Apply(r) => Reply::Apply(r),
                        Pending::Ingest(r, _) => Reply::Ingest(r),
                        Pending::Failed(r, _) => r,
                    };
                    reply.fail(StorageError::Unavailable(reason.clone()));
                }
            }
        }
    }

    /// Publishes the group's size and commit time (batch apply + sync, plus any write stall
    /// fjall imposed). The engine's own state is read at scrape time
    /// ([`crate::Store::engine_stats`]), not here: reading the journal count takes a lock the
    /// flush worker holds while it rotates the journal.
    fn record_metrics(group_size: usize, took: Duration) {
        metrics::histogram!("sluice_storage_commit_seconds").record(took.as_secs_f64());
        metrics::histogram!("sluice_storage_commit_group_size").record(group_size as f64);
    }

    /// Stages one ingest into `batch` (group `group_no`): a duplicate of a key in the
    /// database or in this group writes nothing. `dedup` is the key and what the caller's
    /// lookup of it saw; `None` skips dedup.
    fn stage_ingest(
        &mut self,
        batch: &mut fjall::OwnedWriteBatch,
        group_no: u64,
        dedup: Option<DedupCheck>,
        mut entry: OutboxEntry,
    ) -> Result<IngestOutcome> {
        entry.seq = self.next_seq;
        let mut dedup_record = None;
        if let Some(DedupCheck {
            key,
            checked_through,
        }) = dedup
        {
            if let Some(event_id) = self.recent.get(&key) {
                return Ok(IngestOutcome::Duplicate {
                    event_id: event_id.to_owned(),
                });
            }
            if !self.recent.covers(checked_through)
                && let Some(bytes) = self.handles.get(Ks::Dedup).get(&key)?
            {
                let first: DedupRecord = decode(&bytes)?;
                return Ok(IngestOutcome::Duplicate {
                    event_id: first.event_id,
                });
            }
            let record = DedupRecord {
                event_id: entry.event_id.clone(),
                first_seen_ms: entry.received_at_ms,
            };
            dedup_record = Some((key, encode(&record)?));
        }
        let blob = if entry.body.len() > self.options.claim_check_bytes {
            entry.body_in_blob = true;
            Some(std::mem::take(&mut entry.body))
        } else {
            None
        };
        // Everything is encoded before anything is staged: a request that fails leaves no
        // dedup record behind (a retry would otherwise be told "duplicate" of nothing).
        let entry_bytes = encode(&entry)?;
        if let Some((key, dedup_bytes)) = dedup_record {
            batch.insert(
                self.handles.get(Ks::DedupByTime),
                keys::dedup_by_time(entry.received_at_ms, &key),
                Vec::new(),
            );
            batch.insert(self.handles.get(Ks::Dedup), key.clone(), dedup_bytes);
            self.recent.insert(key, group_no, entry.event_id.clone());
        }
        if let Some(body) = blob {
            batch.insert(
                self.handles.get(Ks::Blobs),
                keys::blob(&entry.space_id, &entry.tenant_id, &entry.event_id),
                body,
            );
        }
        batch.insert(
            self.handles.get(Ks::Outbox),
            keys::outbox(entry.seq),
            entry_bytes,
        );
        self.next_seq += 1;
        Ok(IngestOutcome::Accepted {
            seq: entry.seq,
            event_id: entry.event_id,
        })
    }
}

impl Request {
    fn reply_to(self) -> Reply {
        match self {
            Request::Apply { reply, .. } => Reply::Apply(reply),
            Request::Ingest { reply, .. } => Reply::Ingest(reply),
        }
    }
}

impl Reply {
    fn fail(self, e: StorageError) {
        match self {
            Reply::Apply(r) => {
                let _ = r.send(Err(e));
            }
            Reply::Ingest(r) => {
                let _ = r.send(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{SpaceRecord, Store, StoreOptions, WriteSet};

    /// Writers on several threads, each waiting for its commit, all land; and the committer
    /// thread lets go of the database when the last `Store` is dropped (a reopen in the same
    /// process would otherwise find the directory locked).
    #[test]
    fn concurrent_writers_all_land_and_the_committer_exits_with_the_last_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let mut w = WriteSet::new();
                        w.put_space(&SpaceRecord {
                            id: format!("s{t}-{i}"),
                            created_at_ms: i,
                        })
                        .expect("encode");
                        store.commit_blocking(w).expect("commit");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        for t in 0..8 {
            for i in 0..100 {
                let space = store.space(&format!("s{t}-{i}")).expect("read");
                assert_eq!(space.map(|s| s.created_at_ms), Some(i));
            }
        }
    }
}
