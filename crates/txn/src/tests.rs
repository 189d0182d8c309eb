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

// Transaction version 2 (KIP-890 part 2).

fn no_alloc() -> Option<i64> {
    None
}

#[test]
fn a_tv2_commit_bumps_the_epoch_writes_markers_at_it_and_answers_it() {
    let (mut c, mut alloc) = coordinator();
    let mut log = Vec::new();
    let (r, out) = c.init_producer_id("tx", 60_000, None, 0, &mut alloc);
    let (pid, e) = r.unwrap();
    log.extend(out.records);
    let (r, out) = c.add_partitions_with_version("tx", pid, e, &[tp("a", 0)], 2, 1);
    r.unwrap();
    log.extend(out.records);
    assert_eq!(c.get("tx").unwrap().client_transaction_version, 2);
    let (r, out) = c.end_txn_v2("tx", pid, e, true, 2, &mut no_alloc);
    assert_eq!(
        r,
        Ok(EndTxnV2 {
            markers: true,
            producer_id: pid,
            producer_epoch: e + 1
        })
    );
    let job = out.markers[0].clone();
    assert_eq!(
        (job.producer_id, job.producer_epoch, job.commit),
        (pid, e + 1, true)
    );
    log.extend(out.records);
    let m = c.get("tx").unwrap();
    assert_eq!(
        (m.state, m.producer_epoch, m.last_producer_epoch),
        (TxnState::PrepareCommit, e + 1, e)
    );
    // The same EndTxn again while markers are written: retry; the other outcome: refused;
    // the bumped epoch is not a transaction's yet.
    assert_eq!(
        c.end_txn_v2("tx", pid, e, true, 3, &mut no_alloc).0,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        c.end_txn_v2("tx", pid, e, false, 3, &mut no_alloc).0,
        Err(TxnError::InvalidTxnState)
    );
    assert_eq!(
        c.end_txn_v2("tx", pid, e + 1, true, 3, &mut no_alloc).0,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.add_partitions_with_version("tx", pid, e + 1, &[tp("a", 0)], 2, 3)
            .0,
        Err(TxnError::ConcurrentTransactions)
    );
    log.extend(c.markers_written(&job, 4).records);
    let m = c.get("tx").unwrap();
    assert_eq!(
        (m.state, m.producer_epoch),
        (TxnState::CompleteCommit, e + 1)
    );
    // A retry after completion answers what the first got, writing nothing.
    let (r, out) = c.end_txn_v2("tx", pid, e, true, 5, &mut no_alloc);
    assert_eq!(
        r,
        Ok(EndTxnV2 {
            markers: false,
            producer_id: pid,
            producer_epoch: e + 1
        })
    );
    assert!(out.records.is_empty());
    // The old epoch is fenced; the next transaction runs at the bumped one.
    assert_eq!(
        c.add_partitions_with_version("tx", pid, e, &[tp("a", 0)], 2, 6)
            .0,
        Err(TxnError::ProducerFenced)
    );
    let (r, out) = c.add_partitions_with_version("tx", pid, e + 1, &[tp("b", 0)], 2, 6);
    r.unwrap();
    log.extend(out.records);
    let live = c.get("tx").unwrap().clone();
    let back = replayed(&log);
    let m = back.get("tx").unwrap();
    assert_eq!(
        (
            m.state,
            m.producer_epoch,
            &m.partitions,
            m.client_transaction_version
        ),
        (live.state, live.producer_epoch, &live.partitions, 2)
    );
}

