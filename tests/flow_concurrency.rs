//! A flow's `concurrency` caps its executions running at once in a tenant; the rest queue
//! (as `pending`) and run as slots free up.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

/// A provider that holds each call 300 ms and records the most calls it held at once.
async fn slow_provider() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use axum::routing::post;
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (n, m) = (now.clone(), max.clone());
    let app = axum::Router::new().route(
        "/in",
        post(move || {
            let (n, m) = (n.clone(), m.clone());
            async move {
                let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                axum::Json(json!({"ok": true}))
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
    (format!("http://{addr}/in"), now, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_concurrency_limit_queues_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, _, max) = slow_provider().await;
    let server = Server::start(dir.path());
    server
        .live_flow(
            "default",
            &json!({"name": "capped", "concurrency": 2,
                    "trigger": {"type": "event", "source": "myapp", "event": "go"},
                    "steps": [{"name": "call", "type": "action", "connector": "http", "action": "request",
                               "input": {"method": "POST", "url": url, "body": {}}}]}),
        )
        .await;
    let started = Instant::now();
    for i in 0..6 {
        let (s, b) = server
            .post_json(
                "/tenants/default/events",
                &json!({"source": "myapp", "event": "go", "payload": {"n": i}}),
            )
            .await;
        assert!(s == 202 || s == 200, "event: {s} {b}");
    }
    // While the first two run, the others wait their turn as `pending`.
    let mut saw_queue = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = server.executions("default").await;
        let running = all.iter().filter(|e| e["status"] == "running").count();
        let pending = all.iter().filter(|e| e["status"] == "pending").count();
        assert!(running <= 2, "at most two run at once: {all:#?}");
        saw_queue |= running == 2 && pending > 0;
        if all.len() == 6 && all.iter().all(|e| e["status"] == "completed") {
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_queue, "executions were queued behind the limit");
    assert_eq!(
        max.load(Ordering::SeqCst),
        2,
        "the provider saw two at once, never more"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "six 300 ms calls two at a time take three rounds"
    );
}
