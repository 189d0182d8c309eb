//! `__transaction_state` records in Kafka's layout (`TransactionLogKey` v0 and
//! `TransactionLogValue` v0, big-endian fixed-width fields), so Kafka's own tools could read
//! them. Key: `version i16 (0), transactional_id string`. Value: `version i16 (0),
//! producer_id i64, producer_epoch i16, transaction_timeout_ms i32, transaction_status i8,
//! transaction_partitions [topic string, partition_ids [i32]] (nullable),
//! transaction_last_update_timestamp_ms i64, transaction_start_timestamp_ms i64`.
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
        let n = n as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(TxnRecordError::Truncated);
        }
        Ok(Some(n))
    }
}

impl TxnRecord {
    /// The record's key bytes.
    pub fn encode_key(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(4 + self.transactional_id.len()));
        w.0.extend_from_slice(&0i16.to_be_bytes());
        w.str(&self.transactional_id);
        w.0
    }

    /// The record's value bytes; `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Vec<u8>> {
        let v = self.value.as_ref()?;
        let mut w = W(Vec::with_capacity(64));
        w.0.extend_from_slice(&0i16.to_be_bytes());
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
        w.0.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            w.str(t);
            w.0.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in ps {
                w.0.extend_from_slice(&p.to_be_bytes());
            }
        }
        w.0.extend_from_slice(&v.last_update_timestamp_ms.to_be_bytes());
        w.0.extend_from_slice(&v.start_timestamp_ms.to_be_bytes());
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
        if version == 1 {
            // Kafka 4's flexible v1 (KIP-890 tagged fields) is not written by Shoal.
            return Err(TxnRecordError::UnknownVersion(version));
        }
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let transaction_timeout_ms = r.i32()?;
        let state = TxnState::from_code(r.i8()?).ok_or(TxnRecordError::Invalid)?;
        let mut partitions = BTreeSet::new();
        if let Some(n) = r.count(6)? {
            for _ in 0..n {
                let topic = r.str()?;
                let Some(m) = r.count(4)? else { continue };
                for _ in 0..m {
                    partitions.insert((topic.clone(), r.i32()?));
                }
            }
        }
        let last_update_timestamp_ms = r.i64()?;
        let start_timestamp_ms = r.i64()?;
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
            }),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_malformed_bytes_are_errors_not_panics() {
        let r = TxnRecord {
            transactional_id: "tx-1".into(),
            value: Some(TxnLogValue {
                producer_id: 42,
                producer_epoch: 3,
                transaction_timeout_ms: 60_000,
                state: TxnState::Ongoing,
                partitions: [
                    ("a".to_string(), 0),
                    ("a".to_string(), 2),
                    ("b".to_string(), 1),
                ]
                .into_iter()
                .collect(),
                last_update_timestamp_ms: 7,
                start_timestamp_ms: 5,
            }),
        };
        let (k, v) = (r.encode_key(), r.encode_value().unwrap());
        assert_eq!(TxnRecord::decode(&k, Some(&v)).unwrap(), r);
        for cut in 0..v.len() {
            assert!(TxnRecord::decode(&k, Some(&v[..cut])).is_err());
        }
        let mut huge = v.clone();
        // The partition array claims 2^31-1 topics.
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(TxnRecord::decode(&k, Some(&huge)).is_err());
        let tomb = TxnRecord::decode(&k, None).unwrap();
        assert_eq!(tomb.value, None);
    }
}
