//! The poller: one per process. Runs the due poll registrations
//! ([`sluice_storage::PollRecord`]) for connectors and entities that send no webhooks: calls
//! the entity's list action through the [`ActionInvoker`] with the stored cursor (the largest
//! change time seen, sent as the entity's `sinceParam`), hashes every record
//! ([`crate::sync::hash::content_hash`], canonical JSON) and submits one P4 event
//! `"{entity}.changed"` (source = the connector, payload = the record) for each record whose
//! hash differs from the one stored for its id. Unchanged records emit nothing.
//!
//! Order of work per run: submit the events, then commit the new hashes and the cursor in one
//! batch. Each event's idempotency key is `connector:entity:id:hash`, so a crash between the
//! two makes the next run submit the same keys again, which the outbox deduplicates: no change
//! is emitted twice, none is lost. (Within the dedup window, a record that returns to a
//! content it had before is therefore not reported again.)
//!
//! A failed call is recorded on the poll (`last_error`) and retried at its next interval.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sluice_storage::{PollRecord, PollSeenRecord, StorageError, Store, WriteSet};

use crate::connector::{ActionCall, ActionInvoker};
use crate::connectors::select::{id_text, select};
use crate::ids::now_ms;
use crate::pipeline::submit::{P4_POLLING, Submission, submit};
use crate::sync::hash::content_hash;

/// How often the poller looks for due polls.
pub const TICK: Duration = Duration::from_millis(100);
/// Time limit of one list call (all its pages).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run of a poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRun {
    /// Poll id.
    pub poll_id: String,
    /// Records listed.
    pub listed: usize,
    /// Events submitted (records new or changed).
    pub emitted: usize,
    /// The call's failure, if it failed.
    pub error: Option<String>,
}

