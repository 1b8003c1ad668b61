//! Behaviour of the store through its public API: group commit, dedup, sequence numbers,
//! paging, and reopening.

use sluice_storage::{
    ExecutionRecord, ExecutionStatus, IngestOutcome, Ks, OutboxEntry, Store, StoreOptions,
    TenantRecord, WriteSet, keys,
};

fn entry(tenant: &str, event_id: &str) -> OutboxEntry {
    OutboxEntry {
        seq: 0,
        event_id: event_id.into(),
        space_id: "sp".into(),
        tenant_id: tenant.into(),
        webhook_id: "wh".into(),
        connector: "github".into(),
        headers: vec![("x-github-event".into(), "push".into())],
        body: b"{}".to_vec(),
        body_in_blob: false,
        received_at_ms: 1,
        priority: 2,
        idempotency_key: "00".into(),
        attempt: 1,
        replay_of: None,
    }
}

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_land_and_sequences_are_dense() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut tasks = Vec::new();
    for i in 0..64u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.ingest(key(i), entry("t", &format!("evt{i}"))).await
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        match t.await.expect("join").expect("ingest") {
            IngestOutcome::Accepted { seq, .. } => seqs.push(seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
    let stored = store.outbox_from(0, 1000).expect("scan");
    assert_eq!(stored.len(), 64);
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_duplicates_produce_one_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.ingest(key(7), entry("t", &format!("evt{i}"))).await
        }));
    }
    let mut accepted = Vec::new();
    let mut duplicates = Vec::new();
    for t in tasks {
        match t.await.expect("join").expect("ingest") {
            IngestOutcome::Accepted { event_id, .. } => accepted.push(event_id),
            IngestOutcome::Duplicate { event_id } => duplicates.push(event_id),
        }
    }
    assert_eq!(accepted.len(), 1);
    assert_eq!(duplicates.len(), 49);
    assert!(duplicates.iter().all(|d| d == &accepted[0]));
    // The same key in another tenant is a different event.
    let other = store
        .ingest(key(7), entry("u", "evt-u"))
        .await
        .expect("ingest");
    assert!(matches!(other, IngestOutcome::Accepted { .. }));
}

/// Dropping the last handle closes the database before it returns: the committer thread
/// (which holds the database too) has exited, so the directory's lock is free at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_opens_again_as_soon_as_the_last_handle_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..20u8 {
        let store = Store::open(dir.path(), StoreOptions::default())
            .unwrap_or_else(|e| panic!("open in round {round}: {e:?}"));
        for i in 0..5 {
            store
                .ingest(key(round * 10 + i), entry("t", &format!("e{round}-{i}")))
                .await
                .expect("ingest");
        }
        let clone = store.clone();
        drop(store);
        drop(clone);
        // fjall's open retries a held lock for 200 ms, which would hide a late close: take
        // the lock file's lock directly, at once.
        let lock = std::fs::File::open(dir.path().join("lock")).expect("lock file");
        lock.try_lock()
            .unwrap_or_else(|e| panic!("round {round}: the database is still open: {e}"));
        drop(lock);
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("last open");
    assert_eq!(store.outbox_from(0, 200).expect("scan").len(), 100);
}

#[tokio::test]
async fn sequence_numbers_are_not_reused_after_the_outbox_drains_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
        for i in 0..3 {
            store.ingest(key(i), entry("t", "e")).await.expect("ingest");
        }
        let mut w = WriteSet::new();
        for entry in store.outbox_from(0, 10).expect("scan") {
            w.delete_outbox(&entry);
        }
        store.commit(w).await.expect("commit");
        assert!(store.outbox_from(0, 10).expect("scan").is_empty());
    }
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    match store
        .ingest(key(9), entry("t", "e9"))
        .await
        .expect("ingest")
    {
        IngestOutcome::Accepted { seq, .. } => assert_eq!(seq, 4),
        other => panic!("unexpected {other:?}"),
    }
    // Dedup records survive the reopen too.
    let again = store.ingest(key(1), entry("t", "x")).await.expect("ingest");
    assert!(matches!(again, IngestOutcome::Duplicate { .. }));
}

