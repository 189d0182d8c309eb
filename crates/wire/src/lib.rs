//! The one place untrusted request bodies are decoded.
//!
//! kafka-protocol 0.18 (the newest release) sizes allocations from lengths a client sends
//! before reading the elements (`Vec::with_capacity(n)` for arrays, `vec![0; n]` for strings and
//! bytes decoded into owned buffers), so a 14-byte frame claiming 2^31 elements asks for
//! hundreds of GiB and the process aborts. [`decode`] first walks the body with the schema in
//! [`requests`] (the shapes of Kafka's message JSON specs, at the versions Shoal advertises)
//! and refuses it if any length exceeds the bytes remaining in the frame (Kafka's own rule),
//! then hands it to kafka-protocol. No allocation on the request path is then sized from an
//! unchecked length, without any process-wide allocator. The walk allocates nothing and reads
//! each byte once; its cost against the decode itself is in docs/benchmarks.md.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod gen;
pub mod requests;
pub mod schema;
pub mod walk;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};

pub use walk::BoundsError;

/// Why a request body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// No schema for this API key and version: Shoal does not advertise it.
    Unsupported { api_key: i16, version: i16 },
    /// The bounds walk refused the body.
    Bounds(BoundsError),
    /// kafka-protocol refused the body (its message).
    Malformed(String),
    /// kafka-protocol panicked on the body.
    Panicked,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported { api_key, version } => {
                write!(f, "api key {api_key} v{version} is not supported")
            }
            Self::Bounds(e) => write!(f, "{e}"),
            Self::Malformed(e) => write!(f, "{e}"),
            Self::Panicked => write!(f, "the decoder panicked"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The schema of request `api_key` at `version`, if Shoal advertises that version.
pub fn schema(api_key: i16, version: i16) -> Option<&'static schema::Request> {
    requests::ALL
        .iter()
        .flat_map(|group| group.iter())
        .copied()
        .find(|r| r.api_key == api_key && (r.min..=r.max).contains(&version))
}

/// Walks `body` (a request body, after the request header) as request `api_key` at `version`.
///
/// Errors: [`DecodeError::Unsupported`] without a schema, [`DecodeError::Bounds`] when a
/// length exceeds the bytes remaining.
pub fn check(api_key: i16, version: i16, body: &[u8]) -> Result<(), DecodeError> {
    let req = schema(api_key, version).ok_or(DecodeError::Unsupported { api_key, version })?;
    walk::check(req, version, body).map_err(DecodeError::Bounds)
}

/// Checks then decodes request `api_key` at `version` from `body` (consumed as decoded).
///
/// Errors: as [`check`], then [`DecodeError::Malformed`] with kafka-protocol's message, or
/// [`DecodeError::Panicked`] if it panicked (caught; nothing else is affected).
pub fn decode(api_key: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind, DecodeError> {
    check(api_key as i16, version, body)?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        RequestKind::decode(api_key, body, version)
    }));
    match result {
        Ok(Ok(req)) => Ok(req),
        Ok(Err(e)) => Err(DecodeError::Malformed(e.to_string())),
        Err(_) => Err(DecodeError::Panicked),
    }
}

/// Every (API key, version) with a schema, in table order.
pub fn versions() -> impl Iterator<Item = (i16, i16)> {
    requests::ALL
        .iter()
        .flat_map(|group| group.iter())
        .flat_map(|r| (r.min..=r.max).map(move |v| (r.api_key, v)))
}

/// One fuzz input: bytes 0-1 are the API key and 2-3 the version (big-endian, as in a request
/// header), the rest is the body. A pair Shoal does not advertise is mapped onto one that it
/// does (the four bytes as an index into [`versions`]), so no input is wasted; a corpus file is
/// a captured request with its header's correlation id, client id and tagged fields removed.
/// Returns whether the body decoded. Never panics or aborts, whatever `data` is.
pub fn fuzz_one(data: &[u8]) -> bool {
    let Some((&[a, b, c, d], body)) = data.split_first_chunk::<4>() else {
        return false;
    };
    let key = i16::from_be_bytes([a, b]);
    let version = i16::from_be_bytes([c, d]);
    let (key, version) = if schema(key, version).is_some() {
        (key, version)
    } else {
        let all: Vec<(i16, i16)> = versions().collect();
        let pick = u32::from_be_bytes([a, b, c, d]) as usize;
        match all.get(pick % all.len().max(1)) {
            Some(&pair) => pair,
            None => return false,
        }
    };
    let Ok(api) = ApiKey::try_from(key) else {
        return false;
    };
    decode(api, version, &mut Bytes::copy_from_slice(body)).is_ok()
}
