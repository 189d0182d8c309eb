"""What the security suites (test_security_*.py) share.

Certificates, made with the `openssl` CLI: a CA in its own directory that issues server and
client certificates with `openssl ca` (which can back-date, for expired ones), and the PEM
keystore (key then chain) that `ssl.keystore.location` reads. Then the clients' settings for a
secured listener (kcat, confluent-kafka, kafka-python, kafkajs, Python's ssl), the bounded
refusals of confluent-kafka and kafka-python, and shoal_failed_authentication_total."""
import contextlib
import json
import logging
import os
import pathlib
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

import confluent_kafka
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient

from conftest import ADMIN_TOKEN

KAFKAJS = pathlib.Path(__file__).parent / "kafkajs"

CA_CNF = """\
[ca]
default_ca = this_ca
[this_ca]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any_subject
unique_subject = no
[any_subject]
commonName = supplied
organizationalUnitName = optional
organizationName = optional
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
"""


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


class Ca:
    """A CA in its own directory, issuing with `openssl ca` (which can back-date)."""

    def __init__(self, root, name, cn):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "newcerts"))
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write(CA_CNF)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("01\n")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        self.cert = os.path.join(self.dir, "ca.pem")

    def issue(self, name, subject, ext, expired=False):
        """A key and certificate; `subject` in openssl's /A=../B=.. order (most general first,
        so RFC 2253 prints it the other way round). Returns (cert, key) paths."""
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                cwd=self.dir)
        validity = (["-startdate", "20200101000000Z", "-enddate", "20201231000000Z"] if expired
                    else ["-days", "2"])
        openssl("ca", "-batch", "-config", "ca.cnf", "-preserveDN", "-notext", "-extensions", ext,
                *validity, "-in", f"{name}.csr", "-out", f"{name}.pem", cwd=self.dir)
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def server_keystore(self, name="server"):
        """A server certificate for 127.0.0.1/localhost as one PEM file, key then certificate
        (what `ssl.keystore.location` reads). Returns (keystore, cert, key) paths."""
        cert, key = self.issue(name, "/O=Shoal/CN=localhost", "server_ext")
        keystore = os.path.join(self.dir, f"{name}.keystore.pem")
        pathlib.Path(keystore).write_text(pathlib.Path(key).read_text() +
                                          pathlib.Path(cert).read_text())
        return keystore, cert, key


class Pki:
    """A test module's certificates: `temporary_pki` sets the first ones, the module adds its
    own (client certificates, as (cert, key) paths)."""


@contextlib.contextmanager
def temporary_pki(prefix, cn, other_cn=None):
    """A CA named `cn` in a new temporary directory, and its server keystore for
    127.0.0.1/localhost; with `other_cn`, a second CA beside it. Yields a `Pki` with `root`,
    `issuer` (the `Ca`), `ca` (its certificate), `keystore`, `server_cert`, `server_key` and,
    with `other_cn`, `other_issuer` and `other_ca`; removes the directory afterwards."""
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        p = Pki()
        p.root = root
        p.issuer = Ca(root, "ca", cn)
        p.ca = p.issuer.cert
        if other_cn:
            p.other_issuer = Ca(root, "other", other_cn)
            p.other_ca = p.other_issuer.cert
        p.keystore, p.server_cert, p.server_key = p.issuer.server_keystore()
        yield p
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- client settings for a secured listener ----------------------------------------------
# `protocol` is the listener's (SSL, SASL_PLAINTEXT, SASL_SSL), `ca` the CA file the client
# trusts (None: no TLS settings), `cert` the client's (cert, key) paths and `sasl` its
# (mechanism, user, password).

def security_settings(protocol, ca=None, cert=None, sasl=None):
    """librdkafka's security properties (as kcat's -X takes them too). Returns a dict."""
    conf = {"security.protocol": protocol.lower()}
    if ca:
        conf["ssl.ca.location"] = ca
    if cert:
        conf["ssl.certificate.location"], conf["ssl.key.location"] = cert
    if sasl:
        conf["sasl.mechanisms"], conf["sasl.username"], conf["sasl.password"] = sasl
    return conf


