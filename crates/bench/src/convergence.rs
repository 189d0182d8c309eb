//! Group convergence: N consumers subscribe at the same instant to a topic whose every
//! partition holds one record; the clock stops when each partition is owned by exactly one
//! member and that owner has consumed the partition's record. This is the time a real group
//! takes from start (or a scale-out) until it does useful work on every partition.
//!
//! Each run uses a fresh topic and group. Members poll every 5 ms; a monitor samples the
//! members' assignments and consumption every 1 ms, so the resolution is a few milliseconds.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

/// One convergence measurement's parameters.
#[derive(Debug, Clone)]
pub struct Options {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// `classic` or `consumer` (`group.protocol`).
    pub protocol: String,
    /// Number of members (N).
    pub members: usize,
    /// Partitions of the topic (at least `members`, so every member owns one).
    pub partitions: i32,
    /// Extra client settings, e.g. `heartbeat.interval.ms` or `partition.assignment.strategy`.
    pub client_config: Vec<(String, String)>,
    /// Give up after this long.
    pub timeout: Duration,
}

/// The outcome of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub protocol: String,
    pub members: usize,
    pub partitions: i32,
    /// Time from subscribe until every partition was owned once and consumed by its owner.
    pub converged_ms: f64,
}

#[derive(Default)]
struct MemberState {
    assignment: BTreeSet<i32>,
    consumed: BTreeSet<i32>,
}

/// Creates the topic and writes one record to each partition (acks=all).
fn prepare(opts: &Options, topic: &str) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.bootstrap);
    let admin: AdminClient<DefaultClientContext> = cfg.create().context("admin client")?;
    let res = block_on(admin.create_topics(
        &[NewTopic::new(
            topic,
            opts.partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ))?
    .context("CreateTopics")?;
    for r in res {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    let producer: FutureProducer = cfg
        .clone()
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .context("producer")?;
    block_on(async {
        for p in 0..opts.partitions {
            let key = format!("{p}");
            producer
                .send(
                    FutureRecord::to(topic).partition(p).key(&key).payload("x"),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce to partition {p}: {e}"))?;
        }
        anyhow::Ok(())
    })??;
    Ok(())
}

/// Runs one measurement (see the module docs).
///
/// Errors: the topic cannot be created or written, a consumer cannot be created, or the group
/// does not converge within `timeout`.
pub fn run(opts: &Options) -> anyhow::Result<Outcome> {
    if opts.partitions < opts.members as i32 {
        bail!("need at least as many partitions as members");
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("converge-{id}");
    let group = format!("converge-{id}");
    prepare(opts, &topic)?;
    let states: Vec<Arc<Mutex<MemberState>>> = (0..opts.members)
        .map(|_| Arc::new(Mutex::new(MemberState::default())))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(opts.members + 1));
    let mut consumers = Vec::with_capacity(opts.members);
    for _ in 0..opts.members {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &opts.bootstrap)
            .set("group.id", &group)
            .set("group.protocol", &opts.protocol)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10");
        for (k, v) in &opts.client_config {
            cfg.set(k, v);
        }
        let c: BaseConsumer = cfg.create().context("consumer")?;
        consumers.push(c);
    }
    let mut handles = Vec::with_capacity(opts.members);
    for (consumer, state) in consumers.into_iter().zip(states.iter().cloned()) {
        let (stop, barrier, topic) = (Arc::clone(&stop), Arc::clone(&barrier), topic.clone());
        handles.push(std::thread::spawn(move || {
            barrier.wait();
            if consumer.subscribe(&[topic.as_str()]).is_err() {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                let msg = consumer
                    .poll(Duration::from_millis(5))
                    .and_then(Result::ok)
                    .map(|m| m.partition());
                let assignment: BTreeSet<i32> = consumer
                    .assignment()
                    .map(|t| t.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                if let Ok(mut s) = state.lock() {
                    if let Some(p) = msg {
                        s.consumed.insert(p);
                    }
                    let kept: BTreeSet<i32> =
                        s.consumed.intersection(&assignment).copied().collect();
                    s.consumed = kept;
                    s.assignment = assignment;
                }
            }
            consumer.unsubscribe();
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut converged = None;
    while start.elapsed() < opts.timeout {
        let mut owner: HashMap<i32, usize> = HashMap::new();
        let mut exact = true;
        let mut consumed_by_owner = 0;
        for (i, s) in states.iter().enumerate() {
            let Ok(s) = s.lock() else { continue };
            for p in &s.assignment {
                if owner.insert(*p, i).is_some() {
                    exact = false;
                }
                if s.consumed.contains(p) {
                    consumed_by_owner += 1;
                }
            }
        }
        if exact && owner.len() == opts.partitions as usize && consumed_by_owner == opts.partitions
        {
            converged = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let Some(t) = converged else {
        bail!(
            "{} members ({}) did not converge within {:?}",
            opts.members,
            opts.protocol,
            opts.timeout
        );
    };
    Ok(Outcome {
        protocol: opts.protocol.clone(),
        members: opts.members,
        partitions: opts.partitions,
        converged_ms: t.as_secs_f64() * 1000.0,
    })
}
