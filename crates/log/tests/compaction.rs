//! Log compaction: only the latest record per key stays in the cleaned segments, offsets are
//! kept, expired tombstones go and young ones stay, the two newest segments are untouched,
//! the result survives a reopen, and a second pass changes nothing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;

use kafka_protocol::records::{Compression, RecordBatchDecoder};
use shoal_log::testkit::TestBatch;
use shoal_log::{LocalLog, LogConfig, PartitionLog};

/// One batch of one record (offset 0 in the batch; the log assigns the real one).
fn record(key: &str, value: Option<&str>, ts: i64, compression: Compression) -> Vec<u8> {
    TestBatch::new()
        .keyed(key, value)
        .timestamp(ts)
        .compression(compression)
        .encode()
}

/// Every record in the log: offset -> (key, value).
fn contents(log: &LocalLog) -> HashMap<i64, (String, Option<String>)> {
    let mut out = HashMap::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20).unwrap();
        if read.records.is_empty() {
            break;
        }
        let mut buf = read.records.clone();
        for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            for r in set.records {
                offset = offset.max(r.offset + 1);
                out.insert(
                    r.offset,
                    (
                        String::from_utf8_lossy(&r.key.unwrap()).to_string(),
                        r.value.map(|v| String::from_utf8_lossy(&v).to_string()),
                    ),
                );
            }
        }
    }
    out
}

#[test]
fn compaction_keeps_the_latest_record_per_key_and_expires_old_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 700,
        ..LogConfig::default()
    };
    let now = 10_000_000;
    let mut log = LocalLog::open(dir.path(), config.clone(), now).unwrap();
    // 60 single-record batches over 5 keys, gzip every third; k4's tombstone is old, k3's young.
    for i in 0..60 {
        let key = format!("k{}", i % 5);
        let codec = if i % 3 == 0 {
            Compression::Gzip
        } else {
            Compression::None
        };
        let b = match i {
            10 => record("k4", None, 1_000, codec),
            55 => record("k3", None, now - 10, codec),
            _ => record(&key, Some(&format!("v{i}")), 1_000 + i, codec),
        };
        log.append(&b, now).unwrap();
    }
    let before = contents(&log);
    let end = log.log_end_offset();
    assert_eq!(end, 60);
    // Records in the two newest segments are never touched.
    let stats = log.compact(now, 1_000_000).unwrap();
    assert!(stats.segments_rewritten > 0, "{stats:?}");
    assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
    let after = contents(&log);
    assert_eq!(log.log_end_offset(), end, "the log end does not move");

    // The latest offset of each key in the whole log survives, with its value and offset.
    let mut latest: HashMap<String, i64> = HashMap::new();
    for (off, (k, _)) in &before {
        let e = latest.entry(k.clone()).or_insert(*off);
        *e = (*e).max(*off);
    }
    for (k, off) in &latest {
        let young_tombstone = k == "k3";
        if young_tombstone || before[off].1.is_some() {
            assert_eq!(after.get(off), before.get(off), "latest {k} at {off}");
        }
    }
    // Every record left is unchanged, and in the cleaned segments (the first 30 offsets are
    // well before the two newest segments, ~9 records each) only the latest per key is left.
    for (off, (k, v)) in &after {
        assert_eq!(
            before.get(off),
            Some(&(k.clone(), v.clone())),
            "offset {off} unchanged"
        );
        if *off < 30 {
            assert_eq!(latest[k], *off, "superseded {k} at {off} kept");
        }
    }
    assert!(!after.contains_key(&10), "the superseded tombstone is gone");
    assert!(after.len() < before.len() / 2);

    // Reopening reads the same log; a second pass has nothing to do.
    drop(log);
    let mut log = LocalLog::open(dir.path(), config, now).unwrap();
    assert_eq!(contents(&log), after);
    assert_eq!(log.log_end_offset(), end);
    let again = log.compact(now, 1_000_000).unwrap();
    assert_eq!(again.records_removed, 0, "{again:?}");
    // New appends continue at the old log end.
    let b = record("k0", Some("v60"), now, Compression::None);
    assert_eq!(log.append(&b, now).unwrap().base_offset, 60);
}

#[test]
fn an_expired_tombstone_that_is_the_latest_record_of_its_key_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let now = 10_000_000;
    let mut log = LocalLog::open(dir.path(), config, now).unwrap();
    let b = record("gone", Some("x"), 1_000, Compression::None);
    log.append(&b, now).unwrap();
    let b = record("gone", None, 1_000, Compression::None);
    log.append(&b, now).unwrap();
    for i in 0..20 {
        let b = record(&format!("other{i}"), Some("y"), now, Compression::None);
        log.append(&b, now).unwrap();
    }
    log.compact(now, 1_000).unwrap();
    let after = contents(&log);
    assert!(after.values().all(|(k, _)| k != "gone"), "{after:?}");
    assert_eq!(after.len(), 20);
}

#[test]
fn a_stored_batch_that_fails_to_decode_during_compaction_is_reported_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let now = 10_000_000;
    let mut log = LocalLog::open(dir.path(), config.clone(), now).unwrap();
    for i in 0..20 {
        let b = record(
            &format!("k{}", i % 2),
            Some("value"),
            1_000 + i,
            Compression::None,
        );
        log.append(&b, now).unwrap();
    }
    drop(log);
    // Flip one bit inside the first batch's records: covered by its CRC-32C, so the decoder
    // refuses it. The sealed segment opens from its index without being read.
    let first = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[65] ^= 0x10;
    std::fs::write(&first, &bytes).unwrap();
    let mut log = LocalLog::open(dir.path(), config, now).unwrap();
    let err = log.compact(now, 1_000_000).unwrap_err();
    match &err {
        shoal_log::LogError::Corrupt {
            offset,
            segment,
            reason,
        } => {
            assert_eq!(*offset, 0, "{err}");
            assert!(segment.ends_with("00000000000000000000.log"), "{err}");
            assert!(reason.contains("decode"), "{err}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was rewritten: the damaged segment is as it was, no temporary file is left.
    assert_eq!(std::fs::read(&first).unwrap(), bytes);
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}
