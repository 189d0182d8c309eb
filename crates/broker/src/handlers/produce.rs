//! Produce and InitProducerId.
//!
//! Produce takes exactly one batch per partition (as Kafka does for v3+), validates it (magic
//! 2, lengths, CRC-32C) and appends it byte for byte,
//! with only `base_offset` patched; compressed batches (gzip, snappy, lz4, zstd) are stored as
//! produced. A topic with `cleanup.policy=compact` refuses records without a key
//! (INVALID_RECORD with per-record `record_errors`); only its batches are decoded.
//! acks=-1 is acknowledged after the group-commit fsync that covers the batch, acks=1
//! after the write, acks=0 gets no response.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use shoal_log::{BatchError, LogError};

use super::{code, RequestContext};
use crate::auth::acl::{Operation, ResourceType};
use crate::clock::now_ms;
use crate::state::Broker;
use crate::topics::{Partition, TopicError};

/// Maps a storage error to the Kafka error code the producer receives.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::Batch(BatchError::CrcMismatch { .. }) => code::CORRUPT_MESSAGE,
        LogError::Batch(_) => code::INVALID_RECORD,
        LogError::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        LogError::InvalidProducerEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
        LogError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        LogError::Io(_) | LogError::Poisoned | LogError::IndexOverflow { .. } => {
            code::KAFKA_STORAGE_ERROR
        }
        LogError::Corrupt { .. } => code::CORRUPT_MESSAGE,
    }
}

/// Outcome of appending one partition's records.
struct Appended {
    error: i16,
    base_offset: i64,
    log_start_offset: i64,
    message: Option<String>,
    /// `log.flush.interval.messages` is reached: fsync before answering, whatever the acks.
    flush_due: bool,
    /// Another `log.flush.writeback.bytes` appended without an fsync: start one, unwaited.
    writeback_due: bool,
    /// Produce v8+ `record_errors`: `(batch_index, message)` of each rejected record.
    record_errors: Vec<(i32, String)>,
    /// The broker time of the append (ms since the epoch); the answer's
    /// `log_append_time_ms` for a `LogAppendTime` topic.
    append_time_ms: i64,
}

impl Appended {
    fn failed(error: i16, message: Option<String>) -> Self {
        Self {
            error,
            base_offset: -1,
            log_start_offset: -1,
            message,
            flush_due: false,
            writeback_due: false,
            record_errors: Vec::new(),
            append_time_ms: -1,
        }
    }
}

/// Indexes (within the batch) of records without a key; a compacted topic refuses them
/// (Kafka `LogValidator`: "Compacted topic cannot accept message without key"). Decodes the
/// batch (decompressing it), which only compacted topics pay for.
///
/// Errors: the batch cannot be decoded (a message for INVALID_RECORD).
fn keyless_records(batch: &[u8]) -> Result<Vec<i32>, String> {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| format!("cannot decode the batch: {e}"))?;
    Ok(set
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i32::try_from(i).unwrap_or(i32::MAX))
        .collect())
}

