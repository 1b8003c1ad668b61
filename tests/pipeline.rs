//! The event pipeline under stress and failure: a blocked tenant does not stall another,
//! poison events and failing executions land in the DLQ and replay, secrets rotate with an
//! overlap, and app events enter the pipeline like webhooks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use common::{Server, Sink, github_headers, send, shopify_headers};
use serde_json::{Value, json};

/// A provider that answers 503 until `ok` is set, then 200.
async fn switchable_sink(ok: Arc<AtomicBool>) -> String {
    let app = axum::Router::new().route(
        "/in",
        post(move || {
            let ok = ok.clone();
            async move {
                if ok.load(Ordering::SeqCst) {
                    (axum::http::StatusCode::OK, axum::Json(json!({"ok": true})))
                } else {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"ok": false, "error": "maintenance"})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/in")
}

/// A provider that never answers.
async fn black_hole() -> String {
    let app = axum::Router::new().route("/in", post(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/in")
}

fn push_flow(name: &str, url: &str, attempts: u32) -> Value {
    json!({
        "name": name,
        "trigger": {"type": "event", "source": "github", "event": "push"},
        "steps": [{"name": "forward", "type": "action", "connector": "http", "action": "request",
                   "timeoutMs": 120000,
                   "retry": {"maxAttempts": attempts, "backoff": "fixed", "initialDelayMs": 10},
                   "input": {"method": "POST", "url": url, "body": {"n": "{{trigger.n}}"}}}]
    })
}

async fn push(server: &Server, url: &str, secret: &str, n: usize, delivery: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": n})).expect("json");
    send(
        &server.client,
        url,
        &github_headers(secret, &body, "push", delivery),
        &body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_tenant_does_not_stall_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let hole = black_hole().await;
    let sink = Sink::start().await;
    server.tenant("noisy").await;
    server.tenant("quiet").await;
    let noisy_url = server.webhook("noisy", "github", "n-secret").await;
    let quiet_url = server.webhook("quiet", "github", "q-secret").await;
    server
        .live_flow("noisy", &push_flow("stuck", &hole, 1))
        .await;
    server
        .live_flow("quiet", &push_flow("fine", &sink.url, 1))
        .await;

    // Far more than the noisy tenant can run (16 at once) or hold (64 per lane).
    for n in 0..150 {
        let (s, _) = push(&server, &noisy_url, "n-secret", n, &format!("noisy-{n}")).await;
        assert_eq!(s, 202);
    }
    for n in 0..20 {
        let (s, _) = push(&server, &quiet_url, "q-secret", n, &format!("quiet-{n}")).await;
        assert_eq!(s, 202);
    }
    server
        .wait_executions("quiet", 30, |e| {
            e.len() == 20 && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    let noisy = server.executions("noisy").await;
    assert!(
        noisy.iter().all(|e| e["status"] != "completed"),
        "the black hole never answers"
    );
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("sluice_relay_deferrals_total"),
        "the noisy lane was deferred"
    );
    // Memory is bounded: the noisy tenant holds at most its lane credit (64) in memory; the
    // rest of its burst stays in the outbox on disk (the relay may also keep skipped entries
    // in memory, within its own byte budget, until the lane has credit again).
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let queued = gauge("sluice_queue_depth{priority=\"P2\"}");
    assert!(queued <= 64.0, "queued in memory: {queued}");
    let pending = gauge("sluice_outbox_pending");
    assert!(
        pending >= 150.0 - 64.0 - 16.0,
        "left in the outbox: {pending}\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_events_and_failed_executions_are_dead_lettered_and_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let ok = Arc::new(AtomicBool::new(false));
    let provider = switchable_sink(ok.clone()).await;
    let url = server.webhook("default", "github", "dlq-secret").await;
    server
        .live_flow("default", &push_flow("fragile", &provider, 2))
        .await;

    // A poison event: signed, acknowledged, but not JSON.
    let poison = b"this is not json";
    let (s, _) = send(
        &server.client,
        &url,
        &github_headers("dlq-secret", poison, "push", "p-1"),
        poison,
    )
    .await;
    assert_eq!(s, 202);
    // A failing execution: the provider answers 503 to both attempts.
    let (s, _) = push(&server, &url, "dlq-secret", 7, "f-1").await;
    assert_eq!(s, 202);
    server
        .wait_executions("default", 30, |e| {
            e.len() == 1 && e[0]["status"] == "failed"
        })
        .await;

    let items = wait_dlq(&server, "", |items| items.len() == 2).await;
    let event_item = items
        .iter()
        .find(|i| i["kind"] == "event")
        .expect("event item");
    let exec_item = items
        .iter()
        .find(|i| i["kind"] == "execution")
        .expect("execution item");
    assert_eq!(event_item["payload"], "this is not json");
    assert!(
        event_item["error"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON")
    );
    assert_eq!(exec_item["error"]["code"], "DATASOURCE_CONNECTION_ERROR");
    assert_eq!(
        exec_item["error"]["datasourceDebug"]["jsonObject"]["error"],
        "maintenance"
    );
    assert_eq!(exec_item["eventType"], "push");
    assert_eq!(exec_item["attempts"], 1);
    let (_, filtered) = server
        .get_json("/tenants/default/dlq?reason=not%20valid%20JSON")
        .await;
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(1));
    let (_, page) = server.get_json("/tenants/default/dlq?limit=1").await;
    assert!(page["nextCursor"].is_string());
    let (s, _) = server.get_json("/tenants/default/dlq?state=bogus").await;
    assert_eq!(s, 400);
    let (s, _) = server.get_json("/tenants/default/dlq?cursor=garbage").await;
    assert_eq!(s, 400);

    // The cause is fixed: replay the failed execution (pinned version by default).
    ok.store(true, Ordering::SeqCst);
    let id = exec_item["id"].as_str().expect("id");
    let (s, replaying) = server
        .post_json(&format!("/tenants/default/dlq/{id}/replay"), &json!({}))
        .await;
    assert_eq!(s, 202, "{replaying}");
    assert_eq!(replaying["state"], "replaying");
    let (s, again) = server
        .post_json(&format!("/tenants/default/dlq/{id}/replay"), &json!({}))
        .await;
    assert_eq!(s, 409, "a replay in progress is not started twice: {again}");
    let resolved = wait_dlq(&server, "?state=resolved", |items| items.len() == 1).await;
    assert_eq!(resolved[0]["replays"][0]["outcome"], "completed");
    assert_eq!(resolved[0]["replays"][0]["attempt"], 2);
    let execs = server.executions("default").await;
    let replay = execs
        .iter()
        .find(|e| e["replayOf"] == id)
        .expect("replay execution");
    assert_eq!(replay["status"], "completed");
    assert_eq!(replay["attempt"], 2);

    // Bulk replay: the poison event is replayed (and fails again: its body is still not
    // JSON); the resolved item is skipped.
    let (s, report) = server
        .post_json("/tenants/default/dlq/replay", &json!({}))
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(
        (report["replayed"].as_u64(), report["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    let poison_id = event_item["id"].as_str().expect("id");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, item) = server
            .get_json(&format!("/tenants/default/dlq/{poison_id}"))
            .await;
        if item["state"] == "pending" && item["attempts"] == 2 {
            assert!(
                item["replays"][0]["outcome"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("failed")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "poison replay never recorded: {item}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = server
        .api(
            reqwest::Method::DELETE,
            &format!("/tenants/default/dlq/{poison_id}"),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (s, _) = server
        .get_json(&format!("/tenants/default/dlq/{poison_id}"))
        .await;
    assert_eq!(s, 404);
}

async fn wait_dlq(server: &Server, query: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server
            .get_json(&format!("/tenants/default/dlq{query}"))
            .await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        if pred(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "DLQ never reached the expected state: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secrets_overlap_then_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let url = server.webhook("default", "shopify", "old-secret").await;
    let id = url.rsplit('/').next().expect("id").to_owned();
    let (s, view) = server
        .post_json(
            &format!("/tenants/default/webhooks/{id}/rotate"),
            &json!({"secret": "new-secret", "overlapSeconds": 2}),
        )
        .await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["rotation"]["overlapActive"], true);
    assert!(view.get("secret").is_none() && !view.to_string().contains("new-secret"));

    let body = br#"{"id": 1}"#;
    let signed =
        |secret: &str, delivery: &str| shopify_headers(secret, body, "orders/create", delivery);
    assert_eq!(
        send(&server.client, &url, &signed("old-secret", "d1"), body)
            .await
            .0,
        202
    );
    assert_eq!(
        send(&server.client, &url, &signed("new-secret", "d2"), body)
            .await
            .0,
        202
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        send(&server.client, &url, &signed("old-secret", "d3"), body)
            .await
            .0,
        401
    );
    assert_eq!(
        send(&server.client, &url, &signed("new-secret", "d4"), body)
            .await
            .0,
        202
    );
    let (_, view) = server
        .get_json(&format!("/tenants/default/webhooks/{id}"))
        .await;
    assert_eq!(view["rotation"]["overlapActive"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_events_enter_the_pipeline_deduplicated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let sink = Sink::start().await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "welcome",
                "trigger": {"type": "event", "source": "myapp", "event": "user.signup"},
                "steps": [{"name": "greet", "type": "action", "connector": "http", "action": "request",
                           "input": {"method": "POST", "url": sink.url,
                                     "body": {"hello": "{{UPPER(trigger.name)}}"}}}]
            }),
        )
        .await;
    let event = json!({"source": "myapp", "event": "user.signup", "payload": {"name": "ada"},
                       "idempotencyKey": "signup-1"});
    let (s, first) = server.post_json("/tenants/default/events", &event).await;
    assert_eq!(s, 202, "{first}");
    let (s, dup) = server.post_json("/tenants/default/events", &event).await;
    assert_eq!(s, 200);
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["eventId"], first["eventId"]);
    let execs = server
        .wait_executions("default", 30, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    assert_eq!(execs[0]["priority"], "P2");
    assert_eq!(sink.received()[0].body["hello"], "ADA");
    let (s, _) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "bad source!", "event": "x"}),
        )
        .await;
    assert_eq!(s, 400);

    // Without an idempotency key, the event name and the payload identify an event: the same
    // payload under another name is another event, under the same name a duplicate.
    let mut ids = Vec::new();
    for (event, expected) in [("h1", 202), ("reset", 202), ("reset", 200)] {
        let (s, b) = server
            .post_json(
                "/tenants/default/events",
                &json!({"source": "myapp", "event": event, "payload": {}}),
            )
            .await;
        assert_eq!(s, expected, "{event}: {b}");
        ids.push(b["eventId"].clone());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_flow_through_the_claim_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let sink = Sink::start().await;
    let url = server.webhook("default", "github", "big").await;
    server
        .live_flow("default", &push_flow("big", &sink.url, 1))
        .await;
    // ~600 KiB: above the 256 KiB claim-check threshold, below the 1 MiB limit.
    let padding = "x".repeat(600 * 1024);
    let body = serde_json::to_vec(&json!({"ref": "r", "n": 42, "padding": padding})).expect("json");
    let (s, _) = send(
        &server.client,
        &url,
        &github_headers("big", &body, "push", "big-1"),
        &body,
    )
    .await;
    assert_eq!(s, 202);
    server
        .wait_executions("default", 30, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    assert_eq!(sink.received()[0].body["n"], 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tenant_supervisors_stop_and_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--tenant-idle-secs", "1"]);
    let sink = Sink::start().await;
    let url = server.webhook("default", "github", "idle").await;
    server
        .live_flow("default", &push_flow("idle", &sink.url, 1))
        .await;
    assert_eq!(push(&server, &url, "idle", 1, "i-1").await.0, 202);
    server
        .wait_executions("default", 20, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    assert_eq!(server.metric_sum("sluice_tenant_supervisors").await, 1.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.metric_sum("sluice_tenant_supervisors").await != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the idle supervisor was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The next event starts a new supervisor and runs as before.
    assert_eq!(push(&server, &url, "idle", 2, "i-2").await.0, 202);
    server
        .wait_executions("default", 20, |e| {
            e.len() == 2 && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    assert_eq!(sink.received().len(), 2);
}
