//! Share groups (KIP-932): ShareGroupHeartbeat (76), ShareGroupDescribe (77), ShareFetch (78),
//! ShareAcknowledge (79), DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91),
//! DeleteShareGroupOffsets (92), all at the versions `kafka-protocol` 0.18 encodes (v1 for
//! the Share* APIs, v0 for the offsets APIs; Kafka 4.1 serves the same).
//!
//! Translation only, as for the other group APIs: the decisions are made by the share-group
//! core in `shoal-group` (`shoal_group::share`), driven by [`crate::coordinator`]. A
//! ShareFetch is: the session step (acknowledgements applied and durable, the session's
//! partitions planned), a log read per partition, the acquisition step, and, when nothing
//! was acquired, a long poll (up to `MaxWaitMs`) woken by appends and by released records.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData as AckPartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_group::api::{
    FetchStart, PartitionAcks, PartitionRead, ShareFetchOpen, ShareHeartbeatRequest,
    SharePartitionKey,
};
use shoal_group::share::{AckBatch, AckType, AcquiredRange, OffsetReset};
use shoal_group::{code_of, GroupError};
use uuid::Uuid;

use super::{code, RequestContext};
use crate::clock::now_ms;
use crate::state::Broker;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// ShareGroupHeartbeat (v1): join (epoch 0), heartbeat, leave (-1); every member is assigned
/// every partition of its subscribed topics. Errors in the response: see
/// [`shoal_group::GroupCoordinator::share_heartbeat`].
pub async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    use share_group_heartbeat_response::{Assignment, TopicPartitions};
    let hreq = ShareHeartbeatRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|x| x.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|n| n.0.to_string()).collect()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    match broker
        .groups
        .share_heartbeat(hreq, super::groups::catalog(broker))
        .await
    {
        Ok(r) => ShareGroupHeartbeatResponse::default()
            .with_error_code(code_of(r.error))
            .with_error_message(r.error_message.map(s))
            .with_member_id(r.member_id.map(s))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.iter()
                        .map(|(id, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(*id)
                                .with_partitions(ps.iter().copied().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => ShareGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_member_epoch(-1),
    }
}

/// ShareGroupDescribe (v1). Errors per group: GROUP_ID_NOT_FOUND (unknown, or not a share
/// group).
pub async fn describe(
    broker: &Broker,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    use share_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
    let mut out = Vec::with_capacity(req.group_ids.len());
    for g in req.group_ids {
        let id = g.0.to_string();
        let entry = match broker.groups.share_describe(id.clone()).await {
            Ok(Ok(d)) => {
                let members = d
                    .members
                    .iter()
                    .map(|m| {
                        let parts = m
                            .assignment
                            .iter()
                            .map(|(tid, ps)| {
                                let name = super::groups::topic_name(broker, &d.topic_names, tid);
                                TopicPartitions::default()
                                    .with_topic_id(*tid)
                                    .with_topic_name(TopicName(s(name)))
                                    .with_partitions(ps.iter().copied().collect())
                            })
                            .collect();
                        Member::default()
                            .with_member_id(s(m.member_id.clone()))
                            .with_rack_id(m.rack_id.clone().map(s))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(s(m.client_id.clone()))
                            .with_client_host(s(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|n| TopicName(s(n.clone())))
                                    .collect(),
                            )
                            .with_assignment(Assignment::default().with_topic_partitions(parts))
                    })
                    .collect();
                DescribedGroup::default()
                    .with_error_code(code::NONE)
                    .with_group_id(g)
                    .with_group_state(s(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(s(d.assignor_name.clone()))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN)
            }
            Ok(Err(e)) | Err(e) => DescribedGroup::default()
                .with_error_code(e.code())
                .with_error_message(Some(s(format!("group {id} is not a share group"))))
                .with_group_id(g)
                .with_group_state(s("Dead")),
        };
        out.push(entry);
    }
    ShareGroupDescribeResponse::default().with_groups(out)
}

/// Converts the wire acknowledgement batches of one partition. Errors: INVALID_REQUEST for
/// an unknown acknowledge type or an inverted range.
fn ack_batches(
    batches: impl IntoIterator<Item = (i64, i64, Vec<i8>)>,
) -> Result<Vec<AckBatch>, GroupError> {
    batches
        .into_iter()
        .map(|(first_offset, last_offset, types)| {
            let types = types
                .into_iter()
                .map(|t| AckType::from_id(t).ok_or(GroupError::InvalidRequest))
                .collect::<Result<Vec<_>, _>>()?;
            if last_offset < first_offset || types.is_empty() {
                return Err(GroupError::InvalidRequest);
            }
            Ok(AckBatch {
                first_offset,
                last_offset,
                types,
            })
        })
        .collect()
}

/// The whole batches in `records`, walking batch headers only: the base offset of the first
/// and the exclusive end offset (last offset + 1) of each; `None` if there is none.
pub fn batch_ends(records: &[u8]) -> Option<(i64, Vec<i64>)> {
    let mut at = 0usize;
    let mut first = None;
    let mut ends = Vec::new();
    while let Some(header) = records.get(at..at + 27) {
        let base = i64::from_be_bytes(header.get(0..8)?.try_into().ok()?);
        let len = i32::from_be_bytes(header.get(8..12)?.try_into().ok()?);
        let delta = i32::from_be_bytes(header.get(23..27)?.try_into().ok()?);
        let size = 12usize.checked_add(usize::try_from(len).ok()?)?;
        if records.len() < at + size {
            break;
        }
        first.get_or_insert(base);
        ends.push(base + i64::from(delta) + 1);
        at += size;
    }
    Some((first?, ends))
}

/// The batches of `records` that hold an offset in `first..=last`.
pub fn trim(records: &Bytes, first: i64, last: i64) -> Bytes {
    let mut at = 0usize;
    let (mut from, mut to) = (None, 0usize);
    while let Some(header) = records.get(at..at + 27) {
        let (Ok(b), Ok(l), Ok(d)) = (
            <[u8; 8]>::try_from(&header[0..8]),
            <[u8; 4]>::try_from(&header[8..12]),
            <[u8; 4]>::try_from(&header[23..27]),
        ) else {
            break;
        };
        let base = i64::from_be_bytes(b);
        let end = base + i64::from(i32::from_be_bytes(d));
        let Ok(len) = usize::try_from(i32::from_be_bytes(l)) else {
            break;
        };
        let size = 12 + len;
        if records.len() < at + size || base > last {
            break;
        }
        if end >= first {
            from.get_or_insert(at);
            to = at + size;
        }
        at += size;
    }
    match from {
        Some(f) => records.slice(f..to),
        None => Bytes::new(),
    }
}

/// Resolves `share.auto.offset.reset` for a partition without state.
fn initial_offset(broker: &Broker, key: &SharePartitionKey, reset: OffsetReset) -> Option<i64> {
    let p = broker.topics.partition(&key.0, key.1)?;
    let log = p.log();
    Some(match reset {
        OffsetReset::Earliest => log.log_start_offset(),
        OffsetReset::Latest => log.log_end_offset(),
        OffsetReset::ByDuration(ms) => match log.offset_for_timestamp(now_ms() - ms) {
            Ok(Some((offset, _))) => offset,
            _ => log.log_end_offset(),
        },
    })
}

/// One partition's read for a ShareFetch (or an AMQP delivery): the whole batches read
/// (`records`) and the Kafka error code of the read (`NONE`, `UNKNOWN_TOPIC_OR_PARTITION`,
/// `KAFKA_STORAGE_ERROR`).
pub struct Read {
    pub key: SharePartitionKey,
    pub records: Bytes,
    pub error: i16,
}

/// Reads every planned partition: at most `max_bytes` in all (at least one whole batch for
/// the first partition with data). Returns what the coordinator's acquisition step needs
/// ([`PartitionRead`]: offsets and batch ends) and the bytes read, per partition.
pub fn read_planned(
    broker: &Broker,
    plan: &[(SharePartitionKey, FetchStart)],
    max_bytes: usize,
) -> (Vec<PartitionRead>, Vec<Read>) {
    let mut reads = Vec::with_capacity(plan.len());
    let mut data = Vec::with_capacity(plan.len());
    let mut remaining = max_bytes.max(1);
    for (key, start) in plan {
        let Some(p) = broker.topics.partition(&key.0, key.1) else {
            data.push(Read {
                key: key.clone(),
                records: Bytes::new(),
                error: code::UNKNOWN_TOPIC_OR_PARTITION,
            });
            continue;
        };
        let (log_start, planned) = {
            let log = p.log();
            let at = match start {
                FetchStart::At(o) => Some(*o),
                _ => None,
            };
            let planned = at
                .filter(|o| *o < log.log_end_offset())
                .map(|o| log.plan_read(o.max(log.log_start_offset()), remaining));
            (log.log_start_offset(), planned)
        };
        let initial = match start {
            FetchStart::Initialize(reset) => initial_offset(broker, key, *reset),
            _ => None,
        };
        let (records, error) = match planned.map(|r| r.and_then(|plan| plan.read())) {
            None => (Bytes::new(), code::NONE),
            Some(Ok(r)) => (r.records, code::NONE),
            Some(Err(shoal_log::LogError::OffsetOutOfRange { .. })) => (Bytes::new(), code::NONE),
            Some(Err(e)) => {
                tracing::error!(topic = %key.0, partition = key.1, error = %e, "share fetch read failed");
                (Bytes::new(), code::KAFKA_STORAGE_ERROR)
            }
        };
        remaining = remaining.saturating_sub(records.len());
        let (from, ends) = batch_ends(&records).unwrap_or((0, Vec::new()));
        let to = ends.last().copied().unwrap_or(0);
        let from = match start {
            FetchStart::At(o) => from.max(*o),
            _ => from,
        };
        reads.push(PartitionRead {
            key: key.clone(),
            from,
            to: to.max(from),
            batch_ends: ends,
            log_start_offset: log_start,
            initial_offset: initial,
        });
        data.push(Read {
            key: key.clone(),
            records,
            error,
        });
    }
    (reads, data)
}

/// Topic ids of the request resolved to names.
fn names(broker: &Broker, ids: impl IntoIterator<Item = Uuid>) -> BTreeMap<Uuid, Option<String>> {
    ids.into_iter()
        .map(|id| (id, broker.topics.get_by_id(id).map(|t| t.name.clone())))
        .collect()
}

/// ShareFetch (v1). Top-level errors: INVALID_REQUEST (no group or member id), GROUP_ID_NOT_FOUND,
/// SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_LIMIT_REACHED;
/// per partition: UNKNOWN_TOPIC_ID, and as `AcknowledgeErrorCode` INVALID_RECORD_STATE or
/// INVALID_REQUEST for refused acknowledgements.
pub async fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: ShareFetchRequest,
) -> ShareFetchResponse {
    let (Some(group_id), Some(member_id)) = (req.group_id.as_ref(), req.member_id.as_ref()) else {
        return ShareFetchResponse::default()
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(s("GroupId and MemberId are required")));
    };
    let group_id = group_id.0.to_string();
    let member_id = member_id.to_string();
    if member_id.is_empty() || member_id.len() > 36 {
        return ShareFetchResponse::default()
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(s("MemberId must be 1-36 characters")));
    }
    let ids = names(
        broker,
        req.topics
            .iter()
            .map(|t| t.topic_id)
            .chain(req.forgotten_topics_data.iter().map(|t| t.topic_id)),
    );
    let name_of = |id: &Uuid| ids.get(id).cloned().flatten();
    let mut unknown: Vec<(Uuid, i32)> = Vec::new();
    let mut open = ShareFetchOpen {
        group_id: group_id.clone(),
        member_id: member_id.clone(),
        share_session_epoch: req.share_session_epoch,
        connection_id: ctx.connection_id,
        ..ShareFetchOpen::default()
    };
    let mut bad_acks: Vec<(SharePartitionKey, GroupError)> = Vec::new();
    for t in &req.topics {
        let Some(name) = name_of(&t.topic_id) else {
            unknown.extend(t.partitions.iter().map(|p| (t.topic_id, p.partition_index)));
            continue;
        };
        for p in &t.partitions {
            let key = (name.clone(), p.partition_index);
            open.added.push(key.clone());
            if p.acknowledgement_batches.is_empty() {
                continue;
            }
            match ack_batches(
                p.acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
            ) {
                Ok(batches) => open.acks.push(PartitionAcks { key, batches }),
                Err(e) => bad_acks.push((key, e)),
            }
        }
    }
    for t in &req.forgotten_topics_data {
        if let Some(name) = name_of(&t.topic_id) {
            open.forgotten
                .extend(t.partitions.iter().map(|p| (name.clone(), *p)));
        }
    }
    let plan = match broker.groups.share_open(open).await {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) | Err(e) => {
            if e == GroupError::ShareSessionLimitReached {
                // As Kafka: delayed by MaxWaitMs, so the client does not spin on it.
                let wait = u64::try_from(req.max_wait_ms).unwrap_or(0).min(60_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            return ShareFetchResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(s(e.to_string())));
        }
    };
    let mut ack_errors: BTreeMap<SharePartitionKey, i16> = plan
        .ack_errors
        .iter()
        .map(|(k, e)| (k.clone(), code_of(*e)))
        .collect();
    for (k, e) in bad_acks {
        ack_errors.insert(k, e.code());
    }
    let mut acquired: Vec<(SharePartitionKey, Vec<AcquiredRange>)> = Vec::new();
    let mut data: Vec<Read> = Vec::new();
    let mut lock_ms = 0i64;
    if req.share_session_epoch != -1 {
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0).min(60_000));
        let max_records = usize::try_from(req.max_records).unwrap_or(0).max(1);
        // What is read is trimmed to the acquired offsets, so reading all of `MaxBytes`
        // (librdkafka asks for 50 MiB) would copy far more than is sent: read about 2 KiB
        // per record wanted (500 records: 1 MiB), at most 8 MiB, never more than MaxBytes.
        let max_bytes = usize::try_from(req.max_bytes)
            .unwrap_or(0)
            .max(1)
            .min(max_records.saturating_mul(2048).clamp(64 << 10, 8 << 20));
        let mut appended = broker.appended.subscribe();
        let mut released = broker.groups.share_released.subscribe();
        let mut planned = plan.partitions;
        loop {
            appended.mark_unchanged();
            released.mark_unchanged();
            let (reads, read) = read_planned(broker, &planned, max_bytes);
            let initialized = reads.iter().any(|r| r.initial_offset.is_some());
            match broker
                .groups
                .share_acquire(group_id.clone(), member_id.clone(), reads, max_records)
                .await
            {
                Ok((got, lock)) => {
                    acquired = got;
                    lock_ms = lock;
                }
                Err(e) => {
                    return ShareFetchResponse::default()
                        .with_error_code(e.code())
                        .with_error_message(Some(s(e.to_string())))
                }
            }
            data = read;
            let errors = data.iter().any(|r| r.error != code::NONE);
            if !acquired.is_empty() || errors || tokio::time::Instant::now() >= deadline {
                break;
            }
            if !initialized {
                // Woken by an append, a release, or (for records backed off) at most every
                // 100 ms; always by the deadline.
                let slice =
                    (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
                tokio::select! {
                    _ = appended.changed() => {}
                    _ = released.changed() => {}
                    () = tokio::time::sleep_until(slice) => {}
                }
            }
            planned = match broker
                .groups
                .share_plan(group_id.clone(), member_id.clone())
                .await
            {
                Ok(p) => p,
                Err(_) => break,
            };
        }
    }
    // The response: per topic id, the partitions with records, errors or ack results.
    let id_of: BTreeMap<&str, Uuid> = ids
        .iter()
        .filter_map(|(id, n)| n.as_deref().map(|n| (n, *id)))
        .collect();
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    let acquired: BTreeMap<SharePartitionKey, Vec<AcquiredRange>> = acquired.into_iter().collect();
    let mut records_out = 0usize;
    for r in data {
        let ranges = acquired.get(&r.key);
        let ack = ack_errors.remove(&r.key);
        if ranges.is_none() && r.error == code::NONE && ack.is_none() {
            continue;
        }
        let Some(id) = id_of
            .get(r.key.0.as_str())
            .copied()
            .or_else(|| broker.topics.get(&r.key.0).map(|t| t.id))
        else {
            continue;
        };
        let records = match ranges.and_then(|v| Some((v.first()?, v.last()?))) {
            Some((first, last)) => trim(&r.records, first.first_offset, last.last_offset),
            None => Bytes::new(),
        };
        records_out += records.len();
        if !records.is_empty() {
            broker.metrics.fetched(&r.key.0, &records);
        }
        by_topic.entry(id).or_default().push(
            PartitionData::default()
                .with_partition_index(r.key.1)
                .with_error_code(r.error)
                .with_acknowledge_error_code(ack.unwrap_or(code::NONE))
                .with_records(Some(records))
                .with_acquired_records(
                    ranges
                        .map(|v| {
                            v.iter()
                                .map(|a| {
                                    AcquiredRecords::default()
                                        .with_first_offset(a.first_offset)
                                        .with_last_offset(a.last_offset)
                                        .with_delivery_count(a.delivery_count)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
        );
    }
    // Acknowledgement results of partitions that were not read (session closing, or no
    // longer in the session).
    for (key, err) in ack_errors {
        let Some(id) = id_of
            .get(key.0.as_str())
            .copied()
            .or_else(|| broker.topics.get(&key.0).map(|t| t.id))
        else {
            continue;
        };
        by_topic.entry(id).or_default().push(
            PartitionData::default()
                .with_partition_index(key.1)
                .with_acknowledge_error_code(err)
                .with_records(Some(Bytes::new())),
        );
    }
    for (id, p) in unknown {
        by_topic.entry(id).or_default().push(
            PartitionData::default()
                .with_partition_index(p)
                .with_error_code(code::UNKNOWN_TOPIC_ID)
                .with_records(Some(Bytes::new())),
        );
    }
    tracing::trace!(group = %group_id, member = %member_id, bytes = records_out, "ShareFetch");
    ShareFetchResponse::default()
        .with_error_code(code::NONE)
        .with_acquisition_lock_timeout_ms(i32::try_from(lock_ms).unwrap_or(i32::MAX))
        .with_responses(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_node_endpoints(node_endpoints(broker, ctx))
}

fn node_endpoints(
    broker: &Broker,
    ctx: &RequestContext,
) -> Vec<share_fetch_response::NodeEndpoint> {
    let (host, port) = broker.config.advertised_for(&ctx.listener);
    vec![share_fetch_response::NodeEndpoint::default()
        .with_node_id(BrokerId(broker.config.node_id))
        .with_host(s(host))
        .with_port(port)]
}

/// ShareAcknowledge (v1): acknowledgements outside a fetch (commitSync, close). Epoch 0 is
/// refused (INVALID_SHARE_SESSION_EPOCH); -1 closes the session after applying them. Errors
/// as for ShareFetch; per partition INVALID_RECORD_STATE / INVALID_REQUEST / UNKNOWN_TOPIC_ID.
pub async fn acknowledge(
    broker: &Broker,
    ctx: &RequestContext,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let (Some(group_id), Some(member_id)) = (req.group_id.as_ref(), req.member_id.as_ref()) else {
        return ShareAcknowledgeResponse::default()
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(s("GroupId and MemberId are required")));
    };
    let ids = names(broker, req.topics.iter().map(|t| t.topic_id));
    let mut open = ShareFetchOpen {
        group_id: group_id.0.to_string(),
        member_id: member_id.to_string(),
        share_session_epoch: req.share_session_epoch,
        connection_id: ctx.connection_id,
        acknowledge_only: true,
        ..ShareFetchOpen::default()
    };
    let mut results: BTreeMap<Uuid, Vec<(i32, i16)>> = BTreeMap::new();
    for t in &req.topics {
        let name = ids.get(&t.topic_id).cloned().flatten();
        for p in &t.partitions {
            let Some(name) = name.clone() else {
                results
                    .entry(t.topic_id)
                    .or_default()
                    .push((p.partition_index, code::UNKNOWN_TOPIC_ID));
                continue;
            };
            let key = (name, p.partition_index);
            match ack_batches(
                p.acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
            ) {
                Ok(batches) => open.acks.push(PartitionAcks { key, batches }),
                Err(e) => results
                    .entry(t.topic_id)
                    .or_default()
                    .push((p.partition_index, e.code())),
            }
        }
    }
    let plan = match broker.groups.share_open(open).await {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) | Err(e) => {
            return ShareAcknowledgeResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(s(e.to_string())))
        }
    };
    for ((name, partition), e) in plan.ack_errors {
        if let Some(t) = broker.topics.get(&name) {
            results
                .entry(t.id)
                .or_default()
                .push((partition, code_of(e)));
        }
    }
    ShareAcknowledgeResponse::default()
        .with_error_code(code::NONE)
        .with_responses(
            results
                .into_iter()
                .map(|(id, ps)| {
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(id)
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, e)| {
                                    AckPartitionData::default()
                                        .with_partition_index(p)
                                        .with_error_code(e)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
        .with_node_endpoints({
            let (host, port) = broker.config.advertised_for(&ctx.listener);
            vec![share_acknowledge_response::NodeEndpoint::default()
                .with_node_id(BrokerId(broker.config.node_id))
                .with_host(s(host))
                .with_port(port)]
        })
}

/// DescribeShareGroupOffsets (v0): each share-partition's start offset (SPSO); -1 for a
/// partition without state. Errors per group: GROUP_ID_NOT_FOUND; per partition
/// UNKNOWN_TOPIC_OR_PARTITION.
pub async fn describe_offsets(
    broker: &Broker,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    use describe_share_group_offsets_response::{
        DescribeShareGroupOffsetsResponseGroup as G,
        DescribeShareGroupOffsetsResponsePartition as P,
        DescribeShareGroupOffsetsResponseTopic as T,
    };
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let wanted: Option<Vec<SharePartitionKey>> = g.topics.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.topic_name.0.to_string(), *p))
                })
                .collect()
        });
        let entry = match broker
            .groups
            .share_offsets(g.group_id.0.to_string(), wanted)
            .await
        {
            Ok(Ok(offsets)) => {
                let mut by_topic: BTreeMap<String, Vec<P>> = BTreeMap::new();
                for ((topic, partition), offset) in offsets {
                    let exists = broker.topics.partition(&topic, partition).is_some();
                    by_topic.entry(topic).or_default().push(
                        P::default()
                            .with_partition_index(partition)
                            .with_start_offset(offset.unwrap_or(-1))
                            .with_leader_epoch(0)
                            .with_error_code(if exists {
                                code::NONE
                            } else {
                                code::UNKNOWN_TOPIC_OR_PARTITION
                            }),
                    );
                }
                let topics = by_topic
                    .into_iter()
                    .map(|(name, partitions)| {
                        let id = broker.topics.get(&name).map(|t| t.id).unwrap_or_default();
                        T::default()
                            .with_topic_name(TopicName(s(name)))
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect();
                G::default().with_group_id(g.group_id).with_topics(topics)
            }
            Ok(Err(e)) | Err(e) => G::default()
                .with_group_id(g.group_id)
                .with_error_code(e.code())
                .with_error_message(Some(s(e.to_string()))),
        };
        groups.push(entry);
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// AlterShareGroupOffsets (v0): sets share-partitions' start offsets (their in-flight
/// windows are dropped). Errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP (top level);
/// UNKNOWN_TOPIC_OR_PARTITION per partition.
pub async fn alter_offsets(
    broker: &Broker,
    req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    use alter_share_group_offsets_response::{
        AlterShareGroupOffsetsResponsePartition as P, AlterShareGroupOffsetsResponseTopic as T,
    };
    let mut offsets = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.topic_name.0.to_string();
        let id = broker.topics.get(&name).map(|t| t.id).unwrap_or_default();
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let exists = broker.topics.partition(&name, p.partition_index).is_some();
                let error = if !exists {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                } else if p.start_offset < 0 {
                    code::INVALID_REQUEST
                } else {
                    offsets.push(((name.clone(), p.partition_index), p.start_offset));
                    code::NONE
                };
                P::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error)
            })
            .collect();
        topics.push(
            T::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(id)
                .with_partitions(partitions),
        );
    }
    match broker
        .groups
        .alter_share_offsets(req.group_id.0.to_string(), offsets)
        .await
    {
        Ok(Ok(())) => AlterShareGroupOffsetsResponse::default()
            .with_error_code(code::NONE)
            .with_responses(topics),
        Ok(Err(e)) | Err(e) => AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string()))),
    }
}

/// DeleteShareGroupOffsets (v0): forgets the share-partition state of whole topics (they
/// start again by `share.auto.offset.reset`). Errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP
/// (top level); UNKNOWN_TOPIC_OR_PARTITION per topic.
pub async fn delete_offsets(
    broker: &Broker,
    req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    use delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as T;
    let mut keys = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.topic_name.0.to_string();
        let topic = broker.topics.get(&name);
        if let Some(topic) = &topic {
            keys.extend((0..topic.partitions.len() as i32).map(|p| (name.clone(), p)));
        }
        topics.push(
            T::default()
                .with_topic_name(t.topic_name.clone())
                .with_topic_id(topic.as_ref().map(|t| t.id).unwrap_or_default())
                .with_error_code(if topic.is_some() {
                    code::NONE
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                }),
        );
    }
    match broker
        .groups
        .delete_share_offsets(req.group_id.0.to_string(), keys)
        .await
    {
        Ok(Ok(())) => DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code::NONE)
            .with_responses(topics),
        Ok(Err(e)) | Err(e) => DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(e.to_string()))),
    }
}
