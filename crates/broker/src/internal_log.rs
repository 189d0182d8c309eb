//! Key/value records in Shoal's internal logs (`__consumer_offsets`, `__shoal_metadata`),
//! written as ordinary uncompressed magic-2 record batches so the same storage engine, recovery
//! and tools apply to them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Encodes `(key, value)` pairs (value `None` = tombstone) into one record batch stamped
/// `now_ms`. Errors: [`InternalLogError`] if the encoder fails (it does not for
/// uncompressed batches).
pub fn encode_batch(
    entries: &[(Vec<u8>, Option<Vec<u8>>)],
    now_ms: i64,
) -> Result<BytesMut, InternalLogError> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Not idempotent: the batch's base_sequence must be -1. The encoder starts a new
            // batch whenever `offset - sequence` changes, so the sequence follows the offset.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(Bytes::copy_from_slice(k)),
            value: v.as_ref().map(|v| Bytes::copy_from_slice(v)),
            headers: indexmap::IndexMap::<StrBytes, Option<Bytes>>::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| InternalLogError(format!("cannot encode: {e}")))?;
    Ok(buf)
}

/// An internal log's batch that does not decode, or records that could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("internal log record batch: {0}")]
pub struct InternalLogError(pub String);

/// A decoded internal record: `(offset, key, value)`.
pub type KeyValue = (i64, Option<Bytes>, Option<Bytes>);

/// Decodes every record in `batches` (concatenated record batches) into `(offset, key,
/// value)`. Errors: [`InternalLogError`] on a malformed batch.
pub fn decode_batches(batches: Bytes) -> Result<Vec<KeyValue>, InternalLogError> {
    let mut buf = batches;
    let mut out = Vec::new();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| InternalLogError(format!("cannot decode: {e}")))?;
    for set in sets {
        for r in set.records {
            out.push((r.offset, r.key, r.value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_entries_encode_into_exactly_one_valid_batch() {
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..5)
            .map(|i| (vec![i], if i == 3 { None } else { Some(vec![i; 40]) }))
            .collect();
        let batch = encode_batch(&entries, 1_700_000_000_000).expect("encode");
        let header = shoal_log::batch::validate(&batch).expect("one whole valid batch");
        assert_eq!(header.records_count, 5);
        assert_eq!(header.base_sequence, -1);
        assert_eq!(header.producer_id, -1);
        let back = decode_batches(batch.freeze()).expect("decode");
        assert_eq!(back.len(), 5);
        assert_eq!(back[3].2, None, "tombstone kept");
        assert_eq!(back[4].2.as_deref(), Some(&[4u8; 40][..]));
    }
}
