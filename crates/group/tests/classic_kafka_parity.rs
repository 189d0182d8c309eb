//! Classic-group behaviour that follows Kafka's `GroupMetadataManager` (issue 10, point 5):
//! pending members across a completed join phase, the new-member join timeout, the initial
//! delayed join's arithmetic, and the event every member removal and every completed
//! rebalance reports for the operator's log. Fake clock; each test drives the coordinator
//! with requests and the timers it armed.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use shoal_group::api::{JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupEvent, GroupState, Output, RemovalReason,
    Reply, TimerKey,
};

struct Harness {
    c: GroupCoordinator,
    now: i64,
    timers: BTreeMap<TimerKey, i64>,
    next_id: u64,
    joins: HashMap<u64, JoinResponse>,
    syncs: HashMap<u64, SyncResponse>,
    events: Vec<GroupEvent>,
}

/// A join's timeouts: (session, rebalance), in ms.
const SHORT: (i32, i32) = (10_000, 30_000);

impl Harness {
    fn new(config: CoordinatorConfig) -> Self {
        Self {
            c: GroupCoordinator::new(config, 3),
            now: 1_000_000,
            timers: BTreeMap::new(),
            next_id: 0,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            events: Vec::new(),
        }
    }

    fn with_delay(initial_rebalance_delay_ms: i64) -> Self {
        Self::new(CoordinatorConfig {
            initial_rebalance_delay_ms,
            ..CoordinatorConfig::default()
        })
    }

    fn absorb(&mut self, out: Output) {
        for (k, d) in out.timers {
            match d {
                Some(d) => self.timers.insert(k, d),
                None => self.timers.remove(&k),
            };
        }
        for (id, r) in out.replies {
            match r {
                Reply::Join(j) => drop(self.joins.insert(id, j)),
                Reply::Sync(s) => drop(self.syncs.insert(id, s)),
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
            let Some((key, deadline)) = due else { break };
            self.timers.remove(&key);
            self.now = self.now.max(deadline);
            let out = self.c.on_timer(&key, self.now);
            self.absorb(out);
        }
        self.now = to;
    }

    /// Sends a JoinGroup; returns its request id (the reply may come later).
    fn join(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        (session, rebalance): (i32, i32),
        require_known_member_id: bool,
    ) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let req = JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(String::from),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: session,
            rebalance_timeout_ms: rebalance,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id,
        };
        let out = self.c.join(id, req, self.now);
        self.absorb(out);
        id
    }

    fn reply(&self, id: u64) -> Option<&JoinResponse> {
        self.joins.get(&id)
    }

    fn sync(&mut self, member_id: &str, generation_id: i32, leader: bool) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let req = SyncRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            generation_id,
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: if leader {
                vec![(member_id.to_string(), Bytes::from_static(b"a"))]
            } else {
                Vec::new()
            },
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

    fn session(&self, member_id: &str) -> Option<i64> {
        self.timers
            .get(&TimerKey::Session {
                group_id: "g".into(),
                member_id: member_id.into(),
            })
            .copied()
    }

    fn state(&self) -> Option<GroupState> {
        self.c.state("g")
    }

    fn removed(&self, member_id: &str) -> Vec<(RemovalReason, i32)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                GroupEvent::MemberRemoved {
                    group_id,
                    member_id: m,
                    reason,
                    generation_id,
                } if group_id == "g" && m == member_id => Some((*reason, *generation_id)),
                _ => None,
            })
            .collect()
    }

    /// Makes the (empty) group stable with one new member, joined without MEMBER_ID_REQUIRED;
    /// returns its id.
    fn stable_one(&mut self, timeouts: (i32, i32)) -> String {
        let j = self.join("", None, timeouts, false);
        let r = self.reply(j).unwrap().clone();
        let s = self.sync(&r.member_id, r.generation_id, true);
        assert_eq!(self.syncs[&s].error, None);
        assert_eq!(self.state(), Some(GroupState::Stable));
        r.member_id
    }
}

