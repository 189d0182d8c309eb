//! A consumer-group member for process-level tests: joins `GROUP` on `TOPIC` at `BOOTSTRAP`
//! (args in that order; an optional fourth arg `consumer` selects `group.protocol=consumer`), prints `assigned <n>` on every assignment change and
//! `record <partition> <offset>` per record, committing synchronously after each record.
//! Tests SIGKILL it to simulate a member that dies without LeaveGroup.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bootstrap), Some(group), Some(topic)) = (args.get(1), args.get(2), args.get(3))
    else {
        eprintln!("usage: group_member BOOTSTRAP GROUP TOPIC");
        std::process::exit(2);
    };
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    if args.get(4).map(String::as_str) == Some("consumer") {
        // KIP-848: the session timeout is the broker's group.consumer.session.timeout.ms.
        cfg.set("group.protocol", "consumer");
    } else {
        cfg.set("session.timeout.ms", "6000");
    }
    let consumer: BaseConsumer = cfg.create().unwrap_or_else(|e| {
        eprintln!("cannot create consumer: {e}");
        std::process::exit(1);
    });
    if let Err(e) = consumer.subscribe(&[topic.as_str()]) {
        eprintln!("cannot subscribe: {e}");
        std::process::exit(1);
    }
    let mut last = usize::MAX;
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            println!("record {} {}", m.partition(), m.offset());
            let _ = consumer.commit_message(&m, CommitMode::Sync);
        }
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if n != last {
            println!("assigned {n}");
            last = n;
        }
    }
}
