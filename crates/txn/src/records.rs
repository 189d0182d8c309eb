//! `__transaction_state` records in Kafka's layout, so Kafka's own tools could read them.
//! Key: `TransactionLogKey` v0, `version i16 (0), transactional_id string`. Value:
//! `TransactionLogValue`, written as v1 (as Kafka 4.0 does once `transaction.version` is 1 or
//! more; the tags carry KIP-890 part 2's state), read as v0 or v1:
//! - v0: `version i16 (0), producer_id i64, producer_epoch i16, transaction_timeout_ms i32,
//!   transaction_status i8, transaction_partitions [topic string, partition_ids [i32]]
//!   (nullable), transaction_last_update_timestamp_ms i64, transaction_start_timestamp_ms
//!   i64`, big-endian, int16-length strings and int32-length arrays.
//! - v1 (flexible): the same fields with compact strings and arrays (an unsigned varint
//!   of the length plus one) and a tagged-field section after each partition entry and
//!   after the value; tags 0 `PreviousProducerId` i64, 1 `NextProducerId` i64, 2
//!   `ClientTransactionVersion` i16, each written only when not its default (-1, -1, 0).
//!   Unknown tags (Kafka 4.1's tag 3, `NextProducerEpoch`) are skipped.
//!
//! A record without a value is a tombstone (the transactional id expired).
//!
//! Decoding is bounded by the input: a corrupt length never allocates more than the bytes
//! that are there, and nothing panics on malformed input.

use std::collections::BTreeSet;

use crate::state::{TransactionMetadata, TxnState};

/// One `__transaction_state` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    /// `None`: tombstone.
    pub value: Option<TxnLogValue>,
}

/// A transactional id's persisted state (Kafka `TransactionLogValue` v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    pub state: TxnState,
    /// `(topic, partition)`, sorted.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    /// Tag 0 (v1): the producer id before the last rotation; -1 when none.
    pub previous_producer_id: i64,
    /// Tag 1 (v1): the producer id that takes over at Complete*; -1 when none.
    pub next_producer_id: i64,
    /// Tag 2 (v1): the client's transaction version (2: KIP-890 part 2); 0 by default.
    pub client_transaction_version: i16,
}

impl TxnLogValue {
    /// The value for `m`.
    pub fn of(m: &TransactionMetadata) -> Self {
        Self {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            transaction_timeout_ms: m.txn_timeout_ms,
            state: m.state,
            partitions: m.partitions.clone(),
            last_update_timestamp_ms: m.txn_last_update_timestamp_ms,
            start_timestamp_ms: m.txn_start_timestamp_ms,
            previous_producer_id: m.previous_producer_id,
            next_producer_id: m.next_producer_id,
            client_transaction_version: m.client_transaction_version,
        }
    }
}

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    #[error("transaction record truncated")]
    Truncated,
    #[error("unknown transaction record version {0}")]
    UnknownVersion(i16),
    #[error("invalid transaction record field")]
    Invalid,
}

struct W(Vec<u8>);

impl W {
    fn str(&mut self, s: &str) {
        let n = s.len().min(i16::MAX as usize);
        self.0.extend_from_slice(&(n as i16).to_be_bytes());
        self.0
            .extend_from_slice(s.as_bytes().get(..n).unwrap_or_default());
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// A compact (flexible-version) string: unsigned varint length + 1, then the bytes.
    fn compact_str(&mut self, s: &str) {
        let n = s.len().min(i16::MAX as usize);
        self.uvarint(n as u64 + 1);
        self.0
            .extend_from_slice(s.as_bytes().get(..n).unwrap_or_default());
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TxnRecordError> {
        let (Some(h), Some(t)) = (self.0.get(..n), self.0.get(n..)) else {
            return Err(TxnRecordError::Truncated);
        };
        self.0 = t;
        Ok(h)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], TxnRecordError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| TxnRecordError::Truncated)
    }
    fn i8(&mut self) -> Result<i8, TxnRecordError> {
        Ok(i8::from_be_bytes(self.arr()?))
    }
    fn i16(&mut self) -> Result<i16, TxnRecordError> {
        Ok(i16::from_be_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, TxnRecordError> {
        Ok(i32::from_be_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, TxnRecordError> {
        Ok(i64::from_be_bytes(self.arr()?))
    }
    fn str(&mut self) -> Result<String, TxnRecordError> {
        let n = usize::try_from(self.i16()?).map_err(|_| TxnRecordError::Invalid)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| TxnRecordError::Invalid)
    }
    /// An array length, bounded by the bytes left (each element takes at least `min` bytes).
    fn count(&mut self, min: usize) -> Result<Option<usize>, TxnRecordError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.bounded(n as usize, min).map(Some)
    }
    fn bounded(&self, n: usize, min: usize) -> Result<usize, TxnRecordError> {
        if n.saturating_mul(min) > self.0.len() {
            return Err(TxnRecordError::Truncated);
        }
        Ok(n)
    }
    fn uvarint(&mut self) -> Result<u64, TxnRecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.arr::<1>()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(TxnRecordError::Invalid)
    }
    /// A compact array length (`None`: null), bounded as [`Self::count`].
    fn compact_count(&mut self, min: usize) -> Result<Option<usize>, TxnRecordError> {
        match self.uvarint()? {
            0 => Ok(None),
            n => {
                let n = usize::try_from(n - 1).map_err(|_| TxnRecordError::Invalid)?;
                self.bounded(n, min).map(Some)
            }
        }
    }
    fn compact_str(&mut self) -> Result<String, TxnRecordError> {
        let n = self.compact_count(1)?.ok_or(TxnRecordError::Invalid)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| TxnRecordError::Invalid)
    }
    /// A tagged-field section: `(tag, data)` of each field.
    fn tags(&mut self) -> Result<Vec<(u64, &'a [u8])>, TxnRecordError> {
        let n = self.uvarint()?;
        let n = self.bounded(usize::try_from(n).map_err(|_| TxnRecordError::Invalid)?, 2)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| TxnRecordError::Invalid)?;
            out.push((tag, self.take(size)?));
        }
        Ok(out)
    }
}