#[test]
fn pending_member_survives_the_end_of_a_join_phase_and_joins_with_its_id() {
    let mut h = Harness::with_delay(3000);
    let t0 = h.now;
    let ja = h.join("", None, SHORT, false);
    let a = h.joins.get(&ja).map(|r| r.member_id.clone());
    assert!(a.is_none(), "parked in the initial delay");
    h.advance(t0 + 2_900);
    let first = h.join("", None, SHORT, true);
    let c = h.reply(first).unwrap().member_id.clone();
    assert_eq!(
        h.reply(first).unwrap().error,
        Some(GroupError::MemberIdRequired)
    );
    assert_eq!(h.session(&c), Some(t0 + 2_900 + 10_000));
    // The initial delay ends: the join phase completes without the pending member...
    h.advance(t0 + 3_100);
    let ra = h.reply(ja).unwrap().clone();
    assert_eq!((ra.error, ra.generation_id), (None, 1));
    assert_eq!(h.state(), Some(GroupState::CompletingRebalance));
    // ...which stays pending, its session timer untouched.
    assert_eq!(h.session(&c), Some(t0 + 2_900 + 10_000));
    assert!(h.removed(&c).is_empty());
    // It joins with its id: accepted (parked), and a new rebalance starts.
    let jc = h.join(&c, None, SHORT, true);
    assert!(h.reply(jc).is_none(), "parked, not UNKNOWN_MEMBER_ID");
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let ja2 = h.join(&ra.member_id, None, SHORT, true);
    for id in [ja2, jc] {
        let r = h.reply(id).unwrap();
        assert_eq!((r.error, r.generation_id), (None, 2));
    }
}

#[test]
fn pending_member_that_never_joins_expires_after_its_session_timeout() {
    let mut h = Harness::with_delay(0);
    let first = h.join("", None, SHORT, true);
    let p = h.reply(first).unwrap().member_id.clone();
    let deadline = h.session(&p).unwrap();
    assert_eq!(deadline, h.now + 10_000);
    h.advance(deadline);
    assert_eq!(h.removed(&p), vec![(RemovalReason::SessionTimeout, 0)]);
    // Its id is no longer pending: a join with it is refused.
    let j = h.join(&p, None, SHORT, true);
    assert_eq!(h.reply(j).unwrap().error, Some(GroupError::UnknownMemberId));
}

