//! Message counters per queue and the rates the operator surface shows (RabbitMQ
//! management's `message_stats`): messages published to the queue, delivered to its
//! consumers, and acknowledged by them.
//!
//! Counting is a relaxed `AtomicU64` add at the point the event happens:
//! - `publish`: in [`crate::Amqp::route_and_append`], once per message per queue it reached
//!   (dead-letter copies included, as RabbitMQ counts them at their target queue);
//! - `deliver`: in the dispatcher, once per `basic.deliver` written to a consumer (with or
//!   without `no_ack`; `basic.get` is not counted);
//! - `ack`: in the session task, once per [`crate::session::Outcome::Accept`] settlement the
//!   coordinator applied (`basic.ack`; deliveries to `no_ack` consumers and purged messages
//!   are settled as [`crate::session::Outcome::AutoAccept`] and not counted).
//!
//! Rates: a sampler ([`sample_loop`]) records every queue's counts once a second and keeps
//! the samples of the last [`RATE_WINDOW`]; a rate is the difference between now and the
//! oldest kept sample divided by the seconds between them (messages per second averaged over
//! about 5 s). A queue's counters start with a zero sample when first used, so its first
//! burst already has a rate. Counters start at 0 when the broker starts and when a queue is
//! declared again after deletion, as RabbitMQ's do.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::Amqp;

/// How far back rates look.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// How often [`sample_loop`] samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Counts of one queue (messages since the broker started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub published: u64,
    pub delivered: u64,
    pub acked: u64,
}

/// Rates of one queue (messages per second over [`RATE_WINDOW`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub publish: f64,
    pub deliver: f64,
    pub ack: f64,
}

/// The counters of one queue and its recent samples.
#[derive(Debug, Default)]
pub struct QueueCounters {
    published: AtomicU64,
    delivered: AtomicU64,
    acked: AtomicU64,
    samples: Mutex<VecDeque<(Instant, Counts)>>,
}

impl QueueCounters {
    pub fn published(&self, n: u64) {
        self.published.fetch_add(n, Ordering::Relaxed);
    }

    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    pub fn acked(&self, n: u64) {
        self.acked.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        Counts {
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
        }
    }

    /// Records the counts at `now` and forgets samples older than [`RATE_WINDOW`] (keeping
    /// at least the newest before now, so a rate always has a base).
    pub fn sample(&self, now: Instant) {
        let c = self.counts();
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((now, c));
        while s.len() > 2
            && s.front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
        {
            s.pop_front();
        }
    }

    /// Rates from the oldest kept sample to the counts at `now` (zero without a sample at
    /// least 100 ms old).
    pub fn rates(&self, now: Instant) -> Rates {
        let c = self.counts();
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let Some((t, base)) = s.front().copied() else {
            return Rates::default();
        };
        let secs = now.saturating_duration_since(t).as_secs_f64();
        if secs < 0.1 {
            return Rates::default();
        }
        let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        Rates {
            publish: per_s(c.published, base.published),
            deliver: per_s(c.delivered, base.delivered),
            ack: per_s(c.acked, base.acked),
        }
    }
}

/// Every queue's counters, by queue name.
#[derive(Debug, Default)]
pub struct Stats {
    queues: Mutex<HashMap<String, Arc<QueueCounters>>>,
}

impl Stats {
    /// The counters of queue `name`, created at first use with a zero sample (so the first
    /// burst already has a rate).
    pub fn queue(&self, name: &str) -> Arc<QueueCounters> {
        let mut m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(name) {
            return Arc::clone(c);
        }
        let c = Arc::new(QueueCounters::default());
        c.sample(Instant::now());
        m.insert(name.to_string(), Arc::clone(&c));
        c
    }

    /// The counters of queue `name` if it has any.
    pub fn get(&self, name: &str) -> Option<Arc<QueueCounters>> {
        let m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        m.get(name).cloned()
    }

    /// Forgets queue `name`'s counters (it was deleted).
    pub fn forget(&self, name: &str) {
        let mut m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(name);
    }

    /// Samples every queue's counters at `now`; counters of queues no longer in `live` go.
    pub fn sample(&self, now: Instant, live: &dyn Fn(&str) -> bool) {
        let list: Vec<(String, Arc<QueueCounters>)> = {
            let mut m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            m.retain(|name, _| live(name));
            m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect()
        };
        for (_, c) in list {
            c.sample(now);
        }
    }
}

/// Samples every queue's counters each [`SAMPLE_INTERVAL`] until `shutdown` turns true.
pub async fn sample_loop(amqp: Arc<Amqp>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let live: std::collections::HashSet<String> =
                    amqp.registry().queues.keys().cloned().collect();
                amqp.stats.sample(Instant::now(), &|name| live.contains(name));
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_the_change_since_the_oldest_sample_in_the_window() {
        let c = QueueCounters::default();
        let t0 = Instant::now();
        assert_eq!(c.rates(t0), Rates::default());
        c.sample(t0);
        c.published(10);
        c.delivered(4);
        c.acked(2);
        let r = c.rates(t0 + Duration::from_secs(2));
        assert!((r.publish - 5.0).abs() < 1e-9);
        assert!((r.deliver - 2.0).abs() < 1e-9);
        assert!((r.ack - 1.0).abs() < 1e-9);
        // Old samples leave the window.
        for s in 1..=10 {
            c.sample(t0 + Duration::from_secs(s));
        }
        let r = c.rates(t0 + Duration::from_secs(11));
        assert_eq!(r.publish, 0.0);
    }

    #[test]
    fn a_deleted_queue_loses_its_counters_at_the_next_sample() {
        let s = Stats::default();
        s.queue("a").published(3);
        s.queue("b").published(1);
        s.sample(Instant::now(), &|n| n == "a");
        assert_eq!(s.get("a").map(|c| c.counts().published), Some(3));
        assert!(s.get("b").is_none());
    }
}
