//! The byte layout of `__consumer_offsets` records: Kafka's key and value schemas (classic
//! versions with big-endian fixed-width fields; KIP-848 values in the flexible encoding of
//! KIP-482). Decoding is bounded by the input: a corrupt length never allocates more than the
//! bytes that are there, and nothing panics on malformed input.

use bytes::Bytes;
use uuid::Uuid;

use std::collections::BTreeMap;

use super::{
    ClassicMemberMetadata, ConsumerMemberAssignment, ConsumerMemberMetadata, ConsumerRecord,
    GroupMetadataValue, MemberRecord, OffsetAndMetadata, Record, RecordError, ShareRecord,
};
use crate::assignor::{TopicMetadata, TopicPartitions};
use crate::share::{RecordState, ShareSnapshot, StateBatch};

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
    // Flexible-version encodings (KIP-482): unsigned varints, compact strings and arrays,
    // tagged-field sections (always empty here).
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn len(&mut self, n: usize) {
        self.uvarint(u32::try_from(n).unwrap_or(u32::MAX - 1).saturating_add(1));
    }
    fn compact_str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn compact_opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.compact_str(s),
            None => self.uvarint(0),
        }
    }
    fn no_tags(&mut self) {
        self.uvarint(0);
    }
    fn compact_bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn uuid(&mut self, u: &Uuid) {
        self.0.extend_from_slice(u.as_bytes());
    }
    fn topic_partitions(&mut self, tps: &TopicPartitions) {
        let non_empty: Vec<_> = tps.iter().filter(|(_, ps)| !ps.is_empty()).collect();
        self.len(non_empty.len());
        for (t, ps) in non_empty {
            self.uuid(t);
            self.len(ps.len());
            for p in ps {
                self.i32(*p);
            }
            self.no_tags();
        }
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
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let [b] = self.array::<1>()?;
            v |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Truncated)
    }
    /// A compact length: `None` for null (encoded 0).
    fn compact_len(&mut self) -> Result<Option<usize>, RecordError> {
        let n = self.uvarint()?;
        Ok(n.checked_sub(1).map(|n| n as usize))
    }
    fn compact_opt_str(&mut self) -> Result<Option<String>, RecordError> {
        let Some(n) = self.compact_len()? else {
            return Ok(None);
        };
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| RecordError::InvalidString)
    }
    fn compact_str(&mut self) -> Result<String, RecordError> {
        Ok(self.compact_opt_str()?.unwrap_or_default())
    }
    /// An array's element count, bounded by the bytes left (each element takes at least
    /// `min_size` bytes), so a corrupt count cannot make us allocate much.
    fn array_len(&mut self, min_size: usize) -> Result<usize, RecordError> {
        let n = self.compact_len()?.unwrap_or(0);
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }
    /// Skips a tagged-field section (fields Shoal does not know are ignored, as Kafka does).
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn topic_partitions(&mut self) -> Result<TopicPartitions, RecordError> {
        let n = self.array_len(18)?;
        let mut out = TopicPartitions::new();
        for _ in 0..n {
            let t = self.uuid()?;
            let m = self.array_len(4)?;
            let ps = out.entry(t).or_default();
            for _ in 0..m {
                ps.insert(self.i32()?);
            }
            self.skip_tags()?;
        }
        Ok(out)
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
            Record::Consumer(c) => {
                let (version, member_id) = match c {
                    ConsumerRecord::GroupEpoch { .. } => (3, None),
                    ConsumerRecord::SubscribedTopics { .. } => (4, None),
                    ConsumerRecord::MemberMetadata { member_id, .. } => (5, Some(member_id)),
                    ConsumerRecord::AssignmentEpoch { .. } => (6, None),
                    ConsumerRecord::TargetAssignment { member_id, .. } => (7, Some(member_id)),
                    ConsumerRecord::CurrentAssignment { member_id, .. } => (8, Some(member_id)),
                };
                w.i16(version);
                w.str(c.group_id());
                if let Some(m) = member_id {
                    w.str(m);
                }
            }
            Record::Share(ShareRecord::GroupEpoch { group_id, .. }) => {
                w.i16(11);
                w.str(group_id);
            }
            Record::Share(ShareRecord::PartitionState {
                group_id,
                topic,
                partition,
                ..
            }) => {
                w.i16(100);
                w.str(group_id);
                w.str(topic);
                w.i32(*partition);
            }
            Record::GroupConfig { group_id, .. } => {
                w.i16(101);
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
            Record::Consumer(c) => {
                w.i16(0);
                match c {
                    ConsumerRecord::GroupEpoch { epoch, .. } => w.i32((*epoch)?),
                    ConsumerRecord::SubscribedTopics { topics, .. } => {
                        let topics = topics.as_ref()?;
                        w.len(topics.len());
                        for t in topics {
                            w.uuid(&t.topic_id);
                            w.compact_str(&t.name);
                            w.i32(t.partitions);
                            w.len(0); // PartitionMetadata (racks): unused
                            w.no_tags();
                        }
                    }
                    ConsumerRecord::MemberMetadata { value, .. } => {
                        let v = value.as_ref()?;
                        w.compact_opt_str(v.instance_id.as_deref());
                        w.compact_opt_str(v.rack_id.as_deref());
                        w.compact_str(&v.client_id);
                        w.compact_str(&v.client_host);
                        w.len(v.subscribed_topic_names.len());
                        for n in &v.subscribed_topic_names {
                            w.compact_str(n);
                        }
                        w.compact_opt_str(v.subscribed_topic_regex.as_deref());
                        w.i32(v.rebalance_timeout_ms);
                        w.compact_opt_str(v.server_assignor.as_deref());
                        if let Some(c) = &v.classic {
                            let mut t = Writer(Vec::new());
                            t.i32(c.session_timeout_ms);
                            t.len(c.protocols.len());
                            for (name, meta) in &c.protocols {
                                t.compact_str(name);
                                t.compact_bytes(meta);
                                t.no_tags();
                            }
                            t.no_tags();
                            w.uvarint(1); // one tagged field
                            w.uvarint(0); // tag 0: ClassicMemberMetadata
                            w.uvarint(u32::try_from(t.0.len()).unwrap_or(u32::MAX));
                            w.0.extend_from_slice(&t.0);
                            return Some(w.0);
                        }
                    }
                    ConsumerRecord::AssignmentEpoch {
                        assignment_epoch, ..
                    } => w.i32((*assignment_epoch)?),
                    ConsumerRecord::TargetAssignment { partitions, .. } => {
                        w.topic_partitions(partitions.as_ref()?)
                    }
                    ConsumerRecord::CurrentAssignment { value, .. } => {
                        let v = value.as_ref()?;
                        w.i32(v.member_epoch);
                        w.i32(v.previous_member_epoch);
                        w.0.push(v.state as u8);
                        w.topic_partitions(&v.assigned);
                        w.topic_partitions(&v.pending_revocation);
                    }
                }
                w.no_tags();
            }
            Record::Share(ShareRecord::GroupEpoch { epoch, .. }) => {
                w.i16(0);
                w.i32((*epoch)?);
                w.no_tags();
            }
            Record::Share(ShareRecord::PartitionState { value, .. }) => {
                // ShareSnapshotValue v0's fields Shoal keeps: StateEpoch, StartOffset,
                // StateBatches [FirstOffset, LastOffset, DeliveryState, DeliveryCount].
                let v = value.as_ref()?;
                w.i16(0);
                w.i32(v.state_epoch);
                w.i64(v.start_offset);
                w.len(v.state_batches.len());
                for b in &v.state_batches {
                    w.i64(b.first_offset);
                    w.i64(b.last_offset);
                    w.0.push(b.delivery_state.id() as u8);
                    w.i16(b.delivery_count);
                    w.no_tags();
                }
                w.no_tags();
            }
            Record::GroupConfig { configs, .. } => {
                let configs = configs.as_ref()?;
                w.i16(0);
                w.len(configs.len());
                for (k, v) in configs {
                    w.compact_str(k);
                    w.compact_str(v);
                    w.no_tags();
                }
                w.no_tags();
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
            3..=8 => {
                let group_id = k.str()?;
                let member_id = if matches!(version, 5 | 7 | 8) {
                    k.str()?
                } else {
                    String::new()
                };
                let mut r = value.map(Reader);
                if let Some(r) = r.as_mut() {
                    r.i16()?; // value version 0; later versions only add tagged fields
                }
                let c = match (version, r.as_mut()) {
                    (3, r) => ConsumerRecord::GroupEpoch {
                        group_id,
                        epoch: r.map(|r| r.i32()).transpose()?,
                    },
                    (4, r) => ConsumerRecord::SubscribedTopics {
                        group_id,
                        topics: r.map(decode_topics).transpose()?,
                    },
                    (5, r) => ConsumerRecord::MemberMetadata {
                        group_id,
                        member_id,
                        value: r.map(decode_member_metadata).transpose()?,
                    },
                    (6, r) => ConsumerRecord::AssignmentEpoch {
                        group_id,
                        assignment_epoch: r.map(|r| r.i32()).transpose()?,
                    },
                    (7, r) => ConsumerRecord::TargetAssignment {
                        group_id,
                        member_id,
                        partitions: r.map(|r| r.topic_partitions()).transpose()?,
                    },
                    (_, r) => ConsumerRecord::CurrentAssignment {
                        group_id,
                        member_id,
                        value: r.map(decode_member_assignment).transpose()?,
                    },
                };
                if let Some(r) = r.as_mut() {
                    if version != 5 {
                        r.skip_tags()?; // member metadata reads its own tagged fields
                    }
                }
                Ok(Record::Consumer(c))
            }
            11 => {
                let group_id = k.str()?;
                let epoch = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        r.i16()?;
                        let epoch = r.i32()?;
                        r.skip_tags()?;
                        Some(epoch)
                    }
                };
                Ok(Record::Share(ShareRecord::GroupEpoch { group_id, epoch }))
            }
            100 => {
                let group_id = k.str()?;
                let topic = k.str()?;
                let partition = k.i32()?;
                let value = value.map(decode_share_snapshot).transpose()?;
                Ok(Record::Share(ShareRecord::PartitionState {
                    group_id,
                    topic,
                    partition,
                    value,
                }))
            }
            101 => {
                let group_id = k.str()?;
                let configs = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        r.i16()?;
                        let n = r.array_len(3)?;
                        let mut m = BTreeMap::new();
                        for _ in 0..n {
                            let key = r.compact_str()?;
                            let val = r.compact_str()?;
                            r.skip_tags()?;
                            m.insert(key, val);
                        }
                        r.skip_tags()?;
                        Some(m)
                    }
                };
                Ok(Record::GroupConfig { group_id, configs })
            }
            v => Err(RecordError::UnknownKeyVersion(v)),
        }
    }
}

