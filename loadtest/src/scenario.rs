//! Scenarios: small JSON files in `loadtest/scenarios/` describing one load run.

use std::path::Path;

use serde::Deserialize;

/// One load run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name printed in the report.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tenants created and addressed round-robin.
    pub tenants: usize,
    /// Live flows per tenant that match every event (0 = ingest only); each posts to the sink.
    pub flows_per_tenant: usize,
    /// Open-loop arrival rate, requests per second (fixed spacing, not closed-loop).
    pub rate_per_sec: u64,
    /// How long requests are sent, seconds.
    pub duration_secs: u64,
    /// Requests in flight at most; arrivals beyond it are counted as "late" (the server is
    /// not keeping up with the offered rate), never silently dropped.
    pub max_in_flight: usize,
    /// Approximate webhook body size, bytes.
    pub payload_bytes: usize,
    /// P1 execute-API calls per second sent alongside the webhooks (0 = none); each tenant
    /// gets a manual flow posting to the sink.
    #[serde(default)]
    pub p1_rate_per_sec: u64,
    /// A cron schedule (6 fields, seconds first) for a P3 flow per tenant posting to the
    /// sink; absent = none.
    #[serde(default)]
    pub p3_cron: Option<String>,
}

impl Scenario {
    /// Reads a scenario file.
    ///
    /// # Errors
    /// When the file cannot be read or is not a scenario.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(serde_json::from_str(&text)?)
    }
}
