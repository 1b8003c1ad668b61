//! `sluice-loadtest`: load, baseline and checks for Sluice, over HTTP only.
//!
//! - `run --scenario loadtest/scenarios/one-step.json`: starts `sluice serve` on a fresh data
//!   directory, prepares tenants/webhooks/flows, runs the open-loop load, waits for the sink,
//!   checks ledger vs server vs sink, and prints the report (with `--baseline`, the bare axum
//!   server is loaded first at the same rate and every throughput is also given as a ratio).
//! - `baseline --listen ADDR`: serves only the baseline (for wrk or other tools).

mod baseline;
mod check;
mod generator;
mod priority;
mod probe;
mod scenario;
mod server;
mod setup;
mod sink;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

use generator::{Load, LoadResult};
use scenario::Scenario;

/// Load tests for Sluice.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a scenario against a fresh `sluice serve`.
    Run {
        /// Scenario file.
        #[arg(long)]
        scenario: PathBuf,
        /// The `sluice` binary (default: next to this one).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// Also load the bare axum baseline at the same rate and report ratios.
        #[arg(long)]
        baseline: bool,
        /// Override the scenario's rate (requests/s).
        #[arg(long)]
        rate: Option<u64>,
        /// Override the scenario's duration (s).
        #[arg(long)]
        duration: Option<u64>,
        /// Override the scenario's in-flight bound.
        #[arg(long)]
        max_in_flight: Option<usize>,
        /// Where to write the ledger (JSON lines).
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Extra flags for `sluice serve`, e.g. `--server-arg=--tenant-concurrency=64`.
        #[arg(long = "server-arg")]
        server_args: Vec<String>,
    },
    /// Serve the bare baseline only.
    Baseline {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: std::net::SocketAddr,
    },
}

fn quantiles(h: &Histogram<u64>) -> String {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    )
}

fn summarize(label: &str, r: &LoadResult) -> f64 {
    let ok = r.ledger.iter().filter(|e| e.status == 202).count();
    let other = r.ledger.len() - ok;
    let rate = ok as f64 / r.elapsed.as_secs_f64();
    println!(
        "{label}: {ok} acknowledged ({other} other) in {:.2} s = {rate:.0}/s; {} late arrivals",
        r.elapsed.as_secs_f64(),
        r.late
    );
    println!(
        "  ack latency (from intended send): {}",
        quantiles(&r.latency_us)
    );
    rate
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(60))
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Baseline { listen } => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let serve = tokio::spawn(baseline::serve(listen, tx));
            println!("baseline listening on http://{}", rx.await?);
            serve.await??;
            Ok(())
        }
        Cmd::Run {
            scenario,
            server_bin,
            baseline,
            rate,
            duration,
            max_in_flight,
            ledger,
            server_args,
        } => {
            let mut s = Scenario::load(&scenario)?;
            s.rate_per_sec = rate.unwrap_or(s.rate_per_sec);
            s.duration_secs = duration.unwrap_or(s.duration_secs);
            s.max_in_flight = max_in_flight.unwrap_or(s.max_in_flight);
            run(
                s,
                server_bin.unwrap_or_else(server::default_bin),
                baseline,
                ledger,
                server_args,
            )
            .await
        }
    }
}

