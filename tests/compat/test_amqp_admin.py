"""The AMQP front end's operator surface against a real Shoal process and real clients: pika
declares a queue, publishes, consumes part of it with manual acks and holds some deliveries
unacknowledged; then the admin API (`/api/v1/queues`, `/api/v1/exchanges`), `GET /metrics`
(parsed by the reference OpenMetrics parser, prometheus_client) and `shoal queue list` show
the same counts, consumers, rates and topic; `shoal queue declare|purge|delete` change the
queue and pika sees the change.

The test starts a private broker on free ports (`--amqp-addr 127.0.0.1:0`, its addresses read
from the readiness lines) so its counters are its own."""
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pika
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import shoal_bin, free_port

WAIT_S = 15
N = 20            # published
PREFETCH = 8      # the consumer holds at most this many unacknowledged
ACKED = 5         # acknowledged by the consumer


def samples(families, name, **labels):
    return [s for f in families.values() for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


@pytest.fixture
def shoal():
    """A private broker; yields (http address, amqp port)."""
    data = tempfile.mkdtemp(prefix="shoal-amqp-admin-")
    log_path = os.path.join(data, "broker.log")
    log = open(log_path, "w")
    port = free_port()
    proc = subprocess.Popen(
        [shoal_bin(), "serve", "--kafka-addr", f"127.0.0.1:{port}", "--http-addr", "127.0.0.1:0",
         "--amqp-addr", "127.0.0.1:0", "--data-dir", os.path.join(data, "data")],
        stdout=subprocess.PIPE, stderr=log, text=True)
    http = amqp_port = None
    for line in proc.stdout:
        if line.startswith("shoal: http listening on "):
            http = line.split()[-1]
        if line.startswith("shoal: amqp listening on "):
            amqp_port = int(line.split()[-1].rsplit(":", 1)[1])
        if line.startswith("shoal: kafka listening on "):
            break
    assert http and amqp_port, "the broker did not print its http and amqp addresses"
    try:
        yield http, amqp_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        with open(log_path) as f:
            errors = [line for line in f if " ERROR " in line]
        assert not errors, "the broker logged errors:\n" + "".join(errors)


def api(http, method, path, body=None):
    """(status, JSON or None) of one admin API request; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{http}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw.strip() else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw.strip() else None


def metrics(http):
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    # The strict parser raises on anything malformed (a second `# EOF`, a bad family).
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, **labels):
    got = samples(families, name, **labels)
    assert len(got) == 1, f"{name}{labels}: {got}"
    return got[0].value


def cli(http, *args):
    r = subprocess.run([shoal_bin(), "queue", "--admin-api", f"http://{http}", *args],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def wait_for(check, what):
    """Polls `check` (returns a value or None) until it answers; fails naming `what`."""
    deadline = time.time() + WAIT_S
    last = None
    while time.time() < deadline:
        last = check()
        if last is not None:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def queue_when(http, name, **expected):
    """The queue's JSON once its fields have the expected values."""
    def check():
        status, q = api(http, "GET", f"/api/v1/queues/{name}")
        if status == 200 and all(q.get(k) == v for k, v in expected.items()):
            return q
        return None
    return wait_for(check, f"queue {name} with {expected}")


def list_row(http, name):
    rc, out, err = cli(http, "list")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UNACKED", "CONSUMERS", "PUBLISH/S",
                                "DELIVER/S", "ACK/S", "TOPIC"]
    rows = {cells[0]: cells for cells in (line.split() for line in lines[1:])}
    return rows.get(name)


