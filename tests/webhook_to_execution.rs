//! The main job end to end: a signed Shopify `orders/create` webhook becomes a completed
//! execution whose HTTP step delivered the mapped body to a local sink.

mod common;

use common::{Server, Sink, send, shopify_headers};
use serde_json::{Value, json};

const SECRET: &str = "shpss_test_secret";

/// An `orders/create` body in the shape Shopify documents (trimmed), pretty-printed with a
/// trailing newline as providers send it: the signature covers these exact bytes.
fn order_body() -> Vec<u8> {
    let order = json!({
        "id": 820982911946154508u64,
        "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "email": "jon@example.com",
        "created_at": "2021-12-31T19:00:00-05:00",
        "currency": "USD",
        "total_price": "403.00",
        "customer": {"id": 115310627314723954u64, "email": "john@example.com",
                     "first_name": "John", "last_name": "Smith"},
        "line_items": [
            {"id": 866550311766439020u64, "sku": "IPOD2008BLACK", "quantity": 1, "price": "199.00"},
            {"id": 141249953214522974u64, "sku": "IPOD2008RED", "quantity": 1, "price": "199.00"}
        ]
    });
    let mut bytes = serde_json::to_vec_pretty(&order).expect("json");
    bytes.push(b'\n');
    bytes
}

