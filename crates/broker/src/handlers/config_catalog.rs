//! The configs DescribeConfigs reports, as data: every broker and topic config a Kafka 3.9
//! broker lists (under Kafka's names, types and defaults), the value Shoal runs with, where
//! that value comes from (Kafka's `ConfigSource`), and the synonyms Kafka resolves it through.
//!
//! Sources follow Kafka: a topic config set on the topic is `DYNAMIC_TOPIC_CONFIG`; otherwise
//! it falls back to its broker synonym, which is `STATIC_BROKER_CONFIG` when the broker was
//! started with a value other than Kafka's default (flags, `--set`, the config file) and
//! `DEFAULT_CONFIG` otherwise. `listeners`, `advertised.listeners`, `log.dirs`, `node.id` and
//! `process.roles` are always static (a Kafka node cannot run without them). Broker configs
//! are read-only: Shoal changes none of them at run time. Sensitive configs have no value.
//!
//! Main items: [`BROKER_CONFIGS`], [`TOPIC_CONFIGS`], [`broker_entries`], [`topic_entries`].

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

/// Kafka's `ConfigSource` (DescribeConfigs `config_source`).
pub mod source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
    pub const GROUP_CONFIG: i8 = 8;
}

/// Kafka's `ConfigDef.Type` as DescribeConfigs v3+ encodes it (`config_type`).
pub mod ty {
    pub const BOOLEAN: i8 = 1;
    pub const STRING: i8 = 2;
    pub const INT: i8 = 3;
    pub const SHORT: i8 = 4;
    pub const LONG: i8 = 5;
    pub const DOUBLE: i8 = 6;
    pub const LIST: i8 = 7;
    pub const CLASS: i8 = 8;
    pub const PASSWORD: i8 = 9;
}

/// One config: name, type, Kafka's default (`None` = null) and a line of documentation.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub config_type: i8,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    config_type: i8,
    default: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default,
        doc,
    }
}

const LONG_MAX: Option<&str> = Some("9223372036854775807");
const INT_MAX: Option<&str> = Some("2147483647");

