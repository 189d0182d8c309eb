//! One share-partition's state (KIP-932, Kafka's `SharePartition`): the in-flight window
//! `[SPSO, SPEO)` of a topic-partition for one share group, each record's state and delivery
//! count, and the acquisition locks.
//!
//! Record states and moves (Kafka's `RecordState`, ids as persisted):
//! - `AVAILABLE` (0) → `ACQUIRED` (1) when a ShareFetch acquires it (delivery count + 1);
//! - `ACQUIRED` → `ACKNOWLEDGED` (2) on Accept; → `ARCHIVED` (4) on Reject or Gap;
//! - `ACQUIRED` → `AVAILABLE` on Release, on lock expiry or when its member's share session
//!   closes, unless the delivery count reached `group.share.delivery.count.limit`: then →
//!   `ARCHIVED`. A record made available again waits `redelivery backoff` before it can be
//!   acquired again (Shoal; 0 by default, as in Kafka).
//! - With a dead-letter topic (KIP-1191), a rejected record or one at the delivery-count
//!   limit goes to `ARCHIVING` (3) instead, until the broker reports its DLQ record durable
//!   ([`SharePartition::complete_archiving`]); then → `ARCHIVED`. `ARCHIVING` is persisted,
//!   so a restart writes the DLQ record again (at least once) rather than lose it.
//!
//! Invariants:
//! - every offset in `[spso, speo)` has exactly one entry; offsets `>= speo` are AVAILABLE
//!   with delivery count 0; offsets `< spso` are done (ACKNOWLEDGED or ARCHIVED, forgotten);
//! - the SPSO moves forward over finished records only, so it is never ahead of a record
//!   that can still be delivered;
//! - `speo - spso <= max_record_locks` is kept when new records are acquired (the window may
//!   hold fewer ACQUIRED records, never more entries).
//!
//! The persisted projection is [`SharePartition::snapshot`] (Kafka's `ShareSnapshotValue`):
//! acquisitions are not written, so ACQUIRED records are persisted as they were before the
//! delivery (AVAILABLE, one delivery fewer); after a restart nothing acquired is lost and
//! nothing acknowledged comes back.

use std::collections::VecDeque;
use std::sync::Arc;

/// A record's state (Kafka `RecordState`; the ids are those persisted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    /// Waiting for its dead-letter record to be durable (KIP-1191).
    Archiving,
    Archived,
}

impl RecordState {
    /// Kafka's id: AVAILABLE 0, ACQUIRED 1, ACKNOWLEDGED 2, ARCHIVING 3, ARCHIVED 4.
    pub fn id(self) -> i8 {
        match self {
            RecordState::Available => 0,
            RecordState::Acquired => 1,
            RecordState::Acknowledged => 2,
            RecordState::Archiving => 3,
            RecordState::Archived => 4,
        }
    }

    /// The state with Kafka's id `id`.
    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            0 => Some(RecordState::Available),
            1 => Some(RecordState::Acquired),
            2 => Some(RecordState::Acknowledged),
            3 => Some(RecordState::Archiving),
            4 => Some(RecordState::Archived),
            _ => None,
        }
    }

    fn finished(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// An acknowledgement type (KIP-932 `AcknowledgeType`, wire ids 0-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// 0: the offset holds no record (a compacted-away offset or a control record).
    Gap,
    /// 1: processed.
    Accept,
    /// 2: give it back for redelivery.
    Release,
    /// 3: unprocessable; never deliver again.
    Reject,
}

impl AckType {
    /// The type with wire id `id`; `None` outside 0-3.
    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// One acknowledgement batch of ShareFetch/ShareAcknowledge: offsets
/// `first_offset..=last_offset` with one type for all (`types.len() == 1`) or one per
/// offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub types: Vec<AckType>,
}

impl AckBatch {
    fn type_at(&self, offset: i64) -> Option<AckType> {
        match self.types.as_slice() {
            [one] => Some(*one),
            many => usize::try_from(offset - self.first_offset)
                .ok()
                .and_then(|i| many.get(i))
                .copied(),
        }
    }
}

