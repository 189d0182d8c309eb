//! Storage-engine behaviour: framing checks, append/read, recovery of torn and corrupt tails,
//! rolling, sparse-index reopen, retention, timestamps, idempotent producers, poisoning.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Write;

use shoal_log::batch::{self, HEADER_LEN};
use shoal_log::{BatchError, LocalLog, LogConfig, LogError, PartitionLog};

/// A valid batch of `n` offsets with a header only (records are never decoded by the log),
/// padded with `pad` bytes of body, from producer `pid` at `seq` (or -1s).
fn batch_of(n: i32, ts: i64, pid: i64, seq: i32, pad: usize) -> Vec<u8> {
    shoal_log::testkit::header_only(n, ts, pid, seq, pad)
}

fn plain(n: i32, ts: i64) -> Vec<u8> {
    batch_of(n, ts, -1, -1, 39)
}

/// A batch of `n` real records (values of 10 bytes), the first at `ts`, each next one
/// `step` ms later: for the code that decodes records (timestamp lookups).
fn stamped(n: usize, ts: i64, step: i64) -> Vec<u8> {
    shoal_log::testkit::TestBatch::new()
        .values(n, 10)
        .timestamp(ts)
        .timestamp_step(step)
        .encode()
}

fn open(dir: &std::path::Path, config: LogConfig) -> LocalLog {
    LocalLog::open(dir, config, 1_000).unwrap()
}

fn offsets_of(records: &[u8]) -> Vec<(i64, i64)> {
    batch::split_and_validate(records)
        .unwrap()
        .into_iter()
        .map(|(_, h)| (h.base_offset, h.last_offset()))
        .collect()
}

#[test]
fn batch_validation_catches_bit_flips_truncation_and_garbage() {
    let b = plain(3, 42);
    assert_eq!(batch::validate(&b).unwrap().offset_count(), 3);
    let mut flipped = b.clone();
    flipped[30] ^= 1;
    assert!(matches!(
        batch::validate(&flipped),
        Err(BatchError::CrcMismatch { .. })
    ));
    for cut in 1..b.len() {
        assert!(
            batch::split_and_validate(&b[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    assert!(batch::split_and_validate(&[0xff; 80]).is_err());
    let mut patched = b.clone();
    batch::set_base_offset(&mut patched, 1234).unwrap();
    assert_eq!(
        batch::validate(&patched).unwrap().base_offset,
        1234,
        "base_offset is outside the CRC"
    );
}

#[test]
fn appends_assign_contiguous_offsets_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    for (i, n) in [3, 1, 5].into_iter().enumerate() {
        let info = log.append(&plain(n, 10 + i as i64), 2_000).unwrap();
        assert!(!info.duplicate);
    }
    assert_eq!(log.log_end_offset(), 9);
    // Reading from an offset inside the second batch starts at that batch.
    let r = log.read(3, 1 << 20).unwrap();
    assert_eq!(offsets_of(&r.records), vec![(3, 3), (4, 8)]);
    // max_bytes smaller than a batch still returns one whole batch.
    let r = log.read(0, 1).unwrap();
    assert_eq!(offsets_of(&r.records), vec![(0, 2)]);
    assert!(
        log.read(9, 100).unwrap().records.is_empty(),
        "at the log end: empty"
    );
    assert!(matches!(
        log.read(10, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn torn_tail_is_truncated_to_the_last_whole_batch_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), LogConfig::default());
        for _ in 0..10 {
            log.append(&plain(2, 5), 2_000).unwrap();
        }
    }
    let seg = dir.path().join("00000000000000000000.log");
    let whole = std::fs::metadata(&seg).unwrap().len();
    // A crash mid-write leaves half a batch.
    let half = &plain(2, 5)[..40];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(half)
        .unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        whole,
        "partial batch cut off"
    );
    assert_eq!(
        log.append(&plain(1, 5), 2_000).unwrap().base_offset,
        20,
        "appends continue after recovery"
    );
}

#[test]
fn corrupt_batch_in_the_active_segment_truncates_from_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let size = plain(1, 5).len() as u64;
    {
        let mut log = open(dir.path(), LogConfig::default());
        for _ in 0..6 {
            log.append(&plain(1, 5), 2_000).unwrap();
        }
    }
    let seg = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[(size * 4 + 50) as usize] ^= 0x10; // inside the 5th batch's CRC-covered bytes
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(
        log.log_end_offset(),
        4,
        "batches from the corrupt one on are dropped"
    );
    assert_eq!(
        offsets_of(&log.read(0, 1 << 20).unwrap().records).len(),
        4,
        "no corrupt data is served"
    );
}

#[test]
fn segments_roll_by_size_and_reopen_from_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    {
        let mut log = open(dir.path(), config.clone());
        for i in 0..100 {
            log.append(&plain(2, i), 2_000).unwrap();
        }
        assert_eq!(log.log_end_offset(), 200);
    }
    let logs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(logs > 5, "rolled into many segments, got {logs}");
    let log = open(dir.path(), config);
    assert_eq!(log.log_end_offset(), 200);
    for target in [0, 37, 101, 198] {
        let r = log.read(target, 200).unwrap();
        let first = offsets_of(&r.records)[0];
        assert!(
            first.0 <= target && target <= first.1,
            "read at {target} starts with the batch holding it: {first:?}"
        );
    }
}

