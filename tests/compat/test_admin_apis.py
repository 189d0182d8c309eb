"""Admin calls a one-node Kafka answers, from confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient, with Kafka's answers asserted: DeleteRecords (then a consumer from earliest
starts at the new offset, and a fetch below it is OFFSET_OUT_OF_RANGE), DescribeConfigs
(listeners / advertised.listeners / log.dirs with their types and sources), the
non-incremental AlterConfigs, ElectLeaders (ELECTION_NOT_NEEDED), list/alter partition
reassignments, DescribeLogDirs (sizes after producing), DescribeTopicPartitions, CreateTopics
with a replica assignment [[0], [0]], and kafka-python inferring at least Kafka 3.9 from
ApiVersions.

The test starts a private broker on a free port (conftest's `Broker`), with 4 KiB segments."""
import os
import uuid

import pytest
from confluent_kafka import (Consumer, ElectionType, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import (AdminClient, ConfigResource, ConfigSource,
                                   NewTopic, ResourceType)
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import NewTopic as KNewTopic
from kafka.errors import OffsetOutOfRangeError

from conftest import running_broker

TIMEOUT = 15


@pytest.fixture(scope="module")
def bootstrap():
    with running_broker({"group.initial.rebalance.delay.ms": "0", "log.segment.bytes": "4096"},
                        prefix="shoal-admin-apis-") as b:
        yield b.bootstrap


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def kadmin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)


def create(bootstrap, topic, partitions=1):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, partitions, 1)])
    fs[topic].result(TIMEOUT)


def produce(bootstrap, topic, n, partition=0):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(n):
        p.produce(topic, value=f"value {i} ".encode() + b"x" * 200, partition=partition)
        p.poll(0)
    assert p.flush(TIMEOUT) == 0


def test_delete_records_moves_where_a_consumer_from_earliest_starts(bootstrap):
    topic = name("delete-records")
    create(bootstrap, topic)
    produce(bootstrap, topic, 100)
    a = admin(bootstrap)
    res = a.delete_records([TopicPartition(topic, 0, 40)])
    deleted = list(res.values())[0].result(TIMEOUT)
    assert deleted.low_watermark == 40

    # Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    res = a.delete_records([TopicPartition(topic, 0, 1000)])
    with pytest.raises(KafkaException) as e:
        list(res.values())[0].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE

    # ListOffsets earliest and a new consumer from earliest both start at 40.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": name("g"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
    assert (low, high) == (40, 100)
    c.subscribe([topic])
    first = None
    for _ in range(100):
        m = c.poll(1)
        if m is not None and m.error() is None:
            first = m.offset()
            break
    c.close()
    assert first == 40

    # kafka-python: a fetch below the start is OFFSET_OUT_OF_RANGE (no reset policy).
    kc = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="none",
                       enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = KTopicPartition(topic, 0)
    kc.assign([tp])
    kc.seek(tp, 10)
    with pytest.raises(OffsetOutOfRangeError):
        for _ in range(20):
            kc.poll(timeout_ms=500)
    kc.close()

    # kafka-python's delete_records: -1 is the high watermark.
    out = kadmin(bootstrap).delete_records({KTopicPartition(topic, 0): -1})
    assert out[KTopicPartition(topic, 0)]["low_watermark"] == 100


