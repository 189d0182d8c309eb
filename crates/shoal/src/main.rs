//! The `shoal` binary. `shoal serve` runs the broker (embedded local log under `./data`,
//! Kafka protocol on 127.0.0.1:9092). Every flag has a `SHOAL_*` environment variable, and any
//! broker setting can be given by its Kafka name with `--set key=value` or in a TOML file.
//! `shoal topic ...` and `shoal group ...` are Kafka-protocol clients, `shoal queue ...` a
//! client of the admin HTTP API ([`cli`]).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use shoal_broker::BrokerConfig;

#[derive(Parser, Debug)]
#[command(
    name = "shoal",
    version,
    about = "A Kafka-compatible streaming broker built around consumer groups"
)]
struct Cli {
    /// Log output format.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "SHOAL_LOG_FORMAT",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Benchmarks over the Kafka protocol (work against any Kafka-compatible broker).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Topics: list, create, describe, delete, alter-config (like kafka-topics.sh).
    Topic(TopicArgs),
    /// Consumer groups: list, describe, delete, reset-offsets (like kafka-consumer-groups.sh).
    Group(GroupArgs),
    /// Produce each line of stdin as a record.
    Produce(ProduceArgs),
    /// Print records, as a group member or from one partition.
    Consume(ConsumeArgs),
    /// AMQP queues: list, declare, purge, delete (through a Shoal broker's admin HTTP API).
    Queue(cli::queue::QueueArgs),
    /// SCRAM users: create, delete, list (like kafka-configs.sh --entity-type users).
    User(UserArgs),
    /// ACLs: add, remove, list (like kafka-acls.sh).
    Acl(AclArgs),
    /// Client quotas: alter, describe (like kafka-configs.sh --entity-type users|clients|ips).
    Quota(QuotaArgs),
}

#[derive(clap::Args, Debug)]
struct QuotaArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: QuotaCommand,
}

/// The entity a quota command names.
#[derive(clap::Args, Debug)]
struct QuotaEntity {
    /// A user (principal name, e.g. `alice`).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user entity (`<default>`).
    #[arg(long)]
    user_default: bool,
    /// A client-id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default client-id entity.
    #[arg(long)]
    client_id_default: bool,
    /// An IP address (for connection_creation_rate).
    #[arg(long, conflicts_with = "ip_default")]
    ip: Option<String>,
    /// The default IP entity.
    #[arg(long)]
    ip_default: bool,
}

impl QuotaEntity {
    fn components(&self) -> Vec<cli::quota::Component> {
        let mut out = Vec::new();
        let mut one = |t, name: &Option<String>, default: bool| {
            if name.is_some() || default {
                out.push((t, name.clone()));
            }
        };
        one("user", &self.user, self.user_default);
        one("client-id", &self.client_id, self.client_id_default);
        one("ip", &self.ip, self.ip_default);
        out
    }
}

#[derive(clap::Subcommand, Debug)]
enum QuotaCommand {
    /// Set or remove quotas of one entity (AlterClientQuotas).
    Alter {
        #[command(flatten)]
        entity: QuotaEntity,
        /// `KEY=VALUE[,KEY=VALUE]`: producer_byte_rate, consumer_byte_rate (bytes/s),
        /// request_percentage (%), controller_mutation_rate (partitions/s) (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        add: Vec<String>,
        /// Keys to remove (repeatable or comma-separated).
        #[arg(long, value_name = "KEY", value_delimiter = ',')]
        delete: Vec<String>,
    },
    /// The quotas of the entities named (all when none is) (DescribeClientQuotas).
    Describe {
        #[command(flatten)]
        entity: QuotaEntity,
    },
}