fn append_one(
    broker: &Broker,
    partition: &Partition,
    compacted: bool,
    records: Option<Bytes>,
) -> Appended {
    let Some(records) = records else {
        return Appended::failed(code::INVALID_RECORD, Some("records are null".into()));
    };
    if records.len() > broker.config.message_max_bytes.max(0) as usize {
        let message = format!("batch of {} bytes exceeds message.max.bytes", records.len());
        return Appended::failed(code::MESSAGE_TOO_LARGE, Some(message));
    }
    // Framing only here; the log validates the batch (CRC included) once, on append.
    // Produce v3+ carries exactly one batch per partition (Kafka `ProduceRequest.validateRecords`).
    let slice = match shoal_log::batch::split(&records) {
        Ok(spans) if spans.len() == 1 => spans.into_iter().next().and_then(|r| records.get(r)),
        Ok(_) => None,
        Err(e) => {
            return Appended::failed(
                log_error_code(&LogError::Batch(e.clone())),
                Some(e.to_string()),
            )
        }
    };
    let Some(slice) = slice else {
        let message =
            "Produce requests with version 3 and above must contain exactly one record batch";
        return Appended::failed(code::INVALID_RECORD, Some(message.into()));
    };
    if compacted {
        match keyless_records(slice) {
            Ok(bad) if bad.is_empty() => {}
            Ok(bad) => {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {}-{}.",
                    partition.topic, partition.index
                );
                let mut a = Appended::failed(code::INVALID_RECORD, Some(message.clone()));
                a.record_errors = bad.into_iter().map(|i| (i, message.clone())).collect();
                return a;
            }
            Err(message) => return Appended::failed(code::INVALID_RECORD, Some(message)),
        }
    }
    let mut log = partition.log();
    // A transactional batch must belong to an Ongoing transaction holding this partition
    // (KIP-890 part 1), checked under the partition lock: a marker cannot slip in between.
    if let Ok(h) = shoal_log::batch::BatchHeader::parse(slice) {
        if h.attributes & shoal_log::txn::TRANSACTIONAL_FLAG != 0 && h.has_producer_id() {
            use crate::txn_coordinator::Unverified;
            let checked = broker.txns.verifier.check(
                h.producer_id,
                h.producer_epoch,
                &partition.topic,
                partition.index,
            );
            match checked {
                Ok(()) => {}
                Err(Unverified::Fenced) => {
                    let message = "the producer was fenced by a newer epoch".to_string();
                    return Appended::failed(code::INVALID_PRODUCER_EPOCH, Some(message));
                }
                Err(Unverified::NotInTransaction) => {
                    let message = format!(
                        "producer {} has no ongoing transaction holding {}-{}",
                        h.producer_id, partition.topic, partition.index
                    );
                    return Appended::failed(code::INVALID_TXN_STATE, Some(message));
                }
            }
        }
    }
    // Appended straight from the request frame: no copy of the batch.
    let append_time_ms = now_ms();
    let info = match log.append(slice, append_time_ms) {
        Ok(info) => info,
        Err(e) => {
            if matches!(
                e,
                LogError::Io(_) | LogError::Poisoned | LogError::IndexOverflow { .. }
            ) {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "append failed");
            }
            return Appended::failed(log_error_code(&e), Some(e.to_string()));
        }
    };
    let unflushed = log.log_end_offset() - log.synced_offset();
    // Each time the unflushed bytes cross another multiple of the threshold: at most one
    // background fsync per threshold's worth of appends.
    let step = u64::try_from(broker.config.log_flush_writeback_bytes).unwrap_or(0);
    let dirty = log.unflushed_bytes();
    let writeback_due = step > 0 && dirty / step > dirty.saturating_sub(slice.len() as u64) / step;
    broker.metrics.appended(
        &partition.topic,
        slice.len(),
        crate::metrics::record_count(slice),
    );
    Appended {
        error: code::NONE,
        base_offset: info.base_offset,
        log_start_offset: log.log_start_offset(),
        message: None,
        flush_due: unflushed >= broker.config.log_flush_interval_messages,
        writeback_due,
        record_errors: Vec::new(),
        append_time_ms,
    }
}

/// A Produce whose batches are appended and which waits only for durability (acks=-1, or a
/// flush due by `log.flush.interval.messages`) before it is answered.
pub struct PendingProduce {
    acks: i16,
    api_version: i16,
    to_sync: Vec<Arc<Partition>>,
    responses: Vec<(TopicName, Vec<(PartitionProduceResponse, Appended)>)>,
}

/// The first phase of Produce, synchronous: validates and appends every partition's batch in
/// request order. Calling it for the requests of a connection in arrival order keeps each
/// partition's appends in that order, so the second phase ([`finish`], waiting for the
/// fsync) can overlap for pipelined requests.
/// Partitions a Produce must not append to, with the error code and message each answers.
pub type Refused = std::collections::HashMap<(String, i32), (i16, String)>;