def librdkafka_conf(bootstrap, protocol, ca=None, cert=None, sasl=None, **extra):
    """A confluent-kafka configuration for `bootstrap`: the security properties, short
    reconnect backoffs, then `extra`. Returns a dict."""
    conf = {"bootstrap.servers": bootstrap, **security_settings(protocol, ca, cert, sasl),
            "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500}
    conf.update(extra)
    return conf


def kafka_python_conf(bootstrap, protocol, ca=None, cert=None, sasl=None, **extra):
    """kafka-python keyword arguments for `bootstrap`: the security settings, a 10 s request
    timeout, then `extra`. Returns a dict."""
    conf = dict(bootstrap_servers=bootstrap, security_protocol=protocol, request_timeout_ms=10000)
    if ca:
        conf["ssl_cafile"] = ca
    if cert:
        conf["ssl_certfile"], conf["ssl_keyfile"] = cert
    if sasl:
        conf["sasl_mechanism"], conf["sasl_plain_username"], conf["sasl_plain_password"] = sasl
    conf.update(extra)
    return conf


def run_kcat(bootstrap, protocol, *args, ca=None, cert=None, sasl=None, input=None, env=None,
             timeout=20):
    """kcat ARGS against `bootstrap` with the security properties (and `env` added to the
    environment). Returns (returncode, stdout, stderr)."""
    security = [a for k, v in security_settings(protocol, ca, cert, sasl).items()
                for a in ("-X", f"{k}={v}")]
    r = subprocess.run(["kcat", "-b", bootstrap, *security, *args], input=input,
                       capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return r.returncode, r.stdout, r.stderr


def run_kafkajs(script, *args, timeout=60):
    """`node kafkajs/SCRIPT ARGS`, which must exit 0. Returns its last line of output (its
    JSON findings), parsed."""
    r = subprocess.run(["node", str(KAFKAJS / script), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def client_context(ca, cert=None, version=None):
    """A Python ssl client context trusting `ca`, presenting `cert` ((cert, key) paths) and,
    with `version`, speaking only that TLS version (below 1.2 with the ciphers it needs).
    Returns the context."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(*cert)
    if version:
        ctx.minimum_version = ctx.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


# ---- consuming -----------------------------------------------------------------------------

def confluent_consume(consumer, n, timeout=20):
    """Polls a subscribed confluent-kafka `consumer` until `n` records arrived or `timeout`
    seconds passed; every record must come without an error. Returns [(key, value)] decoded, in
    arrival order."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append((m.key().decode(), m.value().decode()))
    return got


def kafka_python_consume(consumer, n, timeout=20):
    """Polls a kafka-python `consumer` until it read `n` keys or `timeout` seconds passed.
    Returns {key: value} decoded (a key's last value)."""
    got = {}
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                got[r.key.decode()] = r.value.decode()
    return got


# ---- refusals ------------------------------------------------------------------------------

class Collect(logging.Handler):
    """Keeps the messages of the records that pass `accept`."""

    def __init__(self, accept=lambda record: True):
        super().__init__(logging.DEBUG)
        self.accept, self.lines = accept, []

    def emit(self, record):
        if self.accept(record):
            self.lines.append(record.getMessage())


def refused_confluent(name, conf):
    """Metadata through librdkafka must fail within its timeout. Returns (the errors error_cb
    received, as (code, text); what librdkafka logged, one line per record)."""
    logger = logging.getLogger(f"shoal-rdkafka-{name}")   # librdkafka's lines, not on stderr
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    collect = Collect()
    logger.addHandler(collect)
    errors = []
    try:
        admin = AdminClient({**conf, "logger": logger,
                             "error_cb": lambda e: errors.append((e.code(), str(e))),
                             "socket.connection.setup.timeout.ms": 3000})
        start = time.monotonic()
        try:
            admin.list_topics(timeout=4)
        except confluent_kafka.KafkaException:
            pass
        else:
            raise AssertionError(f"confluent-kafka, {name}: Metadata answered; the client got in")
        assert time.monotonic() - start < 10
        admin.poll(0.5)   # serves the queued log and error callbacks
    finally:
        logger.removeHandler(collect)
    return errors, "\n".join(collect.lines)


def refused_kafka_python(name, conf, reconnect_backoff_max_ms=500):
    """kafka-python's bootstrap must fail within its timeout. Returns (the exception, what it
    logged on this thread or its own IO thread, one line per record)."""
    client_id = f"refused-{re.sub(r'[^a-z0-9]+', '-', name.lower())}"
    threads = {threading.current_thread().name, f"kafka-io-{client_id}"}
    collect = Collect(lambda record: record.threadName in threads)
    kafka_logger = logging.getLogger("kafka")
    kafka_logger.addHandler(collect)
    start = time.monotonic()
    try:
        admin = KafkaAdminClient(**conf, client_id=client_id, bootstrap_timeout_ms=4000,
                                 reconnect_backoff_ms=100,
                                 reconnect_backoff_max_ms=reconnect_backoff_max_ms)
        try:
            topics = admin.list_topics()
        finally:
            admin.close()
    except Exception as e:
        error = e
    else:
        raise AssertionError(f"kafka-python, {name}: listed topics {topics}; the client got in")
    finally:
        kafka_logger.removeHandler(collect)
    assert time.monotonic() - start < 15
    return error, "\n".join(collect.lines)


# ---- the admin HTTP API --------------------------------------------------------------------

def admin_get(b, path, context=None, timeout=10):
    """GET `path` from the broker's admin HTTP port with the test token: https with the ssl
    `context`, else plain http. Must answer 200; returns the body as text."""
    scheme = "http" if context is None else "https"
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{b.http_port}{path}",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, context=context, timeout=timeout) as r:
        assert r.status == 200
        return r.read().decode()


def failed_authentications(b, context=None):
    """shoal_failed_authentication_total on the broker's /metrics (over https with `context`,
    as `admin_get`). Returns it as a float."""
    text = admin_get(b, "/metrics", context)
    m = re.search(r"^shoal_failed_authentication_total (\S+)$", text, re.M)
    assert m, "no shoal_failed_authentication_total on /metrics"
    return float(m.group(1))
