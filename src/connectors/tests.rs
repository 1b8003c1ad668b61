//! The executor against local mock providers (wiremock on 127.0.0.1) answering in each
//! provider's documented shapes: auth headers, pagination to the last page, 429 with
//! `Retry-After`, provider errors under `datasourceDebug`, OAuth2 refresh, the network policy
//! and SMTP delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_actors::connector::{ActionCall, ActionError, ActionInvoker};
use sluice_storage::{CredentialRecord, Store, StoreOptions, TenantRecord, WriteSet};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::credentials::{Auth, seal_into};
use super::{ConnectorInvoker, NetPolicy, Vault};

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    vault: Arc<Vault>,
    invoker: ConnectorInvoker,
}

async fn harness(allow_private: bool) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("store");
    let mut w = WriteSet::new();
    w.put_tenant(&TenantRecord {
        space_id: "sp".into(),
        id: "t".into(),
        created_at_ms: 0,
    })
    .expect("tenant");
    store.commit(w).await.expect("commit");
    let vault = Arc::new(Vault::from_key([9; 32]));
    let invoker = ConnectorInvoker::new(
        store.clone(),
        vault.clone(),
        NetPolicy { allow_private },
        crate::own_calls::OwnCalls::default(),
    )
    .expect("invoker");
    Harness {
        _dir: dir,
        store,
        vault,
        invoker,
    }
}

