//! The open-loop generator: requests leave at a fixed arrival rate whatever the server does,
//! and each latency is measured from the request's *intended* send time, so queueing in the
//! server (or in the generator's own in-flight bound) shows up in the latency instead of
//! silently lowering the offered load (no coordinated omission).
//!
//! Every request is a correctly signed GitHub `push` webhook (`X-Hub-Signature-256`) whose
//! body carries the tenant, a sequence number and the send time; every answer goes into the
//! ledger.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::setup::{SECRET, Target};
use crate::sink::now_us;

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerEntry {
    /// Tenant addressed.
    pub tenant: String,
    /// Sequence number within the tenant.
    pub n: u64,
    /// `X-GitHub-Delivery` sent.
    pub delivery: String,
    /// SHA-256 of the body, hex.
    pub payload_sha256: String,
    /// HTTP status (0 for a transport error).
    pub status: u16,
    /// `eventId` answered, if any.
    pub event_id: Option<String>,
    /// When it was meant to leave, microseconds after the load started.
    pub intended_at_us: u64,
    /// Intended send → answer, microseconds.
    pub latency_us: u64,
}

/// What a run produced.
pub struct LoadResult {
    /// Every request.
    pub ledger: Vec<LedgerEntry>,
    /// Intended send → answer, microseconds.
    pub latency_us: Histogram<u64>,
    /// Arrivals that had to wait for an in-flight slot.
    pub late: u64,
    /// From the first send to the last answer.
    pub elapsed: Duration,
}

/// Load parameters.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Arrivals per second.
    pub rate_per_sec: u64,
    /// Seconds of arrivals.
    pub duration_secs: u64,
    /// In-flight bound.
    pub max_in_flight: usize,
    /// Body size, bytes.
    pub payload_bytes: usize,
}

/// Fixed arrival times: request `i` is meant to leave `i / rate` seconds after the start.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    spacing: Duration,
}

impl Pacer {
    /// Starts the clock now for `rate_per_sec` arrivals per second.
    pub fn start(rate_per_sec: u64) -> Self {
        Self {
            start: Instant::now(),
            spacing: Duration::from_secs_f64(1.0 / rate_per_sec.max(1) as f64),
        }
    }

    /// Sleeps until request `i`'s intended send time and returns it (latencies are measured
    /// from it, so a late send counts against the server, not for it).
    pub async fn wait_for(&self, i: u64) -> Instant {
        let intended = self.start + self.spacing.mul_f64(i as f64);
        tokio::time::sleep_until(intended.into()).await;
        intended
    }

    /// When the clock started.
    pub fn started(&self) -> Instant {
        self.start
    }
}

/// An empty latency histogram, 1 µs to 10 minutes, 3 significant digits.
///
/// # Errors
/// Never with these bounds; the type says it can.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

fn body(tenant: &str, n: u64, pad: usize) -> Vec<u8> {
    let v = json!({
        "ref": "refs/heads/main",
        "tenant": tenant,
        "n": n,
        "sentUs": now_us(),
        "padding": "x".repeat(pad),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends `load` against `targets` (round-robin) and returns the ledger and histograms.
///
/// # Errors
/// Histogram construction only; request failures are recorded in the ledger.
pub async fn run(
    client: &reqwest::Client,
    targets: &[Target],
    load: Load,
) -> anyhow::Result<LoadResult> {
    let total = load.rate_per_sec * load.duration_secs;
    let slots = Arc::new(Semaphore::new(load.max_in_flight.max(1)));
    let histogram = Arc::new(Mutex::new(latency_histogram()?));
    let ledger = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let pad = load.payload_bytes.saturating_sub(120);
    let pacer = Pacer::start(load.rate_per_sec);
    let start = pacer.started();
    let mut late = 0;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = pacer.wait_for(i).await;
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                late += 1;
                slots.clone().acquire_owned().await?
            }
        };
        let target = &targets[(i as usize) % targets.len()];
        let n = i / targets.len() as u64;
        let (client, url, tenant) = (client.clone(), target.url.clone(), target.tenant.clone());
        let (histogram, ledger) = (histogram.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            let body = body(&tenant, n, pad);
            let delivery = format!("{tenant}-{n}");
            let payload_sha256 = hex::encode(Sha256::digest(&body));
            let answer = client
                .post(&url)
                .header("x-hub-signature-256", sign(&body))
                .header("x-github-event", "push")
                .header("x-github-delivery", &delivery)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let (status, event_id) = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    (status, v["eventId"].as_str().map(str::to_owned))
                }
                Err(_) => (0, None),
            };
            let us = intended.elapsed().as_micros() as u64;
            let intended_at_us = intended.duration_since(start).as_micros() as u64;
            if let Ok(mut h) = histogram.lock() {
                let _ = h.record(us.max(1));
            }
            if let Ok(mut l) = ledger.lock() {
                l.push(LedgerEntry {
                    tenant,
                    n,
                    delivery,
                    payload_sha256,
                    status,
                    event_id,
                    intended_at_us,
                    latency_us: us,
                });
            }
            drop(slot);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let latency_us = histogram
        .lock()
        .map(|h| h.clone())
        .unwrap_or(Histogram::new(3)?);
    let ledger = ledger.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(LoadResult {
        ledger,
        latency_us,
        late,
        elapsed,
    })
}