/// Broker configs, in name order (Kafka 3.9's names, types and defaults).
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def("advertised.listeners", ty::LIST, None, "Listeners published to clients in Metadata, if different from listeners."),
    def("auto.create.topics.enable", ty::BOOLEAN, Some("true"), "Create a topic when a client produces to or fetches metadata for one that does not exist."),
    def("background.threads", ty::INT, Some("10"), "Threads for background processing."),
    def("broker.id", ty::INT, Some("-1"), "The broker's id (the node id in KRaft mode)."),
    def("broker.rack", ty::STRING, None, "Rack of the broker, for rack-aware replica placement."),
    def("compression.gzip.level", ty::INT, Some("-1"), "Compression level when compression.type is gzip."),
    def("compression.lz4.level", ty::INT, Some("9"), "Compression level when compression.type is lz4."),
    def("compression.type", ty::STRING, Some("producer"), "Final compression of a topic's data; producer keeps the producer's codec."),
    def("compression.zstd.level", ty::INT, Some("3"), "Compression level when compression.type is zstd."),
    def("connections.max.idle.ms", ty::LONG, Some("600000"), "Idle connections are closed after this many milliseconds."),
    def("default.replication.factor", ty::INT, Some("1"), "Replication factor of automatically created topics."),
    def("delete.topic.enable", ty::BOOLEAN, Some("true"), "Whether topics may be deleted."),
    def("errors.deadletterqueue.auto.create.topics.enable", ty::BOOLEAN, Some("false"), "Create a share group's dead-letter topic on its first record (KIP-1191)."),
    def("errors.deadletterqueue.topic.name.prefix", ty::STRING, Some("dlq."), "Prefix every share-group dead-letter topic must have (KIP-1191)."),
    def("group.consumer.assignors", ty::LIST, Some("org.apache.kafka.coordinator.group.assignor.UniformAssignor,org.apache.kafka.coordinator.group.assignor.RangeAssignor"), "Server-side assignors of consumer groups (KIP-848); the first is the default."),
    def("group.consumer.heartbeat.interval.ms", ty::INT, Some("5000"), "Heartbeat interval of consumer-group members (KIP-848)."),
    def("group.consumer.max.size", ty::INT, INT_MAX, "Largest number of members in a consumer group (KIP-848)."),
    def("group.consumer.migration.policy", ty::STRING, Some("bidirectional"), "Online conversion between the classic and consumer group protocols."),
    def("group.consumer.session.timeout.ms", ty::INT, Some("45000"), "Session timeout of consumer-group members (KIP-848)."),
    def("group.initial.rebalance.delay.ms", ty::INT, Some("3000"), "How long the coordinator waits for more members before the first rebalance of a group."),
    def("group.max.session.timeout.ms", ty::INT, Some("1800000"), "Largest session timeout a classic group member may ask for."),
    def("group.max.size", ty::INT, INT_MAX, "Largest number of members in a classic group."),
    def("group.min.session.timeout.ms", ty::INT, Some("6000"), "Smallest session timeout a classic group member may ask for."),
    def("group.share.delivery.count.limit", ty::INT, Some("5"), "Deliveries of a record to a share group before it is archived."),
    def("group.share.heartbeat.interval.ms", ty::INT, Some("5000"), "Heartbeat interval of share-group members."),
    def("group.share.max.size", ty::SHORT, Some("200"), "Largest number of members in a share group."),
    def("group.share.record.lock.duration.ms", ty::INT, Some("30000"), "How long a share-group member holds a record it acquired."),
    def("group.share.session.timeout.ms", ty::INT, Some("45000"), "Session timeout of share-group members."),
    def("inter.broker.listener.name", ty::STRING, None, "Listener brokers use between themselves."),
    def("listener.security.protocol.map", ty::STRING, Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), "Security protocol of each listener name."),
    def("listeners", ty::STRING, Some("PLAINTEXT://:9092"), "Addresses the broker listens on."),
    def("log.cleaner.delete.retention.ms", ty::LONG, Some("86400000"), "How long tombstones are kept in compacted topics."),
    def("log.cleaner.enable", ty::BOOLEAN, Some("true"), "Run the log cleaner (compaction)."),
    def("log.cleaner.max.compaction.lag.ms", ty::LONG, LONG_MAX, "Longest time a record stays ineligible for compaction."),
    def("log.cleaner.min.cleanable.ratio", ty::DOUBLE, Some("0.5"), "Dirty ratio of a log above which it is cleaned."),
    def("log.cleaner.min.compaction.lag.ms", ty::LONG, Some("0"), "Shortest time a record stays uncompacted."),
    def("log.cleaner.threads", ty::INT, Some("1"), "Threads of the log cleaner."),
    def("log.cleanup.policy", ty::LIST, Some("delete"), "Default cleanup policy of segments beyond retention: delete or compact."),
    def("log.dir", ty::STRING, Some("/tmp/kafka-logs"), "Directory of the log data (used when log.dirs is not set)."),
    def("log.dirs", ty::STRING, None, "Directories of the log data."),
    def("log.flush.interval.messages", ty::LONG, LONG_MAX, "Messages accumulated on a partition before they are flushed to disk."),
    def("log.flush.interval.ms", ty::LONG, None, "Longest time a message stays in memory before it is flushed to disk."),
    def("log.flush.scheduler.interval.ms", ty::LONG, LONG_MAX, "How often the flusher checks whether a log needs flushing."),
    def("log.index.interval.bytes", ty::INT, Some("4096"), "Log bytes between two offset-index entries."),
    def("log.index.size.max.bytes", ty::INT, Some("10485760"), "Largest offset index of a segment."),
    def("log.local.retention.bytes", ty::LONG, Some("-2"), "Local retention size with tiered storage (-2: retention.bytes)."),
    def("log.local.retention.ms", ty::LONG, Some("-2"), "Local retention time with tiered storage (-2: retention.ms)."),
    def("log.message.downconversion.enable", ty::BOOLEAN, Some("true"), "Down-convert messages for old consumers."),
    def("log.message.timestamp.after.max.ms", ty::LONG, LONG_MAX, "How far a record timestamp may be ahead of the broker's clock."),
    def("log.message.timestamp.before.max.ms", ty::LONG, LONG_MAX, "How far a record timestamp may be behind the broker's clock."),
    def("log.message.timestamp.difference.max.ms", ty::LONG, LONG_MAX, "Largest difference between a record timestamp and the broker's clock (deprecated)."),
    def("log.message.timestamp.type", ty::STRING, Some("CreateTime"), "Timestamp kept with records: CreateTime or LogAppendTime."),
    def("log.preallocate", ty::BOOLEAN, Some("false"), "Preallocate segment files."),
    def("log.retention.bytes", ty::LONG, Some("-1"), "Largest size of a partition before old segments are deleted (-1: no limit)."),
    def("log.retention.check.interval.ms", ty::LONG, Some("300000"), "How often segments are checked against retention."),
    def("log.retention.hours", ty::INT, Some("168"), "Hours a segment is kept (lowest precedence of the retention settings)."),
    def("log.retention.minutes", ty::INT, None, "Minutes a segment is kept (over log.retention.hours)."),
    def("log.retention.ms", ty::LONG, None, "Milliseconds a segment is kept (over log.retention.minutes); -1 keeps forever."),
    def("log.roll.hours", ty::INT, Some("168"), "Hours before a new segment is rolled."),
    def("log.roll.jitter.hours", ty::INT, Some("0"), "Jitter subtracted from the roll time, in hours."),
    def("log.roll.jitter.ms", ty::LONG, None, "Jitter subtracted from the roll time, in milliseconds."),
    def("log.roll.ms", ty::LONG, None, "Milliseconds before a new segment is rolled (over log.roll.hours)."),
    def("log.segment.bytes", ty::INT, Some("1073741824"), "Largest size of a segment file."),
    def("log.segment.delete.delay.ms", ty::LONG, Some("60000"), "Delay before a deleted segment's file is removed."),
    def("max.connections", ty::INT, INT_MAX, "Largest number of connections the broker accepts."),
    def("message.max.bytes", ty::INT, Some("1048588"), "Largest record batch the broker accepts."),
    def("min.insync.replicas", ty::INT, Some("1"), "Replicas that must acknowledge an acks=all write."),
    def("node.id", ty::INT, Some("-1"), "The node's id."),
    def("num.io.threads", ty::INT, Some("8"), "Threads processing requests."),
    def("num.network.threads", ty::INT, Some("3"), "Threads receiving requests and sending responses."),
    def("num.partitions", ty::INT, Some("1"), "Partitions of automatically created topics."),
    def("num.recovery.threads.per.data.dir", ty::INT, Some("2"), "Threads per log directory for recovery at start and flush at shutdown."),
    def("num.replica.fetchers", ty::INT, Some("1"), "Threads replicating from each source broker."),
    def("offset.metadata.max.bytes", ty::INT, Some("4096"), "Largest metadata string of a committed offset."),
    def("offsets.commit.timeout.ms", ty::INT, Some("5000"), "How long an offset commit waits for its write."),
    def("offsets.retention.check.interval.ms", ty::LONG, Some("600000"), "How often stale offsets are looked for."),
    def("offsets.retention.minutes", ty::INT, Some("10080"), "How long committed offsets of an empty group are kept."),
    def("offsets.topic.num.partitions", ty::INT, Some("50"), "Partitions of __consumer_offsets."),
    def("offsets.topic.replication.factor", ty::SHORT, Some("3"), "Replication factor of __consumer_offsets."),
    def("offsets.topic.segment.bytes", ty::INT, Some("104857600"), "Segment size of __consumer_offsets."),
    def("process.roles", ty::LIST, Some(""), "Roles of this node: broker, controller or both."),
    def("producer.id.expiration.ms", ty::INT, Some("86400000"), "How long idempotent producer state is kept without writes."),
    def("queued.max.requests", ty::INT, Some("500"), "Requests queued before network threads stop reading."),
    def("replica.fetch.max.bytes", ty::INT, Some("1048576"), "Bytes a follower fetches per partition."),
    def("sasl.enabled.mechanisms", ty::LIST, Some("GSSAPI"), "SASL mechanisms the broker accepts."),
    def("security.inter.broker.protocol", ty::STRING, Some("PLAINTEXT"), "Security protocol between brokers."),
    def("socket.receive.buffer.bytes", ty::INT, Some("102400"), "SO_RCVBUF of the listening sockets (-1: OS default)."),
    def("socket.request.max.bytes", ty::INT, Some("104857600"), "Largest request the broker reads."),
    def("socket.send.buffer.bytes", ty::INT, Some("102400"), "SO_SNDBUF of the listening sockets (-1: OS default)."),
    def("ssl.key.password", ty::PASSWORD, None, "Password of the private key in the key store."),
    def("ssl.keystore.password", ty::PASSWORD, None, "Password of the key store."),
    def("ssl.truststore.password", ty::PASSWORD, None, "Password of the trust store."),
    def("transaction.max.timeout.ms", ty::INT, Some("900000"), "Largest transaction timeout a producer may ask for."),
    def("transaction.state.log.min.isr", ty::INT, Some("2"), "min.insync.replicas of __transaction_state."),
    def("transaction.state.log.num.partitions", ty::INT, Some("50"), "Partitions of __transaction_state."),
    def("transaction.state.log.replication.factor", ty::SHORT, Some("3"), "Replication factor of __transaction_state."),
    def("transactional.id.expiration.ms", ty::INT, Some("604800000"), "How long a transactional id without transactions is kept."),
    def("unclean.leader.election.enable", ty::BOOLEAN, Some("false"), "Allow a replica outside the ISR to become leader."),
];

