//! Shoal's transaction coordinator (KIP-98), sans-IO like the group coordinator: it does no
//! I/O and reads no clock (time is an argument). Every state change is a [`TxnRecord`] for
//! `__transaction_state`, applied through the one [`TxnCoordinator::replay`] used live and at
//! recovery; what the broker must do besides appending records (write transaction markers,
//! arm timers) comes back in [`TxnOutput`].
//!
//! Flow, after Kafka's `TransactionCoordinator`:
//! - InitProducerId with a `transactional_id`: a new producer id (epoch 0), or the epoch
//!   bumped, fencing the previous producer. An Ongoing transaction is aborted first (its
//!   epoch bumped, so the fenced producer's writes are refused) and the caller gets
//!   CONCURRENT_TRANSACTIONS to retry; KIP-360 retries name the producer id and epoch they
//!   hold.
//! - AddPartitionsToTxn / AddOffsetsToTxn: Empty or Complete* -> Ongoing (start timestamp set,
//!   the timeout armed), or more partitions in Ongoing.
//! - EndTxn: Ongoing -> PrepareCommit / PrepareAbort; the broker writes a marker to every
//!   partition of the transaction ([`MarkerJob`]) and reports back with
//!   [`TxnCoordinator::markers_written`], which moves to CompleteCommit / CompleteAbort.
//! - A transaction Ongoing for longer than its `transaction.timeout.ms` is aborted with the
//!   epoch bumped ([`TxnCoordinator::on_timer`]), as Kafka's proactive abort does.
//! - A transactional id idle in Empty / Complete* for `transactional.id.expiration.ms` is
//!   removed (a tombstone).

mod error;
pub mod records;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};

pub use error::TxnError;
pub use records::{TxnLogValue, TxnRecord, TxnRecordError};
pub use state::{IllegalTransition, TransactionMetadata, TxnState};

/// `(topic, partition)`.
pub type TopicPartition = (String, i32);

/// Settings, under Kafka's names.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask
    /// for (ms). Kafka default 900000.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id without a transaction for this long is
    /// removed (ms). Kafka default 604800000 (7 days).
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Markers to write: one control batch of `result` for `producer_id` at `producer_epoch` in
/// each partition, then [`TxnCoordinator::markers_written`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// True for COMMIT, false for ABORT.
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// What a call asks the broker to do.
#[derive(Debug, Default)]
pub struct TxnOutput {
    /// Records to append to `__transaction_state`, in order; already applied.
    pub records: Vec<TxnRecord>,
    /// Markers to write once `records` are durable.
    pub markers: Vec<MarkerJob>,
    /// `(transactional_id, Some(deadline_ms))` arms the transaction's timeout; `None`
    /// cancels it.
    pub timers: Vec<(String, Option<i64>)>,
}

/// The result of InitProducerId: `(producer_id, producer_epoch)`.
pub type ProducerIdAndEpoch = (i64, i16);

/// What an EndTxn of transaction version 2 ([`TxnCoordinator::end_txn_v2`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnV2 {
    /// Markers are to be written: the answer waits for
    /// [`TxnCoordinator::markers_written`].
    pub markers: bool,
    /// The producer id the client goes on with (EndTxn v5's `producer_id`).
    pub producer_id: i64,
    /// Its epoch (EndTxn v5's `producer_epoch`).
    pub producer_epoch: i16,
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_timestamp_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

/// Epochs at or above this start a new producer id (Kafka rotates before `Short.MAX_VALUE`).
const MAX_EPOCH: i16 = i16::MAX - 1;

/// The coordinator's state: every transactional id's metadata.
#[derive(Debug, Default)]
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TransactionMetadata>,
}

