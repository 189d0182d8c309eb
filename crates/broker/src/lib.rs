//! Shoal's broker library: the Kafka-protocol server, request handlers, the runtime around
//! the sans-IO group coordinator, group-commit durability, topics and configuration.
//!
//! Entry point: [`startup::run`] with a [`config::BrokerConfig`].

pub mod auth;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod dead_letter;
pub mod durability;
pub mod error;
pub mod handlers;
pub mod history;
pub mod http;
pub mod internal_log;
pub mod lag;
pub mod metrics;
pub mod server;
pub mod startup;
pub mod state;
pub mod topics;
pub mod txn_coordinator;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use startup::{run, run_with};
pub use state::Broker;
