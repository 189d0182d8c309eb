#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use shoal_group::api::*;
use shoal_group::assignor::TopicMetadata;
use shoal_group::{CoordinatorConfig, GroupCoordinator, Record};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Default)]
struct Catalog {
    topics: HashMap<String, TopicMetadata>,
}
impl TopicCatalog for Catalog {
    fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.topics.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }
}

#[test]
fn scratch() {
    let mut cat = Catalog::default();
    cat.topics.insert(
        "t".into(),
        TopicMetadata {
            topic_id: Uuid::from_bytes([1; 16]),
            name: "t".into(),
            partitions: 1,
        },
    );
    let mut c = GroupCoordinator::new(CoordinatorConfig::default(), 1);
    let mut recs: Vec<Record> = vec![];
    let (r, o) = c.share_heartbeat(
        ShareHeartbeatRequest {
            group_id: "g".into(),
            member_id: "a".into(),
            member_epoch: 0,
            subscribed_topic_names: Some(vec!["t".into()]),
            ..Default::default()
        },
        &cat,
        0,
    );
    println!("{r:?}");
    recs.extend(o.records);
    let (p, o) = c.share_fetch_open(
        &ShareFetchOpen {
            group_id: "g".into(),
            member_id: "a".into(),
            share_session_epoch: 0,
            added: vec![("t".into(), 0)],
            ..Default::default()
        },
        0,
    );
    println!("{p:?}");
    recs.extend(o.records);
    let (a, o) = c.share_acquire(
        "g",
        "a",
        &[PartitionRead {
            key: ("t".into(), 0),
            from: 0,
            to: 10,
            log_start_offset: 0,
            initial_offset: Some(0),
        }],
        100,
        0,
    );
    println!("{a:?}");
    recs.extend(o.records);
    let mut f = GroupCoordinator::new(CoordinatorConfig::default(), 2);
    for r in &recs {
        f.replay(r, 0);
    }
    assert_eq!(c.persisted_state(), f.persisted_state());
}
