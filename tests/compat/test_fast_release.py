"""Shoal's `group.connection.close.session.timeout.ms`: a consumer-group member whose
connection closes without LeaveGroup (the process was killed) loses its partitions that many
ms later instead of after its session timeout. With librdkafka (confluent-kafka `Consumer`),
classic and KIP-848 consumer protocols.

The session timeouts here are 45 s (Kafka's defaults); the broker's grace is 1 s. The check
is that the takeover happens well before the session timeout could have fired, i.e. that the
feature acted; the times themselves are measured by `scripts/takeover.py`
(docs/benchmarks.md), not asserted here.
"""
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka import Consumer

from conftest import running_broker
from test_share_groups import create_topic, produce

SESSION_MS = 45000

CHILD = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer
    bootstrap, topic, group, protocol = sys.argv[1:5]
    conf = {"bootstrap.servers": bootstrap, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["session.timeout.ms"] = 45000
    c = Consumer(conf)
    c.subscribe([topic])
    while True:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            print("OWNER", flush=True)
            while True:
                time.sleep(1)
""")


@pytest.fixture(scope="module")
def grace_broker():
    with running_broker({"group.initial.rebalance.delay.ms": "0",
                         "group.consumer.session.timeout.ms": str(SESSION_MS),
                         "group.connection.close.session.timeout.ms": "1000"}) as b:
        yield b.bootstrap


def consumer(bootstrap, group, protocol):
    conf = {"bootstrap.servers": bootstrap, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["session.timeout.ms"] = SESSION_MS
    return Consumer(conf)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_killed_members_partition_moves_before_its_session_timeout(grace_broker, protocol):
    tag = uuid.uuid4().hex[:8]
    topic, group = f"fast-{tag}", f"fast-{tag}-g"
    create_topic(grace_broker, topic)
    produce(grace_broker, topic, [f"v{i}" for i in range(20)])
    child = subprocess.Popen([sys.executable, "-c", CHILD, grace_broker, topic, group, protocol],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert "OWNER" in child.stdout.readline()
        survivor = consumer(grace_broker, group, protocol)
        survivor.subscribe([topic])
        # Joined and settled: the one partition is the child's, the survivor gets nothing.
        settle = time.monotonic() + 8
        while time.monotonic() < settle:
            m = survivor.poll(0.5)
            assert m is None or m.error() is not None, "survivor got a record before the kill"
        t0 = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        got = None
        while time.monotonic() < t0 + SESSION_MS / 1000 * 0.6:
            m = survivor.poll(0.2)
            if m is not None and m.error() is None:
                got = time.monotonic() - t0
                break
        survivor.close()
        # Without the grace the partition would move only after the 45 s session timeout.
        assert got is not None, "the partition did not move within 60% of the session timeout"
    finally:
        if child.poll() is None:
            child.kill()
