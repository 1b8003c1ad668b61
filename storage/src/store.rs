//! The [`Store`]: one fjall `Database` in the data directory, one keyspace per kind of record,
//! typed reads, and writes through the group [`committer`](crate::committer).

use std::path::Path;
use std::sync::Arc;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions};
use tokio::sync::{oneshot, watch};

use crate::codec::{Record, decode};
use crate::committer::{self, Durability, IngestOutcome, Request};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::layout_upgrade;
use crate::records::{
    ApiKeyRecord, DedupRecord, ExecutionPayload, ExecutionRecord, FlowRecord, OutboxEntry,
    SpaceRecord, StepRecord, TenantRecord, WebhookRecord,
};
use crate::write_set::WriteSet;

/// The keyspaces, one per kind of record (DESIGN.md, Storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ks {
    /// [`SpaceRecord`] by space id.
    Spaces,
    /// [`TenantRecord`] by (space, tenant).
    Tenants,
    /// [`ApiKeyRecord`] by SHA-256 of the key.
    ApiKeys,
    /// [`WebhookRecord`] by webhook id.
    Webhooks,
    /// [`FlowRecord`] by (space, tenant, flow id).
    Flows,
    /// [`OutboxEntry`] by sequence.
    Outbox,
    /// [`crate::DedupRecord`] by (space, tenant, idempotency key).
    Dedup,
    /// Empty values keyed (first-seen ms, dedup key): the pruning index.
    DedupByTime,
    /// [`crate::EventRecord`] by (space, tenant, seq).
    Events,
    /// [`ExecutionRecord`] state by (space, tenant, execution id): everything but the trigger
    /// and input, which are in `ExecutionPayloads` (records written before that split keep
    /// them inline).
    Executions,
    /// Empty values keyed (space, tenant, created ms, execution id): the newest-first index.
    ExecutionsByTime,
    /// [`StepRecord`] by (space, tenant, execution id, step index).
    Journal,
    /// [`crate::DlqRecord`] by (space, tenant, DLQ id).
    Dlq,
    /// Raw large bodies by (space, tenant, event id): the claim checks of outbox entries.
    Blobs,
    /// Store-internal counters ([`keys::META_OUTBOX_SEQ`]).
    Meta,
    /// [`crate::CredentialRecord`] by (space, tenant, credential id).
    Credentials,
    /// [`crate::IdLinkRecord`] by (space, tenant, system, entity, id, other system).
    IdMaps,
    /// [`crate::SyncPairRecord`] by (space, tenant, pair id).
    SyncPairs,
    /// [`crate::SyncStateRecord`] by (space, tenant, pair id, source id).
    SyncState,
    /// [`crate::SyncConflictRecord`] by (space, tenant, pair id, conflict id).
    SyncConflicts,
    /// [`crate::WaitRecord`] by (space, tenant, execution id, step index).
    Waits,
    /// [`crate::EventWaitRecord`] by (space, tenant, source, event, execution id, step index).
    EventWaits,
    /// [`crate::TimerRecord`] by (due ms, space, tenant, execution id).
    Timers,
    /// [`crate::CronStateRecord`] by (space, tenant, flow id).
    CronState,
    /// Immutable release versions: [`FlowRecord`] by (space, tenant, flow id, version).
    FlowVersions,
    /// [`crate::EnvironmentRecord`] by (space, tenant, name).
    Environments,
    /// [`crate::ReleaseRecord`] by (space, tenant, environment, flow id).
    Releases,
    /// Empty values keyed like `Executions`, one per execution that is not terminal:
    /// start-up resumes from this index instead of scanning every execution ever run.
    ExecutionsOpen,
    /// [`crate::PollRecord`] by (space, tenant, poll id).
    Polls,
    /// [`crate::PollSeenRecord`] by (space, tenant, poll id, record id).
    PollSeen,
    /// [`crate::OAuthPendingRecord`] by state.
    OAuthPending,
    /// [`crate::RetryRecord`] by (space, tenant, execution id, step index): the attempts of
    /// a step parked on a retry backoff.
    Retries,
    /// [`crate::IterationRecord`] by (space, tenant, execution id, loop step index,
    /// iteration): the finished iterations of a loop still running.
    Iterations,
    /// [`ExecutionRecord`] trigger and input by (space, tenant, execution id), written once
    /// when the execution is created; `Executions` holds the rest.
    ExecutionPayloads,
}