fn execution(tenant: &str, id: &str, created: u64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        space_id: "sp".into(),
        tenant_id: tenant.into(),
        flow_id: "f".into(),
        flow_name: "f".into(),
        flow_version: 1,
        status: ExecutionStatus::Pending,
        event_id: "e".into(),
        trigger_kind: "event".into(),
        trigger_json: "{}".into(),
        input_json: "{}".into(),
        created_at_ms: created,
        started_at_ms: None,
        finished_at_ms: None,
        error_json: None,
        priority: 2,
        attempt: 1,
        replay_of: None,
        idempotency_key: "k".into(),
        hops: 0,
        correlation_id: String::new(),
    }
}

#[tokio::test]
async fn executions_page_newest_first_with_cursor_and_tenant_isolation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut w = WriteSet::new();
    for i in 0..5u64 {
        w.put_execution(&execution("a", &format!("x{i}"), 100 + i))
            .expect("put");
    }
    w.put_execution(&execution("b", "other", 999)).expect("put");
    w.put_tenant(&TenantRecord {
        space_id: "sp".into(),
        id: "a".into(),
        created_at_ms: 0,
    })
    .expect("put");
    store.commit(w).await.expect("commit");

    let (page, cursor) = store.executions_page("sp", "a", None, 2).expect("page");
    let ids: Vec<_> = page.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["x4", "x3"]);
    let cursor = cursor.expect("more pages");
    let (page, cursor) = store
        .executions_page("sp", "a", Some(&cursor), 2)
        .expect("page");
    let ids: Vec<_> = page.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["x2", "x1"]);
    let (page, cursor) = store
        .executions_page("sp", "a", cursor.as_deref(), 2)
        .expect("page");
    assert_eq!(page.len(), 1);
    assert!(cursor.is_none());
    assert!(store.execution("sp", "b", "x1").expect("get").is_none());
    assert_eq!(store.unfinished_executions().expect("scan").len(), 6);
}

#[tokio::test]
async fn an_execution_payload_is_written_once_and_joined_on_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut created = execution("a", "x", 100);
    created.trigger_json = r#"{"order":12345678901234567890}"#.into();
    created.input_json = r#"{"n":1}"#.into();
    let mut w = WriteSet::new();
    w.put_execution(&created).expect("put");
    store.commit(w).await.expect("commit");

    // A status change writes the state alone: a payload changed in memory is not rewritten.
    let mut changed = created.clone();
    changed.status = ExecutionStatus::Completed;
    changed.finished_at_ms = Some(200);
    changed.trigger_json = "{}".into();
    let mut w = WriteSet::new();
    w.put_execution_state(&changed).expect("put");
    store.commit(w).await.expect("commit");

    let read = store
        .execution("sp", "a", "x")
        .expect("get")
        .expect("found");
    assert_eq!(read.status, ExecutionStatus::Completed);
    assert_eq!(read.finished_at_ms, Some(200));
    assert_eq!(read.trigger_json, created.trigger_json);
    assert_eq!(read.input_json(), r#"{"n":1}"#);
    // The state record itself carries no payload; pages are summaries read from it.
    let state: ExecutionRecord = store
        .get(Ks::Executions, &keys::execution("sp", "a", "x"))
        .expect("get")
        .expect("found");
    assert!(state.trigger_json.is_empty() && state.input_json.is_empty());
    let (page, _) = store.executions_page("sp", "a", None, 10).expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].status, ExecutionStatus::Completed);
    // Terminal: out of the open index.
    assert!(store.unfinished_executions().expect("scan").is_empty());

    // And the same after a reopen.
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    let read = store
        .execution("sp", "a", "x")
        .expect("get")
        .expect("found");
    assert_eq!(read.trigger_json, created.trigger_json);
    assert_eq!(read.status, ExecutionStatus::Completed);
}

