//! In-memory history for the web console, sampled every `console.lag.sample.interval.ms`
//! (Shoal only, default 10000) and kept for the last hour ([`LAG_WINDOW_MS`]):
//! - each group's lag ([`LagSample`]);
//! - each topic's throughput, in and out ([`TopicRateSample`], from the traffic counters of
//!   `metrics`) and its compression ratio ([`CompressionSample`]: the last batch of each
//!   partition that changed since the previous sample, decompressed by the sampler, never on
//!   the produce path);
//! - each group's throughput ([`GroupRateSample`]: records its committed offsets, or for a
//!   share group its acknowledged and archived records, moved past per second);
//!
//! and the last [`MAX_REBALANCES`] completed rebalances. Rates are differences between two
//! samples, so a group or topic has its first rate one interval after it is first seen.
//! Kept in memory only: a restart starts it afresh.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use crate::metrics::TopicTraffic;

/// How much history is kept (ms).
pub const LAG_WINDOW_MS: i64 = 3_600_000;
/// Completed rebalances kept.
pub const MAX_REBALANCES: usize = 500;

/// One lag sample of a group.
#[derive(Debug, Clone, Serialize)]
pub struct LagSample {
    /// ms since the Unix epoch.
    pub ts_ms: i64,
    /// Records, summed over partitions.
    pub total_lag: i64,
    /// Seconds, the largest over partitions.
    pub max_lag_seconds: f64,
}

/// A completed rebalance.
#[derive(Debug, Clone, Serialize)]
pub struct RebalanceRecord {
    pub group_id: String,
    /// `classic` or `consumer`.
    pub protocol: String,
    /// ms since the Unix epoch.
    pub started_ms: i64,
    pub ended_ms: i64,
    pub duration_ms: i64,
}

/// One throughput sample of a topic: rates over the interval that ended at `ts_ms`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicRateSample {
    /// ms since the Unix epoch.
    pub ts_ms: i64,
    /// Records and bytes (as stored, i.e. compressed) appended per second.
    pub records_in_per_sec: f64,
    pub bytes_in_per_sec: f64,
    /// Records and bytes fetched per second (by consumers, share consumers and replicas).
    pub records_out_per_sec: f64,
    pub bytes_out_per_sec: f64,
}

/// One throughput sample of a group: records (and an estimate of their bytes) the group
/// finished per second over the interval that ended at `ts_ms`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupRateSample {
    /// ms since the Unix epoch.
    pub ts_ms: i64,
    /// Records per second its committed offsets (share group: acknowledged and archived
    /// records) moved past.
    pub records_per_sec: f64,
    /// Estimated: those records times the average stored bytes per record of their
    /// partition (log size over its offset range).
    pub bytes_per_sec: f64,
}

/// What one compression sample of a topic measured: the sampled batches' size as stored
/// and as they would be uncompressed (61-byte header plus the decompressed records).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct CompressionSample {
    /// ms since the Unix epoch.
    pub ts_ms: i64,
    pub batches: u64,
    pub stored_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// A topic's compression over the last hour of samples.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompressionSummary {
    /// Batches sampled and their bytes, summed over the hour.
    pub batches: u64,
    pub stored_bytes: u64,
    pub uncompressed_bytes: u64,
    /// `stored_bytes / uncompressed_bytes` (1 for uncompressed batches, below 1 when
    /// compression saves space); `None` before the first sample.
    pub ratio: Option<f64>,
    /// The ratio of the latest sample alone.
    pub last_ratio: Option<f64>,
}

/// A group's position per partition at one sample, and each partition's average stored
/// bytes per record, for [`History::add_group_progress`].
pub type GroupProgress = BTreeMap<(String, i32), (i64, f64)>;

/// The previous sample a rate is computed from.
#[derive(Debug, Default)]
struct Cursors {
    topics: BTreeMap<String, (i64, TopicTraffic)>,
    groups: BTreeMap<String, (i64, GroupProgress)>,
    /// Log end offset of each partition when its last batch was sampled for compression.
    compressed: BTreeMap<(String, i32), i64>,
}

/// The history store.
#[derive(Debug, Default)]
pub struct History {
    lag: Mutex<BTreeMap<String, VecDeque<LagSample>>>,
    rebalances: Mutex<VecDeque<RebalanceRecord>>,
    topic_rates: Mutex<BTreeMap<String, VecDeque<TopicRateSample>>>,
    group_rates: Mutex<BTreeMap<String, VecDeque<GroupRateSample>>>,
    compression: Mutex<BTreeMap<String, VecDeque<CompressionSample>>>,
    cursors: Mutex<Cursors>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends `sample` (taken at `ts`) to `q` and drops what is older than an hour before it.
fn push_window<T>(q: &mut VecDeque<T>, sample: T, ts: impl Fn(&T) -> i64) {
    let horizon = ts(&sample) - LAG_WINDOW_MS;
    q.push_back(sample);
    while q.front().is_some_and(|s| ts(s) < horizon) {
        q.pop_front();
    }
}

/// `delta` per second over `ms`.
fn per_sec(delta: f64, ms: i64) -> f64 {
    if ms <= 0 {
        0.0
    } else {
        delta * 1000.0 / ms as f64
    }
}

impl History {
    /// Adds a lag sample for `group`, dropping samples older than [`LAG_WINDOW_MS`].
    pub fn add_lag(&self, group: &str, sample: LagSample) {
        let mut lag = lock(&self.lag);
        push_window(lag.entry(group.to_string()).or_default(), sample, |s| {
            s.ts_ms
        });
    }

