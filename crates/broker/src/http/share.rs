//! Admin API routes for share groups (KIP-932):
//! - `GET /api/v1/share-groups`: every share group, each as below, sorted by id;
//! - `GET /api/v1/groups/{group_id}` answers a share group with the same shape:
//!   `{group_id, group_type: "share", state, group_epoch, assignment_epoch, assignor,
//!   members: [{member_id, rack_id, client_id, client_host, member_epoch,
//!   subscribed_topics, assignment: [{topic, partitions}]}], partitions: [{topic, partition,
//!   start_offset, end_offset, state_epoch, log_start_offset, log_end_offset, lag,
//!   lag_seconds, records: {acquired, available, acknowledged, archiving, archived}}], total_lag,
//!   delivery_counts: [{delivery_count, records}], archived: {rejected,
//!   delivery_count_limit, gap}, dead_lettered, configs}`.
//!
//! `partitions` are the share-partitions with state: `[start_offset, end_offset)` is the
//! in-flight window (SPSO, SPEO), `records` its records by state, `lag` Kafka's share lag
//! ([`crate::lag`]). `delivery_counts` is the histogram of accepted records by the delivery
//! count they were accepted at, `archived` the archived records by reason and
//! `dead_lettered` those of them written to the group's dead-letter topic (KIP-1191), all
//! since the broker started ([`crate::metrics::ShareTally`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use shoal_group::api::ShareGroupDescription;

use super::{by_topic, unavailable};
use crate::clock::now_ms;
use crate::state::Broker;

/// The JSON of one share group (see the module docs).
pub(super) fn describe(broker: &Broker, d: &ShareGroupDescription) -> Value {
    let names = |id: &uuid::Uuid| {
        d.topic_names
            .get(id)
            .cloned()
            .or_else(|| broker.topics.get_by_id(*id).map(|t| t.name.clone()))
    };
    let mut topic_names = d.topic_names.clone();
    for m in &d.members {
        for id in m.assignment.keys() {
            if let Some(n) = names(id) {
                topic_names.entry(*id).or_insert(n);
            }
        }
    }
    let members: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "rack_id": m.rack_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_epoch": m.member_epoch,
                "subscribed_topics": m.subscribed_topic_names,
                "assignment": by_topic(&m.assignment, &topic_names),
            })
        })
        .collect();
    let partitions = broker.lag().share_partitions(d, now_ms());
    let tally = broker.metrics.share_tally(&d.group_id);
    let delivery_counts: Vec<Value> = tally
        .accepted_by_delivery_count
        .iter()
        .map(|(count, n)| json!({"delivery_count": count, "records": n}))
        .collect();
    json!({
        "group_id": d.group_id,
        "group_type": "share",
        "state": d.state,
        "group_epoch": d.group_epoch,
        "assignment_epoch": d.assignment_epoch,
        "assignor": d.assignor_name,
        "members": members,
        "total_lag": partitions.iter().map(|p| p.lag).sum::<i64>(),
        "partitions": partitions,
        "delivery_counts": delivery_counts,
        "archived": {
            "rejected": tally.archived_rejected,
            "delivery_count_limit": tally.archived_delivery_count_limit,
            "gap": tally.archived_gap,
        },
        "dead_lettered": tally.dead_lettered,
        "configs": d.configs,
    })
}

pub(super) async fn share_groups(State(broker): State<Arc<Broker>>) -> Response {
    match broker.groups.share_groups().await {
        Ok(mut list) => {
            list.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            Json(
                list.iter()
                    .map(|d| describe(&broker, d))
                    .collect::<Vec<_>>(),
            )
            .into_response()
        }
        Err(e) => unavailable(e),
    }
}