impl Ks {
    /// Every keyspace, in a fixed order (the index into the handle table).
    pub const ALL: [Ks; 34] = [
        Ks::Spaces,
        Ks::Tenants,
        Ks::ApiKeys,
        Ks::Webhooks,
        Ks::Flows,
        Ks::Outbox,
        Ks::Dedup,
        Ks::DedupByTime,
        Ks::Events,
        Ks::Executions,
        Ks::ExecutionsByTime,
        Ks::Journal,
        Ks::Dlq,
        Ks::Blobs,
        Ks::Meta,
        Ks::Credentials,
        Ks::IdMaps,
        Ks::SyncPairs,
        Ks::SyncState,
        Ks::SyncConflicts,
        Ks::Waits,
        Ks::EventWaits,
        Ks::Timers,
        Ks::CronState,
        Ks::FlowVersions,
        Ks::Environments,
        Ks::Releases,
        Ks::ExecutionsOpen,
        Ks::Polls,
        Ks::PollSeen,
        Ks::OAuthPending,
        Ks::Retries,
        Ks::Iterations,
        Ks::ExecutionPayloads,
    ];

    /// Keyspaces whose values carry payloads (execution triggers and inputs, step inputs and
    /// outputs, dead-lettered bodies) and are kept, not deleted soon after writing. They are
    /// created with fjall's key-value separation: values of 1 KiB or more live in blob files
    /// and compactions move only the keys and pointers, instead of rewriting every payload at
    /// each level as the history grows. Set when a keyspace is created (a data directory
    /// from before keeps its keyspaces as they were; both read the same).
    pub fn holds_payloads(self) -> bool {
        matches!(self, Ks::ExecutionPayloads | Ks::Journal | Ks::Dlq)
    }

    /// The keyspace's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Ks::Spaces => "spaces",
            Ks::Tenants => "tenants",
            Ks::ApiKeys => "api_keys",
            Ks::Webhooks => "webhooks",
            Ks::Flows => "flows",
            Ks::Outbox => "outbox",
            Ks::Dedup => "dedup",
            Ks::DedupByTime => "dedup_by_time",
            Ks::Events => "events",
            Ks::Executions => "executions",
            Ks::ExecutionsByTime => "executions_by_time",
            Ks::Journal => "journal",
            Ks::Dlq => "dlq",
            Ks::Blobs => "blobs",
            Ks::Meta => "meta",
            Ks::Credentials => "credentials",
            Ks::IdMaps => "id_maps",
            Ks::SyncPairs => "sync_pairs",
            Ks::SyncState => "sync_state",
            Ks::SyncConflicts => "sync_conflicts",
            Ks::Waits => "waits",
            Ks::EventWaits => "event_waits",
            Ks::Timers => "timers",
            Ks::CronState => "cron_state",
            Ks::FlowVersions => "flow_versions",
            Ks::Environments => "environments",
            Ks::Releases => "releases",
            Ks::ExecutionsOpen => "executions_open",
            Ks::Polls => "polls",
            Ks::PollSeen => "poll_seen",
            Ks::OAuthPending => "oauth_pending",
            Ks::Retries => "retries",
            Ks::Iterations => "iterations",
            Ks::ExecutionPayloads => "execution_payloads",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Open keyspace handles, indexed by [`Ks`].
#[derive(Clone)]
pub(crate) struct Handles(Arc<Vec<Keyspace>>);

impl Handles {
    pub(crate) fn get(&self, ks: Ks) -> &Keyspace {
        // `Ks::ALL` and the vector are built together in `Store::open`, so every index exists.
        &self.0[ks.index()]
    }
}

/// The storage engine's state, from [`Store::engine_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Bytes in memtables (active and sealed) not yet flushed to disk.
    pub write_buffer_bytes: u64,
    /// Sealed memtables waiting for a flush.
    pub flushes_queued: usize,
    /// Journal files on disk (the active one and those not fully flushed yet).
    pub journals: usize,
}

/// Options for [`Store::open`].
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// fsync before acknowledging (the default) or leave writes in OS buffers (benchmarks only).
    pub durability: Durability,
    /// Most requests folded into one group commit.
    pub max_batch: usize,
    /// Outbox bodies larger than this many bytes are stored once in the `blobs` keyspace and
    /// referenced by the entry (a claim check), so that reading the outbox never carries them.
    pub claim_check_bytes: usize,
    /// Size at which one keyspace's memtable is sealed and flushed, bytes. With a handful of
    /// hot keyspaces (outbox, dedup, events, executions, journal) this is what bounds the
    /// store's memory under a sustained burst.
    pub memtable_bytes: u64,
    /// Block cache for reads, bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            max_batch: 1024,
            claim_check_bytes: 256 * 1024,
            memtable_bytes: 8 * 1024 * 1024,
            cache_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Handle to the data directory. Cheap to clone; all clones share one committer thread.