/// Produce v12+ (KIP-890 part 2, transaction version 2): the partitions of the request's
/// transactional batches that are not yet in the producer's Ongoing transaction are added to
/// it, as Kafka's partition leader does through AddPartitionsToTxn. A
/// CONCURRENT_TRANSACTIONS (the previous transaction's markers being written) is retried
/// every 20 ms for up to 100 ms (`add.partitions.to.txn.retry.backoff.ms` and
/// `.backoff.max.ms`), then answered. Returns the partitions whose add failed: a stale
/// epoch answers INVALID_PRODUCER_EPOCH, an unavailable coordinator NOT_ENOUGH_REPLICAS,
/// the rest their own code (INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE,
/// CONCURRENT_TRANSACTIONS). Batches of a stale epoch are left to the append, which
/// refuses them.
/// A transactional Produce from a principal without WRITE on its `transactional_id`: every
/// partition answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED (Kafka fails the whole request).
pub fn transactional_id_refusals(
    broker: &Broker,
    ctx: &RequestContext,
    req: &ProduceRequest,
) -> Option<Refused> {
    let id = req.transactional_id.as_ref()?;
    if super::allowed(
        broker,
        ctx,
        Operation::Write,
        ResourceType::TransactionalId,
        id,
    ) {
        return None;
    }
    Some(
        req.topic_data
            .iter()
            .flat_map(|t| {
                t.partition_data.iter().map(|p| {
                    (
                        (t.name.0.to_string(), p.index),
                        (code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, String::new()),
                    )
                })
            })
            .collect(),
    )
}

pub async fn add_to_transaction(broker: &Broker, req: &ProduceRequest) -> Refused {
    use crate::txn_coordinator::Unverified;
    use shoal_txn::TxnError;
    let mut refused = Refused::new();
    let Some(transactional_id) = req.transactional_id.as_ref().map(|s| s.to_string()) else {
        return refused;
    };
    let mut producer = None;
    let mut missing = Vec::new();
    for topic in &req.topic_data {
        let name = topic.name.0.to_string();
        for pd in &topic.partition_data {
            let Some(records) = pd.records.as_ref() else {
                continue;
            };
            let Ok(h) = shoal_log::batch::BatchHeader::parse(records) else {
                continue;
            };
            if h.attributes & shoal_log::txn::TRANSACTIONAL_FLAG == 0 || !h.has_producer_id() {
                continue;
            }
            if broker.topics.partition(&name, pd.index).is_none() {
                continue;
            }
            let (pid, epoch) = *producer.get_or_insert((h.producer_id, h.producer_epoch));
            if (pid, epoch) != (h.producer_id, h.producer_epoch) {
                continue;
            }
            let checked = broker.txns.verifier.check(pid, epoch, &name, pd.index);
            if checked == Err(Unverified::NotInTransaction) {
                missing.push((name.clone(), pd.index));
            }
        }
    }
    let Some((pid, epoch)) = producer.filter(|_| !missing.is_empty()) else {
        return refused;
    };
    let backoff = std::time::Duration::from_millis(20);
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
    let result = loop {
        let r = broker
            .txns
            .add_partitions(transactional_id.clone(), pid, epoch, missing.clone(), 2)
            .await;
        match r {
            Err(TxnError::ConcurrentTransactions)
                if tokio::time::Instant::now() + backoff <= give_up =>
            {
                tokio::time::sleep(backoff).await;
            }
            r => break r,
        }
    };
    if let Err(e) = result {
        let c = match e {
            TxnError::ProducerFenced => code::INVALID_PRODUCER_EPOCH,
            TxnError::CoordinatorNotAvailable => code::NOT_ENOUGH_REPLICAS,
            e => super::txn::txn_error_code(e, 12, 2),
        };
        for tp in missing {
            refused.insert(tp, (c, e.to_string()));
        }
    }
    refused
}