    /// Forgets groups not in `alive` (deleted or expired).
    pub fn retain_groups(&self, alive: &BTreeSet<String>) {
        lock(&self.lag).retain(|g, _| alive.contains(g));
        lock(&self.group_rates).retain(|g, _| alive.contains(g));
        lock(&self.cursors).groups.retain(|g, _| alive.contains(g));
    }

    /// Forgets topics not in `alive` (deleted).
    pub fn retain_topics(&self, alive: &BTreeSet<String>) {
        lock(&self.topic_rates).retain(|t, _| alive.contains(t));
        lock(&self.compression).retain(|t, _| alive.contains(t));
        let mut c = lock(&self.cursors);
        c.topics.retain(|t, _| alive.contains(t));
        c.compressed.retain(|(t, _), _| alive.contains(t));
    }

    /// Records `topic`'s traffic counters at `now_ms`; from the second call on, adds the
    /// rates since the previous one. A counter that went down (never, for counters) counts
    /// as 0.
    pub fn add_topic_traffic(&self, topic: &str, now_ms: i64, traffic: TopicTraffic) {
        let previous = lock(&self.cursors)
            .topics
            .insert(topic.to_string(), (now_ms, traffic));
        let Some((then, old)) = previous else {
            return;
        };
        let ms = now_ms - then;
        if ms <= 0 {
            return;
        }
        let d = |new: u64, old: u64| new.saturating_sub(old) as f64;
        let sample = TopicRateSample {
            ts_ms: now_ms,
            records_in_per_sec: per_sec(d(traffic.records_in, old.records_in), ms),
            bytes_in_per_sec: per_sec(d(traffic.bytes_in, old.bytes_in), ms),
            records_out_per_sec: per_sec(d(traffic.records_out, old.records_out), ms),
            bytes_out_per_sec: per_sec(d(traffic.bytes_out, old.bytes_out), ms),
        };
        let mut rates = lock(&self.topic_rates);
        push_window(rates.entry(topic.to_string()).or_default(), sample, |s| {
            s.ts_ms
        });
    }

    /// Records `group`'s position per partition at `now_ms`; from the second call on, adds
    /// the rate since the previous one over the partitions in both (a position that went
    /// back, after an offset reset, counts as 0).
    pub fn add_group_progress(&self, group: &str, now_ms: i64, progress: GroupProgress) {
        let previous = lock(&self.cursors)
            .groups
            .insert(group.to_string(), (now_ms, progress.clone()));
        let Some((then, old)) = previous else {
            return;
        };
        let ms = now_ms - then;
        if ms <= 0 {
            return;
        }
        let (mut records, mut bytes) = (0.0, 0.0);
        for (tp, (position, bytes_per_record)) in &progress {
            if let Some((before, _)) = old.get(tp) {
                let moved = (position - before).max(0) as f64;
                records += moved;
                bytes += moved * bytes_per_record;
            }
        }
        let sample = GroupRateSample {
            ts_ms: now_ms,
            records_per_sec: per_sec(records, ms),
            bytes_per_sec: per_sec(bytes, ms),
        };
        let mut rates = lock(&self.group_rates);
        push_window(rates.entry(group.to_string()).or_default(), sample, |s| {
            s.ts_ms
        });
    }