///
/// Reads go straight to fjall (point reads and short scans, safe to call from async code for
/// the small records stored here). Every write goes through the committer, which applies
/// concurrent writers' batches together and persists once per group.
#[derive(Clone)]
pub struct Store {
    db: Database,
    pub(crate) handles: Handles,
    tx: committer::CommitterTx,
    outbox_head: watch::Receiver<u64>,
    failure: committer::WriteFailure,
    committed: committer::CommittedGroups,
}

impl Store {
    /// Opens (creating if needed) the database in `dir` and starts the committer thread.
    ///
    /// # Errors
    /// [`StorageError::Engine`] when the directory cannot be opened or recovered.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let db = Database::builder(dir.as_ref())
            .cache_size(options.cache_bytes)
            .open()?;
        let mut handles = Vec::with_capacity(Ks::ALL.len());
        for ks in Ks::ALL {
            handles.push(db.keyspace(ks.name(), || {
                let create =
                    KeyspaceCreateOptions::default().max_memtable_size(options.memtable_bytes);
                if ks.holds_payloads() {
                    create.with_kv_separation(Some(KvSeparationOptions::default()))
                } else {
                    create
                }
            })?);
        }
        let handles = Handles(Arc::new(handles));
        let moved = layout_upgrade::upgrade(&db, &handles)?;
        if moved > 0 {
            tracing::info!(
                moved,
                "unfinished executions' payloads moved to execution_payloads"
            );
        }
        let last_seq = last_outbox_seq(&handles)?;
        let (head_tx, outbox_head) = watch::channel(last_seq);
        let failure = committer::WriteFailure::default();
        let committed = committer::CommittedGroups::default();
        let tx = committer::start(
            db.clone(),
            handles.clone(),
            options,
            last_seq,
            head_tx,
            failure.clone(),
            committed.clone(),
        )?;
        Ok(Self {
            db,
            failure,
            committed,
            handles,
            tx,
            outbox_head,
        })
    }

    /// Applies `writes` atomically and durably; returns once they are on disk.
    ///
    /// # Errors
    /// Engine errors from the commit or the fsync; [`StorageError::CommitterGone`] after
    /// shutdown.
    pub async fn commit(&self, writes: WriteSet) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Apply { writes, reply })?;
        rx.await.map_err(|_| StorageError::CommitterGone)?
    }

    /// Queues `writes` behind every write already queued and returns without waiting for
    /// them to be durable. The single committer applies requests in arrival order, so any
    /// commit made after this call lands after these writes. For state whose loss in a crash
    /// is harmless (an execution's `running` mark: a restart resumes `pending` and `running`
    /// alike); a failure shows up in the next awaited commit.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] or [`StorageError::CommitterGone`] when it cannot be
    /// queued.
    pub fn commit_queued(&self, writes: WriteSet) -> Result<()> {
        let (reply, _ignored) = oneshot::channel();
        self.send(Request::Apply { writes, reply })
    }

    /// Blocking form of [`Store::commit`] for code outside an async runtime (start-up, tools).
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub fn commit_blocking(&self, writes: WriteSet) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Apply { writes, reply })?;
        rx.blocking_recv()
            .map_err(|_| StorageError::CommitterGone)?
    }

    /// Writes an outbox entry and its dedup record in one durable batch, unless the dedup key
    /// was seen before. The committer assigns `entry.seq`; the check and the write happen in
    /// one critical section, so two racing identical deliveries produce one entry.
    ///
    /// A key already in the database is answered here, on the caller's thread, without
    /// queuing for the committer: with [`Durability::Fsync`] a dedup record is only visible
    /// once its group commit is durable (fjall syncs the journal before it fills the
    /// memtables), so the first delivery was acknowledged (or is about to be) with the same
    /// event id. This holds even while writes are refused (a full disk): a repeat of a stored
    /// delivery is still a duplicate.
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub async fn ingest(&self, dedup_key: [u8; 32], entry: OutboxEntry) -> Result<IngestOutcome> {
        self.ingest_inner(Some(dedup_key), entry).await
    }

    /// Writes an outbox entry without a dedup check (a DLQ replay re-entering the pipeline:
    /// its key was recorded by the first delivery). Always [`IngestOutcome::Accepted`].
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub async fn enqueue(&self, entry: OutboxEntry) -> Result<IngestOutcome> {
        self.ingest_inner(None, entry).await
    }

    async fn ingest_inner(
        &self,
        dedup_key: Option<[u8; 32]>,
        entry: OutboxEntry,
    ) -> Result<IngestOutcome> {
        let mut dedup = None;
        if let Some(dedup_key) = &dedup_key {
            // Read the group number first: the lookup then sees every group up to it.
            let visible = self.committed.load(std::sync::atomic::Ordering::Acquire);
            let key = keys::dedup(&entry.space_id, &entry.tenant_id, dedup_key);
            if let Some(bytes) = self.handles.get(Ks::Dedup).get(&key)? {
                let first: DedupRecord = decode(&bytes)?;
                return Ok(IngestOutcome::Duplicate {
                    event_id: first.event_id,
                });
            }
            dedup = Some(committer::DedupCheck {
                key,
                checked_through: visible,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Ingest {
            dedup,
            entry: Box::new(entry),
            reply,
        })?;
        rx.await.map_err(|_| StorageError::CommitterGone)?
    }

    /// The storage engine's state right now: memtable bytes not yet flushed, sealed memtables
    /// waiting for a flush, journal files on disk. For `/metrics`; takes the engine's journal
    /// lock briefly, so call it per scrape, not per write.
    pub fn engine_stats(&self) -> EngineStats {
        EngineStats {
            write_buffer_bytes: self.db.write_buffer_size(),
            flushes_queued: self.db.outstanding_flushes(),
            journals: self.db.journal_count(),
        }
    }

    /// Why writes are refused, if a commit has failed (see [`StorageError::Unavailable`]).
    pub fn write_failure(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    fn send(&self, request: Request) -> Result<()> {
        if let Some(reason) = self.failure.get() {
            return Err(StorageError::Unavailable(reason.clone()));
        }
        self.tx
            .send(request)
            .map_err(|_| StorageError::CommitterGone)
    }

    /// A receiver of the highest committed outbox sequence; it changes after every group
    /// commit that added outbox entries (the relay's wake-up).
    pub fn outbox_head(&self) -> watch::Receiver<u64> {
        self.outbox_head.clone()
    }

    /// Reads and decodes one record.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn get<R: Record>(&self, ks: Ks, key: &[u8]) -> Result<Option<R>> {
        match self.handles.get(ks).get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// True when `key` exists in `ks`.
    ///
    /// # Errors
    /// Engine errors.
    pub fn contains(&self, ks: Ks, key: &[u8]) -> Result<bool> {
        Ok(self.handles.get(ks).contains_key(key)?)
    }

    /// Decodes every record under `prefix`, in key order.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn scan_prefix<R: Record>(&self, ks: Ks, prefix: &[u8]) -> Result<Vec<R>> {
        let mut out = Vec::new();
        for guard in self.handles.get(ks).prefix(prefix) {
            let (_, value) = guard.into_inner()?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// How many keys of `ks` start with `prefix` (values are not read).
    ///
    /// # Errors
    /// Engine errors.
    pub fn count_prefix(&self, ks: Ks, prefix: &[u8]) -> Result<usize> {
        let mut n = 0;
        for guard in self.handles.get(ks).prefix(prefix) {
            guard.key()?;
            n += 1;
        }
        Ok(n)
    }

    /// Every record of `ks` with its key, in key order (for small keyspaces whose keys carry
    /// the identity, such as the cron index).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn scan_keyed<R: Record>(&self, ks: Ks) -> Result<Vec<(Vec<u8>, R)>> {
        let mut out = Vec::new();
        for guard in self.handles.get(ks).iter() {
            let (key, value) = guard.into_inner()?;
            out.push((key.to_vec(), decode(&value)?));
        }
        Ok(out)
    }

    /// Decodes up to `limit` records with keys in `start..end`, in key order.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn scan_range<R: Record>(
        &self,
        ks: Ks,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<R>> {
        let mut out = Vec::new();
        for guard in self
            .handles
            .get(ks)
            .range(start.to_vec()..end.to_vec())
            .take(limit)
        {
            let (_, value) = guard.into_inner()?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// The first `limit` records of `ks` in key order.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn first_records<R: Record>(&self, ks: Ks, limit: usize) -> Result<Vec<R>> {
        let mut out = Vec::new();
        for guard in self.handles.get(ks).iter().take(limit) {
            let (_, value) = guard.into_inner()?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// The space record, if it exists.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn space(&self, space: &str) -> Result<Option<SpaceRecord>> {
        self.get(Ks::Spaces, &keys::space(space))
    }

    /// Every space (there is one per data directory today).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn spaces(&self) -> Result<Vec<SpaceRecord>> {
        self.scan_prefix(Ks::Spaces, &[])
    }

    /// The tenant record, if it exists.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn tenant(&self, space: &str, tenant: &str) -> Result<Option<TenantRecord>> {
        self.get(Ks::Tenants, &keys::tenant(space, tenant))
    }

    /// Every tenant of a space, by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn tenants(&self, space: &str) -> Result<Vec<TenantRecord>> {
        self.scan_prefix(Ks::Tenants, &keys::KeyBuilder::new().id(space).build())
    }

    /// API key metadata by the SHA-256 of the presented key.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn api_key(&self, sha256: &[u8; 32]) -> Result<Option<ApiKeyRecord>> {
        self.get(Ks::ApiKeys, &keys::api_key(sha256))
    }

    /// A webhook registration by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>> {
        self.get(Ks::Webhooks, &keys::webhook(id))
    }

    /// A tenant's webhook registrations. Webhooks are keyed by id alone (the receipt URL has
    /// no tenant), so this filters a full scan; tenants have few webhooks.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn webhooks(&self, space: &str, tenant: &str) -> Result<Vec<WebhookRecord>> {
        let all: Vec<WebhookRecord> = self.scan_prefix(Ks::Webhooks, &[])?;
        Ok(all
            .into_iter()
            .filter(|w| w.space_id == space && w.tenant_id == tenant)
            .collect())
    }

    /// A flow by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn flow(&self, space: &str, tenant: &str, flow_id: &str) -> Result<Option<FlowRecord>> {
        self.get(Ks::Flows, &keys::flow(space, tenant, flow_id))
    }

    /// Every flow of a tenant, by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn flows(&self, space: &str, tenant: &str) -> Result<Vec<FlowRecord>> {
        self.scan_prefix(Ks::Flows, &keys::tenant_prefix(space, tenant).build())
    }

    /// Up to `limit` outbox entries with sequence `>= from`, in sequence order.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn outbox_from(&self, from: u64, limit: usize) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for guard in self.handles.get(Ks::Outbox).range(keys::outbox(from)..) {
            if out.len() >= limit {
                break;
            }
            let (_, value) = guard.into_inner()?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// The outbox entry at `seq`, if it is still there (routed entries are deleted).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn outbox_entry(&self, seq: u64) -> Result<Option<OutboxEntry>> {
        self.handles
            .get(Ks::Outbox)
            .get(keys::outbox(seq))?
            .map(|value| decode(&value))
            .transpose()
    }

    /// The body of an outbox entry: inline, or read from the `blobs` keyspace for a claim
    /// check.
    ///
    /// # Errors
    /// Engine errors; a missing blob is a decode error (it is written with its entry).
    pub fn entry_body(&self, entry: &OutboxEntry) -> Result<Vec<u8>> {
        if !entry.body_in_blob {
            return Ok(entry.body.clone());
        }
        let key = keys::blob(&entry.space_id, &entry.tenant_id, &entry.event_id);
        match self.handles.get(Ks::Blobs).get(key)? {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(StorageError::Decode {
                kind: "blob",
                reason: format!("body of event {} is missing", entry.event_id),
            }),
        }
    }

    /// An execution by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn execution(
        &self,
        space: &str,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ExecutionRecord>> {
        self.execution_at(&keys::execution(space, tenant, id))
    }

    /// An execution's state alone: the trigger and input may be empty (they are written once
    /// and never change, so a caller holding them needs only this to see a status change).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn execution_state(
        &self,
        space: &str,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ExecutionRecord>> {
        self.get(Ks::Executions, &keys::execution(space, tenant, id))
    }

    /// The execution stored under `key`, its state joined with its payload. A record from
    /// before the split carries its payload inline (a non-empty trigger) and is returned as is.
    fn execution_at(&self, key: &[u8]) -> Result<Option<ExecutionRecord>> {
        let Some(state) = self.get::<ExecutionRecord>(Ks::Executions, key)? else {
            return Ok(None);
        };
        if !state.trigger_json.is_empty() {
            return Ok(Some(state));
        }
        Ok(Some(
            match self.get::<ExecutionPayload>(Ks::ExecutionPayloads, key)? {
                Some(payload) => state.with_payload(payload),
                None => state,
            },
        ))
    }

    /// A page of a tenant's executions, newest first, as summaries: their state only, so the
    /// trigger and input may be empty (read one with [`Store::execution`] for them). `before`
    /// is the time-index key suffix returned as the previous page's cursor (exclusive); the
    /// returned cursor is `None` on the last page.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn executions_page(
        &self,
        space: &str,
        tenant: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<ExecutionRecord>, Option<Vec<u8>>)> {
        self.page_newest_first(
            Ks::ExecutionsByTime,
            space,
            tenant,
            before,
            limit,
            |suffix, _| {
                // suffix = created-ms (8 bytes) + execution id + NUL
                let id = suffix
                    .get(8..suffix.len().saturating_sub(1))
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                self.execution_state(space, tenant, &id)
            },
        )
    }

    /// One page of the keys under a tenant's prefix in `ks`, newest (highest key) first:
    /// up to `limit` items older than the cursor `before` (a key suffix after the prefix,
    /// exclusive; `None` starts at the newest). `item` turns a key suffix and its value into
    /// an item, or skips it with `None`. Returns the items and the next page's cursor, `None`
    /// on the last page.
    fn page_newest_first<T>(
        &self,
        ks: Ks,
        space: &str,
        tenant: &str,
        before: Option<&[u8]>,
        limit: usize,
        mut item: impl FnMut(&[u8], &[u8]) -> Result<Option<T>>,
    ) -> Result<(Vec<T>, Option<Vec<u8>>)> {
        let prefix = keys::tenant_prefix(space, tenant).build();
        let keyspace = self.handles.get(ks);
        let iter = match before {
            Some(suffix) => {
                let mut upper = prefix.clone();
                upper.extend_from_slice(suffix);
                keyspace.range(prefix.clone()..upper)
            }
            None => keyspace.prefix(&prefix),
        };
        let mut out = Vec::new();
        let mut last_suffix = None;
        let mut more = false;
        for guard in iter.rev() {
            if out.len() == limit {
                more = true;
                break;
            }
            let (key, value) = guard.into_inner()?;
            let Some(suffix) = key.get(prefix.len()..) else {
                continue;
            };
            if let Some(found) = item(suffix, &value)? {
                out.push(found);
            }
            last_suffix = Some(suffix.to_vec());
        }
        Ok((out, if more { last_suffix } else { None }))
    }

    /// Every execution of every tenant that is not terminal (`pending`, `running` or
    /// `waiting`): the work to resume after a restart. Their state only, as for
    /// [`Store::execution_state`] (what runs them loads them whole).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn unfinished_executions(&self) -> Result<Vec<ExecutionRecord>> {
        self.open_executions(&[])
    }

    /// The state of the executions under `prefix` in the open index, filtered (an index
    /// entry is written in the same batch as its execution, so they agree; the filter is a
    /// guard).
    fn open_executions(&self, prefix: &[u8]) -> Result<Vec<ExecutionRecord>> {
        let mut out = Vec::new();
        for guard in self.handles.get(Ks::ExecutionsOpen).prefix(prefix) {
            let key = guard.key()?;
            if let Some(exec) = self.get::<ExecutionRecord>(Ks::Executions, &key)?
                && !exec.status.is_terminal()
            {
                out.push(exec);
            }
        }
        Ok(out)
    }

    /// A tenant's executions that are not terminal, their state only (see
    /// [`Store::unfinished_executions`]).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn unfinished_executions_of(
        &self,
        space: &str,
        tenant: &str,
    ) -> Result<Vec<ExecutionRecord>> {
        self.open_executions(&keys::tenant_prefix(space, tenant).build())
    }

    /// Number of entries in the outbox, counted by a full key scan (start-up only).
    ///
    /// # Errors
    /// Engine errors.
    pub fn outbox_count(&self) -> Result<usize> {
        let mut n = 0;
        for guard in self.handles.get(Ks::Outbox).iter() {
            guard.key()?;
            n += 1;
        }
        Ok(n)
    }

    /// The journal of one execution, in step order.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn journal(
        &self,
        space: &str,
        tenant: &str,
        execution_id: &str,
    ) -> Result<Vec<StepRecord>> {
        self.scan_prefix(
            Ks::Journal,
            &keys::journal_prefix(space, tenant, execution_id),
        )
    }

    /// One DLQ item.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn dlq_item(
        &self,
        space: &str,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::DlqRecord>> {
        self.get(Ks::Dlq, &keys::dlq(space, tenant, id))
    }

    /// Deletes dedup records first seen before `cutoff_ms`, at most `max` per call, in one
    /// durable batch; returns how many were removed. Reads only the expired range of the time
    /// index, so it never scans live records.
    ///
    /// # Errors
    /// Engine errors.
    pub async fn prune_dedup(&self, cutoff_ms: u64, max: usize) -> Result<usize> {
        let mut writes = WriteSet::new();
        let mut n = 0;
        for guard in self
            .handles
            .get(Ks::DedupByTime)
            .range(..keys::dedup_by_time(cutoff_ms, &[]))
            .take(max)
        {
            let key = guard.key()?;
            if let Some(dedup_key) = key.get(8..) {
                writes.delete(Ks::Dedup, dedup_key.to_vec());
            }
            writes.delete(Ks::DedupByTime, key.to_vec());
            n += 1;
        }
        if n > 0 {
            self.commit(writes).await?;
        }
        Ok(n)
    }

    /// DLQ items of every tenant that are not resolved (start-up metric).
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn dlq_open_count(&self) -> Result<usize> {
        // One record at a time: items carry their full payload, and the DLQ keeps history.
        let mut open = 0;
        for guard in self.handles.get(Ks::Dlq).iter() {
            let (_, value) = guard.into_inner()?;
            let item: crate::DlqRecord = decode(&value)?;
            if item.state != crate::DlqState::Resolved {
                open += 1;
            }
        }
        Ok(open)
    }

    /// A tenant's dead letter queue, oldest first.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn dlq(&self, space: &str, tenant: &str) -> Result<Vec<crate::DlqRecord>> {
        self.scan_prefix(Ks::Dlq, &keys::tenant_prefix(space, tenant).build())
    }

    /// A page of a tenant's routed events, newest first: up to `limit` events older than the
    /// cursor `before` (the opaque suffix returned with the previous page; `None` starts at
    /// the newest), and the cursor of the next page when more remain.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn events_page(
        &self,
        space: &str,
        tenant: &str,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<crate::EventRecord>, Option<Vec<u8>>)> {
        self.page_newest_first(Ks::Events, space, tenant, before, limit, |_, value| {
            decode(value).map(Some)
        })
    }
}

