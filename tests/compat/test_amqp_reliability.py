"""AMQP 0-9-1 reliability features with pika: publisher confirms, acks/nacks/rejects and
redelivery, basic.get, consumers that die, a broker that dies, dead-lettering, and (Shoal
only) the queue seen from Kafka clients.

RabbitMQ 3.10 behaviour encoded here that the Shoal implementation must match:
- Requeued messages (basic.reject/basic.nack with requeue=True, or unacked when a channel or
  connection closes, including a SIGKILLed consumer process) go back to their ORIGINAL
  position in the queue and are redelivered with redelivered=True, in their original order,
  ahead of messages never delivered.
- basic.get on an empty queue answers Get-Empty (pika: (None, None, None)); Get-Ok carries the
  number of messages still ready (message_count). Delivery tags count 1, 2, 3... per channel.
- Dead-lettering (x-dead-letter-exchange) keeps the body, the properties and the headers, and
  adds the header `x-death`: a list holding one table per (queue, reason), with `count` (1 on
  the first death), `reason` ('rejected' for reject/nack requeue=False, 'expired' for TTL),
  `queue` (where it died), `exchange` (where it was first published: '' for the default
  exchange), `routing-keys` (list of the original routing keys), `time` (timestamp) and, for a
  per-message TTL, `original-expiration` (the `expiration` property, which the copy no longer
  carries). RabbitMQ also adds `x-first-death-reason`, `x-first-death-queue` and
  `x-first-death-exchange`. The copy is delivered with exchange = the DLX and routing key = the
  original one, unless x-dead-letter-routing-key replaces it.
- x-message-ttl (queue) and expiration (message) dead-letter with reason 'expired' once the
  TTL has passed, even with no consumer.
"""
import collections
import datetime
import signal
import time

import pika

from amqp_harness import (WAIT_S, Script, ShoalProcess, consume_n, get_one, queue_counts,
                          shoal_only, unique, wait_until)

pytest_plugins = ["amqp_harness"]

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def bodies(msgs):
    return [b for _, _, b in msgs]


# --- confirms ------------------------------------------------------------------------------

def test_publisher_confirms_under_load_then_consumed_exactly_once(amqp, conn, ch):
    q = unique("confirms")
    n = 2000
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(n):
        # With confirms on, pika's BlockingChannel returns only once the broker acked the
        # publish (and raises NackError/UnroutableError otherwise).
        ch.basic_publish("", q, f"msg-{i}".encode(), PERSISTENT)
    assert queue_counts(ch, q) == (n, 0)
    ch.basic_qos(prefetch_count=100)
    got = consume_n(conn, ch, q, n, timeout=30, auto_ack=False, settle=0.5)
    counts = collections.Counter(bodies(got))
    assert len(got) == n and set(counts) == {f"msg-{i}".encode() for i in range(n)}, len(got)
    assert max(counts.values()) == 1
    assert not any(m.redelivered for m, _, _ in got)
    assert all(p.delivery_mode == 2 for _, p, _ in got)
    # Delivered in publish order.
    assert bodies(got) == [f"msg-{i}".encode() for i in range(n)]
    assert queue_counts(ch, q) == (0, 0)
    ch.queue_delete(q)


# --- reject / nack / get -------------------------------------------------------------------

def test_reject_and_nack_requeue_redeliver_with_the_flag(amqp, ch):
    q = unique("requeue")
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    wait_until(lambda: queue_counts(ch, q)[0] == 3, what="3 messages")
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m0", False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m0", True)      # back at the head, flagged
    ch.basic_nack(m.delivery_tag, multiple=False, requeue=True)
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m0", True)
    ch.basic_ack(m.delivery_tag)
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m1", False)
    ch.basic_ack(m.delivery_tag)
    ch.queue_delete(q)


def test_nack_multiple_requeues_in_original_order(amqp, conn, ch):
    q = unique("nack-multi")
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode())
    ch.basic_qos(prefetch_count=3)
    held = []
    tag = ch.basic_consume(q, lambda c, m, p, b: held.append((m, p, b)))
    deadline = time.monotonic() + WAIT_S
    while len(held) < 3 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    conn.process_data_events(time_limit=0.2)
    assert bodies(held) == [b"m0", b"m1", b"m2"]      # prefetch 3: no more
    # Nack m0..m2 at once; they return to their places, ahead of m3, m4.
    ch.basic_nack(held[2][0].delivery_tag, multiple=True, requeue=True)
    ch.basic_cancel(tag)
    got = consume_n(conn, ch, q, 5, auto_ack=False, settle=0.2)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b"m0", True), (b"m1", True), (b"m2", True), (b"m3", False), (b"m4", False)]
    ch.queue_delete(q)


