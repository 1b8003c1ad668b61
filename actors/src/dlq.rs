//! The dead letter queue: building items for events that could not be normalized and for
//! executions that failed after their retries, recording replay outcomes, and replaying.
//!
//! A replay re-enters the pipeline with the item's original priority and attempt n+1:
//! - an **event** item is written back to the outbox (without the dedup check its first
//!   delivery already passed) and normalized again;
//! - an **execution** item starts a new execution of the flow, either the version that failed
//!   (pinned, the default) or the one live now. Its id is derived from (idempotency key,
//!   attempt, flow, version), so asking twice for the same replay cannot start two.
//!
//! The item records every replay and its outcome; a successful one resolves it.

use ractor::ActorRef;
use serde_json::Value;
use sluice_storage::{
    DlqKind, DlqRecord, DlqState, ExecutionRecord, ExecutionStatus, FlowStatus, OutboxEntry,
    ReplayRecord, StorageError, Store, WriteSet,
};

use crate::ids::{execution_id, now_ms};
use crate::pipeline::Headers;
use crate::pipeline::hops::{self, Lineage};
use crate::runtime::RootMsg;

/// A new DLQ id: `dlq_` + a time-ordered UUID (v7), so a tenant's items sort by time.
pub fn new_id() -> String {
    format!("dlq_{}", uuid::Uuid::now_v7().simple())
}

/// An item for an outbox entry that could not be normalized; `body` is its full body.
pub fn for_event(entry: &OutboxEntry, body: &[u8], error: &str) -> DlqRecord {
    DlqRecord {
        id: new_id(),
        kind: DlqKind::Event,
        event_id: entry.event_id.clone(),
        execution_id: None,
        flow_id: None,
        flow_version: None,
        source: entry.connector.clone(),
        event_type: String::new(),
        webhook_id: entry.webhook_id.clone(),
        priority: entry.priority,
        idempotency_key: entry.idempotency_key.clone(),
        headers: entry.headers.clone(),
        body: body.to_vec(),
        error: error.to_owned(),
        attempts: entry.attempt.max(1),
        failed_at_ms: now_ms(),
        state: DlqState::Pending,
        replays: Vec::new(),
    }
}

/// An item for an execution that failed; `event_type` is the normalized name of its trigger.
pub fn for_execution(exec: &ExecutionRecord, source: &str, event_type: &str) -> DlqRecord {
    DlqRecord {
        id: new_id(),
        kind: DlqKind::Execution,
        event_id: exec.event_id.clone(),
        execution_id: Some(exec.id.clone()),
        flow_id: Some(exec.flow_id.clone()),
        flow_version: Some(exec.flow_version),
        source: source.to_owned(),
        event_type: event_type.to_owned(),
        webhook_id: String::new(),
        priority: exec.priority,
        idempotency_key: exec.idempotency_key.clone(),
        // The lineage, so a replay's connector calls still carry it.
        headers: Lineage {
            hops: exec.hops,
            correlation_id: exec.correlation_id.clone(),
        }
        .stored_header()
        .into_iter()
        .collect(),
        body: exec.trigger_json.clone().into_bytes(),
        error: exec.error_json.clone().unwrap_or_default(),
        attempts: exec.attempt.max(1),
        failed_at_ms: now_ms(),
        state: DlqState::Pending,
        replays: Vec::new(),
    }
}

/// Records the outcome of the latest replay on `item` and returns it updated.
pub fn record_outcome(mut item: DlqRecord, succeeded: bool, detail: &str) -> DlqRecord {
    if let Some(last) = item.replays.last_mut() {
        last.outcome = detail.to_owned();
    }
    if succeeded {
        item.state = DlqState::Resolved;
    } else {
        item.state = DlqState::Pending;
        item.attempts = item.replays.last().map_or(item.attempts, |r| r.attempt);
        item.failed_at_ms = now_ms();
    }
    item
}

/// Which flow version an execution replay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionChoice {
    /// The version that failed (default).
    #[default]
    Pinned,
    /// The flow's live version now.
    Live,
}

/// Why a replay was not started.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No such item.
    #[error("no such DLQ item")]
    NotFound,
    /// The item is resolved or a replay is running.
    #[error("the item is {0}; only pending items can be replayed")]
    NotPending(&'static str),
    /// The flow (or the chosen version of it) cannot run.
    #[error("{0}")]
    FlowUnavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The runtime is gone.
    #[error("the runtime is shutting down")]
    Runtime,
}

