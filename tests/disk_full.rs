//! Disk full: on a small tmpfs, once a write fails new webhooks get 503 `STORAGE_UNAVAILABLE`
//! at once (no 2xx for anything not persisted, no retry loop), and after space returns and
//! the server restarts nothing acknowledged is lost.
//!
//! Needs root and permission to mount tmpfs (true on the project's CI machines); anywhere else
//! it prints that it was skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, github_headers, send};
use serde_json::json;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A ~400 KiB body that does not compress (the store compresses its journal).
fn padded(n: u64) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let pad: String = (0..400 * 1024 / 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect();
    serde_json::to_vec(&json!({"ref": "x", "n": n, "pad": pad})).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_with_503_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(dir.path(), "24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let url = server.webhook("default", "github", "s").await;
    let path = url.trim_start_matches(&server.base).to_owned();

    let mut acked = Vec::new();
    let mut refusal = None;
    for n in 0..400u64 {
        let body = padded(n);
        let (status, answer) = send(
            &server.client,
            &url,
            &github_headers("s", &body, "push", &format!("d{n}")),
            &body,
        )
        .await;
        match status {
            202 => acked.push((n, answer["eventId"].as_str().expect("id").to_owned())),
            _ => {
                refusal = Some((status, answer));
                break;
            }
        }
    }
    let (status, answer) = refusal.expect("the 24 MiB disk filled up");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "STORAGE_UNAVAILABLE");
    assert!(!acked.is_empty());

    // Later writes are refused at once, and health says why.
    let body = b"{\"ref\":\"x\"}";
    let started = Instant::now();
    let (status, _) = send(
        &server.client,
        &url,
        &github_headers("s", body, "push", "late"),
        body,
    )
    .await;
    assert_eq!(status, 503);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.health().await, 503);

    // Space returns; a restart recovers with everything acknowledged.
    server.kill9();
    fs.resize("512m");
    let server = Server::start(&data);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, events) = server.get_json("/tenants/default/events?limit=1000").await;
        let seen: std::collections::HashSet<String> = events["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["eventId"].as_str().map(str::to_owned))
            .collect();
        if acked.iter().all(|(_, id)| seen.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged events missing after recovery"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n, first) = &acked[0];
    let body = padded(*n);
    let (status, dup) = send(
        &server.client,
        &format!("{}{path}", server.base),
        &github_headers("s", &body, "push", &format!("d{n}")),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{dup}");
    assert_eq!(dup["eventId"], first.as_str());
    eprintln!(
        "{} webhooks acknowledged before the disk filled; all recovered",
        acked.len()
    );
    drop(server);
}
