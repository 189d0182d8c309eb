//! Scenario tests of KIP-848 consumer groups with a fake clock: each step sends a
//! ConsumerGroupHeartbeat (or fires a timer) at a chosen `now_ms` and checks epochs,
//! assignments, errors and timers. After every step the harness checks the invariant that
//! matters most: no partition is ever owned by two members.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use shoal_group::assignor::{TopicMetadata, TopicPartitions};
use shoal_group::classic::{CommitPartition, CommitRequest};
use shoal_group::consumer::{HeartbeatRequest, HeartbeatResponse, TopicCatalog};
use shoal_group::{CoordinatorConfig, GroupCoordinator, GroupError, Output, Record, TimerKey};
use uuid::Uuid;

#[derive(Default)]
struct Catalog {
    topics: HashMap<String, TopicMetadata>,
}

impl TopicCatalog for Catalog {
    fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.topics.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }
}

fn tid(name: &str) -> Uuid {
    let mut b = [0u8; 16];
    for (i, c) in name.bytes().enumerate().take(16) {
        b[i] = c;
    }
    Uuid::from_bytes(b)
}

struct Harness {
    c: GroupCoordinator,
    catalog: Catalog,
    now: i64,
    timers: BTreeMap<TimerKey, i64>,
    /// What each member believes it owns (from the last assignment it received).
    owned: HashMap<String, TopicPartitions>,
    epochs: HashMap<String, i32>,
    /// Every record the coordinator wrote, in order (what `__consumer_offsets` holds).
    records: Vec<Record>,
}

impl Harness {
    fn new() -> Self {
        let mut config = CoordinatorConfig::default();
        config.consumer.session_timeout_ms = 10_000;
        let mut h = Self {
            c: GroupCoordinator::new(config, 9),
            catalog: Catalog::default(),
            now: 1_000_000,
            timers: BTreeMap::new(),
            owned: HashMap::new(),
            epochs: HashMap::new(),
            records: Vec::new(),
        };
        h.topic("t", 4);
        h
    }

    fn topic(&mut self, name: &str, partitions: i32) {
        self.catalog.topics.insert(
            name.to_string(),
            TopicMetadata {
                topic_id: tid(name),
                name: name.to_string(),
                partitions,
            },
        );
    }

    /// A broker restart: a new coordinator rebuilt from the records, each one encoded to the
    /// bytes `__consumer_offsets` holds and decoded back; its start-up timers replace ours.
    fn restart(&mut self) {
        let mut config = CoordinatorConfig::default();
        config.consumer.session_timeout_ms = 10_000;
        let mut c = GroupCoordinator::new(config, 10);
        for r in &self.records {
            let back = Record::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap();
            assert_eq!(&back, r);
            c.replay(&back, self.now);
        }
        self.timers.clear();
        let out = c.start(self.now);
        self.c = c;
        self.absorb(out);
    }

    fn absorb(&mut self, out: Output) {
        self.records.extend(out.records);
        for (k, d) in out.timers {
            match d {
                Some(d) => {
                    self.timers.insert(k, d);
                }
                None => {
                    self.timers.remove(&k);
                }
            }
        }
        self.check_exactly_one_owner();
    }

    fn check_exactly_one_owner(&self) {
        let mut seen = BTreeSet::new();
        for (m, a) in self.c.consumer_assignments("g") {
            for (t, ps) in a {
                for p in ps {
                    assert!(
                        seen.insert((t, p)),
                        "partition {t}-{p} owned twice (by {m} too)"
                    );
                }
            }
        }
    }

    fn advance(&mut self, to: i64) {
        loop {
            let due = self
                .timers
                .iter()
                .filter(|(_, d)| **d <= to)
                .min_by_key(|(_, d)| **d)
                .map(|(k, d)| (k.clone(), *d));
            let Some((key, d)) = due else { break };
            self.timers.remove(&key);
            self.now = d.max(self.now);
            let out = self.c.on_timer(&key, self.now);
            self.absorb(out);
        }
        self.now = to;
    }

    fn send(&mut self, req: HeartbeatRequest) -> HeartbeatResponse {
        let member = req.member_id.clone();
        let (resp, out) = self.c.consumer_heartbeat(req, &self.catalog, self.now);
        self.absorb(out);
        if resp.error.is_none() {
            if let Some(a) = &resp.assignment {
                self.owned.insert(member.clone(), a.clone());
            }
            self.epochs.insert(member, resp.member_epoch);
        }
        resp
    }

