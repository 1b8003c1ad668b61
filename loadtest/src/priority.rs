//! The higher- and lower-priority traffic of the `mixed-priority` scenario, sent alongside the
//! P2 webhook flood of [`crate::generator`]:
//!
//! - **P1**: calls to the execute API (`POST /api/v1/lt_p1` with `{"input": {"tenant", "n",
//!   "sentUs"}}`
//!   and the tenant in `x-fastn-space-tenantid`) at a fixed arrival rate. The answer waits for
//!   the execution, so its latency is the whole P1 round trip (queueing, the HTTP action to the
//!   sink, the response), measured from the intended send time like the webhooks.
//! - **P3**: a cron flow per tenant firing every second (set up in [`crate::setup`]); the sink
//!   counts its runs.
//!
//! P4 (polling) is not generated: a poll lists records from a provider's API, which would need
//! a mock provider in the load tester; `tests/polling.rs` covers it functionally.

use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::generator::{Pacer, latency_histogram};
use crate::server::{ADMIN_KEY, SPACE};
use crate::setup::Target;
use crate::sink::now_us;

/// Name of the manual flow every tenant gets for P1 calls.
pub const P1_FLOW: &str = "lt_p1";
/// Name of the cron flow every tenant gets for P3 runs.
pub const P3_FLOW: &str = "lt_p3";

/// What the P1 stream produced.
#[derive(Debug)]
pub struct P1Result {
    /// Calls answered 200.
    pub ok: usize,
    /// Calls answered otherwise (status → count).
    pub other: Vec<(u16, usize)>,
    /// Intended send → answer, microseconds.
    pub latency_us: Histogram<u64>,
}

/// Sends `rate_per_sec` execute-API calls for `duration_secs`, round-robin over `targets`.
///
/// # Errors
/// When the histogram cannot be created.
pub async fn run_p1(
    client: &reqwest::Client,
    base: &str,
    targets: &[Target],
    rate_per_sec: u64,
    duration_secs: u64,
) -> anyhow::Result<P1Result> {
    let total = rate_per_sec * duration_secs;
    let latency = Arc::new(Mutex::new(latency_histogram()?));
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let pacer = Pacer::start(rate_per_sec);
    let mut tasks = Vec::new();
    for i in 0..total {
        let intended = pacer.wait_for(i).await;
        let tenant = targets[(i as usize) % targets.len()].tenant.clone();
        let (client, url) = (client.clone(), format!("{base}/api/v1/{P1_FLOW}"));
        let (latency, statuses) = (latency.clone(), statuses.clone());
        tasks.push(tokio::spawn(async move {
            let answer = client
                .post(url)
                .header("x-fastn-api-key", ADMIN_KEY)
                .header("x-fastn-space-id", SPACE)
                .header("x-fastn-space-tenantid", &tenant)
                .json(&json!({"input": {"tenant": &tenant, "n": i, "sentUs": now_us()}}))
                .send()
                .await;
            let status = match answer {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            let us = intended.elapsed().as_micros() as u64;
            if let Ok(mut h) = latency.lock() {
                let _ = h.record(us.max(1));
            }
            if let Ok(mut s) = statuses.lock() {
                s.push(status);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let statuses = statuses.lock().map(|s| s.clone()).unwrap_or_default();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let mut other: Vec<(u16, usize)> = Vec::new();
    for s in statuses.into_iter().filter(|s| *s != 200) {
        match other.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => other.push((s, 1)),
        }
    }
    let latency_us = latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or(Histogram::new(3)?);
    Ok(P1Result {
        ok,
        other,
        latency_us,
    })
}
