//! Share-group (KIP-932) consumer throughput with explicit per-record acknowledgements, next
//! to the consumer-group throughput of the same records, broker and run.
//!
//! Every size is one fresh 1-partition topic filled first by the lean producer of
//! [`crate::native`] (acks -1). The same records are then read by:
//!
//! - a **consumer group** of one member, the baseline: a lean native consumer (KIP-848
//!   ConsumerGroupHeartbeat v1 to join, Fetch v12, OffsetCommit v9 every 5 s as
//!   `auto.commit.interval.ms` and once at the end), and librdkafka through `rdkafka` (a
//!   classic group: `subscribe`, auto commit every 5 s, a synchronous commit at the end);
//! - a **share group** of N members ([`ShareOptions`]), each a thread with its own
//!   connection and client-generated member id: ShareGroupHeartbeat v1 until the assignment
//!   arrives (topic ids), then ShareFetch v1 with share session epoch 0, 1, 2, ... (the
//!   later requests list a partition only to carry the previous fetch's acknowledgements);
//!   every record of the acquired ranges is acknowledged (Accept; an acquired offset without
//!   a record is a Gap), either as one acknowledgement batch per contiguous run of one type
//!   ([`AckMode::Ranges`], as Kafka's clients encode them) or as one batch per record
//!   ([`AckMode::PerRecord`], the worst case); heartbeats interleaved on the same connection
//!   every `heartbeat_interval_ms`; closed by ShareAcknowledge with epoch -1 carrying the last
//!   acknowledgements, then a leave heartbeat. The group config
//!   `share.auto.offset.reset=earliest` is set first (IncrementalAlterConfigs v1, resource
//!   type 32, GROUP).
//!
//! Counting: records are decoded (CRC-checked, `kafka-protocol`'s decoder); a share consumer
//! counts only records inside its acquired ranges. Distinct offsets are kept in one bitmap
//! per run, so a record delivered twice is a duplicate (reported; it must be 0), and a run
//! ends when every produced offset was seen. The clock runs from the first record received
//! by any member to the last record received *and* its acknowledgement (the closing
//! ShareAcknowledge, or the final OffsetCommit) answered. Acknowledgements that rode a
//! ShareFetch which then long-polled were applied before the broker started waiting (a
//! ShareFetch applies its acknowledgements first), so that wait is not counted; after the
//! run DescribeShareGroupOffsets must show the share-partition start offset at the log end
//! (everything acknowledged). Each configuration runs several times, each with a fresh group
//! on the same topic, and the median run is reported with the range. MB is 10^6 bytes of
//! record values.
//!
//! Works against any KIP-932 broker (Kafka 4.1+ with share groups enabled) whose partition
//! leaders are the bootstrap broker: it opens connections to the bootstrap address only.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use kafka_protocol::messages::{
    consumer_group_heartbeat_request, fetch_request, incremental_alter_configs_request,
    metadata_request::MetadataRequestTopic, offset_commit_request, share_acknowledge_request,
    share_fetch_request, ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, FetchRequest,
    FetchResponse, GroupId, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use serde::Serialize;
use uuid::Uuid;

use crate::native;

const SHARE_HEARTBEAT_VERSION: i16 = 1;
const SHARE_FETCH_VERSION: i16 = 1;
const SHARE_ACKNOWLEDGE_VERSION: i16 = 1;
const CONSUMER_HEARTBEAT_VERSION: i16 = 1;
const FETCH_VERSION: i16 = 12;
const OFFSET_COMMIT_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;
const ALTER_CONFIGS_VERSION: i16 = 1;
const DESCRIBE_SHARE_OFFSETS_VERSION: i16 = 0;
/// Config resource type GROUP (KIP-848/KIP-932 group configs).
const RESOURCE_GROUP: i8 = 32;
/// KIP-932 acknowledge types.
const ACK_GAP: i8 = 0;
const ACK_ACCEPT: i8 = 1;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// One blocking Kafka connection: a request, then its response.
struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    fn call<Q: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> anyhow::Result<R> {
        self.correlation_id = self.correlation_id.wrapping_add(1).max(1);
        let id = self.correlation_id;
        self.stream
            .write_all(&native::frame(key, version, id, req)?)
            .with_context(|| format!("sending {key:?}"))?;
        let (got, mut body) = native::read_response(&mut self.stream, key, version)
            .with_context(|| format!("awaiting the {key:?} response"))?;
        if got != id {
            bail!("{key:?}: response {got} arrived for request {id}");
        }
        R::decode(&mut body, version).with_context(|| format!("decoding {key:?} v{version}"))
    }
}

/// How a share consumer encodes its acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    /// One acknowledgement batch per contiguous run of offsets with one type (Kafka's
    /// clients): usually one batch per fetch.
    Ranges,
    /// One acknowledgement batch per record: the same per-record semantics, encoded at the
    /// greatest cost.
    PerRecord,
}

impl AckMode {
    /// `ranges` or `per-record`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ranges" | "range" => Some(Self::Ranges),
            "per-record" | "record" => Some(Self::PerRecord),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ranges => "ranges",
            Self::PerRecord => "per-record",
        }
    }
}

/// A topic's id and partitions, from Metadata v12.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<i32>,
}

/// Looks `topic` up (Metadata v12: names and topic ids).
pub fn describe_topic(bootstrap: &str, topic: &str) -> anyhow::Result<TopicInfo> {
    let mut c = Conn::connect(bootstrap, Duration::from_secs(30))?;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))
        ]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = c.call(ApiKey::Metadata, METADATA_VERSION, &req)?;
    let t = resp
        .topics
        .first()
        .with_context(|| format!("no metadata for {topic}"))?;
    if t.error_code != 0 {
        bail!("topic {topic}: error code {} in Metadata", t.error_code);
    }
    let mut partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    Ok(TopicInfo {
        name: topic.to_string(),
        id: t.topic_id,
        partitions,
    })
}

