"""kafka-python and confluent-kafka against Shoal: admin, keyed produce, group consume with
commits that survive, compression codecs each client supports without extra packages."""
import uuid

from conftest import BOOTSTRAP


def test_kafka_python_group_commits_and_resumes(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type="gzip")
    for i in range(30):
        p.send(topic, key=f"k{i % 3}".encode(), value=f"{i}".encode())
    p.flush()
    p.close()
    c = KafkaConsumer(topic, group_id="kp-group", bootstrap_servers=BOOTSTRAP,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=10000, max_poll_records=7)
    got = []
    for m in c:
        got.append(int(m.value))
        if len(got) == 20:
            c.commit()
            break
    c.close()
    assert got == list(range(20))
    c2 = KafkaConsumer(topic, group_id="kp-group", bootstrap_servers=BOOTSTRAP,
                       auto_offset_reset="earliest", consumer_timeout_ms=8000)
    rest = [int(m.value) for m in c2]
    assert rest == list(range(20, 30)), "second member resumes at the committed offset"
    assert c2.committed(TopicPartition(topic, 0)) in (20, 30)
    c2.close()


def test_confluent_kafka_produce_consume_all_codecs(broker):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = f"ck-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        f.result(timeout=10)
    sent = []
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": codec, "linger.ms": 5})
        for i in range(20):
            v = f"{codec}-{i}"
            p.produce(topic, key=v, value=v)
            sent.append(v)
        assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "ck-group",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    for _ in range(300):
        m = c.poll(0.2)
        if m is None or m.error():
            if len(got) == len(sent):
                break
            continue
        got.append(m.value().decode())
    c.close()
    assert sorted(got) == sorted(sent)
    md = admin.list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 3
    groups = admin.list_consumer_groups().result(timeout=10)
    assert any(g.group_id == "ck-group" for g in groups.valid)


def test_auto_offset_reset_and_max_poll_records_behave_as_in_kafka(broker):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import NoOffsetForPartitionError
    topic = f"reset-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i in range(30):
        p.send(topic, f"old-{i}".encode())
    p.flush()

    # earliest + max.poll.records: everything, never more than 7 records per poll.
    c = KafkaConsumer(topic, group_id=f"{topic}-earliest", bootstrap_servers=BOOTSTRAP,
                      auto_offset_reset="earliest", max_poll_records=7)
    got, sizes = [], []
    for _ in range(100):
        batch = c.poll(timeout_ms=500)
        n = sum(len(v) for v in batch.values())
        if n:
            sizes.append(n)
            got += [r.value.decode() for v in batch.values() for r in v]
        if len(got) >= 30:
            break
    c.close()
    assert got == [f"old-{i}" for i in range(30)]
    assert max(sizes) <= 7 and len(sizes) >= 5, sizes

    # latest: a new group starts at the log end and sees only what comes after.
    c = KafkaConsumer(topic, group_id=f"{topic}-latest", bootstrap_servers=BOOTSTRAP,
                      auto_offset_reset="latest")
    for _ in range(20):
        c.poll(timeout_ms=200)
        if c.assignment():
            break
    c.poll(timeout_ms=500)
    p.send(topic, b"new-0")
    p.flush()
    later = []
    for _ in range(40):
        later += [r.value.decode() for v in c.poll(timeout_ms=250).values() for r in v]
        if later:
            break
    c.close()
    assert later == ["new-0"]

    # none: no committed offset is an error for the application.
    c = KafkaConsumer(topic, group_id=f"{topic}-none", bootstrap_servers=BOOTSTRAP,
                      auto_offset_reset="none")
    raised = False
    try:
        for _ in range(40):
            c.poll(timeout_ms=250)
    except NoOffsetForPartitionError:
        raised = True
    c.close()
    p.close()
    assert raised, "auto_offset_reset=none with no committed offset raises"


