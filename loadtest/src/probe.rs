//! Watching the server while it is loaded: its CPU time from `/proc/<pid>/stat`, its disk
//! writes from `/proc/<pid>/io`, and the storage engine's state from its Prometheus
//! `/metrics` (the `sluice_storage_*` gauges and the group-commit histograms).
//!
//! CPU time is the steadiest figure on a shared machine: the generator and the sink compete
//! for the same cores, which moves throughput and latency, but the server's own CPU seconds
//! per acknowledged event barely move.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Linux reports `utime`/`stime` in `USER_HZ` ticks, which is 100 on every supported
/// architecture (the kernel's ABI fixes it, whatever `CONFIG_HZ` is).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Bytes the process has caused to be written to the storage layer so far (`write_bytes` in
/// `/proc/<pid>/io`: page-cache writeback and direct writes, counted when dirtied, so a
/// rewritten page counts once per write-out). `None` where the kernel does not expose it
/// (no task I/O accounting) or the process is gone.
pub fn disk_write_bytes(pid: u32) -> Option<u64> {
    write_bytes_in(&std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?)
}

/// The `write_bytes` field of a `/proc/<pid>/io` text.
fn write_bytes_in(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Highest values of the storage gauges seen while sampling.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoragePeaks {
    /// `sluice_storage_write_buffer_bytes`: memtables not yet flushed.
    pub write_buffer_bytes: f64,
    /// `sluice_storage_flushes_queued`.
    pub flushes_queued: f64,
    /// `sluice_storage_journals`.
    pub journals: f64,
}

/// A background sampler of `/metrics`.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<StoragePeaks>,
}

