//! What a fresh reviewer broke: racing writes that must have one winner, and expressions
//! nested deep enough to overflow a parser's stack.

mod common;

use common::Server;
use serde_json::{Value, json};

fn flow(name: &str) -> Value {
    json!({"name": name,
           "trigger": {"type": "event", "source": "myapp", "event": "go"},
           "steps": [{"name": "m", "type": "action", "mapping": {"x": "1"}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_flow_creates_with_one_name_make_one_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = std::sync::Arc::new(Server::start(dir.path()));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            server
                .post_json("/tenants/default/workflows", &flow("race_flow"))
                .await
                .0
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("join") {
            201 => created += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
    let (_, list) = server.get_json("/tenants/default/workflows").await;
    assert_eq!(list["workflows"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_approval_decisions_have_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = std::sync::Arc::new(Server::start(dir.path()));
    server
        .live_flow(
            "default",
            &json!({"name": "sign",
                    "trigger": {"type": "event", "source": "myapp", "event": "sign"},
                    "steps": [{"name": "sign_off", "type": "approval", "timeoutMs": 3600000}]}),
        )
        .await;
    let (s, _) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "myapp", "event": "sign", "payload": {}}),
        )
        .await;
    assert_eq!(s, 202);
    let waiting = server
        .wait_executions("default", 20, |e| {
            e.len() == 1 && e[0]["status"] == "waiting"
        })
        .await;
    let eid = waiting[0]["id"].as_str().expect("id").to_owned();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (server, eid) = (server.clone(), eid.clone());
        tasks.push(tokio::spawn(async move {
            let verb = if i % 2 == 0 { "approve" } else { "reject" };
            server
                .post_json(
                    &format!("/tenants/default/executions/{eid}/{verb}"),
                    &json!({}),
                )
                .await
                .0
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.expect("join") {
            200 => accepted += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 1, "exactly one decision counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_expressions_are_refused_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let chain = format!("trigger{} == 1", ".a".repeat(10_000));
    let mut doc = flow("deep_condition");
    doc["trigger"]["condition"] = Value::String(chain);
    let (s, b) = server.post_json("/tenants/default/workflows", &doc).await;
    assert_eq!(s, 400, "{b}");
    let path = format!("$[?{}@.a{}]", "(".repeat(5_000), ")".repeat(5_000));
    let (s, b) = server
        .post_json(
            "/transform/preview",
            &json!({"document": {"a": 1}, "expression": path}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // Still serving.
    let (s, _) = server.get_json("/tenants").await;
    assert_eq!(s, 200);
}
