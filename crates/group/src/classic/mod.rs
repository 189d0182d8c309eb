//! Classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), after Kafka's
//! `ClassicGroup` and the classic half of `GroupMetadataManager`, as a sans-IO state machine.
//!
//! A [`ClassicGroup`] keeps Kafka's own model for classic groups: members, generation and
//! parked requests are soft state changed in place, and a `GroupMetadata` record is written
//! when a generation completes (join phase ends, leader's assignment stored), which is what a
//! restarted coordinator replays. States and their legal moves: [`GroupState`]; every move
//! goes through [`ClassicGroup::transition_to`], which refuses an illegal one with an error.
//!
//! - [`join`]: JoinGroup, the join phase, the initial delayed join, static members (KIP-345),
//!   `MEMBER_ID_REQUIRED` (KIP-394).
//! - [`sync`]: SyncGroup, the leader's assignment.
//! - [`heartbeat`]: Heartbeat, LeaveGroup, member removal and the classic timers.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

pub use crate::api::{
    CommitPartition, CommitRequest, GroupDescription, GroupListing, JoinMember, JoinRequest,
    JoinResponse, MemberDescription, SyncRequest, SyncResponse,
};
pub use crate::config::CoordinatorConfig;
pub use crate::state::GroupState;
pub use crate::types::{Output, RebalanceEvent, Reply, RequestId, TimerKey};

use crate::error::GroupError;
use crate::records::{GroupMetadataValue, MemberRecord, Record};
use crate::types::{GroupEvent, RemovalReason};

pub(crate) mod heartbeat;
pub(crate) mod join;
pub(crate) mod sync;

/// What every classic operation needs besides the group: settings, the time, where to put
/// replies, records, timers and events, and whether the group still has committed offsets
/// (an empty group keeps its protocol type only while it does).
pub(crate) struct ClassicCtx<'a> {
    pub(crate) config: &'a CoordinatorConfig,
    pub(crate) now_ms: i64,
    pub(crate) out: &'a mut Output,
    pub(crate) has_offsets: bool,
}

/// One member of a classic group.
#[derive(Debug, Clone)]
pub(crate) struct ClassicMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    /// JoinGroup protocols `(name, metadata)`, in the member's order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// Join order; the leader is the earliest-joined member.
    pub(crate) join_seq: u64,
    pub(crate) awaiting_join: Option<RequestId>,
    pub(crate) awaiting_sync: Option<RequestId>,
    /// Joined in the current rebalance for the first time (Kafka's `isNew`): governed by the
    /// new-member join timeout until its JoinGroup is answered.
    pub(crate) is_new: bool,
}

impl ClassicMember {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Answers the member's parked JoinGroup/SyncGroup (if any) with `error`.
    pub(crate) fn fail_parked(&mut self, error: GroupError, out: &mut Output) {
        if let Some(r) = self.awaiting_join.take() {
            out.replies
                .push((r, Reply::Join(JoinResponse::error(error, &self.member_id))));
        }
        if let Some(r) = self.awaiting_sync.take() {
            out.replies
                .push((r, Reply::Sync(SyncResponse::error(error))));
        }
    }

    pub(crate) fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols.as_slice() == protocols
    }
}

/// A classic group: Kafka's `ClassicGroup`.
#[derive(Debug)]
pub(crate) struct ClassicGroup {
    pub(crate) group_id: String,
    state: GroupState,
    pub(crate) state_timestamp_ms: i64,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) generation_id: i32,
    pub(crate) leader_id: Option<String>,
    pub(crate) members: BTreeMap<String, ClassicMember>,
    /// Member ids handed out by `MEMBER_ID_REQUIRED` and not yet used to join (KIP-394).
    pub(crate) pending_members: HashSet<String>,
    /// `group.instance.id` -> member id (KIP-345).
    pub(crate) static_members: HashMap<String, String>,
    /// Members that got a JoinGroup reply in this generation and have not yet synced.
    pub(crate) pending_sync: HashSet<String>,
    /// Remaining time of the initial delayed join, when the rebalance started from `Empty`.
    pub(crate) initial_delay_remaining_ms: Option<i64>,
    /// The delay of the initial delayed join's current step.
    pub(crate) initial_delay_ms: i64,
    pub(crate) new_member_added: bool,
    /// When the current rebalance started, for [`RebalanceEvent`].
    pub(crate) rebalance_started_ms: Option<i64>,
    /// The value of the last `GroupMetadata` record written (or replayed) for this group:
    /// what a restarted coordinator would load.
    pub(crate) last_written: Option<GroupMetadataValue>,
}