async fn quota(args: QuotaArgs) -> anyhow::Result<()> {
    let out = args.client.output;
    let mut c = args.client.connect().await?;
    match args.command {
        QuotaCommand::Alter {
            entity,
            add,
            delete,
        } => {
            let add = cli::quota::parse_add(&add)?;
            cli::quota::alter(&mut c, &entity.components(), &add, &delete).await?;
            let v = serde_json::json!({"altered": true});
            cli::group::print(out, &v, || "Completed updating quotas.\n".to_string());
        }
        QuotaCommand::Describe { entity } => {
            let rows = cli::quota::describe(&mut c, &entity.components()).await?;
            cli::group::print(out, &rows, || cli::quota::text(&rows));
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct AclArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: AclCommand,
}

/// The resource and entry of `shoal acl` (absent = any, for `list` and `remove`).
#[derive(clap::Args, Debug)]
struct AclSelector {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    transactional_id: Option<String>,
    /// The cluster resource (`kafka-cluster`).
    #[arg(long)]
    cluster: bool,
    /// literal (default for add), prefixed; for list/remove also match, any.
    #[arg(long)]
    pattern_type: Option<String>,
    /// `User:alice`, `User:*`.
    #[arg(long)]
    principal: Option<String>,
    /// Client IP, or `*` (add: default `*`).
    #[arg(long)]
    host: Option<String>,
    /// read, write, create, delete, alter, describe, cluster_action, describe_configs,
    /// alter_configs, idempotent_write, all (repeatable, or comma-separated).
    #[arg(long = "operation")]
    operations: Vec<String>,
    /// DENY instead of ALLOW.
    #[arg(long)]
    deny: bool,
}

#[derive(clap::Subcommand, Debug)]
enum AclCommand {
    /// Add ACLs (CreateAcls): one per operation.
    Add(AclSelector),
    /// Remove the ACLs matching (DeleteAcls).
    Remove(AclSelector),
    /// List the ACLs matching (DescribeAcls).
    List(AclSelector),
}

fn acl_selector(a: &AclSelector, add: bool) -> anyhow::Result<cli::acl::Selector> {
    use shoal_broker::auth::acl::{Permission, ResourceType};
    let named: Vec<(ResourceType, String)> = [
        a.topic.clone().map(|n| (ResourceType::Topic, n)),
        a.group.clone().map(|n| (ResourceType::Group, n)),
        a.transactional_id
            .clone()
            .map(|n| (ResourceType::TransactionalId, n)),
        a.cluster
            .then(|| (ResourceType::Cluster, "kafka-cluster".to_string())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if named.len() > 1 {
        anyhow::bail!("name one resource: --topic, --group, --transactional-id or --cluster");
    }
    Ok(cli::acl::Selector {
        resource: named.into_iter().next(),
        pattern: a
            .pattern_type
            .as_deref()
            .map(cli::acl::pattern)
            .transpose()?,
        principal: a.principal.clone(),
        host: a.host.clone(),
        operations: cli::acl::operations(&a.operations)?,
        permission: match (a.deny, add) {
            (true, _) => Some(Permission::Deny),
            (false, true) => Some(Permission::Allow),
            (false, false) => None,
        },
    })
}

async fn acl(args: AclArgs) -> anyhow::Result<()> {
    let out = args.client.output;
    let mut c = args.client.connect().await?;
    match args.command {
        AclCommand::Add(a) => {
            let n = cli::acl::add(&mut c, &acl_selector(&a, true)?).await?;
            let v = serde_json::json!({"added": n});
            cli::group::print(out, &v, || format!("Added {n} ACL(s).\n"));
        }
        AclCommand::Remove(a) => {
            let rows = cli::acl::remove(&mut c, &acl_selector(&a, false)?).await?;
            cli::group::print(out, &rows, || {
                format!("Removed {} ACL(s).\n{}", rows.len(), cli::acl::text(&rows))
            });
        }
        AclCommand::List(a) => {
            let rows = cli::acl::list(&mut c, &acl_selector(&a, false)?).await?;
            cli::group::print(out, &rows, || cli::acl::text(&rows));
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
struct UserArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand, Debug)]
enum UserCommand {
    /// Create a user, or replace its password (AlterUserScramCredentials).
    Create {
        name: String,
        /// The password; else `SHOAL_USER_PASSWORD`; else the first line of stdin.
        #[arg(long, env = "SHOAL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// SCRAM-SHA-256, SCRAM-SHA-512, or all (both).
        #[arg(long, default_value = "all")]
        mechanism: String,
        /// PBKDF2 iterations (Kafka: 4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
    },
    /// Delete a user's credentials (all of them unless --mechanism names one).
    Delete {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
    /// Users with SCRAM credentials and their mechanisms (DescribeUserScramCredentials).
    List {
        /// Only these users.
        names: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
struct ProduceArgs {
    #[command(flatten)]
    client: ClientArgs,
    topic: String,
    /// Split each line at the first SEP: key before, value after.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition (default: by key, or spread).
    #[arg(long)]
    partition: Option<i32>,
    /// A librdkafka producer setting, e.g. `--property compression.type=zstd` (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    topic: String,
    /// Consume as a member of this group (committing as it goes).
    #[arg(long, conflicts_with = "partition")]
    group: Option<String>,
    /// With --group: start from the earliest offset when the group has none.
    #[arg(long)]
    from_beginning: bool,
    /// Read this partition (no group).
    #[arg(long)]
    partition: Option<i32>,
    /// With --partition: earliest, latest, N, or -N (N before the end).
    #[arg(long, default_value = "earliest", allow_hyphen_values = true)]
    offset: String,
    /// kcat-style format: %k key, %v value, %h headers, %t timestamp, %o offset, %p partition, %T topic.
    #[arg(long, default_value = "%v")]
    format: String,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long without a record (ms).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// A librdkafka consumer setting (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
}

/// Flags every client verb takes.
#[derive(clap::Args, Debug)]
struct ClientArgs {
    /// Kafka bootstrap servers (`host:port[,host:port]`).
    #[arg(
        long,
        env = "SHOAL_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    bootstrap_server: String,
    /// Authenticate with SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) on a SASL_PLAINTEXT
    /// listener.
    #[arg(long, env = "SHOAL_SASL_MECHANISM", global = true)]
    sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long, env = "SHOAL_SASL_USERNAME", global = true)]
    sasl_username: Option<String>,
    /// SASL password.
    #[arg(
        long,
        env = "SHOAL_SASL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    sasl_password: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    output: cli::OutputFormat,
}

impl ClientArgs {
    /// Connects to `--bootstrap-server`, authenticating when `--sasl-mechanism` is given.
    async fn connect(&self) -> anyhow::Result<cli::client::Client> {
        let mut c = cli::client::Client::connect(&self.bootstrap_server).await?;
        if let Some(m) = &self.sasl_mechanism {
            let (Some(u), Some(p)) = (&self.sasl_username, &self.sasl_password) else {
                anyhow::bail!("--sasl-mechanism needs --sasl-username and --sasl-password");
            };
            c.authenticate(&m.to_ascii_uppercase(), u, p).await?;
        }
        Ok(c)
    }
}

#[derive(clap::Args, Debug)]
struct TopicArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Topic names.
    List {
        /// Include internal topics (`__consumer_offsets`).
        #[arg(long)]
        include_internal: bool,
    },
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (default: the broker's `num.partitions`).
        #[arg(long, short = 'p', default_value_t = -1)]
        partitions: i32,
        /// Replication factor (default: the broker's).
        #[arg(long, short = 'r', default_value_t = -1)]
        replication_factor: i16,
        /// A topic setting, e.g. `--config retention.ms=60000` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// Partitions, leaders, offsets and settings (all topics when none is named).
    Describe { names: Vec<String> },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Change topic settings.
    AlterConfig {
        name: String,
        /// Set a setting (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Return a setting to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
struct GroupArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// Groups with their type and state.
    List,
    /// Per partition: committed offset, log end offset, lag (records and seconds), owner.
    /// Share groups: start offset (SPSO) and lag per share-partition, then the members.
    Describe {
        group: String,
        /// A Shoal broker's admin HTTP API (`host:port`, its `--http-addr`): share groups
        /// also show each share-partition's in-flight window and records by state, and LAG
        /// is Kafka's share lag (without it, log end offset minus start offset). A broker
        /// with security on needs its `http.auth.token` in `SHOAL_HTTP_TOKEN`.
        #[arg(long, env = "SHOAL_ADMIN_API", value_name = "HOST:PORT")]
        admin_api: Option<String>,
    },
    /// Delete a group without members (its committed offsets, or a share group's
    /// share-partition state, go with it).
    Delete { group: String },
    /// Move a stopped group's committed offsets (a share group's start offsets, through
    /// AlterShareGroupOffsets, while it is empty). Dry run unless --execute.
    ResetOffsets {
        group: String,
        /// Topics to reset (all partitions of each); default: every topic with offsets.
        #[arg(long = "topic")]
        topics: Vec<String>,
        #[arg(long, group = "to")]
        to_earliest: bool,
        #[arg(long, group = "to")]
        to_latest: bool,
        /// RFC 3339 time, e.g. 2026-11-21T10:00:00Z, or ms since the epoch.
        #[arg(long, group = "to", value_name = "DATETIME")]
        to_datetime: Option<String>,
        /// To the first offset produced at or after this long ago: ISO-8601 as Kafka's
        /// tools take it (`PT1H`, `P1DT2H30M`) or humantime (`90m`, `1h 30m`).
        #[arg(long, group = "to", value_name = "DURATION")]
        by_duration: Option<String>,
        /// Move by N (negative: back) from the committed offset (share group: the start
        /// offset).
        #[arg(long, group = "to", value_name = "N", allow_negative_numbers = true)]
        shift_by: Option<i64>,
        #[arg(long, group = "to", value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Commit the new offsets (without it, only print them).
        #[arg(long)]
        execute: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Time from N members subscribing until every partition is owned once and consumed,
    /// per group protocol (see docs/benchmarks.md).
    Convergence(ConvergenceArgs),
    /// Produce/consume throughput, latency percentiles and end-to-end latency, next to the
    /// disk and loopback limits measured in the same run (see docs/benchmarks.md).
    Throughput(ThroughputArgs),
    /// Produce throughput with a lean Kafka-protocol producer (no client library), next to
    /// the disk limit measured in the same run (see docs/benchmarks.md).
    NativeProduce(NativeProduceArgs),
    /// Share-group (KIP-932) consumer throughput with per-record acknowledgements, next to
    /// the consumer-group throughput of the same records (see docs/benchmarks.md).
    Share(ShareArgs),
    /// Transactional produce throughput (transactions of 100 and 1,000 records) next to
    /// idempotent produce of the same records in the same run (see docs/benchmarks.md).
    Txn(TxnBenchArgs),
    /// AMQP 0-9-1 queue throughput (persistent messages, publisher confirms, manual acks,
    /// prefetch) and publish-to-deliver latency; works against RabbitMQ too (see
    /// docs/benchmarks.md).
    Amqp(AmqpBenchArgs),
}

#[derive(clap::Args, Debug)]
struct AmqpBenchArgs {
    /// The broker's AMQP address.
    #[arg(long, default_value = "127.0.0.1:5672")]
    addr: std::net::SocketAddr,
    #[arg(long, default_value = "guest")]
    user: String,
    #[arg(long, default_value = "guest")]
    pass: String,
    /// Message body sizes (bytes, at least 8).
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// Consumer counts (each its own connection).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    consumers: Vec<usize>,
    /// Messages per run.
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// `basic.qos` prefetch per consumer.
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// Unconfirmed messages the publisher allows itself.
    #[arg(long, default_value_t = 1000)]
    confirm_window: u64,
    /// Runs of every configuration; the median rate is reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// `text` (a table) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
}

#[derive(clap::Args, Debug)]
struct TxnBenchArgs {
    /// Kafka bootstrap server.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per producer.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Records per transaction, one transactional producer each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    txn_sizes: Vec<u64>,
    /// Partitions of each fresh topic (records spread round-robin, so every transaction
    /// writes markers to each).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Give up on any one producer after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// `text` (a table) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
}

#[derive(clap::Args, Debug)]
struct ShareArgs {
    /// Kafka bootstrap server (it must lead the topics' partitions; any KIP-932 broker).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Record sizes (bytes); each gets a fresh 1-partition topic.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// Records per size, in the order of --sizes (the last one repeats).
    #[arg(long, value_delimiter = ',', default_value = "500000,200000")]
    records: Vec<u64>,
    /// Share-group sizes (consumers, each its own connection and member).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    consumers: Vec<usize>,
    /// Acknowledgement encodings: `ranges` (one batch per contiguous run, as Kafka's
    /// clients) and/or `per-record` (one batch per record, the worst case).
    #[arg(long, value_delimiter = ',', default_value = "ranges,per-record")]
    ack_modes: Vec<String>,
    /// ShareFetch MaxRecords (Kafka's share consumer: max.poll.records, default 500).
    #[arg(long, default_value_t = 500)]
    max_records: i32,
    /// ShareFetch and Fetch MaxWaitMs (fetch.max.wait.ms).
    #[arg(long, default_value_t = 500)]
    max_wait_ms: i32,
    /// ShareFetch and Fetch MaxBytes (fetch.max.bytes; the consumer group's per-partition
    /// limit stays at max.partition.fetch.bytes' default, 1 MiB).
    #[arg(long, default_value_t = 52_428_800)]
    max_bytes: i32,
    /// The producer's most bytes per batch (librdkafka's batch.size; Java's is 16384).
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: usize,
    /// Skip the librdkafka consumer-group baseline.
    #[arg(long)]
    no_librdkafka: bool,
    /// Runs of every configuration (each a fresh group); the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Give up on any one run (produce, or one group reading) after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// `text` (a table) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
}

#[derive(clap::Args, Debug)]
struct NativeProduceArgs {
    /// Kafka bootstrap server (it must lead every partition of the topic).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Record sizes (bytes).
    #[arg(long, value_delimiter = ',', default_value = "1024")]
    sizes: Vec<usize>,
    /// `acks` values (1 or -1).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "-1,1",
        allow_hyphen_values = true
    )]
    acks: Vec<i16>,
    /// Partitions of the fresh topic each run writes to.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Megabytes (10^6 bytes) of record values per run.
    #[arg(long, default_value_t = 2000)]
    mb: u64,
    /// Most bytes per encoded batch (librdkafka's `batch.size` default).
    #[arg(long, default_value_t = 1_000_000)]
    batch_bytes: usize,
    /// Produce requests outstanding on the connection.
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    /// Directory on the broker's disk for the sequential-write baseline (none: no baseline).
    #[arg(long)]
    disk_dir: Option<PathBuf>,
    /// `text` or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
}

#[derive(clap::Args, Debug)]
struct ThroughputArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Record sizes (bytes).
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// `acks` values.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,-1",
        allow_hyphen_values = true
    )]
    acks: Vec<String>,
    /// Partition counts.
    #[arg(long, value_delimiter = ',', default_value = "1,12")]
    partitions: Vec<i32>,
    /// Megabytes (10^6 bytes) of payload per run.
    #[arg(long, default_value_t = 100)]
    mb: u64,
    /// Directory on the broker's disk for the sequential-write baseline.
    #[arg(long, default_value = "/var/tmp")]
    disk_dir: PathBuf,
    /// Also measure latency at half the measured produce rate, for 10 s per size and acks:
    /// the producer alone, then with a consumer reading along (end to end).
    #[arg(long)]
    e2e: bool,
    /// With --e2e: this rate (msg/s) instead of half the measured one.
    #[arg(long)]
    e2e_rate: Option<f64>,
    /// `text` or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
}

#[derive(clap::Args, Debug)]
struct ConvergenceArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Group protocols to measure (`classic`, `consumer`).
    #[arg(long, value_delimiter = ',', default_value = "classic,consumer")]
    protocol: Vec<String>,
    /// Group sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "2,10,50")]
    members: Vec<usize>,
    /// Partitions of each run's topic (at least the largest group size).
    #[arg(long, default_value_t = 60)]
    partitions: i32,
    /// Runs per (protocol, members); the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A client setting for every member, e.g. `--client heartbeat.interval.ms=100`.
    #[arg(long = "client", value_name = "KEY=VALUE")]
    client: Vec<String>,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// `text` (a table) or `json` (one object per line).
    #[arg(long, default_value = "text")]
    output: String,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Kafka listener address: the first entry of `listeners` (PLAINTEXT unless `listeners`
    /// names it otherwise); more listeners with `--set listeners=...`.
    #[arg(long, env = "SHOAL_KAFKA_ADDR")]
    kafka_addr: Option<SocketAddr>,
    /// HTTP address (admin API, metrics).
    #[arg(long, env = "SHOAL_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// AMQP 0-9-1 listener address (`127.0.0.1:0` for a free port; an empty value turns
    /// AMQP off).
    #[arg(long, env = "SHOAL_AMQP_ADDR", default_value = "127.0.0.1:5672")]
    amqp_addr: String,
    /// AMQP publishers are blocked (`connection.blocked`) while the data directory's file
    /// system has less than this many bytes free (RabbitMQ's `disk_free_limit.absolute`).
    #[arg(long, env = "SHOAL_AMQP_DISK_FREE_LIMIT", default_value_t = 50_000_000)]
    amqp_disk_free_limit: u64,
    /// Data directory.
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file of broker settings under their Kafka names.
    #[arg(long, env = "SHOAL_CONFIG")]
    config: Option<PathBuf>,
    /// A broker setting by its Kafka name, e.g. `--set num.partitions=6` (repeatable).
    /// One value may hold several settings separated by commas (`a=1,b=2`, as `SHOAL_SET`
    /// does); a comma starts a new setting only when a Kafka-style key and `=` follow it,
    /// so list values keep their commas (`--set listeners=PLAINTEXT://:9092,SSL://:9093`).
    #[arg(long = "set", value_name = "KEY=VALUE", env = "SHOAL_SET")]
    set: Vec<String>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Splits `--set` / `SHOAL_SET` values into `key=value` settings: a value is cut at a comma
/// only when what follows starts with a key as Kafka spells them (lower case, digits, `.`,
/// `_`, `-`) and `=`. So `a=1,b=2` is two settings, while the commas of
/// `listeners=PLAINTEXT://:9092,SSL://:9093` or `listener.security.protocol.map=A:SSL,B:SSL`
/// (and an `OU=...` inside a value) stay in the value.
fn split_settings(values: &[String]) -> Vec<String> {
    fn starts_setting(s: &str) -> bool {
        let Some((key, _)) = s.split_once('=') else {
            return false;
        };
        key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
    }
    let mut out: Vec<String> = Vec::new();
    for value in values {
        let mut current: Option<String> = None;
        for part in value.split(',') {
            match current.as_mut() {
                Some(c) if !starts_setting(part) => {
                    c.push(',');
                    c.push_str(part);
                }
                _ => {
                    if let Some(c) = current.take() {
                        out.push(c);
                    }
                    current = Some(part.to_string());
                }
            }
        }
        out.extend(current);
    }
    out
}

fn build_config(args: &ServeArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        config.apply_toml(&text, &path.display().to_string())?;
    }
    for pair in split_settings(&args.set) {
        config.set_pair(&pair)?;
    }
    if let Some(a) = args.kafka_addr {
        config.set_kafka_addr(a);
    }
    if let Some(a) = args.http_addr {
        config.http_addr = a;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    Ok(config)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Bench(BenchCommand::Convergence(args)) => convergence(args),
        Command::Bench(BenchCommand::Throughput(args)) => throughput(args),
        Command::Bench(BenchCommand::NativeProduce(args)) => native_produce(args),
        Command::Bench(BenchCommand::Share(args)) => share(args),
        Command::Bench(BenchCommand::Txn(args)) => txn_bench(args),
        Command::Bench(BenchCommand::Amqp(args)) => amqp_bench(args),
        Command::Topic(args) => client_runtime().and_then(|rt| rt.block_on(topic(args))),
        Command::Group(args) => client_runtime().and_then(|rt| rt.block_on(group(args))),
        Command::Produce(args) => produce(args),
        Command::Consume(args) => consume(args),
        Command::Queue(args) => client_runtime().and_then(|rt| rt.block_on(cli::queue::run(args))),
        Command::User(args) => client_runtime().and_then(|rt| rt.block_on(user(args))),
        Command::Acl(args) => client_runtime().and_then(|rt| rt.block_on(acl(args))),
        Command::Quota(args) => client_runtime().and_then(|rt| rt.block_on(quota(args))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received");
            let _ = tx.send(true);
        });
        // Bound before the broker starts, so a taken port (a local RabbitMQ) stops start-up
        // with one line naming the flag.
        let amqp_listener = match args.amqp_addr.trim() {
            "" => None,
            a => {
                let addr: std::net::SocketAddr = a
                    .parse()
                    .with_context(|| format!("--amqp-addr: `{a}` is not an address"))?;
                Some(shoal_amqp::bind(addr).await?)
            }
        };
        let amqp_addr = amqp_listener.as_ref().and_then(|l| l.local_addr().ok());
        // `listener.security.protocol.map=...,AMQP:SSL`: amqps on --amqp-addr.
        let amqp_tls = shoal_broker::startup::side_port_tls(&config, "AMQP")?;
        let disk_free_limit = args.amqp_disk_free_limit;
        shoal_broker::run_with(
            config,
            rx,
            move |broker, shutdown| {
                // One line per further Kafka listener (the first is the `kafka` line).
                for l in broker.config.listeners.iter().skip(1) {
                    println!("shoal: kafka listener {} listening on {l}", l.name);
                }
                if let Some(listener) = amqp_listener {
                    let amqp = shoal_amqp::Amqp::new(
                        std::sync::Arc::clone(broker),
                        shoal_amqp::AmqpConfig {
                            disk_free_limit,
                            ..shoal_amqp::AmqpConfig::default()
                        },
                    );
                    // Queues and exchanges on the admin HTTP port, `rabbitmq_*` on /metrics.
                    shoal_amqp::admin::register(&amqp);
                    tokio::spawn(shoal_amqp::serve(amqp, listener, amqp_tls, shutdown));
                }
            },
            |addr, http| {
                // Machine-readable readiness lines (tests and scripts wait for them); the
                // kafka line comes last so a reader of it already knows the others.
                println!("shoal: http listening on {http}");
                if let Some(a) = amqp_addr {
                    println!("shoal: amqp listening on {a}");
                }
                println!("shoal: kafka listening on {addr}");
            },
        )
        .await?;
        Ok(())
    })
}

fn amqp_bench(args: AmqpBenchArgs) -> anyhow::Result<()> {
    use shoal_bench::amqp;
    if args.output == "text" {
        println!("{}", amqp::table_header());
    }
    for &size in &args.sizes {
        for &consumers in &args.consumers {
            let opts = amqp::Options {
                addr: args.addr,
                user: args.user.clone(),
                pass: args.pass.clone(),
                messages: args.messages,
                size,
                consumers,
                prefetch: args.prefetch,
                confirm_window: args.confirm_window,
                timeout: std::time::Duration::from_secs(args.timeout_s),
            };
            let mut runs = Vec::new();
            for _ in 0..args.runs.max(1) {
                runs.push(amqp::run(&opts)?);
            }
            runs.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
            let median = runs.swap_remove(runs.len() / 2);
            if args.output == "json" {
                println!("{}", serde_json::to_string(&median)?);
            } else {
                println!("{}", amqp::table_row(&median));
            }
        }
    }
    Ok(())
}

fn convergence(args: ConvergenceArgs) -> anyhow::Result<()> {
    let client_config: Vec<(String, String)> = args
        .client
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--client expects key=value, got `{kv}`"))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.output == "text" {
        println!("protocol  members  partitions  runs  median_ms  min_ms  max_ms");
    }
    for protocol in &args.protocol {
        for &members in &args.members {
            let opts = shoal_bench::convergence::Options {
                bootstrap: args.bootstrap_server.clone(),
                protocol: protocol.clone(),
                members,
                partitions: args.partitions,
                client_config: client_config.clone(),
                timeout: std::time::Duration::from_secs(args.timeout_s),
            };
            let mut times = Vec::with_capacity(args.runs);
            for _ in 0..args.runs.max(1) {
                let outcome = shoal_bench::convergence::run(&opts)?;
                if args.output == "json" {
                    println!("{}", serde_json::to_string(&outcome)?);
                }
                times.push(outcome.converged_ms);
            }
            times.sort_by(f64::total_cmp);
            if args.output == "text" {
                let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
                let min = times.first().copied().unwrap_or(0.0);
                let max = times.last().copied().unwrap_or(0.0);
                println!(
                    "{protocol:<9} {members:>7}  {:>10}  {:>4}  {median:>9.0}  {min:>6.0}  {max:>6.0}",
                    args.partitions,
                    times.len()
                );
            }
        }
    }
    Ok(())
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn pairs(items: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("{flag} expects key=value, got `{kv}`"))
        })
        .collect()
}

