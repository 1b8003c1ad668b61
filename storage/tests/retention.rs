//! History retention through the public API: what `Store::prune_history` deletes and what it
//! keeps.

use sluice_storage::{
    DlqKind, DlqRecord, DlqState, EventRecord, ExecutionRecord, ExecutionStatus, Ks, ReplayRecord,
    StepRecord, StepStatus, Store, StoreOptions, WriteSet, keys,
};

const CUTOFF: u64 = 10_000;

fn execution(tenant: &str, id: &str, status: ExecutionStatus, created: u64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        space_id: "sp".into(),
        tenant_id: tenant.into(),
        flow_id: "f".into(),
        flow_name: "f".into(),
        flow_version: 1,
        status,
        event_id: "e".into(),
        trigger_kind: "event".into(),
        trigger_json: "{}".into(),
        input_json: String::new(),
        created_at_ms: created,
        started_at_ms: Some(created),
        finished_at_ms: status.is_terminal().then_some(created + 1),
        error_json: None,
        priority: 2,
        attempt: 1,
        replay_of: None,
        idempotency_key: "k".into(),
        hops: 0,
        correlation_id: String::new(),
    }
}

fn step(index: u32) -> StepRecord {
    StepRecord {
        index,
        name: format!("s{index}"),
        status: StepStatus::Completed,
        input_json: "{}".into(),
        output_json: "null".into(),
        error_json: None,
        attempts: Vec::new(),
        started_at_ms: 1,
        finished_at_ms: 2,
    }
}

/// Stores `exec` with two journal records and a loop iteration record.
fn put_with_journal(w: &mut WriteSet, exec: &ExecutionRecord) {
    w.put_execution(exec).expect("execution");
    for i in 0..2 {
        w.put_step("sp", &exec.tenant_id, &exec.id, &step(i))
            .expect("step");
    }
    w.put(
        Ks::Iterations,
        keys::iteration("sp", &exec.tenant_id, &exec.id, 1, 0),
        &step(1),
    )
    .expect("iteration");
}

fn event(seq: u64, received: u64) -> EventRecord {
    EventRecord {
        event_id: format!("evt_{seq}"),
        seq,
        source: "github".into(),
        event_type: "push".into(),
        received_at_ms: received,
        idempotency_key: "k".into(),
        execution_ids: Vec::new(),
        error: None,
    }
}

fn dlq(id: &str, state: DlqState, failed: u64, replayed: Option<u64>) -> DlqRecord {
    DlqRecord {
        id: id.into(),
        kind: DlqKind::Event,
        event_id: format!("evt_{id}"),
        execution_id: None,
        flow_id: None,
        flow_version: None,
        source: "github".into(),
        event_type: String::new(),
        webhook_id: "wh".into(),
        priority: 2,
        idempotency_key: "k".into(),
        headers: Vec::new(),
        body: b"{".to_vec(),
        error: "body is not valid JSON".into(),
        attempts: 1,
        failed_at_ms: failed,
        state,
        replays: replayed
            .map(|at| ReplayRecord {
                at_ms: at,
                attempt: 2,
                execution_id: None,
                outcome: "resolved".into(),
            })
            .into_iter()
            .collect(),
    }
}

fn count(store: &Store, ks: Ks, tenant: &str) -> usize {
    store
        .count_prefix(ks, &keys::tenant_prefix("sp", tenant).build())
        .expect("scan")
}

