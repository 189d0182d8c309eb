//! The group coordinator for every group on this broker, after Kafka's
//! `GroupMetadataManager` + `OffsetMetadataManager`: it dispatches each request to the group
//! it names (a [`ClassicGroup`] or a [`ConsumerGroup`]) and to the offsets, converts groups
//! between the protocols (`migration`), and owns the one [`GroupCoordinator::replay`] that
//! recovery runs on every `__consumer_offsets` record.
//!
//! Every call takes `now_ms` and returns an [`Output`] (replies, records, timers, events);
//! the caller appends the records and delivers the replies once they are durable. Offsets
//! and consumer groups change only through their records (applied by the same replay, live);
//! classic groups keep Kafka's model for them (see [`crate::classic`]).
//! [`GroupCoordinator::persisted_state`] is what the records say, for checking exactly that.

use std::collections::BTreeMap;

use crate::api::{
    CommitRequest, ConsumerGroupDescription, GroupDescription, GroupListing, HeartbeatRequest,
    HeartbeatResponse, JoinRequest, JoinResponse, SyncRequest, SyncResponse, TopicCatalog,
};
use crate::assignor::{TopicMetadata, TopicPartitions};
use crate::classic::{ClassicCtx, ClassicGroup};
use crate::config::{CoordinatorConfig, MigrationPolicy};
use crate::consumer::{ConsumerGroup, ConsumerGroupSnapshot};
use crate::error::GroupError;
use crate::migration;
use crate::offsets::{OffsetList, Offsets};
use crate::records::{ConsumerRecord, GroupMetadataValue, OffsetAndMetadata, Record};
use crate::state::GroupState;
use crate::types::{GroupEvent, Output, Reply, RequestId, TimerKey};

/// A group: Kafka's `Group`, either protocol.
mod classic_requests;
mod consumer_requests;
mod describe;
mod offset_requests;
mod share_requests;
mod txn_offsets;

#[derive(Debug)]
pub(crate) enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
    Share(crate::share::ShareGroup),
}

impl Group {
    fn is_empty(&self) -> bool {
        match self {
            Group::Classic(g) => g.is(GroupState::Empty),
            Group::Consumer(c) => c.is_empty(),
            Group::Share(s) => s.is_empty(),
        }
    }

    fn state_timestamp_ms(&self) -> i64 {
        match self {
            Group::Classic(g) => g.state_timestamp_ms,
            Group::Consumer(c) => c.state_timestamp_ms,
            Group::Share(s) => s.state_timestamp_ms,
        }
    }
}

/// What `__consumer_offsets` holds, group by group: the state a coordinator rebuilt from the
/// records alone would have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersistedState {
    /// Committed offsets per group and `(topic, partition)`.
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetAndMetadata>>,
    /// Each consumer group's records 3-8.
    pub consumer_groups: BTreeMap<String, ConsumerGroupSnapshot>,
    /// Each classic group's last written `GroupMetadata` value.
    pub classic_groups: BTreeMap<String, GroupMetadataValue>,
    /// Each share group's epoch and share-partition snapshots.
    pub share_groups: BTreeMap<String, ShareGroupSnapshot>,
    /// Group configs (resource type GROUP).
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// What the records say of a share group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupSnapshot {
    pub group_epoch: i32,
    pub partitions: BTreeMap<(String, i32), crate::share::ShareSnapshot>,
}

/// The catalog of a caller that has none (classic-only paths).
struct NoTopics;

impl TopicCatalog for NoTopics {
    fn topic(&self, _: &str) -> Option<TopicMetadata> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The group coordinator (see the module docs).
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    offsets: Offsets,
    /// Configs set on groups (IncrementalAlterConfigs, resource type GROUP), by group id;
    /// a group need not exist to have configs (as in Kafka).
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Makes member ids unique across broker restarts (the caller supplies it at start).
    incarnation: u64,
    next_id: u64,
    /// Offsets committed in open transactions (TxnOffsetCommit), by producer id: written to
    /// `__consumer_offsets` as transactional records, applied when the transaction's COMMIT
    /// marker is, dropped with its ABORT (KIP-98).
    pending_txn_offsets: std::collections::HashMap<i64, Vec<Record>>,
}

/// Notes a refused state transition (a bug, never a panic) for the operator's log.
fn refused(group_id: &str, e: GroupError, out: &mut Output) {
    out.events.push(GroupEvent::Refused {
        group_id: group_id.to_string(),
        error: e,
    });
}

/// Answers `req_id` with `e` unless the call already answered it.
fn answer_join_if_unanswered(req_id: RequestId, member_id: &str, e: GroupError, out: &mut Output) {
    if !out.replies.iter().any(|(id, _)| *id == req_id) {
        out.replies
            .push((req_id, Reply::Join(JoinResponse::error(e, member_id))));
    }
}

