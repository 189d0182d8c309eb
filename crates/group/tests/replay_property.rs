//! The records-only property: for random sequences of requests and timer firings, over both
//! protocols, the persisted state of the live coordinator (offsets, each consumer group's
//! records 3-8, each classic group's last written GroupMetadata) equals what a fresh
//! coordinator rebuilds from exactly the records those calls emitted, each one encoded to the
//! bytes `__consumer_offsets` holds and decoded back, then `start`ed, as recovery does.
//! Checked after every step.
//!
//! The test keeps a small client-side model (member ids the coordinator handed out,
//! generations, consumer epochs and owned partitions, parked requests, the timer table) so
//! that the sequences reach deep states: stable generations, migrations between the
//! protocols, static replacements, restarts.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use proptest::prelude::*;
use shoal_group::assignor::{TopicMetadata, TopicPartitions};
use shoal_group::classic::{CommitPartition, CommitRequest, JoinRequest, SyncRequest};
use shoal_group::consumer::{HeartbeatRequest, TopicCatalog};
use shoal_group::consumer_protocol::encode_assignment;
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupEvent, Output, Record, Reply, TimerKey,
};
use uuid::Uuid;

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const TOPICS: [(&str, i32); 2] = [("t0", 2), ("t1", 4)];
const CONSUMER_MEMBERS: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
const INSTANCES: [&str; 3] = ["i0", "i1", "i2"];
const PROTOCOLS: [&str; 2] = ["range", "roundrobin"];
const SESSION_MS: [i32; 3] = [6_000, 10_000, 45_000];
/// The last one is above the new-member join timeout (5 min).
const REBALANCE_MS: [i32; 4] = [1_000, 5_000, 30_000, 400_000];
const ASSIGNORS: [Option<&str>; 3] = [None, Some("uniform"), Some("range")];

struct Catalog;

fn tid(name: &str) -> Uuid {
    let mut b = [0u8; 16];
    for (i, c) in name.bytes().enumerate().take(16) {
        b[i] = c;
    }
    Uuid::from_bytes(b)
}

impl TopicCatalog for Catalog {
    fn topic(&self, name: &str) -> Option<TopicMetadata> {
        TOPICS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, p)| TopicMetadata {
                topic_id: tid(n),
                name: n.to_string(),
                partitions: *p,
            })
    }
    fn names(&self) -> Vec<String> {
        TOPICS.iter().map(|(n, _)| n.to_string()).collect()
    }
}

/// Topics of a non-zero bit mask over [`TOPICS`].
fn topics_of(mask: usize) -> Vec<String> {
    let mask = match mask % 4 {
        0 => 1,
        m => m,
    };
    TOPICS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, (n, _))| n.to_string())
        .collect()
}

/// A consumer `Subscription` v0: version, topics, null user data.
fn subscription(topics: &[String]) -> Bytes {
    let mut v = 0i16.to_be_bytes().to_vec();
    v.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        v.extend_from_slice(&(t.len() as i16).to_be_bytes());
        v.extend_from_slice(t.as_bytes());
    }
    v.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(v)
}

