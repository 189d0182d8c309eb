//! A partition's log: ordered segments, append with offset assignment and idempotent-producer
//! checks, reads of whole stored batches, rolling, retention and durability bookkeeping.
//!
//! [`PartitionLog`] is the trait the broker talks to, so a remote backend (object storage,
//! PostgreSQL) can replace [`LocalLog`] later. [`LocalLog`] keeps `<dir>/<base>.log` segments.
//!
//! Invariants: offsets in the log are contiguous from `log_start_offset` to
//! `log_end_offset - 1`; only the last segment is written; `synced_offset <= log_end_offset`
//! and every offset below it is on disk (fsync) ; after a failed write or fsync the log is
//! poisoned and refuses appends.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch;
use crate::error::LogError;
use crate::producer_state::{ProducerStateTable, SequenceCheck};
use crate::segment::Segment;
pub use crate::segment::{FileSlice, Records};
use crate::txn::{AbortedTxn, ControlType, TxnState};

/// The largest segment the sparse index can address: positions are stored as 32-bit values,
/// and Kafka's `segment.bytes` is an INT (at most `Integer.MAX_VALUE`). A log never lets a
/// segment grow past it, whatever [`LogConfig::segment_bytes`] says.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Per-partition storage settings, under their Kafka topic-config names.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment beyond this size (bytes). Kafka default 1 GiB;
    /// values above [`MAX_SEGMENT_BYTES`] act as that (the broker refuses them).
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment older than this (ms). Kafka default 7 days.
    pub segment_ms: i64,
    /// `index.interval.bytes`: log bytes between sparse index entries. Kafka default 4096.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete sealed segments whose newest record is older (ms); -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest sealed segments beyond this size; -1 = no limit.
    pub retention_bytes: i64,
    /// `message.timestamp.type=LogAppendTime` (Kafka default `CreateTime`, false): each
    /// appended batch is stamped with the append time ([`batch::set_log_append_time`]).
    pub log_append_time: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            log_append_time: false,
        }
    }
}

/// Result of an append: where the batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record of the batch.
    pub base_offset: i64,
    /// Offset of the last record of the batch.
    pub last_offset: i64,
    /// True when the batch repeated an already-appended idempotent batch and was not written.
    pub duplicate: bool,
}

/// Result of a read: stored batches, as bytes, plus the partition's offsets.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole record batches, concatenated, exactly as stored. Empty at the log end.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// What an fsync must cover: the file to sync and the offset it makes durable.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub file: Arc<File>,
    /// Every offset below this is durable once `file.sync_data()` returns.
    pub upto_offset: i64,
    /// The log's appended-bytes count at that point (see [`LocalLog::unflushed_bytes`]).
    pub upto_bytes: u64,
}

