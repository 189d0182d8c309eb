//! `shoal group list|describe|delete|reset-offsets`: what `kafka-consumer-groups.sh` and
//! `kafka-share-groups.sh` do, over the Kafka protocol. A group's type (`classic`, `consumer`
//! or `share`) comes from ListGroups v5 (`GroupType`); the verbs branch on it.
//!
//! `describe` prints Kafka's columns (GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
//! CONSUMER-ID HOST CLIENT-ID) in Kafka's layout, plus LAG-SECONDS: the age of the first
//! record not yet consumed (now minus the first timestamp of the batch holding it; batch
//! granularity, so an upper bound inside a batch; 0 when caught up). Members come from
//! ConsumerGroupDescribe for consumer-protocol groups and DescribeGroups for classic ones;
//! offsets from OffsetFetch and ListOffsets; the timestamps from one Fetch.
//!
//! Share groups (KIP-932): `describe` prints `kafka-share-groups.sh --describe`'s columns
//! (GROUP TOPIC PARTITION START-OFFSET LAG) from ShareGroupDescribe v1,
//! DescribeShareGroupOffsets v0 (the share-partition start offset, SPSO) and ListOffsets (the
//! high watermark), then the members as `--describe --members` prints them. Kafka's wire has
//! no in-flight window, so with `--admin-api HOST:PORT` (a Shoal broker's admin HTTP API) it
//! adds Shoal's: LOG-END-OFFSET, END-OFFSET (SPEO), STATE-EPOCH and the window's records by
//! state (ACQUIRED AVAILABLE ACKNOWLEDGED ARCHIVING ARCHIVED), and LAG becomes Kafka's
//! share lag (HWM - SPSO - records acknowledged or archived in the window); without it LAG is
//! HWM - SPSO. `reset-offsets` uses AlterShareGroupOffsets, refused (as in Kafka) unless the
//! group is empty; `delete` is DeleteGroups for every type.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, ConsumerGroupDescribeRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, DescribeShareGroupOffsetsRequest, FetchRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, ShareGroupDescribeRequest,
    TopicName,
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

