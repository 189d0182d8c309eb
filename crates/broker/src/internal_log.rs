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
    encode_batch_of(entries, None, now_ms)
}

/// [`encode_batch`] for a transaction: the batch is transactional, from `producer_id` at
/// `producer_epoch` (no sequence), as Kafka's group coordinator writes TxnOffsetCommit.
/// Errors: as [`encode_batch`].
pub fn encode_txn_batch(
    entries: &[(Vec<u8>, Option<Vec<u8>>)],
    producer_id: i64,
    producer_epoch: i16,
    now_ms: i64,
) -> Result<BytesMut, InternalLogError> {
    encode_batch_of(entries, Some((producer_id, producer_epoch)), now_ms)
}

fn encode_batch_of(
    entries: &[(Vec<u8>, Option<Vec<u8>>)],
    producer: Option<(i64, i16)>,
    now_ms: i64,
) -> Result<BytesMut, InternalLogError> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
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
    Ok(decode_entries(batches)?
        .into_iter()
        .filter(|e| e.txn.is_none())
        .map(|e| (e.offset, e.key, e.value))
        .collect())
}

/// A decoded internal record with what its batch says about transactions.
#[derive(Debug)]
pub struct Entry {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// `Some` for a record of a transaction: its producer id, and for a transaction marker
    /// whether it commits (`Some(true)`) or aborts (`Some(false)`).
    pub txn: Option<(i64, Option<bool>)>,
}

/// Decodes every record in `batches`, transactional ones and markers included.
/// Errors: [`InternalLogError`] on a malformed batch.
pub fn decode_entries(batches: Bytes) -> Result<Vec<Entry>, InternalLogError> {
    let mut buf = batches;
    let mut out = Vec::new();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| InternalLogError(format!("cannot decode: {e}")))?;
    for set in sets {
        for r in set.records {
            let txn = if r.control {
                let kind = r
                    .key
                    .as_ref()
                    .and_then(|k| k.get(2..4))
                    .map(|b| b == [0, 1]);
                Some((r.producer_id, Some(kind.unwrap_or(false))))
            } else if r.transactional {
                Some((r.producer_id, None))
            } else {
                None
            };
            out.push(Entry {
                offset: r.offset,
                key: r.key,
                value: r.value,
                txn,
            });
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
