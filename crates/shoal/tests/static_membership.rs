//! KIP-345 static membership with librdkafka: a static member that restarts within its
//! session timeout gets its partitions back and the other member sees no rebalance.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{create_topic, wait_until, Shoal};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

/// Counts the rebalances (assignments) a member goes through.
struct Counting(Arc<AtomicUsize>);

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn static_member(
    broker: &Shoal,
    instance: &str,
    rebalances: Arc<AtomicUsize>,
) -> BaseConsumer<Counting> {
    let c: BaseConsumer<Counting> = broker
        .client()
        .set("group.id", "static-group")
        .set("group.instance.id", instance)
        .set("session.timeout.ms", "15000")
        .set("auto.offset.reset", "earliest")
        .create_with_context(Counting(rebalances))
        .expect("consumer");
    c.subscribe(&["static-topic"]).expect("subscribe");
    c
}

fn owned(c: &BaseConsumer<Counting>) -> Vec<i32> {
    let _ = c.poll(Duration::from_millis(50));
    let mut v: Vec<i32> = c
        .assignment()
        .map(|t| t.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

#[test]
fn static_member_restart_within_session_timeout_causes_no_rebalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "static-topic", 4);
    let (a_count, b_count) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = static_member(&broker, "host-a", Arc::clone(&a_count));
    let b = static_member(&broker, "host-b", Arc::clone(&b_count));
    // Both are polled on every try (a rebalance callback runs only inside poll: a member
    // not polled keeps a queued assignment and the other waits in JoinGroup for it).
    assert!(
        wait_until(Duration::from_secs(30), || {
            let (pa, pb) = (owned(&a), owned(&b));
            pa.len() == 2 && pb.len() == 2
        }),
        "two static members never split four partitions: {:?} {:?}",
        owned(&a),
        owned(&b)
    );
    // Let the group settle, then note where everything is.
    for _ in 0..20 {
        let _ = (owned(&a), owned(&b));
    }
    let a_parts = owned(&a);
    let b_parts = owned(&b);
    let b_rebalances = b_count.load(Ordering::SeqCst);
    // Restart `a` (static members send no LeaveGroup on close) well within 15 s.
    drop(a);
    let a2 = static_member(&broker, "host-a", Arc::new(AtomicUsize::new(0)));
    assert!(
        wait_until(Duration::from_secs(20), || {
            let (pa, _) = (owned(&a2), owned(&b));
            pa == a_parts
        }),
        "restarted static member did not get {:?} back: {:?}",
        a_parts,
        owned(&a2)
    );
    for _ in 0..40 {
        let _ = (owned(&a2), owned(&b));
    }
    assert_eq!(owned(&b), b_parts, "the other member kept its partitions");
    assert_eq!(
        b_count.load(Ordering::SeqCst),
        b_rebalances,
        "the other member went through no rebalance"
    );
}
