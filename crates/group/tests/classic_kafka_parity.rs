//! Classic-group behaviour checked against Kafka's group coordinator (`GroupMetadataManager`
//! at apache/kafka@1eb7644349cb): pending members across join phases, the new-member join
//! timeout, the delayed initial join, and the events an operator reads to explain a
//! rebalance (every member removal with its reason and generation, every completed join and
//! stabilized generation). A fake clock and timer table stand in for the broker.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use shoal_group::classic::{JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupEvent, GroupState, Output, RemovalReason,
    Reply, TimerKey,
};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
/// Kafka's `CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS`.
const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

struct Harness {
    c: GroupCoordinator,
    now: i64,
    timers: BTreeMap<TimerKey, i64>,
    next_id: u64,
    joins: HashMap<u64, JoinResponse>,
    syncs: HashMap<u64, SyncResponse>,
    events: Vec<GroupEvent>,
    /// Every deadline the Join timer was set to, in order.
    join_deadlines: Vec<i64>,
}

impl Harness {
    fn new(initial_delay_ms: i64) -> Self {
        let config = CoordinatorConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..CoordinatorConfig::default()
        };
        assert_eq!(
            config.new_member_join_timeout_ms,
            NEW_MEMBER_JOIN_TIMEOUT_MS
        );
        Self {
            c: GroupCoordinator::new(config, 7),
            now: 1_000_000,
            timers: BTreeMap::new(),
            next_id: 0,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            events: Vec::new(),
            join_deadlines: Vec::new(),
        }
    }

    fn absorb(&mut self, out: Output) {
        for (k, d) in out.timers {
            match d {
                Some(d) => {
                    if matches!(k, TimerKey::Join { .. }) {
                        self.join_deadlines.push(d);
                    }
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
        self.events.extend(out.events);
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

    fn join_t(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        session_ms: i32,
        rebalance_ms: i32,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let req = JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: session_ms,
            rebalance_timeout_ms: rebalance_ms,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from(format!("meta-{member_id}")))],
            require_known_member_id: true,
        };
        let out = self.c.join(id, req, self.now);
        self.absorb(out);
        id
    }

    fn join(&mut self, member_id: &str) -> u64 {
        self.join_t(member_id, None, SESSION_MS, REBALANCE_MS)
    }

    /// The first JoinGroup of a new member: MEMBER_ID_REQUIRED and its id.
    fn member_id_required(&mut self, session_ms: i32, rebalance_ms: i32) -> String {
        let first = self.join_t("", None, session_ms, rebalance_ms);
        let r = self.joins.remove(&first).expect("MEMBER_ID_REQUIRED reply");
        assert_eq!(r.error, Some(GroupError::MemberIdRequired));
        r.member_id
    }

    /// A new member's KIP-394 round trip; returns (member id, the parked JoinGroup).
    fn join_new_t(&mut self, session_ms: i32, rebalance_ms: i32) -> (String, u64) {
        let id = self.member_id_required(session_ms, rebalance_ms);
        let req = self.join_t(&id, None, session_ms, rebalance_ms);
        (id, req)
    }

    fn join_new(&mut self) -> (String, u64) {
        self.join_new_t(SESSION_MS, REBALANCE_MS)
    }

    fn sync_t(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        assignments: &[(&str, &str)],
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let req = SyncRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            generation_id,
            group_instance_id: instance.map(Into::into),
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

    fn sync(&mut self, member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> u64 {
        self.sync_t(member_id, None, generation_id, assignments)
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> Option<GroupError> {
        let (e, out) = self
            .c
            .heartbeat("g", member_id, None, generation_id, self.now);
        self.absorb(out);
        e
    }

    fn leave(&mut self, member_id: &str) -> Option<GroupError> {
        let (errs, out) = self
            .c
            .leave("g", &[(member_id.to_string(), None)], self.now);
        self.absorb(out);
        errs[0]
    }

    /// Advances in 3 s steps up to `until`, `member` heartbeating at each step.
    fn keep_alive(&mut self, member: &str, generation_id: i32, until: i64) {
        self.keep_alive_all(&[member], generation_id, until);
    }

    fn keep_alive_all(&mut self, members: &[&str], generation_id: i32, until: i64) {
        while self.now + 3_000 <= until {
            self.advance(self.now + 3_000);
            for m in members {
                self.heartbeat(m, generation_id);
            }
        }
        self.advance(until);
    }

    fn session(&self, member_id: &str) -> Option<i64> {
        self.timers
            .get(&TimerKey::Session {
                group_id: "g".into(),
                member_id: member_id.into(),
            })
            .copied()
    }

    fn join_timer(&self) -> Option<i64> {
        self.timers
            .get(&TimerKey::Join {
                group_id: "g".into(),
            })
            .copied()
    }

    fn state(&self) -> GroupState {
        self.c.state("g").expect("group exists")
    }

    fn take_events(&mut self) -> Vec<GroupEvent> {
        std::mem::take(&mut self.events)
    }

    /// The events of one kind (removals, completed joins, ...) from `events`.
    fn removals(events: &[GroupEvent]) -> Vec<(String, RemovalReason, i32)> {
        events
            .iter()
            .filter_map(|e| match e {
                GroupEvent::MemberRemoved {
                    group_id,
                    member_id,
                    reason,
                    generation_id,
                } => {
                    assert_eq!(group_id, "g");
                    Some((member_id.clone(), *reason, *generation_id))
                }
                _ => None,
            })
            .collect()
    }
}

fn removed(member: &str, reason: RemovalReason, generation_id: i32) -> GroupEvent {
    GroupEvent::MemberRemoved {
        group_id: "g".into(),
        member_id: member.into(),
        reason,
        generation_id,
    }
}

fn join_completed(generation_id: i32, members: usize, leader: Option<&str>) -> GroupEvent {
    GroupEvent::JoinCompleted {
        group_id: "g".into(),
        generation_id,
        members,
        leader: leader.map(Into::into),
        protocol: leader.map(|_| "range".into()),
    }
}

fn stabilized(generation_id: i32) -> GroupEvent {
    GroupEvent::Stabilized {
        group_id: "g".into(),
        generation_id,
    }
}

fn rebalance_started(events: &[GroupEvent]) -> Vec<(i32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            GroupEvent::RebalanceStarted {
                generation_id,
                reason,
                ..
            } => Some((*generation_id, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Two members join and sync with no initial delay; returns (harness, leader, follower,
/// generation).
fn stable_pair() -> (Harness, String, String, i32) {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    let gen1 = h.joins.remove(&ja).unwrap().generation_id;
    h.sync(&a, gen1, &[(&a, "p0,p1")]);
    let (b, jb) = h.join_new();
    let ja2 = h.join(&a);
    let gen = h.joins.remove(&ja2).unwrap().generation_id;
    h.joins.remove(&jb).unwrap();
    let sb = h.sync(&b, gen, &[]);
    h.sync(&a, gen, &[(&a, "p0"), (&b, "p1")]);
    assert!(h.syncs.remove(&sb).unwrap().error.is_none());
    assert_eq!(h.state(), GroupState::Stable);
    h.take_events();
    (h, a, b, gen)
}

// ----- A. Pending members (got MEMBER_ID_REQUIRED, not yet rejoined) ------------------------

#[test]
fn pending_member_survives_the_end_of_the_initial_join_and_rejoins_with_its_id() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (a, ja) = h.join_new();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.join_timer(), Some(t0 + 3_000));

    h.advance(t0 + 2_900);
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    assert_eq!(h.session(&c), Some(t0 + 12_900));

    h.advance(t0 + 3_000);
    let ra = h
        .joins
        .remove(&ja)
        .expect("the initial delay ended the join phase");
    assert_eq!((ra.generation_id, ra.leader.as_str()), (1, a.as_str()));
    assert_eq!(
        ra.members.len(),
        1,
        "the pending member is not a member yet"
    );
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(
        h.session(&c),
        Some(t0 + 12_900),
        "a completed join phase leaves pending members and their session timers alone"
    );

    h.advance(t0 + 3_100);
    let jc = h.join(&c);
    assert!(
        !h.joins.contains_key(&jc),
        "the pending member is accepted (no UNKNOWN_MEMBER_ID) and waits in the new join phase"
    );
    assert_eq!(
        h.state(),
        GroupState::PreparingRebalance,
        "its join starts a rebalance"
    );
    assert_eq!(
        h.session(&c),
        Some(t0 + 3_100 + NEW_MEMBER_JOIN_TIMEOUT_MS),
        "a member added to the group gets the new-member join timeout"
    );

    let ja2 = h.join(&a);
    let (ra2, rc) = (h.joins.remove(&ja2).unwrap(), h.joins.remove(&jc).unwrap());
    assert_eq!((ra2.error, rc.error), (None, None));
    assert_eq!((ra2.generation_id, rc.generation_id), (2, 2));
    assert_eq!(ra2.leader, a);
    assert_eq!(ra2.members.len(), 2);
}

#[test]
fn pending_member_survives_a_join_phase_ended_by_the_rebalance_timeout() {
    let (mut h, a, b, gen) = stable_pair();
    let t = h.now;
    let c = h.member_id_required(60_000, REBALANCE_MS);
    assert_eq!(
        h.state(),
        GroupState::Stable,
        "a pending member starts no rebalance"
    );
    let ja = h.join(&a);
    let jb = h.join(&b);
    assert!(
        !h.joins.contains_key(&ja) && !h.joins.contains_key(&jb),
        "the join phase waits for the pending member"
    );

    h.advance(t + 30_000);
    let ra = h
        .joins
        .remove(&ja)
        .expect("the rebalance timeout ended the join phase");
    assert_eq!(ra.generation_id, gen + 1);
    assert_eq!(ra.members.len(), 2);
    assert!(h.joins.contains_key(&jb));
    assert_eq!(
        h.session(&c),
        Some(t + 60_000),
        "still pending, timer untouched"
    );
    assert!(
        Harness::removals(&h.take_events()).is_empty(),
        "nobody was removed: both members rejoined and the pending one stays pending"
    );

    let jc = h.join_t(&c, None, 60_000, REBALANCE_MS);
    assert!(
        !h.joins.contains_key(&jc),
        "accepted and parked, no UNKNOWN_MEMBER_ID"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn pending_member_expires_after_its_session_timeout() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (_a, _ja) = h.join_new();
    h.advance(t0 + 2_900);
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    h.advance(t0 + 3_000);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    h.take_events();

    h.advance(t0 + 12_900);
    assert_eq!(
        h.take_events(),
        vec![removed(&c, RemovalReason::SessionTimeout, 1)],
        "the pending member's expiry is reported, with the generation it expired in"
    );
    assert_eq!(
        h.state(),
        GroupState::CompletingRebalance,
        "a pending member's expiry does not change the group's state"
    );
    let jc = h.join(&c);
    assert_eq!(
        h.joins.remove(&jc).unwrap().error,
        Some(GroupError::UnknownMemberId),
        "an expired pending id is unknown"
    );
}

#[test]
fn pending_member_expiry_completes_a_join_phase_that_only_waited_for_it() {
    let (mut h, a, b, gen) = stable_pair();
    let t = h.now;
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    let ja = h.join(&a);
    h.join(&b);
    h.advance(t + 10_000);
    let ra = h
        .joins
        .remove(&ja)
        .expect("completed at the pending member's expiry, not at the rebalance timeout");
    assert_eq!(ra.generation_id, gen + 1);
    assert_eq!(ra.members.len(), 2);
    let ev = h.take_events();
    assert_eq!(
        Harness::removals(&ev),
        vec![(c, RemovalReason::SessionTimeout, gen)]
    );
    assert!(ev.contains(&join_completed(gen + 1, 2, Some(&a))));
}

#[test]
fn pending_member_leaving_completes_a_join_phase_that_only_waited_for_it() {
    let (mut h, a, b, gen) = stable_pair();
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    let ja = h.join(&a);
    h.join(&b);
    assert!(!h.joins.contains_key(&ja));
    h.take_events();
    assert_eq!(h.leave(&c), None, "a pending member may leave");
    assert_eq!(h.joins.remove(&ja).unwrap().generation_id, gen + 1);
    assert_eq!(
        h.take_events(),
        vec![
            removed(&c, RemovalReason::Leave, gen),
            join_completed(gen + 1, 2, Some(&a)),
        ]
    );
    assert_eq!(h.session(&c), None, "its timer is gone");
}

// ----- B. The new-member join timeout (Kafka's constant, 5 min) ----------------------------

#[test]
fn new_member_join_timeout_is_replaced_by_the_session_timeout_when_the_join_completes() {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    h.joins.remove(&ja).unwrap();
    h.sync(&a, 1, &[(&a, "all")]);
    let t = h.now;
    let (b, jb) = h.join_new();
    assert_eq!(h.session(&b), Some(t + NEW_MEMBER_JOIN_TIMEOUT_MS));
    let ja2 = h.join(&a);
    let gen = h.joins.remove(&ja2).unwrap().generation_id;
    h.joins.remove(&jb).unwrap();
    assert_eq!(
        h.session(&b),
        Some(t + i64::from(SESSION_MS)),
        "an answered member is governed by its session timeout"
    );
    h.sync(&b, gen, &[]);
    h.sync(&a, gen, &[(&a, "p0"), (&b, "p1")]);
    h.take_events();
    while h.now < t + 400_000 {
        h.advance(h.now + 3_000);
        assert_eq!(h.heartbeat(&a, gen), None);
        assert_eq!(h.heartbeat(&b, gen), None);
    }
    assert!(Harness::removals(&h.take_events()).is_empty());
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn pending_member_rejoin_swaps_its_session_timer_for_the_new_member_join_timeout() {
    let (mut h, a, b, gen) = stable_pair();
    let t = h.now;
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    assert_eq!(h.session(&c), Some(t + 10_000));
    h.advance(t + 1_000);
    let jc = h.join(&c);
    let jb = h.join(&b);
    assert_eq!(h.session(&c), Some(t + 1_000 + NEW_MEMBER_JOIN_TIMEOUT_MS));
    // `a` keeps heartbeating and rejoins only at +20 s; `c` cannot heartbeat meanwhile.
    h.keep_alive(&a, gen, t + 20_000);
    assert!(
        Harness::removals(&h.take_events()).is_empty(),
        "c survives its 10 s session"
    );
    let ja = h.join(&a);
    let ra = h.joins.remove(&ja).unwrap();
    assert_eq!(ra.generation_id, gen + 1);
    assert_eq!(ra.members.len(), 3);
    assert!(h.joins.contains_key(&jc) && h.joins.contains_key(&jb));
}

// ----- D. The delayed initial join (group.initial.rebalance.delay.ms) ----------------------

#[test]
fn initial_delay_is_extended_by_new_members_but_never_beyond_the_rebalance_timeout() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let mut reqs = Vec::new();
    let mut at = t0;
    while at <= t0 + 29_000 {
        h.advance(at);
        reqs.push(h.join_new().1);
        at += 2_500;
    }
    h.advance(t0 + 29_999);
    assert!(
        h.joins.is_empty(),
        "no JoinGroup is answered before the rebalance timeout"
    );
    let expected: Vec<i64> = (1..=10).map(|k| t0 + 3_000 * k).collect();
    assert_eq!(
        h.join_deadlines, expected,
        "the full delay first, extended by the delay while members keep arriving, capped at \
         the rebalance timeout"
    );
    h.advance(t0 + 30_000);
    assert_eq!(
        h.joins.len(),
        reqs.len(),
        "every member is answered at the rebalance timeout"
    );
    let leaders: Vec<&str> = h.joins.values().map(|r| r.leader.as_str()).collect();
    assert!(leaders.iter().all(|l| *l == leaders[0]), "one leader");
    assert!(h
        .joins
        .values()
        .all(|r| r.generation_id == 1 && r.error.is_none()));
}

#[test]
fn initial_delay_ends_after_a_window_without_new_members() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (a, ja) = h.join_new();
    h.advance(t0 + 1_000);
    let (_b, jb) = h.join_new();
    h.advance(t0 + 3_000);
    assert!(
        h.joins.is_empty(),
        "b arrived during the first delay: extended"
    );
    assert_eq!(h.join_timer(), Some(t0 + 6_000));
    h.advance(t0 + 6_000);
    let ra = h.joins.remove(&ja).unwrap();
    assert_eq!((ra.generation_id, ra.members.len()), (1, 2));
    assert!(h.joins.contains_key(&jb));
    let ev = h.take_events();
    assert!(ev.contains(&join_completed(1, 2, Some(&a))));
}

#[test]
fn first_initial_delay_is_not_capped_by_a_shorter_rebalance_timeout() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (_a, ja) = h.join_new_t(SESSION_MS, 1_000);
    assert_eq!(
        h.join_timer(),
        Some(t0 + 3_000),
        "the full delay, not the rebalance timeout"
    );
    h.advance(t0 + 1_000);
    assert!(h.joins.is_empty());
    h.advance(t0 + 2_000);
    let (_b, jb) = h.join_new_t(SESSION_MS, 1_000);
    h.advance(t0 + 3_000);
    assert_eq!(
        h.join_deadlines,
        vec![t0 + 3_000],
        "no extension: the rebalance timeout leaves no time after the first delay"
    );
    let ra = h.joins.remove(&ja).unwrap();
    assert_eq!((ra.generation_id, ra.members.len()), (1, 2));
    assert!(h.joins.contains_key(&jb));
}

#[test]
fn initial_delay_applies_whenever_the_group_is_empty_and_only_then() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (a, ja) = h.join_new();
    h.advance(t0 + 3_000);
    h.joins.remove(&ja).unwrap();
    h.sync(&a, 1, &[(&a, "all")]);
    let (b, jb) = h.join_new();
    let ja2 = h.join(&a);
    assert!(
        h.joins.contains_key(&ja2) && h.joins.contains_key(&jb),
        "a rebalance of a group with members completes as soon as everyone rejoined"
    );
    h.leave(&a);
    h.leave(&b);
    assert_eq!(h.state(), GroupState::Empty);
    let t = h.now;
    let (_c, jc) = h.join_new();
    assert_eq!(
        h.join_timer(),
        Some(t + 3_000),
        "empty again: the initial delay again"
    );
    h.advance(t + 1_000);
    h.join_new();
    h.advance(t + 3_000);
    assert_eq!(h.join_timer(), Some(t + 6_000), "and its extensions");
    assert!(!h.joins.contains_key(&jc));
}

#[test]
fn pending_member_rejoining_during_the_initial_delay_extends_it() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (a, ja) = h.join_new();
    h.advance(t0 + 1_000);
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    h.advance(t0 + 2_000);
    let jc = h.join(&c);
    h.advance(t0 + 3_000);
    assert!(h.joins.is_empty());
    h.advance(t0 + 6_000);
    let ra = h.joins.remove(&ja).unwrap();
    assert_eq!(ra.leader, a);
    assert_eq!(ra.members.len(), 2);
    assert!(h.joins.contains_key(&jc));
}

#[test]
fn member_id_required_alone_does_not_extend_the_initial_delay() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (_a, ja) = h.join_new();
    h.advance(t0 + 1_000);
    let c = h.member_id_required(SESSION_MS, REBALANCE_MS);
    h.advance(t0 + 3_000);
    let ra = h.joins.remove(&ja).expect("completed at the first delay");
    assert_eq!(ra.members.len(), 1);
    assert_eq!(h.session(&c), Some(t0 + 11_000), "c stays pending");
}

#[test]
fn initial_delay_is_not_shortened_by_a_leave() {
    let mut h = Harness::new(3_000);
    let t0 = h.now;
    let (a, ja) = h.join_new();
    h.advance(t0 + 500);
    let (b, jb) = h.join_new();
    h.advance(t0 + 1_000);
    assert_eq!(h.leave(&b), None);
    assert_eq!(
        h.joins.remove(&jb).unwrap().error,
        Some(GroupError::UnknownMemberId),
        "the leaving member's parked JoinGroup is answered"
    );
    assert!(
        !h.joins.contains_key(&ja),
        "a leave does not end the initial delay"
    );
    assert!(Harness::removals(&h.events).contains(&(b.clone(), RemovalReason::Leave, 0)));
    h.advance(t0 + 5_999);
    assert!(!h.joins.contains_key(&ja), "b's join extended the delay");
    h.advance(t0 + 6_000);
    let ra = h.joins.remove(&ja).unwrap();
    assert_eq!((ra.generation_id, ra.members.len()), (1, 1));
    assert!(h.events.contains(&join_completed(1, 1, Some(&a))));
}

// ----- E. An event for every removal and every completed rebalance --------------------------

#[test]
fn every_completed_rebalance_reports_the_new_generation_and_the_stable_group() {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    h.joins.remove(&ja).unwrap();
    h.sync(&a, 1, &[(&a, "all")]);
    let (b, jb) = h.join_new();
    h.join(&a);
    h.joins.remove(&jb).unwrap();
    h.sync(&b, 2, &[]);
    h.sync(&a, 2, &[(&a, "p0"), (&b, "p1")]);
    let ev = h.take_events();
    let lifecycle: Vec<GroupEvent> = ev
        .iter()
        .filter(|e| !matches!(e, GroupEvent::RebalanceStarted { .. }))
        .cloned()
        .collect();
    assert_eq!(
        lifecycle,
        vec![
            join_completed(1, 1, Some(&a)),
            stabilized(1),
            join_completed(2, 2, Some(&a)),
            stabilized(2),
        ]
    );
    let started = rebalance_started(&ev);
    assert_eq!(started.len(), 2);
    assert_eq!(started[0].0, 0, "the old generation");
    assert!(
        started[0].1.contains(&a),
        "the reason names the new member: {}",
        started[0].1
    );
    assert_eq!(started[1].0, 1);
    assert!(started[1].1.contains(&b), "{}", started[1].1);
}

#[test]
fn session_expiry_is_reported_with_member_reason_and_generation() {
    let (mut h, a, b, gen) = stable_pair();
    let t = h.now;
    h.keep_alive(&a, gen, t + 10_000);
    let ev = h.take_events();
    assert_eq!(ev[0], removed(&b, RemovalReason::SessionTimeout, gen));
    let started = rebalance_started(&ev);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0, gen);
    assert!(started[0].1.contains(&b), "{}", started[0].1);
}