impl TxnCoordinator {
    /// An empty coordinator (replay `__transaction_state` into it, then [`Self::start`]).
    pub fn new(config: TxnConfig) -> Self {
        Self {
            config,
            txns: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Applies a record (live and at recovery).
    pub fn replay(&mut self, record: &TxnRecord) {
        match &record.value {
            None => {
                self.txns.remove(&record.transactional_id);
            }
            Some(v) => {
                let last = self
                    .txns
                    .get(&record.transactional_id)
                    .filter(|m| {
                        m.producer_id == v.producer_id && m.producer_epoch != v.producer_epoch
                    })
                    .map(|m| m.producer_epoch);
                let keep_last = self
                    .txns
                    .get(&record.transactional_id)
                    .map_or(-1, |m| m.last_producer_epoch);
                self.txns.insert(
                    record.transactional_id.clone(),
                    TransactionMetadata {
                        transactional_id: record.transactional_id.clone(),
                        producer_id: v.producer_id,
                        producer_epoch: v.producer_epoch,
                        last_producer_epoch: last.unwrap_or(keep_last),
                        txn_timeout_ms: v.transaction_timeout_ms,
                        state: v.state,
                        partitions: v.partitions.clone(),
                        txn_start_timestamp_ms: v.start_timestamp_ms,
                        txn_last_update_timestamp_ms: v.last_update_timestamp_ms,
                        previous_producer_id: v.previous_producer_id,
                        next_producer_id: v.next_producer_id,
                        client_transaction_version: v.client_transaction_version,
                    },
                );
            }
        }
    }

    /// After recovery: markers of transactions left in PrepareCommit / PrepareAbort are
    /// written (again; a second marker where one landed is harmless), and the timeouts of
    /// Ongoing transactions are armed.
    pub fn start(&self) -> TxnOutput {
        let mut out = TxnOutput::default();
        for m in self.txns.values() {
            match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    out.markers.push(marker_job(m));
                }
                TxnState::Ongoing => out.timers.push((
                    m.transactional_id.clone(),
                    Some(m.txn_start_timestamp_ms + i64::from(m.txn_timeout_ms)),
                )),
                _ => {}
            }
        }
        out
    }

    /// A transactional id's state.
    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every transactional id's state.
    pub fn all(&self) -> impl Iterator<Item = &TransactionMetadata> {
        self.txns.values()
    }

    /// Writes `m` (a changed copy of the current state) as a record and applies it.
    fn persist(&mut self, m: TransactionMetadata, out: &mut TxnOutput) {
        let record = TxnRecord {
            transactional_id: m.transactional_id.clone(),
            value: Some(TxnLogValue::of(&m)),
        };
        self.replay(&record);
        if let Some(cur) = self.txns.get_mut(&m.transactional_id) {
            // The in-memory retry epoch is more precise than what the record can say.
            cur.last_producer_epoch = m.last_producer_epoch;
        }
        out.records.push(record);
    }

