//! Broker configuration under Kafka's own names (`num.partitions`,
//! `group.initial.rebalance.delay.ms`, ...), with Kafka's defaults. Values come from, in
//! increasing precedence: defaults, a TOML file (`key = value` with Kafka names, dotted keys
//! quoted or nested), and `--set key=value` pairs. Unknown keys are an error, so a typo never
//! silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::server::listener::{self, Endpoint, SecurityProtocol};
use crate::server::tls;

/// A configuration problem, reported before the broker starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown broker setting `{0}` (settings use Kafka's names, e.g. num.partitions)")]
    UnknownKey(String),
    #[error("setting `{key}` = `{value}` is invalid: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("`--set` expects key=value, got `{0}`")]
    MalformedPair(String),
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

/// All broker settings. Durations are milliseconds, sizes bytes.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The first listener's address (`--kafka-addr`, default 127.0.0.1:9092); after start-up,
    /// the address it is bound to.
    pub kafka_addr: SocketAddr,
    /// `listeners` (default `PLAINTEXT://127.0.0.1:9092`): see [`crate::server::listener`].
    /// After start-up, port-0 entries carry the port they are bound to.
    pub listeners: Vec<Endpoint>,
    /// `advertised.listeners` (default: empty, every listener advertises its own address).
    pub advertised_listeners: Vec<Endpoint>,
    /// `listener.security.protocol.map` (Kafka's default maps each protocol name to itself).
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    /// `ssl.*` settings as given (names and meaning in [`crate::server::tls`]); checked when
    /// a TLS listener is built at start-up.
    pub ssl: BTreeMap<String, String>,
    /// `listener.name.<name>.<setting>` overrides, by upper-case listener name (Kafka's
    /// per-listener prefix): an `ssl.*` setting here wins over the global one for that listener.
    pub listener_overrides: BTreeMap<String, BTreeMap<String, String>>,
    /// `sasl.enabled.mechanisms` (Shoal's default `SCRAM-SHA-256,SCRAM-SHA-512`; Kafka's is
    /// GSSAPI, which Shoal does not serve): mechanisms SASL listeners offer.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// `connections.max.reauth.ms` (KIP-368, default 0 = sessions never expire): a SASL
    /// session lives this long; a client must re-authenticate before it ends or its
    /// connection is closed at its next request.
    pub connections_max_reauth_ms: i64,
    /// `authorizer.class.name` (default empty: no authorizer, nothing is checked, and the
    /// ACL APIs answer SECURITY_DISABLED, as Kafka): Kafka's `StandardAuthorizer` or
    /// `AclAuthorizer` class name turns ACLs on ([`crate::auth::acl`]).
    pub authorizer_class_name: String,
    /// `super.users`: principals allowed everything (`User:admin;User:ops`).
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found` (default false).
    pub allow_everyone_if_no_acl_found: bool,
    /// `quota.window.num` (default 11, at least 1) and `quota.window.size.seconds` (default
    /// 1, at least 1): client quotas let a client run `num − 1` windows ahead of its quota and
    /// cap request-time throttles at one window ([`crate::auth::quota`]).
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
    /// `sasl.oauthbearer.*`: how OAUTHBEARER tokens are validated
    /// ([`crate::auth::oauthbearer`]).
    pub sasl_oauthbearer: crate::auth::oauthbearer::OAuthBearerConfig,
    /// `sasl.server.max.receive.size` (default 524288 bytes): the largest frame a SASL
    /// connection may send before it has authenticated.
    pub sasl_server_max_receive_size: i32,
    /// `connection.failed.authentication.delay.ms` (default 100): how long the answer to a
    /// failed authentication, and the close after it, are held back.
    pub connection_failed_authentication_delay_ms: i64,
    /// Host advertised in Metadata (`advertised.host`, Shoal's older setting) for listeners
    /// `advertised.listeners` does not name; defaults to the listener's host.
    pub advertised_host: Option<String>,
    /// Shoal's `http.auth.token` (default empty): when security is on
    /// ([`BrokerConfig::security_on`]), the admin HTTP API answers only requests carrying it
    /// (`Authorization: Bearer <token>`, or HTTP Basic with it as the password), unless the
    /// HTTP port requires client certificates. Never logged nor described.
    pub http_auth_token: String,
    /// HTTP address for the admin API and metrics (`--http-addr`, default 127.0.0.1:8080).
    pub http_addr: SocketAddr,
    /// Where logs live (`--data-dir`, `log.dirs`; default ./data).
    pub data_dir: PathBuf,
    /// `node.id` / `broker.id` (default 0).
    pub node_id: i32,
    /// `num.partitions` for auto-created topics (default 1).
    pub num_partitions: i32,
    /// `auto.create.topics.enable` (default true).
    pub auto_create_topics_enable: bool,
    /// `default.replication.factor` (only 1 is meaningful on one node).
    pub default_replication_factor: i16,
    /// `message.max.bytes`: largest record batch accepted (default 1048588).
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`: largest request frame (default 104857600).
    pub socket_request_max_bytes: i32,
    /// `max.connections` (default i32::MAX in Kafka; we cap at 10000).
    pub max_connections: usize,
    /// `connections.max.idle.ms`: close connections idle this long (default 600000).
    pub connections_max_idle_ms: i64,
    /// `max.connections.per.ip` (default i32::MAX as in Kafka): connections one address may
    /// hold open; more are closed at accept.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides` (`host:count,host:count`, hosts as IP addresses):
    /// per-address exceptions to `max.connections.per.ip`.
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    /// `queued.max.request.bytes` (default -1 = no limit, as Kafka): bytes of requests read
    /// and not yet handled, across all connections; a connection whose next frame does not
    /// fit waits before reading it.
    pub queued_max_request_bytes: i64,
    /// Shoal's `connections.handshake.timeout.ms` (default 10000): a TLS handshake, and on
    /// SASL listeners the whole authentication, must finish this soon after accept, or the
    /// connection is closed (Kafka bounds them only by `connections.max.idle.ms`).
    pub connections_handshake_timeout_ms: i64,
    /// `log.segment.bytes` (default 1 GiB; 14 to 2147483647, as Kafka 3.x).
    pub log_segment_bytes: u64,
    /// `log.roll.ms` (default 7 days, from `log.roll.hours` = 168).
    pub log_roll_ms: i64,
    /// `log.retention.ms` (default 7 days, from `log.retention.hours` = 168); -1 = forever.
    pub log_retention_ms: i64,
    /// `log.retention.bytes` (default -1 = no limit).
    pub log_retention_bytes: i64,
    /// `log.message.timestamp.type` (default `CreateTime`): `LogAppendTime` makes the broker
    /// stamp every appended batch with its append time; a topic's `message.timestamp.type`
    /// overrides it.
    pub log_message_timestamp_type: String,
    /// `log.retention.check.interval.ms` (default 300000).
    pub log_retention_check_interval_ms: i64,
    /// `log.index.interval.bytes` (default 4096).
    pub log_index_interval_bytes: u64,
    /// `log.flush.interval.messages`: fsync after this many messages (Kafka default
    /// Long.MAX_VALUE; acks=-1 is always fsynced before acknowledgement regardless).
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`: fsync dirty logs at least this often (default: never).
    pub log_flush_interval_ms: i64,
    /// Shoal's `log.flush.writeback.bytes`: start a background fsync of a partition each time
    /// this many more bytes are appended without one (write-behind, like RocksDB's
    /// `bytes_per_sync`), so acks=0/1 traffic never builds a backlog of dirty pages that the
    /// kernel later flushes in one burst, stalling every writer. Acknowledgements do not wait
    /// for it. Default 8 MiB; 0 or less turns it off (Kafka's behaviour).
    pub log_flush_writeback_bytes: i64,
    /// `group.initial.rebalance.delay.ms` (default 3000).
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (default 6000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (default 1800000).
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size` (default i32::MAX).
    pub group_max_size: i32,
    /// `offsets.retention.minutes` (default 10080 = 7 days).
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms` (default 600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (default 4096).
    pub offset_metadata_max_bytes: i32,
    /// `transaction.max.timeout.ms` (default 900000): the largest `transaction.timeout.ms` a
    /// transactional producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (default 604800000 = 7 days): a transactional id
    /// without a transaction for this long is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `group.consumer.session.timeout.ms` (default 45000): KIP-848 member session.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (default 5000).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.reconciling.heartbeat.interval.ms` (Shoal only, default 50): the
    /// heartbeat interval asked of members while their group reconciles.
    pub group_consumer_reconciling_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors` (default `uniform,range`; the first is the default).
    pub group_consumer_assignors: Vec<String>,
    /// `group.consumer.max.size` (default i32::MAX).
    pub group_consumer_max_size: i32,
    /// `group.consumer.migration.policy` (default `bidirectional`, as Kafka 4.0): online
    /// conversion of groups with members between the classic and consumer protocols.
    pub group_consumer_migration_policy: shoal_group::config::MigrationPolicy,
    /// `group.share.*`: KIP-932 share groups (names and defaults in
    /// [`shoal_group::config::ShareGroupConfig`]).
    pub group_share: shoal_group::config::ShareGroupConfig,
    /// `group.connection.close.session.timeout.ms` (Shoal; default -1 = off): see
    /// [`shoal_group::CoordinatorConfig::connection_close_session_timeout_ms`].
    pub group_connection_close_session_timeout_ms: i64,
    /// `errors.deadletterqueue.topic.name.prefix` (KIP-1191, default `dlq.`): share groups'
    /// DLQ topics must start with it.
    pub errors_deadletterqueue_topic_name_prefix: String,
    /// `errors.deadletterqueue.auto.create.topics.enable` (KIP-1191, default false): create a
    /// missing DLQ topic on its first record.
    pub errors_deadletterqueue_auto_create_topics_enable: bool,
    /// `cluster.id` reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// `offsets.topic.segment.bytes` (default 104857600): segment size of
    /// `__consumer_offsets`, which is compacted segment by segment. Same range as
    /// `segment.bytes` (it becomes that topic's `segment.bytes`; Kafka only asks `atLeast(1)`).
    pub offsets_topic_segment_bytes: u64,
    /// `log.cleaner.delete.retention.ms` (default 86400000): how long compaction keeps
    /// tombstones, unless a topic sets `delete.retention.ms`.
    pub log_cleaner_delete_retention_ms: i64,
    /// `console.lag.sample.interval.ms` (Shoal only, default 10000): how often the web
    /// console's lag history samples every group.
    pub console_lag_sample_interval_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            kafka_addr: SocketAddr::from(([127, 0, 0, 1], 9092)),
            listeners: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: listener::default_protocol_map(),
            ssl: BTreeMap::new(),
            listener_overrides: BTreeMap::new(),
            sasl_enabled_mechanisms: vec!["SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()],
            connections_max_reauth_ms: 0,
            connection_failed_authentication_delay_ms: 100,
            sasl_server_max_receive_size: 524_288,
            sasl_oauthbearer: Default::default(),
            authorizer_class_name: String::new(),
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            http_auth_token: String::new(),
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            advertised_host: None,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            num_partitions: 1,
            auto_create_topics_enable: true,
            default_replication_factor: 1,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            max_connections: 10_000,
            connections_max_idle_ms: 600_000,
            max_connections_per_ip: i32::MAX as usize,
            max_connections_per_ip_overrides: BTreeMap::new(),
            queued_max_request_bytes: -1,
            connections_handshake_timeout_ms: 10_000,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 168 * 3_600_000,
            log_retention_ms: 168 * 3_600_000,
            log_retention_bytes: -1,
            log_message_timestamp_type: "CreateTime".into(),
            log_retention_check_interval_ms: 300_000,
            log_index_interval_bytes: 4096,
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: i64::MAX,
            log_flush_writeback_bytes: 8 << 20,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            offsets_retention_minutes: 10080,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_reconciling_heartbeat_interval_ms: 50,
            group_consumer_assignors: vec!["uniform".to_string(), "range".to_string()],
            group_consumer_max_size: i32::MAX,
            group_consumer_migration_policy: shoal_group::config::MigrationPolicy::Bidirectional,
            group_share: shoal_group::config::ShareGroupConfig::default(),
            group_connection_close_session_timeout_ms: -1,
            errors_deadletterqueue_topic_name_prefix: "dlq.".to_string(),
            errors_deadletterqueue_auto_create_topics_enable: false,
            console_lag_sample_interval_ms: 10_000,
            offsets_topic_segment_bytes: 104_857_600,
            log_cleaner_delete_retention_ms: 86_400_000,
            cluster_id: "shoal-cluster".to_string(),
        }
    }
}

/// Smallest `segment.bytes` / `log.segment.bytes`: Kafka 3.x's `atLeast(14)`
/// (`LegacyRecord.RECORD_OVERHEAD_V0`). Kafka 4.0 raised it to 1 MiB (KIP-1030) and moved
/// smaller values to an internal config; Shoal keeps the 3.x bound (docs/compatibility.md).
pub const SEGMENT_BYTES_MIN: i64 = 14;
/// Largest `segment.bytes`: the config is an INT in Kafka (`Integer.MAX_VALUE`), and segment
/// index positions are 32-bit ([`shoal_log::MAX_SEGMENT_BYTES`]).
pub const SEGMENT_BYTES_MAX: i64 = i32::MAX as i64;

/// Checks a segment size setting the way Kafka's `ConfigDef` does (type INT, `atLeast(14)`),
/// with Kafka's wording.
///
/// Errors: the message Kafka's `ConfigException` carries, e.g. `Invalid value 1 for
/// configuration segment.bytes: Value must be at least 14`.
pub fn check_segment_bytes(key: &str, value: &str) -> Result<u64, String> {
    let v = value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| (i64::from(i32::MIN)..=SEGMENT_BYTES_MAX).contains(v))
        .ok_or_else(|| {
            format!("Invalid value {value} for configuration {key}: Not a number of type INT")
        })?;
    if v < SEGMENT_BYTES_MIN {
        return Err(format!(
            "Invalid value {value} for configuration {key}: Value must be at least {SEGMENT_BYTES_MIN}"
        ));
    }
    u64::try_from(v).map_err(|e| e.to_string())
}

