//! The broker's start-up and internal-log errors ([`BrokerError`]). Request-level failures
//! are Kafka error codes in the responses (mapped in the handlers); these are the ones that
//! stop the broker from starting or a coordinator from loading.

use std::net::SocketAddr;
use std::path::PathBuf;

use shoal_log::LogError;

use crate::internal_log::InternalLogError;
use crate::topics::TopicError;

/// Why the broker cannot start, or an internal log cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The data directory (topics, `__shoal_metadata`) cannot be opened or recovered.
    #[error("cannot open the data directory {dir}: {source}")]
    DataDir { dir: PathBuf, source: TopicError },
    /// A setting is out of range or inconsistent with another.
    #[error("{0}")]
    Config(String),
    /// A listener address cannot be bound (`flag` names the option that set it).
    #[error("cannot listen on {addr} ({flag}): {source}")]
    Bind {
        addr: SocketAddr,
        flag: &'static str,
        source: std::io::Error,
    },
    /// An internal log (`__consumer_offsets`, `__shoal_metadata`) holds a batch that does not
    /// decode, or records could not be encoded.
    #[error(transparent)]
    InternalLog(#[from] InternalLogError),
    /// Storage failed while reading an internal log.
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
