//! One segment of a partition log: a `.log` file of whole record batches starting at
//! `base_offset`, and a sparse offset index (`.index`) mapping relative offsets to file
//! positions, one entry per `index.interval.bytes` of log.
//!
//! Invariants: the `.log` file holds only whole, CRC-valid batches with increasing offsets (a
//! torn tail is cut by recovery); `size` is the file length; `next_offset` is one past the last
//! offset in the segment. The index file is written when a segment is sealed and is only a
//! hint: a missing or malformed index is rebuilt from the batch headers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::{BatchError, LogError};

/// File name stem for a segment starting at `base_offset` (20 digits, as Kafka).
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

const INDEX_MAGIC: u32 = 0x5348_4958; // "SHIX"

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) file: Arc<File>,
    pub(crate) log_path: PathBuf,
    pub(crate) index_path: PathBuf,
    /// Bytes in the `.log` file.
    pub(crate) size: u64,
    /// `(relative offset, file position)`, ascending.
    pub(crate) index: Vec<(u32, u32)>,
    bytes_since_index: u64,
    pub(crate) next_offset: i64,
    /// Largest `max_timestamp` of any batch (ms), or -1 when empty.
    pub(crate) max_timestamp: i64,
    /// When the segment got its first batch (ms, broker clock), for `segment.ms` rolling.
    pub(crate) created_ms: i64,
    /// Bytes from the start whose batches passed a CRC check in this process (every append
    /// is checked; a sealed segment opened from its index is not, until it is read).
    /// Shared with the [`SegmentView`]s of reads in progress.
    pub(crate) verified_upto: Arc<AtomicU64>,
}

/// fsyncs a directory so entries created or renamed in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// A batch header found at a file position.
pub(crate) struct Located {
    pub(crate) position: u64,
    pub(crate) header: BatchHeader,
}

impl Segment {
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        let stem = file_stem(base_offset);
        let log_path = dir.join(format!("{stem}.log"));
        let index_path = dir.join(format!("{stem}.index"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        // The new file's directory entry must be durable before data fsynced into it counts.
        sync_dir(dir)?;
        Ok(Self {
            base_offset,
            file: Arc::new(file),
            log_path,
            index_path,
            size: 0,
            index: Vec::new(),
            bytes_since_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            verified_upto: Arc::new(AtomicU64::new(u64::MAX)),
        })
    }

    /// Opens an existing segment. A sealed segment with a valid index file is opened from it
    /// without reading the log; otherwise (active segment, or index missing) every batch is
    /// scanned, with CRC checks when `validate` is set, and the file is truncated after the
    /// last whole valid batch.
    pub(crate) fn open(
        log_path: &Path,
        base_offset: i64,
        validate: bool,
        index_interval: u64,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        Self::open_with(
            log_path,
            base_offset,
            validate,
            validate,
            index_interval,
            now_ms,
        )
    }

    /// [`Segment::open`] for a segment whose offsets may have gaps (compacted): CRC-checked
    /// when `validate`, but a batch may start past the previous one's end.
    pub(crate) fn open_with(
        log_path: &Path,
        base_offset: i64,
        validate: bool,
        contiguous: bool,
        index_interval: u64,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let file = OpenOptions::new().read(true).write(true).open(log_path)?;
        let size = file.metadata()?.len();
        let index_path = log_path.with_extension("index");
        let created_ms = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now_ms, |d| d.as_millis() as i64);
        let mut seg = Self {
            base_offset,
            file: Arc::new(file),
            log_path: log_path.to_path_buf(),
            index_path,
            size,
            index: Vec::new(),
            bytes_since_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms,
            verified_upto: Arc::new(AtomicU64::new(0)),
        };
        if !validate && seg.load_index(size) {
            return Ok(seg);
        }
        seg.recover(validate, contiguous, index_interval)?;
        if validate {
            seg.verified_upto.store(u64::MAX, Ordering::Relaxed);
        }
        Ok(seg)
    }