async fn user(args: UserArgs) -> anyhow::Result<()> {
    use cli::user;
    let out = args.client.output;
    let mut c = args.client.connect().await?;
    match args.command {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                anyhow::bail!("an empty password is not allowed");
            }
            let mechs = user::mechanisms(&mechanism)?;
            user::create(&mut c, &name, &password, &mechs, iterations).await?;
            let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
            let v = serde_json::json!({"user": name, "mechanisms": names});
            cli::group::print(out, &v, || {
                format!("Created user {name} ({}).\n", names.join(", "))
            });
        }
        UserCommand::Delete { name, mechanism } => {
            let mechs = match mechanism {
                Some(m) => user::mechanisms(&m)?,
                None => user::list(&mut c, std::slice::from_ref(&name))
                    .await?
                    .into_iter()
                    .flat_map(|u| u.credentials)
                    .filter_map(|c| {
                        shoal_broker::auth::scram::ScramMechanism::from_name(&c.mechanism)
                    })
                    .collect(),
            };
            user::delete(&mut c, &name, &mechs).await?;
            let v = serde_json::json!({"deleted": name});
            cli::group::print(out, &v, || format!("Deleted user {name}.\n"));
        }
        UserCommand::List { names } => {
            let users = user::list(&mut c, &names).await?;
            cli::group::print(out, &users, || user::list_text(&users));
        }
    }
    Ok(())
}

