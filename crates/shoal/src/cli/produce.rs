//! `shoal produce TOPIC`: each line of stdin becomes a record (librdkafka producer, so
//! batching, compression and partitioning by key behave as in every librdkafka client).
//! With `--key-separator SEP` the text before the first SEP is the key. On a terminal a
//! progress bar runs on stderr; the final line always reports records, bytes, time and rate.
//!
//! Errors: a delivery failure (the first one is reported, with Kafka's error name), an
//! unreachable broker (after `message.timeout.ms`).

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::Serialize;

/// What `produce` does; see the CLI flags.
pub(crate) struct ProduceOptions {
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) key_separator: Option<String>,
    pub(crate) partition: Option<i32>,
    /// librdkafka settings (`acks`, `compression.type`, `linger.ms`, ...).
    pub(crate) properties: Vec<(String, String)>,
}

/// The final report.
#[derive(Debug, Serialize)]
pub(crate) struct ProduceReport {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) records_per_second: f64,
}

struct Tracker {
    failed: std::sync::Mutex<Option<String>>,
    delivered: std::sync::atomic::AtomicU64,
}

impl ClientContext for Tracker {}

impl Tracker {
    /// The first delivery failure, if any.
    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ProducerContext for Tracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err((e, _)) => {
                let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                if f.is_none() {
                    *f = Some(e.to_string());
                }
            }
        }
    }
}

/// Produces every line of `input`; returns the report once all are delivered.
pub(crate) fn run(opts: &ProduceOptions, input: impl BufRead) -> anyhow::Result<ProduceReport> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in &opts.properties {
        cfg.set(k, v);
    }
    let tracker = Tracker {
        failed: std::sync::Mutex::new(None),
        delivered: std::sync::atomic::AtomicU64::new(0),
    };
    let producer: ThreadedProducer<Tracker> = cfg
        .create_with_context(tracker)
        .context("cannot create the producer (check --property)")?;
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} records, {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    });
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    for line in input.lines() {
        let line = line.context("reading stdin")?;
        let (key, value) = match &opts.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        bytes += (key.as_ref().map_or(0, String::len) + value.len()) as u64;
        let mut rec: BaseRecord<'_, String, String> = BaseRecord::to(&opts.topic).payload(&value);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        if let Some(p) = opts.partition {
            rec = rec.partition(p);
        }
        let mut pending = rec;
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((e, r))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                    pending = r;
                }
                Err((e, _)) => bail!("cannot produce to {}: {e}", opts.topic),
            }
        }
        records += 1;
        if let Some(b) = &bar {
            b.inc(1);
        }
        if let Some(e) = producer.context().failure() {
            bail!("delivery to {} failed: {e}", opts.topic);
        }
    }
    use rdkafka::producer::Producer;
    producer
        .flush(Duration::from_secs(60))
        .context("not every record was delivered within 60 s")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(e) = producer.context().failure() {
        bail!("delivery to {} failed: {e}", opts.topic);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(ProduceReport {
        records,
        bytes,
        seconds,
        records_per_second: if seconds > 0.0 {
            records as f64 / seconds
        } else {
            0.0
        },
    })
}
