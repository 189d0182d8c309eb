//! Shoal's storage engine: a partition is a directory of segment files holding Kafka record
//! batches (magic 2) byte for byte as produced, with a sparse offset index per segment.
//!
//! - [`batch`]: header parsing, validation (CRC-32C) and the in-place patch of `base_offset`.
//! - [`partition_log`]: the [`PartitionLog`] trait and the embedded [`LocalLog`].
//! - [`producer_state`]: idempotent-producer sequence checks (KIP-98).
//! - [`txn`]: open transactions, the last stable offset and aborted transactions (KIP-98).
//! - [`compaction`]: `cleanup.policy=compact` (latest record per key, tombstones expire).
//! - `testkit` (cargo feature `testkit`, for tests and benchmarks only): record batches built
//!   through `kafka-protocol`'s encoder, and header-only batches for framing tests.
//!
//! This crate is synchronous (no async runtime; `kafka-protocol` decodes records for compaction only); durability (fsync) is driven by the caller through
//! [`PartitionLog::sync_target`] / [`PartitionLog::sync_done`] so one fsync can cover many
//! appends (group commit).
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod batch;
pub mod compaction;
mod error;
pub mod partition_log;
pub mod producer_state;
mod segment;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod txn;

pub use compaction::CompactionStats;
pub use error::{BatchError, LogError};
pub use partition_log::{
    AppendInfo, FileSlice, LocalLog, LogConfig, PartitionLog, ReadPlan, ReadResult, Records,
    SyncTarget, MAX_SEGMENT_BYTES,
};
pub use txn::{AbortedTxn, ControlType};