pub fn append(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
    refused: &Refused,
) -> PendingProduce {
    let acks = req.acks;
    let mut to_sync: Vec<Arc<Partition>> = Vec::new();
    let mut writeback: Vec<Arc<Partition>> = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut appended_any = false;
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        // ACLs: WRITE on the topic; auto-creation also CREATE on the cluster or the topic.
        let can_write = super::allowed(broker, ctx, Operation::Write, ResourceType::Topic, &name);
        let mut topic_obj = broker.topics.get(&name);
        if topic_obj.is_none()
            && broker.config.auto_create_topics_enable
            && can_write
            && (super::cluster_allowed(broker, ctx, Operation::Create)
                || super::allowed(broker, ctx, Operation::Create, ResourceType::Topic, &name))
        {
            topic_obj = match broker.topics.create(
                &name,
                broker.config.num_partitions,
                Default::default(),
                false,
            ) {
                Ok(t) => Some(t),
                Err(TopicError::AlreadyExists) => broker.topics.get(&name),
                Err(_) => None,
            };
        }
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_log_append_time_ms(-1);
            let partition = topic_obj.as_ref().and_then(|t| {
                usize::try_from(pd.index)
                    .ok()
                    .and_then(|i| t.partitions.get(i))
            });
            let refusal = if refused.is_empty() {
                None
            } else {
                refused.get(&(name.clone(), pd.index))
            };
            let result = match (acks, &topic_obj, partition) {
                (a, _, _) if !matches!(a, -1..=1) => {
                    Appended::failed(code::INVALID_REQUIRED_ACKS, None)
                }
                _ if !can_write => Appended::failed(code::TOPIC_AUTHORIZATION_FAILED, None),
                (_, Some(t), _) if t.internal => Appended::failed(
                    code::INVALID_TOPIC_EXCEPTION,
                    Some("cannot produce to an internal topic".into()),
                ),
                (_, _, None) => Appended::failed(code::UNKNOWN_TOPIC_OR_PARTITION, None),
                (_, _, Some(_)) if refusal.is_some() => Appended::failed(
                    refusal.map_or(code::INVALID_TXN_STATE, |r| r.0),
                    refusal.map(|r| r.1.clone()).filter(|m| !m.is_empty()),
                ),
                (_, _, Some(p)) => {
                    let compacted = topic_obj.as_ref().is_some_and(|t| t.is_compacted());
                    let r = append_one(broker, p, compacted, pd.records);
                    if r.error == code::NONE {
                        appended_any = true;
                        let append_time = topic_obj
                            .as_ref()
                            .and_then(|t| t.configs.get("message.timestamp.type"))
                            .map_or(broker.config.log_message_timestamp_type.as_str(), |v| {
                                v.trim()
                            })
                            == "LogAppendTime";
                        if append_time {
                            resp = resp.with_log_append_time_ms(r.append_time_ms);
                        }
                        if acks == -1 || r.flush_due {
                            to_sync.push(Arc::clone(p));
                        } else if r.writeback_due {
                            writeback.push(Arc::clone(p));
                        }
                    }
                    r
                }
            };
            parts.push((resp, result));
        }
        // An owned name: nothing kept for the answer may point into the request frame, so the
        // connection's read buffer is free for the next frames while this one waits.
        responses.push((TopicName(StrBytes::from_string(name)), parts));
    }
    if appended_any {
        broker.notify_appended();
    }
    if !writeback.is_empty() {
        broker.flusher.sync_in_background(writeback);
    }
    PendingProduce {
        acks,
        api_version: ctx.api_version,
        to_sync,
        responses,
    }
}

