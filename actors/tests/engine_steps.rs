//! The engine against a real store and a scripted connector: every step type, joins, retries,
//! timeouts, cancellation and parking on waits. No sleeps longer than a fraction of a second.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_actors::connector::{ActionCall, ActionError, ActionInvoker};
use sluice_actors::engine::{Engine, RunOutcome};
use sluice_actors::flow::{FlowSpec, Plan, plan};
use sluice_storage::{ExecutionRecord, ExecutionStatus, StepRecord, Store, StoreOptions, WriteSet};

/// Answers by URL from a script (then 200 `{"ok": true}`), records calls, tracks concurrency.
#[derive(Default)]
struct Scripted {
    script: Mutex<HashMap<String, VecDeque<Result<Value, ActionError>>>>,
    calls: Mutex<Vec<ActionCall>>,
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn unavailable() -> ActionError {
    ActionError {
        message: "the server answered 503".into(),
        retryable: true,
        retry_after: None,
        status: Some(503),
        debug: Some(json!({"error": "busy"})),
        auth: false,
    }
}

fn permanent() -> ActionError {
    ActionError {
        message: "the server answered 400".into(),
        retryable: false,
        retry_after: None,
        status: Some(400),
        debug: Some(json!({"error": "bad"})),
        auth: false,
    }
}

#[async_trait::async_trait]
impl ActionInvoker for Scripted {
    async fn invoke(&self, call: ActionCall) -> Result<Value, ActionError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let url = call.input["url"].as_str().unwrap_or_default().to_owned();
        self.calls.lock().expect("lock").push(call.clone());
        let next = self
            .script
            .lock()
            .expect("lock")
            .get_mut(&url)
            .and_then(VecDeque::pop_front);
        next.unwrap_or_else(|| {
            Ok(json!({"status": 200, "body": {"ok": true, "echo": call.input.get("body")}}))
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    engine: Engine,
    invoker: Arc<Scripted>,
}

fn fixture(invoker: Scripted) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let invoker = Arc::new(invoker);
    let engine = Engine::new(store.clone(), invoker.clone());
    Fixture {
        _dir: dir,
        store,
        engine,
        invoker,
    }
}

fn flow(steps: Value, extra: Value) -> Plan {
    let mut doc = json!({
        "name": "f",
        "trigger": {"type": "event", "source": "shop", "event": "order.created"},
        "steps": steps,
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let spec: FlowSpec = serde_json::from_value(doc).expect("spec");
    plan(spec).expect("valid flow")
}

fn call(name: &str, url: &str, extra: Value) -> Value {
    let mut s = json!({"name": name, "type": "action", "connector": "http", "action": "request",
                       "input": {"method": "POST", "url": url}});
    if let (Some(o), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    s
}

impl Fixture {
    async fn exec(&self, id: &str, trigger: Value) -> ExecutionRecord {
        let exec = ExecutionRecord {
            id: id.into(),
            space_id: "sp".into(),
            tenant_id: "t".into(),
            flow_id: "flw".into(),
            flow_name: "f".into(),
            flow_version: 1,
            status: ExecutionStatus::Pending,
            event_id: "evt".into(),
            trigger_kind: "event".into(),
            trigger_json: trigger.to_string(),
            input_json: trigger.to_string(),
            created_at_ms: 1,
            started_at_ms: None,
            finished_at_ms: None,
            error_json: None,
            priority: 2,
            attempt: 1,
            replay_of: None,
            idempotency_key: "k".into(),
            hops: 0,
            correlation_id: String::new(),
        };
        let mut w = WriteSet::new();
        w.put_execution(&exec).expect("put");
        self.store.commit(w).await.expect("commit");
        exec
    }

    async fn run(&self, exec: ExecutionRecord, plan: &Plan) -> RunOutcome {
        self.engine.run(exec, plan).await.expect("run")
    }

    fn steps(&self, id: &str) -> HashMap<String, StepRecord> {
        self.store
            .journal("sp", "t", id)
            .expect("journal")
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect()
    }

    fn status(&self, id: &str) -> ExecutionStatus {
        self.store
            .execution("sp", "t", id)
            .expect("read")
            .expect("exists")
            .status
    }
}

fn output(r: &StepRecord) -> Value {
    serde_json::from_str(&r.output_json).expect("json")
}

#[tokio::test]
async fn gate_takes_one_branch_skips_the_other_and_the_join_runs() {
    let f = fixture(Scripted::default());
    let p = flow(
        json!([
            {"name": "route", "type": "gate",
             "cases": [{"when": "trigger.total_price > 100", "steps": ["big_order"]}],
             "default": ["small_order"]},
            call("big_order", "http://big", json!({"dependsOn": ["route"]})),
            call("small_order", "http://small", json!({"dependsOn": ["route"]})),
            call("after_small", "http://after", json!({"dependsOn": ["small_order"]})),
            {"name": "join", "type": "notification", "message": "done {{trigger.total_price}}",
             "dependsOn": ["big_order", "small_order"]},
        ]),
        json!({}),
    );
    let e = f.exec("e1", json!({"total_price": 150})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e1"), ExecutionStatus::Completed);
    let s = f.steps("e1");
    assert_eq!(s["route"].status.as_str(), "completed");
    assert_eq!(output(&s["route"])["branch"], 0);
    assert_eq!(s["big_order"].status.as_str(), "completed");
    assert_eq!(s["small_order"].status.as_str(), "skipped");
    assert_eq!(
        s["after_small"].status.as_str(),
        "skipped",
        "a branch's chain is skipped"
    );
    assert_eq!(
        s["join"].status.as_str(),
        "completed",
        "the join after a gate runs"
    );
    assert_eq!(output(&s["join"])["message"], "done 150");
    let urls: Vec<String> = f
        .invoker
        .calls
        .lock()
        .expect("lock")
        .iter()
        .map(|c| c.input["url"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(urls, ["http://big"]);

    let e = f.exec("e2", json!({"total_price": 5})).await;
    f.run(e, &p).await;
    let s = f.steps("e2");
    assert_eq!(s["big_order"].status.as_str(), "skipped");
    assert_eq!(s["small_order"].status.as_str(), "completed");
    assert_eq!(s["after_small"].status.as_str(), "completed");
}

#[tokio::test]
async fn loop_over_an_empty_array_gives_an_empty_result() {
    let f = fixture(Scripted::default());
    let p = flow(
        json!([{"name": "each", "type": "loop", "over": "{{trigger.items}}",
                "steps": [call("push", "http://x", json!({}))]}]),
        json!({}),
    );
    let e = f.exec("e", json!({"items": []})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    assert_eq!(output(&f.steps("e")["each"]), json!([]));
    assert!(f.invoker.calls.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn loop_runs_100_items_four_at_a_time_and_keeps_item_order() {
    let f = fixture(Scripted {
        delay: Duration::from_millis(5),
        ..Scripted::default()
    });
    let p = flow(
        json!([{"name": "each_line", "type": "loop", "over": "{{trigger.line_items}}", "concurrency": 4,
                "steps": [call("push", "http://sink", json!({"input": {"method": "POST", "url": "http://sink",
                          "body": {"sku": "{{item.sku}}", "n": "{{index}}"}}}))]}]),
        json!({}),
    );
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"sku": format!("sku-{i}")}))
        .collect();
    let e = f.exec("e", json!({"line_items": items})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    let out = output(&f.steps("e")["each_line"]);
    let out = out.as_array().expect("array");
    assert_eq!(out.len(), 100);
    for (i, entry) in out.iter().enumerate() {
        assert_eq!(entry["push"]["body"]["echo"]["sku"], format!("sku-{i}"));
        assert_eq!(entry["push"]["body"]["echo"]["n"], i);
    }
    assert_eq!(f.invoker.max_in_flight.load(Ordering::SeqCst), 4);
    let calls = f.invoker.calls.lock().expect("lock");
    let keys: std::collections::HashSet<&str> =
        calls.iter().map(|c| c.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 100, "one idempotency key per iteration");
}

#[tokio::test]
async fn retries_show_every_attempt_and_its_delay() {
    let f = fixture(Scripted::default());
    f.invoker.script.lock().expect("lock").insert(
        "http://flaky".into(),
        VecDeque::from([Err(unavailable()), Err(unavailable())]),
    );
    let p = flow(
        json!([
            call("first", "http://one", json!({})),
            call(
                "second",
                "http://flaky",
                json!({"retry": {"maxAttempts": 3, "backoff": "exponential",
                                                   "initialDelayMs": 40, "maxDelayMs": 1000}})
            ),
            call("third", "http://three", json!({})),
        ]),
        json!({}),
    );
    let e = f.exec("e", json!({})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    let s = f.steps("e");
    let a = &s["second"].attempts;
    assert_eq!(a.len(), 3);
    assert!(
        a[0].error_json
            .as_deref()
            .is_some_and(|e| e.contains("503"))
    );
    assert!(a[1].error_json.is_some() && a[2].error_json.is_none());
    let gap1 = a[1].started_at_ms - a[0].finished_at_ms;
    let gap2 = a[2].started_at_ms - a[1].finished_at_ms;
    assert!(
        gap1 >= 40 && gap2 >= 80,
        "exponential delays: {gap1} then {gap2}"
    );
    assert_eq!(s["third"].status.as_str(), "completed");
}

#[tokio::test]
async fn on_error_continue_completes_and_keeps_the_error() {
    let f = fixture(Scripted::default());
    f.invoker
        .script
        .lock()
        .expect("lock")
        .insert("http://bad".into(), VecDeque::from([Err(permanent())]));
    let p = flow(
        json!([
            call(
                "bad",
                "http://bad",
                json!({"onError": "continue", "retry": {"maxAttempts": 3}})
            ),
            call("next", "http://ok", json!({})),
        ]),
        json!({}),
    );
    let e = f.exec("e", json!({})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    let s = f.steps("e");
    assert_eq!(s["bad"].status.as_str(), "failed");
    assert_eq!(s["bad"].attempts.len(), 1, "a 400 is not retried");
    assert!(
        s["bad"]
            .error_json
            .as_deref()
            .is_some_and(|e| e.contains("DATASOURCE_CONNECTION_ERROR"))
    );
    assert_eq!(s["next"].status.as_str(), "completed");
}

#[tokio::test]
async fn independent_steps_run_concurrently() {
    let f = fixture(Scripted {
        delay: Duration::from_millis(100),
        ..Scripted::default()
    });
    let p = flow(
        json!([
            call("a", "http://a", json!({"dependsOn": []})),
            call("b", "http://b", json!({"dependsOn": []})),
            call("c", "http://c", json!({"dependsOn": []})),
            call("d", "http://d", json!({"dependsOn": ["a", "b", "c"]})),
        ]),
        json!({}),
    );
    let e = f.exec("e", json!({})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    assert_eq!(f.invoker.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_long_wait_parks_the_execution_with_a_durable_timer_and_resumes_when_due() {
    let f = fixture(Scripted::default());
    let p = flow(
        json!([call("before", "http://a", json!({})),
               {"name": "pause", "type": "wait", "durationMs": 700},
               call("after", "http://b", json!({}))]),
        json!({}),
    );
    let e = f.exec("e", json!({})).await;
    let outcome = f.run(e.clone(), &p).await;
    assert!(matches!(outcome, RunOutcome::Parked { .. }), "{outcome:?}");
    assert_eq!(f.status("e"), ExecutionStatus::Waiting);
    let timer = f.store.next_timer().expect("read").expect("a timer");
    assert_eq!(timer.execution_id, "e");
    assert_eq!(f.store.waits("sp", "t", "e").expect("waits").len(), 1);
    // Too early: polling again parks again and runs nothing twice.
    let again = f.run(e.clone(), &p).await;
    assert!(matches!(again, RunOutcome::Parked { .. }));
    tokio::time::sleep(Duration::from_millis(750)).await;
    let done = f.run(e, &p).await;
    assert!(matches!(done, RunOutcome::Finished(_)));
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    let s = f.steps("e");
    assert!(
        output(&s["pause"])["waitedMs"]
            .as_u64()
            .is_some_and(|w| w >= 700)
    );
    assert_eq!(
        f.invoker.calls.lock().expect("lock").len(),
        2,
        "before ran once"
    );
    assert!(f.store.waits("sp", "t", "e").expect("waits").is_empty());
}

#[tokio::test]
async fn wait_until_checks_the_condition_and_times_out() {
    let f = fixture(Scripted::default());
    let p = flow(
        json!([{"name": "until_late", "type": "wait", "until": "now >= trigger.at",
                "checkEveryMs": 50, "timeoutMs": 2000},
               {"name": "never", "type": "wait", "until": "trigger.paid == true",
                "checkEveryMs": 50, "timeoutMs": 200, "dependsOn": [], "onError": "continue"}]),
        json!({}),
    );
    let at = sluice_actors::ids::now_ms() + 150;
    let e = f.exec("e", json!({"at": at, "paid": false})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::Completed);
    let s = f.steps("e");
    assert_eq!(s["until_late"].status.as_str(), "completed");
    assert!(
        output(&s["until_late"])["checks"]
            .as_u64()
            .is_some_and(|c| c >= 2)
    );
    assert_eq!(s["never"].status.as_str(), "failed");
    assert!(
        s["never"]
            .error_json
            .as_deref()
            .is_some_and(|e| e.contains("TIMED_OUT"))
    );
}

#[tokio::test]
async fn an_execution_over_its_limit_is_timed_out_and_the_rest_skipped() {
    let f = fixture(Scripted {
        delay: Duration::from_millis(400),
        ..Scripted::default()
    });
    let p = flow(
        json!([
            call("slow", "http://slow", json!({})),
            call("next", "http://n", json!({}))
        ]),
        json!({"timeoutMs": 100}),
    );
    let e = f.exec("e", json!({})).await;
    f.run(e, &p).await;
    assert_eq!(f.status("e"), ExecutionStatus::TimedOut);
    let s = f.steps("e");
    assert_eq!(
        s["slow"].status.as_str(),
        "skipped",
        "the in-flight call was abandoned"
    );
    assert_eq!(s["next"].status.as_str(), "skipped");
    let exec = f
        .store
        .execution("sp", "t", "e")
        .expect("read")
        .expect("exists");
    assert!(
        exec.error_json
            .as_deref()
            .is_some_and(|e| e.contains("TIMED_OUT"))
    );
}

#[tokio::test]
async fn cancel_stops_a_running_execution_and_a_waiting_one() {
    let f = fixture(Scripted {
        delay: Duration::from_millis(2000),
        ..Scripted::default()
    });
    let p = flow(
        json!([
            call("slow", "http://slow", json!({})),
            call("next", "http://n", json!({}))
        ]),
        json!({}),
    );
    let e = f.exec("run", json!({})).await;
    let engine = f.engine.clone();
    let p2 = p.clone();
    let task = tokio::spawn(async move { engine.run(e, &p2).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let c = f
        .engine
        .cancel("sp", "t", "run", Some(&p))
        .await
        .expect("cancel")
        .expect("exists");
    assert_eq!(c.status, ExecutionStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "did not wait for the call"
    );
    task.await.expect("join").expect("run");
    let s = f.steps("run");
    assert_eq!(s["slow"].status.as_str(), "skipped");
    assert_eq!(s["next"].status.as_str(), "skipped");

    let waiting = flow(
        json!([{"name": "sign_off", "type": "approval", "timeoutMs": 3600000},
                              call("after", "http://a", json!({}))]),
        json!({}),
    );
    let e = f.exec("wait", json!({})).await;
    f.run(e, &waiting).await;
    assert_eq!(f.status("wait"), ExecutionStatus::Waiting);
    let c = f
        .engine
        .cancel("sp", "t", "wait", Some(&waiting))
        .await
        .expect("cancel")
        .expect("exists");
    assert_eq!(c.status, ExecutionStatus::Cancelled);
    assert_eq!(f.steps("wait")["sign_off"].status.as_str(), "skipped");
    assert!(f.store.waits("sp", "t", "wait").expect("waits").is_empty());
}

#[tokio::test]
async fn approval_waits_for_a_decision_and_records_it() {
    let f = fixture(Scripted::default());
    let p = flow(
        json!([{"name": "sign_off", "type": "approval", "timeoutMs": 3600000},
               call("after", "http://a", json!({}))]),
        json!({}),
    );
    for (id, approved) in [("yes", true), ("no", false)] {
        let e = f.exec(id, json!({})).await;
        f.run(e.clone(), &p).await;
        assert_eq!(f.status(id), ExecutionStatus::Waiting);
        let mut w = f.store.waits("sp", "t", id).expect("waits").remove(0);
        w.resolution =
            Some(json!({"approved": approved, "approver": "admin", "comment": "ok"}).to_string());
        let mut ws = WriteSet::new();
        ws.put_wait("sp", "t", id, &w).expect("put");
        f.store.commit(ws).await.expect("commit");
        f.run(e, &p).await;
        let s = f.steps(id);
        if approved {
            assert_eq!(f.status(id), ExecutionStatus::Completed);
            assert_eq!(output(&s["sign_off"])["approver"], "admin");
            assert_eq!(s["after"].status.as_str(), "completed");
        } else {
            assert_eq!(f.status(id), ExecutionStatus::Failed);
            assert!(
                s["sign_off"]
                    .error_json
                    .as_deref()
                    .is_some_and(|e| e.contains("REJECTED"))
            );
            assert_eq!(s["after"].status.as_str(), "skipped");
        }
    }
}

/// A loop resumed after a crash, with a failed iteration journaled under `halt`: the loop
/// has failed already, so no iteration starts, not even those that had not run yet.
#[tokio::test]
async fn a_resumed_loop_with_a_failed_iteration_under_halt_starts_nothing() {
    let f = fixture(Scripted::default());
    let p = flow(
        json!([{"name": "each", "type": "loop", "over": "{{trigger.items}}", "concurrency": 2,
                "steps": [call("post", "{{item}}", json!({}))]}]),
        json!({}),
    );
    let e = f
        .exec("e1", json!({"items": ["http://a", "http://b", "http://c"]}))
        .await;
    // As the crashed run left it: iteration 0 failed and was journaled, 1 and 2 were not.
    let mut w = WriteSet::new();
    w.put_iteration(
        "sp",
        "t",
        "e1",
        0,
        &sluice_storage::IterationRecord {
            iteration: 0,
            ok: false,
            value_json: json!({"code": "DATASOURCE_CONNECTION_ERROR", "message": "400"})
                .to_string(),
        },
    )
    .expect("iteration");
    f.store.commit(w).await.expect("commit");
    f.run(e, &p).await;
    assert_eq!(f.status("e1"), ExecutionStatus::Failed);
    assert!(
        f.invoker.calls.lock().expect("lock").is_empty(),
        "no iteration ran"
    );
}
