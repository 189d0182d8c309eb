//! Start-up wiring: [`Broker::start`] opens storage (with recovery), starts the flusher and
//! the coordinator (which replays `__consumer_offsets`) and builds the shared [`Broker`];
//! [`run`] binds the listeners, starts the HTTP server and the background tasks (retention,
//! periodic flush, the console's lag sampler) and serves until shutdown. The only module that
//! knows every other one.

use std::sync::Arc;

use shoal_group::CoordinatorConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::coordinator;
use crate::durability::Flusher;
use crate::error::BrokerError;
use crate::history::History;
use crate::internal_log::InternalLogError;
use crate::state::Broker;
use crate::topics::{TopicManager, CONSUMER_OFFSETS, TRANSACTION_STATE};

impl Broker {
    /// Opens the data directory and starts the coordinator and flusher tasks. Must run inside
    /// a tokio runtime.
    ///
    /// Errors: storage that cannot be opened or recovered, a corrupt internal log.
    pub fn start(config: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        Self::start_with_fsync(config, Arc::new(|f: &std::fs::File| f.sync_data()))
    }

    /// [`Broker::start`] with the flusher's fsync replaced by `fsync` (the failure-injection
    /// seam of [`crate::durability::Fsync`]).
    ///
    /// Errors: as [`Broker::start`].
    pub fn start_with_fsync(
        config: BrokerConfig,
        fsync: crate::durability::Fsync,
    ) -> Result<Arc<Self>, BrokerError> {
        let config = Arc::new(config);
        let topics =
            TopicManager::open(Arc::clone(&config)).map_err(|source| BrokerError::DataDir {
                dir: config.data_dir.clone(),
                source,
            })?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let history = Arc::new(History::default());
        let flusher = Flusher::start_with_fsync(Arc::clone(&metrics), fsync);
        let offsets = topics.partition(CONSUMER_OFFSETS, 0).ok_or_else(|| {
            BrokerError::InternalLog(InternalLogError(format!(
                "{CONSUMER_OFFSETS} has no partition 0"
            )))
        })?;
        if config.group_consumer_heartbeat_interval_ms >= config.group_consumer_session_timeout_ms {
            // Kafka enforces the same: members heartbeating slower than their session expire.
            return Err(BrokerError::Config(format!(
                "group.consumer.heartbeat.interval.ms ({}) must be less than group.consumer.session.timeout.ms ({})",
                config.group_consumer_heartbeat_interval_ms,
                config.group_consumer_session_timeout_ms
            )));
        }
        let group_config = CoordinatorConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            // Kafka's constant (not a broker config there either).
            new_member_join_timeout_ms: CoordinatorConfig::default().new_member_join_timeout_ms,
            max_size: usize::try_from(config.group_max_size).unwrap_or(usize::MAX),
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            offset_metadata_max_bytes: usize::try_from(config.offset_metadata_max_bytes)
                .unwrap_or(4096),
            consumer: shoal_group::config::ConsumerGroupConfig {
                session_timeout_ms: config.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
                reconciling_heartbeat_interval_ms: config
                    .group_consumer_reconciling_heartbeat_interval_ms,
                assignors: config.group_consumer_assignors.clone(),
                max_size: usize::try_from(config.group_consumer_max_size).unwrap_or(usize::MAX),
                migration_policy: config.group_consumer_migration_policy,
            },
            share: config.group_share.clone(),
            connection_close_session_timeout_ms: config.group_connection_close_session_timeout_ms,
        };
        let (dead_letter_tx, dead_letter_rx) = tokio::sync::mpsc::unbounded_channel();
        let groups = coordinator::start(
            group_config,
            offsets,
            flusher.clone(),
            config.offsets_retention_check_interval_ms,
            Arc::clone(&metrics),
            Arc::clone(&history),
            dead_letter_tx,
        )?;
        let txn_log = topics.partition(TRANSACTION_STATE, 0).ok_or_else(|| {
            BrokerError::InternalLog(InternalLogError(format!(
                "{TRANSACTION_STATE} has no partition 0"
            )))
        })?;
        let (txns, markers) = crate::txn_coordinator::start(
            shoal_txn::TxnConfig {
                max_timeout_ms: config.transaction_max_timeout_ms,
                id_expiration_ms: config.transactional_id_expiration_ms,
            },
            txn_log,
            flusher.clone(),
        )?;
        let (appended, _) = watch::channel(0u64);
        let credentials = crate::auth::scram::CredentialStore::load(&topics);
        let oauth = config
            .sasl_oauthbearer
            .validator()
            .map_err(BrokerError::Config)?;
        if matches!(oauth, crate::auth::oauthbearer::Validator::Unsecured(_))
            && config.oauthbearer_enabled()
        {
            tracing::warn!("OAUTHBEARER is enabled with the unsecured token validator (no sasl.oauthbearer.jwks.endpoint.url): any unsigned token is accepted; not for production");
        }
        let sasl = crate::auth::sasl::SaslAuthenticator::new(Arc::clone(&credentials), oauth)
            .map_err(BrokerError::Config)?;
        let authorizer = crate::auth::acl::Authorizer::load(
            crate::auth::acl::AuthorizerConfig {
                enabled: !config.authorizer_class_name.is_empty(),
                super_users: config.super_users.clone(),
                allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
            },
            &topics,
        );
        let quotas = crate::auth::quota::QuotaManager::load(
            &topics,
            crate::auth::quota::QuotaConfig {
                samples: config.quota_window_num,
                window_ms: config.quota_window_size_seconds.saturating_mul(1000),
            },
        );
        let broker = Arc::new(Self {
            config,
            topics,
            groups,
            txns,
            flusher,
            appended,
            metrics,
            history,
            http_extension: std::sync::OnceLock::new(),
            credentials,
            sasl,
            authorizer,
            quotas,
        });
        crate::dead_letter::spawn(Arc::downgrade(&broker), dead_letter_rx);
        crate::txn_coordinator::spawn_marker_writer(Arc::downgrade(&broker), markers);
        Ok(broker)
    }
}

