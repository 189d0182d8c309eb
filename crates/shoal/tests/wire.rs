//! Wire-level behaviour against a real shoal process, with hand-built Kafka requests:
//! idempotent-producer sequence checks, ApiVersions negotiation, and bad input (oversized
//! frames, lying array lengths, garbage, unknown APIs) that must never take the broker down.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::wire::{connect, read_frame, read_response, request, send_raw, send_request};
use common::{create_topic, produce, Shoal};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use shoal_log::testkit::TestBatch;

fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, n: i32) -> Bytes {
    let batch = (0..n).fold(
        TestBatch::new().producer(producer_id, epoch, base_sequence),
        |b, i| b.value(&format!("v{}", base_sequence + i)),
    );
    Bytes::from(batch.encode())
}

fn produce_batch(s: &mut TcpStream, topic: &str, batch: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let resp: ProduceResponse = request(s, ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn log_end_offset(s: &mut TcpStream, topic: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let resp: ListOffsetsResponse = request(s, ApiKey::ListOffsets, 7, &req);
    resp.topics[0].partitions[0].offset
}

#[test]
fn idempotent_retry_is_acknowledged_without_a_second_append_and_gaps_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "payments", 1);
    let mut s = connect(&broker);
    let init: InitProducerIdResponse = request(
        &mut s,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let (e1, o1) = produce_batch(&mut s, "payments", idempotent_batch(pid, 0, 0, 3));
    assert_eq!((e1, o1), (0, 0));
    // The same batch again (a retry after a lost response): same offset, nothing appended.
    let (e2, o2) = produce_batch(&mut s, "payments", idempotent_batch(pid, 0, 0, 3));
    assert_eq!(
        (e2, o2),
        (0, 0),
        "retry acknowledged with the original offset"
    );
    assert_eq!(
        log_end_offset(&mut s, "payments"),
        3,
        "retry was not appended"
    );
    let (e3, o3) = produce_batch(&mut s, "payments", idempotent_batch(pid, 0, 3, 2));
    assert_eq!((e3, o3), (0, 3), "next sequence appends");
    // A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER (45), nothing appended.
    let (e4, _) = produce_batch(&mut s, "payments", idempotent_batch(pid, 0, 10, 1));
    assert_eq!(e4, 45);
    assert_eq!(log_end_offset(&mut s, "payments"), 5);
    // Producer state survives a restart (rebuilt from the log).
    drop(s);
    let addr = broker.addr.clone();
    let mut broker = broker;
    broker.kill();
    let broker = Shoal::start_on(&dir.path().join("data"), &addr, &[]);
    let mut s = connect(&broker);
    let (e5, o5) = produce_batch(&mut s, "payments", idempotent_batch(pid, 0, 3, 2));
    assert_eq!(
        (e5, o5),
        (0, 3),
        "retry after a broker crash is still recognised"
    );
    assert_eq!(log_end_offset(&mut s, "payments"), 5);
}

#[test]
fn librdkafka_idempotent_producer_delivers_each_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "idem", 3);
    let records: Vec<(String, String)> = (0..300)
        .map(|i| (format!("k{i}"), format!("{i}")))
        .collect();
    let placed = produce(
        &broker,
        "idem",
        &records,
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    let mut per_partition: std::collections::HashMap<i32, Vec<i64>> = Default::default();
    for (p, o) in placed {
        per_partition.entry(p).or_default().push(o);
    }
    let mut s = connect(&broker);
    let total: usize = per_partition.values().map(Vec::len).sum();
    assert_eq!(total, 300);
    for (p, mut offs) in per_partition {
        offs.sort_unstable();
        assert_eq!(
            offs,
            (0..offs.len() as i64).collect::<Vec<_>>(),
            "partition {p} offsets contiguous, no duplicates"
        );
    }
    let _ = log_end_offset(&mut s, "idem");
}

#[test]
fn api_versions_for_an_unknown_version_answers_unsupported_version_with_the_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let mut s = connect(&broker);
    // ApiVersions v99: answered in v0 with UNSUPPORTED_VERSION (35) and the supported table.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&18i16.to_be_bytes());
    buf.extend_from_slice(&99i16.to_be_bytes());
    buf.extend_from_slice(&42i32.to_be_bytes());
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    send_raw(&mut s, &buf);
    let mut frame = read_frame(&mut s).expect("response");
    let header = ResponseHeader::decode(&mut frame, 0).expect("header");
    assert_eq!(header.correlation_id, 42);
    let resp = ApiVersionsResponse::decode(&mut frame, 0).expect("v0 body");
    assert_eq!(resp.error_code, 35);
    let produce = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == 0)
        .expect("produce advertised");
    assert_eq!(
        produce.min_version, 0,
        "Produce advertised from v0 (librdkafka compression quirk)"
    );
    // The real negotiation still works on the same connection.
    let ok: ApiVersionsResponse = request(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(ok.error_code, 0);
    assert!(ok
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::JoinGroup as i16));
}

