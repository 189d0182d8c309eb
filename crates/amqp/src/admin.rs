//! The AMQP front end's operator surface on the broker's admin HTTP port: queues and
//! exchanges as JSON in RabbitMQ management's shapes, and queue metrics under the names of
//! RabbitMQ's `rabbitmq_prometheus` plugin.
//!
//! Seam: the broker crate does not know this crate. [`register`] (called by the binary from
//! `shoal_broker::run_with`'s `on_start`) sets an [`AdminApi`] as the broker's
//! `http_extension` (`shoal_broker::http::Extension`): the admin router merges
//! [`AdminApi::routes`] and `GET /metrics` appends [`AdminApi::metrics`] before its `# EOF`.
//! The extension holds the front end weakly, so the broker does not keep it alive.
//!
//! Routes (one vhost, `/`; names are one path segment, percent-encoded):
//! - `GET /api/v1/queues`: every queue, sorted by name, each as below;
//! - `GET /api/v1/queues/{name}`: `{name, vhost, type: "classic", state: "running", durable,
//!   auto_delete, exclusive, arguments, messages_ready, messages_unacknowledged, messages,
//!   consumers, topic, share_group, bindings: [{source, routing_key, arguments}],
//!   message_stats: {publish, publish_details: {rate}, deliver_get, deliver_get_details:
//!   {rate}, ack, ack_details: {rate}}}`. `arguments` are the declare arguments as JSON;
//!   `messages` = ready + unacknowledged; `topic` is the Kafka topic that stores the queue
//!   and `share_group` the share group that consumes it; `bindings` start with the default
//!   exchange's implicit one (`source: ""`, as RabbitMQ lists it); counts in `message_stats`
//!   are messages since the broker started, rates messages per second over the last 5 s
//!   ([`crate::stats`]);
//! - `PUT /api/v1/queues/{name}` with an optional JSON body `{durable (default true),
//!   auto_delete (default false), arguments (default {})}`: declares the queue as
//!   `queue.declare` would. 201 when created, 204 when an equivalent queue exists;
//! - `DELETE /api/v1/queues/{name}/contents`: purges (drops every ready message; deliveries
//!   not yet acknowledged stay), 200 `{queue, message_count}`;
//! - `DELETE /api/v1/queues/{name}[?if-unused=true][&if-empty=true]`: deletes the queue, its
//!   bindings, its topic and its share group; its consumers get `basic.cancel`. 200
//!   `{queue, message_count}` (the ready messages it held);
//! - `GET /api/v1/exchanges`: every exchange, sorted by name: `{name, vhost, type, durable,
//!   auto_delete, internal, arguments, bindings: [{destination, destination_type,
//!   routing_key, arguments}]}` (the default exchange is the one named `""`).
//!
//! Errors are JSON `{error, message}` with the AMQP reply code's name as `error`: 404
//! NOT_FOUND, 403 ACCESS_REFUSED (`amq.` names), 409 RESOURCE_LOCKED, 400
//! PRECONDITION_FAILED (inequivalent or invalid arguments, `if-unused`/`if-empty` unmet,
//! a body that is not JSON), 500 INTERNAL_ERROR, 503 when the front end has shut down.
//!
//! Metrics (labels `vhost="/"`, `queue`), computed at each scrape:
//! `rabbitmq_queue_messages_ready`, `rabbitmq_queue_messages_unacked`,
//! `rabbitmq_queue_messages`, `rabbitmq_queue_consumers`, and the counters
//! `rabbitmq_queue_messages_published_total`, `rabbitmq_queue_messages_delivered_total`,
//! `rabbitmq_queue_messages_acked_total`; without labels: `rabbitmq_queues`,
//! `rabbitmq_consumers`, `rabbitmq_connections` (open AMQP connections).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Map, Value};
use shoal_broker::http::{BoxFuture, Extension};
use tokio::sync::oneshot;

use crate::error::{AmqpError, AmqpResult};
use crate::model::{self, Queue};
use crate::queues;
use crate::session::{self, Outcome, SessionOp, Settle};
use crate::Amqp;