/// The type of `group` as ListGroups reports it (`classic`, `consumer` or `share`; a broker
/// without ListGroups v5 reports every group `classic`); `None` when it is not listed.
pub(crate) async fn group_type(client: &mut Client, group: &str) -> anyhow::Result<Option<String>> {
    Ok(list(client)
        .await?
        .into_iter()
        .find(|g| g.0 == group)
        .map(|g| g.1))
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

/// DeleteGroups for `group` (any type); returns the group's type as listed before (see
/// [`group_type`]). Errors: NON_EMPTY_GROUP (members still there), GROUP_ID_NOT_FOUND.
pub(crate) async fn delete(client: &mut Client, group: &str) -> anyhow::Result<Option<String>> {
    let kind = group_type(client, group).await.unwrap_or(None);
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    let (resp, _) = client.call(req, 2).await?;
    for r in resp.results {
        if let Some(e) = kafka_error(r.error_code) {
            if r.error_code == NON_EMPTY_GROUP {
                let what = if kind.as_deref() == Some("share") {
                    "share consumers"
                } else {
                    "consumers"
                };
                bail!(
                    "cannot delete group {}: it has active members ({e}); stop its {what} first",
                    r.group_id.as_str()
                );
            }
            bail!("cannot delete group {}: {e}", r.group_id.as_str());
        }
    }
    Ok(kind)
}

/// Kafka's NON_EMPTY_GROUP error code.
const NON_EMPTY_GROUP: i16 = 68;

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
    let parts: BTreeSet<(String, i32)> = if topics.is_empty() {
        committed.keys().cloned().collect()
    } else {
        topic_partitions(client, topics).await?
    };
    if parts.is_empty() {
        bail!("nothing to reset: group {group} has no committed offsets; name topics with --topic");
    }
    let plan = plan_resets(client, group, &parts, to, &committed).await?;
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

/// The new offset of each of `parts` for `to`, clamped to the log (`current`: the offsets
/// `ShiftBy` moves from; the latest offset where there is none).
async fn plan_resets(
    client: &mut Client,
    group: &str,
    parts: &BTreeSet<(String, i32)>,
    to: &ResetTo,
    current: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<Vec<ResetRow>> {
    let earliest = list_offsets(client, parts, -2).await?;
    let latest = list_offsets(client, parts, -1).await?;
    let at_time = match to {
        ResetTo::Datetime(ts) => Some(list_offsets(client, parts, *ts).await?),
        _ => None,
    };
    let mut plan = Vec::new();
    for tp in parts {
        let lo = earliest.get(tp).copied().unwrap_or(0);
        let hi = latest.get(tp).copied().unwrap_or(lo);
        let target = match to {
            ResetTo::Earliest => lo,
            ResetTo::Latest => hi,
            ResetTo::Datetime(_) => at_time
                .as_ref()
                .and_then(|m| m.get(tp).copied())
                .unwrap_or(hi),
            ResetTo::ShiftBy(n) => current.get(tp).copied().unwrap_or(hi).saturating_add(*n),
            ResetTo::Offset(o) => *o,
        };
        plan.push(ResetRow {
            group: group.to_string(),
            topic: tp.0.clone(),
            partition: tp.1,
            new_offset: target.clamp(lo, hi),
        });
    }
    Ok(plan)
}

/// Every partition of `topics` (Metadata). Errors: an unknown topic.
async fn topic_partitions(
    client: &mut Client,
    topics: &[String],
) -> anyhow::Result<BTreeSet<(String, i32)>> {
    let mut parts = BTreeSet::new();
    let meta = super::topic::metadata(client, Some(topics)).await?;
    for t in &meta {
        if let Some(e) = &t.error {
            bail!("topic {}: {e}", t.name);
        }
        parts.extend((0..t.partitions).map(|p| (t.name.clone(), p)));
    }
    Ok(parts)
}

// ----- share groups (KIP-932) -------------------------------------------------------------

/// One share-partition row of `describe` for a share group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SharePartitionRow {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// SPSO; `None` when the share-partition has no state yet (assigned, never fetched).
    pub(crate) start_offset: Option<i64>,
    /// High watermark.
    pub(crate) log_end_offset: Option<i64>,
    /// Kafka's share lag when `window` is known, else `log_end_offset - start_offset`.
    pub(crate) lag: Option<i64>,
    /// Shoal's in-flight window, from the admin API (`--admin-api`); `None` without it.
    pub(crate) window: Option<ShareWindow>,
}

/// A share-partition's in-flight window `[SPSO, SPEO)` and its records by state.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct ShareWindow {
    /// SPEO: one past the last offset ever acquired.
    pub(crate) end_offset: i64,
    pub(crate) state_epoch: i32,
    pub(crate) acquired: u64,
    pub(crate) available: u64,
    pub(crate) acknowledged: u64,
    /// Waiting for their dead-letter record (KIP-1191).
    pub(crate) archiving: u64,
    pub(crate) archived: u64,
}

/// A share group member and its assignment.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShareMemberRow {
    pub(crate) member_id: String,
    pub(crate) client_id: String,
    pub(crate) host: String,
    pub(crate) member_epoch: i32,
    pub(crate) partitions: Vec<(String, i32)>,
}

/// What `describe` learns about a share group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShareGroupView {
    pub(crate) group: String,
    /// `share`.
    pub(crate) group_type: String,
    /// `Empty` or `Stable`.
    pub(crate) state: String,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: Vec<ShareMemberRow>,
    pub(crate) partitions: Vec<SharePartitionRow>,
}

/// What `describe` shows, by group type.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Described {
    Group(GroupDescription),
    Share(ShareGroupView),
}

/// `describe` for any group: share groups (by ListGroups' type) as [`describe_share`],
/// others as [`describe`].
pub(crate) async fn describe_any(
    client: &mut Client,
    group: &str,
    admin_api: Option<&str>,
) -> anyhow::Result<Described> {
    if group_type(client, group).await?.as_deref() == Some("share") {
        Ok(Described::Share(
            describe_share(client, group, admin_api).await?,
        ))
    } else {
        Ok(Described::Group(describe(client, group).await?))
    }
}

