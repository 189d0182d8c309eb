//! Share groups (KIP-932) at the coordinator: ShareGroupHeartbeat, the two steps of a
//! ShareFetch, ShareAcknowledge, connection loss, ShareGroupDescribe, group configs
//! (DescribeConfigs/IncrementalAlterConfigs on resource type GROUP) and share-partition
//! offsets (Describe/Alter/DeleteShareGroupOffsets).
use std::collections::BTreeMap;

use super::*;
use crate::api::{
    FetchStart, PartitionRead, ShareFetchOpen, ShareFetchPlan, ShareGroupDescription,
    ShareHeartbeatRequest, ShareHeartbeatResponse, SharePartitionKey,
};
use crate::records::ShareRecord;
use crate::share::{validate_group_config, AcquiredRange, Effective, ShareGroup, SharePartition};

/// The tombstone of a share-partition's state.
fn partition_tombstone(group_id: &str, key: &SharePartitionKey) -> Record {
    Record::Share(ShareRecord::PartitionState {
        group_id: group_id.to_string(),
        topic: key.0.clone(),
        partition: key.1,
        value: None,
    })
}

impl GroupCoordinator {
    /// The share-group settings in force for `group_id` (broker defaults and its configs).
    pub fn share_settings(&self, group_id: &str) -> Effective {
        Effective::of(&self.config.share, self.group_configs.get(group_id))
    }

    fn share_group_mut(&mut self, group_id: &str) -> Option<&mut ShareGroup> {
        match self.groups.get_mut(group_id) {
            Some(Group::Share(g)) => Some(g),
            _ => None,
        }
    }

