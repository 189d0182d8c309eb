"""SSL listeners, configured with Kafka's names, against real clients: a PLAINTEXT and an SSL
listener side by side on one broker with mTLS (`ssl.client.auth=required`) and
`ssl.principal.mapping.rules` that only map OU=eng subjects. kcat, kafka-python,
confluent-kafka and kafkajs produce and consume over TLS with a client certificate, and
Metadata names the SSL port to them; clients without a certificate, with an expired one, one
from another CA, one whose subject no rule maps, or that do not trust the broker's CA are
refused, and /metrics counts the refusals. A second broker reads an encrypted PKCS#8 key and
its certificate chain as inline PEM (`ssl.keystore.key`, `ssl.key.password`) with
`ssl.client.auth=none`. Certificates are made with the `openssl` CLI (tls_pki)."""
import concurrent.futures
import os
import pathlib
import re
import socket
import ssl
import subprocess
import time

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from conftest import Broker, add_listeners, broker_log, discard, start_broker
from tls_pki import (client_context, confluent_consume, failed_authentications,
                     kafka_python_conf, kafka_python_consume, librdkafka_conf, openssl,
                     refused_confluent, refused_kafka_python, run_kafkajs, run_kcat,
                     temporary_pki)

MAPPING_RULE = "RULE:^CN=(.*?),OU=eng,.*$/$1/L"
KEY_PASSWORD = "s3cret-pass"


@pytest.fixture(scope="module")
def pki():
    # An impostor: another key under the same name, so clients that pick their certificate
    # by the CA names the broker sends (librdkafka) still present dave's.
    with temporary_pki("shoal-tls-pki-", "Shoal Test CA", other_cn="Shoal Test CA") as p:
        p.server_key_encrypted = os.path.join(p.root, "server.key.enc")
        openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", p.server_key,
                "-out", p.server_key_encrypted, "-passout", f"pass:{KEY_PASSWORD}", cwd=p.root)
        # Subjects, RFC 2253: CN=alice,OU=eng,O=Shoal (mapped to "alice"); CN=bob,OU=ops,O=Shoal
        # (no rule maps it); carol is OU=eng but expired in 2020; dave is OU=eng from another CA.
        p.alice = p.issuer.issue("alice", "/O=Shoal/OU=eng/CN=alice", "client_ext")
        p.bob = p.issuer.issue("bob", "/O=Shoal/OU=ops/CN=bob", "client_ext")
        p.expired = p.issuer.issue("carol", "/O=Shoal/OU=eng/CN=carol", "client_ext",
                                   expired=True)
        p.stranger = p.other_issuer.issue("dave", "/O=Shoal/OU=eng/CN=dave", "client_ext")
        r = subprocess.run(["openssl", "x509", "-in", p.alice[0], "-noout", "-subject",
                            "-nameopt", "RFC2253"], capture_output=True, text=True, timeout=10)
        assert r.stdout.strip() == "subject=CN=alice,OU=eng,O=Shoal", r.stdout
        yield p


def start_with_ssl(settings):
    """A started `Broker` whose first listener is PLAINTEXT on its own port, plus an SSL
    listener on `broker.ssl_port`, and the admin HTTP API on `broker.http_port`. Returns it."""
    return start_broker(settings, prefix="shoal-tls-", listeners={"ssl": "SSL"}, http=True)


@pytest.fixture(scope="module")
def tls_broker(pki):
    """PLAINTEXT + SSL (mTLS, OU=eng subjects only) on one broker for the module."""
    b = start_with_ssl({
        "group.initial.rebalance.delay.ms": 0,
        "ssl.keystore.location": pki.keystore,
        "ssl.truststore.location": pki.ca,
        "ssl.client.auth": "required",
        "ssl.principal.mapping.rules": MAPPING_RULE,
    })
    yield b
    b.finish()


# ---- client configurations -------------------------------------------------------------
# On `b`'s SSL listener, trusting `ca` (default: the module's CA), presenting `cert`.

def kcat(b, pki, *args, cert=None, ca=None, input=None, timeout=20):
    """kcat ARGS on the SSL listener. Returns (returncode, stdout, stderr)."""
    return run_kcat(b.ssl_bootstrap, "SSL", *args, ca=ca or pki.ca, cert=cert, input=input,
                    timeout=timeout)


