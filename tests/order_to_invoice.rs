//! The reference's main scenario end to end: a Shopify `orders/create` webhook runs an
//! `order_to_invoice` flow whose step is Xero's `createInvoice` (a local mock Xero with an
//! OAuth2 token endpoint); the ID map links the order to the invoice, and a later
//! `orders/updated` for the same order updates that invoice instead of creating another.
//! Also: credentials are sealed at rest (the secret is in no file of the data directory) and
//! never returned.

mod common;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use common::{Server, send, shopify_headers};
use serde_json::{Value, json};

const SECRET: &str = "shpss_main";
const CLIENT_SECRET: &str = "xero-client-secret-NEVER-ON-DISK";

#[derive(Default)]
struct MockXero {
    creates: Vec<Value>,
    updates: Vec<(String, Value)>,
    refreshes: usize,
    auth_headers: Vec<String>,
}

async fn mock_xero() -> (String, Arc<Mutex<MockXero>>) {
    let state: Arc<Mutex<MockXero>> = Arc::default();
    let (s1, s2, s3) = (state.clone(), state.clone(), state.clone());
    let app = axum::Router::new()
        .route(
            "/connect/token",
            post(move |body: String| {
                let s = s1.clone();
                async move {
                    assert!(body.contains("grant_type=refresh_token"), "{body}");
                    s.lock().expect("lock").refreshes += 1;
                    axum::Json(json!({"access_token": "fresh-token", "token_type": "Bearer",
                                      "expires_in": 1800, "refresh_token": "r2"}))
                }
            }),
        )
        .route(
            "/api.xro/2.0/Invoices",
            post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let s = s2.clone();
                async move {
                    let mut m = s.lock().expect("lock");
                    m.auth_headers.push(
                        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned(),
                    );
                    m.creates.push(body.clone());
                    let inv = &body["Invoices"][0];
                    axum::Json(json!({"Id": "5b4d5f8a", "Status": "OK", "Invoices": [{
                        "InvoiceID": "243216c5-369e-4056-ac67-05388f86dc81", "Type": "ACCREC",
                        "InvoiceNumber": "INV-0001", "Contact": inv["Contact"], "LineItems": inv["LineItems"],
                        "Total": inv["Total"], "Status": "DRAFT"}]}))
                }
            }),
        )
        .route(
            "/api.xro/2.0/Invoices/{id}",
            post(move |axum::extract::Path(id): axum::extract::Path<String>, axum::Json(body): axum::Json<Value>| {
                let s = s3.clone();
                async move {
                    s.lock().expect("lock").updates.push((id.clone(), body));
                    axum::Json(json!({"Invoices": [{"InvoiceID": id, "Status": "DRAFT"}]}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

fn order(total: &str) -> Vec<u8> {
    let mut b = serde_json::to_vec(&json!({
        "id": 820982911946154508u64,
        "email": "jon@example.com",
        "currency": "USD",
        "total_price": total,
        "customer": {"email": "john@example.com", "first_name": "John", "last_name": "Smith"},
        "line_items": [{"sku": "IPOD2008BLACK", "title": "IPod Nano", "quantity": 2, "price": "199.00"}]
    }))
    .expect("json");
    b.push(b'\n');
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopify_order_becomes_a_xero_invoice_then_updates_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (xero, mock) = mock_xero().await;
    server.tenant("acme").await;
    let url = server.webhook("acme", "shopify", SECRET).await;
    // Tokens already issued, access token expired: the first call refreshes it.
    let cred = server
        .credential(
            "acme",
            &json!({"connector": "xero", "name": "Acme books",
                    "auth": {"type": "oauth2", "accessToken": "stale", "refreshToken": "r1",
                             "expiresAt": 1, "tokenUrl": format!("{xero}/connect/token"),
                             "clientId": "cid", "clientSecret": CLIENT_SECRET},
                    "baseUrl": format!("{xero}/api.xro/2.0"),
                    "params": {"xeroTenantId": "tn-1"}}),
        )
        .await;
    let (s, listed) = server.get_json("/tenants/acme/credentials").await;
    assert_eq!(s, 200);
    assert_eq!(listed["credentials"][0]["authType"], "oauth2");
    assert!(!listed.to_string().contains(CLIENT_SECRET) && !listed.to_string().contains("r1\""));

    // A step naming a credential of another tenant or connector is refused at save.
    let (s, e) = server
        .post_json(
            "/tenants/acme/workflows",
            &json!({"name": "bad", "trigger": {"type": "event", "source": "shopify", "event": "*"},
                    "steps": [{"name": "x", "type": "action", "connector": "xero", "action": "createInvoice", "credential": "cred_nope"}]}),
        )
        .await;
    assert_eq!((s, e["code"].as_str()), (400, Some("INVALID_FLOW")), "{e}");

    server
        .live_flow(
            "acme",
            &json!({
                "name": "order_to_invoice",
                "trigger": {"type": "event", "source": "shopify", "event": "*"},
                "steps": [{
                    "name": "to_invoice", "type": "action", "connector": "xero", "action": "createInvoice",
                    "credential": cred,
                    "idMap": {"system": "shopify", "entity": "order", "id": "{{trigger.id}}"},
                    "mapping": {
                        "Type": "ACCREC",
                        "Contact.EmailAddress": "{{trigger.customer.email}}",
                        "Contact.Name": "{{CONCAT(trigger.customer.first_name, ' ', trigger.customer.last_name)}}",
                        "LineItems": "{{trigger.line_items}}",
                        "Total": "{{ROUND(trigger.total_price, 2)}}",
                        "CurrencyCode": "{{trigger.currency}}"
                    },
                    "retry": {"maxAttempts": 2, "initialDelayMs": 50}
                }]
            }),
        )
        .await;

    let body = order("398.00");
    let h = shopify_headers(SECRET, &body, "orders/create", "d-1");
    let (s, _) = send(&server.client, &url, &h, &body).await;
    assert_eq!(s, 202);
    server
        .wait_executions("acme", 30, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    {
        let m = mock.lock().expect("lock");
        assert_eq!(m.refreshes, 1, "refreshed once");
        assert_eq!(m.auth_headers, ["Bearer fresh-token"]);
        let inv = &m.creates[0]["Invoices"][0];
        assert_eq!(inv["Contact"]["EmailAddress"], "john@example.com");
        assert_eq!(inv["Contact"]["Name"], "John Smith");
        assert_eq!(inv["LineItems"][0]["sku"], "IPOD2008BLACK");
        assert_eq!(inv["Total"], "398.00", "money stays a decimal string");
    }
    let invoice_id = "243216c5-369e-4056-ac67-05388f86dc81";
    let (_, links) = server
        .get_json("/tenants/acme/id-maps?system=shopify&entity=order&id=820982911946154508")
        .await;
    assert_eq!(links["links"][0]["otherSystem"], "xero");
    assert_eq!(links["links"][0]["otherId"], invoice_id);
    let (_, back) = server
        .get_json(&format!(
            "/tenants/acme/id-maps?system=xero&entity=invoice&id={invoice_id}"
        ))
        .await;
    assert_eq!(back["links"][0]["otherId"], "820982911946154508");

    // orders/updated for the same order: the invoice is updated, not created again.
    let body = order("420.50");
    let h = shopify_headers(SECRET, &body, "orders/updated", "d-2");
    let (s, _) = send(&server.client, &url, &h, &body).await;
    assert_eq!(s, 202);
    server
        .wait_executions("acme", 30, |e| {
            e.len() == 2 && e.iter().all(|x| x["status"] == "completed")
        })
        .await;
    {
        let m = mock.lock().expect("lock");
        assert_eq!(m.creates.len(), 1, "no second invoice");
        assert_eq!(m.updates.len(), 1);
        assert_eq!(m.updates[0].0, invoice_id);
        assert_eq!(m.updates[0].1["Invoices"][0]["Total"], "420.50");
        assert_eq!(m.refreshes, 1, "the refreshed token was stored and reused");
    }

    // The secrets are in no file of the data directory (only sealed).
    let needles: [&[u8]; 3] = [CLIENT_SECRET.as_bytes(), b"fresh-token", b"\"r2\""];
    let mut files = 0;
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).expect("read");
        files += 1;
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n),
                "{} contains a secret",
                entry.display()
            );
        }
    }
    assert!(files > 3, "the data directory was scanned ({files} files)");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_posting_to_loopback_is_refused_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_strict(dir.path());
    let sink = common::Sink::start().await;
    let url = server.webhook("default", "github", "gh").await;
    server
        .live_flow(
            "default",
            &json!({"name": "to_local", "trigger": {"type": "event", "source": "github", "event": "*"},
                    "steps": [{"name": "post", "type": "action", "connector": "http", "action": "request",
                               "input": {"method": "POST", "url": sink.url, "body": {"x": 1}}}]}),
        )
        .await;
    let body = br#"{"action":"opened","issue":{"number":1}}"#;
    let (s, _) = send(
        &server.client,
        &url,
        &common::github_headers("gh", body, "issues", "n1"),
        body,
    )
    .await;
    assert_eq!(s, 202);
    let execs = server
        .wait_executions("default", 30, |e| {
            e.len() == 1 && e[0]["status"] == "failed"
        })
        .await;
    let (_, trace) = server
        .get_json(&format!(
            "/tenants/default/executions/{}",
            execs[0]["id"].as_str().expect("id")
        ))
        .await;
    let msg = trace["steps"][0]["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(msg.contains("network policy"), "{trace:#}");
    assert!(sink.received().is_empty());
}