#[test]
fn member_that_heartbeats_but_does_not_rejoin_is_removed_at_the_rebalance_timeout() {
    let (mut h, a, b, gen) = stable_pair();
    let t = h.now;
    let (c, jc) = h.join_new();
    let ja = h.join(&a);
    // `b` keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    h.keep_alive(&b, gen, t + 30_000);
    let ev = h.take_events();
    assert_eq!(
        Harness::removals(&ev),
        vec![(b.clone(), RemovalReason::RebalanceTimeout, gen)]
    );
    assert!(ev.contains(&join_completed(gen + 1, 2, Some(&a))));
    assert!(h.joins.contains_key(&ja) && h.joins.contains_key(&jc));
    assert!(rebalance_started(&ev)[0].1.contains(&c));
}

#[test]
fn leave_is_reported_and_starts_a_rebalance() {
    let (mut h, a, b, gen) = stable_pair();
    assert_eq!(h.leave(&a), None);
    let ev = h.take_events();
    assert_eq!(ev[0], removed(&a, RemovalReason::Leave, gen));
    assert_eq!(rebalance_started(&ev).len(), 1);
    assert_eq!(rebalance_started(&ev)[0].0, gen);
    assert_eq!(h.leave(&b), None);
    let ev = h.take_events();
    assert_eq!(
        ev,
        vec![
            removed(&b, RemovalReason::Leave, gen),
            join_completed(gen + 1, 0, None),
        ],
        "the last member leaving completes the join phase with an empty group"
    );
    assert_eq!(h.state(), GroupState::Empty);
}