    /// Scans every batch from the start, rebuilding the index, `next_offset` and
    /// `max_timestamp`; cuts the file after the last whole batch that passes the checks.
    fn recover(
        &mut self,
        validate: bool,
        contiguous: bool,
        index_interval: u64,
    ) -> Result<(), LogError> {
        let file_len = self.size;
        let mut pos = 0u64;
        self.index.clear();
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        let mut buf = Vec::new();
        while pos < file_len {
            let Some(header) = self.header_at(pos)? else {
                break;
            };
            let len = header.total_len() as u64;
            if pos + len > file_len || header.base_offset < self.next_offset {
                break;
            }
            // The active segment's offsets are contiguous (compaction never rewrites it), so
            // a base offset that jumps is damage outside the CRC, not data.
            if contiguous && header.base_offset != self.next_offset {
                break;
            }
            if validate {
                buf.resize(len as usize, 0);
                self.file.read_exact_at(&mut buf, pos)?;
                if batch::validate(&buf).is_err() {
                    break;
                }
            }
            self.note_batch(&header, pos, index_interval)?;
            pos += len;
        }
        if pos < file_len {
            tracing::warn!(
                segment = %self.log_path.display(),
                valid_bytes = pos,
                file_bytes = file_len,
                "truncating torn or corrupt tail of log segment"
            );
            self.file.set_len(pos)?;
            self.file.sync_all()?;
        }
        self.size = pos;
        Ok(())
    }

    /// The index entry `(relative offset, position)` for a batch starting at `position`, both
    /// as the 32-bit values the index stores.
    ///
    /// Errors: [`LogError::IndexOverflow`] when either does not fit in a `u32` (a segment past
    /// 4 GiB, or more than 2^32 offsets past its base): refused rather than truncated into an
    /// index entry that points elsewhere.
    pub(crate) fn index_entry(
        &self,
        header: &BatchHeader,
        position: u64,
    ) -> Result<(u32, u32), LogError> {
        let overflow = || LogError::IndexOverflow {
            segment: self.log_path.display().to_string(),
            offset: header.base_offset,
            position,
        };
        let rel = header
            .base_offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(overflow)?;
        let pos = u32::try_from(position).map_err(|_| overflow())?;
        Ok((rel, pos))
    }

    /// Accounts for a batch at `position`: index entry (every `index_interval` bytes), next
    /// offset, largest timestamp. Checks the index entry before changing anything.
    ///
    /// Errors: as [`Segment::index_entry`].
    fn note_batch(
        &mut self,
        header: &BatchHeader,
        position: u64,
        index_interval: u64,
    ) -> Result<(), LogError> {
        let entry = self.index_entry(header, position)?;
        if self.index.is_empty() || self.bytes_since_index >= index_interval {
            self.index.push(entry);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_len() as u64;
        self.next_offset = header.last_offset() + 1;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        Ok(())
    }

    /// Reads the batch header at `pos`; `None` when fewer than a header's bytes remain or the
    /// header is malformed.
    pub(crate) fn header_at(&self, pos: u64) -> Result<Option<BatchHeader>, LogError> {
        header_at(&self.file, pos, self.size_on_disk_hint())
    }

    /// The first record at or after `timestamp_ms` in the batch at `pos` (whose header is
    /// `h`), not below offset `min_offset` (the log start offset): `(offset, timestamp)`. A
    /// `LogAppendTime` batch answers with its first such offset and `max_timestamp`; otherwise
    /// the records are decoded (and decompressed). `None` when no record of the batch
    /// qualifies.
    ///
    /// Errors: `Corrupt` when the batch does not decode; `Io`.
    pub(crate) fn record_for_timestamp(
        &self,
        pos: u64,
        h: &BatchHeader,
        timestamp_ms: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if h.attributes & batch::LOG_APPEND_TIME_FLAG != 0 {
            return Ok(
                (h.max_timestamp >= timestamp_ms && h.last_offset() >= min_offset)
                    .then_some((h.base_offset.max(min_offset), h.max_timestamp)),
            );
        }
        let mut buf = vec![0u8; h.total_len()];
        self.file.read_exact_at(&mut buf, pos)?;
        let mut bytes = Bytes::from(buf);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).map_err(|e| {
            LogError::Corrupt {
                offset: h.base_offset,
                segment: self.log_path.display().to_string(),
                reason: format!("cannot decode the batch: {e}"),
            }
        })?;
        Ok(set
            .records
            .iter()
            .find(|r| r.timestamp >= timestamp_ms && r.offset >= min_offset)
            .map(|r| (r.offset, r.timestamp)))
    }

