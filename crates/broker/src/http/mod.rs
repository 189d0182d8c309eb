//! The admin HTTP API on `--http-addr` (JSON), the web console (`/`, [`console`]) and
//! Prometheus metrics. Routes (more in [`topics`] and [`share`]):
//! - `GET /api/v1/groups`: every group with its type (`classic`/`consumer`/`share`),
//!   protocol type and state.
//! - `GET /api/v1/groups/{group_id}`: the group's members and assignments. Consumer-protocol
//!   groups (KIP-848): `{group_id, group_type: "consumer", state, group_epoch,
//!   assignment_epoch, assignor, members: [{member_id, instance_id, client_id, client_host,
//!   member_epoch, member_state, subscribed_topics, subscribed_topic_regex, assignment,
//!   target_assignment}]}`; classic groups: `{group_id, group_type: "classic", state,
//!   protocol_type, protocol, generation_id, members: [{member_id, instance_id, client_id,
//!   client_host, assignment}]}`; share groups: see [`share`]. Assignments are
//!   `[{topic, partitions}]`. 404 with `GROUP_ID_NOT_FOUND` for an unknown group.
//! - `GET /api/v1/groups/{group_id}/lag`: the group's lag per partition ([`crate::lag`]) with
//!   totals: `{group_id, total_lag, max_lag_seconds, partitions: [...]}` (a share group's
//!   `current_offset` is its SPSO, its lag Kafka's share lag).
//!
//! - `GET /metrics`: Prometheus metrics in the OpenMetrics text format ([`crate::metrics`]).
//!
//! Extension seam: a front end built on the broker (the AMQP front end, which this crate
//! must not depend on) implements [`Extension`] and sets it once on
//! [`Broker::http_extension`] from `run_with`'s `on_start`; the router then merges its
//! routes (`/api/v1/queues`, `/api/v1/exchanges`) and `GET /metrics` appends its metric
//! families before the closing `# EOF`, so one page stays one valid OpenMetrics exposition.
//!
//! Access ([`require_token`]): when security is on (an authorizer, or a Kafka listener other
//! than PLAINTEXT), every route needs `Authorization: Bearer <http.auth.token>` (or HTTP Basic
//! with the token as the password, so a browser can open the console), unless the port
//! verifies a client certificate on every connection (`HTTP:SSL`, `ssl.client.auth=required`).
//! Otherwise the answer is 401 `{error: "UNAUTHORIZED"}` with `WWW-Authenticate`.
//!
//! Errors are JSON `{error, message}` with HTTP 503 when the coordinator is unavailable.
//! docs/operations.md documents the shapes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod console;
mod share;
mod topics;

use crate::clock::now_ms;
use crate::lag::PartitionLag;
use crate::state::Broker;

/// A boxed future (what [`Extension::metrics`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Routes and metrics another front end serves on the admin HTTP port (see the module docs).
pub trait Extension: Send + Sync + std::fmt::Debug {
    /// Routes merged into the admin router, their state already applied. Their paths must
    /// not be the broker's own (axum panics on a clash when the router is built).
    fn routes(&self) -> Router;

    /// Metric families in the OpenMetrics text format, each line ending in `\n`, without
    /// the closing `# EOF`; appended to `GET /metrics` at every scrape. Names must not clash
    /// with the broker's (`shoal_*`, `kafka_*`).
    fn metrics(&self) -> BoxFuture<'_, String>;
}

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

#[derive(Serialize)]
struct TopicAssignment {
    topic: String,
    partitions: Vec<i32>,
}

