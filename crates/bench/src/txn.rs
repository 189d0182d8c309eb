//! Transactional produce throughput (KIP-98) next to idempotent produce of the same records in
//! the same run, with librdkafka, against any Kafka-compatible broker.
//!
//! Each run writes `records` records of `record_size` bytes to a fresh topic of `partitions`
//! partitions (keys round-robin over the partitions):
//! - **idempotent**: `enable.idempotence=true` (acks=all), `linger.ms=5`; time from the first
//!   send to the end of `flush`;
//! - **transactional**, for each size in `txn_sizes`: `transactional.id` set, the records in
//!   transactions of that many records (begin, send, `commit_transaction`); time from
//!   `init_transactions` returning to the last commit returning, and each commit's duration
//!   (the flush of the transaction's records, then `commit_transaction`: EndTxn and the
//!   markers).
//!
//! MB is 10^6 bytes; latencies in ms. Every record must be acknowledged (a failed delivery or
//! commit fails the run).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde::Serialize;

use crate::throughput::{create_topic, Percentiles};

/// Parameters of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub bootstrap: String,
    /// Bytes of each record's value.
    pub record_size: usize,
    /// Records per producer (the same count for every mode).
    pub records: u64,
    /// Records per transaction, one transactional run each (e.g. 100 and 1000).
    pub txn_sizes: Vec<u64>,
    pub partitions: i32,
    pub timeout: Duration,
}

/// One producer's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `idempotent` or `transactional`.
    pub mode: String,
    /// Records per transaction; 0 for the idempotent producer.
    pub records_per_txn: u64,
    pub records: u64,
    pub record_size: usize,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// This producer's msg/s over the idempotent producer's of the same run.
    pub ratio_to_idempotent: f64,
    /// Duration of each `commit_transaction` (empty for the idempotent producer).
    pub commit: Percentiles,
}

#[derive(Default)]
struct Counting {
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn producer(opts: &Options, extra: &[(&str, String)]) -> anyhow::Result<BaseProducer<Counting>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &opts.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for (k, v) in extra {
        c.set(*k, v);
    }
    c.create_with_context(Counting::default())
        .context("producer")
}

/// Sends record `i` of the run, polling while librdkafka's queue is full.
fn send(
    p: &BaseProducer<Counting>,
    topic: &str,
    value: &[u8],
    i: u64,
    partitions: i32,
    deadline: Instant,
) -> anyhow::Result<()> {
    let partition = i32::try_from(i % u64::try_from(partitions.max(1)).unwrap_or(1)).unwrap_or(0);
    let key = i.to_be_bytes();
    let mut record = BaseRecord::to(topic)
        .key(&key[..])
        .payload(value)
        .partition(partition);
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                if Instant::now() > deadline {
                    bail!("timed out with librdkafka's queue full");
                }
                record = r;
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => bail!("send: {e}"),
        }
    }
}

fn check_delivered(p: &BaseProducer<Counting>, records: u64) -> anyhow::Result<()> {
    let (acked, failed) = (
        p.context().acked.load(Ordering::Relaxed),
        p.context().failed.load(Ordering::Relaxed),
    );
    if failed > 0 || acked != records {
        bail!("{acked} of {records} records acknowledged, {failed} failed");
    }
    Ok(())
}

fn idempotent(opts: &Options, topic: &str, value: &[u8]) -> anyhow::Result<(f64, Percentiles)> {
    let p = producer(opts, &[])?;
    let deadline = Instant::now() + opts.timeout;
    let start = Instant::now();
    for i in 0..opts.records {
        send(&p, topic, value, i, opts.partitions, deadline)?;
        p.poll(Duration::ZERO);
    }
    p.flush(opts.timeout).context("flush")?;
    let secs = start.elapsed().as_secs_f64();
    check_delivered(&p, opts.records)?;
    Ok((secs, Percentiles::default()))
}

