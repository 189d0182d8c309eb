//! The `shoal topic` and `shoal group` verbs against a real broker, with real librdkafka
//! consumers: `group describe` prints kafka-consumer-groups' columns (plus LAG-SECONDS) with
//! the right owners and lag; `reset-offsets` is a dry run unless `--execute`, is refused
//! while the group has members, and the next consumer starts where it put the group.
//! Share groups (KIP-932) are driven by a member speaking raw kafka-protocol requests
//! (ShareGroupHeartbeat, ShareFetch, ShareAcknowledge v1; the rdkafka crate has no share
//! consumer): `list` shows them, `describe` prints kafka-share-groups' columns (and the
//! in-flight window with `--admin-api`), `reset-offsets` goes through AlterShareGroupOffsets
//! only while the group is empty, `delete` removes it.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{produce, wait_until, GroupMember, Seen, Shoal};

/// Runs `shoal ARGS --bootstrap-server ADDR` (empty stdin); returns (success, stdout, stderr).
fn shoal(broker: &Shoal, args: &[&str]) -> (bool, String, String) {
    shoal_with_input(broker, args, "")
}

fn try_describe_json(broker: &Shoal, group: &str) -> Result<serde_json::Value, String> {
    let (ok, out, err) = shoal(broker, &["group", "describe", group, "--output", "json"]);
    if !ok {
        return Err(err);
    }
    serde_json::from_str(&out).map_err(|e| format!("describe JSON: {e}: {out}"))
}

fn describe_json(broker: &Shoal, group: &str) -> serde_json::Value {
    try_describe_json(broker, group).unwrap_or_else(|e| panic!("group describe failed: {e}"))
}

