//! Broker-side partition assignors for KIP-848 consumer groups (`group.consumer.assignors`,
//! chosen by a client's `group.remote.assignor`): [`uniform`] and [`range`], after Kafka's
//! `UniformAssignor` and `RangeAssignor` (org.apache.kafka.coordinator.group.assignor).
//!
//! An assignor is a pure function from the group's members (their subscriptions and previous
//! target assignment) and the subscribed topics' metadata to a new target assignment. Every
//! partition of a subscribed topic is assigned to exactly one member subscribed to its topic;
//! partitions of topics nobody subscribes to are not assigned.

pub mod range;
pub mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id, as carried by ConsumerGroupHeartbeat (topic ids, KIP-516).
pub type TopicPartitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// A subscribed topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub topic_id: Uuid,
    pub name: String,
    /// Number of partitions (`0..partitions`).
    pub partitions: i32,
}

/// One member's input to an assignor.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// Subscribed topic ids (names and regex already resolved).
    pub subscribed: BTreeSet<Uuid>,
    /// The member's previous target assignment, for stickiness.
    pub previous: TopicPartitions,
}

/// The names of the assignors Shoal implements, in Kafka's default preference order.
pub const ASSIGNORS: [&str; 2] = [uniform::NAME, range::NAME];

/// Runs the assignor `name` (`uniform` or `range`); `None` for an unknown name.
///
/// `members` is keyed by `member_id`; `topics` by topic id. The result has an entry for every
/// member (possibly empty).
pub fn assign(
    name: &str,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, TopicMetadata>,
) -> Option<BTreeMap<String, TopicPartitions>> {
    match name {
        uniform::NAME => Some(uniform::assign(members, topics)),
        range::NAME => Some(range::assign(members, topics)),
        _ => None,
    }
}

/// Number of partitions in an assignment.
pub fn count(a: &TopicPartitions) -> usize {
    a.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    pub(super) fn topic(n: u8, partitions: i32) -> (Uuid, TopicMetadata) {
        let id = Uuid::from_bytes([n; 16]);
        (
            id,
            TopicMetadata {
                topic_id: id,
                name: format!("t{n}"),
                partitions,
            },
        )
    }

    pub(super) fn member(topics: &[u8]) -> MemberSpec {
        MemberSpec {
            subscribed: topics.iter().map(|n| Uuid::from_bytes([*n; 16])).collect(),
            previous: TopicPartitions::new(),
        }
    }

    /// Every partition of a subscribed topic is owned by exactly one subscribed member.
    pub(super) fn assert_exactly_one_owner(
        members: &BTreeMap<String, MemberSpec>,
        topics: &BTreeMap<Uuid, TopicMetadata>,
        result: &BTreeMap<String, TopicPartitions>,
    ) {
        let mut seen = BTreeSet::new();
        for (m, a) in result {
            for (t, ps) in a {
                assert!(
                    members[m].subscribed.contains(t),
                    "{m} got unsubscribed {t}"
                );
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition {t}-{p} assigned twice");
                }
            }
        }
        for (t, meta) in topics {
            if members.values().any(|m| m.subscribed.contains(t)) {
                for p in 0..meta.partitions {
                    assert!(seen.contains(&(*t, p)), "partition {t}-{p} unassigned");
                }
            }
        }
    }

    #[test]
    fn unknown_assignor_is_refused() {
        assert!(assign("sticky", &BTreeMap::new(), &BTreeMap::new()).is_none());
    }
}
