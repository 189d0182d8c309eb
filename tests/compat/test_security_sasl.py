"""SASL listeners, configured with Kafka's names, against real clients. One broker for the
module: PLAINTEXT (where `shoal user` talks), SASL_PLAINTEXT (SCRAM-SHA-256 and -512 only:
`listener.name.sasl_plaintext.sasl.enabled.mechanisms`) and SASL_SSL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512, over TLS with a certificate from the `openssl` CLI). Users are made with
`shoal user create` (AlterUserScramCredentials): alice has both SCRAM credentials, bob only
SCRAM-SHA-512 with 4096 iterations (PLAIN is checked against it), carol is deleted midway.

kcat, kafka-python, confluent-kafka and kafkajs authenticate, produce and consume; wrong
passwords, unknown users, a mechanism the listener does not enable, a credential for another
mechanism and a deleted user are refused with Kafka's errors (side by side, each bounded),
and /metrics counts the refusals.

librdkafka before 2.6.1 (kcat 1.7.1 here links the system's 2.0.2) echoes its own nonce twice
in the SCRAM client-final-message (confluentinc/librdkafka#4895). Shoal compares the nonce
exactly, as RFC 5802 and Kafka 4 do, so that kcat fails SCRAM; the kcat SCRAM case runs kcat
on the newer librdkafka that confluent-kafka bundles, and another case pins the refusal of the
old one."""
import base64
import concurrent.futures
import glob
import json
import logging
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from conftest import ADMIN_TOKEN, broker_log, discard, shoal_bin, start_broker
from tls_pki import (confluent_consume, failed_authentications, kafka_python_conf,
                     kafka_python_consume, librdkafka_conf, refused_confluent,
                     refused_kafka_python, run_kafkajs, run_kcat, temporary_pki)

# name -> (password, how `shoal user create` gets it, --mechanism, --iterations)
USERS = {
    "alice": ("alice-Secret-81", "argument", "all", 8192),
    "bob": ("bob-Secret-42", "environment", "SCRAM-SHA-512", 4096),
    "carol": ("carol-Secret-17", "stdin", "all", 16384),
}
PASSWORDS = [u[0] for u in USERS.values()]

PLAIN_FAILED = "Authentication failed: Invalid username or password"


def scram_failed(mechanism):
    return ("Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {mechanism}")


SCRAM_ONLY = "broker's supported mechanisms: SCRAM-SHA-256,SCRAM-SHA-512"


def shoal_user(b, *args, env=None, input=None):
    """`shoal user ARGS --bootstrap-server <the PLAINTEXT listener>`: (rc, stdout, stderr)."""
    r = subprocess.run([shoal_bin(), "user", *args, "--bootstrap-server", b.bootstrap],
                       input=input, capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **(env or {})))
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def sasl_broker():
    with temporary_pki("shoal-sasl-pki-", "Shoal SASL Test CA") as pki:
        b = start_broker({
            "group.initial.rebalance.delay.ms": 0,
            "ssl.keystore.location": pki.keystore,
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        }, prefix="shoal-sasl-", listeners={"sasl": "SASL_PLAINTEXT", "ssl": "SASL_SSL"},
            http=True)
        b.ca = pki.ca
        try:
            for name, (password, via, mechanism, iterations) in USERS.items():
                args = ["create", name, "--mechanism", mechanism, "--iterations", str(iterations)]
                kw = {}
                if via == "argument":
                    args += ["--password", password]
                elif via == "environment":
                    kw["env"] = {"SHOAL_USER_PASSWORD": password}
                else:
                    kw["input"] = password + "\n"
                rc, out, err = shoal_user(b, *args, **kw)
                assert rc == 0, err
                mechs = "SCRAM-SHA-256, SCRAM-SHA-512" if mechanism == "all" else mechanism
                assert out == f"Created user {name} ({mechs}).\n", out
        except BaseException:
            discard(b)
            raise
        try:
            yield b
            # The broker stores salted keys only and never logs a password.
            for path in b.logs:
                text = pathlib.Path(path).read_text(errors="replace")
                leaked = [p for p in PASSWORDS if p in text]
                assert not leaked, f"passwords in the broker log {path}: {leaked}"
        finally:
            b.finish()