impl Store {
    /// A credential by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn credential(
        &self,
        space: &str,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::CredentialRecord>> {
        self.get(Ks::Credentials, &keys::credential(space, tenant, id))
    }

    /// A tenant's credentials, by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn credentials(&self, space: &str, tenant: &str) -> Result<Vec<crate::CredentialRecord>> {
        self.scan_prefix(Ks::Credentials, &keys::tenant_prefix(space, tenant).build())
    }

    /// Every link from one record to records of other systems.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn id_links(
        &self,
        space: &str,
        tenant: &str,
        system: &str,
        entity: &str,
        id: &str,
    ) -> Result<Vec<crate::IdLinkRecord>> {
        self.scan_prefix(
            Ks::IdMaps,
            &keys::id_links_prefix(space, tenant, system, entity, id),
        )
    }

    /// A sync pair by id.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn sync_pair(
        &self,
        space: &str,
        tenant: &str,
        id: &str,
    ) -> Result<Option<crate::SyncPairRecord>> {
        self.get(Ks::SyncPairs, &keys::sync_pair(space, tenant, id))
    }

    /// A tenant's sync pairs.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn sync_pairs(&self, space: &str, tenant: &str) -> Result<Vec<crate::SyncPairRecord>> {
        self.scan_prefix(Ks::SyncPairs, &keys::tenant_prefix(space, tenant).build())
    }

    /// The sync state of one record of a pair.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn sync_state(
        &self,
        space: &str,
        tenant: &str,
        pair: &str,
        source_id: &str,
    ) -> Result<Option<crate::SyncStateRecord>> {
        self.get(
            Ks::SyncState,
            &keys::sync_state(space, tenant, pair, source_id),
        )
    }

    /// A pair's conflicts, oldest first.
    ///
    /// # Errors
    /// Engine or decode errors.
    pub fn sync_conflicts(
        &self,
        space: &str,
        tenant: &str,
        pair: &str,
    ) -> Result<Vec<crate::SyncConflictRecord>> {
        self.scan_prefix(
            Ks::SyncConflicts,
            &keys::sync_pair_prefix(space, tenant, pair),
        )
    }
}

