//! Transactions in the log (KIP-98): the last stable offset, `read_committed` reads that stop
//! at it, transaction markers, the aborted-transaction index, and all of it rebuilt at open.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use shoal_log::batch;
use shoal_log::testkit::TestBatch;
use shoal_log::{AbortedTxn, BatchError, ControlType, LocalLog, LogConfig, LogError, PartitionLog};

fn txn(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = TestBatch::new().producer(pid, epoch, seq).transactional();
    for i in 0..n {
        b = b.value(&format!("v{i}"));
    }
    b.encode()
}

fn committed_offsets(log: &LocalLog, from: i64) -> Vec<i64> {
    let read = log
        .plan_read_committed(from, 1 << 20)
        .unwrap()
        .read()
        .unwrap();
    batch::split_and_validate(&read.records)
        .unwrap()
        .into_iter()
        .map(|(_, h)| h.base_offset)
        .collect()
}

#[test]
fn read_committed_stops_at_the_oldest_open_transaction_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&TestBatch::new().value("plain").encode(), 1)
        .unwrap(); // 0
    log.append(&txn(1, 0, 0, 3), 1).unwrap(); // 1..=3
    log.append(&TestBatch::new().value("plain").encode(), 1)
        .unwrap(); // 4
    log.append(&txn(2, 0, 0, 2), 1).unwrap(); // 5..=6
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(committed_offsets(&log, 0), vec![0]);
    assert!(committed_offsets(&log, 1).is_empty());

    let commit = log.append_marker(1, 0, ControlType::Commit, 0, 2).unwrap();
    assert_eq!(commit.base_offset, 7);
    assert_eq!(log.last_stable_offset(), 5);
    assert_eq!(committed_offsets(&log, 0), vec![0, 1, 4]);

    log.append_marker(2, 0, ControlType::Abort, 0, 3).unwrap(); // 8
    assert_eq!(log.last_stable_offset(), 9);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    let aborted = AbortedTxn {
        producer_id: 2,
        first_offset: 5,
        last_offset: 8,
    };
    assert_eq!(log.aborted_transactions(0, 9), vec![aborted]);
    assert!(log.aborted_transactions(0, 5).is_empty());
    assert_eq!(committed_offsets(&log, 0), vec![0, 1, 4, 5, 7, 8]);

    // A third transaction is open when the broker stops: all of it is rebuilt at open.
    log.append(&txn(1, 0, 3, 1), 4).unwrap(); // 9
    drop(log);
    let log = LocalLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.last_stable_offset(), 9);
    assert_eq!(log.aborted_transactions(0, 10), vec![aborted]);
    assert_eq!(log.open_transactions(), vec![(1, 0, 9)]);
}

#[test]
fn producers_cannot_write_markers_and_a_fencing_marker_refuses_the_old_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    let forged = shoal_log::txn::control_batch(5, 0, ControlType::Commit, 0, 1);
    assert!(matches!(
        log.append(&forged, 1),
        Err(LogError::Batch(BatchError::ControlBatch))
    ));
    log.append(&txn(5, 0, 0, 2), 1).unwrap();
    // The coordinator aborts the transaction of a fenced producer with the bumped epoch.
    log.append_marker(5, 1, ControlType::Abort, 0, 2).unwrap();
    assert!(matches!(
        log.append(&txn(5, 0, 2, 1), 3),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        log.append_marker(5, 0, ControlType::Commit, 0, 3),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // The new producer's epoch starts its sequence at 0.
    log.append(&txn(5, 2, 0, 1), 4).unwrap();
    assert_eq!(log.last_stable_offset(), 3);
}

#[test]
fn read_committed_stops_inside_a_segment_and_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = LocalLog::open(dir.path(), config, 0).unwrap();
    for _ in 0..6 {
        log.append(&TestBatch::new().values(1, 80).encode(), 1)
            .unwrap();
    }
    let first_open = log.log_end_offset();
    log.append(&txn(9, 0, 0, 1), 1).unwrap();
    for _ in 0..4 {
        log.append(&TestBatch::new().values(1, 80).encode(), 1)
            .unwrap();
    }
    assert_eq!(log.last_stable_offset(), first_open);
    let mut seen = Vec::new();
    let mut at = 0;
    loop {
        let got = committed_offsets(&log, at);
        let Some(&last) = got.last() else { break };
        seen.extend(got);
        at = last + 1;
    }
    assert_eq!(seen, (0..first_open).collect::<Vec<_>>());
}

#[test]
fn delete_records_past_an_open_transactions_start_keeps_read_committed_waiting_for_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&txn(1, 0, 0, 3), 1).unwrap(); // 0..=2
    log.append(&TestBatch::new().value("plain").encode(), 1)
        .unwrap(); // 3
    log.append(&txn(1, 0, 3, 1), 1).unwrap(); // 4
    assert_eq!(log.delete_records_before(2).unwrap(), 2);
    assert_eq!(log.open_transactions(), vec![(1, 0, 0)], "still open");
    assert_eq!(log.last_stable_offset(), 2, "never below the log start");
    assert!(committed_offsets(&log, 2).is_empty());
    log.append_marker(1, 0, ControlType::Commit, 0, 2).unwrap(); // 5
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(committed_offsets(&log, 2), vec![0, 3, 4, 5]);
    drop(log);
    let log = LocalLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(log.last_stable_offset(), 6);
}