    /// InitProducerId for `transactional_id` with `timeout_ms` (`transaction.timeout.ms`).
    /// `expected` is the KIP-360 `(producer_id, producer_epoch)` the client holds, `None` for
    /// a fresh client. `allocate` gives a new producer id when one is needed.
    ///
    /// Errors: INVALID_REQUEST (empty id), INVALID_TRANSACTION_TIMEOUT,
    /// CONCURRENT_TRANSACTIONS (markers being written, or an Ongoing transaction now being
    /// aborted: retry), PRODUCER_FENCED (`expected` is not the current producer),
    /// COORDINATOR_NOT_AVAILABLE (`allocate` failed).
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Option<i64>,
    ) -> (Result<ProducerIdAndEpoch, TxnError>, TxnOutput) {
        let mut out = TxnOutput::default();
        if transactional_id.is_empty() {
            return (Err(TxnError::InvalidRequest), out);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return (Err(TxnError::InvalidTransactionTimeout), out);
        }
        let Some(current) = self.txns.get(transactional_id).cloned() else {
            // An id never seen (or expired): a new producer, whatever the client holds, as
            // in Kafka.
            let Some(pid) = allocate() else {
                return (Err(TxnError::CoordinatorNotAvailable), out);
            };
            let m = TransactionMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id: pid,
                producer_epoch: 0,
                last_producer_epoch: -1,
                txn_timeout_ms: timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                txn_start_timestamp_ms: -1,
                txn_last_update_timestamp_ms: now_ms,
                previous_producer_id: -1,
                next_producer_id: -1,
                client_transaction_version: 0,
            };
            self.persist(m, &mut out);
            return (Ok((pid, 0)), out);
        };
        if let Some((pid, epoch)) = expected.filter(|(pid, _)| *pid >= 0) {
            // The current producer, or (KIP-890) the one an EndTxn of transaction version 2
            // rotated away from at an exhausted epoch.
            let valid = (pid == current.producer_id
                && (epoch == current.producer_epoch || epoch == current.last_producer_epoch))
                || (pid == current.previous_producer_id && epoch >= MAX_EPOCH);
            if !valid {
                return (Err(TxnError::ProducerFenced), out);
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                (Err(TxnError::ConcurrentTransactions), out)
            }
            TxnState::Ongoing => {
                // Fence the producer: the abort is written with a bumped epoch, so its
                // late writes are refused. The client retries once the abort is complete.
                self.abort_fenced(current, now_ms, &mut out);
                (Err(TxnError::ConcurrentTransactions), out)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut m = current;
                let retry = expected.is_some_and(|(pid, epoch)| {
                    pid == m.producer_id && epoch == m.last_producer_epoch && epoch >= 0
                });
                if retry {
                    // A retried KIP-360 bump: answer what the first attempt got.
                    return (Ok((m.producer_id, m.producer_epoch)), out);
                }
                if m.producer_epoch >= MAX_EPOCH {
                    let Some(pid) = allocate() else {
                        return (Err(TxnError::CoordinatorNotAvailable), out);
                    };
                    m.producer_id = pid;
                    m.producer_epoch = 0;
                    m.last_producer_epoch = -1;
                } else {
                    m.last_producer_epoch = m.producer_epoch;
                    m.producer_epoch += 1;
                }
                if m.transition_to(TxnState::Empty).is_err() {
                    return (Err(TxnError::InvalidTxnState), out);
                }
                m.txn_timeout_ms = timeout_ms;
                m.partitions.clear();
                m.txn_start_timestamp_ms = -1;
                m.txn_last_update_timestamp_ms = now_ms;
                let answer = (m.producer_id, m.producer_epoch);
                self.persist(m, &mut out);
                (Ok(answer), out)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                (Err(TxnError::ConcurrentTransactions), out)
            }
        }
    }

    /// Aborts `m` (Ongoing) with its epoch bumped (a fencing InitProducerId or a timeout).
    fn abort_fenced(&mut self, mut m: TransactionMetadata, now_ms: i64, out: &mut TxnOutput) {
        if m.producer_epoch < MAX_EPOCH {
            m.last_producer_epoch = m.producer_epoch;
            m.producer_epoch += 1;
        }
        if m.transition_to(TxnState::PrepareAbort).is_err() {
            return;
        }
        m.txn_last_update_timestamp_ms = now_ms;
        out.markers.push(marker_job(&m));
        out.timers.push((m.transactional_id.clone(), None));
        self.persist(m, out);
    }

    /// Checks that `producer_id` at `producer_epoch` is the transactional id's current
    /// producer, returning a copy of its state.
    fn current(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<TransactionMetadata, TxnError> {
        let m = self
            .txns
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(m.clone())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
    /// partition): the partitions join the transaction, which becomes Ongoing.
    ///
    /// Errors: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS
    /// (markers of the previous transaction being written), INVALID_TXN_STATE.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> (Result<(), TxnError>, TxnOutput) {
        self.add_partitions_with_version(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            0,
            now_ms,
        )
    }

    /// [`Self::add_partitions`] for a client running `client_transaction_version`: 2 for the
    /// implicit adds of KIP-890 part 2 (Produce v12+, TxnOffsetCommit v5+), which Kafka makes
    /// with the same checks (the epoch must be the current one: PRODUCER_FENCED otherwise;
    /// CONCURRENT_TRANSACTIONS while the previous transaction's markers are written).
    pub fn add_partitions_with_version(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        client_transaction_version: i16,
        now_ms: i64,
    ) -> (Result<(), TxnError>, TxnOutput) {
        let mut out = TxnOutput::default();
        let mut m = match self.current(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(e) => return (Err(e), out),
        };
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return (Err(TxnError::ConcurrentTransactions), out)
            }
            TxnState::Ongoing if partitions.iter().all(|p| m.partitions.contains(p)) => {
                return (Ok(()), out);
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                m.partitions.clear();
                m.txn_start_timestamp_ms = now_ms;
                out.timers.push((
                    m.transactional_id.clone(),
                    Some(now_ms + i64::from(m.txn_timeout_ms)),
                ));
            }
            TxnState::Ongoing => {}
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return (Err(TxnError::InvalidTxnState), out)
            }
        }
        if m.transition_to(TxnState::Ongoing).is_err() {
            return (Err(TxnError::InvalidTxnState), out);
        }
        m.partitions.extend(partitions.iter().cloned());
        m.client_transaction_version = client_transaction_version;
        m.txn_last_update_timestamp_ms = now_ms;
        self.persist(m, &mut out);
        (Ok(()), out)
    }

    /// EndTxn: commit (`commit`) or abort the Ongoing transaction. `Ok(true)` when markers
    /// are now to be written (the answer waits for [`Self::markers_written`]); `Ok(false)`
    /// for a retry of an EndTxn already complete.
    ///
    /// Errors: INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS (the same
    /// EndTxn is being completed), INVALID_TXN_STATE (no transaction, or the other outcome is
    /// under way or done).
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> (Result<bool, TxnError>, TxnOutput) {
        let mut out = TxnOutput::default();
        let mut m = match self.current(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(e) => return (Err(e), out),
        };
        let result = match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let to = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                if m.transition_to(to).is_err() {
                    return (Err(TxnError::InvalidTxnState), out);
                }
                m.txn_last_update_timestamp_ms = now_ms;
                out.markers.push(marker_job(&m));
                out.timers.push((m.transactional_id.clone(), None));
                self.persist(m, &mut out);
                Ok(true)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(false),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => Err(TxnError::InvalidTxnState),
        };
        (result, out)
    }

    /// Every marker of `job` is written and durable: the transaction completes
    /// (CompleteCommit / CompleteAbort, partitions cleared). A report for a transaction that
    /// moved on meanwhile changes nothing.
    pub fn markers_written(&mut self, job: &MarkerJob, now_ms: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let Some(m) = self.txns.get(&job.transactional_id).cloned() else {
            return out;
        };
        let expected = if job.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if m.state != expected
            || m.producer_id != job.producer_id
            || m.producer_epoch != job.producer_epoch
        {
            return out;
        }
        self.complete(m, now_ms, &mut out);
        out
    }

    /// PrepareCommit / PrepareAbort -> CompleteCommit / CompleteAbort, partitions cleared; a
    /// producer id allocated at the Prepare step (exhausted epoch) takes over at epoch 0.
    fn complete(&mut self, mut m: TransactionMetadata, now_ms: i64, out: &mut TxnOutput) {
        let to = if m.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        if m.transition_to(to).is_ok() {
            m.partitions.clear();
            m.txn_last_update_timestamp_ms = now_ms;
            if m.next_producer_id >= 0 {
                m.previous_producer_id = m.producer_id;
                m.producer_id = m.next_producer_id;
                m.producer_epoch = 0;
                m.next_producer_id = -1;
            }
            self.persist(m, out);
        }
    }

    /// EndTxn v5+ (KIP-890 part 2, transaction version 2): every commit or abort bumps the
    /// producer epoch, and the answer carries the producer id and epoch the client goes on
    /// with (its sequences restart at 0). The Prepare* record and the markers are at the
    /// bumped epoch, with the pre-bump epoch kept as `last_producer_epoch`; at an exhausted
    /// epoch (32766) a new producer id is allocated with `allocate` and answered at epoch 0,
    /// taking over once the transaction is complete. An abort with no partition added (the
    /// client ends every transaction in which it sent anything) bumps the epoch and
    /// completes at once, writing no marker.
    ///
    /// Which request is accepted, after Kafka 4.0's `TransactionCoordinator.endTransaction`:
    /// Ongoing and Empty take the current epoch only; Prepare* only the retry of the EndTxn
    /// that moved there (epoch + 1 == current: CONCURRENT_TRANSACTIONS); Complete* the
    /// current epoch (an abort starts an empty abort) or that retry (answered with the
    /// current producer id and epoch, nothing written).
    ///
    /// Errors: INVALID_PRODUCER_ID_MAPPING (unknown id, other producer id),
    /// PRODUCER_FENCED (any other epoch), CONCURRENT_TRANSACTIONS, INVALID_TXN_STATE (a
    /// commit with no transaction, or the other outcome), COORDINATOR_NOT_AVAILABLE
    /// (`allocate` failed).
    pub fn end_txn_v2(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Option<i64>,
    ) -> (Result<EndTxnV2, TxnError>, TxnOutput) {
        let mut out = TxnOutput::default();
        let Some(m) = self.txns.get(transactional_id).cloned() else {
            return (Err(TxnError::InvalidProducerIdMapping), out);
        };
        let retry_on_overflow = m.previous_producer_id == producer_id
            && producer_id != m.producer_id
            && producer_epoch == MAX_EPOCH
            && m.producer_epoch == 0;
        if m.producer_id != producer_id && !retry_on_overflow {
            return (Err(TxnError::InvalidProducerIdMapping), out);
        }
        let retry_on_bump = m.producer_id == producer_id
            && i32::from(m.producer_epoch) == i32::from(producer_epoch) + 1;
        let current = m.producer_id == producer_id && m.producer_epoch == producer_epoch;
        let retry = retry_on_bump || retry_on_overflow;
        use TxnState::*;
        let valid = match m.state {
            Ongoing | Empty => current,
            PrepareCommit | PrepareAbort => retry_on_bump,
            CompleteCommit | CompleteAbort => retry || current,
            Dead | PrepareEpochFence => false,
        };
        if !valid {
            return (Err(TxnError::ProducerFenced), out);
        }
        let as_is = EndTxnV2 {
            markers: false,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
        };
        let r = match (m.state, commit, retry) {
            (Ongoing, _, false) | (Empty | CompleteCommit | CompleteAbort, false, false) => {
                self.prepare_end_v2(m, commit, now_ms, allocate, &mut out)
            }
            (CompleteAbort, false, true) | (CompleteCommit, true, true) => Ok(as_is),
            (PrepareAbort, false, true) | (PrepareCommit, true, true) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => Err(TxnError::InvalidTxnState),
        };
        (r, out)
    }

    /// The epoch bump and Prepare* of [`Self::end_txn_v2`].
    fn prepare_end_v2(
        &mut self,
        mut m: TransactionMetadata,
        commit: bool,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Option<i64>,
        out: &mut TxnOutput,
    ) -> Result<EndTxnV2, TxnError> {
        let empty = m.state != TxnState::Ongoing;
        let answer = if m.producer_epoch >= MAX_EPOCH {
            let pid = allocate().ok_or(TxnError::CoordinatorNotAvailable)?;
            m.next_producer_id = pid;
            (pid, 0)
        } else {
            (m.producer_id, m.producer_epoch + 1)
        };
        m.last_producer_epoch = m.producer_epoch;
        m.producer_epoch = m.producer_epoch.saturating_add(1);
        m.client_transaction_version = 2;
        if empty {
            m.partitions.clear();
            m.txn_start_timestamp_ms = now_ms;
        }
        let to = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if m.transition_to(to).is_err() {
            return Err(TxnError::InvalidTxnState);
        }
        m.txn_last_update_timestamp_ms = now_ms;
        out.timers.push((m.transactional_id.clone(), None));
        let markers = !empty;
        if markers {
            out.markers.push(marker_job(&m));
        }
        self.persist(m.clone(), out);
        if !markers {
            self.complete(m, now_ms, out);
        }
        Ok(EndTxnV2 {
            markers,
            producer_id: answer.0,
            producer_epoch: answer.1,
        })
    }

    /// A transaction's timeout fired: aborted, with the epoch bumped, if it is still Ongoing
    /// past `transaction.timeout.ms`.
    pub fn on_timer(&mut self, transactional_id: &str, now_ms: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        if let Some(m) = self.txns.get(transactional_id).cloned() {
            let due = m.txn_start_timestamp_ms + i64::from(m.txn_timeout_ms);
            if m.state == TxnState::Ongoing {
                if due <= now_ms {
                    self.abort_fenced(m, now_ms, &mut out);
                } else {
                    out.timers.push((m.transactional_id.clone(), Some(due)));
                }
            }
        }
        out
    }

    /// Removes transactional ids idle (Empty or Complete*) for longer than
    /// `transactional.id.expiration.ms` (tombstones).
    pub fn expire(&mut self, now_ms: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now_ms - m.txn_last_update_timestamp_ms > self.config.id_expiration_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in expired {
            let record = TxnRecord {
                transactional_id: id,
                value: None,
            };
            self.replay(&record);
            out.records.push(record);
        }
        out
    }

    /// DescribeTransactions for one id. Errors: TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnDescription, TxnError> {
        let m = self
            .txns
            .get(transactional_id)
            .ok_or(TxnError::TransactionalIdNotFound)?;
        Ok(TxnDescription {
            transactional_id: m.transactional_id.clone(),
            state: m.state,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            timeout_ms: m.txn_timeout_ms,
            start_timestamp_ms: m.txn_start_timestamp_ms,
            partitions: m.partitions.iter().cloned().collect(),
        })
    }
}

fn marker_job(m: &TransactionMetadata) -> MarkerJob {
    MarkerJob {
        transactional_id: m.transactional_id.clone(),
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        commit: m.state == TxnState::PrepareCommit,
        partitions: m.partitions.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests;
