#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! The floor for durable acknowledgement on this machine: one fsynced commit alone, and
//! group commit with 32 concurrent writers (each request still waits for its fsync).
//! Run with `cargo bench --bench storage`.

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
}

criterion_group! {
    name = storage;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(storage);