/// Text of [`describe_any`].
pub(crate) fn described_text(d: &Described) -> String {
    match d {
        Described::Group(d) => describe_text(d),
        Described::Share(d) => share_describe_text(d),
    }
}

/// ShareGroupDescribe v1 for `group`: (state, group epoch, assignment epoch, members).
/// Errors: the group's error (GROUP_ID_NOT_FOUND: not a share group).
async fn share_members(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<(String, i32, i32, Vec<ShareMemberRow>)> {
    let req = ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let (resp, _) = client.call(req, 1).await?;
    let Some(g) = resp.groups.into_iter().next() else {
        bail!("ShareGroupDescribe returned no group");
    };
    if let Some(e) = kafka_error(g.error_code) {
        let why = g
            .error_message
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        bail!("ShareGroupDescribe for {group} failed: {e}{why}");
    }
    let mut members: Vec<ShareMemberRow> = g
        .members
        .into_iter()
        .map(|m| ShareMemberRow {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            member_epoch: m.member_epoch,
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
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    for m in &mut members {
        m.partitions.sort();
    }
    Ok((
        g.group_state.to_string(),
        g.group_epoch,
        g.assignment_epoch,
        members,
    ))
}

/// DescribeShareGroupOffsets v0 for every share-partition of `group` with state:
/// (topic, partition) -> SPSO. Errors: the group's error, a partition's error.
async fn share_start_offsets(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
    ]);
    let (resp, _) = client.call(req, 0).await?;
    let mut out = BTreeMap::new();
    for g in resp.groups {
        if let Some(e) = kafka_error(g.error_code) {
            bail!("DescribeShareGroupOffsets for {group} failed: {e}");
        }
        for t in g.topics {
            for p in t.partitions {
                if let Some(e) = kafka_error(p.error_code) {
                    bail!(
                        "DescribeShareGroupOffsets for {group}: {}-{}: {e}",
                        t.topic_name.as_str(),
                        p.partition_index
                    );
                }
                if p.start_offset >= 0 {
                    out.insert(
                        (t.topic_name.to_string(), p.partition_index),
                        p.start_offset,
                    );
                }
            }
        }
    }
    Ok(out)
}

/// `GET path` on a Shoal admin API at `addr` (`host:port`); the JSON body of a 200.
/// Errors: connection failures, a non-200 status, a body that is not JSON.
async fn admin_get(addr: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{}Connection: close\r\n\r\n",
            super::admin_auth_header()
        );
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(16 << 20).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after 10 s"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("HTTP {status} for {path}");
    }
    serde_json::from_str(body).with_context(|| format!("{path} did not answer JSON"))
}

/// The in-flight windows of `group`'s share-partitions from a Shoal admin API.
async fn share_windows(
    admin_api: &str,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), ShareWindow>> {
    let path = format!("/api/v1/groups/{}", url_path_segment(group));
    let v = admin_get(admin_api, &path).await?;
    if v["group_type"] != "share" {
        bail!("the admin API at {admin_api} does not describe {group} as a share group");
    }
    let mut out = BTreeMap::new();
    for p in v["partitions"].as_array().into_iter().flatten() {
        let (Some(topic), Some(partition)) = (p["topic"].as_str(), p["partition"].as_i64()) else {
            continue;
        };
        let r = &p["records"];
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        out.insert(
            (topic.to_string(), i32::try_from(partition).unwrap_or(-1)),
            ShareWindow {
                end_offset: p["end_offset"].as_i64().unwrap_or(-1),
                state_epoch: p["state_epoch"]
                    .as_i64()
                    .and_then(|e| i32::try_from(e).ok())
                    .unwrap_or(-1),
                acquired: n("acquired"),
                available: n("available"),
                acknowledged: n("acknowledged"),
                archiving: n("archiving"),
                archived: n("archived"),
            },
        );
    }
    Ok(out)
}

