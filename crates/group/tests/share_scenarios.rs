//! Scenario tests of KIP-932 share groups with a fake clock: members heartbeat, open share
//! sessions, fetch (the plan step, then the acquire step over what the "broker" read from a
//! fake log), acknowledge, leave, lose their connections, and the broker restarts from the
//! records it wrote. Each test names the behaviour it pins; tables cover the variants.
//! The record state machine itself is also driven directly through [`SharePartition`].
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shoal_group::api::{
    FetchStart, PartitionAcks, PartitionRead, ShareFetchOpen, ShareFetchPlan,
    ShareHeartbeatRequest, ShareHeartbeatResponse, SharePartitionDescription, SharePartitionKey,
    TopicCatalog,
};
use shoal_group::assignor::{TopicMetadata, TopicPartitions};
use shoal_group::share::{
    validate_group_config, AckBatch, AckType, ArchiveReason, ArchivedRecord, OffsetReset,
    RecordState, ReleasePolicy, SharePartition, ShareSnapshot, StateBatch,
};
use shoal_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, GroupEvent, Output, Record, RemovalReason,
    TimerKey,
};
use uuid::Uuid;

use AckType::{Accept, Gap, Reject, Release};

const G: &str = "g";
const T: &str = "t";
const START: i64 = 1_000_000;
/// Kafka's default `group.share.record.lock.duration.ms`.
const LOCK_MS: i64 = 30_000;

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

fn key(p: i32) -> SharePartitionKey {
    (T.to_string(), p)
}

/// Acknowledgements of partition `p` of `t`: `(first, last, types)` batches.
fn acks(p: i32, batches: &[(i64, i64, &[AckType])]) -> PartitionAcks {
    PartitionAcks {
        key: key(p),
        batches: batches
            .iter()
            .map(|(f, l, t)| AckBatch {
                first_offset: *f,
                last_offset: *l,
                types: t.to_vec(),
            })
            .collect(),
    }
}

struct Harness {
    c: GroupCoordinator,
    config: CoordinatorConfig,
    catalog: Catalog,
    now: i64,
    timers: BTreeMap<TimerKey, i64>,
    /// Every record the coordinator wrote, in order (what `__consumer_offsets` holds).
    records: Vec<Record>,
    /// Member epochs from the last successful heartbeat.
    epochs: HashMap<String, i32>,
    /// The share-session epoch each member's next request carries.
    session_epochs: HashMap<String, i32>,
    /// The connection each member sends on (1 unless a test says otherwise).
    conns: HashMap<String, u64>,
    /// The fake log: end offset of each partition of `t` (log start is 0).
    log_end: BTreeMap<i32, i64>,
    archived: Vec<(i32, ArchivedRecord)>,
    /// Accepted records by delivery count (the histogram the outputs report).
    accepted: BTreeMap<usize, u64>,
    events: Vec<GroupEvent>,
}

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    /// A harness over topic `t` with one partition, the broker settings adjusted by `f`.
    fn with(f: impl FnOnce(&mut CoordinatorConfig)) -> Self {
        let mut config = CoordinatorConfig::default();
        f(&mut config);
        let mut h = Self {
            c: GroupCoordinator::new(config.clone(), 1),
            config,
            catalog: Catalog::default(),
            now: START,
            timers: BTreeMap::new(),
            records: Vec::new(),
            epochs: HashMap::new(),
            session_epochs: HashMap::new(),
            conns: HashMap::new(),
            log_end: BTreeMap::new(),
            archived: Vec::new(),
            accepted: BTreeMap::new(),
            events: Vec::new(),
        };
        h.topic(T, 1);
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
        if name == T {
            for p in 0..partitions {
                self.log_end.entry(p).or_insert(0);
            }
        }
    }

    /// Appends `n` records to partition `p` of `t`.
    fn produce(&mut self, p: i32, n: i64) {
        *self.log_end.entry(p).or_insert(0) += n;
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
        for a in out.share_archived {
            assert_eq!((a.group_id.as_str(), a.topic.as_str()), (G, T));
            self.archived.push((a.partition, a.record));
        }
        for (_, _, _, count, n) in out.share_accepted {
            *self.accepted.entry(count).or_default() += n;
        }
        self.events.extend(out.events);
    }

    /// Moves the clock to `to`, firing every timer due by then in deadline order.
    fn advance(&mut self, to: i64) {
        let mut fired = std::collections::BTreeSet::new();
        loop {
            let due = self
                .timers
                .iter()
                .filter(|(_, d)| **d <= to)
                .min_by_key(|(_, d)| **d)
                .map(|(k, d)| (k.clone(), *d));
            let Some((k, d)) = due else { break };
            assert!(
                fired.insert((k.clone(), d)),
                "{k:?} fired again at the deadline it was handled at ({d})"
            );
            self.timers.remove(&k);
            self.now = d.max(self.now);
            let out = self.c.on_timer(&k, self.now);
            self.absorb(out);
        }
        self.now = to;
    }

    fn lock_timer(&self, p: i32) -> Option<i64> {
        self.timers
            .get(&TimerKey::ShareLock {
                group_id: G.into(),
                topic: T.into(),
                partition: p,
            })
            .copied()
    }

    /// A coordinator rebuilt from the records (each encoded to the bytes
    /// `__consumer_offsets` holds and decoded back), without touching the live one.
    fn replayed(&self) -> GroupCoordinator {
        let mut c = GroupCoordinator::new(self.config.clone(), 2);
        for r in &self.records {
            let back = Record::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap();
            assert_eq!(&back, r, "a record survives encode/decode");
            c.replay(&back, self.now);
        }
        c
    }

    /// A broker restart: the live coordinator is replaced by the one the records rebuild;
    /// soft state (members, sessions, timers) is gone.
    fn restart(&mut self) {
        let mut c = self.replayed();
        let out = c.start(self.now);
        self.c = c;
        self.timers.clear();
        self.epochs.clear();
        self.session_epochs.clear();
        self.absorb(out);
    }

    fn assert_persisted_state_is_what_the_records_say(&self) {
        assert_eq!(
            self.c.persisted_state(),
            self.replayed().persisted_state(),
            "the live persisted state differs from what the records rebuild"
        );
    }

    // ----- ShareGroupHeartbeat ---------------------------------------------------------------

    fn heartbeat(&mut self, req: ShareHeartbeatRequest) -> ShareHeartbeatResponse {
        let member = req.member_id.clone();
        let (resp, out) = self.c.share_heartbeat(req, &self.catalog, self.now);
        self.absorb(out);
        if resp.error.is_none() {
            self.epochs.insert(member, resp.member_epoch);
        }
        resp
    }

    fn join_topics(&mut self, member: &str, topics: &[&str]) -> ShareHeartbeatResponse {
        self.heartbeat(ShareHeartbeatRequest {
            group_id: G.into(),
            member_id: member.into(),
            member_epoch: 0,
            subscribed_topic_names: Some(topics.iter().map(|s| s.to_string()).collect()),
            ..ShareHeartbeatRequest::default()
        })
    }

    fn join(&mut self, member: &str) -> ShareHeartbeatResponse {
        self.join_topics(member, &[T])
    }

    fn beat(&mut self, member: &str) -> ShareHeartbeatResponse {
        let epoch = self.epochs.get(member).copied().unwrap_or(1);
        self.heartbeat(ShareHeartbeatRequest {
            group_id: G.into(),
            member_id: member.into(),
            member_epoch: epoch,
            ..ShareHeartbeatRequest::default()
        })
    }

    fn leave(&mut self, member: &str) -> ShareHeartbeatResponse {
        self.heartbeat(ShareHeartbeatRequest {
            group_id: G.into(),
            member_id: member.into(),
            member_epoch: -1,
            ..ShareHeartbeatRequest::default()
        })
    }

    // ----- ShareFetch / ShareAcknowledge -----------------------------------------------------

    /// One ShareFetch/ShareAcknowledge session step at an explicit epoch.
    fn request(
        &mut self,
        member: &str,
        epoch: i32,
        acks: Vec<PartitionAcks>,
        acknowledge_only: bool,
    ) -> Result<ShareFetchPlan, GroupError> {
        let added = if epoch == 0 {
            self.log_end.keys().map(|p| key(*p)).collect()
        } else {
            Vec::new()
        };
        let req = ShareFetchOpen {
            group_id: G.into(),
            member_id: member.into(),
            share_session_epoch: epoch,
            added,
            forgotten: Vec::new(),
            acks,
            connection_id: self.conns.get(member).copied().unwrap_or(1),
            acknowledge_only,
        };
        let (result, out) = self.c.share_fetch_open(&req, self.now);
        self.absorb(out);
        if result.is_ok() {
            match epoch {
                -1 => {
                    self.session_epochs.remove(member);
                }
                0 => {
                    self.session_epochs.insert(member.to_string(), 1);
                }
                e => {
                    self.session_epochs.insert(member.to_string(), e + 1);
                }
            }
        }
        result
    }

    fn next_epoch(&self, member: &str) -> i32 {
        self.session_epochs.get(member).copied().unwrap_or(0)
    }

    /// Opens a share session on every partition of `t`.
    fn open(&mut self, member: &str) -> ShareFetchPlan {
        self.request(member, 0, Vec::new(), false).unwrap()
    }

    /// A ShareFetch at the session's next epoch (opening one if there is none).
    fn fetch(
        &mut self,
        member: &str,
        acks: Vec<PartitionAcks>,
    ) -> Result<ShareFetchPlan, GroupError> {
        let epoch = self.next_epoch(member);
        self.request(member, epoch, acks, false)
    }

    /// A ShareAcknowledge at the session's next epoch; the per-partition errors.
    fn ack(&mut self, member: &str, acks: Vec<PartitionAcks>) -> Vec<Option<GroupError>> {
        let epoch = self.next_epoch(member);
        let plan = self.request(member, epoch, acks, true).unwrap();
        assert!(
            plan.partitions.is_empty(),
            "ShareAcknowledge fetches nothing"
        );
        plan.ack_errors.into_iter().map(|(_, e)| e).collect()
    }

    /// Closes the share session (epoch -1) after applying `acks`.
    fn close(&mut self, member: &str, acks: Vec<PartitionAcks>) -> Vec<Option<GroupError>> {
        let plan = self.request(member, -1, acks, true).unwrap();
        plan.ack_errors.into_iter().map(|(_, e)| e).collect()
    }

    /// The acquire step for `plan`: the broker reads each partition from where the plan says
    /// up to the log end (`latest` resolves to the log end, anything else to 0).
    fn acquire(
        &mut self,
        member: &str,
        plan: &ShareFetchPlan,
        max_records: usize,
    ) -> BTreeMap<i32, Vec<(i64, i16)>> {
        let mut reads = Vec::new();
        for (k, start) in &plan.partitions {
            let end = self.log_end[&k.1];
            let (from, initial_offset) = match start {
                FetchStart::At(o) => (*o, None),
                FetchStart::Initialize(OffsetReset::Latest) => (end, Some(end)),
                FetchStart::Initialize(_) => (0, Some(0)),
                FetchStart::Full => continue,
            };
            reads.push(PartitionRead {
                batch_ends: Vec::new(),
                key: k.clone(),
                from,
                to: end,
                log_start_offset: 0,
                initial_offset,
            });
        }
        let (got, out) = self
            .c
            .share_acquire(G, member, &reads, max_records, self.now);
        self.absorb(out);
        let mut by_partition: BTreeMap<i32, Vec<(i64, i16)>> = BTreeMap::new();
        for (k, ranges) in got {
            let v = by_partition.entry(k.1).or_default();
            for r in ranges {
                for o in r.first_offset..=r.last_offset {
                    v.push((o, r.delivery_count));
                }
            }
        }
        by_partition
    }

    /// A ShareFetch and its acquire step; `(offset, delivery count)` of every record acquired
    /// on partition 0.
    fn poll_n(&mut self, member: &str, max_records: usize) -> Vec<(i64, i16)> {
        let plan = self.fetch(member, Vec::new()).unwrap();
        self.acquire(member, &plan, max_records)
            .remove(&0)
            .unwrap_or_default()
    }

    fn poll(&mut self, member: &str) -> Vec<(i64, i16)> {
        self.poll_n(member, 500)
    }

    fn partition(&self, p: i32) -> SharePartitionDescription {
        self.c
            .share_describe(G)
            .unwrap()
            .partitions
            .into_iter()
            .find(|d| d.topic == T && d.partition == p)
            .unwrap()
    }

    fn set_configs(&mut self, changes: &[(&str, Option<&str>)]) -> Result<(), String> {
        let changes: Vec<(String, Option<String>)> = changes
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        let (r, out) = self.c.alter_group_configs(G, &changes, false);
        self.absorb(out);
        r
    }
}

