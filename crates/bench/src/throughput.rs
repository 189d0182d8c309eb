//! Produce and consume throughput, produce (acknowledgement) latency and end-to-end latency,
//! with librdkafka, against any Kafka-compatible broker; plus the two limits the figures are
//! read against, measured by the same process: sequential write with fsync on a local disk,
//! and loopback TCP throughput.
//!
//! - [`produce_consume`]: a fresh topic; `records` records of `record_size` bytes as fast as
//!   the producer can send (`acks` as given, no compression); the time from the first send
//!   to the last acknowledgement gives msg/s and MB/s, and each record's send-to-ack time the
//!   latency percentiles. Then one consumer reads them all back from the beginning.
//! - [`end_to_end`]: a producer at a fixed rate and a consumer reading as they arrive; the
//!   latency is the consumer's receive time minus the send time stamped in the payload (µs).
//! - [`disk_baseline`], [`tcp_baseline`]: MB/s of the machine's own limits.
//!
//! MB is 10^6 bytes. Latencies are in ms.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::Serialize;

/// Parameters of one throughput run.
#[derive(Debug, Clone)]
pub struct Options {
    pub bootstrap: String,
    pub record_size: usize,
    pub records: u64,
    pub partitions: i32,
    /// `acks`: `1`, `-1` (all) or `0`.
    pub acks: String,
    /// Extra producer settings.
    pub producer_config: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Percentiles of a latency sample, in ms.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// From samples in µs.
    pub fn of(mut us: Vec<u32>) -> Self {
        if us.is_empty() {
            return Self::default();
        }
        us.sort_unstable();
        let at = |q: f64| {
            let i = ((us.len() as f64 - 1.0) * q).round() as usize;
            f64::from(us.get(i).copied().unwrap_or(0)) / 1000.0
        };
        Self {
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

/// Result of [`produce_consume`].
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub record_size: usize,
    pub records: u64,
    pub partitions: i32,
    pub acks: String,
    pub produce_msgs_per_s: f64,
    pub produce_mb_per_s: f64,
    /// Send-to-acknowledgement time of each record, at full speed.
    pub produce_latency: Percentiles,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
}

/// Creates `name` with `partitions` partitions (replication 1) through librdkafka's admin API.
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("admin client")?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res =
        block_on(admin.create_topics([&topic], &AdminOptions::new()))?.context("CreateTopics")?;
    for r in res {
        if let Err((t, e)) = r {
            bail!("cannot create {t}: {e}");
        }
    }
    Ok(())
}

struct Acks {
    start: Instant,
    /// Send-to-ack latencies (µs), one per acknowledged record.
    latencies: Mutex<Vec<u32>>,
    acked: AtomicU64,
    failed: AtomicU64,
    last_ack_us: AtomicU64,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, sent_us: usize) {
        let now = self.start.elapsed().as_micros() as u64;
        match r {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_us.fetch_max(now, Ordering::Relaxed);
                let lat = now.saturating_sub(sent_us as u64);
                if let Ok(mut l) = self.latencies.lock() {
                    l.push(u32::try_from(lat).unwrap_or(u32::MAX));
                }
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn producer(
    bootstrap: &str,
    acks: &str,
    extra: &[(String, String)],
) -> anyhow::Result<ThreadedProducer<Acks>> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("compression.type", "none")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        cfg.set(k, v);
    }
    cfg.create_with_context(Acks {
        start: Instant::now(),
        latencies: Mutex::new(Vec::new()),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_ack_us: AtomicU64::new(0),
    })
    .context("producer")
}

/// One produce-then-consume measurement (see the module docs).
///
/// Errors: the topic cannot be created, a delivery fails, or `timeout` passes.
pub fn produce_consume(opts: &Options) -> anyhow::Result<Outcome> {
    let topic = format!("bench-{}", uuid::Uuid::new_v4().simple());
    create_topic(&opts.bootstrap, &topic, opts.partitions)?;
    let p = producer(&opts.bootstrap, &opts.acks, &opts.producer_config)?;
    let payload = vec![b'x'; opts.record_size];
    let deadline = Instant::now() + opts.timeout;
    // Warm up the connection and the topic's metadata with one record.
    let _ = p.send::<[u8], [u8]>(BaseRecord::with_opaque_to(&topic, 0).payload(&payload));
    p.flush(Duration::from_secs(10)).context("warm-up flush")?;
    let ctx = p.context();
    let base_acked = ctx.acked.load(Ordering::Relaxed);
    if let Ok(mut l) = ctx.latencies.lock() {
        l.clear();
        l.reserve(opts.records as usize);
    }
    let t0 = ctx.start.elapsed().as_micros() as u64;
    let mut partition = 0i32;
    for _ in 0..opts.records {
        loop {
            let sent = ctx.start.elapsed().as_micros() as usize;
            let rec = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&topic, sent)
                .payload(&payload)
                .partition(partition);
            match p.send(rec) {
                Ok(()) => break,
                Err((e, _))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    std::thread::sleep(Duration::from_micros(200));
                    if Instant::now() > deadline {
                        bail!("timed out producing");
                    }
                }
                Err((e, _)) => bail!("produce: {e}"),
            }
        }
        partition = (partition + 1) % opts.partitions.max(1);
    }
    p.flush(deadline.saturating_duration_since(Instant::now()))
        .context("flush")?;
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} deliveries failed");
    }
    let acked = ctx.acked.load(Ordering::Relaxed) - base_acked;
    let produce_s = (ctx.last_ack_us.load(Ordering::Relaxed).saturating_sub(t0)) as f64 / 1e6;
    let latencies = std::mem::take(&mut *ctx.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    let produce_latency = Percentiles::of(latencies);

    // Consume everything back from the beginning (the warm-up record included).
    let total = acked + 1;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &opts.bootstrap)
        .set(
            "group.id",
            format!("bench-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .set("queued.min.messages", "1000000")
        .create()
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..opts.partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut got = 0u64;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    while got < total {
        if Instant::now() > deadline {
            bail!("timed out consuming ({got} of {total})");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.context("consume")?;
            first.get_or_insert_with(Instant::now);
            got += 1;
            bytes += m.payload().map_or(0, |p| p.len() as u64);
        }
    }
    let consume_s = first.map_or(0.0, |f| f.elapsed().as_secs_f64()).max(1e-9);
    let size = opts.record_size as f64;
    Ok(Outcome {
        record_size: opts.record_size,
        records: acked,
        partitions: opts.partitions,
        acks: opts.acks.clone(),
        produce_msgs_per_s: acked as f64 / produce_s.max(1e-9),
        produce_mb_per_s: acked as f64 * size / produce_s.max(1e-9) / 1e6,
        produce_latency,
        consume_msgs_per_s: got as f64 / consume_s,
        consume_mb_per_s: bytes as f64 / consume_s / 1e6,
    })
}

/// Result of [`end_to_end`].
#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    pub record_size: usize,
    pub rate_msgs_per_s: f64,
    pub records: u64,
    pub acks: String,
    /// Producer send to broker acknowledgement.
    pub produce_latency: Percentiles,
    /// Producer send to consumer receipt.
    pub end_to_end_latency: Percentiles,
}

