//! Transactions in a partition (KIP-98): which producers have a transaction open here, the
//! last stable offset (LSO) that follows from them, and the index of aborted transactions that
//! `read_committed` fetches return.
//!
//! A transaction opens in a partition with the first transactional data batch of its
//! `producer_id` and ends with that producer's control batch (a COMMIT or ABORT marker, written
//! by the transaction coordinator). The LSO is the first offset of the oldest open transaction,
//! or the log end offset when none is open: a `read_committed` consumer reads below it only.
//! An aborted transaction is kept as `(producer_id, first_offset, last_offset)`, where
//! `last_offset` is its ABORT marker's offset (Kafka's `AbortedTxn`), grouped by the segment
//! that holds the marker (Kafka's per-segment `.txnindex`), so retention drops an entry with
//! its segment.
//!
//! The state is rebuilt at open from the batch headers of every segment
//! ([`TxnState::observe`], the same call the append path makes), so it is never out of step
//! with the log after a crash.
//!
//! Control records (Kafka `ControlRecordType`): key `version i16 (0), type i16` with type 0
//! ABORT and 1 COMMIT; value `version i16 (0), coordinator_epoch i32`.

use std::collections::{BTreeMap, HashMap};

use crate::batch::{self, BatchHeader};
use crate::error::BatchError;

/// `attributes` bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// `attributes` bit 5: the batch holds one control record.
pub const CONTROL_FLAG: i16 = 0x20;

/// A transaction marker's outcome (Kafka `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// Type 0.
    Abort,
    /// Type 1.
    Commit,
}

/// An aborted transaction, as Fetch's `aborted_transactions` lists it: every transactional
/// batch of `producer_id` in `[first_offset, last_offset]` is to be dropped by a
/// `read_committed` consumer. `last_offset` is the ABORT marker's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A transaction open in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTxn {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Offset of its first batch in this partition.
    pub first_offset: i64,
    /// Base offset of the segment holding that batch, and the batch's file position in it
    /// (a `read_committed` read stops there).
    pub segment_base: i64,
    pub position: u64,
}

/// Open and aborted transactions of one partition.
#[derive(Debug, Default)]
pub struct TxnState {
    open: HashMap<i64, OpenTxn>,
    /// First offsets of the open transactions, for the LSO.
    by_first: BTreeMap<i64, i64>,
    /// Aborted transactions by the base offset of the segment holding their marker, each
    /// list in marker order.
    aborted: BTreeMap<i64, Vec<AbortedTxn>>,
}

impl TxnState {
    /// Takes in a batch appended (or found at open) at `position` of the segment based at
    /// `segment_base`; `header.base_offset` is its assigned offset. Returns the aborted
    /// transaction an ABORT marker closed, if any.
    ///
    /// `marker` is the control type of a control batch (see [`control_type`]); the caller
    /// decodes it since only the caller holds the batch's bytes.
    pub fn observe(
        &mut self,
        header: &BatchHeader,
        marker: Option<ControlType>,
        segment_base: i64,
        position: u64,
    ) -> Option<AbortedTxn> {
        if !header.has_producer_id() || header.attributes & TRANSACTIONAL_FLAG == 0 {
            return None;
        }
        let pid = header.producer_id;
        if header.is_control() {
            let open = self.open.remove(&pid)?;
            self.by_first.remove(&open.first_offset);
            if marker == Some(ControlType::Abort) {
                let aborted = AbortedTxn {
                    producer_id: pid,
                    first_offset: open.first_offset,
                    last_offset: header.base_offset,
                };
                self.aborted.entry(segment_base).or_default().push(aborted);
                return Some(aborted);
            }
            return None;
        }
        self.open.entry(pid).or_insert_with(|| {
            self.by_first.insert(header.base_offset, pid);
            OpenTxn {
                producer_id: pid,
                producer_epoch: header.producer_epoch,
                first_offset: header.base_offset,
                segment_base,
                position,
            }
        });
        None
    }

    /// The oldest open transaction (its first batch bounds `read_committed` reads).
    pub fn first_open(&self) -> Option<&OpenTxn> {
        let (_, pid) = self.by_first.iter().next()?;
        self.open.get(pid)
    }

    /// The last stable offset given the log end offset.
    pub fn last_stable_offset(&self, log_end_offset: i64) -> i64 {
        self.by_first
            .keys()
            .next()
            .copied()
            .unwrap_or(log_end_offset)
            .min(log_end_offset)
    }

    /// Transactions open in this partition.
    pub fn open_transactions(&self) -> impl Iterator<Item = &OpenTxn> {
        self.open.values()
    }

    /// Aborted transactions overlapping `[from, upto)`: marker at or after `from`, first
    /// offset before `upto`; in marker order.
    pub fn aborted_between(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.aborted
            .values()
            .flatten()
            .filter(|a| a.last_offset >= from && a.first_offset < upto)
            .copied()
            .collect()
    }

    /// Forgets the aborted-transaction entries of segments based below `segment_base`
    /// (deleted by retention), and open transactions that started before `log_start_offset`.
    pub fn truncate_before(&mut self, segment_base: i64, log_start_offset: i64) {
        self.aborted = self.aborted.split_off(&segment_base);
        let gone: Vec<i64> = self
            .open
            .values()
            .filter(|t| t.first_offset < log_start_offset)
            .map(|t| t.producer_id)
            .collect();
        for pid in gone {
            if let Some(t) = self.open.remove(&pid) {
                self.by_first.remove(&t.first_offset);
            }
        }
    }

