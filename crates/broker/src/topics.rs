//! Topics and partitions: the registry the handlers look partitions up in, persisted as
//! records in the internal `__shoal_metadata` log (one JSON value per topic, keyed by name; a
//! tombstone deletes) and replayed at startup. Each partition owns a [`PartitionLog`], which
//! is the only way the broker touches storage: [`LocalLog`] is named only where a log is
//! opened ([`open_log`]), so another backend slots in there.
//!
//! Invariants: a topic's partition count only grows; partition directories are
//! `<data>/<topic>-<partition>` as in Kafka; `__consumer_offsets` is an internal topic with one
//! partition (Shoal runs one group coordinator per node, see docs/compatibility.md).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};
use shoal_log::{LocalLog, LogConfig, LogError, PartitionLog};
use uuid::Uuid;

use crate::config::{BrokerConfig, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use crate::internal_log;

/// Name of the internal offsets topic.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
/// The transaction coordinator's log (one partition, compacted; Kafka's
/// `transaction.state.log.num.partitions` is 50 across a cluster).
pub const TRANSACTION_STATE: &str = "__transaction_state";
const METADATA_DIR: &str = "__shoal_metadata-0";

/// Topic-level configs Shoal understands, with how they map to the broker default.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "compression.type",
    "delete.retention.ms",
    // KIP-1191: the topic may be a share group's dead-letter queue.
    "errors.deadletterqueue.group.enable",
];

impl Topic {
    /// `cleanup.policy` includes `compact`: records must have keys.
    pub fn is_compacted(&self) -> bool {
        self.configs
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|x| x.trim() == "compact"))
    }

    /// `cleanup.policy` includes `delete` (the default): retention deletes old segments.
    pub fn deletes_by_retention(&self) -> bool {
        self.configs
            .get("cleanup.policy")
            .is_none_or(|p| p.split(',').any(|x| x.trim() == "delete"))
    }
}

/// A partition's storage, behind the [`PartitionLog`] boundary.
pub type Log = Box<dyn PartitionLog>;

/// Opens the log of a partition (or internal log) kept in `dir`: the one place the broker
/// chooses a storage backend.
///
/// Errors: the log cannot be opened or recovered.
fn open_log(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
    Ok(Box::new(LocalLog::open(dir, config, now_ms())?))
}

/// One partition: its log and identity.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<Log>,
}

impl Partition {
    /// Locks the partition log. A poisoned mutex (a panic while appending) is recovered: the
    /// log's own invariants are maintained by the storage engine, not by the lock.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerIdRecord {
    next_producer_id: i64,
}

/// Why a topic operation failed; handlers map these to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic already exists")]
    AlreadyExists,
    #[error("topic name is invalid: {0}")]
    InvalidName(String),
    #[error("unknown topic or partition")]
    Unknown,
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("internal topics cannot be changed")]
    Internal,
    #[error("storage error: {0}")]
    Storage(#[from] LogError),
    #[error("storage error: {0}")]
    Other(String),
}

