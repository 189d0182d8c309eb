//! The coordinator's settings, under their Kafka broker-config names and with Kafka's
//! defaults (`group.*`, `group.consumer.*`, `offsets.*`).

use crate::assignor;

/// Coordinator settings under their Kafka broker-config names.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (Kafka default 6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout_ms: i32,
    /// The new-member join timeout in ms (Kafka's `group.coordinator` constant
    /// `CLASSIC_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS`, 5 min): a new member waiting in a join
    /// phase is removed if its JoinGroup is not answered by then.
    pub new_member_join_timeout_ms: i64,
    /// `group.max.size` (Kafka default `i32::MAX`).
    pub max_size: usize,
    /// `offsets.retention.minutes` in ms (Kafka default 7 days).
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes` (Kafka default 4096).
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.*`: KIP-848 consumer groups.
    pub consumer: ConsumerGroupConfig,
    /// `group.share.*`: KIP-932 share groups.
    pub share: ShareGroupConfig,
    /// `group.connection.close.session.timeout.ms` (Shoal; default -1, off, as Kafka): when a
    /// member's connection closes without LeaveGroup, its session ends this many ms later
    /// instead of after its session timeout, unless it heartbeats again (a consumer that was
    /// killed loses its partitions in about this time, not `session.timeout.ms`).
    pub connection_close_session_timeout_ms: i64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            new_member_join_timeout_ms: 300_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
            consumer: ConsumerGroupConfig::default(),
            share: ShareGroupConfig::default(),
            connection_close_session_timeout_ms: -1,
        }
    }
}

/// Settings of consumer groups, under their Kafka broker-config names.
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms` (Kafka default 45000).
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (Kafka default 5000).
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.reconciling.heartbeat.interval.ms` (Shoal only, default 50): the
    /// heartbeat interval asked of members while the group is not `Stable`.
    pub reconciling_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors` (default `uniform,range`); the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size` (Kafka default `i32::MAX`).
    pub max_size: usize,
    /// `group.consumer.migration.policy` (Kafka 4.x default `bidirectional`).
    pub migration_policy: MigrationPolicy,
}

/// `group.consumer.migration.policy`: which online conversions between the classic and the
/// consumer protocol a group with members may make (KIP-848 "online migration", Kafka 4.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both directions.
    Bidirectional,
    /// Classic -> consumer only.
    Upgrade,
    /// Consumer -> classic only.
    Downgrade,
    /// Neither: a group keeps its protocol while it has members.
    Disabled,
}

impl MigrationPolicy {
    /// Parses Kafka's names (`bidirectional`, `upgrade`, `downgrade`, `disabled`), any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bidirectional" => Some(Self::Bidirectional),
            "upgrade" => Some(Self::Upgrade),
            "downgrade" => Some(Self::Downgrade),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
    /// A classic group with members may become a consumer group.
    pub fn allows_upgrade(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Upgrade)
    }
    /// A consumer group whose members all use the classic protocol becomes a classic group.
    pub fn allows_downgrade(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Downgrade)
    }
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            reconciling_heartbeat_interval_ms: 50,
            assignors: assignor::ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            max_size: i32::MAX as usize,
            migration_policy: MigrationPolicy::Bidirectional,
        }
    }
}

/// Settings of share groups (KIP-932), under their Kafka 4.x broker-config names and with
/// Kafka's defaults; the group-level configs (`share.*`, set with IncrementalAlterConfigs on
/// a GROUP resource) override some of them per group.
#[derive(Debug, Clone)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms` (Kafka default 45000).
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms` (Kafka default 5000).
    pub heartbeat_interval_ms: i32,
    /// `group.share.min.session.timeout.ms` / `group.share.max.session.timeout.ms` (Kafka
    /// defaults 45000 / 60000): bounds of the group config `share.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.share.min.heartbeat.interval.ms` / `group.share.max.heartbeat.interval.ms`
    /// (Kafka defaults 5000 / 15000): bounds of `share.heartbeat.interval.ms`.
    pub min_heartbeat_interval_ms: i32,
    pub max_heartbeat_interval_ms: i32,
    /// `group.share.record.lock.duration.ms` (Kafka default 30000): how long an acquired
    /// record stays locked to its consumer.
    pub record_lock_duration_ms: i32,
    /// `group.share.min.record.lock.duration.ms` (Kafka default 15000): lower bound of the
    /// group config `share.record.lock.duration.ms`.
    pub min_record_lock_duration_ms: i32,
    /// `group.share.max.record.lock.duration.ms` (Kafka default 60000): its upper bound.
    pub max_record_lock_duration_ms: i32,
    /// `group.share.delivery.count.limit` (Kafka default 5): deliveries before a record is
    /// archived.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks` (Kafka 4.1 default 2000): the most records
    /// in one share-partition's in-flight window.
    pub partition_max_record_locks: usize,
    /// `group.share.max.size` (Kafka default 200): members per share group.
    pub max_size: usize,
    /// `group.share.max.share.sessions` (Kafka default 2000): share sessions on the broker.
    pub max_share_sessions: usize,
    /// `group.share.record.redelivery.backoff.ms` (Shoal; default 0, Kafka's behaviour):
    /// a released or lock-expired record waits this long before it can be acquired again,
    /// doubled for each further delivery.
    pub redelivery_backoff_ms: i64,
    /// `group.share.record.redelivery.backoff.max.ms` (Shoal; default 60000): the cap.
    pub redelivery_backoff_max_ms: i64,
    /// `group.share.release.on.connection.close` (Shoal; default true): records acquired
    /// over a connection are released when it closes, not when their locks expire.
    pub release_on_connection_close: bool,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            min_session_timeout_ms: 45_000,
            max_session_timeout_ms: 60_000,
            min_heartbeat_interval_ms: 5_000,
            max_heartbeat_interval_ms: 15_000,
            record_lock_duration_ms: 30_000,
            min_record_lock_duration_ms: 15_000,
            max_record_lock_duration_ms: 60_000,
            delivery_count_limit: 5,
            partition_max_record_locks: 2_000,
            max_size: 200,
            max_share_sessions: 2_000,
            redelivery_backoff_ms: 0,
            redelivery_backoff_max_ms: 60_000,
            release_on_connection_close: true,
        }
    }
}