def test_basic_get(amqp):
    q = unique("get")
    c = amqp.connect()
    try:
        chan = c.channel()
        chan.queue_declare(q)
        assert chan.basic_get(q) == (None, None, None)      # Get-Empty
        for i in range(3):
            chan.basic_publish("", q, f"g{i}".encode(), pika.BasicProperties(message_id=f"id-{i}"))
        wait_until(lambda: queue_counts(chan, q)[0] == 3, what="3 messages")
        m, p, b = chan.basic_get(q, auto_ack=True)
        assert (b, m.message_count, m.delivery_tag, m.redelivered, m.routing_key, m.exchange) == \
            (b"g0", 2, 1, False, q, "")
        assert p.message_id == "id-0"
        m, p, b = chan.basic_get(q, auto_ack=False)
        assert (b, m.message_count, m.delivery_tag) == (b"g1", 1, 2)
        assert queue_counts(chan, q) == (1, 0)              # g1 unacked: not counted
        chan.close()                                        # g1 goes back, unacked
        chan = c.channel()
        wait_until(lambda: queue_counts(chan, q)[0] == 2, what="g1 requeued")
        m, p, b = chan.basic_get(q, auto_ack=False)
        assert (b, m.redelivered, m.delivery_tag, m.message_count) == (b"g1", True, 1, 1)
        chan.basic_ack(m.delivery_tag)
        m, p, b = chan.basic_get(q, auto_ack=False)
        assert (b, m.redelivered, m.message_count) == (b"g2", False, 0)
        chan.basic_ack(m.delivery_tag)
        assert chan.basic_get(q) == (None, None, None)
        chan.queue_delete(q)
    finally:
        c.close()


# --- a consumer process dies ---------------------------------------------------------------

HOLDER = """
import pika
conn = pika.BlockingConnection(pika.ConnectionParameters({host!r}, {port}))
ch = conn.channel()
ch.basic_qos(prefetch_count={n})
held = []
def on_message(c, method, props, body):
    held.append(body)
    if len(held) == {n}:
        print("holding", len(held), flush=True)
ch.basic_consume({queue!r}, on_message)   # manual ack: never acks
ch.start_consuming()
"""


def test_sigkilled_consumer_process_unacked_messages_are_redelivered(amqp, conn, ch):
    q = unique("sigkill-consumer")
    n = 10
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", q, f"held-{i}".encode(), PERSISTENT)
    holder = Script(HOLDER.format(host=amqp.host, port=amqp.port, n=n, queue=q))
    try:
        holder.wait_printed(f"holding {n}")
        assert queue_counts(ch, q) == (0, 1)           # all n unacked by the holder
        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(timeout=10)
    finally:
        holder.stop(signal.SIGKILL)
    got = consume_n(conn, ch, q, n, timeout=20, auto_ack=False, settle=0.3)
    assert [(b, m.redelivered) for m, _, b in got] == [(f"held-{i}".encode(), True) for i in range(n)]
    assert queue_counts(ch, q) == (0, 0)
    ch.queue_delete(q)


# --- the broker dies (Shoal) ---------------------------------------------------------------

@shoal_only
def test_confirmed_messages_survive_a_sigkilled_broker():
    broker = ShoalProcess()
    try:
        ep = broker.start()
        q = unique("durable")
        n = 500
        c = ep.connect()
        chan = c.channel()
        chan.queue_declare(q, durable=True)
        chan.confirm_delivery()
        for i in range(n):
            chan.basic_publish("", q, f"persist-{i}".encode(), PERSISTENT)
        broker.kill()                                   # no goodbye to the client
        ep = broker.start()
        c = ep.connect()
        chan = c.channel()
        chan.queue_declare(q, durable=True)             # same declaration: fine
        assert queue_counts(chan, q)[0] == n
        chan.basic_qos(prefetch_count=100)
        got = consume_n(c, chan, q, n, timeout=30, auto_ack=False, settle=0.5)
        counts = collections.Counter(bodies(got))
        assert set(counts) == {f"persist-{i}".encode() for i in range(n)} and max(counts.values()) == 1, \
            (len(got), len(counts))
        assert all(p.delivery_mode == 2 for _, p, _ in got)
        assert queue_counts(chan, q) == (0, 0)
        c.close()
    finally:
        broker.finish()