/// Records acquired by one ShareFetch: `first_offset..=last_offset`, all with the same
/// delivery count (ShareFetch's `AcquiredRecords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRange {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// A record that became ARCHIVED, and why (for dead-lettering and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub offset: i64,
    pub delivery_count: i16,
    pub reason: ArchiveReason,
    /// The record went to ARCHIVING: its dead-letter record is to be written.
    pub dead_letter: bool,
}

/// Why a record was archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    /// Acknowledged with Reject.
    Rejected,
    /// Released or its lock expired with `delivery_count >= group.share.delivery.count.limit`.
    DeliveryCountLimit,
    /// Acknowledged as Gap (no record at the offset).
    Gap,
    /// Found ARCHIVING after a restart, its DLQ record to be written again (the original
    /// reason is not persisted).
    Recovered,
}

/// A persisted state batch (Kafka's `StateBatch` in `ShareSnapshotValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    /// AVAILABLE, ACKNOWLEDGED, ARCHIVING or ARCHIVED (ACQUIRED is persisted as AVAILABLE).
    pub delivery_state: RecordState,
    pub delivery_count: i16,
}

/// A share-partition's persisted state (Kafka's `ShareSnapshotValue`): the SPSO and the
/// in-flight records that are not plain AVAILABLE-never-delivered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareSnapshot {
    pub state_epoch: i32,
    pub start_offset: i64,
    pub state_batches: Vec<StateBatch>,
}

/// What settles a released record: the delivery-count limit and the redelivery backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// `group.share.delivery.count.limit`: a record delivered this many times is archived
    /// instead of made available again.
    pub delivery_count_limit: i16,
    /// `group.share.record.redelivery.backoff.ms` (Shoal): wait before redelivering a record
    /// delivered once; doubles with each further delivery.
    pub backoff_ms: i64,
    /// `group.share.record.redelivery.backoff.max.ms` (Shoal): the cap of that wait.
    pub backoff_max_ms: i64,
    /// The group has a dead-letter topic (`errors.deadletterqueue.topic.name`): rejected and
    /// exhausted records go to ARCHIVING first.
    pub dead_letter: bool,
}

impl ReleasePolicy {
    fn backoff(&self, delivery_count: i16) -> i64 {
        if self.backoff_ms <= 0 || delivery_count <= 0 {
            return 0;
        }
        let doublings = u32::try_from(delivery_count - 1).unwrap_or(0).min(30);
        self.backoff_ms
            .saturating_mul(1i64 << doublings)
            .min(self.backoff_max_ms.max(self.backoff_ms))
    }
}

/// Why an acknowledgement was refused (all of it: nothing in the batch is applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// An offset is not ACQUIRED by this member (INVALID_RECORD_STATE).
    #[error("record {0} is not acquired by this member")]
    InvalidRecordState(i64),
    /// Bad ranges or types (INVALID_REQUEST).
    #[error("malformed acknowledgement batch")]
    InvalidRequest,
}

#[derive(Debug, Clone)]
struct InFlight {
    state: RecordState,
    delivery_count: i16,
    /// The member holding the lock, while ACQUIRED.
    owner: Option<Arc<str>>,
    /// While ACQUIRED: when the lock expires (ms). While AVAILABLE: not before (backoff).
    deadline_ms: i64,
}

/// Counts of the in-flight window by state, for describe and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub available: u64,
    pub acquired: u64,
    pub acknowledged: u64,
    /// Waiting for their dead-letter records.
    pub archiving: u64,
    pub archived: u64,
}

/// One share-partition (see the module docs).
#[derive(Debug, Clone)]
pub struct SharePartition {
    spso: i64,
    state_epoch: i32,
    /// Entry `i` is offset `spso + i`; `speo = spso + window.len()`.
    window: VecDeque<InFlight>,
    /// Records archived since the last [`SharePartition::take_archived`], in order.
    archived: Vec<ArchivedRecord>,
    /// Delivery counts of records acknowledged (Accept) since the last take: index =
    /// delivery count (capped), for the histogram.
    acked_by_delivery: Vec<u64>,
}