#[test]
fn retention_by_bytes_deletes_oldest_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        retention_bytes: 2048,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    for i in 0..100 {
        log.append(&plain(1, i), 2_000).unwrap();
    }
    let deleted = log.enforce_retention(3_000).unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() <= 2048 + 1024, "size {}", log.size_bytes());
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!log.read(start, 100).unwrap().records.is_empty());
}

#[test]
fn retention_by_time_uses_the_newest_timestamp_of_each_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 512,
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    for i in 0..30 {
        log.append(&plain(1, if i < 20 { 100 } else { 5_000 }), 2_000)
            .unwrap();
    }
    log.enforce_retention(5_500).unwrap();
    let r = log.read(log.log_start_offset(), 1 << 20).unwrap();
    assert!(
        log.log_start_offset() > 0 && log.log_start_offset() <= 20,
        "old segments gone, recent kept: start {}",
        log.log_start_offset()
    );
    assert!(!r.records.is_empty());
}

#[test]
fn offset_for_timestamp_finds_the_first_batch_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    for ts in [100, 200, 300] {
        log.append(&stamped(2, ts, 0), 2_000).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(150).unwrap(), Some((2, 200)));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(301).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((4, 300)));
}

#[test]
fn timestamp_lookups_resolve_to_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    // Offsets 0..5 at 100, 110, 120, 130, 140; then 5..8 all at 50 (older than the first).
    log.append(&stamped(5, 100, 10), 2_000).unwrap();
    log.append(&stamped(3, 50, 0), 2_000).unwrap();
    assert_eq!(log.offset_for_timestamp(115).unwrap(), Some((2, 120)));
    assert_eq!(log.offset_for_timestamp(140).unwrap(), Some((4, 140)));
    assert_eq!(log.offset_for_timestamp(141).unwrap(), None);
    // Max timestamp: the record carrying it, not its batch's base offset (KIP-734).
    assert_eq!(log.max_timestamp().unwrap(), Some((4, 140)));
}

#[test]
fn log_append_time_stamps_batches_with_the_broker_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        log_append_time: true,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone());
    log.append(&stamped(3, 100, 10), 5_000).unwrap();
    log.append(&stamped(2, 100, 10), 6_000).unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let first = batch::BatchHeader::parse(&read.records).unwrap();
    assert_eq!(first.max_timestamp, 5_000);
    assert_ne!(first.attributes & batch::LOG_APPEND_TIME_FLAG, 0);
    // Still a valid batch (the CRC was recomputed), and it survives a reopen.
    batch::validate(&read.records[..first.total_len()]).unwrap();
    assert_eq!(log.offset_for_timestamp(5_500).unwrap(), Some((3, 6_000)));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 5_000)));
    drop(log);
    let log = open(dir.path(), config);
    assert_eq!(log.max_timestamp().unwrap(), Some((3, 6_000)));
}

