//! In-memory history for the web console: each group's lag sampled every
//! `console.lag.sample.interval.ms` (Shoal only, default 10000) for the last hour, and the last
//! [`MAX_REBALANCES`] completed rebalances. Kept in memory only: a restart starts it afresh.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// How much lag history is kept (ms).
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

/// The history store.
#[derive(Debug, Default)]
pub struct History {
    lag: Mutex<BTreeMap<String, VecDeque<LagSample>>>,
    rebalances: Mutex<VecDeque<RebalanceRecord>>,
}

impl History {
    /// Adds a lag sample for `group`, dropping samples older than [`LAG_WINDOW_MS`].
    pub fn add_lag(&self, group: &str, sample: LagSample) {
        let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        let q = lag.entry(group.to_string()).or_default();
        let horizon = sample.ts_ms - LAG_WINDOW_MS;
        q.push_back(sample);
        while q.front().is_some_and(|s| s.ts_ms < horizon) {
            q.pop_front();
        }
    }

    /// Forgets groups not in `alive` (deleted or expired).
    pub fn retain_groups(&self, alive: &std::collections::BTreeSet<String>) {
        self.lag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|g, _| alive.contains(g));
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
}