fn total_lag(d: &serde_json::Value) -> i64 {
    d["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["lag"].as_i64().unwrap_or(i64::MAX / 4))
        .sum()
}

#[test]
fn topic_verbs_create_describe_alter_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let (ok, out, err) = shoal(
        &broker,
        &[
            "topic",
            "create",
            "events",
            "-p",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created topic events.");
    let (ok, _, err) = shoal(&broker, &["topic", "create", "events"]);
    assert!(!ok);
    assert!(err.contains("TopicAlreadyExists"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let (_, out, _) = shoal(&broker, &["topic", "list"]);
    assert_eq!(out.trim(), "events");
    let (ok, out, err) = shoal(&broker, &["topic", "describe", "events"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Topic: events\tTopicId: ")
            && out.contains("PartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=60000"),
        "{out}"
    );
    assert_eq!(out.matches("\tPartition: ").count(), 3, "{out}");

    let (ok, _, err) = shoal(
        &broker,
        &[
            "topic",
            "alter-config",
            "events",
            "--set",
            "retention.ms=120000",
        ],
    );
    assert!(ok, "{err}");
    let (_, out, _) = shoal(
        &broker,
        &["topic", "describe", "events", "--output", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["configs"]["retention.ms"], "120000");

    let (ok, _, err) = shoal(&broker, &["topic", "delete", "events"]);
    assert!(ok, "{err}");
    let (_, out, _) = shoal(&broker, &["topic", "list"]);
    assert_eq!(out.trim(), "");
    let (ok, _, err) = shoal(&broker, &["topic", "describe", "events"]);
    assert!(!ok && err.contains("UnknownTopicOrPartition"), "{err}");
}

/// `--set` takes Kafka's comma-separated values: a comma starts a new setting only before
/// `key=`, so a list value (`group.consumer.assignors=range,uniform`) is one setting and
/// `num.partitions=3` after it in the same flag is another.
#[test]
fn set_keeps_the_commas_of_list_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(
        &dir.path().join("data"),
        &["group.consumer.assignors=range,uniform,num.partitions=3"],
    );
    let (ok, _, err) = shoal(&broker, &["topic", "create", "orders"]);
    assert!(ok, "{err}");
    let (ok, out, err) = shoal(&broker, &["topic", "describe", "orders"]);
    assert!(ok, "{err}");
    assert!(out.contains("PartitionCount: 3\t"), "{out}");
}

#[test]
fn group_describe_matches_kafka_consumer_groups_and_reset_offsets_moves_a_stopped_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let (ok, _, err) = shoal(&broker, &["topic", "create", "orders", "-p", "3"]);
    assert!(ok, "{err}");
    let records: Vec<(String, String)> =
        (0..60).map(|i| (format!("k{i}"), format!("{i}"))).collect();
    produce(&broker, "orders", &records, &[]);

    // Three live classic members consume everything and commit.
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<GroupMember> = (0..3)
        .map(|i| GroupMember::start(i, &broker, "billing", "orders", &[], Arc::clone(&seen)))
        .collect();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let Ok(d) = try_describe_json(&broker, "billing") else {
                return false;
            };
            d["members"].as_array().map(Vec::len) == Some(3)
                && d["state"] == "Stable"
                && d["partitions"].as_array().is_some_and(|ps| {
                    ps.len() == 3 && ps.iter().all(|p| p["consumer_id"].is_string())
                })
                && total_lag(&d) == 0
        }),
        "the group never caught up: {:?}",
        try_describe_json(&broker, "billing")
    );

    let (ok, out, err) = shoal(&broker, &["group", "describe", "billing"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "LAG-SECONDS"
        ]
    );
    // Kafka's layout: GROUP and TOPIC padded to at least 15, PARTITION to 10.
    assert!(lines[0].starts_with("GROUP           TOPIC           PARTITION  CURRENT-OFFSET"));
    assert_eq!(lines.len(), 4, "{out}");
    let mut total = 0;
    for row in &lines[1..] {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), 10, "{row}");
        assert_eq!(cells[0], "billing");
        assert_eq!(cells[1], "orders");
        assert_eq!(cells[3], cells[4], "caught up: {row}");
        assert_eq!(cells[5], "0");
        assert_ne!(cells[6], "-", "every partition has an owner: {row}");
        assert!(cells[7].contains("127.0.0.1"), "{row}");
        assert_eq!(cells[9], "0.0");
        total += cells[4].parse::<i64>().expect("offset");
    }
    assert_eq!(total, 60);

    // Reset is refused while the group has members.
    let (ok, _, err) = shoal(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(!ok);
    assert!(err.contains("active member"), "{err}");

    // Stop the members; ten more records arrive: lag 10, in records and seconds.
    drop(members);
    produce(
        &broker,
        "orders",
        &(60..70)
            .map(|i| (format!("k{i}"), format!("{i}")))
            .collect::<Vec<_>>(),
        &[],
    );
    std::thread::sleep(Duration::from_millis(1100));
    let d = describe_json(&broker, "billing");
    assert_eq!(total_lag(&d), 10, "{d}");
    assert!(d["members"].as_array().is_some_and(Vec::is_empty), "{d}");
    let max_lag_seconds = d["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["lag_seconds"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        max_lag_seconds >= 1.0,
        "lag in seconds counts from the record's time: {d}"
    );
    let (_, out, _) = shoal(&broker, &["group", "describe", "billing"]);
    assert!(
        out.contains("Consumer group 'billing' has no active members."),
        "{out}"
    );

    // A dry run changes nothing.
    let (ok, out, err) = shoal(
        &broker,
        &["group", "reset-offsets", "billing", "--to-earliest"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(total_lag(&describe_json(&broker, "billing")), 10);

    // --execute moves the group; the next consumer starts there and reads all 70 again.
    let (ok, out, err) = shoal(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("billing")).count(),
        3,
        "{out}"
    );
    assert_eq!(total_lag(&describe_json(&broker, "billing")), 70);
    let again: Seen = Arc::new(Mutex::new(Vec::new()));
    let m = GroupMember::start(9, &broker, "billing", "orders", &[], Arc::clone(&again));
    assert!(
        wait_until(Duration::from_secs(30), || again
            .lock()
            .expect("lock")
            .len()
            >= 70),
        "the consumer after the reset read {} of 70",
        again.lock().expect("lock").len()
    );
    let offsets: Vec<i64> = again.lock().expect("lock").iter().map(|r| r.2).collect();
    assert!(offsets.contains(&0), "started from the earliest offsets");
    drop(m);

    // --shift-by and --to-offset, then delete the stopped group.
    let (ok, out, err) = shoal(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--shift-by",
            "-2",
            "--output",
            "json",
            "--execute",
        ],
    );
    assert!(ok, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(plan.as_array().map(Vec::len), Some(3));
    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "billing"];
        all.extend_from_slice(args);
        all.push("--execute");
        let (ok, _, err) = shoal(&broker, &all);
        assert!(ok, "{args:?}: {err}");
        total_lag(&describe_json(&broker, "billing"))
    };
    assert_eq!(reset(&["--to-latest"]), 0);
    assert_eq!(
        reset(&["--to-offset", "1"]),
        70 - 3,
        "offset 1 on each of 3 partitions"
    );
    assert_eq!(
        reset(&["--to-datetime", "2000-01-01T00:00:00Z"]),
        70,
        "before every record"
    );
    assert_eq!(
        reset(&["--to-datetime", "2999-01-01T00:00:00Z"]),
        0,
        "after every record"
    );
    let (ok, _, err) = shoal(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-datetime",
            "yesterday",
        ],
    );
    assert!(!ok && err.contains("RFC 3339"), "{err}");
    let (ok, _, err) = shoal(&broker, &["group", "delete", "billing"]);
    assert!(ok, "{err}");
    let (ok, _, err) = shoal(&broker, &["group", "describe", "billing"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

/// Runs `shoal ARGS --bootstrap-server ADDR` with `input` on stdin.
fn shoal_with_input(broker: &Shoal, args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .args(["--bootstrap-server", &broker.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shoal");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn produce_reads_stdin_lines_with_keys_and_consume_prints_them_by_partition_or_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let (ok, _, err) = shoal(&broker, &["topic", "create", "lines", "-p", "3"]);
    assert!(ok, "{err}");
    let input: String = (0..300)
        .map(|i| format!("user-{}:event-{i}\n", i % 10))
        .collect();
    let (ok, _, err) = shoal_with_input(
        &broker,
        &["produce", "lines", "--key-separator", ":"],
        &input,
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("Produced 300 records") && err.contains("records/s"),
        "final rate line: {err}"
    );

    // As a group, from the beginning: every record once.
    let (ok, out, err) = shoal(
        &broker,
        &[
            "consume",
            "lines",
            "--group",
            "readers",
            "--from-beginning",
            "--count",
            "300",
            "--format",
            "%k|%v|%p",
        ],
    );
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 300);
    let values: std::collections::HashSet<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(values.len(), 300);
    // Records of one key share one partition (keyed partitioning).
    let mut partition_of: std::collections::HashMap<&str, &str> = Default::default();
    for r in &rows {
        assert_eq!(
            *partition_of.entry(r[0]).or_insert(r[2]),
            r[2],
            "key {} split",
            r[0]
        );
    }
    // The group committed what it read.
    let d = describe_json(&broker, "readers");
    assert_eq!(total_lag(&d), 0, "{d}");

    // One partition from an offset, as JSON.
    let (ok, out, err) = shoal(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "0",
            "--offset",
            "1",
            "--count",
            "2",
            "--output",
            "json",
        ],
    );
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["offset"], 1);
    assert_eq!(recs[0]["partition"], 0);
    assert!(recs[0]["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("user-")));

    // --timeout-ms ends a consume that has nothing (more) to read.
    let (ok, out, _) = shoal(
        &broker,
        &[
            "consume",
            "lines",
            "--group",
            "readers",
            "--timeout-ms",
            "1500",
        ],
    );
    assert!(ok);
    assert_eq!(out, "");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--kafka-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--amqp-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn shoal");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("shoal: kafka listening on "));
    assert!(ready, "the broker never listened");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().expect("wait");
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["target"].is_string()));
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "shoal broker listening"),
        "{logs}"
    );
}

