//! The record kinds stored as values, one per keyspace.
//!
//! Records are plain data: no `skip_serializing_if`, no internally tagged enums and no
//! `serde_json::Value` fields, because bincode is not self-describing. JSON documents (flow
//! specs, payloads, step inputs and outputs) are kept as JSON text in `String` fields.
//! Times are Unix milliseconds (UTC).

use serde::{Deserialize, Serialize};

use crate::codec::{self, Record};

/// A workspace: the unit an API key belongs to (`x-fastn-space-id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceRecord {
    /// Space id.
    pub id: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// A tenant inside a space (`x-fastn-space-tenantid`); owns flows, webhooks and executions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Owning space id.
    pub space_id: String,
    /// Tenant id, unique within the space.
    pub id: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// An API key's metadata, stored under the SHA-256 of the key (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Space the key grants access to.
    pub space_id: String,
    /// When set, the key may act only for this tenant; `None` means every tenant of the space.
    pub tenant_id: Option<String>,
    /// Human label (`"admin"` for the key made at first start).
    pub label: String,
    /// The first characters of the key, for display.
    pub key_prefix: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// A webhook endpoint registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// Webhook id (the last segment of its URL).
    pub id: String,
    /// Owning space.
    pub space_id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Connector / signature scheme name: `shopify`, `github`, `stripe`, `slack`, `standard`.
    pub connector: String,
    /// The signing secret as configured by the provider.
    pub secret: String,
    /// The secret before the last rotation; it still verifies until
    /// `previous_secret_expires_at_ms`.
    pub previous_secret: Option<String>,
    /// End of the rotation overlap, Unix ms.
    pub previous_secret_expires_at_ms: Option<u64>,
    /// Last rotation, Unix ms.
    pub rotated_at_ms: Option<u64>,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// Lifecycle of a flow definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowStatus {
    /// Editable, not triggered by events.
    Draft,
    /// Published: its triggers are routed to.
    Live,
    /// Deactivated without deleting.
    Archived,
}

impl FlowStatus {
    /// The API spelling: `draft`, `live`, `archived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Live => "live",
            Self::Archived => "archived",
        }
    }
}

/// A flow definition of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Flow id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Flow name (unique per tenant; the `{flow_name}` of the execute API).
    pub name: String,
    /// Version number, starting at 1.
    pub version: u32,
    /// Draft, live or archived.
    pub status: FlowStatus,
    /// The flow document as JSON text (DESIGN.md, Flows).
    pub spec_json: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
    /// Last change, Unix ms.
    pub updated_at_ms: u64,
}

/// A received event waiting in the outbox to be routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox; assigned by the committer, strictly increasing.
    pub seq: u64,
    /// Event id returned to the sender (`eventId`).
    pub event_id: String,
    /// Owning space.
    pub space_id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Webhook registration that received it.
    pub webhook_id: String,
    /// Connector / source name (`shopify`, `github`, …).
    pub connector: String,
    /// Request headers that matter for normalization (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The raw body bytes exactly as received (signatures are over these); empty when the
    /// body was large and is kept in the `blobs` keyspace instead (`body_in_blob`).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// True when the body is stored once in the `blobs` keyspace (a claim check); read it
    /// with [`crate::Store::entry_body`].
    pub body_in_blob: bool,
    /// Receipt time, Unix ms.
    pub received_at_ms: u64,
    /// Priority 1 (highest) to 4 (lowest).
    pub priority: u8,
    /// SHA-256 idempotency key, hex.
    pub idempotency_key: String,
    /// 1 for a first delivery; a DLQ replay re-enters as attempt n+1.
    pub attempt: u32,
    /// The DLQ item this entry replays, if it is a replay.
    pub replay_of: Option<String>,
}

/// First sighting of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupRecord {
    /// Event id given to the first delivery.
    pub event_id: String,
    /// First-seen time, Unix ms.
    pub first_seen_ms: u64,
}

/// What happened to an event once it left the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Event id.
    pub event_id: String,
    /// Outbox sequence it had.
    pub seq: u64,
    /// Source connector (`shopify`).
    pub source: String,
    /// Normalized event name (`order.created`); empty when normalization failed.
    pub event_type: String,
    /// Receipt time, Unix ms.
    pub received_at_ms: u64,
    /// SHA-256 idempotency key, hex.
    pub idempotency_key: String,
    /// Executions it started.
    pub execution_ids: Vec<String>,
    /// Why it was dead-lettered, if it was.
    pub error: Option<String>,
}

/// What a dead-lettered item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DlqKind {
    /// An event that could not be normalized.
    Event,
    /// An execution that failed after its retries.
    Execution,
}