fn by_topic(
    tps: &shoal_group::assignor::TopicPartitions,
    names: &std::collections::BTreeMap<uuid::Uuid, String>,
) -> Vec<TopicAssignment> {
    tps.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| TopicAssignment {
            topic: names.get(id).cloned().unwrap_or_else(|| id.to_string()),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

async fn group(State(broker): State<Arc<Broker>>, Path(group_id): Path<String>) -> Response {
    use serde_json::json;
    match broker.groups.consumer_describe(group_id.clone()).await {
        Ok(d) => {
            let members: Vec<serde_json::Value> = d
                .members
                .iter()
                .map(|m| {
                    json!({
                        "member_id": m.member_id,
                        "instance_id": m.instance_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "member_epoch": m.member_epoch,
                        "member_state": m.state.as_str(),
                        "subscribed_topics": m.subscribed_topic_names,
                        "subscribed_topic_regex": m.subscribed_topic_regex,
                        "assignment": by_topic(&m.assignment, &d.topic_names),
                        "target_assignment": by_topic(&m.target_assignment, &d.topic_names),
                    })
                })
                .collect();
            return Json(json!({
                "group_id": d.group_id,
                "group_type": "consumer",
                "state": d.state.as_str(),
                "group_epoch": d.group_epoch,
                "assignment_epoch": d.assignment_epoch,
                "assignor": d.assignor_name,
                "members": members,
            }))
            .into_response();
        }
        Err(shoal_group::GroupError::CoordinatorNotAvailable) => {
            return unavailable(shoal_group::GroupError::CoordinatorNotAvailable)
        }
        Err(_) => {}
    }
    match broker.groups.share_describe(group_id.clone()).await {
        Ok(Ok(d)) => return Json(share::describe(&broker, &d)).into_response(),
        Ok(Err(_)) => {}
        Err(e) => return unavailable(e),
    }
    match broker.groups.describe(group_id.clone()).await {
        Ok(d) if d.state != shoal_group::GroupState::Dead => {
            let members: Vec<serde_json::Value> = d
                .members
                .iter()
                .map(|m| {
                    let assignment: Vec<TopicAssignment> = if d.protocol_type == "consumer" {
                        shoal_group::consumer_protocol::assigned_partitions(&m.assignment)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(topic, partitions)| TopicAssignment { topic, partitions })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    json!({
                        "member_id": m.member_id,
                        "instance_id": m.group_instance_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "assignment": assignment,
                    })
                })
                .collect();
            Json(json!({
                "group_id": d.group_id,
                "group_type": "classic",
                "state": d.state.as_str(),
                "protocol_type": d.protocol_type,
                "protocol": d.protocol_name,
                "generation_id": d.generation_id,
                "members": members,
            }))
            .into_response()
        }
        Err(shoal_group::GroupError::CoordinatorNotAvailable) => {
            unavailable(shoal_group::GroupError::CoordinatorNotAvailable)
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "GROUP_ID_NOT_FOUND", "message": format!("no group {group_id}")})),
        )
            .into_response(),
    }
}

