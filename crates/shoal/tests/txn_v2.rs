//! Transaction version 2 (KIP-890 part 2) on the wire, as a Kafka 4 Java client drives it:
//! no client library here speaks it (librdkafka, kafka-python and kafkajs stop at EndTxn
//! v1-v3), so the requests are built by hand against a real shoal process.
//!
//! Proves: ApiVersions finalizes `transaction.version` 2; Produce v12 and TxnOffsetCommit v5
//! add their partitions to the transaction without AddPartitionsToTxn / AddOffsetsToTxn;
//! EndTxn v5 bumps the epoch on every commit and abort and answers it; the next transaction
//! runs at that epoch from sequence 0; the old epoch is fenced; an abort with nothing added
//! completes; `read_committed` sees the committed records only, and the transactional
//! offsets are committed with the transaction.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::{connect, request};
use common::{create_topic, Shoal};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use shoal_log::testkit::TestBatch;

const TOPIC: &str = "tv2";
const TXN_ID: &str = "tv2-producer";
const GROUP: &str = "tv2-group";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    let b = values.iter().fold(
        TestBatch::new().producer(pid, epoch, seq).transactional(),
        |b, v| b.value(v),
    );
    Bytes::from(b.encode())
}

/// Produce v12 of one transactional batch to partition 0; the partition's error code.
fn produce_v12(c: &mut TcpStream, batch: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(TXN_ID))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let resp: ProduceResponse = request(c, ApiKey::Produce, 12, &req);
    resp.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: `(error_code, producer_id, producer_epoch)`.
fn end_txn_v5(c: &mut TcpStream, pid: i64, epoch: i16, commit: bool) -> (i16, i64, i16) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(TXN_ID)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = request(c, ApiKey::EndTxn, 5, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

fn txn_offset_commit_v5(c: &mut TcpStream, pid: i64, epoch: i16, offset: i64) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(TXN_ID)))
        .with_group_id(GroupId(s(GROUP)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let resp: TxnOffsetCommitResponse = request(c, ApiKey::TxnOffsetCommit, 5, &req);
    resp.topics[0].partitions[0].error_code
}

#[test]
fn api_versions_finalize_transaction_version_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let mut c = connect(&broker);
    let name = |n: &StrBytes| n.as_str() == "transaction.version";
    for v in [3i16, 4] {
        let resp: ApiVersionsResponse = request(
            &mut c,
            ApiKey::ApiVersions,
            v,
            &ApiVersionsRequest::default()
                .with_client_software_name(s("wire-test"))
                .with_client_software_version(s("1")),
        );
        assert_eq!(resp.error_code, 0);
        let f: Vec<_> = resp
            .finalized_features
            .iter()
            .filter(|f| name(&f.name))
            .map(|f| (f.min_version_level, f.max_version_level))
            .collect();
        assert_eq!(f, vec![(2, 2)], "v{v} finalized features");
        assert!(
            resp.finalized_features_epoch >= 0,
            "clients ignore epoch -1"
        );
        let supported: Vec<_> = resp
            .supported_features
            .iter()
            .filter(|f| name(&f.name))
            .map(|f| (f.min_version, f.max_version))
            .collect();
        // Kafka lists a feature whose minimum is 0 only from v4 (KAFKA-17011).
        let want = if v >= 4 { vec![(0, 2)] } else { vec![] };
        assert_eq!(supported, want, "v{v} supported features");
        let max = |k: ApiKey| {
            resp.api_keys
                .iter()
                .find(|a| a.api_key == k as i16)
                .map(|a| a.max_version)
        };
        // A TV2 client uses the highest negotiated versions and needs these.
        assert!(max(ApiKey::Produce) >= Some(12));
        assert!(max(ApiKey::EndTxn) >= Some(5));
        assert!(max(ApiKey::TxnOffsetCommit) >= Some(5));
    }
}

#[test]
fn tv2_transactions_add_partitions_implicitly_and_bump_the_epoch_at_every_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, TOPIC, 1);
    let mut c = connect(&broker);
    let init: InitProducerIdResponse = request(
        &mut c,
        ApiKey::InitProducerId,
        5,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(TXN_ID))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let (pid, e) = (init.producer_id.0, init.producer_epoch);

    // Transaction 1: no AddPartitionsToTxn, no AddOffsetsToTxn.
    assert_eq!(produce_v12(&mut c, txn_batch(pid, e, 0, &["c0", "c1"])), 0);
    assert_eq!(txn_offset_commit_v5(&mut c, pid, e, 2), 0);
    assert_eq!(end_txn_v5(&mut c, pid, e, true), (0, pid, e + 1));
    // Its retry is answered with what the first attempt got.
    assert_eq!(end_txn_v5(&mut c, pid, e, true), (0, pid, e + 1));

    // Transaction 2 at the bumped epoch, sequences from 0; aborted.
    assert_eq!(produce_v12(&mut c, txn_batch(pid, e + 1, 0, &["a0"])), 0);
    assert_eq!(end_txn_v5(&mut c, pid, e + 1, false), (0, pid, e + 2));

    // The first transaction's epoch is fenced now.
    assert_eq!(
        produce_v12(&mut c, txn_batch(pid, e, 2, &["zombie"])),
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(
        end_txn_v5(&mut c, pid, e, false),
        (90, -1, -1),
        "PRODUCER_FENCED"
    );
    // An abort with nothing added completes and bumps; a commit of nothing is refused.
    assert_eq!(end_txn_v5(&mut c, pid, e + 2, false), (0, pid, e + 3));
    assert_eq!(
        end_txn_v5(&mut c, pid, e + 3, true).0,
        48,
        "INVALID_TXN_STATE"
    );

    // read_committed sees the committed records only.
    let consumer: BaseConsumer = broker
        .client()
        .set("group.id", "tv2-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until && seen.len() < 2 {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    let more_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < more_until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    assert_eq!(seen, vec!["c0", "c1"]);

    // The offsets committed in transaction 1 are the group's.
    let group: BaseConsumer = broker
        .client()
        .set("group.id", GROUP)
        .create()
        .expect("group consumer");
    let mut want = TopicPartitionList::new();
    want.add_partition(TOPIC, 0);
    let committed = group
        .committed_offsets(want, Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        committed.find_partition(TOPIC, 0).map(|p| p.offset()),
        Some(Offset::Offset(2))
    );
}