/// Topic configs, in name order (Kafka 3.9's), each with the broker config it defaults to.
pub const TOPIC_CONFIGS: &[(ConfigDef, Option<&str>)] = &[
    (
        def(
            "cleanup.policy",
            ty::LIST,
            Some("delete"),
            "delete, compact, or both: what happens to old segments.",
        ),
        Some("log.cleanup.policy"),
    ),
    (
        def(
            "compression.gzip.level",
            ty::INT,
            Some("-1"),
            "Compression level when compression.type is gzip.",
        ),
        Some("compression.gzip.level"),
    ),
    (
        def(
            "compression.lz4.level",
            ty::INT,
            Some("9"),
            "Compression level when compression.type is lz4.",
        ),
        Some("compression.lz4.level"),
    ),
    (
        def(
            "compression.type",
            ty::STRING,
            Some("producer"),
            "Final compression of the topic's data; producer keeps the producer's codec.",
        ),
        Some("compression.type"),
    ),
    (
        def(
            "compression.zstd.level",
            ty::INT,
            Some("3"),
            "Compression level when compression.type is zstd.",
        ),
        Some("compression.zstd.level"),
    ),
    (
        def(
            "delete.retention.ms",
            ty::LONG,
            Some("86400000"),
            "How long tombstones are kept when the topic is compacted.",
        ),
        Some("log.cleaner.delete.retention.ms"),
    ),
    (
        def(
            "errors.deadletterqueue.group.enable",
            ty::BOOLEAN,
            Some("false"),
            "The topic may be a share group's dead-letter queue (KIP-1191).",
        ),
        None,
    ),
    (
        def(
            "file.delete.delay.ms",
            ty::LONG,
            Some("60000"),
            "Delay before a deleted segment's file is removed.",
        ),
        Some("log.segment.delete.delay.ms"),
    ),
    (
        def(
            "flush.messages",
            ty::LONG,
            LONG_MAX,
            "Messages accumulated before they are flushed to disk.",
        ),
        Some("log.flush.interval.messages"),
    ),
    (
        def(
            "flush.ms",
            ty::LONG,
            LONG_MAX,
            "Longest time a message stays in memory before it is flushed to disk.",
        ),
        Some("log.flush.interval.ms"),
    ),
    (
        def(
            "follower.replication.throttled.replicas",
            ty::LIST,
            Some(""),
            "Replicas whose follower replication is throttled.",
        ),
        None,
    ),
    (
        def(
            "index.interval.bytes",
            ty::INT,
            Some("4096"),
            "Log bytes between two offset-index entries.",
        ),
        Some("log.index.interval.bytes"),
    ),
    (
        def(
            "leader.replication.throttled.replicas",
            ty::LIST,
            Some(""),
            "Replicas whose leader replication is throttled.",
        ),
        None,
    ),
    (
        def(
            "local.retention.bytes",
            ty::LONG,
            Some("-2"),
            "Local retention size with tiered storage (-2: retention.bytes).",
        ),
        Some("log.local.retention.bytes"),
    ),
    (
        def(
            "local.retention.ms",
            ty::LONG,
            Some("-2"),
            "Local retention time with tiered storage (-2: retention.ms).",
        ),
        Some("log.local.retention.ms"),
    ),
    (
        def(
            "max.compaction.lag.ms",
            ty::LONG,
            LONG_MAX,
            "Longest time a record stays ineligible for compaction.",
        ),
        Some("log.cleaner.max.compaction.lag.ms"),
    ),
    (
        def(
            "max.message.bytes",
            ty::INT,
            Some("1048588"),
            "Largest record batch the topic accepts.",
        ),
        Some("message.max.bytes"),
    ),
    (
        def(
            "message.downconversion.enable",
            ty::BOOLEAN,
            Some("true"),
            "Down-convert messages for old consumers.",
        ),
        Some("log.message.downconversion.enable"),
    ),
    (
        def(
            "message.format.version",
            ty::STRING,
            Some("3.0-IV1"),
            "Message format version (ignored from 3.0 on).",
        ),
        Some("log.message.format.version"),
    ),
    (
        def(
            "message.timestamp.after.max.ms",
            ty::LONG,
            LONG_MAX,
            "How far a record timestamp may be ahead of the broker's clock.",
        ),
        Some("log.message.timestamp.after.max.ms"),
    ),
    (
        def(
            "message.timestamp.before.max.ms",
            ty::LONG,
            LONG_MAX,
            "How far a record timestamp may be behind the broker's clock.",
        ),
        Some("log.message.timestamp.before.max.ms"),
    ),
    (
        def(
            "message.timestamp.difference.max.ms",
            ty::LONG,
            LONG_MAX,
            "Largest difference between a record timestamp and the broker's clock (deprecated).",
        ),
        Some("log.message.timestamp.difference.max.ms"),
    ),
    (
        def(
            "message.timestamp.type",
            ty::STRING,
            Some("CreateTime"),
            "Timestamp kept with records: CreateTime or LogAppendTime.",
        ),
        Some("log.message.timestamp.type"),
    ),
    (
        def(
            "min.cleanable.dirty.ratio",
            ty::DOUBLE,
            Some("0.5"),
            "Dirty ratio above which the log is cleaned.",
        ),
        Some("log.cleaner.min.cleanable.ratio"),
    ),
    (
        def(
            "min.compaction.lag.ms",
            ty::LONG,
            Some("0"),
            "Shortest time a record stays uncompacted.",
        ),
        Some("log.cleaner.min.compaction.lag.ms"),
    ),
    (
        def(
            "min.insync.replicas",
            ty::INT,
            Some("1"),
            "Replicas that must acknowledge an acks=all write.",
        ),
        Some("min.insync.replicas"),
    ),
    (
        def(
            "preallocate",
            ty::BOOLEAN,
            Some("false"),
            "Preallocate segment files.",
        ),
        Some("log.preallocate"),
    ),
    (
        def(
            "remote.log.copy.disable",
            ty::BOOLEAN,
            Some("false"),
            "Stop copying segments to tiered storage.",
        ),
        None,
    ),
    (
        def(
            "remote.log.delete.on.disable",
            ty::BOOLEAN,
            Some("false"),
            "Delete tiered data when tiered storage is turned off.",
        ),
        None,
    ),
    (
        def(
            "remote.storage.enable",
            ty::BOOLEAN,
            Some("false"),
            "Tiered storage for the topic.",
        ),
        None,
    ),
    (
        def(
            "retention.bytes",
            ty::LONG,
            Some("-1"),
            "Largest size of a partition before old segments are deleted (-1: no limit).",
        ),
        Some("log.retention.bytes"),
    ),
    (
        def(
            "retention.ms",
            ty::LONG,
            Some("604800000"),
            "How long segments are kept; -1 keeps forever.",
        ),
        Some("log.retention.ms"),
    ),
    (
        def(
            "segment.bytes",
            ty::INT,
            Some("1073741824"),
            "Largest size of a segment file.",
        ),
        Some("log.segment.bytes"),
    ),
    (
        def(
            "segment.index.bytes",
            ty::INT,
            Some("10485760"),
            "Largest offset index of a segment.",
        ),
        Some("log.index.size.max.bytes"),
    ),
    (
        def(
            "segment.jitter.ms",
            ty::LONG,
            Some("0"),
            "Jitter subtracted from the roll time.",
        ),
        Some("log.roll.jitter.ms"),
    ),
    (
        def(
            "segment.ms",
            ty::LONG,
            Some("604800000"),
            "Milliseconds before a new segment is rolled.",
        ),
        Some("log.roll.ms"),
    ),
    (
        def(
            "unclean.leader.election.enable",
            ty::BOOLEAN,
            Some("false"),
            "Allow a replica outside the ISR to become leader.",
        ),
        Some("unclean.leader.election.enable"),
    ),
];

