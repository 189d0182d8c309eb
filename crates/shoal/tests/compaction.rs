//! Compaction in a running broker: `__consumer_offsets` keeps only the latest commit per
//! group and partition, so a long-lived group's state stays small, and a restarted broker
//! still serves the latest committed offset; a user topic with `cleanup.policy=compact`
//! keeps the latest value of every key.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{create_topic, group_consumer, produce, wait_until, Shoal};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

const SETTINGS: [&str; 2] = [
    "offsets.topic.segment.bytes=4096",
    "log.retention.check.interval.ms=1000",
];

#[test]
fn consumer_offsets_are_compacted_and_the_latest_commit_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = Shoal::start(&data, &SETTINGS);
    create_topic(&broker, "ticks", 1);
    let consumer = group_consumer(&broker, "ticker", &[]);
    for offset in 1..=400 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("ticks", 0, Offset::Offset(offset))
            .expect("tpl");
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    drop(consumer);
    let offsets_dir = data.join("__consumer_offsets-0");
    let written = log_bytes(&offsets_dir);
    assert!(written > 20_000, "400 commits written: {written} bytes");
    assert!(
        wait_until(Duration::from_secs(20), || log_bytes(&offsets_dir)
            < written / 3),
        "__consumer_offsets was not compacted: {} of {written} bytes left",
        log_bytes(&offsets_dir)
    );

    let addr = broker.addr.clone();
    assert!(broker.terminate());
    let broker = Shoal::start_on(&data, &addr, &SETTINGS);
    let consumer = group_consumer(&broker, "ticker", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("ticks", 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    assert_eq!(
        committed.find_partition("ticks", 0).map(|e| e.offset()),
        Some(Offset::Offset(400)),
        "the latest commit is replayed from the compacted log"
    );
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_every_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &SETTINGS);
    let (ok, _, err) = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["topic", "create", "profiles", "-p", "1"])
            .args([
                "--config",
                "cleanup.policy=compact",
                "--config",
                "segment.bytes=1024",
            ])
            .args(["--bootstrap-server", &broker.addr])
            .output()
            .expect("run shoal");
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert!(ok, "{err}");
    let records: Vec<(String, String)> = (0..300)
        .map(|i| (format!("user-{}", i % 10), format!("{i}")))
        .collect();
    // One record per batch, so the small segments roll.
    produce(
        &broker,
        "profiles",
        &records,
        &[("linger.ms", "0"), ("batch.num.messages", "1")],
    );
    let read = || -> Vec<(String, String, i64)> {
        let c = group_consumer(&broker, &format!("r-{}", uuid_like()), &[]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("profiles", 0, Offset::Beginning)
            .expect("tpl");
        c.assign(&tpl).expect("assign");
        let (_, high) = c
            .fetch_watermarks("profiles", 0, Duration::from_secs(5))
            .expect("watermarks");
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
                    let val = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                    let last = m.offset() + 1 >= high;
                    out.push((key, val, m.offset()));
                    if last {
                        break;
                    }
                }
                _ => continue,
            }
        }
        out
    };
    assert!(
        wait_until(Duration::from_secs(20), || read().len() < 100),
        "the topic was not compacted: {} records",
        read().len()
    );
    let after = read();
    let mut latest: HashMap<String, (String, i64)> = HashMap::new();
    for (k, v, o) in &after {
        latest.insert(k.clone(), (v.clone(), *o));
    }
    for k in 0..10 {
        let key = format!("user-{k}");
        let want = (290 + k).to_string();
        assert_eq!(
            latest.get(&key).map(|x| x.0.clone()),
            Some(want),
            "the latest value of {key}"
        );
    }
    // Offsets only grow: records keep their offsets.
    assert!(after.windows(2).all(|w| w[0].2 < w[1].2));
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