/// `(offset, delivery count)` of acquired records.
type Deliveries = Vec<(i64, i16)>;
/// `(first, last, types)` acknowledgement batches.
type Batches = Vec<(i64, i64, &'static [AckType])>;

fn first_delivery(offsets: std::ops::Range<i64>) -> Vec<(i64, i16)> {
    offsets.map(|o| (o, 1)).collect()
}

// ----- acquisition and locks --------------------------------------------------------------

#[test]
fn acquisition_locks_records_for_the_lock_duration_with_delivery_count_one() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.join("a");
    h.produce(0, 3);
    assert_eq!(
        h.open("a").partitions,
        vec![(key(0), FetchStart::Initialize(OffsetReset::Earliest))]
    );
    assert_eq!(h.poll("a"), first_delivery(0..3));
    assert_eq!(h.lock_timer(0), Some(START + LOCK_MS));
    let d = h.partition(0);
    assert_eq!((d.start_offset, d.end_offset, d.counts.acquired), (0, 3, 3));
    // The next fetch reads after the acquired records; nothing more is there.
    assert_eq!(
        h.fetch("a", Vec::new()).unwrap().partitions,
        vec![(key(0), FetchStart::At(3))]
    );
    assert_eq!(h.poll("b"), vec![]);
}

#[test]
fn a_new_share_partition_starts_where_share_auto_offset_reset_says() {
    let cases: [(Option<&str>, OffsetReset, Deliveries); 3] = [
        (None, OffsetReset::Latest, vec![(5, 1)]),
        (
            Some("earliest"),
            OffsetReset::Earliest,
            first_delivery(0..6),
        ),
        (
            Some("by_duration:PT1H"),
            OffsetReset::ByDuration(3_600_000),
            first_delivery(0..6),
        ),
    ];
    for (config, expected, got) in cases {
        let mut h = Harness::new();
        if let Some(v) = config {
            h.set_configs(&[("share.auto.offset.reset", Some(v))])
                .unwrap();
        }
        h.produce(0, 5);
        let plan = h.open("a");
        assert_eq!(
            plan.partitions,
            vec![(key(0), FetchStart::Initialize(expected))],
            "{config:?}"
        );
        // The broker resolves the strategy (latest: the log end, 5; otherwise 0).
        let mut acquired = h.acquire("a", &plan, 500).remove(&0).unwrap_or_default();
        if expected == OffsetReset::Latest {
            assert_eq!(h.partition(0).start_offset, 5, "{config:?}");
        }
        h.produce(0, 1);
        acquired.extend(h.poll("a"));
        assert_eq!(acquired, got, "{config:?}");
    }
}

#[test]
fn max_records_is_shared_across_the_partitions_of_one_fetch() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.topic(T, 2);
    h.produce(0, 5);
    h.produce(1, 5);
    let plan = h.open("a");
    let got = h.acquire("a", &plan, 7);
    assert_eq!(got[&0], first_delivery(0..5));
    assert_eq!(got[&1], first_delivery(0..2));
    let plan = h.fetch("a", Vec::new()).unwrap();
    let got = h.acquire("a", &plan, 7);
    assert_eq!(got.get(&0), None);
    assert_eq!(got[&1], first_delivery(2..5));
}

#[test]
fn window_full_at_max_record_locks_acquires_nothing_new() {
    let mut h = Harness::with(|c| c.share.partition_max_record_locks = 4);
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 10);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..4));
    let plan = h.fetch("a", Vec::new()).unwrap();
    assert_eq!(plan.partitions, vec![(key(0), FetchStart::Full)]);
    assert_eq!(h.poll("b"), vec![]);
    // Acknowledging the middle does not move the SPSO: the window is still [0, 4).
    assert_eq!(h.ack("a", vec![acks(0, &[(1, 2, &[Accept])])]), vec![None]);
    assert_eq!(h.poll("b"), vec![]);
    // A released record inside a full window is redelivered, and only it.
    assert_eq!(h.ack("a", vec![acks(0, &[(3, 3, &[Release])])]), vec![None]);
    assert_eq!(
        h.fetch("b", Vec::new()).unwrap().partitions,
        vec![(key(0), FetchStart::At(3))]
    );
    assert_eq!(h.poll("b"), vec![(3, 2)]);
    // Finishing offset 0 moves the SPSO to 3: room for three new records.
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 0, &[Accept])])]), vec![None]);
    assert_eq!(h.partition(0).start_offset, 3);
    assert_eq!(h.poll("a"), first_delivery(4..7));
    let d = h.partition(0);
    assert_eq!(d.end_offset - d.start_offset, 4);
}

