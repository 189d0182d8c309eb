//! `shoal group list|describe|delete|reset-offsets`: what `kafka-consumer-groups.sh` does,
//! over the Kafka protocol.
//!
//! `describe` prints Kafka's columns (GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
//! CONSUMER-ID HOST CLIENT-ID) in Kafka's layout, plus LAG-SECONDS: the age of the first
//! record not yet consumed (now minus the first timestamp of the batch holding it; batch
//! granularity, so an upper bound inside a batch; 0 when caught up). Members come from
//! ConsumerGroupDescribe for consumer-protocol groups and DescribeGroups for classic ones;
//! offsets from OffsetFetch and ListOffsets; the timestamps from one Fetch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, FetchRequest,
    GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::client::Client;
use super::offsets::{list_offsets, per_topic};
use super::{kafka_error, OutputFormat};

/// One row of `group describe`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionRow {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Committed offset; `None` when the group has none.
    pub(crate) current_offset: Option<i64>,
    pub(crate) log_end_offset: Option<i64>,
    pub(crate) lag: Option<i64>,
    pub(crate) consumer_id: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) client_id: Option<String>,
    /// Seconds (fractional); `None` when unknown.
    pub(crate) lag_seconds: Option<f64>,
}

/// A group member and its partitions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MemberRow {
    pub(crate) member_id: String,
    pub(crate) client_id: String,
    pub(crate) host: String,
    pub(crate) partitions: Vec<(String, i32)>,
}

/// What `describe` learns about a group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupDescription {
    pub(crate) group: String,
    /// `consumer` (KIP-848) or `classic`.
    pub(crate) group_type: String,
    pub(crate) state: String,
    pub(crate) members: Vec<MemberRow>,
    pub(crate) partitions: Vec<PartitionRow>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// ListGroups: `(group, type, protocol type, state)`, sorted.
