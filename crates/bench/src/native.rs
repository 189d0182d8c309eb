//! A lean Kafka-protocol producer: measures a broker's produce path with as little client
//! work as a real producer can do, so that on a small machine where client and broker share
//! the cores the figure says what the broker can take, not what one client library can send.
//!
//! It is still a real producer: every request carries a freshly encoded magic-2 record batch
//! (`kafka-protocol`'s encoder: per-record varints, timestamps, CRC-32C) of `record_size`-byte
//! values, sent with `acks` as given (Produce v7; the batch is written after the request's
//! other fields, never copied into a request buffer), up to `max_in_flight` requests outstanding on one
//! connection (Kafka's `max.in.flight.requests.per.connection`), partitions taken in turn.
//! Every response is checked: a partition error fails the run.
//!
//! Works against any Kafka-compatible broker whose partition leaders are all the bootstrap
//! broker (it opens one connection; a leader elsewhere is an error, not a silent miss).
//! Throughput is counted from the first send to the last acknowledgement; latency is each
//! request's send-to-acknowledgement time (every record of a batch shares it). MB is 10^6
//! bytes of record values.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Serialize;

use crate::throughput::Percentiles;

const PRODUCE_VERSION: i16 = 7;
const METADATA_VERSION: i16 = 4;
const CLIENT_ID: &str = "shoal-bench-native";

/// Parameters of a native produce run.
#[derive(Debug, Clone)]
pub struct Options {
    pub bootstrap: String,
    /// An existing topic.
    pub topic: String,
    pub record_size: usize,
    pub records: u64,
    /// `acks`: 1 or -1 (0 has no responses to time).
    pub acks: i16,
    /// Most bytes per encoded batch (librdkafka's `batch.size` default: 1 000 000).
    pub batch_bytes: usize,
    /// Requests outstanding on the connection.
    pub max_in_flight: usize,
    pub timeout: Duration,
}

/// Result of [`produce`].
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub record_size: usize,
    pub records: u64,
    pub partitions: usize,
    pub acks: i16,
    pub requests: u64,
    pub produce_msgs_per_s: f64,
    pub produce_mb_per_s: f64,
    /// Send-to-acknowledgement time of each request (ms).
    pub request_latency: Percentiles,
}

pub(crate) fn frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    req: &R,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, key.request_header_version(version))
        .context("encoding request header")?;
    req.encode(&mut buf, version).context("encoding request")?;
    let len = i32::try_from(buf.len() - 4).context("request too large")?;
    buf.get_mut(0..4)
        .context("short buffer")?
        .copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Reads one response frame; returns its correlation id and body.
pub(crate) fn read_response(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
) -> anyhow::Result<(i32, Bytes)> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .context("reading response length")?;
    let len = usize::try_from(i32::from_be_bytes(len)).context("negative response length")?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).context("reading response")?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .context("decoding response header")?;
    Ok((header.correlation_id, body))
}

/// Partitions of `topic` and checks that the broker at `bootstrap` leads them all.
fn partitions(stream: &mut TcpStream, topic: &str) -> anyhow::Result<Vec<i32>> {
    let req = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string())))),
    ]));
    stream.write_all(&frame(ApiKey::Metadata, METADATA_VERSION, 0, &req)?)?;
    let (_, mut body) = read_response(stream, ApiKey::Metadata, METADATA_VERSION)?;
    let resp = MetadataResponse::decode(&mut body, METADATA_VERSION).context("Metadata")?;
    let local = stream.peer_addr()?;
    let node = resp.brokers.iter().find(|b| {
        b.port == i32::from(local.port())
            && (b.host.as_str() == local.ip().to_string() || b.host.as_str() == "localhost")
    });
    let t = resp
        .topics
        .first()
        .with_context(|| format!("no metadata for {topic}"))?;
    if t.error_code != 0 {
        bail!("topic {topic}: error code {} in Metadata", t.error_code);
    }
    let mut out = Vec::new();
    for p in &t.partitions {
        if let Some(n) = node {
            if p.leader_id != n.node_id {
                bail!(
                    "partition {} of {topic} is led by node {}, not the bootstrap broker; the native generator uses one connection",
                    p.partition_index,
                    p.leader_id.0
                );
            }
        }
        out.push(p.partition_index);
    }
    out.sort_unstable();
    if out.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    Ok(out)
}

/// Encodes one magic-2 batch of `count` records of `value`, timestamps now, into `buf`
/// (cleared first; its allocation is reused from batch to batch).
fn encode_batch(buf: &mut BytesMut, value: &Bytes, count: usize) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Consecutive, so the encoder keeps the records in one batch.
            sequence: i as i32,
            timestamp: now,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    buf.clear();
    RecordBatchEncoder::encode(
        buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encoding batch")
}