#[test]
fn idempotent_duplicates_are_acknowledged_with_the_original_offset_even_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!(
            log.append(&batch_of(3, 1, 9, 0, 0), 2_000)
                .unwrap()
                .base_offset,
            0
        );
        let dup = log.append(&batch_of(3, 1, 9, 0, 0), 2_000).unwrap();
        assert!(dup.duplicate && dup.base_offset == 0);
        assert!(matches!(
            log.append(&batch_of(1, 1, 9, 7, 0), 2_000),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                got: 7,
                ..
            })
        ));
    }
    let mut log = open(dir.path(), LogConfig::default());
    let dup = log.append(&batch_of(3, 1, 9, 0, 0), 2_000).unwrap();
    assert!(dup.duplicate, "producer state rebuilt from the log");
    assert_eq!(
        log.append(&batch_of(2, 1, 9, 3, 0), 2_000)
            .unwrap()
            .base_offset,
        3
    );
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn a_failed_fsync_poisons_the_log_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(&plain(1, 1), 2_000).unwrap();
    let target = log.sync_target().expect("dirty log needs a sync");
    assert!(log
        .sync_done(
            target.upto_offset,
            target.upto_bytes,
            Err(std::io::Error::other("EIO"))
        )
        .is_err());
    assert!(matches!(
        log.append(&plain(1, 1), 2_000),
        Err(LogError::Poisoned)
    ));
    // A later fsync that "succeeds" proves nothing: Linux reports a writeback error once and
    // may have dropped the dirty pages, so nothing becomes durable after a failure.
    assert!(matches!(
        log.sync_done(target.upto_offset, target.upto_bytes, Ok(())),
        Err(LogError::Poisoned)
    ));
    assert_eq!(log.synced_offset(), 0);
    assert_eq!(
        log.read(0, 100).map(|r| !r.records.is_empty()).ok(),
        Some(true),
        "reads still work"
    );
}

#[test]
fn sync_target_covers_every_append_and_clears_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert!(log.sync_target().is_none());
    log.append(&plain(2, 1), 2_000).unwrap();
    let t = log.sync_target().unwrap();
    assert_eq!(t.upto_offset, 2);
    let r = t.file.sync_data();
    log.sync_done(t.upto_offset, t.upto_bytes, r).unwrap();
    assert_eq!(log.synced_offset(), 2);
    assert!(log.sync_target().is_none());
}

#[test]
fn a_bit_flip_in_a_sealed_segment_is_detected_on_read_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    {
        let mut log = open(dir.path(), config.clone());
        for i in 0..100 {
            log.append(&plain(2, i), 2_000).unwrap();
        }
    }
    // Flip one body bit of the 3rd batch (offsets 4-5) of the first, sealed segment.
    let first = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&first).unwrap();
    let batch_len = plain(2, 0).len();
    bytes[2 * batch_len + HEADER_LEN + 5] ^= 0x10;
    std::fs::write(&first, &bytes).unwrap();

    let log = open(dir.path(), config);
    // From offset 0: the two good batches, cut before the bad one.
    let r = log.read(0, 4096).unwrap();
    assert_eq!(offsets_of(&r.records), vec![(0, 1), (2, 3)]);
    // The bad batch itself: an error, not its bytes.
    match log.read(4, 4096) {
        Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, 4),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Past it, the log still serves.
    let r = log.read(6, 4096).unwrap();
    assert_eq!(offsets_of(&r.records)[0], (6, 7));
    // And the intact, already verified prefix is served again without a new check failing.
    assert_eq!(
        offsets_of(&log.read(0, 2 * batch_len).unwrap().records).len(),
        2
    );
}

