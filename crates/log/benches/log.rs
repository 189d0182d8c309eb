//! Criterion benches of the storage engine's hot paths, in bytes per second:
//! - `validate`: header checks plus CRC-32C of a batch (what every Produce pays);
//! - `append`: [`PartitionLog::append`] of batches as librdkafka sends them (16 records of
//!   1 KiB, 1 000 records of 1 KiB, one record of 100 B), into the page cache, no fsync;
//! - `append_fsync`: 1 MiB of batches appended, then one fsync (a group commit's work);
//! - `read`: a Fetch's read plan and positional read of up to 1 MiB of whole batches from a
//!   64 MiB log in the page cache.
//!
//! Run: `cargo bench -p shoal-log` (or `bash scripts/bench.sh log`). The files live in a
//! temporary directory under `$TMPDIR` (default /tmp); segments roll at 64 MiB and old ones
//! are deleted, so a run stays under ~200 MiB of disk.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shoal_log::testkit::TestBatch;
use shoal_log::{batch, LocalLog, LogConfig, PartitionLog};

/// One uncompressed batch of `count` records with `size`-byte values (keyless), as a
/// producer would send it.
fn batch_of(count: usize, size: usize) -> Vec<u8> {
    TestBatch::new()
        .values(count, size)
        .timestamp_step(1)
        .encode()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_bytes: 128 << 20,
        ..LogConfig::default()
    }
}

fn validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate");
    for (name, count, size) in [("1000x1KiB", 1000, 1024), ("1x100B", 1, 100)] {
        let b = batch_of(count, size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| batch::validate(black_box(&b)).unwrap())
        });
    }
    g.finish();
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    for (name, count, size) in [
        ("16x1KiB", 16, 1024),
        ("1000x1KiB", 1000, 1024),
        ("1x100B", 1, 100),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LocalLog::open(dir.path(), config(), 0).unwrap();
        let b = batch_of(count, size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        let mut appended = 0u64;
        g.bench_function(name, |bench| {
            bench.iter(|| {
                log.append(black_box(&b), 0).unwrap();
                appended += b.len() as u64;
                if appended >= 32 << 20 {
                    // Keep the disk footprint bounded: drop sealed segments past retention.
                    appended = 0;
                    log.enforce_retention(0).unwrap();
                }
            })
        });
    }
    g.finish();
}

fn append_fsync(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_fsync");
    g.sample_size(20);
    let dir = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(dir.path(), config(), 0).unwrap();
    let b = batch_of(64, 1024);
    let per_commit = (1 << 20) / b.len();
    g.throughput(Throughput::Bytes((per_commit * b.len()) as u64));
    g.bench_function("1MiB", |bench| {
        bench.iter(|| {
            for _ in 0..per_commit {
                log.append(&b, 0).unwrap();
            }
            let target = log.sync_target().unwrap();
            let result = target.file.sync_data();
            log.sync_done(target.upto_offset, target.upto_bytes, result)
                .unwrap();
            log.enforce_retention(0).unwrap();
        })
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    let dir = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(
        dir.path(),
        LogConfig {
            retention_bytes: -1,
            ..config()
        },
        0,
    )
    .unwrap();
    let b = batch_of(16, 1024);
    while log.size_bytes() < 64 << 20 {
        log.append(&b, 0).unwrap();
    }
    let end = log.log_end_offset();
    for max_bytes in [1usize << 20, 64 << 10] {
        // Sequential consumption from a moving offset, wrapping at the end.
        let offset = std::cell::Cell::new(0i64);
        g.throughput(Throughput::Bytes(max_bytes as u64));
        g.bench_function(format!("{}KiB", max_bytes >> 10), |bench| {
            bench.iter_batched(
                || {
                    if offset.get() >= end - 2_000 {
                        offset.set(0);
                    }
                    offset.get()
                },
                |from| {
                    let r = log.plan_read(from, max_bytes).unwrap().read().unwrap();
                    offset.set(from + (r.records.len() / b.len()) as i64 * 16);
                    r
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, validate, append, append_fsync, read);
criterion_main!(benches);