    /// The log end offset of `topic`-`partition` when its last batch was last sampled for
    /// compression.
    pub fn compression_cursor(&self, topic: &str, partition: i32) -> Option<i64> {
        lock(&self.cursors)
            .compressed
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Notes that `topic`-`partition` was sampled for compression at log end `end`.
    pub fn set_compression_cursor(&self, topic: &str, partition: i32, end: i64) {
        lock(&self.cursors)
            .compressed
            .insert((topic.to_string(), partition), end);
    }

    /// Adds one compression sample of `topic` (nothing when it sampled no batch).
    pub fn add_compression(&self, topic: &str, sample: CompressionSample) {
        if sample.batches == 0 {
            return;
        }
        let mut c = lock(&self.compression);
        push_window(c.entry(topic.to_string()).or_default(), sample, |s| s.ts_ms);
    }

    /// `topic`'s throughput samples, oldest first.
    pub fn topic_rates(&self, topic: &str) -> Vec<TopicRateSample> {
        lock(&self.topic_rates)
            .get(topic)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `group`'s throughput samples, oldest first.
    pub fn group_rates(&self, group: &str) -> Vec<GroupRateSample> {
        lock(&self.group_rates)
            .get(group)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `topic`'s compression over the last hour of samples.
    pub fn compression(&self, topic: &str) -> CompressionSummary {
        let c = lock(&self.compression);
        let q = c.get(topic);
        let sum = |f: fn(&CompressionSample) -> u64| q.map_or(0, |q| q.iter().map(f).sum());
        let ratio = |stored: u64, raw: u64| (raw > 0).then(|| stored as f64 / raw as f64);
        let (stored, raw) = (sum(|s| s.stored_bytes), sum(|s| s.uncompressed_bytes));
        CompressionSummary {
            batches: sum(|s| s.batches),
            stored_bytes: stored,
            uncompressed_bytes: raw,
            ratio: ratio(stored, raw),
            last_ratio: q
                .and_then(|q| q.back())
                .and_then(|s| ratio(s.stored_bytes, s.uncompressed_bytes)),
        }
    }

    /// The lag samples of `group`, oldest first.
    pub fn lag(&self, group: &str) -> Vec<LagSample> {
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records a completed rebalance that ended at `ended_ms`.
    pub fn add_rebalance(&self, group: &str, protocol: &str, duration_ms: i64, ended_ms: i64) {
        let mut r = self.rebalances.lock().unwrap_or_else(|p| p.into_inner());
        r.push_back(RebalanceRecord {
            group_id: group.to_string(),
            protocol: protocol.to_string(),
            started_ms: ended_ms - duration_ms.max(0),
            ended_ms,
            duration_ms: duration_ms.max(0),
        });
        while r.len() > MAX_REBALANCES {
            r.pop_front();
        }
    }

    /// Completed rebalances, newest first, of `group` or of every group.
    pub fn rebalances(&self, group: Option<&str>) -> Vec<RebalanceRecord> {
        self.rebalances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .filter(|r| group.is_none_or(|g| r.group_id == g))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_history_keeps_one_hour_and_rebalances_are_bounded() {
        let h = History::default();
        for i in 0..5 {
            h.add_lag(
                "g",
                LagSample {
                    ts_ms: i * 1_000_000,
                    total_lag: i,
                    max_lag_seconds: 0.0,
                },
            );
        }
        // Samples older than an hour before the newest (4_000_000) are gone.
        let kept: Vec<i64> = h.lag("g").iter().map(|s| s.total_lag).collect();
        assert_eq!(kept, vec![1, 2, 3, 4]);
        for i in 0..(MAX_REBALANCES as i64 + 10) {
            h.add_rebalance("g", "classic", 5, i);
        }
        let r = h.rebalances(Some("g"));
        assert_eq!(r.len(), MAX_REBALANCES);
        assert_eq!(r[0].ended_ms, MAX_REBALANCES as i64 + 9, "newest first");
        assert!(h.rebalances(Some("other")).is_empty());
    }

    #[test]
    fn rates_are_differences_between_samples_and_go_with_their_topic_or_group() {
        let h = History::default();
        let traffic = |records_in: u64, bytes_in: u64| TopicTraffic {
            records_in,
            bytes_in,
            ..TopicTraffic::default()
        };
        h.add_topic_traffic("t", 10_000, traffic(100, 1_000));
        assert!(
            h.topic_rates("t").is_empty(),
            "the first sample only sets the cursor"
        );
        h.add_topic_traffic("t", 12_000, traffic(300, 5_000));
        let r = h.topic_rates("t");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].records_in_per_sec, 100.0);
        assert_eq!(r[0].bytes_in_per_sec, 2_000.0);
        assert_eq!(r[0].records_out_per_sec, 0.0);

        let at = |p0: i64, p1: i64| -> GroupProgress {
            [
                (("t".to_string(), 0), (p0, 10.0)),
                (("t".to_string(), 1), (p1, 20.0)),
            ]
            .into()
        };
        h.add_group_progress("g", 0, at(0, 50));
        h.add_group_progress("g", 1_000, at(30, 40));
        let g = h.group_rates("g");
        assert_eq!(
            g[0].records_per_sec, 30.0,
            "a position that went back counts 0"
        );
        assert_eq!(g[0].bytes_per_sec, 300.0);

        h.add_compression(
            "t",
            CompressionSample {
                ts_ms: 1,
                batches: 2,
                stored_bytes: 100,
                uncompressed_bytes: 400,
            },
        );
        let c = h.compression("t");
        assert_eq!(
            (c.batches, c.ratio, c.last_ratio),
            (2, Some(0.25), Some(0.25))
        );
        assert_eq!(h.compression("other").ratio, None);

        h.retain_groups(&BTreeSet::new());
        h.retain_topics(&BTreeSet::new());
        assert!(h.group_rates("g").is_empty() && h.topic_rates("t").is_empty());
        assert_eq!(h.compression("t").batches, 0);
    }
}