fn transactional(
    opts: &Options,
    topic: &str,
    value: &[u8],
    per_txn: u64,
) -> anyhow::Result<(f64, Percentiles)> {
    let id = format!("bench-txn-{}", uuid::Uuid::new_v4().simple());
    let p = producer(opts, &[("transactional.id", id)])?;
    p.init_transactions(opts.timeout)
        .context("init_transactions")?;
    let deadline = Instant::now() + opts.timeout;
    let mut commits_us = Vec::new();
    let start = Instant::now();
    let mut i = 0;
    while i < opts.records {
        p.begin_transaction().context("begin_transaction")?;
        let end = (i + per_txn.max(1)).min(opts.records);
        while i < end {
            send(&p, topic, value, i, opts.partitions, deadline)?;
            p.poll(Duration::ZERO);
            i += 1;
        }
        let t = Instant::now();
        // rust-rdkafka's flush (also called by commit_transaction) polls in steps of up to
        // 100 ms that a delivery does not always cut short; a 1 ms poll loop does not add that
        // wait to every transaction.
        while p.in_flight_count() > 0 {
            if Instant::now() > deadline {
                bail!("timed out waiting for deliveries after {i} records");
            }
            p.poll(Duration::from_millis(1));
        }
        p.commit_transaction(opts.timeout)
            .context("commit_transaction")?;
        commits_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        if Instant::now() > deadline {
            bail!("timed out after {i} records");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    p.poll(Duration::ZERO);
    check_delivered(&p, opts.records)?;
    Ok((secs, Percentiles::of(commits_us)))
}

/// Runs the idempotent producer, then one transactional producer per `txn_sizes` entry, each
/// on its own fresh topic, calling `emit` after each.
///
/// Errors: topic creation, a failed delivery or transaction call, or `timeout` exceeded.
pub fn run(opts: &Options, mut emit: impl FnMut(&Outcome)) -> anyhow::Result<Vec<Outcome>> {
    let value = vec![b'x'; opts.record_size];
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut out = Vec::new();
    let mut base = 0.0;
    let modes = std::iter::once(0).chain(opts.txn_sizes.iter().copied());
    for (n, per_txn) in modes.enumerate() {
        let topic = format!("bench-txn-{tag}-{n}");
        create_topic(&opts.bootstrap, &topic, opts.partitions)?;
        let (secs, commit) = if per_txn == 0 {
            idempotent(opts, &topic, &value)?
        } else {
            transactional(opts, &topic, &value, per_txn)?
        };
        let records = opts.records as f64;
        let msgs_per_s = records / secs.max(1e-9);
        if per_txn == 0 {
            base = msgs_per_s;
        }
        let o = Outcome {
            mode: if per_txn == 0 {
                "idempotent"
            } else {
                "transactional"
            }
            .into(),
            records_per_txn: per_txn,
            records: opts.records,
            record_size: opts.record_size,
            msgs_per_s,
            mb_per_s: records * opts.record_size as f64 / secs.max(1e-9) / 1e6,
            ratio_to_idempotent: if base > 0.0 { msgs_per_s / base } else { 0.0 },
            commit,
        };
        emit(&o);
        out.push(o);
    }
    Ok(out)
}

/// The header of [`table_row`]'s table.
pub fn table_header() -> String {
    format!(
        "{:<14} {:>9} {:>9} {:>7} {:>10} {:>8} {:>7} {:>10} {:>10}",
        "producer",
        "per txn",
        "records",
        "size",
        "msg/s",
        "MB/s",
        "ratio",
        "commit p50",
        "commit p99"
    )
}

/// One [`Outcome`] as a table row (commit latencies in ms).
pub fn table_row(o: &Outcome) -> String {
    let (per, p50, p99) = if o.records_per_txn == 0 {
        ("-".to_string(), "-".to_string(), "-".to_string())
    } else {
        (
            o.records_per_txn.to_string(),
            format!("{:.2}", o.commit.p50_ms),
            format!("{:.2}", o.commit.p99_ms),
        )
    };
    format!(
        "{:<14} {:>9} {:>9} {:>7} {:>10.0} {:>8.1} {:>7.2} {:>10} {:>10}",
        o.mode,
        per,
        o.records,
        o.record_size,
        o.msgs_per_s,
        o.mb_per_s,
        o.ratio_to_idempotent,
        p50,
        p99
    )
}