impl DlqKind {
    /// The API spelling: `event`, `execution`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Execution => "execution",
        }
    }
}

/// Where a dead-lettered item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DlqState {
    /// Waiting for an operator.
    Pending,
    /// A replay is in progress.
    Replaying,
    /// A replay succeeded; kept for the record.
    Resolved,
}

impl DlqState {
    /// The API spelling: `pending`, `replaying`, `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Replaying => "replaying",
            Self::Resolved => "resolved",
        }
    }
}

/// One replay of a dead-lettered item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// When it was requested, Unix ms.
    pub at_ms: u64,
    /// The attempt number it was (the first delivery is attempt 1).
    pub attempt: u32,
    /// The execution it started, for an execution item.
    pub execution_id: Option<String>,
    /// Outcome so far: `started`, `completed`, `failed`, or the reason it failed again.
    pub outcome: String,
}

/// A dead-lettered item, kept whole so it can be inspected and replayed once the cause is
/// fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqRecord {
    /// DLQ id (`dlq_` + time-ordered UUID), unique within the tenant.
    pub id: String,
    /// Event or execution.
    pub kind: DlqKind,
    /// The event's id.
    pub event_id: String,
    /// The failed execution, for an execution item.
    pub execution_id: Option<String>,
    /// Flow of the failed execution.
    pub flow_id: Option<String>,
    /// Flow version that failed (the version a pinned replay runs).
    pub flow_version: Option<u32>,
    /// Source connector.
    pub source: String,
    /// Normalized event name (empty when normalization failed).
    pub event_type: String,
    /// Webhook endpoint that received the event (empty for app events).
    pub webhook_id: String,
    /// Original priority, 1-4.
    pub priority: u8,
    /// SHA-256 idempotency key of the event, hex.
    pub idempotency_key: String,
    /// Retained headers of the delivery.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Why it failed, as JSON text in the reference's error shape (executions) or a sentence
    /// (events).
    pub error: String,
    /// Attempts made so far (first delivery plus replays).
    pub attempts: u32,
    /// When it was (last) dead-lettered, Unix ms.
    pub failed_at_ms: u64,
    /// Where it stands.
    pub state: DlqState,
    /// Every replay, oldest first.
    pub replays: Vec<ReplayRecord>,
}

/// Execution lifecycle (the reference's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    /// Triggered but not started.
    Pending,
    /// Currently executing.
    Running,
    /// All steps succeeded (or failed under `onError: continue`).
    Completed,
    /// A step failed and halted the execution.
    Failed,
    /// Manually stopped.
    Cancelled,
    /// Exceeded its maximum execution time.
    TimedOut,
    /// Paused on a `wait` or `approval` step (or a retry backoff): nothing runs it until a
    /// durable timer fires, an event arrives or a person decides. Holds no concurrency slot.
    Waiting,
}

impl ExecutionStatus {
    /// The API spelling: `pending`, `running`, `completed`, `failed`, `cancelled`, `timed_out`,
    /// `waiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::Waiting => "waiting",
        }
    }

    /// True once the execution can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running | Self::Waiting)
    }
}

/// One run of a flow.
///
/// Stored in two parts: the state (everything but the trigger and input, rewritten at each
/// status change) in `executions`, and the trigger and input, written once when the
/// execution is created, in `execution_payloads` (see `WriteSet::put_execution` and
/// `WriteSet::put_execution_state`). `Store::execution` joins them; records written before
/// the split keep their payload inline and read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// Execution id, derived from (idempotency key, flow id, flow version).
    pub id: String,
    /// Owning space.
    pub space_id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Flow id.
    pub flow_id: String,
    /// Flow name.
    pub flow_name: String,
    /// Flow version that runs.
    pub flow_version: u32,
    /// Current status.
    pub status: ExecutionStatus,
    /// Event that triggered it.
    pub event_id: String,
    /// Trigger kind (`event`, `manual`, …).
    pub trigger_kind: String,
    /// Trigger data as JSON text (`{{trigger.…}}`).
    pub trigger_json: String,
    /// Input as JSON text (`{{input.…}}`); empty when the input is the trigger itself (an
    /// event's payload, a manual call's body), so that payload is stored once per record.
    /// Read it with [`ExecutionRecord::input_json`].
    pub input_json: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
    /// First step start, Unix ms.
    pub started_at_ms: Option<u64>,
    /// Terminal time, Unix ms.
    pub finished_at_ms: Option<u64>,
    /// Error summary when failed, as JSON text in the reference's error shape.
    pub error_json: Option<String>,
    /// Priority it runs at, 1 (highest) to 4.
    pub priority: u8,
    /// 1 for the first run; a DLQ replay runs attempt n+1.
    pub attempt: u32,
    /// The DLQ item this execution replays, if it is a replay.
    pub replay_of: Option<String>,
    /// SHA-256 idempotency key of the triggering event, hex.
    pub idempotency_key: String,
    /// How many times its trigger had passed through Sluice (the `CDN-Loop` hop count of the
    /// event or call that started it; 0 from outside). Its connector calls carry one more.
    /// Added in schema version 2; executions stored before read as 0.
    pub hops: u32,
    /// The id of the event or call that started its chain of calls through Sluice (the
    /// `CDN-Loop` correlation id); empty when it is its own event (`event_id`). Added in
    /// schema version 2; executions stored before read as empty.
    pub correlation_id: String,
}