#[test]
fn lock_expiry_makes_records_available_again() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 2);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..2));
    h.advance(START + LOCK_MS - 1);
    assert_eq!(h.poll("b"), vec![], "still locked");
    h.advance(START + LOCK_MS);
    assert_eq!(h.lock_timer(0), None, "nothing acquired, no lock timer");
    assert_eq!(h.partition(0).counts.available, 2);
    assert_eq!(h.poll("b"), vec![(0, 2), (1, 2)]);
    // a's late acknowledgement finds records it no longer holds.
    assert_eq!(
        h.ack("a", vec![acks(0, &[(0, 1, &[Accept])])]),
        vec![Some(GroupError::InvalidRecordState)]
    );
    assert_eq!(h.ack("b", vec![acks(0, &[(0, 1, &[Accept])])]), vec![None]);
    assert_eq!(h.partition(0).start_offset, 2);
}

#[test]
fn redelivery_backoff_doubles_per_delivery_and_is_capped() {
    let mut h = Harness::with(|c| {
        c.share.redelivery_backoff_ms = 100;
        c.share.redelivery_backoff_max_ms = 300;
        c.share.delivery_count_limit = 10;
    });
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 1);
    h.open("a");
    // Delivery n is released at `now`; it can be acquired again `backoff` later.
    for (delivery, backoff) in [(1i16, 100i64), (2, 200), (3, 300), (4, 300)] {
        assert_eq!(h.poll("a"), vec![(0, delivery)]);
        assert_eq!(h.ack("a", vec![acks(0, &[(0, 0, &[Release])])]), vec![None]);
        let released_at = h.now;
        h.advance(released_at + backoff - 1);
        assert_eq!(
            h.poll("a"),
            vec![],
            "delivery {delivery}: still backing off"
        );
        assert_eq!(
            h.fetch("a", Vec::new()).unwrap().partitions,
            vec![(key(0), FetchStart::At(1))],
            "delivery {delivery}: the plan skips the backed-off record"
        );
        h.advance(released_at + backoff);
        assert_eq!(
            h.fetch("a", Vec::new()).unwrap().partitions,
            vec![(key(0), FetchStart::At(0))],
            "delivery {delivery}"
        );
    }
}

// ----- record states ------------------------------------------------------------------------

#[test]
fn released_record_is_redelivered_with_delivery_count_two() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 3);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..3));
    assert_eq!(h.ack("a", vec![acks(0, &[(1, 1, &[Release])])]), vec![None]);
    assert_eq!(h.poll("b"), vec![(1, 2)]);
    assert_eq!(h.partition(0).counts.acquired, 3);
}

#[test]
fn accept_reject_and_gap_finish_records_and_the_spso_moves_over_the_finished_prefix() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 5);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..5));
    // One batch with a type per offset.
    assert_eq!(
        h.ack("a", vec![acks(0, &[(0, 2, &[Accept, Reject, Gap])])]),
        vec![None]
    );
    let d = h.partition(0);
    assert_eq!((d.start_offset, d.end_offset), (3, 5));
    assert_eq!(
        h.archived,
        vec![
            (
                0,
                ArchivedRecord {
                    offset: 1,
                    delivery_count: 1,
                    reason: ArchiveReason::Rejected,
                    dead_letter: false
                }
            ),
            (
                0,
                ArchivedRecord {
                    offset: 2,
                    delivery_count: 1,
                    reason: ArchiveReason::Gap,
                    dead_letter: false
                }
            ),
        ]
    );
    assert_eq!(h.accepted, BTreeMap::from([(1, 1)]));
    // Finishing past an ACQUIRED record leaves the SPSO before it.
    assert_eq!(h.ack("a", vec![acks(0, &[(4, 4, &[Accept])])]), vec![None]);
    let d = h.partition(0);
    assert_eq!(
        (d.start_offset, d.counts.acquired, d.counts.acknowledged),
        (3, 1, 1)
    );
    assert_eq!(h.ack("a", vec![acks(0, &[(3, 3, &[Accept])])]), vec![None]);
    assert_eq!(h.partition(0).start_offset, 5);
    assert_eq!(h.poll("a"), vec![]);
    h.assert_persisted_state_is_what_the_records_say();
}

#[test]
fn record_at_delivery_count_limit_is_archived_on_release() {
    #[derive(Debug, Clone, Copy)]
    enum Path {
        ReleaseAck,
        LockExpiry,
        SessionClose,
        ConnectionClose,
    }
    for path in [
        Path::ReleaseAck,
        Path::LockExpiry,
        Path::SessionClose,
        Path::ConnectionClose,
    ] {
        let mut h = Harness::new();
        h.set_configs(&[
            ("share.auto.offset.reset", Some("earliest")),
            ("share.delivery.count.limit", Some("3")),
        ])
        .unwrap();
        h.produce(0, 2);
        h.open("a");
        for delivery in 1..=3i16 {
            if h.next_epoch("a") == 0 {
                h.open("a");
            }
            let expected = if delivery == 1 {
                vec![(0, 1), (1, 1)]
            } else {
                vec![(0, delivery)]
            };
            assert_eq!(h.poll("a"), expected, "{path:?} delivery {delivery}");
            if delivery == 1 {
                // Offset 1 is accepted at once; offset 0 is the one that keeps coming back.
                assert_eq!(h.ack("a", vec![acks(0, &[(1, 1, &[Accept])])]), vec![None]);
            }
            match path {
                Path::ReleaseAck => {
                    assert_eq!(h.ack("a", vec![acks(0, &[(0, 0, &[Release])])]), vec![None]);
                }
                Path::LockExpiry => {
                    let t = h.now + LOCK_MS;
                    h.advance(t);
                }
                Path::SessionClose => {
                    assert!(h.close("a", Vec::new()).is_empty());
                }
                Path::ConnectionClose => {
                    let out = h.c.share_connection_closed(1, h.now);
                    h.absorb(out);
                    h.session_epochs.remove("a");
                }
            }
        }
        assert_eq!(
            h.archived,
            vec![(
                0,
                ArchivedRecord {
                    offset: 0,
                    delivery_count: 3,
                    reason: ArchiveReason::DeliveryCountLimit,
                    dead_letter: false
                }
            )],
            "{path:?}"
        );
        assert_eq!(h.partition(0).start_offset, 2, "{path:?}");
        if h.next_epoch("a") == 0 {
            h.open("a");
        }
        assert_eq!(h.poll("a"), vec![], "{path:?}: archived for good");
        h.assert_persisted_state_is_what_the_records_say();
    }
}

