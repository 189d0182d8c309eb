//! Prometheus metrics, served as `GET /metrics` on the admin HTTP port (OpenMetrics text, via
//! the `prometheus-client` crate).
//!
//! Counted as they happen:
//! - `shoal_requests_total{api}` and `shoal_request_duration_seconds{api}` (histogram, s):
//!   every Kafka request by API name (`Produce`, `Fetch`, ...), from its frame to its answer;
//! - `shoal_connections` (open) and `shoal_connections_accepted_total`;
//! - `shoal_quota_throttle_seconds_total{quota_type,user,client_id}` and
//!   `shoal_quota_throttled_total{...}`: time clients were throttled for, and how many
//!   responses carried a throttle, by quota type (`Produce`, `Fetch`, `Request`,
//!   `ControllerMutation`) and the user / client-id the quota was matched for (empty where it
//!   does not distinguish), as Kafka's `throttle-time` sensors are tagged;
//! - `shoal_connections_refused_total{reason}`: connections closed at accept or before they
//!   authenticated by a limit (`max.connections`, `max.connections.per.ip`,
//!   `handshake.timeout`);
//! - `shoal_failed_authentication_total`: TLS handshakes that failed and client certificates
//!   that mapped to no principal (Kafka's `failed-authentication-total`);
//! - `shoal_topic_bytes_in_total{topic}`, `shoal_topic_records_in_total{topic}`: appended
//!   batches; `shoal_topic_bytes_out_total{topic}`, `shoal_topic_records_out_total{topic}`:
//!   fetched batches (records counted from each batch header, never decoded);
//! - `shoal_group_rebalances_total{group,protocol}` and
//!   `shoal_group_rebalance_duration_seconds{protocol}`: a rebalance runs from the moment a
//!   group starts one (classic `PreparingRebalance`; consumer protocol: not `Stable`) to the
//!   moment it is `Stable` again.
//!
//! Computed at each scrape, under the names `kafka_exporter` users already graph:
//! `kafka_consumergroup_current_offset`, `kafka_consumergroup_lag`,
//! `kafka_consumergroup_members`, `kafka_topic_partitions`,
//! `kafka_topic_partition_current_offset` (log end offset),
//! `kafka_topic_partition_oldest_offset` (log start offset), plus
//! `kafka_consumergroup_lag_seconds` (Shoal: age of the first unconsumed record, see
//! the `lag` module) and `shoal_groups{type,state}` (every group: `classic`, `consumer` and
//! `share`).
//!
//! Share groups (KIP-932), computed at each scrape per share-partition (labels `group`,
//! `topic`, `partition`): `shoal_share_partition_start_offset` (SPSO),
//! `shoal_share_partition_end_offset` (SPEO: one past the last offset ever acquired),
//! `shoal_share_partition_records{state}` (records of the in-flight window `[SPSO, SPEO)` by
//! state: `acquired`, `available`, `acknowledged`, `archiving` (waiting for a dead-letter
//! record, KIP-1191), `archived`), `shoal_share_partition_lag`
//! (records between the SPSO and the high watermark not yet acknowledged or archived, as
//! Kafka computes share lag), and `shoal_share_group_members{group}`. Counted as they happen:
//! `shoal_share_records_archived_total{group,topic,reason}` and
//! `shoal_share_records_acknowledged_total{group,topic,delivery_count}`; the same counts are
//! kept per group ([`ShareTally`]) for the admin API's delivery-count histogram.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabel {
    quota_type: String,
    user: String,
    client_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicPartitionLabel {
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    consumergroup: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabel {
    consumergroup: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RebalanceLabel {
    group: String,
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareArchiveLabel {
    group: String,
    topic: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareDlqLabel {
    group: String,
    dlq_topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareAcceptLabel {
    group: String,
    topic: String,
    delivery_count: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareGroupLabel {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SharePartitionLabel {
    group: String,
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShareRecordsLabel {
    group: String,
    topic: String,
    partition: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupStateLabel {
    r#type: String,
    state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~26 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

fn rebalance_histogram() -> Histogram {
    // 10 ms .. ~5 min
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What one share group's records became since the broker started (in memory; a restart
/// starts at zero, like the Prometheus counters they mirror).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShareTally {
    /// Records accepted, by the delivery count they were accepted at (1 = first delivery).
    pub accepted_by_delivery_count: BTreeMap<usize, u64>,
    /// Records archived after a Reject acknowledgement.
    pub archived_rejected: u64,
    /// Records archived because their delivery count reached
    /// `group.share.delivery.count.limit`.
    pub archived_delivery_count_limit: u64,
    /// Offsets acknowledged as Gap (no record there).
    pub archived_gap: u64,
    /// Archived records whose dead-letter record (KIP-1191) is durable in the group's DLQ
    /// topic.
    pub dead_lettered: u64,
}

/// A share-partition's records in the in-flight window `[SPSO, SPEO)`, by state.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RecordCounts {
    pub acquired: u64,
    pub available: u64,
    pub acknowledged: u64,
    /// Archived, waiting for their dead-letter record to be durable (KIP-1191).
    pub archiving: u64,
    pub archived: u64,
}

impl From<shoal_group::share::WindowCounts> for RecordCounts {
    fn from(c: shoal_group::share::WindowCounts) -> Self {
        Self {
            acquired: c.acquired,
            available: c.available,
            acknowledged: c.acknowledged,
            archiving: c.archiving,
            archived: c.archived,
        }
    }
}

/// A topic's traffic counters since the broker started: bytes and records appended
/// (`in`) and fetched (`out`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicTraffic {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

/// The broker's metrics (cheap to update from any task).
pub struct Metrics {
    registry: Registry,
    requests: Family<ApiLabel, Counter>,
    request_seconds: HistogramFamily<ApiLabel>,
    connections: Gauge,
    connections_accepted: Counter,
    failed_authentication: Counter,
    quota_throttle_seconds: Family<QuotaLabel, Counter<f64, AtomicU64>>,
    quota_throttled: Family<QuotaLabel, Counter>,
    connections_refused: Family<ReasonLabel, Counter>,
    bytes_in: Family<TopicLabel, Counter>,
    records_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    records_out: Family<TopicLabel, Counter>,
    rebalances: Family<RebalanceLabel, Counter>,
    rebalance_seconds: HistogramFamily<ProtocolLabel>,
    corrupt_batches: Family<TopicPartitionLabel, Counter>,
    flush_seconds: Histogram,
    /// The share counters again, by group, for the admin API.
    share_tallies: Mutex<BTreeMap<String, ShareTally>>,
    share_archived: Family<ShareArchiveLabel, Counter>,
    share_accepted: Family<ShareAcceptLabel, Counter>,
    share_dead_lettered: Family<ShareDlqLabel, Counter>,
    // Filled at scrape time.
    groups: Family<GroupStateLabel, Gauge>,
    group_current_offset: Family<GroupPartitionLabel, Gauge>,
    group_lag: Family<GroupPartitionLabel, Gauge>,
    group_lag_seconds: Family<GroupPartitionLabel, FloatGauge>,
    group_members: Family<GroupLabel, Gauge>,
    topic_partitions: Family<TopicLabel, Gauge>,
    partition_current_offset: Family<TopicPartitionLabel, Gauge>,
    partition_oldest_offset: Family<TopicPartitionLabel, Gauge>,
    share_start_offset: Family<SharePartitionLabel, Gauge>,
    share_end_offset: Family<SharePartitionLabel, Gauge>,
    share_records: Family<ShareRecordsLabel, Gauge>,
    share_lag: Family<SharePartitionLabel, Gauge>,
    share_members: Family<ShareGroupLabel, Gauge>,
    /// One scrape at a time (scrape-time families are cleared and refilled).
    scrape: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            connections: Gauge::default(),
            connections_accepted: Counter::default(),
            failed_authentication: Counter::default(),
            quota_throttle_seconds: Family::default(),
            quota_throttled: Family::default(),
            connections_refused: Family::default(),
            bytes_in: Family::default(),
            records_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            rebalances: Family::default(),
            rebalance_seconds: Family::new_with_constructor(
                rebalance_histogram as fn() -> Histogram,
            ),
            corrupt_batches: Family::default(),
            flush_seconds: latency_histogram(),
            share_tallies: Mutex::new(BTreeMap::new()),
            share_archived: Family::default(),
            share_accepted: Family::default(),
            share_dead_lettered: Family::default(),
            groups: Family::default(),
            group_current_offset: Family::default(),
            group_lag: Family::default(),
            group_lag_seconds: Family::default(),
            group_members: Family::default(),
            topic_partitions: Family::default(),
            partition_current_offset: Family::default(),
            partition_oldest_offset: Family::default(),
            share_start_offset: Family::default(),
            share_end_offset: Family::default(),
            share_records: Family::default(),
            share_lag: Family::default(),
            share_members: Family::default(),
            scrape: std::sync::Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register(
            "shoal_requests",
            "Kafka requests handled, by API",
            m.requests.clone(),
        );
        registry.register(
            "shoal_log_flush_duration_seconds",
            "Duration of each group commit: the fsyncs of every partition written since the previous one (Kafka's LogFlushRateAndTimeMs)",
            m.flush_seconds.clone(),
        );
        registry.register(
            "shoal_request_duration_seconds",
            "Time from a request's frame to its answer, by API",
            m.request_seconds.clone(),
        );
        registry.register(
            "shoal_connections",
            "Open Kafka connections",
            m.connections.clone(),
        );
        registry.register(
            "shoal_connections_accepted",
            "Kafka connections accepted",
            m.connections_accepted.clone(),
        );
        registry.register(
            "shoal_failed_authentication",
            "Connections whose TLS handshake or authentication failed",
            m.failed_authentication.clone(),
        );
        registry.register_with_unit(
            "shoal_quota_throttle",
            "Time clients were throttled for by client quotas",
            prometheus_client::registry::Unit::Seconds,
            m.quota_throttle_seconds.clone(),
        );
        registry.register(
            "shoal_connections_refused",
            "Connections closed by a connection limit",
            m.connections_refused.clone(),
        );
        registry.register(
            "shoal_quota_throttled",
            "Responses that carried a client-quota throttle",
            m.quota_throttled.clone(),
        );
        registry.register(
            "shoal_topic_bytes_in",
            "Bytes appended, by topic",
            m.bytes_in.clone(),
        );
        registry.register(
            "shoal_topic_records_in",
            "Records appended, by topic",
            m.records_in.clone(),
        );
        registry.register(
            "shoal_topic_bytes_out",
            "Bytes fetched, by topic",
            m.bytes_out.clone(),
        );
        registry.register(
            "shoal_topic_records_out",
            "Records fetched, by topic",
            m.records_out.clone(),
        );
        registry.register(
            "shoal_group_rebalances",
            "Completed rebalances, by group and protocol",
            m.rebalances.clone(),
        );
        registry.register(
            "shoal_group_rebalance_duration_seconds",
            "Time from the start of a rebalance until the group is Stable",
            m.rebalance_seconds.clone(),
        );
        registry.register(
            "shoal_log_corrupt_batches",
            "Reads that found a stored batch failing its CRC check (never served)",
            m.corrupt_batches.clone(),
        );
        registry.register("shoal_groups", "Groups by type and state", m.groups.clone());
        registry.register(
            "shoal_share_records_archived",
            "Share-group records archived, by group, topic and reason (rejected, delivery_count_limit, gap)",
            m.share_archived.clone(),
        );
        registry.register(
            "shoal_share_records_acknowledged",
            "Share-group records accepted, by group, topic and the delivery count they were accepted at",
            m.share_accepted.clone(),
        );
        registry.register(
            "shoal_share_records_dead_lettered",
            "Share-group records written to the group's dead-letter topic (KIP-1191), by group and DLQ topic",
            m.share_dead_lettered.clone(),
        );
        registry.register(
            "kafka_consumergroup_current_offset",
            "Committed offset of a consumer group, by partition",
            m.group_current_offset.clone(),
        );
        registry.register(
            "kafka_consumergroup_lag",
            "Records between a consumer group's committed offset and the log end offset",
            m.group_lag.clone(),
        );
        registry.register(
            "kafka_consumergroup_lag_seconds",
            "Age in seconds of the first record the consumer group has not consumed (0 when caught up)",
            m.group_lag_seconds.clone(),
        );
        registry.register(
            "kafka_consumergroup_members",
            "Members of a consumer group",
            m.group_members.clone(),
        );
        registry.register(
            "kafka_topic_partitions",
            "Partitions of a topic",
            m.topic_partitions.clone(),
        );
        registry.register(
            "kafka_topic_partition_current_offset",
            "Log end offset of a partition",
            m.partition_current_offset.clone(),
        );
        registry.register(
            "kafka_topic_partition_oldest_offset",
            "Log start offset of a partition",
            m.partition_oldest_offset.clone(),
        );
        registry.register(
            "shoal_share_partition_start_offset",
            "Share-partition start offset (SPSO): records before it are acknowledged or archived",
            m.share_start_offset.clone(),
        );
        registry.register(
            "shoal_share_partition_end_offset",
            "Share-partition end offset (SPEO): one past the last offset ever acquired",
            m.share_end_offset.clone(),
        );
        registry.register(
            "shoal_share_partition_records",
            "Records of the share-partition's in-flight window [SPSO, SPEO), by state (acquired, available, acknowledged, archiving, archived)",
            m.share_records.clone(),
        );
        registry.register(
            "shoal_share_partition_lag",
            "Records between the SPSO and the high watermark not yet acknowledged or archived",
            m.share_lag.clone(),
        );
        registry.register(
            "shoal_share_group_members",
            "Members of a share group",
            m.share_members.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A request of API `api` took `elapsed`.
    pub fn request(&self, api: &str, elapsed: Duration) {
        let label = ApiLabel {
            api: api.to_string(),
        };
        self.requests.get_or_create(&label).inc();
        self.request_seconds
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
    }

    /// A group commit (fsync of every dirty partition) took `elapsed`.
    pub fn flushed(&self, elapsed: Duration) {
        self.flush_seconds.observe(elapsed.as_secs_f64());
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_accepted.inc();
    }

    /// A connection failed its TLS handshake or authentication.
    pub fn failed_authentication(&self) {
        self.failed_authentication.inc();
    }

    /// A response carried a throttle of `ms` for quota `quota_type` matched for `user` and
    /// `client_id`.
    pub fn throttled(&self, quota_type: &str, user: &str, client_id: &str, ms: u64) {
        let l = QuotaLabel {
            quota_type: quota_type.to_string(),
            user: user.to_string(),
            client_id: client_id.to_string(),
        };
        self.quota_throttle_seconds
            .get_or_create(&l)
            .inc_by(ms as f64 / 1000.0);
        self.quota_throttled.get_or_create(&l).inc();
    }

    /// A connection was closed by limit `reason`.
    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// `bytes` holding `records` records were appended to `topic`.
    pub fn appended(&self, topic: &str, bytes: usize, records: u64) {
        let l = TopicLabel {
            topic: topic.to_string(),
        };
        self.bytes_in.get_or_create(&l).inc_by(bytes as u64);
        self.records_in.get_or_create(&l).inc_by(records);
    }

    /// A fetch answered `batches` (whole record batches) from `topic`.
    pub fn fetched(&self, topic: &str, batches: &[u8]) {
        if batches.is_empty() {
            return;
        }
        let l = TopicLabel {
            topic: topic.to_string(),
        };
        self.bytes_out
            .get_or_create(&l)
            .inc_by(batches.len() as u64);
        self.records_out
            .get_or_create(&l)
            .inc_by(record_count(batches));
    }

    /// A fetch answered `bytes` of whole batches spanning `offsets` offsets from `topic`,
    /// sent from the segment file (the records are counted as the offsets they span).
    pub fn fetched_range(&self, topic: &str, bytes: usize, offsets: i64) {
        if bytes == 0 {
            return;
        }
        let l = TopicLabel {
            topic: topic.to_string(),
        };
        self.bytes_out.get_or_create(&l).inc_by(bytes as u64);
        self.records_out
            .get_or_create(&l)
            .inc_by(u64::try_from(offsets).unwrap_or(0));
    }

    /// A fetch found a corrupt stored batch in `topic`-`partition`; true the first time for
    /// that partition (the caller logs it once, not at every retry of the consumer).
    pub fn corrupt_batch(&self, topic: &str, partition: i32) -> bool {
        self.corrupt_batches
            .get_or_create(&TopicPartitionLabel {
                topic: topic.to_string(),
                partition: partition.to_string(),
            })
            .inc()
            == 0
    }

    /// A share-group record was archived.
    pub fn share_archived(
        &self,
        group: &str,
        topic: &str,
        _partition: i32,
        reason: shoal_group::share::ArchiveReason,
    ) {
        use shoal_group::share::ArchiveReason;
        let reason = match reason {
            ArchiveReason::Rejected => "rejected",
            ArchiveReason::DeliveryCountLimit => "delivery_count_limit",
            ArchiveReason::Gap => "gap",
            ArchiveReason::Recovered => return,
        };
        {
            let mut tallies = self.tallies();
            let t = tallies.entry(group.to_string()).or_default();
            match reason {
                "rejected" => t.archived_rejected += 1,
                "delivery_count_limit" => t.archived_delivery_count_limit += 1,
                _ => t.archived_gap += 1,
            }
        }
        self.share_archived
            .get_or_create(&ShareArchiveLabel {
                group: group.to_string(),
                topic: topic.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// A share-group record's DLQ record is durable.
    pub fn share_dead_lettered(&self, group: &str, dlq_topic: &str) {
        self.tallies()
            .entry(group.to_string())
            .or_default()
            .dead_lettered += 1;
        self.share_dead_lettered
            .get_or_create(&ShareDlqLabel {
                group: group.to_string(),
                dlq_topic: dlq_topic.to_string(),
            })
            .inc();
    }

    /// `n` share-group records were accepted at delivery count `count`.
    pub fn share_accepted(&self, group: &str, topic: &str, count: usize, n: u64) {
        *self
            .tallies()
            .entry(group.to_string())
            .or_default()
            .accepted_by_delivery_count
            .entry(count)
            .or_default() += n;
        self.share_accepted
            .get_or_create(&ShareAcceptLabel {
                group: group.to_string(),
                topic: topic.to_string(),
                delivery_count: count.to_string(),
            })
            .inc_by(n);
    }

    fn tallies(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ShareTally>> {
        self.share_tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What `group`'s share records became since the broker started (zeros for a group
    /// without any).
    pub fn share_tally(&self, group: &str) -> ShareTally {
        self.tallies().get(group).cloned().unwrap_or_default()
    }

    /// Forgets the tallies of share groups not in `alive` (deleted groups); the Prometheus
    /// counters stay, as counters do.
    pub fn retain_share_tallies(&self, alive: &BTreeSet<String>) {
        self.tallies().retain(|g, _| alive.contains(g));
    }

    /// `topic`'s traffic counters (zeros for a topic without traffic; reading never creates
    /// a series).
    pub fn topic_traffic(&self, topic: &str) -> TopicTraffic {
        let l = TopicLabel {
            topic: topic.to_string(),
        };
        let get = |f: &Family<TopicLabel, Counter>| f.get(&l).map_or(0, |c| c.get());
        TopicTraffic {
            bytes_in: get(&self.bytes_in),
            records_in: get(&self.records_in),
            bytes_out: get(&self.bytes_out),
            records_out: get(&self.records_out),
        }
    }

    /// A rebalance of `group` (`classic` or `consumer` protocol) completed after `duration_ms`.
    pub fn rebalanced(&self, group: &str, protocol: &str, duration_ms: i64) {
        self.rebalances
            .get_or_create(&RebalanceLabel {
                group: group.to_string(),
                protocol: protocol.to_string(),
            })
            .inc();
        self.rebalance_seconds
            .get_or_create(&ProtocolLabel {
                protocol: protocol.to_string(),
            })
            .observe(duration_ms.max(0) as f64 / 1000.0);
    }

    /// The metrics in the OpenMetrics text format, after refreshing the scrape-time families
    /// (topics' offsets, groups, lag) from `scrape` (collected by `LagReader` (in `lag`)).
    pub fn render(&self, scrape: &Scrape) -> String {
        let _one = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.refresh(scrape);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    fn refresh(&self, scrape: &Scrape) {
        self.topic_partitions.clear();
        self.partition_current_offset.clear();
        self.partition_oldest_offset.clear();
        for t in &scrape.topics {
            let l = TopicLabel {
                topic: t.name.clone(),
            };
            self.topic_partitions
                .get_or_create(&l)
                .set(i64::try_from(t.partitions.len()).unwrap_or(i64::MAX));
            for &(partition, log_start_offset, log_end_offset) in &t.partitions {
                let l = TopicPartitionLabel {
                    topic: t.name.clone(),
                    partition: partition.to_string(),
                };
                self.partition_current_offset
                    .get_or_create(&l)
                    .set(log_end_offset);
                self.partition_oldest_offset
                    .get_or_create(&l)
                    .set(log_start_offset);
            }
        }
        self.groups.clear();
        self.group_current_offset.clear();
        self.group_lag.clear();
        self.group_lag_seconds.clear();
        self.group_members.clear();
        for g in &scrape.groups {
            self.groups
                .get_or_create(&GroupStateLabel {
                    r#type: g.group_type.to_string(),
                    state: g.state.to_string(),
                })
                .inc();
            let Some(lag) = &g.lag else {
                continue;
            };
            self.group_members
                .get_or_create(&GroupLabel {
                    consumergroup: g.group_id.clone(),
                })
                .set(i64::try_from(g.members).unwrap_or(i64::MAX));
            for r in lag {
                let l = GroupPartitionLabel {
                    consumergroup: g.group_id.clone(),
                    topic: r.topic.clone(),
                    partition: r.partition.to_string(),
                };
                self.group_current_offset
                    .get_or_create(&l)
                    .set(r.current_offset);
                self.group_lag.get_or_create(&l).set(r.lag);
                self.group_lag_seconds.get_or_create(&l).set(r.lag_seconds);
            }
        }
        self.share_start_offset.clear();
        self.share_end_offset.clear();
        self.share_records.clear();
        self.share_lag.clear();
        self.share_members.clear();
        for (group, members) in &scrape.share_members {
            self.share_members
                .get_or_create(&ShareGroupLabel {
                    group: group.clone(),
                })
                .set(i64::try_from(*members).unwrap_or(i64::MAX));
        }
        for p in &scrape.share_partitions {
            let l = SharePartitionLabel {
                group: p.group.clone(),
                topic: p.topic.clone(),
                partition: p.partition.to_string(),
            };
            self.share_start_offset
                .get_or_create(&l)
                .set(p.start_offset);
            self.share_end_offset.get_or_create(&l).set(p.end_offset);
            self.share_lag.get_or_create(&l).set(p.lag);
            let c = &p.records;
            for (state, n) in [
                ("acquired", c.acquired),
                ("available", c.available),
                ("acknowledged", c.acknowledged),
                ("archiving", c.archiving),
                ("archived", c.archived),
            ] {
                self.share_records
                    .get_or_create(&ShareRecordsLabel {
                        group: p.group.clone(),
                        topic: p.topic.clone(),
                        partition: p.partition.to_string(),
                        state: state.to_string(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

/// What a scrape reports beyond the counters: every non-internal topic's partitions and
/// every group's state and lag, collected by `LagReader::scrape` (in `lag`).
#[derive(Debug, Default)]
pub struct Scrape {
    pub topics: Vec<TopicScrape>,
    pub groups: Vec<GroupScrape>,
    /// Every share group's member count.
    pub share_members: Vec<(String, usize)>,
    /// Every share-partition with state.
    pub share_partitions: Vec<SharePartitionGauge>,
}

/// One share-partition of a share group: its window, record counts and lag.
#[derive(Debug)]
pub struct SharePartitionGauge {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// SPSO and SPEO (offsets).
    pub start_offset: i64,
    pub end_offset: i64,
    /// The in-flight window's records by state.
    pub records: RecordCounts,
    /// Records, see `lag::SharePartitionLag::lag`.
    pub lag: i64,
}

/// One topic: `(partition, log_start_offset, log_end_offset)` per partition.
#[derive(Debug)]
pub struct TopicScrape {
    pub name: String,
    pub partitions: Vec<(i32, i64, i64)>,
}

/// One group: its type and state, and (when its lag could be computed; never for a share
/// group, whose gauges are [`SharePartitionGauge`]s) its member count and lag per partition.
#[derive(Debug)]
pub struct GroupScrape {
    pub group_id: String,
    pub group_type: &'static str,
    pub state: &'static str,
    pub members: usize,
    pub lag: Option<Vec<PartitionLagGauge>>,
}

/// One partition of a group: committed offset (`-1`: none), lag in records and in seconds.
#[derive(Debug)]
pub struct PartitionLagGauge {
    pub topic: String,
    pub partition: i32,
    pub current_offset: i64,
    pub lag: i64,
    pub lag_seconds: f64,
}

/// Records in a run of whole v2 record batches: the sum of each header's record count (bytes
/// 57..61), walking `12 + batch_length` bytes at a time. Stops at anything malformed.
pub fn record_count(batches: &[u8]) -> u64 {
    let mut pos = 0usize;
    let mut n = 0u64;
    while let Some(head) = batches.get(pos..pos + 61) {
        let len = head
            .get(8..12)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .unwrap_or(-1);
        let count = head
            .get(57..61)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .unwrap_or(0);
        let Ok(len) = usize::try_from(len) else {
            break;
        };
        n += u64::try_from(count).unwrap_or(0);
        pos += 12 + len;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: i32, body: usize) -> Vec<u8> {
        shoal_log::testkit::header_only(records, 0, -1, -1, body)
    }

    #[test]
    fn record_count_walks_batch_headers_and_stops_at_a_cut_batch() {
        let mut two = batch(3, 10);
        two.extend(batch(5, 0));
        assert_eq!(record_count(&two), 8);
        assert_eq!(record_count(&two[..40]), 0);
        assert_eq!(record_count(&[]), 0);
    }
}