    /// Handles ShareGroupHeartbeat (see [`crate::share`]). A join creates the group (an
    /// empty classic group without offsets is replaced). Errors (in the response):
    /// INVALID_GROUP_ID, GROUP_ID_NOT_FOUND (the id names a group of another type, as
    /// Kafka), and those of the group's heartbeat.
    pub fn share_heartbeat(
        &mut self,
        req: ShareHeartbeatRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> (ShareHeartbeatResponse, Output) {
        let mut out = Output::default();
        if req.group_id.is_empty() {
            return (
                ShareHeartbeatResponse::error(GroupError::InvalidGroupId, "GroupId can't be empty"),
                out,
            );
        }
        let eff = self.share_settings(&req.group_id);
        let replaceable = match self.groups.get(&req.group_id) {
            None => true,
            Some(Group::Share(_)) => false,
            Some(Group::Classic(g)) => {
                g.is(GroupState::Empty) && !self.offsets.has_offsets(&req.group_id)
            }
            Some(Group::Consumer(_)) => false,
        };
        if replaceable {
            if req.member_epoch != 0 {
                let resp = ShareHeartbeatResponse::error(
                    GroupError::UnknownMemberId,
                    format!(
                        "share group {} has no member {}",
                        req.group_id, req.member_id
                    ),
                );
                return (resp, out);
            }
            self.groups
                .insert(req.group_id.clone(), Group::Share(ShareGroup::new(now_ms)));
        }
        let cfg = self.config.share.clone();
        let Some(g) = self.share_group_mut(&req.group_id) else {
            let resp = ShareHeartbeatResponse::error(
                GroupError::GroupIdNotFound,
                format!("group {} is not a share group", req.group_id),
            );
            return (resp, out);
        };
        let resp = g.heartbeat(&req, catalog, &cfg, &eff, now_ms, &mut out);
        if replaceable && out.records.is_empty() {
            // A failed join does not leave a group behind.
            self.groups.remove(&req.group_id);
        }
        (resp, out)
    }

    fn share_sessions_except(&self, group_id: &str) -> usize {
        self.groups
            .iter()
            .filter(|(id, _)| id.as_str() != group_id)
            .map(|(_, g)| match g {
                Group::Share(s) => s.sessions.len(),
                _ => 0,
            })
            .sum()
    }

    /// The first step of a ShareFetch, or all of a ShareAcknowledge: the share session and
    /// the acknowledgements; for a ShareFetch, where to read (see [`crate::share`]).
    /// Errors (top level): GROUP_ID_NOT_FOUND (the id names a group of another type), and the
    /// session's
    /// (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_LIMIT_REACHED,
    /// INVALID_REQUEST).
    pub fn share_fetch_open(
        &mut self,
        req: &ShareFetchOpen,
        now_ms: i64,
    ) -> (Result<ShareFetchPlan, GroupError>, Output) {
        let mut out = Output::default();
        let eff = self.share_settings(&req.group_id);
        let elsewhere = self.share_sessions_except(&req.group_id);
        let max = self.config.share.max_share_sessions;
        let created = !self.groups.contains_key(&req.group_id) && !req.group_id.is_empty();
        if created {
            // Kafka's ShareFetch does not check membership: a fetch may come before the
            // group is known here (after a restart that lost nothing persisted for it).
            self.groups
                .insert(req.group_id.clone(), Group::Share(ShareGroup::new(now_ms)));
        }
        let Some(g) = self.share_group_mut(&req.group_id) else {
            return (Err(GroupError::GroupIdNotFound), out);
        };
        let result =
            g.open(req, &eff, elsewhere, max, now_ms, &mut out)
                .map(|(ack_errors, partitions)| ShareFetchPlan {
                    ack_errors,
                    partitions,
                });
        if created && result.is_err() {
            // A refused request does not leave a group behind.
            self.groups.remove(&req.group_id);
        }
        (result, out)
    }

    /// Where to read next for `member_id`'s session (a long-polling ShareFetch looking
    /// again); empty if it has none.
    pub fn share_fetch_plan(
        &self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
    ) -> Vec<(SharePartitionKey, FetchStart)> {
        let eff = self.share_settings(group_id);
        match self.groups.get(group_id) {
            Some(Group::Share(g)) => g.plan(member_id, &eff, now_ms),
            _ => Vec::new(),
        }
    }

    /// The second step of a ShareFetch: acquires up to `max_records` records for
    /// `member_id` in what was read.
    pub fn share_acquire(
        &mut self,
        group_id: &str,
        member_id: &str,
        reads: &[PartitionRead],
        max_records: usize,
        now_ms: i64,
    ) -> (Vec<(SharePartitionKey, Vec<AcquiredRange>)>, Output) {
        self.share_acquire_locked(group_id, member_id, reads, max_records, None, now_ms)
    }

    /// [`GroupCoordinator::share_acquire`] with the acquisition lock lasting `lock_ms`
    /// (ms) instead of the group's `share.record.lock.duration.ms` when given: the AMQP
    /// front end holds a delivery until it is acknowledged or its channel closes, as
    /// RabbitMQ does (bounded by its `consumer_timeout`).
    pub fn share_acquire_locked(
        &mut self,
        group_id: &str,
        member_id: &str,
        reads: &[PartitionRead],
        max_records: usize,
        lock_ms: Option<i64>,
        now_ms: i64,
    ) -> (Vec<(SharePartitionKey, Vec<AcquiredRange>)>, Output) {
        let mut out = Output::default();
        let mut eff = self.share_settings(group_id);
        if let Some(ms) = lock_ms {
            eff.lock_ms = ms.max(1);
        }
        let acquired = match self.share_group_mut(group_id) {
            Some(g) => g.acquire(
                group_id,
                member_id,
                reads,
                max_records,
                &eff,
                now_ms,
                &mut out,
            ),
            None => Vec::new(),
        };
        (acquired, out)
    }

    /// A client connection closed: with `group.share.release.on.connection.close`, the
    /// share sessions it opened end and the records their members hold are released.
    pub fn share_connection_closed(&mut self, connection_id: u64, now_ms: i64) -> Output {
        let mut out = Output::default();
        if !self.config.share.release_on_connection_close {
            return out;
        }
        let ids: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| matches!(g, Group::Share(_)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let eff = self.share_settings(&id);
            if let Some(g) = self.share_group_mut(&id) {
                g.connection_closed(&id, connection_id, &eff, now_ms, &mut out);
            }
        }
        out
    }

    /// ShareGroupDescribe for one group. Errors: GROUP_ID_NOT_FOUND (unknown, or not a
    /// share group).
    pub fn share_describe(&self, group_id: &str) -> Result<ShareGroupDescription, GroupError> {
        match self.groups.get(group_id) {
            Some(Group::Share(g)) => Ok(g.describe(group_id, self.group_configs.get(group_id))),
            _ => Err(GroupError::GroupIdNotFound),
        }
    }

    /// Every share group's description (admin API, console, metrics).
    pub fn share_groups(&self) -> Vec<ShareGroupDescription> {
        self.groups
            .iter()
            .filter_map(|(id, g)| match g {
                Group::Share(g) => Some(g.describe(id, self.group_configs.get(id))),
                _ => None,
            })
            .collect()
    }

    // ----- group configs -------------------------------------------------------------------

    /// The configs set on `group_id` (DescribeConfigs on a GROUP resource).
    pub fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.group_configs
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// IncrementalAlterConfigs on a GROUP resource: `Some(v)` sets, `None` deletes (back to
    /// the default). Validates everything before changing anything; with `validate_only`
    /// nothing is written. Errors: a message for INVALID_CONFIG.
    pub fn alter_group_configs(
        &mut self,
        group_id: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> (Result<(), String>, Output) {
        let mut out = Output::default();
        if group_id.is_empty() {
            return (Err("group id can't be empty".to_string()), out);
        }
        for (k, v) in changes {
            if let Some(v) = v {
                if let Err(e) = validate_group_config(k, v, &self.config.share) {
                    return (Err(e), out);
                }
            }
        }
        let mut configs = self.group_configs(group_id);
        for (k, v) in changes {
            match v {
                Some(v) => configs.insert(k.clone(), v.trim().to_string()),
                None => configs.remove(k),
            };
        }
        // Kafka's GroupConfig: the session must outlast the heartbeat interval.
        let eff = Effective::of(&self.config.share, Some(&configs));
        if eff.session_timeout_ms <= eff.heartbeat_interval_ms {
            let e = format!(
                "share.session.timeout.ms ({}) must be greater than share.heartbeat.interval.ms ({})",
                eff.session_timeout_ms, eff.heartbeat_interval_ms
            );
            return (Err(e), out);
        }
        if validate_only {
            return (Ok(()), out);
        }
        let record = Record::GroupConfig {
            group_id: group_id.to_string(),
            configs: (!configs.is_empty()).then_some(configs),
        };
        self.replay(&record, 0);
        out.records.push(record);
        (Ok(()), out)
    }

    // ----- share-partition offsets ---------------------------------------------------------

    /// DescribeShareGroupOffsets: each share-partition's start offset (SPSO), `None` for a
    /// partition without state. Errors: GROUP_ID_NOT_FOUND.
    pub fn share_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[SharePartitionKey]>,
    ) -> Result<Vec<(SharePartitionKey, Option<i64>)>, GroupError> {
        let Some(Group::Share(g)) = self.groups.get(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        Ok(match partitions {
            Some(ps) => ps
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        g.partitions.get(k).map(SharePartition::start_offset),
                    )
                })
                .collect(),
            None => g
                .partitions
                .iter()
                .map(|(k, sp)| (k.clone(), Some(sp.start_offset())))
                .collect(),
        })
    }

    /// AlterShareGroupOffsets: sets each share-partition's start offset (the in-flight
    /// window is dropped, the state epoch bumped). Errors: GROUP_ID_NOT_FOUND,
    /// NON_EMPTY_GROUP (members are connected, as Kafka requires an empty group).
    pub fn alter_share_offsets(
        &mut self,
        group_id: &str,
        offsets: &[(SharePartitionKey, i64)],
    ) -> (Result<(), GroupError>, Output) {
        let mut out = Output::default();
        let Some(g) = self.share_group_mut(group_id) else {
            return (Err(GroupError::GroupIdNotFound), out);
        };
        if !g.is_empty() {
            return (Err(GroupError::NonEmptyGroup), out);
        }
        for (k, offset) in offsets {
            let sp = match g.partitions.entry(k.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    let sp = e.into_mut();
                    sp.reset_to(*offset);
                    sp
                }
                // A share-partition without state starts there, at state epoch 0.
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(SharePartition::new(*offset))
                }
            };
            crate::share::persist_snapshot(group_id, k, sp, &mut out);
            out.cancel_timer(crate::share::lock_timer(group_id, k));
        }
        (Ok(()), out)
    }

    /// DeleteShareGroupOffsets: forgets the state of the given share-partitions (they start
    /// again by `share.auto.offset.reset`). Errors: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP.
    pub fn delete_share_offsets(
        &mut self,
        group_id: &str,
        partitions: &[SharePartitionKey],
    ) -> (Result<(), GroupError>, Output) {
        let mut out = Output::default();
        let Some(g) = self.share_group_mut(group_id) else {
            return (Err(GroupError::GroupIdNotFound), out);
        };
        if !g.is_empty() {
            return (Err(GroupError::NonEmptyGroup), out);
        }
        for k in partitions {
            if g.partitions.remove(k).is_some() {
                out.cancel_timer(crate::share::lock_timer(group_id, k));
                out.records.push(partition_tombstone(group_id, k));
            }
        }
        (Ok(()), out)
    }

    /// Deletes an empty share group: tombstones for its epoch and every share-partition.
    pub(crate) fn delete_share_group(&mut self, group_id: &str, out: &mut Output) -> bool {
        let Some(Group::Share(g)) = self.groups.get(group_id) else {
            return false;
        };
        if !g.is_empty() {
            return false;
        }
        for k in g.partitions.keys() {
            out.records.push(Record::Share(ShareRecord::PartitionState {
                group_id: group_id.to_string(),
                topic: k.0.clone(),
                partition: k.1,
                value: None,
            }));
        }
        out.records.push(Record::Share(ShareRecord::GroupEpoch {
            group_id: group_id.to_string(),
            epoch: None,
        }));
        self.groups.remove(group_id);
        true
    }

    /// A topic was deleted: share groups forget its share-partitions.
    pub(crate) fn share_topic_deleted(&mut self, topic: &str, out: &mut Output) {
        for (id, g) in self.groups.iter_mut() {
            let Group::Share(g) = g else { continue };
            let keys: Vec<SharePartitionKey> = g
                .partitions
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            for k in keys {
                g.partitions.remove(&k);
                out.cancel_timer(crate::share::lock_timer(id, &k));
                out.records.push(partition_tombstone(id, &k));
            }
            for s in g.sessions.values_mut() {
                s.partitions.retain(|(t, _)| t != topic);
            }
        }
    }

    pub(crate) fn replay_share(&mut self, r: &ShareRecord, now_ms: i64) {
        let group_id = r.group_id();
        match r {
            ShareRecord::GroupEpoch { epoch: None, .. } => {
                if matches!(self.groups.get(group_id), Some(Group::Share(_))) {
                    self.groups.remove(group_id);
                }
            }
            ShareRecord::GroupEpoch { epoch: Some(e), .. } => {
                if !matches!(self.groups.get(group_id), Some(Group::Share(_))) {
                    self.groups
                        .insert(group_id.to_string(), Group::Share(ShareGroup::new(now_ms)));
                }
                if let Some(g) = self.share_group_mut(group_id) {
                    g.group_epoch = *e;
                }
            }
            ShareRecord::PartitionState {
                topic,
                partition,
                value,
                ..
            } => {
                if !matches!(self.groups.get(group_id), Some(Group::Share(_))) {
                    if value.is_none() {
                        return;
                    }
                    self.groups
                        .insert(group_id.to_string(), Group::Share(ShareGroup::new(now_ms)));
                }
                let Some(g) = self.share_group_mut(group_id) else {
                    return;
                };
                let key = (topic.clone(), *partition);
                match value {
                    Some(s) => {
                        g.partitions.insert(key, SharePartition::from_snapshot(s));
                    }
                    None => {
                        g.partitions.remove(&key);
                    }
                }
            }
        }
    }
}

