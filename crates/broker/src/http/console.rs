//! The web console: one self-contained HTML page (no CDN, no build step), served at `/` and
//! `/console`. It reads the admin API: groups with their state, members, a partition-ownership
//! map, lag per partition in records and seconds with a chart over the last hour, throughput
//! (records/s, bytes/s) over the hour, and the rebalance timeline; share groups (KIP-932)
//! with their members and each share-partition's in-flight window `[SPSO, SPEO)` and records
//! by state, the delivery-count histogram of accepted records and archived records by reason;
//! topics with their partitions, throughput in and out over the hour, the compression ratio
//! (stored / uncompressed bytes) and a message browser.

use axum::http::header;
use axum::response::IntoResponse;

/// The page (crates/broker/src/http/console.html, compiled in).
const PAGE: &str = include_str!("console.html");

pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
