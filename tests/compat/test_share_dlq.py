"""Share groups beyond Kafka 4.1, with confluent-kafka's ShareConsumer against Shoal:

1. Dead-letter topic (KIP-1191, Kafka 4.4's group configs `errors.deadletterqueue.topic.name`
   and `errors.deadletterqueue.copy.record.enable`): the DLQ topic receives exactly the
   records rejected and the records that used up `share.delivery.count.limit`, each with the
   `__dlq.errors.*` headers naming source topic, partition, offset, group and delivery count,
   and (copy on) the original key and value; accepted records never reach it, and archived
   records are not delivered again.
2. Delayed redelivery (Shoal's `group.share.record.redelivery.backoff.ms`): a released record
   is not delivered again before the backoff has passed.

Brokers: own `shoal serve` processes (conftest.Broker), with
`share.auto.offset.reset=earliest` set as a GROUP config through IncrementalAlterConfigs.
"""
import time
import uuid

import pytest
from confluent_kafka import Consumer

from conftest import Broker
from test_share_groups import (ACCEPT, REJECT, RELEASE, Ledger, close, create_topic, produce,
                               set_group_config, share_consumer)

SETTINGS = {
    "group.share.record.lock.duration.ms": "5000",
    "group.share.min.record.lock.duration.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
}


@pytest.fixture
def broker_with(request):
    brokers = []

    def start(extra=None):
        b = Broker({**SETTINGS, **(extra or {})})
        b.start()
        brokers.append(b)
        return b.bootstrap

    yield start
    for b in brokers:
        b.finish()