/// Runs forever (abort the task to stop it).
pub async fn run(store: Store, invoker: Arc<dyn ActionInvoker>) {
    loop {
        if let Err(e) = tick(&store, invoker.as_ref(), now_ms()).await {
            tracing::warn!(error = %e, "poller tick failed");
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Runs every poll due at `now_ms`.
///
/// # Errors
/// Storage errors (a failed provider call is not an error: it is recorded on the poll).
pub async fn tick(
    store: &Store,
    invoker: &dyn ActionInvoker,
    now_ms: u64,
) -> Result<Vec<PollRun>, StorageError> {
    let mut runs = Vec::new();
    for poll in store.all_polls()? {
        if poll.next_due_ms <= now_ms {
            runs.push(run_poll(store, invoker, poll, now_ms).await?);
        }
    }
    Ok(runs)
}

/// Runs one poll now, whether due or not, and schedules its next run.
///
/// # Errors
/// Storage errors.
pub async fn run_poll(
    store: &Store,
    invoker: &dyn ActionInvoker,
    mut poll: PollRecord,
    now_ms: u64,
) -> Result<PollRun, StorageError> {
    let mut input = Map::new();
    if let (Some(param), Some(cursor)) = (&poll.since_param, &poll.cursor) {
        input.insert("query".into(), json!({ param.as_str(): cursor }));
    }
    let call = ActionCall {
        connector: poll.connector.clone(),
        action: poll.action.clone(),
        input: Value::Object(input),
        idempotency_key: format!("{}:{now_ms}", poll.id),
        timeout: CALL_TIMEOUT,
        space: poll.space_id.clone(),
        tenant: poll.tenant_id.clone(),
        credential: poll.credential.clone(),
        lineage: Default::default(),
        execution_id: None,
    };
    let answer = invoker.invoke(call).await;
    poll.last_run_ms = Some(now_ms);
    poll.next_due_ms = now_ms.saturating_add(poll.every_ms.max(1));
    let mut out = PollRun {
        poll_id: poll.id.clone(),
        listed: 0,
        emitted: 0,
        error: None,
    };
    let records = match answer {
        Ok(v) => match v.get("data") {
            Some(Value::Array(items)) => Ok(items.clone()),
            _ => Err(format!(
                "{}.{} answered no list of records",
                poll.connector, poll.action
            )),
        },
        Err(e) => Err(e.message),
    };
    let mut w = WriteSet::new();
    match records {
        Err(message) => {
            tracing::warn!(poll = %poll.id, error = %message, "poll failed");
            metrics::counter!("sluice_poll_failures_total", "connector" => poll.connector.clone())
                .increment(1);
            poll.last_error = Some(message.clone());
            out.error = Some(message);
        }
        Ok(records) => {
            out.listed = records.len();
            poll.last_error = None;
            let event = format!("{}.changed", poll.entity);
            for record in &records {
                let Some(id) = select(record, &poll.id_field).and_then(id_text) else {
                    continue;
                };
                if let Some(field) = &poll.updated_field
                    && let Some(at) = select(record, field).and_then(id_text)
                    && poll
                        .cursor
                        .as_deref()
                        .is_none_or(|c| later(&at, c) == Ordering::Greater)
                {
                    poll.cursor = Some(at);
                }
                let hash = content_hash(record, &[]);
                let seen = store.poll_seen(&poll.space_id, &poll.tenant_id, &poll.id, &id)?;
                if seen.as_ref().is_some_and(|s| s.hash == hash) {
                    continue;
                }
                submit(
                    store,
                    Submission {
                        space_id: poll.space_id.clone(),
                        tenant_id: poll.tenant_id.clone(),
                        source: poll.connector.clone(),
                        event: event.clone(),
                        payload: serde_json::to_vec(record).unwrap_or_default(),
                        priority: P4_POLLING,
                        idempotency_key: Some(format!(
                            "{}:{}:{id}:{hash}",
                            poll.connector, poll.entity
                        )),
                        lineage: Default::default(),
                    },
                )
                .await?;
                w.put_poll_seen(
                    &poll.space_id,
                    &poll.tenant_id,
                    &poll.id,
                    &PollSeenRecord {
                        record_id: id,
                        hash,
                        seen_at_ms: now_ms,
                    },
                )?;
                out.emitted += 1;
            }
            poll.emitted += out.emitted as u64;
            metrics::counter!("sluice_poll_events_total", "connector" => poll.connector.clone())
                .increment(out.emitted as u64);
        }
    }
    // A poll deleted while its call was in flight stays deleted: the check and the write
    // happen under the lock that deletions take too.
    let _guard = write_lock().lock().await;
    if store
        .poll(&poll.space_id, &poll.tenant_id, &poll.id)?
        .is_some()
    {
        w.put_poll(&poll)?;
        store.commit(w).await?;
    }
    Ok(out)
}

/// Serializes the poller's state writes with deletions of polls (the API takes it around
/// its delete), so that a run finishing after a delete does not bring the poll back.
pub fn write_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// Orders two change times: numerically when both are numbers, as instants when both are
/// RFC 3339 timestamps (offsets differ between providers), else as text.
pub fn later(a: &str, b: &str) -> Ordering {
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    if let (Ok(x), Ok(y)) = (a.parse::<jiff::Timestamp>(), b.parse::<jiff::Timestamp>()) {
        return x.cmp(&y);
    }
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::connector::ActionError;

    /// A provider holding records; answers like the invoker: `{"data": [...]}`, filtered by
    /// `updated_at_min` when sent.
    struct Fake {
        records: Mutex<Vec<Value>>,
        calls: Mutex<Vec<Value>>,
        fail: Mutex<bool>,
    }

    #[async_trait::async_trait]
    impl ActionInvoker for Fake {
        async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
            self.calls.lock().expect("lock").push(call.input.clone());
            if *self.fail.lock().expect("lock") {
                return Err(ActionError::new("provider down", true));
            }
            let since = call.input["query"]["updated_at_min"]
                .as_str()
                .map(str::to_owned);
            let data: Vec<Value> = self
                .records
                .lock()
                .expect("lock")
                .iter()
                .filter(|r| {
                    since.as_deref().is_none_or(|s| {
                        later(r["updated_at"].as_str().unwrap_or(""), s) != Ordering::Less
                    })
                })
                .cloned()
                .collect();
            Ok(json!({"status": 200, "data": data}))
        }
    }

    fn poll() -> PollRecord {
        PollRecord {
            id: "poll_1".into(),
            space_id: "sp".into(),
            tenant_id: "acme".into(),
            connector: "shopify".into(),
            entity: "order".into(),
            action: "listOrders".into(),
            credential: Some("cred_1".into()),
            every_ms: 200,
            since_param: Some("updated_at_min".into()),
            updated_field: Some("updated_at".into()),
            id_field: "id".into(),
            cursor: None,
            next_due_ms: 0,
            last_run_ms: None,
            last_error: None,
            emitted: 0,
            created_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn emits_only_real_changes_and_keeps_the_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path(), sluice_storage::StoreOptions::default()).expect("store");
        let mut w = WriteSet::new();
        w.put_poll(&poll()).expect("put");
        store.commit(w).await.expect("commit");
        let fake = Fake {
            records: Mutex::new(vec![
                json!({"id": 1, "total": "10.00", "updated_at": "2026-01-01T10:00:00-05:00"}),
                json!({"id": 2, "total": "20.00", "updated_at": "2026-01-01T15:30:00+01:00"}),
            ]),
            calls: Mutex::default(),
            fail: Mutex::new(false),
        };
        let runs = tick(&store, &fake, 1_000).await.expect("tick");
        assert_eq!((runs[0].listed, runs[0].emitted), (2, 2));
        // Not due yet.
        assert!(tick(&store, &fake, 1_100).await.expect("tick").is_empty());
        let runs = tick(&store, &fake, 1_200).await.expect("tick");
        assert_eq!((runs[0].listed, runs[0].emitted), (1, 0), "nothing changed");
        // Record 1 (15:00 UTC) is later than record 2 (14:30 UTC) despite their text; the cursor is sent.
        let calls = fake.calls.lock().expect("lock").clone();
        assert_eq!(calls[0], json!({}));
        assert_eq!(
            calls[1],
            json!({"query": {"updated_at_min": "2026-01-01T10:00:00-05:00"}})
        );
        fake.records.lock().expect("lock")[0] =
            json!({"id": 1, "total": "12.00", "updated_at": "2026-01-01T10:05:00-05:00"});
        let runs = tick(&store, &fake, 1_400).await.expect("tick");
        assert_eq!(runs[0].emitted, 1);
        *fake.fail.lock().expect("lock") = true;
        let runs = tick(&store, &fake, 1_600).await.expect("tick");
        assert_eq!(runs[0].error.as_deref(), Some("provider down"));
        let stored = store
            .poll("sp", "acme", "poll_1")
            .expect("read")
            .expect("poll");
        assert_eq!(stored.emitted, 3);
        assert_eq!(stored.next_due_ms, 1_800);
        assert_eq!(stored.last_error.as_deref(), Some("provider down"));
        assert_eq!(stored.cursor.as_deref(), Some("2026-01-01T10:05:00-05:00"));
        // Three events in the outbox, all P4 `order.changed` from shopify.
        let out = store.outbox_from(0, 10).expect("outbox");
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|e| e.priority == P4_POLLING && e.connector == "shopify")
        );
        assert!(out.iter().all(|e| e.headers[0].1 == "order.changed"));
    }

    #[tokio::test]
    async fn a_crash_before_the_cursor_is_saved_does_not_emit_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path(), sluice_storage::StoreOptions::default()).expect("store");
        let fake = Fake {
            records: Mutex::new(vec![json!({"id": "a", "updated_at": "1"})]),
            calls: Mutex::default(),
            fail: Mutex::new(false),
        };
        // The poll record is missing from the store: the run submits but saves no state,
        // as if it crashed before its commit.
        let run = run_poll(&store, &fake, poll(), 10).await.expect("run");
        assert_eq!(run.emitted, 1);
        assert!(
            store
                .poll_seen("sp", "acme", "poll_1", "a")
                .expect("read")
                .is_none()
        );
        run_poll(&store, &fake, poll(), 20).await.expect("run");
        assert_eq!(store.outbox_from(0, 10).expect("outbox").len(), 1);
    }

    #[test]
    fn change_times_compare_as_numbers_instants_or_text() {
        assert_eq!(later("10", "9"), Ordering::Greater);
        assert_eq!(
            later("2026-01-01T00:00:00Z", "2026-01-01T01:00:00+02:00"),
            Ordering::Greater
        );
        assert_eq!(later("b", "a"), Ordering::Greater);
    }
}
