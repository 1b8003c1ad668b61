//! Command-line interface. Settings resolve as defaults < environment < flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Sluice: a single-binary integration and workflow platform.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server on a data directory.
    Serve(ServeArgs),
}

/// Options of `sluice serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Data directory (created if missing); the only state Sluice keeps.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest webhook body accepted, in bytes (larger gets 413).
    #[arg(long, env = "SLUICE_MAX_WEBHOOK_BYTES", default_value_t = 1024 * 1024)]
    pub max_webhook_bytes: usize,
    /// Executions one tenant runs at once.
    #[arg(long, env = "SLUICE_TENANT_CONCURRENCY", default_value_t = 16)]
    pub tenant_concurrency: usize,
    /// How long a delivery id is remembered for deduplication, in hours (default 7 days).
    #[arg(long, env = "SLUICE_DEDUP_WINDOW_HOURS", default_value_t = 168)]
    pub dedup_window_hours: u64,
    /// The dedup window as a duration (`90m`, `2s`); overrides `--dedup-window-hours`.
    #[arg(long, env = "SLUICE_DEDUP_WINDOW", value_parser = humantime::parse_duration)]
    pub dedup_window: Option<Duration>,
    /// How long finished history is kept (`30days`, `12h`, `2s`): executions that finished,
    /// routed events and resolved DLQ items older than this are deleted in the background.
    /// Unfinished executions and unresolved DLQ items are kept whatever their age. `0s`
    /// keeps everything.
    #[arg(long, env = "SLUICE_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Requests one tenant accepts from one chain of calls Sluice made to itself (same
    /// `CDN-Loop` correlation id) before refusing them with 508 `LOOP_DETECTED`: bounds a
    /// flow that triggers itself more than once per run. Counted in memory, afresh at each
    /// start.
    #[arg(long, env = "SLUICE_LOOP_BUDGET", default_value_t = sluice_actors::pipeline::hops::DEFAULT_CORRELATED)]
    pub loop_budget: u64,
    /// Longest time one request may take, body upload included (then 408), e.g. `30s`.
    #[arg(long, env = "SLUICE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request's line and headers before its
    /// connection is closed, e.g. `10s`.
    #[arg(long, env = "SLUICE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Connections served at once; past it new clients wait in the listen backlog.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 8192)]
    pub max_connections: usize,
    /// Size at which a keyspace's memtable is sealed and flushed, bytes. Smaller values
    /// flush (and compact) more often; the crash suite uses this to reach those paths quickly.
    /// Applies to keyspaces created by this start, i.e. a new data directory: the storage
    /// engine records each keyspace's size when it creates it and keeps that one afterwards.
    #[arg(long, env = "SLUICE_MEMTABLE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub memtable_bytes: u64,
    /// Outbox entries one tenant may have in flight at each priority before the relay defers
    /// that tenant's lane.
    #[arg(long, env = "SLUICE_TENANT_IN_FLIGHT", default_value_t = 64)]
    pub tenant_in_flight: usize,
    /// Seconds a tenant's supervisor may sit idle before it is stopped (its state lives in
    /// storage; the tenant's next event starts a new one).
    #[arg(long, env = "SLUICE_TENANT_IDLE_SECS", default_value_t = 300)]
    pub tenant_idle_secs: u64,
    /// Seconds in-flight requests may take to finish after SIGINT/SIGTERM before they are cut.
    #[arg(long, env = "SLUICE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Acknowledge writes once handed to the OS instead of after fsync. For benchmarks only:
    /// survives a process kill, not a power loss.
    #[arg(long, env = "SLUICE_UNSAFE_BUFFERED_WRITES", default_value_t = false)]
    pub unsafe_buffered_writes: bool,
    /// Let connector calls reach loopback and private networks (self-hosted systems on a
    /// private network, tests). Off by default so a tenant's flow cannot reach the host's
    /// internal services.
    #[arg(
        long,
        env = "SLUICE_ALLOW_PRIVATE_NETWORKS",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private_networks: bool,
}

impl ServeArgs {
    /// The dedup window: `--dedup-window` when given, else `--dedup-window-hours`.
    pub fn dedup_window(&self) -> Duration {
        self.dedup_window
            .unwrap_or_else(|| Duration::from_secs(self.dedup_window_hours.saturating_mul(3600)))
    }
}
