//! The classic consumer-group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), after
//! Kafka's `ClassicGroup` and `GroupCoordinator`, as a sans-IO state machine.
//!
//! Every call takes `now_ms` and a [`RequestId`] and returns an [`Output`]: the replies to
//! deliver (possibly to requests parked earlier), the records to append to `__consumer_offsets`
//! before delivering them, and timers to set or cancel. The caller owns the clock, the log and
//! the timer wheel; this module does no I/O.
//!
//! Group states ([`GroupState`]) and what each allows:
//! - `Empty`: no members; offsets may be committed with `generation_id < 0`; a JoinGroup starts
//!   a rebalance (after `group.initial.rebalance.delay.ms`).
//! - `PreparingRebalance`: JoinGroup requests are parked until every known member rejoined or
//!   the rebalance timeout fires; Heartbeat answers `REBALANCE_IN_PROGRESS`; commits allowed.
//! - `CompletingRebalance`: JoinGroup answered; waiting for the leader's SyncGroup; other
//!   SyncGroups are parked; commits answer `REBALANCE_IN_PROGRESS`.
//! - `Stable`: assignment delivered; Heartbeat keeps members alive; a new member, a leaving
//!   member, a changed subscription or an expired session starts a rebalance.
//! - `Dead`: deleted; every request answers `COORDINATOR_NOT_AVAILABLE` or `UNKNOWN_MEMBER_ID`.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use crate::assignor::TopicMetadata;
use crate::consumer::{
    ClassicSeed, ConsumerGroup, ConsumerGroupConfig, ConsumerGroupDescription, HeartbeatRequest,
    HeartbeatResponse, MigrationPolicy, TopicCatalog,
};
use crate::error::GroupError;
use crate::records::{ConsumerRecord, GroupMetadataValue, MemberRecord, OffsetAndMetadata, Record};

/// Identifies a request whose reply may be produced later (parked JoinGroup/SyncGroup).
pub type RequestId = u64;

/// Coordinator settings under their Kafka broker-config names.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (Kafka default 6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout_ms: i32,
    /// `group.max.size` (Kafka default `i32::MAX`).
    pub max_size: usize,
    /// `offsets.retention.minutes` in ms (Kafka default 7 days).
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes` (Kafka default 4096).
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.*`: KIP-848 consumer groups.
    pub consumer: ConsumerGroupConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
            consumer: ConsumerGroupConfig::default(),
        }
    }
}

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

    fn can_transition_to(self, next: GroupState) -> bool {
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

/// Timers the caller keeps; setting an existing key replaces its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member's (or pending member's) session expires.
    Session { group_id: String, member_id: String },
    /// The join phase of a rebalance ends (initial delay or rebalance timeout).
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
    pub records: Vec<Record>,
    /// `(key, Some(deadline_ms))` sets a timer; `(key, None)` cancels it.
    pub timers: Vec<(TimerKey, Option<i64>)>,
    /// Rebalances that completed (for metrics).
    pub rebalances: Vec<RebalanceEvent>,
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

/// JoinGroup request fields (JoinGroupRequest v0-v9).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets `MEMBER_ID_REQUIRED` and its id (KIP-394).
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// JoinGroup response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Non-empty only in the leader's response.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub(crate) fn error(e: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(e),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// SyncGroup request fields (v0-v5).
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// SyncGroup response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub(crate) fn error(e: GroupError) -> Self {
        Self {
            error: Some(e),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// OffsetCommit request fields (v2-v8).
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    /// `-1` for a commit from a consumer that does not use group management.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
    /// The OffsetCommit version (consumer-protocol members need v9+).
    pub api_version: i16,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation_id: i32,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name (`Stable`, `Empty`, ... or `Reconciling`, `Assigning` for consumer
    /// groups).
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5, KIP-848).
    pub group_type: &'static str,
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// Join order; the leader is the earliest-joined member.
    join_seq: u64,
    awaiting_join: Option<RequestId>,
    awaiting_sync: Option<RequestId>,
    /// Joined in the current rebalance for the first time.
    is_new: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Answers the member's parked JoinGroup/SyncGroup (if any) with `error`.
    fn fail_parked(&mut self, error: GroupError, out: &mut Output) {
        if let Some(r) = self.awaiting_join.take() {
            out.replies
                .push((r, Reply::Join(JoinResponse::error(error, &self.member_id))));
        }
        if let Some(r) = self.awaiting_sync.take() {
            out.replies
                .push((r, Reply::Sync(SyncResponse::error(error))));
        }
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols.as_slice() == protocols
    }
}

#[derive(Debug)]
struct Group {
    group_id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out by `MEMBER_ID_REQUIRED` and not yet used to join (KIP-394).
    pending_members: HashSet<String>,
    /// `group.instance.id` -> member id (KIP-345).
    static_members: HashMap<String, String>,
    /// Members that got a JoinGroup reply in this generation and have not yet synced.
    pending_sync: HashSet<String>,
    /// Remaining time of the initial delayed join, when the rebalance started from `Empty`.
    initial_delay_remaining_ms: Option<i64>,
    new_member_added: bool,
    offsets: HashMap<(String, i32), OffsetAndMetadata>,
    /// Set when the group uses the consumer protocol (KIP-848); the classic fields are then
    /// unused (the group is `Empty` in classic terms).
    consumer: Option<ConsumerGroup>,
    /// When the current rebalance started (classic protocol), for [`RebalanceEvent`].
    rebalance_started_ms: Option<i64>,
}

impl Group {
    fn new(group_id: &str, now_ms: i64) -> Self {
        Self {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: HashSet::new(),
            static_members: HashMap::new(),
            pending_sync: HashSet::new(),
            initial_delay_remaining_ms: None,
            new_member_added: false,
            offsets: HashMap::new(),
            consumer: None,
            rebalance_started_ms: None,
        }
    }

    fn transition_to(&mut self, next: GroupState, now_ms: i64) {
        debug_assert!(
            self.state.can_transition_to(next),
            "illegal group transition {:?} -> {:?}",
            self.state,
            next
        );
        self.state = next;
        self.state_timestamp_ms = now_ms;
        if matches!(next, GroupState::Empty | GroupState::Dead) {
            self.rebalance_started_ms = None;
        }
    }

    /// No members, in either protocol.
    fn has_no_members(&self) -> bool {
        match &self.consumer {
            Some(c) => c.is_empty(),
            None => self.is(GroupState::Empty),
        }
    }

    fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports, voted by each member's first choice among them.
    fn select_protocol(&self) -> Option<String> {
        let mut candidates: Option<Vec<String>> = None;
        for m in self.members.values() {
            let names: Vec<String> = m.protocols.iter().map(|(n, _)| n.clone()).collect();
            candidates = Some(match candidates {
                None => names,
                Some(c) => c.into_iter().filter(|n| names.contains(n)).collect(),
            });
        }
        let candidates = candidates?;
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((first, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(n, _)| n == first) {
                    v.1 += 1;
                }
            }
        }
        // Highest vote wins; ties go to the earlier candidate (first member's preference).
        let mut best: Option<(String, usize)> = None;
        for (n, v) in votes {
            if best.as_ref().is_none_or(|(_, bv)| v > *bv) {
                best = Some((n, v));
            }
        }
        best.map(|(n, _)| n)
    }

    /// Whether a member with these protocols can join (same type, a protocol in common).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(n, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
    }

    fn metadata_record(&self) -> Record {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        Record::GroupMetadata {
            group_id: self.group_id.clone(),
            value: Some(GroupMetadataValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation_id: self.generation_id,
                protocol_name: self.protocol_name.clone(),
                leader: self.leader_id.clone(),
                current_state_timestamp_ms: self.state_timestamp_ms,
                members: self
                    .sorted_members()
                    .into_iter()
                    .map(|m| MemberRecord {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: m.metadata_for(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }),
        }
    }

    fn sorted_members(&self) -> Vec<&Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.join_seq);
        v
    }
}

