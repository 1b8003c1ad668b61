#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! The floor for durable acknowledgement on this machine: one fsynced commit alone, and
//! group commit with 32 concurrent writers (each request still waits for its fsync).
//! Also the device's own cost of a commit-sized `write` + `fdatasync` into a journal
//! file created sparse (upstream fjall) against one zero-filled beforehand
//! (`vendor/fjall/PATCHED.md` §5). Run with `cargo bench --bench storage`.

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_storage::{Store, StoreOptions, TenantRecord, WriteSet};

fn one(n: u64) -> WriteSet {
    let mut w = WriteSet::new();
    w.put_tenant(&TenantRecord {
        space_id: "sp".into(),
        id: format!("t{n}"),
        created_at_ms: n,
    })
    .expect("encode");
    w
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let mut n = 0u64;
    c.bench_function("commit/fsync_single_writer", |b| {
        b.iter(|| {
            n += 1;
            store.commit_blocking(one(n)).expect("commit")
        })
    });
    let mut group = c.benchmark_group("commit");
    group.throughput(criterion::Throughput::Elements(32));
    group.bench_function("fsync_group_of_32_writers", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for t in 0..32u64 {
                    let store = store.clone();
                    s.spawn(move || {
                        for i in 0..iters {
                            store
                                .commit_blocking(one(1_000_000 + t * 1_000_000 + i))
                                .expect("commit");
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("device");
    for zero_filled in [false, true] {
        let path = dir.path().join(format!("journal-{zero_filled}"));
        let mut file = journal_file(&path, zero_filled);
        let name = if zero_filled {
            "fdatasync_12k_into_zero_filled_file"
        } else {
            "fdatasync_12k_into_sparse_file"
        };
        let chunk = [0x5a_u8; 12_000];
        let mut written = 0_u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                if written + chunk.len() as u64 > JOURNAL_BYTES {
                    // Past the end: a fresh file, as a journal rotation makes.
                    file = journal_file(&path, zero_filled);
                    written = 0;
                }
                file.write_all(&chunk).expect("write");
                file.sync_data().expect("fdatasync");
                written += chunk.len() as u64;
            })
        });
    }
    group.finish();
}

/// fjall's journal size (`PRE_ALLOCATED_BYTES`).
const JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// A new journal-sized file at `path`, sparse (`set_len`) or written with zeros a page
/// at a time, synced, with the cursor at its start.
fn journal_file(path: &std::path::Path, zero_filled: bool) -> std::fs::File {
    std::fs::remove_file(path).ok();
    let mut file = std::fs::File::create_new(path).expect("create");
    if zero_filled {
        let page = [0_u8; 4096];
        for _ in 0..JOURNAL_BYTES / 4096 {
            file.write_all(&page).expect("zero-fill");
        }
    } else {
        file.set_len(JOURNAL_BYTES).expect("set_len");
    }
    file.sync_all().expect("sync");
    file.seek(SeekFrom::Start(0)).expect("seek");
    file
}

criterion_group! {
    name = storage;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(storage);
