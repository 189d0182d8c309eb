//! Admin API routes for the cluster and topics, and the console's history routes:
//! - `GET /api/v1/cluster`: `{cluster_id, node_id, kafka_addr, version, topics, groups}`;
//! - `GET /api/v1/topics`: `[{name, topic_id, internal, partitions, records}]` (`records`:
//!   the sum of log end minus log start offsets);
//! - `GET /api/v1/topics/{topic}`: `{name, topic_id, internal, configs, partitions:
//!   [{partition, log_start_offset, log_end_offset}]}`; 404 UNKNOWN_TOPIC_OR_PARTITION;
//! - `GET /api/v1/topics/{topic}/messages?partition=P&offset=O&limit=N`: up to N (default
//!   50, at most 500) records of partition P from offset O (default: the last N), decoded:
//!   `[{partition, offset, timestamp, key, value, headers}]`, keys and values as UTF-8 (lossy);
//!   400 for a missing partition;
//! - `GET /api/v1/groups/{group}/lag/history`: `[{ts_ms, total_lag, max_lag_seconds}]`, the
//!   last hour ([`crate::history`]);
//! - `GET /api/v1/rebalances?group=G`: completed rebalances, newest first:
//!   `[{group_id, protocol, started_ms, ended_ms, duration_ms}]`.
//! - `GET /api/v1/topics/{topic}/throughput`: the last hour: `{samples: [{ts_ms,
//!   records_in_per_sec, bytes_in_per_sec, records_out_per_sec, bytes_out_per_sec}],
//!   compression: {batches, stored_bytes, uncompressed_bytes, ratio, last_ratio}}` (`ratio`
//!   is stored over uncompressed bytes of the batches sampled, `null` before any; see
//!   [`crate::history`]);
//! - `GET /api/v1/groups/{group}/throughput`: the last hour: `[{ts_ms, records_per_sec,
//!   bytes_per_sec}]` (records the group finished per second; bytes estimated).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::Broker;

fn not_found(what: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "UNKNOWN_TOPIC_OR_PARTITION", "message": what})),
    )
        .into_response()
}

pub(super) async fn cluster(State(broker): State<Arc<Broker>>) -> Response {
    let topics = broker.topics.list().iter().filter(|t| !t.internal).count();
    let groups = broker.groups.list().await.map(|g| g.len()).unwrap_or(0);
    Json(json!({
        "cluster_id": broker.config.cluster_id,
        "node_id": broker.config.node_id,
        "kafka_addr": broker.config.kafka_addr.to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "topics": topics,
        "groups": groups,
    }))
    .into_response()
}

pub(super) async fn topics(State(broker): State<Arc<Broker>>) -> Response {
    let mut list: Vec<serde_json::Value> = broker
        .topics
        .list()
        .iter()
        .map(|t| {
            let records: i64 = t
                .partitions
                .iter()
                .map(|p| {
                    let log = p.log();
                    log.log_end_offset() - log.log_start_offset()
                })
                .sum();
            json!({
                "name": t.name,
                "topic_id": t.id.to_string(),
                "internal": t.internal,
                "partitions": t.partitions.len(),
                "records": records,
            })
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(list).into_response()
}

pub(super) async fn topic(State(broker): State<Arc<Broker>>, Path(name): Path<String>) -> Response {
    let Some(t) = broker.topics.list().into_iter().find(|t| t.name == name) else {
        return not_found(format!("no topic {name}"));
    };
    let partitions: Vec<serde_json::Value> = t
        .partitions
        .iter()
        .map(|p| {
            let log = p.log();
            json!({
                "partition": p.index,
                "log_start_offset": log.log_start_offset(),
                "log_end_offset": log.log_end_offset(),
            })
        })
        .collect();
    Json(json!({
        "name": t.name,
        "topic_id": t.id.to_string(),
        "internal": t.internal,
        "configs": t.configs,
        "partitions": partitions,
    }))
    .into_response()
}

fn text(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).to_string())
}

pub(super) async fn messages(
    State(broker): State<Arc<Broker>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(partition) = q.get("partition").and_then(|p| p.parse::<i32>().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "INVALID_REQUEST", "message": "give ?partition=N"})),
        )
            .into_response();
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(50)
        .clamp(1, 500);
    let Some(p) = broker.topics.partition(&name, partition) else {
        return not_found(format!("no partition {name}-{partition}"));
    };
    let (start, end) = {
        let log = p.log();
        (log.log_start_offset(), log.log_end_offset())
    };
    let mut offset = q
        .get("offset")
        .and_then(|o| o.parse::<i64>().ok())
        .unwrap_or(end - limit)
        .clamp(start, end);
    let mut out: Vec<serde_json::Value> = Vec::new();
    while (out.len() as i64) < limit && offset < end {
        let read = match p.log().read(offset, 1 << 20) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic = %name, partition, error = %e, "console read failed");
                break;
            }
        };
        if read.records.is_empty() {
            break;
        }
        let mut buf = read.records.clone();
        let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(topic = %name, partition, error = %e, "cannot decode stored batches");
                break;
            }
        };
        let mut last = offset;
        for r in set.records {
            last = last.max(r.offset);
            if r.offset < offset || (out.len() as i64) >= limit {
                continue;
            }
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(text(v))))
                .collect();
            out.push(json!({
                "partition": partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": text(&r.key),
                "value": text(&r.value),
                "headers": headers,
            }));
        }
        offset = last + 1; // always moves forward: `last` starts at `offset`
    }
    Json(out).into_response()
}

pub(super) async fn lag_history(
    State(broker): State<Arc<Broker>>,
    Path(group): Path<String>,
) -> Response {
    Json(broker.history.lag(&group)).into_response()
}

pub(super) async fn rebalances(
    State(broker): State<Arc<Broker>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    Json(
        broker
            .history
            .rebalances(q.get("group").map(String::as_str)),
    )
    .into_response()
}

pub(super) async fn topic_throughput(
    State(broker): State<Arc<Broker>>,
    Path(name): Path<String>,
) -> Response {
    if broker.topics.get(&name).is_none() {
        return not_found(format!("no topic {name}"));
    }
    Json(json!({
        "samples": broker.history.topic_rates(&name),
        "compression": broker.history.compression(&name),
    }))
    .into_response()
}

pub(super) async fn group_throughput(
    State(broker): State<Arc<Broker>>,
    Path(group): Path<String>,
) -> Response {
    Json(broker.history.group_rates(&group)).into_response()
}
