"""Kafka transactions (KIP-98, KIP-447) against Shoal with real clients.

What is covered (each test bounded by deadlines, with its own topics, groups and
transactional ids):

1. confluent-kafka's transactional producer with commits and aborts interleaved with a plain
   producer: a read_committed consumer gets every committed and plain record exactly once and
   no aborted one; read_uncommitted gets all of them; the markers take offsets.
2. An open transaction holds back read_committed consumers at its first offset (the last
   stable offset), even for plain records written after it; kafka-python's admin client sees it
   with ListTransactions / DescribeTransactions / DescribeProducers as Kafka reports it; after
   the commit everything is visible.
3. Fencing: a second producer with the same `transactional.id` aborts the first one's open
   transaction; the first one's commit fails with a fatal error.
4. `transaction.timeout.ms`: a transaction left open is aborted by the broker; the producer's
   late commit fails; `transaction.timeout.ms` above `transaction.max.timeout.ms` is refused
   with INVALID_TRANSACTION_TIMEOUT.
5. kafka-python's transactional producer with `send_offsets_to_transaction`: the offsets are
   committed with the transaction, and an aborted transaction leaves them unchanged.
6. The admin abort of a hanging transaction (kafka-python's `abort_transaction`, the
   WriteTxnMarkers request `kafka-transactions.sh abort` sends) releases the LSO.
7. An exactly-once read-process-write job (eos_job.py) SIGKILLed at random points, the broker
   SIGKILLed too every fourth round, 20 rounds (EOS_ROUNDS): the output read with
   read_committed holds every input record exactly once.

Brokers: one module broker (free port, own data directory) for 1-6, and one per run of 7
(it is killed). `transaction.max.timeout.ms=60000` is set on them (Kafka's default 900000) so
test 4 can exceed it cheaply; librdkafka's default `transaction.timeout.ms` is 60000.
"""
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin._transactions import AbortTransactionSpec
from kafka.structs import OffsetAndMetadata

from conftest import Broker, running_broker

SETTINGS = {
    "group.initial.rebalance.delay.ms": "0",
    "transaction.max.timeout.ms": "60000",
}
HERE = os.path.dirname(os.path.abspath(__file__))
EOS_ROUNDS = int(os.environ.get("EOS_ROUNDS", "20"))


@pytest.fixture(scope="module")
def txn_broker():
    with running_broker(SETTINGS, prefix="shoal-txn-") as b:
        yield b.bootstrap


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                           replication_factor=1)]).values():
        f.result(timeout=10)


def txn_producer(bootstrap, txn_id, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                  **extra})
    p.init_transactions(30)
    return p


