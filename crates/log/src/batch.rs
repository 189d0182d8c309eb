//! Record batch (magic v2) framing: parse and validate the 61-byte header, check CRC-32C, patch
//! the fields the broker owns. Records themselves are never decoded here.
//!
//! Layout (Kafka `DefaultRecordBatch`, KIP-98), byte offsets from the batch start:
//! `base_offset i64 @0, batch_length i32 @8, partition_leader_epoch i32 @12, magic i8 @16,
//! crc u32 @17, attributes i16 @21, last_offset_delta i32 @23, base_timestamp i64 @27,
//! max_timestamp i64 @35, producer_id i64 @43, producer_epoch i16 @51, base_sequence i32 @53,
//! records_count i32 @57`. The CRC covers bytes 21..end, so `base_offset` and
//! `partition_leader_epoch` can be patched without recomputing it.

use crate::error::BatchError;

/// Size of the batch header in bytes, up to and including `records_count`.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batch_length` counts: `base_offset` (8) + `batch_length` (4).
pub const LOG_OVERHEAD: usize = 12;
/// `producer_id` of a batch from a non-idempotent producer (Kafka `NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;

const CRC_START: usize = 21;

/// The decoded header of one record batch. Offsets are absolute Kafka offsets; timestamps are
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the `batch_length` field (total batch size is `batch_length + 12`).
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], BatchError> {
    buf.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(BatchError::Truncated)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (at least [`HEADER_LEN`] bytes).
    ///
    /// Errors: [`BatchError::Truncated`] when `buf` is shorter than the header,
    /// [`BatchError::UnsupportedMagic`] when magic is not 2, [`BatchError::InvalidLength`] when
    /// `batch_length` cannot hold a header.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        let magic = i8::from_be_bytes(be::<1>(buf, 16)?);
        let batch_length = i32::from_be_bytes(be(buf, 8)?);
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok(Self {
            base_offset: i64::from_be_bytes(be(buf, 0)?),
            batch_length,
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)?),
            magic,
            crc: u32::from_be_bytes(be(buf, 17)?),
            attributes: i16::from_be_bytes(be(buf, 21)?),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)?),
            base_timestamp: i64::from_be_bytes(be(buf, 27)?),
            max_timestamp: i64::from_be_bytes(be(buf, 35)?),
            producer_id: i64::from_be_bytes(be(buf, 43)?),
            producer_epoch: i16::from_be_bytes(be(buf, 51)?),
            base_sequence: i32::from_be_bytes(be(buf, 53)?),
            records_count: i32::from_be_bytes(be(buf, 57)?),
        })
    }

    /// Total size of the batch on disk and on the wire, in bytes.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Number of offsets the batch occupies (`last_offset_delta + 1`).
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    /// Sequence number of the last record (wraps at `i32::MAX` as in Kafka).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    /// Compression codec id from `attributes` bits 0-2 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    /// True for a transactional control batch (attributes bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// True when the batch came from an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Validates one complete batch in `buf`: header sane, `buf.len() == batch_length + 12`,
/// `last_offset_delta` within `records_count`, and CRC-32C over bytes 21..end.
///
/// Errors: the [`BatchError`] that describes the first failed check; Kafka maps these to
/// `CORRUPT_MESSAGE` (CRC) or `INVALID_RECORD`.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.total_len() != buf.len() {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    if header.last_offset_delta < 0 || header.records_count < 0 {
        return Err(BatchError::InvalidRecordCount);
    }
    let covered = buf.get(CRC_START..).ok_or(BatchError::Truncated)?;
    let actual = crc32c::crc32c(covered);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Splits a `records` field (one or more concatenated batches) into validated batches, each as
/// a byte range `start..end` of `buf`.
///
/// Errors: the first invalid batch's [`BatchError`]; a trailing partial batch is
/// [`BatchError::Truncated`].
pub fn split_and_validate(
    buf: &[u8],
) -> Result<Vec<(std::ops::Range<usize>, BatchHeader)>, BatchError> {
    split(buf)?
        .into_iter()
        .map(|range| {
            let header = validate(buf.get(range.clone()).ok_or(BatchError::Truncated)?)?;
            Ok((range, header))
        })
        .collect()
}

/// Length of the longest prefix of `buf` made of whole batches, judged by their length fields
/// only (no CRC check: for data already validated on append).
pub fn whole_batches_len(buf: &[u8]) -> usize {
    let mut pos = 0usize;
    while let Some(len) = buf
        .get(pos + 8..pos + 12)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
    {
        let total = i32::from_be_bytes(len).max(0) as usize + LOG_OVERHEAD;
        if total <= LOG_OVERHEAD || pos + total > buf.len() {
            break;
        }
        pos += total;
    }
    pos
}

/// Splits a `records` field into batches by their length fields, without checking CRCs (the
/// log validates each batch on append). Errors: [`BatchError::Truncated`] /
/// [`BatchError::InvalidLength`] when the lengths do not tile `buf` exactly.
pub fn split(buf: &[u8]) -> Result<Vec<std::ops::Range<usize>>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = buf.get(pos..).ok_or(BatchError::Truncated)?;
        let batch_length = i32::from_be_bytes(be::<4>(rest, 8)?);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let total = batch_length as usize + LOG_OVERHEAD;
        if rest.len() < total {
            return Err(BatchError::Truncated);
        }
        out.push(pos..pos + total);
        pos += total;
    }
    Ok(out)
}

/// Writes `base_offset` into the header of the batch at the start of `buf` (outside the CRC).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    let slot = buf.get_mut(0..8).ok_or(BatchError::Truncated)?;
    slot.copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Writes `partition_leader_epoch` into the header of the batch at the start of `buf`
/// (outside the CRC).
/// Attribute bit 3: the batch's timestamps are the broker's append time (`LogAppendTime`).
pub const LOG_APPEND_TIME_FLAG: i16 = 0x08;

/// Marks the batch in `buf` as `LogAppendTime` stamped at `now_ms`: sets attribute bit 3 and
/// `max_timestamp`, then recomputes the CRC-32C, as Kafka's broker does for a topic with
/// `message.timestamp.type=LogAppendTime` (readers then take `max_timestamp` as every
/// record's timestamp; `base_timestamp` and the record deltas stay as the producer sent them).
///
/// Errors: [`BatchError::Truncated`] when `buf` is shorter than a batch header.
pub fn set_log_append_time(buf: &mut [u8], now_ms: i64) -> Result<(), BatchError> {
    let attrs = i16::from_be_bytes(be::<2>(buf, 21)?) | LOG_APPEND_TIME_FLAG;
    buf.get_mut(21..23)
        .ok_or(BatchError::Truncated)?
        .copy_from_slice(&attrs.to_be_bytes());
    buf.get_mut(35..43)
        .ok_or(BatchError::Truncated)?
        .copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(buf.get(CRC_START..).ok_or(BatchError::Truncated)?);
    buf.get_mut(17..21)
        .ok_or(BatchError::Truncated)?
        .copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    let slot = buf.get_mut(12..16).ok_or(BatchError::Truncated)?;
    slot.copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}