    fn join_with(
        &mut self,
        member: &str,
        topics: &[&str],
        assignor: Option<&str>,
    ) -> HeartbeatResponse {
        self.send(HeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
            server_assignor: assignor.map(Into::into),
            ..HeartbeatRequest::default()
        })
    }

    /// The member leaves the group (epoch -1).
    fn leave(&mut self, member: &str) -> HeartbeatResponse {
        self.send(HeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: -1,
            rebalance_timeout_ms: -1,
            ..HeartbeatRequest::default()
        })
    }

    fn join(&mut self, member: &str) -> HeartbeatResponse {
        self.join_with(member, &["t"], None)
    }

    /// A regular heartbeat that reports what the member owns (as librdkafka does once it has
    /// applied an assignment).
    fn beat(&mut self, member: &str) -> HeartbeatResponse {
        let epoch = self.epochs.get(member).copied().unwrap_or(0);
        let owned = self.owned.get(member).cloned().unwrap_or_default();
        self.send(HeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned),
            ..HeartbeatRequest::default()
        })
    }

    fn parts(&self, member: &str) -> Vec<i32> {
        self.owned
            .get(member)
            .map(|a| a.values().flatten().copied().collect())
            .unwrap_or_default()
    }

    fn state(&self) -> &'static str {
        self.c
            .list()
            .into_iter()
            .find(|g| g.group_id == "g")
            .map_or("none", |g| g.state)
    }

    /// Heartbeats every member in turn until the group is Stable (bounded).
    fn settle(&mut self, members: &[String]) -> usize {
        for round in 0..20 {
            if self.state() == "Stable" {
                return round;
            }
            for m in members {
                let r = self.beat(m);
                assert_eq!(r.error, None, "{m}: {r:?}");
            }
        }
        panic!("group never became Stable");
    }
}

#[test]
fn first_member_gets_every_partition_at_epoch_one() {
    let mut h = Harness::new();
    let r = h.join("a");
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(h.parts("a"), vec![0, 1, 2, 3]);
    assert_eq!(h.state(), "Stable");
    assert_eq!(r.heartbeat_interval_ms, 5_000);
}

#[test]
fn joining_member_waits_until_the_owner_revokes_so_no_partition_has_two_owners() {
    let mut h = Harness::new();
    h.join("a");
    let b = h.join("b");
    // b is at the new epoch but every partition it targets is still a's.
    assert_eq!(b.member_epoch, 2);
    assert!(h.parts("b").is_empty(), "b got partitions a still owns");
    assert_eq!(h.state(), "Reconciling");
    // While reconciling, members are asked to heartbeat fast.
    assert_eq!(b.heartbeat_interval_ms, 50);
    // a learns it must revoke two partitions; it keeps its epoch until it has.
    let a = h.beat("a");
    assert_eq!(a.member_epoch, 1);
    assert_eq!(h.parts("a").len(), 2);
    // b still waits: a has not yet confirmed the revocation.
    h.beat("b");
    assert!(h.parts("b").is_empty());
    // a confirms (owned = its 2 partitions), gets epoch 2; then b gets the released ones.
    let a = h.beat("a");
    assert_eq!(a.member_epoch, 2);
    h.beat("b");
    assert_eq!(h.parts("b").len(), 2);
    let mut all: Vec<i32> = h.parts("a").into_iter().chain(h.parts("b")).collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3]);
    assert_eq!(h.state(), "Stable");
}

#[test]
fn wrong_epochs_and_unknown_members_get_kafkas_errors() {
    let mut h = Harness::new();
    h.join("a");
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        member_epoch: 7,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, Some(GroupError::FencedMemberEpoch));
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "ghost".into(),
        member_epoch: 1,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    // A member that missed the reply moving it to epoch 2 may still send epoch 1 with
    // partitions it really has (Kafka tolerates the previous epoch).
    h.join("b");
    h.beat("a"); // revoke 2
    h.beat("a"); // ack -> epoch 2
    let owned = h.owned["a"].clone();
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        member_epoch: 1,
        rebalance_timeout_ms: -1,
        owned: Some(owned),
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, 2);
    // Without owned partitions the previous epoch is fenced.
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        member_epoch: 1,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, Some(GroupError::FencedMemberEpoch));
}