/// Binds the Kafka listener and the admin HTTP listener, calls `on_ready` with both bound
/// addresses `(kafka, http)`, serves until `shutdown` turns true, lets open connections
/// finish their requests (bounded by [`crate::server::SHUTDOWN_DRAIN_TIMEOUT`]), then flushes
/// logs.
///
/// Errors: an address cannot be bound, or storage cannot be opened.
pub async fn run(
    config: BrokerConfig,
    shutdown: watch::Receiver<bool>,
    on_ready: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr),
) -> Result<(), BrokerError> {
    run_with(config, shutdown, |_, _| {}, on_ready).await
}

/// [`run`] with `on_start` called once the broker is built, before `on_ready`, with the
/// broker and the shutdown signal: where the binary starts other front ends (AMQP) on the
/// same broker, and registers their admin routes and metrics
/// ([`Broker::http_extension`]; the HTTP server starts after `on_start` returns). Errors: as
/// [`run`].
pub async fn run_with(
    config: BrokerConfig,
    shutdown: watch::Receiver<bool>,
    on_start: impl FnOnce(&Arc<Broker>, watch::Receiver<bool>),
    on_ready: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr),
) -> Result<(), BrokerError> {
    let bind_error = |addr, flag| move |source| BrokerError::Bind { addr, flag, source };
    let mut config = config;
    let listeners = bind_listeners(&mut config).await?;
    let http_tls = side_port_tls(&config, "HTTP")?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(bind_error(config.http_addr, "--http-addr"))?;
    config.http_addr = http_listener.local_addr()?;
    let broker = Broker::start(config)?;
    tracing::info!(kafka_addr = %broker.config.kafka_addr, http_addr = %broker.config.http_addr, data_dir = %broker.config.data_dir.display(), "shoal broker listening");
    tokio::spawn(sample_lag(Arc::clone(&broker), shutdown.clone()));
    // Before the HTTP server builds its router: `on_start` may register an extension.
    on_start(&broker, shutdown.clone());
    tokio::spawn(crate::http::serve(
        Arc::clone(&broker),
        http_listener,
        http_tls,
        shutdown.clone(),
    ));
    on_ready(broker.config.kafka_addr, broker.config.http_addr);
    // Retention and periodic flush run in the background.
    let bg = Arc::clone(&broker);
    let mut bg_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let every = bg
            .config
            .log_retention_check_interval_ms
            .clamp(1000, i64::from(i32::MAX)) as u64;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let b = Arc::clone(&bg);
                    let _ = tokio::task::spawn_blocking(move || b.topics.enforce_retention()).await;
                }
                _ = bg_shutdown.changed() => break,
            }
        }
    });
    // `log.flush.interval.ms`: fsync every dirty partition at least this often.
    if broker.config.log_flush_interval_ms < i64::from(i32::MAX) {
        let fl = Arc::clone(&broker);
        let mut fl_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let every =
                std::time::Duration::from_millis(fl.config.log_flush_interval_ms.max(1) as u64);
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let parts: Vec<_> = fl.topics.list().iter().flat_map(|t| t.partitions.clone()).collect();
                        if let Err(e) = fl.flusher.sync(parts).await {
                            tracing::error!(error = %e, "periodic flush failed");
                        }
                    }
                    _ = fl_shutdown.changed() => break,
                }
            }
        });
    }
    crate::server::serve(Arc::clone(&broker), listeners, shutdown).await;
    tracing::info!("shoal broker: connections closed; syncing logs");
    let parts: Vec<_> = broker
        .topics
        .list()
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    let _ = broker.flusher.sync(parts).await;
    Ok(())
}