/// Sets the group config `name=value` (IncrementalAlterConfigs v1, resource type GROUP, SET).
pub fn set_group_config(
    bootstrap: &str,
    group: &str,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut c = Conn::connect(bootstrap, Duration::from_secs(30))?;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_GROUP)
            .with_resource_name(s(group))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(name))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        c.call(ApiKey::IncrementalAlterConfigs, ALTER_CONFIGS_VERSION, &req)?;
    for r in &resp.responses {
        if r.error_code != 0 {
            bail!(
                "setting {name}={value} on group {group}: error code {} ({})",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// The share-partition start offsets of `group` on `topic` (DescribeShareGroupOffsets v0).
pub fn share_start_offsets(
    bootstrap: &str,
    group: &str,
    topic: &TopicInfo,
) -> anyhow::Result<Vec<(i32, i64)>> {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let mut c = Conn::connect(bootstrap, Duration::from_secs(30))?;
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(s(topic.name.clone())))
                .with_partitions(topic.partitions.clone())])),
    ]);
    let resp: DescribeShareGroupOffsetsResponse = c.call(
        ApiKey::DescribeShareGroupOffsets,
        DESCRIBE_SHARE_OFFSETS_VERSION,
        &req,
    )?;
    let mut out = Vec::new();
    for g in &resp.groups {
        if g.error_code != 0 {
            bail!(
                "DescribeShareGroupOffsets {group}: error code {}",
                g.error_code
            );
        }
        for t in &g.topics {
            for p in &t.partitions {
                out.push((p.partition_index, p.start_offset));
            }
        }
    }
    Ok(out)
}

/// Distinct offsets seen in one run (offsets `0..len` of a 1-partition topic; other
/// partitions' offsets are folded in after it, each with its own range).
struct Seen {
    bits: Vec<AtomicU64>,
    /// First bit of each partition, indexed by partition.
    bases: Vec<u64>,
    /// Records expected per partition.
    lens: Vec<u64>,
    total: u64,
    distinct: AtomicU64,
    duplicates: AtomicU64,
    outside: AtomicU64,
}

