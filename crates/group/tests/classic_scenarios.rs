//! Scenario tests of the classic group coordinator with a fake clock: every step feeds a
//! request or a timer at a chosen `now_ms` and checks the replies, records, timers and state.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use shoal_group::classic::{
    CommitPartition, CommitRequest, JoinRequest, JoinResponse, SyncRequest, SyncResponse,
};
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupState, Output, Record, Reply, TimerKey,
};

/// The coordinator plus the caller's side: a clock, a timer table and the delivered replies.
struct Harness {
    c: GroupCoordinator,
    now: i64,
    timers: BTreeMap<TimerKey, i64>,
    next_id: u64,
    joins: HashMap<u64, JoinResponse>,
    syncs: HashMap<u64, SyncResponse>,
    records: Vec<Record>,
    /// Protocol metadata new joins send; `None`: a placeholder naming the member.
    metadata: Option<Bytes>,
}

impl Harness {
    fn new(initial_delay_ms: i64) -> Self {
        let config = CoordinatorConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..CoordinatorConfig::default()
        };
        Self {
            c: GroupCoordinator::new(config, 7),
            now: 1_000_000,
            timers: BTreeMap::new(),
            next_id: 0,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            records: Vec::new(),
            metadata: None,
        }
    }

    fn absorb(&mut self, out: Output) {
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
        for (id, r) in out.replies {
            match r {
                Reply::Join(j) => {
                    self.joins.insert(id, j);
                }
                Reply::Sync(s) => {
                    self.syncs.insert(id, s);
                }
            }
        }
        self.records.extend(out.records);
    }

    /// Advances the clock to `to`, firing due timers in deadline order.
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

    fn join(&mut self, member_id: &str, instance: Option<&str>, protocols: &[&str]) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let req = JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| {
                    let meta = self
                        .metadata
                        .clone()
                        .unwrap_or_else(|| Bytes::from(format!("meta-{member_id}")));
                    (p.to_string(), meta)
                })
                .collect(),
            require_known_member_id: true,
        };
        let out = self.c.join(id, req, self.now);
        self.absorb(out);
        id
    }

    /// Joins a new dynamic member through the KIP-394 round trip; returns (member_id, request).
    fn join_new(&mut self) -> (String, u64) {
        let first = self.join("", None, &["range"]);
        let r = self.joins.remove(&first).expect("MEMBER_ID_REQUIRED reply");
        assert_eq!(r.error, Some(GroupError::MemberIdRequired));
        let id = r.member_id.clone();
        let req = self.join(&id, None, &["range"]);
        (id, req)
    }

    fn sync(&mut self, member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let req = SyncRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            generation_id,
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        };
        let out = self.c.sync(id, req, self.now);
        self.absorb(out);
        id
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> Option<GroupError> {
        let (e, out) = self
            .c
            .heartbeat("g", member_id, None, generation_id, self.now);
        self.absorb(out);
        e
    }

    fn commit(&mut self, member_id: &str, generation_id: i32, offset: i64) -> Option<GroupError> {
        let (errs, out) = self.c.commit(
            CommitRequest {
                group_id: "g".into(),
                generation_id,
                member_id: member_id.into(),
                group_instance_id: None,
                api_version: 8,
                partitions: vec![CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset,
                    leader_epoch: -1,
                    metadata: None,
                }],
            },
            self.now,
        );
        self.absorb(out);
        errs[0]
    }

    fn state(&self) -> GroupState {
        self.c.state("g").expect("group exists")
    }
}