/// The extension the broker's HTTP server calls (see the module docs).
#[derive(Debug)]
pub struct AdminApi(Weak<Amqp>);

/// Registers `amqp`'s routes and metrics on its broker's admin HTTP port. Call it before the
/// HTTP server starts (in `run_with`'s `on_start`). Returns false (and changes nothing) if
/// the broker already has an extension.
pub fn register(amqp: &Arc<Amqp>) -> bool {
    let ext: Arc<dyn Extension> = Arc::new(AdminApi(Arc::downgrade(amqp)));
    let ok = amqp.broker.http_extension.set(ext).is_ok();
    if !ok {
        tracing::warn!("the broker already has an HTTP extension; AMQP admin routes not added");
    }
    ok
}

impl Extension for AdminApi {
    fn routes(&self) -> Router {
        Router::new()
            .route("/api/v1/queues", get(list_queues))
            .route(
                "/api/v1/queues/{name}",
                get(get_queue).put(put_queue).delete(delete_queue),
            )
            .route(
                "/api/v1/queues/{name}/contents",
                axum::routing::delete(purge_queue),
            )
            .route("/api/v1/exchanges", get(list_exchanges))
            .with_state(self.0.clone())
    }

    fn metrics(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            match self.0.upgrade() {
                Some(amqp) => render_metrics(&amqp).await,
                None => String::new(),
            }
        })
    }
}

type Shared = State<Weak<Amqp>>;

/// The answer when the front end is gone (the broker is shutting down).
fn gone() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "UNAVAILABLE", "message": "the AMQP front end has stopped"})),
    )
        .into_response()
}

/// The HTTP answer for an AMQP error (see the module docs).
fn error_response(e: &AmqpError) -> Response {
    let status = match e.code {
        404 => StatusCode::NOT_FOUND,
        403 => StatusCode::FORBIDDEN,
        405 => StatusCode::CONFLICT,
        541 => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let name = e.text.split(" - ").next().unwrap_or("ERROR");
    (status, Json(json!({"error": name, "message": e.text}))).into_response()
}

/// An AMQP field value as JSON (numbers, strings, booleans, arrays, objects; `Void` is
/// null; byte arrays are read as UTF-8, lossily).
pub fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::Float(f) => json!(f64::from(*f)),
        AMQPValue::Double(f) => json!(*f),
        AMQPValue::DecimalValue(d) => {
            json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => {
            Value::String(model::as_string(v).unwrap_or_default())
        }
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
        other => model::as_i64(other).map_or(Value::Null, |i| json!(i)),
    }
}

/// An AMQP field table as a JSON object.
pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), value_to_json(v)))
            .collect(),
    )
}

/// A JSON value as the AMQP field value pika would send for it: integers as 32-bit `I`
/// when they fit, else 64-bit `l`; other numbers as doubles; strings as long strings;
/// arrays and objects as field arrays and tables. Errors: 406 PRECONDITION_FAILED for a
/// table key longer than 255 bytes.
pub fn json_to_value(v: &Value) -> AmqpResult<AMQPValue> {
    Ok(match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(small) => AMQPValue::LongInt(small),
                Err(_) => AMQPValue::LongLongInt(i),
            },
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter()
                .map(json_to_value)
                .collect::<AmqpResult<Vec<_>>>()?,
        )),
        Value::Object(o) => AMQPValue::FieldTable(json_to_table(o)?),
    })
}

/// A JSON object as an AMQP field table. Errors: as [`json_to_value`].
pub fn json_to_table(o: &Map<String, Value>) -> AmqpResult<FieldTable> {
    let mut t = FieldTable::default();
    for (k, v) in o {
        let key = ShortString::try_new(k.as_str()).map_err(|_| {
            AmqpError::precondition_failed(format!("argument name longer than 255 bytes: {k}"))
        })?;
        t.insert(key, json_to_value(v)?);
    }
    Ok(t)
}