#[test]
fn record_state_transitions_follow_kip_932() {
    // Driven on the share-partition directly: offset 0 stays ACQUIRED by "keeper" so the
    // SPSO stays put and offset 1's state is visible whatever it becomes.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Acquire(&'static str),
        Ack(&'static str, AckType),
        ExpireAt(i64),
        ReleaseMember(&'static str),
    }
    use Op::*;
    let policy = ReleasePolicy {
        delivery_count_limit: 2,
        backoff_ms: 0,
        backoff_max_ms: 0,
        dead_letter: false,
    };
    let table: Vec<(&str, Vec<Op>, RecordState, i16)> = vec![
        ("acquired", vec![Acquire("a")], RecordState::Acquired, 1),
        (
            "accepted",
            vec![Acquire("a"), Ack("a", Accept)],
            RecordState::Acknowledged,
            1,
        ),
        (
            "rejected",
            vec![Acquire("a"), Ack("a", Reject)],
            RecordState::Archived,
            1,
        ),
        (
            "gap",
            vec![Acquire("a"), Ack("a", Gap)],
            RecordState::Archived,
            1,
        ),
        (
            "released",
            vec![Acquire("a"), Ack("a", Release)],
            RecordState::Available,
            1,
        ),
        (
            "reacquired by another member",
            vec![Acquire("a"), Ack("a", Release), Acquire("b")],
            RecordState::Acquired,
            2,
        ),
        (
            "released at the limit",
            vec![
                Acquire("a"),
                Ack("a", Release),
                Acquire("b"),
                Ack("b", Release),
            ],
            RecordState::Archived,
            2,
        ),
        (
            "lock not yet expired",
            vec![Acquire("a"), ExpireAt(999)],
            RecordState::Acquired,
            1,
        ),
        (
            "lock expired",
            vec![Acquire("a"), ExpireAt(1_000)],
            RecordState::Available,
            1,
        ),
        (
            "lock expired at the limit",
            vec![Acquire("a"), ExpireAt(1_000), Acquire("b"), ExpireAt(2_000)],
            RecordState::Archived,
            2,
        ),
        (
            "another member released",
            vec![Acquire("a"), ReleaseMember("b")],
            RecordState::Acquired,
            1,
        ),
        (
            "its member released",
            vec![Acquire("a"), ReleaseMember("a")],
            RecordState::Available,
            1,
        ),
    ];
    for (name, ops, state, count) in table {
        let mut sp = SharePartition::new(0);
        let keeper: Arc<str> = Arc::from("keeper");
        assert_eq!(sp.acquire(&keeper, 0, 1, 1, 100, 1_000_000, 0, 0).len(), 1);
        let mut now = 0;
        for op in ops {
            match op {
                Acquire(m) => {
                    let got = sp.acquire(&Arc::from(m), 1, 2, 10, 100, 1_000, 0, now);
                    assert_eq!(got.len(), 1, "{name}: {op:?}");
                }
                Ack(m, t) => {
                    let b = AckBatch {
                        first_offset: 1,
                        last_offset: 1,
                        types: vec![t],
                    };
                    sp.acknowledge(m, &[b], &policy, now).unwrap();
                }
                ExpireAt(t) => {
                    now = t;
                    sp.expire_locks(&policy, now);
                }
                ReleaseMember(m) => {
                    sp.release_member(m, &policy, now);
                }
            }
        }
        assert_eq!(sp.record(1), (state, count), "{name}");
        assert_eq!(sp.start_offset(), 0, "{name}");
        assert_eq!(sp.record(0), (RecordState::Acquired, 1), "{name}");
    }
}

// ----- acknowledgements ---------------------------------------------------------------------

#[test]
fn ack_from_another_member_is_invalid_record_state_and_changes_nothing() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 3);
    h.open("a");
    assert_eq!(h.poll_n("a", 2), first_delivery(0..2));
    h.open("b");
    assert_eq!(h.poll("b"), vec![(2, 1)]);
    let before = h.c.persisted_state();
    let records = h.records.len();
    for batches in [
        vec![(0i64, 0i64, &[Accept][..])],
        // One of b's own records and one of a's: nothing is applied.
        vec![(1, 2, &[Reject][..])],
        vec![(0, 0, &[Accept][..]), (2, 2, &[Accept][..])],
    ] {
        assert_eq!(
            h.ack("b", vec![acks(0, &batches)]),
            vec![Some(GroupError::InvalidRecordState)],
            "{batches:?}"
        );
    }
    assert_eq!(h.c.persisted_state(), before);
    assert_eq!(h.records.len(), records, "a refused ack writes nothing");
    assert!(h.archived.is_empty());
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 1, &[Accept])])]), vec![None]);
    assert_eq!(h.ack("b", vec![acks(0, &[(2, 2, &[Accept])])]), vec![None]);
    assert_eq!(h.partition(0).start_offset, 3);
}

#[test]
fn malformed_or_out_of_window_acks_are_invalid_request_and_change_nothing() {
    let table: [(&str, Batches, GroupError); 9] = [
        (
            "inverted range",
            vec![(2, 1, &[Accept])],
            GroupError::InvalidRequest,
        ),
        ("no types", vec![(0, 1, &[])], GroupError::InvalidRequest),
        (
            "type count neither 1 nor the range's length",
            vec![(0, 2, &[Accept, Accept])],
            GroupError::InvalidRequest,
        ),
        (
            "overlapping batches",
            vec![(0, 0, &[Accept]), (0, 3, &[Accept])],
            GroupError::InvalidRequest,
        ),
        (
            "batches out of order",
            vec![(3, 3, &[Accept]), (0, 0, &[Accept])],
            GroupError::InvalidRequest,
        ),
        (
            "last offset at the SPEO",
            vec![(3, 4, &[Accept])],
            GroupError::InvalidRequest,
        ),
        (
            "far past the SPEO",
            vec![(10, 12, &[Accept])],
            GroupError::InvalidRequest,
        ),
        (
            "a finished record inside the window",
            vec![(1, 1, &[Accept])],
            GroupError::InvalidRecordState,
        ),
        (
            "a released (AVAILABLE) record",
            vec![(2, 2, &[Accept])],
            GroupError::InvalidRecordState,
        ),
    ];
    for (name, batches, error) in table {
        let mut h = Harness::new();
        h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
            .unwrap();
        h.produce(0, 5);
        h.open("a");
        assert_eq!(h.poll_n("a", 4), first_delivery(0..4));
        // Offset 1 ACKNOWLEDGED (the SPSO stays at 0), offset 2 released: window [0, 4)
        // with 0 and 3 ACQUIRED.
        assert_eq!(
            h.ack("a", vec![acks(0, &[(1, 2, &[Accept, Release])])]),
            vec![None]
        );
        let before = h.c.persisted_state();
        let records = h.records.len();
        assert_eq!(
            h.ack("a", vec![acks(0, &batches)]),
            vec![Some(error)],
            "{name}"
        );
        assert_eq!(h.c.persisted_state(), before, "{name}");
        assert_eq!(
            h.records.len(),
            records,
            "{name}: a refused ack writes nothing"
        );
        let d = h.partition(0);
        assert_eq!(
            (d.start_offset, d.end_offset, d.counts.acquired),
            (0, 4, 2),
            "{name}"
        );
        assert_eq!(
            h.ack("a", vec![acks(0, &[(0, 0, &[Accept])])]),
            vec![None],
            "{name}"
        );
        assert_eq!(h.partition(0).start_offset, 2, "{name}");
    }
}

#[test]
fn acks_are_all_or_nothing_within_a_partition_and_independent_across_partitions() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.topic(T, 2);
    h.produce(0, 3);
    h.produce(1, 3);
    let plan = h.open("a");
    h.acquire("a", &plan, 500);
    // Partition 0: a valid first batch, then one past the SPEO; partition 1: valid.
    let errors = h.ack(
        "a",
        vec![
            acks(0, &[(0, 1, &[Accept]), (5, 5, &[Accept])]),
            acks(1, &[(0, 2, &[Accept])]),
        ],
    );
    assert_eq!(errors, vec![Some(GroupError::InvalidRequest), None]);
    assert_eq!(
        h.partition(0).start_offset,
        0,
        "nothing of partition 0 applied"
    );
    assert_eq!(h.partition(0).counts.acquired, 3);
    assert_eq!(h.partition(1).start_offset, 3);
    // The same acknowledgements piggy-backed on a ShareFetch behave the same.
    let plan = h
        .fetch(
            "a",
            vec![acks(
                0,
                &[(0, 0, &[Accept]), (1, 1, &[Accept]), (2, 2, &[Reject])],
            )],
        )
        .unwrap();
    assert_eq!(plan.ack_errors, vec![(key(0), None)]);
    assert_eq!(h.partition(0).start_offset, 3);
}

#[test]
fn acks_below_the_spso_are_skipped_as_success() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 3);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..3));
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 1, &[Accept])])]), vec![None]);
    assert_eq!(h.partition(0).start_offset, 2);
    // A retry of the same acks, and one reaching from below the SPSO into a held record.
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 1, &[Reject])])]), vec![None]);
    assert_eq!(
        h.ack("a", vec![acks(0, &[(0, 2, &[Release, Release, Accept])])]),
        vec![None]
    );
    assert_eq!(h.partition(0).start_offset, 3);
    assert_eq!(h.accepted, BTreeMap::from([(1, 3)]));
    assert!(h.archived.is_empty(), "the skipped Reject archived nothing");
}

// ----- share sessions -----------------------------------------------------------------------

#[test]
fn share_session_epochs_follow_kip_932() {
    use GroupError::{InvalidRequest, InvalidShareSessionEpoch, ShareSessionNotFound};
    // (epoch, ShareAcknowledge?, with acks?, expected), in order, on one member.
    let steps: [(i32, bool, bool, Option<GroupError>); 16] = [
        (1, false, false, Some(ShareSessionNotFound)),
        (-1, false, false, Some(ShareSessionNotFound)),
        (0, true, false, Some(InvalidShareSessionEpoch)),
        (0, false, true, Some(InvalidRequest)),
        (0, false, false, None), // opens; next is 1
        (2, false, false, Some(InvalidShareSessionEpoch)),
        (1, false, true, None),
        (1, false, false, Some(InvalidShareSessionEpoch)), // no replays
        (2, true, true, None),                             // ShareAcknowledge moves it too
        (0, true, false, Some(InvalidShareSessionEpoch)),
        (3, false, false, None),
        (0, false, false, None), // a new session; next is 1 again
        (4, false, false, Some(InvalidShareSessionEpoch)),
        (1, true, false, None),
        (-1, true, true, None), // closes
        (2, false, false, Some(ShareSessionNotFound)),
    ];
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 100);
    // The partition has state, so acks of unheld offsets are per-partition errors, which
    // leave the top-level result alone.
    h.open("z");
    h.poll("z");
    for (i, (epoch, ack_only, with_acks, expected)) in steps.into_iter().enumerate() {
        let a = if with_acks {
            vec![acks(0, &[(0, 0, &[Accept])])]
        } else {
            Vec::new()
        };
        let got = h.request("a", epoch, a, ack_only);
        assert_eq!(got.as_ref().err().copied(), expected, "step {i}: {got:?}");
        if let Ok(plan) = got {
            if with_acks {
                assert_eq!(
                    plan.ack_errors,
                    vec![(key(0), Some(GroupError::InvalidRecordState))],
                    "step {i}"
                );
            }
            assert_eq!(
                plan.partitions.is_empty(),
                ack_only || epoch == -1,
                "step {i}"
            );
        }
    }
}

