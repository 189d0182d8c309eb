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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::Regex;
use uuid::Uuid;

use crate::assignor::{self, MemberSpec, TopicMetadata, TopicPartitions};
use crate::classic::{Output, TimerKey};
use crate::error::GroupError;
use bytes::Bytes;

use crate::classic::{JoinRequest, JoinResponse, SyncResponse};
use crate::consumer_protocol;
use crate::records::{
    ClassicMemberMetadata, ConsumerMemberAssignment, ConsumerMemberMetadata, ConsumerRecord, Record,
};

/// `member_epoch` a dynamic member sends to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// `member_epoch` a static member sends to leave temporarily (keeping its partitions).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Settings of consumer groups, under their Kafka broker-config names.
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms` (Kafka default 45000).
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (Kafka default 5000).
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.reconciling.heartbeat.interval.ms` (Shoal only, default 50): the
    /// heartbeat interval asked of members while the group is not `Stable`.
    pub reconciling_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors` (default `uniform,range`); the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size` (Kafka default `i32::MAX`).
    pub max_size: usize,
    /// `group.consumer.migration.policy` (Kafka 4.x default `bidirectional`).
    pub migration_policy: MigrationPolicy,
}

/// `group.consumer.migration.policy`: which online conversions between the classic and the
/// consumer protocol a group with members may make (KIP-848 "online migration", Kafka 4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both directions.
    Bidirectional,
    /// Classic -> consumer only.
    Upgrade,
    /// Consumer -> classic only.
    Downgrade,
    /// Neither: a group keeps its protocol while it has members.
    Disabled,
}

impl MigrationPolicy {
    /// Parses Kafka's names (`bidirectional`, `upgrade`, `downgrade`, `disabled`), any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bidirectional" => Some(Self::Bidirectional),
            "upgrade" => Some(Self::Upgrade),
            "downgrade" => Some(Self::Downgrade),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
    /// A classic group with members may become a consumer group.
    pub fn allows_upgrade(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Upgrade)
    }
    /// A consumer group whose members all use the classic protocol becomes a classic group.
    pub fn allows_downgrade(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Downgrade)
    }
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            reconciling_heartbeat_interval_ms: 50,
            assignors: assignor::ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            max_size: i32::MAX as usize,
            migration_policy: MigrationPolicy::Bidirectional,
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
    fn id(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnreleasedPartitions => 1,
            MemberState::UnrevokedPartitions => 2,
        }
    }

    fn from_id(id: i8) -> Self {
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

/// What the heartbeat needs to know about topics: the broker's catalog.
pub trait TopicCatalog {
    /// The topic called `name`, if it exists.
    fn topic(&self, name: &str) -> Option<TopicMetadata>;
    /// Every topic name (for regex subscriptions); internal topics excluded.
    fn names(&self) -> Vec<String>;
}

/// ConsumerGroupHeartbeat request fields (v0-v1). `None` means "unchanged since the last
/// heartbeat" for the nullable fields, as in the protocol.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    /// Generated by the client since v1 (KIP-1082); a v0 client sends "" to join.
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving temporarily.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// `max.poll.interval.ms` of the client; -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns; `None` if unchanged.
    pub owned: Option<TopicPartitions>,
    pub client_id: String,
    pub client_host: String,
}

/// ConsumerGroupHeartbeat response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResponse {
    pub error: Option<GroupError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    /// ms until the next heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed (or on join); `None` otherwise.
    pub assignment: Option<TopicPartitions>,
}

