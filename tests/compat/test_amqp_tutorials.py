"""RabbitMQ's Python tutorials 1-6 (https://www.rabbitmq.com/tutorials, pika) as tests, each
checking what the tutorial's text promises. Names carry a uuid suffix (the broker is shared).

RabbitMQ behaviour encoded here that may surprise:
- Tutorial 2: with no basic.qos, consumers of one queue get its messages strictly round-robin
  (two consumers, ten messages: five each, alternating). With prefetch_count=1 a worker holding
  an unacked message gets nothing more until it acks; the other worker gets everything else.
  Closing the slow worker's channel requeues its unacked message, redelivered=True, to the
  other worker.
- Tutorial 3: a message published to a fanout exchange with no queue bound is dropped (not
  kept for queues bound later). Server-named queues are called `amq.gen-` + 22 characters; an
  exclusive queue is deleted when its connection closes (a passive declare then gets 404).
- Tutorial 5 (topic matching, checked against RabbitMQ 3.10): `#` matches zero or more words,
  so `lazy.#` matches `lazy` and `#.rabbit` matches `rabbit`, and `#` alone matches the empty
  routing key; `*` is exactly one word and does NOT match the empty routing key; a message
  matching two bindings of the same queue is delivered to it once.
"""
import threading
import time
import uuid

import pika

from amqp_harness import WAIT_S, consume_n, queue_counts, unique, wait_until

pytest_plugins = ["amqp_harness"]

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def bodies(msgs):
    return [b for _, _, b in msgs]


# --- 1. "Hello World!" ---------------------------------------------------------------------

def test_1_hello_world(amqp):
    q = unique("hello")
    sender = amqp.connect()
    try:
        chan = sender.channel()
        chan.queue_declare(q)
        chan.basic_publish(exchange="", routing_key=q, body=b"Hello World!")
    finally:
        sender.close()
    receiver = amqp.connect()
    try:
        chan = receiver.channel()
        chan.queue_declare(q)                       # idempotent: same arguments
        got = consume_n(receiver, chan, q, 1, auto_ack=True, settle=0.2)
        assert bodies(got) == [b"Hello World!"]
        method, props, _ = got[0]
        assert (method.exchange, method.routing_key, method.redelivered) == ("", q, False)
        assert queue_counts(chan, q) == (0, 0)
        chan.queue_delete(q)
    finally:
        receiver.close()


# --- 2. Work queues ------------------------------------------------------------------------

def test_2_work_queues_round_robin_without_qos(amqp):
    q = unique("task_queue")
    workers = [amqp.connect() for _ in range(2)]
    got = [[], []]
    try:
        chans = [w.channel() for w in workers]
        for i, c in enumerate(chans):
            c.queue_declare(q, durable=True)
            c.basic_consume(q, lambda ch, m, p, b, i=i: (got[i].append(b), ch.basic_ack(m.delivery_tag)))
        wait_until(lambda: queue_counts(chans[0], q)[1] == 2, what="two workers")
        pub = chans[0]
        for n in range(10):
            pub.basic_publish("", q, f"task {n}".encode(), PERSISTENT)
        deadline = time.monotonic() + WAIT_S
        while len(got[0]) + len(got[1]) < 10 and time.monotonic() < deadline:
            for w in workers:
                w.process_data_events(time_limit=0.05)
        for w in workers:
            w.process_data_events(time_limit=0.2)
        assert sorted(got[0] + got[1]) == sorted(f"task {n}".encode() for n in range(10))
        # Strict round-robin: each worker every other message.
        assert len(got[0]) == len(got[1]) == 5, got
        evens = [f"task {n}".encode() for n in range(0, 10, 2)]
        odds = [f"task {n}".encode() for n in range(1, 10, 2)]
        assert sorted([got[0], got[1]]) == sorted([evens, odds]), got
        chans[0].queue_delete(q)
    finally:
        for w in workers:
            w.close()