#[test]
fn share_session_limit_counts_sessions_across_groups() {
    let mut h = Harness::with(|c| c.share.max_share_sessions = 2);
    let open = |h: &mut Harness, group: &str, member: &str, epoch: i32| {
        let req = ShareFetchOpen {
            group_id: group.into(),
            member_id: member.into(),
            share_session_epoch: epoch,
            added: vec![key(0)],
            acknowledge_only: epoch == -1,
            ..ShareFetchOpen::default()
        };
        let (r, out) = h.c.share_fetch_open(&req, h.now);
        h.absorb(out);
        r.err()
    };
    assert_eq!(open(&mut h, "g1", "a", 0), None);
    assert_eq!(open(&mut h, "g2", "b", 0), None);
    assert_eq!(
        open(&mut h, "g1", "c", 0),
        Some(GroupError::ShareSessionLimitReached)
    );
    // Re-opening one's own session does not count twice.
    assert_eq!(open(&mut h, "g1", "a", 0), None);
    assert_eq!(open(&mut h, "g1", "a", -1), None);
    assert_eq!(open(&mut h, "g1", "c", 0), None);
}

#[test]
fn session_close_releases_only_that_members_records() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 4);
    h.open("a");
    assert_eq!(h.poll_n("a", 2), first_delivery(0..2));
    h.open("b");
    assert_eq!(h.poll("b"), first_delivery(2..4));
    // a's final acknowledgements apply, then what it still holds is released.
    assert_eq!(
        h.close("a", vec![acks(0, &[(0, 0, &[Accept])])]),
        vec![None]
    );
    assert_eq!(h.partition(0).start_offset, 1);
    h.open("c");
    assert_eq!(h.poll("c"), vec![(1, 2)]);
    assert_eq!(h.ack("b", vec![acks(0, &[(2, 3, &[Accept])])]), vec![None]);
    // a's session is gone: its next epoch (2) finds none.
    assert_eq!(
        h.request("a", 2, Vec::new(), false).err(),
        Some(GroupError::ShareSessionNotFound)
    );
}

#[test]
fn connection_close_releases_records_of_sessions_opened_on_it() {
    for release_on_close in [true, false] {
        let mut h = Harness::with(|c| c.share.release_on_connection_close = release_on_close);
        h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
            .unwrap();
        h.produce(0, 4);
        h.conns.insert("b".into(), 1);
        h.conns.insert("c".into(), 2);
        h.conns.insert("d".into(), 1);
        for m in ["a", "b", "c", "d"] {
            h.open(m);
            assert_eq!(h.poll_n(m, 1).len(), 1, "{m}");
        }
        // d's session moves to connection 3 with its next request.
        h.conns.insert("d".into(), 3);
        assert!(h.ack("d", Vec::new()).is_empty());
        let out = h.c.share_connection_closed(1, h.now);
        h.absorb(out);
        let d = h.partition(0);
        if !release_on_close {
            assert_eq!(d.counts.acquired, 4);
            assert!(h.fetch("a", Vec::new()).is_ok());
            continue;
        }
        // a (offset 0) and b (offset 1) lose their sessions and records; c and d keep them.
        assert_eq!((d.counts.acquired, d.counts.available), (2, 2));
        for m in ["a", "b"] {
            assert_eq!(
                h.fetch(m, Vec::new()).err(),
                Some(GroupError::ShareSessionNotFound),
                "{m}"
            );
        }
        h.open("e");
        assert_eq!(h.poll("e"), vec![(0, 2), (1, 2)]);
        assert_eq!(h.ack("c", vec![acks(0, &[(2, 2, &[Accept])])]), vec![None]);
        assert_eq!(h.ack("d", vec![acks(0, &[(3, 3, &[Accept])])]), vec![None]);
    }
}

// ----- membership ---------------------------------------------------------------------------

#[test]
fn leaving_the_group_keeps_acquired_records_until_session_close() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.join("a");
    h.produce(0, 2);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..2));
    let r = h.leave("a");
    assert_eq!((r.error, r.member_epoch), (None, -1));
    let g = h.c.share_describe(G).unwrap();
    assert!(g.members.is_empty());
    assert_eq!(g.state, "Empty");
    assert_eq!(
        h.partition(0).counts.acquired,
        2,
        "leaving released nothing"
    );
    h.open("b");
    assert_eq!(h.poll("b"), vec![]);
    // The session outlives the membership: close()'s last acks still land.
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 0, &[Accept])])]), vec![None]);
    assert!(h.close("a", Vec::new()).is_empty());
    assert_eq!(h.poll("b"), vec![(1, 2)]);
}

#[test]
fn session_timeout_removes_the_member_but_keeps_its_records() {
    let mut h = Harness::new();
    h.set_configs(&[
        ("share.auto.offset.reset", Some("earliest")),
        ("share.record.lock.duration.ms", Some("60000")),
    ])
    .unwrap();
    h.join("a");
    h.produce(0, 2);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..2));
    // Kafka's default share session timeout is 45 s; the locks last 60 s.
    h.advance(START + 45_000);
    assert!(h.events.iter().any(|e| matches!(
        e,
        GroupEvent::MemberRemoved { member_id, reason: RemovalReason::SessionTimeout, .. }
            if member_id == "a"
    )));
    assert!(h.c.share_describe(G).unwrap().members.is_empty());
    assert_eq!(h.partition(0).counts.acquired, 2);
    assert_eq!(h.beat("a").error, Some(GroupError::UnknownMemberId));
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 0, &[Accept])])]), vec![None]);
    // The lock, not the membership, ends the other one.
    h.advance(START + 60_000);
    h.open("b");
    assert_eq!(h.poll("b"), vec![(1, 2)]);
}

#[test]
fn heartbeat_errors_follow_kafka() {
    let mut h = Harness::with(|c| c.share.max_size = 2);
    let req = |member: &str, epoch: i32, topics: Option<Vec<&str>>| ShareHeartbeatRequest {
        group_id: G.into(),
        member_id: member.into(),
        member_epoch: epoch,
        subscribed_topic_names: topics.map(|t| t.into_iter().map(String::from).collect()),
        ..ShareHeartbeatRequest::default()
    };
    let long = "x".repeat(37);
    let max = "y".repeat(36);
    let table: Vec<(&str, ShareHeartbeatRequest, Option<GroupError>)> = vec![
        (
            "unknown member of an unknown group",
            req("a", 1, None),
            Some(GroupError::UnknownMemberId),
        ),
        (
            "no member id",
            req("", 0, Some(vec![T])),
            Some(GroupError::InvalidRequest),
        ),
        (
            "37 characters",
            req(&long, 0, Some(vec![T])),
            Some(GroupError::InvalidRequest),
        ),
        (
            "join without topics",
            req("a", 0, None),
            Some(GroupError::InvalidRequest),
        ),
        (
            "join with no topics",
            req("a", 0, Some(vec![])),
            Some(GroupError::InvalidRequest),
        ),
        ("36 characters", req(&max, 0, Some(vec![T])), None),
        ("join", req("a", 0, Some(vec![T])), None),
        (
            "group full",
            req("b", 0, Some(vec![T])),
            Some(GroupError::GroupMaxSizeReached),
        ),
        (
            "ahead of its epoch",
            req("a", 3, None),
            Some(GroupError::FencedMemberEpoch),
        ),
        (
            "behind its epoch",
            req("a", 1, None),
            Some(GroupError::FencedMemberEpoch),
        ),
        ("its epoch", req("a", 2, None), None),
        (
            "unknown member",
            req("ghost", 2, None),
            Some(GroupError::UnknownMemberId),
        ),
        (
            "unknown member leaving",
            req("ghost", -1, None),
            Some(GroupError::UnknownMemberId),
        ),
        ("leave", req("a", -1, None), None),
        (
            "after leaving",
            req("a", 2, None),
            Some(GroupError::UnknownMemberId),
        ),
    ];
    for (name, r, expected) in table {
        let resp = h.heartbeat(r);
        assert_eq!(resp.error, expected, "{name}: {resp:?}");
    }
    let (resp, _) = h.c.share_heartbeat(
        ShareHeartbeatRequest {
            member_id: "a".into(),
            subscribed_topic_names: Some(vec![T.into()]),
            ..ShareHeartbeatRequest::default()
        },
        &h.catalog,
        h.now,
    );
    assert_eq!(resp.error, Some(GroupError::InvalidGroupId));
}