async fn topic(args: TopicArgs) -> anyhow::Result<()> {
    use cli::topic;
    let out = args.client.output;
    let mut c = args.client.connect().await?;
    match args.command {
        TopicCommand::List { include_internal } => {
            let names = topic::list(&mut c, include_internal).await?;
            cli::group::print(out, &names, || {
                names.iter().map(|n| format!("{n}\n")).collect()
            });
        }
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
        } => {
            topic::create(
                &mut c,
                &name,
                partitions,
                replication_factor,
                &pairs(&config, "--config")?,
            )
            .await?;
            let v = serde_json::json!({"created": name});
            cli::group::print(out, &v, || format!("Created topic {name}.\n"));
        }
        TopicCommand::Describe { names } => {
            let topics = topic::describe(&mut c, &names).await?;
            cli::group::print(out, &topics, || topic::describe_text(&topics));
        }
        TopicCommand::Delete { names } => {
            topic::delete(&mut c, &names).await?;
            let v = serde_json::json!({"deleted": names});
            cli::group::print(out, &v, || {
                format!("Deleted topic(s) {}.\n", names.join(", "))
            });
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            topic::alter_config(&mut c, &name, &pairs(&set, "--set")?, &delete).await?;
            let v = serde_json::json!({"altered": name});
            cli::group::print(out, &v, || {
                format!("Completed updating config for topic {name}.\n")
            });
        }
    }
    Ok(())
}

