//! Acknowledged means durable: a concurrent burst of webhooks for several tenants is
//! acknowledged, the server is killed with SIGKILL at once, and after a restart on the same
//! data directory every acknowledged event has produced exactly one completed execution.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Server, Sink, github_headers, send};
use serde_json::json;

const SECRET: &str = "crash-secret";
const TENANTS: [&str; 3] = ["default", "t2", "t3"];
const PER_TENANT: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_runs_exactly_once_across_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A slow provider, so that executions are still in flight when the server is killed.
    let sink = Sink::start_with_delay(std::time::Duration::from_millis(20)).await;
    let server = Server::start(dir.path());
    let mut paths = HashMap::new();
    for tenant in TENANTS {
        server.tenant(tenant).await;
        let url = server.webhook(tenant, "github", SECRET).await;
        paths.insert(
            tenant,
            url.strip_prefix(&server.base).expect("url").to_owned(),
        );
        server
            .live_flow(
                tenant,
                &json!({
                    "name": "push_to_sink",
                    "trigger": {"type": "event", "source": "github", "event": "push"},
                    "steps": [
                        {"name": "forward", "type": "action", "connector": "http", "action": "request",
                         "input": {"method": "POST", "url": sink.url,
                                   "body": {"tenant": tenant, "n": "{{trigger.n}}"}}},
                        {"name": "record", "type": "action", "mapping": {"n": "{{trigger.n}}"}}
                    ]
                }),
            )
            .await;
    }

    // Concurrent bursts from all tenants; keep only what the server acknowledged.
    let mut tasks = Vec::new();
    for n in 0..PER_TENANT {
        for tenant in TENANTS {
            let client = server.client.clone();
            let url = format!("{}{}", server.base, paths[tenant]);
            tasks.push(tokio::spawn(async move {
                let body =
                    serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": n})).expect("json");
                let headers = github_headers(SECRET, &body, "push", &format!("{tenant}-{n}"));
                let (status, ack) = send(&client, &url, &headers, &body).await;
                (tenant, status, ack)
            }));
        }
    }
    let mut acked: HashMap<&str, HashSet<String>> = HashMap::new();
    for t in tasks {
        let (tenant, status, ack) = t.await.expect("join");
        assert_eq!(status, 202, "{ack}");
        acked
            .entry(tenant)
            .or_default()
            .insert(ack["eventId"].as_str().expect("eventId").to_owned());
    }
    let before_kill = server.executions("default").await;
    server.kill9();
    let done_before = before_kill
        .iter()
        .filter(|e| e["status"] == "completed")
        .count();
    eprintln!("{done_before} of {PER_TENANT} default-tenant executions had completed at the kill");

    let server = Server::start(dir.path());
    for tenant in TENANTS {
        let execs = server
            .wait_executions(tenant, 60, |e| {
                e.len() >= PER_TENANT && e.iter().all(|x| x["status"] == "completed")
            })
            .await;
        assert_eq!(
            execs.len(),
            PER_TENANT,
            "{tenant}: one execution per acknowledged event"
        );
        let events: HashSet<String> = execs
            .iter()
            .filter_map(|e| e["eventId"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(&events, &acked[tenant], "{tenant}");
    }

    // The sink may see a step twice only if it was in flight at the kill, and then with the
    // same idempotency key.
    let mut by_event: HashMap<(String, i64), HashSet<Option<String>>> = HashMap::new();
    for r in sink.received() {
        let key = (
            r.body["tenant"].as_str().expect("tenant").to_owned(),
            r.body["n"].as_i64().expect("n"),
        );
        by_event
            .entry(key)
            .or_default()
            .insert(r.idempotency_key.clone());
    }
    assert_eq!(
        by_event.len(),
        PER_TENANT * TENANTS.len(),
        "every event reached the sink"
    );
    assert!(
        by_event.values().all(|keys| keys.len() == 1),
        "a redelivery changed its idempotency key"
    );

    // Redelivering after the restart is still a duplicate.
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "n": 0})).expect("json");
    let (status, ack) = send(
        &server.client,
        &format!("{}{}", server.base, paths["t2"]),
        &github_headers(SECRET, &body, "push", "t2-0"),
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ack["duplicate"], true);
}