impl Sampler {
    /// Samples `{base}/metrics` every `every` until [`Sampler::finish`].
    pub fn start(client: reqwest::Client, base: String, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peaks = StoragePeaks::default();
            loop {
                if let Ok(text) = scrape(&client, &base).await {
                    let m = |name: &str| gauge(&text, name).unwrap_or(0.0);
                    peaks.write_buffer_bytes = peaks
                        .write_buffer_bytes
                        .max(m("sluice_storage_write_buffer_bytes"));
                    peaks.flushes_queued =
                        peaks.flushes_queued.max(m("sluice_storage_flushes_queued"));
                    peaks.journals = peaks.journals.max(m("sluice_storage_journals"));
                }
                tokio::select! {
                    _ = &mut stopped => return peaks,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
        Self { stop, task }
    }

    /// Stops sampling and returns the peaks.
    pub async fn finish(self) -> StoragePeaks {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// The server's `/metrics` text.
///
/// # Errors
/// When the request fails.
pub async fn scrape(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// The value of an unlabelled sample `name` in Prometheus text.
pub fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// How many samples the unlabelled Prometheus histogram `name` holds above its bucket `le`
/// (an upper bound as rendered, `"0.005"`), with its count: `(count, over)`.
fn histogram_over(text: &str, name: &str, le: &str) -> Option<(f64, f64)> {
    let count = gauge(text, &format!("{name}_count"))?;
    let within = gauge(text, &format!("{name}_bucket{{le=\"{le}\"}}"))?;
    Some((count, count - within))
}

/// One line about the group commits seen in the run, from the server's histograms: how many,
/// their mean size, and how many took longer than 5 ms and 50 ms (fsync alone is well under a
/// millisecond here, so those are stalls).
pub fn commit_summary(text: &str) -> Option<String> {
    let count = gauge(text, "sluice_storage_commit_seconds_count")?;
    let over = |le: &str| {
        histogram_over(text, "sluice_storage_commit_seconds", le).map_or(0.0, |(_, over)| over)
    };
    let requests = gauge(text, "sluice_storage_commit_group_size_sum")?;
    Some(format!(
        "{count:.0} group commits, {:.1} requests per group; {:.0} took over 5 ms, {:.0} over 50 ms; mean {:.2} ms",
        requests / count.max(1.0),
        over("0.005"),
        over("0.05"),
        1000.0 * gauge(text, "sluice_storage_commit_seconds_sum")? / count.max(1.0)
    ))
}

/// One line about the server's own handling time of webhooks it answered 202 or 200
/// (duplicate) — the `sluice_webhook_ack_seconds` histogram: from the handler's start
/// (reading the body included) to its answer, so without the time a request waits for the
/// server to read its head — to set against the latency the generator measures: how many
/// took over 5 ms and over 10 ms.
pub fn ack_summary(text: &str) -> Option<String> {
    let name = "sluice_webhook_ack_seconds";
    let (count, over5) = histogram_over(text, name, "0.005")?;
    let (_, over10) = histogram_over(text, name, "0.01")?;
    let share = |n: f64| 100.0 * n / count.max(1.0);
    Some(format!(
        "{count:.0} answered; {over5:.0} ({:.2} %) took over 5 ms inside the handler, {over10:.0} ({:.2} %) over 10 ms",
        share(over5),
        share(over10)
    ))
}

/// One line about the relay's deferrals in the run: how many times a lane ran out of credit
/// (`sluice_relay_deferrals_total`) and how many skipped entries the relay read back from the
/// outbox on catch-up because its memory budget for them was spent
/// (`sluice_relay_reads_back_total`). `None` when nothing was deferred.
pub fn relay_summary(text: &str) -> Option<String> {
    let deferred = gauge(text, "sluice_relay_deferrals_total")?;
    let read_back = gauge(text, "sluice_relay_reads_back_total").unwrap_or(0.0);
    Some(format!(
        "a lane ran out of credit {deferred:.0} times; {read_back:.0} skipped entries read back from the outbox"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_summarizes_commits() {
        let text = "# HELP x\nsluice_storage_journals 3\n\
            sluice_storage_commit_seconds_bucket{le=\"0.005\"} 90\n\
            sluice_storage_commit_seconds_bucket{le=\"0.05\"} 99\n\
            sluice_storage_commit_seconds_sum 0.5\n\
            sluice_storage_commit_seconds_count 100\n\
            sluice_storage_commit_group_size_sum 800\n";
        assert_eq!(gauge(text, "sluice_storage_journals"), Some(3.0));
        assert_eq!(gauge(text, "sluice_storage_journal"), None);
        let line = commit_summary(text).expect("a summary");
        assert!(line.starts_with("100 group commits, 8.0 requests per group; 10 took over 5 ms, 1 over 50 ms; mean 5.00 ms"), "{line}");
    }

    #[test]
    fn summarizes_server_side_ack_times() {
        let text = "sluice_webhook_ack_seconds_bucket{le=\"0.005\"} 990\n\
            sluice_webhook_ack_seconds_bucket{le=\"0.01\"} 998\n\
            sluice_webhook_ack_seconds_count 1000\n";
        let line = ack_summary(text).expect("a summary");
        assert_eq!(
            line,
            "1000 answered; 10 (1.00 %) took over 5 ms inside the handler, 2 (0.20 %) over 10 ms"
        );
        assert_eq!(ack_summary("sluice_storage_journals 3\n"), None);
    }

    #[test]
    fn summarizes_relay_deferrals() {
        let text = "sluice_relay_deferrals_total 120\nsluice_relay_reads_back_total 7\n";
        assert_eq!(
            relay_summary(text).as_deref(),
            Some("a lane ran out of credit 120 times; 7 skipped entries read back from the outbox")
        );
        assert_eq!(
            relay_summary("sluice_relay_deferrals_total 3\n").as_deref(),
            Some("a lane ran out of credit 3 times; 0 skipped entries read back from the outbox")
        );
        assert_eq!(relay_summary(""), None);
    }

    #[test]
    fn reads_write_bytes_not_the_cancelled_ones() {
        let io = "rchar: 4410\nwchar: 1207\nsyscr: 12\nsyscw: 5\nread_bytes: 8192\n\
                  write_bytes: 1048576\ncancelled_write_bytes: 4096\n";
        assert_eq!(write_bytes_in(io), Some(1_048_576));
        assert_eq!(write_bytes_in("rchar: 1\n"), None);
    }

    #[test]
    fn cpu_time_grows_while_this_process_computes() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("cpu time");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while cpu_seconds(pid).expect("cpu time") < before + 0.05
            && std::time::Instant::now() < deadline
        {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(cpu_seconds(pid).expect("cpu time") >= before + 0.05, "{x}");
    }
}
