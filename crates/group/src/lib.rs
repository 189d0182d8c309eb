//! Shoal's consumer-group core, sans-IO: no sockets, no clock, no files. Callers pass `now_ms`
//! and get back replies, `__consumer_offsets` records, timers and events ([`Output`]).
//!
//! Layout, after Kafka's group-coordinator module:
//! - [`coordinator`]: [`GroupCoordinator`], which dispatches every request and owns the one
//!   `replay` (Kafka's `GroupMetadataManager`).
//! - [`classic`]: classic groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), Kafka's
//!   `ClassicGroup`.
//! - [`consumer`]: KIP-848 consumer groups, Kafka's `ConsumerGroup` and
//!   `CurrentAssignmentBuilder`.
//! - `offsets`: committed offsets (Kafka's `OffsetMetadataManager`).
//! - `migration`: online conversion between the two protocols.
//! - [`assignor`]: the broker-side assignors `uniform` and `range`.
//! - [`records`]: the `__consumer_offsets` record layout (Kafka's), and replay input.
//! - [`api`]: the requests and responses; [`state`]: group and member states; [`types`]:
//!   what calls return; [`config`]: settings.
//! - [`share`]: KIP-932 share groups and share-partition state.
//! - [`consumer_protocol`]: reading a consumer Subscription's topics.
//!
//! Imports run one way: `coordinator` -> `migration` -> `classic`, `consumer`, `offsets` ->
//! `api`, `types`, `state`, `config`, `records`, `assignor`; `classic` and `consumer` never
//! import each other.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod api;
pub mod assignor;
pub mod classic;
pub mod config;
pub mod consumer;
pub mod consumer_protocol;
pub mod coordinator;
mod error;
mod migration;
mod offsets;
pub mod records;
pub mod share;
pub mod state;
pub mod types;

pub use config::CoordinatorConfig;
pub use coordinator::{GroupCoordinator, PersistedState};
pub use error::{code_of, GroupError};
pub use offsets::OffsetList;
pub use records::{OffsetAndMetadata, Record};
pub use state::GroupState;
pub use types::{
    GroupEvent, Output, RebalanceEvent, RemovalReason, Reply, RequestId, ShareArchived, TimerKey,
};