fn tag_i64(data: &[u8]) -> Result<i64, TxnRecordError> {
    <[u8; 8]>::try_from(data)
        .map(i64::from_be_bytes)
        .map_err(|_| TxnRecordError::Invalid)
}

fn tag_i16(data: &[u8]) -> Result<i16, TxnRecordError> {
    <[u8; 2]>::try_from(data)
        .map(i16::from_be_bytes)
        .map_err(|_| TxnRecordError::Invalid)
}

impl TxnRecord {
    /// The record's key bytes.
    pub fn encode_key(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(4 + self.transactional_id.len()));
        w.0.extend_from_slice(&0i16.to_be_bytes());
        w.str(&self.transactional_id);
        w.0
    }

    /// The record's value bytes (`TransactionLogValue` v1); `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Vec<u8>> {
        let v = self.value.as_ref()?;
        let mut w = W(Vec::with_capacity(64));
        w.0.extend_from_slice(&1i16.to_be_bytes());
        w.0.extend_from_slice(&v.producer_id.to_be_bytes());
        w.0.extend_from_slice(&v.producer_epoch.to_be_bytes());
        w.0.extend_from_slice(&v.transaction_timeout_ms.to_be_bytes());
        w.0.push(v.state.code() as u8);
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &v.partitions {
            match topics.last_mut() {
                Some((last, ps)) if *last == t.as_str() => ps.push(*p),
                _ => topics.push((t.as_str(), vec![*p])),
            }
        }
        w.uvarint(topics.len() as u64 + 1);
        for (t, ps) in topics {
            w.compact_str(t);
            w.uvarint(ps.len() as u64 + 1);
            for p in ps {
                w.0.extend_from_slice(&p.to_be_bytes());
            }
            w.uvarint(0);
        }
        w.0.extend_from_slice(&v.last_update_timestamp_ms.to_be_bytes());
        w.0.extend_from_slice(&v.start_timestamp_ms.to_be_bytes());
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != -1 {
            tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != -1 {
            tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_transaction_version != 0 {
            tags.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
        }
        w.uvarint(tags.len() as u64);
        for (tag, data) in tags {
            w.uvarint(tag);
            w.uvarint(data.len() as u64);
            w.0.extend_from_slice(&data);
        }
        Some(w.0)
    }

    /// Decodes a record from its key and value.
    ///
    /// Errors: [`TxnRecordError`] for truncated or malformed bytes and unknown versions.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, TxnRecordError> {
        let mut k = R(key);
        let version = k.i16()?;
        if version != 0 {
            return Err(TxnRecordError::UnknownVersion(version));
        }
        let transactional_id = k.str()?;
        let Some(value) = value else {
            return Ok(Self {
                transactional_id,
                value: None,
            });
        };
        let mut r = R(value);
        let version = r.i16()?;
        if !(0..=1).contains(&version) {
            return Err(TxnRecordError::UnknownVersion(version));
        }
        let flexible = version == 1;
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let transaction_timeout_ms = r.i32()?;
        let state = TxnState::from_code(r.i8()?).ok_or(TxnRecordError::Invalid)?;
        let mut partitions = BTreeSet::new();
        let topics = if flexible {
            r.compact_count(3)?
        } else {
            r.count(6)?
        };
        for _ in 0..topics.unwrap_or(0) {
            let topic = if flexible { r.compact_str()? } else { r.str()? };
            let ids = if flexible {
                r.compact_count(4)?
            } else {
                r.count(4)?
            };
            for _ in 0..ids.unwrap_or(0) {
                partitions.insert((topic.clone(), r.i32()?));
            }
            if flexible {
                r.tags()?;
            }
        }
        let last_update_timestamp_ms = r.i64()?;
        let start_timestamp_ms = r.i64()?;
        let (mut previous_producer_id, mut next_producer_id, mut client_transaction_version) =
            (-1, -1, 0);
        if flexible {
            for (tag, data) in r.tags()? {
                match tag {
                    0 => previous_producer_id = tag_i64(data)?,
                    1 => next_producer_id = tag_i64(data)?,
                    2 => client_transaction_version = tag_i16(data)?,
                    _ => {}
                }
            }
        }
        Ok(Self {
            transactional_id,
            value: Some(TxnLogValue {
                producer_id,
                producer_epoch,
                transaction_timeout_ms,
                state,
                partitions,
                last_update_timestamp_ms,
                start_timestamp_ms,
                previous_producer_id,
                next_producer_id,
                client_transaction_version,
            }),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value(state: TxnState) -> TxnLogValue {
        TxnLogValue {
            producer_id: 42,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            state,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_timestamp_ms: 7,
            start_timestamp_ms: 5,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn records_round_trip_and_malformed_bytes_are_errors_not_panics() {
        let r = TxnRecord {
            transactional_id: "tx-1".into(),
            value: Some(value(TxnState::Ongoing)),
        };
        let (k, v) = (r.encode_key(), r.encode_value().unwrap());
        assert_eq!(&v[..2], &1i16.to_be_bytes(), "written as v1");
        assert_eq!(TxnRecord::decode(&k, Some(&v)).unwrap(), r);
        for cut in 0..v.len() {
            assert!(TxnRecord::decode(&k, Some(&v[..cut])).is_err());
        }
        // The partition array (a varint after the 17 fixed bytes) claims 2^31-1 topics.
        let mut huge = v[..17].to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        huge.extend_from_slice(&v[18..]);
        assert!(TxnRecord::decode(&k, Some(&huge)).is_err());
        let tomb = TxnRecord::decode(&k, None).unwrap();
        assert_eq!(tomb.value, None);
    }

    /// The KIP-890 tags survive a round trip; a tag Shoal does not know (Kafka 4.1's
    /// NextProducerEpoch, tag 3) is skipped.
    #[test]
    fn v1_tags_round_trip_and_unknown_tags_are_skipped() {
        let mut v = value(TxnState::PrepareCommit);
        v.previous_producer_id = 41;
        v.next_producer_id = 43;
        v.client_transaction_version = 2;
        let r = TxnRecord {
            transactional_id: "tx-2".into(),
            value: Some(v),
        };
        let (k, bytes) = (r.encode_key(), r.encode_value().unwrap());
        assert_eq!(TxnRecord::decode(&k, Some(&bytes)).unwrap(), r);
        // The last section holds 3 tags: rewrite its count to 4 and add tag 3 (2 bytes).
        let tags_at = bytes.len() - (3 * 2 + 8 + 8 + 2) - 1;
        assert_eq!(bytes[tags_at], 3);
        let mut more = bytes.clone();
        more[tags_at] = 4;
        more.extend_from_slice(&[3, 2, 0x00, 0x05]);
        assert_eq!(TxnRecord::decode(&k, Some(&more)).unwrap(), r);
    }

    /// Records written before v1 (Shoal up to now, Kafka before 4.0) still load.
    #[test]
    fn v0_values_are_read() {
        let mut b = Vec::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&42i64.to_be_bytes());
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&60_000i32.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&2i32.to_be_bytes());
        for (t, ps) in [("a", &[0i32, 2][..]), ("b", &[1i32][..])] {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&5i64.to_be_bytes());
        let k = TxnRecord {
            transactional_id: "tx-1".into(),
            value: None,
        }
        .encode_key();
        let got = TxnRecord::decode(&k, Some(&b)).unwrap();
        assert_eq!(got.value, Some(value(TxnState::Ongoing)));
        for cut in 0..b.len() {
            assert!(TxnRecord::decode(&k, Some(&b[..cut])).is_err());
        }
    }
}