/// A small deterministic generator (no dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Everything the log serves from offset 0, read batch by batch: (first, last) offsets.
/// Corrupt batches are skipped over (an error, never data); returns (batches, corrupt reads).
fn read_everything(log: &LocalLog) -> (Vec<(i64, i64)>, usize) {
    let mut out = Vec::new();
    let mut corrupt = 0;
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        match log.read(offset, 4096) {
            Ok(r) if r.records.is_empty() => break,
            Ok(r) => {
                // Every served byte is a whole, CRC-valid batch.
                let batches = offsets_of(&r.records);
                offset = batches.last().map_or(offset + 1, |b| b.1 + 1);
                out.extend(batches);
            }
            Err(LogError::Corrupt { offset: at, .. }) => {
                corrupt += 1;
                offset = at + 2; // each test batch holds two offsets
            }
            Err(e) => panic!("read at {offset}: {e}"),
        }
    }
    (out, corrupt)
}

#[test]
fn random_bit_flips_and_truncations_are_never_served_and_never_panic() {
    let config = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let batch_len = plain(2, 0).len() as u64;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = open(dir.path(), config.clone());
            for i in 0..60 {
                log.append(&plain(2, i), 2_000).unwrap();
            }
        }
        let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        segs.sort();
        let target = &segs[rng.below(segs.len() as u64) as usize];
        let is_active = target == segs.last().unwrap();
        let mut bytes = std::fs::read(target).unwrap();
        let truncate = rng.below(3) == 0;
        if truncate {
            let cut = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(cut);
        } else {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        std::fs::write(target, &bytes).unwrap();

        // Reopening never panics; it may refuse a sealed segment whose framing is broken.
        let log = match LocalLog::open(dir.path(), config.clone(), 1_000) {
            Ok(log) => log,
            Err(_) => continue,
        };
        let (served, corrupt) = read_everything(&log);
        // Offsets served are increasing and each batch is served once.
        assert!(
            served.windows(2).all(|w| w[0].1 < w[1].0),
            "seed {seed}: {served:?}"
        );
        if is_active {
            // The active segment is scanned at open: its damaged tail is cut, nothing corrupt
            // remains to be read.
            assert_eq!(corrupt, 0, "seed {seed}");
        }
        // At most the damaged batches are missing: a flip costs one batch, a truncation
        // the tail of one segment.
        let lost = 60 - served.len();
        let per_segment = (1024 / batch_len + 1) as usize;
        assert!(
            lost <= per_segment,
            "seed {seed}: lost {lost} batches (truncate={truncate})"
        );
    }
}

#[test]
fn delete_records_moves_the_log_start_durably_and_drops_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..100 {
        log.append(&stamped(2, i, 0), 2_000).unwrap();
    }
    let end = log.log_end_offset();
    assert_eq!(end, 200);
    let segments_before = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments_before > 3);

    // Beyond the high watermark: refused, nothing changes.
    assert!(matches!(
        log.delete_records_before(end + 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.log_start_offset(), 0);

    // Into the middle of a batch: the start is that offset, not the batch's base.
    assert_eq!(log.delete_records_before(101).unwrap(), 101);
    assert_eq!(log.log_start_offset(), 101);
    assert!(matches!(
        log.read(100, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let read = log.read(101, 100).unwrap();
    assert_eq!(read.log_start_offset, 101);
    assert_eq!(
        offsets_of(&read.records)[0],
        (100, 101),
        "the batch holding 101"
    );
    let size_after = log.size_bytes();
    let segments_after = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(
        segments_after < segments_before,
        "whole segments below the start are deleted"
    );

    // A smaller offset changes nothing; timestamps below the start are not found.
    assert_eq!(log.delete_records_before(50).unwrap(), 101);
    assert_eq!(
        log.offset_for_timestamp(0).unwrap().map(|(o, _)| o),
        Some(101)
    );

    // The start survives a reopen.
    drop(log);
    let mut log = open(dir.path(), config);
    assert_eq!(log.log_start_offset(), 101);
    assert_eq!(log.size_bytes(), size_after);
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));

    // Up to the log end: the log is empty but keeps its offsets.
    assert_eq!(log.delete_records_before(end).unwrap(), end);
    assert!(log.read(end, 100).unwrap().records.is_empty());
    let next = log.append(&plain(1, 5), 2_000).unwrap();
    assert_eq!(next.base_offset, end);
}