/// The storage interface a partition exposes to the broker: the broker names [`LocalLog`] only
/// where it opens one, and talks to every partition through this trait, so another backend
/// (object storage, PostgreSQL) can replace it without touching the handlers. Calls are per
/// request (dynamic dispatch is fine), never per record.
///
/// Offsets are Kafka offsets (i64); sizes are bytes; timestamps are ms since the Unix epoch.
pub trait PartitionLog: Send + std::fmt::Debug {
    /// Validates `batch` (one magic-2 record batch), checks idempotent-producer sequence,
    /// assigns offsets by patching `base_offset` in place and appends it.
    ///
    /// Errors: `Batch` for malformed input (nothing written), `OutOfOrderSequence` /
    /// `InvalidProducerEpoch` for idempotence violations, `Io`/`Poisoned` for storage failures.
    /// The batch is not modified: the broker-owned header fields are written from the
    /// assigned values, so the caller's buffer (e.g. a slice of the request frame) is
    /// appended without being copied.
    fn append(&mut self, batch: &[u8], now_ms: i64) -> Result<AppendInfo, LogError>;
    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes` but
    /// always at least one batch. Errors: `OffsetOutOfRange` outside
    /// `[log_start_offset, log_end_offset]`.
    fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError>;
    fn log_start_offset(&self) -> i64;
    fn log_end_offset(&self) -> i64;
    /// Offset and timestamp of the first record whose timestamp is `>= timestamp_ms`
    /// (ListOffsets by timestamp, as Kafka's `fetchOffsetByTimestamp`); in a `LogAppendTime`
    /// batch every record has the batch's `max_timestamp`. `None` when no record qualifies.
    ///
    /// Errors: `Corrupt` when the batch holding it cannot be decoded; `Io`.
    fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, LogError>;
    /// Largest timestamp and the offset of the first record carrying it (ListOffsets
    /// `MAX_TIMESTAMP`, KIP-734). Errors: `Corrupt` when that batch does not decode; `Io`.
    fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError>;
    /// What an fsync must cover to make every appended batch durable; `None` when clean.
    fn sync_target(&self) -> Option<SyncTarget>;
    /// Records that an fsync of a [`SyncTarget`] succeeded (`Ok`) or failed (poisons the log).
    ///
    /// Errors: the fsync's error, or `Poisoned` when the log already is (a success after a
    /// failure does not make anything durable).
    fn sync_done(
        &mut self,
        upto_offset: i64,
        upto_bytes: u64,
        result: std::io::Result<()>,
    ) -> Result<(), LogError>;
    /// Offsets below this are on disk.
    fn synced_offset(&self) -> i64;
    /// Deletes sealed segments beyond retention; returns how many were deleted.
    fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError>;
    /// Total bytes of all segments.
    fn size_bytes(&self) -> u64;
    /// Decides a read like [`PartitionLog::read`] from in-memory state only, so the caller
    /// can release the partition lock before carrying it out ([`ReadPlan::read`], or
    /// [`ReadPlan::read_zero_copy`] for `sendfile`). A backend without local files can read
    /// at once and return [`ReadPlan::ready`].
    ///
    /// Errors: `OffsetOutOfRange` outside `[log_start_offset, log_end_offset]`.
    fn plan_read(&self, offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError>;
    /// Bytes appended that no completed fsync covers yet (write-behind accounting).
    fn unflushed_bytes(&self) -> u64;
    /// Compacts the log (`cleanup.policy=compact`): only the latest record of each key stays
    /// in the cleanable part, tombstones older than `delete_retention_ms` go (see
    /// [`crate::compaction`]).
    ///
    /// Errors: `Corrupt` for a stored batch that does not decode; `Io`.
    fn compact(
        &mut self,
        now_ms: i64,
        delete_retention_ms: i64,
    ) -> Result<CompactionStats, LogError>;
    /// Replaces the storage settings (a topic config change); applies from the next append.
    fn set_config(&mut self, config: LogConfig);
    /// Deletes the log's data (the topic is deleted). The log refuses appends afterwards.
    ///
    /// Errors: the storage could not be removed.
    fn delete(&mut self) -> Result<(), LogError>;
    /// Appends a transaction marker (a control batch, KIP-98) for `producer_id` at
    /// `producer_epoch`: it ends the producer's open transaction in this partition (an ABORT
    /// enters the aborted-transaction index) and moves the last stable offset. Written by the
    /// transaction coordinator only; [`PartitionLog::append`] refuses control batches.
    ///
    /// Errors: `InvalidProducerEpoch` when the producer already has a newer epoch here (a
    /// marker of a fenced coordinator); `Io`/`Poisoned`.
    fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlType,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError>;
    /// The last stable offset (LSO): the first offset of the oldest open transaction, or the
    /// log end offset when none is open. `read_committed` fetches stop below it.
    fn last_stable_offset(&self) -> i64;
    /// Aborted transactions overlapping offsets `[from, upto)` (Fetch's
    /// `aborted_transactions` for `read_committed`), in marker order.
    fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<AbortedTxn>;
    /// Transactions open in this partition: `(producer_id, producer_epoch, first_offset)`
    /// (DescribeProducers' `current_txn_start_offset`).
    fn open_transactions(&self) -> Vec<(i64, i16, i64)>;
    /// Like [`PartitionLog::plan_read`], but never past `max_offset` (exclusive): batches
    /// from `max_offset` on are left out, so the read may be empty. With `max_offset` at the
    /// last stable offset this is a `read_committed` read.
    ///
    /// Errors: as [`PartitionLog::plan_read`].
    fn plan_read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError>;
    /// Idempotent and transactional producers with state here: `(producer_id,
    /// producer_epoch, last_sequence, last_timestamp_ms)` (DescribeProducers).
    fn producers(&self) -> Vec<(i64, i16, i32, i64)>;
    /// Moves the log start offset up to `offset` (DeleteRecords, KIP-107): offsets below it
    /// are no longer readable, and whole segments below it are deleted. The new start is
    /// durable before this returns. An `offset` at or below the current start changes
    /// nothing. Returns the log start offset afterwards (DeleteRecords' `low_watermark`).
    ///
    /// Errors: `OffsetOutOfRange` when `offset` is beyond the log end offset (the high
    /// watermark of a one-replica log); `Io`/`Poisoned`.
    fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError>;
}

/// The file in a partition directory that keeps a log start offset moved by
/// [`PartitionLog::delete_records_before`] (Kafka keeps it in its checkpoint file
/// `log-start-offset-checkpoint`): the offset as decimal text, replaced atomically.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// The embedded, file-backed [`PartitionLog`].
#[derive(Debug)]
pub struct LocalLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<i64, Segment>,
    producers: ProducerStateTable,
    /// Open and aborted transactions ([`crate::txn`]).
    pub(crate) txns: TxnState,
    /// The log start offset set by [`PartitionLog::delete_records_before`] (persisted in
    /// [`LOG_START_OFFSET_FILE`]); the effective start is the larger of it and the first
    /// segment's base offset.
    start_offset: i64,
    synced_offset: i64,
    /// Bytes appended since the log was opened, and how many of them are known on disk.
    appended_bytes: u64,
    synced_bytes: u64,
    poisoned: bool,
}

