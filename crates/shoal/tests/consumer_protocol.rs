//! KIP-848 consumer groups (`group.protocol=consumer`) through librdkafka against a real shoal
//! process: the broker assigns partitions (uniform and range), every partition has exactly
//! one owner, members that leave or die hand their partitions to the others, offsets commit
//! with the member epoch, and an unknown `group.remote.assignor` is refused.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    create_topic, group_consumer, produce, spawn_group_member_process, wait_until, GroupMember,
    Seen, Shoal,
};
use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;

/// A consumer-protocol (KIP-848) member polling in a thread.
fn member(
    id: usize,
    broker: &Shoal,
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
    seen: Seen,
) -> GroupMember {
    let mut cfg = vec![("group.protocol", "consumer")];
    cfg.extend_from_slice(extra);
    GroupMember::start(id, broker, group, topic, &cfg, seen)
}

/// Every partition in `0..n` owned by exactly one member, and each member owning `per`.
fn exactly_one_owner(members: &[&GroupMember], n: i32, per: &[usize]) -> bool {
    let sets: Vec<Vec<i32>> = members.iter().map(|m| m.partitions()).collect();
    let all: Vec<i32> = sets.iter().flatten().copied().collect();
    let unique: HashSet<i32> = all.iter().copied().collect();
    let mut counts: Vec<usize> = sets.iter().map(Vec::len).collect();
    counts.sort_unstable();
    let mut want = per.to_vec();
    want.sort_unstable();
    all.len() == n as usize && unique.len() == n as usize && counts == want
}

#[test]
fn consumer_protocol_members_split_partitions_and_consume_every_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "orders", 6);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<GroupMember> = (0..3)
        .map(|i| member(i, &broker, "billing", "orders", &[], Arc::clone(&seen)))
        .collect();
    let refs: Vec<&GroupMember> = members.iter().collect();
    assert!(
        wait_until(Duration::from_secs(30), || exactly_one_owner(
            &refs,
            6,
            &[2, 2, 2]
        )),
        "the broker-side assignment never settled: {:?}\n{}",
        members
            .iter()
            .map(GroupMember::partitions)
            .collect::<Vec<_>>(),
        broker.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        exactly_one_owner(&refs, 6, &[2, 2, 2]),
        "assignment changed after settling"
    );
    let owner: HashMap<i32, usize> = members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.partitions().into_iter().map(move |p| (p, i)))
        .collect();
    let records: Vec<(String, String)> = (0..600)
        .map(|i| (format!("customer-{}", i % 37), format!("{i}")))
        .collect();
    produce(&broker, "orders", &records, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || seen.lock().expect("lock").len()
            >= 600),
        "consumed only {} of 600",
        seen.lock().expect("lock").len()
    );
    std::thread::sleep(Duration::from_millis(500));
    let seen_now = seen.lock().expect("lock").clone();
    assert_eq!(seen_now.len(), 600, "no record consumed twice");
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (member, p, off, _) in &seen_now {
        assert_eq!(
            owner.get(p),
            Some(member),
            "partition {p} consumed by a non-owner"
        );
        if let Some(prev) = last.insert(*p, *off) {
            assert!(*off > prev, "partition {p} out of order");
        }
    }
    // Auto-commit with the member epoch (OffsetCommit v9) recorded every position.
    let expected: HashMap<i32, i64> = last.iter().map(|(p, o)| (*p, o + 1)).collect();
    let probe = group_consumer(&broker, "billing", &[]);
    let committed = || -> HashMap<i32, i64> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..6 {
            tpl.add_partition("orders", p);
        }
        probe
            .committed_offsets(tpl, Duration::from_secs(5))
            .map(|t| {
                t.elements()
                    .iter()
                    .filter_map(|e| e.offset().to_raw().map(|o| (e.partition(), o)))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(15), || committed() == expected),
        "committed offsets {:?} never reached {:?}",
        committed(),
        expected
    );
    for m in &members {
        assert!(m.errors().is_empty(), "member errors: {:?}", m.errors());
    }
}

#[test]
fn consumer_protocol_member_that_leaves_hands_its_partitions_to_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "jobs", 4);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let a = member(0, &broker, "workers", "jobs", &[], Arc::clone(&seen));
    let b = member(1, &broker, "workers", "jobs", &[], Arc::clone(&seen));
    assert!(
        wait_until(Duration::from_secs(30), || exactly_one_owner(
            &[&a, &b],
            4,
            &[2, 2]
        )),
        "two members never split four partitions: {:?} {:?}",
        a.partitions(),
        b.partitions()
    );
    let left_at = Instant::now();
    b.stop();
    assert!(
        wait_until(Duration::from_secs(10), || a.partitions()
            == vec![0, 1, 2, 3]),
        "the remaining member never got all partitions: {:?}",
        a.partitions()
    );
    // A leave (epoch -1) moves partitions at once, not after a session timeout (45 s).
    assert!(
        left_at.elapsed() < Duration::from_secs(8),
        "took {:?}",
        left_at.elapsed()
    );
}