def rdkafka_ssl(b, pki, cert=None, ca=None, **extra):
    """A confluent-kafka configuration for the SSL listener. Returns a dict."""
    return librdkafka_conf(b.ssl_bootstrap, "SSL", ca=ca or pki.ca, cert=cert, **extra)


def kpy_ssl(b, pki, cert=None, ca=None, **extra):
    """kafka-python keyword arguments for the SSL listener. Returns a dict."""
    return kafka_python_conf(b.ssl_bootstrap, "SSL", ca=ca or pki.ca, cert=cert, **extra)


# ---- over TLS ----------------------------------------------------------------------------

def test_kcat_produces_consumes_and_sees_the_ssl_listener(tls_broker, pki):
    lines = "".join(f"key{i}:tls-value-{i}\n" for i in range(15))
    rc, _, err = kcat(tls_broker, pki, "-P", "-t", "tls-kcat", "-K:", cert=pki.alice, input=lines)
    assert rc == 0, err
    rc, out, err = kcat(tls_broker, pki, "-C", "-t", "tls-kcat", "-e", "-f", "%k=%s\n",
                        cert=pki.alice)
    assert rc == 0, err
    assert out.splitlines() == [f"key{i}=tls-value-{i}" for i in range(15)]

    rc, out, err = kcat(tls_broker, pki, "-L", "-t", "tls-kcat", cert=pki.alice)
    assert rc == 0, err
    brokers = re.findall(r"broker \d+ at (\S+)", out)
    assert brokers == [tls_broker.ssl_bootstrap], out
    assert 'topic "tls-kcat" with 1 partitions' in out, out


def test_kafka_python_admin_produce_group_commit_over_ssl(tls_broker, pki):
    topic = "tls-kpy"
    admin = KafkaAdminClient(**kpy_ssl(tls_broker, pki, pki.alice, bootstrap_timeout_ms=10000))
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        cluster = admin.describe_cluster()
        assert [(b["host"], b["port"]) for b in cluster["brokers"]] == \
            [("127.0.0.1", tls_broker.ssl_port)], cluster
    finally:
        admin.close()

    producer = KafkaProducer(**kpy_ssl(tls_broker, pki, pki.alice, bootstrap_timeout_ms=10000))
    try:
        for i in range(20):
            producer.send(topic, key=f"k{i}".encode(), value=f"kpy-{i}".encode()).get(timeout=10)
        producer.flush(10)
    finally:
        producer.close(timeout=5)

    consumer = KafkaConsumer(topic, **kpy_ssl(
        tls_broker, pki, pki.alice, group_id="tls-kpy-group", auto_offset_reset="earliest",
        enable_auto_commit=False, bootstrap_timeout_ms=10000))
    try:
        got = kafka_python_consume(consumer, 20)
        assert got == {f"k{i}": f"kpy-{i}" for i in range(20)}
        consumer.commit()
        committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))
        assert committed == 20, "the group's commit over TLS covers every record"
    finally:
        consumer.close()


def test_confluent_kafka_produce_group_and_metadata_over_ssl(tls_broker, pki):
    topic = "tls-ck"
    admin = AdminClient(rdkafka_ssl(tls_broker, pki, pki.alice))
    md = admin.list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", tls_broker.ssl_port)]

    producer = confluent_kafka.Producer(rdkafka_ssl(tls_broker, pki, pki.alice, **{"linger.ms": 5}))
    for i in range(30):
        producer.produce(topic, key=f"k{i}".encode(), value=f"ck-{i}-{'x' * (i * 37)}".encode())
    assert producer.flush(15) == 0

    consumer = confluent_kafka.Consumer(rdkafka_ssl(
        tls_broker, pki, pki.alice, **{"group.id": "tls-ck-group", "auto.offset.reset": "earliest",
                                    "enable.auto.commit": False}))
    try:
        consumer.subscribe([topic])
        got = confluent_consume(consumer, 30)
        assert got == [(f"k{i}", f"ck-{i}-{'x' * (i * 37)}") for i in range(30)]
        consumer.commit(asynchronous=False)
        committed = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == 30
    finally:
        consumer.close()
    assert topic in admin.list_topics(timeout=10).topics