#[test]
fn member_that_misses_its_session_is_removed_and_its_partitions_move() {
    let mut h = Harness::new();
    h.join("a");
    h.join("b");
    let members = vec!["a".to_string(), "b".to_string()];
    h.settle(&members);
    // Only a keeps heartbeating; b's 10 s session expires.
    for step in 1..=4 {
        h.advance(1_000_000 + step * 3_000);
        h.beat("a");
    }
    assert!(
        !h.c.consumer_assignments("g").contains_key("b"),
        "b still a member"
    );
    h.beat("a");
    assert_eq!(h.parts("a"), vec![0, 1, 2, 3]);
    let r = h.beat("b");
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn member_that_does_not_revoke_within_its_rebalance_timeout_is_fenced() {
    let mut h = Harness::new();
    h.join("a");
    h.join("b");
    h.beat("a"); // told to revoke; a never confirms.
    assert!(h
        .timers
        .keys()
        .any(|k| matches!(k, TimerKey::ConsumerRebalance { member_id, .. } if member_id == "a")));
    // b keeps heartbeating; after a's 30 s rebalance timeout a is removed.
    for step in 1..=12 {
        h.advance(1_000_000 + step * 3_000);
        let r = h.beat("b");
        assert_eq!(r.error, None);
    }
    assert_eq!(h.parts("b"), vec![0, 1, 2, 3]);
    assert_eq!(h.beat("a").error, Some(GroupError::UnknownMemberId));
}

#[test]
fn static_member_restarting_within_its_session_keeps_epoch_and_partitions() {
    let mut h = Harness::new();
    let join_static = |h: &mut Harness, member: &str| {
        h.send(HeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            instance_id: Some("node-1".into()),
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            ..HeartbeatRequest::default()
        })
    };
    join_static(&mut h, "s1");
    h.join("d");
    let members = vec!["s1".to_string(), "d".to_string()];
    h.settle(&members);
    let before = h.parts("s1");
    let epoch_before = h.epochs["s1"];
    // Another process claiming the same instance id while s1 is alive is refused.
    assert_eq!(
        join_static(&mut h, "intruder").error,
        Some(GroupError::UnreleasedInstanceId)
    );
    // s1 leaves temporarily (epoch -2) and its new incarnation s2 rejoins.
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "s1".into(),
        member_epoch: -2,
        instance_id: Some("node-1".into()),
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, -2);
    let r = join_static(&mut h, "s2");
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, epoch_before, "no new epoch: no rebalance");
    let mut got: Vec<i32> = r.assignment.unwrap().values().flatten().copied().collect();
    got.sort_unstable();
    assert_eq!(got, before);
    assert_eq!(h.state(), "Stable");
    // The old incarnation is gone.
    assert_eq!(h.beat("s1").error, Some(GroupError::UnknownMemberId));
}

#[test]
fn unsupported_assignor_is_refused_and_range_gives_contiguous_ranges() {
    let mut h = Harness::new();
    let r = h.join_with("x", &["t"], Some("sticky"));
    assert_eq!(r.error, Some(GroupError::UnsupportedAssignor));
    h.join_with("a", &["t"], Some("range"));
    h.join_with("b", &["t"], Some("range"));
    h.settle(&["a".to_string(), "b".to_string()]);
    assert_eq!(h.parts("a"), vec![0, 1]);
    assert_eq!(h.parts("b"), vec![2, 3]);
}

#[test]
fn join_storm_of_200_members_converges_with_exactly_one_owner_per_partition() {
    let mut h = Harness::new();
    h.topic("t", 50);
    let members: Vec<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    for m in &members {
        assert_eq!(h.join(m).error, None);
    }
    let rounds = h.settle(&members);
    assert!(rounds <= 3, "took {rounds} heartbeat rounds");
    let owners: usize = members.iter().filter(|m| !h.parts(m).is_empty()).count();
    assert_eq!(owners, 50);
    let total: usize = members.iter().map(|m| h.parts(m).len()).sum();
    assert_eq!(total, 50);
}

