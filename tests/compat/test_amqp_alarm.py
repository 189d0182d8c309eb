"""The resource alarm (RabbitMQ's disk alarm) with pika: when the data directory's file system
has less free space than `--amqp-disk-free-limit` (RabbitMQ: `disk_free_limit.absolute`), a
connection that publishes gets `connection.blocked` (it advertised the capability, as pika does)
and nothing more is read from it, while a connection that only consumes keeps being served.

Shoal only: the test starts its own broker with a limit larger than any disk (1 EB), so the
alarm is raised at start; it needs no full disk.
"""
import time

import pika
import pytest

from amqp_harness import RABBIT, ShoalProcess, unique

pytestmark = pytest.mark.skipif(RABBIT, reason="needs Shoal itself (AMQP_TARGET=rabbitmq)")


def test_a_disk_alarm_blocks_publishers_and_keeps_consumers_served():
    b = ShoalProcess(extra_args=["--amqp-disk-free-limit", str(10**18)])
    endpoint = b.start()
    try:
        q = unique("alarm")
        # A consumer-only connection declares the queue; it is never blocked nor told so.
        consumer_blocked = []
        consumer = pika.BlockingConnection(endpoint.params())
        consumer.add_on_connection_blocked_callback(
            lambda conn, frame: consumer_blocked.append(frame.method.reason))
        cch = consumer.channel()
        cch.queue_declare(q)

        blocked = []
        publisher = pika.BlockingConnection(endpoint.params(blocked_connection_timeout=5))
        publisher.add_on_connection_blocked_callback(
            lambda conn, frame: blocked.append(frame.method.reason))
        pch = publisher.channel()
        # Before it publishes, the connection is only "blocking": it is served and not told.
        assert pch.queue_declare(q, passive=True).method.queue == q
        publisher.process_data_events(time_limit=0.5)
        assert blocked == [], blocked

        # Its first publish is taken, and then it gets connection.blocked.
        pch.basic_publish("", q, b"m0")
        deadline = time.monotonic() + 10
        while not blocked and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        assert blocked == ["low on disk"], blocked

        # Now nothing more is read from it: a method is never answered, and pika gives up
        # after blocked_connection_timeout.
        with pytest.raises((pika.exceptions.ConnectionBlockedTimeout,
                            pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed)):
            pch.queue_declare(q, passive=True)

        # The consumer-only connection is still served, gets the message taken before the
        # block, and was never notified.
        assert cch.queue_declare(q, passive=True).method.queue == q
        method, _props, body = cch.basic_get(q, auto_ack=True)
        assert method is not None and body == b"m0"
        consumer.process_data_events(time_limit=0.2)
        assert consumer_blocked == [], consumer_blocked
        consumer.close()
    finally:
        b.finish()