impl HeartbeatResponse {
    pub(crate) fn error(e: GroupError, message: impl Into<String>) -> Self {
        Self {
            error: Some(e),
            error_message: Some(message.into()),
            member_id: None,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub state: MemberState,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: TopicPartitions,
    pub target_assignment: TopicPartitions,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberDescription>,
    /// Topic id -> name, for the topics in the assignments.
    pub topic_names: BTreeMap<Uuid, String>,
}

#[derive(Debug, Clone)]
struct ConsumerMember {
    member_id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    member_epoch: i32,
    previous_member_epoch: i32,
    state: MemberState,
    rebalance_timeout_ms: i32,
    subscribed_topic_names: BTreeSet<String>,
    subscribed_topic_regex: Option<(String, Regex)>,
    server_assignor: Option<String>,
    assigned: TopicPartitions,
    pending_revocation: TopicPartitions,
    /// Set for a member that speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat)
    /// inside a consumer group, during an online migration.
    classic: Option<ClassicMemberMetadata>,
}

impl ConsumerMember {
    fn new(member_id: String) -> Self {
        Self {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout_ms: 300_000,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            assigned: TopicPartitions::new(),
            pending_revocation: TopicPartitions::new(),
            classic: None,
        }
    }

    /// The member's `ConsumerGroupMemberMetadataValue`.
    fn metadata_value(&self) -> ConsumerMemberMetadata {
        ConsumerMemberMetadata {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.iter().cloned().collect(),
            subscribed_topic_regex: self.subscribed_topic_regex.as_ref().map(|(s, _)| s.clone()),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
            classic: self.classic.clone(),
        }
    }

    /// True when `v` is this member's metadata value (compared in place, no allocation: this
    /// runs for every member at every heartbeat).
    fn metadata_matches(&self, v: &ConsumerMemberMetadata) -> bool {
        self.instance_id == v.instance_id
            && self.rack_id == v.rack_id
            && self.client_id == v.client_id
            && self.client_host == v.client_host
            && self
                .subscribed_topic_names
                .iter()
                .eq(v.subscribed_topic_names.iter())
            && self
                .subscribed_topic_regex
                .as_ref()
                .map(|(s, _)| s.as_str())
                == v.subscribed_topic_regex.as_deref()
            && self.rebalance_timeout_ms == v.rebalance_timeout_ms
            && self.server_assignor == v.server_assignor
            && self.classic == v.classic
    }

    /// True when `v` is this member's current-assignment value (compared in place).
    fn assignment_matches(&self, v: &ConsumerMemberAssignment) -> bool {
        self.member_epoch == v.member_epoch
            && self.previous_member_epoch == v.previous_member_epoch
            && self.state.id() == v.state
            && same_partitions(&self.assigned, &v.assigned)
            && same_partitions(&self.pending_revocation, &v.pending_revocation)
    }

    /// The member's `ConsumerGroupCurrentMemberAssignmentValue`.
    fn assignment_value(&self) -> ConsumerMemberAssignment {
        ConsumerMemberAssignment {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.id(),
            assigned: normalize(&self.assigned),
            pending_revocation: normalize(&self.pending_revocation),
        }
    }

    /// The member's session timeout: its own (JoinGroup's) for a classic member, else
    /// `group.consumer.session.timeout.ms`.
    fn session_timeout_ms(&self, cfg: &ConsumerGroupConfig) -> i32 {
        self.classic
            .as_ref()
            .map_or(cfg.session_timeout_ms, |c| c.session_timeout_ms)
    }

    fn subscribes_to(&self, name: &str) -> bool {
        self.subscribed_topic_names.contains(name)
            || self
                .subscribed_topic_regex
                .as_ref()
                .is_some_and(|(_, re)| re.is_match(name))
    }
}

/// The consumer-protocol part of a group (its offsets live with the group, in `classic`).
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroup {
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member, at `assignment_epoch`.
    target: BTreeMap<String, TopicPartitions>,
    /// Metadata of every subscribed topic, by id, as of the last heartbeat.
    subscribed_topics: BTreeMap<Uuid, TopicMetadata>,
    /// The member that owns (or is still revoking) each partition.
    owners: HashMap<(Uuid, i32), String>,
    /// `group.instance.id` -> `member_id` (KIP-345 for KIP-848).
    static_members: HashMap<String, String>,
    assignor_name: String,
    /// Regexes already resolved against the topics. A new regex is resolved one refresh
    /// later, as Kafka resolves regexes asynchronously: the heartbeat that brings it gets the
    /// literal topics first, the matches come with the next heartbeat (librdkafka's tests
    /// expect exactly that order).
    resolved_regexes: BTreeSet<String>,
    /// A regex was seen but not yet resolved: members heartbeat fast until it is.
    regex_pending: bool,
    /// What `__consumer_offsets` holds for this group; [`ConsumerGroup::write_records`] emits
    /// the difference with the live state.
    persisted: Persisted,
    /// When the group last left `Stable` (for rebalance metrics).
    reconciling_since: Option<i64>,
}

/// A classic group member as an online migration moves it between the two kinds of group.
#[derive(Debug, Clone)]
pub(crate) struct ClassicSeed {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// JoinGroup protocols `(name, Subscription)`, in the member's order.
    pub protocols: Vec<(String, Bytes)>,
    /// The Subscription of the group's protocol.
    pub subscription: Bytes,
    /// The member's classic `Assignment`.
    pub assignment: Bytes,
}

/// The consumer-group state as last written to `__consumer_offsets` (Kafka's records 3-8).
#[derive(Debug, Default)]
struct Persisted {
    group_epoch: Option<i32>,
    topics: Option<Vec<TopicMetadata>>,
    assignment_epoch: Option<i32>,
    metadata: BTreeMap<String, ConsumerMemberMetadata>,
    target: BTreeMap<String, TopicPartitions>,
    current: BTreeMap<String, ConsumerMemberAssignment>,
}

/// `a` (which may hold empty partition sets) holds the same partitions as `b` (normalized).
fn same_partitions(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter().filter(|(_, ps)| !ps.is_empty()).eq(b.iter())
}

/// Removes from `persisted` every member id for which `live` is false; returns those ids.
fn drop_missing<V>(
    persisted: &mut BTreeMap<String, V>,
    live: impl Fn(&str) -> bool,
) -> Vec<String> {
    let gone: Vec<String> = persisted.keys().filter(|k| !live(k)).cloned().collect();
    for id in &gone {
        persisted.remove(id);
    }
    gone
}

fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ConsumerSession {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

fn rebalance_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ConsumerRebalance {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

fn intersects(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|qs| !ps.is_disjoint(qs)))
}

fn is_subset(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|qs| ps.is_subset(qs)))
}

fn normalize(a: &TopicPartitions) -> TopicPartitions {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.clone()))
        .collect()
}

fn pairs(a: &TopicPartitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

/// Builds a [`TopicPartitions`] from `(topic_id, partition)` pairs.
pub fn from_pairs(it: impl IntoIterator<Item = (Uuid, i32)>) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (t, p) in it {
        out.entry(t).or_default().insert(p);
    }
    out
}

impl ConsumerGroup {
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