impl ExecutionRecord {
    /// The input as JSON text: `input_json`, or the trigger when it is stored as the input.
    pub fn input_json(&self) -> &str {
        if self.input_json.is_empty() {
            &self.trigger_json
        } else {
            &self.input_json
        }
    }

    /// A copy without the trigger and input (both empty): what the `executions` keyspace
    /// stores. Every other field is copied, so a status change rewrites a few hundred bytes
    /// instead of the payload.
    pub(crate) fn state_only(&self) -> ExecutionRecord {
        let Self {
            id,
            space_id,
            tenant_id,
            flow_id,
            flow_name,
            flow_version,
            status,
            event_id,
            trigger_kind,
            trigger_json: _,
            input_json: _,
            created_at_ms,
            started_at_ms,
            finished_at_ms,
            error_json,
            priority,
            attempt,
            replay_of,
            idempotency_key,
            hops,
            correlation_id,
        } = self;
        ExecutionRecord {
            id: id.clone(),
            space_id: space_id.clone(),
            tenant_id: tenant_id.clone(),
            flow_id: flow_id.clone(),
            flow_name: flow_name.clone(),
            flow_version: *flow_version,
            status: *status,
            event_id: event_id.clone(),
            trigger_kind: trigger_kind.clone(),
            trigger_json: String::new(),
            input_json: String::new(),
            created_at_ms: *created_at_ms,
            started_at_ms: *started_at_ms,
            finished_at_ms: *finished_at_ms,
            error_json: error_json.clone(),
            priority: *priority,
            attempt: *attempt,
            replay_of: replay_of.clone(),
            idempotency_key: idempotency_key.clone(),
            hops: *hops,
            correlation_id: correlation_id.clone(),
        }
    }

    /// The trigger and input, as stored in `execution_payloads`.
    pub(crate) fn payload(&self) -> ExecutionPayload {
        ExecutionPayload {
            trigger_json: self.trigger_json.clone(),
            input_json: self.input_json.clone(),
        }
    }

    /// Puts back the trigger and input read from `execution_payloads`.
    pub(crate) fn with_payload(mut self, payload: ExecutionPayload) -> ExecutionRecord {
        self.trigger_json = payload.trigger_json;
        self.input_json = payload.input_json;
        self
    }
}

/// An execution's trigger and input as JSON text, written once when it is created; the
/// `input_json` is empty when the input is the trigger (see [`ExecutionRecord`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecutionPayload {
    pub(crate) trigger_json: String,
    pub(crate) input_json: String,
}

/// Status of one step in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    /// Succeeded; its output is final and it is never run again.
    Completed,
    /// Failed after its attempts.
    Failed,
    /// Not run because a branch was not taken or an earlier step halted.
    Skipped,
}

impl StepStatus {
    /// The API spelling: `completed`, `failed`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// One attempt at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Start, Unix ms.
    pub started_at_ms: u64,
    /// End, Unix ms.
    pub finished_at_ms: u64,
    /// Error of this attempt as JSON text, if it failed.
    pub error_json: Option<String>,
}

/// A step's journal record, written before the next step starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Position of the step in the flow, from 0.
    pub index: u32,
    /// Step name.
    pub name: String,
    /// Final status.
    pub status: StepStatus,
    /// Rendered input as JSON text.
    pub input_json: String,
    /// Output as JSON text (`null` when none).
    pub output_json: String,
    /// Final error as JSON text in the reference's error shape.
    pub error_json: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptRecord>,
    /// First attempt start, Unix ms.
    pub started_at_ms: u64,
    /// Last attempt end, Unix ms.
    pub finished_at_ms: u64,
}