/// Broker configs that resolve through others, most specific first (Kafka's synonyms).
const BROKER_SYNONYMS: &[&[&str]] = &[
    &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ],
    &["log.roll.ms", "log.roll.hours"],
    &["log.roll.jitter.ms", "log.roll.jitter.hours"],
    &["log.dirs", "log.dir"],
];

/// Always set on a running node, hence static.
const ALWAYS_STATIC: &[&str] = &[
    "advertised.listeners",
    "broker.id",
    "listeners",
    "log.dirs",
    "node.id",
    "process.roles",
];

/// A synonym as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

/// A config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub config_type: i8,
    pub read_only: bool,
    pub sensitive: bool,
    pub doc: &'static str,
    pub synonyms: Vec<Synonym>,
}

fn ms_as(total_ms: i64, unit_ms: i64) -> Option<String> {
    (total_ms % unit_ms == 0).then(|| (total_ms / unit_ms).to_string())
}

/// The value Shoal runs with for a broker config it serves (`None` for configs it does not
/// have: those report Kafka's default). `Some(None)` is a null value.
fn shoal_value(name: &str, c: &BrokerConfig) -> Option<Option<String>> {
    let v = |s: String| Some(Some(s));
    let week_ms = 168 * 3_600_000;
    match name {
        "advertised.listeners" => v(c
            .listeners
            .iter()
            .map(|l| {
                let (host, port) = c.advertised_for(&l.name);
                crate::server::listener::Endpoint {
                    name: l.name.clone(),
                    host,
                    port: u16::try_from(port).unwrap_or(0),
                }
                .to_string()
            })
            .collect::<Vec<_>>()
            .join(",")),
        "listeners" => v(c
            .listeners
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",")),
        "listener.security.protocol.map" => v(c
            .listener_security_protocol_map
            .iter()
            .map(|(n, p)| format!("{n}:{}", p.name()))
            .collect::<Vec<_>>()
            .join(",")),
        "log.dirs" => v(c.data_dir.display().to_string()),
        "node.id" | "broker.id" => v(c.node_id.to_string()),
        "process.roles" => v("broker,controller".into()),
        "inter.broker.listener.name" => v("PLAINTEXT".into()),
        "num.partitions" => v(c.num_partitions.to_string()),
        "auto.create.topics.enable" => v(c.auto_create_topics_enable.to_string()),
        "default.replication.factor" => v(c.default_replication_factor.to_string()),
        "message.max.bytes" => v(c.message_max_bytes.to_string()),
        "socket.request.max.bytes" => v(c.socket_request_max_bytes.to_string()),
        "max.connections" => v(c.max_connections.to_string()),
        "connections.max.idle.ms" => v(c.connections_max_idle_ms.to_string()),
        "log.segment.bytes" => v(c.log_segment_bytes.to_string()),
        // The most specific setting that holds the value; the hours default otherwise.
        "log.roll.ms" => Some((c.log_roll_ms != week_ms).then(|| c.log_roll_ms.to_string())),
        "log.roll.hours" => Some(Some(
            ms_as(c.log_roll_ms, 3_600_000).unwrap_or_else(|| "168".into()),
        )),
        "log.retention.ms" => Some(
            (c.log_retention_ms != week_ms && ms_as(c.log_retention_ms, 3_600_000).is_none())
                .then(|| c.log_retention_ms.to_string()),
        ),
        "log.retention.hours" => Some(Some(
            ms_as(c.log_retention_ms, 3_600_000).unwrap_or_else(|| "168".into()),
        )),
        "log.retention.bytes" => v(c.log_retention_bytes.to_string()),
        "log.retention.check.interval.ms" => v(c.log_retention_check_interval_ms.to_string()),
        "log.index.interval.bytes" => v(c.log_index_interval_bytes.to_string()),
        "log.flush.interval.messages" => v(c.log_flush_interval_messages.to_string()),
        "log.flush.interval.ms" => {
            Some((c.log_flush_interval_ms != i64::MAX).then(|| c.log_flush_interval_ms.to_string()))
        }
        "log.cleaner.delete.retention.ms" => v(c.log_cleaner_delete_retention_ms.to_string()),
        "group.initial.rebalance.delay.ms" => v(c.group_initial_rebalance_delay_ms.to_string()),
        "group.min.session.timeout.ms" => v(c.group_min_session_timeout_ms.to_string()),
        "group.max.session.timeout.ms" => v(c.group_max_session_timeout_ms.to_string()),
        "group.max.size" => v(c.group_max_size.to_string()),
        "group.consumer.session.timeout.ms" => v(c.group_consumer_session_timeout_ms.to_string()),
        "group.consumer.heartbeat.interval.ms" => {
            v(c.group_consumer_heartbeat_interval_ms.to_string())
        }
        "group.consumer.assignors" => v(c.group_consumer_assignors.join(",")),
        "group.consumer.max.size" => v(c.group_consumer_max_size.to_string()),
        "group.share.session.timeout.ms" => v(c.group_share.session_timeout_ms.to_string()),
        "group.share.heartbeat.interval.ms" => v(c.group_share.heartbeat_interval_ms.to_string()),
        "group.share.record.lock.duration.ms" => {
            v(c.group_share.record_lock_duration_ms.to_string())
        }
        "group.share.delivery.count.limit" => v(c.group_share.delivery_count_limit.to_string()),
        "group.share.max.size" => v(c.group_share.max_size.to_string()),
        "offsets.retention.minutes" => v(c.offsets_retention_minutes.to_string()),
        "offsets.retention.check.interval.ms" => {
            v(c.offsets_retention_check_interval_ms.to_string())
        }
        "offset.metadata.max.bytes" => v(c.offset_metadata_max_bytes.to_string()),
        "offsets.topic.segment.bytes" => v(c.offsets_topic_segment_bytes.to_string()),
        // One node: the internal topics have one partition and one replica.
        "offsets.topic.num.partitions"
        | "offsets.topic.replication.factor"
        | "transaction.state.log.num.partitions"
        | "transaction.state.log.replication.factor"
        | "transaction.state.log.min.isr" => v("1".into()),
        "transaction.max.timeout.ms" => v(c.transaction_max_timeout_ms.to_string()),
        "transactional.id.expiration.ms" => v(c.transactional_id_expiration_ms.to_string()),
        "errors.deadletterqueue.topic.name.prefix" => {
            v(c.errors_deadletterqueue_topic_name_prefix.clone())
        }
        "errors.deadletterqueue.auto.create.topics.enable" => v(c
            .errors_deadletterqueue_auto_create_topics_enable
            .to_string()),
        _ => None,
    }
}

fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// A broker config's value and source (see the module docs).
fn broker_value(d: &ConfigDef, c: &BrokerConfig) -> (Option<String>, i8) {
    if d.config_type == ty::PASSWORD {
        return (None, source::DEFAULT_CONFIG);
    }
    let default = d.default.map(str::to_string);
    match shoal_value(d.name, c) {
        Some(v) if ALWAYS_STATIC.contains(&d.name) || v != default => {
            (v, source::STATIC_BROKER_CONFIG)
        }
        Some(v) => (v, source::DEFAULT_CONFIG),
        None => (default, source::DEFAULT_CONFIG),
    }
}

/// The synonyms of broker config `name`, most specific first, each that has a value.
fn broker_synonyms(name: &str, c: &BrokerConfig) -> Vec<Synonym> {
    let chain: &[&str] = BROKER_SYNONYMS
        .iter()
        .find(|g| g.first() == Some(&name))
        .copied()
        .unwrap_or(std::slice::from_ref(&name));
    let mut out = Vec::new();
    for n in chain {
        let Some(d) = broker_def(n) else { continue };
        let (value, source) = broker_value(d, c);
        if value.is_some() {
            // A static setting shows the configured value, and the default behind it too.
            if source == source::STATIC_BROKER_CONFIG && d.default.is_some() {
                out.push(Synonym {
                    name: d.name.to_string(),
                    value,
                    source,
                });
                out.push(Synonym {
                    name: d.name.to_string(),
                    value: d.default.map(str::to_string),
                    source: source::DEFAULT_CONFIG,
                });
            } else {
                out.push(Synonym {
                    name: d.name.to_string(),
                    value,
                    source,
                });
            }
        }
    }
    out
}