/// Produces `rate` records/s for `seconds` (the records due are sent every millisecond;
/// `linger.ms=1`), with one consumer reading them when `consume` (each payload starts with
/// its send time, µs since the run started). Without a consumer, `end_to_end_latency` is
/// empty and `records` counts acknowledgements: the producer's latency at that rate alone,
/// as the maximum rate it is compared with was measured alone.
pub fn end_to_end(
    bootstrap: &str,
    record_size: usize,
    acks: &str,
    rate: f64,
    seconds: f64,
    partitions: i32,
    consume: bool,
) -> anyhow::Result<EndToEnd> {
    let topic = format!("bench-e2e-{}", uuid::Uuid::new_v4().simple());
    create_topic(bootstrap, &topic, partitions)?;
    let total = (rate * seconds) as u64;
    let p = producer(bootstrap, acks, &[("linger.ms".into(), "1".into())])?;
    let start = p.context().start;
    let reader = if consume {
        Some(spawn_reader(
            bootstrap, &topic, partitions, total, seconds, start,
        )?)
    } else {
        None
    };
    // Let the consumer's first fetch start before producing.
    std::thread::sleep(Duration::from_millis(500));
    if let Ok(mut l) = p.context().latencies.lock() {
        l.clear();
        l.reserve(total as usize);
    }
    let mut payload = vec![b'x'; record_size.max(8)];
    let t0 = Instant::now();
    let mut sent_count = 0u64;
    while sent_count < total {
        let due = ((t0.elapsed().as_secs_f64() * rate) as u64).min(total);
        while sent_count < due {
            let sent = start.elapsed().as_micros() as u64;
            if let Some(head) = payload.get_mut(..8) {
                head.copy_from_slice(&sent.to_be_bytes());
            }
            let mut rec = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&topic, sent as usize)
                .payload(&payload);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
            sent_count += 1;
        }
        std::thread::sleep(Duration::from_micros(1000));
    }
    p.flush(Duration::from_secs(30)).context("flush")?;
    let acked = std::mem::take(
        &mut *p
            .context()
            .latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    let lat = match reader {
        Some(r) => r
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??,
        None => Vec::new(),
    };
    Ok(EndToEnd {
        record_size,
        rate_msgs_per_s: rate,
        records: if consume {
            lat.len() as u64
        } else {
            acked.len() as u64
        },
        acks: acks.to_string(),
        produce_latency: Percentiles::of(acked),
        end_to_end_latency: Percentiles::of(lat),
    })
}