#[test]
fn new_partitions_bump_the_group_epoch_and_get_assigned() {
    let mut h = Harness::new();
    h.join("a");
    h.topic("t", 6);
    let r = h.beat("a");
    assert_eq!(r.member_epoch, 2);
    assert_eq!(h.parts("a"), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn regex_subscription_matches_whole_topic_names() {
    let mut h = Harness::new();
    h.topic("orders-eu", 1);
    h.topic("orders-us", 1);
    h.topic("xorders-us", 1);
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_regex: Some("orders-.*".into()),
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, None);
    // Like Kafka, the regex is resolved after the heartbeat that brought it: nothing yet,
    // and the member is asked to come back quickly.
    assert!(r.assignment.unwrap().is_empty());
    assert_eq!(r.heartbeat_interval_ms, 50);
    h.beat("a");
    let topics: BTreeSet<Uuid> = h.owned["a"].keys().copied().collect();
    assert_eq!(
        topics,
        [tid("orders-eu"), tid("orders-us")].into_iter().collect()
    );
    let bad = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "b".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_regex: Some("(".into()),
        ..HeartbeatRequest::default()
    });
    assert_eq!(bad.error, Some(GroupError::InvalidRegularExpression));
}

fn commit(h: &mut Harness, member: &str, epoch: i32, version: i16) -> Option<GroupError> {
    let (errs, out) = h.c.commit(
        CommitRequest {
            group_id: "g".into(),
            generation_id: epoch,
            member_id: member.into(),
            group_instance_id: None,
            api_version: version,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset: 42,
                leader_epoch: -1,
                metadata: None,
            }],
        },
        h.now,
    );
    h.absorb(out);
    errs[0]
}

#[test]
fn offset_commits_are_checked_against_the_member_epoch() {
    let mut h = Harness::new();
    h.join("a");
    assert_eq!(commit(&mut h, "a", 1, 9), None);
    assert_eq!(
        commit(&mut h, "a", 0, 9),
        Some(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        commit(&mut h, "a", 5, 9),
        Some(GroupError::FencedMemberEpoch)
    );
    assert_eq!(
        commit(&mut h, "a", 1, 8),
        Some(GroupError::UnsupportedVersion)
    );
    assert_eq!(
        commit(&mut h, "nobody", 1, 9),
        Some(GroupError::UnknownMemberId)
    );
    // Admin-style commits (no member, epoch -1) only while the group is empty.
    assert_eq!(commit(&mut h, "", -1, 9), Some(GroupError::UnknownMemberId));
    let fetched = h.c.fetch_offsets("g", Some(&[("t".to_string(), 0)]));
    assert_eq!(fetched[0].1.as_ref().map(|o| o.offset), Some(42));
}

#[test]
fn an_empty_group_switches_protocols_and_keeps_its_offsets() {
    let mut h = Harness::new();
    // Offsets committed by a manual-assignment consumer: an empty classic group.
    assert_eq!(commit(&mut h, "", -1, 8), None);
    let r = h.join("a");
    assert_eq!(
        r.error, None,
        "an empty classic group becomes a consumer group"
    );
    let listing = h.c.list().into_iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!(listing.group_type, "consumer");
    assert_eq!(h.c.describe("g").err(), Some(GroupError::GroupIdNotFound));
    // The member leaves: the group is empty and its offsets are still there.
    let r = h.leave("a");
    assert_eq!(r.error, None);
    assert_eq!(r.member_epoch, -1);
    assert_eq!(h.state(), "Empty");
    let fetched = h.c.fetch_offsets("g", Some(&[("t".to_string(), 0)]));
    assert_eq!(fetched[0].1.as_ref().map(|o| o.offset), Some(42));
    // And an empty consumer group can be deleted.
    let out =
        h.c.delete_group("g", h.now)
            .expect("delete empty consumer group");
    assert!(!out.records.is_empty(), "tombstones written");
}

#[test]
fn consumer_group_state_survives_a_restart_mid_rebalance() {
    let mut h = Harness::new();
    h.topic("u", 2);
    h.join("a");
    h.join_with("b", &["t", "u"], Some("uniform"));
    // a must revoke; b waits for a's partitions: a rebalance in flight.
    h.beat("a");
    let before = h.c.consumer_describe("g").unwrap();
    assert_eq!(before.state.as_str(), "Reconciling");

    h.restart();
    let after = h.c.consumer_describe("g").unwrap();
    assert_eq!(
        after, before,
        "epochs, members, assignments and targets restored"
    );
    // Every member's session timer is armed again, and a's revocation deadline too.
    for m in ["a", "b"] {
        assert!(h.timers.contains_key(&TimerKey::ConsumerSession {
            group_id: "g".into(),
            member_id: m.into()
        }));
    }
    assert!(h.timers.contains_key(&TimerKey::ConsumerRebalance {
        group_id: "g".into(),
        member_id: "a".into()
    }));

    // The members carry on with their epochs: no UNKNOWN_MEMBER_ID, no new group epoch.
    h.settle(&["a".to_string(), "b".to_string()]);
    let settled = h.c.consumer_describe("g").unwrap();
    assert_eq!(settled.group_epoch, before.group_epoch);
    let mut all: Vec<i32> = h.parts("a").into_iter().chain(h.parts("b")).collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 0, 1, 1, 2, 3], "t 0-3 and u 0-1, each once");

    // Heartbeats of a settled group write nothing.
    let written = h.records.len();
    h.beat("a");
    h.beat("b");
    assert_eq!(
        h.records.len(),
        written,
        "a steady heartbeat writes no record"
    );

    // A restart of the settled group changes nothing either.
    h.restart();
    assert_eq!(h.c.consumer_describe("g").unwrap(), settled);
    assert_eq!(h.beat("a").error, None);
}

