//! A transactional id's state, as Kafka's `TransactionMetadata` and `TransactionState` define
//! it. [`TxnState`]'s variants list what each allows; [`TransactionMetadata::transition_to`] is
//! the one place a state changes, and refuses every move Kafka does not allow.

use std::collections::BTreeSet;

/// Kafka's `TransactionState`, with its `__transaction_state` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// 0: no transaction yet (after InitProducerId). Allows AddPartitionsToTxn /
    /// AddOffsetsToTxn (to Ongoing) and InitProducerId (epoch bump).
    Empty,
    /// 1: partitions added, records may be written. Allows more adds, EndTxn (to
    /// PrepareCommit / PrepareAbort), and a fencing InitProducerId or timeout (to
    /// PrepareAbort with a bumped epoch).
    Ongoing,
    /// 2: committing; markers being written. Requests get CONCURRENT_TRANSACTIONS.
    PrepareCommit,
    /// 3: aborting; markers being written. Requests get CONCURRENT_TRANSACTIONS.
    PrepareAbort,
    /// 4: committed. Allows what Empty allows, and an EndTxn(commit) retry.
    CompleteCommit,
    /// 5: aborted. Allows what Empty allows, and an EndTxn(abort) retry.
    CompleteAbort,
    /// 6: the transactional id expired (`transactional.id.expiration.ms`); about to be
    /// removed.
    Dead,
    /// 7: Kafka's transient state while a fencing abort is prepared; Shoal goes from
    /// Ongoing to PrepareAbort in one step, so it is only ever read, never written.
    PrepareEpochFence,
}

impl TxnState {
    /// The `transaction_status` code in `__transaction_state`.
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state for a `transaction_status` code.
    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name (DescribeTransactions' `transaction_state`, ListTransactions' filter).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The states a move to `self` may come from (Kafka `TransactionState.validPreviousStates`).
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            // From Empty and Complete*: an EndTxn(abort) of transaction version 2 when no
            // partition was added (the client sends it whenever it sent anything, KIP-890).
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// True in PrepareCommit and PrepareAbort (markers being written).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A transactional id's state (Kafka `TransactionMetadata`). Timestamps are ms since the
/// Unix epoch; -1 when unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, for KIP-360 retries (-1 when unknown, as after a
    /// restart: Kafka's v0 record does not keep it either).
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    /// `(topic, partition)` of the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub txn_start_timestamp_ms: i64,
    pub txn_last_update_timestamp_ms: i64,
    /// The producer id before the last rotation (an EndTxn of transaction version 2 at an
    /// exhausted epoch), so a retry of that EndTxn is recognised; -1 when none.
    pub previous_producer_id: i64,
    /// The producer id allocated at PrepareCommit / PrepareAbort because the epoch is
    /// exhausted; it replaces `producer_id` (epoch 0) at CompleteCommit / CompleteAbort. -1
    /// when none.
    pub next_producer_id: i64,
    /// The transaction version the client runs the transaction with: 2 when it adds
    /// partitions implicitly and ends with EndTxn v5+ (KIP-890 part 2), 0 otherwise.
    pub client_transaction_version: i16,
}

/// A move [`TransactionMetadata::transition_to`] refused: a bug, since every caller checks
/// the state first. Reported rather than applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal transaction state transition {from:?} -> {to:?}")]
pub struct IllegalTransition {
    pub from: TxnState,
    pub to: TxnState,
}

impl TransactionMetadata {
    /// Moves to `to`, checking Kafka's allowed previous states.
    ///
    /// Errors: [`IllegalTransition`], the state unchanged.
    pub fn transition_to(&mut self, to: TxnState) -> Result<(), IllegalTransition> {
        if !to.valid_previous().contains(&self.state) {
            return Err(IllegalTransition {
                from: self.state,
                to,
            });
        }
        self.state = to;
        Ok(())
    }
}
