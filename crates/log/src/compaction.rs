//! Log compaction (`cleanup.policy=compact`, Kafka's log cleaner): in the sealed segments of a
//! partition, only the latest record of each key is kept; a tombstone (a record with a key and
//! no value) is kept until it is older than `delete.retention.ms`, then dropped as well.
//!
//! - The latest offset of every key is taken over the whole log, the active segment included,
//!   so a record superseded by a newer one anywhere is dropped.
//! - The two newest segments (the active one and the last sealed one) are never rewritten:
//!   they hold the idempotent-producer state that recovery rebuilds.
//! - Records keep their offsets; a batch whose records all stay is copied byte for byte, a
//!   batch with some records dropped is re-encoded (same codec, producer id and epoch), a
//!   batch with none left is dropped. A segment left empty is deleted.
//! - Each rewritten segment is written to `<base>.log.tmp`, fsynced, and renamed over the old
//!   file: a crash leaves either the old or the new segment (leftover `.tmp` files are removed
//!   at open). Control batches and keyless records are kept.
//! - Transactions, as Kafka's cleaner treats them: only segments wholly below the last stable
//!   offset are cleaned, and records at or above it (of transactions still open) do not count
//!   as a key's latest; records of aborted transactions never count and are removed.
//!   Transaction markers are kept (Kafka removes a marker once its transaction's records are
//!   gone and `delete.retention.ms` has passed; Shoal keeps it, a few dozen bytes each).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

use crate::error::LogError;
pub use crate::partition_log::CompactionStats;
use crate::partition_log::LocalLog;
use crate::segment::{sync_dir, Segment};

fn compaction_error(what: impl std::fmt::Display) -> LogError {
    LogError::Io(std::io::Error::other(format!("compaction: {what}")))
}

/// A stored batch that does not decode (its CRC-32C fails, or its records are malformed): the
/// bytes on disk are damaged, which is corruption, not an I/O failure.
fn undecodable(
    seg: &Segment,
    h: &crate::batch::BatchHeader,
    e: impl std::fmt::Display,
) -> LogError {
    LogError::Corrupt {
        offset: h.base_offset,
        segment: seg.log_path.display().to_string(),
        reason: format!("compaction cannot decode the batch: {e}"),
    }
}

/// Every batch of `seg` as `(bytes, header)`.
fn batches(seg: &Segment) -> Result<Vec<(Bytes, crate::batch::BatchHeader)>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while let Some(h) = seg.header_at(pos)? {
        let len = h.total_len();
        let mut buf = vec![0u8; len];
        seg.file.read_exact_at(&mut buf, pos)?;
        out.push((Bytes::from(buf), h));
        pos += len as u64;
    }
    Ok(out)
}

impl LocalLog {
    /// Compacts the sealed segments but the newest one (see the module docs). `now_ms` and
    /// `delete_retention_ms` (Kafka's `delete.retention.ms`) decide which tombstones go.
    ///
    /// Errors: `Corrupt` for a stored batch that cannot be decoded (failed CRC-32C or
    /// malformed records; nothing is rewritten, since the latest offset of each key is
    /// gathered over the whole log first, and a batch of a segment being rewritten fails
    /// before its temporary file replaces anything); `Io` for I/O errors or a batch that
    /// cannot be re-encoded.
    pub fn compact(
        &mut self,
        now_ms: i64,
        delete_retention_ms: i64,
    ) -> Result<CompactionStats, LogError> {
        let mut stats = CompactionStats::default();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        if bases.len() < 3 {
            return Ok(stats);
        }
        let lso = crate::PartitionLog::last_stable_offset(self);
        let cleanable: Vec<i64> = bases
            .iter()
            .take(bases.len() - 2)
            .copied()
            .filter(|b| self.segments.get(b).is_some_and(|s| s.next_offset <= lso))
            .collect();
        let aborted = |h: &crate::batch::BatchHeader| {
            h.attributes & crate::txn::TRANSACTIONAL_FLAG != 0
                && self.txns.is_aborted(h.producer_id, h.base_offset)
        };
        // Latest offset of every key, over the whole log.
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for seg in self.segments.values() {
            for (bytes, h) in batches(seg)? {
                if h.is_control() || h.base_offset >= lso || aborted(&h) {
                    continue;
                }
                let set = RecordBatchDecoder::decode(&mut bytes.clone())
                    .map_err(|e| undecodable(seg, &h, e))?;
                for r in set.records {
                    if let Some(k) = r.key {
                        latest.insert(k, r.offset);
                    }
                }
            }
        }
        let horizon = now_ms.saturating_sub(delete_retention_ms.max(0));
        for base in cleanable {
            let Some(seg) = self.segments.get(&base) else {
                continue;
            };
            let mut out: Vec<u8> = Vec::with_capacity(seg.size as usize);
            let mut changed = false;
            let mut removed = 0u64;
            for (bytes, h) in batches(seg)? {
                if h.is_control() {
                    out.extend_from_slice(&bytes);
                    continue;
                }
                if aborted(&h) {
                    removed += u64::try_from(h.records_count).unwrap_or(0);
                    changed = true;
                    continue;
                }
                let set = RecordBatchDecoder::decode(&mut bytes.clone())
                    .map_err(|e| undecodable(seg, &h, e))?;
                let total = set.records.len();
                let expired_tombstones = h.max_timestamp < horizon;
                let mut kept: Vec<kafka_protocol::records::Record> = set
                    .records
                    .into_iter()
                    .filter(|r| match &r.key {
                        None => true,
                        Some(k) => {
                            latest.get(k) == Some(&r.offset)
                                && !(r.value.is_none() && expired_tombstones)
                        }
                    })
                    .collect();
                removed += (total - kept.len()) as u64;
                if kept.len() == total {
                    out.extend_from_slice(&bytes);
                    continue;
                }
                changed = true;
                if kept.is_empty() {
                    continue;
                }
                // One batch out: sequences continue from the first kept record so the encoder
                // keeps the records together (producer id, epoch and offsets are kept).
                let first_offset = kept.first().map_or(0, |r| r.offset);
                let first_seq = kept.first().map_or(-1, |r| r.sequence);
                for r in &mut kept {
                    let delta = i32::try_from(r.offset - first_offset).unwrap_or(i32::MAX);
                    r.sequence = if first_seq < 0 {
                        delta
                    } else {
                        first_seq.wrapping_add(delta)
                    };
                }
                let mut buf = BytesMut::new();
                RecordBatchEncoder::encode(
                    &mut buf,
                    kept.iter(),
                    &RecordEncodeOptions {
                        version: 2,
                        compression: set.compression,
                    },
                )
                .map_err(|e| compaction_error(format!("re-encoding: {e}")))?;
                out.extend_from_slice(&buf);
            }
            if !changed {
                continue;
            }
            stats.segments_rewritten += 1;
            stats.records_removed += removed;
            stats.bytes_before += seg.size;
            stats.bytes_after += out.len() as u64;
            let log_path = seg.log_path.clone();
            if out.is_empty() {
                seg.remove_files()?;
                self.segments.remove(&base);
                sync_dir(&self.dir)?;
                continue;
            }
            let tmp = log_path.with_extension("log.tmp");
            {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&out)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &log_path)?;
            sync_dir(&self.dir)?;
            // CRC-checked, but offsets may now have gaps.
            let reopened = Segment::open_with(
                &log_path,
                base,
                true,
                false,
                self.config.index_interval_bytes,
                now_ms,
            )?;
            reopened.seal()?;
            self.segments.insert(base, reopened);
        }
        Ok(stats)
    }
}
