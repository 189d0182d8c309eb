//! ShareFetch and ShareAcknowledge for one share group (Kafka's `SharePartitionManager` and
//! `ShareSessionCache`): share session epochs, acknowledgements, acquisition, and the
//! releases (session close, member removal, connection loss, lock expiry).
//!
//! A ShareFetch runs in two calls so the broker can read the log between them:
//! [`ShareGroup::open`] checks the session, applies the piggy-backed acknowledgements and
//! says where to read each partition; [`ShareGroup::acquire`] locks records in what was read.
//! Every change that must survive a crash writes the share-partition's snapshot.

use std::sync::Arc;

use super::{AckType, AcquiredRange, Effective, ShareGroup, SharePartition, ShareSession};
use crate::api::{FetchStart, PartitionAcks, PartitionRead, ShareFetchOpen, SharePartitionKey};
use crate::error::GroupError;
use crate::records::{Record, ShareRecord};
use crate::types::{Output, ShareArchived, TimerKey};

/// What [`ShareGroup::open`] returns: per acknowledged partition its error, and the plan.
pub(crate) type Opened = (
    Vec<(SharePartitionKey, Option<GroupError>)>,
    Vec<(SharePartitionKey, FetchStart)>,
);

/// The next epoch after `e` (wraps to 1, as Kafka's `ShareRequestMetadata.nextEpoch`).
fn next_epoch(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

/// The lock-expiry timer of a share-partition.
pub(crate) fn lock_key(group_id: &str, key: &SharePartitionKey) -> TimerKey {
    TimerKey::ShareLock {
        group_id: group_id.to_string(),
        topic: key.0.clone(),
        partition: key.1,
    }
}

/// Writes `key`'s snapshot, reports what it archived and accepted, and re-arms its lock
/// timer.
pub(crate) fn persist(
    group_id: &str,
    key: &SharePartitionKey,
    sp: &mut SharePartition,
    out: &mut Output,
) {
    out.records.push(Record::Share(ShareRecord::PartitionState {
        group_id: group_id.to_string(),
        topic: key.0.clone(),
        partition: key.1,
        value: Some(sp.snapshot()),
    }));
    drain(group_id, key, sp, out);
}

fn drain(group_id: &str, key: &SharePartitionKey, sp: &mut SharePartition, out: &mut Output) {
    for record in sp.take_archived() {
        out.share_archived.push(ShareArchived {
            group_id: group_id.to_string(),
            topic: key.0.clone(),
            partition: key.1,
            record,
        });
    }
    for (count, n) in sp.take_acked_by_delivery().into_iter().enumerate() {
        if n > 0 {
            out.share_accepted
                .push((group_id.to_string(), key.0.clone(), key.1, count, n));
        }
    }
    match sp.next_lock_deadline() {
        Some(d) => out.set_timer(lock_key(group_id, key), d),
        None => out.cancel_timer(lock_key(group_id, key)),
    }
}

impl ShareGroup {
    /// The session step of a ShareFetch or ShareAcknowledge (see the module docs).
    /// `sessions_elsewhere` counts the broker's share sessions outside this group.
    ///
    /// Errors (top level): SHARE_SESSION_NOT_FOUND (epoch > 0 or -1 and no session),
    /// INVALID_SHARE_SESSION_EPOCH (wrong epoch; epoch 0 on ShareAcknowledge),
    /// SHARE_SESSION_LIMIT_REACHED, INVALID_REQUEST (acknowledgements with epoch 0).
    /// Per-partition acknowledgement errors: INVALID_RECORD_STATE, INVALID_REQUEST.
    pub(crate) fn open(
        &mut self,
        req: &ShareFetchOpen,
        eff: &Effective,
        sessions_elsewhere: usize,
        max_sessions: usize,
        now_ms: i64,
        out: &mut Output,
    ) -> Result<Opened, GroupError> {
        let group_id = req.group_id.clone();
        let member = req.member_id.as_str();
        match req.share_session_epoch {
            0 => {
                if req.acknowledge_only {
                    return Err(GroupError::InvalidShareSessionEpoch);
                }
                if !req.acks.is_empty() {
                    return Err(GroupError::InvalidRequest);
                }
                if !self.sessions.contains_key(member)
                    && sessions_elsewhere + self.sessions.len() >= max_sessions
                {
                    return Err(GroupError::ShareSessionLimitReached);
                }
                self.sessions.insert(
                    member.to_string(),
                    ShareSession {
                        partitions: req.added.iter().cloned().collect(),
                        next_epoch: 1,
                        connection_id: req.connection_id,
                    },
                );
            }
            -1 => {
                if !self.sessions.contains_key(member) {
                    return Err(GroupError::ShareSessionNotFound);
                }
            }
            e => {
                let Some(s) = self.sessions.get_mut(member) else {
                    return Err(GroupError::ShareSessionNotFound);
                };
                if e != s.next_epoch {
                    return Err(GroupError::InvalidShareSessionEpoch);
                }
                s.next_epoch = next_epoch(e);
                s.connection_id = req.connection_id;
                if !req.acknowledge_only {
                    for k in &req.forgotten {
                        s.partitions.remove(k);
                    }
                    s.partitions.extend(req.added.iter().cloned());
                }
            }
        }
        let ack_errors = req
            .acks
            .iter()
            .map(|a| {
                (
                    a.key.clone(),
                    self.acknowledge(&group_id, member, a, eff, now_ms, out)
                        .err(),
                )
            })
            .collect();
        if req.share_session_epoch == -1 {
            self.sessions.remove(member);
            self.release_member_records(&group_id, member, eff, now_ms, out);
            return Ok((ack_errors, Vec::new()));
        }
        if req.acknowledge_only {
            return Ok((ack_errors, Vec::new()));
        }
        Ok((ack_errors, self.plan(member, eff, now_ms)))
    }

    /// Where to read next for each partition of `member`'s session.
    pub(crate) fn plan(
        &self,
        member: &str,
        eff: &Effective,
        now_ms: i64,
    ) -> Vec<(SharePartitionKey, FetchStart)> {
        let Some(s) = self.sessions.get(member) else {
            return Vec::new();
        };
        s.partitions
            .iter()
            .map(|k| {
                let start = match self.partitions.get(k) {
                    None => FetchStart::Initialize(eff.offset_reset),
                    Some(sp) => match sp.next_fetch_offset(now_ms, eff.max_record_locks) {
                        Some(o) => FetchStart::At(o),
                        None => FetchStart::Full,
                    },
                };
                (k.clone(), start)
            })
            .collect()
    }

    fn acknowledge(
        &mut self,
        group_id: &str,
        member: &str,
        acks: &PartitionAcks,
        eff: &Effective,
        now_ms: i64,
        out: &mut Output,
    ) -> Result<(), GroupError> {
        let Some(sp) = self.partitions.get_mut(&acks.key) else {
            return Err(GroupError::UnknownTopicOrPartition);
        };
        let start = sp.start_offset();
        match sp.acknowledge(member, &acks.batches, &eff.policy, now_ms) {
            Ok(()) => {
                // Released records, or room in a full window: waiting fetches look again.
                if sp.start_offset() != start
                    || acks
                        .batches
                        .iter()
                        .any(|b| b.types.contains(&AckType::Release))
                {
                    out.share_wakeup = true;
                }
                persist(group_id, &acks.key, sp, out);
                Ok(())
            }
            Err(super::partition::AckError::InvalidRecordState(_)) => {
                Err(GroupError::InvalidRecordState)
            }
            Err(super::partition::AckError::InvalidRequest) => Err(GroupError::InvalidRequest),
        }
    }

    /// Acquires records for `member` in what the broker read, up to `max_records` in all
    /// (ShareFetch `MaxRecords`); initializes share-partitions planned with
    /// [`FetchStart::Initialize`]. A member without a session acquires nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn acquire(
        &mut self,
        group_id: &str,
        member: &str,
        reads: &[PartitionRead],
        max_records: usize,
        eff: &Effective,
        now_ms: i64,
        out: &mut Output,
    ) -> Vec<(SharePartitionKey, Vec<AcquiredRange>)> {
        let Some(session) = self.sessions.get(member) else {
            return Vec::new();
        };
        let owner: Arc<str> = Arc::from(member);
        let mut left = max_records.max(1);
        let mut result = Vec::new();
        for r in reads {
            if !session.partitions.contains(&r.key) {
                continue;
            }
            if !self.partitions.contains_key(&r.key) {
                let Some(start) = r.initial_offset else {
                    continue;
                };
                let mut sp = SharePartition::new(start.max(r.log_start_offset));
                persist(group_id, &r.key, &mut sp, out);
                self.partitions.insert(r.key.clone(), sp);
            }
            let Some(sp) = self.partitions.get_mut(&r.key) else {
                continue;
            };
            if sp.skip_to(r.log_start_offset) {
                persist(group_id, &r.key, sp, out);
            }
            if left == 0 || r.from >= r.to {
                continue;
            }
            let ranges = sp.acquire_batches(
                &owner,
                r.from,
                r.to,
                &r.batch_ends,
                left,
                eff.max_record_locks,
                eff.lock_ms,
                r.log_start_offset,
                now_ms,
            );
            let n: i64 = ranges
                .iter()
                .map(|a| a.last_offset - a.first_offset + 1)
                .sum();
            left = left.saturating_sub(usize::try_from(n).unwrap_or(0));
            if !ranges.is_empty() {
                drain(group_id, &r.key, sp, out);
                result.push((r.key.clone(), ranges));
            }
        }
        result
    }

    /// Releases every record `member` holds, in every share-partition of the group.
    pub(crate) fn release_member_records(
        &mut self,
        group_id: &str,
        member: &str,
        eff: &Effective,
        now_ms: i64,
        out: &mut Output,
    ) {
        for (key, sp) in self.partitions.iter_mut() {
            if sp.release_member(member, &eff.policy, now_ms) > 0 {
                out.share_wakeup = true;
                persist(group_id, key, sp, out);
            }
        }
    }

    /// A share-partition's lock timer fired: expired locks are released.
    pub(crate) fn on_lock_timer(
        &mut self,
        group_id: &str,
        key: &SharePartitionKey,
        eff: &Effective,
        now_ms: i64,
        out: &mut Output,
    ) {
        let Some(sp) = self.partitions.get_mut(key) else {
            return;
        };
        if sp.expire_locks(&eff.policy, now_ms) > 0 {
            out.share_wakeup = true;
            persist(group_id, key, sp, out);
        } else {
            drain(group_id, key, sp, out);
        }
    }

    /// The connection `connection_id` closed: the sessions it opened end and their members'
    /// records are released at once (Shoal's `group.share.release.on.connection.close`).
    /// Returns the members affected.
    pub(crate) fn connection_closed(
        &mut self,
        group_id: &str,
        connection_id: u64,
        eff: &Effective,
        now_ms: i64,
        out: &mut Output,
    ) -> Vec<String> {
        let members: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.connection_id == connection_id)
            .map(|(m, _)| m.clone())
            .collect();
        for m in &members {
            self.sessions.remove(m);
            self.release_member_records(group_id, m, eff, now_ms, out);
        }
        members
    }
}