/// The bytes of a Produce v7 request frame that precede its one batch: length prefix, request
/// header, `transactional_id` (null), `acks`, `timeout_ms`, one topic, one partition, and
/// the records' length. The batch follows as is, in a second write (no copy into a frame).
fn produce_prefix(
    correlation_id: i32,
    acks: i16,
    topic: &str,
    partition: i32,
    batch_len: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut head = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(
            &mut head,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .context("encoding request header")?;
    let name_len = i16::try_from(topic.len()).context("topic name too long")?;
    let batch_len_i32 = i32::try_from(batch_len).context("batch too large")?;
    let body_len = 2 + 2 + 4 + 4 + 2 + topic.len() + 4 + 4 + 4;
    let total = i32::try_from(head.len() + body_len + batch_len).context("request too large")?;
    let mut out = Vec::with_capacity(4 + head.len() + body_len);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    out.extend_from_slice(&acks.to_be_bytes());
    out.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    out.extend_from_slice(&1i32.to_be_bytes()); // topics
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&1i32.to_be_bytes()); // partitions
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&batch_len_i32.to_be_bytes());
    Ok(out)
}

/// Produces `opts.records` records (see the module docs).
///
/// Errors: connection or protocol failures, a partition error in any response, or
/// `opts.timeout` passing.
pub fn produce(opts: &Options) -> anyhow::Result<Outcome> {
    if !matches!(opts.acks, 1 | -1) {
        bail!("acks must be 1 or -1");
    }
    let mut stream = TcpStream::connect(&opts.bootstrap)
        .with_context(|| format!("connecting to {}", opts.bootstrap))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(opts.timeout))?;
    let parts = partitions(&mut stream, &opts.topic)?;
    // Like librdkafka's `batch.size`, the limit counts the encoded batch: a record costs its
    // value plus about 10 bytes of length, delta and header fields.
    let per_batch = (opts.batch_bytes.saturating_sub(61) / (opts.record_size + 10)).max(1);
    let value = Bytes::from(
        (0..opts.record_size)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut batch = BytesMut::with_capacity(opts.batch_bytes + opts.batch_bytes / 8 + 1024);
    let mut reader = stream.try_clone()?;
    // (correlation id, send time, records) of each request in flight, in send order.
    let (tx, rx) = mpsc::sync_channel::<(i32, Instant, u64)>(opts.max_in_flight.max(1));
    let acks_reader = std::thread::spawn(move || -> anyhow::Result<(Vec<u32>, Instant)> {
        let mut latencies = Vec::new();
        let mut last = Instant::now();
        for (correlation_id, sent, _) in rx {
            let (id, mut body) = read_response(&mut reader, ApiKey::Produce, PRODUCE_VERSION)?;
            if id != correlation_id {
                bail!("response {id} arrived for request {correlation_id}");
            }
            let resp = ProduceResponse::decode(&mut body, PRODUCE_VERSION).context("Produce")?;
            for t in &resp.responses {
                for p in &t.partition_responses {
                    if p.error_code != 0 {
                        bail!("partition {}: error code {}", p.index, p.error_code);
                    }
                }
            }
            last = Instant::now();
            latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
        Ok((latencies, last))
    });
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut sent = 0u64;
    let mut requests = 0u64;
    let send_result = (|| -> anyhow::Result<()> {
        while sent < opts.records {
            if Instant::now() > deadline {
                bail!("timed out producing");
            }
            let count = per_batch.min((opts.records - sent) as usize);
            let partition = parts
                .get(requests as usize % parts.len())
                .copied()
                .unwrap_or(0);
            encode_batch(&mut batch, &value, count)?;
            let correlation_id = i32::try_from(requests % (i32::MAX as u64)).unwrap_or(0) + 1;
            let prefix = produce_prefix(
                correlation_id,
                opts.acks,
                &opts.topic,
                partition,
                batch.len(),
            )?;
            // Blocks while `max_in_flight` requests await their answers.
            tx.send((correlation_id, Instant::now(), count as u64))
                .map_err(|_| anyhow::anyhow!("the response reader stopped"))?;
            stream.write_all(&prefix).context("sending Produce")?;
            stream.write_all(&batch).context("sending Produce")?;
            sent += count as u64;
            requests += 1;
        }
        Ok(())
    })();
    drop(tx);
    let acked = acks_reader
        .join()
        .map_err(|_| anyhow::anyhow!("response reader panicked"))?;
    // The reader's error, when there is one, is why sending stopped.
    let (latencies, last) = acked?;
    send_result?;
    let secs = last.duration_since(start).as_secs_f64().max(1e-9);
    Ok(Outcome {
        record_size: opts.record_size,
        records: sent,
        partitions: parts.len(),
        acks: opts.acks,
        requests,
        produce_msgs_per_s: sent as f64 / secs,
        produce_mb_per_s: (sent as f64 * opts.record_size as f64) / secs / 1e6,
        request_latency: Percentiles::of(latencies),
    })
}
