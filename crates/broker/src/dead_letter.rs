//! Dead-letter queues for share groups (KIP-1191): the task that writes a DLQ record for each
//! share-group record the coordinator moved to ARCHIVING (rejected, or at the delivery-count
//! limit, in a group with `errors.deadletterqueue.topic.name`), and reports back once the DLQ
//! record is durable so the record becomes ARCHIVED. Nothing is archived before its DLQ
//! record is on disk; a crash in between writes it again after the restart (at least once).
//!
//! A DLQ record goes to partition `source partition % DLQ partitions` and carries the headers
//! `__dlq.errors.topic`, `__dlq.errors.partition`, `__dlq.errors.offset`,
//! `__dlq.errors.group` (Kafka's names) and `__dlq.errors.delivery.count`,
//! `__dlq.errors.reason` (Shoal); with `errors.deadletterqueue.copy.record.enable=true` it
//! also has the original key, value and headers, and the original timestamp.
//!
//! Gating, as Kafka 4.4: the DLQ topic's name must start with
//! `errors.deadletterqueue.topic.name.prefix` (default `dlq.`) and the topic must have
//! `errors.deadletterqueue.group.enable=true`; a missing topic is created (with that config)
//! only if `errors.deadletterqueue.auto.create.topics.enable=true`. When the DLQ is gated
//! off, the records are archived without a DLQ record (and a WARN says why). A write that
//! fails (disk, fsync) is retried every second; the records stay ARCHIVING meanwhile, which
//! holds the share-partition's start offset back.
//!
//! The queue is unbounded by type but bounded in fact: a record waits here only while it is
//! ARCHIVING, inside its share-partition's in-flight window
//! (`group.share.partition.max.record.locks`).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use shoal_group::share::ArchiveReason;
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::state::Broker;
use crate::topics::Partition;

/// One record to dead-letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub group_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub delivery_count: i16,
    pub reason: ArchiveReason,
    /// `errors.deadletterqueue.topic.name`.
    pub dlq_topic: String,
    /// `errors.deadletterqueue.copy.record.enable`.
    pub copy_record: bool,
}

/// Sends records to the writer.
pub type DeadLetterTx = mpsc::UnboundedSender<Vec<DeadLetter>>;