impl GroupCoordinator {
    /// A coordinator with no groups. `incarnation` should differ between broker starts (e.g.
    /// random) so generated member ids never repeat.
    pub fn new(config: CoordinatorConfig, incarnation: u64) -> Self {
        Self {
            config,
            groups: BTreeMap::new(),
            offsets: Offsets::default(),
            group_configs: BTreeMap::new(),
            incarnation,
            next_id: 0,
            pending_txn_offsets: std::collections::HashMap::new(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        member_id_from(self.incarnation, self.next_id, prefix)
    }

    // ----- replay --------------------------------------------------------------------------

    /// Applies a `__consumer_offsets` record: at recovery every record in log order (then
    /// [`GroupCoordinator::start`]); live, the handlers apply offset and consumer-group
    /// records through the same code as they emit them.
    pub fn replay(&mut self, record: &Record, now_ms: i64) {
        match record {
            Record::OffsetCommit {
                group_id,
                topic,
                partition,
                value,
            } => {
                if value.is_some() && !self.groups.contains_key(group_id) {
                    // Offsets of a group that is not there: an empty classic group (Kafka's
                    // simple consumer group).
                    self.groups.insert(
                        group_id.clone(),
                        Group::Classic(ClassicGroup::new(group_id, now_ms)),
                    );
                }
                self.offsets
                    .replay(group_id, topic, *partition, value.as_ref());
            }
            Record::GroupMetadata { group_id, value } => match value {
                Some(v) => {
                    self.groups.insert(
                        group_id.clone(),
                        Group::Classic(ClassicGroup::from_record(group_id, v, now_ms)),
                    );
                }
                None => {
                    self.groups.remove(group_id);
                }
            },
            Record::Consumer(c) => self.replay_consumer(c, now_ms),
            Record::Share(r) => self.replay_share(r, now_ms),
            Record::GroupConfig { group_id, configs } => match configs {
                Some(c) => {
                    self.group_configs.insert(group_id.clone(), c.clone());
                }
                None => {
                    self.group_configs.remove(group_id);
                }
            },
        }
    }

    fn replay_consumer(&mut self, c: &ConsumerRecord, now_ms: i64) {
        let group_id = c.group_id();
        if matches!(c, ConsumerRecord::GroupEpoch { epoch: None, .. }) {
            // The consumer group became a classic group (a deleted group's GroupMetadata
            // tombstone follows and removes it): an empty classic group, with its offsets.
            if matches!(self.groups.get(group_id), Some(Group::Consumer(_))) {
                self.groups.insert(
                    group_id.to_string(),
                    Group::Classic(ClassicGroup::new(group_id, now_ms)),
                );
            }
            return;
        }
        match self.groups.get_mut(group_id) {
            Some(Group::Consumer(g)) => g.replay(c),
            _ if c.is_tombstone() => {} // never create a group from a tombstone
            _ => {
                // A new consumer group, or an empty classic group that became one.
                let mut g = ConsumerGroup::new(now_ms);
                g.replay(c);
                self.groups.insert(group_id.to_string(), Group::Consumer(g));
            }
        }
    }

    /// After recovery: arms the session timers of restored members, which must heartbeat
    /// within their session timeout or be removed (as Kafka does after a coordinator
    /// failover).
    pub fn start(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        for (id, g) in self.groups.iter_mut() {
            match g {
                Group::Consumer(c) => c.finish_replay(id, &self.config.consumer, now_ms, &mut out),
                Group::Share(_) => {}
                Group::Classic(g) => {
                    for m in g.members.values() {
                        out.set_timer(
                            crate::classic::session_key(id, &m.member_id),
                            now_ms + i64::from(m.session_timeout_ms),
                        );
                    }
                }
            }
        }
        self.share_start(&mut out);
        out
    }

    /// What the records written so far say (see [`PersistedState`]).
    pub fn persisted_state(&self) -> PersistedState {
        let mut s = PersistedState {
            offsets: self.offsets.snapshot(),
            group_configs: self.group_configs.clone(),
            ..PersistedState::default()
        };
        for (id, g) in &self.groups {
            match g {
                Group::Consumer(c) => {
                    s.consumer_groups.insert(id.clone(), c.snapshot());
                }
                Group::Classic(g) => {
                    if let Some(v) = &g.last_written {
                        s.classic_groups.insert(id.clone(), v.clone());
                    }
                }
                // A share group a ShareFetch created in memory, with nothing written yet.
                Group::Share(g) if g.group_epoch() == 0 && g.partitions().next().is_none() => {}
                Group::Share(g) => {
                    let parts = g
                        .partitions()
                        .map(|(k, sp)| (k.clone(), sp.snapshot()))
                        .collect();
                    s.share_groups.insert(
                        id.clone(),
                        ShareGroupSnapshot {
                            group_epoch: g.group_epoch(),
                            partitions: parts,
                        },
                    );
                }
            }
        }
        s
    }

    /// After a member left a consumer group: converts it back to a classic group if only
    /// classic members remain and the migration policy allows.
    pub(crate) fn maybe_downgrade(
        &mut self,
        group_id: &str,
        now_ms: i64,
        has_offsets: bool,
        out: &mut Output,
    ) {
        let Some(Group::Consumer(c)) = self.groups.get_mut(group_id) else {
            return;
        };
        match migration::maybe_downgrade(group_id, c, &self.config, now_ms, has_offsets, out) {
            Ok(Some(classic)) => {
                self.groups
                    .insert(group_id.to_string(), Group::Classic(classic));
            }
            Ok(None) => {}
            Err(e) => refused(group_id, e, out),
        }
    }

    /// A member's connection closed without LeaveGroup (Shoal's
    /// `group.connection.close.session.timeout.ms`): its session now ends at `deadline_ms`
    /// unless it heartbeats again first (a client that reconnects keeps its membership). A
    /// classic member parked in JoinGroup or SyncGroup counts as alive, as for any session
    /// timeout, and is governed by the rebalance timeout.
    pub fn shorten_session(&mut self, group_id: &str, member_id: &str, deadline_ms: i64) -> Output {
        let mut out = Output::default();
        match self.groups.get(group_id) {
            Some(Group::Classic(g))
                if g.members.contains_key(member_id) || g.pending_members.contains(member_id) =>
            {
                out.set_timer(
                    crate::classic::session_key(group_id, member_id),
                    deadline_ms,
                );
            }
            Some(Group::Consumer(c)) if c.has_member(member_id) => {
                out.set_timer(
                    crate::consumer::session_timer_key(group_id, member_id),
                    deadline_ms,
                );
            }
            _ => {}
        }
        out
    }

    // ----- timers --------------------------------------------------------------------------

    /// Fires a timer the caller scheduled from an earlier [`Output`].
    pub fn on_timer(&mut self, key: &TimerKey, now_ms: i64) -> Output {
        let mut out = Output::default();
        let group_id = match key {
            TimerKey::Session { group_id, .. }
            | TimerKey::Join { group_id }
            | TimerKey::Sync { group_id, .. }
            | TimerKey::ConsumerSession { group_id, .. }
            | TimerKey::ConsumerRebalance { group_id, .. }
            | TimerKey::ShareSession { group_id, .. }
            | TimerKey::ShareLock { group_id, .. } => group_id.clone(),
        };
        let eff = self.share_settings(&group_id);
        let has_offsets = self.offsets.has_offsets(&group_id);
        match (key, self.groups.get_mut(&group_id)) {
            (TimerKey::ShareSession { member_id, .. }, Some(Group::Share(g))) => {
                g.on_session_timer(&group_id, member_id, now_ms, &mut out);
            }
            (
                TimerKey::ShareLock {
                    topic, partition, ..
                },
                Some(Group::Share(g)),
            ) => {
                g.on_lock_timer(
                    &group_id,
                    &(topic.clone(), *partition),
                    &eff,
                    now_ms,
                    &mut out,
                );
            }
            (
                TimerKey::ConsumerSession { member_id, .. }
                | TimerKey::ConsumerRebalance { member_id, .. },
                Some(Group::Consumer(c)),
            ) => {
                let revocation = matches!(key, TimerKey::ConsumerRebalance { .. });
                if c.on_timer(
                    &group_id,
                    member_id,
                    revocation,
                    &self.config.consumer,
                    &mut out,
                ) && c.is_empty()
                {
                    c.state_timestamp_ms = now_ms;
                }
                c.track_rebalance(&group_id, now_ms, &mut out);
                self.maybe_downgrade(&group_id, now_ms, has_offsets, &mut out);
            }
            (_, Some(Group::Classic(g))) => {
                let mut cx = ClassicCtx {
                    config: &self.config,
                    now_ms,
                    out: &mut out,
                    has_offsets,
                };
                let result = match key {
                    TimerKey::Session { member_id, .. } => g.on_session_timer(&mut cx, member_id),
                    TimerKey::Join { .. } => g.on_join_timer(&mut cx),
                    TimerKey::Sync { generation_id, .. } => {
                        g.on_sync_timer(&mut cx, *generation_id)
                    }
                    _ => Ok(()),
                };
                if let Err(e) = result {
                    refused(&group_id, e, &mut out);
                }
            }
            _ => {}
        }
        out
    }
}

/// A member id: `{prefix}-` and a UUID-shaped value from the coordinator's incarnation and a
/// counter (unique across restarts).
fn member_id_from(incarnation: u64, n: u64, prefix: &str) -> String {
    format!(
        "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (incarnation >> 32) as u32,
        (incarnation >> 16) as u16,
        incarnation as u16,
        (n >> 48) as u16,
        n & 0xffff_ffff_ffff
    )
}
