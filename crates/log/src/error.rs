//! Errors of the storage engine. Handlers map them to Kafka error codes at the boundary:
//! `CrcMismatch` -> `CORRUPT_MESSAGE`, other `Batch` errors -> `INVALID_RECORD`, `Corrupt` (a
//! stored batch failing its checks on read) -> `CORRUPT_MESSAGE`,
//! `OutOfOrderSequence` -> `OUT_OF_ORDER_SEQUENCE_NUMBER`, `InvalidProducerEpoch` ->
//! `INVALID_PRODUCER_EPOCH`, `OffsetOutOfRange` -> `OFFSET_OUT_OF_RANGE`, `Io`/`Poisoned`/`IndexOverflow` ->
//! `KAFKA_STORAGE_ERROR`.

/// A malformed record batch.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch is truncated")]
    Truncated,
    #[error("record batch magic {0} is not supported (only magic 2)")]
    UnsupportedMagic(i8),
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch record count or offset delta is invalid")]
    InvalidRecordCount,
    #[error("record batch CRC mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    /// A stored batch whose `base_offset` (not covered by the CRC) is out of order or outside
    /// its segment.
    #[error("stored record batch has an impossible base offset {0}")]
    InvalidOffset(i64),
    /// A producer sent a control batch; only the transaction coordinator writes them.
    #[error(
        "control batches (transaction markers) are written by the transaction coordinator only"
    )]
    ControlBatch,
    /// A transactional batch without a producer id.
    #[error("a transactional record batch must carry a producer id")]
    InvalidProducerId,
}

/// Failure of a partition log operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "log is poisoned after a failed write or fsync; restart the broker after fixing the disk"
    )]
    Poisoned,
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error(
        "out of order sequence number for producer {producer_id}: expected {expected}, got {got}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// A stored batch fails its CRC-32C (or framing) check: the bytes on disk changed after
    /// they were written. Never served; Kafka's `CORRUPT_MESSAGE`.
    #[error("corrupt batch at offset {offset} in {segment}: {reason}")]
    Corrupt {
        offset: i64,
        segment: String,
        reason: String,
    },
    /// A batch whose file position or offset (relative to its segment's base) does not fit
    /// the 32-bit fields of the segment index. The batch is not written. Cannot happen while
    /// segments stay within `segment.bytes` (at most `i32::MAX`, as in Kafka).
    #[error(
        "batch at offset {offset}, position {position} of {segment} does not fit the 32-bit segment index"
    )]
    IndexOverflow {
        segment: String,
        offset: i64,
        position: u64,
    },
    #[error("producer {producer_id} epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
}
