//! Classic-protocol members of a consumer group (online migration, Kafka 4.x): a member that
//! speaks JoinGroup/SyncGroup/Heartbeat inside a KIP-848 group, after Kafka's
//! `classicGroupJoinToConsumerGroup`, `classicGroupSyncToConsumerGroup` and
//! `classicGroupHeartbeatToConsumerGroup`; and the conversion of a classic group's members
//! into a consumer group and back ([`ClassicSeed`]).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::partitions::from_pairs;
use super::records::session_key;
use super::{ConsumerGroup, ConsumerMember};
use crate::api::{JoinRequest, JoinResponse, SyncResponse, TopicCatalog};
use crate::assignor::TopicPartitions;
use crate::config::ConsumerGroupConfig;
use crate::consumer_protocol;
use crate::error::GroupError;
use crate::records::{ClassicMemberMetadata, ConsumerRecord};
use crate::state::MemberState;
use crate::types::{Output, RemovalReason};

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

impl ConsumerGroup {
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
        let mut g = ConsumerGroup::new(now_ms);
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
            m.classic = Some(ClassicMemberMetadata {
                session_timeout_ms: seed.session_timeout_ms,
                protocols: seed.protocols,
            });
            let assigned = Self::by_id(
                consumer_protocol::assigned_partitions(&seed.assignment).unwrap_or_default(),
                catalog,
            );
            g.write_member_metadata(group_id, &m, out);
            g.write_target(group_id, &m.member_id, &assigned, out);
            m.assigned = assigned;
            m.member_epoch = generation_id;
            m.previous_member_epoch = generation_id;
            g.apply(
                ConsumerRecord::CurrentAssignment {
                    group_id: group_id.to_string(),
                    member_id: m.member_id.clone(),
                    value: Some(m.current().value()),
                },
                out,
            );
            out.set_timer(
                session_key(group_id, &m.member_id),
                now_ms + i64::from(m.session_timeout_ms(cfg)),
            );
        }
        g.write_subscribed_topics(group_id, catalog, out);
        g.write_group_epoch(group_id, generation_id, out);
        g.apply(
            ConsumerRecord::AssignmentEpoch {
                group_id: group_id.to_string(),
                assignment_epoch: Some(generation_id),
            },
            out,
        );
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
                    self.remove_member(group_id, &old, RemovalReason::FencedStaticMember, cfg, out);
                }
            }
        }
        let is_new = !self.members.contains_key(&member_id);
        if is_new && self.members.len() >= cfg.max_size {
            return fail(GroupError::GroupMaxSizeReached);
        }
        let mut m = self
            .members
            .get(&member_id)
            .cloned()
            .unwrap_or_else(|| ConsumerMember::new(member_id.clone()));
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
        self.update_member(group_id, &m, changed, catalog, cfg, out);
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
}
