//! Property: the coordinator's persisted state after any sequence of live calls equals what a
//! fresh coordinator rebuilds by replaying exactly the records those calls emitted (each one
//! encoded to the bytes `__consumer_offsets` holds and decoded back, as recovery does).
//!
//! Sequences are random but reproducible: each case is a seed of a small PRNG that picks
//! requests of both protocols (classic JoinGroup/SyncGroup/Heartbeat/LeaveGroup, KIP-848
//! heartbeats with joins, steady heartbeats, leaves and static leaves), offset commits and
//! deletes, group deletion, topic deletion, offset expiry, and firings of the timers the
//! coordinator armed. A failure names the seed and the step, so it can be replayed.
//! `SHOAL_REPLAY_CASES` sets the number of cases (default 120 in CI; for a longer soak, e.g.
//! `SHOAL_REPLAY_CASES=5000 cargo test -p shoal-group --test replay_property`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use shoal_group::api::{
    CommitPartition, CommitRequest, HeartbeatRequest, JoinRequest, SyncRequest, TopicCatalog,
};
use shoal_group::assignor::{TopicMetadata, TopicPartitions};
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, Output, Record, Reply, RequestId, TimerKey,
};
use uuid::Uuid;

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const TOPICS: [(&str, i32); 2] = [("t1", 3), ("t2", 2)];
const CONSUMER_IDS: [&str; 4] = ["m0", "m1", "m2", "m3"];

/// xorshift64*: small, deterministic, good enough to pick steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

struct Catalog(HashMap<String, TopicMetadata>);

impl TopicCatalog for Catalog {
    fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.0.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.keys().cloned().collect();
        v.sort();
        v
    }
}

fn catalog() -> Catalog {
    Catalog(
        TOPICS
            .iter()
            .enumerate()
            .map(|(i, (name, partitions))| {
                let meta = TopicMetadata {
                    topic_id: Uuid::from_u128(i as u128 + 1),
                    name: name.to_string(),
                    partitions: *partitions,
                };
                (name.to_string(), meta)
            })
            .collect(),
    )
}

/// A consumer-protocol Subscription v0 naming `topics` (what a classic Java/librdkafka
/// consumer sends in JoinGroup).
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

/// What the test knows of a classic member, from the answers it got.
#[derive(Clone)]
struct ClassicMember {
    group: String,
    member_id: String,
    generation: i32,
    leader: bool,
}

struct Model {
    rng: Rng,
    live: GroupCoordinator,
    catalog: Catalog,
    config: CoordinatorConfig,
    now: i64,
    records: Vec<Record>,
    timers: BTreeMap<TimerKey, i64>,
    next_req: RequestId,
    /// Parked or answered classic joins: request id -> group.
    joins: HashMap<RequestId, String>,
    classic: Vec<ClassicMember>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, per group.
    pending: Vec<(String, String)>,
    /// Consumer-protocol members: (group, member) -> (epoch, owned partitions).
    consumers: BTreeMap<(String, String), (i32, TopicPartitions)>,
}