/// Sequential write of `bytes` in 1 MiB writes to a new file under `dir`, then one fsync:
/// MB/s including the fsync, the best of three runs; also the median of 20 fsyncs after
/// 4 KiB writes, in ms (the lowest of the three).
pub fn disk_baseline(dir: &std::path::Path, bytes: u64) -> anyhow::Result<(f64, f64)> {
    // The best of three: the figures are ratios against this limit, and a slow sample (this
    // machine is shared) would flatter them.
    let mut best = disk_write_once(dir, bytes)?;
    for _ in 0..2 {
        let (mbps, fsync_ms) = disk_write_once(dir, bytes)?;
        best = (best.0.max(mbps), best.1.min(fsync_ms));
    }
    Ok(best)
}

fn disk_write_once(dir: &std::path::Path, bytes: u64) -> anyhow::Result<(f64, f64)> {
    let path = dir.join(format!(
        "shoal-bench-disk-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| -> anyhow::Result<(f64, f64)> {
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let chunk = vec![0x5au8; 1 << 20];
        let t = Instant::now();
        let mut written = 0u64;
        while written < bytes {
            f.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        f.sync_all()?;
        let mbps = written as f64 / t.elapsed().as_secs_f64() / 1e6;
        let mut fsyncs = Vec::new();
        for _ in 0..20 {
            f.write_all(&chunk[..4096])?;
            let t = Instant::now();
            f.sync_data()?;
            fsyncs.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
        Ok((mbps, Percentiles::of(fsyncs).p50_ms))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Loopback TCP: `bytes` written in 64 KiB chunks to a reader thread; MB/s.
pub fn tcp_baseline(bytes: u64) -> anyhow::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let r = s.read(&mut buf)?;
            if r == 0 {
                return Ok(n);
            }
            n += r as u64;
        }
    });
    let mut s = std::net::TcpStream::connect(addr)?;
    let chunk = vec![0u8; 1 << 16];
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        s.write_all(&chunk)?;
        sent += chunk.len() as u64;
    }
    drop(s);
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    Ok(got as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// Shared counters for callers that want progress (unused by the library itself).
pub type Progress = Arc<AtomicU64>;

/// Starts a consumer of `topic` from the beginning on its own thread; it returns each
/// record's send-to-receipt time (µs) once `total` records arrived or `seconds` + 30 s
/// passed.
fn spawn_reader(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    total: u64,
    seconds: f64,
    start: Instant,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<Vec<u32>>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("bench-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .create()
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(std::thread::spawn(move || -> anyhow::Result<Vec<u32>> {
        let mut lat = Vec::with_capacity(total as usize);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds + 30.0);
        while (lat.len() as u64) < total && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                let m = m.context("consume")?;
                let now = start.elapsed().as_micros() as u64;
                let sent = m
                    .payload()
                    .and_then(|p| p.get(..8))
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(now);
                lat.push(u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX));
            }
        }
        Ok(lat)
    }))
}