/// Every broker config, with its value and source.
pub fn broker_entries(c: &BrokerConfig) -> Vec<Entry> {
    BROKER_CONFIGS
        .iter()
        .map(|d| {
            let (value, source) = broker_value(d, c);
            Entry {
                name: d.name.to_string(),
                value,
                source,
                config_type: d.config_type,
                read_only: true,
                sensitive: d.config_type == ty::PASSWORD,
                doc: d.doc,
                synonyms: broker_synonyms(d.name, c),
            }
        })
        .collect()
}

/// The value a topic config has when the topic does not set it: its broker synonym's, or
/// the topic default (converted from the broker's unit where they differ).
fn topic_default(d: &ConfigDef, broker: Option<&str>, c: &BrokerConfig) -> (Option<String>, i8) {
    match d.name {
        // Kafka's broker synonyms are in other units or null by default: the effective ms.
        "retention.ms" => {
            let src = broker_synonyms("log.retention.ms", c)
                .first()
                .map_or(source::DEFAULT_CONFIG, |s| s.source);
            return (Some(c.log_retention_ms.to_string()), src);
        }
        "segment.ms" => {
            let src = broker_synonyms("log.roll.ms", c)
                .first()
                .map_or(source::DEFAULT_CONFIG, |s| s.source);
            return (Some(c.log_roll_ms.to_string()), src);
        }
        "flush.ms" => {
            let src = broker_synonyms("log.flush.interval.ms", c)
                .first()
                .map_or(source::DEFAULT_CONFIG, |s| s.source);
            return (Some(c.log_flush_interval_ms.to_string()), src);
        }
        _ => {}
    }
    match broker.and_then(broker_def) {
        Some(b) => match broker_value(b, c) {
            (Some(v), src) => (Some(v), src),
            (None, _) => (d.default.map(str::to_string), source::DEFAULT_CONFIG),
        },
        None => (d.default.map(str::to_string), source::DEFAULT_CONFIG),
    }
}