/// `s` percent-encoded for one URL path segment (unreserved characters kept).
fn url_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Everything `describe` shows for share group `group` (see the module docs); the window
/// columns only when `admin_api` answers (a warning on stderr when it does not).
///
/// Errors: GROUP_ID_NOT_FOUND and other Kafka errors of the calls, connection failures.
pub(crate) async fn describe_share(
    client: &mut Client,
    group: &str,
    admin_api: Option<&str>,
) -> anyhow::Result<ShareGroupView> {
    let (state, group_epoch, assignment_epoch, members) = share_members(client, group).await?;
    let starts = share_start_offsets(client, group).await?;
    let all: BTreeSet<(String, i32)> = starts
        .keys()
        .cloned()
        .chain(members.iter().flat_map(|m| m.partitions.iter().cloned()))
        .collect();
    let ends = list_offsets(client, &all, -1).await?;
    let windows = match admin_api {
        Some(addr) => match share_windows(addr, group).await {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("warning: no in-flight windows from the admin API at {addr}: {e:#}");
                None
            }
        },
        None => None,
    };
    let partitions = all
        .into_iter()
        .map(|tp| {
            let start = starts.get(&tp).copied();
            let end = ends.get(&tp).copied();
            let window = windows.as_ref().and_then(|w| w.get(&tp)).cloned();
            let finished = window.as_ref().map_or(0, |w| w.acknowledged + w.archived);
            let lag = match (start, end) {
                (Some(s), Some(e)) => Some((e - s - i64::try_from(finished).unwrap_or(0)).max(0)),
                _ => None,
            };
            SharePartitionRow {
                group: group.to_string(),
                topic: tp.0,
                partition: tp.1,
                start_offset: start,
                log_end_offset: end,
                lag,
                window,
            }
        })
        .collect();
    Ok(ShareGroupView {
        group: group.to_string(),
        group_type: "share".to_string(),
        state,
        group_epoch,
        assignment_epoch,
        members,
        partitions,
    })
}

/// Rows under `header`, each column padded to its widest cell and at least `min[i]`, one
/// space apart; the last column is not padded. Each line starts with a newline, as
/// `kafka-share-groups.sh` prints them.
fn padded(header: &[&str], rows: &[Vec<String>], min: &[usize]) -> String {
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i).map(String::len))
            .chain(header.get(i).map(|h| h.len()))
            .chain(min.get(i).copied())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        let mut s = String::from("\n");
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$} "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out.push('\n');
    out
}

/// Text of `describe` for a share group: `kafka-share-groups.sh --describe`'s offsets table
/// (GROUP TOPIC PARTITION START-OFFSET LAG, widths 15/15/10/13), Shoal's window columns when
/// known, then the members as `--describe --members` prints them (GROUP CONSUMER-ID HOST
/// CLIENT-ID #PARTITIONS ASSIGNMENT).
pub(crate) fn share_describe_text(d: &ShareGroupView) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let with_window = d.partitions.iter().any(|p| p.window.is_some());
    let mut out = String::new();
    if d.members.is_empty() {
        out.push_str(&format!(
            "\nShare group '{}' has no active members.\n",
            d.group
        ));
    }
    if d.partitions.is_empty() {
        out.push_str(&format!(
            "\nShare group '{}' has no offset information.\n",
            d.group
        ));
    } else {
        let mut header = vec!["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"];
        if with_window {
            header.extend([
                "LOG-END-OFFSET",
                "END-OFFSET",
                "STATE-EPOCH",
                "ACQUIRED",
                "AVAILABLE",
                "ACKNOWLEDGED",
                "ARCHIVING",
                "ARCHIVED",
            ]);
        }
        let rows: Vec<Vec<String>> = d
            .partitions
            .iter()
            .map(|p| {
                let mut r = vec![
                    p.group.clone(),
                    p.topic.clone(),
                    p.partition.to_string(),
                    dash(p.start_offset.map(|v| v.to_string())),
                    dash(p.lag.map(|v| v.to_string())),
                ];
                if with_window {
                    let w = p.window.as_ref();
                    r.push(dash(p.log_end_offset.map(|v| v.to_string())));
                    r.push(dash(w.map(|w| w.end_offset.to_string())));
                    r.push(dash(w.map(|w| w.state_epoch.to_string())));
                    r.push(dash(w.map(|w| w.acquired.to_string())));
                    r.push(dash(w.map(|w| w.available.to_string())));
                    r.push(dash(w.map(|w| w.acknowledged.to_string())));
                    r.push(dash(w.map(|w| w.archiving.to_string())));
                    r.push(dash(w.map(|w| w.archived.to_string())));
                }
                r
            })
            .collect();
        out.push_str(&padded(&header, &rows, &[15, 15, 10, 13]));
    }
    if !d.members.is_empty() {
        let rows: Vec<Vec<String>> = d
            .members
            .iter()
            .map(|m| {
                let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for (t, p) in &m.partitions {
                    by.entry(t.as_str()).or_default().push(p.to_string());
                }
                let assignment = by
                    .into_iter()
                    .map(|(t, ps)| format!("{t}:{}", ps.join(",")))
                    .collect::<Vec<_>>()
                    .join(";");
                vec![
                    d.group.clone(),
                    m.member_id.clone(),
                    m.host.clone(),
                    m.client_id.clone(),
                    m.partitions.len().to_string(),
                    if assignment.is_empty() {
                        "-".to_string()
                    } else {
                        assignment
                    },
                ]
            })
            .collect();
        out.push_str(&padded(
            &[
                "GROUP",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
                "#PARTITIONS",
                "ASSIGNMENT",
            ],
            &rows,
            &[15, 15, 15, 15, 12],
        ));
    }
    out
}