async fn lag(State(broker): State<Arc<Broker>>, Path(group_id): Path<String>) -> Response {
    match broker.lag().group_lag(&group_id, now_ms()).await {
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

async fn metrics(State(broker): State<Arc<Broker>>) -> Response {
    let scrape = broker.lag().scrape(now_ms()).await;
    let mut body = broker.metrics.render(&scrape);
    if let Some(ext) = broker.http_extension.get() {
        let extra = ext.metrics().await;
        if !extra.is_empty() {
            // One exposition: the extension's families go before the closing `# EOF`.
            let end = body.rfind("# EOF").unwrap_or(body.len());
            body.truncate(end);
            body.push_str(&extra);
            if !extra.ends_with('\n') {
                body.push('\n');
            }
            body.push_str("# EOF\n");
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The router (exposed for tests), with the routes of [`Broker::http_extension`] if one is
/// set.
pub fn router(broker: Arc<Broker>) -> Router {
    let extension = broker.http_extension.get().map(|e| e.routes());
    let app = Router::new()
        .route("/", get(console::page))
        .route("/console", get(console::page))
        .route("/metrics", get(metrics))
        .route("/api/v1/cluster", get(topics::cluster))
        .route("/api/v1/topics", get(topics::topics))
        .route("/api/v1/topics/{topic}", get(topics::topic))
        .route("/api/v1/topics/{topic}/messages", get(topics::messages))
        .route(
            "/api/v1/groups/{group_id}/lag/history",
            get(topics::lag_history),
        )
        .route(
            "/api/v1/groups/{group_id}/throughput",
            get(topics::group_throughput),
        )
        .route(
            "/api/v1/topics/{topic}/throughput",
            get(topics::topic_throughput),
        )
        .route("/api/v1/share-groups", get(share::share_groups))
        .route("/api/v1/rebalances", get(topics::rebalances))
        .route("/api/v1/groups", get(groups))
        .route("/api/v1/groups/{group_id}", get(group))
        .route("/api/v1/groups/{group_id}/lag", get(lag))
        .with_state(Arc::clone(&broker));
    let app = match extension {
        Some(routes) => app.merge(routes),
        None => app,
    };
    let config = &broker.config;
    if !config.security_on() || config.http_requires_client_certificates() {
        return app;
    }
    if config.http_auth_token.is_empty() {
        tracing::warn!("security is on and http.auth.token is not set: the admin HTTP API refuses every request (set it, or require client certificates on the HTTP port)");
    }
    let token: Arc<str> = Arc::from(config.http_auth_token.as_str());
    app.layer(axum::middleware::from_fn(move |req, next| {
        require_token(Arc::clone(&token), req, next)
    }))
}

/// Answers 401 unless the request carries `token` as a bearer token or as the password of
/// HTTP Basic credentials; an empty `token` refuses everything. Compared in constant time.
pub async fn require_token(
    token: Arc<str>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use base64::Engine;
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            if let Some(t) = v.strip_prefix("Bearer ") {
                return Some(t.trim().as_bytes().to_vec());
            }
            let basic = base64::engine::general_purpose::STANDARD
                .decode(v.strip_prefix("Basic ")?.trim())
                .ok()?;
            let at = basic.iter().position(|&b| b == b':')?;
            basic.get(at + 1..).map(<[u8]>::to_vec)
        });
    let ok = !token.is_empty()
        && given.is_some_and(|g| {
            g.len() == token.len()
                && g.iter()
                    .zip(token.as_bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
    if ok {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer realm=\"shoal\", Basic realm=\"shoal\"")],
        Json(serde_json::json!({
            "error": "UNAUTHORIZED",
            "message": "the admin API needs Authorization: Bearer <http.auth.token> (or client certificates) while security is on",
        })),
    )
        .into_response()
}

/// Serves the admin API on `listener` until `shutdown` turns true; over TLS when `tls` is
/// set (`listener.security.protocol.map` maps `HTTP` to SSL), each handshake bounded by
/// [`HTTP_TLS_HANDSHAKE_TIMEOUT`] and run beside the others, so a slow client delays no one.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    tls: Option<crate::server::tls::TlsListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(Arc::clone(&broker));
    let mut stop_rx = shutdown.clone();
    let stop = async move {
        while !*stop_rx.borrow() {
            if stop_rx.changed().await.is_err() {
                break;
            }
        }
    };
    let served = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(tls) => {
            let addr = match listener.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "admin HTTP listener has no address");
                    return;
                }
            };
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, peer)) = accepted else {
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                continue;
                            };
                            let (tls, tx, metrics) = (tls.clone(), tx.clone(), Arc::clone(&broker.metrics));
                            tokio::spawn(async move {
                                match tls.handshake(stream, HTTP_TLS_HANDSHAKE_TIMEOUT).await {
                                    Ok((stream, _principal)) => {
                                        let _ = tx.send((stream, peer)).await;
                                    }
                                    Err(e) => {
                                        tracing::info!(%peer, error = %e, "admin HTTP TLS connection refused");
                                        if e.is_failure() {
                                            metrics.failed_authentication();
                                        }
                                    }
                                }
                            });
                        }
                        _ = shutdown.changed() => {
                            if *shutdown.borrow() {
                                return;
                            }
                        }
                    }
                }
            });
            axum::serve(TlsIncoming { rx, addr }, app)
                .with_graceful_shutdown(stop)
                .await
        }
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "admin HTTP server failed");
    }
}

/// Longest TLS handshake on the admin HTTP port (ms).
pub const HTTP_TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// TLS connections whose handshake is done, as axum's listener.
struct TlsIncoming {
    rx: tokio::sync::mpsc::Receiver<(crate::server::tls::TlsStream, std::net::SocketAddr)>,
    addr: std::net::SocketAddr,
}

impl axum::serve::Listener for TlsIncoming {
    type Io = crate::server::tls::TlsStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