fn segment_bytes(key: &str, value: &str) -> Result<u64, ConfigError> {
    check_segment_bytes(key, value).map_err(|reason| ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    })
}

/// Settings a `listener.name.<name>.` prefix may override besides `ssl.*`.
const LISTENER_SASL_SETTINGS: &[&str] = &["sasl.enabled.mechanisms", "connections.max.reauth.ms"];

/// Parses `sasl.enabled.mechanisms`: the names Shoal serves, upper case.
fn mechanisms(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = value
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    for m in &list {
        if !crate::auth::sasl::MECHANISMS.contains(&m.as_str()) {
            return Err(invalid(key, value)(format!(
                "{m} is not served (Shoal serves {})",
                crate::auth::sasl::MECHANISMS.join(", ")
            )));
        }
    }
    Ok(list)
}

/// Names that `listener.security.protocol.map` and `listener.name.<name>.ssl.*` use for the
/// AMQP and admin HTTP ports; no Kafka listener may take them.
pub const SIDE_PORTS: &[&str] = &["AMQP", "HTTP"];

fn invalid<'a>(key: &'a str, value: &'a str) -> impl Fn(String) -> ConfigError + 'a {
    move |reason| ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// A whole number of at least 1 (Kafka's `atLeast(1)`).
fn at_least_one(key: &str, value: &str) -> Result<u64, ConfigError> {
    let n: u64 = parse(key, value)?;
    if n == 0 {
        return Err(invalid(key, value)("must be at least 1".into()));
    }
    Ok(n)
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse::<T>()
        .map_err(|e| ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })
}

