//! Polling end to end: a poll of Shopify orders against a local mock Shopify (API key
//! credential with `baseUrl`) emits one P4 `order.changed` event per record on the first
//! poll, none when nothing changed, one for a changed record, and a flow triggered on
//! `{source: shopify, event: order.changed}` runs at P4 for each.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use common::Server;
use serde_json::{Value, json};

#[derive(Default)]
struct MockShopify {
    orders: Vec<Value>,
    /// (token header, `updated_at_min`) of every list call.
    calls: Vec<(String, Option<String>)>,
}

type Shared = Arc<Mutex<MockShopify>>;

async fn list_orders(
    State(s): State<Shared>,
    headers: axum::http::HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::Json<Value> {
    let mut m = s.lock().expect("lock");
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let since = q.get("updated_at_min").cloned();
    m.calls.push((token, since.clone()));
    // Shopify's `updated_at_min` is inclusive; these fixtures share one offset, so text order
    // is time order.
    let orders: Vec<Value> = m
        .orders
        .iter()
        .filter(|o| {
            since
                .as_deref()
                .is_none_or(|s| o["updated_at"].as_str().unwrap_or("") >= s)
        })
        .cloned()
        .collect();
    axum::Json(json!({ "orders": orders }))
}

async fn mock_shopify() -> (String, Shared) {
    let state = Shared::default();
    state.lock().expect("lock").orders = vec![
        json!({"id": 1001, "total_price": "10.00", "updated_at": "2026-01-01T10:00:00-05:00"}),
        json!({"id": 1002, "total_price": "20.00", "updated_at": "2026-01-01T11:00:00-05:00"}),
    ];
    let app = axum::Router::new()
        .route("/admin/api/2024-10/orders.json", get(list_orders))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/admin/api/2024-10"), state)
}

async fn p4_runs(server: &Server, n: usize) -> Vec<Value> {
    server
        .wait_executions("acme", 20, |e| {
            e.len() >= n && e.iter().all(|x| x["status"] == "completed")
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_changes_become_p4_events_once_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (shopify, mock) = mock_shopify().await;
    server.tenant("acme").await;
    let cred = server
        .credential(
            "acme",
            &json!({"connector": "shopify", "name": "shop",
                    "auth": {"type": "apiKey", "key": "shpat_poll"},
                    "baseUrl": shopify, "params": {"shop": "acme"}}),
        )
        .await;
    server
        .live_flow(
            "acme",
            &json!({"name": "on_order_change",
                    "trigger": {"type": "event", "source": "shopify", "event": "order.changed"},
                    "steps": [{"name": "seen", "type": "action",
                               "mapping": {"id": "{{trigger.id}}", "total": "{{trigger.total_price}}"}}]}),
        )
        .await;

    // Bad registrations are refused.
    for (body, what) in [
        (
            json!({"connector": "shopify", "entity": "nope", "credential": cred, "everyMs": 200}),
            "entity",
        ),
        (
            json!({"connector": "shopify", "entity": "order", "action": "createOrder", "credential": cred, "everyMs": 200}),
            "list action",
        ),
        (
            json!({"connector": "shopify", "entity": "order", "credential": cred, "everyMs": 5}),
            "everyMs",
        ),
        (
            json!({"connector": "shopify", "entity": "order", "everyMs": 200}),
            "credential",
        ),
    ] {
        let (s, e) = server.post_json("/tenants/acme/polls", &body).await;
        assert_eq!(s, 400, "{what}: {e}");
    }

    let (s, poll) = server
        .post_json(
            "/tenants/acme/polls",
            &json!({"connector": "shopify", "entity": "order", "credential": cred, "everyMs": 200}),
        )
        .await;
    assert_eq!(s, 201, "{poll}");
    assert_eq!(poll["action"], "listOrders");
    assert_eq!(poll["sinceParam"], "updated_at_min");
    let pid = poll["id"].as_str().expect("id").to_owned();

    // First poll: one event per record, each running the flow at P4.
    let runs = p4_runs(&server, 2).await;
    assert!(runs.iter().all(|e| e["priority"] == "P4"), "{runs:#?}");
    // Several more polls go by with nothing changed: no more events.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(server.executions("acme").await.len(), 2);
    {
        let m = mock.lock().expect("lock");
        assert!(m.calls.len() >= 3, "polled on schedule: {:?}", m.calls);
        assert!(m.calls.iter().all(|(t, _)| t == "shpat_poll"));
        assert_eq!(m.calls[0].1, None, "the first poll lists everything");
        assert_eq!(
            m.calls.last().expect("call").1.as_deref(),
            Some("2026-01-01T11:00:00-05:00"),
            "later polls send the cursor"
        );
    }

    // One record changes: exactly one more event.
    mock.lock().expect("lock").orders[0] =
        json!({"id": 1001, "total_price": "12.50", "updated_at": "2026-01-01T12:00:00-05:00"});
    let runs = p4_runs(&server, 3).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let runs_after = server.executions("acme").await;
    assert_eq!(runs_after.len(), 3, "{runs:#?}");
    let (_, newest) = server
        .get_json(&format!(
            "/tenants/acme/executions/{}",
            runs_after[0]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(newest["priority"], "P4", "{newest}");
    assert_eq!(newest["steps"][0]["output"]["total"], "12.50", "{newest}");

    let (s, shown) = server.get_json(&format!("/tenants/acme/polls/{pid}")).await;
    assert_eq!(s, 200);
    assert_eq!(shown["emitted"], 3);
    assert_eq!(shown["cursor"], "2026-01-01T12:00:00-05:00");
    assert!(shown["lastError"].is_null(), "{shown}");
    let (_, listed) = server.get_json("/tenants/acme/polls").await;
    assert_eq!(listed["polls"].as_array().map(Vec::len), Some(1));

    // Deleted: no more calls.
    let r = server
        .api(
            reqwest::Method::DELETE,
            &format!("/tenants/acme/polls/{pid}"),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = mock.lock().expect("lock").calls.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(mock.lock().expect("lock").calls.len(), calls);
    let (s, _) = server.get_json(&format!("/tenants/acme/polls/{pid}")).await;
    assert_eq!(s, 404);
}