#[tokio::test]
async fn pruning_forgets_only_expired_dedup_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut old = entry("t", "old");
    old.received_at_ms = 1_000;
    let mut fresh = entry("t", "fresh");
    fresh.received_at_ms = 5_000;
    store.ingest(key(1), old).await.expect("ingest");
    store.ingest(key(2), fresh).await.expect("ingest");
    assert_eq!(store.prune_dedup(2_000, 100).await.expect("prune"), 1);
    assert_eq!(store.prune_dedup(2_000, 100).await.expect("prune"), 0);
    let again_old = store
        .ingest(key(1), entry("t", "old2"))
        .await
        .expect("ingest");
    assert!(
        matches!(again_old, IngestOutcome::Accepted { .. }),
        "expired key is forgotten"
    );
    let again_fresh = store
        .ingest(key(2), entry("t", "fresh2"))
        .await
        .expect("ingest");
    assert!(
        matches!(again_fresh, IngestOutcome::Duplicate { .. }),
        "live key is kept"
    );
}

#[tokio::test]
async fn enqueue_skips_dedup_for_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    store
        .ingest(key(3), entry("t", "first"))
        .await
        .expect("ingest");
    let replay = store.enqueue(entry("t", "replay")).await.expect("enqueue");
    assert!(
        matches!(replay, IngestOutcome::Accepted { seq: 2, .. }),
        "{replay:?}"
    );
}

#[tokio::test]
async fn large_bodies_are_claim_checked_and_deleted_with_their_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        claim_check_bytes: 1024,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).expect("open");
    let mut big = entry("t", "big");
    big.body = vec![7u8; 4096];
    store.ingest(key(1), big).await.expect("ingest");
    store
        .ingest(key(2), entry("t", "small"))
        .await
        .expect("ingest");
    let entries = store.outbox_from(0, 10).expect("scan");
    assert!(entries[0].body_in_blob && entries[0].body.is_empty());
    assert!(!entries[1].body_in_blob);
    assert_eq!(
        store.entry_body(&entries[0]).expect("body"),
        vec![7u8; 4096]
    );
    assert_eq!(store.entry_body(&entries[1]).expect("body"), b"{}".to_vec());
    let mut w = WriteSet::new();
    w.delete_outbox(&entries[0]);
    store.commit(w).await.expect("commit");
    assert!(
        store.entry_body(&entries[0]).is_err(),
        "the blob went with its entry"
    );
    // Point reads by sequence see the same: the routed entry is gone, the other is there.
    assert!(store.outbox_entry(entries[0].seq).expect("read").is_none());
    let kept = store
        .outbox_entry(entries[1].seq)
        .expect("read")
        .expect("still in the outbox");
    assert_eq!(kept.event_id, entries[1].event_id);
}

fn dlq_item(id: &str, state: sluice_storage::DlqState) -> sluice_storage::DlqRecord {
    sluice_storage::DlqRecord {
        id: id.into(),
        kind: sluice_storage::DlqKind::Event,
        event_id: format!("evt_{id}"),
        execution_id: None,
        flow_id: None,
        flow_version: None,
        source: "github".into(),
        event_type: String::new(),
        webhook_id: "wh_1".into(),
        priority: 2,
        idempotency_key: "k".into(),
        headers: Vec::new(),
        body: vec![b'x'; 4096],
        error: "body is not valid JSON".into(),
        attempts: 1,
        failed_at_ms: 1,
        state,
        replays: Vec::new(),
    }
}

#[tokio::test]
async fn open_dlq_items_are_counted_across_tenants_without_the_resolved_ones() {
    use sluice_storage::DlqState;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut w = WriteSet::new();
    for (tenant, id, state) in [
        ("a", "dlq_1", DlqState::Pending),
        ("a", "dlq_2", DlqState::Resolved),
        ("b", "dlq_3", DlqState::Replaying),
        ("b", "dlq_4", DlqState::Pending),
    ] {
        w.put_dlq("sp", tenant, &dlq_item(id, state))
            .expect("dlq item");
    }
    store.commit(w).await.expect("commit");
    assert_eq!(store.dlq_open_count().expect("count"), 3);
}
