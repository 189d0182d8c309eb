//! Shoal's consumer-group core, sans-IO: no sockets, no clock, no files. Callers pass `now_ms`
//! and get back replies, `__consumer_offsets` records and timers ([`classic::Output`]).
//!
//! - [`classic`]: the classic JoinGroup/SyncGroup protocol state machine and offsets.
//! - [`records`]: the `__consumer_offsets` record layout (Kafka's), and replay input.
//! - [`consumer`]: KIP-848 consumer groups (ConsumerGroupHeartbeat), reconciled by the broker.
//! - [`assignor`]: the broker-side assignors `uniform` and `range`.
//! - [`consumer_protocol`]: reading a consumer Subscription's topics.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod consumer_protocol;
mod error;
pub mod records;

pub use classic::{
    ClassicCoordinator, CoordinatorConfig, GroupState, Output, RebalanceEvent, Reply, RequestId,
    TimerKey,
};
pub use error::{code_of, GroupError};
pub use records::{OffsetAndMetadata, Record};