/// Two members join and sync; returns (harness, leader id, follower id, generation).
fn stable_pair() -> (Harness, String, String, i32) {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    let ra = h
        .joins
        .remove(&ja)
        .expect("first member's join completes at once (no delay)");
    h.sync(&a, ra.generation_id, &[(&a, "p0,p1")]);
    let (b, jb) = h.join_new();
    assert_eq!(
        h.state(),
        GroupState::PreparingRebalance,
        "a new member triggers a rebalance"
    );
    assert!(
        !h.joins.contains_key(&jb),
        "the newcomer waits for the existing member to rejoin"
    );
    assert_eq!(
        h.heartbeat(&a, ra.generation_id),
        Some(GroupError::RebalanceInProgress)
    );
    let ja2 = h.join(&a, None, &["range"]);
    let (ra2, rb) = (h.joins.remove(&ja2).unwrap(), h.joins.remove(&jb).unwrap());
    assert_eq!(ra2.generation_id, ra.generation_id + 1);
    assert_eq!(ra2.leader, a, "the earlier member stays leader");
    assert_eq!(ra2.members.len(), 2, "leader gets every member's metadata");
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let gen = ra2.generation_id;
    let sb = h.sync(&b, gen, &[]);
    assert!(
        !h.syncs.contains_key(&sb),
        "follower's SyncGroup waits for the leader"
    );
    let sa = h.sync(&a, gen, &[(&a, "p0"), (&b, "p1")]);
    assert_eq!(h.syncs.remove(&sa).unwrap().assignment, Bytes::from("p0"));
    assert_eq!(h.syncs.remove(&sb).unwrap().assignment, Bytes::from("p1"));
    assert_eq!(h.state(), GroupState::Stable);
    (h, a, b, gen)
}

#[test]
fn two_members_rebalance_and_receive_the_leaders_assignment() {
    let (h, ..) = stable_pair();
    assert!(
        h.records.iter().any(
            |r| matches!(r, Record::GroupMetadata { value: Some(v), .. } if v.members.len() == 2)
        ),
        "group metadata record written"
    );
}

#[test]
fn member_that_misses_session_timeout_loses_its_partitions() {
    let (mut h, a, b, gen) = stable_pair();
    // Only `a` heartbeats; `b`'s 10 s session expires.
    for t in 1..=9 {
        h.advance(h.now + 1000);
        assert_eq!(
            h.heartbeat(&a, gen),
            None,
            "at +{t}s the group is still stable"
        );
    }
    h.advance(h.now + 2000);
    assert_eq!(
        h.state(),
        GroupState::PreparingRebalance,
        "the expired member triggers a rebalance"
    );
    assert_eq!(
        h.heartbeat(&b, gen),
        Some(GroupError::UnknownMemberId),
        "the expired member is gone"
    );
    let j = h.join(&a, None, &["range"]);
    let r = h.joins.remove(&j).unwrap();
    assert_eq!(
        (r.generation_id, r.members.len()),
        (gen + 1, 1),
        "survivor alone in the next generation"
    );
    let s = h.sync(&a, r.generation_id, &[(&a, "p0,p1")]);
    assert_eq!(
        h.syncs.remove(&s).unwrap().assignment,
        Bytes::from("p0,p1"),
        "survivor owns every partition"
    );
}