#[test]
fn members_that_left_and_deleted_groups_stay_gone_after_a_restart() {
    let mut h = Harness::new();
    h.join("a");
    h.join("b");
    h.settle(&["a".to_string(), "b".to_string()]);
    assert_eq!(h.leave("b").error, None);
    h.restart();
    let d = h.c.consumer_describe("g").unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, "a");
    assert_eq!(h.beat("b").error, Some(GroupError::UnknownMemberId));

    assert_eq!(h.leave("a").error, None);
    h.restart();
    let d = h.c.consumer_describe("g").unwrap();
    assert!(d.members.is_empty());
    assert_eq!(h.state(), "Empty");

    let out =
        h.c.delete_group("g", h.now)
            .expect("delete the empty group");
    h.absorb(out);
    h.restart();
    assert_eq!(
        h.c.consumer_describe("g").err(),
        Some(GroupError::GroupIdNotFound)
    );
}

#[test]
fn a_consumer_group_turned_classic_replays_as_classic() {
    let mut h = Harness::new();
    h.join("a");
    let r = h.leave("a");
    assert_eq!(r.error, None);
    // A classic member joins the now empty group: it becomes a classic group.
    let out = h.c.join(
        1,
        shoal_group::classic::JoinRequest {
            group_id: "g".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            member_id: String::new(),
            group_instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: false,
        },
        h.now,
    );
    h.absorb(out);
    assert!(
        h.records.iter().any(|r| matches!(
            r,
            Record::Consumer(shoal_group::records::ConsumerRecord::GroupEpoch { epoch: None, .. })
        )),
        "the consumer group's records are tombstoned"
    );
    h.restart();
    let listing = h.c.list().into_iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!(listing.group_type, "classic");
}

#[test]
fn a_member_rejoining_right_after_leaving_without_a_rebalance_timeout_is_accepted() {
    // librdkafka 2.12 can send the join that follows its leave without RebalanceTimeoutMs and
    // with a null TopicPartitions; Kafka would answer INVALID_REQUEST, which the client treats
    // as fatal. Shoal accepts it.
    let mut h = Harness::new();
    h.join("a");
    let r = h.leave("a");
    assert_eq!(r.error, None);
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "a".into(),
        member_epoch: 0,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: None,
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, None);
    assert_eq!(h.parts("a"), vec![0, 1, 2, 3]);
    // A new member still has to say what it subscribes to.
    let r = h.send(HeartbeatRequest {
        group_id: "g".into(),
        member_id: "z".into(),
        member_epoch: 0,
        rebalance_timeout_ms: -1,
        ..HeartbeatRequest::default()
    });
    assert_eq!(r.error, Some(GroupError::InvalidRequest));
}

// ----- online migration between the classic and consumer protocols (Kafka 4.x) -------------

use shoal_group::classic::{JoinRequest, SyncRequest};
use shoal_group::{consumer_protocol, Reply};

/// A classic consumer's Subscription (v1) to `topics`, with the partitions it owns.
fn subscription(topics: &[&str], owned: &[(&str, &[i32])]) -> bytes::Bytes {
    let mut v = 1i16.to_be_bytes().to_vec();
    v.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        v.extend_from_slice(&(t.len() as i16).to_be_bytes());
        v.extend_from_slice(t.as_bytes());
    }
    v.extend_from_slice(&(-1i32).to_be_bytes());
    v.extend_from_slice(&(owned.len() as i32).to_be_bytes());
    for (t, ps) in owned {
        v.extend_from_slice(&(t.len() as i16).to_be_bytes());
        v.extend_from_slice(t.as_bytes());
        v.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in *ps {
            v.extend_from_slice(&p.to_be_bytes());
        }
    }
    bytes::Bytes::from(v)
}