/// The JSON of queue `q` (see the module docs).
fn queue_json(amqp: &Amqp, q: &Queue, ready: u64, unacked: u64, now: Instant) -> Value {
    let mut bindings = vec![json!({
        "source": "",
        "routing_key": q.name,
        "arguments": {},
    })];
    let mut declared = amqp.registry().bindings_of_queue(&q.name);
    declared.sort_by(|a, b| (&a.source, &a.routing_key).cmp(&(&b.source, &b.routing_key)));
    bindings.extend(declared.iter().map(|b| {
        json!({
            "source": b.source,
            "routing_key": b.routing_key,
            "arguments": table_to_json(&b.arguments),
        })
    }));
    let (counts, rates) = match amqp.stats.get(&q.name) {
        Some(c) => (c.counts(), c.rates(now)),
        None => Default::default(),
    };
    json!({
        "name": q.name,
        "vhost": "/",
        "type": "classic",
        "state": "running",
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive,
        "arguments": table_to_json(&q.arguments),
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "messages": ready + unacked,
        "consumers": q.consumers,
        "topic": q.topic,
        "share_group": q.name,
        "bindings": bindings,
        "message_stats": {
            "publish": counts.published,
            "publish_details": {"rate": rates.publish},
            "deliver_get": counts.delivered,
            "deliver_get_details": {"rate": rates.deliver},
            "ack": counts.acked,
            "ack_details": {"rate": rates.ack},
        },
    })
}

async fn list_queues(State(w): Shared) -> Response {
    let Some(amqp) = w.upgrade() else {
        return gone();
    };
    let now = Instant::now();
    let rows: Vec<Value> = amqp
        .queue_stats()
        .await
        .iter()
        .map(|(q, ready, unacked)| queue_json(&amqp, q, *ready, *unacked, now))
        .collect();
    Json(rows).into_response()
}

fn no_queue(name: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '/'"))
}

async fn get_queue(State(w): Shared, Path(name): Path<String>) -> Response {
    let Some(amqp) = w.upgrade() else {
        return gone();
    };
    let Some(q) = amqp.queue(&name) else {
        return error_response(&no_queue(&name));
    };
    let (ready, unacked) = queues::counts(&amqp.broker, &q).await;
    Json(queue_json(&amqp, &q, ready, unacked, Instant::now())).into_response()
}

/// What `PUT /api/v1/queues/{name}` takes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    durable: Option<bool>,
    auto_delete: Option<bool>,
    exclusive: Option<bool>,
    arguments: Option<Map<String, Value>>,
    /// RabbitMQ management sends the vhost and node too; they are accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    vhost: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    node: Option<String>,
}

