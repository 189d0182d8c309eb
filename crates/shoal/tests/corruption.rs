//! A bit flipped on disk in a sealed segment (while the broker is down) is found by the CRC
//! check when the segment is first read: the consumer gets the records before it and never
//! the corrupt one, the broker logs it and counts it in `shoal_log_corrupt_batches_total`.

mod common;

use std::time::Duration;

use common::{create_topic, group_consumer, http_get, produce, Shoal};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

#[test]
fn a_corrupt_batch_on_disk_is_reported_and_never_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let settings = ["log.segment.bytes=4096"];
    let mut broker = Shoal::start(&data, &settings);
    create_topic(&broker, "fragile", 1);
    let records: Vec<(String, String)> = (0..200)
        .map(|i| (format!("k{i}"), format!("value-{i:04}")))
        .collect();
    produce(
        &broker,
        "fragile",
        &records,
        &[("linger.ms", "0"), ("batch.num.messages", "1")],
    );
    let addr = broker.addr.clone();
    assert!(broker.terminate());
    drop(broker);

    // Flip a bit in the value of the 11th batch of the first segment.
    let seg = data.join("fragile-0").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).expect("segment");
    let mut pos = 0usize;
    for _ in 0..10 {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("len")) as usize;
        pos += 12 + len;
    }
    let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("len")) as usize;
    bytes[pos + 12 + len - 3] ^= 0x04;
    std::fs::write(&seg, &bytes).expect("write");

    let mut broker = Shoal::start_on(&data, &addr, &settings);
    broker.allowed_errors.push("corrupt batch on disk");
    let consumer = group_consumer(&broker, "reader", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("fragile", 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut offsets = Vec::new();
    let mut errors = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                assert_eq!(
                    v,
                    format!("value-{:04}", m.offset()),
                    "a served record is intact"
                );
                offsets.push(m.offset());
            }
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    assert_eq!(
        offsets,
        (0..10).collect::<Vec<i64>>(),
        "records before the corrupt one"
    );
    let (_, metrics) = http_get(&broker, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("shoal_log_corrupt_batches_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(broker.log().contains("corrupt batch on disk"));
    let _ = errors; // librdkafka retries the fetch; its error reporting varies by version
}
