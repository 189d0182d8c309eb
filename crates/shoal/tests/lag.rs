//! Consumer lag computed by the broker and served by the admin HTTP API: in records
//! (log end minus committed offset) and in seconds (age of the first unconsumed record), with
//! the owning member, for classic and consumer-protocol groups.

mod common;

use std::time::{Duration, Instant};

use common::{create_topic, group_consumer, http_get, produce, wait_until, Shoal};
use rdkafka::consumer::{CommitMode, Consumer};

fn lag_json(broker: &Shoal, group: &str) -> serde_json::Value {
    let (status, body) = http_get(broker, &format!("/api/v1/groups/{group}/lag"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("lag JSON")
}

fn consume_and_commit(
    broker: &Shoal,
    group: &str,
    topic: &str,
    n: usize,
    protocol: &str,
) -> rdkafka::consumer::BaseConsumer {
    let consumer = group_consumer(broker, group, &[("group.protocol", protocol)]);
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got += 1;
            if got == n {
                consumer
                    .commit_message(&m, CommitMode::Sync)
                    .expect("commit");
            }
        }
    }
    assert_eq!(got, n, "consumed {n} records");
    consumer
}

#[test]
fn group_lag_is_reported_in_records_and_seconds_with_its_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "metrics", 1);
    let records: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    produce(&broker, "metrics", &records, &[]);
    let produced_at = Instant::now();
    for protocol in ["classic", "consumer"] {
        let group = format!("lagging-{protocol}");
        let consumer = consume_and_commit(&broker, &group, "metrics", 30, protocol);
        std::thread::sleep(Duration::from_millis(1500));
        let v = lag_json(&broker, &group);
        assert_eq!(v["total_lag"], 70, "{protocol}: {v}");
        let p = &v["partitions"][0];
        assert_eq!(p["topic"], "metrics");
        assert_eq!(p["current_offset"], 30);
        assert_eq!(p["log_end_offset"], 100);
        assert_eq!(p["lag"], 70);
        let secs = p["lag_seconds"].as_f64().expect("lag_seconds");
        let upper = produced_at.elapsed().as_secs_f64() + 1.0;
        assert!(
            secs >= 1.0 && secs <= upper,
            "{protocol}: lag_seconds {secs} not in [1, {upper}]"
        );
        assert!(
            wait_until(Duration::from_secs(10), || lag_json(&broker, &group)
                ["partitions"][0]["member_id"]
                .is_string()),
            "{protocol}: owner not shown: {}",
            lag_json(&broker, &group)
        );
        let (_, list) = http_get(&broker, "/api/v1/groups");
        let list: serde_json::Value = serde_json::from_str(&list).expect("groups JSON");
        let row = list
            .as_array()
            .expect("array")
            .iter()
            .find(|g| g["group_id"] == group.as_str())
            .cloned();
        assert_eq!(row.expect("group listed")["group_type"], protocol);
        drop(consumer);
    }
    // A caught-up group has no lag, in records or seconds.
    let _c = consume_and_commit(&broker, "caught-up", "metrics", 100, "classic");
    let v = lag_json(&broker, "caught-up");
    assert_eq!(v["total_lag"], 0, "{v}");
    assert_eq!(v["max_lag_seconds"], 0.0);
}
