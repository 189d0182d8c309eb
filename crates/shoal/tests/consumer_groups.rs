//! Consumer groups through librdkafka against a real shoal process: partitions shared with
//! exactly one owner each, a crashed member's partitions taken over after its session times
//! out, committed offsets surviving a broker SIGKILL.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    create_topic, group_consumer, produce, spawn_group_member_process, wait_until, GroupMember,
    Seen, Shoal,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// A classic-protocol member (6 s session) polling in a thread.
fn member(id: usize, broker: &Shoal, group: &str, topic: &str, seen: Seen) -> GroupMember {
    GroupMember::start(
        id,
        broker,
        group,
        topic,
        &[("session.timeout.ms", "6000")],
        seen,
    )
}

#[test]
fn three_members_share_six_partitions_and_consume_every_record_exactly_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "orders", 6);
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<GroupMember> = (0..3)
        .map(|i| member(i, &broker, "billing", "orders", Arc::clone(&seen)))
        .collect();
    // Every partition owned by exactly one member, two each, held steadily for a second.
    let balanced = || {
        let sets: Vec<Vec<i32>> = members.iter().map(GroupMember::partitions).collect();
        let all: Vec<i32> = sets.iter().flatten().copied().collect();
        let unique: HashSet<i32> = all.iter().copied().collect();
        sets.iter().all(|s| s.len() == 2) && all.len() == 6 && unique.len() == 6
    };
    assert!(
        wait_until(Duration::from_secs(30), balanced),
        "group never balanced: {:?}\n{}",
        members
            .iter()
            .map(GroupMember::partitions)
            .collect::<Vec<_>>(),
        broker.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(balanced(), "assignment changed after balancing");
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
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 600, "no record consumed twice");
    let values: HashSet<&String> = seen.iter().map(|r| &r.3).collect();
    assert_eq!(values.len(), 600, "every record consumed once");
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (member, p, off, _) in &seen {
        assert_eq!(
            owner.get(p),
            Some(member),
            "partition {p} consumed by member {member}, owned by {:?}",
            owner.get(p)
        );
        if let Some(prev) = last.insert(*p, *off) {
            assert!(*off > prev, "partition {p} out of order: {prev} then {off}");
        }
    }
    let used: HashSet<usize> = seen.iter().map(|r| r.0).collect();
    assert_eq!(used.len(), 3, "all three members consumed");
    // Auto-commit (several partitions per OffsetCommit) records every member's position.
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
}

#[test]
fn member_killed_without_leaving_loses_its_partitions_to_the_survivor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "jobs", 4);
    // The victim is a separate process so it can die without LeaveGroup.
    let (mut victim, victim_assigned) =
        spawn_group_member_process(&broker, "workers", "jobs", "classic");
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let survivor = member(0, &broker, "workers", "jobs", Arc::clone(&seen));
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
    // No LeaveGroup: the broker must notice the missed session (6 s) and rebalance.
    assert!(
        wait_until(Duration::from_secs(30), || survivor.partitions()
            == vec![0, 1, 2, 3]),
        "survivor never took over all partitions: {:?}\n{}",
        survivor.partitions(),
        broker.log()
    );
    let took = killed_at.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "takeover came before the session could expire ({took:?}): did the victim leave?"
    );
    let records: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{i}"), format!("job-{i}")))
        .collect();
    produce(&broker, "jobs", &records, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = seen.lock().expect("lock");
            records.iter().all(|(_, v)| s.iter().any(|r| &r.3 == v))
        }),
        "survivor did not consume the records of the dead member's partitions"
    );
}

#[test]
fn committed_offsets_survive_a_broker_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = Shoal::start(&data, &[]);
    create_topic(&broker, "ledger", 2);
    let records: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), format!("{i}")))
        .collect();
    produce(&broker, "ledger", &records, &[("acks", "all")]);
    let mut committed: HashMap<i32, i64> = HashMap::new();
    {
        let consumer = group_consumer(&broker, "auditors", &[]);
        consumer.subscribe(&["ledger"]).expect("subscribe");
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while n < 60 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                committed.insert(m.partition(), m.offset() + 1);
                n += 1;
                if n == 30 {
                    // One partition's commit, then later both partitions in one OffsetCommit.
                    consumer
                        .commit_message(&m, CommitMode::Sync)
                        .expect("commit one");
                }
            }
        }
        assert_eq!(n, 60, "consumed 60 records before the crash");
        assert_eq!(committed.len(), 2, "records came from both partitions");
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit both partitions at once");
    }
    let addr = broker.addr.clone();
    broker.kill();
    let broker = Shoal::start_on(&data, &addr, &[]);
    let consumer = group_consumer(&broker, "auditors", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("ledger", 0);
    tpl.add_partition("ledger", 1);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch after restart");
    for e in got.elements() {
        let want = committed
            .get(&e.partition())
            .copied()
            .map_or(Offset::Invalid, Offset::Offset);
        assert_eq!(
            e.offset(),
            want,
            "committed offset of partition {} after SIGKILL",
            e.partition()
        );
    }
    // A new member resumes exactly at the committed positions and sees the other 40 records.
    consumer.subscribe(&["ledger"]).expect("subscribe");
    let mut firsts: HashMap<i32, i64> = HashMap::new();
    let mut rest = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rest < 40 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            firsts.entry(m.partition()).or_insert(m.offset());
            rest += 1;
        }
    }
    assert_eq!(
        rest, 40,
        "the 40 unconsumed records are delivered after restart"
    );
    for (p, first) in firsts {
        assert_eq!(
            Some(&first),
            committed.get(&p).or(Some(&0)),
            "partition {p} resumed at the committed offset"
        );
    }
}
