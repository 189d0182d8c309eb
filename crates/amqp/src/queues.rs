//! A queue's storage, on the broker's own interfaces: its topic (created on declare), the
//! appends of published messages (one record batch per queue partition per burst), its
//! counts (ready = AVAILABLE records and records not yet in the share-partition window;
//! unacked = ACQUIRED), and acquisition for a consumer through the share group named after
//! the queue: the same `read_planned` → `share_acquire` steps a Kafka ShareFetch takes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use shoal_broker::handlers::share::{read_planned, trim};
use shoal_broker::topics::Partition;
use shoal_broker::Broker;
use shoal_group::api::{FetchStart, SharePartitionKey};

use crate::error::{AmqpError, AmqpResult};
use crate::message::{self, Message};
use crate::model::Queue;

/// One acquired message, ready to deliver.
#[derive(Debug, Clone)]
pub struct Acquired {
    pub key: SharePartitionKey,
    pub offset: i64,
    pub delivery_count: i16,
    pub message: Message,
}

/// The highest `share.delivery.count.limit` Kafka allows: a classic queue redelivers a
/// message at most this often (RabbitMQ: without limit; docs/compatibility.md).
pub const MAX_DELIVERY_COUNT_LIMIT: i64 = 10;

fn now_ms() -> i64 {
    shoal_broker::clock::now_ms()
}

/// Creates queue `q`'s topic if it does not exist (one partition; an existing topic of that
/// name is adopted, every partition of it consumed) and sets its share group's configs:
/// `share.auto.offset.reset=earliest` (a queue delivers what was published before its
/// first consumer) and `share.delivery.count.limit` (`x-delivery-limit`, else the broker's
/// maximum, [`MAX_DELIVERY_COUNT_LIMIT`]). Errors: 541 INTERNAL_ERROR when storage refuses.
pub async fn ensure_storage(broker: &Broker, q: &Queue) -> AmqpResult<()> {
    if broker.topics.get(&q.topic).is_none() {
        match broker.topics.create(&q.topic, 1, BTreeMap::new(), false) {
            Ok(_) | Err(shoal_broker::topics::TopicError::AlreadyExists) => {}
            Err(e) => {
                return Err(AmqpError::internal(format!(
                    "cannot create topic '{}' for queue '{}': {e}",
                    q.topic, q.name
                )))
            }
        }
    }
    let limit = q
        .int_arg("x-delivery-limit")
        .map(|l| l.clamp(2, MAX_DELIVERY_COUNT_LIMIT))
        .unwrap_or(MAX_DELIVERY_COUNT_LIMIT);
    let changes = vec![
        (
            "share.auto.offset.reset".to_string(),
            Some("earliest".to_string()),
        ),
        (
            "share.delivery.count.limit".to_string(),
            Some(limit.to_string()),
        ),
    ];
    match broker
        .groups
        .alter_group_configs(q.name.clone(), changes, false)
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(AmqpError::internal(format!(
            "cannot configure share group '{}': {e}",
            q.name
        ))),
        Err(e) => Err(AmqpError::internal(format!(
            "cannot configure share group '{}': {e}",
            q.name
        ))),
    }
}

/// The share-partitions of queue `q` (one per partition of its topic).
pub fn partitions(broker: &Broker, q: &Queue) -> Vec<SharePartitionKey> {
    match broker.topics.get(&q.topic) {
        Some(t) => (0..t.partitions.len() as i32)
            .map(|p| (q.topic.clone(), p))
            .collect(),
        None => Vec::new(),
    }
}

/// Where a message for queue `q` with `routing_key` goes: partition 0, or on a topic of
/// several partitions (adopted from Kafka) the FNV-1a hash of the routing key.
pub fn partition_for(broker: &Broker, q: &Queue, routing_key: &str) -> Option<Arc<Partition>> {
    let t = broker.topics.get(&q.topic)?;
    let n = t.partitions.len();
    if n <= 1 {
        return t.partitions.first().cloned();
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in routing_key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    t.partitions.get(h as usize % n).cloned()
}

/// Appends `messages` to `partition` as one uncompressed record batch and wakes waiting
/// consumers. Returns the partition to sync for durability. Errors: 541 INTERNAL_ERROR
/// (encode or append failed; nothing was appended).
pub fn append(broker: &Broker, partition: &Arc<Partition>, messages: &[Message]) -> AmqpResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let records: Vec<Record> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| message::to_record(m, i as i64))
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| AmqpError::internal(format!("cannot encode messages: {e}")))?;
    let result = partition.log().append(&buf, now_ms());
    result.map_err(|e| {
        AmqpError::internal(format!(
            "cannot append to {}-{}: {e}",
            partition.topic, partition.index
        ))
    })?;
    broker
        .metrics
        .appended(&partition.topic, buf.len(), messages.len() as u64);
    broker.notify_appended();
    Ok(())
}

