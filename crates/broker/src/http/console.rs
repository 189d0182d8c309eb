//! The web console: one self-contained HTML page (no CDN, no build step), served at `/` and
//! `/console`. It reads the admin API: groups with their state, members, a partition-ownership
//! map, lag per partition in records and seconds with a chart over the last hour, and the
//! rebalance timeline; topics with their partitions and a message browser.

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