#[test]
fn new_member_whose_join_never_completes_is_removed_after_the_new_member_join_timeout() {
    let mut h = Harness::new(CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        new_member_join_timeout_ms: 20_000,
        ..CoordinatorConfig::default()
    });
    // `a` has a 10-minute rebalance timeout, so the join phase a new member starts waits
    // for it that long; `a` stays alive by heartbeating but never rejoins.
    let a = h.stable_one((10_000, 600_000));
    let jb = h.join("", None, SHORT, false);
    assert_eq!(h.state(), Some(GroupState::PreparingRebalance));
    let t0 = h.now;
    let b = {
        // The new member's id is in the events' rebalance reason; find it from its timer.
        let mut ids: Vec<String> = h
            .timers
            .keys()
            .filter_map(|k| match k {
                TimerKey::Session { member_id, .. } if *member_id != a => Some(member_id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1);
        ids.remove(0)
    };
    assert_eq!(
        h.session(&b),
        Some(t0 + 20_000),
        "the new-member join timeout"
    );
    while h.now < t0 + 20_000 {
        let next = h.now + 3_000;
        h.advance(next.min(t0 + 20_000));
        assert_eq!(h.heartbeat(&a, 1), Some(GroupError::RebalanceInProgress));
    }
    assert_eq!(
        h.removed(&b),
        vec![(RemovalReason::NewMemberJoinTimeout, 1)]
    );
    let r = h.reply(jb).unwrap();
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    assert!(h.removed(&a).is_empty(), "the old member is kept");
}

#[test]
fn initial_delay_is_extended_when_a_new_member_arrives_during_it() {
    let mut h = Harness::with_delay(3000);
    let t0 = h.now;
    let ja = h.join("", None, (10_000, 10_000), false);
    assert_eq!(
        h.timers.get(&TimerKey::Join {
            group_id: "g".into()
        }),
        Some(&(t0 + 3_000))
    );
    h.advance(t0 + 2_000);
    let jb = h.join("", None, (10_000, 10_000), false);
    // The first delay ends with a member added during it: one more delay.
    h.advance(t0 + 3_000);
    assert!(h.reply(ja).is_none());
    assert_eq!(
        h.timers.get(&TimerKey::Join {
            group_id: "g".into()
        }),
        Some(&(t0 + 6_000))
    );
    // No one else arrives: the join phase completes when it ends, with both members.
    h.advance(t0 + 6_000);
    for id in [ja, jb] {
        let r = h.reply(id).unwrap();
        assert_eq!((r.error, r.generation_id), (None, 1));
    }
    assert!(h.events.iter().any(|e| matches!(
        e,
        GroupEvent::JoinCompleted {
            generation_id: 1,
            members: 2,
            ..
        }
    )));
}

#[test]
fn initial_delay_never_runs_past_the_rebalance_timeout() {
    let mut h = Harness::with_delay(3000);
    let t0 = h.now;
    // Rebalance timeout 5 s: the whole initial join is at most max(3 s, 5 s).
    let ja = h.join("", None, (10_000, 5_000), false);
    let join_key = TimerKey::Join {
        group_id: "g".into(),
    };
    let mut completed_at = None;
    for k in 1..=8 {
        // A new member every 900 ms keeps asking for more time.
        let deadline = h.timers.get(&join_key).copied();
        h.advance(t0 + 900 * k);
        if h.reply(ja).is_some() {
            completed_at = deadline;
            break;
        }
        h.join("", None, (10_000, 5_000), false);
    }
    let completed_at = completed_at.expect("the join phase completed");
    assert!(
        completed_at <= t0 + 5_000,
        "completed {} ms after the first join",
        completed_at - t0
    );
    assert_eq!(h.reply(ja).unwrap().generation_id, 1);
}

#[test]
fn every_removal_and_completed_rebalance_is_reported_with_reason_and_generation() {
    let mut h = Harness::with_delay(0);
    // Join completed and stable: generation 1.
    let a = h.stable_one((30_000, 10_000));
    assert!(h.events.iter().any(|e| matches!(
        e,
        GroupEvent::JoinCompleted {
            generation_id: 1,
            members: 1,
            ..
        }
    )));
    assert!(h.events.iter().any(|e| matches!(
        e,
        GroupEvent::Stabilized {
            generation_id: 1,
            ..
        }
    )));
    // A second member: a rebalance starts (reason names it), `a` never rejoins and is
    // removed when the rebalance timeout ends the join phase.
    let jb = h.join("", None, (30_000, 10_000), false);
    assert!(h.events.iter().any(|e| matches!(e,
        GroupEvent::RebalanceStarted { generation_id: 1, reason, .. } if reason.contains("adding new member"))));
    let deadline = h.now + 10_000;
    h.advance(deadline);
    assert_eq!(h.removed(&a), vec![(RemovalReason::RebalanceTimeout, 1)]);
    let b = h.reply(jb).unwrap().member_id.clone();
    assert_eq!(h.reply(jb).unwrap().generation_id, 2);
    // `b` never sends SyncGroup: removed when the sync timeout fires.
    let sync_deadline = h.now + 10_000;
    h.advance(sync_deadline);
    assert_eq!(h.removed(&b), vec![(RemovalReason::SyncTimeout, 2)]);
    // A member that stops heartbeating: session timeout.
    let c = h.stable_one((10_000, 10_000));
    let generation = h.c.describe("g").unwrap().generation_id;
    let deadline = h.session(&c).unwrap();
    h.advance(deadline);
    assert_eq!(
        h.removed(&c),
        vec![(RemovalReason::SessionTimeout, generation)]
    );
    // LeaveGroup.
    let d = h.stable_one((10_000, 10_000));
    let generation = h.c.describe("g").unwrap().generation_id;
    let (errors, out) = h.c.leave("g", &[(d.clone(), None)], h.now);
    h.absorb(out);
    assert_eq!(errors, vec![None]);
    assert_eq!(h.removed(&d), vec![(RemovalReason::Leave, generation)]);
    // A static member replaced by a new instance with the same group.instance.id.
    let j1 = h.join("", Some("i"), (10_000, 10_000), false);
    let old = h.reply(j1).unwrap().member_id.clone();
    let g = h.reply(j1).unwrap().generation_id;
    h.sync(&old, g, true);
    let j2 = h.join("", Some("i"), (10_000, 10_000), false);
    assert_ne!(h.reply(j2).unwrap().member_id, old);
    assert_eq!(
        h.removed(&old),
        vec![(RemovalReason::FencedStaticMember, g)]
    );
}