/// Starts the writer; it stops when every sender is gone or the broker is dropped.
pub fn spawn(broker: Weak<Broker>, mut rx: mpsc::UnboundedReceiver<Vec<DeadLetter>>) {
    tokio::spawn(async move {
        while let Some(mut jobs) = rx.recv().await {
            while let Ok(more) = rx.try_recv() {
                jobs.extend(more);
            }
            let Some(b) = broker.upgrade() else { return };
            let mut pending = jobs;
            loop {
                match write(&b, &pending).await {
                    Ok(()) => break,
                    Err((failed, e)) => {
                        tracing::warn!(error = %e, records = failed.len(), "cannot write dead-letter records; retrying in 1 s (the records stay ARCHIVING)");
                        pending = failed;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
}

fn reason_text(r: ArchiveReason) -> &'static str {
    match r {
        ArchiveReason::Rejected => "rejected",
        ArchiveReason::DeliveryCountLimit => "delivery_count_limit",
        ArchiveReason::Gap => "gap",
        ArchiveReason::Recovered => "recovered",
    }
}

/// Why a DLQ topic is not usable, or `Ok` with its partitions.
fn usable(broker: &Broker, name: &str) -> Result<Vec<Arc<Partition>>, String> {
    let prefix = &broker.config.errors_deadletterqueue_topic_name_prefix;
    if !name.starts_with(prefix.as_str()) {
        return Err(format!(
            "{name} does not start with errors.deadletterqueue.topic.name.prefix {prefix:?}"
        ));
    }
    let topic = match broker.topics.get(name) {
        Some(t) => t,
        None if broker
            .config
            .errors_deadletterqueue_auto_create_topics_enable =>
        {
            let configs = BTreeMap::from([(
                "errors.deadletterqueue.group.enable".to_string(),
                "true".to_string(),
            )]);
            match broker
                .topics
                .create(name, broker.config.num_partitions, configs, false)
            {
                Ok(t) => t,
                Err(_) => broker
                    .topics
                    .get(name)
                    .ok_or_else(|| format!("cannot create DLQ topic {name}"))?,
            }
        }
        None => {
            return Err(format!(
            "{name} does not exist and errors.deadletterqueue.auto.create.topics.enable is false"
        ))
        }
    };
    if topic
        .configs
        .get("errors.deadletterqueue.group.enable")
        .map(|v| v.trim())
        != Some("true")
    {
        return Err(format!(
            "{name} does not have errors.deadletterqueue.group.enable=true"
        ));
    }
    Ok(topic.partitions.clone())
}

/// The original record at `offset`, for copying.
fn original(broker: &Broker, job: &DeadLetter) -> Option<Record> {
    let p = broker.topics.partition(&job.topic, job.partition)?;
    let read = p.log().read(job.offset, 1).ok()?;
    let mut bytes = read.records;
    let set = RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records.into_iter().find(|r| r.offset == job.offset)
}

fn dlq_record(broker: &Broker, job: &DeadLetter, i: usize) -> Record {
    let mut headers = indexmap::IndexMap::<StrBytes, Option<Bytes>>::new();
    let copied = if job.copy_record {
        original(broker, job)
    } else {
        None
    };
    if let Some(r) = &copied {
        for (k, v) in &r.headers {
            headers.insert(k.clone(), v.clone());
        }
    }
    let h = |v: String| Some(Bytes::from(v));
    headers.insert(
        StrBytes::from_static_str("__dlq.errors.topic"),
        h(job.topic.clone()),
    );
    headers.insert(
        StrBytes::from_static_str("__dlq.errors.partition"),
        h(job.partition.to_string()),
    );
    headers.insert(
        StrBytes::from_static_str("__dlq.errors.offset"),
        h(job.offset.to_string()),
    );
    headers.insert(
        StrBytes::from_static_str("__dlq.errors.group"),
        h(job.group_id.clone()),
    );
    headers.insert(
        StrBytes::from_static_str("__dlq.errors.delivery.count"),
        h(job.delivery_count.to_string()),
    );
    headers.insert(
        StrBytes::from_static_str("__dlq.errors.reason"),
        h(reason_text(job.reason).to_string()),
    );
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        sequence: i as i32 - 1,
        timestamp: copied.as_ref().map_or_else(now_ms, |r| r.timestamp),
        key: copied.as_ref().and_then(|r| r.key.clone()),
        value: copied.and_then(|r| r.value),
        headers,
    }
}

/// A DLQ partition and the records bound for it.
type Destination<'a> = (Arc<Partition>, Vec<&'a DeadLetter>);

/// Writes the DLQ records of `jobs`, waits for them to be durable, and reports each group's
/// records as dead-lettered (or as needing none, for a DLQ that is gated off). Errors: the
/// jobs not written, and why.
async fn write(broker: &Broker, jobs: &[DeadLetter]) -> Result<(), (Vec<DeadLetter>, String)> {
    let mut by_partition: BTreeMap<(String, i32), Destination<'_>> = BTreeMap::new();
    let mut gated: Vec<&DeadLetter> = Vec::new();
    for job in jobs {
        match usable(broker, &job.dlq_topic) {
            Ok(parts) => {
                let i = usize::try_from(job.partition).unwrap_or(0) % parts.len().max(1);
                match parts.get(i) {
                    Some(p) => by_partition
                        .entry((job.dlq_topic.clone(), p.index))
                        .or_insert_with(|| (Arc::clone(p), Vec::new()))
                        .1
                        .push(job),
                    None => gated.push(job),
                }
            }
            Err(why) => {
                tracing::warn!(group = %job.group_id, topic = %job.topic, partition = job.partition,
                    offset = job.offset, reason = %why, "dead-letter queue not usable; record archived without a DLQ record");
                gated.push(job);
            }
        }
    }
    let mut appended: Vec<&DeadLetter> = Vec::new();
    let mut failed: Vec<DeadLetter> = Vec::new();
    let mut error = String::new();
    let mut to_sync = Vec::new();
    for ((name, index), (p, list)) in &by_partition {
        let records: Vec<Record> = list
            .iter()
            .enumerate()
            .map(|(i, j)| dlq_record(broker, j, i))
            .collect();
        let mut buf = BytesMut::new();
        if let Err(e) = RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        ) {
            error = format!("encode for {name}-{index}: {e}");
            failed.extend(list.iter().map(|j| (*j).clone()));
            continue;
        }
        let result = p.log().append(&buf, now_ms());
        match result {
            Ok(_) => {
                broker
                    .metrics
                    .appended(name, buf.len(), crate::metrics::record_count(&buf));
                appended.extend(list.iter().copied());
                to_sync.push(Arc::clone(p));
            }
            Err(e) => {
                error = format!("append to {name}-{index}: {e}");
                failed.extend(list.iter().map(|j| (*j).clone()));
            }
        }
    }
    report(broker, &gated, false).await;
    if !to_sync.is_empty() {
        match broker.flusher.sync(to_sync).await {
            Ok(()) => {
                broker.notify_appended();
                report(broker, &appended, true).await;
            }
            Err(e) => {
                error = format!("fsync: {e}");
                failed.extend(appended.into_iter().cloned());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err((failed, error))
    }
}

/// Tells the coordinator which records are dead-lettered (`written`) or need no DLQ record.
async fn report(broker: &Broker, jobs: &[&DeadLetter], written: bool) {
    let mut by_key: BTreeMap<(String, String, i32), Vec<i64>> = BTreeMap::new();
    for j in jobs {
        by_key
            .entry((j.group_id.clone(), j.topic.clone(), j.partition))
            .or_default()
            .push(j.offset);
        if written {
            broker
                .metrics
                .share_dead_lettered(&j.group_id, &j.dlq_topic);
        }
    }
    for ((group, topic, partition), offsets) in by_key {
        if let Err(e) = broker
            .groups
            .share_dead_lettered(group.clone(), (topic, partition), offsets)
            .await
        {
            tracing::warn!(group = %group, error = %e, "cannot report dead-lettered records; they are written again after a restart");
        }
    }
}
