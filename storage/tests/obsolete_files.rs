//! Files the engine no longer needs are deleted while the store runs: old version files
//! (`v<id>` in a keyspace's folder) and fully flushed journals.
//!
//! The vendored engine (`vendor/lsm-tree/PATCHED.md` §2, `vendor/fjall/PATCHED.md` §3)
//! deletes them after releasing the locks that writes wait for, not under them. A deletion
//! lost in that hand-over would leave the files to pile up until the next restart; this
//! test drives enough data for hundreds of flushes and three journal rotations, then counts
//! what is left.

use std::path::Path;

use sluice_storage::{Durability, IngestOutcome, Store, StoreOptions};

mod common;
use common::{dedup_key, outbox_entry};

/// Large enough that ~200 entries fill fjall's 64 MB journal.
const BODY_BYTES: usize = 320 * 1024;
const ENTRIES: u64 = 800;
const MAX_VERSION_FILES: usize = 8;

/// Entry `n`, with an incompressible body.
fn entry(n: u64) -> sluice_storage::OutboxEntry {
    outbox_entry(n, 3, incompressible(n))
}

/// `BODY_BYTES` of xorshift output: fjall compresses large journal entries, and a body of
/// one repeated byte would hardly reach the journal.
fn incompressible(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut body = Vec::with_capacity(BODY_BYTES);
    while body.len() < BODY_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        body.extend_from_slice(&state.to_le_bytes());
    }
    body.truncate(BODY_BYTES);
    body
}

/// Files under `dir` (recursively) whose name satisfies `matches`.
fn count_files(dir: &Path, matches: &dyn Fn(&str) -> bool) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        if entry.file_type().expect("file type").is_dir() {
            count += count_files(&path, matches);
        } else if matches(&entry.file_name().to_string_lossy()) {
            count += 1;
        }
    }
    count
}

/// Version files in each keyspace's folder (`keyspaces/<id>`), leaving out fjall's own
/// meta keyspace (`0`): it is written once per keyspace created, and fjall 3.1.13 never
/// collects its old versions while running (the next open deletes them).
fn version_files_per_keyspace(dir: &Path) -> Vec<(String, usize)> {
    let mut counts = Vec::new();
    for entry in std::fs::read_dir(dir.join("keyspaces")).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "0" {
            counts.push((name, count_files(&entry.path(), &is_version_file)));
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts.truncate(5);
    counts
}

fn is_version_file(name: &str) -> bool {
    name.strip_prefix('v')
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

fn is_journal(name: &str) -> bool {
    name.ends_with(".jnl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_and_flushed_journals_are_deleted_while_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        durability: Durability::Buffered,
        memtable_bytes: 16 * 1024,
        // Keep the bodies in the outbox itself, so that they pass through its memtable.
        claim_check_bytes: 2 * BODY_BYTES,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).expect("open");

    for n in 0..ENTRIES {
        match store.ingest(dedup_key(n), entry(n)).await.expect("ingest") {
            IngestOutcome::Accepted { .. } => {}
            other => panic!("entry {n}: {other:?}"),
        }
    }

    // Flushes and compactions run on fjall's workers; wait for them to settle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let versions = version_files_per_keyspace(dir.path());
        let most = versions.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let journals = count_files(dir.path(), &is_journal);
        // A keyspace keeps its current version and those newer than the last collection
        // (a handful); the outbox alone installed well over a hundred here. Journals: the
        // active one, and one its last memtables may still need.
        if most <= MAX_VERSION_FILES && journals <= 2 {
            eprintln!("left: at most {most} version files in a keyspace, {journals} journals");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "obsolete files left after 60 s: {journals} journals, version files per keyspace \
             {versions:?} ({:?})",
            store.engine_stats(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let total = usize::try_from(ENTRIES).expect("fits");
    assert_eq!(store.outbox_from(0, total + 1).expect("scan").len(), total);
    drop(store);
    let store = Store::open(dir.path(), options).expect("reopen");
    assert_eq!(store.outbox_from(0, total + 1).expect("scan").len(), total);
}