#[test]
fn stale_generation_and_unknown_members_get_kafkas_errors() {
    let (mut h, a, _b, gen) = stable_pair();
    assert_eq!(
        h.heartbeat(&a, gen - 1),
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(
        h.heartbeat("nobody", gen),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        h.commit(&a, gen - 1, 5),
        Some(GroupError::IllegalGeneration),
        "offset commit from a stale generation is rejected"
    );
    assert_eq!(
        h.commit("nobody", gen, 5),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(h.commit(&a, gen, 5), None);
    let offsets = h.c.fetch_offsets("g", Some(&[("t".to_string(), 0)]));
    assert_eq!(offsets[0].1.as_ref().map(|o| o.offset), Some(5));
    let s = h.sync(&a, gen + 5, &[]);
    assert_eq!(
        h.syncs.remove(&s).unwrap().error,
        Some(GroupError::IllegalGeneration)
    );
}

#[test]
fn commits_during_completing_rebalance_answer_rebalance_in_progress() {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    let gen = h.joins.remove(&ja).unwrap().generation_id;
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(h.commit(&a, gen, 1), Some(GroupError::RebalanceInProgress));
}

#[test]
fn simple_consumer_commits_to_an_empty_group_with_generation_minus_one() {
    let mut h = Harness::new(0);
    assert_eq!(
        h.commit("m", 3, 42),
        Some(GroupError::IllegalGeneration),
        "a generation of a group that does not exist"
    );
    assert_eq!(
        h.c.state("g"),
        None,
        "the rejected commit did not create the group"
    );
    assert_eq!(h.commit("", -1, 42), None);
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(
        h.c.fetch_offsets("g", None)[0].1.as_ref().map(|o| o.offset),
        Some(42)
    );
}

#[test]
fn leader_leaving_during_completing_rebalance_restarts_the_rebalance() {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    let gen1 = h.joins.remove(&ja).unwrap().generation_id;
    h.sync(&a, gen1, &[]);
    let (b, jb) = h.join_new();
    let ja2 = h.join(&a, None, &["range"]);
    let gen2 = h.joins.remove(&ja2).unwrap().generation_id;
    h.joins.remove(&jb).unwrap();
    let sb = h.sync(&b, gen2, &[]);
    // The leader leaves instead of syncing: the follower's parked sync is answered.
    let (errs, out) = h.c.leave("g", &[(a.clone(), None)], h.now);
    h.absorb(out);
    assert_eq!(errs, vec![None]);
    assert_eq!(
        h.syncs.remove(&sb).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let jb2 = h.join(&b, None, &["range"]);
    let r = h.joins.remove(&jb2).unwrap();
    assert_eq!(
        (r.leader.as_str(), r.generation_id),
        (b.as_str(), gen2 + 1),
        "the follower becomes leader"
    );
}

#[test]
fn static_member_restart_within_session_keeps_its_assignment_without_rebalance() {
    let mut h = Harness::new(0);
    let j = h.join("", Some("host-1"), &["range"]);
    let r = h.joins.remove(&j).unwrap();
    assert_eq!(r.error, None, "static members skip MEMBER_ID_REQUIRED");
    let old = r.member_id.clone();
    let s = h.sync(&old, r.generation_id, &[(&old, "p0")]);
    h.syncs.remove(&s).unwrap();
    // The process restarts and rejoins with no member id but the same group.instance.id.
    let j2 = h.join("", Some("host-1"), &["range"]);
    let r2 = h.joins.remove(&j2).unwrap();
    assert_eq!(r2.error, None);
    assert_eq!(r2.generation_id, r.generation_id, "no new generation");
    assert_ne!(r2.member_id, old);
    assert_eq!(h.state(), GroupState::Stable);
    let s2 = h.sync(&r2.member_id, r2.generation_id, &[]);
    assert_eq!(
        h.syncs.remove(&s2).unwrap().assignment,
        Bytes::from("p0"),
        "same assignment back"
    );
    let (e, _) =
        h.c.heartbeat("g", &old, Some("host-1"), r.generation_id, h.now);
    assert_eq!(
        e,
        Some(GroupError::FencedInstanceId),
        "the old incarnation is fenced"
    );
}

#[test]
fn initial_rebalance_delay_batches_a_join_storm_of_200_members_into_one_generation() {
    let mut h = Harness::new(3000);
    let mut reqs = Vec::new();
    for i in 0..200 {
        let (id, req) = h.join_new();
        reqs.push((id, req));
        if i % 20 == 0 {
            h.advance(h.now + 100);
        }
    }
    assert!(
        h.joins.is_empty(),
        "nobody is answered during the initial delay"
    );
    h.advance(h.now + 10_000);
    let replies: Vec<JoinResponse> = reqs
        .iter()
        .map(|(_, r)| h.joins.remove(r).expect("every member answered"))
        .collect();
    assert!(
        replies
            .iter()
            .all(|r| r.error.is_none() && r.generation_id == 1),
        "one generation for the whole storm"
    );
    let leaders: Vec<&JoinResponse> = replies.iter().filter(|r| r.members.len() == 200).collect();
    assert_eq!(
        leaders.len(),
        1,
        "exactly one leader, seeing all 200 members"
    );
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn member_that_never_rejoins_is_dropped_when_the_rebalance_timeout_fires() {
    let (mut h, a, b, gen) = stable_pair();
    let (_c, jc) = h.join_new();
    let ja = h.join(&a, None, &["range"]);
    // `b` never rejoins (max.poll.interval.ms exceeded); the 30 s rebalance timeout ends the
    // join phase without it.
    h.advance(h.now + 30_001);
    let r = h
        .joins
        .remove(&ja)
        .expect("join completes at the rebalance timeout");
    h.joins.remove(&jc).unwrap();
    assert_eq!(r.generation_id, gen + 1);
    assert_eq!(r.members.len(), 2);
    assert!(!r.members.iter().any(|m| m.member_id == b));
}

#[test]
fn replay_restores_offsets_and_members_and_arms_their_sessions() {
    let (mut h, a, _b, gen) = stable_pair();
    assert_eq!(h.commit(&a, gen, 77), None);
    let mut fresh = GroupCoordinator::new(CoordinatorConfig::default(), 8);
    for r in &h.records {
        let back = Record::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap();
        fresh.replay(&back, h.now);
    }
    assert_eq!(fresh.state("g"), Some(GroupState::Stable));
    assert_eq!(
        fresh.fetch_offsets("g", None)[0]
            .1
            .as_ref()
            .map(|o| o.offset),
        Some(77)
    );
    let out = fresh.start(h.now);
    assert_eq!(
        out.timers
            .iter()
            .filter(|(k, d)| matches!(k, TimerKey::Session { .. }) && d.is_some())
            .count(),
        2
    );
    let (e, _) = fresh.heartbeat("g", &a, None, gen, h.now);
    assert_eq!(
        e, None,
        "restored member keeps heartbeating in its generation"
    );
}

#[test]
fn deleting_a_topic_removes_every_groups_offsets_for_it() {
    let mut h = Harness::new(0);
    assert_eq!(h.commit("", -1, 5), None);
    let out = h.c.delete_topic_offsets("t", h.now);
    assert_eq!(out.records.len(), 1);
    assert!(
        matches!(&out.records[0], Record::OffsetCommit { topic, value: None, .. } if topic == "t")
    );
    assert!(h.c.fetch_offsets("g", Some(&[("t".to_string(), 0)]))[0]
        .1
        .is_none());
    assert!(h.c.delete_topic_offsets("other", h.now).records.is_empty());
}

#[test]
fn offset_delete_refuses_topics_a_live_group_subscribes_to() {
    let mut h = Harness::new(0);
    // A consumer Subscription v1 for topic "t": version, [topics], user_data (null).
    let mut sub = 1i16.to_be_bytes().to_vec();
    sub.extend_from_slice(&1i32.to_be_bytes());
    sub.extend_from_slice(&1i16.to_be_bytes());
    sub.extend_from_slice(b"t");
    sub.extend_from_slice(&(-1i32).to_be_bytes());
    h.metadata = Some(Bytes::from(sub));
    let (a, ja) = h.join_new();
    let gen = h.joins.remove(&ja).unwrap().generation_id;
    h.sync(&a, gen, &[(&a, "p")]);
    assert_eq!(h.commit(&a, gen, 3), None);
    let parts = [("t".to_string(), 0), ("u".to_string(), 0)];
    let (errs, _) =
        h.c.delete_offsets("g", &parts, h.now)
            .expect("group exists");
    assert_eq!(errs, vec![Some(GroupError::GroupSubscribedToTopic), None]);
    assert_eq!(
        h.c.delete_offsets("nope", &parts, h.now).err(),
        Some(GroupError::GroupIdNotFound)
    );
}

#[test]
fn delete_group_refuses_non_empty_groups_and_tombstones_empty_ones() {
    let (mut h, a, b, _gen) = stable_pair();
    assert_eq!(
        h.c.delete_group("g", h.now).err(),
        Some(GroupError::NonEmptyGroup)
    );
    let (_, out) = h.c.leave("g", &[(a, None), (b, None)], h.now);
    h.absorb(out);
    assert_eq!(h.state(), GroupState::Empty);
    let out = h.c.delete_group("g", h.now).expect("empty group deletes");
    assert!(out
        .records
        .iter()
        .any(|r| matches!(r, Record::GroupMetadata { value: None, .. })));
    assert_eq!(h.c.state("g"), None);
    assert_eq!(
        h.c.delete_group("g", h.now).err(),
        Some(GroupError::GroupIdNotFound)
    );
}

#[test]
fn offsets_expire_only_after_the_group_has_been_empty_for_the_retention_period() {
    let (mut h, a, b, gen) = stable_pair();
    assert_eq!(h.commit(&a, gen, 9), None);
    let week = CoordinatorConfig::default().offsets_retention_ms;
    h.now += week + 1;
    // Live members: nothing expires, however old the commit.
    let _ = h.heartbeat(&a, gen);
    assert!(h.c.expire_offsets(h.now).records.is_empty());
    let (_, out) = h.c.leave("g", &[(a, None), (b, None)], h.now);
    h.absorb(out);
    assert!(
        h.c.expire_offsets(h.now + 1000).records.is_empty(),
        "just emptied"
    );
    let out = h.c.expire_offsets(h.now + week + 1);
    assert!(out
        .records
        .iter()
        .any(|r| matches!(r, Record::OffsetCommit { value: None, .. })));
    assert_eq!(h.c.state("g"), None);
}
