//! Consumer lag, computed by the broker for one group: per partition with a committed offset
//! (or owned by a member), the committed offset (`current_offset`), the `log_end_offset`
//! (high watermark), the lag in records (`log_end_offset - current_offset`) and in seconds:
//! now minus the timestamp of the first record not yet consumed (the record at the committed
//! offset), 0 when caught up. The timestamp is the batch's first timestamp, so for a record in
//! the middle of a batch the seconds are an upper bound (the batch is never decoded).
//!
//! Owners come from the group: a consumer-protocol member's current assignment, or a classic
//! consumer's SyncGroup assignment.

use std::collections::BTreeMap;

use serde::Serialize;
use shoal_group::GroupError;

use crate::coordinator::CoordinatorHandle;
use crate::history::{History, LagSample};
use crate::metrics::{GroupScrape, PartitionLagGauge, Scrape, TopicScrape};
use crate::topics::TopicManager;

/// One partition's lag in a group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Committed offset; -1 when the group has none for this partition.
    pub current_offset: i64,
    /// High watermark: the offset the next produced record gets.
    pub log_end_offset: i64,
    /// Records between the committed offset and the log end (from the log start when
    /// nothing is committed).
    pub lag: i64,
    /// Seconds since the first unconsumed record was produced; 0 when caught up.
    pub lag_seconds: f64,
    /// The member that owns the partition now, if any.
    pub member_id: Option<String>,
    pub client_id: Option<String>,
    pub host: Option<String>,
}

/// Reads lag through the two handles it needs: the coordinator (committed offsets, owners)
/// and the topics (log offsets, first unconsumed timestamp).
#[derive(Debug, Clone, Copy)]
pub struct LagReader<'a> {
    pub groups: &'a CoordinatorHandle,
    pub topics: &'a TopicManager,
}

impl LagReader<'_> {
    /// A group's lag, partition by partition, sorted by topic and partition.
    ///
    /// Errors: COORDINATOR_NOT_AVAILABLE when the coordinator is shutting down.
    pub async fn group_lag(
        &self,
        group_id: &str,
        now_ms: i64,
    ) -> Result<Vec<PartitionLag>, GroupError> {
        let committed = self
            .groups
            .fetch_offsets(group_id.to_string(), None)
            .await?;
        // (topic, partition) -> (member_id, client_id, host)
        let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
        match self.groups.consumer_describe(group_id.to_string()).await {
            Ok(d) => {
                for m in &d.members {
                    for (tid, ps) in &m.assignment {
                        let Some(name) = d.topic_names.get(tid).cloned() else {
                            continue;
                        };
                        for p in ps {
                            owners.insert(
                                (name.clone(), *p),
                                (
                                    m.member_id.clone(),
                                    m.client_id.clone(),
                                    m.client_host.clone(),
                                ),
                            );
                        }
                    }
                }
            }
            Err(_) => {
                if let Ok(d) = self.groups.describe(group_id.to_string()).await {
                    if d.protocol_type == "consumer" {
                        for m in &d.members {
                            let parts =
                                shoal_group::consumer_protocol::assigned_partitions(&m.assignment)
                                    .unwrap_or_default();
                            for (t, ps) in parts {
                                for p in ps {
                                    owners.insert(
                                        (t.clone(), p),
                                        (
                                            m.member_id.clone(),
                                            m.client_id.clone(),
                                            m.client_host.clone(),
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut rows: BTreeMap<(String, i32), i64> = committed
            .into_iter()
            .map(|(tp, v)| (tp, v.map_or(-1, |o| o.offset)))
            .collect();
        for tp in owners.keys() {
            rows.entry(tp.clone()).or_insert(-1);
        }
        let mut out = Vec::with_capacity(rows.len());
        for ((topic, partition), current) in rows {
            let Some(part) = self.topics.partition(&topic, partition) else {
                continue;
            };
            let (start, end, first_unconsumed_ts) = {
                let log = part.log();
                let start = log.log_start_offset();
                let end = log.log_end_offset();
                let from = if current < 0 {
                    start
                } else {
                    current.max(start)
                };
                let ts = if from < end {
                    log.read(from, 1)
                        .ok()
                        .and_then(|r| shoal_log::batch::BatchHeader::parse(&r.records).ok())
                        .map(|h| h.base_timestamp)
                } else {
                    None
                };
                (start, end, ts)
            };
            let lag = if current < 0 {
                end - start
            } else {
                (end - current).max(0)
            };
            let lag_seconds = match first_unconsumed_ts {
                Some(ts) if lag > 0 && ts > 0 => ((now_ms - ts).max(0) as f64) / 1000.0,
                _ => 0.0,
            };
            let owner = owners.get(&(topic.clone(), partition)).cloned();
            out.push(PartitionLag {
                topic,
                partition,
                current_offset: current,
                log_end_offset: end,
                lag,
                lag_seconds,
                member_id: owner.as_ref().map(|o| o.0.clone()),
                client_id: owner.as_ref().map(|o| o.1.clone()),
                host: owner.map(|o| o.2),
            });
        }
        Ok(out)
    }

    /// Every non-internal topic's offsets and every group's state and lag, for `/metrics`.
    pub async fn scrape(&self, now_ms: i64) -> Scrape {
        let topics = self
            .topics
            .list()
            .iter()
            .filter(|t| !t.internal)
            .map(|t| TopicScrape {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let log = p.log();
                        (p.index, log.log_start_offset(), log.log_end_offset())
                    })
                    .collect(),
            })
            .collect();
        let mut groups = Vec::new();
        for g in self.groups.list().await.unwrap_or_default() {
            let lag = self.group_lag(&g.group_id, now_ms).await.ok();
            let members = lag.as_ref().map_or(0, |rows| {
                rows.iter()
                    .filter_map(|r| r.member_id.as_deref())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            });
            groups.push(GroupScrape {
                group_id: g.group_id,
                group_type: g.group_type,
                state: g.state,
                members,
                lag: lag.map(|rows| {
                    rows.into_iter()
                        .map(|r| PartitionLagGauge {
                            topic: r.topic,
                            partition: r.partition,
                            current_offset: r.current_offset,
                            lag: r.lag,
                            lag_seconds: r.lag_seconds,
                        })
                        .collect()
                }),
            });
        }
        Scrape { topics, groups }
    }

    /// One round of the console's lag history: every group's total lag and largest lag in
    /// seconds at `now_ms`; groups that are gone are forgotten.
    pub async fn sample(&self, history: &History, now_ms: i64) {
        let Ok(groups) = self.groups.list().await else {
            return;
        };
        let alive = groups.iter().map(|g| g.group_id.clone()).collect();
        history.retain_groups(&alive);
        for g in groups {
            if let Ok(rows) = self.group_lag(&g.group_id, now_ms).await {
                history.add_lag(
                    &g.group_id,
                    LagSample {
                        ts_ms: now_ms,
                        total_lag: rows.iter().map(|r| r.lag).sum(),
                        max_lag_seconds: rows.iter().map(|r| r.lag_seconds).fold(0.0, f64::max),
                    },
                );
            }
        }
    }
}
