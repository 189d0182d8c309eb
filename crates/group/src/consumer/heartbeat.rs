//! ConsumerGroupHeartbeat for one group (Kafka's `consumerGroupHeartbeat`): join (epoch 0),
//! leave (epoch -1, or -2 for a static member leaving for a while), and the steady heartbeat
//! that carries subscription changes and owned partitions. Each step writes the records of
//! what it changed, in Kafka's order: member metadata, subscribed topics' metadata, group
//! epoch, target assignment and assignment epoch, current assignment.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::member::compile_regex;
use super::partitions::{is_subset, normalize};
use super::reconciliation::fresh_assignment;
use super::records::{rebalance_key, session_key};
use super::{ConsumerGroup, ConsumerMember};
use crate::api::{
    HeartbeatRequest, HeartbeatResponse, TopicCatalog, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use crate::assignor::TopicMetadata;
use crate::config::ConsumerGroupConfig;
use crate::error::GroupError;
use crate::records::ConsumerRecord;
use crate::state::{ConsumerGroupState, MemberState};
use crate::types::{GroupEvent, Output, RemovalReason};

impl ConsumerGroup {
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
            Some(r) if !r.is_empty() => match compile_regex(r) {
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
        let (member_id, mut updated) = if epoch == 0 {
            match self.join(group_id, &req, new_member_id, cfg, out) {
                Ok(joined) => joined,
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
            (req.member_id.clone(), m.clone())
        };
        // The member as the request's non-null fields update it.
        let is_new = !self.members.contains_key(&member_id);
        let mut changed = is_new;
        if req.rebalance_timeout_ms > 0 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if req.rack_id.is_some() {
            updated.rack_id = req.rack_id.clone();
        }
        if !req.client_id.is_empty() {
            updated.client_id = req.client_id.clone();
        }
        updated.client_host = req.client_host.clone();
        if let Some(names) = &req.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != updated.subscribed_topic_names {
                updated.subscribed_topic_names = names;
                changed = true;
            }
        }
        if req.subscribed_topic_regex.is_some() {
            let old = updated
                .subscribed_topic_regex
                .as_ref()
                .map(|(s, _)| s.as_str());
            if old != regex.as_ref().map(|(s, _)| s.as_str()) {
                updated.subscribed_topic_regex = regex;
                changed = true;
            }
        }
        if req.server_assignor.is_some() && req.server_assignor != updated.server_assignor {
            updated.server_assignor = req.server_assignor.clone();
            changed = true;
        }
        self.update_member(group_id, &updated, changed, catalog, cfg, out);
        let before = self.members.get(&member_id).map(|m| m.assigned.clone());
        self.reconcile(group_id, &member_id, req.owned.as_ref(), now_ms, out);
        out.set_timer(
            session_key(group_id, &member_id),
            now_ms + i64::from(cfg.session_timeout_ms),
        );
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

    /// Writes what a member's heartbeat (or classic JoinGroup) changed: its metadata, the
    /// subscribed topics' metadata, a new group epoch if either the membership or a
    /// subscription changed (`changed`) or the topics did, and then a new target assignment.
    pub(crate) fn update_member(
        &mut self,
        group_id: &str,
        updated: &ConsumerMember,
        changed: bool,
        catalog: &dyn TopicCatalog,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) {
        self.write_member_metadata(group_id, updated, out);
        let topics_changed = self.write_subscribed_topics(group_id, catalog, out);
        if changed || topics_changed {
            // One bump per call, whatever changed (Kafka: a new group epoch per change of
            // members, subscriptions or subscribed topics' metadata).
            let next = self.group_epoch + 1;
            self.write_group_epoch(group_id, next, out);
        }
        self.maybe_compute_target(group_id, cfg, out);
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
    /// it was fenced. Returns the member id to continue with and the member as it stands
    /// (a new member is not in the group until its metadata record is written).
    fn join(
        &mut self,
        group_id: &str,
        req: &HeartbeatRequest,
        new_member_id: impl FnOnce() -> String,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) -> Result<(String, ConsumerMember), Box<HeartbeatResponse>> {
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
                    self.replace_static_member(group_id, &old_id, &member_id, out);
                    return self.member_or_new(&member_id, req);
                }
                if let Some(m) = self.members.get(&member_id) {
                    if m.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        let mut back = m.current();
                        back.member_epoch = m.previous_member_epoch.max(0);
                        self.write_current(group_id, &member_id, &back, out);
                        return self.member_or_new(&member_id, req);
                    }
                }
            }
        }
        if self.members.contains_key(&member_id) {
            // A known member rejoining with epoch 0 (after being fenced): it starts over.
            self.write_current(group_id, &member_id, &fresh_assignment(), out);
            out.cancel_timer(rebalance_key(group_id, &member_id));
            return self.member_or_new(&member_id, req);
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
        // The subscription recorded next bumps the group epoch once.
        self.member_or_new(&member_id, req)
    }

    fn member_or_new(
        &self,
        member_id: &str,
        req: &HeartbeatRequest,
    ) -> Result<(String, ConsumerMember), Box<HeartbeatResponse>> {
        let m = self.members.get(member_id).cloned().unwrap_or_else(|| {
            let mut m = ConsumerMember::new(member_id.to_string());
            m.instance_id = req.instance_id.clone();
            m
        });
        Ok((member_id.to_string(), m))
    }

    /// A static member's new incarnation takes over the old one's epoch and partitions: no
    /// rebalance (KIP-848 static membership). Written as the old member's tombstones and the
    /// new member's records.
    fn replace_static_member(
        &mut self,
        group_id: &str,
        old_id: &str,
        new_id: &str,
        out: &mut Output,
    ) {
        let Some(old) = self.members.get(old_id).cloned() else {
            return;
        };
        let target = self.target.get(old_id).cloned();
        out.cancel_timer(session_key(group_id, old_id));
        out.cancel_timer(rebalance_key(group_id, old_id));
        out.events.push(GroupEvent::MemberRemoved {
            group_id: group_id.to_string(),
            member_id: old_id.to_string(),
            reason: RemovalReason::FencedStaticMember,
            generation_id: self.group_epoch,
        });
        self.write_member_tombstones(group_id, old_id, out);
        let mut m = old;
        m.member_id = new_id.to_string();
        let mut current = m.current();
        current.member_epoch = m.previous_member_epoch.max(0);
        self.write_member_metadata(group_id, &m, out);
        if let Some(t) = target {
            self.write_target(group_id, new_id, &t, out);
        }
        self.apply(
            ConsumerRecord::CurrentAssignment {
                group_id: group_id.to_string(),
                member_id: new_id.to_string(),
                value: Some(current.value()),
            },
            out,
        );
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
            let mut away = m.current();
            if away.member_epoch >= 0 {
                away.previous_member_epoch = away.member_epoch;
            }
            away.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            self.write_current(group_id, &req.member_id, &away, out);
            out.set_timer(
                session_key(group_id, &req.member_id),
                now_ms + i64::from(cfg.session_timeout_ms),
            );
        } else {
            self.remove_member(group_id, &req.member_id, RemovalReason::Leave, cfg, out);
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
    /// back to the pool and the group gets a new target. False if it was not a member.
    pub(crate) fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        reason: RemovalReason,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) -> bool {
        if !self.members.contains_key(member_id) {
            return false;
        }
        out.events.push(GroupEvent::MemberRemoved {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            reason,
            generation_id: self.group_epoch,
        });
        self.write_member_tombstones(group_id, member_id, out);
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
        out.cancel_timer(session_key(group_id, member_id));
        out.cancel_timer(rebalance_key(group_id, member_id));
        let next = self.group_epoch + 1;
        self.write_group_epoch(group_id, next, out);
        self.maybe_compute_target(group_id, cfg, out);
        true
    }

    /// Re-resolves the subscribed topics against the catalog and writes them if they changed
    /// (a topic created, deleted or given more partitions); true on a change, which bumps the
    /// group epoch.
    pub(crate) fn write_subscribed_topics(
        &mut self,
        group_id: &str,
        catalog: &dyn TopicCatalog,
        out: &mut Output,
    ) -> bool {
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
        self.apply(
            ConsumerRecord::SubscribedTopics {
                group_id: group_id.to_string(),
                topics: Some(topics.into_values().collect()),
            },
            out,
        );
        true
    }

    /// A timer of this group fired: `revocation` (a revocation that took longer than the
    /// member's rebalance timeout) or its session (no heartbeat in time). Either way the
    /// member is removed; true if it was.
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
        let reason = if revocation {
            RemovalReason::RevocationTimeout
        } else {
            RemovalReason::SessionTimeout
        };
        self.remove_member(group_id, member_id, reason, cfg, out)
    }

    /// Notes a rebalance starting (the group is neither `Stable` nor `Empty`) or completing
    /// (`Stable` again), as a [`crate::types::RebalanceEvent`].
    pub(crate) fn track_rebalance(&mut self, group_id: &str, now_ms: i64, out: &mut Output) {
        match self.state() {
            ConsumerGroupState::Empty => self.reconciling_since = None,
            ConsumerGroupState::Stable => {
                if let Some(t) = self.reconciling_since.take() {
                    out.rebalances.push(crate::types::RebalanceEvent {
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
}
