//! OAuth2 authorization code with PKCE end to end: `authorize` gives a URL with an S256
//! challenge and a state; the callback exchanges the code at a local mock token endpoint that
//! checks `code_verifier` against that challenge; the tokens are stored sealed and used by
//! the next call. A state is single-use, and a verifier that does not match is refused.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use base64::Engine as _;
use common::Server;
use serde_json::{Value, json};
use sha2::Digest as _;

const REDIRECT: &str = "https://sluice.example.com/api/v1/oauth/callback";

#[derive(Default)]
struct MockProvider {
    /// The challenge the provider was shown at the authorization endpoint (the test plays
    /// the user's browser).
    challenge: String,
    exchanges: Vec<HashMap<String, String>>,
    api_auth: Vec<String>,
}

type Shared = Arc<Mutex<MockProvider>>;

async fn mock_provider() -> (String, Shared) {
    let state = Shared::default();
    let (s1, s2) = (state.clone(), state.clone());
    let app = axum::Router::new()
        .route(
            "/connect/token",
            post(move |body: String| {
                let s = s1.clone();
                async move {
                    let form: HashMap<String, String> =
                        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    let mut m = s.lock().expect("lock");
                    m.exchanges.push(form.clone());
                    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                    let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()));
                    let ok = form.get("grant_type").map(String::as_str) == Some("authorization_code")
                        && form.get("code").map(String::as_str) == Some("the-code")
                        && form.get("redirect_uri").map(String::as_str) == Some(REDIRECT)
                        && form.get("client_id").map(String::as_str) == Some("cid")
                        && derived == m.challenge;
                    if ok {
                        (axum::http::StatusCode::OK, axum::Json(json!({
                            "access_token": "AT-pkce-7Qz9", "token_type": "Bearer",
                            "expires_in": 1800, "refresh_token": "RT-pkce-7Qz9"})))
                    } else {
                        (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({
                            "error": "invalid_grant", "error_description": "PKCE verification failed"})))
                    }
                }
            }),
        )
        .route(
            "/api.xro/2.0/Invoices",
            get(move |headers: axum::http::HeaderMap| {
                let s = s2.clone();
                async move {
                    s.lock().expect("lock").api_auth.push(
                        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned(),
                    );
                    axum::Json(json!({"Invoices": [{"InvoiceID": "inv-1"}]}))
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

fn query(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

async fn callback(server: &Server, q: &str) -> (u16, Value) {
    // The provider redirects the browser here: no API key.
    let r = server
        .client
        .get(format!("{}/api/v1/oauth/callback?{q}", server.base))
        .send()
        .await
        .expect("callback");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_with_pkce_stores_tokens_that_calls_then_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let (provider, mock) = mock_provider().await;
    server.tenant("acme").await;
    let cred = server
        .credential(
            "acme",
            &json!({"connector": "xero", "name": "books",
                    "auth": {"type": "oauth2", "clientId": "cid", "clientSecret": "cs",
                             "tokenUrl": format!("{provider}/connect/token")},
                    "baseUrl": format!("{provider}/api.xro/2.0"),
                    "params": {"xeroTenantId": "tn-1"}}),
        )
        .await;

    let (s, start) = server
        .post_json(
            &format!("/tenants/acme/credentials/{cred}/authorize"),
            &json!({"redirectUri": REDIRECT, "scopes": ["offline_access", "accounting.transactions"]}),
        )
        .await;
    assert_eq!(s, 200, "{start}");
    let url = start["authorizeUrl"].as_str().expect("authorizeUrl");
    assert!(
        url.starts_with("https://login.xero.com/identity/connect/authorize?"),
        "{url}"
    );
    let q = query(url);
    let state = start["state"].as_str().expect("state").to_owned();
    assert_eq!(q["state"], state);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["client_id"], "cid");
    assert_eq!(q["scope"], "offline_access accounting.transactions");
    mock.lock().expect("lock").challenge = q["code_challenge"].clone();

    let (s, done) = callback(&server, &format!("code=the-code&state={state}")).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["credential"], cred.as_str());
    assert_eq!(done["authorized"], true);
    assert!(done["expiresAt"].is_string(), "{done}");
    {
        let m = mock.lock().expect("lock");
        assert_eq!(m.exchanges.len(), 1);
        assert!(m.exchanges[0].contains_key("code_verifier"));
    }
    // Single use.
    let (s, e) = callback(&server, &format!("code=the-code&state={state}")).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = callback(&server, "code=the-code&state=forged").await;
    assert_eq!(s, 400);
    let (_, shown) = server
        .get_json(&format!("/tenants/acme/credentials/{cred}"))
        .await;
    assert_eq!(shown["version"], 2, "{shown}");
    assert!(!shown.to_string().contains("AT-pkce-7Qz9"));

    // The stored token is what the next call sends.
    server
        .live_flow(
            "acme",
            &json!({"name": "list", "trigger": {"type": "event", "source": "app", "event": "go"},
                    "steps": [{"name": "invoices", "type": "action", "connector": "xero",
                               "action": "listInvoices", "credential": cred}]}),
        )
        .await;
    let (s, b) = server
        .post_json(
            "/tenants/acme/events",
            &json!({"source": "app", "event": "go", "payload": {}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    server
        .wait_executions("acme", 20, |e| {
            e.len() == 1 && e[0]["status"] == "completed"
        })
        .await;
    assert_eq!(mock.lock().expect("lock").api_auth, ["Bearer AT-pkce-7Qz9"]);

    // A verifier that does not match the challenge the provider saw is refused.
    let (_, again) = server
        .post_json(
            &format!("/tenants/acme/credentials/{cred}/authorize"),
            &json!({"redirectUri": REDIRECT}),
        )
        .await;
    let state2 = again["state"].as_str().expect("state").to_owned();
    assert_ne!(state2, state);
    mock.lock().expect("lock").challenge = "not-the-challenge".into();
    let (s, e) = callback(&server, &format!("code=the-code&state={state2}")).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["code"], "DATASOURCE_CONNECTION_ERROR");
    assert_eq!(e["isCustomAuthError"], true);
    assert_eq!(e["datasourceDebug"]["jsonObject"]["error"], "invalid_grant");

    // A provider error on the redirect is reported; an API-key credential cannot authorize.
    let (_, third) = server
        .post_json(
            &format!("/tenants/acme/credentials/{cred}/authorize"),
            &json!({"redirectUri": REDIRECT}),
        )
        .await;
    let (s, e) = callback(
        &server,
        &format!(
            "error=access_denied&state={}",
            third["state"].as_str().expect("state")
        ),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("access_denied"),
        "{e}"
    );
    let key_cred = server
        .credential(
            "acme",
            &json!({"connector": "shopify", "auth": {"type": "apiKey", "key": "k"},
                    "params": {"shop": "acme"}}),
        )
        .await;
    let (s, _) = server
        .post_json(
            &format!("/tenants/acme/credentials/{key_cred}/authorize"),
            &json!({"redirectUri": REDIRECT}),
        )
        .await;
    assert_eq!(s, 400);

    // The tokens and the verifier are sealed: not in any file of the data directory.
    for path in walk(dir.path()) {
        let bytes = std::fs::read(&path).expect("read");
        for needle in [b"AT-pkce-7Qz9".as_slice(), b"RT-pkce-7Qz9".as_slice()] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds a token",
                path.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