# --- dead-lettering ------------------------------------------------------------------------

def dlx_setup(chan, kind="fanout", binding_key=""):
    dlx, dlq = unique("dlx"), unique("dlq")
    chan.exchange_declare(dlx, kind)
    chan.queue_declare(dlq)
    chan.queue_bind(dlq, dlx, binding_key)
    return dlx, dlq


def check_x_death(headers, reason, queue, routing_keys, exchange=""):
    deaths = headers["x-death"]
    assert isinstance(deaths, list) and len(deaths) == 1, deaths
    death = deaths[0]
    assert death["count"] == 1
    assert death["reason"] == reason
    assert death["queue"] == queue
    assert death["exchange"] == exchange
    assert death["routing-keys"] == routing_keys
    assert isinstance(death["time"], datetime.datetime)
    # pika decodes AMQP timestamps as naive UTC datetimes (second resolution).
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - death["time"]).total_seconds()) < 120, death["time"]
    assert headers["x-first-death-reason"] == reason
    assert headers["x-first-death-queue"] == queue
    assert headers["x-first-death-exchange"] == exchange
    return death


def test_dead_letter_on_reject_without_requeue(amqp, ch):
    dlx, dlq = dlx_setup(ch)
    q = unique("work")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"poison", pika.BasicProperties(
        headers={"attempt": 1, "origin": "test"}, message_id="m-1", content_type="text/plain",
        delivery_mode=2))
    got = get_one(ch, q)
    assert got is not None
    ch.basic_reject(got[0].delivery_tag, requeue=False)
    dead = get_one(ch, dlq, auto_ack=True)
    assert dead is not None, "nothing dead-lettered"
    m, p, b = dead
    assert b == b"poison"
    assert (m.exchange, m.routing_key, m.redelivered) == (dlx, q, False)
    assert (p.message_id, p.content_type, p.delivery_mode) == ("m-1", "text/plain", 2)
    assert p.headers["attempt"] == 1 and p.headers["origin"] == "test"
    check_x_death(p.headers, "rejected", q, [q])
    assert queue_counts(ch, q) == (0, 0)                # gone from the source queue
    for name in (q, dlq):
        ch.queue_delete(name)
    ch.exchange_delete(dlx)


def test_dead_letter_on_queue_ttl(amqp, ch):
    dlx, dlq = dlx_setup(ch)
    q = unique("ttl")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 200})
    ch.confirm_delivery()
    sent = time.monotonic()
    ch.basic_publish("", q, b"short-lived")
    dead = get_one(ch, dlq, auto_ack=True)              # no consumer on q at all
    waited = time.monotonic() - sent
    assert dead is not None, "nothing dead-lettered"
    m, p, b = dead
    assert b == b"short-lived" and (m.exchange, m.routing_key) == (dlx, q)
    assert waited >= 0.15, f"dead-lettered after {waited:.3f} s, before its 200 ms TTL"
    death = check_x_death(p.headers, "expired", q, [q])
    assert "original-expiration" not in death            # queue TTL, not a message TTL
    assert queue_counts(ch, q) == (0, 0)
    for name in (q, dlq):
        ch.queue_delete(name)
    ch.exchange_delete(dlx)


def test_dead_letter_on_message_expiration(amqp, ch):
    dlx, dlq = dlx_setup(ch)
    q = unique("expiring")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    ch.confirm_delivery()
    sent = time.monotonic()
    ch.basic_publish("", q, b"expires", pika.BasicProperties(expiration="200", message_id="e-1"))
    dead = get_one(ch, dlq, auto_ack=True)
    waited = time.monotonic() - sent
    assert dead is not None, "nothing dead-lettered"
    m, p, b = dead
    assert b == b"expires" and p.message_id == "e-1"
    assert waited >= 0.15, f"dead-lettered after {waited:.3f} s, before its 200 ms expiration"
    death = check_x_death(p.headers, "expired", q, [q])
    assert death["original-expiration"] == "200"
    assert p.expiration is None                         # the copy does not expire again
    assert queue_counts(ch, q) == (0, 0)
    for name in (q, dlq):
        ch.queue_delete(name)
    ch.exchange_delete(dlx)


