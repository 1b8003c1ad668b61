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

/// Installs the global recorder and describes every metric (so each gets `# HELP`).
/// Histograms get explicit buckets so they render as Prometheus histograms, not summaries.
///
/// # Errors
/// When a recorder was already installed in this process.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let seconds = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
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
        "sluice_actor_restarts_total",
        "Supervised actors replaced after a failure"
    );
    Ok(handle)
}