/// Kafka's topic name rule: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() || name.len() > 249 || name == "." || name == ".." {
        return Err(TopicError::InvalidName(name.to_string()));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(TopicError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// The registry of topics.
#[derive(Debug)]
pub struct TopicManager {
    config: Arc<BrokerConfig>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    meta: Mutex<Log>,
    next_producer_id: Mutex<(i64, i64)>,
    /// Other front ends' metadata (keys starting with [`EXTENSION_PREFIX`]), as replayed
    /// and as written since.
    extensions: Mutex<BTreeMap<String, Vec<u8>>>,
}

/// Keys of `__shoal_metadata` records that belong to another front end (the AMQP
/// exchanges, queues and bindings), never to a topic.
pub const EXTENSION_PREFIX: &str = "ext/";

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

impl TopicManager {
    /// Opens the registry under `config.data_dir`, replaying `__shoal_metadata` and opening
    /// every partition log (with recovery). Creates `__consumer_offsets` if absent.
    pub fn open(config: Arc<BrokerConfig>) -> Result<Self, TopicError> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(&data).map_err(|e| TopicError::Other(e.to_string()))?;
        let meta = open_log(
            &data.join(METADATA_DIR),
            LogConfig {
                retention_ms: -1,
                ..LogConfig::default()
            },
        )?;
        let mut records: BTreeMap<String, TopicRecord> = BTreeMap::new();
        let mut extensions: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut next_pid = 0i64;
        let mut offset = meta.log_start_offset();
        while offset < meta.log_end_offset() {
            let read = meta.read(offset, 1 << 20)?;
            if read.records.is_empty() {
                break;
            }
            let entries = internal_log::decode_batches(read.records)
                .map_err(|e| TopicError::Other(e.to_string()))?;
            for (off, key, value) in entries {
                offset = off + 1;
                let Some(key) = key else { continue };
                let key = String::from_utf8_lossy(&key).to_string();
                if key.starts_with(EXTENSION_PREFIX) {
                    match value {
                        Some(v) => extensions.insert(key, v.to_vec()),
                        None => extensions.remove(&key),
                    };
                    continue;
                }
                if key == "producer_id_block" {
                    if let Some(v) =
                        value.and_then(|v| serde_json::from_slice::<ProducerIdRecord>(&v).ok())
                    {
                        next_pid = next_pid.max(v.next_producer_id);
                    }
                    continue;
                }
                match value.and_then(|v| serde_json::from_slice::<TopicRecord>(&v).ok()) {
                    Some(t) => {
                        records.insert(t.name.clone(), t);
                    }
                    None => {
                        records.remove(&key);
                    }
                }
            }
        }
        let mgr = Self {
            config: Arc::clone(&config),
            topics: RwLock::new(HashMap::new()),
            meta: Mutex::new(meta),
            next_producer_id: Mutex::new((next_pid, next_pid)),
            extensions: Mutex::new(extensions),
        };
        for rec in records.into_values() {
            let topic = mgr.open_topic(&rec)?;
            mgr.write_topics().insert(rec.name.clone(), Arc::new(topic));
        }
        if mgr.get(CONSUMER_OFFSETS).is_none() {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert(
                "segment.bytes".to_string(),
                mgr.config.offsets_topic_segment_bytes.to_string(),
            );
            mgr.create(CONSUMER_OFFSETS, 1, configs, true)?;
        }
        if mgr.get(TRANSACTION_STATE).is_none() {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert(
                "segment.bytes".to_string(),
                mgr.config.offsets_topic_segment_bytes.to_string(),
            );
            mgr.create(TRANSACTION_STATE, 1, configs, true)?;
        }
        Ok(mgr)
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn partition_dir(&self, topic: &str, p: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{p}"))
    }

    /// The storage settings for a topic: its configs over the broker defaults.
    pub fn log_config(&self, configs: &BTreeMap<String, String>) -> LogConfig {
        let get = |k: &str| configs.get(k).and_then(|v| v.parse::<i64>().ok());
        LogConfig {
            // Validated on the way in; the clamp covers configs stored before it was.
            segment_bytes: get("segment.bytes").map_or(self.config.log_segment_bytes, |v| {
                v.clamp(SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX).unsigned_abs()
            }),
            segment_ms: get("segment.ms").unwrap_or(self.config.log_roll_ms),
            index_interval_bytes: self.config.log_index_interval_bytes,
            retention_ms: get("retention.ms").unwrap_or(self.config.log_retention_ms),
            retention_bytes: get("retention.bytes").unwrap_or(self.config.log_retention_bytes),
            log_append_time: configs.get("message.timestamp.type").map_or(
                self.config.log_message_timestamp_type == "LogAppendTime",
                |v| v.trim() == "LogAppendTime",
            ),
        }
    }

    fn open_topic(&self, rec: &TopicRecord) -> Result<Topic, TopicError> {
        let log_config = self.log_config(&rec.configs);
        let mut partitions = Vec::with_capacity(rec.partitions as usize);
        for p in 0..rec.partitions {
            let log = open_log(&self.partition_dir(&rec.name, p), log_config.clone())?;
            partitions.push(Arc::new(Partition {
                topic: rec.name.clone(),
                index: p,
                log: Mutex::new(log),
            }));
        }
        Ok(Topic {
            name: rec.name.clone(),
            id: rec.id,
            partitions,
            configs: rec.configs.clone(),
            internal: rec.name.starts_with("__"),
        })
    }

    fn persist(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), TopicError> {
        let batch = internal_log::encode_batch(&[(key.as_bytes().to_vec(), value)], now_ms())
            .map_err(|e| TopicError::Other(e.to_string()))?;
        let mut meta = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        meta.append(&batch, now_ms())?;
        if let Some(target) = meta.sync_target() {
            let res = target.file.sync_data();
            meta.sync_done(target.upto_offset, target.upto_bytes, res)?;
        }
        Ok(())
    }

    /// Writes (or with `None` deletes) another front end's metadata record `key` (which
    /// must start with [`EXTENSION_PREFIX`]) durably in `__shoal_metadata`.
    ///
    /// Errors: `InvalidName` for a key without the prefix; storage (the record is then not
    /// written).
    pub fn put_extension(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), TopicError> {
        if !key.starts_with(EXTENSION_PREFIX) {
            return Err(TopicError::InvalidName(format!(
                "{key}: extension keys start with {EXTENSION_PREFIX}"
            )));
        }
        let mut ext = self.extensions.lock().unwrap_or_else(|e| e.into_inner());
        self.persist(key, value.clone())?;
        match value {
            Some(v) => ext.insert(key.to_string(), v),
            None => ext.remove(key),
        };
        Ok(())
    }

    /// Every extension record whose key starts with `prefix`, in key order.
    pub fn extensions(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let ext = self.extensions.lock().unwrap_or_else(|e| e.into_inner());
        ext.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Looks a topic up by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    /// Looks a topic up by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().values().find(|t| t.id == id).cloned()
    }

    /// Looks a partition up.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.get(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i).cloned())
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<Arc<Topic>> = self.read_topics().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Validates a topic config map: known keys, parseable values.
    pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
        for (k, v) in configs {
            if !TOPIC_CONFIG_KEYS.contains(&k.as_str()) {
                return Err(TopicError::InvalidConfig(format!(
                    "unknown topic config {k}"
                )));
            }
            let numeric = matches!(
                k.as_str(),
                "retention.ms"
                    | "retention.bytes"
                    | "segment.bytes"
                    | "segment.ms"
                    | "max.message.bytes"
                    | "min.insync.replicas"
            );
            if k == "errors.deadletterqueue.group.enable" && !matches!(v.trim(), "true" | "false") {
                return Err(TopicError::InvalidConfig(format!(
                    "errors.deadletterqueue.group.enable={v}: expected true or false"
                )));
            }
            if k == "cleanup.policy"
                && !v
                    .split(',')
                    .map(str::trim)
                    .all(|x| x == "delete" || x == "compact")
            {
                return Err(TopicError::InvalidConfig(format!(
                    "cleanup.policy={v}: expected delete, compact or both"
                )));
            }
            if k == "message.timestamp.type" && !matches!(v.trim(), "CreateTime" | "LogAppendTime")
            {
                return Err(TopicError::InvalidConfig(format!(
                    "Invalid value {v} for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"
                )));
            }
            if numeric && v.parse::<i64>().is_err() {
                return Err(TopicError::InvalidConfig(format!(
                    "{k}={v} is not a number"
                )));
            }
            // Kafka's INT configs (the others are LONG).
            let int = matches!(
                k.as_str(),
                "segment.bytes" | "max.message.bytes" | "min.insync.replicas"
            );
            if int && v.trim().parse::<i32>().is_err() {
                return Err(TopicError::InvalidConfig(format!(
                    "Invalid value {v} for configuration {k}: Not a number of type INT"
                )));
            }
            if k == "segment.bytes" {
                crate::config::check_segment_bytes(k, v).map_err(TopicError::InvalidConfig)?;
            }
        }
        Ok(())
    }

    /// Creates a topic with `partitions` partitions (>= 1).
    ///
    /// Errors: `AlreadyExists`, `InvalidName`, `InvalidPartitions`, `InvalidConfig`, storage.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        allow_internal: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if name.starts_with("__") && !allow_internal {
            return Err(TopicError::InvalidName(format!(
                "{name}: names starting with __ are reserved"
            )));
        }
        if !(1..=100_000).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} must be between 1 and 100000"
            )));
        }
        Self::validate_configs(&configs)?;
        let mut topics = self.write_topics();
        if topics.contains_key(name) {
            return Err(TopicError::AlreadyExists);
        }
        let rec = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        for p in 0..partitions {
            // A leftover directory from a deleted topic of the same name must not leak data.
            let dir = self.partition_dir(name, p);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| TopicError::Other(e.to_string()))?;
            }
        }
        let topic = Arc::new(self.open_topic(&rec)?);
        self.persist(
            name,
            Some(serde_json::to_vec(&rec).map_err(|e| TopicError::Other(e.to_string()))?),
        )?;
        topics.insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Replaces a topic's configs (IncrementalAlterConfigs has already applied its operations)
    /// and applies the log settings to its partitions. The new configs are persisted as the
    /// topic's metadata record before they take effect.
    ///
    /// Errors: `Unknown`, `Internal`, `InvalidConfig`, storage.
    pub fn alter_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        Self::validate_configs(&configs)?;
        let mut topics = self.write_topics();
        let Some(topic) = topics.get(name).cloned() else {
            return Err(TopicError::Unknown);
        };
        if topic.internal {
            return Err(TopicError::Internal);
        }
        let rec = TopicRecord {
            name: name.to_string(),
            id: topic.id,
            partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
            configs: configs.clone(),
        };
        self.persist(
            name,
            Some(serde_json::to_vec(&rec).map_err(|e| TopicError::Other(e.to_string()))?),
        )?;
        let log_config = self.log_config(&configs);
        for p in &topic.partitions {
            p.log().set_config(log_config.clone());
        }
        topics.insert(
            name.to_string(),
            Arc::new(Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions.clone(),
                configs,
                internal: false,
            }),
        );
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Deletes a topic and its data. Errors: `Unknown`, `Internal`, storage.
    pub fn delete(&self, name: &str) -> Result<Uuid, TopicError> {
        let mut topics = self.write_topics();
        let Some(topic) = topics.get(name).cloned() else {
            return Err(TopicError::Unknown);
        };
        if topic.internal {
            return Err(TopicError::Internal);
        }
        self.persist(name, None)?;
        topics.remove(name);
        drop(topics);
        for p in &topic.partitions {
            if let Err(e) = p.log().delete() {
                tracing::warn!(topic = name, partition = p.index, error = %e, "could not remove partition data");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions. Errors: `Unknown`, `InvalidPartitions`, storage.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let mut topics = self.write_topics();
        let Some(old) = topics.get(name).cloned() else {
            return Err(TopicError::Unknown);
        };
        if old.internal {
            return Err(TopicError::Internal);
        }
        let current = old.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic has {current} partitions; the new count must be larger, got {count}"
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{count} is more than 100000"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let rec = TopicRecord {
            name: name.to_string(),
            id: old.id,
            partitions: count,
            configs: old.configs.clone(),
        };
        let log_config = self.log_config(&rec.configs);
        let mut partitions = old.partitions.clone();
        for p in current..count {
            let log = open_log(&self.partition_dir(name, p), log_config.clone())?;
            partitions.push(Arc::new(Partition {
                topic: name.to_string(),
                index: p,
                log: Mutex::new(log),
            }));
        }
        self.persist(
            name,
            Some(serde_json::to_vec(&rec).map_err(|e| TopicError::Other(e.to_string()))?),
        )?;
        topics.insert(
            name.to_string(),
            Arc::new(Topic {
                partitions,
                ..clone_topic_shell(&old)
            }),
        );
        Ok(())
    }

    /// Allocates a new idempotent producer id, unique across restarts (ids are reserved in
    /// blocks of 1000 in `__shoal_metadata`).
    pub fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        let mut g = self
            .next_producer_id
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (next, reserved) = *g;
        if next >= reserved {
            let new_reserved = next + 1000;
            let rec = ProducerIdRecord {
                next_producer_id: new_reserved,
            };
            self.persist(
                "producer_id_block",
                Some(serde_json::to_vec(&rec).map_err(|e| TopicError::Other(e.to_string()))?),
            )?;
            *g = (next + 1, new_reserved);
        } else {
            *g = (next + 1, reserved);
        }
        Ok(next)
    }

    /// Deletes segments beyond retention in every partition whose `cleanup.policy` includes
    /// `delete`, and compacts every partition whose policy includes `compact` (keeping
    /// tombstones for `delete.retention.ms`, default `log.cleaner.delete.retention.ms`).
    /// Returns segments deleted or rewritten. Compaction holds the partition's lock while it
    /// rewrites a segment, so appends and fetches of that partition wait meanwhile.
    pub fn enforce_retention(&self) -> usize {
        let mut changed = 0;
        for t in self.list() {
            let delete_retention_ms = t
                .configs
                .get("delete.retention.ms")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(self.config.log_cleaner_delete_retention_ms);
            for p in &t.partitions {
                if t.deletes_by_retention() && !t.internal {
                    match p.log().enforce_retention(now_ms()) {
                        Ok(n) => changed += n,
                        Err(e) => {
                            tracing::warn!(topic = %t.name, partition = p.index, error = %e, "retention failed")
                        }
                    }
                }
                if t.is_compacted() {
                    match p.log().compact(now_ms(), delete_retention_ms) {
                        Ok(s) if s.segments_rewritten > 0 => {
                            tracing::info!(topic = %t.name, partition = p.index, segments = s.segments_rewritten,
                                records_removed = s.records_removed, bytes_before = s.bytes_before,
                                bytes_after = s.bytes_after, "compacted");
                            changed += s.segments_rewritten;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(topic = %t.name, partition = p.index, error = %e, "compaction failed")
                        }
                    }
                }
            }
        }
        changed
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

fn clone_topic_shell(t: &Topic) -> Topic {
    Topic {
        name: t.name.clone(),
        id: t.id,
        partitions: Vec::new(),
        configs: t.configs.clone(),
        internal: t.internal,
    }
}
