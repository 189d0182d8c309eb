//! A full disk: writes to one partition fail with ENOSPC. The producer gets
//! KAFKA_STORAGE_ERROR, that partition stops taking writes (no retrying into a half-written
//! file), every record acknowledged before stays readable, other partitions keep working, and
//! after a restart with space again the partition continues at the right offset.
//!
//! The full disk is `/dev/full` (every write fails with ENOSPC) standing in for the
//! partition's next segment file, placed while the broker is down.

mod common;

use std::time::Duration;

use common::{create_topic, Shoal};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Sends `values` to `partition` one at a time (acks=all, no retries); returns each
/// delivery's offset or error code.
fn send(broker: &Shoal, partition: i32, values: &[String]) -> Vec<Result<i64, RDKafkaErrorCode>> {
    let producer: FutureProducer = broker
        .client()
        .set("acks", "all")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut out = Vec::new();
        for v in values {
            let r = producer
                .send(
                    FutureRecord::<(), _>::to("disk")
                        .partition(partition)
                        .payload(v),
                    Duration::from_secs(10),
                )
                .await;
            out.push(match r {
                Ok(d) => Ok(d.offset),
                Err((KafkaError::MessageProduction(code), _)) => Err(code),
                Err((e, _)) => panic!("unexpected delivery error {e}"),
            });
        }
        out
    })
}

/// Every value stored in `partition`, from the beginning.
fn read_all(broker: &Shoal, partition: i32, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("disk", partition, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    // Nothing beyond what is expected shows up.
    let settle = std::time::Instant::now() + Duration::from_millis(500);
    while std::time::Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    out
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

#[test]
fn a_full_disk_fails_writes_with_kafka_storage_error_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = Shoal::start(&data, &[]);
    create_topic(&broker, "disk", 2);
    let before = values("before", 20);
    let acked = send(&broker, 0, &before);
    assert_eq!(acked, (0..20).map(Ok).collect::<Vec<_>>());
    let addr = broker.addr.clone();
    assert!(broker.terminate());
    drop(broker);

    // The partition's next segment (base offset 20) now lives on a full disk.
    let next = data.join("disk-0").join(format!("{:020}.log", 20));
    std::os::unix::fs::symlink("/dev/full", &next).expect("symlink");
    let mut broker = Shoal::start_on(&data, &addr, &[]);
    broker.allowed_errors.push("append failed");

    let refused = send(&broker, 0, &values("refused", 3));
    assert_eq!(
        refused,
        vec![Err(RDKafkaErrorCode::KafkaStorageError); 3],
        "the first write hits ENOSPC; the partition then refuses writes instead of retrying"
    );
    let log = broker.log();
    assert!(
        log.contains("No space left on device"),
        "the broker says why: {log}"
    );
    assert!(
        log.contains("log is poisoned"),
        "later writes are refused without touching the disk: {log}"
    );
    // The other partition is on a healthy "disk" and keeps working.
    assert_eq!(
        send(&broker, 1, &values("other", 5)),
        (0..5).map(Ok).collect::<Vec<_>>()
    );
    // Everything acknowledged before is still served, and nothing else.
    assert_eq!(read_all(&broker, 0, before.len()), before);

    // Space again: after a restart the partition continues at offset 20.
    assert!(broker.terminate());
    drop(broker);
    std::fs::remove_file(&next).expect("remove symlink");
    let mut broker = Shoal::start_on(&data, &addr, &[]);
    broker.allowed_errors.push("append failed"); // the earlier run's, in the same log file
    let after = values("after", 5);
    assert_eq!(
        send(&broker, 0, &after),
        (20..25).map(Ok).collect::<Vec<_>>()
    );
    let mut expected = before.clone();
    expected.extend(after);
    assert_eq!(read_all(&broker, 0, expected.len()), expected);
}
