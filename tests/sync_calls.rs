//! A flow that calls another flow through the execute API, synchronously.
//!
//! The calling execution holds one of its tenant's concurrency slots while it waits, so the
//! execution it starts runs outside the slots: queued behind its callers it would get none
//! while every slot is held by a caller waiting for it. Before, such calls were bounded to
//! half the tenant's slots and the rest refused with 429: with `--tenant-concurrency 4`, 5 of
//! 20 simultaneous callers failed. Only this server's own executions get that (a copied
//! `CDN-Loop` header does not), and a repeated call with the same `Idempotency-Key` (a
//! caller's step run again after a crash) finds the execution the first one started.
mod common;

use std::time::{Duration, Instant};

use common::{Server, Sink, free_port};
use serde_json::{Value, json};

/// A manual flow named `name` whose step POSTs `{"n": input.n}` to the sink.
fn posting(name: &str, sink: &Sink) -> Value {
    json!({"name": name, "trigger": {"type": "manual"},
           "steps": [{"name": "post", "type": "action", "connector": "http",
                      "action": "request",
                      "input": {"method": "POST", "url": sink.url,
                                "body": {"n": "{{input.n}}"}}}],
           "response": {"status": 200, "body": {"n": "{{input.n}}"}}})
}

/// A manual flow named `name` with one step calling the flow `callee` synchronously.
fn caller(server: &Server, name: &str, callee: &str) -> Value {
    json!({"name": name, "trigger": {"type": "manual"},
           "steps": [server.call_step("call", &format!("/api/v1/{callee}"),
                                      json!({"input": {"n": "{{input.n}}"}}))],
           "response": {"status": 200, "body": {"answer": "{{steps.call.output.body}}"}}})
}

/// Awaits execute calls spawned at once and asserts each answered 200.
async fn assert_all_ok(
    calls: impl IntoIterator<Item = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>>,
) {
    for call in calls {
        let answer = call.await.expect("task").expect("execute");
        assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);
    }
}

/// Runs `name` through the execute API `n` times at once; the answers' statuses and bodies.
async fn execute_many(server: &Server, name: &str, n: usize) -> Vec<(u16, Value)> {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(
                server
                    .api(reqwest::Method::POST, &format!("/{name}"))
                    .json(&json!({"input": {"n": i}}))
                    .send(),
            )
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for call in calls {
        let answer = call.await.expect("task").expect("execute");
        let status = answer.status().as_u16();
        answers.push((status, answer.json().await.unwrap_or(Value::Null)));
    }
    answers
}

/// Twelve callers at once in a tenant of two slots, each calling a flow whose step takes
/// 300 ms: the callers take both slots and wait; every callee still runs, and every call
/// succeeds on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_its_answer_while_callers_hold_every_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(300)).await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "2"]);
    server.live_flow("default", &posting("slow", &sink)).await;
    server
        .live_flow("default", &caller(&server, "front", "slow"))
        .await;
    let started = Instant::now();
    let answers = execute_many(&server, "front", 12).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "caller {i}: {body}");
        assert_eq!(body["answer"]["n"], json!(i), "caller {i}: {body}");
    }
    assert_eq!(
        sink.received().len(),
        12,
        "one callee call each, no retries"
    );
    assert_eq!(
        server.metric_sum("sluice_connector_throttled_total").await,
        0.0,
        "no call was refused for now and waited out"
    );
    // Six rounds of two callers, each waiting ~300 ms for its callee.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// A called flow that parks on a 1 s wait, in a tenant of one slot held by its caller: the
/// wait's timer resumes it outside the slots too, while the caller still waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_called_flow_that_parks_resumes_while_its_caller_holds_the_only_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "1"]);
    server
        .live_flow(
            "default",
            &json!({"name": "pausing", "trigger": {"type": "manual"},
                    "steps": [{"name": "pause", "type": "wait", "durationMs": 1000}],
                    "response": {"status": 200, "body": {"n": "{{input.n}}"}}}),
        )
        .await;
    server
        .live_flow("default", &caller(&server, "front", "pausing"))
        .await;
    let started = Instant::now();
    let answers = execute_many(&server, "front", 2).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "caller {i}: {body}");
        assert_eq!(body["answer"]["n"], json!(i), "caller {i}: {body}");
    }
    // One caller at a time, each ~1 s; a stalled callee would answer 408 after 25 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let all = server.executions("default").await;
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all.iter().all(|e| e["status"] == "completed"), "{all:#?}");
}