def read_all(bootstrap, topic, want, timeout=30):
    """Every record of `topic` (a plain consumer from the beginning) until `want` are read
    and one more second brings nothing new, or the timeout."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline, quiet_since = [], time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(out) >= want:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    break
            continue
        if m.error():
            continue
        quiet_since = None
        out.append(m)
    c.close()
    return out


def headers(m):
    return {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])}


def test_dlq_receives_exactly_rejected_and_exhausted_records(broker_with):
    bootstrap = broker_with()
    tag = uuid.uuid4().hex[:8]
    topic, group, dlq = f"dlqsrc-{tag}", f"dlqsrc-{tag}-g", f"dlq.{tag}"
    create_topic(bootstrap, topic)
    # The DLQ topic must opt in (KIP-1191's errors.deadletterqueue.group.enable).
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(dlq, num_partitions=1, replication_factor=1,
                                           config={"errors.deadletterqueue.group.enable": "true"})
                                  ]).values():
        f.result(timeout=10)
    set_group_config(bootstrap, group, "share.auto.offset.reset", "earliest")
    set_group_config(bootstrap, group, "share.delivery.count.limit", "2")
    set_group_config(bootstrap, group, "errors.deadletterqueue.topic.name", dlq)
    set_group_config(bootstrap, group, "errors.deadletterqueue.copy.record.enable", "true")
    values = [f"v{i}" for i in range(30)]
    offsets = produce(bootstrap, topic, values)
    # i % 3: 0 rejected, 1 always released (archived at the limit, 2 deliveries), 2 accepted.
    action = {offsets[v]: (REJECT, RELEASE, ACCEPT)[i % 3] for i, v in enumerate(values)}
    expect_dlq = {o for o, a in action.items() if a != ACCEPT}
    ledger = Ledger("c1")
    c = share_consumer(bootstrap, group, "dlq-c1", ledger)
    c.subscribe([topic])
    seen = {}
    deadline = time.monotonic() + 60
    done = set()
    while time.monotonic() < deadline and len(done) < len(values):
        for m in ledger.poll(c, 1.0):
            o = m.offset()
            seen[o] = seen.get(o, 0) + 1
            how = action[o]
            ledger.ack(c, m, how)
            if how != RELEASE or m.delivery_count() >= 2:
                done.add(o)
        ledger.commit(c)
    close(c, ledger)
    assert ledger.problems() == []
    assert len(done) == len(values), f"not every record reached its end: {sorted(set(action) - done)}"
    # Released records were delivered exactly twice (the limit), the others once.
    for o, n in seen.items():
        assert n == (2 if action[o] == RELEASE else 1), (o, n, action[o])
    got = read_all(bootstrap, dlq, len(expect_dlq))
    by_offset = {}
    for m in got:
        h = headers(m)
        assert h["__dlq.errors.topic"] == topic
        assert h["__dlq.errors.partition"] == "0"
        assert h["__dlq.errors.group"] == group
        o = int(h["__dlq.errors.offset"])
        assert o not in by_offset, f"offset {o} dead-lettered twice"
        by_offset[o] = m
        want_count = "2" if action[o] == RELEASE else "1"
        assert h["__dlq.errors.delivery.count"] == want_count, (o, h)
        assert h["__dlq.errors.reason"] == ("rejected" if action[o] == REJECT
                                            else "delivery_count_limit")
        # Copy on: the original value.
        assert m.value().decode() == values[[offsets[v] for v in values].index(o)]
    assert set(by_offset) == expect_dlq, (sorted(set(by_offset) ^ expect_dlq))
    # Nothing archived comes back: a second consumer of the group gets nothing.
    l2 = Ledger("c2")
    c2 = share_consumer(bootstrap, group, "dlq-c2", l2)
    c2.subscribe([topic])
    again = []
    t_end = time.monotonic() + 6
    while time.monotonic() < t_end:
        again += l2.poll(c2, 0.5)
    close(c2, l2)
    assert again == [], [m.offset() for m in again]


def test_dlq_not_written_when_topic_does_not_opt_in(broker_with):
    """KIP-1191's gate: a DLQ topic without errors.deadletterqueue.group.enable=true gets
    nothing; the rejected records are archived all the same (not delivered again)."""
    bootstrap = broker_with()
    tag = uuid.uuid4().hex[:8]
    topic, group, dlq = f"dlqoff-{tag}", f"dlqoff-{tag}-g", f"dlq.off-{tag}"
    create_topic(bootstrap, topic)
    create_topic(bootstrap, dlq)
    set_group_config(bootstrap, group, "share.auto.offset.reset", "earliest")
    set_group_config(bootstrap, group, "errors.deadletterqueue.topic.name", dlq)
    produce(bootstrap, topic, [f"r{i}" for i in range(5)])
    ledger = Ledger("c")
    c = share_consumer(bootstrap, group, "dlqoff", ledger)
    c.subscribe([topic])
    rejected, deadline = set(), time.monotonic() + 30
    while len(rejected) < 5 and time.monotonic() < deadline:
        for m in ledger.poll(c, 1.0):
            ledger.ack(c, m, REJECT)
            rejected.add(m.offset())
        ledger.commit(c)
    again = []
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        again += ledger.poll(c, 0.5)
    close(c, ledger)
    assert rejected == set(range(5))
    assert again == []
    assert read_all(bootstrap, dlq, 0, timeout=3) == []


def test_released_record_waits_for_the_redelivery_backoff(broker_with):
    backoff_ms = 2000
    bootstrap = broker_with({"group.share.record.redelivery.backoff.ms": str(backoff_ms),
                             "group.share.record.redelivery.backoff.max.ms": "60000"})
    tag = uuid.uuid4().hex[:8]
    topic, group = f"backoff-{tag}", f"backoff-{tag}-g"
    create_topic(bootstrap, topic)
    set_group_config(bootstrap, group, "share.auto.offset.reset", "earliest")
    produce(bootstrap, topic, ["poison"])
    ledger = Ledger("c")
    c = share_consumer(bootstrap, group, "backoff", ledger)
    c.subscribe([topic])
    deliveries = []  # (monotonic time, delivery count)
    released_at = []
    deadline = time.monotonic() + 40
    while len(deliveries) < 3 and time.monotonic() < deadline:
        for m in ledger.poll(c, 0.2):
            deliveries.append((time.monotonic(), m.delivery_count()))
            ledger.ack(c, m, RELEASE if len(deliveries) < 3 else ACCEPT)
            ledger.commit(c)
            released_at.append(time.monotonic())
    close(c, ledger)
    assert ledger.problems() == []
    assert [d for _, d in deliveries] == [1, 2, 3]
    # Delivery 2 waits >= backoff after the first release, delivery 3 >= 2 x backoff
    # (exponential). The lower bounds are what the feature promises; 0.2 s of slack covers
    # clock reads around the commit.
    gap1 = deliveries[1][0] - released_at[0]
    gap2 = deliveries[2][0] - released_at[1]
    assert gap1 >= backoff_ms / 1000 - 0.2, gap1
    assert gap2 >= 2 * backoff_ms / 1000 - 0.2, gap2