#[test]
fn bad_frames_close_only_their_own_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let mut healthy = connect(&broker);
    let check = |s: &mut TcpStream| {
        let r: MetadataResponse = request(s, ApiKey::Metadata, 12, &MetadataRequest::default());
        assert_eq!(r.brokers.len(), 1);
    };
    check(&mut healthy);

    // 1. A frame claiming more than socket.request.max.bytes: closed without reading it.
    let mut s = connect(&broker);
    s.write_all(&(200 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    assert!(
        read_frame(&mut s).is_none(),
        "oversized frame closes the connection"
    );

    // 2. A 14-byte Metadata v1 request whose topic array claims 2^31-1 entries: the decoder
    //    would pre-allocate hundreds of GiB. The connection closes; the broker lives.
    let mut s = connect(&broker);
    let mut lying = BytesMut::new();
    lying.extend_from_slice(&3i16.to_be_bytes());
    lying.extend_from_slice(&1i16.to_be_bytes());
    lying.extend_from_slice(&1i32.to_be_bytes());
    lying.extend_from_slice(&0i16.to_be_bytes());
    lying.extend_from_slice(&i32::MAX.to_be_bytes());
    send_raw(&mut s, &lying);
    assert!(
        read_frame(&mut s).is_none(),
        "lying array length closes the connection"
    );

    // 2b. The same in a flexible version: Metadata v12 (header v2: client id, no tags), topics
    //     as a compact array whose varint count claims 2^32-2 entries.
    let mut s = connect(&broker);
    let mut lying = BytesMut::new();
    lying.extend_from_slice(&3i16.to_be_bytes());
    lying.extend_from_slice(&12i16.to_be_bytes());
    lying.extend_from_slice(&1i32.to_be_bytes());
    lying.extend_from_slice(&0i16.to_be_bytes());
    lying.extend_from_slice(&[0]);
    lying.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    send_raw(&mut s, &lying);
    assert!(
        read_frame(&mut s).is_none(),
        "lying compact array length closes the connection"
    );
    check(&mut healthy);

    // 3. Random garbage, an unknown API key, a negative length.
    for payload in [vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8], {
        let mut v = 9999i16.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0]);
        v
    }] {
        let mut s = connect(&broker);
        send_raw(&mut s, &payload);
        assert!(read_frame(&mut s).is_none());
    }
    let mut s = connect(&broker);
    s.write_all(&(-5i32).to_be_bytes()).expect("write");
    assert!(read_frame(&mut s).is_none());

    // 4. Truncated records in a Produce: an error code, not a crash.
    create_topic(&broker, "victim", 1);
    let mut s = connect(&broker);
    let mut batch = BytesMut::from(&idempotent_batch(-1, -1, -1, 2)[..]);
    let last = batch.len() - 1;
    batch[last] ^= 0xff; // corrupt the CRC-covered bytes
    let (code, _) = produce_batch(&mut s, "victim", batch.freeze());
    assert_eq!(code, 2, "CORRUPT_MESSAGE for a CRC mismatch");
    assert_eq!(log_end_offset(&mut s, "victim"), 0, "nothing appended");
    // Two batches for one partition: Kafka (v3+) requires exactly one -> INVALID_RECORD (87).
    let mut two = BytesMut::from(&idempotent_batch(-1, -1, -1, 1)[..]);
    two.extend_from_slice(&idempotent_batch(-1, -1, -1, 1));
    let (code, _) = produce_batch(&mut s, "victim", two.freeze());
    assert_eq!(code, 87);
    assert_eq!(log_end_offset(&mut s, "victim"), 0, "nothing appended");

    // Everyone else is still served.
    check(&mut healthy);
    let mut fresh = connect(&broker);
    check(&mut fresh);
}

