//! The broker's shared state: configuration, topics, the group coordinator's handle, the
//! durability service, metrics and the console's history, one [`Broker`] shared by every
//! connection and every HTTP request. Built and wired by `startup`; this module only
//! holds it, so every layer above can name it without importing the wiring.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::coordinator::CoordinatorHandle;
use crate::durability::Flusher;
use crate::history::History;
use crate::lag::LagReader;
use crate::metrics::Metrics;
use crate::topics::TopicManager;

/// Shared broker state.
#[derive(Debug)]
pub struct Broker {
    pub config: Arc<BrokerConfig>,
    pub topics: TopicManager,
    pub groups: CoordinatorHandle,
    /// The transaction coordinator ([`crate::txn_coordinator`]).
    pub txns: crate::txn_coordinator::TxnHandle,
    pub flusher: Flusher,
    /// Bumped after every append; long-polling fetches wait on it.
    pub appended: watch::Sender<u64>,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// The console's lag samples and rebalance timeline.
    pub history: Arc<History>,
    /// Routes and metrics another front end adds to the admin HTTP port (the AMQP front
    /// end's queues): set at most once, from `run_with`'s `on_start`, before the HTTP server
    /// builds its router ([`crate::http::Extension`]).
    pub http_extension: OnceLock<Arc<dyn crate::http::Extension>>,
    /// SCRAM credentials ([`crate::auth::scram`]), replayed from `__shoal_metadata`.
    pub credentials: Arc<crate::auth::scram::CredentialStore>,
    /// Runs SASL exchanges against [`Broker::credentials`].
    pub sasl: crate::auth::sasl::SaslAuthenticator,
    /// ACLs ([`crate::auth::acl`]), replayed from `__shoal_metadata`.
    pub authorizer: crate::auth::acl::Authorizer,
    /// Client quotas ([`crate::auth::quota`]), replayed from `__shoal_metadata`.
    pub quotas: crate::auth::quota::QuotaManager,
}

impl Broker {
    /// Wakes long-polling fetches after an append.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Lag (and the console's samples), read through the coordinator, the topics and the
    /// metrics.
    pub fn lag(&self) -> LagReader<'_> {
        LagReader {
            groups: &self.groups,
            topics: &self.topics,
            metrics: &self.metrics,
        }
    }
}