impl LocalLog {
    /// Opens (or creates) the log in `dir`. The last segment is scanned with CRC checks and a
    /// torn tail is truncated; sealed segments open from their index files when valid.
    /// Idempotent-producer state is rebuilt from the last two segments.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir)?;
        // The partition directory's own entry must be durable too.
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::segment::sync_dir(parent)?;
        let mut bases: Vec<i64> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let last = bases.last().copied();
        for base in bases {
            let path = dir.join(format!("{}.log", crate::segment::file_stem(base)));
            let is_last = Some(base) == last;
            let seg = Segment::open(&path, base, is_last, config.index_interval_bytes, now_ms)?;
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now_ms)?);
        }
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            producers: ProducerStateTable::default(),
            txns: TxnState::default(),
            start_offset: 0,
            synced_offset: 0,
            appended_bytes: 0,
            synced_bytes: 0,
            poisoned: false,
        };
        log.synced_offset = log.log_end_offset();
        log.start_offset = read_start_offset(dir)?.min(log.log_end_offset());
        // A crash between persisting a new start and deleting the segments below it.
        log.delete_segments_below_start()?;
        log.rebuild_producer_state()?;
        log.rebuild_txn_state()?;
        Ok(log)
    }

    /// Deletes sealed segments whose every offset is below the log start offset (the
    /// active segment always stays), and forgets their transaction state: the aborted
    /// transactions indexed with them, and open transactions whose first batch was in them
    /// (as retention does). A transaction still open above the new start stays open, so
    /// `read_committed` readers keep waiting for its marker.
    fn delete_segments_below_start(&mut self) -> Result<usize, LogError> {
        let start = self.log_start_offset();
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let Some((&base, seg)) = self.segments.iter().next() else {
                break;
            };
            if seg.next_offset > start {
                break;
            }
            seg.remove_files()?;
            self.segments.remove(&base);
            deleted += 1;
        }
        if deleted > 0 {
            let first = self.segments.keys().next().copied().unwrap_or(start);
            self.txns.truncate_before(first, first);
        }
        Ok(deleted)
    }

    /// Rebuilds the open and aborted transactions from the batch headers of every segment
    /// (control batches are read to learn their type).
    fn rebuild_txn_state(&mut self) -> Result<(), LogError> {
        self.txns.clear();
        for seg in self.segments.values() {
            let mut pos = 0u64;
            while let Some(h) = seg.header_at(pos)? {
                if h.attributes & crate::txn::TRANSACTIONAL_FLAG != 0 {
                    let marker = if h.is_control() {
                        let bytes =
                            crate::segment::read_exact_uninit(&seg.file, pos, h.total_len())?;
                        crate::txn::control_type(&h, &bytes).unwrap_or(None)
                    } else {
                        None
                    };
                    self.txns.observe(&h, marker, seg.base_offset, pos);
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(())
    }

    /// Appends a validated batch whose `header` is the incoming one: rolls when needed,
    /// assigns offsets, records producer and transaction state.
    fn append_validated(
        &mut self,
        batch: &[u8],
        mut header: crate::batch::BatchHeader,
        marker: Option<ControlType>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let last_offset = self
            .log_end_offset()
            .saturating_add(i64::from(header.last_offset_delta));
        self.roll_if_needed(batch.len() as u64, last_offset, now_ms)?;
        let base_offset = self.log_end_offset();
        header.base_offset = base_offset;
        header.partition_leader_epoch = 0;
        let interval = self.config.index_interval_bytes;
        let active = self
            .segments
            .values_mut()
            .next_back()
            .ok_or(LogError::Poisoned)?;
        let (segment_base, position) = (active.base_offset, active.size);
        if let Err(e) = active.append(batch, &header, interval) {
            self.poisoned = true;
            return Err(e);
        }
        self.producers.record(&header);
        self.txns.observe(&header, marker, segment_base, position);
        self.appended_bytes += batch.len() as u64;
        Ok(AppendInfo {
            base_offset,
            last_offset: header.last_offset(),
            duplicate: false,
        })
    }

    fn rebuild_producer_state(&mut self) -> Result<(), LogError> {
        self.producers.clear();
        for seg in self
            .segments
            .values()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let mut pos = 0u64;
            while let Some(h) = seg.header_at(pos)? {
                self.producers.record(&h);
                pos += h.total_len() as u64;
            }
        }
        Ok(())
    }

    /// Bytes appended (since the log was opened) that no completed fsync covers yet.
    pub fn unflushed_bytes(&self) -> u64 {
        self.appended_bytes.saturating_sub(self.synced_bytes)
    }

    /// Directory holding this log's segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the storage settings (topic config change); applies from the next append.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    fn active(&self) -> Result<&Segment, LogError> {
        self.segments.values().next_back().ok_or(LogError::Poisoned)
    }

    /// Seals the active segment and starts a new one when a batch of `incoming` bytes whose
    /// last offset is `last_offset` would take it past `segment.bytes` (never past
    /// [`MAX_SEGMENT_BYTES`], whatever the config says) or past the offsets its index can
    /// address, or when it is older than `segment.ms`.
    fn roll_if_needed(
        &mut self,
        incoming: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let active = self.active()?;
        let limit = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let full = active.size > 0 && active.size + incoming > limit;
        let offsets_full = active.size > 0
            && last_offset
                .checked_sub(active.base_offset)
                .is_none_or(|rel| u32::try_from(rel).is_err());
        let old = active.size > 0 && now_ms - active.created_ms >= self.config.segment_ms;
        if !(full || offsets_full || old) {
            return Ok(());
        }
        let next = active.next_offset;
        if let Err(e) = active.seal() {
            self.poisoned = true;
            return Err(e);
        }
        let seg = Segment::create(&self.dir, next, now_ms)?;
        self.segments.insert(next, seg);
        Ok(())
    }
}

