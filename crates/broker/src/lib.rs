//! Shoal's broker library: the Kafka-protocol server, request handlers, the runtime around
//! the sans-IO group coordinator, group-commit durability, topics and configuration.
//!
//! Entry point: [`broker::run`] with a [`config::BrokerConfig`].

pub mod alloc_guard;
pub mod broker;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod durability;
pub mod handlers;
pub mod history;
pub mod http;
pub mod internal_log;
pub mod lag;
pub mod metrics;
pub mod server;
pub mod topics;

pub use broker::{run, Broker};
pub use config::BrokerConfig;