pub(crate) async fn list(
    client: &mut Client,
) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let (resp, _) = client.call(ListGroupsRequest::default(), 5).await?;
    if let Some(e) = kafka_error(resp.error_code) {
        bail!("ListGroups failed: {e}");
    }
    let mut out: Vec<_> = resp
        .groups
        .into_iter()
        .map(|g| {
            let group_type = if g.group_type.is_empty() {
                "classic".to_string()
            } else {
                g.group_type.to_string().to_lowercase()
            };
            (
                g.group_id.to_string(),
                group_type,
                g.protocol_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Members of `group`: consumer-protocol groups through ConsumerGroupDescribe when the broker
/// has it, else DescribeGroups. Returns (type, state, members).
async fn members(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<(String, String, Vec<MemberRow>)> {
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    if let Ok((resp, _)) = client.call(req, 0).await {
        if let Some(g) = resp.groups.into_iter().next() {
            if g.error_code == 0 {
                let members = g
                    .members
                    .into_iter()
                    .map(|m| MemberRow {
                        member_id: m.member_id.to_string(),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        partitions: m
                            .assignment
                            .topic_partitions
                            .into_iter()
                            .flat_map(|t| {
                                let name = t.topic_name.to_string();
                                t.partitions.into_iter().map(move |p| (name.clone(), p))
                            })
                            .collect(),
                    })
                    .collect();
                return Ok(("consumer".into(), g.group_state.to_string(), members));
            }
        }
    }
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let (resp, _) = client.call(req, 5).await?;
    let Some(g) = resp.groups.into_iter().next() else {
        bail!("DescribeGroups returned no group");
    };
    if let Some(e) = kafka_error(g.error_code) {
        bail!("DescribeGroups for {group} failed: {e}");
    }
    let is_consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .into_iter()
        .map(|m| MemberRow {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: if is_consumer {
                shoal_group::consumer_protocol::assigned_partitions(&m.member_assignment)
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok(("classic".into(), g.group_state.to_string(), members))
}

/// OffsetFetch of every committed offset of `group`: (topic, partition) -> offset.
async fn committed(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    let (resp, _) = client.call(req, 7).await?;
    if let Some(e) = kafka_error(resp.error_code) {
        bail!("OffsetFetch for {group} failed: {e}");
    }
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.to_string();
            t.partitions
                .into_iter()
                .filter(|p| p.committed_offset >= 0)
                .map(move |p| ((name.clone(), p.partition_index), p.committed_offset))
        })
        .collect())
}

/// The first timestamp (ms) of the batch holding each offset, by one Fetch (a few bytes per
/// partition: the broker returns at least the first batch).
async fn batch_timestamps(
    client: &mut Client,
    positions: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    if positions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let topics = per_topic(
        positions.iter().map(|((t, p), o)| (t.as_str(), *p, *o)),
        |t, ps| {
            FetchTopic::default()
                .with_topic(TopicName(s(t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, o)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(o)
                                .with_partition_max_bytes(1)
                        })
                        .collect(),
                )
        },
    );
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(topics);
    let (resp, _) = client.call(req, 12).await?;
    let mut out = BTreeMap::new();
    for t in resp.responses {
        for p in t.partitions {
            // RecordBatch v2: first_timestamp at bytes 27..35.
            let ts = p
                .records
                .as_ref()
                .and_then(|r| r.get(27..35))
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes);
            if let Some(ts) = ts {
                out.insert((t.topic.to_string(), p.partition_index), ts);
            }
        }
    }
    Ok(out)
}

/// Everything `group describe` shows for `group`.
///
/// Errors: GROUP_ID_NOT_FOUND and other Kafka errors of the calls, connection failures.
pub(crate) async fn describe(client: &mut Client, group: &str) -> anyhow::Result<GroupDescription> {
    let (group_type, state, members) = members(client, group).await?;
    let committed = committed(client, group).await?;
    if state == "Dead" && members.is_empty() && committed.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    let mut owners: BTreeMap<(String, i32), &MemberRow> = BTreeMap::new();
    for m in &members {
        for tp in &m.partitions {
            owners.insert(tp.clone(), m);
        }
    }
    let all: BTreeSet<(String, i32)> = committed.keys().chain(owners.keys()).cloned().collect();
    let ends = list_offsets(client, &all, -1).await?;
    let lagging: BTreeMap<(String, i32), i64> = committed
        .iter()
        .filter(|(tp, o)| ends.get(*tp).is_some_and(|e| e > *o))
        .map(|(tp, o)| (tp.clone(), *o))
        .collect();
    let stamps = batch_timestamps(client, &lagging).await.unwrap_or_default();
    let now = now_ms();
    let partitions = all
        .into_iter()
        .map(|tp| {
            let current = committed.get(&tp).copied();
            let end = ends.get(&tp).copied();
            let lag = match (current, end) {
                (Some(c), Some(e)) => Some((e - c).max(0)),
                _ => None,
            };
            let lag_seconds = match lag {
                Some(0) => Some(0.0),
                Some(_) => stamps
                    .get(&tp)
                    .map(|ts| ((now - ts).max(0) as f64) / 1000.0),
                None => None,
            };
            let owner = owners.get(&tp);
            PartitionRow {
                group: group.to_string(),
                topic: tp.0.clone(),
                partition: tp.1,
                current_offset: current,
                log_end_offset: end,
                lag,
                consumer_id: owner.map(|m| m.member_id.clone()),
                host: owner.map(|m| m.host.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
                lag_seconds,
            }
        })
        .collect();
    Ok(GroupDescription {
        group: group.to_string(),
        group_type,
        state,
        members,
        partitions,
    })
}

/// Text of `describe`, laid out as `kafka-consumer-groups.sh --describe` prints it (columns
/// at least 15 wide, PARTITION 10), with LAG-SECONDS after CLIENT-ID.
pub(crate) fn describe_text(d: &GroupDescription) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let rows: Vec<[String; 10]> = d
        .partitions
        .iter()
        .map(|r| {
            [
                r.group.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                dash(r.current_offset.map(|v| v.to_string())),
                dash(r.log_end_offset.map(|v| v.to_string())),
                dash(r.lag.map(|v| v.to_string())),
                dash(r.consumer_id.clone()),
                dash(r.host.clone()),
                dash(r.client_id.clone()),
                dash(r.lag_seconds.map(|v| format!("{v:.1}"))),
            ]
        })
        .collect();
    let header = [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
        "LAG-SECONDS",
    ];
    let width = |i: usize, min: usize| {
        rows.iter()
            .filter_map(|r| r.get(i).map(String::len))
            .chain(header.get(i).map(|h| h.len()))
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let widths = [
        width(0, 15),
        width(1, 15),
        width(2, 10),
        width(3, 15),
        width(4, 15),
        width(5, 15),
        width(6, 15),
        width(7, 15),
        width(8, 15),
    ];
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            match widths.get(i) {
                Some(w) => s.push_str(&format!("{c:<w$} ")),
                None => s.push_str(c),
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    if d.members.is_empty() {
        out.push_str(&format!(
            "\nConsumer group '{}' has no active members.\n",
            d.group
        ));
    }
    out.push('\n');
    out.push_str(&line(&header.map(String::from)));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// DeleteGroups for `group`. Errors: NON_EMPTY_GROUP (members still there),
/// GROUP_ID_NOT_FOUND.
pub(crate) async fn delete(client: &mut Client, group: &str) -> anyhow::Result<()> {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    let (resp, _) = client.call(req, 2).await?;
    for r in resp.results {
        if let Some(e) = kafka_error(r.error_code) {
            bail!("cannot delete group {}: {e}", r.group_id.as_str());
        }
    }
    Ok(())
}

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
    /// ms since the Unix epoch: the first offset whose timestamp is at or after it.
    Datetime(i64),
    /// Relative to the committed offset (or to the latest when none), clamped to the log.
    ShiftBy(i64),
    Offset(i64),
}

/// One planned move of `reset-offsets`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResetRow {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) new_offset: i64,
}

/// Plans (and with `execute`, commits) new offsets for `group` on `topics` (every
/// partition of each; all topics with committed offsets when empty). Refused while the
/// group has members, as Kafka does ("Assignments can only be reset if the group is
/// inactive").
pub(crate) async fn reset_offsets(
    client: &mut Client,
    group: &str,
    topics: &[String],
    to: &ResetTo,
    execute: bool,
) -> anyhow::Result<Vec<ResetRow>> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let (_, state, members) = members(client, group)
        .await
        .unwrap_or_else(|_| ("classic".into(), "Dead".into(), Vec::new()));
    if !members.is_empty() {
        bail!(
            "group {group} has {} active member(s) (state {state}): stop its consumers first; \
             offsets can only be reset while the group is inactive",
            members.len()
        );
    }
    let committed = committed(client, group).await?;
    let mut parts: BTreeSet<(String, i32)> = BTreeSet::new();
    if topics.is_empty() {
        parts.extend(committed.keys().cloned());
    } else {
        let meta = super::topic::metadata(client, Some(topics)).await?;
        for t in &meta {
            if let Some(e) = &t.error {
                bail!("topic {}: {e}", t.name);
            }
            parts.extend((0..t.partitions).map(|p| (t.name.clone(), p)));
        }
    }
    if parts.is_empty() {
        bail!("nothing to reset: group {group} has no committed offsets; name topics with --topic");
    }
    let earliest = list_offsets(client, &parts, -2).await?;
    let latest = list_offsets(client, &parts, -1).await?;
    let at_time = match to {
        ResetTo::Datetime(ts) => Some(list_offsets(client, &parts, *ts).await?),
        _ => None,
    };
    let mut plan = Vec::new();
    for tp in &parts {
        let lo = earliest.get(tp).copied().unwrap_or(0);
        let hi = latest.get(tp).copied().unwrap_or(lo);
        let target = match to {
            ResetTo::Earliest => lo,
            ResetTo::Latest => hi,
            ResetTo::Datetime(_) => at_time
                .as_ref()
                .and_then(|m| m.get(tp).copied())
                .unwrap_or(hi),
            ResetTo::ShiftBy(n) => committed.get(tp).copied().unwrap_or(hi).saturating_add(*n),
            ResetTo::Offset(o) => *o,
        };
        plan.push(ResetRow {
            group: group.to_string(),
            topic: tp.0.clone(),
            partition: tp.1,
            new_offset: target.clamp(lo, hi),
        });
    }
    if execute {
        let topics = per_topic(
            plan.iter()
                .map(|r| (r.topic.as_str(), r.partition, r.new_offset)),
            |t, ps| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                            })
                            .collect(),
                    )
            },
        );
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_topics(topics);
        let (resp, _) = client.call(req, 8).await.context("OffsetCommit")?;
        for t in resp.topics {
            for p in t.partitions {
                if let Some(e) = kafka_error(p.error_code) {
                    bail!(
                        "committing {}-{} for {group} failed: {e}",
                        t.name.as_str(),
                        p.partition_index
                    );
                }
            }
        }
    }
    Ok(plan)
}

/// Prints a result in the chosen format.
pub(crate) fn print<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce() -> String) {
    match format {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            )
        }
        OutputFormat::Text => print!("{}", text()),
    }
}
