//! Produce and consume through librdkafka against a real shoal process: every codec, keyed
//! partitioning, per-partition order, data surviving a clean restart.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{create_topic, group_consumer, produce, Shoal};
use rdkafka::consumer::Consumer;
use rdkafka::Message;

/// Reads every record of `topic` from the beginning (no group commits), `(partition, offset,
/// key, value)` per record, until `expected` records or 30 s.
fn read_all(broker: &Shoal, topic: &str, expected: usize) -> Vec<(i32, i64, String, String)> {
    let consumer = group_consumer(broker, &format!("reader-{topic}"), &[]);
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            let val = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            out.push((m.partition(), m.offset(), key, val));
        }
    }
    out
}

#[test]
fn every_compression_codec_round_trips_through_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "codecs", 1);
    let mut expected = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let records: Vec<(String, String)> = (0..50)
            .map(|i| {
                (
                    format!("{codec}-{i}"),
                    format!("{codec} payload {i} {}", "x".repeat(200)),
                )
            })
            .collect();
        produce(
            &broker,
            "codecs",
            &records,
            &[("compression.codec", codec), ("linger.ms", "20")],
        );
        expected.extend(records);
    }
    let got = read_all(&broker, "codecs", expected.len());
    let got_kv: Vec<(String, String)> = got
        .iter()
        .map(|(_, _, k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        got_kv, expected,
        "records must come back in produce order, byte for byte"
    );
    let offsets: Vec<i64> = got.iter().map(|r| r.1).collect();
    assert_eq!(
        offsets,
        (0..expected.len() as i64).collect::<Vec<_>>(),
        "offsets are contiguous from 0"
    );
    // Compressed batches are stored as produced: the log is much smaller than the payload.
    let seg =
        std::fs::read(dir.path().join("data/codecs-0/00000000000000000000.log")).expect("segment");
    let raw: usize = expected.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        seg.len() < raw,
        "log holds compressed batches ({} bytes for {raw} raw bytes)",
        seg.len()
    );
}

#[test]
fn keyed_records_keep_per_partition_order_and_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = Shoal::start(&data, &[]);
    create_topic(&broker, "keyed", 4);
    let records: Vec<(String, String)> = (0..400)
        .map(|i| (format!("key-{}", i % 8), format!("{i}")))
        .collect();
    let placed = produce(&broker, "keyed", &records, &[("acks", "all")]);
    // Same key -> same partition (the client's partitioner; the broker keeps order).
    let mut key_partition: HashMap<String, i32> = HashMap::new();
    for ((k, _), (p, _)) in records.iter().zip(&placed) {
        assert_eq!(
            *key_partition.entry(k.clone()).or_insert(*p),
            *p,
            "key {k} moved partitions"
        );
    }
    assert!(
        key_partition
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1,
        "keys spread over partitions"
    );
    assert!(broker.terminate(), "clean shutdown on SIGTERM");
    let broker = Shoal::start(&data, &[]);
    let got = read_all(&broker, "keyed", records.len());
    assert_eq!(
        got.len(),
        records.len(),
        "all records present after restart"
    );
    let mut last: HashMap<i32, (i64, i64)> = HashMap::new();
    for (p, off, _, v) in &got {
        let n: i64 = v.parse().expect("numeric payload");
        if let Some((lo, lv)) = last.get(p) {
            assert!(
                off > lo && n > *lv,
                "partition {p} out of order: {lo}/{lv} then {off}/{n}"
            );
        }
        last.insert(*p, (*off, n));
    }
}

#[test]
fn pipelined_idempotent_produce_keeps_order_with_acks_all() {
    // An idempotent producer keeps up to 5 Produce requests in flight on one connection; the
    // broker appends them in arrival order while earlier ones wait for their fsync, so the
    // log holds every record once, in send order, with no sequence error.
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "pipelined", 1);
    let n = 20_000;
    let records: Vec<(String, String)> =
        (0..n).map(|i| ("k".to_string(), format!("{i}"))).collect();
    let placed = produce(
        &broker,
        "pipelined",
        &records,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "0"),
            ("batch.num.messages", "50"),
        ],
    );
    assert_eq!(placed.len(), n);
    let got = read_all(&broker, "pipelined", n);
    assert_eq!(got.len(), n, "every record once");
    for (i, (_, offset, _, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &i.to_string(), "record {i} out of order");
    }
    let served = common::http_get(&broker, "/metrics").1;
    assert!(
        served.contains("shoal_requests_total{api=\"Produce\"}"),
        "{served}"
    );
}

/// Group commits the broker has run so far (`shoal_log_flush_duration_seconds_count`).
fn flushes(broker: &Shoal) -> u64 {
    let (_, metrics) = common::http_get(broker, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("shoal_log_flush_duration_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn acks_1_traffic_is_flushed_behind_every_log_flush_writeback_bytes() {
    // acks=1 and no group commits: only write-behind fsyncs can happen. Each step appends
    // 1.5 MB, so with a 1 MiB threshold every step crosses one more multiple of it.
    let step: Vec<(String, String)> = (0..1500)
        .map(|i| (format!("k{i}"), "v".repeat(1000)))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let on = Shoal::start(
        &dir.path().join("on"),
        &["log.flush.writeback.bytes=1048576"],
    );
    let off = Shoal::start(&dir.path().join("off"), &["log.flush.writeback.bytes=0"]);
    for broker in [&on, &off] {
        create_topic(broker, "behind", 1);
    }
    for round in 1..=2u64 {
        produce(&on, "behind", &step, &[("acks", "1")]);
        assert!(
            common::wait_until(Duration::from_secs(10), || flushes(&on) >= round),
            "a background fsync after {round} step(s): {} so far",
            flushes(&on)
        );
        produce(&off, "behind", &step, &[("acks", "1")]);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(flushes(&off), 0, "none when turned off (Kafka's behaviour)");
}