def test_admin_api_metrics_and_cli_show_and_change_a_pika_queue(shoal):
    http, port = shoal
    q = "orders-admin"
    params = pika.ConnectionParameters("127.0.0.1", port)
    pub = pika.BlockingConnection(params)
    pch = pub.channel()
    pch.confirm_delivery()
    pch.queue_declare(q, durable=True, arguments={"x-message-ttl": 600000})
    pch.queue_bind(q, "amq.direct", routing_key="orders")
    for i in range(N):
        exchange, key = ("amq.direct", "orders") if i % 2 else ("", q)
        pch.basic_publish(exchange, key, f"m{i}".encode(),
                          pika.BasicProperties(delivery_mode=2))

    con = pika.BlockingConnection(params)
    cch = con.channel()
    cch.basic_qos(prefetch_count=PREFETCH)
    got = []
    cch.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag))
    deadline = time.time() + WAIT_S
    while len(got) < PREFETCH and time.time() < deadline:
        con.process_data_events(time_limit=0.1)
    assert len(got) == PREFETCH
    for tag in got[:ACKED]:
        cch.basic_ack(tag)
    # The acks free credit: the dispatcher refills the prefetch window.
    deadline = time.time() + WAIT_S
    while len(got) < PREFETCH + ACKED and time.time() < deadline:
        con.process_data_events(time_limit=0.1)
    assert len(got) == PREFETCH + ACKED
    con.process_data_events(time_limit=0.3)
    assert len(got) == PREFETCH + ACKED, "more delivered than the prefetch allows"

    ready = N - PREFETCH - ACKED
    # --- the admin API ---
    row = queue_when(http, q, messages_ready=ready, messages_unacknowledged=PREFETCH,
                     consumers=1)
    assert row["messages"] == ready + PREFETCH
    assert (row["durable"], row["auto_delete"], row["exclusive"]) == (True, False, False)
    assert row["arguments"] == {"x-message-ttl": 600000}
    assert row["vhost"] == "/" and row["topic"] == q and row["share_group"] == q
    assert {"source": "", "routing_key": q, "arguments": {}} in row["bindings"]
    assert {"source": "amq.direct", "routing_key": "orders", "arguments": {}} in row["bindings"]
    stats = wait_for(lambda: (lambda s: s if s["ack"] == ACKED else None)(
        api(http, "GET", f"/api/v1/queues/{q}")[1]["message_stats"]), "the acks to be counted")
    assert stats["publish"] == N
    assert stats["deliver_get"] == PREFETCH + ACKED
    # Rates are per second over the last 5 s: everything happened within it.
    for k in ("publish_details", "deliver_get_details", "ack_details"):
        assert stats[k]["rate"] > 0, (k, stats)
    status, listed = api(http, "GET", "/api/v1/queues")
    assert status == 200 and [x["name"] for x in listed] == [q]
    status, exchanges = api(http, "GET", "/api/v1/exchanges")
    assert status == 200
    by_name = {x["name"]: x for x in exchanges}
    assert {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers"} <= set(by_name)
    assert by_name["amq.direct"]["type"] == "direct"
    assert {"destination": q, "destination_type": "queue", "routing_key": "orders",
            "arguments": {}} in by_name["amq.direct"]["bindings"]
    assert api(http, "GET", "/api/v1/queues/no-such-queue")[0] == 404

    # --- /metrics, RabbitMQ's names ---
    fam = metrics(http)
    labels = dict(vhost="/", queue=q)
    assert value(fam, "rabbitmq_queue_messages_ready", **labels) == ready
    assert value(fam, "rabbitmq_queue_messages_unacked", **labels) == PREFETCH
    assert value(fam, "rabbitmq_queue_messages", **labels) == ready + PREFETCH
    assert value(fam, "rabbitmq_queue_consumers", **labels) == 1
    assert value(fam, "rabbitmq_queue_messages_published_total", **labels) == N
    assert value(fam, "rabbitmq_queue_messages_delivered_total", **labels) == PREFETCH + ACKED
    assert value(fam, "rabbitmq_queue_messages_acked_total", **labels) == ACKED
    assert value(fam, "rabbitmq_connections") == 2
    assert value(fam, "rabbitmq_queues") == 1
    # The broker's own families are still on the page.
    assert value(fam, "kafka_topic_partitions", topic=q) == 1

    # --- shoal queue list ---
    cells = list_row(http, q)
    assert cells is not None
    assert cells[1:4] == [str(ready), str(PREFETCH), "1"]
    assert all(float(c) >= 0 for c in cells[4:7])
    assert cells[7] == q
    rc, out, err = cli(http, "--output", "json", "list")
    assert rc == 0, err
    assert [x["name"] for x in json.loads(out)] == [q]

    # --- shoal queue purge: the ready messages go, the held deliveries stay ---
    rc, out, err = cli(http, "purge", q)
    assert rc == 0, err
    assert out.strip() == f"Purged {ready} messages from queue '{q}'."
    row = queue_when(http, q, messages_ready=0, messages_unacknowledged=PREFETCH)
    # A purge is not an acknowledgement.
    assert row["message_stats"]["ack"] == ACKED
    assert value(metrics(http), "rabbitmq_queue_messages_ready", **labels) == 0

    # The consumer goes: what it held is ready again.
    con.close()
    queue_when(http, q, messages_ready=PREFETCH, messages_unacknowledged=0, consumers=0)

    # --- shoal queue delete ---
    rc, out, err = cli(http, "delete", "--if-empty", q)
    assert rc != 0 and "PRECONDITION_FAILED" in err and "not empty" in err, (out, err)
    rc, out, err = cli(http, "delete", q)
    assert rc == 0, err
    assert out.strip() == f"Deleted queue '{q}' ({PREFETCH} ready messages)."
    assert api(http, "GET", f"/api/v1/queues/{q}")[0] == 404
    assert not samples(metrics(http), "rabbitmq_queue_messages_ready", queue=q)
    rc, out, err = cli(http, "purge", q)
    assert rc != 0 and "NOT_FOUND" in err, (out, err)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        pch.queue_declare(q, passive=True)
    assert closed.value.reply_code == 404
    pub.close()


def test_cli_declare_makes_a_queue_pika_can_use_and_redeclare(shoal):
    http, port = shoal
    q = "cli-declared"
    rc, out, err = cli(http, "declare", q, "--argument", "x-max-length=100",
                       "--argument", "x-dead-letter-exchange=amq.fanout")
    assert rc == 0, err
    assert out.strip() == f"Queue '{q}' declared."
    rc, out, err = cli(http, "declare", q, "--argument", "x-max-length=100",
                       "--argument", "x-dead-letter-exchange=amq.fanout")
    assert rc == 0, err
    assert out.strip() == f"Queue '{q}' already exists."
    # Inequivalent: refused with RabbitMQ's words.
    rc, out, err = cli(http, "declare", q, "--durable", "false")
    assert rc != 0 and "inequivalent arg 'durable'" in err, (out, err)
    status, body = api(http, "PUT", "/api/v1/queues/amq.mine", {})
    assert status == 403 and body["error"] == "ACCESS_REFUSED"
    status, body = api(http, "PUT", "/api/v1/queues/bad-ttl",
                       {"arguments": {"x-message-ttl": -1}})
    assert status == 400 and body["error"] == "PRECONDITION_FAILED"

    row = queue_when(http, q, messages_ready=0)
    assert row["durable"] is True
    assert row["arguments"] == {"x-max-length": 100, "x-dead-letter-exchange": "amq.fanout"}

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.confirm_delivery()
    # pika's redeclare with the same flags and arguments is equivalent.
    ok = ch.queue_declare(q, durable=True,
                          arguments={"x-max-length": 100, "x-dead-letter-exchange": "amq.fanout"})
    assert ok.method.message_count == 0
    for i in range(3):
        ch.basic_publish("", q, f"c{i}".encode())
    queue_when(http, q, messages_ready=3)
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"c0"
    queue_when(http, q, messages_ready=2, messages_unacknowledged=0)
    rc, out, err = cli(http, "delete", q)
    assert rc == 0, err
    assert out.strip() == f"Deleted queue '{q}' (2 ready messages)."
    conn.close()