#[test]
fn failed_join_leaves_no_group_behind() {
    let mut h = Harness::new();
    let r = h.join_topics("a", &[]);
    assert_eq!(r.error, Some(GroupError::InvalidRequest));
    assert_eq!(
        h.c.share_describe(G).err(),
        Some(GroupError::GroupIdNotFound)
    );
    assert!(h.records.is_empty());
}

#[test]
fn every_member_gets_every_partition_and_the_epoch_moves_on_membership_and_metadata_changes() {
    let mut h = Harness::new();
    h.topic(T, 2);
    h.topic("u", 3);
    let parts = |a: &Option<TopicPartitions>| -> Option<Vec<(String, Vec<i32>)>> {
        a.as_ref().map(|a| {
            let mut v: Vec<(String, Vec<i32>)> = a
                .iter()
                .map(|(id, ps)| {
                    let name = if *id == tid(T) { T } else { "u" };
                    let mut ps: Vec<i32> = ps.iter().copied().collect();
                    ps.sort_unstable();
                    (name.to_string(), ps)
                })
                .collect();
            v.sort();
            v
        })
    };
    let t2 = ("t".to_string(), vec![0, 1]);
    let r = h.join("a");
    assert_eq!((r.error, r.member_epoch), (None, 1));
    assert_eq!(parts(&r.assignment), Some(vec![t2.clone()]));
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    let r = h.join_topics("b", &[T, "u"]);
    assert_eq!(r.member_epoch, 2, "a join moves the epoch");
    assert_eq!(
        parts(&r.assignment),
        Some(vec![t2.clone(), ("u".to_string(), vec![0, 1, 2])])
    );
    // a catches up with the new epoch; its assignment is sent again with it, then not.
    let r = h.beat("a");
    assert_eq!(
        (r.member_epoch, parts(&r.assignment)),
        (2, Some(vec![t2.clone()]))
    );
    let r = h.beat("a");
    assert_eq!((r.member_epoch, r.assignment), (2, None));
    // A subscription change.
    let r = h.heartbeat(ShareHeartbeatRequest {
        group_id: G.into(),
        member_id: "a".into(),
        member_epoch: 2,
        subscribed_topic_names: Some(vec!["u".into()]),
        ..ShareHeartbeatRequest::default()
    });
    assert_eq!(r.member_epoch, 3);
    assert_eq!(
        parts(&r.assignment),
        Some(vec![("u".to_string(), vec![0, 1, 2])])
    );
    // New partitions of a subscribed topic.
    h.topic("u", 4);
    let r = h.beat("b");
    assert_eq!(r.member_epoch, 4);
    assert_eq!(
        parts(&r.assignment),
        Some(vec![t2, ("u".to_string(), vec![0, 1, 2, 3])])
    );
    // A leave.
    h.leave("b");
    let r = h.beat("a");
    assert!(r.member_epoch >= 5, "{r:?}");
    let epoch = r.member_epoch;
    assert_eq!(h.c.share_describe(G).unwrap().group_epoch, epoch);
    // A topic that does not exist yet is assigned once it does.
    let r = h.join_topics("c", &["later"]);
    assert_eq!(parts(&r.assignment), Some(vec![]));
    h.topic("later", 1);
    let r = h.beat("c");
    assert_eq!(r.member_epoch, epoch + 2);
    assert_eq!(r.assignment.unwrap().get(&tid("later")).unwrap().len(), 1);
    // The group epoch survives a restart; members rejoin.
    h.restart();
    assert_eq!(h.c.share_describe(G).unwrap().group_epoch, epoch + 2);
    assert_eq!(h.beat("a").error, Some(GroupError::UnknownMemberId));
    let r = h.join("a");
    assert_eq!(r.member_epoch, epoch + 3);
}

// ----- persistence --------------------------------------------------------------------------

#[test]
fn restart_replay_redelivers_acquired_but_not_acknowledged() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.join("a");
    h.produce(0, 7);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..7));
    // 0-1 accepted, 2 rejected, 3 released, 5 accepted; 4 and 6 still ACQUIRED.
    assert_eq!(
        h.ack(
            "a",
            vec![acks(
                0,
                &[
                    (0, 3, &[Accept, Accept, Reject, Release]),
                    (5, 5, &[Accept])
                ]
            )]
        ),
        vec![None]
    );
    h.restart();
    // Soft state is gone.
    assert_eq!(h.beat("a").error, Some(GroupError::UnknownMemberId));
    assert_eq!(
        h.request("a", 3, Vec::new(), false).err(),
        Some(GroupError::ShareSessionNotFound)
    );
    let d = h.partition(0);
    assert_eq!((d.start_offset, d.counts.acquired), (3, 0));
    h.join("a");
    h.open("a");
    let got = h.poll("a");
    let offsets: Vec<i64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        vec![3, 4, 6],
        "finished records never come back: {got:?}"
    );
    assert_eq!(
        got[0],
        (3, 2),
        "the released record keeps its delivery count"
    );
    assert_eq!(
        h.ack("a", vec![acks(0, &[(3, 4, &[Accept]), (6, 6, &[Accept])])]),
        vec![None]
    );
    assert_eq!(h.partition(0).start_offset, 7);
    h.assert_persisted_state_is_what_the_records_say();
    h.restart();
    h.open("b");
    assert_eq!(h.poll("b"), vec![]);
    assert_eq!(h.partition(0).start_offset, 7);
}

#[test]
fn acquired_record_is_persisted_as_available_with_the_delivery_count_before_this_delivery() {
    // On the share-partition: acquiring changes nothing persisted.
    let mut sp = SharePartition::new(0);
    let before = sp.snapshot();
    sp.acquire(&Arc::from("a"), 0, 3, 10, 100, 1_000, 0, 0);
    assert_eq!(sp.snapshot(), before, "an acquisition is not persisted");
    // At the coordinator: persisted_state() is what the records say after an acquire.
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 3);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..3));
    h.assert_persisted_state_is_what_the_records_say();
    // A snapshot written while 1 and 2 are in flight (accepting 0) records them as never
    // delivered, so after a restart their first delivery is delivery 1 again.
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 0, &[Accept])])]), vec![None]);
    h.assert_persisted_state_is_what_the_records_say();
    h.restart();
    h.open("b");
    assert_eq!(h.poll("b"), first_delivery(1..3));
}

#[test]
fn failed_share_fetch_for_an_unknown_group_leaves_no_group_behind() {
    let mut h = Harness::new();
    assert_eq!(
        h.request("a", 5, Vec::new(), false).err(),
        Some(GroupError::ShareSessionNotFound)
    );
    assert_eq!(
        h.request("a", -1, Vec::new(), true).err(),
        Some(GroupError::ShareSessionNotFound)
    );
    assert!(h.records.is_empty());
    assert_eq!(
        h.c.share_describe(G).err(),
        Some(GroupError::GroupIdNotFound)
    );
    h.assert_persisted_state_is_what_the_records_say();
}

#[test]
fn snapshots_round_trip_through_recovery() {
    let snapshot = ShareSnapshot {
        state_epoch: 3,
        start_offset: 10,
        state_batches: vec![
            StateBatch {
                first_offset: 8, // below the start offset: ignored
                last_offset: 9,
                delivery_state: RecordState::Acknowledged,
                delivery_count: 1,
            },
            StateBatch {
                first_offset: 10,
                last_offset: 11,
                delivery_state: RecordState::Available,
                delivery_count: 2,
            },
            StateBatch {
                first_offset: 13,
                last_offset: 13,
                delivery_state: RecordState::Archived,
                delivery_count: 1,
            },
            StateBatch {
                first_offset: 14,
                last_offset: 15,
                delivery_state: RecordState::Acknowledged,
                delivery_count: 3,
            },
        ],
    };
    let sp = SharePartition::from_snapshot(&snapshot);
    assert_eq!(
        (sp.start_offset(), sp.end_offset(), sp.state_epoch()),
        (10, 16, 3)
    );
    assert_eq!(sp.record(10), (RecordState::Available, 2));
    assert_eq!(
        sp.record(12),
        (RecordState::Available, 0),
        "a hole: never delivered"
    );
    assert_eq!(sp.record(13), (RecordState::Archived, 1));
    let mut expected = snapshot.clone();
    expected.state_batches.remove(0);
    assert_eq!(sp.snapshot(), expected);
    assert_eq!(
        SharePartition::from_snapshot(&sp.snapshot()).snapshot(),
        expected
    );
    // A snapshot whose first records are finished starts after them.
    let sp = SharePartition::from_snapshot(&ShareSnapshot {
        state_epoch: 0,
        start_offset: 0,
        state_batches: vec![StateBatch {
            first_offset: 0,
            last_offset: 4,
            delivery_state: RecordState::Archived,
            delivery_count: 5,
        }],
    });
    assert_eq!((sp.start_offset(), sp.end_offset()), (5, 5));
}