fn classic_join_request(member: &str, owned: &[(&str, &[i32])]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription(&["t"], owned))],
        require_known_member_id: false,
    }
}

impl Harness {
    fn replies(&mut self, out: Output) -> Vec<Reply> {
        let replies = out.replies.iter().map(|(_, r)| r.clone()).collect();
        self.absorb(out);
        replies
    }

    /// A classic member's JoinGroup answered at once (it joins a consumer group).
    fn classic_join(
        &mut self,
        member: &str,
        owned: &[(&str, &[i32])],
    ) -> (i32, Option<GroupError>) {
        let out = self.c.join_with(
            7,
            classic_join_request(member, owned),
            &self.catalog,
            self.now,
        );
        match self.replies(out).pop() {
            Some(Reply::Join(r)) => (r.generation_id, r.error),
            other => panic!("no JoinGroup reply: {other:?}"),
        }
    }

    /// A classic member's SyncGroup: its partitions of `t`.
    fn classic_sync(&mut self, member: &str, generation: i32) -> Vec<i32> {
        let out = self.c.sync(
            8,
            SyncRequest {
                group_id: "g".into(),
                member_id: member.into(),
                generation_id: generation,
                group_instance_id: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: Vec::new(),
            },
            self.now,
        );
        match self.replies(out).pop() {
            Some(Reply::Sync(r)) => {
                assert_eq!(r.error, None, "SyncGroup of {member}");
                consumer_protocol::assigned_partitions(&r.assignment)
                    .unwrap()
                    .into_iter()
                    .flat_map(|(_, ps)| ps)
                    .collect()
            }
            other => panic!("no SyncGroup reply: {other:?}"),
        }
    }

    /// A classic group "g" with two members (the first by id owns partitions 0 and 1, the
    /// other 2 and 3); returns the generation and the member ids.
    fn classic_group(&mut self) -> (i32, Vec<String>) {
        let mut config = CoordinatorConfig {
            initial_rebalance_delay_ms: 0,
            ..CoordinatorConfig::default()
        };
        config.consumer.session_timeout_ms = 10_000;
        self.c = GroupCoordinator::new(config, 11);
        let out = self.c.join(1, classic_join_request("", &[]), self.now);
        let x = match self.replies(out).pop() {
            Some(Reply::Join(r)) => r.member_id,
            other => panic!("{other:?}"),
        };
        // y joins: the group rebalances; x rejoins; both get the generation.
        let out = self.c.join(2, classic_join_request("", &[]), self.now);
        self.absorb(out);
        let out = self.c.join(3, classic_join_request(&x, &[]), self.now);
        let replies = self.replies(out);
        let mut members: Vec<String> = replies
            .iter()
            .filter_map(|r| match r {
                Reply::Join(j) => Some(j.member_id.clone()),
                _ => None,
            })
            .collect();
        members.sort();
        let generation = match &replies[0] {
            Reply::Join(j) => j.generation_id,
            _ => unreachable!(),
        };
        let assignment = |ps: &[i32]| {
            bytes::Bytes::from(consumer_protocol::encode_assignment(
                0,
                &[("t".to_string(), ps.to_vec())],
            ))
        };
        let leader = match replies.iter().find_map(|r| match r {
            Reply::Join(j) if !j.members.is_empty() => Some(j.member_id.clone()),
            _ => None,
        }) {
            Some(l) => l,
            None => panic!("no leader in {replies:?}"),
        };
        for (i, m) in members.iter().enumerate() {
            let out = self.c.sync(
                10 + i as shoal_group::RequestId,
                SyncRequest {
                    group_id: "g".into(),
                    member_id: m.clone(),
                    generation_id: generation,
                    group_instance_id: None,
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    assignments: if *m == leader {
                        vec![
                            (members[0].clone(), assignment(&[0, 1])),
                            (members[1].clone(), assignment(&[2, 3])),
                        ]
                    } else {
                        Vec::new()
                    },
                },
                self.now,
            );
            self.absorb(out);
        }
        assert_eq!(self.state(), "Stable");
        (generation, members)
    }