# ---- client configurations -------------------------------------------------------------
# On `b`'s `protocol` listener (trusting its CA on SASL_SSL), as `user` with `mechanism`.

def listener(b, protocol):
    return {"SASL_PLAINTEXT": (b.sasl_bootstrap, b.sasl_port),
            "SASL_SSL": (b.ssl_bootstrap, b.ssl_port)}[protocol]


def rdkafka_conf(b, protocol, mechanism, user, password, **extra):
    """A confluent-kafka configuration. Returns a dict."""
    return librdkafka_conf(listener(b, protocol)[0], protocol,
                           ca=b.ca if protocol == "SASL_SSL" else None,
                           sasl=(mechanism, user, password), **extra)


def kpy_conf(b, protocol, mechanism, user, password, **extra):
    """kafka-python keyword arguments. Returns a dict."""
    return kafka_python_conf(listener(b, protocol)[0], protocol,
                             ca=b.ca if protocol == "SASL_SSL" else None,
                             sasl=(mechanism, user, password), **extra)


def kcat_sasl(b, mechanism, user, password, *args, input=None, env=None, timeout=20):
    """kcat on the SASL_SSL listener: (returncode, stdout, stderr)."""
    return run_kcat(b.ssl_bootstrap, "SASL_SSL", *args, ca=b.ca,
                    sasl=(mechanism, user, password), input=input, env=env, timeout=timeout)


def kcat_librdkafka(env=None):
    """The librdkafka kcat loads (with `env` added to the environment). Returns (its version as
    a tuple of ints, or None if `kcat -V` names none; the `kcat -V` output)."""
    version = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10,
                             env=dict(os.environ, **(env or {}))).stdout
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", version)
    return (tuple(map(int, m.groups())) if m else None), version


@pytest.fixture(scope="module")
def fixed_librdkafka():
    """An LD_LIBRARY_PATH under which kcat loads the librdkafka confluent-kafka bundles
    (>= 2.6.1, with the SCRAM nonce fix) instead of the system's."""
    libs = glob.glob(os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir,
                                  "confluent_kafka.libs", "librdkafka*.so*"))
    assert libs, "confluent-kafka bundles no librdkafka (confluent_kafka.libs)"
    d = tempfile.mkdtemp(prefix="shoal-sasl-rdkafka-")
    os.symlink(os.path.realpath(libs[0]), os.path.join(d, "librdkafka.so.1"))
    env = {"LD_LIBRARY_PATH": d}
    found, version = kcat_librdkafka(env)
    assert found and found >= (2, 6, 1), version
    yield env
    shutil.rmtree(d, ignore_errors=True)


# ---- users ---------------------------------------------------------------------------------

def listed_users(b, *names):
    rc, out, err = shoal_user(b, "list", *names, "--output", "json")
    assert rc == 0, err
    assert not [p for p in PASSWORDS if p in out], "a password in `shoal user list`"
    return json.loads(out)


def test_user_list_shows_mechanisms_and_iterations_never_a_password(sasl_broker):
    users = listed_users(sasl_broker)
    assert users == [
        {"user": "alice", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 8192},
                                          {"mechanism": "SCRAM-SHA-512", "iterations": 8192}]},
        {"user": "bob", "credentials": [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}]},
        {"user": "carol", "credentials": [{"mechanism": "SCRAM-SHA-256", "iterations": 16384},
                                          {"mechanism": "SCRAM-SHA-512", "iterations": 16384}]},
    ], users
    assert listed_users(sasl_broker, "bob") == [users[1]]

    rc, out, err = shoal_user(sasl_broker, "list")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows == [["USER", "MECHANISM", "ITERATIONS"],
                    ["alice", "SCRAM-SHA-256", "8192"], ["alice", "SCRAM-SHA-512", "8192"],
                    ["bob", "SCRAM-SHA-512", "4096"],
                    ["carol", "SCRAM-SHA-256", "16384"], ["carol", "SCRAM-SHA-512", "16384"]], out

    rc, _, err = shoal_user(sasl_broker, "list", "nobody")
    assert rc == 1 and "ResourceNotFound" in err, err


