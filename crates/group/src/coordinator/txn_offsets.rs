//! Offsets committed inside transactions (KIP-98 TxnOffsetCommit, KIP-447 member checks):
//! written to `__consumer_offsets` as transactional records of the producer, held pending,
//! and applied when the producer's COMMIT marker reaches `__consumer_offsets` (dropped with an
//! ABORT). Live and at recovery the same two replays apply them: [`GroupCoordinator::replay_txn_offset`]
//! and [`GroupCoordinator::replay_txn_marker`].

use std::collections::HashSet;

use super::*;
use crate::api::TxnCommitRequest;

impl GroupCoordinator {
    /// TxnOffsetCommit: one result per partition, in request order. With a member id and
    /// generation (KIP-447) the member must be current in the group, as for OffsetCommit.
    ///
    /// Errors (every partition): INVALID_GROUP_ID, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
    /// FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND (a share group); per partition
    /// OFFSET_METADATA_TOO_LARGE.
    pub fn txn_commit(
        &mut self,
        req: TxnCommitRequest,
        now_ms: i64,
    ) -> (Vec<Option<GroupError>>, Output) {
        let mut out = Output::default();
        let n = req.partitions.len();
        let fail = |e| (vec![Some(e); n], Output::default());
        if req.group_id.is_empty() {
            return fail(GroupError::InvalidGroupId);
        }
        let named = !req.member_id.is_empty() && req.generation_id >= 0;
        match self.groups.get(&req.group_id) {
            Some(Group::Share(_)) => return fail(GroupError::GroupIdNotFound),
            Some(Group::Consumer(c)) if named => {
                if let Some(e) = c.validate_commit(&req.member_id, req.generation_id, 9) {
                    return fail(e);
                }
            }
            Some(Group::Classic(g)) if named => {
                if let Some(e) = g.check_member(&req.member_id, req.group_instance_id.as_deref()) {
                    return fail(e);
                }
                if req.generation_id != g.generation_id {
                    return fail(GroupError::IllegalGeneration);
                }
            }
            None if named => return fail(GroupError::IllegalGeneration),
            _ => {}
        }
        let mut errors = Vec::with_capacity(n);
        for p in req.partitions {
            let metadata = p.metadata.unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(Some(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            let record = Record::OffsetCommit {
                group_id: req.group_id.clone(),
                topic: p.topic,
                partition: p.partition,
                value: Some(OffsetAndMetadata {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                }),
            };
            self.replay_txn_offset(req.producer_id, &record);
            out.records.push(record);
            errors.push(None);
        }
        if !out.records.is_empty() {
            out.transactional = Some((req.producer_id, req.producer_epoch));
        }
        (errors, out)
    }

    /// The transaction of `producer_id` ended in `__consumer_offsets`: its pending offsets
    /// are applied (`commit`) or dropped, and the marker is to be written.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Output {
        self.replay_txn_marker(producer_id, commit, now_ms);
        Output {
            marker: Some((producer_id, producer_epoch, commit)),
            ..Output::default()
        }
    }

    /// Applies a transactional `OffsetCommit` record of `producer_id` (held until its
    /// marker); other records are ignored.
    pub fn replay_txn_offset(&mut self, producer_id: i64, record: &Record) {
        if matches!(record, Record::OffsetCommit { value: Some(_), .. }) {
            self.pending_txn_offsets
                .entry(producer_id)
                .or_default()
                .push(record.clone());
        }
    }

    /// Applies a transaction marker of `producer_id`: its pending offsets become committed
    /// offsets (COMMIT) or are dropped (ABORT).
    pub fn replay_txn_marker(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        let Some(pending) = self.pending_txn_offsets.remove(&producer_id) else {
            return;
        };
        if commit {
            for r in &pending {
                self.replay(r, now_ms);
            }
        }
    }

    /// `(topic, partition)`s of `group_id` with an offset pending in an open transaction
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them, KIP-447).
    pub fn pending_txn_partitions(&self, group_id: &str) -> HashSet<(String, i32)> {
        self.pending_txn_offsets
            .values()
            .flatten()
            .filter_map(|r| match r {
                Record::OffsetCommit {
                    group_id: g,
                    topic,
                    partition,
                    ..
                } if g == group_id => Some((topic.clone(), *partition)),
                _ => None,
            })
            .collect()
    }
}
