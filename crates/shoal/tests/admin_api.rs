//! The admin HTTP API's cluster, topic, message-browser and history routes against a real
//! broker, with records produced and a group run by librdkafka.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{create_topic, http_get, produce, wait_until, GroupMember, Seen, Shoal};

fn get_json(broker: &Shoal, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(broker, path);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

#[test]
fn cluster_topics_messages_lag_history_and_rebalances_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(
        &dir.path().join("data"),
        &["console.lag.sample.interval.ms=200"],
    );
    create_topic(&broker, "browse", 2);
    let records: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let placed = produce(&broker, "browse", &records, &[]);

    let (s, c) = get_json(&broker, "/api/v1/cluster");
    assert_eq!(s, 200);
    assert_eq!(c["kafka_addr"], broker.addr.as_str());
    assert_eq!(c["topics"], 1);

    let (_, topics) = get_json(&broker, "/api/v1/topics");
    let t = topics
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "browse"))
        .cloned()
        .expect("browse listed");
    assert_eq!(t["partitions"], 2);
    assert_eq!(t["records"], 20);

    let (_, t) = get_json(&broker, "/api/v1/topics/browse");
    let ends: i64 = t["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["log_end_offset"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(ends, 20);
    assert_eq!(http_get(&broker, "/api/v1/topics/nope").0, 404);

    // The message browser: partition 0 from offset 1, at most 3, decoded.
    let in_p0: Vec<&(String, String)> = placed
        .iter()
        .zip(&records)
        .filter(|((p, _), _)| *p == 0)
        .map(|(_, r)| r)
        .collect();
    let (s, msgs) = get_json(
        &broker,
        "/api/v1/topics/browse/messages?partition=0&offset=1&limit=3",
    );
    assert_eq!(s, 200);
    let msgs = msgs.as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 3.min(in_p0.len().saturating_sub(1)));
    assert_eq!(msgs[0]["offset"], 1);
    assert_eq!(msgs[0]["key"], in_p0[1].0.as_str());
    assert_eq!(msgs[0]["value"], in_p0[1].1.as_str());
    assert_eq!(http_get(&broker, "/api/v1/topics/browse/messages").0, 400);

    // A group: its lag history fills in, and its rebalance shows in the timeline.
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let m = GroupMember::start(0, &broker, "browsers", "browse", &[], Arc::clone(&seen));
    assert!(wait_until(Duration::from_secs(20), || seen
        .lock()
        .expect("lock")
        .len()
        >= 20));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (_, h) = get_json(&broker, "/api/v1/groups/browsers/lag/history");
            h.as_array().is_some_and(|a| a.len() >= 2)
        }),
        "no lag samples"
    );
    let (_, r) = get_json(&broker, "/api/v1/rebalances?group=browsers");
    let r = r.as_array().cloned().unwrap_or_default();
    assert!(
        !r.is_empty(),
        "the group's first rebalance is in the timeline"
    );
    assert_eq!(r[0]["protocol"], "classic");
    assert!(r[0]["ended_ms"].as_i64() >= r[0]["started_ms"].as_i64());
    drop(m);

    // The console page itself is served, self-contained.
    let (s, page) = http_get(&broker, "/");
    assert_eq!(s, 200);
    assert!(page.contains("<title>Shoal console</title>") && !page.contains("https://"));
}