impl GroupCoordinator {
    /// The dead-letter records of `offsets` of `(topic, partition)` in `group_id` are durable
    /// (or the broker decided none is to be written: the DLQ topic is not usable): those
    /// records go from ARCHIVING to ARCHIVED (KIP-1191).
    pub fn share_dead_lettered(
        &mut self,
        group_id: &str,
        key: &SharePartitionKey,
        offsets: &[i64],
    ) -> Output {
        let mut out = Output::default();
        if let Some(g) = self.share_group_mut(group_id) {
            if let Some(sp) = g.partitions.get_mut(key) {
                if sp.complete_archiving(offsets) > 0 {
                    crate::share::persist_snapshot(group_id, key, sp, &mut out);
                }
            }
        }
        out
    }

    /// After recovery: the records found ARCHIVING, to dead-letter again (reported as
    /// [`Output::share_archived`] with reason `Recovered`).
    pub(crate) fn share_start(&self, out: &mut Output) {
        for (id, g) in &self.groups {
            let Group::Share(g) = g else { continue };
            for ((topic, partition), sp) in g.partitions() {
                for (offset, delivery_count) in sp.archiving() {
                    out.share_archived.push(crate::types::ShareArchived {
                        group_id: id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        record: crate::share::ArchivedRecord {
                            offset,
                            delivery_count,
                            reason: crate::share::ArchiveReason::Recovered,
                            dead_letter: true,
                        },
                    });
                }
            }
        }
    }
}