    /// True when the batch of `producer_id` at `offset` belongs to an aborted transaction.
    pub fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        self.aborted.values().flatten().any(|a| {
            a.producer_id == producer_id && a.first_offset <= offset && offset <= a.last_offset
        })
    }

    /// Forgets everything (the log is rebuilt from scratch).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Number of aborted-transaction entries kept.
    pub fn aborted_count(&self) -> usize {
        self.aborted.values().map(Vec::len).sum()
    }
}

/// The control type of a control batch, from its one record's key. `None` when the batch is
/// not a control batch; an unknown type is `None` too (Kafka ignores unknown control types).
///
/// Errors: [`BatchError::InvalidRecordCount`] when a control batch is compressed, has no
/// record or its record cannot be read.
pub fn control_type(header: &BatchHeader, batch: &[u8]) -> Result<Option<ControlType>, BatchError> {
    if !header.is_control() {
        return Ok(None);
    }
    if header.compression() != 0 || header.records_count < 1 {
        return Err(BatchError::InvalidRecordCount);
    }
    let mut r = batch
        .get(batch::HEADER_LEN..)
        .ok_or(BatchError::Truncated)?;
    let _len = varint(&mut r)?;
    let _attributes = take(&mut r, 1)?;
    let _timestamp_delta = varint(&mut r)?;
    let _offset_delta = varint(&mut r)?;
    let key_len = varint(&mut r)?;
    if key_len < 4 {
        return Err(BatchError::InvalidRecordCount);
    }
    let key = take(&mut r, 4)?;
    let kind = key
        .get(2..4)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map_or(-1, i16::from_be_bytes);
    Ok(match kind {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    })
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], BatchError> {
    let (Some(head), Some(rest)) = (r.get(..n), r.get(n..)) else {
        return Err(BatchError::Truncated);
    };
    *r = rest;
    Ok(head)
}

/// A zigzag varint (Kafka's `ByteUtils.readVarint`).
fn varint(r: &mut &[u8]) -> Result<i64, BatchError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = r.split_first().ok_or(BatchError::Truncated)?;
        *r = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(BatchError::InvalidRecordCount)
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A control batch holding one COMMIT or ABORT marker for `producer_id` at
/// `producer_epoch` (Kafka `MemoryRecords.withEndTransactionMarker`): transactional and
/// control attributes set, base sequence -1, timestamps `now_ms`, `base_offset` 0 (assigned on
/// append), CRC-32C computed.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlType,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let mut record = Vec::with_capacity(24);
    record.push(0); // attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, 4);
    record.extend_from_slice(&0i16.to_be_bytes());
    let t: i16 = match kind {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    };
    record.extend_from_slice(&t.to_be_bytes());
    put_varint(&mut record, 6);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    put_varint(&mut record, 0); // headers
    let mut body = Vec::with_capacity(record.len() + 2);
    put_varint(&mut body, record.len() as i64);
    body.extend_from_slice(&record);

    let mut out = Vec::with_capacity(batch::HEADER_LEN + body.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base_offset
    let batch_length = (batch::HEADER_LEN - batch::LOG_OVERHEAD + body.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // partition_leader_epoch
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    out.extend_from_slice(&(TRANSACTIONAL_FLAG | CONTROL_FLAG).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last_offset_delta
    out.extend_from_slice(&now_ms.to_be_bytes());
    out.extend_from_slice(&now_ms.to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base_sequence
    out.extend_from_slice(&1i32.to_be_bytes()); // records_count
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(out.get(21..).unwrap_or_default());
    if let Some(slot) = out.get_mut(17..21) {
        slot.copy_from_slice(&crc.to_be_bytes());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn data(pid: i64, base: i64, n: i32) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: TRANSACTIONAL_FLAG,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: n,
        }
    }

    #[test]
    fn a_control_batch_validates_and_reads_back_its_type() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let b = control_batch(7, 3, kind, 0, 1_700_000_000_000);
            let h = batch::validate(&b).unwrap();
            assert!(h.is_control());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (7, 3, -1)
            );
            assert_eq!(control_type(&h, &b).unwrap(), Some(kind));
        }
    }

    #[test]
    fn lso_is_the_first_offset_of_the_oldest_open_transaction_and_aborts_are_indexed() {
        let mut s = TxnState::default();
        assert_eq!(s.last_stable_offset(10), 10);
        s.observe(&data(1, 10, 5), None, 0, 100);
        s.observe(&data(2, 15, 5), None, 0, 200);
        s.observe(&data(1, 20, 5), None, 0, 300);
        assert_eq!(s.last_stable_offset(25), 10);
        let mut marker = data(1, 25, 1);
        marker.attributes |= CONTROL_FLAG;
        let aborted = s.observe(&marker, Some(ControlType::Abort), 0, 400);
        assert_eq!(
            aborted,
            Some(AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 25
            })
        );
        assert_eq!(s.last_stable_offset(26), 15);
        let mut commit = data(2, 26, 1);
        commit.attributes |= CONTROL_FLAG;
        assert_eq!(s.observe(&commit, Some(ControlType::Commit), 0, 500), None);
        assert_eq!(s.last_stable_offset(27), 27);
        assert_eq!(s.aborted_between(0, 27).len(), 1);
        assert!(s.aborted_between(26, 27).is_empty());
        assert!(s.aborted_between(0, 10).is_empty());
        s.truncate_before(100, 100);
        assert_eq!(s.aborted_count(), 0);
    }
}