def test_kafkajs_produces_and_consumes_over_ssl(tls_broker, pki):
    cert, key = pki.alice
    found = run_kafkajs("tls.js", tls_broker.ssl_bootstrap, pki.ca, cert, key, "tls-kjs")
    assert found["brokers"] == [tls_broker.ssl_bootstrap]
    assert found["got"] == sorted(f"k{i}=kjs-tls-{i}" for i in range(10))


def test_plaintext_listener_beside_ssl(tls_broker, pki):
    """PLAINTEXT clients work beside TLS ones, see the PLAINTEXT port in Metadata, and read
    what TLS clients wrote (and the other way round)."""
    plain = {"bootstrap.servers": tls_broker.bootstrap}
    md = AdminClient(plain).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", tls_broker.port)]

    p = confluent_kafka.Producer(plain)
    p.produce("tls-mixed", key=b"plain", value=b"from-plaintext")
    assert p.flush(10) == 0
    p = confluent_kafka.Producer(rdkafka_ssl(tls_broker, pki, pki.alice))
    p.produce("tls-mixed", key=b"tls", value=b"from-ssl")
    assert p.flush(10) == 0

    def read(conf):
        c = confluent_kafka.Consumer({**conf, "group.id": f"mixed-{time.monotonic_ns()}",
                                      "auto.offset.reset": "earliest"})
        try:
            c.subscribe(["tls-mixed"])
            got, deadline = [], time.monotonic() + 15
            while len(got) < 2 and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    got.append((m.key(), m.value()))
            return got
        finally:
            c.close()

    want = [(b"plain", b"from-plaintext"), (b"tls", b"from-ssl")]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        via_plain = pool.submit(read, plain)
        via_ssl = pool.submit(read, rdkafka_ssl(tls_broker, pki, pki.alice))
        assert via_plain.result() == want
        assert via_ssl.result() == want


def tls_handshake(port, ca, cert=None, version=None):
    """A bare TLS handshake with Python's ssl; returns the negotiated version."""
    ctx = client_context(ca, cert, version)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.version()