impl Model {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut config = CoordinatorConfig {
            initial_rebalance_delay_ms: if rng.chance(50) { 0 } else { 3000 },
            ..CoordinatorConfig::default()
        };
        config.consumer.session_timeout_ms = 10_000;
        Self {
            live: GroupCoordinator::new(config.clone(), 7),
            rng,
            catalog: catalog(),
            config,
            now: 1_000_000,
            records: Vec::new(),
            timers: BTreeMap::new(),
            next_req: 0,
            joins: HashMap::new(),
            classic: Vec::new(),
            pending: Vec::new(),
            consumers: BTreeMap::new(),
        }
    }

    fn absorb(&mut self, out: Output) {
        for (key, deadline) in out.timers {
            match deadline {
                Some(d) => self.timers.insert(key, d),
                None => self.timers.remove(&key),
            };
        }
        for (id, reply) in out.replies {
            if let Reply::Join(r) = reply {
                let Some(group) = self.joins.remove(&id) else {
                    continue;
                };
                if r.error.is_none() {
                    self.classic
                        .retain(|m| !(m.group == group && m.member_id == r.member_id));
                    self.classic.push(ClassicMember {
                        group,
                        member_id: r.member_id.clone(),
                        generation: r.generation_id,
                        leader: r.leader == r.member_id,
                    });
                } else if r.error == Some(shoal_group::GroupError::MemberIdRequired) {
                    self.pending.push((group, r.member_id.clone()));
                }
            }
        }
        self.records.extend(out.records);
    }

    fn req_id(&mut self) -> RequestId {
        self.next_req += 1;
        self.next_req
    }

    fn group(&mut self) -> String {
        self.rng.pick(&GROUPS).to_string()
    }

    fn topics(&mut self) -> Vec<&'static str> {
        match self.rng.below(3) {
            0 => vec!["t1"],
            1 => vec!["t2"],
            _ => vec!["t1", "t2"],
        }
    }

    fn classic_join(&mut self) {
        let (group, member_id) = match self.rng.below(3) {
            0 if !self.pending.is_empty() => {
                let i = self.rng.below(self.pending.len());
                self.pending.swap_remove(i)
            }
            1 if !self.classic.is_empty() => {
                let m = self.rng.pick(&self.classic).clone();
                (m.group, m.member_id)
            }
            _ => (self.group(), String::new()),
        };
        let topics = self.topics();
        let static_id = self
            .rng
            .chance(20)
            .then(|| format!("static-{}", self.rng.below(2)));
        let req = JoinRequest {
            group_id: group.clone(),
            member_id,
            group_instance_id: static_id,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: if self.rng.chance(50) { 20_000 } else { 400_000 },
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(&topics))],
            require_known_member_id: self.rng.chance(50),
        };
        let id = self.req_id();
        self.joins.insert(id, group);
        let out = self.live.join_with(id, req, &self.catalog, self.now);
        self.absorb(out);
    }

    fn classic_sync(&mut self) {
        if self.classic.is_empty() {
            return;
        }
        let m = self.rng.pick(&self.classic).clone();
        let assignments = if m.leader {
            self.classic
                .iter()
                .filter(|o| o.group == m.group)
                .map(|o| (o.member_id.clone(), Bytes::from(o.member_id.clone())))
                .collect()
        } else {
            Vec::new()
        };
        let req = SyncRequest {
            group_id: m.group,
            member_id: m.member_id,
            generation_id: m.generation,
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        let id = self.req_id();
        let out = self.live.sync(id, req, self.now);
        self.absorb(out);
    }

    fn classic_heartbeat_or_leave(&mut self) {
        if self.classic.is_empty() {
            return;
        }
        let m = self.rng.pick(&self.classic).clone();
        let out = if self.rng.chance(70) {
            self.live
                .heartbeat(&m.group, &m.member_id, None, m.generation, self.now)
                .1
        } else {
            self.classic.retain(|o| o.member_id != m.member_id);
            self.live
                .leave(&m.group, &[(m.member_id.clone(), None)], self.now)
                .1
        };
        self.absorb(out);
    }

    fn consumer_heartbeat(&mut self) {
        let group = self.group();
        let member = self.rng.pick(&CONSUMER_IDS).to_string();
        let key = (group.clone(), member.clone());
        let known = self.consumers.get(&key).cloned();
        let instance_id = (member == "m3").then(|| "static-consumer".to_string());
        let mut req = HeartbeatRequest {
            group_id: group.clone(),
            member_id: member.clone(),
            instance_id,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            ..HeartbeatRequest::default()
        };
        match known {
            Some((epoch, owned)) if self.rng.chance(80) => {
                req.member_epoch = epoch;
                req.owned = Some(owned);
                req.rebalance_timeout_ms = -1;
                if self.rng.chance(10) {
                    req.member_epoch = if self.rng.chance(50) { -1 } else { -2 };
                } else if self.rng.chance(10) {
                    req.subscribed_topic_names =
                        Some(self.topics().into_iter().map(String::from).collect());
                }
            }
            _ => {
                req.member_epoch = 0;
                req.rebalance_timeout_ms = 20_000;
                req.owned = Some(TopicPartitions::new());
                if self.rng.chance(20) {
                    req.subscribed_topic_regex = Some("t.*".into());
                } else {
                    req.subscribed_topic_names =
                        Some(self.topics().into_iter().map(String::from).collect());
                }
                req.server_assignor = self
                    .rng
                    .chance(30)
                    .then(|| self.rng.pick(&["uniform", "range"]).to_string());
            }
        }
        let leaving = req.member_epoch < 0;
        let (resp, out) = self.live.consumer_heartbeat(req, &self.catalog, self.now);
        if resp.error.is_some() || leaving {
            self.consumers.remove(&key);
        } else {
            let entry = self
                .consumers
                .entry(key)
                .or_insert((0, TopicPartitions::new()));
            entry.0 = resp.member_epoch;
            if let Some(a) = resp.assignment {
                entry.1 = a;
            }
        }
        self.absorb(out);
    }

    fn commit(&mut self) {
        let group = self.group();
        let (member_id, generation, version) = match self.rng.below(3) {
            0 => {
                let m = self
                    .classic
                    .iter()
                    .find(|m| m.group == group)
                    .map(|m| (m.member_id.clone(), m.generation));
                let (id, generation) = m.unwrap_or_default();
                (id, generation, 8)
            }
            1 => {
                let m = self
                    .consumers
                    .iter()
                    .find(|((g, _), _)| *g == group)
                    .map(|((_, id), (epoch, _))| (id.clone(), *epoch));
                let (id, epoch) = m.unwrap_or_default();
                (id, epoch, 9)
            }
            _ => (String::new(), -1, 8),
        };
        let (topic, partitions) = *self.rng.pick(&TOPICS);
        let req = CommitRequest {
            group_id: group,
            generation_id: generation,
            member_id,
            group_instance_id: None,
            partitions: vec![CommitPartition {
                topic: topic.into(),
                partition: self.rng.below(partitions as usize) as i32,
                offset: self.rng.below(1000) as i64,
                leader_epoch: -1,
                metadata: self.rng.chance(20).then(|| "m".repeat(self.rng.below(8))),
            }],
            api_version: version,
        };
        let (_, out) = self.live.commit(req, self.now);
        self.absorb(out);
    }

    fn admin(&mut self) {
        let group = self.group();
        let out = match self.rng.below(4) {
            0 => self
                .live
                .delete_offsets(&group, &[("t1".into(), 0), ("t2".into(), 1)], self.now)
                .map(|(_, out)| out)
                .unwrap_or_default(),
            1 => self.live.delete_group(&group, self.now).unwrap_or_default(),
            2 => self.live.delete_topic_offsets("t2", self.now),
            _ => self.live.expire_offsets(self.now + 8 * 24 * 3_600_000),
        };
        self.absorb(out);
    }

    fn fire_timer(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let i = self.rng.below(self.timers.len());
        let (key, deadline) = self
            .timers
            .iter()
            .nth(i)
            .map(|(k, d)| (k.clone(), *d))
            .unwrap();
        self.timers.remove(&key);
        self.now = self.now.max(deadline);
        let out = self.live.on_timer(&key, self.now);
        self.absorb(out);
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=19 => self.classic_join(),
            20..=29 => self.classic_sync(),
            30..=37 => self.classic_heartbeat_or_leave(),
            38..=62 => self.consumer_heartbeat(),
            63..=74 => self.commit(),
            75..=79 => self.admin(),
            80..=94 => self.fire_timer(),
            _ => self.now += self.rng.below(5_000) as i64,
        }
    }

    /// A fresh coordinator rebuilt from the records, as recovery does.
    fn replayed(&self) -> GroupCoordinator {
        let mut c = GroupCoordinator::new(self.config.clone(), 8);
        for r in &self.records {
            let key = r.encode_key();
            let value = r.encode_value();
            let decoded = Record::decode(&key, value.as_deref()).unwrap();
            assert_eq!(&decoded, r, "a record survives encoding");
            c.replay(&decoded, self.now);
        }
        c.start(self.now);
        c
    }
}

#[test]
fn persisted_state_after_live_calls_equals_the_replay_of_their_records() {
    let cases: u64 = std::env::var("SHOAL_REPLAY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let mut records_seen = 0usize;
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 1..=cases {
        let mut m = Model::new(seed);
        for step in 0..60 {
            m.step();
            let live = m.live.persisted_state();
            let replayed = m.replayed().persisted_state();
            assert_eq!(
                live, replayed,
                "seed {seed}, step {step}: live persisted state differs from the replay of its records"
            );
        }
        records_seen += m.records.len();
        for r in &m.records {
            kinds.insert(match r {
                Record::OffsetCommit { value: Some(_), .. } => "offset",
                Record::OffsetCommit { value: None, .. } => "offset tombstone",
                Record::GroupMetadata { value: Some(_), .. } => "group metadata",
                Record::GroupMetadata { value: None, .. } => "group tombstone",
                Record::Consumer(c) if c.is_tombstone() => "consumer tombstone",
                Record::Consumer(_) => "consumer",
            });
        }
    }
    // The sequences must reach every kind of record, or the property proves little.
    assert_eq!(
        kinds.len(),
        6,
        "record kinds reached: {kinds:?} ({records_seen} records)"
    );
}