#[derive(Debug, Clone)]
enum Step {
    /// JoinGroup; `fresh` joins without a member id, otherwise with a known one (`who`).
    ClassicJoin {
        g: usize,
        who: usize,
        fresh: bool,
        instance: Option<usize>,
        require_known: bool,
        protocol: usize,
        topics: usize,
        session: usize,
        rebalance: usize,
    },
    /// SyncGroup of a known member at its generation (or the one before); the leader sends
    /// assignments for the members its JoinGroup answer listed.
    /// `leader`: the member that got the member list of the newest generation, if any.
    ClassicSync {
        g: usize,
        who: usize,
        leader: bool,
        stale: bool,
    },
    ClassicHeartbeat {
        g: usize,
        who: usize,
    },
    ClassicLeave {
        g: usize,
        who: usize,
        by_instance: bool,
    },
    /// ConsumerGroupHeartbeat with epoch 0.
    ConsumerJoin {
        g: usize,
        m: usize,
        instance: bool,
        topics: usize,
        assignor: usize,
    },
    /// A heartbeat at the member's epoch (joins if the model has none for it).
    ConsumerBeat {
        g: usize,
        m: usize,
        report_owned: bool,
    },
    /// Epoch -1, or -2 (static member leaving temporarily).
    ConsumerLeave {
        g: usize,
        m: usize,
        temporary: bool,
    },
    /// OffsetCommit: generation -1 (`who == None`) or from a known member.
    Commit {
        g: usize,
        who: Option<usize>,
        consumer: bool,
        topic: usize,
        partition: i32,
        offset: i64,
    },
    OffsetDelete {
        g: usize,
        topic: usize,
        partition: i32,
    },
    DeleteGroup {
        g: usize,
    },
    DeleteTopicOffsets {
        topic: usize,
    },
    /// Offset retention run far in the future (the clock does not move).
    ExpireOffsets,
    /// Advances the clock to the deadline of one armed timer, firing every timer due by then
    /// in deadline order; `earliest`: the next timer due.
    FireTimer {
        idx: usize,
        earliest: bool,
    },
    /// A restart: the live coordinator is replaced by the one rebuilt from the records.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    // g0 sees only classic clients, g2 only consumer-protocol ones, g1 both (migrations).
    let g = 0..GROUPS.len();
    let classic_g = 0..2usize;
    let consumer_g = 1..3usize;
    prop_oneof![
        6 => (classic_g.clone(), any::<usize>(), any::<bool>(), prop::option::weighted(0.3, 0..INSTANCES.len()),
              any::<bool>(), prop::bool::weighted(0.15), 0usize..4, 0..SESSION_MS.len(), 0..REBALANCE_MS.len())
            .prop_map(|(g, who, fresh, instance, require_known, other_protocol, topics, session, rebalance)| {
                Step::ClassicJoin { g, who, fresh, instance, require_known,
                    protocol: usize::from(other_protocol), topics, session, rebalance }
            }),
        5 => (classic_g.clone(), any::<usize>(), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(g, who, leader, stale)| Step::ClassicSync { g, who, leader, stale }),
        3 => (classic_g.clone(), any::<usize>()).prop_map(|(g, who)| Step::ClassicHeartbeat { g, who }),
        1 => (classic_g, any::<usize>(), any::<bool>())
            .prop_map(|(g, who, by_instance)| Step::ClassicLeave { g, who, by_instance }),
        4 => (consumer_g.clone(), 0..CONSUMER_MEMBERS.len(), prop::bool::weighted(0.3), 0usize..4, 0..ASSIGNORS.len())
            .prop_map(|(g, m, instance, topics, assignor)| Step::ConsumerJoin { g, m, instance, topics, assignor }),
        5 => (consumer_g.clone(), 0..CONSUMER_MEMBERS.len(), prop::bool::weighted(0.9))
            .prop_map(|(g, m, report_owned)| Step::ConsumerBeat { g, m, report_owned }),
        1 => (consumer_g, 0..CONSUMER_MEMBERS.len(), any::<bool>())
            .prop_map(|(g, m, temporary)| Step::ConsumerLeave { g, m, temporary }),
        3 => (g.clone(), prop::option::weighted(0.6, any::<usize>()), any::<bool>(), 0..TOPICS.len(), 0i32..4, 0i64..1000)
            .prop_map(|(g, who, consumer, topic, partition, offset)| Step::Commit { g, who, consumer, topic, partition, offset }),
        1 => (g.clone(), 0..TOPICS.len(), 0i32..4)
            .prop_map(|(g, topic, partition)| Step::OffsetDelete { g, topic, partition }),
        1 => g.clone().prop_map(|g| Step::DeleteGroup { g }),
        1 => (0..TOPICS.len()).prop_map(|topic| Step::DeleteTopicOffsets { topic }),
        1 => Just(Step::ExpireOffsets),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(idx, earliest)| Step::FireTimer { idx, earliest }),
        1 => Just(Step::Restart),
    ]
}

/// A classic member as its client knows itself.
#[derive(Debug, Clone, Default)]
struct ClassicView {
    generation: i32,
    instance: Option<String>,
    /// The member list of the leader's JoinGroup answer (empty for followers).
    members: Vec<String>,
    protocol: Option<String>,
}