/// Ready and unacknowledged message counts of queue `q`.
pub async fn counts(broker: &Broker, q: &Queue) -> (u64, u64) {
    let described = broker.groups.share_describe(q.name.clone()).await;
    let windows: BTreeMap<SharePartitionKey, (i64, u64, u64)> = match described {
        Ok(Ok(d)) => d
            .partitions
            .into_iter()
            .map(|p| {
                (
                    (p.topic, p.partition),
                    (p.end_offset, p.counts.available, p.counts.acquired),
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    let mut ready = 0u64;
    let mut unacked = 0u64;
    for key in partitions(broker, q) {
        let Some(p) = broker.topics.partition(&key.0, key.1) else {
            continue;
        };
        let (start, end) = {
            let log = p.log();
            (log.log_start_offset(), log.log_end_offset())
        };
        match windows.get(&key) {
            Some((speo, available, acquired)) => {
                ready += available + u64::try_from(end - (*speo).max(start)).unwrap_or(0);
                unacked += acquired;
            }
            None => ready += u64::try_from(end - start).unwrap_or(0),
        }
    }
    (ready, unacked)
}

/// Acquires up to `max` messages of queue `q` for share member `member` (whose session is
/// open), locked for `lock_ms`. `until` optionally bounds acquisition to messages for which
/// it returns true, stopping at the first that fails (for expiry at the queue head).
/// Errors: 541 INTERNAL_ERROR (the coordinator is gone, or a read failed).
pub async fn acquire(
    broker: &Broker,
    q: &Queue,
    member: &str,
    max: usize,
    lock_ms: i64,
) -> AmqpResult<Vec<Acquired>> {
    let plan = broker
        .groups
        .share_plan(q.name.clone(), member.to_string())
        .await
        .map_err(|e| AmqpError::internal(e.to_string()))?;
    acquire_planned(broker, q, member, plan, max, lock_ms, None).await
}

/// [`acquire`] from a given plan; with `until`, acquisition stops before the first message
/// (in log order from the head) for which `until` is false.
pub async fn acquire_planned(
    broker: &Broker,
    q: &Queue,
    member: &str,
    plan: Vec<(SharePartitionKey, FetchStart)>,
    max: usize,
    lock_ms: i64,
    until: Option<&(dyn Fn(&Message) -> bool + Sync)>,
) -> AmqpResult<Vec<Acquired>> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let max_bytes = max.saturating_mul(2048).clamp(64 << 10, 8 << 20);
    let (mut reads, data) = read_planned(broker, &plan, max_bytes);
    let mut decoded: BTreeMap<SharePartitionKey, BTreeMap<i64, Record>> = BTreeMap::new();
    for (read, d) in reads.iter_mut().zip(&data) {
        // AMQP delivers message by message: the limits are exact (no batch ends).
        read.batch_ends = Vec::new();
        if d.records.is_empty() {
            continue;
        }
        let mut bytes = d.records.clone();
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|e| AmqpError::internal(format!("cannot decode {}: {e}", q.topic)))?;
        let map = decoded.entry(read.key.clone()).or_default();
        for set in sets {
            for r in set.records {
                if !r.control {
                    map.insert(r.offset, r);
                }
            }
        }
        if let Some(keep) = until {
            let mut stop = read.to;
            for (o, r) in map.range(read.from..) {
                if !keep(&message::from_record(r, &q.name)) {
                    stop = *o;
                    break;
                }
            }
            read.to = stop.max(read.from);
        }
    }
    let initialized = reads.iter().any(|r| r.initial_offset.is_some());
    let (got, _) = broker
        .groups
        .share_acquire_locked(
            q.name.clone(),
            member.to_string(),
            reads,
            max,
            Some(lock_ms),
        )
        .await
        .map_err(|e| AmqpError::internal(e.to_string()))?;
    if got.is_empty() && initialized {
        // The first acquisition only set the share-partition's start (nothing was read for
        // it): read again from there.
        let plan = broker
            .groups
            .share_plan(q.name.clone(), member.to_string())
            .await
            .map_err(|e| AmqpError::internal(e.to_string()))?;
        if plan
            .iter()
            .all(|(_, s)| !matches!(s, FetchStart::Initialize(_)))
        {
            return Box::pin(acquire_planned(
                broker, q, member, plan, max, lock_ms, until,
            ))
            .await;
        }
    }
    let mut out = Vec::new();
    for (key, ranges) in got {
        let records = decoded.get(&key);
        for r in ranges {
            for offset in r.first_offset..=r.last_offset {
                // An offset without a record (a compacted or control offset) is
                // acknowledged as a gap by the caller: it has no message.
                let message = match records.and_then(|m| m.get(&offset)) {
                    Some(rec) => message::from_record(rec, &q.name),
                    None => Message {
                        exchange: String::new(),
                        routing_key: String::new(),
                        properties: Default::default(),
                        body: Bytes::new(),
                        timestamp_ms: -1,
                    },
                };
                out.push(Acquired {
                    key: key.clone(),
                    offset,
                    delivery_count: r.delivery_count,
                    message,
                });
            }
        }
    }
    let _ = trim; // the Kafka path trims bytes; AMQP decodes records instead.
    Ok(out)
}

/// Reads back the message at `offset` of `key` (for dead-lettering). `None` if gone.
pub fn read_message(
    broker: &Broker,
    key: &SharePartitionKey,
    offset: i64,
    queue: &str,
) -> Option<Message> {
    let p = broker.topics.partition(&key.0, key.1)?;
    let read = p.log().read(offset, 1).ok()?;
    let mut bytes = read.records;
    let sets = RecordBatchDecoder::decode_all(&mut bytes).ok()?;
    sets.into_iter()
        .flat_map(|s| s.records)
        .find(|r| r.offset == offset)
        .map(|r| message::from_record(&r, queue))
}
