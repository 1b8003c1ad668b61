//! Progress inside a step outlives a SIGKILL: a retry backoff parked on a durable timer
//! resumes at its next attempt, and a loop resumed after a crash runs only the iterations
//! that had not finished.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, Sink};
use serde_json::{Value, json};

async fn app_event(server: &Server, event: &str) {
    let (s, b) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "myapp", "event": event, "payload": {}}),
        )
        .await;
    assert!(s == 202 || s == 200, "event: {s} {b}");
}

async fn only_execution(server: &Server, secs: u64, status: &str) -> Value {
    let all = server
        .wait_executions("default", secs, |e| {
            e.len() == 1 && e[0]["status"] == status
        })
        .await;
    let id = all[0]["id"].as_str().expect("id").to_owned();
    let (s, b) = server
        .get_json(&format!("/tenants/default/executions/{id}"))
        .await;
    assert_eq!(s, 200, "{b}");
    b
}

/// A provider answering 503 to its first two calls and 200 after; it records the
/// Idempotency-Key of every call.
async fn flaky_provider() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    use axum::routing::post;
    let calls: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let c = calls.clone();
    let app = axum::Router::new().route(
        "/in",
        post(move |headers: axum::http::HeaderMap| {
            let c = c.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let n = {
                    let mut calls = c.lock().expect("lock");
                    calls.push(key);
                    calls.len()
                };
                if n <= 2 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": "busy"})),
                    )
                } else {
                    (axum::http::StatusCode::OK, axum::Json(json!({"ok": true})))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/in"), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_backoff_spans_a_sigkill_and_resumes_at_the_next_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, calls) = flaky_provider().await;
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "flaky", "trigger": {"type": "event", "source": "myapp", "event": "flaky"},
                    "steps": [{"name": "call", "type": "action", "connector": "http", "action": "request",
                               "input": {"method": "POST", "url": url, "body": {}},
                               "retry": {"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 2000}}]}),
        )
        .await;
    app_event(&server, "flaky").await;
    // The first attempt fails; the execution parks on its 2 s backoff.
    server
        .wait_executions("default", 10, |e| {
            e.len() == 1 && e[0]["status"] == "waiting"
        })
        .await;
    assert_eq!(calls.lock().expect("lock").len(), 1);
    server.kill9();
    let restarted = Instant::now();
    let server = Server::start(dir.path());
    let exec = only_execution(&server, 20, "completed").await;
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 3, "exactly three calls: {calls:?}");
    assert!(calls[0].is_some(), "calls carry a key");
    assert!(calls.iter().all(|k| *k == calls[0]), "one key: {calls:?}");
    let step = &exec["steps"][0];
    assert_eq!(step["status"], "completed", "{exec}");
    let attempts = step["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3, "every attempt in the trace: {step}");
    assert!(attempts[0]["error"].is_object(), "{step}");
    assert!(attempts[1]["error"].is_object(), "{step}");
    assert!(attempts[2]["error"].is_null(), "{step}");
    // The second backoff (between attempts 2 and 3) was waited too.
    assert!(
        restarted.elapsed() >= Duration::from_millis(1900),
        "the backoffs were honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_resumed_after_a_sigkill_repeats_only_the_iterations_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start_with_delay(Duration::from_millis(300)).await;
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "each", "trigger": {"type": "event", "source": "myapp", "event": "each"},
                    "steps": [{"name": "each_item", "type": "loop", "over": "{{trigger.list}}",
                               "concurrency": 4,
                               "steps": [{"name": "push", "type": "action", "connector": "http",
                                          "action": "request",
                                          "input": {"method": "POST", "url": sink.url,
                                                    "body": {"item": "{{item}}"}}}]}]}),
        )
        .await;
    let list: Vec<u64> = (0..20).collect();
    let (s, b) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "myapp", "event": "each", "payload": {"list": list}}),
        )
        .await;
    assert!(s == 202 || s == 200, "event: {s} {b}");
    // Kill after two waves of four (each call takes 300 ms), mid-wave.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.received().len() < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill9();
    let before = sink.received().len();
    assert!(
        (8..20).contains(&before),
        "the kill came mid-loop ({before} calls)"
    );
    let server = Server::start(dir.path());
    let exec = only_execution(&server, 30, "completed").await;
    let output = exec["steps"][0]["output"].as_array().expect("loop output");
    assert_eq!(output.len(), 20, "{exec}");
    let mut by_item: HashMap<u64, Vec<Option<String>>> = HashMap::new();
    for r in sink.received() {
        by_item
            .entry(r.body["item"].as_u64().expect("item"))
            .or_default()
            .push(r.idempotency_key);
    }
    assert_eq!(by_item.len(), 20, "every item once at least: {by_item:?}");
    let repeated: Vec<_> = by_item.values().filter(|k| k.len() > 1).collect();
    assert!(
        repeated.len() <= 4,
        "only the iterations in flight (at most the concurrency) repeat: {by_item:?}"
    );
    for keys in repeated {
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(
            keys[0].is_some() && keys[0] == keys[1],
            "same key: {keys:?}"
        );
    }
}