/// A consumer-protocol member as its client knows itself.
#[derive(Debug, Clone, Default)]
struct ConsumerView {
    epoch: i32,
    owned: TopicPartitions,
    instance: Option<String>,
}

struct World {
    config: CoordinatorConfig,
    live: GroupCoordinator,
    incarnation: u64,
    now: i64,
    timers: BTreeMap<TimerKey, i64>,
    records: Vec<Record>,
    next_req: u64,
    /// Parked requests: request id -> (group, instance id sent).
    parked_joins: HashMap<u64, (usize, Option<String>)>,
    /// Member ids each group's classic clients got from the coordinator, in order.
    classic_ids: Vec<Vec<String>>,
    classic: HashMap<(usize, String), ClassicView>,
    consumers: HashMap<(usize, String), ConsumerView>,
    /// How often each kind of event happened (to check the sequences reach deep states).
    seen: BTreeMap<String, usize>,
}

impl World {
    fn new(initial_delay_ms: i64) -> Self {
        let mut config = CoordinatorConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..CoordinatorConfig::default()
        };
        config.consumer.session_timeout_ms = 10_000;
        Self {
            live: GroupCoordinator::new(config.clone(), 1),
            config,
            incarnation: 1,
            now: 1_000_000,
            timers: BTreeMap::new(),
            records: Vec::new(),
            next_req: 0,
            parked_joins: HashMap::new(),
            classic_ids: vec![Vec::new(); GROUPS.len()],
            classic: HashMap::new(),
            consumers: HashMap::new(),
            seen: BTreeMap::new(),
        }
    }

    /// A coordinator rebuilt from the records, as recovery does, and its start-up output.
    fn recover(&self, incarnation: u64) -> (GroupCoordinator, Output) {
        let mut c = GroupCoordinator::new(self.config.clone(), incarnation);
        for r in &self.records {
            let back = Record::decode(&r.encode_key(), r.encode_value().as_deref())
                .expect("every record decodes");
            assert_eq!(&back, r, "a record survives encode/decode");
            c.replay(&back, self.now);
        }
        let out = c.start(self.now);
        (c, out)
    }

    fn absorb(&mut self, out: Output) {
        for e in &out.events {
            let kind = match e {
                GroupEvent::MemberRemoved { reason, .. } => format!("removed {reason:?}"),
                GroupEvent::RebalanceStarted { .. } => "rebalance started".into(),
                GroupEvent::JoinCompleted { members, .. } if *members > 1 => {
                    "join completed with several members".into()
                }
                GroupEvent::JoinCompleted { .. } => "join completed".into(),
                GroupEvent::Stabilized { .. } => "stabilized".into(),
                GroupEvent::TargetAssignmentComputed { .. } => "target assignment".into(),
                GroupEvent::Refused { error, .. } => format!("refused {error:?}"),
                GroupEvent::Converted { to, .. } => format!("converted to {to}"),
            };
            *self.seen.entry(kind).or_default() += 1;
        }
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
            if let Reply::Join(j) = r {
                let Some((g, instance)) = self.parked_joins.remove(&id) else {
                    continue;
                };
                match j.error {
                    None => {
                        self.remember_classic_id(g, &j.member_id);
                        let members = if j.leader == j.member_id {
                            j.members.iter().map(|m| m.member_id.clone()).collect()
                        } else {
                            Vec::new()
                        };
                        self.classic.insert(
                            (g, j.member_id.clone()),
                            ClassicView {
                                generation: j.generation_id,
                                instance,
                                members,
                                protocol: j.protocol_name.clone(),
                            },
                        );
                    }
                    Some(GroupError::MemberIdRequired) => {
                        self.remember_classic_id(g, &j.member_id);
                    }
                    Some(_) => {}
                }
            }
        }
        self.records.extend(out.records);
    }

    fn remember_classic_id(&mut self, g: usize, id: &str) {
        if !id.is_empty() && !self.classic_ids[g].iter().any(|x| x == id) {
            self.classic_ids[g].push(id.to_string());
        }
    }

    /// One of the four member ids the group's clients got most recently.
    fn classic_id(&self, g: usize, who: usize) -> Option<String> {
        let all = &self.classic_ids[g];
        let ids = &all[all.len().saturating_sub(4)..];
        if ids.is_empty() {
            None
        } else {
            Some(ids[who % ids.len()].clone())
        }
    }

    fn req_id(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    fn run(&mut self, step: &Step) {
        let now = self.now;
        match step.clone() {
            Step::ClassicJoin {
                g,
                who,
                fresh,
                instance,
                require_known,
                protocol,
                topics,
                session,
                rebalance,
            } => {
                let member_id = if fresh {
                    String::new()
                } else {
                    self.classic_id(g, who).unwrap_or_default()
                };
                let known_instance = self
                    .classic
                    .get(&(g, member_id.clone()))
                    .and_then(|v| v.instance.clone());
                let instance =
                    instance.map(|i| known_instance.unwrap_or_else(|| INSTANCES[i].to_string()));
                let topics = topics_of(topics);
                let id = self.req_id();
                self.parked_joins.insert(id, (g, instance.clone()));
                let req = JoinRequest {
                    group_id: GROUPS[g].into(),
                    member_id,
                    group_instance_id: instance,
                    client_id: "client".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: SESSION_MS[session],
                    rebalance_timeout_ms: REBALANCE_MS[rebalance],
                    protocol_type: "consumer".into(),
                    protocols: vec![(PROTOCOLS[protocol].to_string(), subscription(&topics))],
                    require_known_member_id: require_known,
                };
                let out = self.live.join_with(id, req, &Catalog, now);
                self.absorb(out);
            }
            Step::ClassicSync {
                g,
                who,
                leader,
                stale,
            } => {
                let newest_leader = self
                    .classic
                    .iter()
                    .filter(|((gg, _), v)| *gg == g && !v.members.is_empty())
                    .max_by_key(|(_, v)| v.generation)
                    .map(|((_, id), _)| id.clone());
                let member = match newest_leader {
                    Some(l) if leader => l,
                    _ => match self.classic_id(g, who) {
                        Some(m) => m,
                        None => return,
                    },
                };
                let view = self
                    .classic
                    .get(&(g, member.clone()))
                    .cloned()
                    .unwrap_or_default();
                // The leader spreads every partition over the members it was told about.
                let mut per_member: BTreeMap<&str, Vec<(String, Vec<i32>)>> = BTreeMap::new();
                if !view.members.is_empty() {
                    let mut k = 0usize;
                    for (t, n) in TOPICS {
                        for p in 0..n {
                            let m = view.members[k % view.members.len()].as_str();
                            k += 1;
                            let entry = per_member.entry(m).or_default();
                            match entry.iter_mut().find(|(tn, _)| tn == t) {
                                Some((_, ps)) => ps.push(p),
                                None => entry.push((t.to_string(), vec![p])),
                            }
                        }
                    }
                }
                let req = SyncRequest {
                    group_id: GROUPS[g].into(),
                    member_id: member,
                    generation_id: view.generation - i32::from(stale),
                    group_instance_id: view.instance.clone(),
                    protocol_type: Some("consumer".into()),
                    protocol_name: view.protocol.clone(),
                    assignments: per_member
                        .iter()
                        .map(|(m, a)| (m.to_string(), Bytes::from(encode_assignment(0, a))))
                        .collect(),
                };
                let id = self.req_id();
                let out = self.live.sync(id, req, now);
                self.absorb(out);
            }
            Step::ClassicHeartbeat { g, who } => {
                let Some(member) = self.classic_id(g, who) else {
                    return;
                };
                let view = self
                    .classic
                    .get(&(g, member.clone()))
                    .cloned()
                    .unwrap_or_default();
                let (_, out) = self.live.heartbeat(
                    GROUPS[g],
                    &member,
                    view.instance.as_deref(),
                    view.generation,
                    now,
                );
                self.absorb(out);
            }
            Step::ClassicLeave {
                g,
                who,
                by_instance,
            } => {
                let Some(member) = self.classic_id(g, who) else {
                    return;
                };
                let instance = self
                    .classic
                    .get(&(g, member.clone()))
                    .and_then(|v| v.instance.clone());
                let entry = match instance {
                    Some(i) if by_instance => (String::new(), Some(i)),
                    i => (member, i),
                };
                let (_, out) = self.live.leave(GROUPS[g], &[entry], now);
                self.absorb(out);
            }
            Step::ConsumerJoin {
                g,
                m,
                instance,
                topics,
                assignor,
            } => self.consumer_join(g, m, instance, topics, assignor),
            Step::ConsumerBeat { g, m, report_owned } => {
                let key = (g, CONSUMER_MEMBERS[m].to_string());
                let Some(view) = self.consumers.get(&key).cloned() else {
                    self.consumer_join(g, m, false, m, 0);
                    return;
                };
                self.consumer_send(
                    g,
                    m,
                    HeartbeatRequest {
                        group_id: GROUPS[g].into(),
                        member_id: CONSUMER_MEMBERS[m].into(),
                        member_epoch: view.epoch,
                        instance_id: view.instance.clone(),
                        rebalance_timeout_ms: -1,
                        owned: report_owned.then(|| view.owned.clone()),
                        ..HeartbeatRequest::default()
                    },
                    view.instance.clone(),
                );
            }
            Step::ConsumerLeave { g, m, temporary } => {
                let key = (g, CONSUMER_MEMBERS[m].to_string());
                let instance = self.consumers.get(&key).and_then(|v| v.instance.clone());
                let epoch = if temporary && instance.is_some() {
                    -2
                } else {
                    -1
                };
                self.consumer_send(
                    g,
                    m,
                    HeartbeatRequest {
                        group_id: GROUPS[g].into(),
                        member_id: CONSUMER_MEMBERS[m].into(),
                        member_epoch: epoch,
                        instance_id: instance.clone(),
                        rebalance_timeout_ms: -1,
                        ..HeartbeatRequest::default()
                    },
                    instance,
                );
            }
            Step::Commit {
                g,
                who,
                consumer,
                topic,
                partition,
                offset,
            } => {
                let (member_id, generation_id, instance, api_version) = match who {
                    None => (String::new(), -1, None, 8),
                    Some(w) if consumer => {
                        let m = CONSUMER_MEMBERS[w % CONSUMER_MEMBERS.len()];
                        let epoch = self
                            .consumers
                            .get(&(g, m.to_string()))
                            .map_or(0, |v| v.epoch);
                        (m.to_string(), epoch, None, 9)
                    }
                    Some(w) => match self.classic_id(g, w) {
                        None => (String::new(), -1, None, 8),
                        Some(id) => {
                            let v = self
                                .classic
                                .get(&(g, id.clone()))
                                .cloned()
                                .unwrap_or_default();
                            (id, v.generation, v.instance, 8)
                        }
                    },
                };
                let (_, out) = self.live.commit(
                    CommitRequest {
                        group_id: GROUPS[g].into(),
                        generation_id,
                        member_id,
                        group_instance_id: instance,
                        api_version,
                        partitions: vec![CommitPartition {
                            topic: TOPICS[topic].0.into(),
                            partition,
                            offset,
                            leader_epoch: -1,
                            metadata: Some(format!("m{offset}")),
                        }],
                    },
                    now,
                );
                self.absorb(out);
            }
            Step::OffsetDelete {
                g,
                topic,
                partition,
            } => {
                if let Ok((_, out)) = self.live.delete_offsets(
                    GROUPS[g],
                    &[(TOPICS[topic].0.to_string(), partition)],
                    now,
                ) {
                    self.absorb(out);
                }
            }
            Step::DeleteGroup { g } => {
                if let Ok(out) = self.live.delete_group(GROUPS[g], now) {
                    self.absorb(out);
                }
            }
            Step::DeleteTopicOffsets { topic } => {
                let out = self.live.delete_topic_offsets(TOPICS[topic].0, now);
                self.absorb(out);
            }
            Step::ExpireOffsets => {
                let far = now + self.config.offsets_retention_ms + 1;
                let out = self.live.expire_offsets(far);
                self.absorb(out);
            }
            Step::FireTimer { idx, earliest } => {
                let mut deadlines: Vec<i64> = self.timers.values().copied().collect();
                if deadlines.is_empty() {
                    return;
                }
                deadlines.sort_unstable();
                let until = if earliest {
                    deadlines[0]
                } else {
                    deadlines[idx % deadlines.len()]
                };
                self.advance(until);
            }
            Step::Restart => {
                self.incarnation += 1;
                let (c, out) = self.recover(self.incarnation);
                self.live = c;
                self.timers.clear();
                // Connections are gone: parked requests are never answered.
                self.parked_joins.clear();
                self.absorb(out);
            }
        }
    }

    /// Fires every timer due by `to`, in deadline order, and moves the clock there.
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
            let out = self.live.on_timer(&key, self.now);
            self.absorb(out);
        }
        self.now = self.now.max(to);
    }

    fn consumer_join(
        &mut self,
        g: usize,
        m: usize,
        instance: bool,
        topics: usize,
        assignor: usize,
    ) {
        let instance = instance.then(|| INSTANCES[m % INSTANCES.len()].to_string());
        self.consumer_send(
            g,
            m,
            HeartbeatRequest {
                group_id: GROUPS[g].into(),
                member_id: CONSUMER_MEMBERS[m].into(),
                member_epoch: 0,
                instance_id: instance.clone(),
                rebalance_timeout_ms: 30_000,
                subscribed_topic_names: Some(topics_of(topics)),
                server_assignor: ASSIGNORS[assignor].map(Into::into),
                owned: Some(TopicPartitions::new()),
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                ..HeartbeatRequest::default()
            },
            instance,
        );
    }

    fn consumer_send(
        &mut self,
        g: usize,
        m: usize,
        req: HeartbeatRequest,
        instance: Option<String>,
    ) {
        let key = (g, CONSUMER_MEMBERS[m].to_string());
        let leaving = req.member_epoch < 0;
        let (resp, out) = self.live.consumer_heartbeat(req, &Catalog, self.now);
        self.absorb(out);
        if leaving || resp.error.is_some() {
            // A fenced or unknown member starts over with epoch 0.
            self.consumers.remove(&key);
            return;
        }
        let view = self.consumers.entry(key).or_default();
        view.epoch = resp.member_epoch;
        view.instance = instance;
        if let Some(a) = resp.assignment {
            view.owned = a;
        }
    }
}