fn decode_share_snapshot(v: &[u8]) -> Result<ShareSnapshot, RecordError> {
    let mut r = Reader(v);
    r.i16()?;
    let state_epoch = r.i32()?;
    let start_offset = r.i64()?;
    let n = r.array_len(20)?;
    let mut state_batches = Vec::with_capacity(n);
    for _ in 0..n {
        let first_offset = r.i64()?;
        let last_offset = r.i64()?;
        let delivery_state = RecordState::from_id(r.i8()?).ok_or(RecordError::InvalidValue)?;
        let delivery_count = r.i16()?;
        r.skip_tags()?;
        state_batches.push(StateBatch {
            first_offset,
            last_offset,
            delivery_state,
            delivery_count,
        });
    }
    r.skip_tags()?;
    Ok(ShareSnapshot {
        state_epoch,
        start_offset,
        state_batches,
    })
}

fn decode_topics(r: &mut Reader<'_>) -> Result<Vec<TopicMetadata>, RecordError> {
    let n = r.array_len(22)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic_id = r.uuid()?;
        let name = r.compact_str()?;
        let partitions = r.i32()?;
        let racks = r.array_len(6)?;
        for _ in 0..racks {
            r.i32()?;
            let k = r.array_len(1)?;
            for _ in 0..k {
                r.compact_str()?;
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
        out.push(TopicMetadata {
            topic_id,
            name,
            partitions,
        });
    }
    Ok(out)
}

fn decode_member_metadata(r: &mut Reader<'_>) -> Result<ConsumerMemberMetadata, RecordError> {
    let instance_id = r.compact_opt_str()?;
    let rack_id = r.compact_opt_str()?;
    let client_id = r.compact_str()?;
    let client_host = r.compact_str()?;
    let n = r.array_len(1)?;
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(r.compact_str()?);
    }
    let subscribed_topic_regex = r.compact_opt_str()?;
    let rebalance_timeout_ms = r.i32()?;
    let server_assignor = r.compact_opt_str()?;
    let mut classic = None;
    let tags = r.uvarint()?;
    for _ in 0..tags {
        let tag = r.uvarint()?;
        let size = r.uvarint()? as usize;
        let mut t = Reader(r.take(size)?);
        if tag != 0 {
            continue;
        }
        let session_timeout_ms = t.i32()?;
        let n = t.array_len(3)?;
        let mut protocols = Vec::with_capacity(n);
        for _ in 0..n {
            let name = t.compact_str()?;
            let len = t.compact_len()?.unwrap_or(0);
            let meta = Bytes::copy_from_slice(t.take(len)?);
            t.skip_tags()?;
            protocols.push((name, meta));
        }
        t.skip_tags()?;
        classic = Some(ClassicMemberMetadata {
            session_timeout_ms,
            protocols,
        });
    }
    Ok(ConsumerMemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
        classic,
    })
}