    /// Handles one ConsumerGroupHeartbeat for this group (see the module docs).
    pub(crate) fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        new_member_id: impl FnOnce() -> String,
        catalog: &dyn TopicCatalog,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Output,
    ) -> HeartbeatResponse {
        let group_id = req.group_id.clone();
        let group_id = group_id.as_str();
        if let Some(a) = &req.server_assignor {
            if !cfg.assignors.iter().any(|x| x == a) {
                return HeartbeatResponse::error(
                    GroupError::UnsupportedAssignor,
                    format!(
                        "assignor {a} is not one of group.consumer.assignors {:?}",
                        cfg.assignors
                    ),
                );
            }
        }
        let regex = match &req.subscribed_topic_regex {
            Some(r) if !r.is_empty() => match Regex::new(&format!("^(?:{r})$")) {
                Ok(re) => Some((r.clone(), re)),
                Err(e) => {
                    return HeartbeatResponse::error(
                        GroupError::InvalidRegularExpression,
                        format!("SubscribedTopicRegex {r} is invalid: {e}"),
                    )
                }
            },
            _ => None,
        };
        let epoch = req.member_epoch;
        if epoch == LEAVE_GROUP_MEMBER_EPOCH || epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return self.leave(group_id, &req, cfg, now_ms, out);
        }
        let members_before = self.members.len();
        let member_id = if epoch == 0 {
            match self.join(group_id, &req, new_member_id, cfg, out) {
                Ok(id) => id,
                Err(r) => return *r,
            }
        } else {
            let Some(m) = self.members.get(&req.member_id) else {
                return HeartbeatResponse::error(
                    GroupError::UnknownMemberId,
                    format!("member {} is not in group {group_id}", req.member_id),
                );
            };
            if let Some(e) = self.check_instance(m, req.instance_id.as_deref()) {
                return HeartbeatResponse::error(e, "group.instance.id is held by another member");
            }
            if epoch != m.member_epoch {
                let tolerated = epoch < m.member_epoch
                    && epoch == m.previous_member_epoch
                    && req
                        .owned
                        .as_ref()
                        .is_some_and(|o| is_subset(o, &m.assigned));
                if !tolerated {
                    return HeartbeatResponse::error(
                        GroupError::FencedMemberEpoch,
                        format!(
                            "member epoch {epoch} is fenced; the member's epoch is {}",
                            m.member_epoch
                        ),
                    );
                }
            }
            req.member_id.clone()
        };
        // Update the member from the request's non-null fields.
        let mut changed = self.members.len() > members_before;
        if let Some(m) = self.members.get_mut(&member_id) {
            if req.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id.clone();
            }
            if !req.client_id.is_empty() {
                m.client_id = req.client_id.clone();
            }
            m.client_host = req.client_host.clone();
            if let Some(names) = &req.subscribed_topic_names {
                let names: BTreeSet<String> = names.iter().cloned().collect();
                if names != m.subscribed_topic_names {
                    m.subscribed_topic_names = names;
                    changed = true;
                }
            }
            if req.subscribed_topic_regex.is_some() {
                let old = m.subscribed_topic_regex.as_ref().map(|(s, _)| s.clone());
                let new = regex.as_ref().map(|(s, _)| s.clone());
                if old != new {
                    m.subscribed_topic_regex = regex;
                    changed = true;
                }
            }
            if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
                m.server_assignor = req.server_assignor.clone();
                changed = true;
            }
        }
        if self.refresh_topics(catalog) {
            changed = true;
        }
        if changed {
            // One bump per heartbeat, whatever changed (Kafka: a new group epoch per change
            // of members, subscriptions or subscribed topics' metadata).
            self.group_epoch += 1;
        }
        self.maybe_compute_target(cfg);
        let before = self.members.get(&member_id).map(|m| m.assigned.clone());
        self.reconcile(group_id, &member_id, req.owned.as_ref(), now_ms, out);
        out.timers.push((
            session_key(group_id, &member_id),
            Some(now_ms + i64::from(cfg.session_timeout_ms)),
        ));
        let Some(m) = self.members.get(&member_id) else {
            return HeartbeatResponse::error(GroupError::UnknownMemberId, "member removed");
        };
        let assignment_changed = before.as_ref() != Some(&m.assigned);
        let owned_differs = req
            .owned
            .as_ref()
            .is_some_and(|o| normalize(o) != normalize(&m.assigned));
        let send_assignment = epoch == 0 || assignment_changed || owned_differs;
        HeartbeatResponse {
            error: None,
            error_message: None,
            member_id: Some(member_id.clone()),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: self.heartbeat_interval(cfg),
            assignment: send_assignment.then(|| normalize(&m.assigned)),
        }
    }

    fn heartbeat_interval(&self, cfg: &ConsumerGroupConfig) -> i32 {
        if self.state() == ConsumerGroupState::Stable {
            cfg.heartbeat_interval_ms
        } else {
            cfg.reconciling_heartbeat_interval_ms
                .min(cfg.heartbeat_interval_ms)
                .max(1)
        }
    }

    fn check_instance(&self, m: &ConsumerMember, instance_id: Option<&str>) -> Option<GroupError> {
        match instance_id {
            Some(iid) if self.static_members.get(iid) != Some(&m.member_id) => {
                Some(GroupError::FencedInstanceId)
            }
            _ => None,
        }
    }

    /// Epoch 0: a new member, a static member's new incarnation, or a member rejoining after
    /// it was fenced. Returns the member id to continue with.
    fn join(
        &mut self,
        group_id: &str,
        req: &HeartbeatRequest,
        new_member_id: impl FnOnce() -> String,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) -> Result<String, Box<HeartbeatResponse>> {
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        if let Some(iid) = &req.instance_id {
            if let Some(old_id) = self.static_members.get(iid).cloned() {
                if old_id != member_id {
                    let old_epoch = self.members.get(&old_id).map_or(-2, |m| m.member_epoch);
                    if old_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        return Err(Box::new(HeartbeatResponse::error(
                            GroupError::UnreleasedInstanceId,
                            format!("static member {iid} is still held by member {old_id}"),
                        )));
                    }
                    // The new incarnation takes over the old one's epoch and partitions: no
                    // rebalance (KIP-848 static membership).
                    if let Some(mut m) = self.members.remove(&old_id) {
                        out.timers.push((session_key(group_id, &old_id), None));
                        out.timers.push((rebalance_key(group_id, &old_id), None));
                        m.member_id = member_id.clone();
                        m.member_epoch = m.previous_member_epoch.max(0);
                        for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
                            self.owners.insert(tp, member_id.clone());
                        }
                        if let Some(t) = self.target.remove(&old_id) {
                            self.target.insert(member_id.clone(), t);
                        }
                        self.members.insert(member_id.clone(), m);
                    }
                    self.static_members.insert(iid.clone(), member_id.clone());
                    return Ok(member_id);
                }
                if let Some(m) = self.members.get_mut(&member_id) {
                    if m.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        m.member_epoch = m.previous_member_epoch.max(0);
                        return Ok(member_id);
                    }
                }
            }
        }
        if self.members.contains_key(&member_id) {
            // A known member rejoining with epoch 0 (after being fenced): it starts over.
            self.release_all(&member_id);
            if let Some(m) = self.members.get_mut(&member_id) {
                m.assigned.clear();
                m.pending_revocation.clear();
                m.state = MemberState::Stable;
                m.member_epoch = 0;
                m.previous_member_epoch = 0;
            }
            out.timers.push((rebalance_key(group_id, &member_id), None));
            return Ok(member_id);
        }
        if self.members.len() >= cfg.max_size {
            return Err(Box::new(HeartbeatResponse::error(
                GroupError::GroupMaxSizeReached,
                format!("group {group_id} has reached group.consumer.max.size"),
            )));
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return Err(Box::new(HeartbeatResponse::error(
                GroupError::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set when joining",
            )));
        }
        let mut m = ConsumerMember::new(member_id.clone());
        m.instance_id = req.instance_id.clone();
        if let Some(iid) = &req.instance_id {
            self.static_members.insert(iid.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), m);
        // The subscription recorded below changes, which bumps the group epoch once.
        Ok(member_id)
    }

    fn leave(
        &mut self,
        group_id: &str,
        req: &HeartbeatRequest,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Output,
    ) -> HeartbeatResponse {
        let epoch = req.member_epoch;
        let Some(m) = self.members.get(&req.member_id) else {
            return HeartbeatResponse::error(
                GroupError::UnknownMemberId,
                format!("member {} is not in group {group_id}", req.member_id),
            );
        };
        if let Some(e) = self.check_instance(m, req.instance_id.as_deref()) {
            return HeartbeatResponse::error(e, "group.instance.id is held by another member");
        }
        if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && m.instance_id.is_some() {
            // A static member leaving temporarily keeps its partitions until its session
            // expires; a new incarnation with the same instance id takes them over.
            if let Some(m) = self.members.get_mut(&req.member_id) {
                if m.member_epoch >= 0 {
                    m.previous_member_epoch = m.member_epoch;
                }
                m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            }
            out.timers.push((
                session_key(group_id, &req.member_id),
                Some(now_ms + i64::from(cfg.session_timeout_ms)),
            ));
        } else {
            self.remove_member(group_id, &req.member_id, cfg, out);
        }
        HeartbeatResponse {
            error: None,
            error_message: None,
            member_id: Some(req.member_id.clone()),
            member_epoch: epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// Removes a member (left, session expired, or did not revoke in time); its partitions go
    /// back to the pool and the group gets a new target.
    pub(crate) fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) -> bool {
        let Some(m) = self.members.remove(member_id) else {
            return false;
        };
        for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
            if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                self.owners.remove(&tp);
            }
        }
        if let Some(iid) = &m.instance_id {
            if self.static_members.get(iid).map(String::as_str) == Some(member_id) {
                self.static_members.remove(iid);
            }
        }
        self.target.remove(member_id);
        // A regex nobody uses any more is forgotten; used again, it resolves anew.
        let in_use: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| {
                m.subscribed_topic_regex
                    .as_ref()
                    .map(|(src, _)| src.clone())
            })
            .collect();
        self.resolved_regexes.retain(|r| in_use.contains(r));
        out.timers.push((session_key(group_id, member_id), None));
        out.timers.push((rebalance_key(group_id, member_id), None));
        self.group_epoch += 1;
        self.maybe_compute_target(cfg);
        true
    }

    fn release_all(&mut self, member_id: &str) {
        self.owners.retain(|_, owner| owner != member_id);
    }

    /// Re-resolves the subscribed topics against the catalog; true on a change (a topic
    /// created, deleted or given more partitions), which bumps the group epoch.
    fn refresh_topics(&mut self, catalog: &dyn TopicCatalog) -> bool {
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut all_names: Option<Vec<String>> = None;
        let mut in_use: BTreeSet<String> = BTreeSet::new();
        let mut newly_seen: Vec<String> = Vec::new();
        for m in self.members.values() {
            names.extend(m.subscribed_topic_names.iter().cloned());
            if let Some((src, re)) = &m.subscribed_topic_regex {
                in_use.insert(src.clone());
                if !self.resolved_regexes.contains(src) {
                    newly_seen.push(src.clone());
                    continue;
                }
                let all = all_names.get_or_insert_with(|| catalog.names());
                names.extend(all.iter().filter(|n| re.is_match(n)).cloned());
            }
        }
        self.regex_pending = !newly_seen.is_empty();
        self.resolved_regexes.extend(newly_seen);
        self.resolved_regexes.retain(|r| in_use.contains(r));
        let topics: BTreeMap<Uuid, TopicMetadata> = names
            .iter()
            .filter_map(|n| catalog.topic(n))
            .map(|t| (t.topic_id, t))
            .collect();
        if topics == self.subscribed_topics {
            return false;
        }
        self.subscribed_topics = topics;
        true
    }

    /// The assignor most members ask for (`group.remote.assignor`); otherwise the first of
    /// `group.consumer.assignors`.
    fn choose_assignor(&self, cfg: &ConsumerGroupConfig) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let default = cfg
            .assignors
            .first()
            .map_or(assignor::uniform::NAME, String::as_str);
        votes
            .iter()
            .max_by_key(|(n, c)| {
                (
                    **c,
                    std::cmp::Reverse(cfg.assignors.iter().position(|x| x == *n)),
                )
            })
            .map_or(default, |(n, _)| *n)
            .to_string()
    }

    fn maybe_compute_target(&mut self, cfg: &ConsumerGroupConfig) {
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        let name = self.choose_assignor(cfg);
        let default = cfg
            .assignors
            .first()
            .map_or(assignor::uniform::NAME, String::as_str);
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|m| {
                let subscribed = self
                    .subscribed_topics
                    .values()
                    .filter(|t| m.subscribes_to(&t.name))
                    .map(|t| t.topic_id)
                    .collect();
                let previous = self.target.get(&m.member_id).cloned().unwrap_or_default();
                (
                    m.member_id.clone(),
                    MemberSpec {
                        subscribed,
                        previous,
                    },
                )
            })
            .collect();
        let target = assignor::assign(&name, &specs, &self.subscribed_topics)
            .or_else(|| assignor::assign(default, &specs, &self.subscribed_topics))
            .unwrap_or_default();
        self.target = target;
        self.assignor_name = name;
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves `member_id` one step towards its target (Kafka's `CurrentAssignmentBuilder`).
    fn reconcile(
        &mut self,
        group_id: &str,
        member_id: &str,
        owned: Option<&TopicPartitions>,
        now_ms: i64,
        out: &mut Output,
    ) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        match m.state {
            MemberState::UnrevokedPartitions => {
                let revoked = owned.is_some_and(|o| !intersects(o, &m.pending_revocation));
                if !revoked {
                    return;
                }
                for tp in pairs(&m.pending_revocation) {
                    if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                        self.owners.remove(&tp);
                    }
                }
                m.pending_revocation.clear();
                m.state = MemberState::Stable;
                out.timers.push((rebalance_key(group_id, member_id), None));
            }
            MemberState::Stable if m.member_epoch == assignment_epoch => return,
            _ => {}
        }
        let keep: TopicPartitions = from_pairs(
            pairs(&m.assigned).filter(|(t, p)| target.get(t).is_some_and(|ps| ps.contains(p))),
        );
        let revoke: TopicPartitions = from_pairs(
            pairs(&m.assigned).filter(|(t, p)| !target.get(t).is_some_and(|ps| ps.contains(p))),
        );
        if !revoke.is_empty() {
            m.assigned = keep;
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            out.timers.push((
                rebalance_key(group_id, member_id),
                Some(now_ms + i64::from(m.rebalance_timeout_ms)),
            ));
            return;
        }
        let mut unreleased = false;
        let mut assigned = keep;
        for (t, p) in pairs(&target) {
            if assigned.get(&t).is_some_and(|ps| ps.contains(&p)) {
                continue;
            }
            match self.owners.get(&(t, p)) {
                Some(owner) if owner != member_id => unreleased = true,
                _ => {
                    self.owners.insert((t, p), member_id.to_string());
                    assigned.entry(t).or_default().insert(p);
                }
            }
        }
        m.assigned = assigned;
        if m.member_epoch != assignment_epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = assignment_epoch;
        }
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// A timer of this group fired: `session` (no heartbeat in time) or a revocation that
    /// took longer than the member's rebalance timeout. Either way the member is removed.
    pub(crate) fn on_timer(
        &mut self,
        group_id: &str,
        member_id: &str,
        revocation: bool,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) -> bool {
        if revocation
            && self
                .members
                .get(member_id)
                .is_none_or(|m| m.state != MemberState::UnrevokedPartitions)
        {
            return false;
        }
        self.remove_member(group_id, member_id, cfg, out)
    }

    // ----- classic members (online migration, Kafka 4.x) ---------------------------------

    /// Topic-name partitions (as classic consumers speak them) by topic id; unknown topics are
    /// dropped.
    fn by_id(parts: Vec<(String, Vec<i32>)>, catalog: &dyn TopicCatalog) -> TopicPartitions {
        from_pairs(parts.into_iter().flat_map(|(name, ps)| {
            let id = catalog.topic(&name).map(|t| t.topic_id);
            ps.into_iter().filter_map(move |p| id.map(|id| (id, p)))
        }))
    }

    /// Topic-id partitions by topic name (the subscribed topics' names), sorted.
    fn by_name(&self, tps: &TopicPartitions) -> Vec<(String, Vec<i32>)> {
        let mut out: Vec<(String, Vec<i32>)> = tps
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .filter_map(|(id, ps)| {
                let t = self.subscribed_topics.get(id)?;
                Some((t.name.clone(), ps.iter().copied().collect()))
            })
            .collect();
        out.sort();
        out
    }

    /// A consumer group built from a classic group's members (online upgrade, as Kafka's
    /// `ConsumerGroup.fromClassicGroup`): the group and member epochs are the classic
    /// generation, each member keeps the partitions of its last SyncGroup (which are also its
    /// target) and stays a classic member, now served by the consumer group, until it rejoins
    /// with the consumer protocol. Session timers follow each member's own session timeout.
    pub(crate) fn from_classic(
        group_id: &str,
        generation_id: i32,
        seeds: Vec<ClassicSeed>,
        catalog: &dyn TopicCatalog,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Output,
    ) -> Self {
        let mut g = ConsumerGroup {
            group_epoch: generation_id,
            assignment_epoch: generation_id,
            ..ConsumerGroup::default()
        };
        for seed in seeds {
            let mut m = ConsumerMember::new(seed.member_id.clone());
            m.instance_id = seed.instance_id;
            m.client_id = seed.client_id;
            m.client_host = seed.client_host;
            m.rebalance_timeout_ms = seed.rebalance_timeout_ms;
            m.subscribed_topic_names = consumer_protocol::subscribed_topics(&seed.subscription)
                .unwrap_or_default()
                .into_iter()
                .collect();
            m.assigned = Self::by_id(
                consumer_protocol::assigned_partitions(&seed.assignment).unwrap_or_default(),
                catalog,
            );
            m.member_epoch = generation_id;
            m.previous_member_epoch = generation_id;
            m.classic = Some(ClassicMemberMetadata {
                session_timeout_ms: seed.session_timeout_ms,
                protocols: seed.protocols,
            });
            if let Some(iid) = &m.instance_id {
                g.static_members.insert(iid.clone(), m.member_id.clone());
            }
            for tp in pairs(&m.assigned) {
                g.owners.insert(tp, m.member_id.clone());
            }
            g.target.insert(m.member_id.clone(), m.assigned.clone());
            out.timers.push((
                session_key(group_id, &m.member_id),
                Some(now_ms + i64::from(m.session_timeout_ms(cfg))),
            ));
            g.members.insert(m.member_id.clone(), m);
        }
        g.refresh_topics(catalog);
        g.assignor_name = g.choose_assignor(cfg);
        g
    }

    /// True when the group has members and all of them speak the classic protocol: the
    /// group can go back to being a classic group (online downgrade).
    pub(crate) fn only_classic_members(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }

    /// True when `member_id` is a classic member of this group.
    pub(crate) fn has_classic_member(&self, member_id: &str) -> bool {
        self.members
            .get(member_id)
            .is_some_and(|m| m.classic.is_some())
    }

    /// The members as a classic group would hold them (online downgrade): each with its
    /// current partitions as a classic `Assignment`.
    pub(crate) fn classic_seeds(&self) -> Vec<ClassicSeed> {
        self.members
            .values()
            .filter_map(|m| {
                let c = m.classic.as_ref()?;
                let subscription = c
                    .protocols
                    .first()
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                let version = consumer_protocol::subscription_version(&subscription).unwrap_or(0);
                Some(ClassicSeed {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: c.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: c.protocols.clone(),
                    subscription,
                    assignment: Bytes::from(consumer_protocol::encode_assignment(
                        version,
                        &self.by_name(&m.assigned),
                    )),
                })
            })
            .collect()
    }

    /// JoinGroup from a classic member of this consumer group (Kafka's
    /// `classicGroupJoinToConsumerGroup`). The subscription in the member's first protocol
    /// updates it like a heartbeat would; the partitions its Subscription says it owns
    /// (`owned_partitions`, empty for eager protocols, which revoke everything before
    /// rejoining) drive one reconciliation step. Answered at once: generation = the member
    /// epoch, no leader (the broker assigns), the member's first protocol.
    ///
    /// Errors: INCONSISTENT_GROUP_PROTOCOL (not a `consumer` protocol type or no readable
    /// Subscription), UNKNOWN_MEMBER_ID (the id is a consumer-protocol member's),
    /// GROUP_MAX_SIZE_REACHED.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn classic_join(
        &mut self,
        group_id: &str,
        req: &JoinRequest,
        member_id: String,
        catalog: &dyn TopicCatalog,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Output,
    ) -> JoinResponse {
        let fail = |e: GroupError| JoinResponse::error(e, &req.member_id);
        let Some((protocol, metadata)) = req.protocols.first() else {
            return fail(GroupError::InconsistentGroupProtocol);
        };
        let Some(topics) = consumer_protocol::subscribed_topics(metadata) else {
            return fail(GroupError::InconsistentGroupProtocol);
        };
        if req.protocol_type != "consumer" {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if self
            .members
            .get(&member_id)
            .is_some_and(|m| m.classic.is_none())
        {
            return fail(GroupError::UnknownMemberId);
        }
        if let Some(iid) = &req.group_instance_id {
            // A static member's new incarnation replaces the old one.
            if let Some(old) = self.static_members.get(iid).cloned() {
                if old != member_id {
                    self.remove_member(group_id, &old, cfg, out);
                }
            }
        }
        let is_new = !self.members.contains_key(&member_id);
        if is_new && self.members.len() >= cfg.max_size {
            return fail(GroupError::GroupMaxSizeReached);
        }
        let m = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| ConsumerMember::new(member_id.clone()));
        m.instance_id = req.group_instance_id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.classic = Some(ClassicMemberMetadata {
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
        });
        let names: BTreeSet<String> = topics.into_iter().collect();
        let mut changed = is_new;
        if names != m.subscribed_topic_names {
            m.subscribed_topic_names = names;
            changed = true;
        }
        if let Some(iid) = &req.group_instance_id {
            self.static_members.insert(iid.clone(), member_id.clone());
        }
        if self.refresh_topics(catalog) {
            changed = true;
        }
        if changed {
            self.group_epoch += 1;
        }
        self.maybe_compute_target(cfg);
        let owned = Self::by_id(
            consumer_protocol::owned_partitions(metadata).unwrap_or_default(),
            catalog,
        );
        self.reconcile(group_id, &member_id, Some(&owned), now_ms, out);
        if self
            .members
            .get(&member_id)
            .is_some_and(|m| m.state == MemberState::UnrevokedPartitions)
        {
            // The Subscription already says what the member gave up (an eager member gives up
            // everything before it rejoins): the revocation may be complete at once.
            self.reconcile(group_id, &member_id, Some(&owned), now_ms, out);
        }
        out.timers.push((
            session_key(group_id, &member_id),
            Some(now_ms + i64::from(req.session_timeout_ms)),
        ));
        let epoch = self.members.get(&member_id).map_or(-1, |m| m.member_epoch);
        JoinResponse {
            error: None,
            generation_id: epoch,
            protocol_type: Some("consumer".to_string()),
            protocol_name: Some(protocol.clone()),
            leader: String::new(),
            member_id,
            members: Vec::new(),
        }
    }

    /// SyncGroup from a classic member: its current partitions (those it may own now; a
    /// revocation in progress shows as partitions missing), as a classic `Assignment`.
    ///
    /// Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION (not the member epoch),
    /// INCONSISTENT_GROUP_PROTOCOL.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn classic_sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        now_ms: i64,
        out: &mut Output,
    ) -> SyncResponse {
        let Some((m, c)) = self
            .members
            .get(member_id)
            .and_then(|m| m.classic.as_ref().map(|c| (m, c)))
        else {
            return SyncResponse::error(GroupError::UnknownMemberId);
        };
        if generation_id != m.member_epoch {
            return SyncResponse::error(GroupError::IllegalGeneration);
        }
        let protocol = match protocol_name {
            Some(p) => c.protocols.iter().find(|(n, _)| n == p),
            None => c.protocols.first(),
        };
        let Some((name, metadata)) = protocol else {
            return SyncResponse::error(GroupError::InconsistentGroupProtocol);
        };
        if protocol_type.is_some_and(|t| t != "consumer") {
            return SyncResponse::error(GroupError::InconsistentGroupProtocol);
        }
        out.timers.push((
            session_key(group_id, member_id),
            Some(now_ms + i64::from(c.session_timeout_ms)),
        ));
        let version = consumer_protocol::subscription_version(metadata).unwrap_or(0);
        SyncResponse {
            error: None,
            protocol_type: Some("consumer".to_string()),
            protocol_name: Some(name.clone()),
            assignment: Bytes::from(consumer_protocol::encode_assignment(
                version,
                &self.by_name(&m.assigned),
            )),
        }
    }

    /// Heartbeat from a classic member: REBALANCE_IN_PROGRESS while the member has not reached
    /// its target at the current assignment epoch, so that it rejoins (the only way a classic
    /// member learns a new assignment). Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION.
    pub(crate) fn classic_heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
        now_ms: i64,
        out: &mut Output,
    ) -> Option<GroupError> {
        let Some((m, c)) = self
            .members
            .get(member_id)
            .and_then(|m| m.classic.as_ref().map(|c| (m, c)))
        else {
            return Some(GroupError::UnknownMemberId);
        };
        if generation_id != m.member_epoch {
            return Some(GroupError::IllegalGeneration);
        }
        out.timers.push((
            session_key(group_id, member_id),
            Some(now_ms + i64::from(c.session_timeout_ms)),
        ));
        (m.state != MemberState::Stable || m.member_epoch != self.assignment_epoch)
            .then_some(GroupError::RebalanceInProgress)
    }

    /// Notes a rebalance starting (the group is neither `Stable` nor `Empty`) or completing
    /// (`Stable` again), as a [`crate::classic::RebalanceEvent`].
    pub(crate) fn track_rebalance(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        match self.state() {
            ConsumerGroupState::Empty => self.reconciling_since = None,
            ConsumerGroupState::Stable => {
                if let Some(t) = self.reconciling_since.take() {
                    out.rebalances.push(crate::classic::RebalanceEvent {
                        group_id: group_id.to_string(),
                        protocol: "consumer",
                        duration_ms: now_ms - t,
                    });
                }
            }
            _ => {
                self.reconciling_since.get_or_insert(now_ms);
            }
        }
    }

    // ----- persistence (Kafka's records 3-8) ------------------------------------------------

    /// Appends to `out.records` what changed since the last call, as Kafka's KIP-848 records:
    /// member metadata, the subscribed topics, the group epoch, target assignments and the
    /// assignment epoch, current assignments, then tombstones for removed members. The
    /// coordinator replies only once these are durable, as Kafka answers a heartbeat only after
    /// its records are committed.
    pub(crate) fn write_records(&mut self, group_id: &str, out: &mut Output) {
        if self.members.is_empty() && self.persisted.group_epoch.is_none() {
            return; // never had a member: nothing to write
        }
        let g = || group_id.to_string();
        let rec = |c: ConsumerRecord| Record::Consumer(c);
        for m in self.members.values() {
            if let Some(v) = self.persisted.metadata.get(&m.member_id) {
                if m.metadata_matches(v) {
                    continue;
                }
            }
            let v = m.metadata_value();
            self.persisted
                .metadata
                .insert(m.member_id.clone(), v.clone());
            out.records.push(rec(ConsumerRecord::MemberMetadata {
                group_id: g(),
                member_id: m.member_id.clone(),
                value: Some(v),
            }));
        }
        if !self
            .persisted
            .topics
            .as_deref()
            .is_some_and(|p| p.iter().eq(self.subscribed_topics.values()))
        {
            let topics: Vec<TopicMetadata> = self.subscribed_topics.values().cloned().collect();
            out.records.push(rec(ConsumerRecord::SubscribedTopics {
                group_id: g(),
                topics: Some(topics.clone()),
            }));
            self.persisted.topics = Some(topics);
        }
        if self.persisted.group_epoch != Some(self.group_epoch) {
            out.records.push(rec(ConsumerRecord::GroupEpoch {
                group_id: g(),
                epoch: Some(self.group_epoch),
            }));
            self.persisted.group_epoch = Some(self.group_epoch);
        }
        for (member_id, t) in &self.target {
            if self
                .persisted
                .target
                .get(member_id)
                .is_some_and(|p| same_partitions(t, p))
            {
                continue;
            }
            let t = normalize(t);
            self.persisted.target.insert(member_id.clone(), t.clone());
            out.records.push(rec(ConsumerRecord::TargetAssignment {
                group_id: g(),
                member_id: member_id.clone(),
                partitions: Some(t),
            }));
        }
        if self.persisted.assignment_epoch != Some(self.assignment_epoch) {
            out.records.push(rec(ConsumerRecord::AssignmentEpoch {
                group_id: g(),
                assignment_epoch: Some(self.assignment_epoch),
            }));
            self.persisted.assignment_epoch = Some(self.assignment_epoch);
        }
        for m in self.members.values() {
            if let Some(v) = self.persisted.current.get(&m.member_id) {
                if m.assignment_matches(v) {
                    continue;
                }
            }
            let v = m.assignment_value();
            self.persisted
                .current
                .insert(m.member_id.clone(), v.clone());
            out.records.push(rec(ConsumerRecord::CurrentAssignment {
                group_id: g(),
                member_id: m.member_id.clone(),
                value: Some(v),
            }));
        }
        // Tombstones for members that are gone, current assignment first (as Kafka).
        let group_id = group_id.to_string();
        for id in drop_missing(&mut self.persisted.current, |k| {
            self.members.contains_key(k)
        }) {
            out.records.push(rec(ConsumerRecord::CurrentAssignment {
                group_id: group_id.clone(),
                member_id: id,
                value: None,
            }));
        }
        for id in drop_missing(&mut self.persisted.target, |k| self.target.contains_key(k)) {
            out.records.push(rec(ConsumerRecord::TargetAssignment {
                group_id: group_id.clone(),
                member_id: id,
                partitions: None,
            }));
        }
        for id in drop_missing(&mut self.persisted.metadata, |k| {
            self.members.contains_key(k)
        }) {
            out.records.push(rec(ConsumerRecord::MemberMetadata {
                group_id: group_id.clone(),
                member_id: id,
                value: None,
            }));
        }
    }

    /// Tombstones for every record of this (empty) group, when it is deleted or becomes a
    /// classic group.
    pub(crate) fn tombstones(&mut self, group_id: &str, out: &mut Output) {
        self.members.clear();
        self.target.clear();
        self.write_records(group_id, out);
        let g = || group_id.to_string();
        if self.persisted.topics.take().is_some() {
            out.records
                .push(Record::Consumer(ConsumerRecord::SubscribedTopics {
                    group_id: g(),
                    topics: None,
                }));
        }
        if self.persisted.assignment_epoch.take().is_some() {
            out.records
                .push(Record::Consumer(ConsumerRecord::AssignmentEpoch {
                    group_id: g(),
                    assignment_epoch: None,
                }));
        }
        if self.persisted.group_epoch.take().is_some() {
            out.records
                .push(Record::Consumer(ConsumerRecord::GroupEpoch {
                    group_id: g(),
                    epoch: None,
                }));
        }
    }

    /// Applies one replayed record (startup). Call [`ConsumerGroup::finish_replay`] after the
    /// last one.
    pub(crate) fn replay(&mut self, record: &ConsumerRecord) {
        match record {
            ConsumerRecord::GroupEpoch { epoch, .. } => {
                self.group_epoch = epoch.unwrap_or(0);
                self.persisted.group_epoch = *epoch;
            }
            ConsumerRecord::SubscribedTopics { topics, .. } => {
                self.subscribed_topics = topics
                    .iter()
                    .flatten()
                    .map(|t| (t.topic_id, t.clone()))
                    .collect();
                self.persisted.topics = topics.clone();
            }
            ConsumerRecord::MemberMetadata {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let m = self
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerMember::new(member_id.clone()));
                    m.instance_id = v.instance_id.clone();
                    m.rack_id = v.rack_id.clone();
                    m.client_id = v.client_id.clone();
                    m.client_host = v.client_host.clone();
                    m.subscribed_topic_names = v.subscribed_topic_names.iter().cloned().collect();
                    m.subscribed_topic_regex = v.subscribed_topic_regex.as_ref().and_then(|r| {
                        Regex::new(&format!("^(?:{r})$"))
                            .ok()
                            .map(|re| (r.clone(), re))
                    });
                    m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                    m.server_assignor = v.server_assignor.clone();
                    m.classic = v.classic.clone();
                    self.persisted.metadata.insert(member_id.clone(), v.clone());
                }
                None => {
                    self.members.remove(member_id);
                    self.persisted.metadata.remove(member_id);
                }
            },
            ConsumerRecord::AssignmentEpoch {
                assignment_epoch, ..
            } => {
                self.assignment_epoch = assignment_epoch.unwrap_or(0);
                self.persisted.assignment_epoch = *assignment_epoch;
            }
            ConsumerRecord::TargetAssignment {
                member_id,
                partitions,
                ..
            } => match partitions {
                Some(p) => {
                    self.target.insert(member_id.clone(), p.clone());
                    self.persisted.target.insert(member_id.clone(), p.clone());
                }
                None => {
                    self.target.remove(member_id);
                    self.persisted.target.remove(member_id);
                }
            },
            ConsumerRecord::CurrentAssignment {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let m = self
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerMember::new(member_id.clone()));
                    m.member_epoch = v.member_epoch;
                    m.previous_member_epoch = v.previous_member_epoch;
                    m.state = MemberState::from_id(v.state);
                    m.assigned = v.assigned.clone();
                    m.pending_revocation = v.pending_revocation.clone();
                    self.persisted.current.insert(member_id.clone(), v.clone());
                }
                None => {
                    self.persisted.current.remove(member_id);
                }
            },
        }
    }

    /// After replay: drops members whose metadata was tombstoned, rebuilds the ownership and
    /// static-member maps, takes the replayed regexes as resolved, and arms every member's
    /// session timer (and the revocation timer of those still revoking), as Kafka does when a
    /// coordinator loads a group.
    pub(crate) fn finish_replay(
        &mut self,
        group_id: &str,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Output,
    ) {
        self.assignor_name = self.choose_assignor(cfg);
        let known: BTreeSet<String> = self.persisted.metadata.keys().cloned().collect();
        self.members.retain(|id, _| known.contains(id));
        self.owners.clear();
        self.static_members.clear();
        self.resolved_regexes.clear();
        for m in self.members.values() {
            for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
                self.owners.insert(tp, m.member_id.clone());
            }
            if let Some(iid) = &m.instance_id {
                self.static_members.insert(iid.clone(), m.member_id.clone());
            }
            if let Some((src, _)) = &m.subscribed_topic_regex {
                self.resolved_regexes.insert(src.clone());
            }
            out.timers.push((
                session_key(group_id, &m.member_id),
                Some(now_ms + i64::from(m.session_timeout_ms(cfg))),
            ));
            if m.state == MemberState::UnrevokedPartitions {
                out.timers.push((
                    rebalance_key(group_id, &m.member_id),
                    Some(now_ms + i64::from(m.rebalance_timeout_ms)),
                ));
            }
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
}