impl Harness {
    async fn credential(&self, id: &str, connector: &str, auth: Value, base: &str, params: Value) {
        let auth: Auth = serde_json::from_value(auth).expect("auth");
        let mut r = CredentialRecord {
            id: id.into(),
            tenant_id: "t".into(),
            connector: connector.into(),
            name: id.into(),
            auth_type: auth.kind().into(),
            base_url: Some(base.to_owned()),
            params_json: params.to_string(),
            nonce: Vec::new(),
            ciphertext: Vec::new(),
            version: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        seal_into(&self.vault, &mut r, &auth).expect("seal");
        let mut w = WriteSet::new();
        w.put_credential("sp", &r).expect("put");
        self.store.commit(w).await.expect("commit");
    }

    async fn call(
        &self,
        connector: &str,
        action: &str,
        credential: Option<&str>,
        input: Value,
    ) -> Result<Value, ActionError> {
        self.invoker
            .invoke(ActionCall {
                connector: connector.into(),
                action: action.into(),
                input,
                idempotency_key: "idem-1".into(),
                timeout: Duration::from_secs(10),
                space: "sp".into(),
                tenant: "t".into(),
                credential: credential.map(str::to_owned),
                lineage: Default::default(),
                execution_id: None,
            })
            .await
    }
}

fn json_resp(v: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

#[tokio::test]
async fn shopify_follows_link_pages_honours_429_and_sends_its_token() {
    let h = harness(true).await;
    let mock = MockServer::start().await;
    let base = format!("{}/admin/api/2024-10", mock.uri());
    h.credential(
        "shop",
        "shopify",
        json!({"type": "apiKey", "key": "shpat_1"}),
        &base,
        json!({"shop": "acme"}),
    )
    .await;
    // Page 2 (asked through the Link header's page_info).
    Mock::given(method("GET"))
        .and(path("/admin/api/2024-10/orders.json"))
        .and(query_param("page_info", "p2"))
        .and(header("x-shopify-access-token", "shpat_1"))
        .respond_with(
            json_resp(json!({"orders": [{"id": 3u64}]}))
                .insert_header("x-shopify-shop-api-call-limit", "2/40"),
        )
        .expect(1)
        .mount(&mock)
        .await;
    // Page 1: first a 429 with Retry-After: 1, then the page with a next link.
    Mock::given(method("GET"))
        .and(path("/admin/api/2024-10/orders.json"))
        .and(query_param("status", "any"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_json(json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&mock)
        .await;
    let next = format!("<{base}/orders.json?limit=250&page_info=p2>; rel=\"next\"");
    Mock::given(method("GET"))
        .and(path("/admin/api/2024-10/orders.json"))
        .and(query_param("status", "any"))
        .and(header("x-shopify-access-token", "shpat_1"))
        .respond_with(
            json_resp(json!({"orders": [{"id": 820982911946154508u64}, {"id": 2u64}]}))
                .insert_header("link", next.as_str()),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let started = Instant::now();
    let out = h
        .call("shopify", "listOrders", Some("shop"), json!({}))
        .await
        .expect("list");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(out["pages"], 2);
    assert_eq!(out["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        out["data"][0]["id"],
        json!(820982911946154508u64),
        "ids stay exact"
    );
}

#[tokio::test]
async fn stripe_cursor_pages_bearer_key_and_form_bodies() {
    let h = harness(true).await;
    let mock = MockServer::start().await;
    h.credential(
        "st",
        "stripe",
        json!({"type": "apiKey", "key": "sk_test_1"}),
        &format!("{}/v1", mock.uri()),
        json!({}),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .and(query_param("starting_after", "ch_2"))
        .respond_with(json_resp(json!({"object": "list", "has_more": false, "data": [{"id": "ch_3", "amount": 2000, "currency": "usd"}]})))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/charges"))
        .and(header("authorization", "Bearer sk_test_1"))
        .respond_with(json_resp(
            json!({"object": "list", "has_more": true, "data": [{"id": "ch_1"}, {"id": "ch_2"}]}),
        ))
        .up_to_n_times(1)
        .mount(&mock)
        .await;
    let out = h
        .call("stripe", "listCharges", Some("st"), json!({}))
        .await
        .expect("list");
    assert_eq!(out["pages"], 2);
    let ids: Vec<&str> = out["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["ch_1", "ch_2", "ch_3"]);

    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header("idempotency-key", "idem-1"))
        .and(body_string_contains("metadata%5Border%5D=1001"))
        .respond_with(json_resp(
            json!({"id": "cus_9", "object": "customer", "email": "a@b.c"}),
        ))
        .expect(1)
        .mount(&mock)
        .await;
    let out = h
        .call(
            "stripe",
            "createCustomer",
            Some("st"),
            json!({"body": {"email": "a@b.c", "metadata": {"order": 1001}}}),
        )
        .await
        .expect("create");
    assert_eq!(out["id"], "cus_9");
    // A Stripe error answer is surfaced whole for datasourceDebug.
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(402).set_body_json(json!({"error": {"type": "card_error", "code": "charge_already_refunded", "message": "Charge ch_1 has already been refunded."}})))
        .mount(&mock)
        .await;
    let e = h
        .call(
            "stripe",
            "createRefund",
            Some("st"),
            json!({"body": {"charge": "ch_1"}}),
        )
        .await
        .expect_err("402");
    assert_eq!(e.status, Some(402));
    assert!(!e.retryable);
    assert_eq!(
        e.debug.as_ref().map(|d| d["error"]["code"].clone()),
        Some(json!("charge_already_refunded"))
    );
}

#[tokio::test]
async fn slack_ok_false_is_an_error_and_users_page_by_cursor() {
    let h = harness(true).await;
    let mock = MockServer::start().await;
    h.credential(
        "sl",
        "slack",
        json!({"type": "apiKey", "key": "xoxb-1"}),
        &format!("{}/api", mock.uri()),
        json!({}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", "Bearer xoxb-1"))
        .respond_with(json_resp(
            json!({"ok": false, "error": "channel_not_found"}),
        ))
        .mount(&mock)
        .await;
    let e = h
        .call(
            "slack",
            "sendMessage",
            Some("sl"),
            json!({"body": {"channel": "C1", "text": "hi"}}),
        )
        .await
        .expect_err("ok: false");
    assert_eq!(
        e.debug,
        Some(json!({"ok": false, "error": "channel_not_found"}))
    );
    Mock::given(method("GET"))
        .and(path("/api/users.list"))
        .and(query_param("cursor", "dXNlcjpVMEc5V0ZYTlo="))
        .respond_with(json_resp(json!({"ok": true, "members": [{"id": "U2"}], "response_metadata": {"next_cursor": ""}})))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/users.list"))
        .respond_with(json_resp(json!({"ok": true, "members": [{"id": "U1"}], "response_metadata": {"next_cursor": "dXNlcjpVMEc5V0ZYTlo="}})))
        .mount(&mock)
        .await;
    let out = h
        .call("slack", "listUsers", Some("sl"), json!({}))
        .await
        .expect("users");
    assert_eq!(out["data"], json!([{"id": "U1"}, {"id": "U2"}]));
}

/// The other connectors' main actions: their auth lands where the provider documents it,
/// list actions page to the end, and created ids are picked from the documented answer.
#[tokio::test]
async fn every_other_connector_main_action_against_its_documented_shape() {
    let h = harness(true).await;
    let mock = MockServer::start().await;
    let uri = mock.uri();
    // Xero: OAuth2 bearer + xero-tenant-id; page pagination stops at a short page.
    h.credential(
        "xe",
        "xero",
        json!({"type": "oauth2", "accessToken": "xat", "expiresAt": 4_000_000_000u64}),
        &format!("{uri}/xero"),
        json!({"xeroTenantId": "tn-1"}),
    )
    .await;
    let full: Vec<Value> = (0..100)
        .map(|i| json!({"InvoiceID": format!("i{i}")}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/xero/Invoices"))
        .and(query_param("page", "1"))
        .and(header("authorization", "Bearer xat"))
        .and(header("xero-tenant-id", "tn-1"))
        .respond_with(json_resp(json!({"Invoices": full})))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/xero/Invoices"))
        .and(query_param("page", "2"))
        .respond_with(json_resp(json!({"Invoices": [{"InvoiceID": "last"}]})))
        .mount(&mock)
        .await;
    let out = h
        .call("xero", "listInvoices", Some("xe"), json!({}))
        .await
        .expect("xero");
    assert_eq!(
        (out["pages"].clone(), out["data"].as_array().map(Vec::len)),
        (json!(2), Some(101))
    );

    // QuickBooks: realm in the path, minorversion, created id from Invoice.Id.
    h.credential(
        "qb",
        "quickbooks",
        json!({"type": "oauth2", "accessToken": "qat", "expiresAt": 4_000_000_000u64}),
        &format!("{uri}/qbo/v3/company/{{realmId}}"),
        json!({"realmId": "9130"}),
    )
    .await;
    Mock::given(method("POST")).and(path("/qbo/v3/company/9130/invoice")).and(query_param("minorversion", "75"))
        .and(header("authorization", "Bearer qat"))
        .respond_with(json_resp(json!({"Invoice": {"Id": "130", "SyncToken": "0", "TotalAmt": 150.0}, "time": "2013-11-15T15:22:43-08:00"})))
        .mount(&mock).await;
    let out = h
        .call(
            "quickbooks",
            "createInvoice",
            Some("qb"),
            json!({"body": {"Line": []}}),
        )
        .await
        .expect("qbo");
    assert_eq!(out["id"], "130");

    // Cin7 Core: custom account headers, Page/Limit pagination.
    h.credential("cc", "cin7core", json!({"type": "custom", "headers": {"api-auth-accountid": "acc", "api-auth-applicationkey": "key"}}), &format!("{uri}/cin7core"), json!({}))
        .await;
    Mock::given(method("GET"))
        .and(path("/cin7core/saleList"))
        .and(query_param("Page", "1"))
        .and(query_param("Limit", "100"))
        .and(header("api-auth-accountid", "acc"))
        .and(header("api-auth-applicationkey", "key"))
        .respond_with(json_resp(
            json!({"Total": 1, "Page": 1, "SaleList": [{"SaleID": "s-1"}]}),
        ))
        .mount(&mock)
        .await;
    let out = h
        .call("cin7core", "listSalesOrders", Some("cc"), json!({}))
        .await
        .expect("cin7 core");
    assert_eq!(out["data"], json!([{"SaleID": "s-1"}]));

    // Cin7 Omni: Basic auth, page/rows, array answers.
    h.credential(
        "co",
        "cin7omni",
        json!({"type": "basic", "username": "u", "password": "p"}),
        &format!("{uri}/omni"),
        json!({}),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/omni/SalesOrders"))
        .and(query_param("rows", "250"))
        .and(header("authorization", "Basic dTpw"))
        .respond_with(json_resp(json!([{"id": 1, "reference": "SO-1"}])))
        .mount(&mock)
        .await;
    let out = h
        .call("cin7omni", "listOrders", Some("co"), json!({}))
        .await
        .expect("omni");
    assert_eq!(out["data"][0]["reference"], "SO-1");

    // GitHub: bearer token, API version header, Link pagination, path params.
    h.credential(
        "gh",
        "github",
        json!({"type": "apiKey", "key": "ghp_1"}),
        &format!("{uri}/gh"),
        json!({}),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/gh/repos/octo/hello/issues"))
        .and(query_param("page", "2"))
        .respond_with(json_resp(json!([{"number": 2}])))
        .mount(&mock)
        .await;
    let link = format!(
        "<{uri}/gh/repos/octo/hello/issues?per_page=100&page=2>; rel=\"next\", <{uri}/gh/repos/octo/hello/issues?per_page=100&page=2>; rel=\"last\""
    );
    Mock::given(method("GET"))
        .and(path("/gh/repos/octo/hello/issues"))
        .and(header("authorization", "Bearer ghp_1"))
        .and(header("x-github-api-version", "2022-11-28"))
        .respond_with(json_resp(json!([{"number": 1}])).insert_header("link", link.as_str()))
        .mount(&mock)
        .await;
    let out = h
        .call(
            "github",
            "listIssues",
            Some("gh"),
            json!({"owner": "octo", "repo": "hello"}),
        )
        .await
        .expect("github");
    assert_eq!(out["data"], json!([{"number": 1}, {"number": 2}]));

    // OpenAI: bearer key, chat completion answer.
    h.credential(
        "oa",
        "openai",
        json!({"type": "apiKey", "key": "sk-oa"}),
        &format!("{uri}/v1"),
        json!({}),
    )
    .await;
    Mock::given(method("POST")).and(path("/v1/chat/completions")).and(header("authorization", "Bearer sk-oa"))
        .respond_with(json_resp(json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]})))
        .mount(&mock).await;
    let out = h.call("openai", "chatCompletion", Some("oa"), json!({"body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}})).await.expect("openai");
    assert_eq!(out["data"][0]["message"]["content"], "Hi");
    assert_eq!(out["id"], "chatcmpl-1");

    // HTTP: a credential applies to the generic request too; 5xx is retryable.
    h.credential(
        "hk",
        "http",
        json!({"type": "apiKey", "key": "k1", "name": "X-Api-Key"}),
        &uri,
        json!({}),
    )
    .await;
    Mock::given(method("PUT"))
        .and(path("/any"))
        .and(header("x-api-key", "k1"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": "down"})))
        .mount(&mock)
        .await;
    let e = h
        .call(
            "http",
            "request",
            Some("hk"),
            json!({"method": "PUT", "url": format!("{uri}/any"), "body": {"a": 1}}),
        )
        .await
        .expect_err("503");
    assert!(e.retryable);
    assert_eq!(e.debug, Some(json!({"error": "down"})));
    // A credential of another connector is refused.
    let e = h
        .call("xero", "listInvoices", Some("gh"), json!({}))
        .await
        .expect_err("wrong connector");
    assert!(e.message.contains("is for github"), "{}", e.message);
}

/// A step's own `Idempotency-Key` is sent as the only one (two values are ambiguous to a
/// provider, and the execute API took the first); without one the connector's goes. A
/// `x-sluice-call` a step sets is never forwarded: only the invoker's token names a caller.
#[tokio::test]
async fn a_step_idempotency_key_wins_and_is_sent_once() {
    let h = harness(true).await;
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/keyed"))
        .respond_with(json_resp(json!({"ok": true})))
        .mount(&mock)
        .await;
    let url = format!("{}/keyed", mock.uri());
    h.call(
        "http",
        "request",
        None,
        json!({"method": "POST", "url": url,
               "headers": {"Idempotency-Key": "mine", "x-sluice-call": "forged"}}),
    )
    .await
    .expect("with a key");
    h.call(
        "http",
        "request",
        None,
        json!({"method": "POST", "url": url}),
    )
    .await
    .expect("without");
    let seen = mock.received_requests().await.expect("recorded");
    let keys = |i: usize| -> Vec<String> {
        seen[i]
            .headers
            .get_all("idempotency-key")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    };
    assert_eq!(keys(0), ["mine"]);
    assert_eq!(keys(1), ["idem-1"]);
    assert!(
        seen.iter()
            .all(|r| !r.headers.contains_key("x-sluice-call"))
    );
    assert!(seen.iter().all(|r| r.headers.contains_key("cdn-loop")));
}

#[tokio::test]
async fn oauth2_token_expired_mid_flow_is_refreshed_once_and_stored_sealed() {
    let h = harness(true).await;
    let mock = MockServer::start().await;
    let uri = mock.uri();
    h.credential("xe", "xero", json!({"type": "oauth2", "accessToken": "old", "refreshToken": "r1",
        "expiresAt": 1u64, "tokenUrl": format!("{uri}/connect/token"), "clientId": "cid", "clientSecret": "cs"}),
        &format!("{uri}/xero"), json!({"xeroTenantId": "tn"}))
        .await;
    Mock::given(method("POST")).and(path("/connect/token")).and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=r1"))
        .respond_with(json_resp(json!({"access_token": "new", "token_type": "Bearer", "expires_in": 1800, "refresh_token": "r2"})))
        .expect(1).mount(&mock).await;
    Mock::given(method("GET"))
        .and(path("/xero/Contacts"))
        .and(header("authorization", "Bearer new"))
        .respond_with(json_resp(json!({"Contacts": [{"ContactID": "c1"}]})))
        .expect(2)
        .mount(&mock)
        .await;
    h.call("xero", "listContacts", Some("xe"), json!({}))
        .await
        .expect("after refresh");
    // The next call uses the stored (rotated) token without refreshing again.
    h.call("xero", "listContacts", Some("xe"), json!({}))
        .await
        .expect("second call");
    let opened = super::credentials::open(&h.vault, &h.store, "sp", "t", "xe").expect("open");
    match opened.auth {
        Auth::OAuth2(s) => {
            assert_eq!(s.access_token.as_deref(), Some("new"));
            assert_eq!(s.refresh_token.as_deref(), Some("r2"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(opened.record.version, 2);

    // A refused refresh is an auth error (re-authorize), not retried.
    h.credential(
        "bad",
        "xero",
        json!({"type": "oauth2", "accessToken": "x", "refreshToken": "gone",
        "expiresAt": 1u64, "tokenUrl": format!("{uri}/connect/token2"), "clientId": "cid"}),
        &format!("{uri}/xero"),
        json!({"xeroTenantId": "tn"}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/connect/token2"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&mock)
        .await;
    let e = h
        .call("xero", "listContacts", Some("bad"), json!({}))
        .await
        .expect_err("refused");
    assert!(e.auth && !e.retryable, "{e:?}");
    assert_eq!(
        e.debug.as_ref().map(|d| d["error"].clone()),
        Some(json!("invalid_grant"))
    );
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed() {
    let h = harness(false).await;
    let e = h
        .call(
            "http",
            "request",
            None,
            json!({"method": "GET", "url": "http://127.0.0.1:9/x"}),
        )
        .await
        .expect_err("denied");
    assert!(e.message.contains("network policy"), "{}", e.message);
    let e = h
        .call(
            "http",
            "request",
            None,
            json!({"method": "GET", "url": "http://localhost:9/x"}),
        )
        .await
        .expect_err("denied");
    assert!(e.message.contains("network policy"), "{}", e.message);
}

/// A minimal SMTP server (RFC 5321 happy path) that records each message's DATA.
async fn smtp_sink() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(buf) = data.as_mut() {
                        if line == "." {
                            g.lock().expect("lock").push(std::mem::take(buf));
                            data = None;
                            let _ = w.write_all(b"250 2.0.0 queued\r\n").await;
                        } else {
                            buf.push_str(&line);
                            buf.push('\n');
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if upper.starts_with("DATA") {
                        data = Some(String::new());
                        b"354 go ahead\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, got)
}

#[tokio::test]
async fn email_is_delivered_to_a_local_smtp_server() {
    let h = harness(true).await;
    let (port, got) = smtp_sink().await;
    h.credential(
        "mail",
        "email",
        json!({"type": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"}),
        "http://unused",
        json!({}),
    )
    .await;
    let out = h
        .call("email", "send", Some("mail"), json!({
            "from": "Shop <shop@example.com>", "to": ["ann@example.com"], "subject": "Invoice INV-7",
            "text": "Your invoice is attached.",
            "attachments": [{"filename": "inv.txt", "contentType": "text/plain", "contentBase64": "SU5WLTc="}]
        }))
        .await
        .expect("sent");
    let messages = got.lock().expect("lock").clone();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].contains("Subject: Invoice INV-7"),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains("inv.txt"), "{}", messages[0]);
    assert!(messages[0].contains(out["messageId"].as_str().expect("id")));
    // Under the default policy the same local server is refused.
    let denied = harness(false).await;
    denied
        .credential(
            "mail",
            "email",
            json!({"type": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"}),
            "http://unused",
            json!({}),
        )
        .await;
    let e = denied
        .call(
            "email",
            "send",
            Some("mail"),
            json!({"from": "a@example.com", "to": "b@example.com", "subject": "x", "text": "y"}),
        )
        .await
        .expect_err("policy");
    assert!(e.message.contains("network policy"), "{}", e.message);
    assert_eq!(got.lock().expect("lock").len(), 1);
}
