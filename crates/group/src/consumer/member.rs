//! A KIP-848 consumer group member (Kafka's `ConsumerGroupMember`): what its
//! `ConsumerGroupMemberMetadataValue` (subscription, client, rebalance timeout) and its
//! `ConsumerGroupCurrentMemberAssignmentValue` (epochs, state, partitions) records hold.

use std::collections::BTreeSet;

use regex::Regex;

use super::partitions::{normalize, same_partitions};
use crate::assignor::TopicPartitions;
use crate::config::ConsumerGroupConfig;
use crate::records::{ClassicMemberMetadata, ConsumerMemberAssignment, ConsumerMemberMetadata};
use crate::state::MemberState;

/// Compiles a subscription regex as Kafka matches it: against the whole topic name.
///
/// Errors: the regex crate's, for an invalid expression.
pub(crate) fn compile_regex(src: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{src})$"))
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    pub(crate) state: MemberState,
    /// ms (the client's `max.poll.interval.ms`).
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscribed_topic_names: BTreeSet<String>,
    pub(crate) subscribed_topic_regex: Option<(String, Regex)>,
    pub(crate) server_assignor: Option<String>,
    pub(crate) assigned: TopicPartitions,
    pub(crate) pending_revocation: TopicPartitions,
    /// Set for a member that speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat)
    /// inside a consumer group, during an online migration.
    pub(crate) classic: Option<ClassicMemberMetadata>,
    /// A metadata record was replayed for it (a member known only from a current-assignment
    /// record is dropped at the end of recovery).
    pub(crate) has_metadata: bool,
}

/// A member's current assignment, as its `CurrentAssignment` record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentAssignment {
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    pub(crate) state: MemberState,
    pub(crate) assigned: TopicPartitions,
    pub(crate) pending_revocation: TopicPartitions,
}

impl CurrentAssignment {
    /// The record value (empty partition sets dropped).
    pub(crate) fn value(&self) -> ConsumerMemberAssignment {
        ConsumerMemberAssignment {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.id(),
            assigned: normalize(&self.assigned),
            pending_revocation: normalize(&self.pending_revocation),
        }
    }
}

impl ConsumerMember {
    pub(crate) fn new(member_id: String) -> Self {
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
            has_metadata: false,
        }
    }

    /// The member's `ConsumerGroupMemberMetadataValue`.
    pub(crate) fn metadata_value(&self) -> ConsumerMemberMetadata {
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

    /// Sets the fields a `ConsumerGroupMemberMetadataValue` holds.
    pub(crate) fn set_metadata(&mut self, v: &ConsumerMemberMetadata) {
        self.instance_id = v.instance_id.clone();
        self.rack_id = v.rack_id.clone();
        self.client_id = v.client_id.clone();
        self.client_host = v.client_host.clone();
        self.subscribed_topic_names = v.subscribed_topic_names.iter().cloned().collect();
        let same_regex = self
            .subscribed_topic_regex
            .as_ref()
            .map(|(s, _)| s.as_str())
            == v.subscribed_topic_regex.as_deref();
        if !same_regex {
            self.subscribed_topic_regex = v
                .subscribed_topic_regex
                .as_ref()
                .and_then(|r| compile_regex(r).ok().map(|re| (r.clone(), re)));
        }
        self.rebalance_timeout_ms = v.rebalance_timeout_ms;
        self.server_assignor = v.server_assignor.clone();
        self.classic = v.classic.clone();
    }

    /// True when `other` has the same metadata as this member (compared in place, no
    /// allocation: this runs at every heartbeat).
    pub(crate) fn same_metadata(&self, other: &ConsumerMember) -> bool {
        self.instance_id == other.instance_id
            && self.rack_id == other.rack_id
            && self.client_id == other.client_id
            && self.client_host == other.client_host
            && self.subscribed_topic_names == other.subscribed_topic_names
            && self
                .subscribed_topic_regex
                .as_ref()
                .map(|(s, _)| s.as_str())
                == other
                    .subscribed_topic_regex
                    .as_ref()
                    .map(|(s, _)| s.as_str())
            && self.rebalance_timeout_ms == other.rebalance_timeout_ms
            && self.server_assignor == other.server_assignor
            && self.classic == other.classic
    }

    /// The member's current assignment.
    pub(crate) fn current(&self) -> CurrentAssignment {
        CurrentAssignment {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state,
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    /// True when `c` is the member's current assignment (compared in place).
    pub(crate) fn has_current(&self, c: &CurrentAssignment) -> bool {
        self.member_epoch == c.member_epoch
            && self.previous_member_epoch == c.previous_member_epoch
            && self.state == c.state
            && same_partitions(&self.assigned, &normalize(&c.assigned))
            && same_partitions(&self.pending_revocation, &normalize(&c.pending_revocation))
    }

    /// Sets the fields a `ConsumerGroupCurrentMemberAssignmentValue` holds.
    pub(crate) fn set_current(&mut self, v: &ConsumerMemberAssignment) {
        self.member_epoch = v.member_epoch;
        self.previous_member_epoch = v.previous_member_epoch;
        self.state = MemberState::from_id(v.state);
        self.assigned = v.assigned.clone();
        self.pending_revocation = v.pending_revocation.clone();
    }

    /// The member's session timeout: its own (JoinGroup's) for a classic member, else
    /// `group.consumer.session.timeout.ms`.
    pub(crate) fn session_timeout_ms(&self, cfg: &ConsumerGroupConfig) -> i32 {
        self.classic
            .as_ref()
            .map_or(cfg.session_timeout_ms, |c| c.session_timeout_ms)
    }

    pub(crate) fn subscribes_to(&self, name: &str) -> bool {
        self.subscribed_topic_names.contains(name)
            || self
                .subscribed_topic_regex
                .as_ref()
                .is_some_and(|(_, re)| re.is_match(name))
    }
}