def test_2_work_queues_fair_dispatch_persistence_and_redelivery(amqp):
    q = unique("task_queue")
    slow, fast = amqp.connect(), amqp.connect()
    slow_got, fast_got = [], []
    try:
        slow_ch = slow.channel()
        slow_ch.queue_declare(q, durable=True)
        slow_ch.basic_qos(prefetch_count=1)
        # The slow worker never acks.
        slow_ch.basic_consume(q, lambda ch, m, p, b: slow_got.append((m, p, b)))
        publisher = fast.channel()
        for n in range(6):
            publisher.basic_publish("", q, f"task {n}".encode(), PERSISTENT)
        deadline = time.monotonic() + WAIT_S
        while not slow_got and time.monotonic() < deadline:
            slow.process_data_events(time_limit=0.1)
        assert [b for _, _, b in slow_got] == [b"task 0"]

        fast_ch = fast.channel()
        fast_ch.queue_declare(q, durable=True)
        fast_ch.basic_qos(prefetch_count=1)
        fast_got += consume_n(fast, fast_ch, q, 5, auto_ack=False, settle=0.2)
        slow.process_data_events(time_limit=0.3)
        # prefetch_count=1: the worker holding an unacked message was sent nothing more.
        assert len(slow_got) == 1, [b for _, _, b in slow_got]
        assert bodies(fast_got) == [f"task {n}".encode() for n in range(1, 6)]
        for m, p, _ in slow_got + fast_got:
            assert p.delivery_mode == 2 and not m.redelivered
        assert queue_counts(fast_ch, q) == (0, 1)   # task 0 is unacked, not ready

        # The slow worker dies (its channel closes): its unacked task goes to the other worker.
        slow_ch.close()
        again = consume_n(fast, fast_ch, q, 1, auto_ack=False, settle=0.2)
        assert bodies(again) == [b"task 0"]
        assert again[0][0].redelivered is True
        assert again[0][1].delivery_mode == 2
        assert queue_counts(fast_ch, q) == (0, 0)
        fast_ch.queue_delete(q)
    finally:
        for c in (slow, fast):
            if c.is_open:
                c.close()


# --- 3. Publish/Subscribe ------------------------------------------------------------------

def test_3_publish_subscribe_fanout(amqp):
    logs = unique("logs")
    emitter = amqp.connect()
    receivers = [amqp.connect() for _ in range(2)]
    try:
        pub = emitter.channel()
        pub.exchange_declare(exchange=logs, exchange_type="fanout")
        # Nobody bound yet: a fanout exchange drops this one.
        pub.basic_publish(exchange=logs, routing_key="", body=b"before anyone listens")
        chans, queues = [], []
        for r in receivers:
            c = r.channel()
            result = c.queue_declare(queue="", exclusive=True)
            name = result.method.queue
            assert name.startswith("amq.gen-") and len(name) == len("amq.gen-") + 22, name
            c.queue_bind(exchange=logs, queue=name)
            chans.append(c)
            queues.append(name)
        assert queues[0] != queues[1]
        sent = [f"log {n}".encode() for n in range(3)]
        for b in sent:
            pub.basic_publish(exchange=logs, routing_key="ignored-by-fanout", body=b)
        for r, c, name in zip(receivers, chans, queues):
            got = consume_n(r, c, name, 3, auto_ack=True, settle=0.2)
            assert bodies(got) == sent          # every subscriber, every message, in order
            assert all(m.exchange == logs and m.routing_key == "ignored-by-fanout" for m, _, _ in got)

        # An exclusive queue is deleted with its connection. (While it exists, a passive
        # declare from another connection gets 405 RESOURCE_LOCKED; once deleted, 404.)
        receivers[0].close()

        def passive_declare_code():
            try:
                emitter.channel().queue_declare(queues[0], passive=True)
                return None
            except pika.exceptions.ChannelClosedByBroker as e:
                return e.reply_code

        wait_until(lambda: passive_declare_code() == 404, timeout=5, what="the exclusive queue deleted")
        pub.exchange_delete(logs)
    finally:
        for c in [emitter] + receivers:
            if c.is_open:
                c.close()


# --- 4. Routing ----------------------------------------------------------------------------

def test_4_routing_direct_exchange_by_severity(amqp):
    ex = unique("direct_logs")
    c = amqp.connect()
    try:
        chan = c.channel()
        chan.exchange_declare(exchange=ex, exchange_type="direct")
        errors_only = chan.queue_declare("", exclusive=True).method.queue
        chan.queue_bind(exchange=ex, queue=errors_only, routing_key="error")
        everything = chan.queue_declare("", exclusive=True).method.queue
        for severity in ("info", "warning", "error"):
            chan.queue_bind(exchange=ex, queue=everything, routing_key=severity)
        for severity in ("info", "warning", "error", "debug", "ERROR"):
            chan.basic_publish(exchange=ex, routing_key=severity, body=f"{severity}: message".encode())
        got = consume_n(c, chan, errors_only, 1, settle=0.2)
        assert [(m.routing_key, b) for m, _, b in got] == [("error", b"error: message")]
        got = consume_n(c, chan, everything, 3, settle=0.2)
        # Routing keys are case-sensitive; "debug" has no binding: dropped.
        assert [(m.routing_key, b) for m, _, b in got] == [
            ("info", b"info: message"), ("warning", b"warning: message"), ("error", b"error: message")]
        chan.exchange_delete(ex)
    finally:
        c.close()


# --- 5. Topics -----------------------------------------------------------------------------

