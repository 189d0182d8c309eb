//! The admin HTTP API on `--http-addr` (JSON). Routes:
//! - `GET /api/v1/groups`: every group with its type (`classic`/`consumer`), protocol type
//!   and state.
//! - `GET /api/v1/groups/{group_id}/lag`: the group's lag per partition ([`crate::lag`]) with
//!   totals: `{group_id, total_lag, max_lag_seconds, partitions: [...]}`.
//!
//! Errors are JSON `{error, message}` with HTTP 503 when the coordinator is unavailable.
//! docs/operations.md documents the shapes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::lag::{group_lag, PartitionLag};

#[derive(Serialize)]
struct GroupRow {
    group_id: String,
    group_type: &'static str,
    protocol_type: String,
    state: &'static str,
}

#[derive(Serialize)]
struct GroupLag {
    group_id: String,
    total_lag: i64,
    max_lag_seconds: f64,
    partitions: Vec<PartitionLag>,
}

fn unavailable(e: shoal_group::GroupError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "COORDINATOR_NOT_AVAILABLE", "message": e.to_string()})),
    )
        .into_response()
}

async fn groups(State(broker): State<Arc<Broker>>) -> Response {
    match broker.groups.list().await {
        Ok(list) => Json(
            list.into_iter()
                .map(|g| GroupRow {
                    group_id: g.group_id,
                    group_type: g.group_type,
                    protocol_type: g.protocol_type,
                    state: g.state,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn lag(State(broker): State<Arc<Broker>>, Path(group_id): Path<String>) -> Response {
    match group_lag(&broker, &group_id, now_ms()).await {
        Ok(partitions) => Json(GroupLag {
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            max_lag_seconds: partitions.iter().map(|p| p.lag_seconds).fold(0.0, f64::max),
            group_id,
            partitions,
        })
        .into_response(),
        Err(e) => unavailable(e),
    }
}

/// The router (exposed for tests).
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{group_id}/lag", get(lag))
        .with_state(broker)
}

/// Serves the admin API on `listener` until `shutdown` turns true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(broker);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "admin HTTP server failed");
    }
}