def read_all(bootstrap, topic, partitions, isolation, settle_s=0.0, deadline_s=30):
    """Reads every partition of `topic` from offset 0 up to its high watermark (as seen when
    the read starts) with `isolation.level=isolation`; returns the values in order per
    partition as {partition: [str]}. With read_committed the position only reaches the high
    watermark once no transaction is open below it. `settle_s` > 0 instead reads for that
    long and returns what came (for "nothing visible" checks)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "fetch.wait.max.ms": 100})
    try:
        tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                 for p in range(partitions)}
        c.assign(tps)
        got = {p: [] for p in range(partitions)}
        end = time.monotonic() + (settle_s or deadline_s)
        while time.monotonic() < end:
            for m in c.consume(100, timeout=0.2):
                if m.error() is None:
                    got[m.partition()].append(m.value().decode())
            if not settle_s:
                pos = {tp.partition: tp.offset for tp in c.position(tps)}
                if all(pos[p] >= highs[p] for p in highs):
                    return got
        if settle_s:
            return got
        raise AssertionError(f"{topic} ({isolation}): position {c.position(tps)} never reached "
                             f"the high watermarks {highs}; got {got}")
    finally:
        c.close()


def flat(by_partition):
    return [v for vs in by_partition.values() for v in vs]


def kadmin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


# --- 1 ---------------------------------------------------------------------------------------

def test_committed_exactly_once_aborted_never(txn_broker):
    topic = unique("txn-mixed")
    create_topic(txn_broker, topic, partitions=3)
    tx = txn_producer(txn_broker, unique("tid"))
    plain = Producer({"bootstrap.servers": txn_broker, "enable.idempotence": True})
    committed, aborted, plain_values = [], [], []
    for t in range(6):
        tx.begin_transaction()
        values = [f"t{t}-{i}" for i in range(30)]
        for i, v in enumerate(values):
            tx.produce(topic, key=str(i).encode(), value=v.encode())
        pv = f"plain-{t}"
        plain.produce(topic, key=str(t).encode(), value=pv.encode())
        plain.flush(10)
        plain_values.append(pv)
        if t % 2 == 0:
            tx.commit_transaction(30)
            committed += values
        else:
            tx.flush(10)
            tx.abort_transaction(30)
            aborted += values

    rc = flat(read_all(txn_broker, topic, 3, "read_committed"))
    assert sorted(rc) == sorted(committed + plain_values), "read_committed: wrong record set"
    assert len(rc) == len(set(rc))
    assert not set(rc) & set(aborted)
    ru = flat(read_all(txn_broker, topic, 3, "read_uncommitted"))
    assert sorted(ru) == sorted(committed + aborted + plain_values)
    # Six transactions each ended with a marker in every partition they wrote to.
    c = Consumer({"bootstrap.servers": txn_broker, "group.id": unique("wm")})
    highs = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(3))
    c.close()
    assert highs >= len(ru) + 6, f"high watermarks {highs}: markers take no offsets?"


# --- 2 ---------------------------------------------------------------------------------------

def test_open_transaction_holds_back_read_committed(txn_broker):
    topic = unique("txn-lso")
    create_topic(txn_broker, topic)
    tid = unique("tid")
    tx = txn_producer(txn_broker, tid, **{"transaction.timeout.ms": 30000})
    plain = Producer({"bootstrap.servers": txn_broker})
    plain.produce(topic, value=b"before")
    plain.flush(10)
    tx.begin_transaction()
    for i in range(5):
        tx.produce(topic, value=f"open-{i}".encode())
    tx.flush(10)
    plain.produce(topic, value=b"after")
    plain.flush(10)

    assert flat(read_all(txn_broker, topic, 1, "read_committed", settle_s=3)) == ["before"]
    assert flat(read_all(txn_broker, topic, 1, "read_uncommitted")) == \
        ["before"] + [f"open-{i}" for i in range(5)] + ["after"]

    admin = kadmin(txn_broker)
    try:
        listed = [t for ts in admin.list_transactions().values() for t in ts
                  if t.transactional_id == tid]
        assert len(listed) == 1 and listed[0].state == "Ongoing", listed
        d = admin.describe_transactions([tid])[tid]
        assert d.state == "Ongoing"
        assert d.producer_id == listed[0].producer_id and d.producer_epoch >= 0
        assert d.transaction_timeout_ms == 30000
        assert d.topic_partitions == {KTopicPartition(topic, 0)}
        assert d.transaction_start_time_ms > 0
        ps = admin.describe_producers([KTopicPartition(topic, 0)])[KTopicPartition(topic, 0)]
        mine = [p for p in ps.active_producers if p.producer_id == d.producer_id]
        assert len(mine) == 1 and mine[0].current_transaction_start_offset == 1, ps
        assert mine[0].last_sequence == 4

        tx.commit_transaction(30)
        assert flat(read_all(txn_broker, topic, 1, "read_committed")) == \
            ["before"] + [f"open-{i}" for i in range(5)] + ["after"]
        assert admin.describe_transactions([tid])[tid].state == "CompleteCommit"
        ps = admin.describe_producers([KTopicPartition(topic, 0)])[KTopicPartition(topic, 0)]
        mine = [p for p in ps.active_producers if p.producer_id == d.producer_id]
        assert mine and mine[0].current_transaction_start_offset == -1
        with pytest.raises(Exception, match="(?i)TransactionalIdNotFound"):
            admin.describe_transactions([unique("nobody")])
    finally:
        admin.close()


# --- 3 ---------------------------------------------------------------------------------------

def test_second_producer_fences_the_first(txn_broker):
    topic = unique("txn-fence")
    create_topic(txn_broker, topic)
    tid = unique("tid")
    p1 = txn_producer(txn_broker, tid)
    p1.begin_transaction()
    for i in range(3):
        p1.produce(topic, value=f"zombie-{i}".encode())
    p1.flush(10)

    p2 = txn_producer(txn_broker, tid)      # aborts p1's transaction and bumps the epoch
    p2.begin_transaction()
    p2.produce(topic, value=b"p2")
    p2.commit_transaction(30)

    with pytest.raises(KafkaException) as e:
        p1.commit_transaction(10)
    err = e.value.args[0]
    assert err.fatal(), f"expected a fatal (fenced) error, got {err}"
    assert flat(read_all(txn_broker, topic, 1, "read_committed")) == ["p2"]


# --- 4 ---------------------------------------------------------------------------------------

def test_transaction_timeout_aborts(txn_broker):
    topic = unique("txn-timeout")
    create_topic(txn_broker, topic)
    tid = unique("tid")
    tx = txn_producer(txn_broker, tid, **{"transaction.timeout.ms": 2000})
    tx.begin_transaction()
    for i in range(3):
        tx.produce(topic, value=f"late-{i}".encode())
    tx.flush(10)
    plain = Producer({"bootstrap.servers": txn_broker})
    plain.produce(topic, value=b"plain")
    plain.flush(10)
    # The broker aborts the transaction on its own after 2 s: the LSO moves past it.
    assert flat(read_all(txn_broker, topic, 1, "read_committed", deadline_s=20)) == ["plain"]
    admin = kadmin(txn_broker)
    try:
        # The markers are written before CompleteAbort is: allow that one step to land.
        deadline, state = time.monotonic() + 10, None
        while state != "CompleteAbort" and time.monotonic() < deadline:
            state = admin.describe_transactions([tid])[tid].state
            time.sleep(0.05)
        assert state == "CompleteAbort"
    finally:
        admin.close()
    with pytest.raises(KafkaException):
        tx.commit_transaction(10)
    assert flat(read_all(txn_broker, topic, 1, "read_committed")) == ["plain"]

    p = Producer({"bootstrap.servers": txn_broker, "transactional.id": unique("tid"),
                  "transaction.timeout.ms": 120000})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(20)
    assert e.value.args[0].name() == "INVALID_TRANSACTION_TIMEOUT", e.value.args[0]


# --- 5 ---------------------------------------------------------------------------------------

def test_kafka_python_send_offsets_to_transaction(txn_broker):
    src, dst, group = unique("txn-src"), unique("txn-dst"), unique("txn-g")
    create_topic(txn_broker, src)
    create_topic(txn_broker, dst)
    plain = Producer({"bootstrap.servers": txn_broker})
    for i in range(20):
        plain.produce(src, value=f"in-{i}".encode())
    plain.flush(10)

    consumer = KafkaConsumer(src, bootstrap_servers=txn_broker, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level="read_committed", max_poll_records=10)
    producer = KafkaProducer(bootstrap_servers=txn_broker, transactional_id=unique("kp-tid"))
    admin = kadmin(txn_broker)
    try:
        producer.init_transactions()
        batches, deadline = [], time.monotonic() + 30
        while len(batches) < 2 and time.monotonic() < deadline:
            recs = [r for rs in consumer.poll(timeout_ms=1000, max_records=10).values()
                    for r in rs]
            if recs:
                batches.append(recs)
        assert len(batches) == 2, batches
        tp = KTopicPartition(src, 0)
        for n, (recs, commit) in enumerate(zip(batches, (True, False))):
            producer.begin_transaction()
            for r in recs:
                producer.send(dst, value=b"out-" + r.value)
            producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1)},
                consumer.group_metadata())
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
            offsets = admin.list_group_offsets({group: None})[group]
            # The aborted transaction's offsets are never committed.
            assert offsets[tp].offset == batches[0][-1].offset + 1, (n, offsets)
        assert batches[0][-1].offset + 1 == 10
        assert flat(read_all(txn_broker, dst, 1, "read_committed")) == \
            [f"out-in-{i}" for i in range(10)]
    finally:
        consumer.close()
        producer.close()
        admin.close()


# --- 6 ---------------------------------------------------------------------------------------

def test_admin_abort_of_a_hanging_transaction(txn_broker):
    topic = unique("txn-hanging")
    create_topic(txn_broker, topic)
    tid = unique("tid")
    tx = txn_producer(txn_broker, tid, **{"transaction.timeout.ms": 60000})
    tx.begin_transaction()
    tx.produce(topic, value=b"stuck")
    tx.flush(10)
    plain = Producer({"bootstrap.servers": txn_broker})
    plain.produce(topic, value=b"plain")
    plain.flush(10)
    assert flat(read_all(txn_broker, topic, 1, "read_committed", settle_s=2)) == []
    admin = kadmin(txn_broker)
    try:
        tp = KTopicPartition(topic, 0)
        producer = [p for p in admin.describe_producers([tp])[tp].active_producers
                    if p.current_transaction_start_offset == 0]
        assert len(producer) == 1
        admin.abort_transaction(AbortTransactionSpec(
            topic_partition=tp, producer_id=producer[0].producer_id,
            producer_epoch=producer[0].producer_epoch, coordinator_epoch=-1))
        assert flat(read_all(txn_broker, topic, 1, "read_committed")) == ["plain"]
        # A wrong epoch is refused as Kafka refuses it, and writes nothing.
        with pytest.raises(Exception, match="(?i)epoch"):
            admin.abort_transaction(AbortTransactionSpec(
                topic_partition=tp, producer_id=producer[0].producer_id,
                producer_epoch=producer[0].producer_epoch - 1, coordinator_epoch=-1))
    finally:
        admin.close()


# --- 7 ---------------------------------------------------------------------------------------

def test_exactly_once_job_survives_sigkill_of_job_and_broker():
    inputs = 2000
    broker = Broker(SETTINGS, prefix="shoal-eos-")
    job = None
    try:
        broker.start()
        inp, out, group, tid = unique("eos-in"), unique("eos-out"), unique("eos-g"), unique("eos")
        create_topic(broker.bootstrap, inp, partitions=3)
        create_topic(broker.bootstrap, out, partitions=3)
        p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
        for i in range(inputs):
            p.produce(inp, key=str(i).encode(), value=f"v{i}".encode())
        p.flush(30)

        def start_job(pause_s):
            return subprocess.Popen(
                [sys.executable, os.path.join(HERE, "eos_job.py"), broker.bootstrap, inp, out,
                 group, tid, str(inputs), str(pause_s)], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)

        rng = random.Random(int(os.environ.get("EOS_SEED", "1")))
        commits_per_round, broker_kills = [], 0
        for rnd in range(EOS_ROUNDS):
            job = start_job(0.15)
            time.sleep(rng.uniform(1.0, 4.0))
            kill_broker = rnd % 4 == 3
            if kill_broker:         # mid-stream, the job still running against it
                broker.kill()
                broker_kills += 1
            job.send_signal(signal.SIGKILL)
            stdout, _ = job.communicate(timeout=10)
            job = None
            commits_per_round.append(stdout.count("committed"))
            if kill_broker:
                broker.start()
        job = start_job(0)      # the rest, to the end
        stdout, stderr = job.communicate(timeout=180)
        assert job.returncode == 0, stderr[-3000:]
        job = None

        rc = flat(read_all(broker.bootstrap, out, 3, "read_committed", deadline_s=60))
        ru = flat(read_all(broker.bootstrap, out, 3, "read_uncommitted", deadline_s=60))
        values = sorted(v.split(":", 2)[2] for v in rc)
        missing = set(f"v{i}" for i in range(inputs)) - set(values)
        dupes = len(values) - len(set(values))
        print(f"\nexactly-once job: {EOS_ROUNDS} rounds ({broker_kills} with a broker SIGKILL), "
              f"transactions committed per round {commits_per_round}; output read_committed "
              f"{len(rc)} records for {inputs} inputs (missing {len(missing)}, duplicates "
              f"{dupes}); read_uncommitted {len(ru)} (aborted work {len(ru) - len(rc)})")
        assert not missing and dupes == 0 and len(rc) == inputs
        # Kills landed inside open transactions: their records are in the log, aborted.
        assert len(ru) > len(rc), "no transaction was ever cut short: the test proved nothing"
        assert sum(1 for c in commits_per_round if c > 0) >= EOS_ROUNDS // 2, \
            "the job made no progress in most rounds: the kills did not hit a running job"
    finally:
        if job is not None:
            job.kill()
        broker.finish()