/// A share-group member speaking raw Kafka requests (kafka-protocol): the rdkafka crate has
/// no share consumer. One connection, one request at a time.
struct ShareMember {
    stream: std::net::TcpStream,
    correlation_id: i32,
    group: String,
    member_id: String,
    member_epoch: i32,
    /// The share session epoch the next ShareFetch/ShareAcknowledge carries.
    session_epoch: i32,
    /// The member's assignment of the test's one topic (its topic id and partitions).
    assigned: kafka_protocol::messages::share_group_heartbeat_response::TopicPartitions,
}

impl ShareMember {
    fn call<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        wire_call(
            &mut self.stream,
            &mut self.correlation_id,
            key,
            version,
            req,
        )
    }

    /// Joins `group` subscribed to `topic` and heartbeats until it is assigned
    /// `partitions` partitions.
    fn join(broker: &Shoal, group: &str, member_id: &str, topic: &str, partitions: usize) -> Self {
        use kafka_protocol::messages::{ApiKey, GroupId, ShareGroupHeartbeatRequest, TopicName};
        let mut m = ShareMember {
            stream: wire_connect(broker),
            correlation_id: 0,
            group: group.to_string(),
            member_id: member_id.to_string(),
            member_epoch: 0,
            session_epoch: 0,
            assigned: Default::default(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let req = ShareGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_member_id(sb(member_id))
                .with_member_epoch(m.member_epoch)
                .with_subscribed_topic_names(
                    (m.member_epoch == 0).then(|| vec![TopicName(sb(topic))]),
                );
            let resp: kafka_protocol::messages::ShareGroupHeartbeatResponse =
                m.call(ApiKey::ShareGroupHeartbeat, 1, &req);
            assert_eq!(resp.error_code, 0, "heartbeat: {:?}", resp.error_message);
            m.member_epoch = resp.member_epoch;
            if let Some(t) = resp
                .assignment
                .and_then(|a| a.topic_partitions.into_iter().next())
            {
                m.assigned = t;
            }
            if m.assigned.partitions.len() == partitions {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never assigned {partitions} partitions"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One ShareFetch of every assigned partition (waiting up to 2 s for records):
    /// the acquired ranges as (partition, first offset, last offset).
    fn fetch(&mut self) -> Vec<(i32, i64, i64)> {
        use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
        use kafka_protocol::messages::{ApiKey, GroupId, ShareFetchRequest, ShareFetchResponse};
        let req = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.member_id)))
            .with_share_session_epoch(self.session_epoch)
            .with_max_wait_ms(2000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(500)
            .with_batch_size(500)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(self.assigned.topic_id)
                .with_partitions(
                    self.assigned
                        .partitions
                        .iter()
                        .map(|p| FetchPartition::default().with_partition_index(*p))
                        .collect(),
                )]);
        let resp: ShareFetchResponse = self.call(ApiKey::ShareFetch, 1, &req);
        assert_eq!(resp.error_code, 0, "share fetch: {:?}", resp.error_message);
        self.session_epoch += 1;
        let mut out = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                assert_eq!(
                    p.error_code, 0,
                    "share fetch partition: {:?}",
                    p.error_message
                );
                for r in p.acquired_records {
                    out.push((p.partition_index, r.first_offset, r.last_offset));
                }
            }
        }
        out
    }

    /// ShareAcknowledge of `(partition, first offset, last offset, type)` (1 accept,
    /// 2 release, 3 reject).
    fn acknowledge(&mut self, acks: &[(i32, i64, i64, i8)]) {
        use kafka_protocol::messages::share_acknowledge_request::{
            AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch,
        };
        use kafka_protocol::messages::{
            ApiKey, GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
        };
        let mut partitions: Vec<AcknowledgePartition> = Vec::new();
        for &(p, first, last, t) in acks {
            let batch = AcknowledgementBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(vec![t]);
            match partitions.iter_mut().find(|x| x.partition_index == p) {
                Some(x) => x.acknowledgement_batches.push(batch),
                None => partitions.push(
                    AcknowledgePartition::default()
                        .with_partition_index(p)
                        .with_acknowledgement_batches(vec![batch]),
                ),
            }
        }
        let req = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(sb(&self.group))))
            .with_member_id(Some(sb(&self.member_id)))
            .with_share_session_epoch(self.session_epoch)
            .with_topics(vec![AcknowledgeTopic::default()
                .with_topic_id(self.assigned.topic_id)
                .with_partitions(partitions)]);
        let resp: ShareAcknowledgeResponse = self.call(ApiKey::ShareAcknowledge, 1, &req);
        assert_eq!(
            resp.error_code, 0,
            "share acknowledge: {:?}",
            resp.error_message
        );
        for t in resp.responses {
            for p in t.partitions {
                assert_eq!(
                    p.error_code, 0,
                    "acknowledge partition: {:?}",
                    p.error_message
                );
            }
        }
        self.session_epoch += 1;
    }

    /// Leaves the group (ShareGroupHeartbeat with epoch -1).
    fn leave(mut self) {
        use kafka_protocol::messages::{ApiKey, GroupId, ShareGroupHeartbeatRequest};
        let req = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_member_id(sb(&self.member_id))
            .with_member_epoch(-1);
        let resp: kafka_protocol::messages::ShareGroupHeartbeatResponse =
            self.call(ApiKey::ShareGroupHeartbeat, 1, &req);
        assert_eq!(resp.error_code, 0, "leave: {:?}", resp.error_message);
    }
}

