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
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pika
import pika.exceptions
import pytest

from amqp_harness import Endpoint, consume_n, queue_counts, wait_until
from conftest import broker_log, start_broker
from tls_pki import admin_get, client_context, failed_authentications, temporary_pki

# The map replaces Kafka's default wholesale: every name in use is listed.
PROTOCOL_MAP = ("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
                "AMQP:SSL,HTTP:SSL")


@pytest.fixture(scope="module")
def pki():
    with temporary_pki("shoal-side-pki-", "Shoal Side Ports CA", other_cn="Some Other CA") as p:
        p.client = p.issuer.issue("operator", "/O=Shoal/OU=ops/CN=operator", "client_ext")
        yield p


def start(settings):
    """A started `Broker` with AMQP and the admin HTTP API on their own ports. Returns it."""
    return start_broker(settings, prefix="shoal-side-", amqp=True, http=True)


@pytest.fixture(scope="module")
def side_broker(pki):
    """AMQP and HTTP over TLS (no client certificates), Kafka on PLAINTEXT."""
    b = start({"listener.security.protocol.map": PROTOCOL_MAP,
               "ssl.keystore.location": pki.keystore})
    yield b
    b.finish()


def trusting(pki, cert=None, ca=None):
    """An ssl client context trusting `ca` (default: the module's CA), presenting `cert`."""
    return client_context(ca or pki.ca, cert)


def amqp_endpoint(b):
    """The broker's AMQP port as an `Endpoint`."""
    return Endpoint("127.0.0.1", b.amqp_port, "shoal")


def amqps(b, ctx, **kw):
    """A pika connection over TLS with `ctx` (guest/guest, one attempt)."""
    return amqp_endpoint(b).connect(ssl_options=pika.SSLOptions(ctx), **kw)


def wait_for(predicate, what, timeout=10):
    """Polls `predicate` until it is truthy (or fails after `timeout`); returns its value."""
    return wait_until(predicate, timeout=timeout, what=what)


def bare_connect(b, port):
    """Opens and closes a TCP connection without a byte sent; returns once the broker logged
    that the peer hung up mid-handshake (so a count it made would already show)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    local = s.getsockname()[1]
    s.close()
    wait_for(lambda: re.search(rf"TLS connection refused peer=127\.0\.0\.1:{local} "
                               r"error=TLS handshake: peer closed", broker_log(b)),
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
        amqp_endpoint(side_broker).connect(socket_timeout=5, blocked_connection_timeout=5)
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
    cluster = json.loads(admin_get(side_broker, "/api/v1/cluster", trusting(pki)))
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
    old = client_context(pki.ca, version=ssl.TLSVersion.TLSv1_1)
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
            admin_get(b, "/api/v1/cluster", trusting(pki))
        assert "CERTIFICATE_REQUIRED" in repr(e.value).upper(), repr(e.value)

        cluster = json.loads(admin_get(b, "/api/v1/cluster", with_cert))
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