/// The log start offset kept in `dir` ([`LOG_START_OFFSET_FILE`]); 0 when there is none.
///
/// Errors: the file exists but cannot be read or does not hold an offset.
fn read_start_offset(dir: &Path) -> Result<i64, LogError> {
    match std::fs::read_to_string(dir.join(LOG_START_OFFSET_FILE)) {
        Ok(text) => text.trim().parse::<i64>().map_err(|e| LogError::Corrupt {
            offset: 0,
            segment: dir.join(LOG_START_OFFSET_FILE).display().to_string(),
            reason: format!("not a log start offset: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Writes the log start offset to `dir` atomically: a temporary file, fsynced, renamed over
/// [`LOG_START_OFFSET_FILE`], then the directory fsynced.
fn write_start_offset(dir: &Path, offset: i64) -> Result<(), LogError> {
    use std::io::Write;
    let path = dir.join(LOG_START_OFFSET_FILE);
    let tmp = dir.join(format!("{LOG_START_OFFSET_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{offset}\n").as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, &path)?;
    crate::segment::sync_dir(dir)
}

impl LocalLog {
    /// Decides a read of whole batches from `offset` (up to `max_bytes`, at least one batch)
    /// using only in-memory state, so the caller can release the partition lock before the
    /// positional reads of [`ReadPlan::read`]. Same contract as [`PartitionLog::read`].
    ///
    /// Errors: `OffsetOutOfRange` outside `[log_start_offset, log_end_offset]`.
    pub fn plan_read(&self, offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError> {
        let log_start_offset = self.log_start_offset();
        let high_watermark = self.log_end_offset();
        if offset < log_start_offset || offset > high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset: high_watermark,
            });
        }
        // The segment holding `offset`, and the next one in case `offset` lies past the
        // first's last batch (its end, or a gap left by compaction). Segments other than the
        // active one are never empty, so two are always enough.
        let segments = self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .map(|(_, s)| s)
            .chain(self.segments.range(offset + 1..).map(|(_, s)| s))
            .take(2)
            .filter(|s| offset < s.next_offset)
            .map(|s| s.view(offset, max_bytes))
            .collect();
        Ok(ReadPlan {
            offset,
            max_bytes,
            segments,
            ready: None,
            log_start_offset,
            high_watermark,
        })
    }
}

/// A read decided under the partition lock ([`LocalLog::plan_read`]) and carried out without
/// it. It sees the log as it was when planned: the segment sizes and offsets are a snapshot,
/// and a segment deleted (retention) or replaced (compaction) meanwhile is still read through
/// its open file handle, which keeps the old contents.
#[derive(Debug)]
pub struct ReadPlan {
    offset: i64,
    max_bytes: usize,
    segments: Vec<crate::segment::SegmentView>,
    /// Batches read when the read was planned ([`ReadPlan::ready`]).
    ready: Option<Bytes>,
    log_start_offset: i64,
    high_watermark: i64,
}

impl ReadPlan {
    /// A plan whose batches were already read (for a backend that reads while planning).
    pub fn ready(result: ReadResult) -> Self {
        Self {
            offset: 0,
            max_bytes: 0,
            segments: Vec::new(),
            ready: Some(result.records),
            log_start_offset: result.log_start_offset,
            high_watermark: result.high_watermark,
        }
    }

    /// Performs the read: positional reads only, no lock. Batches of a sealed segment not
    /// yet CRC-checked in this process are checked once, here, before they are served.
    ///
    /// Errors: `Corrupt` when the first batch at the offset fails its checks (a later bad
    /// batch cuts the result short instead, and is reported by the next read); `Io`.
    pub fn read(self) -> Result<ReadResult, LogError> {
        if let Some(records) = self.ready {
            return Ok(ReadResult {
                records,
                log_start_offset: self.log_start_offset,
                high_watermark: self.high_watermark,
            });
        }
        for seg in &self.segments {
            if let Some(records) = seg.read(self.offset, self.max_bytes)? {
                return Ok(ReadResult {
                    records,
                    log_start_offset: self.log_start_offset,
                    high_watermark: self.high_watermark,
                });
            }
        }
        Ok(ReadResult {
            records: Bytes::new(),
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
        })
    }

    /// Performs the read like [`ReadPlan::read`], but returns batches already CRC-checked in
    /// this process as a range of their segment file ([`Records::File`]) for the caller to
    /// send without copying them (`sendfile`); others are read and checked now
    /// ([`Records::Bytes`]). The range ends at an indexed batch boundary, up to one
    /// `index.interval.bytes` short of `max_bytes`; at least one whole batch.
    ///
    /// Errors: as [`ReadPlan::read`].
    pub fn read_zero_copy(self) -> Result<Records, LogError> {
        if let Some(records) = self.ready {
            return Ok(Records::Bytes(records));
        }
        for seg in &self.segments {
            if let Some(records) = seg.slice(self.offset, self.max_bytes)? {
                return Ok(records);
            }
        }
        Ok(Records::Bytes(Bytes::new()))
    }

    /// The partition's `high_watermark` when the read was planned.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The partition's `log_start_offset` when the read was planned.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
}

impl PartitionLog for LocalLog {
    fn append(&mut self, batch: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let header = batch::validate(batch)?;
        if header.is_control() {
            return Err(crate::error::BatchError::ControlBatch.into());
        }
        if header.attributes & crate::txn::TRANSACTIONAL_FLAG != 0 && !header.has_producer_id() {
            return Err(crate::error::BatchError::InvalidProducerId.into());
        }
        if let SequenceCheck::Duplicate { base_offset, .. } = self.producers.check(&header)? {
            return Ok(AppendInfo {
                base_offset,
                last_offset: base_offset + i64::from(header.last_offset_delta),
                duplicate: true,
            });
        }
        if self.config.log_append_time {
            let mut stamped = batch.to_vec();
            batch::set_log_append_time(&mut stamped, now_ms)?;
            let header = batch::validate(&stamped)?;
            return self.append_validated(&stamped, header, None, now_ms);
        }
        self.append_validated(batch, header, None, now_ms)
    }

    fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        kind: ControlType,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let bytes =
            crate::txn::control_batch(producer_id, producer_epoch, kind, coordinator_epoch, now_ms);
        let header = batch::validate(&bytes)?;
        self.producers.check_marker(&header)?;
        self.append_validated(&bytes, header, Some(kind), now_ms)
    }

    fn last_stable_offset(&self) -> i64 {
        // Never below the log start offset (DeleteRecords may move it past an open
        // transaction's first batch; reads below the start are out of range anyway).
        self.txns
            .last_stable_offset(self.log_end_offset())
            .max(self.log_start_offset())
    }

    fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.txns.aborted_between(from, upto)
    }

    fn open_transactions(&self) -> Vec<(i64, i16, i64)> {
        let mut v: Vec<(i64, i16, i64)> = self
            .txns
            .open_transactions()
            .map(|t| (t.producer_id, t.producer_epoch, t.first_offset))
            .collect();
        v.sort_unstable();
        v
    }

    fn plan_read_committed(&self, offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError> {
        let mut plan = LocalLog::plan_read(self, offset, max_bytes)?;
        if let Some(open) = self.txns.first_open() {
            plan.segments
                .retain(|v| v.base_offset() < open.first_offset);
            for v in &mut plan.segments {
                if v.base_offset() == open.segment_base {
                    v.cap(open.first_offset, open.position);
                }
            }
        }
        Ok(plan)
    }

    fn producers(&self) -> Vec<(i64, i16, i32, i64)> {
        self.producers.describe()
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.plan_read(offset, max_bytes)?.read()
    }

    fn log_start_offset(&self) -> i64 {
        self.segments
            .values()
            .next()
            .map_or(0, |s| s.base_offset)
            .max(self.start_offset)
    }

    fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset > end || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        write_start_offset(&self.dir, offset)?;
        self.start_offset = offset;
        self.delete_segments_below_start()?;
        Ok(self.log_start_offset())
    }

    fn log_end_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map_or(0, |s| s.next_offset)
    }

    fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, LogError> {
        let start = self.log_start_offset();
        for seg in self.segments.values() {
            if seg.max_timestamp < timestamp_ms || seg.next_offset <= start {
                continue;
            }
            let mut pos = 0u64;
            while let Some(h) = seg.header_at(pos)? {
                if h.max_timestamp >= timestamp_ms && h.last_offset() >= start {
                    if let Some(found) = seg.record_for_timestamp(pos, &h, timestamp_ms, start)? {
                        return Ok(Some(found));
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        // The batch holding the largest timestamp (the first such batch), then its record.
        let start = self.log_start_offset();
        let mut best: Option<(&Segment, u64, batch::BatchHeader)> = None;
        for seg in self.segments.values() {
            if seg.max_timestamp < 0
                || seg.next_offset <= start
                || best.is_some_and(|(_, _, b)| seg.max_timestamp <= b.max_timestamp)
            {
                continue;
            }
            let mut pos = 0u64;
            while let Some(h) = seg.header_at(pos)? {
                if h.last_offset() >= start
                    && best.is_none_or(|(_, _, b)| h.max_timestamp > b.max_timestamp)
                {
                    best = Some((seg, pos, h));
                }
                pos += h.total_len() as u64;
            }
        }
        match best {
            None => Ok(None),
            Some((seg, pos, h)) => Ok(seg
                .record_for_timestamp(pos, &h, h.max_timestamp, start)?
                .or(Some((h.base_offset.max(start), h.max_timestamp)))),
        }
    }

    fn sync_target(&self) -> Option<SyncTarget> {
        let end = self.log_end_offset();
        if end <= self.synced_offset {
            return None;
        }
        let active = self.segments.values().next_back()?;
        Some(SyncTarget {
            file: Arc::clone(&active.file),
            upto_offset: end,
            upto_bytes: self.appended_bytes,
        })
    }

    fn sync_done(
        &mut self,
        upto_offset: i64,
        upto_bytes: u64,
        result: std::io::Result<()>,
    ) -> Result<(), LogError> {
        if self.poisoned {
            // After a failed write or fsync a later fsync's success proves nothing (Linux
            // reports a writeback error once, and may have dropped the pages): whoever waits
            // on this log is told it failed.
            return Err(LogError::Poisoned);
        }
        match result {
            Ok(()) => {
                self.synced_offset = self.synced_offset.max(upto_offset);
                self.synced_bytes = self.synced_bytes.max(upto_bytes);
                Ok(())
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; log poisoned");
                self.poisoned = true;
                Err(e.into())
            }
        }
    }

    fn synced_offset(&self) -> i64 {
        self.synced_offset
    }

    fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        let mut total: i64 = self.segments.values().map(|s| s.size as i64).sum();
        while self.segments.len() > 1 {
            let Some((&base, seg)) = self.segments.iter().next() else {
                break;
            };
            let too_old = self.config.retention_ms >= 0
                && seg.max_timestamp >= 0
                && now_ms - seg.max_timestamp > self.config.retention_ms;
            let too_big = self.config.retention_bytes >= 0
                && total - seg.size as i64 >= self.config.retention_bytes;
            if !(too_old || too_big) {
                break;
            }
            seg.remove_files()?;
            total -= seg.size as i64;
            self.segments.remove(&base);
            deleted += 1;
        }
        if deleted > 0 {
            let start = self.log_start_offset();
            let first = self.segments.keys().next().copied().unwrap_or(start);
            self.txns.truncate_before(first, start);
        }
        Ok(deleted)
    }

    fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    fn plan_read(&self, offset: i64, max_bytes: usize) -> Result<ReadPlan, LogError> {
        LocalLog::plan_read(self, offset, max_bytes)
    }

    fn unflushed_bytes(&self) -> u64 {
        LocalLog::unflushed_bytes(self)
    }

    fn compact(
        &mut self,
        now_ms: i64,
        delete_retention_ms: i64,
    ) -> Result<CompactionStats, LogError> {
        LocalLog::compact(self, now_ms, delete_retention_ms)
    }

    fn set_config(&mut self, config: LogConfig) {
        LocalLog::set_config(self, config);
    }

    fn delete(&mut self) -> Result<(), LogError> {
        // Poisoned first: no append lands in a directory being removed, and `Drop` does not
        // try to seal the active segment into it.
        self.poisoned = true;
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for LocalLog {
    fn drop(&mut self) {
        if let Some(active) = self.segments.values().next_back() {
            if !self.poisoned && active.file.sync_data().is_ok() {
                let _ = active.seal();
            }
        }
    }
}

/// What one [`LocalLog::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments rewritten (or deleted because nothing was left in them).
    pub segments_rewritten: usize,
    /// Records dropped.
    pub records_removed: u64,
    /// Bytes of the rewritten segments, before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}
