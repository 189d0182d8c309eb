//! Share groups (KIP-932, Kafka 4.x): queues over topic-partitions. Every member may be
//! assigned every partition of the topics it subscribes to; records are handed out one by
//! one and acknowledged one by one, tracked per share-partition ([`SharePartition`]).
//!
//! - [`ShareGroup`]: membership (ShareGroupHeartbeat, Kafka's `ShareGroup`), the share
//!   sessions of its members (Kafka's `ShareSessionCache`, soft state) and the state of each
//!   share-partition it has fetched.
//! - `heartbeat`: join, leave, heartbeat, session timeout; assignment (Kafka's
//!   `SimpleAssignor` gives every subscriber every partition when members outnumber
//!   partitions; Shoal always does, so members never wait for a partition).
//! - `session`: ShareFetch/ShareAcknowledge: share session epochs, acknowledgements,
//!   acquisition, releases on leave, session close and connection loss, lock expiry.
//! - [`partition`]: one share-partition's in-flight window and record states.
//!
//! What is persisted (records in `__consumer_offsets`, see [`crate::records`]): the group
//! epoch, and after every change that must survive a crash, the share-partition's snapshot.
//! Members and sessions are soft state: after a restart members rejoin (their heartbeat gets
//! UNKNOWN_MEMBER_ID) and records they held are AVAILABLE again.

mod heartbeat;
pub mod partition;
mod session;

pub(crate) use session::{lock_key as lock_timer, persist as persist_snapshot};

use std::collections::{BTreeMap, BTreeSet};

pub use partition::{
    AckBatch, AckType, AcquiredRange, ArchiveReason, ArchivedRecord, RecordState, ReleasePolicy,
    SharePartition, ShareSnapshot, StateBatch, WindowCounts,
};

use crate::api::{ShareGroupDescription, ShareMemberDescription, SharePartitionDescription};
use crate::assignor::{TopicMetadata, TopicPartitions};
use crate::config::ShareGroupConfig;

/// `share.auto.offset.reset`: where a share-partition without state starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The high watermark (Kafka's default).
    Latest,
    /// The log start offset.
    Earliest,
    /// The first offset whose timestamp is at or after `now - ms` (`by_duration:<ISO-8601>`).
    ByDuration(i64),
}

impl OffsetReset {
    /// Parses `latest`, `earliest` or `by_duration:PnDTnHnMn.nS` (Kafka's forms).
    pub fn parse(s: &str) -> Option<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "latest" => Some(Self::Latest),
            "earliest" => Some(Self::Earliest),
            _ => {
                let d = lower.strip_prefix("by_duration:")?;
                parse_iso_duration_ms(d).map(Self::ByDuration)
            }
        }
    }
}

/// `PnDTnHnMn.nS` (ISO-8601 durations as Java's `Duration.parse` reads them), in ms.
fn parse_iso_duration_ms(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('p')?;
    let (days, time) = match rest.split_once('t') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut ms: f64 = 0.0;
    if !days.is_empty() {
        ms += days.strip_suffix('d')?.parse::<f64>().ok()? * 86_400_000.0;
    }
    let mut num = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'h' | 'm' | 's' => {
                let v: f64 = num.parse().ok()?;
                num.clear();
                ms += v * match c {
                    'h' => 3_600_000.0,
                    'm' => 60_000.0,
                    _ => 1_000.0,
                };
            }
            _ => return None,
        }
    }
    if !num.is_empty() || ms < 0.0 || !ms.is_finite() || (days.is_empty() && time.is_empty()) {
        return None;
    }
    Some(ms as i64)
}

/// The group-level configs Shoal serves (DescribeConfigs/IncrementalAlterConfigs on config
/// resource type GROUP, Kafka 4.x `GroupConfig`), with what each accepts.
pub const GROUP_CONFIGS: [&str; 7] = [
    "share.auto.offset.reset",
    "share.record.lock.duration.ms",
    "share.session.timeout.ms",
    "share.heartbeat.interval.ms",
    "share.delivery.count.limit",
    "errors.deadletterqueue.topic.name",
    "errors.deadletterqueue.copy.record.enable",
];

/// Checks one group config against Kafka's rules (and this broker's bounds).
/// Errors: a message for INVALID_CONFIG.
pub fn validate_group_config(
    name: &str,
    value: &str,
    cfg: &ShareGroupConfig,
) -> Result<(), String> {
    let int = |lo: i64, hi: i64| -> Result<(), String> {
        match value.trim().parse::<i64>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(()),
            _ => Err(format!("{name} must be an integer in [{lo}, {hi}]")),
        }
    };
    match name {
        "share.auto.offset.reset" => OffsetReset::parse(value).map(|_| ()).ok_or_else(|| {
            format!("{name} must be latest, earliest or by_duration:<ISO-8601 duration>")
        }),
        "share.record.lock.duration.ms" => int(
            i64::from(cfg.min_record_lock_duration_ms),
            i64::from(cfg.max_record_lock_duration_ms),
        ),
        "share.session.timeout.ms" => int(
            i64::from(cfg.min_session_timeout_ms),
            i64::from(cfg.max_session_timeout_ms),
        ),
        "share.heartbeat.interval.ms" => int(
            i64::from(cfg.min_heartbeat_interval_ms),
            i64::from(cfg.max_heartbeat_interval_ms),
        ),
        "share.delivery.count.limit" => int(2, 10),
        // KIP-1191: whether the topic may be written (its prefix, its
        // `errors.deadletterqueue.group.enable`) is decided when a record is dead-lettered.
        "errors.deadletterqueue.topic.name" => {
            let ok = value.len() <= 249
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a valid topic name (or empty for none)"
                ))
            }
        }
        "errors.deadletterqueue.copy.record.enable" => match value.trim() {
            "true" | "false" => Ok(()),
            _ => Err(format!("{name} must be true or false")),
        },
        _ => Err(format!("{name} is not a group config Shoal serves")),
    }
}

