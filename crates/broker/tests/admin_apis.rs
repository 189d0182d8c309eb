//! The admin APIs a one-node Kafka answers, through the broker's request path (frames
//! decoded, handled and encoded by `handlers::dispatch`): DeleteRecords moves the log start
//! offset (Fetch below it is OFFSET_OUT_OF_RANGE, ListOffsets earliest returns it, the start
//! survives a restart), DescribeLogDirs reports real sizes, AlterReplicaLogDirs knows one
//! directory, ElectLeaders needs no election, reassignments accept only `[node.id]`,
//! DescribeTopicPartitions pages with its cursor, AlterConfigs replaces a topic's configs,
//! DescribeConfigs types and sources every config, CreateTopics takes `[[0], [0]]`, and
//! ApiVersions advertises what kafka-python needs to infer Kafka >= 3.9.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use shoal_broker::handlers::{dispatch, ConnInfo, Outcome, Part};
use shoal_broker::{Broker, BrokerConfig};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

/// Sends `req` at `version` through the broker's dispatch and decodes the answer.
async fn call<R: Request>(broker: &Broker, version: i16, req: R) -> R::Response {
    let key = ApiKey::try_from(R::KEY).unwrap();
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("admin-test")))
        .encode(&mut frame, R::header_version(version))
        .unwrap();
    req.encode(&mut frame, version).unwrap();
    let conn = ConnInfo::plaintext("127.0.0.1:1".parse().unwrap(), 1);
    let bytes = match dispatch(broker, frame.freeze(), &conn).await {
        Outcome::Respond(b) => b.to_vec(),
        Outcome::RespondParts(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Part::Bytes(b) => out.extend_from_slice(&b),
                    Part::File(f) => out.extend_from_slice(&f.read_to_bytes().unwrap()),
                }
            }
            out
        }
        other => panic!("{key:?} v{version}: {other:?}"),
    };
    let mut buf = Bytes::from(bytes);
    let len = buf.get_i32() as usize;
    assert_eq!(len, buf.len());
    let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    let resp = R::Response::decode(&mut buf, version).unwrap();
    assert!(!buf.has_remaining(), "{key:?} v{version}: bytes left over");
    resp
}

fn start(dir: &std::path::Path) -> Arc<Broker> {
    Broker::start(BrokerConfig {
        data_dir: dir.join("data"),
        log_segment_bytes: 1024,
        ..BrokerConfig::default()
    })
    .unwrap()
}

async fn create(broker: &Broker, name: &str, partitions: i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let resp = call(
        broker,
        7,
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]),
    )
    .await;
    assert_eq!(resp.topics[0].error_code, 0);
}

/// Appends `n` one-record batches to partition 0 of `name`.
fn produce(broker: &Broker, name: &str, n: usize) {
    let p = broker.topics.partition(name, 0).unwrap();
    let mut log = p.log();
    for i in 0..n {
        let batch = shoal_log::testkit::TestBatch::new()
            .value(&format!("record {i} {}", "x".repeat(100)))
            .encode();
        log.append(&batch, 1_000).unwrap();
    }
}

async fn fetch_error(broker: &Broker, name: &str, offset: i64) -> (i16, i64) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let resp = call(
        broker,
        12,
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]),
    )
    .await;
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.log_start_offset)
}

async fn earliest(broker: &Broker, name: &str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let resp = call(
        broker,
        10,
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2)])]),
    )
    .await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

