//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete. Commits are records in
//! `__consumer_offsets`, acknowledged once durable; they survive restarts by replay.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_group::classic::{CommitPartition, CommitRequest};
use shoal_group::code_of;

use super::{code, RequestContext};
use crate::broker::Broker;

/// OffsetCommit (v2-v8). Partitions of unknown topics get `UNKNOWN_TOPIC_OR_PARTITION`; the
/// rest go to the coordinator, which checks membership and generation.
pub async fn commit(
    broker: &Broker,
    _ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut partitions = Vec::new();
    // Per topic: (partition, error decided here or None = ask the coordinator).
    type Row = Vec<(i32, Option<i16>)>;
    let mut layout: Vec<(TopicName, Row)> = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let topic = broker.topics.get(&name);
        let mut row = Vec::new();
        for p in &t.partitions {
            let exists = topic.as_ref().is_some_and(|tp| {
                usize::try_from(p.partition_index).is_ok_and(|i| i < tp.partitions.len())
            });
            if exists {
                partitions.push(CommitPartition {
                    topic: name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
                row.push((p.partition_index, None));
            } else {
                row.push((p.partition_index, Some(code::UNKNOWN_TOPIC_OR_PARTITION)));
            }
        }
        layout.push((t.name.clone(), row));
    }
    let creq = CommitRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|g| g.to_string()),
        partitions,
    };
    let n = creq.partitions.len();
    let results: Vec<i16> = if n == 0 {
        Vec::new()
    } else {
        match broker.groups.commit(creq).await {
            Ok(errs) => errs.into_iter().map(code_of).collect(),
            Err(e) => vec![e.code(); n],
        }
    };
    let mut it = results.into_iter();
    let topics = layout
        .into_iter()
        .map(|(name, row)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    row.into_iter()
                        .map(|(idx, pre)| {
                            let c = pre.unwrap_or_else(|| {
                                it.next().unwrap_or(code::COORDINATOR_NOT_AVAILABLE)
                            });
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(idx)
                                .with_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch (v1-v7): the committed offset per partition, or -1 when none; all committed
/// partitions when `topics` is null (v2+).
pub async fn fetch(
    broker: &Broker,
    _ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let wanted: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let rows = match broker
        .groups
        .fetch_offsets(req.group_id.0.to_string(), wanted)
        .await
    {
        Ok(r) => r,
        Err(e) => return OffsetFetchResponse::default().with_error_code(e.code()),
    };
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for ((topic, partition), value) in rows {
        let entry = match value {
            Some(v) => OffsetFetchResponsePartition::default()
                .with_partition_index(partition)
                .with_committed_offset(v.offset)
                .with_committed_leader_epoch(v.leader_epoch)
                .with_metadata(Some(StrBytes::from_string(v.metadata))),
            None => OffsetFetchResponsePartition::default()
                .with_partition_index(partition)
                .with_committed_offset(-1)
                .with_committed_leader_epoch(-1)
                .with_metadata(Some(StrBytes::from_static_str(""))),
        };
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    OffsetFetchResponse::default()
        .with_error_code(code::NONE)
        .with_topics(topics)
}

/// OffsetDelete (v0): `GROUP_ID_NOT_FOUND`, `NON_EMPTY_GROUP`, or per partition
/// `GROUP_SUBSCRIBED_TO_TOPIC`.
pub async fn delete(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let parts: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match broker
        .groups
        .delete_offsets(req.group_id.0.to_string(), parts)
        .await
    {
        Ok(errs) => {
            let mut it = errs.into_iter();
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code_of(it.next().flatten()))
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetDeleteResponse::default()
                .with_error_code(code::NONE)
                .with_topics(topics)
        }
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
    }
}
