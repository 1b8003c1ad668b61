//! The sink: a local HTTP server standing in for the SaaS APIs that flows call. It records
//! every delivery (tenant, sequence number, idempotency key) and the webhook-to-sink latency
//! from the send time the generator put in the payload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use hdrhistogram::Histogram;
use serde_json::Value;

/// (tenant, n, flow) → idempotency keys seen (more than one distinct key would be a defect).
pub type Deliveries = HashMap<(String, u64, String), Vec<Option<String>>>;

/// What the sink saw.
#[derive(Debug)]
pub struct SinkLog {
    /// Every delivery by (tenant, n, flow).
    pub deliveries: Deliveries,
    /// Webhook sent → sink received, microseconds.
    pub latency_us: Histogram<u64>,
    /// Deliveries of the other priorities' flows (`p1`, `p3`), counted by label; kept apart
    /// from `deliveries`, which the checker matches against the webhook ledger.
    pub by_label: HashMap<String, usize>,
}

/// A running sink.
pub struct Sink {
    /// URL flows post to.
    pub url: String,
    /// The log.
    pub log: Arc<Mutex<SinkLog>>,
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Starts the sink on a free loopback port.
///
/// # Errors
/// When no port can be bound.
pub async fn start() -> anyhow::Result<Sink> {
    let log = Arc::new(Mutex::new(SinkLog {
        deliveries: HashMap::new(),
        latency_us: crate::generator::latency_histogram()?,
        by_label: HashMap::new(),
    }));
    let l = log.clone();
    let app = Router::new().route(
        "/in",
        post(move |headers: HeaderMap, body: Bytes| {
            let l = l.clone();
            async move {
                let received = now_us();
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let tenant = v["tenant"].as_str().unwrap_or("").to_owned();
                    let n = v["n"].as_u64().unwrap_or(0);
                    let flow = v["flow"].as_str().unwrap_or("").to_owned();
                    let sent = v["sentUs"].as_u64().unwrap_or(received);
                    if flow.starts_with('p') {
                        if let Ok(mut log) = l.lock() {
                            *log.by_label.entry(flow).or_default() += 1;
                        }
                        return "{\"ok\":true}";
                    }
                    if let Ok(mut log) = l.lock() {
                        log.deliveries
                            .entry((tenant, n, flow))
                            .or_default()
                            .push(key);
                        let _ = log.latency_us.record(received.saturating_sub(sent).max(1));
                    }
                }
                "{\"ok\":true}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Sink {
        url: format!("http://{addr}/in"),
        log,
    })
}