def test_dead_letter_routing_key(amqp, ch):
    dlx, dlq = dlx_setup(ch, kind="direct", binding_key="dead")
    q = unique("rk")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx,
                                   "x-dead-letter-routing-key": "dead"})
    # Published through a direct exchange with its own routing key.
    src = unique("src")
    ch.exchange_declare(src, "direct")
    ch.queue_bind(q, src, "orders.new")
    ch.basic_publish(src, "orders.new", b"order")
    got = get_one(ch, q)
    assert got is not None and got[0].routing_key == "orders.new"
    ch.basic_nack(got[0].delivery_tag, requeue=False)
    dead = get_one(ch, dlq, auto_ack=True)
    assert dead is not None, "nothing dead-lettered to the 'dead' binding"
    m, p, b = dead
    assert b == b"order" and (m.exchange, m.routing_key) == (dlx, "dead")
    # x-death names where it was published and with which routing key, not the DLX's.
    check_x_death(p.headers, "rejected", q, ["orders.new"], exchange=src)
    for name in (q, dlq):
        ch.queue_delete(name)
    for name in (src, dlx):
        ch.exchange_delete(name)


# --- Kafka interop (Shoal) -----------------------------------------------------------------

def kafka_records(bootstrap, topic, n, timeout=WAIT_S):
    """The first n records of topic partition 0, read with a plain (classic) consumer."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m)
        return out
    finally:
        c.close()


@shoal_only
def test_amqp_publish_is_a_kafka_record(amqp, ch):
    q = unique("to-kafka")
    ch.queue_declare(q, durable=True)
    ex = unique("orders")
    ch.exchange_declare(ex, "direct")
    ch.queue_bind(q, ex, "order.created")
    ch.confirm_delivery()
    ch.basic_publish("", q, b"payload", pika.BasicProperties(
        content_type="text/plain", correlation_id="corr-1", reply_to="replies",
        message_id="msg-1", delivery_mode=2, headers={"h-str": "v", "h-int": 42}))
    ch.basic_publish(ex, "order.created", b"via exchange")
    records = kafka_records(amqp.kafka, q, 2)
    assert len(records) == 2, records
    first, second = records
    assert (first.topic(), first.partition(), first.value(), first.key()) == (q, 0, b"payload", q.encode())
    headers = dict(first.headers() or [])
    assert headers["h-str"] == b"v" and headers["h-int"] == b"42", headers
    assert headers["amqp.content-type"] == b"text/plain"
    assert headers["amqp.correlation-id"] == b"corr-1"
    assert headers["amqp.reply-to"] == b"replies"
    assert headers["amqp.message-id"] == b"msg-1"
    assert headers["amqp.delivery-mode"] == b"2"
    assert (second.value(), second.key()) == (b"via exchange", b"order.created")


@shoal_only
def test_kafka_record_is_an_amqp_message(amqp, conn, ch):
    from confluent_kafka import Producer
    q = unique("from-kafka")
    ch.queue_declare(q, durable=True)
    p = Producer({"bootstrap.servers": amqp.kafka})
    p.produce(q, value=b"from kafka", key=b"k1", headers=[
        ("h1", b"v1"), ("amqp.content-type", b"application/json"),
        ("amqp.correlation-id", b"corr-k"), ("amqp.message-id", b"mid-k"),
        ("amqp.reply-to", b"reply-q")])
    assert p.flush(10) == 0
    got = consume_n(conn, ch, q, 1, auto_ack=False, settle=0.2)
    assert bodies(got) == [b"from kafka"]
    _, props, _ = got[0]
    assert props.headers["h1"] in (b"v1", "v1"), props.headers
    assert props.content_type == "application/json"
    assert props.correlation_id == "corr-k"
    assert props.message_id == "mid-k"
    assert props.reply_to == "reply-q"
    assert queue_counts(ch, q) == (0, 0)


@shoal_only
def test_share_consumer_and_amqp_consumer_compete_exactly_once(amqp, conn, ch):
    from confluent_kafka import ShareConsumer
    q = unique("shared")
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    seen = collections.Counter()
    by = {"kafka": 0, "amqp": 0}
    share = ShareConsumer({"bootstrap.servers": amqp.kafka, "group.id": q})
    try:
        share.subscribe([q])

        def poll_share(timeout):
            for m in share.poll(timeout):
                if m.error() is None:
                    seen[m.value()] += 1
                    by["kafka"] += 1

        # Warm up: until the share consumer (alone on the queue) has been given a record.
        deadline, i = time.monotonic() + 30, 0
        while by["kafka"] == 0 and time.monotonic() < deadline:
            ch.basic_publish("", q, f"warm-{i}".encode(), PERSISTENT)
            i += 1
            poll_share(0.5)
        assert by["kafka"] > 0, "the ShareConsumer got nothing in 30 s"
        warm = {f"warm-{j}".encode() for j in range(i)}

        # Now an AMQP consumer too, and 200 messages for both.
        ch.basic_qos(prefetch_count=10)

        def on_message(c, method, props, body):
            seen[body] += 1
            by["amqp"] += 1
            c.basic_ack(method.delivery_tag)

        ch.basic_consume(q, on_message)
        sent = {f"m-{j}".encode() for j in range(200)}
        for j in range(200):
            ch.basic_publish("", q, f"m-{j}".encode(), PERSISTENT)
            if j % 20 == 19:
                conn.process_data_events(time_limit=0.05)
                poll_share(0.05)
        deadline = time.monotonic() + 30
        while not (sent | warm) <= set(seen) and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
            poll_share(0.1)
        end = time.monotonic() + 1.0                   # anything delivered twice?
        while time.monotonic() < end:
            conn.process_data_events(time_limit=0.05)
            poll_share(0.1)
    finally:
        share.close()
    assert (sent | warm) - set(seen) == set(), f"missing {len((sent | warm) - set(seen))}; by {by}"
    assert set(seen) == sent | warm
    assert max(seen.values()) == 1, [b for b, k in seen.items() if k > 1][:10]
    assert by["amqp"] > 0 and by["kafka"] > 0, by


# --- x-max-length ----------------------------------------------------------------------------

def test_max_length_drops_the_oldest_ready_messages(amqp, ch):
    """x-max-length with the default overflow (drop-head): the queue keeps the newest."""
    q = unique("maxlen")
    ch.queue_declare(q, arguments={"x-max-length": 3})
    ch.confirm_delivery()
    for i in range(6):
        ch.basic_publish("", q, f"m{i}".encode())
    wait_until(lambda: queue_counts(ch, q)[0] == 3, what="3 messages left")
    got = [get_one(ch, q, auto_ack=True)[2] for _ in range(3)]
    assert got == [b"m3", b"m4", b"m5"]
    ch.queue_delete(q)


def test_max_length_drop_head_dead_letters_with_reason_maxlen(amqp, ch):
    q, dlq = unique("maxlen-src"), unique("maxlen-dlq")
    ch.queue_declare(dlq)
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"old")
    ch.basic_publish("", q, b"new")
    m, p, b = get_one(ch, dlq, auto_ack=True)
    assert b == b"old"
    assert p.headers["x-death"][0]["reason"] == "maxlen"
    wait_until(lambda: queue_counts(ch, q)[0] == 1, what="1 message left")
    assert get_one(ch, q, auto_ack=True)[2] == b"new"
    ch.queue_delete(q)
    ch.queue_delete(dlq)


def test_max_length_reject_publish_nacks_what_a_full_queue_refuses(amqp, ch):
    q = unique("maxlen-reject")
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    try:
        ch.basic_publish("", q, b"c")
        raise AssertionError("the third publish was confirmed")
    except pika.exceptions.NackError:
        pass
    assert queue_counts(ch, q)[0] == 2
    assert get_one(ch, q, auto_ack=True)[2] == b"a"
    ch.basic_publish("", q, b"d")                 # room again
    assert [get_one(ch, q, auto_ack=True)[2] for _ in range(2)] == [b"b", b"d"]
    ch.queue_delete(q)