/// Two callers wait for one callee (they send one `Idempotency-Key`) in a tenant of two
/// slots. The first gives up after 1 s and then holds its slot in a slow step; the callee,
/// parked on a 2 s wait, must still resume outside the slots, because the second caller
/// still waits in the other slot. Before, the first caller's leaving ended the callee's
/// slot-free runs, and the second caller got 408 after 25 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_stays_slot_free_while_any_of_its_callers_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = Sink::start_with_delay(Duration::from_secs(60)).await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "2"]);
    server
        .live_flow(
            "default",
            &json!({"name": "pausing", "trigger": {"type": "manual"},
                    "steps": [{"name": "pause", "type": "wait", "durationMs": 2000}],
                    "response": {"status": 200, "body": {"n": "{{input.n}}"}}}),
        )
        .await;
    let shared_call = |timeout_ms: u64| {
        let mut step = server.call_step("call", "/api/v1/pausing", json!({"input": {"n": 1}}));
        step["input"]["headers"]["idempotency-key"] = json!("shared");
        step["timeoutMs"] = json!(timeout_ms);
        step["onError"] = json!("continue");
        step
    };
    server
        .live_flow(
            "default",
            &json!({"name": "impatient", "trigger": {"type": "manual"},
                    "steps": [shared_call(1000),
                              {"name": "slow", "type": "action", "connector": "http",
                               "action": "request",
                               "input": {"method": "POST", "url": slow.url, "body": {}}}]}),
        )
        .await;
    server
        .live_flow(
            "default",
            &json!({"name": "patient", "trigger": {"type": "manual"},
                    "steps": [shared_call(30_000)],
                    "response": {"status": 200,
                                 "body": {"answer": "{{steps.call.output.body}}"}}}),
        )
        .await;
    let impatient = tokio::spawn(
        server
            .api(reqwest::Method::POST, "/impatient")
            .json(&json!({"input": {}}))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let answer = server
        .api(reqwest::Method::POST, "/patient")
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("execute");
    let elapsed = started.elapsed();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answer"]["n"], 1, "{body}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let pausing: Vec<_> = server
        .executions("default")
        .await
        .into_iter()
        .filter(|e| e["flowName"] == "pausing")
        .collect();
    impatient.abort();
    assert_eq!(
        pausing.len(),
        1,
        "one callee for the shared key: {pausing:#?}"
    );
    assert_eq!(pausing[0]["status"], "completed", "{pausing:#?}");
}

/// A request from outside that copies Sluice's `CDN-Loop` header is not a call from one of
/// this server's executions: it queues for a slot like any other, so three of them in a
/// tenant of one slot reach the sink one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_cdn_loop_header_does_not_bypass_the_tenant_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(400)).await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "1"]);
    server.live_flow("default", &posting("slow", &sink)).await;
    let calls: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(
                server
                    .api(reqwest::Method::POST, "/slow")
                    .header("cdn-loop", format!("sluice; hops=1; correlation=forged{i}"))
                    .header("x-sluice-call", "0123456789abcdef0123456789abcdef")
                    .json(&json!({"input": {"n": i}}))
                    .send(),
            )
        })
        .collect();
    assert_all_ok(calls).await;
    assert_eq!(sink.received().len(), 3);
    assert_eq!(sink.peak(), 1, "the tenant's one slot was bypassed");
}

/// A called execution of a flow limited to one execution at a time runs outside the slots;
/// when it ends, the next execution of that flow held back by the limit needs a slot of its
/// own, not the one the called execution never had. Two slots: the caller holds one and
/// `other` the second, so the held-back `limited` run waits for `other` to end instead of
/// making three at once at the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_limit_does_not_hand_a_slot_free_place_to_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(1500)).await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "2"]);
    let mut limited = posting("limited", &sink);
    limited["concurrency"] = json!(1);
    server.live_flow("default", &limited).await;
    server.live_flow("default", &posting("other", &sink)).await;
    let mut front = caller(&server, "front", "limited");
    front["steps"]
        .as_array_mut()
        .expect("steps")
        .push(posting("x", &sink)["steps"][0].clone());
    front["steps"][1]["name"] = json!("after");
    server.live_flow("default", &front).await;
    let run = |name: &'static str| {
        tokio::spawn(
            server
                .api(reqwest::Method::POST, &format!("/{name}"))
                .json(&json!({"input": {"n": 1}}))
                .send(),
        )
    };
    let first = run("front");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let held = run("limited");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = run("other");
    assert_all_ok([first, held, busy]).await;
    assert_eq!(sink.received().len(), 4);
    assert!(sink.peak() <= 2, "{} at once in 2 slots", sink.peak());
}

