//! The checker: compares what the generator was told (the ledger), what the server recorded
//! (events and executions through its API) and what the sink received.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::generator::LedgerEntry;
use crate::server::{ADMIN_KEY, SPACE};
use crate::sink::{Deliveries, SinkLog};

/// The checker's verdict.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Acknowledged deliveries (202).
    pub acknowledged: usize,
    /// Deliveries the sink should see: acknowledged × flows per tenant.
    pub expected_side_effects: usize,
    /// Distinct (tenant, n, flow) the sink saw.
    pub delivered: usize,
    /// Acknowledged deliveries whose side effect never arrived.
    pub missing: usize,
    /// Side effects seen more than once with *different* idempotency keys (defects).
    pub duplicated_with_new_key: usize,
    /// Side effects repeated with the same key (allowed: a step in flight at a crash).
    pub repeated_same_key: usize,
    /// Tenants whose execution count was compared through the API.
    pub tenants_checked: usize,
    /// Those whose executions did not equal acknowledged × flows.
    pub execution_mismatches: Vec<String>,
}

impl Verdict {
    /// True when nothing was lost or doubled.
    pub fn ok(&self) -> bool {
        self.missing == 0
            && self.duplicated_with_new_key == 0
            && self.execution_mismatches.is_empty()
    }
}

/// Waits (up to `patience` without progress) until the sink has every expected side effect.
pub async fn drain(
    log: &std::sync::Mutex<SinkLog>,
    expected: usize,
    patience: Duration,
) -> Duration {
    let started = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        let seen = log.lock().map(|l| l.deliveries.len()).unwrap_or(0);
        if seen >= expected {
            return started.elapsed();
        }
        if seen != last.0 {
            last = (seen, Instant::now());
        } else if last.1.elapsed() > patience {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn executions_of(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
) -> anyhow::Result<usize> {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/tenants/{tenant}/executions?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v: Value = client
            .get(url)
            .header("x-fastn-api-key", ADMIN_KEY)
            .header("x-fastn-space-id", SPACE)
            .send()
            .await?
            .json()
            .await?;
        // Only the webhook flows' executions: the P1 and P3 flows of `mixed-priority` run too.
        n += v["executions"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|e| {
                    e["flowName"]
                        .as_str()
                        .is_some_and(|f| f.starts_with("lt_flow_"))
                })
                .count()
        });
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(n),
        }
    }
}

/// Compares ledger, sink and (for up to `sample` tenants) the server's executions.
///
/// # Errors
/// When the server cannot be queried.
pub async fn check(
    client: &reqwest::Client,
    base: &str,
    ledger: &[LedgerEntry],
    deliveries: &Deliveries,
    flows_per_tenant: usize,
    sample: usize,
) -> anyhow::Result<Verdict> {
    let mut v = Verdict::default();
    let acked: Vec<&LedgerEntry> = ledger.iter().filter(|e| e.status == 202).collect();
    v.acknowledged = acked.len();
    v.expected_side_effects = acked.len() * flows_per_tenant;
    v.delivered = deliveries.len();
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for e in &acked {
        *per_tenant.entry(e.tenant.as_str()).or_default() += 1;
        for f in 0..flows_per_tenant {
            let key = (e.tenant.clone(), e.n, format!("f{f}"));
            if !deliveries.contains_key(&key) {
                v.missing += 1;
            }
        }
    }
    for keys in deliveries.values() {
        let distinct: HashSet<&Option<String>> = keys.iter().collect();
        if distinct.len() > 1 {
            v.duplicated_with_new_key += 1;
        } else if keys.len() > 1 {
            v.repeated_same_key += 1;
        }
    }
    if flows_per_tenant > 0 {
        let mut tenants: Vec<&&str> = per_tenant.keys().collect();
        tenants.sort();
        for tenant in tenants.into_iter().take(sample) {
            v.tenants_checked += 1;
            let got = executions_of(client, base, tenant).await?;
            let want = per_tenant[*tenant] * flows_per_tenant;
            if got != want {
                v.execution_mismatches
                    .push(format!("{tenant}: {got} executions, want {want}"));
            }
        }
    }
    Ok(v)
}