def test_deleting_a_topic_removes_its_committed_offsets(broker):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    topic = f"gone-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    p.send(topic, b"x")
    p.flush()
    p.close()
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(group_id=f"{topic}-g", bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    c.assign([tp])
    c.commit({tp: OffsetAndMetadata(1, "", -1)})
    assert c.committed(tp) == 1
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.delete_topics([topic])
    admin.close()
    c.close()
    c2 = KafkaConsumer(group_id=f"{topic}-g", bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    assert c2.committed(tp) is None, "offsets of a deleted topic are gone (OffsetFetch gives -1)"
    c2.close()


def test_confluent_admin_describes_lists_alters_and_deletes_groups(broker):
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = f"adm-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-g"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        f.result(timeout=10)
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(10):
        p.produce(topic, value=str(i), partition=i % 2)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": "adm-client"})
    c.subscribe([topic])
    got = 0
    for _ in range(100):
        m = c.poll(0.2)
        if m is not None and not m.error():
            got += 1
        if got == 10:
            break
    c.commit(asynchronous=False)

    # DescribeGroups: Stable, one member, its client id and its two partitions.
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert str(desc.state).endswith("STABLE"), desc.state
    assert len(desc.members) == 1 and desc.members[0].client_id == "adm-client"
    assigned = sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions)
    assert assigned == [0, 1]
    # Deleting a group with a live member is refused (NON_EMPTY_GROUP).
    fut = admin.delete_consumer_groups([group])[group]
    try:
        fut.result(timeout=10)
        deleted_while_active = True
    except Exception as e:
        deleted_while_active = False
        assert "NON_EMPTY_GROUP" in str(e) or "not empty" in str(e).lower(), e
    assert not deleted_while_active
    c.close()

    # Committed offsets through the admin API, then moved while the group is empty.
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    res = admin.list_consumer_group_offsets([req])[group].result(timeout=10)
    assert sorted((tp.partition, tp.offset) for tp in res.topic_partitions) == [(0, 5), (1, 5)]
    alter = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2)])
    admin.alter_consumer_group_offsets([alter])[group].result(timeout=10)
    res = admin.list_consumer_group_offsets([req])[group].result(timeout=10)
    assert sorted((tp.partition, tp.offset) for tp in res.topic_partitions) == [(0, 2), (1, 5)]
    # An empty group can be deleted; its offsets go with it.
    admin.delete_consumer_groups([group])[group].result(timeout=10)
    listed = admin.list_consumer_groups().result(timeout=10)
    assert not any(g.group_id == group for g in listed.valid)


def test_topic_admin_errors_are_kafkas(broker):
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import (InvalidPartitionsError, InvalidReplicationFactorError,
                              InvalidTopicError, TopicAlreadyExistsError)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    name = f"adm-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    cases = [
        (lambda: admin.create_topics([NewTopic(name, 2, 1)]), TopicAlreadyExistsError),
        (lambda: admin.create_topics([NewTopic("bad/name", 1, 1)]), InvalidTopicError),
        (lambda: admin.create_topics([NewTopic(name + "-rf", 1, 3)]), InvalidReplicationFactorError),
        (lambda: admin.create_partitions({name: NewPartitions(1)}), InvalidPartitionsError),
    ]
    for call, error in cases:
        try:
            call()
            raised = None
        except Exception as e:  # kafka-python raises the error class for the Kafka code
            raised = e
        assert isinstance(raised, error), (error, raised)
    admin.create_partitions({name: NewPartitions(4)})
    meta = admin.describe_topics([name])
    assert len(meta[0]["partitions"]) == 4
    admin.close()


def test_batches_compressed_by_one_client_are_read_by_another(broker):
    """kafka-python compresses (every codec), librdkafka (confluent-kafka) decompresses: the
    broker stores and serves the batches exactly as produced."""
    from confluent_kafka import Consumer
    from kafka import KafkaProducer
    topic = f"xcodec-{uuid.uuid4().hex[:8]}"
    sent = []
    for codec in ["gzip", "snappy", "lz4", "zstd"]:
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=codec, linger_ms=20)
        for i in range(25):
            v = f"{codec}-{i}-" + "x" * 100
            p.send(topic, v.encode())
            sent.append(v)
        p.flush()
        p.close()
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"{topic}-g",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    for _ in range(300):
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value().decode())
        if len(got) == len(sent):
            break
    c.close()
    assert got == sent