#[test]
fn static_member_replacement_in_stable_fences_the_old_id_without_a_rebalance() {
    let mut h = Harness::new(0);
    let j = h.join_t("", Some("host-1"), SESSION_MS, REBALANCE_MS);
    let r = h.joins.remove(&j).unwrap();
    let old = r.member_id.clone();
    h.sync_t(&old, Some("host-1"), r.generation_id, &[(&old, "p0")]);
    assert_eq!(h.state(), GroupState::Stable);
    h.take_events();
    let j2 = h.join_t("", Some("host-1"), SESSION_MS, REBALANCE_MS);
    let r2 = h.joins.remove(&j2).unwrap();
    assert_eq!(r2.error, None);
    assert_ne!(r2.member_id, old);
    assert_eq!(r2.generation_id, r.generation_id, "no rebalance");
    let ev = h.take_events();
    assert_eq!(
        Harness::removals(&ev),
        vec![(
            old.clone(),
            RemovalReason::FencedStaticMember,
            r.generation_id
        )]
    );
    assert!(rebalance_started(&ev).is_empty());
    let (e, _) =
        h.c.heartbeat("g", &old, Some("host-1"), r.generation_id, h.now);
    assert_eq!(e, Some(GroupError::FencedInstanceId));
}

#[test]
fn member_that_never_syncs_is_removed_at_the_sync_timeout() {
    let mut h = Harness::new(0);
    let (a, ja) = h.join_new();
    h.joins.remove(&ja).unwrap();
    h.sync(&a, 1, &[(&a, "all")]);
    let (b, jb) = h.join_new();
    h.join(&a);
    h.joins.remove(&jb).unwrap();
    let t = h.now;
    h.sync(&a, 2, &[(&a, "p0"), (&b, "p1")]);
    assert!(h.events.contains(&stabilized(2)));
    h.take_events();
    // Both heartbeat; `b` never sends SyncGroup.
    h.keep_alive_all(&[&a, &b], 2, t + i64::from(REBALANCE_MS));
    let ev = h.take_events();
    assert_eq!(ev[0], removed(&b, RemovalReason::SyncTimeout, 2));
    let started = rebalance_started(&ev);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0, 2);
    assert!(started[0].1.contains(&b), "{}", started[0].1);
}

