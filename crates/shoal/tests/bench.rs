//! The benchmark harness's own producer (`shoal bench native-produce`) writes real, valid
//! records: a librdkafka consumer reads back exactly as many as it reports, of the size asked
//! for, in order; and it reports a throughput figure.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Shoal;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

#[test]
fn native_producer_writes_records_a_librdkafka_consumer_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "bench",
            "native-produce",
            "--bootstrap-server",
            &broker.addr,
            "--sizes",
            "1024",
            "--acks=-1",
            "--partitions",
            "2",
            "--mb",
            "3",
            "--batch-bytes",
            "100000",
            "--output",
            "json",
        ])
        .output()
        .expect("run shoal bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let report: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let records = report["records"].as_u64().expect("records");
    assert_eq!(records, 3_000_000 / 1024);
    assert!(report["produce_mb_per_s"].as_f64().expect("MB/s") > 0.0);
    assert_eq!(report["partitions"].as_u64(), Some(2));

    // The topic it wrote (the only one).
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", "check")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    let topic = md
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .find(|n| n.starts_with("native-"))
        .expect("the benchmark's topic");
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = 0u64;
    let mut next = [0i64; 2];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen < records && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(m.payload().map(<[u8]>::len), Some(1024));
                let p = usize::try_from(m.partition()).expect("partition");
                assert_eq!(m.offset(), next[p], "in order, no gaps");
                next[p] += 1;
                seen += 1;
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    assert_eq!(seen, records);
    assert!(next.iter().all(|&n| n > 0), "both partitions written");
}