impl BrokerConfig {
    /// Applies one setting by its Kafka name.
    ///
    /// Errors: [`ConfigError::UnknownKey`] for a name Shoal does not know,
    /// [`ConfigError::InvalidValue`] when the value does not parse.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "kafka.addr" => self.set_kafka_addr(parse(key, value)?),
            "listeners" => {
                let l = listener::parse_endpoints(value).map_err(invalid(key, value))?;
                if l.is_empty() {
                    return Err(invalid(key, value)(
                        "at least one listener is needed".into(),
                    ));
                }
                self.listeners = l;
                if let Some(a) = self.listeners.first().and_then(|e| {
                    let host = if e.host.is_empty() {
                        "0.0.0.0"
                    } else {
                        &e.host
                    };
                    host.parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| SocketAddr::new(ip, e.port))
                }) {
                    self.kafka_addr = a;
                }
            }
            "advertised.listeners" => {
                self.advertised_listeners =
                    listener::parse_endpoints(value).map_err(invalid(key, value))?
            }
            "listener.security.protocol.map" => {
                self.listener_security_protocol_map =
                    listener::parse_protocol_map(value).map_err(invalid(key, value))?
            }
            k if k.starts_with("ssl.") => {
                if !tls::is_setting(k) {
                    return Err(ConfigError::UnknownKey(k.to_string()));
                }
                self.ssl.insert(k.to_string(), value.to_string());
            }
            k if k.starts_with("listener.name.") => {
                let rest = &k["listener.name.".len()..];
                let (name, setting) = rest
                    .split_once('.')
                    .ok_or_else(|| ConfigError::UnknownKey(k.to_string()))?;
                if !tls::is_setting(setting) && !LISTENER_SASL_SETTINGS.contains(&setting) {
                    return Err(ConfigError::UnknownKey(k.to_string()));
                }
                if LISTENER_SASL_SETTINGS.contains(&setting) {
                    // Checked now, read per listener later.
                    let mut probe = self.clone();
                    probe.set(setting, value)?;
                }
                self.listener_overrides
                    .entry(name.to_ascii_uppercase())
                    .or_default()
                    .insert(setting.to_string(), value.to_string());
            }
            "http.addr" => self.http_addr = parse(key, value)?,
            "http.auth.token" => self.http_auth_token = value.trim().to_string(),
            "sasl.enabled.mechanisms" => self.sasl_enabled_mechanisms = mechanisms(key, value)?,
            "connections.max.reauth.ms" => self.connections_max_reauth_ms = parse(key, value)?,
            "authorizer.class.name" => match value.trim() {
                "" | "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                | "kafka.security.authorizer.AclAuthorizer" => {
                    self.authorizer_class_name = value.trim().to_string()
                }
                _ => {
                    return Err(invalid(key, value)(
                        "Shoal's authorizer serves org.apache.kafka.metadata.authorizer.StandardAuthorizer (or kafka.security.authorizer.AclAuthorizer); empty turns ACLs off".into(),
                    ))
                }
            },
            "super.users" => {
                let users: Vec<String> = value
                    .split(';')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = users.iter().find(|u| !u.contains(':')) {
                    return Err(invalid(key, value)(format!(
                        "`{bad}` is not a principal (User:name), and entries are separated by `;`"
                    )));
                }
                self.super_users = users;
            }
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found = parse(key, value)?
            }
            "quota.window.num" => self.quota_window_num = at_least_one(key, value)? as usize,
            "quota.window.size.seconds" => self.quota_window_size_seconds = at_least_one(key, value)?,
            k if k.starts_with("sasl.oauthbearer.") => {
                match self.sasl_oauthbearer.set(k, value) {
                    Some(r) => r.map_err(invalid(key, value))?,
                    None => return Err(ConfigError::UnknownKey(k.to_string())),
                }
            }
            "sasl.server.max.receive.size" => {
                self.sasl_server_max_receive_size = parse(key, value)?
            }
            "connection.failed.authentication.delay.ms" => {
                self.connection_failed_authentication_delay_ms = parse(key, value)?
            }
            "advertised.host" | "advertised.host.name" => {
                self.advertised_host = Some(value.to_string())
            }
            "data.dir" | "log.dirs" | "log.dir" => self.data_dir = PathBuf::from(value),
            "node.id" | "broker.id" => self.node_id = parse(key, value)?,
            "num.partitions" => self.num_partitions = parse(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse(key, value)?,
            "default.replication.factor" => self.default_replication_factor = parse(key, value)?,
            "message.max.bytes" => self.message_max_bytes = parse(key, value)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = parse(key, value)?,
            "max.connections" => self.max_connections = parse(key, value)?,
            "connections.max.idle.ms" => self.connections_max_idle_ms = parse(key, value)?,
            "max.connections.per.ip" => self.max_connections_per_ip = parse(key, value)?,
            "max.connections.per.ip.overrides" => {
                let mut overrides = BTreeMap::new();
                for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    let parsed = entry.rsplit_once(':').and_then(|(host, n)| {
                        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
                        Some((host.parse().ok()?, n.trim().parse().ok()?))
                    });
                    let Some((ip, n)) = parsed else {
                        return Err(invalid(key, value)(format!(
                            "`{entry}` is not ip:count (hosts are IP addresses)"
                        )));
                    };
                    overrides.insert(ip, n);
                }
                self.max_connections_per_ip_overrides = overrides;
            }
            "queued.max.request.bytes" => self.queued_max_request_bytes = parse(key, value)?,
            "connections.handshake.timeout.ms" => {
                self.connections_handshake_timeout_ms = at_least_one(key, value)? as i64
            }
            "log.segment.bytes" => self.log_segment_bytes = segment_bytes(key, value)?,
            "log.roll.ms" => self.log_roll_ms = parse(key, value)?,
            "log.roll.hours" => self.log_roll_ms = parse::<i64>(key, value)? * 3_600_000,
            "log.retention.ms" => self.log_retention_ms = parse(key, value)?,
            "log.retention.minutes" => self.log_retention_ms = parse::<i64>(key, value)? * 60_000,
            "log.retention.hours" => self.log_retention_ms = parse::<i64>(key, value)? * 3_600_000,
            "log.retention.bytes" => self.log_retention_bytes = parse(key, value)?,
            "log.message.timestamp.type" => match value.trim() {
                "CreateTime" | "LogAppendTime" => {
                    self.log_message_timestamp_type = value.trim().to_string()
                }
                _ => {
                    return Err(ConfigError::InvalidValue {
                        key: key.to_string(),
                        value: value.to_string(),
                        reason: "expected CreateTime or LogAppendTime".into(),
                    })
                }
            },
            "log.retention.check.interval.ms" => {
                self.log_retention_check_interval_ms = parse(key, value)?
            }
            "log.index.interval.bytes" => self.log_index_interval_bytes = parse(key, value)?,
            "log.flush.interval.messages" => self.log_flush_interval_messages = parse(key, value)?,
            "log.flush.interval.ms" => self.log_flush_interval_ms = parse(key, value)?,
            "log.flush.writeback.bytes" => self.log_flush_writeback_bytes = parse(key, value)?,
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = parse(key, value)?
            }
            "group.min.session.timeout.ms" => {
                self.group_min_session_timeout_ms = parse(key, value)?
            }
            "group.max.session.timeout.ms" => {
                self.group_max_session_timeout_ms = parse(key, value)?
            }
            "group.max.size" => self.group_max_size = parse(key, value)?,
            "offsets.retention.minutes" => self.offsets_retention_minutes = parse(key, value)?,
            "offsets.retention.check.interval.ms" => {
                self.offsets_retention_check_interval_ms = parse(key, value)?
            }
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes = parse(key, value)?,
            "transaction.max.timeout.ms" => self.transaction_max_timeout_ms = parse(key, value)?,
            "transactional.id.expiration.ms" => {
                self.transactional_id_expiration_ms = parse(key, value)?
            }
            "group.consumer.session.timeout.ms" => {
                self.group_consumer_session_timeout_ms = parse(key, value)?
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.group_consumer_heartbeat_interval_ms = parse(key, value)?
            }
            "group.consumer.reconciling.heartbeat.interval.ms" => {
                self.group_consumer_reconciling_heartbeat_interval_ms = parse(key, value)?
            }
            "group.consumer.assignors" => {
                let list: Vec<String> = value
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                if list.is_empty()
                    || list
                        .iter()
                        .any(|a| !shoal_group::assignor::ASSIGNORS.contains(&a.as_str()))
                {
                    return Err(ConfigError::InvalidValue {
                        key: key.to_string(),
                        value: value.to_string(),
                        reason: format!(
                            "expected a list of {:?}",
                            shoal_group::assignor::ASSIGNORS
                        ),
                    });
                }
                self.group_consumer_assignors = list;
            }
            "group.consumer.max.size" => self.group_consumer_max_size = parse(key, value)?,
            "group.consumer.migration.policy" => {
                self.group_consumer_migration_policy =
                    shoal_group::config::MigrationPolicy::parse(value).ok_or_else(|| {
                        ConfigError::InvalidValue {
                            key: key.to_string(),
                            value: value.to_string(),
                            reason: "expected bidirectional, upgrade, downgrade or disabled"
                                .to_string(),
                        }
                    })?
            }
            "group.share.session.timeout.ms" => {
                self.group_share.session_timeout_ms = parse(key, value)?
            }
            "group.share.heartbeat.interval.ms" => {
                self.group_share.heartbeat_interval_ms = parse(key, value)?
            }
            "group.share.min.session.timeout.ms" => {
                self.group_share.min_session_timeout_ms = parse(key, value)?
            }
            "group.share.max.session.timeout.ms" => {
                self.group_share.max_session_timeout_ms = parse(key, value)?
            }
            "group.share.min.heartbeat.interval.ms" => {
                self.group_share.min_heartbeat_interval_ms = parse(key, value)?
            }
            "group.share.max.heartbeat.interval.ms" => {
                self.group_share.max_heartbeat_interval_ms = parse(key, value)?
            }
            "group.share.record.lock.duration.ms" => {
                self.group_share.record_lock_duration_ms = parse(key, value)?
            }
            "group.share.min.record.lock.duration.ms" => {
                self.group_share.min_record_lock_duration_ms = parse(key, value)?
            }
            "group.share.max.record.lock.duration.ms" => {
                self.group_share.max_record_lock_duration_ms = parse(key, value)?
            }
            "group.share.delivery.count.limit" => {
                self.group_share.delivery_count_limit = parse(key, value)?
            }
            "group.share.partition.max.record.locks" => {
                self.group_share.partition_max_record_locks = parse(key, value)?
            }
            "group.share.max.size" => self.group_share.max_size = parse(key, value)?,
            "group.share.max.share.sessions" => {
                self.group_share.max_share_sessions = parse(key, value)?
            }
            "group.share.record.redelivery.backoff.ms" => {
                self.group_share.redelivery_backoff_ms = parse(key, value)?
            }
            "group.share.record.redelivery.backoff.max.ms" => {
                self.group_share.redelivery_backoff_max_ms = parse(key, value)?
            }
            "group.share.release.on.connection.close" => {
                self.group_share.release_on_connection_close = parse(key, value)?
            }
            "group.connection.close.session.timeout.ms" => {
                self.group_connection_close_session_timeout_ms = parse(key, value)?
            }
            "errors.deadletterqueue.topic.name.prefix" => {
                self.errors_deadletterqueue_topic_name_prefix = value.trim().to_string()
            }
            "errors.deadletterqueue.auto.create.topics.enable" => {
                self.errors_deadletterqueue_auto_create_topics_enable = parse(key, value)?
            }
            "cluster.id" => self.cluster_id = value.to_string(),
            "offsets.topic.segment.bytes" => {
                self.offsets_topic_segment_bytes = segment_bytes(key, value)?
            }
            "log.cleaner.delete.retention.ms" => {
                self.log_cleaner_delete_retention_ms = parse(key, value)?
            }
            "console.lag.sample.interval.ms" => {
                self.console_lag_sample_interval_ms = parse(key, value)?
            }
            _ => return Err(ConfigError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// Applies a `key=value` pair (the `--set` flag).
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::MalformedPair(pair.to_string()))?;
        self.set(k.trim(), v.trim())
    }

    /// Applies every setting in a TOML document. Keys are Kafka names; nested tables are
    /// joined with dots (`[log] retention.ms = 1` is `log.retention.ms`).
    pub fn apply_toml(&mut self, text: &str, path: &str) -> Result<(), ConfigError> {
        let value: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        let mut flat = BTreeMap::new();
        flatten("", &toml::Value::Table(value), &mut flat);
        for (k, v) in flat {
            self.set(&k, &v)?;
        }
        Ok(())
    }

    /// Sets the first listener's address, keeping its name (`--kafka-addr`).
    pub fn set_kafka_addr(&mut self, addr: SocketAddr) {
        self.kafka_addr = addr;
        let endpoint = Endpoint {
            name: self
                .listeners
                .first()
                .map_or_else(|| "PLAINTEXT".to_string(), |e| e.name.clone()),
            host: addr.ip().to_string(),
            port: addr.port(),
        };
        match self.listeners.first_mut() {
            Some(first) => *first = endpoint,
            None => self.listeners.push(endpoint),
        }
    }

    /// Host and port clients of the first listener should connect to.
    pub fn advertised(&self) -> (String, i32) {
        let first = self
            .listeners
            .first()
            .map(|l| l.name.as_str())
            .unwrap_or("");
        self.advertised_for(first)
    }

    /// Host and port published to clients connected through `listener` (Metadata,
    /// FindCoordinator, DescribeCluster): its `advertised.listeners` entry, else
    /// `advertised.host` with its own port, else its own address; a wildcard or empty host
    /// becomes this machine's host name.
    pub fn advertised_for(&self, listener: &str) -> (String, i32) {
        let own = self
            .listeners
            .iter()
            .find(|l| l.name == listener)
            .or(self.listeners.first());
        let own_port = own.map_or(self.kafka_addr.port(), |l| l.port);
        let (host, port) = match self
            .advertised_listeners
            .iter()
            .find(|l| l.name == listener)
        {
            Some(a) => (a.host.clone(), if a.port == 0 { own_port } else { a.port }),
            None => (
                self.advertised_host
                    .clone()
                    .or_else(|| own.map(|l| l.host.clone()))
                    .unwrap_or_else(|| self.kafka_addr.ip().to_string()),
                own_port,
            ),
        };
        let host = match host.as_str() {
            "" | "0.0.0.0" | "::" => listener::local_host_name(),
            _ => host,
        };
        (host, i32::from(port))
    }

    /// The `ssl.*` settings in force on `listener`: the global ones overlaid with its
    /// `listener.name.<name>.ssl.*` overrides.
    pub fn ssl_settings(&self, listener: &str) -> BTreeMap<String, String> {
        let mut s = self.ssl.clone();
        if let Some(o) = self.listener_overrides.get(listener) {
            s.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        s
    }

    /// Whether the AMQP or admin HTTP port (`name` = `AMQP` / `HTTP`) speaks TLS: when
    /// `listener.security.protocol.map` maps that name to SSL. Its TLS settings are
    /// [`BrokerConfig::ssl_settings`] of that name (`listener.name.amqp.ssl.*` overrides).
    pub fn side_port_tls(&self, name: &str) -> bool {
        self.listener_security_protocol_map
            .get(name)
            .is_some_and(|p| p.tls())
    }

    /// Whether security is on: an authorizer is configured or a Kafka listener is not
    /// PLAINTEXT. The admin HTTP API then needs `http.auth.token` or mTLS.
    pub fn security_on(&self) -> bool {
        !self.authorizer_class_name.is_empty()
            || self.listeners.iter().any(|l| {
                self.listener_security_protocol_map
                    .get(&l.name)
                    .is_some_and(|p| *p != SecurityProtocol::Plaintext)
            })
    }

    /// Whether the admin HTTP port verifies a client certificate on every connection
    /// (`HTTP:SSL` with `ssl.client.auth=required`).
    pub fn http_requires_client_certificates(&self) -> bool {
        self.side_port_tls("HTTP")
            && self
                .ssl_settings("HTTP")
                .get("ssl.client.auth")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("required"))
    }

    /// `sasl.enabled.mechanisms` on `listener` (its `listener.name.<name>.` override, else
    /// the global value).
    pub fn sasl_mechanisms_for(&self, listener: &str) -> Vec<String> {
        self.listener_overrides
            .get(listener)
            .and_then(|o| o.get("sasl.enabled.mechanisms"))
            .and_then(|v| mechanisms("sasl.enabled.mechanisms", v).ok())
            .unwrap_or_else(|| self.sasl_enabled_mechanisms.clone())
    }

    /// Whether any SASL listener offers OAUTHBEARER.
    pub fn oauthbearer_enabled(&self) -> bool {
        self.listener_protocols().is_ok_and(|ls| {
            ls.iter().any(|(e, p)| {
                p.sasl()
                    && self
                        .sasl_mechanisms_for(&e.name)
                        .iter()
                        .any(|m| m == "OAUTHBEARER")
            })
        })
    }

    /// `connections.max.reauth.ms` on `listener` (override, else global).
    pub fn reauth_ms_for(&self, listener: &str) -> i64 {
        self.listener_overrides
            .get(listener)
            .and_then(|o| o.get("connections.max.reauth.ms"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(self.connections_max_reauth_ms)
    }

    /// The security protocol of each listener, in `listeners` order.
    ///
    /// Errors: a listener name missing from `listener.security.protocol.map`, an
    /// `advertised.listeners` name that is not a listener, or a per-listener override for a
    /// listener that does not exist (Kafka's start-up checks).
    pub fn listener_protocols(&self) -> Result<Vec<(Endpoint, SecurityProtocol)>, ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: String::new(),
            reason,
        };
        for a in &self.advertised_listeners {
            if !self.listeners.iter().any(|l| l.name == a.name) {
                return Err(bad(
                    "advertised.listeners",
                    format!("{} is not one of the listeners", a.name),
                ));
            }
        }
        for l in &self.listeners {
            if SIDE_PORTS.contains(&l.name.as_str()) {
                return Err(bad(
                    "listeners",
                    format!("the name {} is reserved for the {} port", l.name, l.name),
                ));
            }
        }
        for name in SIDE_PORTS {
            if let Some(p) = self.listener_security_protocol_map.get(*name) {
                if p.sasl() {
                    return Err(bad(
                        "listener.security.protocol.map",
                        format!("the {name} port speaks PLAINTEXT or SSL, not {}", p.name()),
                    ));
                }
            }
        }
        for name in self.listener_overrides.keys() {
            if !self.listeners.iter().any(|l| &l.name == name)
                && !SIDE_PORTS.contains(&name.as_str())
            {
                return Err(bad(
                    "listener.name",
                    format!("settings are given for listener {name}, which is not in listeners"),
                ));
            }
        }
        self.listeners
            .iter()
            .map(|l| {
                let p = self
                    .listener_security_protocol_map
                    .get(&l.name)
                    .copied()
                    .ok_or_else(|| {
                        bad(
                            "listener.security.protocol.map",
                            format!("no security protocol is defined for listener {}", l.name),
                        )
                    })?;
                Ok((l.clone(), p))
            })
            .collect()
    }
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_use_kafka_names_and_reject_unknown_keys() {
        let mut c = BrokerConfig::default();
        c.set_pair("num.partitions=6").expect("set");
        assert_eq!(c.num_partitions, 6);
        c.apply_toml("[group.initial.rebalance]\n\"delay.ms\" = 0\n", "x.toml")
            .expect("toml");
        assert_eq!(c.group_initial_rebalance_delay_ms, 0);
        assert!(matches!(
            c.set_pair("num.partitons=6"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert!(matches!(
            c.set_pair("num.partitions=six"),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn segment_bytes_outside_kafkas_int_range_or_below_14_is_refused_at_start() {
        let mut c = BrokerConfig::default();
        c.set_pair("log.segment.bytes=2147483647").expect("max");
        assert_eq!(c.log_segment_bytes, 2_147_483_647);
        c.set_pair("log.segment.bytes=14").expect("min");
        for bad in ["2147483648", "4294967296", "13", "0", "-1", "big"] {
            for key in ["log.segment.bytes", "offsets.topic.segment.bytes"] {
                let err = c
                    .set_pair(&format!("{key}={bad}"))
                    .expect_err("out of range");
                assert!(
                    matches!(&err, ConfigError::InvalidValue { key: k, .. } if k == key),
                    "{err}"
                );
                assert!(err.to_string().contains(key), "{err}");
            }
        }
        assert_eq!(c.log_segment_bytes, 14, "a refused value changes nothing");
        let err = c
            .apply_toml("\"log.segment.bytes\" = 3000000000\n", "x.toml")
            .expect_err("toml too");
        assert!(
            err.to_string().contains("Not a number of type INT"),
            "{err}"
        );
    }
}