#[test]
fn killed_consumer_protocol_member_loses_its_partitions_after_the_session_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(
        &dir.path().join("data"),
        &[
            "group.consumer.session.timeout.ms=4000",
            "group.consumer.heartbeat.interval.ms=1000",
        ],
    );
    create_topic(&broker, "tasks", 4);
    let (mut victim, victim_assigned) =
        spawn_group_member_process(&broker, "crew", "tasks", "consumer");
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let survivor = member(0, &broker, "crew", "tasks", &[], Arc::clone(&seen));
    assert!(
        wait_until(Duration::from_secs(30), || survivor.partitions().len() == 2
            && *victim_assigned.lock().expect("lock") == 2),
        "two members never split four partitions: survivor {:?}, victim {}",
        survivor.partitions(),
        victim_assigned.lock().expect("lock")
    );
    let killed_at = Instant::now();
    victim.kill().expect("kill victim");
    let _ = victim.wait();
    assert!(
        wait_until(Duration::from_secs(20), || survivor.partitions()
            == vec![0, 1, 2, 3]),
        "survivor never took over all partitions: {:?}\n{}",
        survivor.partitions(),
        broker.log()
    );
    let took = killed_at.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "takeover before the session expired ({took:?})"
    );
    let records: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{i}"), format!("t-{i}")))
        .collect();
    produce(&broker, "tasks", &records, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = seen.lock().expect("lock");
            records.iter().all(|(_, v)| s.iter().any(|r| &r.3 == v))
        }),
        "survivor did not consume the dead member's partitions"
    );
}

#[test]
fn range_assignor_gives_contiguous_partitions_and_unknown_assignor_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "ranged", 4);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let extra = [("group.remote.assignor", "range")];
    let a = member(0, &broker, "rangers", "ranged", &extra, Arc::clone(&seen));
    let b = member(1, &broker, "rangers", "ranged", &extra, Arc::clone(&seen));
    assert!(
        wait_until(Duration::from_secs(30), || exactly_one_owner(
            &[&a, &b],
            4,
            &[2, 2]
        )),
        "never balanced: {:?} {:?}",
        a.partitions(),
        b.partitions()
    );
    let mut sets = vec![a.partitions(), b.partitions()];
    sets.sort();
    assert_eq!(
        sets,
        vec![vec![0, 1], vec![2, 3]],
        "range hands out contiguous ranges"
    );

    let bad = member(
        2,
        &broker,
        "strangers",
        "ranged",
        &[("group.remote.assignor", "sticky")],
        Arc::clone(&seen),
    );
    assert!(
        wait_until(Duration::from_secs(15), || bad
            .errors()
            .iter()
            .any(|e| e.contains("assignor") || e.contains("Assignor"))),
        "no UNSUPPORTED_ASSIGNOR error surfaced: {:?}",
        bad.errors()
    );
    assert!(bad.partitions().is_empty());
}

/// The group as the admin API describes it (`GET /api/v1/groups/{id}`).
fn describe(broker: &Shoal, group: &str) -> serde_json::Value {
    let (status, body) = common::http_get(broker, &format!("/api/v1/groups/{group}"));
    assert_eq!(status, 200, "describe {group}: {body}");
    serde_json::from_str(&body).expect("group JSON")
}