# ---- kcat ----------------------------------------------------------------------------------

def test_kcat_scram_sha_512_produces_and_consumes_over_sasl_ssl(sasl_broker, fixed_librdkafka):
    b, pw = sasl_broker, USERS["alice"][0]
    lines = "".join(f"key{i}:sasl-value-{i}\n" for i in range(12))
    rc, _, err = kcat_sasl(b, "SCRAM-SHA-512", "alice", pw, "-P", "-t", "sasl-kcat", "-K:",
                           input=lines, env=fixed_librdkafka)
    assert rc == 0, err
    rc, out, err = kcat_sasl(b, "SCRAM-SHA-512", "alice", pw, "-C", "-t", "sasl-kcat", "-e",
                             "-f", "%k=%s\n", env=fixed_librdkafka)
    assert rc == 0, err
    assert out.splitlines() == [f"key{i}=sasl-value-{i}" for i in range(12)]
    rc, out, err = kcat_sasl(b, "SCRAM-SHA-512", "alice", pw, "-L", "-t", "sasl-kcat",
                             env=fixed_librdkafka)
    assert rc == 0, err
    assert re.findall(r"broker \d+ at (\S+)", out) == [b.ssl_bootstrap], out


def test_kcat_on_old_librdkafka_plain_works_scram_refused(sasl_broker):
    """The system's librdkafka (< 2.6.1): PLAIN gets through; its SCRAM client-final nonce
    (client nonce repeated) is refused, as Kafka 4 refuses it."""
    b, pw = sasl_broker, USERS["bob"][0]
    found, version = kcat_librdkafka()
    assert found, version
    old = found < (2, 6, 1)
    rc, out, err = kcat_sasl(b, "PLAIN", "bob", pw, "-L")
    assert rc == 0, err
    assert re.findall(r"broker \d+ at (\S+)", out) == [b.ssl_bootstrap], out
    rc, out, err = kcat_sasl(b, "SCRAM-SHA-512", "bob", pw, "-L", "-m", "3")
    if old:
        assert rc != 0 and scram_failed("SCRAM-SHA-512") in err, (rc, out, err)
    else:
        assert rc == 0, err


# ---- kafka-python --------------------------------------------------------------------------

@pytest.mark.parametrize("protocol,mechanism,user", [
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "bob"),
    ("SASL_SSL", "PLAIN", "bob"),
    ("SASL_SSL", "SCRAM-SHA-256", "alice"),
    ("SASL_SSL", "SCRAM-SHA-512", "alice"),
])
def test_kafka_python_produces_and_consumes_in_a_group(sasl_broker, protocol, mechanism, user):
    b = sasl_broker
    topic = f"sasl-kpy-{protocol}-{mechanism}".lower()
    conf = lambda **kw: kpy_conf(b, protocol, mechanism, user, USERS[user][0],
                                 bootstrap_timeout_ms=10000, **kw)
    admin = KafkaAdminClient(**conf())
    try:
        cluster = admin.describe_cluster()
        assert [(x["host"], x["port"]) for x in cluster["brokers"]] == \
            [("127.0.0.1", listener(b, protocol)[1])], cluster
    finally:
        admin.close()

    producer = KafkaProducer(**conf())
    try:
        for i in range(10):
            producer.send(topic, key=f"k{i}".encode(), value=f"{mechanism}-{i}".encode()).get(10)
    finally:
        producer.close(timeout=5)

    consumer = KafkaConsumer(topic, **conf(group_id=f"{topic}-group", auto_offset_reset="earliest",
                                           enable_auto_commit=False))
    try:
        got = kafka_python_consume(consumer, 10)
        assert got == {f"k{i}": f"{mechanism}-{i}" for i in range(10)}
        consumer.commit()
        assert consumer.committed(TopicPartition(topic, 0)) == 10
    finally:
        consumer.close()