def test_tls_versions_1_2_and_1_3_only(tls_broker, pki):
    port = tls_broker.ssl_port
    assert tls_handshake(port, pki.ca, pki.alice, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert tls_handshake(port, pki.ca, pki.alice, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError) as e:
        tls_handshake(port, pki.ca, pki.alice, ssl.TLSVersion.TLSv1_1)
    # The broker refused the TLS 1.1 ClientHello with an alert (rustls sends
    # handshake_failure: a TLS 1.1 hello has no signature_algorithms), not the client itself.
    assert "ALERT" in str(e.value).upper(), e.value


# ---- refusals ----------------------------------------------------------------------------

def what_confluent_saw(name, conf):
    """`refused_confluent`; returns what librdkafka logged and reported about the connection
    attempts, as one text."""
    errors, logged = refused_confluent(name, conf)
    return "\n".join([logged, *(text for _, text in errors)])


def what_kafka_python_saw(name, conf):
    """`refused_kafka_python`; returns what it logged and the exception, as one text."""
    error, logged = refused_kafka_python(name, conf)
    return "\n".join([logged, f"{type(error).__name__}: {error}"])


def test_refused_clients_and_the_failed_authentication_metric(tls_broker, pki):
    before = failed_authentications(tls_broker)
    cases = {
        "no certificate": dict(cert=None),
        "expired certificate": dict(cert=pki.expired),
        "other CA's certificate": dict(cert=pki.stranger),
        "unmapped subject (OU=ops)": dict(cert=pki.bob),
        "client not trusting the broker's CA": dict(cert=pki.alice, ca=pki.other_ca),
    }
    with concurrent.futures.ThreadPoolExecutor(2 * len(cases)) as pool:
        ck = {name: pool.submit(what_confluent_saw, name, rdkafka_ssl(tls_broker, pki, **c))
              for name, c in cases.items()}
        kp = {name: pool.submit(what_kafka_python_saw, name, kpy_ssl(tls_broker, pki, **c))
              for name, c in cases.items()}
        ck = {name: f.result() for name, f in ck.items()}
        kp = {name: f.result() for name, f in kp.items()}

    # What each client saw: the broker's alert for the certificate it refused (a sent one
    # that it could not verify: rustls says decrypt_error for a bad signature), the
    # connection closed after the handshake for the unmapped subject, and the client's own
    # verification failure when it does not trust the tls_broker.
    rejected_cert = r"alert (decrypt error|unknown ca|bad certificate|certificate unknown)"
    expect = {
        "no certificate": r"alert certificate required",
        "expired certificate": r"alert certificate expired",
        "other CA's certificate": rejected_cert,
        "unmapped subject (OU=ops)": r"(closed by peer|socket disconnected)",
        "client not trusting the broker's CA": r"(?i)certificate verify failed",
    }
    for name, pattern in expect.items():
        for client, seen in (("confluent-kafka", ck[name]), ("kafka-python", kp[name])):
            assert re.search(pattern, seen), f"{client}, {name}: {seen[-3000:]}"
            if name == "unmapped subject (OU=ops)":
                # The handshake itself succeeded: the broker closed after mapping the subject.
                assert not re.search(r"(?i)alert|verify failed", seen), f"{client}: {seen[-3000:]}"

    log = broker_log(tls_broker)
    refusals = [line for line in log.splitlines() if "TLS" in line]
    assert any("CN=bob,OU=ops,O=Shoal" in line for line in refusals), \
        "the broker's refusal of bob names the subject no rule maps:\n" + log[-3000:]
    assert any("expired" in line for line in refusals), log[-3000:]
    assert not any(re.search(r"CN=(alice|carol|dave),", line) for line in refusals), \
        "only bob's subject fails the mapping (carol and dave fail verification first)"

    # Two clients per case, each refused at least once.
    after = failed_authentications(tls_broker)
    assert after - before >= 2 * len(cases), (before, after)

    # alice, with the same settings, still gets through.
    assert AdminClient(rdkafka_ssl(tls_broker, pki, pki.alice)).list_topics(timeout=10).brokers


# ---- encrypted key, inline PEM, no client authentication ---------------------------------

def test_inline_pem_encrypted_key_without_client_auth(pki):
    chain = pathlib.Path(pki.server_cert).read_text()
    key = pathlib.Path(pki.server_key_encrypted).read_text()
    assert "BEGIN ENCRYPTED PRIVATE KEY" in key
    b = start_with_ssl({
        "ssl.keystore.certificate.chain": chain,
        "ssl.keystore.key": key,
        "ssl.key.password": KEY_PASSWORD,
        "ssl.client.auth": "none",
    })
    try:
        # No client certificate needed: the broker only proves itself.
        conf = rdkafka_ssl(b, pki)
        md = AdminClient(conf).list_topics(timeout=10)
        assert [(x.host, x.port) for x in md.brokers.values()] == [("127.0.0.1", b.ssl_port)]
        p = confluent_kafka.Producer(conf)
        for i in range(5):
            p.produce("tls-inline", value=f"inline-{i}".encode())
        assert p.flush(10) == 0
        rc, out, err = kcat(b, pki, "-C", "-t", "tls-inline", "-e")
        assert rc == 0, err
        assert out.splitlines() == [f"inline-{i}" for i in range(5)]

        kc = KafkaConsumer("tls-inline", **kpy_ssl(b, pki, auto_offset_reset="earliest",
                                                   bootstrap_timeout_ms=10000,
                                                   consumer_timeout_ms=10000))
        try:
            got = []
            for m in kc:
                got.append(m.value.decode())
                if len(got) == 5:
                    break
            assert got == [f"inline-{i}" for i in range(5)]
        finally:
            kc.close()
    finally:
        b.finish()

    # A wrong ssl.key.password stops start-up with a message naming the setting.
    bad = Broker({"ssl.keystore.certificate.chain": chain, "ssl.keystore.key": key,
                  "ssl.key.password": "wrong"}, prefix="shoal-tls-bad-")
    add_listeners(bad, {"ssl": "SSL"})
    try:
        with pytest.raises(RuntimeError, match="exited") as e:
            bad.start(timeout=15)
        assert "ssl.key.password" in str(e.value), e.value
    finally:
        discard(bad)