impl SharePartition {
    /// A share-partition starting at `start_offset` (after `share.auto.offset.reset`).
    pub fn new(start_offset: i64) -> Self {
        Self {
            spso: start_offset,
            state_epoch: 0,
            window: VecDeque::new(),
            archived: Vec::new(),
            acked_by_delivery: Vec::new(),
        }
    }

    /// The state a snapshot describes (recovery): ACQUIRED is never in a snapshot; entries
    /// below the start offset are ignored; holes between batches are AVAILABLE, never
    /// delivered.
    pub fn from_snapshot(s: &ShareSnapshot) -> Self {
        let mut p = Self::new(s.start_offset);
        p.state_epoch = s.state_epoch;
        for b in &s.state_batches {
            if b.last_offset < b.first_offset || b.last_offset < p.spso {
                continue;
            }
            let first = b.first_offset.max(p.spso);
            let state = match b.delivery_state {
                RecordState::Acquired => RecordState::Available,
                s => s,
            };
            p.extend_to(b.last_offset + 1);
            for o in first..=b.last_offset {
                if let Some(e) = p.entry_mut(o) {
                    e.state = state;
                    e.delivery_count = b.delivery_count.max(0);
                    e.owner = None;
                    e.deadline_ms = 0;
                }
            }
        }
        p.advance_start();
        p
    }

    /// The persisted projection (see the module docs).
    pub fn snapshot(&self) -> ShareSnapshot {
        let mut batches: Vec<StateBatch> = Vec::new();
        for (i, e) in self.window.iter().enumerate() {
            let offset = self.spso + i as i64;
            // An acquisition is not written (KIP-932): an ACQUIRED record is persisted as it
            // was before this delivery, AVAILABLE with one delivery fewer, so what a snapshot
            // says never depends on acquisitions since the last write.
            let (state, count) = match e.state {
                RecordState::Acquired => (RecordState::Available, e.delivery_count - 1),
                s => (s, e.delivery_count),
            };
            if state == RecordState::Available && count <= 0 {
                continue;
            }
            match batches.last_mut() {
                Some(b)
                    if b.last_offset + 1 == offset
                        && b.delivery_state == state
                        && b.delivery_count == count =>
                {
                    b.last_offset = offset;
                }
                _ => batches.push(StateBatch {
                    first_offset: offset,
                    last_offset: offset,
                    delivery_state: state,
                    delivery_count: count,
                }),
            }
        }
        ShareSnapshot {
            state_epoch: self.state_epoch,
            start_offset: self.spso,
            state_batches: batches,
        }
    }

    /// The share-partition start offset (SPSO).
    pub fn start_offset(&self) -> i64 {
        self.spso
    }

    /// The share-partition end offset (SPEO): one past the last offset ever acquired.
    pub fn end_offset(&self) -> i64 {
        self.spso + self.window.len() as i64
    }

    /// The state epoch (bumped when the start offset is reset by an operator).
    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    /// The state of `offset`, and its delivery count.
    pub fn record(&self, offset: i64) -> (RecordState, i16) {
        if offset < self.spso {
            return (RecordState::Acknowledged, 0);
        }
        match self.entry(offset) {
            Some(e) => (e.state, e.delivery_count),
            None => (RecordState::Available, 0),
        }
    }

    /// Counts of the window's records by state.
    pub fn counts(&self) -> WindowCounts {
        let mut c = WindowCounts::default();
        for e in &self.window {
            match e.state {
                RecordState::Available => c.available += 1,
                RecordState::Acquired => c.acquired += 1,
                RecordState::Acknowledged => c.acknowledged += 1,
                RecordState::Archiving => c.archiving += 1,
                RecordState::Archived => c.archived += 1,
            }
        }
        c
    }

    /// Records archived since the last call, oldest first.
    pub fn take_archived(&mut self) -> Vec<ArchivedRecord> {
        std::mem::take(&mut self.archived)
    }