async fn delete_records(broker: &Broker, name: &str, offset: i64) -> (i16, i64) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let resp = call(
        broker,
        2,
        DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]),
    )
    .await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_offset_for_fetch_and_list_offsets_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    create(&broker, "events", 1).await;
    produce(&broker, "events", 50);

    assert_eq!(
        delete_records(&broker, "events", 51).await.0,
        1,
        "beyond the high watermark"
    );
    assert_eq!(delete_records(&broker, "events", 20).await, (0, 20));
    assert_eq!(earliest(&broker, "events").await, 20);
    assert_eq!(
        fetch_error(&broker, "events", 19).await.0,
        1,
        "OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(fetch_error(&broker, "events", 20).await, (0, 20));
    assert_eq!(
        delete_records(&broker, "events", 5).await,
        (0, 20),
        "never moves back"
    );
    assert_eq!(delete_records(&broker, "nope", 5).await.0, 3);
    drop(broker);

    let broker = start(dir.path());
    assert_eq!(
        earliest(&broker, "events").await,
        20,
        "the start survives a restart"
    );
    assert_eq!(
        delete_records(&broker, "events", -1).await,
        (0, 50),
        "-1: the high watermark"
    );
    assert_eq!(fetch_error(&broker, "events", 49).await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_answers_for_log_dirs_elections_and_reassignments() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    create(&broker, "sized", 2).await;
    produce(&broker, "sized", 10);

    let resp = call(
        &broker,
        4,
        DescribeLogDirsRequest::default().with_topics(None),
    )
    .await;
    assert_eq!(resp.results.len(), 1);
    let ld = &resp.results[0];
    assert!(ld.total_bytes > 0 && ld.usable_bytes > 0 && ld.usable_bytes <= ld.total_bytes);
    let t = ld
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "sized")
        .unwrap();
    let sizes: Vec<(i32, i64)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size))
        .collect();
    assert!(sizes.contains(&(1, 0)), "{sizes:?}");
    assert!(
        sizes.iter().any(|(i, size)| *i == 0 && *size > 1000),
        "{sizes:?}"
    );
    let log_dir = ld.log_dir.to_string();

    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    let alter = |path: &str| {
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(s(path))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(topic("sized"))
                .with_partitions(vec![0, 7])])])
    };
    let resp = call(&broker, 2, alter(&log_dir)).await;
    let codes: Vec<i16> = resp.results[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![0, 3]);
    let resp = call(&broker, 2, alter("/elsewhere")).await;
    assert_eq!(
        resp.results[0].partitions[0].error_code, 57,
        "LOG_DIR_NOT_FOUND"
    );

    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let resp = call(
        &broker,
        2,
        ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic("sized"))
                    .with_partitions(vec![0, 1]),
                TopicPartitions::default()
                    .with_topic(topic("nope"))
                    .with_partitions(vec![0]),
            ])),
    )
    .await;
    let codes: Vec<Vec<i16>> = resp
        .replica_election_results
        .iter()
        .map(|t| t.partition_result.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(codes, vec![vec![84, 84], vec![3]]);

    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    let resp = call(
        &broker,
        0,
        AlterPartitionReassignmentsRequest::default().with_topics(vec![
            ReassignableTopic::default()
                .with_name(topic("sized"))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(Some(vec![BrokerId(0)])),
                    ReassignablePartition::default()
                        .with_partition_index(1)
                        .with_replicas(Some(vec![BrokerId(1)])),
                    ReassignablePartition::default()
                        .with_partition_index(1)
                        .with_replicas(None),
                ]),
        ]),
    )
    .await;
    let codes: Vec<i16> = resp.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![0, 39, 85]);
    let resp = call(
        &broker,
        0,
        ListPartitionReassignmentsRequest::default().with_topics(None),
    )
    .await;
    assert_eq!((resp.error_code, resp.topics.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_with_its_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    create(&broker, "a", 3).await;
    create(&broker, "b", 2).await;
    let req = |cursor: Option<Cursor>| {
        DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(topic("b")),
                TopicRequest::default().with_name(topic("a")),
                TopicRequest::default().with_name(topic("zz")),
            ])
            .with_response_partition_limit(2)
            .with_cursor(cursor)
    };
    let page = |r: &DescribeTopicPartitionsResponse| -> Vec<(String, i16, Vec<i32>)> {
        r.topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                (
                    name,
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect()
    };
    let r1 = call(&broker, 0, req(None)).await;
    assert_eq!(page(&r1), vec![("a".into(), 0, vec![0, 1])]);
    let c = r1.next_cursor.clone().unwrap();
    assert_eq!((c.topic_name.0.as_str(), c.partition_index), ("a", 2));
    let next = |c: &kafka_protocol::messages::describe_topic_partitions_response::Cursor| {
        Cursor::default()
            .with_topic_name(c.topic_name.clone())
            .with_partition_index(c.partition_index)
    };
    let r2 = call(&broker, 0, req(Some(next(&c)))).await;
    assert_eq!(
        page(&r2),
        vec![("a".into(), 0, vec![2]), ("b".into(), 0, vec![0])]
    );
    let c = r2.next_cursor.clone().unwrap();
    let r3 = call(&broker, 0, req(Some(next(&c)))).await;
    assert_eq!(
        page(&r3),
        vec![("b".into(), 0, vec![1]), ("zz".into(), 3, vec![])]
    );
    assert!(r3.next_cursor.is_none());
    let p = &r3.topics[0].partitions[0];
    assert_eq!(
        (p.leader_id.0, p.replica_nodes.len(), p.isr_nodes.len()),
        (0, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_typed_sourced_and_replaced_by_alter_configs() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    create(&broker, "conf", 1).await;
    let describe = |kind: i8, name: &str| {
        DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_include_documentation(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(name))
                .with_configuration_keys(None)])
    };
    let resp = call(&broker, 4, describe(4, "0")).await;
    let configs = &resp.results[0].configs;
    let get = |name: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
            .clone()
    };
    let listeners = get("listeners");
    assert_eq!((listeners.config_source, listeners.config_type), (4, 2));
    assert!(listeners.value.unwrap().starts_with("PLAINTEXT://"));
    assert_eq!(get("advertised.listeners").config_type, 7, "LIST");
    assert_eq!(get("log.dirs").config_source, 4);
    assert_eq!(
        get("log.segment.bytes").config_source,
        4,
        "1024 is not Kafka's default"
    );
    assert_eq!(get("num.partitions").config_source, 5);
    assert!(get("log.retention.ms").documentation.is_some());
    assert!(get("ssl.keystore.password").is_sensitive);
    assert!(configs.len() > 90);

    let alter = |validate_only: bool, kv: &[(&str, &str)]| {
        AlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("conf"))
                .with_configs(
                    kv.iter()
                        .map(|(k, v)| {
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                )])
    };
    let resp = call(
        &broker,
        2,
        alter(
            false,
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
        ),
    )
    .await;
    assert_eq!(resp.responses[0].error_code, 0);
    let resp = call(&broker, 2, alter(true, &[("retention.ms", "5")])).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let resp = call(&broker, 2, alter(false, &[("retention.ms", "x")])).await;
    assert_eq!(resp.responses[0].error_code, 40, "INVALID_CONFIG");
    // The whole set is replaced: cleanup.policy goes back to its default.
    let resp = call(&broker, 2, alter(false, &[("retention.ms", "2000")])).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let resp = call(&broker, 4, describe(2, "conf")).await;
    let configs = &resp.results[0].configs;
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("2000"), 1)
    );
    assert_eq!(retention.config_type, 5, "LONG");
    assert_eq!(retention.synonyms[0].source, 1);
    let policy = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(
        (policy.value.as_deref(), policy.config_source),
        (Some("delete"), 5)
    );

    let broker_alter =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("0"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("log.dirs"))
                .with_value(Some(s("/x")))])]);
    let resp = call(&broker, 2, broker_alter).await;
    assert_eq!(resp.responses[0].error_code, 42, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_takes_a_replica_assignment_naming_this_node_only() {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let with = |name: &str, ids: &[&[i32]]| {
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                ids.iter()
                    .enumerate()
                    .map(|(i, b)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(i as i32)
                            .with_broker_ids(b.iter().map(|x| BrokerId(*x)).collect())
                    })
                    .collect(),
            )])
    };
    let resp = call(&broker, 7, with("mine", &[&[0], &[0]])).await;
    assert_eq!(
        (resp.topics[0].error_code, resp.topics[0].num_partitions),
        (0, 2)
    );
    assert_eq!(broker.topics.get("mine").unwrap().partitions.len(), 2);
    let resp = call(&broker, 7, with("theirs", &[&[0], &[1]])).await;
    assert_eq!(resp.topics[0].error_code, 39, "INVALID_REPLICA_ASSIGNMENT");
    let resp = call(&broker, 7, with("two", &[&[0, 0]])).await;
    assert_eq!(resp.topics[0].error_code, 39);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lets_kafka_python_infer_at_least_kafka_3_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let resp = call(&broker, 3, ApiVersionsRequest::default()).await;
    let max = |k: ApiKey| {
        resp.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| a.max_version)
            .unwrap_or(-1)
    };
    // kafka-python 3.0 infers 4.0 from ListOffsets v10 (3.9 from Fetch v17).
    assert!(max(ApiKey::ListOffsets) >= 10);
    for (k, v) in [
        (ApiKey::DeleteRecords, 2),
        (ApiKey::DescribeLogDirs, 4),
        (ApiKey::AlterReplicaLogDirs, 2),
        (ApiKey::ElectLeaders, 2),
        (ApiKey::AlterPartitionReassignments, 0),
        (ApiKey::ListPartitionReassignments, 0),
        (ApiKey::DescribeTopicPartitions, 0),
        (ApiKey::AlterConfigs, 2),
    ] {
        assert!(max(k) >= v, "{k:?}");
    }
}