/// `(member_id, member_epoch, assignment)` of every member, sorted.
fn members(d: &serde_json::Value) -> Vec<(String, i64, String)> {
    let mut out: Vec<(String, i64, String)> = d["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["member_id"].as_str().unwrap_or_default().to_string(),
                m["member_epoch"].as_i64().unwrap_or(-99),
                m["assignment"].to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn consumer_group_membership_survives_a_broker_restart_without_a_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let settings = ["group.consumer.heartbeat.interval.ms=500"];
    let mut broker = Shoal::start(&data, &settings);
    create_topic(&broker, "ledger", 4);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let a = member(0, &broker, "auditors", "ledger", &[], Arc::clone(&seen));
    let b = member(1, &broker, "auditors", "ledger", &[], Arc::clone(&seen));
    assert!(
        wait_until(Duration::from_secs(30), || exactly_one_owner(
            &[&a, &b],
            4,
            &[2, 2]
        ) && describe(
            &broker, "auditors"
        )["state"]
            == "Stable"),
        "the group never settled: {}",
        describe(&broker, "auditors")
    );
    let before = describe(&broker, "auditors");
    let (a_parts, b_parts) = (a.partitions(), b.partitions());

    // A clean restart on the same address: the members' connections drop and come back.
    let addr = broker.addr.clone();
    assert!(broker.terminate(), "clean shutdown");
    let broker = Shoal::start_on(&data, &addr, &settings);
    let after = describe(&broker, "auditors");
    assert_eq!(
        after["group_epoch"], before["group_epoch"],
        "group epoch restored from __consumer_offsets: {after}"
    );
    assert_eq!(
        members(&after),
        members(&before),
        "members, epochs, assignments"
    );

    // The members carry on heartbeating with their epochs: no rejoin, no new epoch.
    std::thread::sleep(Duration::from_secs(3));
    let later = describe(&broker, "auditors");
    assert_eq!(later["state"], "Stable", "{later}");
    assert_eq!(later["group_epoch"], before["group_epoch"], "{later}");
    assert_eq!(members(&later), members(&before));
    assert_eq!((a.partitions(), b.partitions()), (a_parts, b_parts));

    // And they consume what is produced after the restart, each record once.
    let records: Vec<(String, String)> =
        (0..40).map(|i| (format!("k{i}"), format!("{i}"))).collect();
    produce(&broker, "ledger", &records, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || seen.lock().expect("lock").len()
            >= 40),
        "consumed {} of 40 after the restart",
        seen.lock().expect("lock").len()
    );
    let values: HashSet<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|r| r.3.clone())
        .collect();
    assert_eq!(values.len(), 40);
    // Leave while the restarted broker is up (it is dropped before the members otherwise).
    a.stop();
    b.stop();
}

#[test]
fn a_live_classic_group_upgrades_when_a_consumer_member_joins_and_downgrades_when_it_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "mixed", 4);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    // Two classic members (librdkafka's default eager `range,roundrobin`).
    let a = GroupMember::start(0, &broker, "migrating", "mixed", &[], Arc::clone(&seen));
    let b = GroupMember::start(1, &broker, "migrating", "mixed", &[], Arc::clone(&seen));
    assert!(
        wait_until(Duration::from_secs(30), || exactly_one_owner(
            &[&a, &b],
            4,
            &[2, 2]
        )),
        "the classic group never settled: {:?} {:?}",
        a.partitions(),
        b.partitions()
    );
    assert_eq!(describe(&broker, "migrating")["group_type"], "classic");

    // A consumer-protocol member joins: the group is upgraded online; the classic members
    // stay, rejoin, and give up partitions to the new member.
    let c = member(2, &broker, "migrating", "mixed", &[], Arc::clone(&seen));
    assert!(
        wait_until(Duration::from_secs(30), || exactly_one_owner(
            &[&a, &b, &c],
            4,
            &[1, 1, 2]
        ) && describe(
            &broker,
            "migrating"
        )["state"]
            == "Stable"),
        "the mixed group never settled: {:?} {:?} {:?}\n{}",
        a.partitions(),
        b.partitions(),
        c.partitions(),
        describe(&broker, "migrating")
    );
    let d = describe(&broker, "migrating");
    assert_eq!(d["group_type"], "consumer", "{d}");
    assert_eq!(d["members"].as_array().map(Vec::len), Some(3));

    // Every record produced now is consumed by exactly one of the three.
    let records: Vec<(String, String)> =
        (0..80).map(|i| (format!("k{i}"), format!("{i}"))).collect();
    produce(&broker, "mixed", &records, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || seen.lock().expect("lock").len()
            >= 80),
        "consumed {} of 80",
        seen.lock().expect("lock").len()
    );
    let owners: HashSet<usize> = seen.lock().expect("lock").iter().map(|r| r.0).collect();
    assert!(
        owners.contains(&2),
        "the consumer-protocol member consumed too"
    );

    // The consumer-protocol member leaves: only classic members remain, so the group goes back
    // to the classic protocol and they share the partitions again.
    c.stop();
    assert!(
        wait_until(Duration::from_secs(30), || describe(&broker, "migrating")
            ["group_type"]
            == "classic"
            && exactly_one_owner(&[&a, &b], 4, &[2, 2])),
        "the group never went back to classic: {} {:?} {:?}",
        describe(&broker, "migrating"),
        a.partitions(),
        b.partitions()
    );
    assert!(
        a.errors().is_empty() && b.errors().is_empty(),
        "{:?} {:?}",
        a.errors(),
        b.errors()
    );
}
