//! The target assignment and each member's walk towards it, after Kafka's
//! `TargetAssignmentBuilder` and `CurrentAssignmentBuilder`. Both only compute: what they
//! decide is written as `TargetAssignment`/`AssignmentEpoch` and `CurrentAssignment` records
//! and applied by replay.

use std::collections::BTreeMap;

use super::member::CurrentAssignment;
use super::partitions::{from_pairs, intersects, pairs};
use super::records::rebalance_key;
use super::ConsumerGroup;
use crate::assignor::{self, MemberSpec, TopicPartitions};
use crate::config::ConsumerGroupConfig;
use crate::records::ConsumerRecord;
use crate::state::MemberState;
use crate::types::{GroupEvent, Output};

impl ConsumerGroup {
    /// The assignor most members ask for (`group.remote.assignor`); otherwise the first of
    /// `group.consumer.assignors`.
    pub(crate) fn choose_assignor(&self, cfg: &ConsumerGroupConfig) -> String {
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

    /// When the group epoch is ahead of the assignment epoch, computes a new target
    /// assignment and writes what changed, then the new assignment epoch.
    pub(crate) fn maybe_compute_target(
        &mut self,
        group_id: &str,
        cfg: &ConsumerGroupConfig,
        out: &mut Output,
    ) {
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
        for (member_id, t) in &target {
            self.write_target(group_id, member_id, t, out);
        }
        let stale: Vec<String> = self
            .target
            .keys()
            .filter(|id| !target.contains_key(*id))
            .cloned()
            .collect();
        for member_id in stale {
            self.apply(
                ConsumerRecord::TargetAssignment {
                    group_id: group_id.to_string(),
                    member_id,
                    partitions: None,
                },
                out,
            );
        }
        self.assignor_name = name;
        let epoch = self.group_epoch;
        self.apply(
            ConsumerRecord::AssignmentEpoch {
                group_id: group_id.to_string(),
                assignment_epoch: Some(epoch),
            },
            out,
        );
        out.events.push(GroupEvent::TargetAssignmentComputed {
            group_id: group_id.to_string(),
            assignment_epoch: epoch,
            members: self.members.len(),
        });
    }

    /// Moves `member_id` one step towards its target (Kafka's `CurrentAssignmentBuilder`)
    /// and writes the member's new current assignment if it changed. `owned` is what the
    /// member reports it holds (`None`: unchanged since its last heartbeat).
    pub(crate) fn reconcile(
        &mut self,
        group_id: &str,
        member_id: &str,
        owned: Option<&TopicPartitions>,
        now_ms: i64,
        out: &mut Output,
    ) {
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let mut next = m.current();
        let rebalance_timeout_ms = m.rebalance_timeout_ms;
        match next.state {
            MemberState::UnrevokedPartitions => {
                let revoked = owned.is_some_and(|o| !intersects(o, &next.pending_revocation));
                if !revoked {
                    return;
                }
                next.pending_revocation.clear();
                next.state = MemberState::Stable;
                out.cancel_timer(rebalance_key(group_id, member_id));
            }
            MemberState::Stable if next.member_epoch == self.assignment_epoch => return,
            _ => {}
        }
        let in_target = |t: &uuid::Uuid, p: &i32| target.get(t).is_some_and(|ps| ps.contains(p));
        let keep: TopicPartitions =
            from_pairs(pairs(&next.assigned).filter(|(t, p)| in_target(t, p)));
        let revoke: TopicPartitions =
            from_pairs(pairs(&next.assigned).filter(|(t, p)| !in_target(t, p)));
        if !revoke.is_empty() {
            next.assigned = keep;
            next.pending_revocation = revoke;
            next.state = MemberState::UnrevokedPartitions;
            out.set_timer(
                rebalance_key(group_id, member_id),
                now_ms + i64::from(rebalance_timeout_ms),
            );
            self.write_current(group_id, member_id, &next, out);
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
                    assigned.entry(t).or_default().insert(p);
                }
            }
        }
        next.assigned = assigned;
        if next.member_epoch != self.assignment_epoch {
            next.previous_member_epoch = next.member_epoch;
            next.member_epoch = self.assignment_epoch;
        }
        next.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        self.write_current(group_id, member_id, &next, out);
    }
}

/// The current assignment a member starts from when it (re)joins with epoch 0.
pub(crate) fn fresh_assignment() -> CurrentAssignment {
    CurrentAssignment {
        member_epoch: 0,
        previous_member_epoch: 0,
        state: MemberState::Stable,
        assigned: TopicPartitions::new(),
        pending_revocation: TopicPartitions::new(),
    }
}