#[test]
fn idle_and_stalled_connections_are_closed_after_connections_max_idle_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &["connections.max.idle.ms=500"]);
    let started = std::time::Instant::now();
    let mut idle = connect(&broker);
    assert!(read_frame(&mut idle).is_none(), "idle connection closed");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed only after the idle timeout"
    );
    // A frame that claims 50 MB and stalls after 10 bytes is dropped too.
    let mut stalled = connect(&broker);
    stalled
        .write_all(&(50 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    stalled.write_all(&[0u8; 10]).expect("write");
    assert!(read_frame(&mut stalled).is_none(), "stalled frame closed");
    // An active client is unaffected.
    let mut active = connect(&broker);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        let r: MetadataResponse = request(
            &mut active,
            ApiKey::Metadata,
            12,
            &MetadataRequest::default(),
        );
        assert_eq!(r.brokers.len(), 1);
    }
}

/// `segment.bytes` is an INT in Kafka with `atLeast(14)`: CreateTopics and
/// IncrementalAlterConfigs answer INVALID_CONFIG (40) with Kafka's message for values outside
/// it, and a broker given `log.segment.bytes` outside it refuses to start.
#[test]
fn segment_bytes_outside_kafkas_int_range_is_refused_with_invalid_config() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;

    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Shoal::start(&dir.path().join("data"), &[]);
    let admin: AdminClient<DefaultClientContext> = broker.client().create().expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (i, bad) in ["2147483648", "13"].iter().enumerate() {
        let name = format!("too-big-{i}");
        let topic = NewTopic::new(&name, 1, TopicReplication::Fixed(1)).set("segment.bytes", bad);
        let res = rt
            .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
            .expect("create_topics request");
        assert!(
            matches!(res.as_slice(), [Err((t, RDKafkaErrorCode::InvalidConfig))] if *t == name),
            "segment.bytes={bad}: {res:?}"
        );
    }
    let topic =
        NewTopic::new("sized", 1, TopicReplication::Fixed(1)).set("segment.bytes", "2147483647");
    let res = rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .expect("create_topics request");
    assert!(matches!(res.as_slice(), [Ok(_)]), "{res:?}");

    let mut s = connect(&broker);
    let alter = |s: &mut TcpStream, value: &str| -> (i16, String) {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("sized"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("segment.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(value.to_string())))]),
        ]);
        let resp: IncrementalAlterConfigsResponse =
            request(s, ApiKey::IncrementalAlterConfigs, 1, &req);
        let r = &resp.responses[0];
        (
            r.error_code,
            r.error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        )
    };
    let (code, message) = alter(&mut s, "4294967296");
    assert_eq!(code, 40, "{message}");
    assert!(
        message.contains("Invalid value 4294967296 for configuration segment.bytes"),
        "{message}"
    );
    let (code, message) = alter(&mut s, "0");
    assert_eq!(code, 40, "{message}");
    assert!(message.contains("Value must be at least 14"), "{message}");
    assert_eq!(alter(&mut s, "1048576").0, 0);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("other"))
        .args([
            "--kafka-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--amqp-addr",
            "127.0.0.1:0",
        ])
        .args(["--set", "log.segment.bytes=4294967296"])
        .output()
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a 4 GiB segment.bytes");
    assert!(
        stderr.contains("log.segment.bytes") && stderr.contains("Not a number of type INT"),
        "{stderr}"
    );
}

/// Graceful shutdown: a long-poll Fetch in flight when SIGTERM arrives still gets its answer
/// (after its `max_wait_ms`), new connections are refused meanwhile, and the process exits
/// cleanly well within the shutdown timeout.
#[test]
fn a_fetch_in_flight_at_shutdown_is_answered_before_the_broker_exits() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use std::time::Instant;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Shoal::start(&dir.path().join("data"), &[]);
    create_topic(&broker, "quiet", 1);
    let mut s = connect(&broker);
    let max_wait = Duration::from_millis(3000);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("quiet")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let sent = Instant::now();
    send_request(&mut s, ApiKey::Fetch, 12, &req);
    // Let the broker take the request and park it on the empty partition.
    std::thread::sleep(Duration::from_millis(300));
    broker.signal_term();
    let stopped_accepting = common::wait_until(Duration::from_secs(2), || {
        TcpStream::connect(&broker.addr).is_err()
    });
    assert!(stopped_accepting, "still accepting after SIGTERM");
    assert!(
        sent.elapsed() < max_wait,
        "the fetch ended before the check could run"
    );
    let resp: FetchResponse = read_response(&mut s, ApiKey::Fetch, 12);
    let waited = sent.elapsed();
    assert_eq!(resp.error_code, 0);
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 0));
    assert!(
        waited >= max_wait,
        "answered after {waited:?}, not after max_wait_ms"
    );
    let exited = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(
        exited,
        Some(true),
        "no clean exit within 10 s of SIGTERM; log:\n{}",
        broker.log()
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
}
