//! Starting the system under test: a `sluice serve` process on a fresh data directory (or the
//! baseline in-process), and reading its peak resident memory from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The space and admin key the load test gives the server at first start.
pub const SPACE: &str = "sp_loadtest";
/// Admin API key used by the load test.
pub const ADMIN_KEY: &str = "sk_loadtest_admin";

/// A running `sluice serve`.
pub struct SluiceProcess {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Its data directory (removed on drop).
    pub data_dir: PathBuf,
}

impl SluiceProcess {
    /// Starts `bin serve` on a new data directory under the system temp dir.
    ///
    /// # Errors
    /// When the binary cannot start or never reports its address.
    pub fn start(bin: &Path, extra: &[String]) -> anyhow::Result<Self> {
        let data_dir =
            std::env::temp_dir().join(format!("sluice-lt-{}", uuid::Uuid::now_v7().simple()));
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-private-networks",
                "--data-dir",
            ])
            .arg(&data_dir)
            .args(extra)
            .env("SLUICE_SPACE_ID", SPACE)
            .env("SLUICE_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Listening on http://") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow::anyhow!("sluice did not report its address"))?;
        Ok(Self {
            child,
            base: format!("http://{addr}"),
            data_dir,
        })
    }

    /// Peak resident set size of the process, KiB (`VmHWM` in `/proc/<pid>/status`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.child.id())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Current resident set size, KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.child.id(), "VmRSS:")
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// `VmHWM` of a process, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `sluice` binary next to this one (both built by `cargo build --release`).
pub fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("sluice")))
        .unwrap_or_else(|| PathBuf::from("sluice"))
}
