//! A failed fsync of `__consumer_offsets`, injected through the flusher's fsync seam
//! ([`shoal_broker::durability::Fsync`]): the commit it should have made durable is refused
//! (never answered with success), the coordinator's state is rebuilt from the records below
//! the log's `synced_offset` (the refused commit's record is still readable from the page
//! cache, and is not trusted), OffsetFetch answers from that durable state, and requests that
//! could write answer COORDINATOR_NOT_AVAILABLE from then on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shoal_broker::topics::CONSUMER_OFFSETS;
use shoal_broker::{Broker, BrokerConfig};
use shoal_group::classic::{CommitPartition, CommitRequest};
use shoal_group::GroupError;
use shoal_log::PartitionLog;

fn commit(offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: "g".to_string(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        partitions: vec![CommitPartition {
            topic: "t".to_string(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
        api_version: 8,
    }
}

async fn committed(broker: &Broker) -> Result<Option<i64>, GroupError> {
    let offsets = broker.groups.fetch_offsets("g".to_string(), None).await?;
    Ok(offsets
        .into_iter()
        .find(|((t, p), _)| t == "t" && *p == 0)
        .and_then(|(_, o)| o)
        .map(|o| o.offset))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_fsync_fails_is_refused_and_offset_fetch_returns_the_durable_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BrokerConfig {
        data_dir: dir.path().join("data"),
        ..BrokerConfig::default()
    };
    let fail_next = Arc::new(AtomicBool::new(false));
    let armed = Arc::clone(&fail_next);
    let broker = Broker::start_with_fsync(
        config,
        Arc::new(move |file: &std::fs::File| {
            if armed.swap(false, Ordering::SeqCst) {
                Err(std::io::Error::other("injected fsync failure"))
            } else {
                file.sync_data()
            }
        }),
    )
    .expect("broker");

    assert_eq!(broker.groups.commit(commit(5)).await, Ok(vec![None]));
    assert_eq!(committed(&broker).await, Ok(Some(5)));

    fail_next.store(true, Ordering::SeqCst);
    // The read sent right behind the commit is computed after the commit is applied in
    // memory; it waits for the commit's fsync and must never show offset 7.
    let (refused, read_behind) = tokio::join!(broker.groups.commit(commit(7)), committed(&broker));
    assert_eq!(refused, Err(GroupError::CoordinatorNotAvailable));
    assert!(
        matches!(
            read_behind,
            Err(GroupError::CoordinatorNotAvailable) | Ok(Some(5))
        ),
        "a read showed a commit that was not durable: {read_behind:?}"
    );

    // The refused commit's record is in the log (readable, not durable): reload ignored it.
    let offsets = broker
        .topics
        .partition(CONSUMER_OFFSETS, 0)
        .expect("offsets partition");
    {
        let log = offsets.log();
        assert!(log.synced_offset() < log.log_end_offset());
    }
    assert_eq!(committed(&broker).await, Ok(Some(5)));

    // Read-only from now on: writes are refused even though fsync works again.
    assert_eq!(
        broker.groups.commit(commit(9)).await,
        Err(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(committed(&broker).await, Ok(Some(5)));
}
