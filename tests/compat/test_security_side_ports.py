"""TLS on the side ports: the AMQP 0-9-1 port (`--amqp-addr`) and the admin HTTP port
(`--http-addr`) speak TLS when `listener.security.protocol.map` maps the names AMQP and HTTP
to SSL (RabbitMQ's amqps, and https), with the global `ssl.*` settings, overridable as
`listener.name.amqp.ssl.*` / `listener.name.http.ssl.*`. pika publishes with confirms and
consumes over amqps; urllib reads the admin API over https; plain AMQP / HTTP on those ports
fail; refused TLS handshakes (a ClientHello that was sent) count in
shoal_failed_authentication_total, a bare TCP connect and close does not. A second broker
requires client certificates on the HTTP port only (`listener.name.http.ssl.client.auth`).
Certificates are made with the `openssl` CLI (tls_pki)."""
import http.client
import json
import pathlib
import re
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pika
import pika.exceptions
import pytest

from amqp_harness import consume_n, queue_counts
from conftest import Broker
from tls_pki import Ca

# The map replaces Kafka's default wholesale: every name in use is listed.
PROTOCOL_MAP = ("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
                "AMQP:SSL,HTTP:SSL")


class Pki:
    pass


@pytest.fixture(scope="module")
def pki():
    root = tempfile.mkdtemp(prefix="shoal-side-pki-")
    p = Pki()
    ca = Ca(root, "ca", "Shoal Side Ports CA")
    other = Ca(root, "other", "Some Other CA")
    p.ca, p.other_ca = ca.cert, other.cert
    p.keystore, _, _ = ca.server_keystore()
    p.client = ca.issue("operator", "/O=Shoal/OU=ops/CN=operator", "client_ext")
    yield p
    shutil.rmtree(root, ignore_errors=True)


def start(settings):
    b = Broker(settings, prefix="shoal-side-", amqp=True, http=True)
    try:
        b.start()
    except BaseException:
        b.stop()
        shutil.rmtree(b.root, ignore_errors=True)
        raise
    return b


@pytest.fixture(scope="module")
def side_broker(pki):
    """AMQP and HTTP over TLS (no client certificates), Kafka on PLAINTEXT."""
    b = start({"listener.security.protocol.map": PROTOCOL_MAP,
               "ssl.keystore.location": pki.keystore})
    yield b
    b.finish()


def trusting(pki, cert=None, ca=None):
    ctx = ssl.create_default_context(cafile=ca or pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def https_get(b, path, ctx, timeout=10):
    with urllib.request.urlopen(f"https://127.0.0.1:{b.http_port}{path}", context=ctx,
                                timeout=timeout) as r:
        assert r.status == 200
        return r.read().decode()


def failed_authentications(b, ctx):
    text = https_get(b, "/metrics", ctx)
    m = re.search(r"^shoal_failed_authentication_total (\S+)$", text, re.M)
    assert m, "no shoal_failed_authentication_total on /metrics"
    return float(m.group(1))


def amqps(b, ctx, **kw):
    kw.setdefault("credentials", pika.PlainCredentials("guest", "guest"))
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", b.amqp_port, ssl_options=pika.SSLOptions(ctx), connection_attempts=1,
        socket_timeout=10, blocked_connection_timeout=30, **kw))


def log_text(b):
    return pathlib.Path(b.logs[-1]).read_text(errors="replace")


def wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def bare_connect(b, port):
    """Opens and closes a TCP connection without a byte sent; returns once the broker logged
    that the peer hung up mid-handshake (so a count it made would already show)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    local = s.getsockname()[1]
    s.close()
    wait_for(lambda: re.search(rf"TLS connection refused peer=127\.0\.0\.1:{local} "
                               r"error=TLS handshake: peer closed", log_text(b)),
             f"the broker to see {local} hang up")


def tls_client_hello(port, ctx):
    """A TLS handshake with `ctx`; returns the error (None if it succeeded)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"\0")          # TLS 1.3: a refused certificate shows on first use
                t.recv(1)
    except (ssl.SSLError, ConnectionError, socket.timeout) as e:
        return e
    return None


# ---- amqps ---------------------------------------------------------------------------------

def test_pika_publishes_with_confirms_and_consumes_over_amqps(side_broker, pki):
    conn = amqps(side_broker, ssl.create_default_context(cafile=pki.ca))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        queue = f"amqps-{uuid.uuid4().hex[:10]}"
        ch.queue_declare(queue, durable=True)
        for i in range(20):
            # With confirms on, basic_publish returns once the broker acked the message
            # (and raises on a nack or, with mandatory, an unroutable message).
            ch.basic_publish("", queue, f"amqps-{i}".encode(), mandatory=True,
                             properties=pika.BasicProperties(delivery_mode=2,
                                                             message_id=str(i)))
        assert queue_counts(ch, queue) == (20, 0)
        got = consume_n(conn, ch, queue, 20, auto_ack=False)
        assert [body for _, _, body in got] == [f"amqps-{i}".encode() for i in range(20)]
        assert [p.message_id for _, p, _ in got] == [str(i) for i in range(20)]
        assert queue_counts(ch, queue) == (0, 0), "every message acked"
        ch.queue_delete(queue)
    finally:
        conn.close()