/// `--by-duration`: ISO-8601 (`PT1H`, as `kafka-consumer-groups.sh --by-duration`) or
/// humantime (`90m`); in ms.
fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    if let Some(shoal_group::share::OffsetReset::ByDuration(ms)) =
        shoal_group::share::OffsetReset::parse(&format!("by_duration:{s}"))
    {
        return Ok(ms);
    }
    let d = humantime::parse_duration(s).with_context(|| {
        format!("--by-duration expects an ISO-8601 duration (PT1H, P1DT2H) or 90m, got `{s}`")
    })?;
    Ok(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `--to-datetime`: RFC 3339 (`2026-11-21T10:00:00Z`, `+01:00` offsets) or ms since the epoch.
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(s))
        .with_context(|| {
            format!("--to-datetime expects RFC 3339 (2026-11-21T10:00:00Z) or ms, got `{s}`")
        })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

async fn group(args: GroupArgs) -> anyhow::Result<()> {
    use cli::group;
    let out = args.client.output;
    let mut c = args.client.connect().await?;
    match args.command {
        GroupCommand::List => {
            let groups = group::list(&mut c).await?;
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|(g, t, p, s)| vec![g.clone(), t.clone(), p.clone(), s.clone()])
                .collect();
            let json: Vec<serde_json::Value> = groups
                .iter()
                .map(|(g, t, p, s)| serde_json::json!({"group": g, "type": t, "protocol_type": p, "state": s}))
                .collect();
            cli::group::print(out, &json, || {
                cli::table(&["GROUP", "TYPE", "PROTOCOL-TYPE", "STATE"], &rows)
            });
        }
        GroupCommand::Describe {
            group: name,
            admin_api,
        } => {
            let d = group::describe_any(&mut c, &name, admin_api.as_deref()).await?;
            group::print(out, &d, || group::described_text(&d));
        }
        GroupCommand::Delete { group: name } => {
            let kind = group::delete(&mut c, &name).await?;
            let v = serde_json::json!({"deleted": name, "type": kind});
            let what = if kind.as_deref() == Some("share") {
                "share"
            } else {
                "consumer"
            };
            group::print(out, &v, || {
                format!("Deletion of requested {what} groups ('{name}') was successful.\n")
            });
        }
        GroupCommand::ResetOffsets {
            group: name,
            topics,
            to_earliest,
            to_latest,
            to_datetime,
            by_duration,
            shift_by,
            to_offset,
            execute,
        } => {
            let to = if to_earliest {
                group::ResetTo::Earliest
            } else if to_latest {
                group::ResetTo::Latest
            } else if let Some(d) = to_datetime {
                group::ResetTo::Datetime(parse_datetime(&d)?)
            } else if let Some(d) = by_duration {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                group::ResetTo::Datetime(now.saturating_sub(parse_duration_ms(&d)?))
            } else if let Some(n) = shift_by {
                group::ResetTo::ShiftBy(n)
            } else if let Some(o) = to_offset {
                group::ResetTo::Offset(o)
            } else {
                anyhow::bail!(
                    "say where to: --to-earliest, --to-latest, --to-datetime, --by-duration, \
                     --shift-by or --to-offset"
                );
            };
            let plan = if group::group_type(&mut c, &name).await?.as_deref() == Some("share") {
                group::reset_share_offsets(&mut c, &name, &topics, &to, execute).await?
            } else {
                group::reset_offsets(&mut c, &name, &topics, &to, execute).await?
            };
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|r| {
                    vec![
                        r.group.clone(),
                        r.topic.clone(),
                        r.partition.to_string(),
                        r.new_offset.to_string(),
                    ]
                })
                .collect();
            group::print(out, &plan, || {
                let mut t = cli::table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
                if !execute {
                    t.push_str("(dry run: nothing committed; add --execute to apply)\n");
                }
                t
            });
        }
    }
    Ok(())
}

fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let opts = cli::produce::ProduceOptions {
        bootstrap: args.client.bootstrap_server.clone(),
        topic: args.topic.clone(),
        key_separator: args.key_separator.clone(),
        partition: args.partition,
        properties: pairs(&args.property, "--property")?,
    };
    let report = cli::produce::run(&opts, std::io::stdin().lock())?;
    match args.client.output {
        cli::OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
        cli::OutputFormat::Text => eprintln!(
            "Produced {} records ({} bytes) to {} in {:.2} s: {:.0} records/s",
            report.records, report.bytes, args.topic, report.seconds, report.records_per_second
        ),
    }
    Ok(())
}

fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let source = match (&args.group, args.partition) {
        (Some(g), _) => cli::consume::Source::Group {
            group: g.clone(),
            from_beginning: args.from_beginning,
        },
        (None, Some(p)) => cli::consume::Source::Partition {
            partition: p,
            offset: cli::consume::parse_offset(&args.offset)?,
        },
        (None, None) => anyhow::bail!("say where to read: --group GROUP or --partition N"),
    };
    let opts = cli::consume::ConsumeOptions {
        bootstrap: args.client.bootstrap_server.clone(),
        topic: args.topic.clone(),
        source,
        format: args.format.clone(),
        json: args.client.output == cli::OutputFormat::Json,
        count: args.count,
        timeout: args.timeout_ms.map(std::time::Duration::from_millis),
        properties: pairs(&args.property, "--property")?,
    };
    cli::consume::run(&opts)?;
    Ok(())
}

