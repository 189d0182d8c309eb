//! How a consumer group's state changes: every change is one of Kafka's records 3-8
//! ([`ConsumerRecord`]), applied by [`ConsumerGroup::replay`], live (through
//! [`ConsumerGroup::apply`], which also emits the record) and at recovery alike. `replay`
//! also keeps the maps derived from the records (partition owners, static members).

use super::member::CurrentAssignment;
use super::partitions::{pairs, same_partitions};
use super::{ConsumerGroup, ConsumerMember};
use crate::assignor::TopicPartitions;
use crate::config::ConsumerGroupConfig;
use crate::records::{ConsumerRecord, Record};
use crate::types::{Output, TimerKey};

pub(crate) fn session_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ConsumerSession {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

pub(crate) fn rebalance_key(group_id: &str, member_id: &str) -> TimerKey {
    TimerKey::ConsumerRebalance {
        group_id: group_id.to_string(),
        member_id: member_id.to_string(),
    }
}

impl ConsumerGroup {
    /// Applies `record` to the group and emits it: the only way the handlers change
    /// persisted state.
    pub(crate) fn apply(&mut self, record: ConsumerRecord, out: &mut Output) {
        self.replay(&record);
        out.records.push(Record::Consumer(record));
    }

    /// Emits the member's metadata record if `updated` differs from what the group holds
    /// (or the member is new).
    pub(crate) fn write_member_metadata(
        &mut self,
        group_id: &str,
        updated: &ConsumerMember,
        out: &mut Output,
    ) {
        if self
            .members
            .get(&updated.member_id)
            .is_some_and(|m| m.same_metadata(updated))
        {
            return;
        }
        self.apply(
            ConsumerRecord::MemberMetadata {
                group_id: group_id.to_string(),
                member_id: updated.member_id.clone(),
                value: Some(updated.metadata_value()),
            },
            out,
        );
    }

    /// Emits the member's current-assignment record if `current` differs from what it holds.
    pub(crate) fn write_current(
        &mut self,
        group_id: &str,
        member_id: &str,
        current: &CurrentAssignment,
        out: &mut Output,
    ) {
        if self
            .members
            .get(member_id)
            .is_none_or(|m| m.has_current(current))
        {
            return;
        }
        self.apply(
            ConsumerRecord::CurrentAssignment {
                group_id: group_id.to_string(),
                member_id: member_id.to_string(),
                value: Some(current.value()),
            },
            out,
        );
    }

    /// Emits a member's target-assignment record if it differs from what the group holds.
    pub(crate) fn write_target(
        &mut self,
        group_id: &str,
        member_id: &str,
        target: &TopicPartitions,
        out: &mut Output,
    ) {
        if self
            .target
            .get(member_id)
            .is_some_and(|t| same_partitions(target, &super::normalize(t)))
        {
            return;
        }
        self.apply(
            ConsumerRecord::TargetAssignment {
                group_id: group_id.to_string(),
                member_id: member_id.to_string(),
                partitions: Some(super::normalize(target)),
            },
            out,
        );
    }

    /// Emits the group epoch record for `epoch`.
    pub(crate) fn write_group_epoch(&mut self, group_id: &str, epoch: i32, out: &mut Output) {
        self.apply(
            ConsumerRecord::GroupEpoch {
                group_id: group_id.to_string(),
                epoch: Some(epoch),
            },
            out,
        );
    }

    /// Tombstones for one member (current assignment, target, metadata, in Kafka's order).
    pub(crate) fn write_member_tombstones(
        &mut self,
        group_id: &str,
        member_id: &str,
        out: &mut Output,
    ) {
        let g = || group_id.to_string();
        let m = || member_id.to_string();
        self.apply(
            ConsumerRecord::CurrentAssignment {
                group_id: g(),
                member_id: m(),
                value: None,
            },
            out,
        );
        if self.target.contains_key(member_id) {
            self.apply(
                ConsumerRecord::TargetAssignment {
                    group_id: g(),
                    member_id: m(),
                    partitions: None,
                },
                out,
            );
        }
        self.apply(
            ConsumerRecord::MemberMetadata {
                group_id: g(),
                member_id: m(),
                value: None,
            },
            out,
        );
    }

    /// Tombstones for every record of the group, when it is deleted or becomes a classic
    /// group (Kafka's `createGroupTombstoneRecords`). The group is empty afterwards.
    pub(crate) fn write_tombstones(&mut self, group_id: &str, out: &mut Output) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.write_member_tombstones(group_id, &id, out);
        }
        let orphans: Vec<String> = self.target.keys().cloned().collect();
        for id in orphans {
            self.apply(
                ConsumerRecord::TargetAssignment {
                    group_id: group_id.to_string(),
                    member_id: id,
                    partitions: None,
                },
                out,
            );
        }
        let g = || group_id.to_string();
        for r in [
            ConsumerRecord::SubscribedTopics {
                group_id: g(),
                topics: None,
            },
            ConsumerRecord::AssignmentEpoch {
                group_id: g(),
                assignment_epoch: None,
            },
            ConsumerRecord::GroupEpoch {
                group_id: g(),
                epoch: None,
            },
        ] {
            self.apply(r, out);
        }
    }

    fn release(&mut self, member_id: &str) {
        if let Some(m) = self.members.get(member_id) {
            for tp in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
                if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                    self.owners.remove(&tp);
                }
            }
        }
    }

    /// Applies one record of this group (live or at recovery; at recovery call
    /// [`ConsumerGroup::finish_replay`] after the last one). A group-epoch tombstone is the
    /// coordinator's to handle (the group is gone).
    pub(crate) fn replay(&mut self, record: &ConsumerRecord) {
        match record {
            ConsumerRecord::GroupEpoch { epoch, .. } => {
                self.group_epoch = epoch.unwrap_or(0);
            }
            ConsumerRecord::SubscribedTopics { topics, .. } => {
                self.subscribed_topics = topics
                    .iter()
                    .flatten()
                    .map(|t| (t.topic_id, t.clone()))
                    .collect();
            }
            ConsumerRecord::MemberMetadata {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let m = self
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerMember::new(member_id.clone()));
                    if let Some(old) = m.instance_id.take() {
                        if self.static_members.get(&old) == Some(member_id) {
                            self.static_members.remove(&old);
                        }
                    }
                    m.set_metadata(v);
                    m.has_metadata = true;
                    if let Some(iid) = &v.instance_id {
                        self.static_members.insert(iid.clone(), member_id.clone());
                    }
                }
                None => {
                    self.release(member_id);
                    if let Some(m) = self.members.remove(member_id) {
                        if let Some(iid) = &m.instance_id {
                            if self.static_members.get(iid) == Some(member_id) {
                                self.static_members.remove(iid);
                            }
                        }
                    }
                }
            },
            ConsumerRecord::AssignmentEpoch {
                assignment_epoch, ..
            } => {
                self.assignment_epoch = assignment_epoch.unwrap_or(0);
            }
            ConsumerRecord::TargetAssignment {
                member_id,
                partitions,
                ..
            } => match partitions {
                Some(p) => {
                    self.target.insert(member_id.clone(), p.clone());
                }
                None => {
                    self.target.remove(member_id);
                }
            },
            ConsumerRecord::CurrentAssignment {
                member_id, value, ..
            } => {
                self.release(member_id);
                match value {
                    Some(v) => {
                        let m = self
                            .members
                            .entry(member_id.clone())
                            .or_insert_with(|| ConsumerMember::new(member_id.clone()));
                        m.set_current(v);
                        for tp in pairs(&v.assigned).chain(pairs(&v.pending_revocation)) {
                            self.owners.insert(tp, member_id.clone());
                        }
                    }
                    None => {
                        if let Some(m) = self.members.get_mut(member_id) {
                            m.set_current(&Default::default());
                        }
                    }
                }
            }
        }
    }

    /// After recovery: drops members whose metadata was tombstoned (a current assignment
    /// can come back without one after compaction), rebuilds the derived maps, takes the
    /// replayed regexes as resolved, and arms every member's session timer (and the
    /// revocation timer of those still revoking), as Kafka does when a coordinator loads a
    /// group.
    pub(crate) fn finish_replay(
        &mut self,
        group_id: &str,
        cfg: &ConsumerGroupConfig,
        now_ms: i64,
        out: &mut Output,
    ) {
        self.assignor_name = self.choose_assignor(cfg);
        self.members.retain(|_, m| m.has_metadata);
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
            out.set_timer(
                session_key(group_id, &m.member_id),
                now_ms + i64::from(m.session_timeout_ms(cfg)),
            );
            if m.state == crate::state::MemberState::UnrevokedPartitions {
                out.set_timer(
                    rebalance_key(group_id, &m.member_id),
                    now_ms + i64::from(m.rebalance_timeout_ms),
                );
            }
        }
    }
}
