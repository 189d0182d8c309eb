"""The pika (AMQP 0-9-1) snippets of the user's seed documents (../shared/seeds), run as
scripts. Against Shoal they run byte-for-byte unchanged (they connect to localhost:5672, where
conftest's broker listens); with AMQP_TARGET=rabbitmq only their host/port is rewritten.

Seed 004 has three: a producer (sends 'Hello, World!' to the durable queue example_queue,
persistent), a consumer (auto-ack, prints "Received b'...'" forever) and a "consumer group"
(prefetch_count=1 but auto_ack=True: prints the first message it receives, calls
stop_consuming() and exits). All three use example_queue, so each test purges it first and
after.

RabbitMQ behaviour the group test relies on (and Shoal must match):
- Several consumers on one queue get its messages round-robin: two group snippets waiting on
  the queue, two messages published, each snippet receives one.
- basic.qos does not limit auto-ack (no-ack) consumers: a group snippet started while two
  messages are queued is sent both; it prints the first, and the second, already delivered
  and auto-acked, is dropped by pika's basic_cancel. The queue ends up empty.
"""
import os
import pathlib
import re
import subprocess
import sys

import pika
import pytest

from amqp_harness import Script, queue_counts, wait_until
from conftest import ROOT

pytest_plugins = ["amqp_harness"]

SEEDS = pathlib.Path(os.environ.get("SHOAL_SEEDS", ROOT.parent / "shared" / "seeds"))
QUEUE = "example_queue"


def pika_snippets():
    """[(seed file stem, python code block that imports pika)]"""
    out = []
    for f in sorted(SEEDS.glob("*.txt")):
        for b in re.findall(r"```python\n(.*?)```", f.read_text(encoding="utf-8"), re.S):
            if re.search(r"^\s*import pika\b", b, re.M):
                out.append((f.stem, b))
    return out


SNIPPETS = pika_snippets()


def snippet_using(text):
    for _, b in SNIPPETS:
        if text in b:
            return b
    pytest.fail(f"no pika seed snippet contains {text!r}; seeds read from {SEEDS}")


PRODUCER = "send_message('Hello, World!')"
CONSUMER = "def consume():"
GROUP = "def consume_with_group("


def run_to_end(amqp, code, timeout=20):
    r = subprocess.run([sys.executable, "-c", amqp.seed_code(code)], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def example_queue(amqp):
    """example_queue declared as the snippets declare it, empty before and after the test."""
    c = amqp.connect()
    chan = c.channel()
    chan.queue_declare(QUEUE, durable=True)
    chan.queue_purge(QUEUE)
    try:
        yield c, chan
    finally:
        if not chan.is_open:
            chan = c.channel()
        chan.queue_purge(QUEUE)
        c.close()


def test_the_seeds_contain_the_three_pika_snippets():
    assert len(SNIPPETS) == 3, [s for s, _ in SNIPPETS]
    for text in (PRODUCER, CONSUMER, GROUP):
        snippet_using(text)


def test_seed_004_producer_sends_a_persistent_hello_world(amqp, example_queue):
    c, chan = example_queue
    rc, out, err = run_to_end(amqp, snippet_using(PRODUCER))
    assert rc == 0 and "Traceback" not in err, (out, err)
    wait_until(lambda: queue_counts(chan, QUEUE)[0] == 1, what="the message in example_queue")
    method, props, body = chan.basic_get(QUEUE, auto_ack=True)
    assert body == b"Hello, World!"
    assert props.delivery_mode == 2
    assert (method.exchange, method.routing_key, method.redelivered) == ("", QUEUE, False)
    assert method.message_count == 0
    assert chan.basic_get(QUEUE) == (None, None, None)


def test_seed_004_consumer_prints_queued_and_new_messages(amqp, example_queue):
    c, chan = example_queue
    # One message queued before the consumer starts, one sent while it is waiting.
    rc, out, err = run_to_end(amqp, snippet_using(PRODUCER))
    assert rc == 0, (out, err)
    consumer = Script(amqp.seed_code(snippet_using(CONSUMER)))
    try:
        consumer.wait_printed("Waiting for messages...")
        wait_until(lambda: len(consumer.printed("Received b'Hello, World!'")) == 1,
                   what="the queued message printed")
        wait_until(lambda: queue_counts(chan, QUEUE)[1] == 1, what="the consumer on example_queue")
        rc, out, err = run_to_end(amqp, snippet_using(PRODUCER))
        assert rc == 0, (out, err)
        wait_until(lambda: len(consumer.printed("Received b'Hello, World!'")) == 2,
                   what="the second message printed")
        # auto_ack: nothing is left in the queue.
        assert queue_counts(chan, QUEUE)[0] == 0
    finally:
        out, err = consumer.stop()
    assert out.count("Received b'Hello, World!'") == 2, (out, err)
    wait_until(lambda: queue_counts(chan, QUEUE)[1] == 0, what="the consumer gone")


def test_seed_004_group_snippets_each_take_one_message(amqp, example_queue):
    c, chan = example_queue
    group = amqp.seed_code(snippet_using(GROUP))
    members = [Script(group, env={"CONSUMER_GROUP_NAME": f"g{i}"}) for i in range(2)]
    try:
        wait_until(lambda: queue_counts(chan, QUEUE)[1] == 2, what="two consumers on example_queue")
        for i in range(2):
            chan.basic_publish("", QUEUE, f"group-{i}".encode(), pika.BasicProperties(delivery_mode=2))
        results = [m.wait() for m in members]
    finally:
        for m in members:
            m.stop()
    printed = []
    for rc, out, err in results:
        assert rc == 0 and "Traceback" not in err, (out, err)
        lines = [line for line in out.splitlines() if line.startswith("Received ")]
        assert len(lines) == 1, out
        printed.append(lines[0])
    assert sorted(printed) == ["Received b'group-0'", "Received b'group-1'"], printed
    wait_until(lambda: queue_counts(chan, QUEUE) == (0, 0), what="example_queue empty, no consumers")


def test_seed_004_group_snippet_alone_is_sent_every_queued_message(amqp, example_queue):
    # RabbitMQ: prefetch_count does not apply to an auto_ack consumer, so both queued messages
    # are delivered at once; the snippet prints the first and exits, and the second (acked on
    # delivery) is gone. This is the seed as written, not a recommended pattern.
    c, chan = example_queue
    for i in range(2):
        chan.basic_publish("", QUEUE, f"queued-{i}".encode(), pika.BasicProperties(delivery_mode=2))
    wait_until(lambda: queue_counts(chan, QUEUE)[0] == 2, what="two queued messages")
    rc, out, err = run_to_end(amqp, snippet_using(GROUP))
    assert rc == 0 and "Traceback" not in err, (out, err)
    assert out.splitlines() == ["Received b'queued-0'"], out
    wait_until(lambda: queue_counts(chan, QUEUE) == (0, 0), what="example_queue empty, no consumers")
