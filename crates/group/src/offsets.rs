//! Committed offsets of every group, after Kafka's `OffsetMetadataManager`: OffsetCommit,
//! OffsetFetch, OffsetDelete, offsets of deleted topics, and the tombstones of a deleted or
//! expired group. Offsets change only through `OffsetCommit` records (key version 1), applied
//! by [`Offsets::replay`] live and at recovery. Whether a commit is allowed (member, epoch,
//! generation) is the group's to check, before these calls.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::api::CommitPartition;
use crate::error::GroupError;
use crate::records::{OffsetAndMetadata, Record};
use crate::types::Output;

type TopicPartition = (String, i32);

/// Every group's committed offsets.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    groups: HashMap<String, HashMap<TopicPartition, OffsetAndMetadata>>,
}

/// A committed-offset list: `(topic, partition)` with its offset, `None` if none committed.
pub type OffsetList = Vec<(TopicPartition, Option<OffsetAndMetadata>)>;

impl Offsets {
    /// Applies an `OffsetCommit` record (a `None` value deletes the offset).
    pub(crate) fn replay(
        &mut self,
        group_id: &str,
        topic: &str,
        partition: i32,
        value: Option<&OffsetAndMetadata>,
    ) {
        match value {
            Some(v) => {
                self.groups
                    .entry(group_id.to_string())
                    .or_default()
                    .insert((topic.to_string(), partition), v.clone());
            }
            None => {
                if let Some(g) = self.groups.get_mut(group_id) {
                    g.remove(&(topic.to_string(), partition));
                    if g.is_empty() {
                        self.groups.remove(group_id);
                    }
                }
            }
        }
    }

    fn apply(&mut self, record: Record, out: &mut Output) {
        if let Record::OffsetCommit {
            group_id,
            topic,
            partition,
            value,
        } = &record
        {
            self.replay(group_id, topic, *partition, value.as_ref());
        }
        out.records.push(record);
    }

    /// True when the group has a committed offset.
    pub(crate) fn has_offsets(&self, group_id: &str) -> bool {
        self.groups.get(group_id).is_some_and(|g| !g.is_empty())
    }

    /// OffsetCommit for an allowed commit: one result per partition, in request order.
    /// Errors per partition: OFFSET_METADATA_TOO_LARGE (over `offset.metadata.max.bytes`).
    pub(crate) fn commit(
        &mut self,
        group_id: &str,
        partitions: Vec<CommitPartition>,
        metadata_max_bytes: usize,
        now_ms: i64,
        out: &mut Output,
    ) -> Vec<Option<GroupError>> {
        let mut errors = Vec::with_capacity(partitions.len());
        for p in partitions {
            let metadata = p.metadata.unwrap_or_default();
            if metadata.len() > metadata_max_bytes {
                errors.push(Some(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            self.apply(
                Record::OffsetCommit {
                    group_id: group_id.to_string(),
                    topic: p.topic,
                    partition: p.partition,
                    value: Some(OffsetAndMetadata {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata,
                        commit_timestamp_ms: now_ms,
                    }),
                },
                out,
            );
            errors.push(None);
        }
        errors
    }

    /// OffsetFetch: for the listed `(topic, partition)`s, or every committed one (sorted)
    /// when `None`.
    pub(crate) fn fetch(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> OffsetList {
        let group = self.groups.get(group_id);
        match partitions {
            Some(list) => list
                .iter()
                .map(|tp| (tp.clone(), group.and_then(|g| g.get(tp).cloned())))
                .collect(),
            None => {
                let mut all: OffsetList = group
                    .map(|g| {
                        g.iter()
                            .map(|(k, v)| (k.clone(), Some(v.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            }
        }
    }

    /// OffsetDelete of partitions of topics the group does not subscribe to. Errors per
    /// partition: GROUP_SUBSCRIBED_TO_TOPIC.
    pub(crate) fn delete(
        &mut self,
        group_id: &str,
        partitions: &[TopicPartition],
        subscribed: &HashSet<String>,
        out: &mut Output,
    ) -> Vec<Option<GroupError>> {
        let mut errors = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                errors.push(Some(GroupError::GroupSubscribedToTopic));
                continue;
            }
            let exists = self
                .groups
                .get(group_id)
                .is_some_and(|g| g.contains_key(&(topic.clone(), *partition)));
            if exists {
                self.apply(
                    Record::OffsetCommit {
                        group_id: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    },
                    out,
                );
            }
            errors.push(None);
        }
        errors
    }

    /// Tombstones for every offset of a group (deleted or expired), in partition order.
    pub(crate) fn delete_group(&mut self, group_id: &str, out: &mut Output) {
        let mut keys: Vec<TopicPartition> = self
            .groups
            .get(group_id)
            .map(|g| g.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        for (topic, partition) in keys {
            self.apply(
                Record::OffsetCommit {
                    group_id: group_id.to_string(),
                    topic,
                    partition,
                    value: None,
                },
                out,
            );
        }
    }

    /// A topic was deleted: tombstones for every group's offsets of it (as Kafka does), so a
    /// re-created topic of the same name starts without stale positions.
    pub(crate) fn delete_topic(&mut self, topic: &str, out: &mut Output) {
        let mut doomed: Vec<(String, i32)> = self
            .groups
            .iter()
            .flat_map(|(g, offsets)| {
                offsets
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, p)| (g.clone(), *p))
                    .collect::<Vec<_>>()
            })
            .collect();
        doomed.sort();
        for (group_id, partition) in doomed {
            self.apply(
                Record::OffsetCommit {
                    group_id,
                    topic: topic.to_string(),
                    partition,
                    value: None,
                },
                out,
            );
        }
    }

    /// Every group's offsets, sorted (what `__consumer_offsets` holds).
    pub(crate) fn snapshot(&self) -> BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>> {
        self.groups
            .iter()
            .filter(|(_, g)| !g.is_empty())
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                )
            })
            .collect()
    }
}