fn sb(v: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.to_string())
}

fn wire_connect(broker: &Shoal) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(&broker.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s
}

/// One request and its response on `stream`.
fn wire_call<
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
>(
    stream: &mut std::net::TcpStream,
    correlation_id: &mut i32,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use std::io::{Read, Write};
    *correlation_id += 1;
    let mut buf = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(*correlation_id)
        .with_client_id(Some(sb("cli-test")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    req.encode(&mut buf, version).expect("encode body");
    stream
        .write_all(&(buf.len() as i32).to_be_bytes())
        .expect("write");
    stream.write_all(&buf).expect("write");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("response length");
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).expect("response");
    let mut frame = bytes::Bytes::from(frame);
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, *correlation_id);
    Resp::decode(&mut frame, version).expect("response body")
}

/// Appends `n` records to `topic`-`partition` in one batch (Produce v9, acks=-1).
fn produce_to(broker: &Shoal, topic: &str, partition: i32, n: usize) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let batch = (0..n).fold(
        shoal_log::testkit::TestBatch::new().timestamp(now),
        |b, i| b.value(&format!("job {partition}-{i}")),
    );
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(bytes::Bytes::from(batch.encode())))])]);
    let mut s = wire_connect(broker);
    let resp: ProduceResponse = wire_call(&mut s, &mut 0, ApiKey::Produce, 9, &req);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
}

