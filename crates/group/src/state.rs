//! The states groups and members can be in, under the names Kafka reports in DescribeGroups,
//! ListGroups and ConsumerGroupDescribe, and which moves between them are legal.
//!
//! Classic groups ([`GroupState`], Kafka's `ClassicGroupState`) and what each allows:
//! - `Empty`: no members; offsets may be committed with `generation_id < 0`; a JoinGroup starts
//!   a rebalance (after `group.initial.rebalance.delay.ms`).
//! - `PreparingRebalance`: JoinGroup requests are parked until every known member rejoined or
//!   the rebalance timeout fires; Heartbeat answers `REBALANCE_IN_PROGRESS`; commits allowed.
//! - `CompletingRebalance`: JoinGroup answered; waiting for the leader's SyncGroup; other
//!   SyncGroups are parked; commits answer `REBALANCE_IN_PROGRESS`.
//! - `Stable`: assignment delivered; Heartbeat keeps members alive; a new member, a leaving
//!   member, a changed subscription or an expired session starts a rebalance.
//! - `Dead`: deleted; every request answers `COORDINATOR_NOT_AVAILABLE` or `UNKNOWN_MEMBER_ID`.
//!
//! KIP-848 consumer groups ([`ConsumerGroupState`]) derive their state from their epochs and
//! members; a member's reconciliation state is [`MemberState`].

/// A classic group's state (see the module docs for what each allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups/ListGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// The states Kafka's `ClassicGroupState` allows a move into `next` from.
    pub fn can_transition_to(self, next: GroupState) -> bool {
        use GroupState::*;
        match next {
            Empty => matches!(self, PreparingRebalance),
            PreparingRebalance => matches!(self, Empty | Stable | CompletingRebalance),
            CompletingRebalance => matches!(self, PreparingRebalance),
            Stable => matches!(self, CompletingRebalance),
            Dead => true,
        }
    }
}

/// The state of a consumer group, as ListGroups and ConsumerGroupDescribe report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The group epoch is ahead of the assignment epoch (a target is being computed). Shoal
    /// computes targets synchronously, so this is never observed from outside.
    Assigning,
    /// Some member has not reached its target assignment.
    Reconciling,
    /// Every member holds its target assignment at the assignment epoch.
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Holds its target assignment at the assignment epoch (or at its own epoch, if it has
    /// not heartbeated since the target changed).
    Stable,
    /// Must revoke `pending_revocation` before it gets the new epoch.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's `MemberState` id, as stored in `ConsumerGroupCurrentMemberAssignmentValue`.
    pub(crate) fn id(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnreleasedPartitions => 1,
            MemberState::UnrevokedPartitions => 2,
        }
    }

    pub(crate) fn from_id(id: i8) -> Self {
        match id {
            1 => MemberState::UnreleasedPartitions,
            2 => MemberState::UnrevokedPartitions,
            _ => MemberState::Stable,
        }
    }

    /// Kafka's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedPartitions => "UNREVOKED_PARTITIONS",
            MemberState::UnreleasedPartitions => "UNRELEASED_PARTITIONS",
        }
    }
}