/// The settings in force for one group: broker defaults overridden by group configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub offset_reset: OffsetReset,
    pub lock_ms: i64,
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub policy: ReleasePolicy,
    pub max_record_locks: usize,
    /// `errors.deadletterqueue.topic.name` (KIP-1191), if set and not empty.
    pub dead_letter_topic: Option<String>,
    /// `errors.deadletterqueue.copy.record.enable` (default false): the DLQ record carries
    /// the original key, value and headers.
    pub dead_letter_copy: bool,
}

impl Effective {
    /// Broker settings `cfg` with the group's `configs` applied (invalid values ignored;
    /// they are refused when set).
    pub fn of(cfg: &ShareGroupConfig, configs: Option<&BTreeMap<String, String>>) -> Self {
        let get = |k: &str| configs.and_then(|c| c.get(k));
        let num = |k: &str| get(k).and_then(|v| v.trim().parse::<i64>().ok());
        let dead_letter_topic = get("errors.deadletterqueue.topic.name")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Self {
            offset_reset: get("share.auto.offset.reset")
                .and_then(|v| OffsetReset::parse(v))
                .unwrap_or(OffsetReset::Latest),
            lock_ms: num("share.record.lock.duration.ms")
                .unwrap_or(i64::from(cfg.record_lock_duration_ms)),
            session_timeout_ms: num("share.session.timeout.ms")
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(cfg.session_timeout_ms),
            heartbeat_interval_ms: num("share.heartbeat.interval.ms")
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(cfg.heartbeat_interval_ms),
            policy: ReleasePolicy {
                delivery_count_limit: num("share.delivery.count.limit")
                    .and_then(|v| i16::try_from(v).ok())
                    .unwrap_or(cfg.delivery_count_limit),
                backoff_ms: cfg.redelivery_backoff_ms,
                backoff_max_ms: cfg.redelivery_backoff_max_ms,
                dead_letter: dead_letter_topic.is_some(),
            },
            max_record_locks: cfg.partition_max_record_locks.max(1),
            dead_letter_copy: get("errors.deadletterqueue.copy.record.enable")
                .is_some_and(|v| v.trim() == "true"),
            dead_letter_topic,
        }
    }
}

/// A share group member (Kafka's `ShareGroupMember`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub assignment: TopicPartitions,
}

/// A member's share session (KIP-932 `ShareSession`, soft state): the partitions it fetches
/// and the epoch its next request must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSession {
    pub partitions: BTreeSet<(String, i32)>,
    /// The epoch the next ShareFetch/ShareAcknowledge must carry.
    pub next_epoch: i32,
    /// The connection that opened it.
    pub connection_id: u64,
}

/// A share group (see the module docs).
#[derive(Debug, Clone)]
pub struct ShareGroup {
    /// Persisted (record `ShareGroupMetadata`).
    pub(crate) group_epoch: i32,
    pub(crate) members: BTreeMap<String, ShareMember>,
    pub(crate) sessions: BTreeMap<String, ShareSession>,
    /// Share-partition states, by `(topic, partition)`; persisted as snapshots.
    pub(crate) partitions: BTreeMap<(String, i32), SharePartition>,
    /// The subscribed topics' metadata the assignment was computed from.
    pub(crate) topics: BTreeMap<String, TopicMetadata>,
    pub(crate) state_timestamp_ms: i64,
}

impl ShareGroup {
    pub(crate) fn new(now_ms: i64) -> Self {
        Self {
            group_epoch: 0,
            members: BTreeMap::new(),
            sessions: BTreeMap::new(),
            partitions: BTreeMap::new(),
            topics: BTreeMap::new(),
            state_timestamp_ms: now_ms,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's `ShareGroupState` name: `Empty` or `Stable`.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// The group epoch.
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The share-partition of `(topic, partition)`, if it has state.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&SharePartition> {
        self.partitions.get(&(topic.to_string(), partition))
    }

    /// Every share-partition with state.
    pub fn partitions(&self) -> impl Iterator<Item = (&(String, i32), &SharePartition)> {
        self.partitions.iter()
    }

    pub(crate) fn describe(
        &self,
        group_id: &str,
        configs: Option<&BTreeMap<String, String>>,
    ) -> ShareGroupDescription {
        let mut topic_names = BTreeMap::new();
        for t in self.topics.values() {
            topic_names.insert(t.topic_id, t.name.clone());
        }
        ShareGroupDescription {
            group_id: group_id.to_string(),
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.group_epoch,
            assignor_name: "simple".to_string(),
            members: self
                .members
                .values()
                .map(|m| ShareMemberDescription {
                    member_id: m.member_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            topic_names,
            partitions: self
                .partitions
                .iter()
                .map(|((t, p), sp)| SharePartitionDescription {
                    topic: t.clone(),
                    partition: *p,
                    start_offset: sp.start_offset(),
                    end_offset: sp.end_offset(),
                    state_epoch: sp.state_epoch(),
                    counts: sp.counts(),
                })
                .collect(),
            configs: configs.cloned().unwrap_or_default(),
        }
    }
}
