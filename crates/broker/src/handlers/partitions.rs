//! Partition administration, answered as a one-node Kafka answers it: DeleteRecords,
//! DescribeLogDirs, AlterReplicaLogDirs, ElectLeaders, AlterPartitionReassignments,
//! ListPartitionReassignments and DescribeTopicPartitions.
//!
//! One node means: every partition has one replica, this node, which is its leader (the
//! preferred one) and its whole ISR, in the one log directory (`log.dirs`, the data
//! directory). So elections are never needed, the only valid replica set is `[node.id]`, and
//! no reassignment is ever in progress. DeleteRecords is the one call here that changes
//! anything: it moves a partition's log start offset ([`shoal_log::PartitionLog`]'s
//! `delete_records_before`), durably, before it answers.

use std::path::{Path, PathBuf};

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_log::LogError;

use super::code;
use crate::state::Broker;
use crate::topics::Topic;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Kafka's `max.request.partition.size.limit` (default 2000): the most partitions one
/// DescribeTopicPartitions response holds.
const MAX_REQUEST_PARTITION_SIZE_LIMIT: i32 = 2000;

/// DeleteRecords (v0-v2, KIP-107): moves each partition's log start offset to the offset
/// given (-1: the high watermark), persisted before the answer; `low_watermark` is the log
/// start offset afterwards. Fetches below it then get OFFSET_OUT_OF_RANGE and ListOffsets
/// earliest returns it. Errors per partition: UNKNOWN_TOPIC_OR_PARTITION,
/// OFFSET_OUT_OF_RANGE (beyond the high watermark, or negative), POLICY_VIOLATION (the topic's
/// `cleanup.policy` lacks `delete`), INVALID_TOPIC_EXCEPTION (internal topics),
/// KAFKA_STORAGE_ERROR.
pub fn delete_records(broker: &Broker, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let topic = broker.topics.get(&name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(topic) = &topic else {
                        return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let Some(part) = usize::try_from(p.partition_index)
                        .ok()
                        .and_then(|i| topic.partitions.get(i))
                    else {
                        return r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    if topic.internal {
                        return r.with_error_code(code::INVALID_TOPIC_EXCEPTION);
                    }
                    if !topic.deletes_by_retention() {
                        return r.with_error_code(code::POLICY_VIOLATION);
                    }
                    let mut log = part.log();
                    let offset = if p.offset == -1 {
                        log.log_end_offset()
                    } else {
                        p.offset
                    };
                    match log.delete_records_before(offset) {
                        Ok(low) => {
                            tracing::info!(topic = %name, partition = p.partition_index, log_start_offset = low, "deleted records");
                            r.with_error_code(code::NONE).with_low_watermark(low)
                        }
                        Err(LogError::OffsetOutOfRange { .. }) => {
                            r.with_error_code(code::OFFSET_OUT_OF_RANGE)
                        }
                        Err(e) => {
                            tracing::error!(topic = %name, partition = p.partition_index, error = %e, "delete records failed");
                            r.with_error_code(code::KAFKA_STORAGE_ERROR)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// The log directory as Kafka names it: its absolute path.
fn log_dir(broker: &Broker) -> PathBuf {
    let dir = broker.topics.data_dir();
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Whether `path` names the one log directory (as given, absolute, or canonical).
fn is_log_dir(broker: &Broker, path: &str) -> bool {
    let dir = broker.topics.data_dir();
    let p = Path::new(path);
    p == dir
        || p == log_dir(broker)
        || matches!((p.canonicalize(), dir.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// `(total, usable)` bytes of the file system holding `dir` (statvfs); -1 when unknown.
fn disk_space(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let unit = st.f_frsize;
            let total = st.f_blocks.saturating_mul(unit);
            let usable = st.f_bavail.saturating_mul(unit);
            (
                i64::try_from(total).unwrap_or(i64::MAX),
                i64::try_from(usable).unwrap_or(i64::MAX),
            )
        }
        Err(_) => (-1, -1),
    }
}

/// DescribeLogDirs (v1-v4): the one log directory (the data directory, by its absolute
/// path) with the size in bytes of every partition asked for (`topics` null: all), offset
/// lag 0 (no future replicas), and (v4) the file system's total and usable bytes.
/// Partitions this node does not have are left out, as Kafka does.
pub fn describe_log_dirs(broker: &Broker, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Vec<(std::sync::Arc<Topic>, Vec<i32>)> = match req.topics {
        None => broker
            .topics
            .list()
            .into_iter()
            .map(|t| {
                let all = t.partitions.iter().map(|p| p.index).collect();
                (t, all)
            })
            .collect(),
        Some(ts) => ts
            .into_iter()
            .filter_map(|t| Some((broker.topics.get(&t.topic.0)?, t.partitions)))
            .collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(t, indexes)| {
            let partitions: Vec<DescribeLogDirsPartition> = indexes
                .into_iter()
                .filter_map(|i| {
                    let p = t.partitions.get(usize::try_from(i).ok()?)?;
                    let size = p.log().size_bytes();
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(i)
                            .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                            .with_offset_lag(0)
                            .with_is_future_key(false),
                    )
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(s(t.name.clone())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = log_dir(broker);
    let (total, usable) = disk_space(&dir);
    DescribeLogDirsResponse::default()
        .with_error_code(code::NONE)
        .with_results(vec![DescribeLogDirsResult::default()
            .with_error_code(code::NONE)
            .with_log_dir(s(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable)])
}

/// AlterReplicaLogDirs (v1-v2): the only log directory is the data directory, so moving a
/// replica there is done already (NONE); any other path is LOG_DIR_NOT_FOUND; a partition
/// this node does not have is UNKNOWN_TOPIC_OR_PARTITION.
pub fn alter_replica_log_dirs(
    broker: &Broker,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let mut results = Vec::new();
    for dir in req.dirs {
        let valid = is_log_dir(broker, dir.path.as_str());
        for t in dir.topics {
            let topic = broker.topics.get(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|i| {
                    let known = topic
                        .as_ref()
                        .is_some_and(|t| usize::try_from(i).is_ok_and(|i| i < t.partitions.len()));
                    let error = if !valid {
                        code::LOG_DIR_NOT_FOUND
                    } else if !known {
                        code::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        code::NONE
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(i)
                        .with_error_code(error)
                })
                .collect();
            results.push(
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions),
            );
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(results)
}

/// ElectLeaders (v0-v2): every partition's leader is its only replica, the preferred one,
/// so a PREFERRED (0) or UNCLEAN (1) election is ELECTION_NOT_NEEDED for each partition
/// named; an unknown one is UNKNOWN_TOPIC_OR_PARTITION. With `topic_partitions` null (all
/// partitions) Kafka's controller leaves out the partitions that need no election, so the
/// answer lists none.
pub fn elect_leaders(broker: &Broker, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let results = req
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(&t.topic.0);
            let partition_result = t
                .partitions
                .into_iter()
                .map(|i| {
                    let r = PartitionResult::default().with_partition_id(i);
                    let known = topic
                        .as_ref()
                        .is_some_and(|t| usize::try_from(i).is_ok_and(|i| i < t.partitions.len()));
                    if !known {
                        r.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s("The partition does not exist.")))
                    } else if !(0..=1).contains(&req.election_type) {
                        r.with_error_code(code::INVALID_REQUEST)
                            .with_error_message(Some(s(format!(
                                "unknown election type {}",
                                req.election_type
                            ))))
                    } else {
                        r.with_error_code(code::ELECTION_NOT_NEEDED)
                            .with_error_message(Some(s(
                                "Leader election not needed for topic partition.",
                            )))
                    }
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(code::NONE)
        .with_replica_election_results(results)
}

/// AlterPartitionReassignments (v0): the only replica set a partition can have is
/// `[node.id]`, which it has already (NONE); another set is INVALID_REPLICA_ASSIGNMENT;
/// a cancellation (null replicas) is NO_REASSIGNMENT_IN_PROGRESS; an unknown partition is
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn alter_partition_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let node = broker.config.node_id;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(&t.name.0);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let known = topic.as_ref().is_some_and(|t| {
                        usize::try_from(p.partition_index).is_ok_and(|i| i < t.partitions.len())
                    });
                    let (error, msg) = if !known {
                        (
                            code::UNKNOWN_TOPIC_OR_PARTITION,
                            Some("The partition does not exist.".to_string()),
                        )
                    } else {
                        match p.replicas.as_deref() {
                            None => (
                                code::NO_REASSIGNMENT_IN_PROGRESS,
                                Some("No ongoing reassignment for this partition.".to_string()),
                            ),
                            Some([only]) if only.0 == node => (code::NONE, None),
                            Some([]) => (
                                code::INVALID_REPLICA_ASSIGNMENT,
                                Some("The manual partition assignment includes an empty replica list.".to_string()),
                            ),
                            Some(ids) => match ids.iter().find(|b| b.0 != node) {
                                Some(other) => (
                                    code::INVALID_REPLICA_ASSIGNMENT,
                                    Some(format!(
                                        "The manual partition assignment includes broker {}, but no such broker is registered.",
                                        other.0
                                    )),
                                ),
                                None => (
                                    code::INVALID_REPLICA_ASSIGNMENT,
                                    Some(format!(
                                        "The manual partition assignment includes the broker {node} more than once."
                                    )),
                                ),
                            },
                        }
                    };
                    r.with_error_code(error).with_error_message(msg.map(s))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_error_code(code::NONE)
        .with_responses(responses)
}

/// ListPartitionReassignments (v0): no reassignment is ever in progress on one node, so the
/// answer lists no topic, whatever was asked.
pub fn list_partition_reassignments(
    _broker: &Broker,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
        .with_error_code(code::NONE)
        .with_topics(Vec::new())
}

/// DescribeTopicPartitions (v0, KIP-966) as Kafka 3.9 answers it: the topics asked for (none:
/// every topic), in name order, from the `cursor` on (its topic from its partition, later
/// topics whole), with at most `response_partition_limit` partitions in all (capped at
/// `max.request.partition.size.limit`, 2000). When the limit cuts the answer short,
/// `next_cursor` names the first partition left out. An unknown topic is listed with
/// UNKNOWN_TOPIC_OR_PARTITION; a cursor naming a topic not asked for makes every topic
/// INVALID_REQUEST.
pub fn describe_topic_partitions(
    broker: &Broker,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let node = BrokerId(broker.config.node_id);
    let limit = req
        .response_partition_limit
        .clamp(1, MAX_REQUEST_PARTITION_SIZE_LIMIT);
    let mut names: Vec<String> = if req.topics.is_empty() {
        broker
            .topics
            .list()
            .iter()
            .map(|t| t.name.clone())
            .collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    if let Some(ct) = &cursor_topic {
        if !req.topics.is_empty() && !names.contains(ct) {
            let topics = names
                .into_iter()
                .map(|n| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code::INVALID_REQUEST)
                        .with_name(Some(TopicName(s(n))))
                        .with_topic_authorized_operations(i32::MIN)
                })
                .collect();
            return DescribeTopicPartitionsResponse::default().with_topics(topics);
        }
    }
    let mut remaining = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .into_iter()
        .filter(|n| cursor_topic.as_ref().is_none_or(|c| n >= c))
    {
        let Some(t) = broker.topics.get(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_name(Some(TopicName(s(name))))
                    .with_topic_authorized_operations(i32::MIN),
            );
            continue;
        };
        let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        let first = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition
        } else {
            0
        };
        if remaining == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(first),
            );
            break;
        }
        let upto = count.min(first.saturating_add(remaining));
        let partitions: Vec<DescribeTopicPartitionsResponsePartition> = (first..upto)
            .map(|i| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(code::NONE)
                    .with_partition_index(i)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(Vec::new())
            })
            .collect();
        remaining -= (upto - first).max(0);
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(code::NONE)
                .with_name(Some(TopicName(s(name.clone()))))
                .with_topic_id(t.id)
                .with_is_internal(t.internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(i32::MIN),
        );
        if upto < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(s(name)))
                    .with_partition_index(upto),
            );
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
