//! Types every part of the coordinator shares: what a call returns ([`Output`]), the timers
//! the caller keeps for it ([`TimerKey`]), replies to parked requests ([`Reply`]), and the
//! events it reports ([`RebalanceEvent`], [`GroupEvent`]).
//!
//! The coordinator is sans-IO: a call never blocks, writes or reads a clock. It returns an
//! [`Output`] whose records the caller appends to `__consumer_offsets`; only once they are
//! durable may the caller deliver the replies (Kafka answers after its records commit).

use crate::api::{JoinResponse, SyncResponse};
use crate::error::GroupError;
use crate::records::Record;

/// Identifies a request whose reply may be produced later (parked JoinGroup/SyncGroup).
pub type RequestId = u64;

/// Timers the caller keeps; setting an existing key replaces its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A classic member's (or pending member's) session expires; for a new member waiting in
    /// a join phase, the new-member join timeout ends (Kafka uses the same heartbeat key).
    Session { group_id: String, member_id: String },
    /// The join phase of a classic rebalance ends (initial delay or rebalance timeout).
    Join { group_id: String },
    /// Members that got a JoinGroup reply must SyncGroup before this (rebalance timeout).
    Sync {
        group_id: String,
        generation_id: i32,
    },
    /// A consumer-protocol member's session (`group.consumer.session.timeout.ms`) expires.
    ConsumerSession { group_id: String, member_id: String },
    /// A consumer-protocol member must finish revoking partitions before this (its rebalance
    /// timeout, i.e. the client's `max.poll.interval.ms`).
    ConsumerRebalance { group_id: String, member_id: String },
    /// A share-group member's session (`group.share.session.timeout.ms`) expires.
    ShareSession { group_id: String, member_id: String },
    /// The earliest acquisition lock of a share-partition expires.
    ShareLock {
        group_id: String,
        topic: String,
        partition: i32,
    },
}

/// A reply to deliver to a parked or current request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// What a call produced. Records must be durable before replies are delivered.
#[derive(Debug, Default)]
pub struct Output {
    pub replies: Vec<(RequestId, Reply)>,
    /// Records to append to `__consumer_offsets`, in order. For offsets and consumer groups
    /// they have already been applied to the coordinator's state through the same `replay`
    /// that recovery uses.
    pub records: Vec<Record>,
    /// `(key, Some(deadline_ms))` sets a timer; `(key, None)` cancels it.
    pub timers: Vec<(TimerKey, Option<i64>)>,
    /// Rebalances that completed (for metrics).
    pub rebalances: Vec<RebalanceEvent>,
    /// What happened to groups and members, for the operator's log (INFO).
    pub events: Vec<GroupEvent>,
    /// Share-group records became AVAILABLE again: long-polling ShareFetches should look.
    pub share_wakeup: bool,
    /// Share-group records archived by this call (for dead-lettering and metrics).
    pub share_archived: Vec<ShareArchived>,
    /// Share-group records accepted by this call: `(group, topic, partition, delivery
    /// count, how many)`, for the delivery-count histogram.
    pub share_accepted: Vec<(String, String, i32, usize, u64)>,
    /// `Some((producer_id, producer_epoch))`: `records` belong to that producer's
    /// transaction and go to `__consumer_offsets` as one transactional batch (TxnOffsetCommit).
    pub transactional: Option<(i64, i16)>,
    /// A transaction marker to append to `__consumer_offsets` after `records`:
    /// `(producer_id, producer_epoch, commit)`.
    pub marker: Option<(i64, i16, bool)>,
}

/// A share-group record that became ARCHIVED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareArchived {
    pub group_id: String,
    pub topic: String,
    pub partition: i32,
    pub record: crate::share::ArchivedRecord,
}

impl Output {
    /// Sets (or replaces) a timer.
    pub(crate) fn set_timer(&mut self, key: TimerKey, deadline_ms: i64) {
        self.timers.push((key, Some(deadline_ms)));
    }

    /// Cancels a timer (a no-op for the caller if it is not set).
    pub(crate) fn cancel_timer(&mut self, key: TimerKey) {
        self.timers.push((key, None));
    }
}

/// A rebalance that completed: from its start (classic `PreparingRebalance`, or a consumer
/// group leaving `Stable`) until the group was `Stable` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceEvent {
    pub group_id: String,
    /// `classic` or `consumer`.
    pub protocol: &'static str,
    pub duration_ms: i64,
}

/// Why a member left its group, in the words Kafka's coordinator logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// No heartbeat within the session timeout.
    SessionTimeout,
    /// Did not rejoin before the join phase of a rebalance ended (rebalance timeout).
    RebalanceTimeout,
    /// A new member whose JoinGroup was not answered within the new-member join timeout.
    NewMemberJoinTimeout,
    /// Got its JoinGroup answer but sent no SyncGroup within the rebalance timeout.
    SyncTimeout,
    /// Sent LeaveGroup (or a leave heartbeat).
    Leave,
    /// A static member replaced by a new instance with the same `group.instance.id`.
    FencedStaticMember,
    /// A consumer-protocol member that did not revoke its partitions within its rebalance
    /// timeout.
    RevocationTimeout,
    /// The group changed protocol (online migration) or was deleted.
    GroupConverted,
}

impl RemovalReason {
    /// A short phrase for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::SessionTimeout => "session timeout expired",
            RemovalReason::RebalanceTimeout => "did not rejoin before the rebalance timeout",
            RemovalReason::NewMemberJoinTimeout => "new member join timeout expired",
            RemovalReason::SyncTimeout => "did not send SyncGroup before the rebalance timeout",
            RemovalReason::Leave => "left the group",
            RemovalReason::FencedStaticMember => "static member replaced by a new instance",
            RemovalReason::RevocationTimeout => {
                "did not revoke its partitions before the rebalance timeout"
            }
            RemovalReason::GroupConverted => "group converted to another protocol",
        }
    }
}

/// Something an operator should be able to read from the log to explain a rebalance (Kafka's
/// coordinator logs the same at INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A member was removed from a group.
    MemberRemoved {
        group_id: String,
        member_id: String,
        reason: RemovalReason,
        /// The classic generation or the consumer group epoch when it was removed.
        generation_id: i32,
    },
    /// A classic group started a rebalance (`PreparingRebalance`).
    RebalanceStarted {
        group_id: String,
        generation_id: i32,
        reason: String,
    },
    /// A classic group's join phase ended: `generation_id` is the new generation.
    JoinCompleted {
        group_id: String,
        generation_id: i32,
        members: usize,
        leader: Option<String>,
        protocol: Option<String>,
    },
    /// A classic group got its assignment from the leader and is `Stable`.
    Stabilized {
        group_id: String,
        generation_id: i32,
    },
    /// A consumer group computed a new target assignment.
    TargetAssignmentComputed {
        group_id: String,
        assignment_epoch: i32,
        members: usize,
    },
    /// The coordinator refused to apply a change it computed (an illegal state transition:
    /// a bug, reported instead of applied).
    Refused { group_id: String, error: GroupError },
    /// A group changed protocol (online migration, Kafka 4.x).
    Converted {
        group_id: String,
        from: &'static str,
        to: &'static str,
    },
}
