//! The coordinator's requests and responses, one struct per Kafka message (the fields the
//! coordinator needs, under Kafka's names), independent of the wire codec: the broker's
//! handlers decode with `kafka-protocol` and fill these in; the answers go back the same way.
//!
//! Classic protocol: JoinGroup v0-v9, SyncGroup v0-v5, OffsetCommit v2-v9, DescribeGroups,
//! ListGroups v0-v5. KIP-848: ConsumerGroupHeartbeat v0-v1, ConsumerGroupDescribe v0.

use std::collections::BTreeMap;

use bytes::Bytes;
use uuid::Uuid;

use crate::assignor::{TopicMetadata, TopicPartitions};
use crate::error::GroupError;
use crate::state::{ConsumerGroupState, GroupState, MemberState};

/// `member_epoch` a dynamic member sends to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// `member_epoch` a static member sends to leave temporarily (keeping its partitions).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// JoinGroup request fields (JoinGroupRequest v0-v9).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets `MEMBER_ID_REQUIRED` and its id (KIP-394).
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// JoinGroup response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Non-empty only in the leader's response.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub(crate) fn error(e: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(e),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// SyncGroup request fields (v0-v5).
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

/// SyncGroup response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub(crate) fn error(e: GroupError) -> Self {
        Self {
            error: Some(e),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// OffsetCommit request fields (v2-v8).
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    /// `-1` for a commit from a consumer that does not use group management.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
    /// The OffsetCommit version (consumer-protocol members need v9+).
    pub api_version: i16,
}

/// TxnOffsetCommit (KIP-98; KIP-447 adds the member fields from v3): offsets committed in
/// `producer_id`'s transaction, visible once it commits.
#[derive(Debug, Clone)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// `-1` (and an empty `member_id`) when the producer does not name its consumer.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation_id: i32,
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name (`Stable`, `Empty`, ... or `Reconciling`, `Assigning` for consumer
    /// groups).
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5, KIP-848).
    pub group_type: &'static str,
}

/// What the heartbeat needs to know about topics: the broker's catalog.
pub trait TopicCatalog {
    /// The topic called `name`, if it exists.
    fn topic(&self, name: &str) -> Option<TopicMetadata>;
    /// Every topic name (for regex subscriptions); internal topics excluded.
    fn names(&self) -> Vec<String>;
}

/// ConsumerGroupHeartbeat request fields (v0-v1). `None` means "unchanged since the last
/// heartbeat" for the nullable fields, as in the protocol.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    /// Generated by the client since v1 (KIP-1082); a v0 client sends "" to join.
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving temporarily.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// `max.poll.interval.ms` of the client; -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns; `None` if unchanged.
    pub owned: Option<TopicPartitions>,
    pub client_id: String,
    pub client_host: String,
}

/// ConsumerGroupHeartbeat response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResponse {
    pub error: Option<GroupError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    /// ms until the next heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed (or on join); `None` otherwise.
    pub assignment: Option<TopicPartitions>,
}