def test_plain_amqp_and_an_untrusting_client_fail_on_the_amqps_port(side_broker, pki):
    before = failed_authentications(side_broker, trusting(pki))
    start = time.monotonic()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", side_broker.amqp_port, connection_attempts=1, socket_timeout=5,
            blocked_connection_timeout=5))
    assert time.monotonic() - start < 10
    # Plain AMQP where a ClientHello belongs is a refused handshake (as Kafka counts a
    # plaintext client on an SSL listener).
    wait_for(lambda: failed_authentications(side_broker, trusting(pki)) == before + 1,
             "the plain AMQP connection in shoal_failed_authentication_total")
    # A TLS client that does not trust the broker's CA refuses it itself (pika raises the
    # ssl module's error as it is).
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        amqps(side_broker, trusting(pki, ca=pki.other_ca))
    assert "CERTIFICATE_VERIFY_FAILED" in repr(e.value), repr(e.value)


# ---- https ---------------------------------------------------------------------------------

def test_admin_api_over_https_and_plain_http_fails(side_broker, pki):
    cluster = json.loads(https_get(side_broker, "/api/v1/cluster", trusting(pki)))
    assert cluster["kafka_addr"] == side_broker.bootstrap, cluster
    assert cluster["node_id"] == 0, cluster

    before = failed_authentications(side_broker, trusting(pki))
    with pytest.raises((http.client.HTTPException, ConnectionError, urllib.error.URLError)):
        with urllib.request.urlopen(f"http://127.0.0.1:{side_broker.http_port}/api/v1/cluster",
                                    timeout=10) as r:
            r.read()
    wait_for(lambda: failed_authentications(side_broker, trusting(pki)) == before + 1,
             "the plain HTTP request in shoal_failed_authentication_total")


# ---- the failed-authentication metric ------------------------------------------------------

def test_refused_client_hellos_count_bare_connects_do_not(side_broker, pki):
    b, ctx = side_broker, trusting(pki)
    before = failed_authentications(b, ctx)
    for port in (b.amqp_port, b.http_port):
        bare_connect(b, port)
    assert failed_authentications(b, ctx) == before, "a bare TCP connect and close counted"

    # TLS 1.1 only: the broker refuses the ClientHello with an alert.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(pki.ca)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    for port in (b.amqp_port, b.http_port):
        e = tls_client_hello(port, old)
        assert isinstance(e, ssl.SSLError) and "ALERT" in str(e).upper(), e
    wait_for(lambda: failed_authentications(b, ctx) == before + 2,
             "two refused handshakes in shoal_failed_authentication_total")

    # A client that does not trust the broker's certificate aborts the handshake.
    for port in (b.amqp_port, b.http_port):
        e = tls_client_hello(port, trusting(pki, ca=pki.other_ca))
        assert isinstance(e, ssl.SSLCertVerificationError), e
    wait_for(lambda: failed_authentications(b, ctx) == before + 4,
             "four refused handshakes in shoal_failed_authentication_total")

    for port in (b.amqp_port, b.http_port):
        bare_connect(b, port)
    assert failed_authentications(b, ctx) == before + 4, "a bare TCP connect and close counted"


# ---- client certificates on the HTTP port only ---------------------------------------------

def test_http_port_requires_a_client_certificate(pki):
    b = start({"listener.security.protocol.map": PROTOCOL_MAP,
               "ssl.keystore.location": pki.keystore,
               "ssl.truststore.location": pki.ca,
               "listener.name.http.ssl.client.auth": "required"})
    try:
        with_cert = trusting(pki, cert=pki.client)
        before = failed_authentications(b, with_cert)

        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError,
                            http.client.HTTPException)) as e:
            https_get(b, "/api/v1/cluster", trusting(pki))
        assert "CERTIFICATE_REQUIRED" in repr(e.value).upper(), repr(e.value)

        cluster = json.loads(https_get(b, "/api/v1/cluster", with_cert))
        assert cluster["kafka_addr"] == b.bootstrap, cluster

        wait_for(lambda: failed_authentications(b, with_cert) == before + 1,
                 "the refused handshake in shoal_failed_authentication_total")
        bare_connect(b, b.http_port)
        assert failed_authentications(b, with_cert) == before + 1

        # The override is the HTTP port's: amqps on the same broker needs no certificate.
        conn = amqps(b, trusting(pki))
        try:
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.basic_publish("", q, b"no client certificate needed")
            got = consume_n(conn, ch, q, 1, auto_ack=False)
            assert [body for _, _, body in got] == [b"no client certificate needed"]
        finally:
            conn.close()
    finally:
        b.finish()
