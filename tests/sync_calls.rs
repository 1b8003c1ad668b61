//! A flow that calls another flow through the execute API, synchronously.
//!
//! The calling execution holds one of its tenant's concurrency slots while it waits, so the
//! execution it starts runs outside the slots: queued behind its callers it would get none
//! while every slot is held by a caller waiting for it. Before, such calls were bounded to
//! half the tenant's slots and the rest refused with 429: with `--tenant-concurrency 4`, 5 of
//! 20 simultaneous callers failed.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Sink};
use serde_json::{Value, json};

/// A manual flow named `name` with one step calling the flow `callee` synchronously.
fn caller(server: &Server, name: &str, callee: &str) -> Value {
    json!({"name": name, "trigger": {"type": "manual"},
           "steps": [server.call_step("call", &format!("/api/v1/{callee}"),
                                      json!({"input": {"n": "{{input.n}}"}}))],
           "response": {"status": 200, "body": {"answer": "{{steps.call.output.body}}"}}})
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
    server
        .live_flow(
            "default",
            &json!({"name": "slow", "trigger": {"type": "manual"},
                    "steps": [{"name": "post", "type": "action", "connector": "http",
                               "action": "request",
                               "input": {"method": "POST", "url": sink.url,
                                         "body": {"n": "{{input.n}}"}}}],
                    "response": {"status": 200, "body": {"n": "{{input.n}}"}}}),
        )
        .await;
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
