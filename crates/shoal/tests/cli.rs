//! The `shoal topic` and `shoal group` verbs against a real broker, with real librdkafka
//! consumers: `group describe` prints kafka-consumer-groups' columns (plus LAG-SECONDS) with
//! the right owners and lag; `reset-offsets` is a dry run unless `--execute`, is refused
//! while the group has members, and the next consumer starts where it put the group.

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
        .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
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
