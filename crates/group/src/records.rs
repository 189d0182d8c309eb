//! Records the coordinator writes to `__consumer_offsets`, in Kafka's own key/value layout so
//! Kafka tooling can read them (Kafka `GroupMetadataManager`, `OffsetCommitKey`/`Value`,
//! `GroupMetadataKey`/`Value`):
//!
//! - key version 1: offset commit `(group, topic, partition)`; value version 3:
//!   `offset i64, leader_epoch i32, metadata string, commit_timestamp i64`.
//! - key version 2: group metadata `(group)`; value version 3: `protocol_type, generation,
//!   protocol?, leader?, current_state_timestamp, members[]`.
//!
//! A record with no value is a tombstone. Decoding never panics on malformed input.

use bytes::Bytes;

/// A committed offset (units: offsets; timestamps in ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    /// `-1` when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member as persisted in a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol (the consumer's Subscription).
    pub subscription: Bytes,
    /// The member's assignment from the last SyncGroup.
    pub assignment: Bytes,
}

/// Group metadata after a generation is set or an assignment is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberRecord>,
}

/// A record in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    OffsetCommit {
        group_id: String,
        topic: String,
        partition: i32,
        /// `None`: tombstone (offset deleted or expired).
        value: Option<OffsetAndMetadata>,
    },
    GroupMetadata {
        group_id: String,
        /// `None`: tombstone (group deleted).
        value: Option<GroupMetadataValue>,
    },
}

/// Malformed `__consumer_offsets` record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown record key version {0}")]
    UnknownKeyVersion(i16),
    #[error("invalid UTF-8 in record string")]
    InvalidString,
}

struct Writer(Vec<u8>);

impl Writer {
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.i16(s.len().min(i16::MAX as usize) as i16);
        self.0.extend_from_slice(
            s.as_bytes()
                .get(..s.len().min(i16::MAX as usize))
                .unwrap_or_default(),
        );
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        self.take(N)?.try_into().map_err(|_| RecordError::Truncated)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn opt_str(&mut self) -> Result<Option<String>, RecordError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let raw = self.take(n as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError::InvalidString)
    }
    fn str(&mut self) -> Result<String, RecordError> {
        Ok(self.opt_str()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize)?))
    }
}

impl Record {
    /// The record key bytes (which also decide compaction identity).
    pub fn encode_key(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        match self {
            Record::OffsetCommit {
                group_id,
                topic,
                partition,
                ..
            } => {
                w.i16(1);
                w.str(group_id);
                w.str(topic);
                w.i32(*partition);
            }
            Record::GroupMetadata { group_id, .. } => {
                w.i16(2);
                w.str(group_id);
            }
        }
        w.0
    }

    /// The record value bytes; `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Vec<u8>> {
        let mut w = Writer(Vec::with_capacity(64));
        match self {
            Record::OffsetCommit { value, .. } => {
                let v = value.as_ref()?;
                w.i16(3);
                w.i64(v.offset);
                w.i32(v.leader_epoch);
                w.str(&v.metadata);
                w.i64(v.commit_timestamp_ms);
            }
            Record::GroupMetadata { value, .. } => {
                let v = value.as_ref()?;
                w.i16(3);
                w.str(&v.protocol_type);
                w.i32(v.generation_id);
                w.opt_str(v.protocol_name.as_deref());
                w.opt_str(v.leader.as_deref());
                w.i64(v.current_state_timestamp_ms);
                w.i32(v.members.len() as i32);
                for m in &v.members {
                    w.str(&m.member_id);
                    w.opt_str(m.group_instance_id.as_deref());
                    w.str(&m.client_id);
                    w.str(&m.client_host);
                    w.i32(m.rebalance_timeout_ms);
                    w.i32(m.session_timeout_ms);
                    w.bytes(&m.subscription);
                    w.bytes(&m.assignment);
                }
            }
        }
        Some(w.0)
    }

    /// Decodes a record from its key and optional value.
    ///
    /// Errors: [`RecordError`] for truncated input, an unknown key version or invalid UTF-8.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, RecordError> {
        let mut k = Reader(key);
        let version = k.i16()?;
        match version {
            0 | 1 => {
                let group_id = k.str()?;
                let topic = k.str()?;
                let partition = k.i32()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        let vv = r.i16()?;
                        let offset = r.i64()?;
                        let leader_epoch = if vv >= 3 { r.i32()? } else { -1 };
                        let metadata = r.str()?;
                        let commit_timestamp_ms = r.i64()?;
                        Some(OffsetAndMetadata {
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms,
                        })
                    }
                };
                Ok(Record::OffsetCommit {
                    group_id,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group_id = k.str()?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_group_value(v)?),
                };
                Ok(Record::GroupMetadata { group_id, value })
            }
            v => Err(RecordError::UnknownKeyVersion(v)),
        }
    }
}

fn decode_group_value(v: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader(v);
    let version = r.i16()?;
    let protocol_type = r.str()?;
    let generation_id = r.i32()?;
    let protocol_name = r.opt_str()?;
    let leader = r.opt_str()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let n = r.i32()?.max(0) as usize;
    let mut members = Vec::with_capacity(n.min(r.0.len()));
    for _ in 0..n {
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 { r.opt_str()? } else { None };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { 0 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberRecord {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_record_round_trips() {
        let r = Record::OffsetCommit {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(OffsetAndMetadata {
                offset: 42,
                leader_epoch: -1,
                metadata: "m".into(),
                commit_timestamp_ms: 7,
            }),
        };
        let back = Record::decode(&r.encode_key(), r.encode_value().as_deref()).expect("decode");
        assert_eq!(back, r);
    }

    #[test]
    fn truncated_records_error_instead_of_panicking() {
        let r = Record::GroupMetadata {
            group_id: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation_id: 1,
                protocol_name: Some("range".into()),
                leader: Some("m1".into()),
                current_state_timestamp_ms: 1,
                members: vec![],
            }),
        };
        let key = r.encode_key();
        let value = r.encode_value().expect("value");
        for cut in 0..value.len() {
            assert!(Record::decode(&key, Some(&value[..cut])).is_err());
        }
    }
}