    fn size_on_disk_hint(&self) -> u64 {
        // During recovery `size` is the file length; afterwards it is the valid length.
        self.size
    }

    /// Appends one batch as received, except for the broker-owned header fields outside the
    /// CRC (`base_offset`, `partition_leader_epoch`, bytes 0..16), which are written from
    /// `header`: one `pwritev` of the patched 16 bytes and the rest of `bytes`, so the batch
    /// is never copied in memory.
    ///
    /// Errors: `Batch(Truncated)` when `bytes` is shorter than a header; `IndexOverflow`
    /// when the batch's position or offset cannot be indexed (nothing written); `Io` when the
    /// write fails (the caller poisons the log: the file may hold a partial batch past `size`,
    /// which recovery cuts).
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        header: &BatchHeader,
        index_interval: u64,
    ) -> Result<(), LogError> {
        let rest = bytes.get(16..).ok_or(BatchError::Truncated)?;
        self.index_entry(header, self.size)?;
        let mut prefix = [0u8; 16];
        let fields = header.base_offset.to_be_bytes();
        let length = header.batch_length.to_be_bytes();
        let epoch = header.partition_leader_epoch.to_be_bytes();
        for (slot, b) in prefix
            .iter_mut()
            .zip(fields.iter().chain(&length).chain(&epoch))
        {
            *slot = *b;
        }
        write_all_at2(&self.file, &prefix, rest, self.size)?;
        let pos = self.size;
        self.size += bytes.len() as u64;
        self.note_batch(header, pos, index_interval)
    }

    /// What a read needs of this segment, taken under the partition lock: the file handle, a
    /// snapshot of its size and offsets, where the index says to start looking for `offset`,
    /// and the last indexed batch boundary within `max_bytes` of that start (where a read
    /// served straight from the file can end without reading batch headers).
    pub(crate) fn view(&self, offset: i64, max_bytes: usize) -> SegmentView {
        // A lookup key, not a stored value: an offset more than u32::MAX past the base sorts
        // after every entry, which is what saturating gives.
        let rel = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let idx = self.index.partition_point(|(r, _)| *r <= rel);
        let scan_from = match idx.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some((_, p)) => u64::from(*p),
            None => 0,
        };
        let limit = scan_from.saturating_add(max_bytes as u64);
        let within = self.index.partition_point(|(_, p)| u64::from(*p) <= limit);
        let cut = within
            .checked_sub(1)
            .and_then(|i| self.index.get(i))
            .map(|(r, p)| (u64::from(*p), self.base_offset + i64::from(*r)));
        SegmentView {
            cut,
            file: Arc::clone(&self.file),
            log_path: self.log_path.clone(),
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            size: self.size,
            scan_from,
            verified_upto: Arc::clone(&self.verified_upto),
        }
    }

    /// Writes the index file (atomically, via a temporary file) and fsyncs the segment.
    pub(crate) fn seal(&self) -> Result<(), LogError> {
        self.file.sync_data()?;
        let mut out = Vec::with_capacity(24 + self.index.len() * 8);
        out.extend_from_slice(&INDEX_MAGIC.to_be_bytes());
        out.extend_from_slice(&(self.size).to_be_bytes());
        out.extend_from_slice(&self.next_offset.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        for (rel, pos) in &self.index {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        let tmp = self.index_path.with_extension("index.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &self.index_path)?;
        Ok(())
    }

    /// Loads the index file written by [`Segment::seal`]; false when absent, malformed, or
    /// written for a different log length.
    fn load_index(&mut self, log_len: u64) -> bool {
        let Ok(bytes) = std::fs::read(&self.index_path) else {
            return false;
        };
        let word = |at: usize| -> Option<[u8; 8]> { bytes.get(at..at + 8)?.try_into().ok() };
        let (Some(magic), Some(size), Some(next), Some(max_ts)) = (
            bytes.get(0..4).and_then(|s| <[u8; 4]>::try_from(s).ok()),
            word(4),
            word(12),
            word(20),
        ) else {
            return false;
        };
        if u32::from_be_bytes(magic) != INDEX_MAGIC || u64::from_be_bytes(size) != log_len {
            return false;
        }
        let Some(entries) = bytes.get(28..) else {
            return false;
        };
        if entries.len() % 8 != 0 {
            return false;
        }
        self.index = entries
            .chunks_exact(8)
            .filter_map(|c| {
                let rel = u32::from_be_bytes(c.get(0..4)?.try_into().ok()?);
                let pos = u32::from_be_bytes(c.get(4..8)?.try_into().ok()?);
                Some((rel, pos))
            })
            .collect();
        self.next_offset = i64::from_be_bytes(next);
        self.max_timestamp = i64::from_be_bytes(max_ts);
        true
    }

    pub(crate) fn remove_files(&self) -> Result<(), LogError> {
        std::fs::remove_file(&self.log_path)?;
        match std::fs::remove_file(&self.index_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads the batch header at `pos` of `file`, whose valid length is `size`; `None` when fewer
/// than a header's bytes remain or the header is malformed.
fn header_at(file: &File, pos: u64, size: u64) -> Result<Option<BatchHeader>, LogError> {
    if pos + HEADER_LEN as u64 > size {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_LEN];
    match file.read_exact_at(&mut h, pos) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    Ok(BatchHeader::parse(&h).ok())
}

/// Writes `a` then `b` at `pos` with `pwritev`, retrying short writes and `EINTR`.
fn write_all_at2(file: &File, mut a: &[u8], mut b: &[u8], mut pos: u64) -> std::io::Result<()> {
    while !(a.is_empty() && b.is_empty()) {
        let bufs = [std::io::IoSlice::new(a), std::io::IoSlice::new(b)];
        let n = match rustix::io::pwritev(file, &bufs, pos) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        pos += n as u64;
        let from_a = n.min(a.len());
        a = a.get(from_a..).unwrap_or_default();
        b = b.get(n - from_a..).unwrap_or_default();
    }
    Ok(())
}

/// Reads exactly `len` bytes at `pos` into a new buffer, without zeroing it first.
///
/// Errors: `UnexpectedEof` when the file ends first; other I/O errors.
pub(crate) fn read_exact_uninit(file: &File, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let at = pos + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // The capacity may exceed `len`: bytes past it (a batch being written) are not ours.
    buf.truncate(len);
    Ok(buf)
}

/// A segment as a read sees it: the open file, and its size and offsets when the read was
/// planned. Reads through it take no lock (see the partition log's `ReadPlan`).
#[derive(Debug)]
pub(crate) struct SegmentView {
    file: Arc<File>,
    log_path: PathBuf,
    base_offset: i64,
    next_offset: i64,
    size: u64,
    /// Where the sparse index says to start scanning for the offset.
    scan_from: u64,
    /// `(position, first offset)` of the last indexed batch starting at most `max_bytes`
    /// after `scan_from`.
    cut: Option<(u64, i64)>,
    verified_upto: Arc<AtomicU64>,
}

impl SegmentView {
    /// The segment's base offset.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Ends the view before the batch at `position`, whose first offset is `offset` (a
    /// `read_committed` read stopping at the last stable offset).
    pub(crate) fn cap(&mut self, offset: i64, position: u64) {
        if position < self.size {
            self.size = position;
            self.next_offset = self.next_offset.min(offset);
        }
        if self.cut.is_some_and(|(pos, _)| pos > self.size) {
            self.cut = None;
        }
    }

    fn corrupt(&self, offset: i64, reason: String) -> LogError {
        LogError::Corrupt {
            offset,
            segment: self.log_path.display().to_string(),
            reason,
        }
    }

    /// File position of the first batch that contains `offset` or comes after it, and that
    /// batch's header; `None` when the segment has no such batch.
    ///
    /// Within `size` every position reached is a whole batch's start (recovery or the index
    /// guarantee it); an unreadable header or a length running past the end is damage on
    /// disk, reported rather than skipped over (skipping would silently lose records).
    fn locate(&self, offset: i64) -> Result<Option<Located>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let mut pos = self.scan_from;
        while pos < self.size {
            let Some(header) = header_at(&self.file, pos, self.size)? else {
                let reason = format!("unreadable batch header at position {pos}");
                return Err(self.corrupt(offset, reason));
            };
            if pos + header.total_len() as u64 > self.size {
                let reason = format!(
                    "batch at position {pos} claims {} bytes past the segment end",
                    header.total_len()
                );
                return Err(self.corrupt(offset, reason));
            }
            if header.last_offset() >= offset {
                return Ok(Some(Located {
                    position: pos,
                    header,
                }));
            }
            pos += header.total_len() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one holding `offset` (or the first after it), up to `max_bytes`
    /// but at least that first batch, as a range of the file to send as is (no copy into
    /// memory), when every byte of it passed its CRC check in this process; otherwise read
    /// and checked now, as [`SegmentView::read`]. `None` when the segment has no batch at or
    /// after `offset`. The range ends at the segment's end or at an indexed batch boundary,
    /// so it may stop up to one index interval (`index.interval.bytes`) short of `max_bytes`.
    pub(crate) fn slice(&self, offset: i64, max_bytes: usize) -> Result<Option<Records>, LogError> {
        let offset = offset.max(self.base_offset);
        let Some(first) = self.locate(offset)? else {
            return Ok(None);
        };
        let start = first.position;
        let first_end = start + first.header.total_len() as u64;
        let limit = start.saturating_add(max_bytes as u64);
        let (end, end_offset) = match self.cut {
            _ if self.size <= limit => (self.size, self.next_offset),
            Some((pos, at)) if pos >= first_end && pos <= limit => (pos, at),
            _ => (first_end, first.header.last_offset() + 1),
        };
        if end > self.verified_upto.load(Ordering::Relaxed) {
            return Ok(self.read(offset, max_bytes)?.map(Records::Bytes));
        }
        Ok(Some(Records::File(FileSlice {
            file: Arc::clone(&self.file),
            position: start,
            len: (end - start) as usize,
            first_offset: first.header.base_offset,
            end_offset,
        })))
    }

    /// Whole batches from the one holding `offset` (or the first after it), up to
    /// `max_bytes` but at least that first batch, with one positional read; `None` when the
    /// segment has no batch at or after `offset`.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>, LogError> {
        let offset = offset.max(self.base_offset);
        let Some(first) = self.locate(offset)? else {
            return Ok(None);
        };
        let start = first.position;
        let first_len = first.header.total_len();
        let available = (self.size - start) as usize;
        let want = max_bytes.min(available).max(first_len);
        let mut buf = read_exact_uninit(&self.file, start, want)?;
        let mut whole = batch::whole_batches_len(&buf).max(first_len);
        buf.truncate(whole);
        let verified = self.verified_upto.load(Ordering::Relaxed);
        if start + whole as u64 > verified {
            let mut pos = 0usize;
            // Offsets increase batch after batch and stay inside the segment: the CRC does
            // not cover `base_offset`, so this is how a flipped one is caught.
            let mut next_min = self.base_offset;
            while pos < whole {
                let len = BatchHeader::parse(buf.get(pos..).unwrap_or_default())
                    .map_or(whole - pos, |h| h.total_len());
                let chunk = buf.get(pos..pos + len).unwrap_or_default();
                let checked = batch::validate(chunk).and_then(|h| {
                    if h.base_offset < next_min || h.last_offset() >= self.next_offset {
                        Err(BatchError::InvalidOffset(h.base_offset))
                    } else {
                        Ok(h)
                    }
                });
                match checked {
                    Ok(h) => next_min = h.last_offset() + 1,
                    // The offset asked for: the header's own may be the damage.
                    Err(e) if pos == 0 => return Err(self.corrupt(offset, e.to_string())),
                    // Serve the good prefix; the next read reports the bad batch.
                    Err(_) => break,
                }
                pos += len;
            }
            whole = pos.min(whole);
            buf.truncate(whole);
            if start <= verified {
                self.verified_upto
                    .fetch_max(start + whole as u64, Ordering::Relaxed);
            }
        }
        Ok(Some(Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: (HEADER_LEN - batch::LOG_OVERHEAD) as i32,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 1,
        }
    }

    #[test]
    fn positions_and_offsets_past_the_32_bit_index_are_refused_not_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 100, 0).expect("segment");
        let last_position = u64::from(u32::MAX);
        assert_eq!(
            seg.index_entry(&header(100 + i64::from(u32::MAX)), last_position)
                .expect("largest entry fits"),
            (u32::MAX, u32::MAX)
        );
        // One byte further would have been stored as position 0.
        assert!(matches!(
            seg.index_entry(&header(101), last_position + 1),
            Err(LogError::IndexOverflow { position, offset: 101, .. }) if position == last_position + 1
        ));
        // An offset 2^32 past the base would have been stored as relative offset 0.
        assert!(matches!(
            seg.index_entry(&header(100 + (1i64 << 32)), 0),
            Err(LogError::IndexOverflow { .. })
        ));
        assert!(matches!(
            seg.index_entry(&header(99), 0),
            Err(LogError::IndexOverflow { .. })
        ));
        // A refused batch changes nothing.
        let err = seg.note_batch(&header(101), last_position + 1, 0);
        assert!(matches!(err, Err(LogError::IndexOverflow { .. })));
        assert!(seg.index.is_empty());
        assert_eq!(seg.next_offset, 100);
    }
}

/// Where a read's batches are.
#[derive(Debug, Clone)]
pub enum Records {
    /// In memory (read and checked by this read, or empty).
    Bytes(Bytes),
    /// A range of a segment file: whole batches, each CRC-checked earlier in this process.
    File(FileSlice),
}

impl Records {
    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Records::Bytes(b) => b.len(),
            Records::File(f) => f.len,
        }
    }

    /// True when no batch was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole stored batches as a byte range of an open segment file. The bytes never change
/// (segments are append-only; compaction and retention replace or unlink files, and this
/// handle keeps the old contents readable).
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    /// Byte position of the first batch in the file.
    pub position: u64,
    /// Bytes in the range.
    pub len: usize,
    /// `base_offset` of the first batch.
    pub first_offset: i64,
    /// One past the last offset of the last batch.
    pub end_offset: i64,
}

impl FileSlice {
    /// The range's bytes, read into memory (for a caller that cannot send from the file).
    ///
    /// Errors: I/O errors; `UnexpectedEof` if the file is shorter than the range.
    pub fn read_to_bytes(&self) -> std::io::Result<Bytes> {
        read_exact_uninit(&self.file, self.position, self.len).map(Bytes::from)
    }
}
