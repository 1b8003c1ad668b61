//! A flow that triggers itself stops after `MAX_HOPS` rounds (T8: a cycle between flows).
//!
//! Every connector call carries `CDN-Loop: sluice; hops=N` (RFC 8586), one more than the
//! hop count of what started its execution; an incoming webhook, app event or execute call
//! with more than `MAX_HOPS` is refused with 508 `LOOP_DETECTED` and nothing is stored. Before
//! this, a flow posting app events to its own tenant ran ~5,000 executions a second until it
//! was archived.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_KEY, SPACE, Server, Sink, assert_error_shape, github_headers, send};
use serde_json::{Value, json};
use sluice_actors::pipeline::hops::MAX_HOPS;

const SECRET: &str = "loop-secret";

/// A flow that, for each `app`/`ping` event, posts to the sink and then posts a new `ping`
/// event (its payload wraps the one it got, so no two are alike) to its own tenant.
fn self_triggering_flow(server: &Server, sink: &Sink) -> Value {
    json!({
        "name": "echo",
        "trigger": {"type": "event", "source": "app", "event": "ping"},
        "steps": [
            {"name": "record", "type": "action", "connector": "http", "action": "request",
             "input": {"method": "POST", "url": sink.url, "body": {"seen": "{{trigger}}"}}},
            {"name": "again", "type": "action", "connector": "http", "action": "request",
             "input": {"method": "POST",
                       "url": format!("{}/api/v1/tenants/default/events", server.base),
                       "headers": {"x-fastn-api-key": ADMIN_KEY, "x-fastn-space-id": SPACE,
                                   "content-type": "application/json"},
                       "body": {"source": "app", "event": "ping",
                                "payload": {"prev": "{{trigger}}"}}}}
        ]
    })
}

fn hops_of(header: Option<&str>) -> u32 {
    let value = header.expect("every connector call carries CDN-Loop");
    value
        .strip_prefix("sluice; hops=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected CDN-Loop {value:?}"))
}

async fn dlq_items(server: &Server) -> Vec<Value> {
    let (s, dlq) = server.get_json("/tenants/default/dlq").await;
    assert_eq!(s, 200, "{dlq}");
    dlq["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_triggering_flow_stops_at_the_hop_limit_and_lands_in_the_dlq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let server = Server::start(dir.path());
    server
        .live_flow("default", &self_triggering_flow(&server, &sink))
        .await;
    let (s, b) = server
        .post_json(
            "/tenants/default/events",
            &json!({"source": "app", "event": "ping", "payload": {"start": true}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");

    // Executions at hops 0..=MAX_HOPS run; the last one's call is refused and it fails.
    let rounds = MAX_HOPS as usize + 1;
    let all = server
        .wait_executions("default", 60, |list| {
            list.len() >= rounds
                && list.iter().any(|e| e["status"] == "failed")
                && list
                    .iter()
                    .all(|e| matches!(e["status"].as_str(), Some("completed" | "failed")))
        })
        .await;
    // Nothing more starts afterwards.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all_later = server.executions("default").await;
    assert_eq!(all_later.len(), rounds, "{all_later:#?}");
    let failed: Vec<&Value> = all.iter().filter(|e| e["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{all:#?}");

    let mut seen: Vec<u32> = sink
        .received()
        .iter()
        .map(|r| hops_of(r.cdn_loop.as_deref()))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=MAX_HOPS + 1).collect::<Vec<_>>());

    // The failed execution's refused step: a 508 LOOP_DETECTED, tried once (not retryable).
    let id = failed[0]["id"].as_str().expect("id");
    let (_, exec) = server
        .get_json(&format!("/tenants/default/executions/{id}"))
        .await;
    let again = exec["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "again"))
        .unwrap_or_else(|| panic!("{exec}"));
    assert_eq!(again["status"], "failed", "{exec}");
    let text = again.to_string();
    assert!(
        text.contains("508") && text.contains("LOOP_DETECTED"),
        "{text}"
    );
    assert_eq!(server.metric_sum("sluice_loops_refused_total").await, 1.0);

    // It is in the DLQ with its hop count, and a replay keeps it: refused again, once.
    let items = dlq_items(&server).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let item = &items[0];
    assert_eq!(
        item["headers"]["cdn-loop"],
        format!("sluice; hops={MAX_HOPS}")
    );
    let (s, v) = server
        .post_json(
            &format!(
                "/tenants/default/dlq/{}/replay",
                item["id"].as_str().expect("id")
            ),
            &json!({}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric_sum("sluice_loops_refused_total").await < 2.0 {
        assert!(Instant::now() < deadline, "the replay never made its call");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = sink.received().last().cloned().expect("replay's call");
    assert_eq!(hops_of(last.cdn_loop.as_deref()), MAX_HOPS + 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.executions("default").await.len(), rounds + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_point_refuses_past_the_limit_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let url = server.webhook("default", "github", SECRET).await;
    let over = format!("cdn, sluice; hops={}", MAX_HOPS + 1);
    let at_limit = format!("sluice; hops={MAX_HOPS}");

    // Webhook receipt: signed, but past the limit.
    let body = br#"{"ref": "main"}"#;
    let mut headers = github_headers(SECRET, body, "push", "d-over");
    headers.push(("CDN-Loop".into(), over.clone()));
    let (status, answer) = send(&server.client, &url, &headers, body).await;
    assert_eq!(status, 508, "{answer}");
    assert_error_shape(508, &answer);
    assert_eq!(answer["code"], "LOOP_DETECTED");
    // An unsigned one is refused for its signature first.
    let unsigned = [("CDN-Loop".to_owned(), over.clone())];
    let (status, _) = send(&server.client, &url, &unsigned, body).await;
    assert_eq!(status, 401);
    // At the limit it is accepted, once; the refused delivery id was never recorded.
    let mut headers = github_headers(SECRET, body, "push", "d-over");
    headers.push(("CDN-Loop".into(), at_limit.clone()));
    let (status, answer) = send(&server.client, &url, &headers, body).await;
    assert_eq!(status, 202, "{answer}");

    // App events.
    let answer = server
        .api(reqwest::Method::POST, "/tenants/default/events")
        .header("cdn-loop", &over)
        .json(&json!({"source": "app", "event": "x", "payload": {}}))
        .send()
        .await
        .expect("events");
    assert_eq!(answer.status().as_u16(), 508);
    let body: Value = answer.json().await.expect("json");
    assert_error_shape(508, &body);

    // The execute API.
    let (s, b) = server
        .post_json(
            "/tenants/default/workflows",
            &json!({"name": "manual_one", "trigger": {"type": "manual"},
                    "steps": [{"name": "n", "type": "notification", "message": "hi"}]}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().expect("id");
    let (s, b) = server
        .post_json(
            &format!("/tenants/default/workflows/{id}/publish"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let answer = server
        .api(reqwest::Method::POST, "/manual_one")
        .header("cdn-loop", &over)
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("execute");
    assert_eq!(answer.status().as_u16(), 508);
    let body: Value = answer.json().await.expect("json");
    assert_error_shape(508, &body);
    let answer = server
        .api(reqwest::Method::POST, "/manual_one")
        .header("cdn-loop", &at_limit)
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("execute");
    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);

    // Only the two accepted requests left a trace: one event, one execution.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, events) = server.get_json("/tenants/default/events").await;
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    assert_eq!(server.executions("default").await.len(), 1);
    assert_eq!(server.metric_sum("sluice_loops_refused_total").await, 3.0);
}