/// The second phase of Produce: waits for the fsync that covers the appended batches (when
/// acks=-1 or a flush is due), then builds the response; `None` for acks=0. A failed fsync
/// turns every appended partition's answer into KAFKA_STORAGE_ERROR.
pub async fn finish(
    flusher: &crate::durability::Flusher,
    p: PendingProduce,
) -> Option<ProduceResponse> {
    let PendingProduce {
        acks,
        api_version,
        to_sync,
        responses,
    } = p;
    let mut sync_error = None;
    if !to_sync.is_empty() {
        if let Err(e) = flusher.sync(to_sync).await {
            sync_error = Some(e);
        }
    }
    if acks == 0 {
        return None;
    }
    Some(
        ProduceResponse::default().with_responses(
            responses
                .into_iter()
                .map(|(name, parts)| {
                    TopicProduceResponse::default()
                        .with_name(name)
                        .with_partition_responses(
                            parts
                                .into_iter()
                                .map(|(resp, r)| {
                                    let (error, message) = match (&sync_error, r.error) {
                                        (Some(e), code::NONE) => {
                                            (code::KAFKA_STORAGE_ERROR, Some(e.clone()))
                                        }
                                        _ => (r.error, r.message),
                                    };
                                    let mut resp = resp
                                        .with_error_code(error)
                                        .with_base_offset(r.base_offset)
                                        .with_log_start_offset(r.log_start_offset);
                                    if api_version >= 8 {
                                        resp = resp
                                            .with_error_message(message.map(StrBytes::from_string))
                                            .with_record_errors(
                                                r.record_errors
                                                    .into_iter()
                                                    .map(|(i, m)| {
                                                        BatchIndexAndErrorMessage::default()
                                                            .with_batch_index(i)
                                                            .with_batch_index_error_message(Some(
                                                                StrBytes::from_string(m),
                                                            ))
                                                    })
                                                    .collect(),
                                            );
                                    }
                                    resp
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

/// Produce v0-2 (message formats v0/v1, which Shoal does not store): parses the request just
/// enough to answer every partition with `UNSUPPORTED_VERSION`. `None` if malformed.
pub fn legacy_unsupported(body: &[u8], version: i16, correlation_id: i32) -> Option<BytesMut> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (h, t) = (self.0.get(..n)?, self.0.get(n..)?);
            self.0 = t;
            Some(h)
        }
        fn i16(&mut self) -> Option<i16> {
            Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
        }
        fn i32(&mut self) -> Option<i32> {
            Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
    }
    let mut r = R(body);
    let _acks = r.i16()?;
    let _timeout = r.i32()?;
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&correlation_id.to_be_bytes());
    let topics = r.i32()?;
    if topics < 0 || topics as usize > body.len() {
        return None;
    }
    out.extend_from_slice(&topics.to_be_bytes());
    for _ in 0..topics {
        let n = r.i16()?;
        let name = r.take(usize::try_from(n).ok()?)?;
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(name);
        let parts = r.i32()?;
        if parts < 0 || parts as usize > body.len() {
            return None;
        }
        out.extend_from_slice(&parts.to_be_bytes());
        for _ in 0..parts {
            let index = r.i32()?;
            let size = r.i32()?;
            r.take(usize::try_from(size).ok()?)?;
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&code::UNSUPPORTED_VERSION.to_be_bytes());
            out.extend_from_slice(&(-1i64).to_be_bytes());
            if version >= 2 {
                out.extend_from_slice(&(-1i64).to_be_bytes());
            }
        }
    }
    if version >= 1 {
        out.extend_from_slice(&0i32.to_be_bytes());
    }
    let len = (out.len() - 4) as i32;
    out.get_mut(0..4)?.copy_from_slice(&len.to_be_bytes());
    Some(out)
}

/// InitProducerId for idempotent producers (no `transactional_id`; transactional ones are
/// [`super::txn::init_producer_id`]): a new producer id with epoch 0, or, when the client
/// presents its current id and epoch (KIP-360), the same id with the epoch bumped.
pub fn init_producer_id(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp
            .with_error_code(code::NONE)
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.topics.allocate_producer_id() {
        Ok(id) => resp
            .with_error_code(code::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate producer id");
            resp.with_error_code(code::KAFKA_STORAGE_ERROR)
        }
    }
}
