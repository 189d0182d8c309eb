//! `shoal consume TOPIC`: prints records (librdkafka consumer). Either as a group member
//! (`--group`, committing as it goes, like any consumer) or from one partition at an offset
//! (`--partition`, `--offset earliest|latest|N`). `--format` picks what is printed, kcat-style:
//! `%k` key, `%v` value, `%h` headers (`k=v,...`), `%t` timestamp (ms), `%o` offset,
//! `%p` partition, `%T` topic, `\n`/`\t`. `--count N` stops after N records; `--timeout-ms`
//! stops after that long without a record.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// Where to read from.
pub(crate) enum Source {
    Group { group: String, from_beginning: bool },
    Partition { partition: i32, offset: Offset },
}

/// What `consume` does; see the CLI flags.
pub(crate) struct ConsumeOptions {
    pub(crate) bootstrap: String,
    pub(crate) topic: String,
    pub(crate) source: Source,
    pub(crate) format: String,
    pub(crate) json: bool,
    pub(crate) count: Option<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) properties: Vec<(String, String)>,
}

/// `earliest`, `latest`, or an offset (`-N`: N before the end).
pub(crate) fn parse_offset(s: &str) -> anyhow::Result<Offset> {
    Ok(match s {
        "earliest" | "beginning" => Offset::Beginning,
        "latest" | "end" => Offset::End,
        n => {
            let v: i64 = n.parse().with_context(|| {
                format!("--offset expects earliest, latest or a number, got `{n}`")
            })?;
            if v < 0 {
                Offset::OffsetTail(-v)
            } else {
                Offset::Offset(v)
            }
        }
    })
}

fn text(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).to_string())
        .unwrap_or_default()
}

fn render(format: &str, m: &rdkafka::message::BorrowedMessage<'_>) -> String {
    let headers = || {
        m.headers()
            .map(|h| {
                h.iter()
                    .map(|x| format!("{}={}", x.key, text(x.value)))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match (c, c == '%' || c == '\\') {
            (_, false) => out.push(c),
            ('%', true) => match chars.next() {
                Some('k') => out.push_str(&text(m.key())),
                Some('v') => out.push_str(&text(m.payload())),
                Some('h') => out.push_str(&headers()),
                Some('t') => out.push_str(&m.timestamp().to_millis().unwrap_or(-1).to_string()),
                Some('o') => out.push_str(&m.offset().to_string()),
                Some('p') => out.push_str(&m.partition().to_string()),
                Some('T') => out.push_str(m.topic()),
                Some(o) => {
                    out.push('%');
                    out.push(o);
                }
                None => out.push('%'),
            },
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            },
        }
    }
    out
}

fn json(m: &rdkafka::message::BorrowedMessage<'_>) -> serde_json::Value {
    let headers: Vec<serde_json::Value> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|x| serde_json::json!({"key": x.key, "value": x.value.map(|v| String::from_utf8_lossy(v).to_string())}))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": m.timestamp().to_millis(),
        "key": m.key().map(|k| String::from_utf8_lossy(k).to_string()),
        "value": m.payload().map(|v| String::from_utf8_lossy(v).to_string()),
        "headers": headers,
    })
}

/// Consumes and prints until `count` records, the idle `timeout`, or Ctrl-C.
pub(crate) fn run(opts: &ConsumeOptions) -> anyhow::Result<u64> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.bootstrap);
    match &opts.source {
        Source::Group {
            group,
            from_beginning,
        } => {
            cfg.set("group.id", group).set(
                "auto.offset.reset",
                if *from_beginning {
                    "earliest"
                } else {
                    "latest"
                },
            );
        }
        Source::Partition { .. } => {
            cfg.set("group.id", "shoal-cli-reader")
                .set("enable.auto.commit", "false");
        }
    }
    for (k, v) in &opts.properties {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg
        .create()
        .context("cannot create the consumer (check --property)")?;
    match &opts.source {
        Source::Group { .. } => consumer
            .subscribe(&[&opts.topic])
            .with_context(|| format!("cannot subscribe to {}", opts.topic))?,
        Source::Partition { partition, offset } => {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&opts.topic, *partition, *offset)?;
            consumer.assign(&tpl)?;
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut seen = 0u64;
    let mut last = Instant::now();
    loop {
        if opts.count.is_some_and(|c| seen >= c) {
            break;
        }
        if opts.timeout.is_some_and(|t| last.elapsed() >= t) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                use rdkafka::error::KafkaError;
                match &e {
                    KafkaError::MessageConsumption(code)
                        if *code == rdkafka::types::RDKafkaErrorCode::PartitionEOF => {}
                    KafkaError::MessageConsumption(code)
                        if *code == rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition =>
                    {
                        bail!("topic {} does not exist", opts.topic)
                    }
                    _ => eprintln!("shoal: warning: {e}"),
                }
            }
            Some(Ok(m)) => {
                seen += 1;
                last = Instant::now();
                let line = if opts.json {
                    json(&m).to_string()
                } else {
                    render(&opts.format, &m)
                };
                if writeln!(out, "{line}").is_err() {
                    break; // stdout closed (e.g. `| head`)
                }
            }
        }
    }
    let _ = out.flush();
    if let Source::Group { .. } = opts.source {
        let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    }
    Ok(seen)
}