/// A connector credential of a tenant. The secret material (the `auth` object: keys,
/// passwords, OAuth2 tokens and client secret) is only stored sealed: `ciphertext` is
/// XChaCha20-Poly1305 under the server's master key with `nonce`, and the credential id as
/// associated data, so a sealed value cannot be moved to another record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Credential id (`cred_…`), named by flow steps as `"credential"`.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Connector it is for (`xero`).
    pub connector: String,
    /// Human label.
    pub name: String,
    /// `oauth2`, `apiKey`, `basic`, `custom` or `smtp` (not secret).
    pub auth_type: String,
    /// Overrides the connector's base URL (self-hosted systems, tests).
    pub base_url: Option<String>,
    /// Non-secret parameters as JSON text (`{"shop": "acme"}`, `{"xeroTenantId": "…"}`).
    pub params_json: String,
    /// The 24-byte nonce of `ciphertext`.
    pub nonce: Vec<u8>,
    /// The sealed `auth` object (JSON text before sealing), tag included.
    pub ciphertext: Vec<u8>,
    /// Bumped by each rotation or token refresh.
    pub version: u32,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
    /// Last rotation or refresh, Unix ms.
    pub updated_at_ms: u64,
}

/// One direction of an ID map link: record `id` of `entity` in `system` is record
/// `other_id` of `other_entity` in `other_system`. Links are always written in pairs (both
/// directions in one batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdLinkRecord {
    /// System (connector) of this side (`shopify`).
    pub system: String,
    /// Entity of this side (`order`).
    pub entity: String,
    /// Id on this side.
    pub id: String,
    /// The other system (`xero`).
    pub other_system: String,
    /// The other side's entity (`invoice`).
    pub other_entity: String,
    /// Id on the other side.
    pub other_id: String,
    /// First link time, Unix ms.
    pub created_at_ms: u64,
    /// Last confirmation, Unix ms.
    pub updated_at_ms: u64,
}

/// A sync pair: keeps one entity in step between two connectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPairRecord {
    /// Pair id (`sync_…`).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Human label.
    pub name: String,
    /// Source connector and entity.
    pub source_connector: String,
    /// Source entity.
    pub source_entity: String,
    /// Credential used to write to the source.
    pub source_credential: Option<String>,
    /// Target connector.
    pub target_connector: String,
    /// Target entity.
    pub target_entity: String,
    /// Credential used to write to the target.
    pub target_credential: Option<String>,
    /// `source_wins`, `target_wins`, `last_write_wins`, `merge` or `manual`.
    pub strategy: String,
    /// Fields kept in step (empty: every field).
    pub fields: Vec<String>,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// What the sync engine knows of one record of a pair, keyed by the source id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateRecord {
    /// Pair id.
    pub pair_id: String,
    /// Id on the source side.
    pub source_id: String,
    /// Id on the target side, once known.
    pub target_id: Option<String>,
    /// The last agreed content (JSON text): the base of three-way merges.
    pub base_json: String,
    /// Content hash (hex) last seen or written on the source side.
    pub source_hash: String,
    /// Content hash (hex) last seen or written on the target side.
    pub target_hash: String,
    /// Source side's last change time, Unix ms.
    pub source_updated_ms: u64,
    /// Target side's last change time, Unix ms.
    pub target_updated_ms: u64,
    /// Who wrote last: `source`, `target` or `engine`.
    pub last_writer: String,
    /// An open manual conflict holding this record, if any.
    pub open_conflict: Option<String>,
    /// Last change of this state, Unix ms.
    pub updated_at_ms: u64,
}

/// A conflict flagged for review under the `manual` strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConflictRecord {
    /// Conflict id (`cfl_…`).
    pub id: String,
    /// Pair id.
    pub pair_id: String,
    /// Source id of the record.
    pub source_id: String,
    /// Target id of the record, if known.
    pub target_id: Option<String>,
    /// The source's version (JSON text).
    pub source_json: String,
    /// The target's version (JSON text).
    pub target_json: String,
    /// The last agreed version (JSON text).
    pub base_json: String,
    /// Source change time, Unix ms.
    pub source_updated_ms: u64,
    /// Target change time, Unix ms.
    pub target_updated_ms: u64,
    /// `open` or `resolved`.
    pub status: String,
    /// How it was resolved: `source`, `target`, `merge` or `custom`.
    pub resolution: Option<String>,
    /// The value chosen (JSON text).
    pub resolved_json: Option<String>,
    /// When flagged, Unix ms.
    pub created_at_ms: u64,
    /// When resolved, Unix ms.
    pub resolved_at_ms: Option<u64>,
}