/// The classic group coordinator for all groups on this broker.
#[derive(Debug)]
pub struct ClassicCoordinator {
    config: CoordinatorConfig,
    groups: HashMap<String, Group>,
    /// Makes member ids unique across broker restarts (the caller supplies it at start).
    incarnation: u64,
    next_id: u64,
}

/// The catalog of a caller that has none (classic-only paths).
struct NoTopics;

impl TopicCatalog for NoTopics {
    fn topic(&self, _: &str) -> Option<TopicMetadata> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::Session {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

impl ClassicCoordinator {
    /// A coordinator with no groups. `incarnation` should differ between broker starts (e.g.
    /// random) so generated member ids never repeat.
    pub fn new(config: CoordinatorConfig, incarnation: u64) -> Self {
        Self {
            config,
            groups: HashMap::new(),
            incarnation,
            next_id: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        let hi = self.incarnation;
        let lo = self.next_id;
        format!(
            "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (hi >> 32) as u32,
            (hi >> 16) as u16,
            hi as u16,
            (lo >> 48) as u16,
            lo & 0xffff_ffff_ffff
        )
    }

    // ----- replay --------------------------------------------------------------------------

    /// Applies a `__consumer_offsets` record; used at startup (and for offset commits live).
    pub fn replay(&mut self, record: &Record, now_ms: i64) {
        match record {
            Record::OffsetCommit {
                group_id,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    let g = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id, now_ms));
                    g.offsets.insert((topic.clone(), *partition), v.clone());
                }
                None => {
                    if let Some(g) = self.groups.get_mut(group_id) {
                        g.offsets.remove(&(topic.clone(), *partition));
                    }
                }
            },
            Record::GroupMetadata { group_id, value } => match value {
                Some(v) => {
                    let g = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id, now_ms));
                    // A classic group (again): any consumer-protocol state is gone.
                    g.consumer = None;
                    g.protocol_type = Some(v.protocol_type.clone()).filter(|s| !s.is_empty());
                    g.generation_id = v.generation_id;
                    g.protocol_name = v.protocol_name.clone();
                    g.leader_id = v.leader.clone();
                    g.state_timestamp_ms = if v.current_state_timestamp_ms > 0 {
                        v.current_state_timestamp_ms
                    } else {
                        now_ms
                    };
                    g.members.clear();
                    g.static_members.clear();
                    for (i, m) in v.members.iter().enumerate() {
                        if let Some(iid) = &m.group_instance_id {
                            g.static_members.insert(iid.clone(), m.member_id.clone());
                        }
                        let protocols = match &v.protocol_name {
                            Some(p) => vec![(p.clone(), m.subscription.clone())],
                            None => Vec::new(),
                        };
                        g.members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id.clone(),
                                group_instance_id: m.group_instance_id.clone(),
                                client_id: m.client_id.clone(),
                                client_host: m.client_host.clone(),
                                session_timeout_ms: m.session_timeout_ms,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                protocols,
                                assignment: m.assignment.clone(),
                                join_seq: i as u64,
                                awaiting_join: None,
                                awaiting_sync: None,
                                is_new: false,
                            },
                        );
                    }
                    g.state = if g.members.is_empty() {
                        GroupState::Empty
                    } else {
                        GroupState::Stable
                    };
                }
                None => {
                    self.groups.remove(group_id);
                }
            },
            Record::Consumer(c) => {
                let group_id = c.group_id();
                if matches!(c, ConsumerRecord::GroupEpoch { epoch: None, .. }) {
                    // The consumer group was deleted or became a classic group.
                    if let Some(g) = self.groups.get_mut(group_id) {
                        g.consumer = None;
                    }
                    return;
                }
                if c.is_tombstone() && !self.groups.contains_key(group_id) {
                    return; // nothing to delete: never create a group from a tombstone
                }
                let g = self
                    .groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id, now_ms));
                g.protocol_type = Some("consumer".to_string());
                g.consumer
                    .get_or_insert_with(ConsumerGroup::default)
                    .replay(c);
            }
        }
    }

    /// After replay at startup: arms the session timers of restored members, which must
    /// heartbeat within their session timeout or be removed (as Kafka does after a
    /// coordinator failover).
    pub fn start(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let consumer_cfg = self.config.consumer.clone();
        for g in self.groups.values_mut() {
            if let Some(c) = g.consumer.as_mut() {
                c.finish_replay(&g.group_id, &consumer_cfg, now_ms, &mut out);
            }
        }
        for g in self.groups.values() {
            for m in g.members.values() {
                out.timers.push((
                    session_key(&g.group_id, &m.member_id),
                    Some(now_ms + i64::from(m.session_timeout_ms)),
                ));
            }
        }
        out
    }

    // ----- JoinGroup -----------------------------------------------------------------------

    /// Handles JoinGroup. The reply to `req_id` is in the returned [`Output`] now or in a later
    /// one (when the join phase completes). Errors are in [`JoinResponse::error`].
    pub fn join(&mut self, req_id: RequestId, req: JoinRequest, now_ms: i64) -> Output {
        self.join_with(req_id, req, &NoTopics, now_ms)
    }

    /// [`ClassicCoordinator::join`] with the broker's topics, which a classic member joining
    /// a consumer-protocol group (online migration) needs to map its topic names to ids.
    pub fn join_with(
        &mut self,
        req_id: RequestId,
        req: JoinRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> Output {
        let mut out = Output::default();
        if let Some(e) = self.validate_join(&req) {
            out.replies
                .push((req_id, Reply::Join(JoinResponse::error(e, &req.member_id))));
            return out;
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                out.replies.push((
                    req_id,
                    Reply::Join(JoinResponse::error(
                        GroupError::UnknownMemberId,
                        &req.member_id,
                    )),
                ));
                return out;
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let max_size = self.config.max_size;
        let Some(group) = self.groups.get(&req.group_id) else {
            return out;
        };
        if group.is(GroupState::Dead) {
            out.replies.push((
                req_id,
                Reply::Join(JoinResponse::error(
                    GroupError::CoordinatorNotAvailable,
                    &req.member_id,
                )),
            ));
            return out;
        }
        if group.consumer.as_ref().is_some_and(|c| !c.is_empty()) {
            self.join_consumer_group(req_id, req, catalog, now_ms, &mut out);
            return out;
        }
        if let Some(g) = self.groups.get_mut(&req.group_id) {
            // An empty consumer group becomes a classic group (keeping its offsets).
            if let Some(mut c) = g.consumer.take() {
                c.tombstones(&req.group_id, &mut out);
            }
        }
        let Some(group) = self.groups.get(&req.group_id) else {
            return out;
        };
        if !group.supports(&req.protocol_type, &req.protocols) {
            out.replies.push((
                req_id,
                Reply::Join(JoinResponse::error(
                    GroupError::InconsistentGroupProtocol,
                    &req.member_id,
                )),
            ));
            return out;
        }
        let is_known = group.members.contains_key(&req.member_id);
        if !is_known && group.members.len() + group.pending_members.len() >= max_size {
            out.replies.push((
                req_id,
                Reply::Join(JoinResponse::error(
                    GroupError::GroupMaxSizeReached,
                    &req.member_id,
                )),
            ));
            return out;
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req_id, req, now_ms, &mut out);
        } else {
            self.join_known_member(req_id, req, now_ms, &mut out);
        }
        out
    }

    /// A classic member joins a consumer-protocol group with members: served by the consumer
    /// group (online migration) unless `group.consumer.migration.policy` is `disabled` and the
    /// member is not already in the group (INCONSISTENT_GROUP_PROTOCOL, as Kafka).
    fn join_consumer_group(
        &mut self,
        req_id: RequestId,
        req: JoinRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
        out: &mut Output,
    ) {
        let config = self.config.clone();
        let known = self
            .groups
            .get(&req.group_id)
            .and_then(|g| g.consumer.as_ref())
            .is_some_and(|c| c.has_classic_member(&req.member_id));
        if config.consumer.migration_policy == MigrationPolicy::Disabled && !known {
            out.replies.push((
                req_id,
                Reply::Join(JoinResponse::error(
                    GroupError::InconsistentGroupProtocol,
                    &req.member_id,
                )),
            ));
            return;
        }
        let member_id = if req.member_id.is_empty() {
            let id = self.new_member_id(&req.client_id);
            if req.require_known_member_id {
                out.replies.push((
                    req_id,
                    Reply::Join(JoinResponse::error(GroupError::MemberIdRequired, &id)),
                ));
                return;
            }
            id
        } else {
            req.member_id.clone()
        };
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let Some(c) = group.consumer.as_mut() else {
            return;
        };
        let resp = c.classic_join(
            &req.group_id,
            &req,
            member_id,
            catalog,
            &config.consumer,
            now_ms,
            out,
        );
        c.write_records(&req.group_id, out);
        c.track_rebalance(&req.group_id, now_ms, out);
        out.replies.push((req_id, Reply::Join(resp)));
    }

    /// Online upgrade (Kafka 4.x): a classic group with members becomes a consumer group when
    /// a ConsumerGroupHeartbeat joins it. Its members keep their partitions and generation
    /// (now their member epoch) and go on as classic members of the consumer group; parked
    /// JoinGroup/SyncGroup requests get REBALANCE_IN_PROGRESS. The classic record is written
    /// without members, then the consumer group's records.
    fn upgrade_to_consumer_group(
        group: &mut Group,
        catalog: &dyn TopicCatalog,
        config: &CoordinatorConfig,
        now_ms: i64,
        out: &mut Output,
    ) {
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let mut seeds = Vec::with_capacity(group.members.len());
        for m in group.sorted_members() {
            seeds.push(ClassicSeed {
                member_id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: m.protocols.clone(),
                subscription: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            });
        }
        for m in group.members.values_mut() {
            if let Some(r) = m.awaiting_join.take() {
                out.replies.push((
                    r,
                    Reply::Join(JoinResponse::error(
                        GroupError::RebalanceInProgress,
                        &m.member_id,
                    )),
                ));
            }
            if let Some(r) = m.awaiting_sync.take() {
                out.replies.push((
                    r,
                    Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                ));
            }
            out.timers
                .push((session_key(&group.group_id, &m.member_id), None));
        }
        for id in &group.pending_members {
            out.timers.push((session_key(&group.group_id, id), None));
        }
        out.timers.push((
            TimerKey::Join {
                group_id: group.group_id.clone(),
            },
            None,
        ));
        out.timers.push((
            TimerKey::Sync {
                group_id: group.group_id.clone(),
                generation_id: group.generation_id,
            },
            None,
        ));
        group.members.clear();
        group.pending_members.clear();
        group.static_members.clear();
        group.pending_sync.clear();
        group.state = GroupState::Empty;
        group.state_timestamp_ms = now_ms;
        out.records.push(group.metadata_record());
        group.consumer = Some(ConsumerGroup::from_classic(
            &group.group_id,
            group.generation_id,
            seeds,
            catalog,
            &config.consumer,
            now_ms,
            out,
        ));
        group.protocol_type = Some("consumer".to_string());
    }

    /// Online downgrade (Kafka 4.x): when every member left in a consumer group speaks the
    /// classic protocol and `group.consumer.migration.policy` allows it, the group becomes a
    /// classic group again (generation = the group epoch, members with their partitions) and
    /// starts a rebalance so they rejoin as a classic group.
    fn maybe_downgrade(
        group: &mut Group,
        config: &CoordinatorConfig,
        now_ms: i64,
        out: &mut Output,
    ) {
        let Some(c) = group.consumer.as_mut() else {
            return;
        };
        if !config.consumer.migration_policy.allows_downgrade() || !c.only_classic_members() {
            return;
        }
        let seeds = c.classic_seeds();
        let generation = c.group_epoch();
        for s in &seeds {
            for key in [
                TimerKey::ConsumerSession {
                    group_id: group.group_id.clone(),
                    member_id: s.member_id.clone(),
                },
                TimerKey::ConsumerRebalance {
                    group_id: group.group_id.clone(),
                    member_id: s.member_id.clone(),
                },
            ] {
                out.timers.push((key, None));
            }
        }
        c.tombstones(&group.group_id, out);
        group.consumer = None;
        group.members.clear();
        group.static_members.clear();
        for (i, s) in seeds.into_iter().enumerate() {
            if let Some(iid) = &s.instance_id {
                group
                    .static_members
                    .insert(iid.clone(), s.member_id.clone());
            }
            out.timers.push((
                session_key(&group.group_id, &s.member_id),
                Some(now_ms + i64::from(s.session_timeout_ms)),
            ));
            group.members.insert(
                s.member_id.clone(),
                Member {
                    member_id: s.member_id,
                    group_instance_id: s.instance_id,
                    client_id: s.client_id,
                    client_host: s.client_host,
                    session_timeout_ms: s.session_timeout_ms,
                    rebalance_timeout_ms: s.rebalance_timeout_ms,
                    protocols: s.protocols,
                    assignment: s.assignment,
                    join_seq: i as u64,
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                },
            );
        }
        group.generation_id = generation;
        group.protocol_type = Some("consumer".to_string());
        group.protocol_name = group.select_protocol();
        group.leader_id = group.sorted_members().first().map(|m| m.member_id.clone());
        group.state = GroupState::Stable;
        group.state_timestamp_ms = now_ms;
        out.records.push(group.metadata_record());
        Self::prepare_rebalance(group, now_ms, config, out);
    }

    fn validate_join(&self, req: &JoinRequest) -> Option<GroupError> {
        if req.group_id.is_empty() {
            return Some(GroupError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Some(GroupError::InvalidSessionTimeout);
        }
        None
    }

    fn join_unknown_member(
        &mut self,
        req_id: RequestId,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Output,
    ) {
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let new_id = self.new_member_id(&prefix);
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        if let Some(instance_id) = req.group_instance_id.clone() {
            if let Some(old_id) = group.static_members.get(&instance_id).cloned() {
                Self::replace_static_member(
                    group,
                    req_id,
                    &req,
                    &old_id,
                    new_id,
                    now_ms,
                    &self.config,
                    out,
                );
                return;
            }
            group.static_members.insert(instance_id, new_id.clone());
            Self::add_member_and_rebalance(group, req_id, req, new_id, now_ms, &self.config, out);
            return;
        }
        if req.require_known_member_id {
            group.pending_members.insert(new_id.clone());
            out.timers.push((
                session_key(&group.group_id, &new_id),
                Some(now_ms + i64::from(req.session_timeout_ms)),
            ));
            out.replies.push((
                req_id,
                Reply::Join(JoinResponse::error(GroupError::MemberIdRequired, &new_id)),
            ));
            return;
        }
        Self::add_member_and_rebalance(group, req_id, req, new_id, now_ms, &self.config, out);
    }

    /// KIP-345: a static member rejoining with an unknown member id replaces its old
    /// incarnation. In `Stable` with unchanged protocols no rebalance happens: it gets the
    /// current generation and assignment back.
    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        group: &mut Group,
        req_id: RequestId,
        req: &JoinRequest,
        old_id: &str,
        new_id: String,
        now_ms: i64,
        config: &CoordinatorConfig,
        out: &mut Output,
    ) {
        let Some(mut member) = group.members.remove(old_id) else {
            // Stale mapping: treat as a new static member.
            if let Some(iid) = &req.group_instance_id {
                group.static_members.insert(iid.clone(), new_id.clone());
            }
            Self::add_member_and_rebalance(group, req_id, req.clone(), new_id, now_ms, config, out);
            return;
        };
        out.timers
            .push((session_key(&group.group_id, old_id), None));
        // The old incarnation's parked requests are fenced.
        member.fail_parked(GroupError::FencedInstanceId, out);
        let protocols_changed = !member.same_protocols(&req.protocols);
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols.clone();
        if group.leader_id.as_deref() == Some(old_id) {
            group.leader_id = Some(new_id.clone());
        }
        if group.pending_sync.remove(old_id) {
            group.pending_sync.insert(new_id.clone());
        }
        if let Some(iid) = &req.group_instance_id {
            group.static_members.insert(iid.clone(), new_id.clone());
        }
        group.members.insert(new_id.clone(), member);
        out.timers.push((
            session_key(&group.group_id, &new_id),
            Some(now_ms + i64::from(req.session_timeout_ms)),
        ));
        match group.state {
            GroupState::Stable if !protocols_changed => {
                out.records.push(group.metadata_record());
                let resp = JoinResponse {
                    error: None,
                    generation_id: group.generation_id,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    leader: group.leader_id.clone().unwrap_or_default(),
                    member_id: new_id,
                    members: Vec::new(),
                };
                out.replies.push((req_id, Reply::Join(resp)));
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.awaiting_join = Some(req_id);
                }
                Self::maybe_complete_join(group, now_ms, out);
            }
            _ => {
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.awaiting_join = Some(req_id);
                }
                Self::prepare_rebalance(group, now_ms, config, out);
            }
        }
    }

    fn add_member_and_rebalance(
        group: &mut Group,
        req_id: RequestId,
        req: JoinRequest,
        member_id: String,
        now_ms: i64,
        config: &CoordinatorConfig,
        out: &mut Output,
    ) {
        let join_seq = group
            .members
            .values()
            .map(|m| m.join_seq + 1)
            .max()
            .unwrap_or(0);
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        group.pending_members.remove(&member_id);
        group.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_seq,
                awaiting_join: Some(req_id),
                awaiting_sync: None,
                is_new: true,
            },
        );
        group.new_member_added = true;
        // Session timer is re-armed when the join phase completes.
        out.timers
            .push((session_key(&group.group_id, &member_id), None));
        if group.is(GroupState::PreparingRebalance) {
            Self::maybe_complete_join(group, now_ms, out);
        } else {
            Self::prepare_rebalance(group, now_ms, config, out);
        }
    }

    fn join_known_member(
        &mut self,
        req_id: RequestId,
        req: JoinRequest,
        now_ms: i64,
        out: &mut Output,
    ) {
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        if group.pending_members.contains(&req.member_id) {
            let id = req.member_id.clone();
            Self::add_member_and_rebalance(group, req_id, req, id, now_ms, &config, out);
            return;
        }
        if let Some(e) = Self::check_member(group, &req.member_id, req.group_instance_id.as_deref())
        {
            out.replies
                .push((req_id, Reply::Join(JoinResponse::error(e, &req.member_id))));
            return;
        }
        let state = group.state;
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return;
        };
        // A member re-sending JoinGroup while parked: the newer request replaces the old one.
        if let Some(old) = member.awaiting_join.take() {
            out.replies.push((
                old,
                Reply::Join(JoinResponse::error(
                    GroupError::RebalanceInProgress,
                    &req.member_id,
                )),
            ));
        }
        let unchanged = member.same_protocols(&req.protocols);
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        match state {
            GroupState::PreparingRebalance => {
                member.protocols = req.protocols;
                member.awaiting_join = Some(req_id);
                out.timers
                    .push((session_key(&group.group_id, &req.member_id), None));
                Self::maybe_complete_join(group, now_ms, out);
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged
                    && !(state == GroupState::Stable
                        && group.leader_id.as_deref() == Some(req.member_id.as_str())) =>
            {
                // Nothing changed: answer with the current generation (Kafka does the same).
                let is_leader = group.leader_id.as_deref() == Some(req.member_id.as_str());
                let protocol = group.protocol_name.clone().unwrap_or_default();
                let members = if is_leader {
                    Self::join_members(group, &protocol)
                } else {
                    Vec::new()
                };
                let resp = JoinResponse {
                    error: None,
                    generation_id: group.generation_id,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    leader: group.leader_id.clone().unwrap_or_default(),
                    member_id: req.member_id.clone(),
                    members,
                };
                out.replies.push((req_id, Reply::Join(resp)));
                out.timers.push((
                    session_key(&group.group_id, &req.member_id),
                    Some(now_ms + i64::from(req.session_timeout_ms)),
                ));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.protocols = req.protocols;
                member.awaiting_join = Some(req_id);
                out.timers
                    .push((session_key(&group.group_id, &req.member_id), None));
                Self::prepare_rebalance(group, now_ms, &config, out);
            }
            GroupState::Empty | GroupState::Dead => {
                out.replies.push((
                    req_id,
                    Reply::Join(JoinResponse::error(
                        GroupError::UnknownMemberId,
                        &req.member_id,
                    )),
                ));
            }
        }
    }

    /// UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID checks shared by every member request.
    fn check_member(
        group: &Group,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<GroupError> {
        if let Some(iid) = instance_id {
            match group.static_members.get(iid) {
                Some(current) if current != member_id => return Some(GroupError::FencedInstanceId),
                None if !member_id.is_empty() && !group.members.contains_key(member_id) => {
                    return Some(GroupError::UnknownMemberId)
                }
                _ => {}
            }
        }
        if !group.members.contains_key(member_id) {
            return Some(GroupError::UnknownMemberId);
        }
        None
    }

    fn join_members(group: &Group, protocol: &str) -> Vec<JoinMember> {
        group
            .sorted_members()
            .into_iter()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    fn prepare_rebalance(
        group: &mut Group,
        now_ms: i64,
        config: &CoordinatorConfig,
        out: &mut Output,
    ) {
        if group.is(GroupState::CompletingRebalance) {
            // Members waiting for their assignment must rejoin.
            for m in group.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(r) = m.awaiting_sync.take() {
                    out.replies.push((
                        r,
                        Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                    ));
                }
            }
        }
        group.pending_sync.clear();
        out.timers.push((
            TimerKey::Sync {
                group_id: group.group_id.clone(),
                generation_id: group.generation_id,
            },
            None,
        ));
        let rebalance_timeout = group.max_rebalance_timeout_ms();
        let from_empty = group.is(GroupState::Empty);
        group.transition_to(GroupState::PreparingRebalance, now_ms);
        group.rebalance_started_ms.get_or_insert(now_ms);
        let join_key = TimerKey::Join {
            group_id: group.group_id.clone(),
        };
        if from_empty && config.initial_rebalance_delay_ms > 0 {
            let delay = config.initial_rebalance_delay_ms.min(rebalance_timeout);
            group.initial_delay_remaining_ms = Some(rebalance_timeout - delay);
            group.new_member_added = false;
            out.timers.push((join_key, Some(now_ms + delay)));
        } else {
            group.initial_delay_remaining_ms = None;
            out.timers
                .push((join_key, Some(now_ms + rebalance_timeout)));
            Self::maybe_complete_join(group, now_ms, out);
        }
    }

    fn maybe_complete_join(group: &mut Group, now_ms: i64, out: &mut Output) {
        if group.is(GroupState::PreparingRebalance)
            && group.initial_delay_remaining_ms.is_none()
            && group.all_members_joined()
        {
            Self::complete_join(group, now_ms, out);
        }
    }

    /// Ends the join phase: drops members that did not rejoin, starts the next generation and
    /// answers every parked JoinGroup (the leader gets the member list).
    fn complete_join(group: &mut Group, now_ms: i64, out: &mut Output) {
        out.timers.push((
            TimerKey::Join {
                group_id: group.group_id.clone(),
            },
            None,
        ));
        group.initial_delay_remaining_ms = None;
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            Self::remove_member_only(group, &id, out);
        }
        for id in std::mem::take(&mut group.pending_members) {
            out.timers.push((session_key(&group.group_id, &id), None));
        }
        group.generation_id += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            // An empty group keeps its protocol type only while it still has offsets.
            if group.offsets.is_empty() {
                group.protocol_type = None;
            }
            group.leader_id = None;
            group.transition_to(GroupState::Empty, now_ms);
            out.records.push(group.metadata_record());
            return;
        }
        group.protocol_name = group.select_protocol();
        if group
            .leader_id
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader_id = group.sorted_members().first().map(|m| m.member_id.clone());
        }
        group.transition_to(GroupState::CompletingRebalance, now_ms);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let leader = group.leader_id.clone().unwrap_or_default();
        let all = Self::join_members(group, &protocol);
        let mut max_rebalance = 0i64;
        for m in group.members.values_mut() {
            m.is_new = false;
            max_rebalance = max_rebalance.max(i64::from(m.rebalance_timeout_ms));
            let Some(r) = m.awaiting_join.take() else {
                continue;
            };
            let resp = JoinResponse {
                error: None,
                generation_id: group.generation_id,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                leader: leader.clone(),
                member_id: m.member_id.clone(),
                members: if m.member_id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
            };
            out.replies.push((r, Reply::Join(resp)));
            out.timers.push((
                session_key(&group.group_id, &m.member_id),
                Some(now_ms + i64::from(m.session_timeout_ms)),
            ));
        }
        group.pending_sync = group.members.keys().cloned().collect();
        out.timers.push((
            TimerKey::Sync {
                group_id: group.group_id.clone(),
                generation_id: group.generation_id,
            },
            Some(now_ms + max_rebalance),
        ));
    }

    /// Removes a member without starting a rebalance; answers its parked requests.
    fn remove_member_only(group: &mut Group, member_id: &str, out: &mut Output) {
        out.timers
            .push((session_key(&group.group_id, member_id), None));
        let Some(mut m) = group.members.remove(member_id) else {
            return;
        };
        if let Some(iid) = &m.group_instance_id {
            if group.static_members.get(iid).map(String::as_str) == Some(member_id) {
                group.static_members.remove(iid);
            }
        }
        group.pending_sync.remove(member_id);
        m.fail_parked(GroupError::UnknownMemberId, out);
        if group.leader_id.as_deref() == Some(member_id) {
            group.leader_id = None;
        }
    }

    /// Removes a member and rebalances the rest (LeaveGroup, session expiry).
    fn remove_member_and_rebalance(
        group: &mut Group,
        member_id: &str,
        now_ms: i64,
        config: &CoordinatorConfig,
        out: &mut Output,
    ) {
        Self::remove_member_only(group, member_id, out);
        match group.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::PreparingRebalance => Self::maybe_complete_join(group, now_ms, out),
            GroupState::Stable | GroupState::CompletingRebalance => {
                Self::prepare_rebalance(group, now_ms, config, out)
            }
        }
    }

    // ----- SyncGroup -----------------------------------------------------------------------

    /// Handles SyncGroup; the reply may come later (followers wait for the leader).
    pub fn sync(&mut self, req_id: RequestId, req: SyncRequest, now_ms: i64) -> Output {
        let mut out = Output::default();
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            out.replies.push((
                req_id,
                Reply::Sync(SyncResponse::error(GroupError::UnknownMemberId)),
            ));
            return out;
        };
        if let Some(c) = group.consumer.as_ref().filter(|c| !c.is_empty()) {
            let resp = c.classic_sync(
                &req.group_id,
                &req.member_id,
                req.generation_id,
                req.protocol_type.as_deref(),
                req.protocol_name.as_deref(),
                now_ms,
                &mut out,
            );
            out.replies.push((req_id, Reply::Sync(resp)));
            return out;
        }
        let err = if group.is(GroupState::Dead) {
            Some(GroupError::CoordinatorNotAvailable)
        } else if let Some(e) =
            Self::check_member(group, &req.member_id, req.group_instance_id.as_deref())
        {
            Some(e)
        } else if req.generation_id != group.generation_id {
            Some(GroupError::IllegalGeneration)
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|p| Some(p) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != group.protocol_name.as_ref())
        {
            Some(GroupError::InconsistentGroupProtocol)
        } else {
            match group.state {
                GroupState::Empty => Some(GroupError::UnknownMemberId),
                GroupState::PreparingRebalance => Some(GroupError::RebalanceInProgress),
                _ => None,
            }
        };
        if let Some(e) = err {
            out.replies
                .push((req_id, Reply::Sync(SyncResponse::error(e))));
            return out;
        }
        group.pending_sync.remove(&req.member_id);
        if let Some(m) = group.members.get(&req.member_id) {
            out.timers.push((
                session_key(&group.group_id, &req.member_id),
                Some(now_ms + i64::from(m.session_timeout_ms)),
            ));
        }
        if group.is(GroupState::Stable) {
            let assignment = group
                .members
                .get(&req.member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            out.replies.push((
                req_id,
                Reply::Sync(SyncResponse {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment,
                }),
            ));
            return out;
        }
        // CompletingRebalance
        if let Some(m) = group.members.get_mut(&req.member_id) {
            if let Some(old) = m.awaiting_sync.replace(req_id) {
                out.replies.push((
                    old,
                    Reply::Sync(SyncResponse::error(GroupError::RebalanceInProgress)),
                ));
            }
        }
        if group.leader_id.as_deref() == Some(req.member_id.as_str()) {
            let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
            for m in group.members.values_mut() {
                m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
            }
            group.transition_to(GroupState::Stable, now_ms);
            if let Some(t) = group.rebalance_started_ms.take() {
                out.rebalances.push(RebalanceEvent {
                    group_id: group.group_id.clone(),
                    protocol: "classic",
                    duration_ms: now_ms - t,
                });
            }
            out.records.push(group.metadata_record());
            for m in group.members.values_mut() {
                if let Some(r) = m.awaiting_sync.take() {
                    out.replies.push((
                        r,
                        Reply::Sync(SyncResponse {
                            error: None,
                            protocol_type: group.protocol_type.clone(),
                            protocol_name: group.protocol_name.clone(),
                            assignment: m.assignment.clone(),
                        }),
                    ));
                }
            }
        }
        out
    }

    // ----- Heartbeat / LeaveGroup ----------------------------------------------------------

    /// Handles Heartbeat: `Ok` keeps the member alive; `REBALANCE_IN_PROGRESS` tells it to
    /// rejoin. Errors: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION,
    /// COORDINATOR_NOT_AVAILABLE.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> (Option<GroupError>, Output) {
        let mut out = Output::default();
        let Some(group) = self.groups.get_mut(group_id) else {
            return (Some(GroupError::UnknownMemberId), out);
        };
        if group.is(GroupState::Dead) {
            return (Some(GroupError::CoordinatorNotAvailable), out);
        }
        if let Some(c) = group.consumer.as_ref().filter(|c| !c.is_empty()) {
            let err = c.classic_heartbeat(group_id, member_id, generation_id, now_ms, &mut out);
            return (err, out);
        }
        if let Some(e) = Self::check_member(group, member_id, group_instance_id) {
            return (Some(e), out);
        }
        if generation_id != group.generation_id && !group.is(GroupState::PreparingRebalance) {
            return (Some(GroupError::IllegalGeneration), out);
        }
        if let Some(m) = group.members.get(member_id) {
            if m.awaiting_join.is_none() {
                out.timers.push((
                    session_key(group_id, member_id),
                    Some(now_ms + i64::from(m.session_timeout_ms)),
                ));
            }
        }
        let err = match group.state {
            GroupState::PreparingRebalance => Some(GroupError::RebalanceInProgress),
            GroupState::Empty => Some(GroupError::UnknownMemberId),
            _ => None,
        };
        (err, out)
    }

    /// Handles LeaveGroup for each `(member_id, group_instance_id)`; returns a per-member
    /// error. A static member may leave by instance id alone (KIP-345).
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Vec<Option<GroupError>>, Output) {
        let mut out = Output::default();
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(group_id) else {
            return (
                members
                    .iter()
                    .map(|_| Some(GroupError::UnknownMemberId))
                    .collect(),
                out,
            );
        };
        if let Some(c) = group.consumer.as_mut().filter(|c| !c.is_empty()) {
            let errors = members
                .iter()
                .map(|(member_id, _)| {
                    if c.has_classic_member(member_id) {
                        c.remove_member(group_id, member_id, &config.consumer, &mut out);
                        None
                    } else {
                        Some(GroupError::UnknownMemberId)
                    }
                })
                .collect();
            c.write_records(group_id, &mut out);
            c.track_rebalance(group_id, now_ms, &mut out);
            Self::maybe_downgrade(group, &config, now_ms, &mut out);
            return (errors, out);
        }
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let resolved = match instance_id {
                Some(iid) => match group.static_members.get(iid) {
                    Some(current) if member_id.is_empty() || current == member_id => {
                        Ok(current.clone())
                    }
                    Some(_) => Err(GroupError::FencedInstanceId),
                    None => Err(GroupError::UnknownMemberId),
                },
                None => Ok(member_id.clone()),
            };
            match resolved {
                Err(e) => errors.push(Some(e)),
                Ok(id) if group.pending_members.remove(&id) => {
                    out.timers.push((session_key(group_id, &id), None));
                    Self::maybe_complete_join(group, now_ms, &mut out);
                    errors.push(None);
                }
                Ok(id) if group.members.contains_key(&id) => {
                    Self::remove_member_and_rebalance(group, &id, now_ms, &config, &mut out);
                    errors.push(None);
                }
                Ok(_) => errors.push(Some(GroupError::UnknownMemberId)),
            }
        }
        (errors, out)
    }

    // ----- timers --------------------------------------------------------------------------

    /// Fires a timer the caller scheduled from an earlier [`Output`].
    pub fn on_timer(&mut self, key: &TimerKey, now_ms: i64) -> Output {
        let mut out = Output::default();
        let config = self.config.clone();
        match key {
            TimerKey::Session {
                group_id,
                member_id,
            } => {
                let Some(group) = self.groups.get_mut(group_id) else {
                    return out;
                };
                if group.pending_members.remove(member_id) {
                    Self::maybe_complete_join(group, now_ms, &mut out);
                    return out;
                }
                let Some(m) = group.members.get(member_id) else {
                    return out;
                };
                if m.awaiting_join.is_some() || m.awaiting_sync.is_some() {
                    // Parked in JoinGroup/SyncGroup counts as alive (Kafka's
                    // `hasSatisfiedHeartbeat`); the rebalance timeout governs it. Re-arm.
                    let deadline = now_ms + i64::from(m.session_timeout_ms);
                    out.timers.push((key.clone(), Some(deadline)));
                    return out;
                }
                Self::remove_member_and_rebalance(group, member_id, now_ms, &config, &mut out);
            }
            TimerKey::ConsumerSession {
                group_id,
                member_id,
            }
            | TimerKey::ConsumerRebalance {
                group_id,
                member_id,
            } => {
                let revocation = matches!(key, TimerKey::ConsumerRebalance { .. });
                let Some(group) = self.groups.get_mut(group_id) else {
                    return out;
                };
                let Some(c) = group.consumer.as_mut() else {
                    return out;
                };
                if c.on_timer(group_id, member_id, revocation, &config.consumer, &mut out)
                    && c.is_empty()
                {
                    group.state_timestamp_ms = now_ms;
                }
                c.write_records(group_id, &mut out);
                c.track_rebalance(group_id, now_ms, &mut out);
                Self::maybe_downgrade(group, &config, now_ms, &mut out);
            }
            TimerKey::Join { group_id } => {
                let Some(group) = self.groups.get_mut(group_id) else {
                    return out;
                };
                if !group.is(GroupState::PreparingRebalance) {
                    return out;
                }
                if let Some(remaining) = group.initial_delay_remaining_ms {
                    if group.new_member_added && remaining > 0 {
                        let delay = config.initial_rebalance_delay_ms.min(remaining);
                        group.initial_delay_remaining_ms = Some(remaining - delay);
                        group.new_member_added = false;
                        out.timers.push((key.clone(), Some(now_ms + delay)));
                        return out;
                    }
                }
                Self::complete_join(group, now_ms, &mut out);
            }
            TimerKey::Sync {
                group_id,
                generation_id,
            } => {
                let Some(group) = self.groups.get_mut(group_id) else {
                    return out;
                };
                if group.generation_id != *generation_id
                    || !(group.is(GroupState::CompletingRebalance) || group.is(GroupState::Stable))
                    || group.pending_sync.is_empty()
                {
                    return out;
                }
                // Members that never sent SyncGroup are removed (Kafka's pending-sync timeout).
                let laggards: Vec<String> = group.pending_sync.drain().collect();
                for id in &laggards {
                    Self::remove_member_only(group, id, &mut out);
                }
                if group.is(GroupState::Stable) || group.is(GroupState::CompletingRebalance) {
                    Self::prepare_rebalance(group, now_ms, &config, &mut out);
                }
            }
        }
        out
    }

    // ----- offsets -------------------------------------------------------------------------

    /// Handles OffsetCommit; returns one result per partition, in request order.
    /// Errors (for every partition): INVALID_GROUP_ID, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
    /// ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE; per partition:
    /// OFFSET_METADATA_TOO_LARGE.
    pub fn commit(&mut self, req: CommitRequest, now_ms: i64) -> (Vec<Option<GroupError>>, Output) {
        let mut out = Output::default();
        let n = req.partitions.len();
        let fail = |e| (vec![Some(e); n], Output::default());
        if req.group_id.is_empty() {
            return fail(GroupError::InvalidGroupId);
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A generation of a group that does not exist: Kafka rejects the commit
                // without creating the group.
                return fail(GroupError::IllegalGeneration);
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return fail(GroupError::CoordinatorNotAvailable);
        };
        if group.is(GroupState::Dead) {
            return fail(GroupError::CoordinatorNotAvailable);
        }
        if let Some(c) = &group.consumer {
            if let Some(e) = c.validate_commit(&req.member_id, req.generation_id, req.api_version) {
                return fail(e);
            }
        } else if req.generation_id < 0 && group.is(GroupState::Empty) {
            // Commit from a consumer using manual assignment (no group membership).
        } else {
            if let Some(e) =
                Self::check_member(group, &req.member_id, req.group_instance_id.as_deref())
            {
                return fail(e);
            }
            if req.generation_id != group.generation_id {
                return fail(GroupError::IllegalGeneration);
            }
            if group.is(GroupState::CompletingRebalance) {
                return fail(GroupError::RebalanceInProgress);
            }
            if let Some(m) = group.members.get(&req.member_id) {
                if m.awaiting_join.is_none() {
                    out.timers.push((
                        session_key(&req.group_id, &req.member_id),
                        Some(now_ms + i64::from(m.session_timeout_ms)),
                    ));
                }
            }
        }
        let mut errors = Vec::with_capacity(n);
        for p in req.partitions {
            let metadata = p.metadata.unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(Some(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            out.records.push(Record::OffsetCommit {
                group_id: req.group_id.clone(),
                topic: p.topic,
                partition: p.partition,
                value: Some(OffsetAndMetadata {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                }),
            });
            errors.push(None);
        }
        for r in &out.records {
            self.replay(r, now_ms);
        }
        (errors, out)
    }

    /// Committed offsets of a group: for the listed `(topic, partition)`s, or all when `None`.
    /// A partition with no committed offset is returned with `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<((String, i32), Option<OffsetAndMetadata>)> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(list) => list
                .iter()
                .map(|tp| (tp.clone(), group.and_then(|g| g.offsets.get(tp).cloned())))
                .collect(),
            None => {
                let mut all: Vec<_> = group
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|(k, v)| (k.clone(), Some(v.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a: &((String, i32), _), b| a.0.cmp(&b.0));
                all
            }
        }
    }

    /// OffsetDelete: removes committed offsets of an empty group, or of topics the group does
    /// not subscribe to. Errors: GROUP_ID_NOT_FOUND (whole request), GROUP_SUBSCRIBED_TO_TOPIC
    /// (per partition).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<(Vec<Option<GroupError>>, Output), GroupError> {
        let mut out = Output::default();
        let Some(group) = self.groups.get(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        if group.is(GroupState::Dead) {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed: HashSet<String> = if group.has_no_members() {
            HashSet::new()
        } else if let Some(c) = &group.consumer {
            c.subscribed_topic_names().into_iter().collect()
        } else if group.protocol_type.as_deref() == Some("consumer") {
            let protocol = group.protocol_name.clone().unwrap_or_default();
            group
                .members
                .values()
                .filter_map(|m| {
                    crate::consumer_protocol::subscribed_topics(&m.metadata_for(&protocol))
                })
                .flatten()
                .collect()
        } else {
            return Err(GroupError::NonEmptyGroup);
        };
        let mut errors = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                errors.push(Some(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.contains_key(&(topic.clone(), *partition)) {
                out.records.push(Record::OffsetCommit {
                    group_id: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                });
            }
            errors.push(None);
        }
        for r in &out.records {
            self.replay(r, now_ms);
        }
        Ok((errors, out))
    }

    /// DeleteGroups for one group. Errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP.
    pub fn delete_group(&mut self, group_id: &str, now_ms: i64) -> Result<Output, GroupError> {
        let mut out = Output::default();
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        if group.is(GroupState::Dead) {
            return Err(GroupError::GroupIdNotFound);
        }
        if !group.has_no_members() {
            return Err(GroupError::NonEmptyGroup);
        }
        Self::tombstone_group(group, now_ms, &mut out);
        self.groups.remove(group_id);
        Ok(out)
    }

    fn tombstone_group(group: &mut Group, now_ms: i64, out: &mut Output) {
        if let Some(c) = group.consumer.as_mut() {
            c.tombstones(&group.group_id, out);
        }
        let mut keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
        keys.sort();
        for (topic, partition) in keys {
            out.records.push(Record::OffsetCommit {
                group_id: group.group_id.clone(),
                topic,
                partition,
                value: None,
            });
        }
        out.records.push(Record::GroupMetadata {
            group_id: group.group_id.clone(),
            value: None,
        });
        group.offsets.clear();
        group.transition_to(GroupState::Dead, now_ms);
    }

    /// Offset retention (KIP-211): a group that has been `Empty` for `offsets.retention.ms`
    /// loses its committed offsets and is removed. Groups with members are never expired.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Output {
        self.expire_empty_groups(now_ms)
    }

    /// A topic was deleted: every group's committed offsets for it are removed (tombstones),
    /// as Kafka does, so a re-created topic of the same name starts without stale positions.
    pub fn delete_topic_offsets(&mut self, topic: &str, now_ms: i64) -> Output {
        let mut out = Output::default();
        let mut groups: Vec<&Group> = self.groups.values().collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        for g in groups {
            let mut parts: Vec<i32> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .map(|(_, p)| *p)
                .collect();
            parts.sort_unstable();
            for partition in parts {
                out.records.push(Record::OffsetCommit {
                    group_id: g.group_id.clone(),
                    topic: topic.to_string(),
                    partition,
                    value: None,
                });
            }
        }
        for r in &out.records {
            self.replay(r, now_ms);
        }
        out
    }

    fn expire_empty_groups(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        let retention = self.config.offsets_retention_ms;
        let expired: Vec<String> = self
            .groups
            .values()
            .filter(|g| {
                !g.is(GroupState::Dead)
                    && g.has_no_members()
                    && now_ms - g.state_timestamp_ms >= retention
            })
            .map(|g| g.group_id.clone())
            .collect();
        for id in expired {
            if let Some(g) = self.groups.get_mut(&id) {
                Self::tombstone_group(g, now_ms, &mut out);
            }
            self.groups.remove(&id);
        }
        out
    }

    // ----- consumer protocol (KIP-848) -----------------------------------------------------

    /// Handles ConsumerGroupHeartbeat (see [`crate::consumer`]). The group is created on a
    /// join (epoch 0); an empty classic group becomes a consumer group, keeping its offsets.
    /// Errors (in the response): INVALID_GROUP_ID, INVALID_REQUEST (a new member with no
    /// subscription), GROUP_ID_NOT_FOUND (a
    /// classic group with members), UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH,
    /// UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID, UNSUPPORTED_ASSIGNOR,
    /// GROUP_MAX_SIZE_REACHED, INVALID_REGULAR_EXPRESSION.
    pub fn consumer_heartbeat(
        &mut self,
        req: HeartbeatRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> (HeartbeatResponse, Output) {
        let mut out = Output::default();
        if req.group_id.is_empty() {
            return (
                HeartbeatResponse::error(GroupError::InvalidGroupId, "GroupId can't be empty"),
                out,
            );
        }
        // Kafka answers INVALID_REQUEST to a join (epoch 0) without RebalanceTimeoutMs or with
        // a null TopicPartitions. Shoal accepts both (the member keeps its previous rebalance
        // timeout, or gets `max.poll.interval.ms`'s default): librdkafka 2.12 sends such a
        // join when it rejoins within a millisecond of leaving, and treats INVALID_REQUEST as
        // fatal (docs/compatibility.md).
        let joining = req.member_epoch == 0;
        if !self.groups.contains_key(&req.group_id) {
            if !joining {
                return (
                    HeartbeatResponse::error(
                        GroupError::UnknownMemberId,
                        format!("group {} has no member {}", req.group_id, req.member_id),
                    ),
                    out,
                );
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let new_id = self.new_member_id("consumer");
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return (
                HeartbeatResponse::error(GroupError::CoordinatorNotAvailable, "no group"),
                out,
            );
        };
        if group.is(GroupState::Dead) {
            return (
                HeartbeatResponse::error(GroupError::CoordinatorNotAvailable, "group is dead"),
                out,
            );
        }
        let upgradable = config.consumer.migration_policy.allows_upgrade()
            && joining
            && group.protocol_type.as_deref() == Some("consumer")
            && !group.is(GroupState::Empty)
            && group.members.len() < config.consumer.max_size;
        if group.consumer.is_none() && upgradable {
            Self::upgrade_to_consumer_group(group, catalog, &config, now_ms, &mut out);
        }
        if group.consumer.is_none() {
            if !group.is(GroupState::Empty) {
                return (
                    HeartbeatResponse::error(
                        GroupError::GroupIdNotFound,
                        format!("group {} is not a consumer group", req.group_id),
                    ),
                    out,
                );
            }
            if !joining {
                return (
                    HeartbeatResponse::error(
                        GroupError::UnknownMemberId,
                        format!("group {} has no member {}", req.group_id, req.member_id),
                    ),
                    out,
                );
            }
            group.consumer = Some(ConsumerGroup::default());
            group.protocol_type = Some("consumer".to_string());
        }
        let Some(c) = group.consumer.as_mut() else {
            return (
                HeartbeatResponse::error(GroupError::CoordinatorNotAvailable, "no group"),
                out,
            );
        };
        let was_empty = c.is_empty();
        let group_id = req.group_id.clone();
        let leaving = req.member_epoch < 0;
        let resp = c.heartbeat(req, || new_id, catalog, &config.consumer, now_ms, &mut out);
        c.write_records(&group_id, &mut out);
        c.track_rebalance(&group_id, now_ms, &mut out);
        if c.is_empty() != was_empty {
            group.state_timestamp_ms = now_ms;
        }
        if leaving {
            Self::maybe_downgrade(group, &config, now_ms, &mut out);
        }
        (resp, out)
    }

    /// ConsumerGroupDescribe for one group. Errors: GROUP_ID_NOT_FOUND (unknown group, or a
    /// classic group with members: "not a consumer group").
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        let g = self
            .groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead))
            .ok_or(GroupError::GroupIdNotFound)?;
        match &g.consumer {
            Some(c) => Ok(c.describe(group_id)),
            None if g.is(GroupState::Empty) => Ok(ConsumerGroup::default().describe(group_id)),
            None => Err(GroupError::GroupIdNotFound),
        }
    }

    /// OffsetFetch v9+ checks a consumer-protocol member's id and epoch (KIP-848); `None`
    /// when the fetch may proceed. Errors: UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<GroupError> {
        self.groups
            .get(group_id)
            .and_then(|g| g.consumer.as_ref())
            .and_then(|c| c.validate_fetch(member_id, member_epoch))
    }

    /// Each consumer-protocol member's current assignment (for tests and the admin API).
    pub fn consumer_assignments(
        &self,
        group_id: &str,
    ) -> BTreeMap<String, crate::assignor::TopicPartitions> {
        self.groups
            .get(group_id)
            .and_then(|g| g.consumer.as_ref())
            .map(ConsumerGroup::assignments)
            .unwrap_or_default()
    }

    // ----- describe ------------------------------------------------------------------------

    /// DescribeGroups for one group; an unknown group is reported `Dead` with no members, as
    /// Kafka does. Member metadata and assignment are included only in `Stable`.
    /// Errors: GROUP_ID_NOT_FOUND for a consumer-protocol group (as Kafka: "not a classic
    /// group"; use ConsumerGroupDescribe).
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
        {
            return Err(GroupError::GroupIdNotFound);
        }
        Ok(self.describe_classic(group_id))
    }

    fn describe_classic(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                generation_id: -1,
                members: Vec::new(),
            };
        };
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let stable = g.is(GroupState::Stable);
        GroupDescription {
            group_id: g.group_id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation_id: g.generation_id,
            members: g
                .sorted_members()
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// ListGroups: every group that is not `Dead`.
    pub fn list(&self) -> Vec<GroupListing> {
        let mut v: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| match &g.consumer {
                Some(c) => GroupListing {
                    group_id: g.group_id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: c.state().as_str(),
                    group_type: "consumer",
                },
                None => GroupListing {
                    group_id: g.group_id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.as_str(),
                    group_type: "classic",
                },
            })
            .collect();
        v.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        v
    }

    /// The state of a group, if it exists.
    pub fn state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }
}
