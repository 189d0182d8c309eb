//! Fetch (long poll), ListOffsets and OffsetForLeaderEpoch.
//!
//! Fetch returns stored batches as they are on disk; it waits up to `max_wait_ms` until
//! `min_bytes` are available, woken by appends. The response respects `max_bytes` and each
//! partition its `partition_max_bytes`, except that the first batch of the first non-empty
//! partition is returned whole however large, so a large batch never stalls a consumer
//! (KIP-74); a later partition whose first batch does not fit what is left returns no
//! records this time. `records` is never null (librdkafka rejects -1).
//!
//! Zero copy: batches already CRC-checked in this process are not read into memory; the
//! response carries their file ranges, which the connection's writer sends with `sendfile`
//! (see [`respond`]). Such a range ends at an indexed batch boundary, so a partition's
//! answer may hold up to one `index.interval.bytes` less than `partition_max_bytes` allows.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
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
use shoal_log::{FileSlice, LogError, Records};

use super::{code, Outcome, Part, RequestContext};
use crate::state::Broker;

struct Slot {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
}

/// Reads every requested partition: its answer, and the file range to send as its records
/// when they are served straight from a segment file (the answer's `records` are then empty
/// until [`respond`] puts them in place).
fn read_all(
    broker: &Broker,
    req: &FetchRequest,
    slots: &[Slot],
    names: &[String],
    readable: &[bool],
) -> (Vec<(PartitionData, Option<FileSlice>)>, usize) {
    let mut remaining = usize::try_from(req.max_bytes).unwrap_or(0).max(1);
    let committed = req.isolation_level == 1;
    let mut total = 0usize;
    let mut out = Vec::with_capacity(slots.len());
    for s in slots {
        let base = PartitionData::default()
            .with_partition_index(s.partition)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_high_watermark(-1)
            .with_records(Some(Bytes::new()));
        if !readable.get(s.topic_index).copied().unwrap_or(false) {
            out.push((base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED), None));
            continue;
        }
        let Some(p) = names
            .get(s.topic_index)
            .and_then(|n| broker.topics.partition(n, s.partition))
        else {
            out.push((base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION), None));
            continue;
        };
        let limit = usize::try_from(s.max_bytes).unwrap_or(0).min(remaining);
        // Planned under the partition lock (memory only), read after it is released.
        let (hw, stable, start, plan) = {
            let log = p.log();
            let plan = (limit > 0 || total == 0).then(|| {
                if committed {
                    log.plan_read_committed(s.fetch_offset, limit.max(1))
                } else {
                    log.plan_read(s.fetch_offset, limit.max(1))
                }
            });
            (
                log.log_end_offset(),
                log.last_stable_offset(),
                log.log_start_offset(),
                plan,
            )
        };
        let base = base
            .with_high_watermark(hw)
            .with_last_stable_offset(stable)
            .with_log_start_offset(start);
        let Some(plan) = plan else {
            out.push((base, None));
            continue;
        };
        match plan.and_then(|plan| plan.read_zero_copy()) {
            // Only the first batch of the first non-empty partition may exceed the limits
            // (KIP-74); here a larger first batch waits for a later fetch, as in Kafka.
            Ok(records) if total > 0 && records.len() > limit => out.push((base, None)),
            Ok(records) => {
                total += records.len();
                remaining = remaining.saturating_sub(records.len());
                let base = if committed {
                    base.with_aborted_transactions(Some(aborted(&p, s.fetch_offset, &records)))
                } else {
                    base
                };
                out.push(match records {
                    Records::Bytes(b) => (base.with_records(Some(b)), None),
                    Records::File(f) => (base, Some(f)),
                });
            }
            Err(LogError::OffsetOutOfRange { .. }) => {
                out.push((base.with_error_code(code::OFFSET_OUT_OF_RANGE), None))
            }
            Err(e @ LogError::Corrupt { .. }) => {
                if broker.metrics.corrupt_batch(&p.topic, p.index) {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "corrupt batch on disk; not served (shoal_log_corrupt_batches_total counts further reads)");
                } else {
                    tracing::debug!(topic = %p.topic, partition = p.index, error = %e, "corrupt batch on disk; not served");
                }
                out.push((base.with_error_code(code::CORRUPT_MESSAGE), None));
            }
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "read failed");
                out.push((base.with_error_code(code::KAFKA_STORAGE_ERROR), None));
            }
        }
    }
    (out, total)
}

