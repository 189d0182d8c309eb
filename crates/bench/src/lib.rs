//! Shoal's benchmark harness: clients over the Kafka protocol (librdkafka through `rdkafka`,
//! and one lean producer of its own),
//! so every benchmark runs against any Kafka-compatible broker.
//!
//! - [`convergence`]: time from N members subscribing until every partition is owned by exactly
//!   one member and consumed by it, for the classic and the consumer (KIP-848) protocols.
//! - [`throughput`]: produce/consume throughput and latency percentiles, end-to-end latency,
//!   and the disk and loopback limits they are read against.
//! - [`native`]: a lean Kafka-protocol producer (no client library) for the broker's own
//!   produce capacity when client and broker share a small machine.
//! - [`amqp`]: AMQP 0-9-1 queue throughput (publisher confirms, manual acks, prefetch) and
//!   publish-to-deliver latency, against Shoal or RabbitMQ.
//! - [`share`]: share-group (KIP-932) consumer throughput with per-record acknowledgements,
//!   next to the consumer-group throughput of the same records (lean native clients).
//! - [`txn`]: transactional produce throughput next to idempotent produce (librdkafka).

pub mod amqp;
pub mod convergence;
pub mod native;
pub mod share;
pub mod throughput;
pub mod txn;

/// Runs `f` to completion on a fresh current-thread tokio runtime (rdkafka's admin calls are
/// async; the benchmarks are not).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    use anyhow::Context;
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(f))
}