# ---- confluent-kafka -----------------------------------------------------------------------

@pytest.mark.parametrize("mechanism,user", [("SCRAM-SHA-256", "alice"), ("PLAIN", "bob")])
def test_confluent_kafka_over_sasl_ssl(sasl_broker, mechanism, user):
    b = sasl_broker
    topic = f"sasl-ck-{mechanism}".lower()
    conf = lambda **kw: rdkafka_conf(b, "SASL_SSL", mechanism, user, USERS[user][0], **kw)
    admin = AdminClient(conf())
    md = admin.list_topics(timeout=10)
    assert [(x.host, x.port) for x in md.brokers.values()] == [("127.0.0.1", b.ssl_port)]

    producer = confluent_kafka.Producer(conf(**{"linger.ms": 5}))
    for i in range(20):
        producer.produce(topic, key=f"k{i}".encode(), value=f"ck-{mechanism}-{i}".encode())
    assert producer.flush(15) == 0

    consumer = confluent_kafka.Consumer(conf(**{
        "group.id": f"{topic}-group", "auto.offset.reset": "earliest",
        "enable.auto.commit": False}))
    try:
        consumer.subscribe([topic])
        got = confluent_consume(consumer, 20)
        assert got == [(f"k{i}", f"ck-{mechanism}-{i}") for i in range(20)]
        consumer.commit(asynchronous=False)
        committed = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)
        assert committed[0].offset == 20
    finally:
        consumer.close()
    assert topic in admin.list_topics(timeout=10).topics


# ---- kafkajs -------------------------------------------------------------------------------

def kafkajs(b, mechanism, user, password, topic, refused=False, protocol="SASL_SSL",
            timeout=60):
    """kafkajs/sasl.js (with --refused, expecting a refusal). Returns its findings."""
    ca = b.ca if protocol == "SASL_SSL" else "-"
    return run_kafkajs("sasl.js", listener(b, protocol)[0], ca, mechanism, user, password, topic,
                       *(["--refused"] if refused else []), timeout=timeout)


@pytest.mark.parametrize("mechanism", ["scram-sha-256", "plain"])
def test_kafkajs_over_sasl_ssl(sasl_broker, mechanism):
    topic = f"sasl-kjs-{mechanism}"
    found = kafkajs(sasl_broker, mechanism, "alice", USERS["alice"][0], topic)
    assert found["brokers"] == [sasl_broker.ssl_bootstrap]
    assert found["got"] == sorted(f"k{i}=kjs-sasl-{i}" for i in range(10))


# ---- refusals ------------------------------------------------------------------------------

def refused_ck(name, conf):
    """`refused_confluent`; returns the errors error_cb received, as (code, text)."""
    return refused_confluent(name, conf)[0]