/// Every topic config of a topic whose own settings are `set`: set ones are
/// `DYNAMIC_TOPIC_CONFIG`, others fall back to the broker (see the module docs).
pub fn topic_entries(set: &BTreeMap<String, String>, c: &BrokerConfig) -> Vec<Entry> {
    TOPIC_CONFIGS
        .iter()
        .map(|(d, broker)| {
            let mut synonyms = Vec::new();
            let (value, source) = match set.get(d.name) {
                Some(v) => {
                    synonyms.push(Synonym {
                        name: d.name.to_string(),
                        value: Some(v.clone()),
                        source: source::DYNAMIC_TOPIC_CONFIG,
                    });
                    (Some(v.clone()), source::DYNAMIC_TOPIC_CONFIG)
                }
                None => topic_default(d, *broker, c),
            };
            match broker {
                Some(b) => synonyms.extend(broker_synonyms(b, c)),
                None => {
                    if let Some(v) = d.default {
                        synonyms.push(Synonym {
                            name: d.name.to_string(),
                            value: Some(v.to_string()),
                            source: source::DEFAULT_CONFIG,
                        });
                    }
                }
            }
            Entry {
                name: d.name.to_string(),
                value,
                source,
                config_type: d.config_type,
                read_only: false,
                sensitive: false,
                doc: d.doc,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_are_sorted_and_unique() {
        for w in BROKER_CONFIGS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for w in TOPIC_CONFIGS.windows(2) {
            assert!(
                w[0].0.name < w[1].0.name,
                "{} before {}",
                w[0].0.name,
                w[1].0.name
            );
        }
        for key in crate::topics::TOPIC_CONFIG_KEYS {
            assert!(
                TOPIC_CONFIGS.iter().any(|(d, _)| d.name == *key),
                "{key} is served but not described"
            );
        }
    }

    #[test]
    fn defaults_are_default_config_and_started_with_settings_are_static() {
        let mut c = BrokerConfig::default();
        let e = broker_entries(&c);
        let get = |e: &[Entry], n: &str| e.iter().find(|x| x.name == n).cloned().expect(n);
        assert_eq!(get(&e, "num.partitions").source, source::DEFAULT_CONFIG);
        assert_eq!(get(&e, "listeners").source, source::STATIC_BROKER_CONFIG);
        assert_eq!(get(&e, "log.retention.ms").value, None);
        assert_eq!(get(&e, "log.retention.hours").value.as_deref(), Some("168"));
        assert!(get(&e, "ssl.keystore.password").sensitive);
        c.num_partitions = 3;
        c.log_retention_ms = 1234;
        let e = broker_entries(&c);
        assert_eq!(
            get(&e, "num.partitions").source,
            source::STATIC_BROKER_CONFIG
        );
        let r = get(&e, "log.retention.ms");
        assert_eq!(r.value.as_deref(), Some("1234"));
        assert_eq!(
            r.synonyms.first().map(|s| s.source),
            Some(source::STATIC_BROKER_CONFIG)
        );
        let mut set = BTreeMap::new();
        set.insert("retention.ms".to_string(), "99".to_string());
        let t = topic_entries(&set, &c);
        let r = get(&t, "retention.ms");
        assert_eq!(
            (r.value.as_deref(), r.source),
            (Some("99"), source::DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(r.synonyms.len(), 3, "{:?}", r.synonyms);
        let s = get(&t, "segment.bytes");
        assert_eq!(s.source, source::DEFAULT_CONFIG);
        assert_eq!(s.config_type, ty::INT);
    }
}
