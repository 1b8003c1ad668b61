//! Acknowledged means on disk: a writer process is killed with SIGKILL in the middle of a
//! stream of group commits, and every write it had been told was durable is there after the
//! database is reopened.
//!
//! The test re-runs its own test binary as the writer (selected by an environment variable),
//! so no extra binary is needed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_storage::{Durability, IngestOutcome, Store, StoreOptions, WriteSet};

mod common;
use common::{dedup_key, outbox_entry};

/// Entry `n` of the writer's stream: bodies of 512–2,559 bytes.
fn entry(n: u64) -> sluice_storage::OutboxEntry {
    outbox_entry(n, 7, vec![b'x'; 512 + (n as usize % 2048)])
}

const CHILD_ENV: &str = "SLUICE_STORAGE_CRASH_WRITER_DIR";

/// The writer: 16 concurrent producers, each printing `ACK <seq> <n>` once its ingest returned.
fn run_writer(dir: &str, durability: Durability) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let options = StoreOptions {
            durability,
            ..StoreOptions::default()
        };
        let store = Store::open(dir, options).expect("open");
        let mut tasks = Vec::new();
        for producer in 0..16u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let n = i * 16 + producer;
                    let outcome = store.ingest(dedup_key(n), entry(n)).await.expect("ingest");
                    if let IngestOutcome::Accepted { seq, .. } = outcome {
                        println!("ACK {seq} {n}");
                    }
                    // Interleave plain batches (the journaling path) with ingests.
                    let mut w = WriteSet::new();
                    w.put_tenant(&sluice_storage::TenantRecord {
                        space_id: "sp".into(),
                        id: format!("tenant-{n}"),
                        created_at_ms: n,
                    })
                    .expect("encode");
                    store.commit(w).await.expect("commit");
                    println!("TENANT {n}");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    kill_rounds("acknowledged_writes_survive_sigkill", Durability::Fsync);
}

/// The benchmark mode hands each group to the OS instead of syncing it: that survives the
/// death of the process (not of the machine), so a SIGKILL loses nothing acknowledged either.
#[test]
fn buffered_writes_survive_sigkill() {
    kill_rounds("buffered_writes_survive_sigkill", Durability::Buffered);
}

fn kill_rounds(test_name: &str, durability: Durability) {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_writer(&dir, durability);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", test_name, "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut acked = Vec::new();
        let mut tenants = Vec::new();
        let started = Instant::now();
        let target = 400 + round * 150;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["ACK", seq, n] => acked.push((
                    seq.parse::<u64>().expect("seq"),
                    n.parse::<u64>().expect("n"),
                )),
                ["TENANT", n] => tenants.push(n.parse::<u64>().expect("n")),
                _ => continue,
            }
            if acked.len() >= target || started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        let _ = child.wait();
        assert!(
            acked.len() >= 50,
            "writer acknowledged too little: {}",
            acked.len()
        );

        let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
        for (seq, n) in &acked {
            let found = store.outbox_from(*seq, 1).expect("scan");
            let entry = found.first().expect("acknowledged entry present");
            assert_eq!(entry.seq, *seq);
            assert_eq!(entry.event_id, format!("evt{n}"));
        }
        for n in &tenants {
            assert!(
                store
                    .tenant("sp", &format!("tenant-{n}"))
                    .expect("get")
                    .is_some(),
                "acknowledged tenant-{n} missing after SIGKILL"
            );
        }
        eprintln!(
            "round {round}: {} ingests and {} batches acknowledged, all present after SIGKILL",
            acked.len(),
            tenants.len()
        );
    }
}

const IDLE_CHILD_ENV: &str = "SLUICE_STORAGE_CRASH_IDLE_DIR";

/// The writer for [`writes_then_idle`]: 100 small batches one after the other, then `DONE`
/// and nothing more until it is killed.
fn run_idle_writer(dir: &str, durability: Durability) {
    let options = StoreOptions {
        durability,
        ..StoreOptions::default()
    };
    let store = Store::open(dir, options).expect("open");
    for n in 0..100u64 {
        let mut w = WriteSet::new();
        w.put_tenant(&sluice_storage::TenantRecord {
            space_id: "sp".into(),
            id: format!("idle-{n}"),
            created_at_ms: n,
        })
        .expect("encode");
        store.commit_blocking(w).expect("commit");
    }
    println!("DONE");
    std::thread::sleep(Duration::from_secs(120));
}

/// The last acknowledged write is the one most at risk: nothing after it pushes it out of a
/// user-space buffer. A writer that goes idle after its writes is killed, and all are there.
fn writes_then_idle(test_name: &str, durability: Durability) {
    if let Ok(dir) = std::env::var(IDLE_CHILD_ENV) {
        run_idle_writer(&dir, durability);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", test_name, "--nocapture"])
        .env(IDLE_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let done = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "DONE");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(done, "the writer did not finish its writes");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("reopen");
    for n in 0..100 {
        assert!(
            store
                .tenant("sp", &format!("idle-{n}"))
                .expect("get")
                .is_some(),
            "acknowledged idle-{n} missing after SIGKILL ({durability:?})"
        );
    }
}

#[test]
fn last_writes_survive_sigkill() {
    writes_then_idle("last_writes_survive_sigkill", Durability::Fsync);
}

#[test]
fn last_buffered_writes_survive_sigkill() {
    writes_then_idle("last_buffered_writes_survive_sigkill", Durability::Buffered);
}