    /// Accepted records by delivery count (index = count) since the last call.
    pub fn take_acked_by_delivery(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.acked_by_delivery)
    }

    fn entry(&self, offset: i64) -> Option<&InFlight> {
        usize::try_from(offset - self.spso)
            .ok()
            .and_then(|i| self.window.get(i))
    }

    fn entry_mut(&mut self, offset: i64) -> Option<&mut InFlight> {
        usize::try_from(offset - self.spso)
            .ok()
            .and_then(|i| self.window.get_mut(i))
    }

    fn extend_to(&mut self, end: i64) {
        while self.end_offset() < end {
            self.window.push_back(InFlight {
                state: RecordState::Available,
                delivery_count: 0,
                owner: None,
                deadline_ms: 0,
            });
        }
    }

    /// Moves the SPSO over finished records.
    fn advance_start(&mut self) -> bool {
        let mut moved = false;
        while self.window.front().is_some_and(|e| e.state.finished()) {
            self.window.pop_front();
            self.spso += 1;
            moved = true;
        }
        moved
    }

    /// Where a ShareFetch should read the log from: the first AVAILABLE record whose backoff
    /// has passed, or the SPEO if the window may still grow; `None` when nothing can be
    /// acquired now (window full of unavailable records). Offsets are log offsets.
    pub fn next_fetch_offset(&self, now_ms: i64, max_record_locks: usize) -> Option<i64> {
        let ready = self
            .window
            .iter()
            .position(|e| e.state == RecordState::Available && e.deadline_ms <= now_ms);
        match ready {
            Some(i) => Some(self.spso + i as i64),
            None if self.window.len() < max_record_locks => Some(self.end_offset()),
            None => None,
        }
    }

    /// When the next backed-off AVAILABLE record becomes acquirable (ms), if any.
    pub fn next_available_at(&self, now_ms: i64) -> Option<i64> {
        self.window
            .iter()
            .filter(|e| e.state == RecordState::Available && e.deadline_ms > now_ms)
            .map(|e| e.deadline_ms)
            .min()
    }

    /// When the earliest acquisition lock expires (ms), if any record is ACQUIRED.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.window
            .iter()
            .filter(|e| e.state == RecordState::Acquired)
            .map(|e| e.deadline_ms)
            .min()
    }

    /// Acquires for `member` up to `max_records` records among the log offsets
    /// `[from, to)` the broker just read (whole batches), locking them until
    /// `now_ms + lock_ms`. Takes AVAILABLE records whose backoff has passed, and new
    /// records while the window stays within `max_record_locks`. The log start offset moves
    /// the SPSO forward (records removed by retention are forgotten).
    ///
    /// Returns the acquired ranges (ascending, each with one delivery count).
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        &mut self,
        member: &Arc<str>,
        from: i64,
        to: i64,
        max_records: usize,
        max_record_locks: usize,
        lock_ms: i64,
        log_start_offset: i64,
        now_ms: i64,
    ) -> Vec<AcquiredRange> {
        self.acquire_batches(
            member,
            from,
            to,
            &[],
            max_records,
            max_record_locks,
            lock_ms,
            log_start_offset,
            now_ms,
        )
    }

    /// [`SharePartition::acquire`] over stored batches: `batch_ends` are the exclusive end
    /// offsets (last offset + 1) of the batches read, ascending. `max_records` and
    /// `max_record_locks` are then soft, as in Kafka (`SharePartition.acquire`): once one is
    /// reached inside a batch, acquisition goes on to that batch's end, so a response never
    /// carries a stored batch only part of which it acquired (and the next fetch does not
    /// send it again). The window may so pass `max_record_locks` by less than a batch.
    /// With no `batch_ends`, every offset is its own batch (the limits are exact).
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_batches(
        &mut self,
        member: &Arc<str>,
        from: i64,
        to: i64,
        batch_ends: &[i64],
        max_records: usize,
        max_record_locks: usize,
        lock_ms: i64,
        log_start_offset: i64,
        now_ms: i64,
    ) -> Vec<AcquiredRange> {
        self.skip_to(log_start_offset);
        let mut out: Vec<AcquiredRange> = Vec::new();
        let mut taken = 0usize;
        let mut offset = from.max(self.spso);
        if offset > self.end_offset() {
            // A read past the SPEO would leave offsets never read in the window.
            return out;
        }
        // Once a limit is reached inside a batch: the end of that batch.
        let mut finish_batch: Option<i64> = None;
        while offset < to {
            let full = offset >= self.end_offset() && self.window.len() >= max_record_locks;
            if taken >= max_records || full {
                let end = *finish_batch.get_or_insert_with(|| {
                    // The batch holding the previous offset, if this call acquired in it.
                    match out.last() {
                        Some(_) => batch_ends
                            .iter()
                            .copied()
                            .find(|&e| e >= offset)
                            .unwrap_or(offset),
                        None => offset,
                    }
                });
                if offset >= end {
                    break;
                }
            }
            if offset >= self.end_offset() {
                self.extend_to(offset + 1);
            }
            let Some(e) = self.entry_mut(offset) else {
                break;
            };
            if e.state == RecordState::Available && e.deadline_ms <= now_ms {
                e.state = RecordState::Acquired;
                e.delivery_count = e.delivery_count.saturating_add(1);
                e.owner = Some(member.clone());
                e.deadline_ms = now_ms.saturating_add(lock_ms);
                let count = e.delivery_count;
                taken += 1;
                match out.last_mut() {
                    Some(r) if r.last_offset + 1 == offset && r.delivery_count == count => {
                        r.last_offset = offset;
                    }
                    _ => out.push(AcquiredRange {
                        first_offset: offset,
                        last_offset: offset,
                        delivery_count: count,
                    }),
                }
            }
            offset += 1;
        }
        out
    }

    /// Forgets records below `log_start_offset` (deleted by retention): the SPSO moves there.
    /// Returns whether the state changed.
    pub fn skip_to(&mut self, log_start_offset: i64) -> bool {
        if log_start_offset <= self.spso {
            return false;
        }
        while self.spso < log_start_offset {
            if self.window.pop_front().is_none() {
                self.spso = log_start_offset;
                break;
            }
            self.spso += 1;
        }
        self.advance_start();
        true
    }

    /// Applies the acknowledgement batches of one partition from `member` (Kafka's
    /// `SharePartition.acknowledge`): all or nothing. Offsets below the SPSO are skipped (already
    /// finished); every other offset must be ACQUIRED by `member`.
    ///
    /// Errors: `InvalidRequest` for a malformed batch (inverted range, no types, a type count
    /// that is neither 1 nor the range's length, batches out of order or overlapping) or
    /// offsets past the SPEO; `InvalidRecordState` for an offset not ACQUIRED by `member`.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        policy: &ReleasePolicy,
        now_ms: i64,
    ) -> Result<(), AckError> {
        let mut previous_end = i64::MIN;
        for b in batches {
            if b.last_offset < b.first_offset
                || b.types.is_empty()
                || (b.types.len() != 1
                    && b.types.len() as i64 != b.last_offset - b.first_offset + 1)
                || b.first_offset <= previous_end
                || b.last_offset >= self.end_offset()
            {
                return Err(AckError::InvalidRequest);
            }
            previous_end = b.last_offset;
            for o in b.first_offset.max(self.spso)..=b.last_offset {
                let owned = self.entry(o).is_some_and(|e| {
                    e.state == RecordState::Acquired && e.owner.as_deref() == Some(member)
                });
                if !owned {
                    return Err(AckError::InvalidRecordState(o));
                }
            }
        }
        for b in batches {
            for o in b.first_offset.max(self.spso)..=b.last_offset {
                let Some(t) = b.type_at(o) else {
                    continue;
                };
                match t {
                    AckType::Accept => self.finish(o, None, policy),
                    AckType::Reject => self.finish(o, Some(ArchiveReason::Rejected), policy),
                    AckType::Gap => self.finish(o, Some(ArchiveReason::Gap), policy),
                    AckType::Release => self.release(o, policy, now_ms),
                }
            }
        }
        self.advance_start();
        Ok(())
    }

    /// ACQUIRED → ACKNOWLEDGED (`reason` `None`), or → ARCHIVED / ARCHIVING (dead letter).
    fn finish(&mut self, offset: i64, reason: Option<ArchiveReason>, policy: &ReleasePolicy) {
        let Some(e) = self.entry_mut(offset) else {
            return;
        };
        let dead_letter = policy.dead_letter && reason.is_some_and(|r| r != ArchiveReason::Gap);
        e.state = match reason {
            None => RecordState::Acknowledged,
            Some(_) if dead_letter => RecordState::Archiving,
            Some(_) => RecordState::Archived,
        };
        e.owner = None;
        e.deadline_ms = 0;
        let count = e.delivery_count;
        match reason {
            Some(reason) => self.archived.push(ArchivedRecord {
                offset,
                delivery_count: count,
                reason,
                dead_letter,
            }),
            None => {
                let i = usize::try_from(count).unwrap_or(0).min(64);
                if self.acked_by_delivery.len() <= i {
                    self.acked_by_delivery.resize(i + 1, 0);
                }
                if let Some(n) = self.acked_by_delivery.get_mut(i) {
                    *n += 1;
                }
            }
        }
    }

    /// An ACQUIRED record goes back: AVAILABLE after the backoff, or ARCHIVED at the limit.
    fn release(&mut self, offset: i64, policy: &ReleasePolicy, now_ms: i64) {
        let Some(e) = self.entry_mut(offset) else {
            return;
        };
        if e.delivery_count >= policy.delivery_count_limit {
            self.finish(offset, Some(ArchiveReason::DeliveryCountLimit), policy);
        } else {
            e.state = RecordState::Available;
            e.owner = None;
            e.deadline_ms = now_ms.saturating_add(policy.backoff(e.delivery_count));
        }
    }

    fn release_where(
        &mut self,
        policy: &ReleasePolicy,
        now_ms: i64,
        pick: impl Fn(&InFlight) -> bool,
    ) -> usize {
        let picked: Vec<i64> = self
            .window
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == RecordState::Acquired && pick(e))
            .map(|(i, _)| self.spso + i as i64)
            .collect();
        for &o in &picked {
            self.release(o, policy, now_ms);
        }
        self.advance_start();
        picked.len()
    }

    /// Releases every record `member` holds (it left, its session closed or its connection
    /// dropped). Returns how many.
    pub fn release_member(&mut self, member: &str, policy: &ReleasePolicy, now_ms: i64) -> usize {
        self.release_where(policy, now_ms, |e| e.owner.as_deref() == Some(member))
    }

    /// Releases the records whose lock expired by `now_ms`. Returns how many.
    pub fn expire_locks(&mut self, policy: &ReleasePolicy, now_ms: i64) -> usize {
        self.release_where(policy, now_ms, |e| e.deadline_ms <= now_ms)
    }

    /// The dead-letter records of `offsets` are durable: ARCHIVING → ARCHIVED. Other offsets
    /// are ignored (already done, or reset meanwhile). Returns how many moved.
    pub fn complete_archiving(&mut self, offsets: &[i64]) -> usize {
        let mut n = 0;
        for &o in offsets {
            if let Some(e) = self.entry_mut(o) {
                if e.state == RecordState::Archiving {
                    e.state = RecordState::Archived;
                    n += 1;
                }
            }
        }
        self.advance_start();
        n
    }

    /// Records waiting for their dead-letter record (after a restart: to write again), with
    /// their delivery counts.
    pub fn archiving(&self) -> Vec<(i64, i16)> {
        self.window
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == RecordState::Archiving)
            .map(|(i, e)| (self.spso + i as i64, e.delivery_count))
            .collect()
    }

    /// Moves the start offset to `offset` (AlterShareGroupOffsets, or a reset): the window is
    /// dropped and the state epoch bumped.
    pub fn reset_to(&mut self, offset: i64) {
        self.spso = offset;
        self.window.clear();
        self.state_epoch = self.state_epoch.saturating_add(1);
    }
}
