//! Records the coordinator writes to `__consumer_offsets`, in Kafka's own key/value layout so
//! Kafka tooling can read them (Kafka `GroupMetadataManager`, `OffsetCommitKey`/`Value`,
//! `GroupMetadataKey`/`Value`):
//!
//! - key version 1: offset commit `(group, topic, partition)`; value version 3:
//!   `offset i64, leader_epoch i32, metadata string, commit_timestamp i64`.
//! - key version 2: group metadata `(group)`; value version 3: `protocol_type, generation,
//!   protocol?, leader?, current_state_timestamp, members[]`.
//!
//! - key versions 3-8: KIP-848 consumer groups (Kafka's `ConsumerGroup*Key`/`Value`, values in
//!   the flexible encoding, version 0), see [`ConsumerRecord`].
//!
//! - key version 11: share group epoch (Kafka's `ShareGroupMetadataKey`/`Value`); key
//!   version 100 (Shoal): a share-partition's snapshot; key version 101 (Shoal): a group's
//!   configs. See [`ShareRecord`] and [`Record::GroupConfig`].
//!
//! A record with no value is a tombstone. Decoding never panics on malformed input.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::assignor::{TopicMetadata, TopicPartitions};

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
    /// A KIP-848 consumer-group record.
    Consumer(ConsumerRecord),
    /// A KIP-932 share-group record.
    Share(ShareRecord),
    /// A group's configs (Kafka keeps them as `ConfigRecord`s of resource type GROUP in its
    /// metadata log; Shoal, with no metadata log for groups, here). Key version 101 (Shoal).
    GroupConfig {
        group_id: String,
        /// `None`: tombstone (every config removed).
        configs: Option<BTreeMap<String, String>>,
    },
}

/// KIP-932 share-group records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareRecord {
    /// Key version 11 (Kafka's `ShareGroupMetadata`): the group epoch.
    GroupEpoch {
        group_id: String,
        epoch: Option<i32>,
    },
    /// Key version 100 (Shoal): a share-partition's state, Kafka's `ShareSnapshotValue`
    /// fields (Kafka keeps these in `__share_group_state`, keyed by topic id). Compaction
    /// keeps the latest per `(group, topic, partition)`.
    PartitionState {
        group_id: String,
        topic: String,
        partition: i32,
        value: Option<crate::share::ShareSnapshot>,
    },
}

impl ShareRecord {
    /// The group the record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            ShareRecord::GroupEpoch { group_id, .. }
            | ShareRecord::PartitionState { group_id, .. } => group_id,
        }
    }
}

/// A consumer-protocol member's metadata (key version 5, `ConsumerGroupMemberMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// The member's `max.poll.interval.ms`, in ms.
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Set for a classic-protocol member of a consumer group (online migration): tagged field
    /// 0, `ClassicMemberMetadata`.
    pub classic: Option<ClassicMemberMetadata>,
}

/// A classic member's session timeout (ms) and JoinGroup protocols `(name, metadata)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
}

/// A consumer-protocol member's current assignment (key version 8,
/// `ConsumerGroupCurrentMemberAssignmentValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` id: 0 STABLE, 1 UNRELEASED_PARTITIONS, 2 UNREVOKED_PARTITIONS.
    pub state: i8,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

/// KIP-848 records, one per Kafka record type; every `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    /// Key version 3 (`ConsumerGroupMetadata`): the group epoch.
    GroupEpoch {
        group_id: String,
        epoch: Option<i32>,
    },
    /// Key version 4 (`ConsumerGroupPartitionMetadata`): the subscribed topics' metadata the
    /// target assignment was computed from.
    SubscribedTopics {
        group_id: String,
        topics: Option<Vec<TopicMetadata>>,
    },
    /// Key version 5 (`ConsumerGroupMemberMetadata`).
    MemberMetadata {
        group_id: String,
        member_id: String,
        value: Option<ConsumerMemberMetadata>,
    },
    /// Key version 6 (`ConsumerGroupTargetAssignmentMetadata`): the assignment epoch.
    AssignmentEpoch {
        group_id: String,
        assignment_epoch: Option<i32>,
    },
    /// Key version 7 (`ConsumerGroupTargetAssignmentMember`): a member's target partitions.
    TargetAssignment {
        group_id: String,
        member_id: String,
        partitions: Option<TopicPartitions>,
    },
    /// Key version 8 (`ConsumerGroupCurrentMemberAssignment`).
    CurrentAssignment {
        group_id: String,
        member_id: String,
        value: Option<ConsumerMemberAssignment>,
    },
}

impl ConsumerRecord {
    /// True for a record without a value.
    pub fn is_tombstone(&self) -> bool {
        match self {
            ConsumerRecord::GroupEpoch { epoch, .. } => epoch.is_none(),
            ConsumerRecord::SubscribedTopics { topics, .. } => topics.is_none(),
            ConsumerRecord::MemberMetadata { value, .. } => value.is_none(),
            ConsumerRecord::AssignmentEpoch {
                assignment_epoch, ..
            } => assignment_epoch.is_none(),
            ConsumerRecord::TargetAssignment { partitions, .. } => partitions.is_none(),
            ConsumerRecord::CurrentAssignment { value, .. } => value.is_none(),
        }
    }

    /// The group the record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            ConsumerRecord::GroupEpoch { group_id, .. }
            | ConsumerRecord::SubscribedTopics { group_id, .. }
            | ConsumerRecord::MemberMetadata { group_id, .. }
            | ConsumerRecord::AssignmentEpoch { group_id, .. }
            | ConsumerRecord::TargetAssignment { group_id, .. }
            | ConsumerRecord::CurrentAssignment { group_id, .. } => group_id,
        }
    }
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
    #[error("invalid value in record field")]
    InvalidValue,
}

mod codec;
