//! KIP-848 consumer groups: the ConsumerGroupHeartbeat protocol (`group.protocol=consumer`),
//! after Kafka's `ConsumerGroup`, `GroupMetadataManager.consumerGroupHeartbeat` and
//! `CurrentAssignmentBuilder`, as a sans-IO state machine.
//!
//! The broker owns the assignment. Every change a member reports (join, leave, new
//! subscription) or the broker sees (new partitions, an expired session) bumps the
//! **group epoch**; the broker then computes a new **target assignment** with a server-side
//! assignor (`uniform` or `range`) and stamps it with that epoch (the **assignment epoch**).
//! Each member then walks from its current assignment to its target one heartbeat at a time:
//! - it first gives up the partitions it must lose (state `UnrevokedPartitions`, its
//!   `member_epoch` unchanged) and reports them gone in `TopicPartitions`;
//! - then it gets the target epoch and every target partition that no other member still owns;
//!   partitions still held elsewhere stay pending (state `UnreleasedPartitions`) until their
//!   owner revokes them;
//! - once it holds its whole target it is `Stable`.
//!
//! No partition is ever owned by two members. A member that does not revoke within its
//! rebalance timeout (`max.poll.interval.ms`), or does not heartbeat within
//! `group.consumer.session.timeout.ms`, is removed and its partitions move to the others.
//!
//! **State changes only through records** (Kafka's `CoordinatorResult` + `replay`): the
//! handlers compute Kafka's records 3-8 (`records.rs`), and the same [`ConsumerGroup::replay`]
//! that recovery runs applies them live. What is not in a record (the ownership and
//! static-member maps derived from the records, resolved regexes, rebalance timing, timers)
//! is soft state.
//!
//! Errors, as Kafka returns them: `UNKNOWN_MEMBER_ID` (member not in the group),
//! `FENCED_MEMBER_EPOCH` (epoch ahead of the member's, or behind and not the previous epoch
//! with owned partitions it still has), `UNRELEASED_INSTANCE_ID` (a static `group.instance.id`
//! still held by a live member), `FENCED_INSTANCE_ID`, `UNSUPPORTED_ASSIGNOR`,
//! `GROUP_MAX_SIZE_REACHED`, `INVALID_REQUEST`.
//!
//! Shoal differs from Kafka in one deliberate way: while a group is not `Stable`, heartbeat
//! replies ask members to heartbeat every `group.consumer.reconciling.heartbeat.interval.ms`
//! (default 50 ms) instead of `group.consumer.heartbeat.interval.ms`, so partitions released
//! by one member reach the next within milliseconds rather than a full heartbeat interval.
//!
//! Modules: `member` (a member and its two record values), `heartbeat` (join, leave,
//! subscription changes), `reconciliation` (target assignment and the per-member walk),
//! `records` (emit + replay), `partitions` (set operations).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

pub use crate::api::{
    ConsumerGroupDescription, ConsumerMemberDescription, HeartbeatRequest, HeartbeatResponse,
    TopicCatalog, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
pub use crate::config::{ConsumerGroupConfig, MigrationPolicy};
pub use crate::state::{ConsumerGroupState, MemberState};
pub use partitions::from_pairs;

use crate::assignor::{TopicMetadata, TopicPartitions};
use crate::error::GroupError;
use crate::records::{ConsumerMemberAssignment, ConsumerMemberMetadata};

pub(crate) mod classic_members;
mod heartbeat;
pub(crate) mod member;
pub(crate) mod partitions;
mod reconciliation;
mod records;

pub(crate) use records::session_key as session_timer_key;

pub(crate) use member::ConsumerMember;
use partitions::normalize;

/// A KIP-848 consumer group (its offsets live in [`crate::offsets`]).
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroup {
    // ----- persisted: changed only by `replay` -----
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member, at `assignment_epoch`.
    target: BTreeMap<String, TopicPartitions>,
    /// Metadata of every subscribed topic, by id, as of the last heartbeat.
    subscribed_topics: BTreeMap<Uuid, TopicMetadata>,
    // ----- derived from the persisted state by `replay` -----
    /// The member that owns (or is still revoking) each partition.
    owners: HashMap<(Uuid, i32), String>,
    /// `group.instance.id` -> `member_id` (KIP-345 for KIP-848).
    static_members: HashMap<String, String>,
    // ----- soft state -----
    assignor_name: String,
    /// Regexes already resolved against the topics. A new regex is resolved one refresh
    /// later, as Kafka resolves regexes asynchronously: the heartbeat that brings it gets the
    /// literal topics first, the matches come with the next heartbeat (librdkafka's tests
    /// expect exactly that order).
    resolved_regexes: BTreeSet<String>,
    /// A regex was seen but not yet resolved: members heartbeat fast until it is.
    regex_pending: bool,
    /// When the group last left `Stable` (for rebalance metrics).
    reconciling_since: Option<i64>,
    /// When the group last became empty or non-empty (ms), for offset retention.
    pub(crate) state_timestamp_ms: i64,
}

/// What `__consumer_offsets` holds for one consumer group: its records 3-8 as values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupSnapshot {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub subscribed_topics: Vec<TopicMetadata>,
    pub members: BTreeMap<String, (ConsumerMemberMetadata, ConsumerMemberAssignment)>,
    pub target: BTreeMap<String, TopicPartitions>,
}