/// The aborted transactions a `read_committed` consumer needs to drop records of `records`
/// (read from `from`): those whose ABORT marker is at or after `from` and which began before
/// the end of what is returned.
fn aborted(
    p: &crate::topics::Partition,
    from: i64,
    records: &Records,
) -> Vec<kafka_protocol::messages::fetch_response::AbortedTransaction> {
    let upto = match records {
        Records::File(f) => f.end_offset,
        Records::Bytes(b) => shoal_log::batch::split(b)
            .ok()
            .and_then(|spans| spans.last().cloned())
            .and_then(|r| b.get(r))
            .and_then(|last| shoal_log::batch::BatchHeader::parse(last).ok())
            .map_or(from, |h| h.last_offset() + 1),
    };
    if upto <= from {
        return Vec::new();
    }
    p.log()
        .aborted_transactions(from, upto)
        .into_iter()
        .map(|a| {
            kafka_protocol::messages::fetch_response::AbortedTransaction::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(a.producer_id))
                .with_first_offset(a.first_offset)
        })
        .collect()
}

/// Handles Fetch, waiting for data per `max_wait_ms`/`min_bytes`. Returns the response and,
/// for partitions served straight from segment files, `(sentinel, range)` pairs: the
/// partition's `records` hold the sentinel, which [`respond`] replaces with the range.
pub async fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: FetchRequest,
) -> (FetchResponse, Vec<(Bytes, FileSlice)>) {
    let mut names = Vec::with_capacity(req.topics.len());
    let mut readable = Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        names.push(t.topic.0.to_string());
        // ACLs: READ on the topic (TOPIC_AUTHORIZATION_FAILED per partition otherwise).
        readable.push(super::topic_allowed(
            broker,
            ctx,
            crate::auth::acl::Operation::Read,
            &t.topic.0,
        ));
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
        let (results, total) = read_all(broker, &req, &slots, &names, &readable);
        let any_error = results.iter().any(|(r, _)| r.error_code != code::NONE);
        if total >= min_bytes.max(1) || any_error || tokio::time::Instant::now() >= deadline {
            break results;
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            let (results, _) = read_all(broker, &req, &slots, &names, &readable);
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
    let mut slices = Vec::new();
    for (slot, (mut data, slice)) in slots.iter().zip(results) {
        let name = names.get(slot.topic_index);
        match (slice, name) {
            (Some(slice), name) => {
                if let Some(name) = name {
                    broker.metrics.fetched_range(
                        name,
                        slice.len,
                        slice.end_offset - slice.first_offset,
                    );
                }
                let mark = sentinel(slices.len());
                data = data.with_records(Some(mark.clone()));
                slices.push((mark, slice));
            }
            (None, Some(name)) => {
                if let Some(records) = &data.records {
                    broker.metrics.fetched(name, records);
                }
            }
            (None, None) => {}
        }
        if let Some(t) = topics.get_mut(slot.topic_index) {
            t.partitions.push(data);
        }
    }
    let resp = FetchResponse::default()
        .with_error_code(code::NONE)
        .with_session_id(0)
        .with_responses(topics);
    (resp, slices)
}

/// Stands in for the `i`th file range in an encoded response: 16 bytes, a per-process random
/// prefix and the index, so it cannot be guessed by a client putting it in a record.
fn sentinel(i: usize) -> Bytes {
    static NONCE: std::sync::OnceLock<[u8; 8]> = std::sync::OnceLock::new();
    let nonce = NONCE.get_or_init(|| {
        let id = uuid::Uuid::new_v4();
        let mut n = [0u8; 8];
        for (d, s) in n.iter_mut().zip(id.as_bytes()) {
            *d = *s;
        }
        n
    });
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(nonce);
    b.extend_from_slice(&(i as u64).to_be_bytes());
    Bytes::from(b)
}

/// Encodes a Fetch response whose partitions' records are, in part, file ranges: the
/// response is encoded with each range's sentinel as its records, then cut around the
/// sentinels, whose length prefixes are rewritten for the real ranges (an `INT32` before
/// v12, an unsigned varint of length + 1 from v12, the first flexible version). The writer
/// sends the pieces in order, the ranges with `sendfile`: stored batches go from the page
/// cache to the socket without passing through the broker's memory.
///
/// Should a sentinel not be found exactly once (it cannot happen unless the encoder
/// changes), the ranges are read into memory and the response encoded normally.
pub fn respond(
    version: i16,
    correlation_id: i32,
    resp: FetchResponse,
    slices: Vec<(Bytes, FileSlice)>,
) -> Outcome {
    use kafka_protocol::messages::{ApiKey, ResponseKind};
    let body = ResponseKind::Fetch(resp);
    let encoded = match super::encode_response(ApiKey::Fetch, version, correlation_id, &body) {
        Ok(e) if slices.is_empty() => return Outcome::Respond(e),
        Ok(e) => e.freeze(),
        Err(e) => return Outcome::Close(format!("cannot encode Fetch v{version} response: {e}")),
    };
    let flexible = version >= 12;
    // The encoded length prefix of a sentinel's records (16 bytes).
    let mark_prefix: &[u8] = if flexible { &[17] } else { &[0, 0, 0, 16] };
    // A records length prefix: INT32 before v12, unsigned varint of length + 1 from v12.
    let len_field = |len: usize| -> BytesMut {
        let mut b = BytesMut::with_capacity(5);
        if flexible {
            let mut v = len as u64 + 1;
            while v >= 0x80 {
                b.extend_from_slice(&[(v as u8 & 0x7f) | 0x80]);
                v >>= 7;
            }
            b.extend_from_slice(&[v as u8]);
        } else {
            b.extend_from_slice(&(len as i32).to_be_bytes());
        }
        b
    };
    // The frame length counts everything after itself: the encoded response with each
    // sentinel (and its prefix) replaced by the range (and its prefix).
    let frame_len = slices.iter().fold(encoded.len() - 4, |n, (mark, slice)| {
        n - mark_prefix.len() - mark.len() + len_field(slice.len).len() + slice.len
    });
    let Ok(frame_len) = i32::try_from(frame_len) else {
        return Outcome::Close("Fetch response larger than 2 GiB".into());
    };
    // The bytes before each file range are gathered into one buffer, so the writer makes one
    // write per stretch (no small packets with TCP_NODELAY).
    let mut parts = Vec::with_capacity(slices.len() * 2 + 1);
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(&frame_len.to_be_bytes());
    let mut from = 4usize; // past the encoded frame length
    let mut found = true;
    for (mark, slice) in &slices {
        let at = encoded
            .get(from..)
            .and_then(|rest| memchr::memmem::find(rest, mark))
            .map(|i| from + i);
        let Some((at, start)) = at.and_then(|at| {
            let start = at.checked_sub(mark_prefix.len()).filter(|&h| h >= from)?;
            (encoded.get(start..at) == Some(mark_prefix)).then_some((at, start))
        }) else {
            found = false;
            break;
        };
        head.extend_from_slice(encoded.get(from..start).unwrap_or_default());
        head.extend_from_slice(&len_field(slice.len));
        parts.push(Part::Bytes(head.split().freeze()));
        parts.push(Part::File(slice.clone()));
        from = at + mark.len();
    }
    let once = slices
        .iter()
        .all(|(mark, _)| memchr::memmem::find_iter(&encoded, mark.as_ref()).count() == 1);
    if !found || !once {
        tracing::warn!("Fetch response sentinel not found once; sending the records from memory");
        return respond_from_memory(version, correlation_id, body, &slices);
    }
    parts.push(Part::Bytes(encoded.slice(from..)));
    Outcome::RespondParts(parts)
}

/// The fallback of [`respond`]: reads the ranges and encodes them as ordinary records.
fn respond_from_memory(
    version: i16,
    correlation_id: i32,
    body: kafka_protocol::messages::ResponseKind,
    slices: &[(Bytes, FileSlice)],
) -> Outcome {
    use kafka_protocol::messages::{ApiKey, ResponseKind};
    let ResponseKind::Fetch(mut resp) = body else {
        return Outcome::Close("not a Fetch response".into());
    };
    for t in &mut resp.responses {
        for p in &mut t.partitions {
            let Some(records) = &p.records else { continue };
            if let Some((_, slice)) = slices.iter().find(|(m, _)| m == records) {
                match slice.read_to_bytes() {
                    Ok(b) => p.records = Some(b),
                    Err(e) => {
                        tracing::error!(error = %e, "read failed");
                        p.records = Some(Bytes::new());
                        p.error_code = code::KAFKA_STORAGE_ERROR;
                    }
                }
            }
        }
    }
    match super::encode_response(
        ApiKey::Fetch,
        version,
        correlation_id,
        &ResponseKind::Fetch(resp),
    ) {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => Outcome::Close(format!("cannot encode Fetch v{version} response: {e}")),
    }
}

/// ListOffsets (v1-v10): -2 earliest (`log_start_offset`, which DeleteRecords moves), -4
/// earliest local (the same: no tiered storage), -1 latest (`log_end_offset`), -3 the batch
/// with the largest timestamp, -5 latest tiered (-1: nothing is tiered), otherwise the first
/// batch with a timestamp at or after the one given (-1 offset when none). v10's
/// `timeout_ms` has nothing to wait for on one node.
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
            let described =
                super::topic_allowed(broker, ctx, crate::auth::acl::Operation::Describe, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if !described {
                        return resp.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                    }
                    let Some(part) = broker.topics.partition(&name, p.partition_index) else {
                        return resp.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let log = part.log();
                    let found = match p.timestamp {
                        // EARLIEST (-2) and (v8+, KIP-405) EARLIEST_LOCAL (-4): without
                        // tiered storage the local log starts at the log start offset.
                        -2 | -4 => Ok(Some((log.log_start_offset(), -1))),
                        // LATEST_TIERED (-5, v9+): nothing is tiered, so no offset (-1, as
                        // Kafka without remote storage) falls to the arm below.
                        // read_committed (v2+): the last stable offset.
                        -1 if req.isolation_level == 1 => Ok(Some((log.last_stable_offset(), -1))),
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
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let described =
                super::topic_allowed(broker, ctx, crate::auth::acl::Operation::Describe, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = EpochEndOffset::default().with_partition(p.partition);
                    if !described {
                        return resp
                            .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use shoal_log::FileSlice;

    use super::{respond, sentinel, Outcome, Part};

    /// The frame the writer would send: byte parts as they are, file ranges read from the file.
    fn assemble(outcome: Outcome) -> Vec<u8> {
        let Outcome::RespondParts(parts) = outcome else {
            panic!("expected parts, got {outcome:?}");
        };
        let mut out = Vec::new();
        for p in parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(&b),
                Part::File(f) => out.extend_from_slice(&f.read_to_bytes().unwrap()),
            }
        }
        out
    }

    #[test]
    fn file_ranges_are_spliced_into_a_frame_clients_decode_in_every_version() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        // 200 000 bytes: a varint length of three bytes from v12 on.
        let ranges = [(10u64, 200_000usize), (250_000, 77)];
        for version in [4i16, 11, 12] {
            let mut slices = Vec::new();
            let mut partitions = Vec::new();
            for (i, (position, len)) in ranges.iter().enumerate() {
                let mark = sentinel(i);
                partitions.push(
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_high_watermark(1000)
                        .with_records(Some(mark.clone())),
                );
                slices.push((
                    mark,
                    FileSlice {
                        file: Arc::clone(&file),
                        position: *position,
                        len: *len,
                        first_offset: 0,
                        end_offset: 1,
                    },
                ));
            }
            // A third partition answered from memory, between nothing and the end.
            partitions.push(
                PartitionData::default()
                    .with_partition_index(2)
                    .with_records(Some(Bytes::from_static(b"in-memory"))),
            );
            let resp =
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(partitions)]);
            let frame = assemble(respond(version, 42, resp, slices));
            let mut buf = Bytes::from(frame);
            let len = buf.get_i32() as usize;
            assert_eq!(len, buf.len(), "v{version}: frame length");
            let header =
                ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(version))
                    .unwrap();
            assert_eq!(header.correlation_id, 42);
            let decoded = FetchResponse::decode(&mut buf, version).unwrap();
            assert!(!buf.has_remaining(), "v{version}: nothing left over");
            let parts = &decoded.responses[0].partitions;
            for (i, (position, len)) in ranges.iter().enumerate() {
                let want = &content[*position as usize..*position as usize + len];
                assert_eq!(
                    parts[i].records.as_deref(),
                    Some(want),
                    "v{version} partition {i}"
                );
                assert_eq!(parts[i].high_watermark, 1000);
            }
            assert_eq!(parts[2].records.as_deref(), Some(&b"in-memory"[..]));
        }
    }
}