fn last_outbox_seq(handles: &Handles) -> Result<u64> {
    let from_meta = match handles.get(Ks::Meta).get(keys::META_OUTBOX_SEQ)? {
        Some(bytes) => keys::trailing_u64(&bytes).unwrap_or(0),
        None => 0,
    };
    let from_outbox = match handles.get(Ks::Outbox).last_key_value() {
        Some(guard) => keys::trailing_u64(&guard.key()?).unwrap_or(0),
        None => 0,
    };
    Ok(from_meta.max(from_outbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_keyspaces_keep_large_values_out_of_compactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        for ks in Ks::ALL {
            assert_eq!(
                store.handles.get(ks).is_kv_separated(),
                ks.holds_payloads(),
                "{}",
                ks.name()
            );
        }
        // Still so after a reopen (the option is stored with the keyspace).
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        assert!(store.handles.get(Ks::ExecutionPayloads).is_kv_separated());
        assert!(!store.handles.get(Ks::Outbox).is_kv_separated());
    }

    fn outbox_entry(event_id: &str) -> OutboxEntry {
        OutboxEntry {
            seq: 0,
            event_id: event_id.into(),
            space_id: "sp".into(),
            tenant_id: "t".into(),
            webhook_id: "wh".into(),
            connector: "github".into(),
            headers: Vec::new(),
            body: b"{}".to_vec(),
            body_in_blob: false,
            received_at_ms: 1,
            priority: 2,
            idempotency_key: "00".into(),
            attempt: 1,
            replay_of: None,
        }
    }

    /// Queues an ingest as a caller whose own lookup saw only the groups up to
    /// `checked_through` and found nothing.
    async fn ingest_checked_through(
        store: &Store,
        key: [u8; 32],
        event_id: &str,
        checked_through: u64,
    ) -> IngestOutcome {
        let (reply, rx) = oneshot::channel();
        store
            .send(Request::Ingest {
                dedup: Some(committer::DedupCheck {
                    key: keys::dedup("sp", "t", &key),
                    checked_through,
                }),
                entry: Box::new(outbox_entry(event_id)),
                reply,
            })
            .expect("queue");
        rx.await.expect("reply").expect("ingest")
    }

    /// The committer trusts a caller's lookup only while it still holds every key committed
    /// after it; past that it reads the database again, so a stale lookup never lets a
    /// duplicate through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_lookup_falls_back_to_the_database_once_recent_keys_moved_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            durability: Durability::Buffered,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).expect("open");
        let first = store
            .ingest([1; 32], outbox_entry("evt_first"))
            .await
            .expect("ingest");
        assert!(matches!(first, IngestOutcome::Accepted { .. }), "{first:?}");
        // A lookup made before the first commit (group 0) missed it: the committer's window
        // of recent keys answers.
        let racing = ingest_checked_through(&store, [1; 32], "evt_racing", 0).await;
        assert_eq!(
            racing,
            IngestOutcome::Duplicate {
                event_id: "evt_first".into()
            }
        );
        // Push the first key out of the window.
        let capacity = crate::recent_keys::RecentKeys::DEFAULT_CAPACITY;
        for chunk in 0..capacity.div_ceil(1024) {
            let mut tasks = Vec::new();
            for i in 0..1024usize {
                let n = chunk * 1024 + i;
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&(n as u64 + 1_000).to_be_bytes());
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    store.ingest(key, outbox_entry(&format!("evt_{n}"))).await
                }));
            }
            for t in tasks {
                t.await.expect("join").expect("ingest");
            }
        }
        let stale = ingest_checked_through(&store, [1; 32], "evt_stale", 0).await;
        assert_eq!(
            stale,
            IngestOutcome::Duplicate {
                event_id: "evt_first".into()
            }
        );
        // And a repeat is answered before it reaches the committer.
        let repeat = store
            .ingest([1; 32], outbox_entry("evt_repeat"))
            .await
            .expect("ingest");
        assert_eq!(
            repeat,
            IngestOutcome::Duplicate {
                event_id: "evt_first".into()
            }
        );
    }
}