#[test]
fn a_tv2_abort_with_nothing_added_bumps_the_epoch_and_completes_without_markers() {
    let (mut c, mut alloc) = coordinator();
    let (pid, e) = c
        .init_producer_id("tx", 60_000, None, 0, &mut alloc)
        .0
        .unwrap();
    // A commit with no transaction is refused, as in Kafka.
    assert_eq!(
        c.end_txn_v2("tx", pid, e, true, 1, &mut no_alloc).0,
        Err(TxnError::InvalidTxnState)
    );
    let (r, out) = c.end_txn_v2("tx", pid, e, false, 1, &mut no_alloc);
    assert_eq!(
        r,
        Ok(EndTxnV2 {
            markers: false,
            producer_id: pid,
            producer_epoch: e + 1
        })
    );
    assert!(out.markers.is_empty());
    let states: Vec<TxnState> = out
        .records
        .iter()
        .map(|r| r.value.as_ref().unwrap().state)
        .collect();
    assert_eq!(
        states,
        vec![TxnState::PrepareAbort, TxnState::CompleteAbort]
    );
    assert_eq!(c.get("tx").unwrap().state, TxnState::CompleteAbort);
    // Its retry is answered with the current epoch; a stale epoch is fenced.
    assert_eq!(
        c.end_txn_v2("tx", pid, e, false, 2, &mut no_alloc)
            .0
            .unwrap()
            .producer_epoch,
        e + 1
    );
    assert_eq!(
        c.end_txn_v2("tx", pid, e - 1, false, 2, &mut no_alloc).0,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.end_txn_v2("tx", 999, e + 1, false, 2, &mut no_alloc).0,
        Err(TxnError::InvalidProducerIdMapping)
    );
    // Another empty abort at the current epoch bumps again.
    assert_eq!(
        c.end_txn_v2("tx", pid, e + 1, false, 3, &mut no_alloc)
            .0
            .unwrap()
            .producer_epoch,
        e + 2
    );
}

#[test]
fn a_tv2_end_at_an_exhausted_epoch_moves_to_a_new_producer_id_once_complete() {
    let (mut c, mut alloc) = coordinator();
    c.replay(&TxnRecord {
        transactional_id: "tx".into(),
        value: Some(TxnLogValue {
            producer_id: 5,
            producer_epoch: MAX_EPOCH,
            transaction_timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [tp("a", 0)].into_iter().collect(),
            last_update_timestamp_ms: 0,
            start_timestamp_ms: 0,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 2,
        }),
    });
    let mut log = Vec::new();
    let (r, out) = c.end_txn_v2("tx", 5, MAX_EPOCH, true, 1, &mut alloc);
    let r = r.unwrap();
    assert!(r.markers);
    assert_eq!(r.producer_epoch, 0);
    let new_pid = r.producer_id;
    assert_ne!(new_pid, 5);
    // The markers are the old producer's, at the last epoch.
    let job = out.markers[0].clone();
    assert_eq!((job.producer_id, job.producer_epoch), (5, i16::MAX));
    log.extend(out.records);
    // Until the markers are written the new id is not in effect.
    assert_eq!(
        c.add_partitions_with_version("tx", new_pid, 0, &[tp("a", 0)], 2, 2)
            .0,
        Err(TxnError::InvalidProducerIdMapping)
    );
    // A crash here must not lose the new id: it is in the record (tag 1).
    assert_eq!(replayed(&log).get("tx").unwrap().next_producer_id, new_pid);
    log.extend(c.markers_written(&job, 3).records);
    let m = c.get("tx").unwrap();
    assert_eq!(
        (
            m.producer_id,
            m.producer_epoch,
            m.previous_producer_id,
            m.next_producer_id
        ),
        (new_pid, 0, 5, -1)
    );
    let back = replayed(&log);
    assert_eq!(back.get("tx").unwrap().producer_id, new_pid);
    // A retry of the EndTxn by the old id is answered with the new one.
    let (r, out) = c.end_txn_v2("tx", 5, MAX_EPOCH, true, 4, &mut alloc);
    assert_eq!(
        r,
        Ok(EndTxnV2 {
            markers: false,
            producer_id: new_pid,
            producer_epoch: 0
        })
    );
    assert!(out.records.is_empty());
    c.add_partitions_with_version("tx", new_pid, 0, &[tp("a", 0)], 2, 5)
        .0
        .unwrap();
}