def _topic(admin_bootstrap, name, partitions=1, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": admin_bootstrap})
    for f in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                           config=config or {})]).values():
        f.result(timeout=10)


def test_fetch_answer_respects_max_bytes_across_partitions(broker):
    """Kafka's Fetch answer as a whole stays within the request's max_bytes: only the first
    batch of the first non-empty partition may exceed it (KIP-74). librdkafka refuses a
    larger answer ("Invalid response size ... increase receive.message.max.bytes") and
    drops the connection, so with two partitions each holding a 600 KB batch and
    fetch.max.bytes=700000 the consumer only gets everything if each answer holds one."""
    import time
    from confluent_kafka import Consumer, Producer, TopicPartition
    topic = f"maxbytes-{uuid.uuid4().hex[:8]}"
    _topic(BOOTSTRAP, topic, partitions=2)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 50, "batch.size": 2_000_000,
                  "message.max.bytes": 2_000_000, "compression.type": "none"})
    for part in (0, 1):
        for i in range(6):
            p.produce(topic, partition=part, value=bytes([65 + i]) * 100_000)
    p.flush(10)
    errors = []
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"mb-{uuid.uuid4().hex[:6]}",
                  "fetch.max.bytes": 700_000, "message.max.bytes": 700_000,
                  "receive.message.max.bytes": 1_000_000,
                  "max.partition.fetch.bytes": 1_048_576, "enable.auto.commit": False,
                  "error_cb": lambda e: errors.append(str(e))})
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    got, deadline = {0: 0, 1: 0}, time.monotonic() + 30
    while sum(got.values()) < 12 and time.monotonic() < deadline:
        for m in c.consume(10, timeout=0.5):
            if m.error() is None:
                got[m.partition()] += 1
    c.close()
    assert got == {0: 6, 1: 6}, (got, errors)
    assert not [e for e in errors if "Invalid response size" in e], errors


def test_log_append_time_and_timestamp_lookups_resolve_to_the_record(broker):
    """`message.timestamp.type=LogAppendTime` stamps records with the broker's time; ListOffsets
    by timestamp finds the exact record inside a batch (Kafka's fetchOffsetByTimestamp)."""
    import time
    from confluent_kafka import (TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, Consumer,
                                 Producer, TopicPartition)
    lat, ct = f"lat-{uuid.uuid4().hex[:8]}", f"ct-{uuid.uuid4().hex[:8]}"
    _topic(BOOTSTRAP, lat, config={"message.timestamp.type": "LogAppendTime"})
    _topic(BOOTSTRAP, ct)
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 200})
    before = int(time.time() * 1000)
    for i in range(5):           # one batch: linger.ms gathers them
        p.produce(lat, value=b"x", timestamp=1_000 + i)
        p.produce(ct, value=f"{i}".encode(), timestamp=1_000_000 + i * 10)
    p.flush(10)
    after = int(time.time() * 1000)
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"ts-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(lat, 0, 0)])
    stamps, deadline = [], time.monotonic() + 20
    while len(stamps) < 5 and time.monotonic() < deadline:
        stamps += [m.timestamp() for m in c.consume(5, timeout=0.5) if m.error() is None]
    assert len(stamps) == 5
    assert all(kind == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000
               for kind, ts in stamps), stamps
    c.unassign()
    c.assign([TopicPartition(ct, 0, 0)])
    got = []
    while len(got) < 5 and time.monotonic() < deadline:
        got += [m.timestamp() for m in c.consume(5, timeout=0.5) if m.error() is None]
    assert got == [(TIMESTAMP_CREATE_TIME, 1_000_000 + i * 10) for i in range(5)]
    found = c.offsets_for_times([TopicPartition(ct, 0, 1_000_015)], timeout=10)
    assert found[0].offset == 2, found      # the record at 1_000_020, inside the batch
    found = c.offsets_for_times([TopicPartition(ct, 0, 1_000_041)], timeout=10)
    assert found[0].offset == -1, found     # none at or after: the log end marker
    c.close()
