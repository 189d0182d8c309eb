//! Fetch (long poll), ListOffsets and OffsetForLeaderEpoch.
//!
//! Fetch returns stored batches as they are on disk; it waits up to `max_wait_ms` until
//! `min_bytes` are available, woken by appends. It respects `max_bytes` and
//! `partition_max_bytes` but always returns at least one whole batch per partition so a large
//! batch never stalls a consumer (KIP-74). `records` is never null (librdkafka rejects -1).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use shoal_log::{LogError, PartitionLog};

use super::{code, RequestContext};
use crate::broker::Broker;

struct Slot {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
}

fn read_all(
    broker: &Broker,
    req: &FetchRequest,
    slots: &[Slot],
    names: &[String],
) -> (Vec<PartitionData>, usize) {
    let mut remaining = usize::try_from(req.max_bytes).unwrap_or(0).max(1);
    let mut total = 0usize;
    let mut out = Vec::with_capacity(slots.len());
    for s in slots {
        let base = PartitionData::default()
            .with_partition_index(s.partition)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_high_watermark(-1)
            .with_records(Some(Bytes::new()));
        let Some(p) = names
            .get(s.topic_index)
            .and_then(|n| broker.topics.partition(n, s.partition))
        else {
            out.push(base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
            continue;
        };
        let limit = usize::try_from(s.max_bytes).unwrap_or(0).min(remaining);
        // Planned under the partition lock (memory only), read after it is released.
        let (hw, lso, plan) = {
            let log = p.log();
            let plan =
                (limit > 0 || total == 0).then(|| log.plan_read(s.fetch_offset, limit.max(1)));
            (log.log_end_offset(), log.log_start_offset(), plan)
        };
        let base = base
            .with_high_watermark(hw)
            .with_last_stable_offset(hw)
            .with_log_start_offset(lso);
        let Some(plan) = plan else {
            out.push(base);
            continue;
        };
        match plan.and_then(|plan| plan.read()) {
            Ok(r) => {
                total += r.records.len();
                remaining = remaining.saturating_sub(r.records.len());
                out.push(base.with_records(Some(r.records)));
            }
            Err(LogError::OffsetOutOfRange { .. }) => {
                out.push(base.with_error_code(code::OFFSET_OUT_OF_RANGE))
            }
            Err(e @ LogError::Corrupt { .. }) => {
                if broker.metrics.corrupt_batch(&p.topic, p.index) {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "corrupt batch on disk; not served (shoal_log_corrupt_batches_total counts further reads)");
                } else {
                    tracing::debug!(topic = %p.topic, partition = p.index, error = %e, "corrupt batch on disk; not served");
                }
                out.push(base.with_error_code(code::CORRUPT_MESSAGE));
            }
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "read failed");
                out.push(base.with_error_code(code::KAFKA_STORAGE_ERROR));
            }
        }
    }
    (out, total)
}

/// Handles Fetch, waiting for data per `max_wait_ms`/`min_bytes`.
pub async fn handle(broker: &Broker, _ctx: &RequestContext, req: FetchRequest) -> FetchResponse {
    let mut names = Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        names.push(t.topic.0.to_string());
        for p in &t.partitions {
            slots.push(Slot {
                topic_index: i,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0).min(60_000));
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let mut watch = broker.appended.subscribe();
    let results = loop {
        watch.mark_unchanged();
        let (results, total) = read_all(broker, &req, &slots, &names);
        let any_error = results.iter().any(|r| r.error_code != code::NONE);
        if total >= min_bytes.max(1) || any_error || tokio::time::Instant::now() >= deadline {
            break results;
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            let (results, _) = read_all(broker, &req, &slots, &names);
            break results;
        }
    };
    let mut topics: Vec<FetchableTopicResponse> = req
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (slot, data) in slots.iter().zip(results) {
        if let (Some(name), Some(records)) = (names.get(slot.topic_index), &data.records) {
            broker.metrics.fetched(name, records);
        }
        if let Some(t) = topics.get_mut(slot.topic_index) {
            t.partitions.push(data);
        }
    }
    FetchResponse::default()
        .with_error_code(code::NONE)
        .with_session_id(0)
        .with_responses(topics)
}

/// ListOffsets: -2 earliest (`log_start_offset`), -1 latest (`log_end_offset`), -3 the batch
/// with the largest timestamp, otherwise the first batch with a timestamp at or after the one
/// given (-1 offset when none).
pub fn list_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // `leader_epoch` exists from v4 on; earlier versions must leave it at its default.
    let epoch = if ctx.api_version >= 4 { 0 } else { -1 };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(part) = broker.topics.partition(&name, p.partition_index) else {
                        return resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let log = part.log();
                    let found = match p.timestamp {
                        -2 => Ok(Some((log.log_start_offset(), -1))),
                        -1 => Ok(Some((log.log_end_offset(), -1))),
                        -3 => log.max_timestamp(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => Ok(None),
                    };
                    match found {
                        Ok(Some((offset, ts))) => resp
                            .with_offset(offset)
                            .with_timestamp(ts)
                            .with_leader_epoch(epoch),
                        Ok(None) => resp,
                        Err(e) => {
                            tracing::error!(error = %e, "list offsets failed");
                            resp.with_error_code(code::KAFKA_STORAGE_ERROR)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch: Shoal has one leader epoch (0) per partition, so epoch 0 ends at the
/// log end offset; a later epoch is unknown (`-1`, `-1`).
pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = EpochEndOffset::default().with_partition(p.partition);
                    let Some(part) = broker.topics.partition(&name, p.partition) else {
                        return resp
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    };
                    if p.leader_epoch <= 0 {
                        resp.with_leader_epoch(0)
                            .with_end_offset(part.log().log_end_offset())
                    } else {
                        resp.with_leader_epoch(-1).with_end_offset(-1)
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
