//! Test harness: starts the real `sluice` binary on a free port with its own data directory,
//! a local HTTP sink that records what flows send, and signing helpers written independently
//! of the server's code (straight from the providers' documented schemes).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SPACE: &str = "sp_test";
pub const ADMIN_KEY: &str = "sk_test_admin_key";

/// A running server process.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `sluice serve` on `data_dir` and waits until it listens. Connector calls may
    /// reach 127.0.0.1 (the local mock providers of the tests).
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// Starts with extra `serve` flags. Connector calls may reach 127.0.0.1 (the tests' local
    /// mock providers).
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// [`Server::start_with`] on a given address (to restart a server where its flows call
    /// it); see [`free_port`].
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut flags = vec!["--allow-private-networks"];
        flags.extend_from_slice(extra);
        Self::spawn(data_dir, listen, &flags)
    }

    /// Starts under the default network policy (private and loopback destinations refused).
    pub fn start_strict(data_dir: &Path) -> Server {
        Self::spawn(data_dir, "127.0.0.1:0", &[])
    }

    fn spawn(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env_remove("SLUICE_ALLOW_PRIVATE_NETWORKS")
            .env_remove("SLUICE_MASTER_KEY")
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("SLUICE_SPACE_ID", SPACE)
            .env("SLUICE_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sluice");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Listening on http://") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not report its address");
        Server {
            child,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// SIGTERM, then waits up to `limit` for the process to exit; returns how long it took.
    pub fn terminate(mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An authenticated request to `/api/v1{path}`.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("x-fastn-api-key", ADMIN_KEY)
            .header("x-fastn-space-id", SPACE)
            .header("content-type", "application/json")
    }

    /// An `http.request` step named `name` that POSTs `body` to this server's `path` with the
    /// admin key: how a flow calls its own tenant (app events, the execute API, replays).
    pub fn call_step(&self, name: &str, path: &str, body: Value) -> Value {
        json!({"name": name, "type": "action", "connector": "http", "action": "request",
               "input": {"method": "POST", "url": format!("{}{path}", self.base),
                         "headers": {"x-fastn-api-key": ADMIN_KEY, "x-fastn-space-id": SPACE,
                                     "content-type": "application/json"},
                         "body": body}})
    }

    /// The status of `GET /healthz` (no auth).
    pub async fn health(&self) -> u16 {
        self.client
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .api(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .api(reqwest::Method::PUT, path)
            .json(body)
            .send()
            .await
            .expect("PUT");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Stores a credential; returns its id.
    pub async fn credential(&self, tenant: &str, body: &Value) -> String {
        let (s, b) = self
            .post_json(&format!("/tenants/{tenant}/credentials"), body)
            .await;
        assert_eq!(s, 201, "create credential: {b}");
        b["id"].as_str().expect("id").to_owned()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .api(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a tenant (idempotent for tests: 201 or 409).
    pub async fn tenant(&self, id: &str) {
        let (s, b) = self.post_json("/tenants", &json!({"id": id})).await;
        assert!(s == 201 || s == 409, "create tenant: {s} {b}");
    }

    /// Registers a webhook endpoint; returns its receipt URL (absolute).
    pub async fn webhook(&self, tenant: &str, connector: &str, secret: &str) -> String {
        let (s, b) = self
            .post_json(
                &format!("/tenants/{tenant}/webhooks"),
                &json!({"connector": connector, "secret": secret}),
            )
            .await;
        assert_eq!(s, 201, "create webhook: {b}");
        assert!(b.get("secret").is_none(), "secret must never be returned");
        format!("{}{}", self.base, b["url"].as_str().expect("url"))
    }

    /// Creates and publishes a flow; returns its id.
    pub async fn live_flow(&self, tenant: &str, flow: &Value) -> String {
        let (s, b) = self
            .post_json(&format!("/tenants/{tenant}/workflows"), flow)
            .await;
        assert_eq!(s, 201, "create flow: {b}");
        assert_eq!(b["status"], "draft");
        let id = b["id"].as_str().expect("id").to_owned();
        let (s, b) = self
            .post_json(
                &format!("/tenants/{tenant}/workflows/{id}/publish"),
                &json!({}),
            )
            .await;
        assert_eq!(s, 200, "publish: {b}");
        assert_eq!(b["status"], "live");
        id
    }

    /// Every execution of a tenant (all pages).
    pub async fn executions(&self, tenant: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/tenants/{tenant}/executions?limit=100");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (s, b) = self.get_json(&path).await;
            assert_eq!(s, 200, "list executions: {b}");
            out.extend(b["executions"].as_array().cloned().unwrap_or_default());
            match b["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// The `/metrics` page (Prometheus text format).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The sum of every series of metric `name` on `/metrics` (Prometheus text format), 0
    /// when it has none yet.
    pub async fn metric_sum(&self, name: &str) -> f64 {
        sum_of(&self.metrics_text().await, name)
    }

    /// Waits until the server has nothing left to route and nothing queued to run (its
    /// `/metrics`: `sluice_outbox_pending` and `sluice_queue_depth` at 0 twice in a row),
    /// panicking only if routed events and finished executions stop increasing for `stall`:
    /// a slow drain on a busy machine is not a failure, a stuck one is. Cheaper than listing
    /// every execution while it drains (hundreds of API pages per tenant after a long run,
    /// taking the CPU the drain needs).
    pub async fn wait_drained(&self, stall: Duration) {
        let mut progress = f64::NAN;
        let mut last_change = Instant::now();
        let mut idle_polls = 0;
        while idle_polls < 2 {
            let metrics = self.metrics_text().await;
            let pending =
                sum_of(&metrics, "sluice_outbox_pending") + sum_of(&metrics, "sluice_queue_depth");
            idle_polls = if pending == 0.0 { idle_polls + 1 } else { 0 };
            let now = sum_of(&metrics, "sluice_events_routed_total")
                + sum_of(&metrics, "sluice_executions_total");
            if now != progress {
                progress = now;
                last_change = Instant::now();
            }
            assert!(
                last_change.elapsed() < stall,
                "the backlog stopped draining: {pending} still pending, no progress for {stall:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Polls until `pred` holds for the tenant's executions, or panics after `secs`.
    pub async fn wait_executions(
        &self,
        tenant: &str,
        secs: u64,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let all = self.executions(tenant).await;
            if pred(&all) {
                return all;
            }
            if Instant::now() > deadline {
                panic!("executions never reached the expected state: {all:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub idempotency_key: Option<String>,
    /// The request's `CDN-Loop` header (the hop count Sluice sends).
    pub cdn_loop: Option<String>,
}

/// A loopback address with a port free at the time of the call.
pub fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// A local HTTP server standing in for a SaaS API: records every POST to `/in`.
pub struct Sink {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Requests being answered now, and the most answered at once so far.
    load: Arc<Mutex<(usize, usize)>>,
}

impl Sink {
    pub async fn start() -> Sink {
        Self::start_with_delay(std::time::Duration::ZERO).await
    }

    /// A sink that waits `delay` before answering (keeps executions in flight).
    pub async fn start_with_delay(delay: std::time::Duration) -> Sink {
        use axum::routing::post;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let load: Arc<Mutex<(usize, usize)>> = Arc::default();
        let r = received.clone();
        let l = load.clone();
        let app = axum::Router::new().route(
            "/in",
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let r = r.clone();
                    let l = l.clone();
                    async move {
                        {
                            let mut load = l.lock().expect("lock");
                            load.0 += 1;
                            load.1 = load.1.max(load.0);
                        }
                        tokio::time::sleep(delay).await;
                        l.lock().expect("lock").0 -= 1;
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        r.lock().expect("lock").push(Received {
                            body,
                            idempotency_key: header("idempotency-key"),
                            cdn_loop: header("cdn-loop"),
                        });
                        axum::Json(json!({"ok": true, "id": "sink-1"}))
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink {
            url: format!("http://{addr}/in"),
            received,
            load,
        }
    }

    /// The most requests the sink was answering at once.
    pub fn peak(&self) -> usize {
        self.load.lock().expect("lock").1
    }

    /// Starts measuring [`Sink::peak`] afresh.
    pub fn reset_peak(&self) {
        let mut load = self.load.lock().expect("lock");
        load.1 = load.0;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Shopify: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(secret, body)).
pub fn shopify_headers(
    secret: &str,
    body: &[u8],
    topic: &str,
    webhook_id: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "X-Shopify-Hmac-Sha256".into(),
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body)),
        ),
        ("X-Shopify-Topic".into(), topic.into()),
        ("X-Shopify-Webhook-Id".into(), webhook_id.into()),
        (
            "X-Shopify-Shop-Domain".into(),
            "example.myshopify.com".into(),
        ),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// GitHub: `X-Hub-Signature-256` = "sha256=" + hex(HMAC-SHA256(secret, body)).
pub fn github_headers(
    secret: &str,
    body: &[u8],
    event: &str,
    delivery: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "X-Hub-Signature-256".into(),
            format!(
                "sha256={}",
                hex::encode(hmac_sha256(secret.as_bytes(), body))
            ),
        ),
        ("X-GitHub-Event".into(), event.into()),
        ("X-GitHub-Delivery".into(), delivery.into()),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// POSTs a webhook; returns (status, JSON answer).
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut req = client.post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let r = req.send().await.expect("send webhook");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Reads from `stream` until the server closes it (EOF or reset), up to `limit`, writing a
/// byte before each read when `trickle`; how long that took, or `None` if it stayed open.
pub fn closed_within(
    mut stream: std::net::TcpStream,
    trickle: bool,
    limit: Duration,
) -> Option<Duration> {
    use std::io::{Read, Write};
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    while start.elapsed() < limit {
        if trickle && stream.write_all(b"x").is_err() {
            return Some(start.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Asserts that `body` is an error in the reference's shape (`statusCode`, `code`, `message`)
/// for `status`.
pub fn assert_error_shape(status: u16, body: &Value) {
    assert_eq!(body["statusCode"], status, "error body: {body}");
    assert!(body["code"].is_string(), "error body: {body}");
    assert!(body["message"].is_string(), "error body: {body}");
}

/// The sum of every series of metric `name` in a `/metrics` page, 0 when it has none.
fn sum_of(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