impl Seen {
    fn new(lens: Vec<u64>) -> Self {
        let mut bases = Vec::with_capacity(lens.len());
        let mut total = 0u64;
        for l in &lens {
            bases.push(total);
            total += l;
        }
        Self {
            bits: (0..total.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            bases,
            lens,
            total,
            distinct: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            outside: AtomicU64::new(0),
        }
    }

    /// Marks `offset` of `partition`; false when it was seen before (a duplicate).
    fn mark(&self, partition: i32, offset: i64) -> bool {
        let p = usize::try_from(partition).unwrap_or(usize::MAX);
        let (Some(base), Some(len), Ok(o)) =
            (self.bases.get(p), self.lens.get(p), u64::try_from(offset))
        else {
            self.outside.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        if o >= *len {
            self.outside.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let bit = base + o;
        let mask = 1u64 << (bit % 64);
        let Some(word) = self.bits.get((bit / 64) as usize) else {
            return false;
        };
        if word.fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            self.distinct.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    fn complete(&self) -> bool {
        self.distinct.load(Ordering::Relaxed) >= self.total
    }
}

/// The clock and flags shared by the members of one run.
struct Shared {
    seen: Seen,
    t0: Instant,
    /// µs since `t0` of the first record received (u64::MAX: none yet).
    first_us: AtomicU64,
    /// µs since `t0` when the last records' acknowledgements (or commit) were answered.
    end_us: AtomicU64,
    bytes: AtomicU64,
    joined: AtomicUsize,
    go: AtomicBool,
    abort: AtomicBool,
}

impl Shared {
    fn new(seen: Seen) -> Self {
        Self {
            seen,
            t0: Instant::now(),
            first_us: AtomicU64::new(u64::MAX),
            end_us: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            joined: AtomicUsize::new(0),
            go: AtomicBool::new(false),
            abort: AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn received(&self, partition: i32, offset: i64, value_len: usize) -> bool {
        self.first_us.fetch_min(self.now_us(), Ordering::Relaxed);
        let new = self.seen.mark(partition, offset);
        if new {
            self.bytes.fetch_add(value_len as u64, Ordering::Relaxed);
        }
        new
    }

    /// Blocks until the run starts (every member joined), or fails when it was aborted.
    fn wait_for_go(&self, deadline: Instant) -> anyhow::Result<()> {
        self.joined.fetch_add(1, Ordering::SeqCst);
        while !self.go.load(Ordering::SeqCst) {
            if self.abort.load(Ordering::SeqCst) {
                bail!("aborted: another member failed");
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for the other members to join");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

/// Walks the complete record batches of `records` (a trailing partial batch, which a broker
/// may send under `max_bytes`, is skipped) and calls `f(offset, value_len)` for each record
/// of a data batch. Returns the offset after the last batch (its base offset plus last
/// offset delta plus one), if any.
fn for_each_record(records: &Bytes, mut f: impl FnMut(i64, usize)) -> anyhow::Result<Option<i64>> {
    let mut at = 0usize;
    let mut next = None;
    while let Some(header) = records.get(at..at + 61) {
        let base = i64::from_be_bytes(header[0..8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(header[8..12].try_into().unwrap_or_default());
        let attributes = i16::from_be_bytes(header[21..23].try_into().unwrap_or_default());
        let delta = i32::from_be_bytes(header[23..27].try_into().unwrap_or_default());
        let size = 12 + usize::try_from(len).context("negative batch length")?;
        if records.len() < at + size {
            break;
        }
        next = Some(base + i64::from(delta) + 1);
        if attributes & (1 << 5) == 0 {
            let mut batch = records.slice(at..at + size);
            let set = RecordBatchDecoder::decode(&mut batch)
                .map_err(|e| anyhow::anyhow!("decoding a record batch at {base}: {e}"))?;
            for r in &set.records {
                f(r.offset, r.value.as_ref().map_or(0, Bytes::len));
            }
        }
        at += size;
    }
    Ok(next)
}

/// Acknowledgement batches of one partition: `(first offset, last offset, type)`.
type AckRuns = Vec<(i64, i64, i8)>;

/// Acknowledgement batches for the acquired `ranges` (ascending), in which `present`
/// (ascending) are the offsets that held a record: Accept for those, Gap for the others.
fn ack_batches(ranges: &[(i64, i64)], present: &[i64], mode: AckMode) -> AckRuns {
    let mut out: AckRuns = Vec::new();
    let mut p = present.iter().peekable();
    for &(first, last) in ranges {
        for o in first..=last {
            while p.next_if(|&&x| x < o).is_some() {}
            let t = if p.next_if_eq(&&o).is_some() {
                ACK_ACCEPT
            } else {
                ACK_GAP
            };
            match out.last_mut() {
                Some(b) if mode == AckMode::Ranges && b.1 + 1 == o && b.2 == t => b.1 = o,
                _ => out.push((o, o, t)),
            }
        }
    }
    out
}

/// What one member did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemberStats {
    /// Records counted (new offsets).
    pub records: u64,
    pub fetches: u64,
    /// Fetches that returned no records.
    pub empty_fetches: u64,
    /// Acknowledgement batches sent (share) or offset commits (consumer group).
    pub ack_batches: u64,
    pub heartbeats: u64,
    /// Bytes of record batches received (what the broker sent, whole batches).
    pub batch_bytes: u64,
}

/// One share-group run.
#[derive(Debug, Clone)]
pub struct ShareOptions {
    pub bootstrap: String,
    pub topic: TopicInfo,
    /// Records in each partition of the topic (from offset 0).
    pub records_per_partition: Vec<u64>,
    pub group: String,
    pub consumers: usize,
    pub ack_mode: AckMode,
    /// ShareFetch `MaxRecords` and `BatchSize` (Kafka's share consumer: `max.poll.records`).
    pub max_records: i32,
    /// ShareFetch `MaxWaitMs` (`fetch.max.wait.ms`).
    pub max_wait_ms: i32,
    /// ShareFetch `MaxBytes` (`fetch.max.bytes`).
    pub max_bytes: i32,
    pub timeout: Duration,
}

/// One member of a share group (see the module docs).
fn share_member(o: &ShareOptions, sh: &Shared, deadline: Instant) -> anyhow::Result<MemberStats> {
    let mut c = Conn::connect(&o.bootstrap, o.timeout)?;
    let member_id = Uuid::new_v4().to_string();
    let mut st = MemberStats::default();
    let heartbeat = |c: &mut Conn, epoch: i32| -> anyhow::Result<ShareGroupHeartbeatResponse> {
        let req = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(o.group.clone())))
            .with_member_id(s(member_id.clone()))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names(Some(vec![TopicName(s(o.topic.name.clone()))]));
        let r: ShareGroupHeartbeatResponse =
            c.call(ApiKey::ShareGroupHeartbeat, SHARE_HEARTBEAT_VERSION, &req)?;
        if r.error_code != 0 {
            bail!(
                "ShareGroupHeartbeat (epoch {epoch}): error code {} ({})",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            );
        }
        Ok(r)
    };
    // Join, and heartbeat until the assignment names the topic.
    let mut epoch = 0;
    let mut interval;
    let partitions: Vec<i32> = loop {
        let r = heartbeat(&mut c, epoch)?;
        st.heartbeats += 1;
        epoch = r.member_epoch;
        interval = Duration::from_millis(u64::try_from(r.heartbeat_interval_ms).unwrap_or(5000));
        let assigned: Vec<i32> = r
            .assignment
            .iter()
            .flat_map(|a| a.topic_partitions.iter())
            .filter(|t| t.topic_id == o.topic.id)
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        if !assigned.is_empty() {
            break assigned;
        }
        if Instant::now() > deadline {
            bail!("no assignment within the timeout");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut last_heartbeat = Instant::now();
    sh.wait_for_go(deadline)?;

    let mut session_epoch = 0i32;
    // Acknowledgements of the previous fetch, per partition.
    let mut pending: Vec<(i32, AckRuns)> = Vec::new();
    let mut present: Vec<i64> = Vec::new();
    loop {
        if sh.abort.load(Ordering::Relaxed) {
            bail!("aborted: another member failed");
        }
        if sh.seen.complete() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "timed out: {} of {} records",
                sh.seen.distinct.load(Ordering::Relaxed),
                sh.seen.total
            );
        }
        if last_heartbeat.elapsed() >= interval {
            let r = heartbeat(&mut c, epoch)?;
            epoch = r.member_epoch;
            st.heartbeats += 1;
            last_heartbeat = Instant::now();
        }
        let topics = if session_epoch == 0 {
            vec![share_fetch_request::FetchTopic::default()
                .with_topic_id(o.topic.id)
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            share_fetch_request::FetchPartition::default().with_partition_index(p)
                        })
                        .collect(),
                )]
        } else if pending.is_empty() {
            Vec::new()
        } else {
            vec![share_fetch_request::FetchTopic::default()
                .with_topic_id(o.topic.id)
                .with_partitions(
                    pending
                        .iter()
                        .map(|(p, acks)| {
                            share_fetch_request::FetchPartition::default()
                                .with_partition_index(*p)
                                .with_acknowledgement_batches(
                                    acks.iter()
                                        .map(|&(f, l, t)| {
                                            share_fetch_request::AcknowledgementBatch::default()
                                                .with_first_offset(f)
                                                .with_last_offset(l)
                                                .with_acknowledge_types(vec![t])
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )]
        };
        st.ack_batches += pending.iter().map(|(_, a)| a.len() as u64).sum::<u64>();
        let req = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s(o.group.clone()))))
            .with_member_id(Some(s(member_id.clone())))
            .with_share_session_epoch(session_epoch)
            .with_max_wait_ms(o.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(o.max_bytes)
            .with_max_records(o.max_records)
            .with_batch_size(o.max_records)
            .with_topics(topics);
        let resp: ShareFetchResponse = c.call(ApiKey::ShareFetch, SHARE_FETCH_VERSION, &req)?;
        if resp.error_code != 0 {
            bail!(
                "ShareFetch (session epoch {session_epoch}): error code {} ({})",
                resp.error_code,
                resp.error_message.as_deref().unwrap_or("")
            );
        }
        session_epoch = if session_epoch == i32::MAX {
            1
        } else {
            session_epoch + 1
        };
        st.fetches += 1;
        pending.clear();
        let mut got = 0u64;
        for t in &resp.responses {
            for p in &t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "ShareFetch partition {}: error code {}",
                        p.partition_index,
                        p.error_code
                    );
                }
                if p.acknowledge_error_code != 0 {
                    bail!(
                        "ShareFetch partition {}: acknowledgements refused, error code {}",
                        p.partition_index,
                        p.acknowledge_error_code
                    );
                }
                if p.acquired_records.is_empty() {
                    continue;
                }
                let mut ranges: Vec<(i64, i64)> = p
                    .acquired_records
                    .iter()
                    .map(|a| (a.first_offset, a.last_offset))
                    .collect();
                ranges.sort_unstable();
                present.clear();
                let mut r = 0usize;
                let records = p.records.clone().unwrap_or_default();
                st.batch_bytes += records.len() as u64;
                for_each_record(&records, |offset, len| {
                    while ranges.get(r).is_some_and(|&(_, last)| last < offset) {
                        r += 1;
                    }
                    if ranges.get(r).is_some_and(|&(first, _)| first <= offset) {
                        present.push(offset);
                        if sh.received(p.partition_index, offset, len) {
                            got += 1;
                        }
                    }
                })?;
                pending.push((
                    p.partition_index,
                    ack_batches(&ranges, &present, o.ack_mode),
                ));
            }
        }
        st.records += got;
        if got == 0 {
            st.empty_fetches += 1;
        }
    }
    // Close the share session with the last acknowledgements, then leave the group.
    let had_acks = !pending.is_empty();
    st.ack_batches += pending.iter().map(|(_, a)| a.len() as u64).sum::<u64>();
    let topics: Vec<share_acknowledge_request::AcknowledgeTopic> = if had_acks {
        vec![share_acknowledge_request::AcknowledgeTopic::default()
            .with_topic_id(o.topic.id)
            .with_partitions(
                pending
                    .iter()
                    .map(|(p, acks)| {
                        share_acknowledge_request::AcknowledgePartition::default()
                            .with_partition_index(*p)
                            .with_acknowledgement_batches(
                                acks.iter()
                                    .map(|&(f, l, t)| {
                                        share_acknowledge_request::AcknowledgementBatch::default()
                                            .with_first_offset(f)
                                            .with_last_offset(l)
                                            .with_acknowledge_types(vec![t])
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )]
    } else {
        Vec::new()
    };
    if session_epoch != 0 {
        let req = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(s(o.group.clone()))))
            .with_member_id(Some(s(member_id.clone())))
            .with_share_session_epoch(-1)
            .with_topics(topics);
        let resp: ShareAcknowledgeResponse =
            c.call(ApiKey::ShareAcknowledge, SHARE_ACKNOWLEDGE_VERSION, &req)?;
        if resp.error_code != 0 {
            bail!(
                "ShareAcknowledge (close): error code {} ({})",
                resp.error_code,
                resp.error_message.as_deref().unwrap_or("")
            );
        }
        for t in &resp.responses {
            for p in &t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "ShareAcknowledge (close) partition {}: error code {}",
                        p.partition_index,
                        p.error_code
                    );
                }
            }
        }
        if had_acks {
            sh.end_us.fetch_max(sh.now_us(), Ordering::Relaxed);
        }
    }
    let _ = heartbeat(&mut c, -1);
    Ok(st)
}

/// Result of one run, share or consumer group.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub record_size: usize,
    /// `share` or `consumer-group`.
    pub kind: &'static str,
    /// `native` (this crate's lean client) or `librdkafka`.
    pub client: &'static str,
    pub consumers: usize,
    /// Share groups: `ranges` or `per-record`; consumer groups: `commit every 5 s`.
    pub acks: String,
    /// Records produced (and expected).
    pub records: u64,
    /// Distinct records received.
    pub received: u64,
    pub duplicates: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub members: Vec<MemberStats>,
    /// Share groups: the share-partition start offsets after the run (all acknowledged:
    /// the log end offset).
    pub start_offsets_after: Vec<(i32, i64)>,
    /// Share groups: every start offset was at the log end after the run (after every
    /// run, when this is the median of several).
    pub all_acked: Option<bool>,
    /// records/s of every run of this configuration, ascending (the row is the median's).
    pub runs_records_per_s: Vec<f64>,
    /// records/s over the native consumer group's of the same size and run.
    pub ratio_to_native_group: Option<f64>,
    /// records/s over the librdkafka consumer group's of the same size and run.
    pub ratio_to_librdkafka_group: Option<f64>,
}

fn outcome(
    sh: &Shared,
    record_size: usize,
    kind: &'static str,
    client: &'static str,
    acks: String,
    members: Vec<MemberStats>,
) -> Outcome {
    let first = sh.first_us.load(Ordering::Relaxed);
    let end = sh.end_us.load(Ordering::Relaxed);
    let secs = (end.saturating_sub(first) as f64 / 1e6).max(1e-9);
    let received = sh.seen.distinct.load(Ordering::Relaxed);
    Outcome {
        record_size,
        kind,
        client,
        consumers: members.len(),
        acks,
        records: sh.seen.total,
        received,
        duplicates: sh.seen.duplicates.load(Ordering::Relaxed),
        seconds: secs,
        records_per_s: received as f64 / secs,
        mb_per_s: sh.bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
        members,
        start_offsets_after: Vec::new(),
        all_acked: None,
        runs_records_per_s: Vec::new(),
        ratio_to_native_group: None,
        ratio_to_librdkafka_group: None,
    }
}

/// Runs `n` members on threads: each joins, the clock's run starts when all have joined;
/// the first error aborts the others.
fn run_members(
    n: usize,
    sh: &Shared,
    deadline: Instant,
    member: impl Fn() -> anyhow::Result<MemberStats> + Sync,
) -> anyhow::Result<Vec<MemberStats>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    let r = member();
                    if r.is_err() {
                        sh.abort.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        while sh.joined.load(Ordering::SeqCst) < n
            && !sh.abort.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        sh.go.store(true, Ordering::SeqCst);
        let mut out = Vec::with_capacity(n);
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(st)) => out.push(st),
                Ok(Err(e)) => {
                    // The member that failed first says why; the others report the abort.
                    if first_err.is_none() || !e.to_string().starts_with("aborted") {
                        first_err.get_or_insert(e);
                    }
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow::anyhow!("a member thread panicked"));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

/// Reads every record of the topic through a fresh share group of `o.consumers` members
/// (see the module docs).
///
/// Errors: any protocol error, a refused acknowledgement, or `o.timeout` passing.
pub fn share_consume(o: &ShareOptions, record_size: usize) -> anyhow::Result<Outcome> {
    set_group_config(
        &o.bootstrap,
        &o.group,
        "share.auto.offset.reset",
        "earliest",
    )?;
    let sh = Shared::new(Seen::new(o.records_per_partition.clone()));
    let deadline = Instant::now() + o.timeout;
    let members = run_members(o.consumers.max(1), &sh, deadline, || {
        share_member(o, &sh, deadline)
    })?;
    let mut out = outcome(
        &sh,
        record_size,
        "share",
        "native",
        o.ack_mode.label().to_string(),
        members,
    );
    out.start_offsets_after = share_start_offsets(&o.bootstrap, &o.group, &o.topic)?;
    out.all_acked = Some(
        o.topic.partitions.len() == out.start_offsets_after.len()
            && out.start_offsets_after.iter().all(|&(p, start)| {
                usize::try_from(p)
                    .ok()
                    .and_then(|p| o.records_per_partition.get(p))
                    .is_some_and(|&n| i64::try_from(n).is_ok_and(|n| n == start))
            }),
    );
    Ok(out)
}

/// One consumer-group baseline run.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub bootstrap: String,
    pub topic: TopicInfo,
    pub records_per_partition: Vec<u64>,
    pub group: String,
    /// Fetch `MaxWaitMs`.
    pub max_wait_ms: i32,
    /// Fetch `MaxBytes` (`fetch.max.bytes`).
    pub max_bytes: i32,
    /// Fetch `PartitionMaxBytes` (`max.partition.fetch.bytes`).
    pub partition_max_bytes: i32,
    /// `auto.commit.interval.ms`.
    pub commit_interval: Duration,
    pub timeout: Duration,
}

fn commit(
    c: &mut Conn,
    o: &GroupOptions,
    member_id: &str,
    epoch: i32,
    positions: &[(i32, i64)],
) -> anyhow::Result<()> {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(o.group.clone())))
        .with_generation_id_or_member_epoch(epoch)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(o.topic.name.clone())))
            .with_partitions(
                positions
                    .iter()
                    .map(|&(p, off)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(off)
                    })
                    .collect(),
            )]);
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION, &req)?;
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                bail!(
                    "OffsetCommit partition {}: error code {}",
                    p.partition_index,
                    p.error_code
                );
            }
        }
    }
    Ok(())
}