    fn classic_heartbeat(&mut self, member: &str, generation: i32) -> Option<GroupError> {
        let (e, out) = self.c.heartbeat("g", member, None, generation, self.now);
        self.absorb(out);
        e
    }
}

#[test]
fn a_classic_group_with_members_upgrades_online_and_downgrades_when_the_consumer_member_leaves() {
    let mut h = Harness::new();
    let (generation, ids) = h.classic_group();
    let (x, y) = (ids[0].clone(), ids[1].clone());

    // A consumer-protocol member joins the live classic group: it becomes a consumer group
    // whose classic members keep their partitions and generation (now their member epoch).
    let r = h.join("c");
    assert_eq!(r.error, None, "{r:?}");
    let listing = h.c.list().into_iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!(listing.group_type, "consumer");
    let d = h.c.consumer_describe("g").unwrap();
    let epoch_of = |d: &shoal_group::consumer::ConsumerGroupDescription, m: &str| {
        d.members
            .iter()
            .find(|x| x.member_id == m)
            .map(|x| x.member_epoch)
    };
    assert_eq!(epoch_of(&d, &x), Some(generation));
    assert_eq!(d.members.len(), 3);
    assert!(
        h.parts("c").is_empty(),
        "every partition is still x's or y's"
    );

    // The classic members learn through their heartbeats that they must rejoin; being eager
    // (range), they give up everything first. Each JoinGroup is answered at once.
    let mut gens = HashMap::new();
    for m in [&x, &y] {
        assert_eq!(
            h.classic_heartbeat(m, generation),
            Some(GroupError::RebalanceInProgress)
        );
        let (g, e) = h.classic_join(m, &[]);
        assert_eq!(e, None);
        assert!(g > generation, "{m} is at the new epoch");
        gens.insert(m.clone(), g);
    }
    let px = h.classic_sync(&x, gens[&x]);
    let py = h.classic_sync(&y, gens[&y]);
    h.beat("c");
    let mut all: Vec<i32> = px.iter().chain(&py).copied().chain(h.parts("c")).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        vec![0, 1, 2, 3],
        "x {px:?} y {py:?} c {:?}",
        h.parts("c")
    );
    assert!(
        !h.parts("c").is_empty(),
        "the consumer member got partitions"
    );
    assert_eq!(h.classic_heartbeat(&x, gens[&x]), None, "x is reconciled");
    assert_eq!(h.state(), "Stable");

    // The mixed group survives a restart: classic members with their session timeouts.
    let before = h.c.consumer_describe("g").unwrap();
    h.restart();
    assert_eq!(h.c.consumer_describe("g").unwrap(), before);
    assert!(h.timers.contains_key(&TimerKey::ConsumerSession {
        group_id: "g".into(),
        member_id: x.clone()
    }));

    // The consumer member leaves: only classic members remain, the group becomes a classic
    // group again and rebalances so they rejoin it as one.
    let r = h.leave("c");
    assert_eq!(r.error, None);
    let listing = h.c.list().into_iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!(listing.group_type, "classic");
    assert_eq!(listing.state, "PreparingRebalance");
    assert_eq!(
        h.classic_heartbeat(&x, gens[&x]),
        Some(GroupError::RebalanceInProgress)
    );
    h.restart();
    let listing = h.c.list().into_iter().find(|g| g.group_id == "g").unwrap();
    assert_eq!(listing.group_type, "classic", "the downgrade is persisted");
}

#[test]
fn with_migration_disabled_groups_with_members_keep_their_protocol() {
    let mut h = Harness::new();
    h.classic_group();
    let mut config = h.c.config().clone();
    config.consumer.migration_policy = shoal_group::consumer::MigrationPolicy::Disabled;
    let records = h.records.clone();
    let mut c = GroupCoordinator::new(config, 12);
    for r in &records {
        c.replay(r, h.now);
    }
    h.c = c;
    let r = h.join("c");
    assert_eq!(r.error, Some(GroupError::GroupIdNotFound));

    let mut h = Harness::new();
    h.c = {
        let mut config = CoordinatorConfig::default();
        config.consumer.migration_policy = shoal_group::consumer::MigrationPolicy::Disabled;
        GroupCoordinator::new(config, 13)
    };
    h.join("c");
    assert_eq!(
        h.classic_join("", &[]).1,
        Some(GroupError::InconsistentGroupProtocol)
    );
}