/// Replays and deletions of items ([`replay`], [`remove`]) run one at a time. A replay reads
/// its item, checks that it is pending and commits it as replaying; two requests for one item
/// at once would otherwise both find it pending and both start a replay (for an event item:
/// two outbox entries, two event records, and one of the two replay records lost). These are
/// operator actions, so serializing them all costs nothing that matters.
static ONE_ITEM_CHANGE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Replays one item; returns the updated item. `via` is the replay request's lineage (the
/// default from outside; see [`Lineage::for_replay`] for the one the replay runs with).
///
/// # Errors
/// [`ReplayError`] when the item is missing, not pending (a replay of it already started:
/// [`ReplayError::NotPending`] with `"replaying"`), or its flow cannot run.
pub async fn replay(
    store: &Store,
    root: &ActorRef<RootMsg>,
    space: &str,
    tenant: &str,
    id: &str,
    version: VersionChoice,
    via: &Lineage,
) -> Result<DlqRecord, ReplayError> {
    let _only_one = ONE_ITEM_CHANGE_AT_A_TIME.lock().await;
    let mut item = store
        .dlq_item(space, tenant, id)?
        .ok_or(ReplayError::NotFound)?;
    if item.state != DlqState::Pending {
        return Err(ReplayError::NotPending(item.state.as_str()));
    }
    let attempt = item.attempts + 1;
    let lineage = Headers::new(item.headers.iter().cloned())
        .lineage()
        .for_replay(via, &format!("{}-{attempt}", item.id));
    let mut w = WriteSet::new();
    match item.kind {
        DlqKind::Event => {
            let entry = OutboxEntry {
                seq: 0,
                event_id: item.event_id.clone(),
                space_id: space.to_owned(),
                tenant_id: tenant.to_owned(),
                webhook_id: item.webhook_id.clone(),
                connector: item.source.clone(),
                headers: item
                    .headers
                    .iter()
                    .filter(|(k, _)| k != hops::HEADER)
                    .cloned()
                    .chain(lineage.stored_header())
                    .collect(),
                body: item.body.clone(),
                body_in_blob: false,
                received_at_ms: now_ms(),
                priority: item.priority,
                idempotency_key: item.idempotency_key.clone(),
                attempt,
                replay_of: Some(item.id.clone()),
            };
            item.state = DlqState::Replaying;
            item.replays.push(ReplayRecord {
                at_ms: now_ms(),
                attempt,
                execution_id: None,
                outcome: "started".into(),
            });
            // Record the replay before the entry re-enters the outbox, so the tenant that
            // normalizes it finds the item `replaying`.
            w.put_dlq(space, tenant, &item)?;
            store.commit(w).await?;
            store.enqueue(entry).await?;
        }
        DlqKind::Execution => {
            let flow_id = item.flow_id.clone().unwrap_or_default();
            let flow = store.flow(space, tenant, &flow_id)?.ok_or_else(|| {
                ReplayError::FlowUnavailable(format!("flow {flow_id} no longer exists"))
            })?;
            let run_version = match version {
                VersionChoice::Pinned => {
                    let pinned = item.flow_version.unwrap_or(flow.version);
                    if crate::flow::versions::find(store, space, tenant, &flow_id, pinned)?
                        .is_none()
                    {
                        return Err(ReplayError::FlowUnavailable(format!(
                            "flow {flow_id} version {pinned} is no longer stored; replay with the live version"
                        )));
                    }
                    pinned
                }
                VersionChoice::Live => {
                    if flow.status != FlowStatus::Live {
                        return Err(ReplayError::FlowUnavailable(format!(
                            "flow {flow_id} is not live"
                        )));
                    }
                    crate::flow::versions::live(store, space, tenant, &flow_id)?
                        .map_or(flow.version, |f| f.version)
                }
            };
            let exec_id = execution_id(
                &format!("{}#attempt{attempt}", item.idempotency_key),
                &flow.id,
                run_version,
            );
            let trigger_json = String::from_utf8_lossy(&item.body).into_owned();
            let exec = ExecutionRecord {
                id: exec_id.clone(),
                space_id: space.to_owned(),
                tenant_id: tenant.to_owned(),
                flow_id: flow.id.clone(),
                flow_name: flow.name.clone(),
                flow_version: run_version,
                status: ExecutionStatus::Pending,
                event_id: item.event_id.clone(),
                trigger_kind: "replay".into(),
                input_json: String::new(),
                trigger_json,
                created_at_ms: now_ms(),
                started_at_ms: None,
                finished_at_ms: None,
                error_json: None,
                priority: item.priority,
                attempt,
                replay_of: Some(item.id.clone()),
                idempotency_key: item.idempotency_key.clone(),
                hops: lineage.hops,
                correlation_id: lineage.correlation_id.clone(),
            };
            item.state = DlqState::Replaying;
            item.replays.push(ReplayRecord {
                at_ms: now_ms(),
                attempt,
                execution_id: Some(exec_id),
                outcome: "started".into(),
            });
            w.put_execution(&exec)?;
            w.put_dlq(space, tenant, &item)?;
            store.commit(w).await?;
            root.cast(RootMsg::run(&exec))
                .map_err(|_| ReplayError::Runtime)?;
        }
    }
    Ok(item)
}