async fn put_queue(State(w): Shared, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(amqp) = w.upgrade() else {
        return gone();
    };
    let body: DeclareBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeclareBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return error_response(&AmqpError::precondition_failed(format!(
                    "the body is not a queue declaration: {e}"
                )))
            }
        }
    };
    if body.exclusive == Some(true) {
        return error_response(&AmqpError::precondition_failed(
            "an exclusive queue belongs to a connection; declare it over AMQP",
        ));
    }
    let arguments = match body.arguments.as_ref().map(json_to_table).transpose() {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => return error_response(&e),
    };
    match declare(
        &amqp,
        &name,
        body.durable.unwrap_or(true),
        body.auto_delete.unwrap_or(false),
        arguments,
    )
    .await
    {
        Ok(true) => StatusCode::CREATED.into_response(),
        Ok(false) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

async fn purge_queue(State(w): Shared, Path(name): Path<String>) -> Response {
    let Some(amqp) = w.upgrade() else {
        return gone();
    };
    match purge(&amqp, &name).await {
        Ok(n) => Json(json!({"queue": name, "message_count": n})).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn delete_queue(
    State(w): Shared,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(amqp) = w.upgrade() else {
        return gone();
    };
    let flag = |k: &str| params.get(k).is_some_and(|v| v == "true" || v == "1");
    match amqp
        .delete_queue(&name, flag("if-unused"), flag("if-empty"))
        .await
    {
        Ok(n) => Json(json!({"queue": name, "message_count": n})).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn list_exchanges(State(w): Shared) -> Response {
    let Some(amqp) = w.upgrade() else {
        return gone();
    };
    let reg = amqp.registry();
    let mut names: Vec<&String> = reg.exchanges.keys().collect();
    names.sort();
    let rows: Vec<Value> = names
        .into_iter()
        .filter_map(|n| reg.exchanges.get(n))
        .map(|x| {
            let bindings: Vec<Value> = reg
                .bindings
                .get(&x.name)
                .into_iter()
                .flatten()
                .map(|b| {
                    json!({
                        "destination": b.destination,
                        "destination_type": if b.to_exchange { "exchange" } else { "queue" },
                        "routing_key": b.routing_key,
                        "arguments": table_to_json(&b.arguments),
                    })
                })
                .collect();
            json!({
                "name": x.name,
                "vhost": "/",
                "type": x.kind.name(),
                "durable": x.durable,
                "auto_delete": x.auto_delete,
                "internal": x.internal,
                "arguments": table_to_json(&x.arguments),
                "bindings": bindings,
            })
        })
        .collect();
    drop(reg);
    Json(rows).into_response()
}

/// Declares queue `name` (not exclusive) as `queue.declare` would (see
/// [`Amqp::declare_queue`]). Returns true if it was created, false if an equivalent queue
/// exists. Errors: those of [`Amqp::declare_queue`].
pub async fn declare(
    amqp: &Arc<Amqp>,
    name: &str,
    durable: bool,
    auto_delete: bool,
    arguments: FieldTable,
) -> AmqpResult<bool> {
    let (_, created) = amqp
        .declare_queue(crate::declare::Declare {
            name: name.to_string(),
            durable,
            exclusive_owner: None,
            auto_delete,
            arguments,
            server_named: false,
        })
        .await?;
    Ok(created)
}

/// Purges queue `name`: every ready message is acquired and accepted by a member of its own
/// (`amqp/admin/<id>/purge/<queue>`), as `queue.purge`; deliveries not yet acknowledged
/// stay. Returns how many messages went. Errors: 404 NOT_FOUND; 541 INTERNAL_ERROR when the
/// coordinator or a read fails.
pub async fn purge(amqp: &Arc<Amqp>, name: &str) -> AmqpResult<u64> {
    let Some(q) = amqp.queue(name) else {
        return Err(no_queue(name));
    };
    let id = amqp.next_connection_id();
    let sessions = session::spawn(Arc::clone(amqp), id);
    let member = format!("amqp/admin/{id}/purge/{name}");
    let (tx, rx) = oneshot::channel();
    let _ = sessions.send(SessionOp::Open {
        member: member.clone(),
        queue: q.clone(),
        reply: tx,
    });
    let plan = rx
        .await
        .map_err(|_| AmqpError::internal("session task gone"))??;
    let result = async {
        let mut total = 0u64;
        let mut plan = Some(plan);
        loop {
            let got = match plan.take() {
                Some(p) => {
                    queues::acquire_planned(&amqp.broker, &q, &member, p, 10_000, 60_000, None)
                        .await?
                }
                None => queues::acquire(&amqp.broker, &q, &member, 10_000, 60_000).await?,
            };
            if got.is_empty() {
                return Ok(total);
            }
            let items: Vec<Settle> = got
                .into_iter()
                .map(|a| {
                    let gap = a.message.timestamp_ms < 0;
                    if !gap {
                        total += 1;
                    }
                    Settle {
                        key: a.key,
                        offset: a.offset,
                        outcome: if gap {
                            Outcome::Gap
                        } else {
                            Outcome::AutoAccept
                        },
                    }
                })
                .collect();
            crate::session::settle_and_wait(&sessions, member.clone(), q.clone(), items).await;
        }
    }
    .await;
    let (tx, rx) = oneshot::channel();
    let _ = sessions.send(SessionOp::Close {
        member,
        queue: q.name.clone(),
        done: Some(tx),
    });
    let _ = rx.await;
    if let Ok(n) = &result {
        tracing::info!(queue = name, messages = n, "purged queue (admin API)");
    }
    result
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    vhost: String,
    queue: String,
}

/// The `rabbitmq_*` metric families (OpenMetrics text without `# EOF`; see the module
/// docs).
pub async fn render_metrics(amqp: &Amqp) -> String {
    let stats = amqp.queue_stats().await;
    let mut registry = prometheus_client::registry::Registry::default();
    let gauge = |registry: &mut prometheus_client::registry::Registry, name: &str, help: &str| {
        let f = Family::<QueueLabels, Gauge>::default();
        registry.register(name, help, f.clone());
        f
    };
    let ready = gauge(
        &mut registry,
        "rabbitmq_queue_messages_ready",
        "Messages ready to be delivered to consumers",
    );
    let unacked = gauge(
        &mut registry,
        "rabbitmq_queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
    );
    let messages = gauge(
        &mut registry,
        "rabbitmq_queue_messages",
        "Sum of ready and unacknowledged messages",
    );
    let consumers = gauge(
        &mut registry,
        "rabbitmq_queue_consumers",
        "Consumers on a queue",
    );
    let counter = |registry: &mut prometheus_client::registry::Registry, name: &str, help: &str| {
        let f = Family::<QueueLabels, Counter>::default();
        registry.register(name, help, f.clone());
        f
    };
    let published = counter(
        &mut registry,
        "rabbitmq_queue_messages_published",
        "Messages published to a queue",
    );
    let delivered = counter(
        &mut registry,
        "rabbitmq_queue_messages_delivered",
        "Messages delivered to consumers",
    );
    let acked = counter(
        &mut registry,
        "rabbitmq_queue_messages_acked",
        "Messages acknowledged by consumers",
    );
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut consumer_total = 0u64;
    for (q, r, u) in &stats {
        let l = QueueLabels {
            vhost: "/".into(),
            queue: q.name.clone(),
        };
        ready.get_or_create(&l).set(as_i64(*r));
        unacked.get_or_create(&l).set(as_i64(*u));
        messages.get_or_create(&l).set(as_i64(r + u));
        consumers.get_or_create(&l).set(i64::from(q.consumers));
        consumer_total += u64::from(q.consumers);
        let c = amqp
            .stats
            .get(&q.name)
            .map(|c| c.counts())
            .unwrap_or_default();
        published.get_or_create(&l).inc_by(c.published);
        delivered.get_or_create(&l).inc_by(c.delivered);
        acked.get_or_create(&l).inc_by(c.acked);
    }
    let plain =
        |registry: &mut prometheus_client::registry::Registry, name: &str, help: &str, v: u64| {
            let g = Gauge::<i64>::default();
            g.set(as_i64(v));
            registry.register(name, help, g);
        };
    plain(
        &mut registry,
        "rabbitmq_queues",
        "Queues",
        stats.len() as u64,
    );
    plain(
        &mut registry,
        "rabbitmq_consumers",
        "Consumers on all queues",
        consumer_total,
    );
    plain(
        &mut registry,
        "rabbitmq_connections",
        "Open AMQP connections",
        amqp.open_connections
            .load(std::sync::atomic::Ordering::Relaxed) as u64,
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode AMQP metrics");
        return String::new();
    }
    if let Some(end) = out.rfind("# EOF") {
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_round_trip_as_pika_would_send_them() {
        let v: Value = serde_json::from_str(
            r#"{"x-message-ttl": 60000, "x-big": 5000000000, "x-dead-letter-exchange": "dlx",
                "flag": true, "ratio": 0.5, "list": [1, "a"], "nested": {"k": null}}"#,
        )
        .unwrap_or_default();
        let Value::Object(o) = &v else {
            panic!("not an object");
        };
        let t = json_to_table(o).unwrap_or_default();
        assert_eq!(
            t.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongInt(60000))
        );
        assert_eq!(
            t.inner().get("x-big"),
            Some(&AMQPValue::LongLongInt(5_000_000_000))
        );
        assert_eq!(table_to_json(&t), v);
    }
}
