//! Record batches for tests and benchmarks, in one place: [`TestBatch`] builds real magic-2
//! batches through `kafka-protocol`'s encoder (as a producer sends them), [`header_only`]
//! builds a valid batch header with a body of padding, for tests of the log's framing, which
//! never decodes records. Compiled only with the cargo feature `testkit`, which only
//! dev-dependencies enable: the broker's own code never sees it.
//!
//! ```
//! use shoal_log::testkit::{header_only, TestBatch};
//!
//! let idempotent = TestBatch::new().producer(7, 0, 0).value("a").value("b").encode();
//! let tombstone = TestBatch::new().keyed("k", None).timestamp(1_000).encode();
//! let big = TestBatch::new().values(1000, 1024).timestamp_step(1).encode();
//! let framing = header_only(3, 42, -1, -1, 39); // 61 + 39 bytes, 3 offsets
//! assert_eq!(framing.len(), 100);
//! let header = shoal_log::batch::validate(&framing).unwrap();
//! assert_eq!(header.offset_count(), 3);
//! # let _ = (idempotent, tombstone, big);
//! ```

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::batch::{HEADER_LEN, LOG_OVERHEAD};

/// A record batch to encode: records (key, value) with one producer, timestamp and codec.
#[derive(Debug, Clone)]
pub struct TestBatch {
    records: Vec<(Option<Bytes>, Option<Bytes>)>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    timestamp_ms: i64,
    timestamp_step_ms: i64,
    compression: Compression,
    transactional: bool,
}

impl Default for TestBatch {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            timestamp_ms: 1_700_000_000_000,
            timestamp_step_ms: 0,
            compression: Compression::None,
            transactional: false,
        }
    }
}

impl TestBatch {
    /// An empty batch: no producer id (not idempotent: producer id, epoch and base sequence
    /// -1), every record at 1_700_000_000_000 ms, uncompressed. Add records before
    /// [`encode`](Self::encode); they get offsets 0, 1, ... in the order added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record with `key` and `value` as UTF-8 bytes (`value` `None`: a tombstone).
    pub fn keyed(mut self, key: &str, value: Option<&str>) -> Self {
        self.records.push((
            Some(Bytes::copy_from_slice(key.as_bytes())),
            value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        ));
        self
    }

    /// Adds a keyless record with `value` (its UTF-8 bytes).
    pub fn value(mut self, value: &str) -> Self {
        self.records
            .push((None, Some(Bytes::copy_from_slice(value.as_bytes()))));
        self
    }

    /// Adds `count` keyless records whose values are `value_bytes` bytes each (all 0x5a).
    pub fn values(mut self, count: usize, value_bytes: usize) -> Self {
        let value = Bytes::from(vec![0x5a; value_bytes]);
        self.records
            .extend(std::iter::repeat_n((None, Some(value)), count));
        self
    }

    /// An idempotent producer's batch: `producer_id`, `producer_epoch`, and sequences from
    /// `base_sequence`, one per record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// The first record's timestamp, in ms since the Unix epoch (every record's, unless
    /// [`timestamp_step`](Self::timestamp_step) is set).
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Record `i` (from 0) is stamped `timestamp + i * step_ms` ms; 0 (the default) stamps
    /// them all alike.
    pub fn timestamp_step(mut self, step_ms: i64) -> Self {
        self.timestamp_step_ms = step_ms;
        self
    }

    /// The codec the batch is compressed with.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The batch's bytes: one magic-2 batch (partition leader epoch -1, offsets from 0; the
    /// log assigns the real ones), compressed with the chosen codec.
    ///
    /// Panics: if `kafka-protocol`'s encoder fails, which it does not for these inputs.
    /// Marks the batch transactional (attributes bit 4); give it a producer too.
    pub fn transactional(mut self) -> Self {
        self.transactional = true;
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let i = i32::try_from(i).unwrap_or(i32::MAX);
                Record {
                    transactional: self.transactional,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: self.producer_id,
                    producer_epoch: self.producer_epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: i64::from(i),
                    // The encoder keeps records in one batch while `offset - sequence` is
                    // constant; without a producer the batch's base sequence is -1.
                    sequence: self.base_sequence + i,
                    timestamp: self.timestamp_ms + i64::from(i) * self.timestamp_step_ms,
                    key: key.clone(),
                    value: value.clone(),
                    headers: Default::default(),
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: self.compression,
            },
        )
        .expect("kafka-protocol encodes a record batch");
        buf.to_vec()
    }
}

/// A valid magic-2 batch header (CRC-32C set) for `records` offsets (last offset delta
/// `records - 1`, records count `records`) with base and max timestamp `timestamp_ms`, from
/// `producer_id` (epoch 0; -1 for none, with epoch -1) at `base_sequence` (-1 for none),
/// followed by `body_bytes` zero bytes in place of records: `HEADER_LEN` (61) + `body_bytes`
/// bytes in all. Base offset 0, partition leader epoch -1, attributes 0. The body is not
/// valid records: only for code that never decodes them.
pub fn header_only(
    records: i32,
    timestamp_ms: i64,
    producer_id: i64,
    base_sequence: i32,
    body_bytes: usize,
) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN + body_bytes];
    let len = i32::try_from(b.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
    let epoch: i16 = if producer_id >= 0 { 0 } else { -1 };
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = b.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(8, &len.to_be_bytes());
    put(12, &(-1i32).to_be_bytes()); // partition_leader_epoch
    put(16, &[2]); // magic
    put(23, &(records - 1).to_be_bytes()); // last_offset_delta
    put(27, &timestamp_ms.to_be_bytes()); // base_timestamp
    put(35, &timestamp_ms.to_be_bytes()); // max_timestamp
    put(43, &producer_id.to_be_bytes());
    put(51, &epoch.to_be_bytes());
    put(53, &base_sequence.to_be_bytes());
    put(57, &records.to_be_bytes());
    let crc = crc32c::crc32c(b.get(21..).unwrap_or_default());
    if let Some(dst) = b.get_mut(17..21) {
        dst.copy_from_slice(&crc.to_be_bytes());
    }
    b
}