/// Deletes one item, under the same lock as [`replay`] (a replay that had read the item
/// before the deletion would otherwise write it back as replaying); returns it, or `None`
/// when there is no such item.
///
/// # Errors
/// Storage errors.
pub async fn remove(
    store: &Store,
    space: &str,
    tenant: &str,
    id: &str,
) -> Result<Option<DlqRecord>, StorageError> {
    let _only_one = ONE_ITEM_CHANGE_AT_A_TIME.lock().await;
    let Some(item) = store.dlq_item(space, tenant, id)? else {
        return Ok(None);
    };
    let mut w = WriteSet::new();
    w.delete_dlq(space, tenant, id);
    store.commit(w).await?;
    if item.state != DlqState::Resolved {
        metrics::gauge!("sluice_dlq_depth").decrement(1.0);
    }
    Ok(Some(item))
}

/// Filters for listing and bulk replay; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct DlqFilter {
    /// Source connector.
    pub source: Option<String>,
    /// Normalized event name.
    pub event: Option<String>,
    /// Substring of the error.
    pub reason: Option<String>,
    /// `pending`, `replaying` or `resolved`.
    pub state: Option<String>,
}

impl DlqFilter {
    /// True when `item` passes.
    pub fn matches(&self, item: &DlqRecord) -> bool {
        self.source.as_ref().is_none_or(|s| s == &item.source)
            && self.event.as_ref().is_none_or(|e| e == &item.event_type)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| item.error.contains(r.as_str()))
            && self.state.as_ref().is_none_or(|s| s == item.state.as_str())
    }
}

/// The error of an item as JSON: the structured error body for executions, a string for
/// events.
pub fn error_value(item: &DlqRecord) -> Value {
    serde_json::from_str(&item.error).unwrap_or_else(|_| Value::String(item.error.clone()))
}

#[cfg(test)]
mod tests {
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use sluice_storage::{DlqKind, DlqRecord, DlqState, Store, StoreOptions, WriteSet};

    use super::{ReplayError, VersionChoice, replay};
    use crate::runtime::RootMsg;

    /// A root that ignores everything (an event replay goes through the outbox, not the root).
    struct NoRoot;

    impl Actor for NoRoot {
        type Msg = RootMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<Self::Msg>,
            (): (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// Three replays of one event item at once start one replay: one outbox entry, one replay
    /// record, and "replaying" for the other two.
    #[tokio::test]
    async fn concurrent_replays_of_one_item_start_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        let item = DlqRecord {
            id: "dlq_1".into(),
            kind: DlqKind::Event,
            event_id: "evt_1".into(),
            execution_id: None,
            flow_id: None,
            flow_version: None,
            source: "app".into(),
            event_type: String::new(),
            webhook_id: String::new(),
            priority: 2,
            idempotency_key: "key".into(),
            headers: Vec::new(),
            body: br#"{"fixed":true}"#.to_vec(),
            error: "not JSON".into(),
            attempts: 1,
            failed_at_ms: 1,
            state: DlqState::Pending,
            replays: Vec::new(),
        };
        let mut w = WriteSet::new();
        w.put_dlq("sp", "t", &item).expect("encode");
        store.commit(w).await.expect("commit");
        let (root, _) = Actor::spawn(None, NoRoot, ()).await.expect("root");

        let outside = crate::pipeline::hops::Lineage::default();
        let once = || {
            replay(
                &store,
                &root,
                "sp",
                "t",
                "dlq_1",
                VersionChoice::Pinned,
                &outside,
            )
        };
        let (a, b, c) = tokio::join!(once(), once(), once());
        let results = [a, b, c];
        let started = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(started, 1, "{results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, ReplayError::NotPending("replaying"))),
            "{results:?}"
        );
        assert_eq!(store.outbox_count().expect("count"), 1);
        let stored = store
            .dlq_item("sp", "t", "dlq_1")
            .expect("read")
            .expect("item");
        assert_eq!(stored.replays.len(), 1);
        assert_eq!(stored.state, DlqState::Replaying);
    }
}
