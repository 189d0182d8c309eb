//! ShareGroupHeartbeat for one share group (Kafka's `shareGroupHeartbeat`): join (epoch 0),
//! leave (epoch -1), and the steady heartbeat that carries subscription changes. A change of
//! membership, subscriptions or subscribed topics' partitions bumps the group epoch (record
//! `ShareGroupMetadata`); members move to the new epoch and assignment on their next
//! heartbeat at once, since a share-partition has no single owner to revoke from.

use std::collections::{BTreeMap, BTreeSet};

use super::{Effective, ShareGroup, ShareMember};
use crate::api::{ShareHeartbeatRequest, ShareHeartbeatResponse, TopicCatalog};
use crate::assignor::{TopicMetadata, TopicPartitions};
use crate::config::ShareGroupConfig;
use crate::error::GroupError;
use crate::records::{Record, ShareRecord};
use crate::types::{GroupEvent, Output, RemovalReason, TimerKey};

/// The timer of a member's session.
pub(crate) fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ShareSession {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

impl ShareGroup {
    /// Handles one ShareGroupHeartbeat (see the module docs). Errors (in the response):
    /// INVALID_REQUEST (no member id; a join without subscription), UNKNOWN_MEMBER_ID,
    /// FENCED_MEMBER_EPOCH, GROUP_MAX_SIZE_REACHED.
    pub(crate) fn heartbeat(
        &mut self,
        req: &ShareHeartbeatRequest,
        catalog: &dyn TopicCatalog,
        cfg: &ShareGroupConfig,
        eff: &Effective,
        now_ms: i64,
        out: &mut Output,
    ) -> ShareHeartbeatResponse {
        let group_id = req.group_id.as_str();
        if req.member_id.is_empty() || req.member_id.len() > 36 {
            return ShareHeartbeatResponse::error(
                GroupError::InvalidRequest,
                "MemberId must be 1-36 characters (a client-generated UUID)",
            );
        }
        if req.member_epoch == -1 {
            return self.leave(group_id, &req.member_id, now_ms, out);
        }
        let mut changed = false;
        if req.member_epoch == 0 {
            let topics = match &req.subscribed_topic_names {
                Some(t) if !t.is_empty() => t,
                _ => {
                    return ShareHeartbeatResponse::error(
                        GroupError::InvalidRequest,
                        "SubscribedTopicNames must be set in the first request",
                    )
                }
            };
            if !self.members.contains_key(&req.member_id) && self.members.len() >= cfg.max_size {
                return ShareHeartbeatResponse::error(
                    GroupError::GroupMaxSizeReached,
                    format!(
                        "the share group has reached group.share.max.size {}",
                        cfg.max_size
                    ),
                );
            }
            let subscribed: BTreeSet<String> = topics.iter().cloned().collect();
            let previous = self.members.insert(
                req.member_id.clone(),
                ShareMember {
                    member_id: req.member_id.clone(),
                    member_epoch: 0,
                    rack_id: req.rack_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    subscribed_topic_names: subscribed.clone(),
                    assignment: TopicPartitions::new(),
                },
            );
            changed = previous.is_none_or(|p| p.subscribed_topic_names != subscribed);
        } else {
            let Some(m) = self.members.get_mut(&req.member_id) else {
                return ShareHeartbeatResponse::error(
                    GroupError::UnknownMemberId,
                    format!("member {} is not in share group {group_id}", req.member_id),
                );
            };
            if req.member_epoch != m.member_epoch {
                return ShareHeartbeatResponse::error(
                    GroupError::FencedMemberEpoch,
                    format!(
                        "member epoch {} is not the member's epoch {}",
                        req.member_epoch, m.member_epoch
                    ),
                );
            }
            if let Some(t) = &req.subscribed_topic_names {
                let subscribed: BTreeSet<String> = t.iter().cloned().collect();
                if subscribed != m.subscribed_topic_names {
                    m.subscribed_topic_names = subscribed;
                    changed = true;
                }
            }
            if req.rack_id.is_some() && req.rack_id != m.rack_id {
                m.rack_id = req.rack_id.clone();
            }
        }
        // The subscribed topics as they are now: new partitions or topics change the epoch.
        let topics = self.subscribed_metadata(catalog);
        if topics != self.topics {
            self.topics = topics;
            changed = true;
        }
        if changed {
            self.bump_epoch(group_id, out);
        }
        out.set_timer(
            session_key(group_id, &req.member_id),
            now_ms + i64::from(eff.session_timeout_ms),
        );
        let epoch = self.group_epoch;
        let assignment = self.assignment_of(&req.member_id);
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return ShareHeartbeatResponse::error(GroupError::UnknownMemberId, "member gone");
        };
        let moved = m.member_epoch != epoch || req.member_epoch == 0;
        m.member_epoch = epoch;
        if moved {
            m.assignment = assignment.clone();
        }
        ShareHeartbeatResponse {
            error: None,
            error_message: None,
            member_id: Some(req.member_id.clone()),
            member_epoch: epoch,
            heartbeat_interval_ms: eff.heartbeat_interval_ms,
            assignment: moved.then_some(assignment),
        }
    }

    fn subscribed_metadata(&self, catalog: &dyn TopicCatalog) -> BTreeMap<String, TopicMetadata> {
        let names: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter())
            .collect();
        names
            .into_iter()
            .filter_map(|n| catalog.topic(n).map(|t| (n.clone(), t)))
            .collect()
    }

    /// Every partition of every subscribed topic that exists (the simple assignor when
    /// members outnumber partitions; Shoal's choice always).
    fn assignment_of(&self, member_id: &str) -> TopicPartitions {
        let mut a = TopicPartitions::new();
        if let Some(m) = self.members.get(member_id) {
            for name in &m.subscribed_topic_names {
                if let Some(t) = self.topics.get(name) {
                    a.insert(t.topic_id, (0..t.partitions).collect());
                }
            }
        }
        a
    }

    fn bump_epoch(&mut self, group_id: &str, out: &mut Output) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        out.records.push(Record::Share(ShareRecord::GroupEpoch {
            group_id: group_id.to_string(),
            epoch: Some(self.group_epoch),
        }));
    }

    fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        out: &mut Output,
    ) -> ShareHeartbeatResponse {
        if !self.members.contains_key(member_id) {
            return ShareHeartbeatResponse::error(
                GroupError::UnknownMemberId,
                format!("member {member_id} is not in share group {group_id}"),
            );
        }
        self.remove_member(group_id, member_id, RemovalReason::Leave, now_ms, out);
        ShareHeartbeatResponse {
            error: None,
            error_message: None,
            member_id: Some(member_id.to_string()),
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// Removes a member and moves the epoch. As in Kafka, its share session and the records
    /// it holds stay: they go when the session closes (ShareAcknowledge or ShareFetch with
    /// epoch -1, or its connection closing) or their locks expire, so a leave racing the
    /// final acknowledgements of `close()` cannot undo them.
    pub(crate) fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        reason: RemovalReason,
        now_ms: i64,
        out: &mut Output,
    ) {
        let Some(m) = self.members.remove(member_id) else {
            return;
        };
        out.cancel_timer(session_key(group_id, member_id));
        out.events.push(GroupEvent::MemberRemoved {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            reason,
            generation_id: m.member_epoch,
        });
        self.bump_epoch(group_id, out);
        if self.members.is_empty() {
            self.state_timestamp_ms = now_ms;
        }
    }

    /// The member's session timer fired: it is removed.
    pub(crate) fn on_session_timer(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        out: &mut Output,
    ) {
        self.remove_member(
            group_id,
            member_id,
            RemovalReason::SessionTimeout,
            now_ms,
            out,
        );
    }
}