impl ConsumerGroup {
    /// An empty group, as a ConsumerGroupHeartbeat that creates it starts from.
    pub(crate) fn new(now_ms: i64) -> Self {
        Self {
            state_timestamp_ms: now_ms,
            ..Self::default()
        }
    }

    /// Whether `member_id` is a member (of either protocol).
    pub(crate) fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.regex_pending
            || self
                .members
                .values()
                .any(|m| m.state != MemberState::Stable || m.member_epoch != self.assignment_epoch)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Topics the members subscribe to (resolved names), for OffsetDelete.
    pub(crate) fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.subscribed_topics
            .values()
            .filter(|t| self.members.values().any(|m| m.subscribes_to(&t.name)))
            .map(|t| t.name.clone())
            .collect()
    }

    /// Validates an OffsetCommit (or a TxnOffsetCommit) against the member's epoch, as
    /// Kafka's `ConsumerGroup.validateOffsetCommit`: a commit without member id and with a
    /// negative epoch is allowed only while the group is empty; otherwise the member must
    /// exist (UNKNOWN_MEMBER_ID), the request must be OffsetCommit v9+ (UNSUPPORTED_VERSION),
    /// and `member_epoch` must be the member's (`STALE_MEMBER_EPOCH` if older,
    /// `FENCED_MEMBER_EPOCH` if newer).
    pub(crate) fn validate_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
    ) -> Option<GroupError> {
        if member_id.is_empty() && member_epoch < 0 {
            return if self.members.is_empty() {
                None
            } else {
                Some(GroupError::UnknownMemberId)
            };
        }
        let Some(m) = self.members.get(member_id) else {
            return Some(GroupError::UnknownMemberId);
        };
        if m.classic.is_some() {
            // A classic member commits with its generation (= its member epoch).
            return (member_epoch != m.member_epoch).then_some(GroupError::IllegalGeneration);
        }
        if api_version < 9 {
            return Some(GroupError::UnsupportedVersion);
        }
        Self::check_epoch(m, member_epoch)
    }

    /// Validates OffsetFetch v9+'s member id and epoch (KIP-848); `None` member id skips it.
    pub(crate) fn validate_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<GroupError> {
        let member_id = member_id?;
        if member_epoch < 0 {
            return None;
        }
        let Some(m) = self.members.get(member_id) else {
            return Some(GroupError::UnknownMemberId);
        };
        Self::check_epoch(m, member_epoch)
    }

    fn check_epoch(m: &ConsumerMember, member_epoch: i32) -> Option<GroupError> {
        if member_epoch > m.member_epoch {
            Some(GroupError::FencedMemberEpoch)
        } else if member_epoch < m.member_epoch {
            Some(GroupError::StaleMemberEpoch)
        } else {
            None
        }
    }

    /// ConsumerGroupDescribe.
    pub(crate) fn describe(&self, group_id: &str) -> ConsumerGroupDescription {
        ConsumerGroupDescription {
            group_id: group_id.to_string(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor_name: self.assignor_name.clone(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    state: m.state,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m
                        .subscribed_topic_regex
                        .as_ref()
                        .map(|(s, _)| s.clone()),
                    assignment: normalize(&m.assigned),
                    target_assignment: normalize(
                        &self.target.get(&m.member_id).cloned().unwrap_or_default(),
                    ),
                })
                .collect(),
            topic_names: self
                .subscribed_topics
                .values()
                .map(|t| (t.topic_id, t.name.clone()))
                .collect(),
        }
    }

    /// Members' current assignments by member id, for checks ("exactly one owner").
    pub(crate) fn assignments(&self) -> BTreeMap<String, TopicPartitions> {
        self.members
            .iter()
            .map(|(k, m)| (k.clone(), normalize(&m.assigned)))
            .collect()
    }

    /// The persisted part of the group, as its records hold it.
    pub(crate) fn snapshot(&self) -> ConsumerGroupSnapshot {
        ConsumerGroupSnapshot {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            subscribed_topics: self.subscribed_topics.values().cloned().collect(),
            members: self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), (m.metadata_value(), m.current().value())))
                .collect(),
            target: self
                .target
                .iter()
                .map(|(id, t)| (id.clone(), normalize(t)))
                .collect(),
        }
    }
}
