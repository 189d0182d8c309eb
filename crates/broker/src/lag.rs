//! Consumer lag, computed by the broker for one group: per partition with a committed offset
//! (or owned by a member), the committed offset (`current_offset`), the `log_end_offset`
//! (high watermark), the lag in records (`log_end_offset - current_offset`) and in seconds:
//! now minus the timestamp of the first record not yet consumed (the record at the committed
//! offset), 0 when caught up. The timestamp is the batch's first timestamp, so for a record in
//! the middle of a batch the seconds are an upper bound (the batch is never decoded).
//!
//! Owners come from the group: a consumer-protocol member's current assignment, or a classic
//! consumer's SyncGroup assignment.
//!
//! Share groups (KIP-932) have no committed offsets and no owners: per share-partition
//! ([`SharePartitionLag`]) the position is the share-partition start offset (SPSO) and the
//! lag is Kafka's share lag, the records from the SPSO to the high watermark not yet
//! acknowledged or archived (`HWM - SPSO - acknowledged - archived`, the finished records
//! counted in the in-flight window `[SPSO, SPEO)`; records still ARCHIVING, waiting for their
//! dead-letter record, count as lag); the seconds are the age of the record at the SPSO, the
//! oldest one not finished.
//!
//! The console's sampler ([`LagReader::sample`]) also records each topic's throughput (the
//! traffic counters of `metrics`), each group's throughput and each topic's compression
//! ratio into [`History`]. The ratio is measured off the produce path: once per sample, the
//! last batch of each partition that grew is read back and, when compressed, decompressed
//! (batches above [`MAX_SAMPLED_BATCH_BYTES`] as stored are skipped), on a blocking thread.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::Serialize;
use shoal_group::api::ShareGroupDescription;
use shoal_group::GroupError;

use crate::coordinator::CoordinatorHandle;
use crate::history::{CompressionSample, GroupProgress, History, LagSample};
pub use crate::metrics::RecordCounts;
use crate::metrics::{
    GroupScrape, Metrics, PartitionLagGauge, Scrape, SharePartitionGauge, TopicScrape,
};
use crate::topics::TopicManager;

/// The largest stored batch the compression sampler reads back and decompresses (bytes).
pub const MAX_SAMPLED_BATCH_BYTES: usize = 1 << 20;

/// One partition's lag in a group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Committed offset; -1 when the group has none for this partition.
    pub current_offset: i64,
    /// High watermark: the offset the next produced record gets.
    pub log_end_offset: i64,
    /// Records between the committed offset and the log end (from the log start when
    /// nothing is committed).
    pub lag: i64,
    /// Seconds since the first unconsumed record was produced; 0 when caught up.
    pub lag_seconds: f64,
    /// The member that owns the partition now, if any.
    pub member_id: Option<String>,
    pub client_id: Option<String>,
    pub host: Option<String>,
}

/// One share-partition of a share group as the operator sees it: the coordinator's window
/// with the log's offsets and the lag (see the module docs).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SharePartitionLag {
    pub topic: String,
    pub partition: i32,
    /// SPSO: every record before it is acknowledged or archived.
    pub start_offset: i64,
    /// SPEO: one past the last offset ever acquired.
    pub end_offset: i64,
    /// Bumped when an operator resets the start offset (AlterShareGroupOffsets).
    pub state_epoch: i32,
    pub log_start_offset: i64,
    /// High watermark.
    pub log_end_offset: i64,
    /// Records from the SPSO (or the log start, when retention passed it) to the high
    /// watermark not yet acknowledged or archived; at least 0.
    pub lag: i64,
    /// Seconds since the record at the SPSO was produced; 0 when the lag is 0.
    pub lag_seconds: f64,
    /// The in-flight window's records by state.
    pub records: RecordCounts,
}

/// Reads lag through the handles it needs: the coordinator (committed offsets, owners,
/// share-partitions), the topics (log offsets, first unconsumed timestamp, batches for the
/// compression sample) and the metrics (traffic counters for the throughput history).
#[derive(Debug, Clone, Copy)]
pub struct LagReader<'a> {
    pub groups: &'a CoordinatorHandle,
    pub topics: &'a TopicManager,
    pub metrics: &'a Metrics,
}