impl HeartbeatResponse {
    pub(crate) fn error(e: GroupError, message: impl Into<String>) -> Self {
        Self {
            error: Some(e),
            error_message: Some(message.into()),
            member_id: None,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub state: MemberState,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: TopicPartitions,
    pub target_assignment: TopicPartitions,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberDescription>,
    /// Topic id -> name, for the topics in the assignments.
    pub topic_names: BTreeMap<Uuid, String>,
}

// ----- share groups (KIP-932) -------------------------------------------------------------

/// ShareGroupHeartbeat request fields (v1). `None` means "unchanged since the last heartbeat".
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeatRequest {
    pub group_id: String,
    /// Generated by the client (a UUID string); required.
    pub member_id: String,
    /// 0 to join, -1 to leave, otherwise the member's current epoch.
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// Required on join; `None` if unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// ShareGroupHeartbeat response fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareHeartbeatResponse {
    pub error: Option<GroupError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    /// ms until the next heartbeat (`group.share.heartbeat.interval.ms`).
    pub heartbeat_interval_ms: i32,
    /// The member's assignment when its epoch moved (or on join); `None` otherwise.
    pub assignment: Option<TopicPartitions>,
}

impl ShareHeartbeatResponse {
    pub(crate) fn error(e: GroupError, message: impl Into<String>) -> Self {
        Self {
            error: Some(e),
            error_message: Some(message.into()),
            member_id: None,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// A topic-partition named as the coordinator keys share state: `(topic name, partition)`.
pub type SharePartitionKey = (String, i32);

/// The acknowledgements of one partition in a ShareFetch or ShareAcknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAcks {
    pub key: SharePartitionKey,
    pub batches: Vec<crate::share::AckBatch>,
}

/// The session part of a ShareFetch (or ShareAcknowledge): who, which epoch, which
/// partitions join or leave the share session, and the piggy-backed acknowledgements.
#[derive(Debug, Clone, Default)]
pub struct ShareFetchOpen {
    pub group_id: String,
    pub member_id: String,
    /// 0 opens a session, -1 closes it, otherwise the expected next epoch.
    pub share_session_epoch: i32,
    /// Partitions added to the session (all of them when the epoch is 0).
    pub added: Vec<SharePartitionKey>,
    /// `ForgottenTopicsData`: partitions removed from the session.
    pub forgotten: Vec<SharePartitionKey>,
    pub acks: Vec<PartitionAcks>,
    /// The connection the request came on (released on close, see
    /// [`crate::GroupCoordinator::share_connection_closed`]).
    pub connection_id: u64,
    /// ShareAcknowledge rather than ShareFetch (epoch 0 is refused, nothing is fetched).
    pub acknowledge_only: bool,
}

/// Where to read for one session partition, as the coordinator plans a ShareFetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchStart {
    /// Read the log from this offset.
    At(i64),
    /// The share-partition has no state yet: the caller resolves `share.auto.offset.reset`
    /// (`strategy`) to an offset and passes it to the acquire call.
    Initialize(crate::share::OffsetReset),
    /// Nothing can be acquired now (the window is at `group.share.partition.max.record.locks`).
    Full,
}

/// The coordinator's answer to [`ShareFetchOpen`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareFetchPlan {
    /// Per acknowledged partition, the error of its acknowledgements (`None` = applied).
    pub ack_errors: Vec<(SharePartitionKey, Option<GroupError>)>,
    /// The session's partitions and where to read each (empty for a close or a
    /// ShareAcknowledge).
    pub partitions: Vec<(SharePartitionKey, FetchStart)>,
}

/// What the broker read for one partition, for the acquire call: offsets `[from, to)` are
/// covered by the batches read (`from == to` when nothing was read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRead {
    pub key: SharePartitionKey,
    pub from: i64,
    pub to: i64,
    /// The exclusive end offsets (last offset + 1) of the stored batches read, ascending:
    /// acquisition finishes a batch it started (see
    /// [`crate::share::SharePartition::acquire_batches`]). Empty: offsets are acquired one by
    /// one, the limits exact.
    pub batch_ends: Vec<i64>,
    pub log_start_offset: i64,
    /// The resolved `share.auto.offset.reset` offset for a partition planned with
    /// [`FetchStart::Initialize`].
    pub initial_offset: Option<i64>,
}

/// ShareGroupDescribe for one member.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareMemberDescription {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assignment: TopicPartitions,
}

/// One share-partition as the operator sees it (admin API, console, metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct SharePartitionDescription {
    pub topic: String,
    pub partition: i32,
    /// SPSO and SPEO (offsets).
    pub start_offset: i64,
    pub end_offset: i64,
    pub state_epoch: i32,
    pub counts: crate::share::WindowCounts,
}

/// A share group as ShareGroupDescribe shows it (plus the share-partitions, for Shoal's
/// admin API).
#[derive(Debug, Clone, PartialEq)]
pub struct ShareGroupDescription {
    pub group_id: String,
    /// `Empty` or `Stable` (Kafka's `ShareGroupState`).
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ShareMemberDescription>,
    pub topic_names: BTreeMap<Uuid, String>,
    pub partitions: Vec<SharePartitionDescription>,
    /// The group's configs (`share.auto.offset.reset`, ...), as set.
    pub configs: BTreeMap<String, String>,
}