impl Record for CredentialRecord {
    const KIND: &'static str = "credential";
}
impl Record for IdLinkRecord {
    const KIND: &'static str = "id link";
}
impl Record for SyncPairRecord {
    const KIND: &'static str = "sync pair";
}
impl Record for SyncStateRecord {
    const KIND: &'static str = "sync state";
}
impl Record for SyncConflictRecord {
    const KIND: &'static str = "sync conflict";
}
impl Record for SpaceRecord {
    const KIND: &'static str = "space";
}
impl Record for TenantRecord {
    const KIND: &'static str = "tenant";
}
impl Record for ApiKeyRecord {
    const KIND: &'static str = "api key";
}
impl Record for WebhookRecord {
    const KIND: &'static str = "webhook";
}
impl Record for FlowRecord {
    const KIND: &'static str = "flow";
}
impl Record for OutboxEntry {
    const KIND: &'static str = "outbox entry";
}
impl Record for DedupRecord {
    const KIND: &'static str = "dedup";
}
impl Record for EventRecord {
    const KIND: &'static str = "event";
}
impl Record for DlqRecord {
    const KIND: &'static str = "dlq";
}
impl Record for ExecutionRecord {
    const KIND: &'static str = "execution";
    const VERSION: u8 = codec::SCHEMA_V2;

    /// Version 1 is version 2 without its last two fields, `hops` and `correlation_id`.
    /// Bincode writes a struct's fields in order with no framing, so version 1 bytes followed
    /// by the encodings of `hops: 0` and an empty `correlation_id` (one zero byte each: a
    /// varint below 251 is one byte, a string is its varint length and its bytes) are the
    /// version 2 bytes of the same execution outside any chain.
    fn decode_older(version: u8, body: &[u8]) -> Option<crate::Result<Self>> {
        (version == codec::SCHEMA_V1).then(|| {
            let mut v2 = Vec::with_capacity(body.len() + 2);
            v2.extend_from_slice(body);
            v2.extend_from_slice(&[0, 0]);
            codec::decode_body::<Self, Self>(&v2)
        })
    }
}
impl Record for ExecutionPayload {
    const KIND: &'static str = "execution payload";
}
impl Record for StepRecord {
    const KIND: &'static str = "step";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(hops: u32, correlation_id: &str) -> ExecutionRecord {
        ExecutionRecord {
            id: "exe_1".into(),
            space_id: "sp".into(),
            tenant_id: "t1".into(),
            flow_id: "wf_1".into(),
            flow_name: "orders".into(),
            flow_version: 3,
            status: ExecutionStatus::Failed,
            event_id: "evt_1".into(),
            trigger_kind: "event".into(),
            trigger_json: String::new(),
            input_json: String::new(),
            created_at_ms: 1_764_500_000_000,
            started_at_ms: Some(1_764_500_000_001),
            finished_at_ms: Some(1_764_500_000_002),
            error_json: Some("{}".into()),
            priority: 2,
            attempt: 1,
            replay_of: Some("dlq_1".into()),
            idempotency_key: "ab".into(),
            hops,
            correlation_id: correlation_id.into(),
        }
    }

    /// `sample(0, "")` as the build before schema version 2 stored it (bytes it wrote).
    const V1_BYTES: &[u8] = b"\x01\x05exe_1\x02sp\x02t1\x04wf_1\x06orders\x03\x03\x05evt_1\x05event\x00\x00\xfd\x00Me\xd4\x9a\x01\x00\x00\x01\xfd\x01Me\xd4\x9a\x01\x00\x00\x01\xfd\x02Me\xd4\x9a\x01\x00\x00\x01\x02{}\x02\x01\x01\x05dlq_1\x02ab";

    #[test]
    fn execution_written_at_version_1_reads_outside_any_chain() {
        assert_eq!(
            codec::decode::<ExecutionRecord>(V1_BYTES).expect("v1"),
            sample(0, "")
        );
    }

    #[test]
    fn execution_round_trips_at_version_2() {
        let bytes = codec::encode(&sample(7, "evt_root")).expect("encode");
        assert_eq!(bytes[0], codec::SCHEMA_V2);
        assert_eq!(
            codec::decode::<ExecutionRecord>(&bytes).expect("v2"),
            sample(7, "evt_root")
        );
        let mut unknown = bytes.clone();
        unknown[0] = 3;
        assert!(codec::decode::<ExecutionRecord>(&unknown).is_err());
        // Version 1 bytes with trailing garbage are still refused.
        let mut trailing = V1_BYTES.to_vec();
        trailing.push(5);
        assert!(codec::decode::<ExecutionRecord>(&trailing).is_err());
    }
}
