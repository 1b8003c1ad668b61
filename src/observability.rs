//! Logs (tracing) and the Prometheus metrics recorder.

use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Structured logs to stderr (colours only on a terminal); level from `RUST_LOG` (default
/// `info`, with the storage engine's own chatter at `warn`).
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lsm_tree=warn,fjall=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// How often histogram samples are folded into their buckets when nobody scrapes `/metrics`.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the recorder's upkeep every [`UPKEEP_EVERY`] on the current tokio runtime.
/// `install_recorder` does not: without it every histogram sample stays in memory until the
/// next scrape, so a server nobody scrapes grows by a few bytes per request forever.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Installs the global recorder and describes every metric (so each gets `# HELP`).
/// Histograms get explicit buckets so they render as Prometheus histograms, not summaries.
///
/// # Errors
/// When a recorder was already installed in this process.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let seconds = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    // A durable commit is one fsync (a few hundred microseconds) unless something stalls it.
    let commit_seconds = [
        0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];
    let group_sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("sluice_storage_commit_seconds".into()),
            &commit_seconds,
        )?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Suffix("_group_size".into()), &group_sizes)?
        .install_recorder()?;
    describe_counter!(
        "sluice_webhooks_received_total",
        "Webhook deliveries received, by connector and outcome"
    );
    describe_gauge!(
        "sluice_outbox_pending",
        "Outbox entries committed but not yet routed"
    );
    describe_counter!(
        "sluice_executions_total",
        "Executions that reached a terminal status, by status"
    );
    describe_histogram!(
        "sluice_step_duration_seconds",
        metrics::Unit::Seconds,
        "Time to run one step including retries, by connector"
    );
    describe_histogram!(
        "sluice_webhook_ack_seconds",
        metrics::Unit::Seconds,
        "Time from receipt to durable acknowledgement of a webhook"
    );
    describe_counter!(
        "sluice_events_routed_total",
        "Events normalized and routed, by source"
    );
    describe_counter!("sluice_dlq_total", "Items dead-lettered, by kind");
    describe_gauge!(
        "sluice_tenant_supervisors",
        "Tenant supervisors currently running"
    );
    describe_gauge!(
        "sluice_queue_depth",
        "Executions waiting for a slot in tenants' priority lanes, by priority"
    );
    describe_histogram!(
        "sluice_queue_wait_seconds",
        metrics::Unit::Seconds,
        "Time an execution waited in its priority lane, by priority"
    );
    describe_gauge!("sluice_dlq_depth", "Dead-lettered items not yet resolved");
    describe_counter!(
        "sluice_relay_deferrals_total",
        "Times the relay deferred a tenant that had no credit left"
    );
    describe_counter!(
        "sluice_relay_reads_back_total",
        "Deferred outbox entries read back from storage on catch-up (past the relay's memory budget)"
    );
    describe_counter!(
        "sluice_actor_restarts_total",
        "Supervised actors replaced after a failure"
    );
    describe_histogram!(
        "sluice_storage_commit_seconds",
        metrics::Unit::Seconds,
        "Time to apply and fsync one group commit, including any write stall imposed by the storage engine"
    );
    describe_histogram!(
        "sluice_storage_commit_group_size",
        "Write requests folded into one group commit"
    );
    describe_gauge!(
        "sluice_storage_write_buffer_bytes",
        metrics::Unit::Bytes,
        "Bytes held in the storage engine's memtables (active and sealed, not yet flushed)"
    );
    describe_gauge!(
        "sluice_storage_flushes_queued",
        "Sealed memtables waiting to be flushed to disk"
    );
    describe_gauge!(
        "sluice_storage_journals",
        "Journal files kept on disk (the active one and those not yet fully flushed)"
    );
    Ok(handle)
}