def test_describe_configs_types_and_sources_every_broker_and_topic_config(bootstrap):
    a = admin(bootstrap)
    broker = ConfigResource(ResourceType.BROKER, "0")
    configs = a.describe_configs([broker])[broker].result(TIMEOUT)
    for key in ("listeners", "advertised.listeners", "log.dirs", "log.retention.ms",
                "log.retention.hours", "num.partitions", "log.segment.bytes"):
        assert key in configs, key
    assert configs["listeners"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["listeners"].value.startswith("PLAINTEXT://127.0.0.1:")
    assert configs["advertised.listeners"].value == configs["listeners"].value
    assert configs["log.dirs"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["log.segment.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["log.segment.bytes"].value == "4096"
    assert configs["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["log.retention.hours"].value == "168"
    assert configs["ssl.keystore.password"].is_sensitive
    assert all(c.is_read_only for c in configs.values())

    topic = name("described")
    create(bootstrap, topic)
    res = ConfigResource(ResourceType.TOPIC, topic)
    tconfigs = a.describe_configs([res])[res].result(TIMEOUT)
    for key in ("cleanup.policy", "retention.ms", "segment.bytes", "max.message.bytes",
                "min.insync.replicas", "message.timestamp.type", "unclean.leader.election.enable"):
        assert key in tconfigs, key
    seg = tconfigs["segment.bytes"]
    assert (seg.value, seg.source) == ("4096", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert [s.name for s in seg.synonyms.values()] == ["log.segment.bytes"]
    assert tconfigs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value

    # kafka-python: the types (DescribeConfigs v3+) and documentation.
    k = kadmin(bootstrap)
    out = k.describe_configs([kafka_resource("broker", "0")], config_filter="all")
    flat = out["broker"]["0"]
    assert "listeners" in flat and "log.dirs" in flat
    k.close()


def kafka_resource(kind, rname, configs=None):
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType
    kinds = {"broker": ConfigResourceType.BROKER, "topic": ConfigResourceType.TOPIC}
    return KConfigResource(kinds[kind], rname, configs)


def test_alter_configs_replaces_a_topics_dynamic_configs(bootstrap):
    topic = name("altered")
    create(bootstrap, topic)
    a = admin(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic,
                         set_config={"retention.ms": "3600000", "cleanup.policy": "compact"})
    a.alter_configs([res])[res].result(TIMEOUT)
    d = ConfigResource(ResourceType.TOPIC, topic)
    got = a.describe_configs([d])[d].result(TIMEOUT)
    assert got["retention.ms"].value == "3600000"
    assert got["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert got["cleanup.policy"].value == "compact"

    # validate_only changes nothing; a bad value is INVALID_CONFIG.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "1"})
    a.alter_configs([res], validate_only=True)[res].result(TIMEOUT)
    assert a.describe_configs([d])[d].result(TIMEOUT)["retention.ms"].value == "3600000"
    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([bad])[bad].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG

    # The whole set is replaced: what is not sent returns to its default.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "7200000"})
    a.alter_configs([res])[res].result(TIMEOUT)
    got = a.describe_configs([d])[d].result(TIMEOUT)
    assert got["retention.ms"].value == "7200000"
    assert (got["cleanup.policy"].value, got["cleanup.policy"].source) == \
        ("delete", ConfigSource.DEFAULT_CONFIG.value)

    # Broker configs are static: INVALID_REQUEST, as Kafka for non-dynamic configs.
    b = ConfigResource(ResourceType.BROKER, "0", set_config={"log.dirs": "/elsewhere"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([b])[b].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST

    # kafka-python's non-incremental form.
    k = kadmin(bootstrap)
    out = k.alter_configs([kafka_resource("topic", topic, {"retention.ms": "60000"})],
                          incremental=False, raise_on_unknown=False)
    assert out["topic"][topic] == "OK", out
    got = a.describe_configs([d])[d].result(TIMEOUT)
    assert got["retention.ms"].value == "60000"
    k.close()


def test_elect_leaders_is_never_needed(bootstrap):
    topic = name("elect")
    create(bootstrap, topic, 2)
    a = admin(bootstrap)
    fut = a.elect_leaders(ElectionType.PREFERRED,
                          [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    result = fut.result(TIMEOUT)
    assert len(result) == 2
    for tp, err in result.items():
        assert err is not None and err.code() == KafkaError.ELECTION_NOT_NEEDED, (tp, err)

    k = kadmin(bootstrap)
    resp = k.elect_leaders(0, {topic: [0, 1], name("missing"): [0]}, raise_errors=False)
    codes = {r.topic: [p.error_code for p in r.partition_result]
             for r in resp.replica_election_results}
    assert codes[topic] == [84, 84]
    assert [c for t, c in codes.items() if t != topic] == [[3]]
    k.close()


def test_partition_reassignments_accept_only_this_node(bootstrap):
    from kafka.errors import InvalidReplicationAssignmentError, NoReassignmentInProgressError
    topic = name("reassign")
    create(bootstrap, topic, 2)
    k = kadmin(bootstrap)
    out = k.alter_partition_reassignments({
        KTopicPartition(topic, 0): [0],
        KTopicPartition(topic, 1): [0, 1],
    })
    assert out[KTopicPartition(topic, 0)] is None
    assert out[KTopicPartition(topic, 1)] is InvalidReplicationAssignmentError
    out = k.alter_partition_reassignments({KTopicPartition(topic, 0): None})
    assert out[KTopicPartition(topic, 0)] is NoReassignmentInProgressError
    assert k.list_partition_reassignments() == {}
    assert k.list_partition_reassignments([KTopicPartition(topic, 0)]) == {}
    k.close()


def test_describe_log_dirs_reports_real_sizes(bootstrap):
    topic = name("sized")
    create(bootstrap, topic, 2)
    produce(bootstrap, topic, 50, partition=0)
    k = kadmin(bootstrap)
    [node] = k.describe_log_dirs()
    assert node["broker"] == 0
    [d] = node["log_dirs"]
    assert d["error_code"] == 0 and os.path.isabs(d["log_dir"])
    assert d["total_bytes"] > 0 and 0 < d["usable_bytes"] <= d["total_bytes"]
    found = {p["partition_index"]: p["partition_size"]
             for t in d["topics"] if t["name"] == topic for p in t["partitions"]}
    assert found[0] > 50 * 200 and found[1] == 0, found
    k.close()


def test_describe_topic_partitions_pages_with_a_cursor(bootstrap):
    topic = name("paged")
    create(bootstrap, topic, 5)
    k = kadmin(bootstrap)
    first = k.describe_topic_partitions([topic], response_partition_limit=3)
    [t] = first["topics"]
    assert [p["partition_index"] for p in t["partitions"]] == [0, 1, 2]
    assert t["partitions"][0]["leader_id"] == 0
    cursor = first["next_cursor"]
    assert cursor["topic_name"] == topic and cursor["partition_index"] == 3
    rest = k.describe_topic_partitions([topic], response_partition_limit=3, cursor=cursor)
    assert [p["partition_index"] for p in rest["topics"][0]["partitions"]] == [3, 4]
    assert rest["next_cursor"] is None
    k.close()


def test_create_topics_with_a_replica_assignment_naming_this_node(bootstrap):
    a = admin(bootstrap)
    topic = name("assigned")
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=-1,
                                   replica_assignment=[[0], [0]])])
    fs[topic].result(TIMEOUT)
    md = a.list_topics(topic, timeout=TIMEOUT)
    assert len(md.topics[topic].partitions) == 2
    other = name("elsewhere")
    fs = a.create_topics([NewTopic(other, num_partitions=2, replication_factor=-1,
                                   replica_assignment=[[0], [1]])])
    with pytest.raises(KafkaException) as e:
        fs[other].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT

    k = kadmin(bootstrap)
    kt = name("kassigned")
    k.create_topics([KNewTopic(kt, replica_assignments={0: [0], 1: [0], 2: [0]})])
    assert len(k.describe_topics([kt])[0]["partitions"]) == 3
    k.close()


def test_kafka_python_infers_at_least_kafka_3_9(bootstrap):
    k = kadmin(bootstrap)
    version = k.get_broker_version_data(0).broker_version
    assert version >= (3, 9), version
    k.close()
