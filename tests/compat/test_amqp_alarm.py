"""The resource alarm (RabbitMQ's disk alarm) with pika: when the data directory's file system
has less free space than `--amqp-disk-free-limit` (RabbitMQ: `disk_free_limit.absolute`), a
publishing connection gets `connection.blocked` (it advertised the capability, as pika does)
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
        # A consumer-only connection declares the queue and waits for messages.
        consumer = pika.BlockingConnection(endpoint.params())
        cch = consumer.channel()
        cch.queue_declare(q)

        blocked = []
        publisher = pika.BlockingConnection(endpoint.params(blocked_connection_timeout=3))
        publisher.add_on_connection_blocked_callback(
            lambda conn, frame: blocked.append(frame.method.reason))
        pch = publisher.channel()
        deadline = time.monotonic() + 10
        while not blocked and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        assert blocked == ["low on disk"], blocked

        # Its first publish is taken; then the broker reads no more from it, so a confirmed
        # publish never completes and pika gives up after blocked_connection_timeout.
        pch.confirm_delivery()
        with pytest.raises((pika.exceptions.ConnectionBlockedTimeout,
                            pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed)):
            for i in range(3):
                pch.basic_publish("", q, f"m{i}".encode())

        # The consumer-only connection is still served.
        assert cch.queue_declare(q, passive=True).method.queue == q
        consumer.close()
    finally:
        b.finish()