#[tokio::test]
async fn finished_history_before_the_cutoff_goes_and_everything_unfinished_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut w = WriteSet::new();
    let old_done = execution("a", "old_done", ExecutionStatus::Completed, 1_000);
    let old_failed = execution("a", "old_failed", ExecutionStatus::Failed, 2_000);
    let old_waiting = execution("a", "old_waiting", ExecutionStatus::Waiting, 3_000);
    let mut late_finish = execution("a", "late_finish", ExecutionStatus::Completed, 4_000);
    late_finish.finished_at_ms = Some(CUTOFF + 5);
    let recent = execution("a", "recent", ExecutionStatus::Completed, CUTOFF + 1);
    let other_tenant = execution("b", "old_b", ExecutionStatus::Completed, 1_000);
    for e in [
        &old_done,
        &old_failed,
        &old_waiting,
        &late_finish,
        &recent,
        &other_tenant,
    ] {
        put_with_journal(&mut w, e);
    }
    for (seq, received) in [(1, 100), (2, 200), (3, CUTOFF + 1)] {
        w.put_event("sp", "a", &event(seq, received))
            .expect("event");
    }
    w.put_dlq("sp", "a", &dlq("dlq_1", DlqState::Resolved, 100, Some(200)))
        .expect("dlq");
    w.put_dlq("sp", "a", &dlq("dlq_2", DlqState::Pending, 100, None))
        .expect("dlq");
    w.put_dlq(
        "sp",
        "a",
        &dlq("dlq_3", DlqState::Resolved, 100, Some(CUTOFF + 1)),
    )
    .expect("dlq");
    store.commit(w).await.expect("commit");

    let pruned = store
        .prune_history("sp", "a", CUTOFF, 100)
        .await
        .expect("prune");
    assert_eq!(
        (
            pruned.executions,
            pruned.events,
            pruned.dlq_items,
            pruned.more
        ),
        (2, 2, 1, false)
    );
    let exists =
        |id: &str, tenant: &str| store.execution("sp", tenant, id).expect("read").is_some();
    assert!(!exists("old_done", "a") && !exists("old_failed", "a"));
    assert!(exists("old_waiting", "a"), "unfinished: kept");
    assert!(
        exists("late_finish", "a"),
        "finished after the cutoff: kept"
    );
    assert!(exists("recent", "a") && exists("old_b", "b"));
    // Their journals, iterations, payloads and index entries went with them.
    for id in ["old_done", "old_failed"] {
        let key = keys::execution("sp", "a", id);
        for ks in [Ks::Journal, Ks::Iterations] {
            assert_eq!(store.count_prefix(ks, &key).expect("scan"), 0, "{ks:?}");
        }
        assert!(!store.contains(Ks::ExecutionPayloads, &key).expect("read"));
    }
    assert_eq!(count(&store, Ks::Journal, "a"), 6);
    assert_eq!(count(&store, Ks::ExecutionsByTime, "a"), 3);
    let (page, _) = store.executions_page("sp", "a", None, 10).expect("page");
    let ids: Vec<&str> = page.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["recent", "late_finish", "old_waiting"]);
    assert_eq!(count(&store, Ks::Events, "a"), 1);
    let left: Vec<String> = store
        .dlq("sp", "a")
        .expect("dlq")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, ["dlq_2", "dlq_3"]);
    // The other tenant is untouched; a second pass finds nothing.
    assert_eq!(count(&store, Ks::Journal, "b"), 2);
    let again = store
        .prune_history("sp", "a", CUTOFF, 100)
        .await
        .expect("prune");
    assert_eq!((again.executions, again.events, again.dlq_items), (0, 0, 0));
}

#[tokio::test]
async fn a_large_backlog_is_pruned_in_bounded_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut w = WriteSet::new();
    for i in 0..700u64 {
        put_with_journal(
            &mut w,
            &execution("a", &format!("e{i}"), ExecutionStatus::Completed, 100 + i),
        );
        w.put_event("sp", "a", &event(i + 1, 100 + i))
            .expect("event");
    }
    store.commit(w).await.expect("commit");
    let mut calls = 0;
    let mut total = 0;
    loop {
        let p = store
            .prune_history("sp", "a", CUTOFF, 300)
            .await
            .expect("prune");
        calls += 1;
        total += p.executions;
        assert!(p.executions <= 300 && p.events <= 300);
        if !p.more {
            break;
        }
    }
    assert_eq!((total, calls), (700, 3));
    for ks in [
        Ks::Executions,
        Ks::ExecutionsByTime,
        Ks::ExecutionPayloads,
        Ks::Journal,
        Ks::Iterations,
        Ks::Events,
    ] {
        assert_eq!(count(&store, ks, "a"), 0, "{ks:?}");
    }
}