/// The single member of a KIP-848 consumer group reading the topic from the start.
fn group_member(o: &GroupOptions, sh: &Shared, deadline: Instant) -> anyhow::Result<MemberStats> {
    use consumer_group_heartbeat_request::TopicPartitions;
    let mut c = Conn::connect(&o.bootstrap, o.timeout)?;
    let member_id = Uuid::new_v4().to_string();
    let mut st = MemberStats::default();
    let heartbeat = |c: &mut Conn,
                     epoch: i32,
                     owned: &[i32]|
     -> anyhow::Result<ConsumerGroupHeartbeatResponse> {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(o.group.clone())))
            .with_member_id(s(member_id.clone()))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(300_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s(o.topic.name.clone()))]))
            .with_topic_partitions(Some(if owned.is_empty() {
                Vec::new()
            } else {
                vec![TopicPartitions::default()
                    .with_topic_id(o.topic.id)
                    .with_partitions(owned.to_vec())]
            }));
        let r: ConsumerGroupHeartbeatResponse = c.call(
            ApiKey::ConsumerGroupHeartbeat,
            CONSUMER_HEARTBEAT_VERSION,
            &req,
        )?;
        if r.error_code != 0 {
            bail!(
                "ConsumerGroupHeartbeat (epoch {epoch}): error code {} ({})",
                r.error_code,
                r.error_message.as_deref().unwrap_or("")
            );
        }
        Ok(r)
    };
    let mut epoch = 0;
    let mut interval;
    let partitions: Vec<i32> = loop {
        let r = heartbeat(&mut c, epoch, &[])?;
        st.heartbeats += 1;
        epoch = r.member_epoch;
        interval = Duration::from_millis(u64::try_from(r.heartbeat_interval_ms).unwrap_or(5000));
        let assigned: Vec<i32> = r
            .assignment
            .iter()
            .flat_map(|a| a.topic_partitions.iter())
            .filter(|t| t.topic_id == o.topic.id)
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        if !assigned.is_empty() {
            break assigned;
        }
        if Instant::now() > deadline {
            bail!("no assignment within the timeout");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Report the partitions as owned (the reconciliation completes).
    let r = heartbeat(&mut c, epoch, &partitions)?;
    epoch = r.member_epoch;
    st.heartbeats += 1;
    let mut last_heartbeat = Instant::now();
    sh.wait_for_go(deadline)?;
    // No committed offsets in a fresh group: every partition starts at its log start.
    let mut positions: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, 0)).collect();
    let mut last_commit = Instant::now();
    while !sh.seen.complete() {
        if sh.abort.load(Ordering::Relaxed) {
            bail!("aborted");
        }
        if Instant::now() > deadline {
            bail!(
                "timed out: {} of {} records",
                sh.seen.distinct.load(Ordering::Relaxed),
                sh.seen.total
            );
        }
        if last_heartbeat.elapsed() >= interval {
            let r = heartbeat(&mut c, epoch, &partitions)?;
            epoch = r.member_epoch;
            st.heartbeats += 1;
            last_heartbeat = Instant::now();
        }
        if last_commit.elapsed() >= o.commit_interval {
            commit(&mut c, o, &member_id, epoch, &positions)?;
            st.ack_batches += 1;
            last_commit = Instant::now();
        }
        let req = FetchRequest::default()
            .with_max_wait_ms(o.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(o.max_bytes)
            .with_isolation_level(0)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(o.topic.name.clone())))
                .with_partitions(
                    positions
                        .iter()
                        .map(|&(p, off)| {
                            fetch_request::FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(off)
                                .with_partition_max_bytes(o.partition_max_bytes)
                        })
                        .collect(),
                )]);
        let resp: FetchResponse = c.call(ApiKey::Fetch, FETCH_VERSION, &req)?;
        if resp.error_code != 0 {
            bail!("Fetch: error code {}", resp.error_code);
        }
        st.fetches += 1;
        let mut got = 0u64;
        for t in &resp.responses {
            for p in &t.partitions {
                let Some(pos) = positions.iter_mut().find(|(q, _)| *q == p.partition_index) else {
                    continue;
                };
                match p.error_code {
                    0 => {}
                    // OFFSET_OUT_OF_RANGE: auto.offset.reset=earliest.
                    1 => {
                        pos.1 = p.log_start_offset;
                        continue;
                    }
                    e => bail!("Fetch partition {}: error code {e}", p.partition_index),
                }
                let from = pos.1;
                let records = p.records.clone().unwrap_or_default();
                st.batch_bytes += records.len() as u64;
                let next = for_each_record(&records, |offset, len| {
                    if offset >= from && sh.received(p.partition_index, offset, len) {
                        got += 1;
                    }
                })?;
                if let Some(n) = next {
                    pos.1 = pos.1.max(n);
                }
            }
        }
        st.records += got;
        if got == 0 {
            st.empty_fetches += 1;
        }
    }
    commit(&mut c, o, &member_id, epoch, &positions)?;
    st.ack_batches += 1;
    sh.end_us.fetch_max(sh.now_us(), Ordering::Relaxed);
    let _ = heartbeat(&mut c, -1, &[]);
    Ok(st)
}