fn flow(sink: &str) -> Value {
    json!({
        "name": "order_to_sink",
        "trigger": {"type": "event", "source": "shopify", "event": "order.created"},
        "steps": [
            {"name": "post_order", "type": "action", "connector": "http", "action": "request",
             "input": {"method": "POST", "url": sink,
                       "body": {"email": "{{trigger.customer.email}}",
                                "total": "{{trigger.total_price}}",
                                "lines": "{{trigger.line_items}}"}},
             "retry": {"maxAttempts": 3, "backoff": "exponential", "initialDelayMs": 50}},
            {"name": "summarize", "type": "action",
             "mapping": {"first_sku": "{{trigger.line_items[0].sku}}",
                         "sink_answer": "{{steps.post_order.output.body.id}}",
                         "label": "order for {{trigger.customer.first_name}}"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_shopify_order_becomes_a_completed_execution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let sink = Sink::start().await;

    server.tenant("acme").await;
    server.tenant("globex").await;
    let url = server.webhook("acme", "shopify", SECRET).await;
    server.live_flow("acme", &flow(&sink.url)).await;

    let body = order_body();
    let headers = shopify_headers(
        SECRET,
        &body,
        "orders/create",
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    );
    let (status, ack) = send(&server.client, &url, &headers, &body).await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack["duplicate"], false);
    let event_id = ack["eventId"].as_str().expect("eventId").to_owned();

    let execs = server
        .wait_executions("acme", 30, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    let eid = execs[0]["id"].as_str().expect("id");
    assert_eq!(execs[0]["eventId"], event_id.as_str());

    // The sink got the mapped body, with `lines` still a JSON array.
    let got = sink.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["email"], "john@example.com");
    assert_eq!(got[0].body["total"], "403.00");
    assert!(got[0].body["lines"].is_array(), "{:?}", got[0].body);
    assert_eq!(got[0].body["lines"][1]["sku"], "IPOD2008RED");
    assert!(
        got[0].idempotency_key.is_some(),
        "outbound calls carry an idempotency key"
    );

    // The step trace.
    let (s, trace) = server
        .get_json(&format!("/tenants/acme/executions/{eid}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(trace["status"], "completed");
    let steps = trace["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{trace:#}");
    assert_eq!(steps[0]["name"], "post_order");
    assert_eq!(steps[0]["status"], "completed");
    assert_eq!(steps[0]["input"]["method"], "POST");
    assert_eq!(steps[0]["output"]["status"], 200);
    assert_eq!(steps[0]["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(steps[1]["output"]["first_sku"], "IPOD2008BLACK");
    assert_eq!(steps[1]["output"]["sink_answer"], "sink-1");
    assert_eq!(steps[1]["output"]["label"], "order for John");
    assert!(trace["startedAt"].is_string() && trace["finishedAt"].is_string());

    // The same delivery again: duplicate, no second execution.
    let (status, dup) = send(&server.client, &url, &headers, &body).await;
    assert_eq!(status, 200, "{dup}");
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["eventId"], event_id.as_str());

    // A tampered body: 401 naming the check, no execution.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let (status, err) = send(&server.client, &url, &headers, &tampered).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["code"], "UNAUTHORIZED");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("x-shopify-hmac-sha256"),
        "{err}"
    );
    // No signature at all.
    let (status, err) = send(&server.client, &url, &headers[1..], &body).await;
    assert_eq!(status, 401);
    assert!(
        err["message"].as_str().unwrap_or("").contains("missing"),
        "{err}"
    );

    // Another tenant cannot read this execution.
    let (s, err) = server
        .get_json(&format!("/tenants/globex/executions/{eid}"))
        .await;
    assert_eq!(s, 404);
    assert_eq!(err["code"], "NOT_FOUND");
    assert_eq!(
        err["message"],
        "The resource does not exist, or you do not have access."
    );

    // Still exactly one execution and one sink delivery.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.executions("acme").await.len(), 1);
    assert_eq!(sink.received().len(), 1);

    // The event history shows the normalized name.
    let (_, events) = server.get_json("/tenants/acme/events").await;
    assert_eq!(events["events"][0]["eventType"], "order.created");
    assert_eq!(events["events"][0]["executionIds"][0], eid);

    // Metrics moved.
    let metrics = server.metrics_text().await;
    for needle in [
        "sluice_webhooks_received_total{connector=\"shopify\",outcome=\"accepted\"} 1",
        "sluice_webhooks_received_total{connector=\"shopify\",outcome=\"duplicate\"} 1",
        "sluice_webhooks_received_total{connector=\"shopify\",outcome=\"unauthorized\"} 2",
        "sluice_executions_total{status=\"completed\"} 1",
        "sluice_step_duration_seconds_bucket",
        "sluice_outbox_pending",
        "sluice_storage_commit_seconds_bucket{le=\"0.0001\"}",
        "sluice_storage_commit_group_size_bucket",
        "sluice_storage_write_buffer_bytes",
        "sluice_storage_journals",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_step_is_retried_then_fails_the_execution_with_datasource_debug() {
    use axum::routing::post;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // A provider that always answers 503 with a JSON error.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/fail",
        post(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"ok": false, "error": "channel_not_found"})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let url = server.webhook("default", "github", "gh-secret").await;
    server
        .live_flow(
            "default",
            &json!({
                "name": "issue_alert",
                "trigger": {"type": "event", "source": "github", "event": "issues.opened"},
                "steps": [
                    {"name": "notify", "type": "action", "connector": "http", "action": "request",
                     "input": {"method": "POST", "url": format!("http://{addr}/fail"), "body": {"n": "{{trigger.issue.number}}"}},
                     "retry": {"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 10}},
                    {"name": "after", "type": "action", "mapping": {"x": "1"}}
                ]
            }),
        )
        .await;
    let body = br#"{"action":"opened","issue":{"number":7}}"#;
    let headers = common::github_headers("gh-secret", body, "issues", "d1");
    let (s, _) = send(&server.client, &url, &headers, body).await;
    assert_eq!(s, 202);
    let execs = server
        .wait_executions("default", 30, |e| {
            e.len() == 1 && e[0]["status"] == "failed"
        })
        .await;
    let eid = execs[0]["id"].as_str().expect("id");
    let (_, trace) = server
        .get_json(&format!("/tenants/default/executions/{eid}"))
        .await;
    let steps = trace["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["status"], "failed");
    assert_eq!(steps[0]["attempts"].as_array().map(Vec::len), Some(3));
    assert_eq!(steps[0]["error"]["code"], "DATASOURCE_CONNECTION_ERROR");
    assert_eq!(
        steps[0]["error"]["datasourceDebug"]["jsonObject"]["error"],
        "channel_not_found"
    );
    assert_eq!(steps[1]["status"], "skipped");
    assert_eq!(trace["error"]["step"], "notify");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_copies_of_one_delivery_make_one_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let sink = Sink::start().await;
    let url = server.webhook("default", "shopify", SECRET).await;
    server.live_flow("default", &flow(&sink.url)).await;
    let body = order_body();
    let headers = shopify_headers(SECRET, &body, "orders/create", "same-delivery");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, headers, body) = (
            server.client.clone(),
            url.clone(),
            headers.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            send(&client, &url, &headers, &body).await
        }));
    }
    let mut accepted = Vec::new();
    let mut duplicates = Vec::new();
    for t in tasks {
        let (status, ack) = t.await.expect("join");
        match status {
            202 => accepted.push(ack["eventId"].clone()),
            200 => duplicates.push(ack["eventId"].clone()),
            other => panic!("unexpected {other}: {ack}"),
        }
    }
    assert_eq!(accepted.len(), 1);
    assert!(duplicates.iter().all(|d| d == &accepted[0]));
    server
        .wait_executions("default", 30, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.executions("default").await.len(), 1);
    assert_eq!(sink.received().len(), 1);
}