// ----- group configs ------------------------------------------------------------------------

#[test]
fn group_configs_are_validated_before_anything_changes() {
    let table: [(&str, &str, bool); 26] = [
        ("share.auto.offset.reset", "latest", true),
        ("share.auto.offset.reset", "earliest", true),
        ("share.auto.offset.reset", "by_duration:PT1H", true),
        ("share.auto.offset.reset", "by_duration:P1DT2H30M", true),
        ("share.auto.offset.reset", "by_duration:PT0.5S", true),
        ("share.auto.offset.reset", "none", false),
        ("share.auto.offset.reset", "largest", false),
        ("share.auto.offset.reset", "", false),
        ("share.auto.offset.reset", "by_duration:", false),
        ("share.auto.offset.reset", "by_duration:1h", false),
        ("share.auto.offset.reset", "by_duration:-PT1H", false),
        ("share.auto.offset.reset", "by_duration:PT-1H", false),
        ("share.auto.offset.reset", "by_duration:PT", false),
        ("share.record.lock.duration.ms", "14999", false),
        ("share.record.lock.duration.ms", "15000", true),
        ("share.record.lock.duration.ms", "60000", true),
        ("share.record.lock.duration.ms", "60001", false),
        ("share.record.lock.duration.ms", "30s", false),
        ("share.delivery.count.limit", "1", false),
        ("share.delivery.count.limit", "2", true),
        ("share.delivery.count.limit", "10", true),
        ("share.delivery.count.limit", "11", false),
        ("share.session.timeout.ms", "45000", true),
        ("share.heartbeat.interval.ms", "5000", true),
        ("share.isolation.level.typo", "x", false),
        ("group.share.delivery.count.limit", "5", false),
    ];
    for (name, value, ok) in table {
        let mut h = Harness::new();
        h.set_configs(&[("share.delivery.count.limit", Some("4"))])
            .unwrap();
        let records = h.records.len();
        assert_eq!(
            validate_group_config(name, value, &h.config.share).is_ok(),
            ok,
            "{name}={value}"
        );
        // Together with a valid change: all or nothing.
        let r = h.set_configs(&[
            ("share.record.lock.duration.ms", Some("20000")),
            (name, Some(value)),
        ]);
        assert_eq!(r.is_ok(), ok, "{name}={value}: {r:?}");
        if ok {
            assert_eq!(
                h.c.group_configs(G).get(name).map(String::as_str),
                Some(value)
            );
            if name != "share.record.lock.duration.ms" {
                assert_eq!(h.c.share_settings(G).lock_ms, 20_000, "{name}={value}");
            }
        } else {
            assert_eq!(h.records.len(), records, "{name}={value}: nothing written");
            assert_eq!(
                h.c.group_configs(G),
                BTreeMap::from([("share.delivery.count.limit".into(), "4".into())]),
                "{name}={value}: nothing changed"
            );
        }
    }
}

#[test]
fn group_configs_validate_only_deletion_and_replay() {
    let mut h = Harness::new();
    let changes = vec![(
        "share.record.lock.duration.ms".to_string(),
        Some("15000".to_string()),
    )];
    let (r, out) = h.c.alter_group_configs(G, &changes, true);
    assert_eq!(r, Ok(()));
    assert!(out.records.is_empty(), "validate_only writes nothing");
    assert!(h.c.group_configs(G).is_empty());
    h.set_configs(&[
        ("share.record.lock.duration.ms", Some("15000")),
        ("share.auto.offset.reset", Some(" earliest ")),
    ])
    .unwrap();
    assert_eq!(
        h.c.group_configs(G)
            .get("share.auto.offset.reset")
            .map(String::as_str),
        Some("earliest"),
        "values are trimmed"
    );
    let d = h.c.share_settings(G);
    assert_eq!((d.lock_ms, d.offset_reset), (15_000, OffsetReset::Earliest));
    // The group need not exist to have configs, and they survive a restart.
    assert_eq!(
        h.c.share_describe(G).err(),
        Some(GroupError::GroupIdNotFound)
    );
    h.restart();
    assert_eq!(h.c.share_settings(G).lock_ms, 15_000);
    h.set_configs(&[("share.record.lock.duration.ms", None)])
        .unwrap();
    assert_eq!(
        h.c.share_settings(G).lock_ms,
        LOCK_MS,
        "deleted: the broker default"
    );
    h.set_configs(&[("share.auto.offset.reset", None)]).unwrap();
    assert!(h.c.group_configs(G).is_empty());
    assert!(matches!(
        h.records.last(),
        Some(Record::GroupConfig { configs: None, .. })
    ));
    h.restart();
    assert!(h.c.group_configs(G).is_empty());
    assert!(
        h.c.alter_group_configs("", &[], false).0.is_err(),
        "an empty group id is refused"
    );
}

#[test]
fn group_configs_override_lock_duration_and_delivery_count_limit_for_new_acquisitions() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.produce(0, 2);
    h.open("a");
    assert_eq!(h.poll_n("a", 1), vec![(0, 1)]);
    assert_eq!(h.lock_timer(0), Some(START + LOCK_MS));
    h.set_configs(&[
        ("share.record.lock.duration.ms", Some("15000")),
        ("share.delivery.count.limit", Some("2")),
        ("share.heartbeat.interval.ms", Some("6000")),
    ])
    .unwrap();
    h.advance(START + 1);
    assert_eq!(h.poll_n("a", 1), vec![(1, 1)]);
    // The earliest lock is now the new record's.
    assert_eq!(h.lock_timer(0), Some(START + 1 + 15_000));
    assert_eq!(h.join("m").heartbeat_interval_ms, 6_000);
    h.advance(START + LOCK_MS);
    assert_eq!(h.poll("a"), vec![(0, 2), (1, 2)]);
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 1, &[Release])])]), vec![None]);
    assert_eq!(h.archived.len(), 2, "the limit of 2 archives both");
    assert_eq!(h.partition(0).start_offset, 2);
}

#[test]
fn share_session_timeout_and_heartbeat_interval_outside_kafkas_bounds_are_invalid_config() {
    let cfg = CoordinatorConfig::default().share;
    for (name, value) in [
        ("share.session.timeout.ms", "1"),
        ("share.session.timeout.ms", "44999"),
        ("share.session.timeout.ms", "60001"),
        ("share.heartbeat.interval.ms", "1"),
        ("share.heartbeat.interval.ms", "4999"),
        ("share.heartbeat.interval.ms", "15001"),
    ] {
        assert!(
            validate_group_config(name, value, &cfg).is_err(),
            "{name}={value} is INVALID_CONFIG in Kafka"
        );
    }
}

#[test]
fn offset_reset_parses_kafkas_forms() {
    let table: [(&str, Option<OffsetReset>); 10] = [
        ("latest", Some(OffsetReset::Latest)),
        ("earliest", Some(OffsetReset::Earliest)),
        ("by_duration:PT0S", Some(OffsetReset::ByDuration(0))),
        ("by_duration:PT1.5S", Some(OffsetReset::ByDuration(1_500))),
        ("by_duration:PT2M", Some(OffsetReset::ByDuration(120_000))),
        (
            "by_duration:P2D",
            Some(OffsetReset::ByDuration(172_800_000)),
        ),
        (
            "by_duration:P1DT1H1M1S",
            Some(OffsetReset::ByDuration(90_061_000)),
        ),
        ("by_duration:P", None),
        ("by_duration:PT1X", None),
        ("by_duration:PT1", None),
    ];
    for (s, expected) in table {
        assert_eq!(OffsetReset::parse(s), expected, "{s}");
    }
}

// ----- share-partition offsets and deletion -------------------------------------------------

