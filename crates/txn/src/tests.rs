//! Scenario tests of the coordinator with a fake clock: each names the behaviour it proves.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn coordinator() -> (TxnCoordinator, impl FnMut() -> Option<i64>) {
    let mut next = 1000;
    (TxnCoordinator::new(TxnConfig::default()), move || {
        next += 1;
        Some(next)
    })
}

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

/// Replays `records` into a fresh coordinator: the state must equal the live one.
fn replayed(records: &[TxnRecord]) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(TxnConfig::default());
    for r in records {
        let (k, v) = (r.encode_key(), r.encode_value());
        c.replay(&TxnRecord::decode(&k, v.as_deref()).unwrap());
    }
    c
}

#[test]
fn a_transaction_commits_through_prepare_commit_markers_and_complete_commit() {
    let (mut c, mut alloc) = coordinator();
    let mut log = Vec::new();
    let (r, out) = c.init_producer_id("tx", 60_000, None, 0, &mut alloc);
    let (pid, epoch) = r.unwrap();
    assert_eq!(epoch, 0);
    log.extend(out.records);
    let (r, out) = c.add_partitions("tx", pid, epoch, &[tp("a", 0), tp("b", 1)], 10);
    r.unwrap();
    assert_eq!(out.timers, vec![("tx".to_string(), Some(60_010))]);
    log.extend(out.records);
    assert_eq!(c.get("tx").unwrap().state, TxnState::Ongoing);
    // Adding a partition already in the transaction writes nothing.
    let (r, out) = c.add_partitions("tx", pid, epoch, &[tp("a", 0)], 11);
    r.unwrap();
    assert!(out.records.is_empty());
    let (r, out) = c.end_txn("tx", pid, epoch, true, 20);
    assert_eq!(r, Ok(true));
    assert_eq!(out.markers.len(), 1);
    let job = out.markers[0].clone();
    assert!(job.commit);
    assert_eq!(job.partitions, vec![tp("a", 0), tp("b", 1)]);
    assert_eq!(out.timers, vec![("tx".to_string(), None)]);
    log.extend(out.records);
    // Meanwhile the producer's next requests are told to retry.
    let (r, _) = c.add_partitions("tx", pid, epoch, &[tp("a", 0)], 21);
    assert_eq!(r, Err(TxnError::ConcurrentTransactions));
    assert_eq!(
        c.end_txn("tx", pid, epoch, true, 21).0,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        c.end_txn("tx", pid, epoch, false, 21).0,
        Err(TxnError::InvalidTxnState)
    );
    // Recovery in PrepareCommit writes the markers again.
    assert_eq!(replayed(&log).start().markers, vec![job.clone()]);
    let out = c.markers_written(&job, 30);
    log.extend(out.records);
    let m = c.get("tx").unwrap();
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    // A retried EndTxn(commit) succeeds; an abort now is refused.
    assert_eq!(c.end_txn("tx", pid, epoch, true, 31).0, Ok(false));
    assert_eq!(
        c.end_txn("tx", pid, epoch, false, 31).0,
        Err(TxnError::InvalidTxnState)
    );
    let r = replayed(&log);
    assert_eq!(r.get("tx").unwrap().state, TxnState::CompleteCommit);
    assert!(r.start().markers.is_empty());
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first_and_aborts_its_transaction() {
    let (mut c, mut alloc) = coordinator();
    let (pid, e0) = c
        .init_producer_id("tx", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    c.add_partitions("tx", pid, e0, &[tp("a", 0)], 1).0.unwrap();
    // The new instance: the ongoing transaction is aborted with a bumped epoch first.
    let (r, out) = c.init_producer_id("tx", 60_000, None, 2, &mut alloc);
    assert_eq!(r, Err(TxnError::ConcurrentTransactions));
    let job = out.markers[0].clone();
    assert!(!job.commit);
    assert_eq!(job.producer_epoch, e0 + 1);
    assert_eq!(c.get("tx").unwrap().state, TxnState::PrepareAbort);
    // The old producer is fenced.
    assert_eq!(
        c.add_partitions("tx", pid, e0, &[tp("b", 0)], 3).0,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.end_txn("tx", pid, e0, true, 3).0,
        Err(TxnError::ProducerFenced)
    );
    // Still aborting: retry.
    assert_eq!(
        c.init_producer_id("tx", 60_000, None, 3, &mut alloc).0,
        Err(TxnError::ConcurrentTransactions)
    );
    c.markers_written(&job, 4);
    assert_eq!(c.get("tx").unwrap().state, TxnState::CompleteAbort);
    let (pid2, e2) = c
        .init_producer_id("tx", 60_000, None, 5, &mut alloc)
        .0
        .unwrap();
    assert_eq!((pid2, e2), (pid, e0 + 2));
    assert_eq!(
        c.add_partitions("tx", 77, e2, &[tp("a", 0)], 6).0,
        Err(TxnError::InvalidProducerIdMapping)
    );
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_with_the_epoch_bumped() {
    let (mut c, mut alloc) = coordinator();
    let (pid, e) = c
        .init_producer_id("tx", 1_000, None, 0, &mut alloc)
        .0
        .unwrap();
    c.add_partitions("tx", pid, e, &[tp("a", 0)], 100)
        .0
        .unwrap();
    // Early: re-armed for the real deadline.
    let out = c.on_timer("tx", 500);
    assert_eq!(out.timers, vec![("tx".to_string(), Some(1_100))]);
    assert!(out.markers.is_empty());
    let out = c.on_timer("tx", 1_100);
    assert_eq!(out.markers.len(), 1);
    assert!(!out.markers[0].commit);
    assert_eq!(c.get("tx").unwrap().producer_epoch, e + 1);
    assert_eq!(
        c.end_txn("tx", pid, e, true, 1_200).0,
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn kip_360_bump_with_the_current_epoch_is_allowed_and_a_stale_one_fenced() {
    let (mut c, mut alloc) = coordinator();
    let (pid, e) = c
        .init_producer_id("tx", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    let (r, _) = c.init_producer_id("tx", 60_000, Some((pid, e)), 1, &mut alloc);
    assert_eq!(r, Ok((pid, e + 1)));
    // The same request retried (its answer was lost): the same answer, no second bump.
    let (r, out) = c.init_producer_id("tx", 60_000, Some((pid, e)), 2, &mut alloc);
    assert_eq!(r, Ok((pid, e + 1)));
    assert!(out.records.is_empty());
    let (r, _) = c.init_producer_id("tx", 60_000, Some((pid + 1, e + 1)), 3, &mut alloc);
    assert_eq!(r, Err(TxnError::ProducerFenced));
}

#[test]
fn requests_out_of_place_get_kafkas_errors() {
    let (mut c, mut alloc) = coordinator();
    assert_eq!(
        c.init_producer_id("", 60_000, None, 0, &mut alloc).0,
        Err(TxnError::InvalidRequest)
    );
    assert_eq!(
        c.init_producer_id("tx", 900_001, None, 0, &mut alloc).0,
        Err(TxnError::InvalidTransactionTimeout)
    );
    assert_eq!(
        c.init_producer_id("tx", 0, None, 0, &mut alloc).0,
        Err(TxnError::InvalidTransactionTimeout)
    );
    let (pid, e) = c
        .init_producer_id("tx", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    // EndTxn with no transaction.
    assert_eq!(
        c.end_txn("tx", pid, e, true, 1).0,
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(
        c.end_txn("nope", pid, e, true, 1).0,
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(c.describe("nope"), Err(TxnError::TransactionalIdNotFound));
    assert_eq!(c.describe("tx").unwrap().state, TxnState::Empty);
}

#[test]
fn an_exhausted_epoch_rotates_to_a_new_producer_id() {
    let (mut c, mut alloc) = coordinator();
    let (pid, _) = c
        .init_producer_id("tx", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    let mut m = c.get("tx").unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    let mut out = TxnOutput::default();
    c.persist(m, &mut out);
    let (r, _) = c.init_producer_id("tx", 60_000, None, 1, &mut alloc);
    let (pid2, e2) = r.unwrap();
    assert_ne!(pid2, pid);
    assert_eq!(e2, 0);
}

#[test]
fn idle_transactional_ids_expire_and_ongoing_ones_do_not() {
    let (mut c, mut alloc) = coordinator();
    c.init_producer_id("idle", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    let (pid, e) = c
        .init_producer_id("busy", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    c.add_partitions("busy", pid, e, &[tp("a", 0)], 0)
        .0
        .unwrap();
    let week = TxnConfig::default().id_expiration_ms;
    let out = c.expire(week + 1);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].value, None);
    assert!(c.get("idle").is_none());
    assert!(c.get("busy").is_some());
}