/// Repeats of a key whose execution is held back by its flow's `concurrency` limit change
/// nothing. Before, each repeat queued another copy behind the limit; a copy popped while
/// the real run went on made the tenant forget that run, whose end then never freed its
/// place: the flow's limit of two stayed one for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_a_held_back_call_keeps_the_flow_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(800)).await;
    let server = Server::start(dir.path());
    let mut limited = posting("limited", &sink);
    limited["concurrency"] = json!(2);
    server.live_flow("default", &limited).await;
    let call = |key: &str| {
        tokio::spawn(
            server
                .api(reqwest::Method::POST, "/limited")
                .header("idempotency-key", key)
                .json(&json!({"input": {"n": 1}}))
                .send(),
        )
    };
    let mut calls = vec![call("a"), call("b")];
    tokio::time::sleep(Duration::from_millis(100)).await;
    calls.push(call("held"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    calls.extend((0..4).map(|_| call("held")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    calls.extend([call("c"), call("d")]);
    assert_all_ok(calls).await;
    assert_eq!(sink.received().len(), 5, "one side effect per key");
    assert!(
        sink.peak() <= 2,
        "{} at once under a limit of 2",
        sink.peak()
    );
    sink.reset_peak();
    assert_all_ok([call("e"), call("f")]).await;
    assert_eq!(sink.peak(), 2, "the flow's limit of two shrank");
}

/// Nested synchronous fan-out in a tenant of one slot: a loop of 40 calls a flow that calls
/// another, 80 callees against the tenant's bound of 64 outside the slots. The calls past
/// the bound are refused for a second (429 with `Retry-After`, which the connector waits
/// out) instead of queueing behind the one slot `top` holds, which ended in 408 at 25 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_fan_out_runs_without_waiting_for_its_own_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(1000)).await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "1"]);
    server.live_flow("default", &posting("leaf", &sink)).await;
    server
        .live_flow("default", &caller(&server, "mid", "leaf"))
        .await;
    let xs: Vec<u32> = (0..40).collect();
    server
        .live_flow(
            "default",
            &json!({"name": "top", "trigger": {"type": "manual"},
                    "steps": [{"name": "each", "type": "loop", "over": "{{input.xs}}",
                               "concurrency": 40,
                               "steps": [server.call_step("call", "/api/v1/mid",
                                                          json!({"input": {"n": "{{item}}"}}))]}]}),
        )
        .await;
    let started = Instant::now();
    let answer = server
        .api(reqwest::Method::POST, "/top")
        .json(&json!({"input": {"xs": xs}}))
        .send()
        .await
        .expect("execute");
    let took = started.elapsed();
    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);
    assert_eq!(sink.received().len(), 40);
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// A burst of calls from flows cannot pass the tenant's bound on executions outside its
/// slots (64 per slot) together: four `mid` runs each call `leaf` 64 times at once in a
/// tenant of one slot. Before, every call of the burst read the same old count and 256
/// leaves ran at once; calls past the bound now wait out a 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_calls_stays_within_the_tenant_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(1500)).await;
    let server = Server::start_with(dir.path(), &["--tenant-concurrency", "1"]);
    server.live_flow("default", &posting("leaf", &sink)).await;
    // A loop over `input.xs`, all at once, calling `callee` with `body` for each item.
    let fan = |name: &str, callee: &str, body: Value| {
        json!({"name": name, "trigger": {"type": "manual"},
               "steps": [{"name": "each", "type": "loop", "over": "{{input.xs}}",
                          "concurrency": 64,
                          "steps": [server.call_step("call", &format!("/api/v1/{callee}"),
                                                     json!({"input": body}))]}]})
    };
    let leaves: Vec<u32> = (0..64).collect();
    server
        .live_flow("default", &fan("mid", "leaf", json!({"n": "{{item}}"})))
        .await;
    server
        .live_flow("default", &fan("root", "mid", json!({"xs": leaves})))
        .await;
    let answer = server
        .api(reqwest::Method::POST, "/root")
        .json(&json!({"input": {"xs": [1, 2, 3, 4]}}))
        .send()
        .await
        .expect("execute");
    assert_ne!(answer.status().as_u16(), 408, "{:?}", answer.text().await);
    // The four `mid` runs count too.
    assert!(sink.peak() <= 64 - 4, "{} leaves at once", sink.peak());
    assert!(
        server.metric_sum("sluice_connector_throttled_total").await > 0.0,
        "no call was refused"
    );
}

/// The same `Idempotency-Key` twice, in sequence and at once: one execution, one side
/// effect, and every answer names it. A repeat with another input is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_key_finds_the_first_execution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(300)).await;
    let server = Server::start(dir.path());
    server.live_flow("default", &posting("once", &sink)).await;
    let call = |body: &'static str| {
        server
            .api(reqwest::Method::POST, "/once")
            .header("idempotency-key", "order-42")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let mut ids = Vec::new();
    let at_once: Vec<_> = (0..5)
        .map(|_| tokio::spawn(call(r#"{"input": {"n": 7, "tag": "a"}}"#)))
        .collect();
    for c in at_once {
        let answer = c.await.expect("task").expect("execute");
        assert_eq!(answer.status().as_u16(), 200);
        ids.push(answer.headers()["x-sluice-execution-id"].clone());
    }
    // The same input written differently is the same request.
    let again = call(r#"{"input":{"tag":"a",   "n":7.0}}"#)
        .await
        .expect("execute");
    assert_eq!(again.status().as_u16(), 200);
    ids.push(again.headers()["x-sluice-execution-id"].clone());
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["n"], 7, "{body}");
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    // Another input under the same key: refused, nothing started.
    let reused = call(r#"{"input": {"n": 9, "tag": "a"}}"#)
        .await
        .expect("execute");
    assert_eq!(reused.status().as_u16(), 422);
    let error: Value = reused.json().await.expect("json");
    assert_eq!(error["code"], "IDEMPOTENCY_KEY_REUSED", "{error}");
    assert_eq!(error["statusCode"], 422, "{error}");
    assert_eq!(sink.received().len(), 1);
    assert_eq!(server.executions("default").await.len(), 1);
    let (status, _) = server.post_json("/once", &json!({"input": {"n": 1}})).await;
    assert_eq!(status, 200, "without a key, a new execution");
    assert_eq!(server.executions("default").await.len(), 2);
    let long = "k".repeat(256);
    let refused = server
        .api(reqwest::Method::POST, "/once")
        .header("idempotency-key", long)
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("execute");
    assert_eq!(refused.status().as_u16(), 400);
}

/// A repeat of a key whose execution failed runs the flow again: a caller's retry must not
/// get the cached failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_after_a_failure_runs_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "broken", "trigger": {"type": "manual"},
                    "steps": [{"name": "post", "type": "action", "connector": "http",
                               "action": "request",
                               "input": {"method": "POST", "url": "http://127.0.0.1:1/x",
                                         "body": {}}}]}),
        )
        .await;
    let call = || {
        server
            .api(reqwest::Method::POST, "/broken")
            .header("idempotency-key", "retry-me")
            .json(&json!({"input": {}}))
            .send()
    };
    let first = call().await.expect("execute");
    assert_ne!(first.status().as_u16(), 200);
    let first_id = first.headers()["x-sluice-execution-id"].clone();
    let second = call().await.expect("execute");
    let second_id = second.headers()["x-sluice-execution-id"].clone();
    assert_ne!(first_id, second_id, "the failure was not run again");
    let all = server.executions("default").await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|e| e["status"] == "failed"), "{all:#?}");
}

/// `kill -9` while a caller waits for its callee: after the restart both resume, and the
/// caller's call step, sent again with the same `Idempotency-Key`, finds the callee instead
/// of starting a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_repeated_after_a_crash_does_not_start_a_second_callee() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(2000)).await;
    let listen = free_port();
    let server = Server::start_on(dir.path(), &listen, &[]);
    server.live_flow("default", &posting("slow", &sink)).await;
    server
        .live_flow("default", &caller(&server, "front", "slow"))
        .await;
    let pending = tokio::spawn(
        server
            .api(reqwest::Method::POST, "/front")
            .json(&json!({"input": {"n": 7}}))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.kill9();
    let _ = pending.await;
    let server = Server::start_on(dir.path(), &listen, &[]);
    let all = server
        .wait_executions("default", 30, |list| {
            list.len() >= 2 && list.iter().all(|e| e["status"] == "completed")
        })
        .await;
    assert_eq!(all.len(), 2, "one caller and one callee: {all:#?}");
    let callees = all.iter().filter(|e| e["flowName"] == "slow").count();
    assert_eq!(callees, 1, "{all:#?}");
}
