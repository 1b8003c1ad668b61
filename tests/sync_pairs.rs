//! Sync pairs through the API against local mock providers: a change on one side is written
//! to the other, the engine's own write coming back is an echo (no second write), and under
//! `manual` a record changed on both sides is flagged, listed and resolved.

mod common;

use std::sync::{Arc, Mutex};

use axum::routing::{post, put};
use common::Server;
use serde_json::{Value, json};

type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// Shopify customers (update: PUT /customers/{id}.json) and Xero contacts (create: POST
/// /Contacts, update: POST /Contacts/{id}).
async fn mocks() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let (c1, c2, c3) = (calls.clone(), calls.clone(), calls.clone());
    let app = axum::Router::new()
        .route(
            "/shop/customers/{id}",
            put(
                move |axum::extract::Path(id): axum::extract::Path<String>,
                      axum::Json(b): axum::Json<Value>| {
                    let c = c1.clone();
                    async move {
                        c.lock()
                            .expect("lock")
                            .push((format!("shopify.update {id}"), b.clone()));
                        axum::Json(json!({"customer": b["customer"]}))
                    }
                },
            ),
        )
        .route(
            "/xero/Contacts",
            post(move |axum::Json(b): axum::Json<Value>| {
                let c = c2.clone();
                async move {
                    c.lock().expect("lock").push(("xero.create".into(), b));
                    axum::Json(json!({"Contacts": [{"ContactID": "X-1"}]}))
                }
            }),
        )
        .route(
            "/xero/Contacts/{id}",
            post(
                move |axum::extract::Path(id): axum::extract::Path<String>,
                      axum::Json(b): axum::Json<Value>| {
                    let c = c3.clone();
                    async move {
                        c.lock()
                            .expect("lock")
                            .push((format!("xero.update {id}"), b));
                        axum::Json(json!({"Contacts": [{"ContactID": id}]}))
                    }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_is_suppressed_and_manual_conflicts_are_resolved_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (base, calls) = mocks().await;
    let shop = server
        .credential("default", &json!({"connector": "shopify", "auth": {"type": "apiKey", "key": "k"},
                                      "baseUrl": format!("{base}/shop"), "params": {"shop": "acme"}}))
        .await;
    let xero = server
        .credential("default", &json!({"connector": "xero", "auth": {"type": "oauth2", "accessToken": "a", "expiresAt": 4000000000u64},
                                      "baseUrl": format!("{base}/xero"), "params": {"xeroTenantId": "t"}}))
        .await;
    let (s, pair) = server
        .post_json(
            "/tenants/default/syncs",
            &json!({
            "source": {"connector": "shopify", "entity": "customer", "credential": shop},
            "target": {"connector": "xero", "entity": "contact", "credential": xero},
            "strategy": "manual", "fields": ["email", "phone"]}),
        )
        .await;
    assert_eq!(s, 201, "{pair}");
    let sid = pair["id"].as_str().expect("id");
    let changes = format!("/tenants/default/syncs/{sid}/changes");

    // A new Shopify customer is created in Xero and the ids are linked.
    let (s, out) = server
        .post_json(&changes, &json!({"source": {"id": 207119551, "record": {"email": "bob@x.com", "phone": "1", "note": "not synced"}, "updatedAt": 1000}}))
        .await;
    assert_eq!(
        (s, out["outcome"].as_str()),
        (200, Some("written")),
        "{out}"
    );
    assert_eq!(out["targetId"], "X-1");
    assert_eq!(calls.lock().expect("lock").len(), 1);

    // Xero's webhook then reports the record the engine just wrote: an echo, nothing written.
    let (_, out) = server
        .post_json(&changes, &json!({"target": {"id": "X-1", "record": {"email": "bob@x.com", "phone": "1", "UpdatedDateUTC": "x"}}}))
        .await;
    assert_eq!(out["outcome"], "unchanged", "{out}");
    assert_eq!(calls.lock().expect("lock").len(), 1, "no second sync");

    // Both sides change the phone: flagged for review.
    let (_, out) = server
        .post_json(&changes, &json!({
            "source": {"id": "207119551", "record": {"email": "bob@x.com", "phone": "2"}, "updatedAt": 2000},
            "target": {"id": "X-1", "record": {"email": "bob@x.com", "phone": "3"}, "updatedAt": 3000}}))
        .await;
    assert_eq!(out["outcome"], "conflict", "{out}");
    let (_, listed) = server
        .get_json(&format!(
            "/tenants/default/syncs/{sid}/conflicts?status=open"
        ))
        .await;
    let conflict = &listed["conflicts"][0];
    assert_eq!(conflict["source"]["phone"], "2");
    assert_eq!(conflict["target"]["phone"], "3");
    let cid = conflict["id"].as_str().expect("cid");
    assert_eq!(
        calls.lock().expect("lock").len(),
        1,
        "nothing written while flagged"
    );

    // Resolve with the source's version: written to Xero only.
    let (s, out) = server
        .post_json(
            &format!("/tenants/default/syncs/{sid}/conflicts/{cid}/resolve"),
            &json!({"resolution": "source"}),
        )
        .await;
    assert_eq!(
        (s, out["outcome"].as_str()),
        (200, Some("written")),
        "{out}"
    );
    {
        let c = calls.lock().expect("lock");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].0, "xero.update X-1");
        assert_eq!(c[1].1["Contacts"][0]["phone"], "2");
    }
    let (s, again) = server
        .post_json(
            &format!("/tenants/default/syncs/{sid}/conflicts/{cid}/resolve"),
            &json!({"resolution": "target"}),
        )
        .await;
    assert_eq!(s, 409, "{again}");
    let (_, open) = server
        .get_json(&format!(
            "/tenants/default/syncs/{sid}/conflicts?status=open"
        ))
        .await;
    assert_eq!(open["conflicts"].as_array().map(Vec::len), Some(0));

    // Shopify now changes the email; the write goes to Xero's update action.
    let (_, out) = server
        .post_json(&changes, &json!({"source": {"id": "207119551", "record": {"email": "robert@x.com", "phone": "2"}}}))
        .await;
    assert_eq!(out["outcome"], "written", "{out}");
    assert_eq!(calls.lock().expect("lock")[2].0, "xero.update X-1");

    // Bad pairs are refused.
    let (s, e) = server
        .post_json(
            "/tenants/default/syncs",
            &json!({
            "source": {"connector": "shopify", "entity": "customer", "credential": shop},
            "target": {"connector": "xero", "entity": "contact", "credential": shop},
            "strategy": "merge"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = server
        .post_json(
            "/tenants/default/syncs",
            &json!({
            "source": {"connector": "shopify", "entity": "customer", "credential": shop},
            "target": {"connector": "xero", "entity": "contact", "credential": xero},
            "strategy": "newest"}),
        )
        .await;
    assert_eq!(s, 400);
}