/// Reads every record of the topic as the one member of a fresh KIP-848 consumer group,
/// with this crate's lean client.
pub fn group_consume_native(o: &GroupOptions, record_size: usize) -> anyhow::Result<Outcome> {
    let sh = Shared::new(Seen::new(o.records_per_partition.clone()));
    let deadline = Instant::now() + o.timeout;
    let members = run_members(1, &sh, deadline, || group_member(o, &sh, deadline))?;
    Ok(outcome(
        &sh,
        record_size,
        "consumer-group",
        "native",
        format!("commit every {} s", o.commit_interval.as_secs()),
        members,
    ))
}

/// Reads every record of the topic as the one member of a fresh classic consumer group,
/// with librdkafka (`subscribe`, auto commit, a synchronous commit at the end).
pub fn group_consume_librdkafka(o: &GroupOptions, record_size: usize) -> anyhow::Result<Outcome> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::Message;
    let sh = Shared::new(Seen::new(o.records_per_partition.clone()));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &o.bootstrap)
        .set("group.id", &o.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            o.commit_interval.as_millis().to_string(),
        )
        .set("fetch.max.bytes", o.max_bytes.to_string())
        .set(
            "max.partition.fetch.bytes",
            o.partition_max_bytes.to_string(),
        )
        .set("fetch.wait.max.ms", o.max_wait_ms.to_string())
        .set("queued.min.messages", "1000000")
        .create()
        .context("librdkafka consumer")?;
    consumer
        .subscribe(&[o.topic.name.as_str()])
        .context("subscribe")?;
    let deadline = Instant::now() + o.timeout;
    let mut st = MemberStats::default();
    while !sh.seen.complete() {
        if Instant::now() > deadline {
            bail!(
                "timed out: {} of {} records",
                sh.seen.distinct.load(Ordering::Relaxed),
                sh.seen.total
            );
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.context("consume")?;
            if sh.received(
                m.partition(),
                m.offset(),
                m.payload().map_or(0, <[u8]>::len),
            ) {
                st.records += 1;
            }
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .context("commit")?;
    st.ack_batches += 1;
    sh.end_us.fetch_max(sh.now_us(), Ordering::Relaxed);
    let out = outcome(
        &sh,
        record_size,
        "consumer-group",
        "librdkafka",
        format!("auto commit every {} s", o.commit_interval.as_secs()),
        vec![st],
    );
    consumer.unsubscribe();
    Ok(out)
}

/// The whole comparison: for each size, a fresh topic, the consumer-group baselines, then
/// share groups of each size and acknowledgement mode.
#[derive(Debug, Clone)]
pub struct Options {
    pub bootstrap: String,
    /// `(record size, records)` per topic.
    pub sizes: Vec<(usize, u64)>,
    pub consumers: Vec<usize>,
    pub ack_modes: Vec<AckMode>,
    pub max_records: i32,
    pub max_wait_ms: i32,
    /// ShareFetch and Fetch `MaxBytes` (`fetch.max.bytes`, Kafka's default 52428800).
    pub max_bytes: i32,
    /// The producer's most bytes per batch (librdkafka's `batch.size`).
    pub batch_bytes: usize,
    /// Also the librdkafka consumer-group baseline.
    pub librdkafka: bool,
    /// Runs of every configuration (each a fresh group); the median is reported.
    pub runs: usize,
    /// Per run (produce, each consumer run).
    pub timeout: Duration,
}

/// Runs `run(i)` for `i` in `0..runs` (at least once) and returns the median outcome by
/// records/s, with every run's rate, the most duplicates of any run, and `all_acked` only
/// if every run acknowledged everything.
fn median_of(
    runs: usize,
    mut run: impl FnMut(usize) -> anyhow::Result<Outcome>,
) -> anyhow::Result<Outcome> {
    let mut outs = (0..runs.max(1))
        .map(&mut run)
        .collect::<anyhow::Result<Vec<_>>>()?;
    outs.sort_by(|a, b| a.records_per_s.total_cmp(&b.records_per_s));
    let rates: Vec<f64> = outs.iter().map(|o| o.records_per_s).collect();
    let duplicates = outs.iter().map(|o| o.duplicates).max().unwrap_or(0);
    let all_acked = outs
        .iter()
        .map(|o| o.all_acked)
        .reduce(|a, b| match (a, b) {
            (Some(a), Some(b)) => Some(a && b),
            _ => None,
        })
        .flatten();
    let mid = outs.len() / 2;
    let mut m = outs.swap_remove(mid);
    m.runs_records_per_s = rates;
    m.duplicates = duplicates;
    m.all_acked = all_acked;
    Ok(m)
}

/// Runs [`Options`], calling `report` after each run (the ratios are filled in once the
/// baselines of the size ran).
pub fn run(o: &Options, mut report: impl FnMut(&Outcome)) -> anyhow::Result<Vec<Outcome>> {
    let mut all = Vec::new();
    let tag = Uuid::new_v4().simple().to_string();
    let tag = tag.get(..8).unwrap_or("run");
    for &(size, records) in &o.sizes {
        let topic = format!("bench-share-{tag}-{size}");
        crate::throughput::create_topic(&o.bootstrap, &topic, 1)?;
        native::produce(&native::Options {
            bootstrap: o.bootstrap.clone(),
            topic: topic.clone(),
            record_size: size,
            records,
            acks: -1,
            batch_bytes: o.batch_bytes,
            max_in_flight: 5,
            timeout: o.timeout,
        })
        .with_context(|| format!("producing {records} records of {size} B"))?;
        let info = describe_topic(&o.bootstrap, &topic)?;
        let per_partition = vec![records];
        let group = GroupOptions {
            bootstrap: o.bootstrap.clone(),
            topic: info.clone(),
            records_per_partition: per_partition.clone(),
            group: format!("{topic}-group-native"),
            max_wait_ms: o.max_wait_ms,
            max_bytes: o.max_bytes,
            partition_max_bytes: 1_048_576,
            commit_interval: Duration::from_secs(5),
            timeout: o.timeout,
        };
        let native_group = median_of(o.runs, |i| {
            group_consume_native(
                &GroupOptions {
                    group: format!("{topic}-group-native-{i}"),
                    ..group.clone()
                },
                size,
            )
        })
        .context("native consumer group")?;
        report(&native_group);
        let base = native_group.records_per_s;
        all.push(native_group);
        let mut rd_base = None;
        if o.librdkafka {
            let mut r = median_of(o.runs, |i| {
                group_consume_librdkafka(
                    &GroupOptions {
                        group: format!("{topic}-group-librdkafka-{i}"),
                        ..group.clone()
                    },
                    size,
                )
            })
            .context("librdkafka consumer group")?;
            r.ratio_to_native_group = Some(r.records_per_s / base.max(1e-9));
            rd_base = Some(r.records_per_s);
            report(&r);
            all.push(r);
        }
        for &mode in &o.ack_modes {
            for &n in &o.consumers {
                let share = ShareOptions {
                    bootstrap: o.bootstrap.clone(),
                    topic: info.clone(),
                    records_per_partition: per_partition.clone(),
                    group: String::new(),
                    consumers: n,
                    ack_mode: mode,
                    max_records: o.max_records,
                    max_wait_ms: o.max_wait_ms,
                    max_bytes: o.max_bytes,
                    timeout: o.timeout,
                };
                let mut r = median_of(o.runs, |i| {
                    share_consume(
                        &ShareOptions {
                            group: format!("{topic}-share-{n}-{}-{i}", mode.label()),
                            ..share.clone()
                        },
                        size,
                    )
                })
                .with_context(|| format!("share group, {n} consumer(s), {} acks", mode.label()))?;
                r.ratio_to_native_group = Some(r.records_per_s / base.max(1e-9));
                r.ratio_to_librdkafka_group = rd_base.map(|b| r.records_per_s / b.max(1e-9));
                report(&r);
                all.push(r);
            }
        }
    }
    Ok(all)
}

/// One text row of [`table_header`]'s table.
pub fn table_row(o: &Outcome) -> String {
    let reader = match (o.kind, o.client) {
        ("share", _) => format!("share group, {} acks", o.acks),
        (_, client) => format!("consumer group ({client})"),
    };
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    let spso = match o.all_acked {
        Some(true) => " all acked".to_string(),
        Some(false) => format!(
            " NOT ALL ACKED: start offsets after: {:?}",
            o.start_offsets_after
        ),
        None => String::new(),
    };
    let k = |r: f64| format!("{:.0}k", r / 1000.0);
    let range = match (o.runs_records_per_s.first(), o.runs_records_per_s.last()) {
        (Some(&lo), Some(&hi)) if o.runs_records_per_s.len() > 1 => {
            format!("{}-{}", k(lo), k(hi))
        }
        _ => "-".to_string(),
    };
    let fetches: u64 = o.members.iter().map(|m| m.fetches).sum();
    let empty: u64 = o.members.iter().map(|m| m.empty_fetches).sum();
    let per: Vec<String> = o.members.iter().map(|m| m.records.to_string()).collect();
    let batch_bytes: u64 = o.members.iter().map(|m| m.batch_bytes).sum();
    let values = o.received as f64 * o.record_size as f64;
    let wire = if batch_bytes > 0 && values > 0.0 {
        format!("{:.1}", batch_bytes as f64 / values)
    } else {
        "-".to_string()
    };
    format!(
        "{:>5} {:<32} {:>3} {:>11.0} {:>13} {:>8.1} {:>8} {:>9} {:>4} {:>8} {:>6} {:>6}  {}{}",
        o.record_size,
        reader,
        o.consumers,
        o.records_per_s,
        range,
        o.mb_per_s,
        if o.kind == "share" || o.client == "librdkafka" {
            ratio(o.ratio_to_native_group)
        } else {
            "1.00".to_string()
        },
        ratio(o.ratio_to_librdkafka_group),
        o.duplicates,
        fetches,
        empty,
        wire,
        per.join("/"),
        spso
    )
}

/// The header of the text table: records/s is the median run's (`runs min-max` the
/// range), `x native` and `x rdkafka` are records/s over the
/// consumer group's (native, librdkafka) of the same size and run; `sent/v` is the bytes of
/// record batches the broker sent over the bytes of record values counted (whole batches
/// are sent, and a share consumer counts only its acquired records).
pub fn table_header() -> String {
    format!(
        "{:>5} {:<32} {:>3} {:>11} {:>13} {:>8} {:>8} {:>9} {:>4} {:>8} {:>6} {:>6}  {}",
        "size",
        "reader",
        "n",
        "records/s",
        "runs min-max",
        "MB/s",
        "x native",
        "x rdkafka",
        "dup",
        "fetches",
        "empty",
        "sent/v",
        "records per member"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_batches_ranges_and_per_record() {
        let ranges = [(10, 14), (15, 16), (20, 20)];
        let present = [10, 11, 13, 14, 15, 16, 20];
        assert_eq!(
            ack_batches(&ranges, &present, AckMode::Ranges),
            vec![
                (10, 11, ACK_ACCEPT),
                (12, 12, ACK_GAP),
                (13, 16, ACK_ACCEPT),
                (20, 20, ACK_ACCEPT)
            ]
        );
        let per = ack_batches(&ranges, &present, AckMode::PerRecord);
        assert_eq!(per.len(), 8);
        assert!(per.iter().all(|b| b.0 == b.1));
        assert_eq!(per.get(2), Some(&(12, 12, ACK_GAP)));
    }

    #[test]
    fn median_of_runs() {
        let one = |rate: f64, dup: u64, acked: bool| Outcome {
            record_size: 100,
            kind: "share",
            client: "native",
            consumers: 1,
            acks: "ranges".into(),
            records: 10,
            received: 10,
            duplicates: dup,
            seconds: 1.0,
            records_per_s: rate,
            mb_per_s: 0.0,
            members: Vec::new(),
            start_offsets_after: Vec::new(),
            all_acked: Some(acked),
            runs_records_per_s: Vec::new(),
            ratio_to_native_group: None,
            ratio_to_librdkafka_group: None,
        };
        let runs = [one(3.0, 0, true), one(1.0, 2, true), one(2.0, 0, false)];
        let m = median_of(3, |i| Ok(runs[i].clone())).unwrap_or_else(|_| one(0.0, 0, true));
        assert_eq!(m.records_per_s, 2.0);
        assert_eq!(m.runs_records_per_s, vec![1.0, 2.0, 3.0]);
        assert_eq!(m.duplicates, 2);
        assert_eq!(m.all_acked, Some(false));
    }

    #[test]
    fn seen_counts_duplicates_and_outside() {
        let s = Seen::new(vec![3, 2]);
        assert!(s.mark(0, 0));
        assert!(!s.mark(0, 0));
        assert!(s.mark(1, 1));
        assert!(!s.mark(0, 3));
        assert!(!s.mark(2, 0));
        assert_eq!(s.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(s.outside.load(Ordering::Relaxed), 2);
        for (p, o) in [(0, 1), (0, 2), (1, 0)] {
            assert!(s.mark(p, o));
        }
        assert!(s.complete());
    }

    #[test]
    fn records_of_complete_batches_only() {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let mk = |base: i64, n: i64| {
            let recs: Vec<Record> = (0..n)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: base + i,
                    sequence: i as i32,
                    timestamp: 0,
                    key: None,
                    value: Some(Bytes::from_static(b"abc")),
                    headers: Default::default(),
                })
                .collect();
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                recs.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: Compression::None,
                },
            )
            .unwrap_or_default();
            buf
        };
        let mut all = mk(0, 3);
        all.extend_from_slice(&mk(3, 2));
        let second = mk(5, 4);
        all.extend_from_slice(&second[..second.len() - 5]);
        let mut seen = Vec::new();
        let next = for_each_record(&all.freeze(), |o, l| seen.push((o, l)))
            .ok()
            .flatten();
        assert_eq!(next, Some(5));
        assert_eq!(seen, (0..5).map(|o| (o, 3)).collect::<Vec<_>>());
    }
}