/// The first timestamp (ms) of the batch holding `from`, when `from` is before `end`.
fn batch_timestamp(log: &crate::topics::Log, from: i64, end: i64) -> Option<i64> {
    if from >= end {
        return None;
    }
    log.read(from, 1)
        .ok()
        .and_then(|r| shoal_log::batch::BatchHeader::parse(&r.records).ok())
        .map(|h| h.base_timestamp)
}

/// Seconds from `ts` (ms) to `now_ms`, 0 when there is no lag or no timestamp.
fn age_seconds(ts: Option<i64>, lag: i64, now_ms: i64) -> f64 {
    match ts {
        Some(ts) if lag > 0 && ts > 0 => ((now_ms - ts).max(0) as f64) / 1000.0,
        _ => 0.0,
    }
}

impl LagReader<'_> {
    /// The share-partitions of a share group `d` with their log offsets and lag, sorted by
    /// topic and partition. Partitions of deleted topics are left out.
    pub fn share_partitions(
        &self,
        d: &ShareGroupDescription,
        now_ms: i64,
    ) -> Vec<SharePartitionLag> {
        let mut out = Vec::with_capacity(d.partitions.len());
        for p in &d.partitions {
            let Some(part) = self.topics.partition(&p.topic, p.partition) else {
                continue;
            };
            let (start, end, ts) = {
                let log = part.log();
                let start = log.log_start_offset();
                let end = log.log_end_offset();
                let from = p.start_offset.max(start);
                (start, end, batch_timestamp(&log, from, end))
            };
            let finished = i64::try_from(p.counts.acknowledged + p.counts.archived).unwrap_or(0);
            let lag = (end - p.start_offset.max(start) - finished).max(0);
            out.push(SharePartitionLag {
                topic: p.topic.clone(),
                partition: p.partition,
                start_offset: p.start_offset,
                end_offset: p.end_offset,
                state_epoch: p.state_epoch,
                log_start_offset: start,
                log_end_offset: end,
                lag,
                lag_seconds: age_seconds(ts, lag, now_ms),
                records: p.counts.into(),
            });
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// A group's lag, partition by partition, sorted by topic and partition. For a share
    /// group: per share-partition, `current_offset` is the SPSO and the lag Kafka's share lag
    /// (see the module docs), with no owner.
    ///
    /// Errors: COORDINATOR_NOT_AVAILABLE when the coordinator is shutting down.
    pub async fn group_lag(
        &self,
        group_id: &str,
        now_ms: i64,
    ) -> Result<Vec<PartitionLag>, GroupError> {
        if let Ok(d) = self.groups.share_describe(group_id.to_string()).await? {
            return Ok(self
                .share_partitions(&d, now_ms)
                .into_iter()
                .map(|p| PartitionLag {
                    topic: p.topic,
                    partition: p.partition,
                    current_offset: p.start_offset,
                    log_end_offset: p.log_end_offset,
                    lag: p.lag,
                    lag_seconds: p.lag_seconds,
                    member_id: None,
                    client_id: None,
                    host: None,
                })
                .collect());
        }
        let committed = self
            .groups
            .fetch_offsets(group_id.to_string(), None)
            .await?;
        // (topic, partition) -> (member_id, client_id, host)
        let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
        match self.groups.consumer_describe(group_id.to_string()).await {
            Ok(d) => {
                for m in &d.members {
                    for (tid, ps) in &m.assignment {
                        let Some(name) = d.topic_names.get(tid).cloned() else {
                            continue;
                        };
                        for p in ps {
                            owners.insert(
                                (name.clone(), *p),
                                (
                                    m.member_id.clone(),
                                    m.client_id.clone(),
                                    m.client_host.clone(),
                                ),
                            );
                        }
                    }
                }
            }
            Err(_) => {
                if let Ok(d) = self.groups.describe(group_id.to_string()).await {
                    if d.protocol_type == "consumer" {
                        for m in &d.members {
                            let parts =
                                shoal_group::consumer_protocol::assigned_partitions(&m.assignment)
                                    .unwrap_or_default();
                            for (t, ps) in parts {
                                for p in ps {
                                    owners.insert(
                                        (t.clone(), p),
                                        (
                                            m.member_id.clone(),
                                            m.client_id.clone(),
                                            m.client_host.clone(),
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut rows: BTreeMap<(String, i32), i64> = committed
            .into_iter()
            .map(|(tp, v)| (tp, v.map_or(-1, |o| o.offset)))
            .collect();
        for tp in owners.keys() {
            rows.entry(tp.clone()).or_insert(-1);
        }
        let mut out = Vec::with_capacity(rows.len());
        for ((topic, partition), current) in rows {
            let Some(part) = self.topics.partition(&topic, partition) else {
                continue;
            };
            let (start, end, first_unconsumed_ts) = {
                let log = part.log();
                let start = log.log_start_offset();
                let end = log.log_end_offset();
                let from = if current < 0 {
                    start
                } else {
                    current.max(start)
                };
                (start, end, batch_timestamp(&log, from, end))
            };
            let lag = if current < 0 {
                end - start
            } else {
                (end - current).max(0)
            };
            let lag_seconds = age_seconds(first_unconsumed_ts, lag, now_ms);
            let owner = owners.get(&(topic.clone(), partition)).cloned();
            out.push(PartitionLag {
                topic,
                partition,
                current_offset: current,
                log_end_offset: end,
                lag,
                lag_seconds,
                member_id: owner.as_ref().map(|o| o.0.clone()),
                client_id: owner.as_ref().map(|o| o.1.clone()),
                host: owner.map(|o| o.2),
            });
        }
        Ok(out)
    }

    /// Every non-internal topic's offsets and every group's state and lag, for `/metrics`.
    pub async fn scrape(&self, now_ms: i64) -> Scrape {
        let topics = self
            .topics
            .list()
            .iter()
            .filter(|t| !t.internal)
            .map(|t| TopicScrape {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let log = p.log();
                        (p.index, log.log_start_offset(), log.log_end_offset())
                    })
                    .collect(),
            })
            .collect();
        let mut groups = Vec::new();
        let listed = self.groups.list().await.unwrap_or_default();
        let shares = if listed.iter().any(|g| g.group_type == "share") {
            self.groups.share_groups().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut share_members = Vec::with_capacity(shares.len());
        let mut share_partitions = Vec::new();
        for d in &shares {
            share_members.push((d.group_id.clone(), d.members.len()));
            for p in self.share_partitions(d, now_ms) {
                share_partitions.push(SharePartitionGauge {
                    group: d.group_id.clone(),
                    topic: p.topic,
                    partition: p.partition,
                    start_offset: p.start_offset,
                    end_offset: p.end_offset,
                    records: p.records,
                    lag: p.lag,
                });
            }
        }
        for g in listed {
            if g.group_type == "share" {
                // Not a consumer group: its gauges are the share-partition families.
                groups.push(GroupScrape {
                    group_id: g.group_id,
                    group_type: g.group_type,
                    state: g.state,
                    members: 0,
                    lag: None,
                });
                continue;
            }
            let lag = self.group_lag(&g.group_id, now_ms).await.ok();
            let members = lag.as_ref().map_or(0, |rows| {
                rows.iter()
                    .filter_map(|r| r.member_id.as_deref())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            });
            groups.push(GroupScrape {
                group_id: g.group_id,
                group_type: g.group_type,
                state: g.state,
                members,
                lag: lag.map(|rows| {
                    rows.into_iter()
                        .map(|r| PartitionLagGauge {
                            topic: r.topic,
                            partition: r.partition,
                            current_offset: r.current_offset,
                            lag: r.lag,
                            lag_seconds: r.lag_seconds,
                        })
                        .collect()
                }),
            });
        }
        Scrape {
            topics,
            groups,
            share_members,
            share_partitions,
        }
    }

    /// One round of the console's history at `now_ms` (see the module docs): every group's
    /// total lag, largest lag in seconds and throughput; every topic's throughput and
    /// compression. Groups and topics that are gone are forgotten.
    pub async fn sample(&self, history: &History, now_ms: i64) {
        let Ok(groups) = self.groups.list().await else {
            return;
        };
        let alive = groups.iter().map(|g| g.group_id.clone()).collect();
        history.retain_groups(&alive);
        let shares = if groups.iter().any(|g| g.group_type == "share") {
            self.groups.share_groups().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        self.metrics.retain_share_tallies(
            &shares
                .iter()
                .map(|d| d.group_id.clone())
                .collect::<BTreeSet<_>>(),
        );
        for d in &shares {
            let rows = self.share_partitions(d, now_ms);
            history.add_lag(
                &d.group_id,
                LagSample {
                    ts_ms: now_ms,
                    total_lag: rows.iter().map(|r| r.lag).sum(),
                    max_lag_seconds: rows.iter().map(|r| r.lag_seconds).fold(0.0, f64::max),
                },
            );
            // Done records: everything before the SPSO and the finished ones after it.
            let progress: GroupProgress = rows
                .iter()
                .map(|r| {
                    let done = r.start_offset
                        + i64::try_from(r.records.acknowledged + r.records.archived).unwrap_or(0);
                    (
                        (r.topic.clone(), r.partition),
                        (done, self.bytes_per_record(&r.topic, r.partition)),
                    )
                })
                .collect();
            history.add_group_progress(&d.group_id, now_ms, progress);
        }
        for g in groups.iter().filter(|g| g.group_type != "share") {
            if let Ok(rows) = self.group_lag(&g.group_id, now_ms).await {
                history.add_lag(
                    &g.group_id,
                    LagSample {
                        ts_ms: now_ms,
                        total_lag: rows.iter().map(|r| r.lag).sum(),
                        max_lag_seconds: rows.iter().map(|r| r.lag_seconds).fold(0.0, f64::max),
                    },
                );
                let progress: GroupProgress = rows
                    .iter()
                    .filter(|r| r.current_offset >= 0)
                    .map(|r| {
                        (
                            (r.topic.clone(), r.partition),
                            (
                                r.current_offset,
                                self.bytes_per_record(&r.topic, r.partition),
                            ),
                        )
                    })
                    .collect();
                history.add_group_progress(&g.group_id, now_ms, progress);
            }
        }
        self.sample_topics(history, now_ms).await;
    }

    /// Average stored bytes per record of a partition: log size over its offset range (0
    /// for an empty or unknown partition).
    fn bytes_per_record(&self, topic: &str, partition: i32) -> f64 {
        let Some(p) = self.topics.partition(topic, partition) else {
            return 0.0;
        };
        let log = p.log();
        let offsets = log.log_end_offset() - log.log_start_offset();
        if offsets <= 0 {
            0.0
        } else {
            log.size_bytes() as f64 / offsets as f64
        }
    }

    /// Every non-internal topic's traffic counters, and the compression of the last batch of
    /// each partition that grew since the previous sample.
    async fn sample_topics(&self, history: &History, now_ms: i64) {
        let topics: Vec<_> = self
            .topics
            .list()
            .into_iter()
            .filter(|t| !t.internal)
            .collect();
        history.retain_topics(&topics.iter().map(|t| t.name.clone()).collect());
        let mut batches: Vec<(String, Bytes)> = Vec::new();
        for t in &topics {
            history.add_topic_traffic(&t.name, now_ms, self.metrics.topic_traffic(&t.name));
            for p in &t.partitions {
                let (end, last) = {
                    let log = p.log();
                    let end = log.log_end_offset();
                    if end <= log.log_start_offset()
                        || history.compression_cursor(&t.name, p.index) == Some(end)
                    {
                        continue;
                    }
                    (end, log.read(end - 1, 1).ok().map(|r| r.records))
                };
                history.set_compression_cursor(&t.name, p.index, end);
                if let Some(last) = last.and_then(|r| last_batch(&r)) {
                    batches.push((t.name.clone(), last));
                }
            }
        }
        if batches.is_empty() {
            return;
        }
        let measured = tokio::task::spawn_blocking(move || {
            let mut by_topic: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
            for (topic, batch) in batches {
                if let Some((stored, raw)) = batch_sizes(&batch) {
                    let e = by_topic.entry(topic).or_default();
                    e.0 += 1;
                    e.1 += stored;
                    e.2 += raw;
                }
            }
            by_topic
        })
        .await
        .unwrap_or_default();
        for (topic, (batches, stored_bytes, uncompressed_bytes)) in measured {
            history.add_compression(
                &topic,
                CompressionSample {
                    ts_ms: now_ms,
                    batches,
                    stored_bytes,
                    uncompressed_bytes,
                },
            );
        }
    }
}

/// The last whole data batch of `records` (whole v2 batches as read from the log), if it is
/// at most [`MAX_SAMPLED_BATCH_BYTES`]; `None` for a control batch (transaction marker).
fn last_batch(records: &Bytes) -> Option<Bytes> {
    let mut pos = 0usize;
    let mut last = None;
    while let Some(h) = records
        .get(pos..)
        .and_then(|b| shoal_log::batch::BatchHeader::parse(b).ok())
    {
        let len = h.total_len();
        if len == 0 || records.len() < pos + len {
            break;
        }
        last = Some((pos, len, h.is_control()));
        pos += len;
    }
    let (pos, len, control) = last?;
    if control || len > MAX_SAMPLED_BATCH_BYTES {
        return None;
    }
    Some(records.slice(pos..pos + len))
}

/// A v2 batch's size as stored and uncompressed (61-byte header plus the records
/// decompressed with the batch's codec, kafka-protocol's decompressors); `None` when the
/// batch is malformed or its codec unknown.
fn batch_sizes(batch: &Bytes) -> Option<(u64, u64)> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    const HEADER: usize = 61;
    let h = shoal_log::batch::BatchHeader::parse(batch).ok()?;
    let stored = h.total_len();
    let mut body = batch.get(HEADER..stored).map(Bytes::copy_from_slice)?;
    let len = |b: &mut Bytes| Ok(b.len());
    let raw = match h.compression() {
        0 => body.len(),
        1 => Gzip::decompress(&mut body, len).ok()?,
        2 => Snappy::decompress(&mut body, len).ok()?,
        3 => Lz4::decompress(&mut body, len).ok()?,
        4 => Zstd::decompress(&mut body, len).ok()?,
        _ => return None,
    };
    Some((stored as u64, (HEADER + raw) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;
    use shoal_log::testkit::TestBatch;

    fn batch(compression: Compression) -> Bytes {
        let b = (0..50).fold(TestBatch::new().compression(compression), |b, i| {
            b.value(&format!("the same words again and again {i}"))
        });
        Bytes::from(b.encode())
    }

    #[test]
    fn compression_sample_measures_the_batch_as_stored_and_uncompressed() {
        let plain = batch(Compression::None);
        let (stored, raw) = batch_sizes(&plain).expect("sizes");
        assert_eq!(stored, plain.len() as u64);
        assert_eq!(raw, stored, "an uncompressed batch has ratio 1");
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(codec);
            let (stored, uncompressed) = batch_sizes(&b).expect("sizes");
            assert_eq!(stored, b.len() as u64);
            assert_eq!(
                uncompressed, raw,
                "{codec:?} decompresses to the plain batch's size"
            );
            assert!(stored < uncompressed, "{codec:?} saved nothing");
        }
        assert_eq!(batch_sizes(&plain.slice(0..40)), None, "a cut header");
    }

    #[test]
    fn the_sampled_batch_is_the_last_data_batch_within_the_bound() {
        let one = batch(Compression::None);
        let mut two = one.to_vec();
        let second = batch(Compression::Gzip);
        two.extend_from_slice(&second);
        assert_eq!(last_batch(&Bytes::from(two)), Some(second));
        assert_eq!(last_batch(&Bytes::new()), None);
    }
}