fn decode_member_assignment(r: &mut Reader<'_>) -> Result<ConsumerMemberAssignment, RecordError> {
    Ok(ConsumerMemberAssignment {
        member_epoch: r.i32()?,
        previous_member_epoch: r.i32()?,
        state: r.i8()?,
        assigned: r.topic_partitions()?,
        pending_revocation: r.topic_partitions()?,
    })
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

    fn consumer_records() -> Vec<Record> {
        let t = Uuid::from_u128(7);
        let tps: TopicPartitions = [(t, [0, 2].into_iter().collect())].into_iter().collect();
        let g = || "g".to_string();
        let m = || "m1".to_string();
        vec![
            ConsumerRecord::GroupEpoch {
                group_id: g(),
                epoch: Some(4),
            },
            ConsumerRecord::SubscribedTopics {
                group_id: g(),
                topics: Some(vec![TopicMetadata {
                    topic_id: t,
                    name: "orders".into(),
                    partitions: 3,
                }]),
            },
            ConsumerRecord::MemberMetadata {
                group_id: g(),
                member_id: m(),
                value: Some(ConsumerMemberMetadata {
                    instance_id: Some("i1".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["orders".into()],
                    subscribed_topic_regex: Some("ord.*".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("uniform".into()),
                    classic: None,
                }),
            },
            ConsumerRecord::MemberMetadata {
                group_id: g(),
                member_id: "m2".into(),
                value: Some(ConsumerMemberMetadata {
                    client_id: "classic".into(),
                    subscribed_topic_names: vec!["orders".into()],
                    rebalance_timeout_ms: 30_000,
                    classic: Some(ClassicMemberMetadata {
                        session_timeout_ms: 10_000,
                        protocols: vec![("range".into(), Bytes::from_static(b"\0\x01meta"))],
                    }),
                    ..ConsumerMemberMetadata::default()
                }),
            },
            ConsumerRecord::AssignmentEpoch {
                group_id: g(),
                assignment_epoch: Some(4),
            },
            ConsumerRecord::TargetAssignment {
                group_id: g(),
                member_id: m(),
                partitions: Some(tps.clone()),
            },
            ConsumerRecord::CurrentAssignment {
                group_id: g(),
                member_id: m(),
                value: Some(ConsumerMemberAssignment {
                    member_epoch: 4,
                    previous_member_epoch: 3,
                    state: 2,
                    assigned: tps.clone(),
                    pending_revocation: [(t, [1].into_iter().collect())].into_iter().collect(),
                }),
            },
            ConsumerRecord::CurrentAssignment {
                group_id: g(),
                member_id: m(),
                value: None,
            },
        ]
        .into_iter()
        .map(Record::Consumer)
        .collect()
    }

    #[test]
    fn consumer_group_records_round_trip() {
        for r in consumer_records() {
            let back =
                Record::decode(&r.encode_key(), r.encode_value().as_deref()).expect("decode");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn truncated_consumer_group_records_error_instead_of_panicking() {
        for r in consumer_records() {
            let key = r.encode_key();
            let Some(value) = r.encode_value() else {
                continue;
            };
            for cut in 0..value.len() {
                assert!(
                    Record::decode(&key, Some(&value[..cut])).is_err(),
                    "{r:?} cut at {cut}"
                );
            }
            for cut in 0..key.len() {
                assert!(Record::decode(&key[..cut], Some(&value)).is_err());
            }
        }
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

    fn share_records() -> Vec<Record> {
        use crate::share::{RecordState, ShareSnapshot, StateBatch};
        vec![
            Record::Share(ShareRecord::GroupEpoch {
                group_id: "q".into(),
                epoch: Some(7),
            }),
            Record::Share(ShareRecord::GroupEpoch {
                group_id: "q".into(),
                epoch: None,
            }),
            Record::Share(ShareRecord::PartitionState {
                group_id: "q".into(),
                topic: "orders".into(),
                partition: 3,
                value: Some(ShareSnapshot {
                    state_epoch: 2,
                    start_offset: 100,
                    state_batches: vec![
                        StateBatch {
                            first_offset: 100,
                            last_offset: 104,
                            delivery_state: RecordState::Available,
                            delivery_count: 2,
                        },
                        StateBatch {
                            first_offset: 105,
                            last_offset: 105,
                            delivery_state: RecordState::Archiving,
                            delivery_count: 5,
                        },
                        StateBatch {
                            first_offset: 106,
                            last_offset: 110,
                            delivery_state: RecordState::Acknowledged,
                            delivery_count: 1,
                        },
                    ],
                }),
            }),
            Record::Share(ShareRecord::PartitionState {
                group_id: "q".into(),
                topic: "orders".into(),
                partition: 3,
                value: None,
            }),
            Record::GroupConfig {
                group_id: "q".into(),
                configs: Some(BTreeMap::from([
                    (
                        "share.auto.offset.reset".to_string(),
                        "earliest".to_string(),
                    ),
                    ("share.delivery.count.limit".to_string(), "3".to_string()),
                ])),
            },
            Record::GroupConfig {
                group_id: "q".into(),
                configs: None,
            },
        ]
    }

    #[test]
    fn share_group_records_round_trip() {
        for r in share_records() {
            let back =
                Record::decode(&r.encode_key(), r.encode_value().as_deref()).expect("decode");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn truncated_share_group_records_error_instead_of_panicking() {
        for r in share_records() {
            let key = r.encode_key();
            let Some(value) = r.encode_value() else {
                continue;
            };
            for cut in 0..value.len() {
                assert!(
                    Record::decode(&key, Some(&value[..cut])).is_err(),
                    "{r:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn share_snapshot_with_an_unknown_record_state_is_an_error() {
        let r = &share_records()[2];
        let mut value = r.encode_value().expect("value");
        // The first batch's DeliveryState byte: version 2 + epoch 4 + start 8 + count 1 +
        // first 8 + last 8.
        let at = 2 + 4 + 8 + 1 + 8 + 8;
        value[at] = 9;
        assert_eq!(
            Record::decode(&r.encode_key(), Some(&value)),
            Err(RecordError::InvalidValue)
        );
    }
}