#[test]
fn alter_share_offsets_requires_an_empty_group_and_restarts_the_window_there() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    assert_eq!(
        h.c.alter_share_offsets(G, &[(key(0), 2)]).0,
        Err(GroupError::GroupIdNotFound)
    );
    h.join("a");
    h.produce(0, 5);
    h.open("a");
    assert_eq!(h.poll_n("a", 3), first_delivery(0..3));
    let (r, out) = h.c.alter_share_offsets(G, &[(key(0), 2)]);
    assert_eq!(r, Err(GroupError::NonEmptyGroup));
    assert!(out.records.is_empty());
    h.leave("a");
    let (r, out) = h.c.alter_share_offsets(G, &[(key(0), 2)]);
    h.absorb(out);
    assert_eq!(r, Ok(()));
    assert_eq!(h.c.share_offsets(G, None).unwrap(), vec![(key(0), Some(2))]);
    let d = h.partition(0);
    assert_eq!((d.start_offset, d.end_offset, d.state_epoch), (2, 2, 1));
    // The old window is gone: a's acks below the new start are skipped, others refused.
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 1, &[Accept])])]), vec![None]);
    assert_eq!(
        h.ack("a", vec![acks(0, &[(2, 2, &[Accept])])]),
        vec![Some(GroupError::InvalidRequest)]
    );
    h.open("b");
    assert_eq!(h.poll("b"), first_delivery(2..5));
    h.restart();
    let d = h.partition(0);
    assert_eq!((d.start_offset, d.state_epoch), (2, 1));
}

#[test]
fn delete_share_offsets_makes_the_partition_start_again_by_auto_offset_reset() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.join("a");
    h.produce(0, 3);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..3));
    assert_eq!(h.ack("a", vec![acks(0, &[(0, 2, &[Accept])])]), vec![None]);
    assert_eq!(
        h.c.delete_share_offsets(G, &[key(0)]).0,
        Err(GroupError::NonEmptyGroup)
    );
    h.leave("a");
    let (r, out) = h.c.delete_share_offsets(G, &[key(0), key(7)]);
    h.absorb(out);
    assert_eq!(r, Ok(()));
    assert_eq!(
        h.c.share_offsets(G, Some(&[key(0)])).unwrap(),
        vec![(key(0), None)]
    );
    assert_eq!(
        h.fetch("a", Vec::new()).unwrap().partitions,
        vec![(key(0), FetchStart::Initialize(OffsetReset::Earliest))]
    );
    h.assert_persisted_state_is_what_the_records_say();
    h.restart();
    assert_eq!(h.c.share_offsets(G, None).unwrap(), vec![]);
    h.open("a");
    assert_eq!(
        h.poll("a"),
        first_delivery(0..3),
        "started again from earliest"
    );
}

#[test]
fn deleting_an_empty_share_group_tombstones_it_and_replay_forgets_it() {
    let mut h = Harness::new();
    h.set_configs(&[("share.auto.offset.reset", Some("earliest"))])
        .unwrap();
    h.join("a");
    h.produce(0, 2);
    h.open("a");
    h.poll("a");
    assert_eq!(
        h.c.delete_group(G, h.now).err(),
        Some(GroupError::NonEmptyGroup)
    );
    h.leave("a");
    let out = h.c.delete_group(G, h.now).unwrap();
    h.absorb(out);
    assert_eq!(
        h.c.share_describe(G).err(),
        Some(GroupError::GroupIdNotFound)
    );
    assert!(h.c.persisted_state().share_groups.is_empty());
    h.assert_persisted_state_is_what_the_records_say();
    h.restart();
    assert_eq!(
        h.c.share_describe(G).err(),
        Some(GroupError::GroupIdNotFound)
    );
    // The group configs are not the group's records: they stay.
    assert_eq!(h.c.share_settings(G).offset_reset, OffsetReset::Earliest);
}

// ----- dead-letter topics (KIP-1191) --------------------------------------------------------

#[test]
fn with_a_dead_letter_topic_rejected_and_exhausted_records_wait_in_archiving_until_durable() {
    let mut h = Harness::new();
    h.set_configs(&[
        ("share.auto.offset.reset", Some("earliest")),
        ("share.delivery.count.limit", Some("2")),
        ("errors.deadletterqueue.topic.name", Some("dlq")),
    ])
    .unwrap();
    h.produce(0, 3);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..3));
    // 0 rejected, 1 a gap (no record to dead-letter), 2 released for a second delivery.
    assert_eq!(
        h.ack("a", vec![acks(0, &[(0, 2, &[Reject, Gap, Release])])]),
        vec![None]
    );
    assert_eq!(h.poll("a"), vec![(2, 2)]);
    assert_eq!(h.ack("a", vec![acks(0, &[(2, 2, &[Release])])]), vec![None]);
    let reports: Vec<(i64, ArchiveReason, bool)> = h
        .archived
        .iter()
        .map(|(_, r)| (r.offset, r.reason, r.dead_letter))
        .collect();
    assert_eq!(
        reports,
        vec![
            (0, ArchiveReason::Rejected, true),
            (1, ArchiveReason::Gap, false),
            (2, ArchiveReason::DeliveryCountLimit, true),
        ]
    );
    // ARCHIVING holds the SPSO back and is neither acquirable nor acknowledgeable.
    let d = h.partition(0);
    assert_eq!(
        (d.start_offset, d.counts.archiving, d.counts.archived),
        (0, 2, 1)
    );
    assert_eq!(h.poll("a"), vec![]);
    assert_eq!(
        h.ack("a", vec![acks(0, &[(0, 0, &[Accept])])]),
        vec![Some(GroupError::InvalidRecordState)]
    );
    // The DLQ record of 0 is durable: 0 is ARCHIVED, 2 still waits.
    let out = h.c.share_dead_lettered(G, &key(0), &[0, 7]);
    assert!(!out.records.is_empty(), "the change is written");
    h.absorb(out);
    let d = h.partition(0);
    assert_eq!((d.start_offset, d.counts.archiving), (2, 1));
    // Reporting it twice changes nothing and writes nothing.
    assert!(h.c.share_dead_lettered(G, &key(0), &[0]).records.is_empty());
    h.assert_persisted_state_is_what_the_records_say();
}

#[test]
fn archiving_records_are_dead_lettered_again_after_a_restart() {
    let mut h = Harness::new();
    h.set_configs(&[
        ("share.auto.offset.reset", Some("earliest")),
        ("errors.deadletterqueue.topic.name", Some("dlq")),
    ])
    .unwrap();
    h.produce(0, 2);
    h.open("a");
    assert_eq!(h.poll("a"), first_delivery(0..2));
    assert_eq!(
        h.ack("a", vec![acks(0, &[(0, 1, &[Reject, Accept])])]),
        vec![None]
    );
    h.archived.clear();
    h.restart();
    // The broker is asked again to write the DLQ record it may have lost.
    assert_eq!(
        h.archived,
        vec![(
            0,
            ArchivedRecord {
                offset: 0,
                delivery_count: 1,
                reason: ArchiveReason::Recovered,
                dead_letter: true,
            }
        )]
    );
    assert_eq!(h.partition(0).counts.archiving, 1);
    let out = h.c.share_dead_lettered(G, &key(0), &[0]);
    h.absorb(out);
    assert_eq!(h.partition(0).start_offset, 2);
    h.archived.clear();
    h.restart();
    assert!(h.archived.is_empty(), "nothing left to dead-letter");
}

#[test]
fn acquisition_finishes_the_stored_batch_it_started_like_kafka() {
    let a: Arc<str> = Arc::from("a");
    // Batches [0, 3) and [3, 10): MaxRecords 2 stops inside the first, which is finished.
    let mut sp = SharePartition::new(0);
    let got = sp.acquire_batches(&a, 0, 10, &[3, 10], 2, 100, 1_000, 0, 0);
    assert_eq!(
        got.iter()
            .map(|r| (r.first_offset, r.last_offset))
            .collect::<Vec<_>>(),
        vec![(0, 2)]
    );
    let got = sp.acquire_batches(&a, 3, 10, &[3, 10], 1, 100, 1_000, 0, 0);
    assert_eq!(
        got.iter()
            .map(|r| (r.first_offset, r.last_offset))
            .collect::<Vec<_>>(),
        vec![(3, 9)]
    );
    // The window limit is soft the same way: a batch begun is acquired to its end.
    let mut sp = SharePartition::new(0);
    let got = sp.acquire_batches(&a, 0, 10, &[10], 500, 4, 1_000, 0, 0);
    assert_eq!(
        got.iter()
            .map(|r| (r.first_offset, r.last_offset))
            .collect::<Vec<_>>(),
        vec![(0, 9)]
    );
    // ... and once the window is past the limit, nothing new is acquired.
    assert_eq!(sp.next_fetch_offset(0, 4), None);
    // Without batch boundaries the limits are exact.
    let mut sp = SharePartition::new(0);
    let got = sp.acquire_batches(&a, 0, 10, &[], 2, 100, 1_000, 0, 0);
    assert_eq!(
        got.iter()
            .map(|r| (r.first_offset, r.last_offset))
            .collect::<Vec<_>>(),
        vec![(0, 1)]
    );
}