/// `reset-offsets` for share group `group`: plans (and with `execute`, applies through
/// AlterShareGroupOffsets v0) new start offsets for `topics` (every partition of each; all
/// share-partitions with state when empty). `ShiftBy` moves from the current SPSO.
///
/// Errors: the group has members (Kafka resets a share group only while it is empty; also
/// when NON_EMPTY_GROUP comes back from the broker), nothing to reset, Kafka errors.
pub(crate) async fn reset_share_offsets(
    client: &mut Client,
    group: &str,
    topics: &[String],
    to: &ResetTo,
    execute: bool,
) -> anyhow::Result<Vec<ResetRow>> {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    let not_empty = |n: usize, state: &str| {
        anyhow::anyhow!(
            "share group '{group}' is not empty: {n} active member(s) (state {state}). Stop its \
             share consumers first; a share group's offsets can only be reset while it is empty"
        )
    };
    let (state, _, _, members) = share_members(client, group).await?;
    if !members.is_empty() {
        return Err(not_empty(members.len(), &state));
    }
    let current = share_start_offsets(client, group).await?;
    let parts: BTreeSet<(String, i32)> = if topics.is_empty() {
        current.keys().cloned().collect()
    } else {
        topic_partitions(client, topics).await?
    };
    if parts.is_empty() {
        bail!(
            "nothing to reset: share group {group} has no share-partition state; name topics \
             with --topic"
        );
    }
    let plan = plan_resets(client, group, &parts, to, &current).await?;
    if execute {
        let topics = per_topic(
            plan.iter()
                .map(|r| (r.topic.as_str(), r.partition, r.new_offset)),
            |t, ps| {
                AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(s(t)))
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, o)| {
                                AlterShareGroupOffsetsRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_start_offset(o)
                            })
                            .collect(),
                    )
            },
        );
        let req = AlterShareGroupOffsetsRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(topics);
        let (resp, _) = client
            .call(req, 0)
            .await
            .context("AlterShareGroupOffsets")?;
        if resp.error_code == NON_EMPTY_GROUP {
            return Err(not_empty(1, "Stable"));
        }
        if let Some(e) = kafka_error(resp.error_code) {
            let why = resp
                .error_message
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            bail!("AlterShareGroupOffsets for {group} failed: {e}{why}");
        }
        for t in resp.responses {
            for p in t.partitions {
                if let Some(e) = kafka_error(p.error_code) {
                    bail!(
                        "resetting {}-{} for {group} failed: {e}",
                        t.topic_name.as_str(),
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