#[test]
fn new_member_that_never_completes_the_join_is_removed_after_the_new_member_join_timeout() {
    let mut h = Harness::new(0);
    // `a` has a 10-minute rebalance timeout (max.poll.interval.ms), so the join phase may run
    // longer than the new-member join timeout.
    let (a, ja) = h.join_new_t(SESSION_MS, 600_000);
    assert_eq!(h.joins.remove(&ja).unwrap().generation_id, 1);
    h.sync(&a, 1, &[(&a, "all")]);
    assert_eq!(h.state(), GroupState::Stable);
    h.take_events();

    let t = h.now;
    let (b, jb) = h.join_new();
    assert_eq!(
        h.join_timer(),
        Some(t + 600_000),
        "the group's max rebalance timeout"
    );
    assert_eq!(h.session(&b), Some(t + NEW_MEMBER_JOIN_TIMEOUT_MS));
    assert_eq!(rebalance_started(&h.take_events()).len(), 1);

    // `a` heartbeats (told to rejoin) but never rejoins.
    h.keep_alive(&a, 1, t + NEW_MEMBER_JOIN_TIMEOUT_MS);
    let rb = h
        .joins
        .remove(&jb)
        .expect("b's parked JoinGroup is answered");
    assert_eq!(rb.error, Some(GroupError::UnknownMemberId));
    // Kafka answers with an empty member id; Shoal still sends the removed id
    // (docs/compatibility.md, "Classic groups").
    let ev = h.take_events();
    assert_eq!(
        Harness::removals(&ev),
        vec![(b.clone(), RemovalReason::NewMemberJoinTimeout, 1)]
    );
    assert!(
        rebalance_started(&ev).is_empty(),
        "already rebalancing: no new rebalance"
    );
    assert_eq!(
        h.state(),
        GroupState::PreparingRebalance,
        "a has not rejoined yet"
    );

    let ja2 = h.join(&a);
    let ra2 = h.joins.remove(&ja2).expect("a was the only one missing");
    assert_eq!(ra2.generation_id, 2);
    assert_eq!(ra2.members.len(), 1);
    assert_eq!(h.heartbeat(&b, 1), Some(GroupError::UnknownMemberId));
}