fn check(w: &World, steps: &[Step], i: usize) -> Result<(), TestCaseError> {
    let (recovered, _) = w.recover(w.incarnation + 1000);
    let live = w.live.persisted_state();
    let replayed = recovered.persisted_state();
    prop_assert_eq!(
        &live,
        &replayed,
        "after step {} ({:?}) of {:?}: the live persisted state differs from the records' \
         ({} records)",
        i,
        steps[i],
        steps,
        w.records.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn persisted_state_is_exactly_what_replaying_the_emitted_records_rebuilds(
        delay in prop::sample::select(vec![0i64, 3_000]),
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut w = World::new(delay);
        for i in 0..steps.len() {
            w.run(&steps[i]);
            check(&w, &steps, i)?;
        }
    }
}

/// The generator reaches the states the property is about: stable classic generations with
/// several members, consumer groups with target assignments, conversions both ways, static
/// replacements, every kind of timer expiry. Guards the property against a generator that
/// silently became shallow.
#[test]
fn generated_sequences_reach_deep_states_of_both_protocols() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 40..60);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut restarts_with_members = 0;
    for case in 0..200 {
        let steps = strategy.new_tree(&mut runner).unwrap().current();
        let mut w = World::new(if case % 2 == 0 { 0 } else { 3_000 });
        for s in &steps {
            if matches!(s, Step::Restart) && !w.live.persisted_state().consumer_groups.is_empty() {
                restarts_with_members += 1;
            }
            w.run(s);
        }
        for (k, n) in w.seen {
            *seen.entry(k).or_default() += n;
        }
    }
    eprintln!("{seen:#?}\nrestarts with consumer groups: {restarts_with_members}");
    for kind in [
        "join completed with several members",
        "stabilized",
        "target assignment",
        "converted to consumer",
        "converted to classic",
        "removed SessionTimeout",
        "removed Leave",
        "removed FencedStaticMember",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) > 0,
            "no sequence reached: {kind}"
        );
    }
    assert!(restarts_with_members > 0);
    assert!(
        !seen.keys().any(|k| k.starts_with("refused")),
        "a refused transition is a bug: {seen:?}"
    );
}