/// The TLS side of the AMQP or admin HTTP port (`name` = `AMQP` / `HTTP`), when
/// `listener.security.protocol.map` maps it to SSL ([`BrokerConfig::side_port_tls`]).
///
/// Errors: [`BrokerError::Config`] when its TLS settings do not build.
pub fn side_port_tls(
    config: &BrokerConfig,
    name: &str,
) -> Result<Option<crate::server::tls::TlsListener>, BrokerError> {
    if !config.side_port_tls(name) {
        return Ok(None);
    }
    crate::server::tls::build(&config.ssl_settings(name), name)
        .map(Some)
        .map_err(BrokerError::Config)
}

/// Binds every `listeners` entry (an empty host binds all interfaces, a host name its first
/// address) and builds the TLS side of SSL listeners; records the bound ports in `config`
/// (and the first listener's address in `config.kafka_addr`).
///
/// Errors: [`BrokerError::Config`] for a listener without a security protocol, SASL
/// listeners (not served yet), TLS settings that do not build, a host that does not
/// resolve; [`BrokerError::Bind`] for an address that cannot be bound.
async fn bind_listeners(
    config: &mut BrokerConfig,
) -> Result<Vec<crate::server::BoundListener>, BrokerError> {
    let mut out = Vec::new();
    for (i, (endpoint, protocol)) in config
        .listener_protocols()
        .map_err(|e| BrokerError::Config(e.to_string()))?
        .into_iter()
        .enumerate()
    {
        if protocol.sasl() && config.sasl_mechanisms_for(&endpoint.name).is_empty() {
            return Err(BrokerError::Config(format!(
                "listener {endpoint}: {} needs at least one of sasl.enabled.mechanisms",
                protocol.name()
            )));
        }
        let tls = if protocol.tls() {
            Some(
                crate::server::tls::build(&config.ssl_settings(&endpoint.name), &endpoint.name)
                    .map_err(BrokerError::Config)?,
            )
        } else {
            None
        };
        let host = if endpoint.host.is_empty() {
            "0.0.0.0"
        } else {
            endpoint.host.as_str()
        };
        let addr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, endpoint.port),
            Err(_) => tokio::net::lookup_host((host, endpoint.port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    BrokerError::Config(format!(
                        "listener {endpoint}: host `{host}` does not resolve"
                    ))
                })?,
        };
        let flag = if i == 0 {
            "--kafka-addr / listeners"
        } else {
            "listeners"
        };
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| BrokerError::Bind { addr, flag, source })?;
        let bound = tcp.local_addr()?;
        if i == 0 {
            config.kafka_addr = bound;
        }
        let mut endpoint = endpoint;
        endpoint.port = bound.port();
        if let Some(e) = config.listeners.get_mut(i) {
            e.port = bound.port();
        }
        tracing::info!(listener = %endpoint, protocol = protocol.name(), %bound, "listener bound");
        out.push(crate::server::BoundListener {
            endpoint,
            protocol,
            tcp,
            tls,
        });
    }
    Ok(out)
}

/// Samples every group's lag into the console's history every
/// `console.lag.sample.interval.ms` until `shutdown`.
async fn sample_lag(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let every = broker.config.console_lag_sample_interval_ms.max(100);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        broker
            .lag()
            .sample(&broker.history, crate::clock::now_ms())
            .await;
    }
}