@pytest.fixture(scope="module", autouse=True)
def kafka_python_info_log():
    """kafka-python's INFO lines name each connection's local port (for
    assert_kafka_python_refused)."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def refused_kpy(name, conf):
    """`refused_kafka_python` with reconnect backoffs up to 300 ms. Returns (the exception,
    what kafka-python logged)."""
    return refused_kafka_python(name, conf, reconnect_backoff_max_ms=300)


def assert_kafka_python_refused(b, name, refusal, mechanism, message):
    """What kafka-python 3 shows of a refusal: its bootstrap times out; the broker's
    SaslAuthenticate error is in its log only when it read the response before the close
    (it drops data that arrives with the EOF in one read). So: the broker refused one of its
    connections with `message` (one of the local ports kafka-python's INFO lines name), and
    whatever kafka-python surfaced is that message."""
    error, logged = refusal
    ports = set(re.findall(r"Transport \[127\.0\.0\.1:\d+<-(\d+)\]", logged))
    assert "Unable to bootstrap" in str(error), f"{name}: {error!r}"
    assert ports, f"{name}: no connection in kafka-python's log:\n{logged[-2000:]}"
    log = broker_log(b)
    refused = [p for p in ports if re.search(
        rf"SASL authentication failed peer=127\.0\.0\.1:{p} .*mechanism={mechanism} "
        rf"reason={re.escape(message)}$", log, re.M)]
    assert refused, f"{name}: the broker logged no refusal of ports {ports}"
    surfaced = re.findall(r"SaslAuthenticationFailedError: (.*?)(?: \(backoff|$)", logged, re.M)
    assert all(message in s for s in surfaced), f"{name}: {surfaced}"
    return bool(surfaced)


def refused_kcat(b, mechanism, user, password):
    rc, out, err = kcat_sasl(b, mechanism, user, password, "-L", "-m", "3")
    assert rc != 0, f"kcat {mechanism} {user}: got in:\n{out}"
    return err


def test_refusals_side_by_side(sasl_broker):
    b = sasl_broker
    alice, bob = USERS["alice"][0], USERS["bob"][0]
    before = failed_authentications(b)
    ck_cases = {
        # name: (conf, the broker's message librdkafka must pass on)
        "ck wrong password SCRAM-SHA-512": (
            rdkafka_conf(b, "SASL_SSL", "SCRAM-SHA-512", "alice", "not-" + alice),
            "SASL authentication error: " + scram_failed("SCRAM-SHA-512")),
        "ck unknown user PLAIN": (
            rdkafka_conf(b, "SASL_SSL", "PLAIN", "mallory", alice),
            "SASL authentication error: " + PLAIN_FAILED),
        "ck PLAIN not enabled on SASL_PLAINTEXT": (
            rdkafka_conf(b, "SASL_PLAINTEXT", "PLAIN", "alice", alice),
            "Unsupported SASL mechanism: " + SCRAM_ONLY),
        "ck bob has no SCRAM-SHA-256 credential": (
            rdkafka_conf(b, "SASL_SSL", "SCRAM-SHA-256", "bob", bob),
            "SASL authentication error: " + scram_failed("SCRAM-SHA-256")),
    }
    kp_cases = {
        # name: (conf, mechanism, the broker's message)
        "kp wrong password SCRAM-SHA-256": (
            kpy_conf(b, "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", alice + "x"),
            "SCRAM-SHA-256", scram_failed("SCRAM-SHA-256")),
        "kp wrong password PLAIN": (
            kpy_conf(b, "SASL_SSL", "PLAIN", "bob", "wrong"), "PLAIN", PLAIN_FAILED),
        "kp unknown user SCRAM-SHA-512": (
            kpy_conf(b, "SASL_SSL", "SCRAM-SHA-512", "mallory", alice),
            "SCRAM-SHA-512", scram_failed("SCRAM-SHA-512")),
    }
    kp_disabled_conf = kpy_conf(b, "SASL_PLAINTEXT", "PLAIN", "alice", alice)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ck = {n: pool.submit(refused_ck, n, c) for n, (c, _) in ck_cases.items()}
        kp = {n: pool.submit(refused_kpy, n, c) for n, (c, _, _) in kp_cases.items()}
        kp_disabled = pool.submit(refused_kpy, "kp PLAIN not enabled", kp_disabled_conf)
        kcat_wrong = pool.submit(refused_kcat, b, "PLAIN", "alice", "wrong")
        kjs = {
            "wrong password": pool.submit(kafkajs, b, "scram-sha-256", "alice", "wrong", "x",
                                          True),
            "unknown user": pool.submit(kafkajs, b, "plain", "mallory", alice, "x", True),
            "PLAIN not enabled on SASL_PLAINTEXT": pool.submit(
                kafkajs, b, "plain", "alice", alice, "x", True, "SASL_PLAINTEXT"),
        }
        ck = {n: f.result() for n, f in ck.items()}
        kp = {n: f.result() for n, f in kp.items()}
        kp_disabled = kp_disabled.result()
        kcat_err = kcat_wrong.result()
        kjs = {n: f.result() for n, f in kjs.items()}

    # confluent-kafka: error_cb gets _AUTHENTICATION with the broker's message.
    for name, (_, message) in ck_cases.items():
        auth = [text for code, text in ck[name]
                if code == confluent_kafka.KafkaError._AUTHENTICATION]
        assert any(message in text for text in auth), f"{name}: {ck[name]}"
    # kafka-python: refused by the broker with its message (see assert_kafka_python_refused).
    for name, (_, mechanism, message) in kp_cases.items():
        assert_kafka_python_refused(b, name, kp[name], mechanism, message)
    error, logged = kp_disabled
    assert "Unable to bootstrap" in str(error), repr(error)
    unsupported = re.findall(r"UnsupportedSaslMechanismError: (.*?)(?: \(backoff|$)", logged, re.M)
    assert all("Kafka broker does not support PLAIN sasl mechanism. Enabled mechanisms: "
               "['SCRAM-SHA-256', 'SCRAM-SHA-512']" in u for u in unsupported), unsupported
    # kcat: the broker's message in its error line.
    assert "SASL authentication error: " + PLAIN_FAILED in kcat_err, kcat_err
    # kafkajs: its SASL error carries the broker's message, or the broker's error code.
    assert kjs["wrong password"] == {
        "refused": True, "name": "KafkaJSSASLAuthenticationError", "type": None,
        "message": "SASL SCRAM SHA256 authentication failed: " + scram_failed("SCRAM-SHA-256")}
    assert kjs["unknown user"] == {
        "refused": True, "name": "KafkaJSSASLAuthenticationError", "type": None,
        "message": "SASL PLAIN authentication failed: " + PLAIN_FAILED}
    disabled = kjs["PLAIN not enabled on SASL_PLAINTEXT"]
    assert (disabled["name"], disabled["type"]) == \
        ("KafkaJSProtocolError", "UNSUPPORTED_SASL_MECHANISM"), disabled

    log = broker_log(b)
    for listener_name, mechanism, message in (
            ("SASL_SSL", "SCRAM-SHA-512", scram_failed("SCRAM-SHA-512")),
            ("SASL_SSL", "PLAIN", PLAIN_FAILED),
            ("SASL_SSL", "SCRAM-SHA-256", scram_failed("SCRAM-SHA-256")),
            ("SASL_PLAINTEXT", "SCRAM-SHA-256", scram_failed("SCRAM-SHA-256"))):
        assert re.search(rf"SASL authentication failed .*listener={listener_name} "
                         rf"mechanism={mechanism} reason={re.escape(message)}$", log, re.M), \
            (listener_name, mechanism)
    assert re.search(r'SASL mechanism not enabled; closing .*listener=SASL_PLAINTEXT mechanism="PLAIN"', log), log

    # Each refused credential counts (confluent-kafka 3, kafka-python 3, kcat 1, kafkajs 2;
    # the clients retry, so at least that many).
    after = failed_authentications(b)
    assert after - before >= 9, (before, after)

    # alice, with the right password, still gets through on both listeners.
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        md = AdminClient(rdkafka_conf(b, protocol, "SCRAM-SHA-512", "alice", alice)) \
            .list_topics(timeout=10)
        assert [x.port for x in md.brokers.values()] == [listener(b, protocol)[1]]


def sasl_handshake(port, mechanism):
    """A raw SaslHandshake v1 on a fresh connection: (error code, mechanisms, seconds until the
    answer, whether the broker then closed the connection)."""
    client_id = b"raw"
    body = (struct.pack(">hhih", 17, 1, 7, len(client_id)) + client_id +
            struct.pack(">h", len(mechanism)) + mechanism.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(struct.pack(">i", len(body)) + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = s.recv(4096)
            assert chunk, f"closed after {data!r}"
            data += chunk
        took = time.monotonic() - start
        s.settimeout(2)
        try:
            closed = s.recv(1) == b""
        except socket.timeout:
            closed = False
    correlation, error, n = struct.unpack(">ihi", data[4:14])
    assert correlation == 7
    pos, mechanisms = 14, []
    for _ in range(n):
        (length,) = struct.unpack(">h", data[pos:pos + 2])
        mechanisms.append(data[pos + 2:pos + 2 + length].decode())
        pos += 2 + length
    return error, mechanisms, took, closed


def test_a_mechanism_the_listener_does_not_enable_is_a_failed_authentication(sasl_broker):
    """SaslHandshake for PLAIN on SASL_PLAINTEXT: UNSUPPORTED_SASL_MECHANISM (33) with the
    listener's list, then the connection closes. Kafka treats it as a failed authentication
    (UnsupportedSaslMechanismException is an AuthenticationException): counted in
    failed-authentication-total and answered after connection.failed.authentication.delay.ms."""
    b = sasl_broker
    error, mechanisms, _, closed = sasl_handshake(b.sasl_port, "SCRAM-SHA-512")
    assert (error, mechanisms, closed) == (0, ["SCRAM-SHA-256", "SCRAM-SHA-512"], False)
    before = failed_authentications(b)
    error, mechanisms, took, closed = sasl_handshake(b.sasl_port, "PLAIN")
    assert (error, mechanisms, closed) == (33, ["SCRAM-SHA-256", "SCRAM-SHA-512"], True)
    after = failed_authentications(b)
    unlike_kafka = []
    if after - before != 1:
        unlike_kafka.append(f"shoal_failed_authentication_total went {before} -> {after}")
    if took < 0.09:
        unlike_kafka.append(f"answered after {took * 1000:.1f} ms, not after "
                            "connection.failed.authentication.delay.ms (100)")
    assert not unlike_kafka, "; ".join(unlike_kafka)


def test_deleted_user_is_refused(sasl_broker):
    b, pw = sasl_broker, USERS["carol"][0]
    # carol gets in with SCRAM and with PLAIN (checked against her SCRAM credential).
    for mechanism in ("SCRAM-SHA-512", "PLAIN"):
        AdminClient(rdkafka_conf(b, "SASL_SSL", mechanism, "carol", pw)).list_topics(timeout=10)

    rc, out, err = shoal_user(b, "delete", "carol")
    assert rc == 0, err
    assert out == "Deleted user carol.\n", out
    assert [u["user"] for u in listed_users(b)] == ["alice", "bob"]
    rc, _, err = shoal_user(b, "list", "carol")
    assert rc == 1 and "ResourceNotFound" in err, err

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        scram = pool.submit(refused_ck, "deleted carol SCRAM-SHA-512",
                            rdkafka_conf(b, "SASL_SSL", "SCRAM-SHA-512", "carol", pw))
        plain = pool.submit(refused_ck, "deleted carol PLAIN",
                            rdkafka_conf(b, "SASL_SSL", "PLAIN", "carol", pw))
        kpy = pool.submit(refused_kpy, "deleted carol SCRAM-SHA-256",
                          kpy_conf(b, "SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", pw))
        assert any(scram_failed("SCRAM-SHA-512") in t for _, t in scram.result()), scram.result()
        assert any(PLAIN_FAILED in t for _, t in plain.result()), plain.result()
        assert_kafka_python_refused(b, "deleted carol", kpy.result(), "SCRAM-SHA-256",
                                    scram_failed("SCRAM-SHA-256"))


def test_admin_http_api_needs_the_token_while_security_is_on(sasl_broker):
    """With SASL listeners the admin HTTP API answers only requests with `http.auth.token`:
    as a bearer token, or as the password of HTTP Basic credentials (what a browser sends for
    the console); anything else is 401 with WWW-Authenticate."""
    url = f"http://127.0.0.1:{sasl_broker.http_port}/api/v1/cluster"

    def status(headers):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=10) as r:
                return r.status, r.headers, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.loads(e.read())

    code, headers, body = status({})
    assert code == 401 and body["error"] == "UNAUTHORIZED", (code, body)
    assert "Basic" in (headers.get("WWW-Authenticate") or ""), dict(headers)
    code, _, body = status({"Authorization": "Bearer not-the-token"})
    assert code == 401, (code, body)
    code, _, body = status({"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert code == 200 and body["node_id"] == 0, (code, body)
    basic = base64.b64encode(f"anyone:{ADMIN_TOKEN}".encode()).decode()
    code, _, body = status({"Authorization": f"Basic {basic}"})
    assert code == 200, (code, body)