/// IncrementalAlterConfigs SET of one group config (resource type GROUP, 32).
fn set_group_config(broker: &Shoal, group: &str, key: &str, value: &str) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(sb(group))
            .with_configs(vec![AlterableConfig::default()
                .with_name(sb(key))
                .with_config_operation(0)
                .with_value(Some(sb(value)))]),
    ]);
    let mut s = wire_connect(broker);
    let resp: IncrementalAlterConfigsResponse =
        wire_call(&mut s, &mut 0, ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(
        resp.responses[0].error_code, 0,
        "{:?}",
        resp.responses[0].error_message
    );
}

fn share_describe_json(broker: &Shoal, group: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["group", "describe", group, "--output", "json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = shoal(broker, &args);
    assert!(ok, "describe {group}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("describe JSON: {e}: {out}"))
}

/// `(start_offset, lag)` per partition of a share group's `describe` JSON.
fn share_rows(d: &serde_json::Value) -> Vec<(i64, i64)> {
    d["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["start_offset"].as_i64().unwrap_or(-1),
                p["lag"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn share_group_verbs_list_describe_reset_offsets_and_delete_a_live_share_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let (ok, _, err) = shoal(&broker, &["topic", "create", "jobs", "-p", "2"]);
    assert!(ok, "{err}");
    for p in 0..2 {
        produce_to(&broker, "jobs", p, 10);
    }
    set_group_config(&broker, "workers", "share.auto.offset.reset", "earliest");

    // One member acquires all 20 records; per partition it keeps the first acquired,
    // accepts the next eight and rejects the last.
    let mut m = ShareMember::join(&broker, "workers", "cli-test-member-1", "jobs", 2);
    let mut acquired: Vec<(i32, i64, i64)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acquired.iter().map(|r| r.2 - r.1 + 1).sum::<i64>() < 20 {
        acquired.extend(m.fetch());
        assert!(
            std::time::Instant::now() < deadline,
            "acquired only {acquired:?}"
        );
    }
    m.acknowledge(&[(0, 1, 8, 1), (0, 9, 9, 3), (1, 1, 8, 1), (1, 9, 9, 3)]);

    let (ok, out, err) = shoal(&broker, &["group", "list"]);
    assert!(ok, "{err}");
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("workers "))
        .unwrap_or_else(|| panic!("no share group listed: {out}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["workers", "share", "share", "Stable"], "{out}");

    // Kafka's columns: START-OFFSET is the SPSO (offset 0 is still acquired), LAG the high
    // watermark minus it (the window is not on Kafka's wire).
    let (ok, out, err) = shoal(&broker, &["group", "describe", "workers"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines[0].starts_with("GROUP           TOPIC           PARTITION  START-OFFSET  LAG"),
        "{out}"
    );
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"]
    );
    for (i, row) in lines[1..3].iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["workers", "jobs", &i.to_string(), "0", "10"],
            "{out}"
        );
    }
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        [
            "GROUP",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "ASSIGNMENT"
        ],
        "{out}"
    );
    let member: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(member[0], "workers");
    assert_eq!(member[1], "cli-test-member-1");
    assert_eq!(member[3], "cli-test");
    assert_eq!(&member[4..], ["2", "jobs:0,1"], "{out}");

    // With the admin API: the in-flight window, and Kafka's share lag (only offset 0 left).
    let d = share_describe_json(&broker, "workers", &["--admin-api", &broker.http_addr]);
    assert_eq!(d["group_type"], "share");
    assert_eq!(d["state"], "Stable");
    assert_eq!(share_rows(&d), [(0, 1), (0, 1)], "{d}");
    for p in d["partitions"].as_array().into_iter().flatten() {
        let w = &p["window"];
        assert_eq!(p["log_end_offset"], 10, "{d}");
        assert_eq!(w["end_offset"], 10, "{d}");
        assert_eq!(
            (
                &w["acquired"],
                &w["available"],
                &w["acknowledged"],
                &w["archived"]
            ),
            (&1.into(), &0.into(), &8.into(), &1.into()),
            "{d}"
        );
    }
    let (ok, out, err) = shoal(
        &broker,
        &[
            "group",
            "describe",
            "workers",
            "--admin-api",
            &broker.http_addr,
        ],
    );
    assert!(ok, "{err}");
    let header = out
        .lines()
        .find(|l| l.starts_with("GROUP"))
        .unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "START-OFFSET",
            "LAG",
            "LOG-END-OFFSET",
            "END-OFFSET",
            "STATE-EPOCH",
            "ACQUIRED",
            "AVAILABLE",
            "ACKNOWLEDGED",
            "ARCHIVING",
            "ARCHIVED"
        ]
    );
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["workers", "jobs", "1", "0", "1", "10", "10", "0", "1", "0", "8", "0", "1"]),
        "{out}"
    );
    // The admin API's histogram and reasons behind it.
    let (status, body) = common::http_get(&broker, "/api/v1/groups/workers");
    assert_eq!(status, 200, "{body}");
    let api: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        api["delivery_counts"],
        serde_json::json!([{"delivery_count": 1, "records": 16}])
    );
    assert_eq!(api["archived"]["rejected"], 2, "{api}");
    assert_eq!(api["total_lag"], 2, "{api}");

    // Not while the member is there: reset and delete are refused, saying why.
    let (ok, _, err) = shoal(
        &broker,
        &[
            "group",
            "reset-offsets",
            "workers",
            "--to-latest",
            "--execute",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("is not empty") && err.contains("1 active member"),
        "{err}"
    );
    let (ok, _, err) = shoal(&broker, &["group", "delete", "workers"]);
    assert!(!ok && err.contains("active members"), "{err}");

    m.leave();
    let (_, out, _) = shoal(&broker, &["group", "describe", "workers"]);
    assert!(
        out.contains("Share group 'workers' has no active members."),
        "{out}"
    );
    assert!(!out.contains("CONSUMER-ID"), "{out}");
    let d = share_describe_json(&broker, "workers", &[]);
    assert_eq!(d["state"], "Empty");
    assert_eq!(
        share_rows(&d),
        [(0, 10), (0, 10)],
        "released: offset 0 is available again"
    );

    // A dry run changes nothing; --execute moves the SPSO and drops the window.
    let (ok, out, err) = shoal(
        &broker,
        &["group", "reset-offsets", "workers", "--shift-by", "2"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(
        share_rows(&share_describe_json(&broker, "workers", &[])),
        [(0, 10), (0, 10)]
    );
    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "workers"];
        all.extend_from_slice(args);
        all.push("--execute");
        let (ok, out, err) = shoal(&broker, &all);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("workers")).count(),
            2,
            "{out}"
        );
        share_describe_json(&broker, "workers", &["--admin-api", &broker.http_addr])
    };
    let d = reset(&["--shift-by", "2"]);
    assert_eq!(share_rows(&d), [(2, 8), (2, 8)], "{d}");
    for p in d["partitions"].as_array().into_iter().flatten() {
        assert_eq!(p["window"]["end_offset"], 2, "the window is dropped: {d}");
        assert_eq!(p["window"]["state_epoch"], 1, "{d}");
    }
    assert_eq!(share_rows(&reset(&["--to-latest"])), [(10, 0), (10, 0)]);
    assert_eq!(
        share_rows(&reset(&["--by-duration", "PT1H"])),
        [(0, 10), (0, 10)]
    );
    assert_eq!(
        share_rows(&reset(&["--topic", "jobs", "--to-offset", "5"])),
        [(5, 5), (5, 5)]
    );
    assert_eq!(share_rows(&reset(&["--to-earliest"])), [(0, 10), (0, 10)]);

    // A new member starts at the reset offsets: all 20 records again.
    let mut again = ShareMember::join(&broker, "workers", "cli-test-member-2", "jobs", 2);
    let mut n = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while n < 20 {
        n += again.fetch().iter().map(|r| r.2 - r.1 + 1).sum::<i64>();
        assert!(std::time::Instant::now() < deadline, "re-read only {n}");
    }
    again.leave();

    let (ok, out, err) = shoal(&broker, &["group", "delete", "workers"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "Deletion of requested share groups ('workers') was successful."
    );
    let (_, out, _) = shoal(&broker, &["group", "list"]);
    assert!(!out.contains("workers"), "{out}");
}

#[test]
fn a_taken_amqp_port_stops_start_up_with_one_line_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args([
            "serve",
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--amqp-addr", &addr, "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run shoal");
    assert!(!out.status.success(), "shoal started on a taken AMQP port");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("--amqp-addr") && lines[0].contains(&addr),
        "{err}"
    );
}