fn native_produce(args: NativeProduceArgs) -> anyhow::Result<()> {
    use shoal_bench::{native, throughput as t};
    let json = args.output == "json";
    let disk = match &args.disk_dir {
        Some(dir) => Some(t::disk_baseline(dir, 1 << 30)?.0),
        None => None,
    };
    if let Some(disk) = disk {
        if json {
            println!(
                "{}",
                serde_json::json!({"baseline": {"disk_seq_write_fsync_mb_per_s": disk}})
            );
        } else {
            println!("baseline: sequential write + fsync {disk:.0} MB/s");
        }
    }
    for &size in &args.sizes {
        for &acks in &args.acks {
            let topic = format!(
                "native-{}-{size}-{}",
                std::process::id(),
                if acks < 0 { "all" } else { "1" }
            );
            t::create_topic(&args.bootstrap_server, &topic, args.partitions)?;
            let o = native::produce(&native::Options {
                bootstrap: args.bootstrap_server.clone(),
                topic,
                record_size: size,
                records: (args.mb * 1_000_000 / size.max(1) as u64).max(1),
                acks,
                batch_bytes: args.batch_bytes,
                max_in_flight: args.max_in_flight,
                timeout: std::time::Duration::from_secs(300),
            })?;
            if json {
                println!("{}", serde_json::to_string(&o)?);
            } else {
                let share = disk
                    .map(|d| {
                        format!(
                            " = {:.0}% of the disk",
                            100.0 * o.produce_mb_per_s / d.max(1e-9)
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "native producer, {size} B, acks={acks}, {} partition(s): {:.0} msg/s, {:.1} MB/s{share}; request send-to-ack p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms ({} requests)",
                    o.partitions,
                    o.produce_msgs_per_s,
                    o.produce_mb_per_s,
                    o.request_latency.p50_ms,
                    o.request_latency.p99_ms,
                    o.request_latency.p999_ms,
                    o.requests
                );
            }
        }
    }
    Ok(())
}

fn txn_bench(args: TxnBenchArgs) -> anyhow::Result<()> {
    use shoal_bench::txn;
    let opts = txn::Options {
        bootstrap: args.bootstrap_server.clone(),
        record_size: args.record_size,
        records: args.records,
        txn_sizes: args.txn_sizes.clone(),
        partitions: args.partitions,
        timeout: std::time::Duration::from_secs(args.timeout_s),
    };
    txn::run(
        &opts,
        rows(&args.output, txn::table_header(), txn::table_row),
    )?;
    Ok(())
}

/// The printer of a benchmark's results for `--output`: `json`, one object per line, or a
/// table (`header` first, then `row` of each result).
fn rows<T: serde::Serialize>(
    output: &str,
    header: String,
    row: fn(&T) -> String,
) -> impl FnMut(&T) {
    let json = output == "json";
    if !json {
        println!("{header}");
    }
    move |o| {
        if json {
            if let Ok(line) = serde_json::to_string(o) {
                println!("{line}");
            }
        } else {
            println!("{}", row(o));
        }
    }
}

fn share(args: ShareArgs) -> anyhow::Result<()> {
    use shoal_bench::share;
    let ack_modes = args
        .ack_modes
        .iter()
        .map(|m| {
            share::AckMode::parse(m)
                .with_context(|| format!("--ack-modes: `ranges` or `per-record`, got `{m}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sizes = args
        .sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let n = args
                .records
                .get(i)
                .or(args.records.last())
                .copied()
                .unwrap_or(100_000);
            (size, n)
        })
        .collect();
    let opts = share::Options {
        bootstrap: args.bootstrap_server.clone(),
        sizes,
        consumers: args.consumers.clone(),
        ack_modes,
        max_records: args.max_records,
        max_wait_ms: args.max_wait_ms,
        max_bytes: args.max_bytes,
        batch_bytes: args.batch_bytes,
        librdkafka: !args.no_librdkafka,
        runs: args.runs,
        timeout: std::time::Duration::from_secs(args.timeout_s),
    };
    share::run(
        &opts,
        rows(&args.output, share::table_header(), share::table_row),
    )?;
    Ok(())
}

fn throughput(args: ThroughputArgs) -> anyhow::Result<()> {
    use shoal_bench::throughput as t;
    let json = args.output == "json";
    let (disk_mbps, fsync_ms) = t::disk_baseline(&args.disk_dir, 1 << 30)?;
    let tcp_mbps = t::tcp_baseline(4 << 30)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"baseline": {"disk_seq_write_fsync_mb_per_s": disk_mbps, "fsync_ms": fsync_ms, "loopback_tcp_mb_per_s": tcp_mbps}})
        );
    } else {
        println!("baseline: sequential write + fsync {disk_mbps:.0} MB/s (fsync {fsync_ms:.2} ms), loopback TCP {tcp_mbps:.0} MB/s");
        println!(
            "{:>5} {:>4} {:>3} {:>10} {:>8} {:>6} {:>8} {:>8} {:>9} {:>10} {:>8}",
            "size",
            "acks",
            "p",
            "prod msg/s",
            "MB/s",
            "%disk",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "cons msg/s",
            "MB/s"
        );
    }
    let mut best: std::collections::BTreeMap<(usize, String), f64> = Default::default();
    for &size in &args.sizes {
        for acks in &args.acks {
            for &partitions in &args.partitions {
                let opts = t::Options {
                    bootstrap: args.bootstrap_server.clone(),
                    record_size: size,
                    records: (args.mb * 1_000_000 / size.max(1) as u64).max(1),
                    partitions,
                    acks: acks.clone(),
                    producer_config: Vec::new(),
                    timeout: std::time::Duration::from_secs(300),
                };
                let o = t::produce_consume(&opts)?;
                let e = best.entry((size, acks.clone())).or_insert(0.0);
                *e = e.max(o.produce_msgs_per_s);
                if json {
                    println!("{}", serde_json::to_string(&o)?);
                } else {
                    println!(
                        "{:>5} {:>4} {:>3} {:>10.0} {:>8.1} {:>5.0}% {:>8.2} {:>8.2} {:>9.2} {:>10.0} {:>8.1}",
                        size,
                        acks,
                        partitions,
                        o.produce_msgs_per_s,
                        o.produce_mb_per_s,
                        100.0 * o.produce_mb_per_s / disk_mbps.max(1e-9),
                        o.produce_latency.p50_ms,
                        o.produce_latency.p99_ms,
                        o.produce_latency.p999_ms,
                        o.consume_msgs_per_s,
                        o.consume_mb_per_s
                    );
                }
            }
        }
    }
    if args.e2e {
        for ((size, acks), rate) in &best {
            let half = args.e2e_rate.unwrap_or(rate / 2.0).max(1.0);
            // The producer alone at half its best rate (measured alone), then again with a
            // consumer reading along for the end-to-end figure.
            let alone = t::end_to_end(&args.bootstrap_server, *size, acks, half, 10.0, 1, false)?;
            let e = t::end_to_end(&args.bootstrap_server, *size, acks, half, 10.0, 1, true)?;
            if json {
                println!("{}", serde_json::to_string(&alone)?);
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!(
                    "{size} B acks={acks} at {half:.0} msg/s (half the best produce rate), {} records: produce alone (send to ack) p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
                    alone.records,
                    alone.produce_latency.p50_ms, alone.produce_latency.p99_ms, alone.produce_latency.p999_ms,
                );
                println!(
                    "{size} B acks={acks} at {half:.0} msg/s with a consumer reading along, {} records: produce (send to ack) p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; end to end p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
                    e.records,
                    e.produce_latency.p50_ms, e.produce_latency.p99_ms, e.produce_latency.p999_ms,
                    e.end_to_end_latency.p50_ms, e.end_to_end_latency.p99_ms, e.end_to_end_latency.p999_ms
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod settings_tests {
    use super::split_settings;

    fn split(v: &[&str]) -> Vec<String> {
        split_settings(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn commas_separate_settings_only_before_a_key() {
        assert_eq!(split(&["a.b=1,c-d=2"]), ["a.b=1", "c-d=2"]);
        assert_eq!(
            split(&[
                "listeners=PLAINTEXT://:9092,SSL://:9093",
                "num.partitions=4"
            ]),
            [
                "listeners=PLAINTEXT://:9092,SSL://:9093",
                "num.partitions=4"
            ]
        );
        assert_eq!(
            split(&["listener.security.protocol.map=A:SSL,B:PLAINTEXT,num.partitions=3"]),
            [
                "listener.security.protocol.map=A:SSL,B:PLAINTEXT",
                "num.partitions=3"
            ]
        );
        assert_eq!(
            split(&["ssl.principal.mapping.rules=RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT"]),
            ["ssl.principal.mapping.rules=RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT"]
        );
        // A malformed first part is kept as it is, for set_pair to refuse with its message.
        assert_eq!(split(&["oops,a=1"]), ["oops", "a=1"]);
        assert!(split(&[]).is_empty());
    }
}