async fn run(
    s: Scenario,
    bin: PathBuf,
    with_baseline: bool,
    ledger_path: Option<PathBuf>,
    server_args: Vec<String>,
) -> anyhow::Result<()> {
    println!("scenario {}: {}", s.name, s.description);
    println!(
        "  {} tenants, {} flows each, {} req/s for {} s, at most {} in flight, ~{} B bodies",
        s.tenants,
        s.flows_per_tenant,
        s.rate_per_sec,
        s.duration_secs,
        s.max_in_flight,
        s.payload_bytes
    );
    let load = Load {
        rate_per_sec: s.rate_per_sec,
        duration_secs: s.duration_secs,
        max_in_flight: s.max_in_flight,
        payload_bytes: s.payload_bytes,
    };
    let client = client()?;
    let baseline_rate = if with_baseline {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let serve = tokio::spawn(baseline::serve("127.0.0.1:0".parse()?, tx));
        let addr = rx.await?;
        let targets: Vec<setup::Target> = (0..s.tenants.clamp(1, 64))
            .map(|i| setup::Target {
                tenant: format!("lt{i}"),
                url: format!(
                    "http://{addr}/api/v1/clients/{}/webhooks/wh_{i}",
                    server::SPACE
                ),
            })
            .collect();
        let r = generator::run(&client, &targets, load).await?;
        serve.abort();
        Some(summarize("baseline (bare axum, reads body, 202)", &r))
    } else {
        None
    };

    let sink = sink::start().await?;
    let sluice = server::SluiceProcess::start(&bin, &server_args)?;
    let setup_started = std::time::Instant::now();
    let targets = setup::prepare(&client, &sluice.base, &s, &sink.url).await?;
    let idle_rss = sluice.rss_kib();
    println!(
        "  setup: {} tenants in {:.1} s; resident memory after setup {} KiB",
        targets.len(),
        setup_started.elapsed().as_secs_f64(),
        idle_rss.map_or("?".into(), |k| k.to_string())
    );
    let cpu_before = probe::cpu_seconds(sluice.pid());
    let written_before = probe::disk_write_bytes(sluice.pid());
    let sampler = probe::Sampler::start(
        client.clone(),
        sluice.base.clone(),
        Duration::from_millis(250),
    );
    let p1 = async {
        if s.p1_rate_per_sec == 0 {
            return Ok(None);
        }
        priority::run_p1(
            &client,
            &sluice.base,
            &targets,
            s.p1_rate_per_sec,
            s.duration_secs,
        )
        .await
        .map(Some)
    };
    let (result, p1) = tokio::join!(generator::run(&client, &targets, load), p1);
    let (result, p1) = (result?, p1?);
    let rate = summarize("sluice (verified, deduplicated, fsynced, 202)", &result);
    if let Some(p1) = &p1 {
        println!(
            "  P1 execute API ({}/s alongside): {} answered 200, other {:?}; latency (from intended send, whole execution): {}",
            s.p1_rate_per_sec,
            p1.ok,
            p1.other,
            quantiles(&p1.latency_us)
        );
    }
    if let Some(b) = baseline_rate {
        println!("  ratio to baseline: {:.2}x", rate / b);
    }
    let expected = result.ledger.iter().filter(|e| e.status == 202).count() * s.flows_per_tenant;
    let drained = check::drain(&sink.log, expected, Duration::from_secs(30)).await;
    let completed = sink.log.lock().map(|l| l.deliveries.len()).unwrap_or(0);
    if s.flows_per_tenant > 0 {
        let e2e = result.elapsed + drained;
        println!(
            "  side effects: {completed}/{expected} at the sink, last one {:.2} s after the last send; {:.0} completed executions/s end to end",
            drained.as_secs_f64(),
            completed as f64 / e2e.as_secs_f64()
        );
        if let Ok(log) = sink.log.lock() {
            println!("  webhook-to-sink latency: {}", quantiles(&log.latency_us));
            if let Some(schedule) = &s.p3_cron {
                println!(
                    "  P3 cron ({schedule}) runs delivered by the end of the drain: {} across {} tenants",
                    log.by_label.get("p3").copied().unwrap_or(0),
                    s.tenants
                );
            }
        }
    }
    let cpu_used = cpu_before
        .zip(probe::cpu_seconds(sluice.pid()))
        .map(|(a, b)| b - a);
    let written = written_before
        .zip(probe::disk_write_bytes(sluice.pid()))
        .map(|(a, b)| b.saturating_sub(a));
    let peaks = sampler.finish().await;
    let acknowledged = result.ledger.iter().filter(|e| e.status == 202).count();
    if let Some(cpu) = cpu_used {
        println!(
            "  server CPU: {cpu:.2} s for the load and its drain = {:.1} µs per acknowledged event",
            1e6 * cpu / acknowledged.max(1) as f64
        );
    }
    if let Some(bytes) = written {
        println!(
            "  server disk writes: {:.1} MiB for the load and its drain = {:.0} bytes per acknowledged event",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / acknowledged.max(1) as f64
        );
    }
    println!(
        "  peak resident memory {} KiB; storage peaks: memtables {:.1} MiB, {:.0} flushes queued, {:.0} journals",
        sluice.peak_rss_kib().map_or("?".into(), |k| k.to_string()),
        peaks.write_buffer_bytes / (1024.0 * 1024.0),
        peaks.flushes_queued,
        peaks.journals
    );
    if let Ok(text) = probe::scrape(&client, &sluice.base).await {
        if let Some(line) = probe::commit_summary(&text) {
            println!("  storage: {line}");
        }
        if let Some(line) = probe::ack_summary(&text) {
            println!("  server-side: {line}");
        }
        if let Some(line) = probe::relay_summary(&text) {
            println!("  relay: {line}");
        }
    }
    let deliveries = sink
        .log
        .lock()
        .map(|l| l.deliveries.clone())
        .map_err(|_| anyhow::anyhow!("sink log poisoned"))?;
    let verdict = check::check(
        &client,
        &sluice.base,
        &result.ledger,
        &deliveries,
        s.flows_per_tenant,
        8,
    )
    .await?;
    println!("  check: {verdict:?}");
    if let Some(path) = ledger_path {
        let mut out = String::new();
        for e in &result.ledger {
            out.push_str(&serde_json::to_string(e)?);
            out.push('\n');
        }
        std::fs::write(&path, out)?;
        println!("  ledger written to {}", path.display());
    }
    if !verdict.ok() {
        anyhow::bail!("the checker found lost or doubled work");
    }
    Ok(())
}
