//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete. Commits are records in
//! `__consumer_offsets`, acknowledged once durable; they survive restarts by replay.

use std::collections::HashSet;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_group::api::{CommitPartition, CommitRequest};
use shoal_group::code_of;

use super::{code, RequestContext};
use crate::state::Broker;

/// OffsetCommit (v2-v9; v9 is required of consumer-protocol members, whose member epoch is
/// checked: STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID). Partitions of unknown topics get `UNKNOWN_TOPIC_OR_PARTITION`; the
/// rest go to the coordinator, which checks membership and generation.
pub async fn commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut partitions = Vec::new();
    // Per topic: (partition, error decided here or None = ask the coordinator).
    type Row = Vec<(i32, Option<i16>)>;
    let mut layout: Vec<(TopicName, Row)> = Vec::new();
    // ACLs (Kafka's KafkaApis): READ on the group, else every partition answers
    // GROUP_AUTHORIZATION_FAILED; READ on each topic, else TOPIC_AUTHORIZATION_FAILED.
    let group_ok = super::allowed(
        broker,
        ctx,
        crate::auth::acl::Operation::Read,
        crate::auth::acl::ResourceType::Group,
        &req.group_id.0,
    );
    for t in &req.topics {
        let name = t.name.0.to_string();
        let topic = broker.topics.get(&name);
        let topic_ok = super::topic_allowed(broker, ctx, crate::auth::acl::Operation::Read, &name);
        let mut row = Vec::new();
        for p in &t.partitions {
            let exists = topic.as_ref().is_some_and(|tp| {
                usize::try_from(p.partition_index).is_ok_and(|i| i < tp.partitions.len())
            });
            if !group_ok {
                row.push((p.partition_index, Some(code::GROUP_AUTHORIZATION_FAILED)));
            } else if !topic_ok {
                row.push((p.partition_index, Some(code::TOPIC_AUTHORIZATION_FAILED)));
            } else if exists {
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
        api_version: ctx.api_version,
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

/// One group's committed offsets: `(error_code, rows, unstable)`. `member` is OffsetFetch
/// v9's `(member_id, member_epoch)`, checked for consumer-protocol groups (KIP-848). With
/// `require_stable` (v7+, KIP-447), `unstable` holds the partitions with offsets pending in
/// an open transaction: they are answered UNSTABLE_OFFSET_COMMIT (retriable) instead.
async fn fetch_group(
    broker: &Broker,
    group_id: String,
    wanted: Option<Vec<(String, i32)>>,
    member: Option<(Option<String>, i32)>,
    require_stable: bool,
) -> (i16, Vec<OffsetRow>, HashSet<(String, i32)>) {
    if let Some((member_id, member_epoch)) = member {
        match broker
            .groups
            .validate_offset_fetch(group_id.clone(), member_id, member_epoch)
            .await
        {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return (e.code(), Vec::new(), HashSet::new()),
        }
    }
    let unstable = if require_stable {
        match broker.groups.pending_txn_partitions(group_id.clone()).await {
            Ok(set) => set,
            Err(e) => return (e.code(), Vec::new(), HashSet::new()),
        }
    } else {
        HashSet::new()
    };
    match broker.groups.fetch_offsets(group_id, wanted).await {
        Ok(r) => (code::NONE, r, unstable),
        Err(e) => (e.code(), Vec::new(), HashSet::new()),
    }
}

/// A committed-offset row of the group coordinator: the partition and its offset, if any.
type OffsetRow = ((String, i32), Option<shoal_group::OffsetAndMetadata>);

/// `(offset, leader_epoch, metadata)` of a row; -1/-1/"" when nothing is committed.
fn committed(v: Option<shoal_group::OffsetAndMetadata>) -> (i64, i32, StrBytes) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, StrBytes::from_string(v.metadata)),
        None => (-1, -1, StrBytes::from_static_str("")),
    }
}

/// The `(topic, partition)` list of a request's topics; `None` (all partitions) when null.
fn wanted_partitions<'a>(
    topics: Option<impl IntoIterator<Item = (&'a TopicName, &'a [i32])>>,
) -> Option<Vec<(String, i32)>> {
    topics.map(|ts| {
        ts.into_iter()
            .flat_map(|(name, parts)| parts.iter().map(move |p| (name.0.to_string(), *p)))
            .collect()
    })
}

/// Committed rows grouped by topic, in first-seen order:
/// `(topic, [(partition, offset, leader_epoch, metadata, error_code)])`; a partition in
/// `unstable` gets -1 and UNSTABLE_OFFSET_COMMIT, as Kafka answers `require_stable`.
type TopicRows = Vec<(String, Vec<(i32, i64, i32, StrBytes, i16)>)>;

fn by_topic(rows: Vec<OffsetRow>, unstable: &HashSet<(String, i32)>) -> TopicRows {
    let mut out: TopicRows = Vec::new();
    for ((topic, partition), value) in rows {
        let pending = unstable.contains(&(topic.clone(), partition));
        let (offset, epoch, metadata) = committed(if pending { None } else { value });
        let error = if pending {
            code::UNSTABLE_OFFSET_COMMIT
        } else {
            code::NONE
        };
        let entry = (partition, offset, epoch, metadata, error);
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, v)) => v.push(entry),
            None => out.push((topic, vec![entry])),
        }
    }
    out
}

/// OffsetFetch (v1-v9): the committed offset per partition, or -1 when none; all committed
/// partitions when `topics` is null (v2+). `require_stable` (v7+, KIP-447): a partition with
/// offsets pending in an open transaction gets UNSTABLE_OFFSET_COMMIT and -1. v8+ batch groups; v9 carries the member id and
/// epoch of consumer-protocol members (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH per group).
pub async fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.api_version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let wanted = wanted_partitions(
                g.topics
                    .as_ref()
                    .map(|ts| ts.iter().map(|t| (&t.name, t.partition_indexes.as_slice()))),
            );
            let member = (ctx.api_version >= 9)
                .then(|| (g.member_id.as_ref().map(|m| m.to_string()), g.member_epoch));
            let (err, rows, unstable) = fetch_group(
                broker,
                g.group_id.0.to_string(),
                wanted,
                member,
                req.require_stable,
            )
            .await;
            let topics: Vec<OffsetFetchResponseTopics> = by_topic(rows, &unstable)
                .into_iter()
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, offset, epoch, metadata, error)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_error_code(error)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(metadata))
                                })
                                .collect(),
                        )
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(err)
                    .with_topics(topics),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = wanted_partitions(
        req.topics
            .as_ref()
            .map(|ts| ts.iter().map(|t| (&t.name, t.partition_indexes.as_slice()))),
    );
    let require_stable = ctx.api_version >= 7 && req.require_stable;
    let (err, rows, unstable) = fetch_group(
        broker,
        req.group_id.0.to_string(),
        wanted,
        None,
        require_stable,
    )
    .await;
    if err != code::NONE {
        return OffsetFetchResponse::default().with_error_code(err);
    }
    let topics: Vec<OffsetFetchResponseTopic> = by_topic(rows, &unstable)
        .into_iter()
        .map(|(topic, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, offset, epoch, metadata, error)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(error)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                        })
                        .collect(),
                )
        })
        .collect();
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
