//! Acknowledged means durable: a burst of webhooks is acknowledged, the server is killed with
//! SIGKILL at once, and after a restart on the same data directory every acknowledged event
//! has produced exactly one completed execution.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Server, Sink, github_headers, send};
use serde_json::json;

const SECRET: &str = "crash-secret";
const BURST: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_runs_exactly_once_across_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A slow provider, so that executions are still in flight when the server is killed.
    let sink = Sink::start_with_delay(std::time::Duration::from_millis(20)).await;
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "push_to_sink",
                "trigger": {"type": "event", "source": "github", "event": "push"},
                "steps": [
                    {"name": "forward", "type": "action", "connector": "http", "action": "request",
                     "input": {"method": "POST", "url": sink.url, "body": {"n": "{{trigger.n}}"}}},
                    {"name": "record", "type": "action", "mapping": {"n": "{{trigger.n}}"}}
                ]
            }),
        )
        .await;

    // A concurrent burst; keep only what the server acknowledged.
    let mut tasks = Vec::new();
    for n in 0..BURST {
        let client = server.client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let body =
                serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": n})).expect("json");
            let headers = github_headers(SECRET, &body, "push", &format!("delivery-{n}"));
            let (status, ack) = send(&client, &url, &headers, &body).await;
            (n, status, ack)
        }));
    }
    let path = url
        .strip_prefix(&server.base)
        .expect("url on this server")
        .to_owned();
    let mut acked: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (n, status, ack) = t.await.expect("join");
        assert_eq!(status, 202, "{ack}");
        acked.insert(ack["eventId"].as_str().expect("eventId").to_owned(), n);
    }
    let before_kill = server.executions("default").await;
    server.kill9();
    let done_before = before_kill
        .iter()
        .filter(|e| e["status"] == "completed")
        .count();
    eprintln!("{done_before} of {BURST} executions had completed when the server was killed");

    let server = Server::start(dir.path());
    let execs = server
        .wait_executions("default", 60, |e| {
            e.len() >= BURST && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    assert_eq!(
        execs.len(),
        BURST,
        "exactly one execution per acknowledged event"
    );
    let events: HashSet<&str> = execs.iter().filter_map(|e| e["eventId"].as_str()).collect();
    let acked_ids: HashSet<&str> = acked.keys().map(String::as_str).collect();
    assert_eq!(events, acked_ids);

    // The sink may see a step twice only if it was in flight at the kill, and then with the
    // same idempotency key.
    let got = sink.received();
    let mut by_n: HashMap<i64, HashSet<Option<String>>> = HashMap::new();
    for r in &got {
        by_n.entry(r.body["n"].as_i64().expect("n"))
            .or_default()
            .insert(r.idempotency_key.clone());
    }
    assert_eq!(by_n.len(), BURST, "every event reached the sink");
    assert!(
        by_n.values().all(|keys| keys.len() == 1),
        "a redelivery changed its idempotency key"
    );

    // Redelivering after the restart is still a duplicate.
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": 0})).expect("json");
    let (status, ack) = send(
        &server.client,
        &format!("{}{path}", server.base),
        &github_headers(SECRET, &body, "push", "delivery-0"),
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ack["duplicate"], true);
}
