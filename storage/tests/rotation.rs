//! Writes stay readable while the engine seals, flushes and compacts memtables under them.
//!
//! The vendored lsm-tree (`vendor/lsm-tree/PATCHED.md`) installs a flush's or compaction's
//! new version outside the version write lock, and memtables sealed meanwhile are carried
//! over into it. With tiny memtables every keyspace rotates hundreds of times during this
//! test, so losing one sealed memtable in that hand-over makes acknowledged writes vanish
//! from reads until the next restart.

use sluice_storage::{IngestOutcome, OutboxEntry, Store, StoreOptions};

mod common;
use common::{dedup_key, outbox_entry};

const WRITERS: u64 = 8;
const PER_WRITER: u64 = 1_500;

fn entry(n: u64) -> OutboxEntry {
    outbox_entry(
        n,
        7,
        format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(900)).into_bytes(),
    )
}

fn options() -> StoreOptions {
    StoreOptions {
        memtable_bytes: 32 * 1024,
        ..StoreOptions::default()
    }
}

/// Reads back one acknowledged entry, by sequence number and as a duplicate of its key.
async fn assert_readable(store: &Store, n: u64, seq: u64) {
    let stored = store
        .outbox_entry(seq)
        .expect("read")
        .unwrap_or_else(|| panic!("entry {n} (seq {seq}) was acknowledged but reads miss it"));
    assert_eq!(stored.event_id, format!("evt{n}"));
    match store.ingest(dedup_key(n), entry(n)).await.expect("ingest") {
        IngestOutcome::Duplicate { event_id } => assert_eq!(event_id, format!("evt{n}")),
        other => panic!("entry {n}: its repeat was not a duplicate: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_stay_readable_through_constant_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), options()).expect("open");

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..PER_WRITER {
                let n = w * PER_WRITER + i;
                let seq = match store.ingest(dedup_key(n), entry(n)).await.expect("ingest") {
                    IngestOutcome::Accepted { seq, .. } => seq,
                    other => panic!("entry {n}: {other:?}"),
                };
                acknowledged.push((n, seq));
                // This one at once, and one written a while ago: by now it sits in a sealed
                // memtable, a fresh table, or a compaction's output.
                assert_readable(&store, n, seq).await;
                let (old_n, old_seq) = acknowledged[(i as usize * 7919) % acknowledged.len()];
                assert_readable(&store, old_n, old_seq).await;
            }
            acknowledged
        }));
    }
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await.expect("writer"));
    }

    let stats = store.engine_stats();
    eprintln!("engine after the writes: {stats:?}");
    let total = usize::try_from(WRITERS * PER_WRITER).expect("fits");
    assert_eq!(store.outbox_from(0, total + 1).expect("scan").len(), total);
    drop(store);

    let store = Store::open(dir.path(), options()).expect("reopen");
    assert_eq!(store.outbox_from(0, total + 1).expect("scan").len(), total);
    for &(n, seq) in all.iter().step_by(97) {
        assert_readable(&store, n, seq).await;
    }
}
