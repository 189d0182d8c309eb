//! Shoal's benchmark harness: clients over the Kafka protocol (librdkafka through `rdkafka`),
//! so every benchmark runs against any Kafka-compatible broker.
//!
//! - [`convergence`]: time from N members subscribing until every partition is owned by exactly
//!   one member and consumed by it, for the classic and the consumer (KIP-848) protocols.
//! - [`throughput`]: produce/consume throughput and latency percentiles, end-to-end latency,
//!   and the disk and loopback limits they are read against.

pub mod convergence;
pub mod throughput;