TOPIC_BINDINGS = {
    "Q1": ["*.orange.*"],
    "Q2": ["*.*.rabbit", "lazy.#"],
    "all": ["#"],
    "one-word": ["*"],
    "kern": ["kern.*"],
    "critical": ["*.critical"],
    "a-to-b": ["a.#.b"],
}
TOPIC_ROUTES = {
    # routing key: the queues that get it (the tutorial's examples first)
    "quick.orange.rabbit": {"Q1", "Q2", "all"},
    "lazy.orange.elephant": {"Q1", "Q2", "all"},
    "quick.orange.fox": {"Q1", "all"},
    "lazy.brown.fox": {"Q2", "all"},
    "lazy.pink.rabbit": {"Q2", "all"},         # matches both Q2 bindings: delivered once
    "quick.brown.fox": {"all"},
    "orange": {"all", "one-word"},
    "quick.orange.new.rabbit": {"all"},
    "lazy.orange.new.rabbit": {"Q2", "all"},
    "lazy": {"Q2", "all", "one-word"},          # '#' matches zero words
    "kern.critical": {"kern", "critical", "all"},
    "kern.critical.disk": {"all"},
    "a.b": {"a-to-b", "all"},
    "a.x.y.b": {"a-to-b", "all"},
    "": {"all"},                                # '*' needs one word; '#' matches none
}


def test_5_topics(amqp):
    ex = unique("topic_logs")
    c = amqp.connect()
    try:
        chan = c.channel()
        chan.exchange_declare(exchange=ex, exchange_type="topic")
        queues = {}
        for label, keys in TOPIC_BINDINGS.items():
            name = chan.queue_declare("", exclusive=True).method.queue
            for key in keys:
                chan.queue_bind(exchange=ex, queue=name, routing_key=key)
            queues[label] = name
        for key in TOPIC_ROUTES:
            chan.basic_publish(exchange=ex, routing_key=key, body=f"[{key}]".encode())
        for label, name in queues.items():
            expected = [k for k, labels in TOPIC_ROUTES.items() if label in labels]
            got = consume_n(c, chan, name, len(expected), settle=0.2)
            assert [m.routing_key for m, _, _ in got] == expected, label
            assert bodies(got) == [f"[{k}]".encode() for k in expected], label
        chan.exchange_delete(ex)
    finally:
        c.close()


# --- 6. RPC --------------------------------------------------------------------------------

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class RpcServer(threading.Thread):
    """The tutorial's rpc_server.py in a thread (own connection): prefetch 1, replies to
    reply_to with the request's correlation_id, then acks the request."""

    def __init__(self, amqp, queue):
        super().__init__(daemon=True)
        self.amqp, self.queue = amqp, queue
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.served, self.error = 0, None

    def run(self):
        try:
            conn = self.amqp.connect()
            chan = conn.channel()
            chan.queue_declare(queue=self.queue)
            chan.basic_qos(prefetch_count=1)

            def on_request(ch, method, props, body):
                response = fib(int(body))
                ch.basic_publish(exchange="", routing_key=props.reply_to,
                                 properties=pika.BasicProperties(correlation_id=props.correlation_id),
                                 body=str(response).encode())
                ch.basic_ack(delivery_tag=method.delivery_tag)
                self.served += 1

            chan.basic_consume(queue=self.queue, on_message_callback=on_request)
            self.ready.set()
            while not self.stopping.is_set():
                conn.process_data_events(time_limit=0.1)
            conn.close()
        except Exception as e:          # reported by the test
            self.error = e
            self.ready.set()


def test_6_rpc(amqp):
    rpc_queue = unique("rpc_queue")
    server = RpcServer(amqp, rpc_queue)
    server.start()
    client = amqp.connect()
    try:
        assert server.ready.wait(WAIT_S) and server.error is None, server.error
        chan = client.channel()
        callback_queue = chan.queue_declare(queue="", exclusive=True).method.queue
        assert callback_queue.startswith("amq.gen-")
        responses = {}

        def on_response(ch, method, props, body):
            responses[props.correlation_id] = body

        chan.basic_consume(queue=callback_queue, on_message_callback=on_response, auto_ack=True)
        requests = {}
        for n in (0, 1, 2, 10, 20):
            corr_id = str(uuid.uuid4())
            requests[corr_id] = n
            chan.basic_publish(exchange="", routing_key=rpc_queue,
                               properties=pika.BasicProperties(reply_to=callback_queue,
                                                               correlation_id=corr_id),
                               body=str(n).encode())
        deadline = time.monotonic() + WAIT_S
        while len(responses) < len(requests) and time.monotonic() < deadline:
            client.process_data_events(time_limit=0.1)
        assert responses == {cid: str(fib(n)).encode() for cid, n in requests.items()}
        # The server acked every request: nothing ready, nothing unacked.
        wait_until(lambda: server.served == len(requests), what="the server's acks")
        assert queue_counts(chan, rpc_queue) == (0, 1)
        server.stopping.set()
        server.join(WAIT_S)
        assert server.error is None, server.error
        wait_until(lambda: queue_counts(chan, rpc_queue) == (0, 0), what="the server gone")
        chan.queue_delete(rpc_queue)
    finally:
        server.stopping.set()
        client.close()