pub(crate) fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::Session {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

pub(crate) fn join_key(group_id: &str) -> TimerKey {
    TimerKey::Join {
        group_id: group_id.to_string(),
    }
}

impl ClassicGroup {
    /// A new, `Empty` group.
    pub(crate) fn new(group_id: &str, now_ms: i64) -> Self {
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
            initial_delay_ms: 0,
            new_member_added: false,
            rebalance_started_ms: None,
            last_written: None,
        }
    }

    /// The group as a `GroupMetadata` record left it: `Stable` with its members, or `Empty`
    /// (Kafka's `ClassicGroup.fromRecord`).
    pub(crate) fn from_record(group_id: &str, v: &GroupMetadataValue, now_ms: i64) -> Self {
        let mut g = Self::new(group_id, now_ms);
        g.protocol_type = Some(v.protocol_type.clone()).filter(|s| !s.is_empty());
        g.generation_id = v.generation_id;
        g.protocol_name = v.protocol_name.clone();
        g.leader_id = v.leader.clone();
        if v.current_state_timestamp_ms > 0 {
            g.state_timestamp_ms = v.current_state_timestamp_ms;
        }
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
                ClassicMember {
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
        if !g.members.is_empty() {
            g.state = GroupState::Stable;
        }
        g.last_written = Some(v.clone());
        g
    }

    /// A group built from a consumer group's members starts `Stable` at the consumer group's
    /// epoch (Kafka's `ClassicGroup.fromConsumerGroup`): a new group, not a transition.
    pub(crate) fn start_stable(&mut self, now_ms: i64) {
        if self.is(GroupState::Empty) && !self.members.is_empty() {
            self.state = GroupState::Stable;
            self.state_timestamp_ms = now_ms;
        }
    }

    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    pub(crate) fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    /// Moves the group to `next`. Errors: UNKNOWN_SERVER_ERROR (as Kafka's
    /// `IllegalStateException`) for a move [`GroupState::can_transition_to`] does not allow;
    /// the group is then left in its current state.
    pub(crate) fn transition_to(
        &mut self,
        next: GroupState,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if !self.state.can_transition_to(next) {
            return Err(GroupError::IllegalStateTransition {
                from: self.state,
                to: next,
            });
        }
        self.state = next;
        self.state_timestamp_ms = now_ms;
        if matches!(next, GroupState::Empty | GroupState::Dead) {
            self.rebalance_started_ms = None;
        }
        Ok(())
    }

    pub(crate) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    pub(crate) fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Protocols every member supports, voted by each member's first choice among them.
    pub(crate) fn select_protocol(&self) -> Option<String> {
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
    pub(crate) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
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

    /// Writes the group's `GroupMetadata` record (Kafka writes it when a generation
    /// completes and when the leader's assignment is stored) and remembers it as written.
    pub(crate) fn write_metadata(&mut self, out: &mut Output) {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let value = GroupMetadataValue {
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
        };
        self.last_written = Some(value.clone());
        out.records.push(Record::GroupMetadata {
            group_id: self.group_id.clone(),
            value: Some(value),
        });
    }

    pub(crate) fn sorted_members(&self) -> Vec<&ClassicMember> {
        let mut v: Vec<&ClassicMember> = self.members.values().collect();
        v.sort_by_key(|m| m.join_seq);
        v
    }

    /// UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID checks shared by every member request.
    pub(crate) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<GroupError> {
        if let Some(iid) = instance_id {
            match self.static_members.get(iid) {
                Some(current) if current != member_id => return Some(GroupError::FencedInstanceId),
                None if !member_id.is_empty() && !self.members.contains_key(member_id) => {
                    return Some(GroupError::UnknownMemberId)
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(GroupError::UnknownMemberId);
        }
        None
    }

    /// Notes a member's removal for the operator's log.
    pub(crate) fn removed_event(&self, member_id: &str, reason: RemovalReason, out: &mut Output) {
        out.events.push(GroupEvent::MemberRemoved {
            group_id: self.group_id.clone(),
            member_id: member_id.to_string(),
            reason,
            generation_id: self.generation_id,
        });
    }

    /// DescribeGroups: member metadata and assignment are included only in `Stable`.
    pub(crate) fn describe(&self) -> GroupDescription {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let stable = self.is(GroupState::Stable);
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation_id: self.generation_id,
            members: self
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

    /// Topics the members' consumer Subscriptions name (for OffsetDelete); `None` when the
    /// group's protocol type is not `consumer`, so its subscriptions cannot be read.
    pub(crate) fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        Some(
            self.members
                .values()
                .filter_map(|m| {
                    crate::consumer_protocol::subscribed_topics(&m.metadata_for(&protocol))
                })
                .flatten()
                .collect(),
        )
    }
}
