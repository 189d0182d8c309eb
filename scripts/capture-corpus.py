#!/usr/bin/env python3
"""Records the request frames real Kafka clients send to Shoal, as a fuzz corpus.

    scripts/capture-corpus.py [--out DIR] [--budget SECONDS] [--per-version-cap N] [--keep-existing]

Starts `shoal serve` ($SHOAL_BIN, default /var/tmp/dev-target/release/shoal) on 127.0.0.1 with
a temporary data directory, a PLAINTEXT listener on port B and a SASL_PLAINTEXT one on port B2,
both advertised (`advertised.listeners`) as ports P and P2 where this script listens as a TCP
proxy forwarding to B and B2: clients bootstrap through the proxy and, after Metadata,
reconnect through it too. The proxy cuts the client->broker bytes into frames (int32 length
prefix) and strips each request header (api_key, api_version, correlation_id, client_id, and
for header v2, the tagged fields). Header v2 iff the version is at least the API's first
flexible version, read from crates/wire/src/requests/*.rs (`api_key:` / `flexible_from:`).

Each request is written to DIR (default crates/wire/fuzz/corpus/requests/) as
`<api_key>-<version>-<first 12 hex of sha1(content)>` holding 2 bytes api_key, 2 bytes version
(big-endian) and the body; identical contents are one file, bodies over 64 KiB are skipped, and
at most --per-version-cap files (default 40) are kept per (api_key, version). Files from an
earlier run that follow that naming are removed first unless --keep-existing (other files in
DIR, e.g. a fuzzer's own, are left alone).

Clients (each a subprocess of this script under $SHOAL_PY, default /var/tmp/shoal-venv/bin/python,
with its own timeout, failures reported and ignored): kafka-python, confluent-kafka (producer,
transactions, classic and KIP-848 consumer groups, AdminClient, ShareConsumer, SASL/SCRAM),
kcat and kafkajs (node, with tests/compat/kafkajs/node_modules). The broker runs with an
authorizer (super.users = User:ANONYMOUS and the SASL user) so the ACL APIs do real work.
At the end: per-API-key counts, and the advertised API keys no client sent.
"""
import argparse
import collections
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUESTS_DIR = ROOT / "crates" / "wire" / "src" / "requests"
DEFAULT_OUT = ROOT / "crates" / "wire" / "fuzz" / "corpus" / "requests"
KAFKAJS_MODULES = ROOT / "tests" / "compat" / "kafkajs" / "node_modules"
ADMIN_TOKEN = "shoal-test-token"
MAX_BODY = 64 * 1024
FILE_RE = re.compile(r"^\d+-\d+-[0-9a-f]{12}$")
SASL_USER, SASL_PASSWORD = "cap-user", "cap-secret"


# --- the API table --------------------------------------------------------------------------

def load_api_table(requests_dir=REQUESTS_DIR):
    """{api_key: (name, min, max, flexible_from or None)} from the generated request shapes:
    each `/// Name vA-B (API key K).` doc line and `pub static X: Request = Request { api_key,
    min, max, flexible_from, ... }` block. `flexible_from: MAX` (never flexible) is None."""
    block = re.compile(
        r"(?:///\s*(?P<name>\w+) v\d+-\d+ \(API key \d+\)\.\s*)?"
        r"pub static \w+: Request = Request \{\s*"
        r"api_key:\s*(?P<key>\d+),\s*min:\s*(?P<min>\d+),\s*max:\s*(?P<max>\d+),\s*"
        r"flexible_from:\s*(?P<flex>\w+),")
    table = {}
    for path in sorted(requests_dir.glob("*.rs")):
        for m in block.finditer(path.read_text()):
            flex = None if m["flex"] == "MAX" else int(m["flex"])
            table[int(m["key"])] = (m["name"] or f"api{m['key']}", int(m["min"]), int(m["max"]), flex)
    if not table:
        raise RuntimeError(f"no `api_key:` blocks found under {requests_dir}")
    return table


# --- frame parsing --------------------------------------------------------------------------

def read_uvarint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise ValueError("varint too long")


def split_request(frame, table):
    """(api_key, version, body) of one request frame (without its length prefix), or raises
    KeyError for an API key the table lacks, ValueError for a malformed header."""
    if len(frame) < 10:
        raise ValueError("frame shorter than a request header")
    api_key, version, _corr, cid_len = struct.unpack_from(">hhih", frame, 0)
    flex = table[api_key][3]
    pos = 10
    if cid_len > 0:
        pos += cid_len
    elif cid_len < -1:
        raise ValueError("bad client_id length")
    if pos > len(frame):
        raise ValueError("client_id past the frame")
    if flex is not None and version >= flex:           # request header v2: tagged fields
        count, pos = read_uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = read_uvarint(frame, pos)
            size, pos = read_uvarint(frame, pos)
            pos += size
            if pos > len(frame):
                raise ValueError("tagged field past the frame")
    return api_key, version, bytes(frame[pos:])


class Corpus:
    def __init__(self, out, table, cap):
        self.out, self.table, self.cap = out, table, cap
        self.lock = threading.Lock()
        self.frames = collections.Counter()          # api_key -> requests seen
        self.files = collections.Counter()           # api_key -> files written
        self.per_version = collections.Counter()     # (api_key, version) -> files written
        self.versions = collections.defaultdict(set)
        self.seen = set()
        self.skipped = collections.Counter()         # reason -> count
        self.unknown = collections.Counter()         # api_key not in the table -> count

    def record(self, frame):
        try:
            key, version, body = split_request(frame, self.table)
        except KeyError:
            with self.lock:
                self.unknown[struct.unpack_from(">h", frame, 0)[0]] += 1
            return None
        except ValueError:
            with self.lock:
                self.skipped["bad header"] += 1
            return None
        with self.lock:
            self.frames[key] += 1
            self.versions[key].add(version)
            if len(body) > MAX_BODY:
                self.skipped["body over 64 KiB"] += 1
                return key
            content = struct.pack(">hh", key, version) + body
            digest = hashlib.sha1(content).hexdigest()
            if digest in self.seen:
                return key
            if self.per_version[(key, version)] >= self.cap:
                self.skipped["per-version cap"] += 1
                return key
            self.seen.add(digest)
            path = self.out / f"{key}-{version}-{digest[:12]}"
            if not path.exists():
                path.write_bytes(content)
            self.per_version[(key, version)] += 1
            self.files[key] += 1
        return key


# --- the proxy ------------------------------------------------------------------------------

class Proxy:
    """Accepts on `sock` and forwards each connection to 127.0.0.1:`upstream`, recording the
    client's request frames into `corpus`."""

    def __init__(self, sock, upstream, corpus):
        self.sock, self.upstream, self.corpus = sock, upstream, corpus
        self.closing = False
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                broker.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            threading.Thread(target=self._c2b, args=(client, broker), daemon=True).start()
            threading.Thread(target=self._pipe, args=(broker, client), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def _c2b(self, client, broker):
        buf = bytearray()
        parsing = True
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                broker.sendall(data)
                if not parsing:
                    continue
                buf += data
                while len(buf) >= 4:
                    (n,) = struct.unpack_from(">i", buf, 0)
                    if n < 0 or n > 100 * 1024 * 1024:
                        parsing = False            # not Kafka framing: stop looking
                        break
                    if len(buf) < 4 + n:
                        break
                    frame = bytes(buf[4:4 + n])
                    del buf[:4 + n]
                    key = self.corpus.record(frame)
                    # SaslHandshake v0: raw SASL tokens follow, not request frames.
                    if key == 17 and struct.unpack_from(">h", frame, 2)[0] == 0:
                        parsing = False
                        break
                if not parsing:
                    buf.clear()
        except OSError:
            pass
        finally:
            for s, how in ((broker, socket.SHUT_WR), (client, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def close(self):
        self.closing = True
        self.sock.close()


# --- the broker -----------------------------------------------------------------------------

def listen_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(binary, root, b, b2, p, p2):
    settings = {
        "http.auth.token": ADMIN_TOKEN,
        "group.initial.rebalance.delay.ms": "0",
        "listeners": f"PLAINTEXT://127.0.0.1:{b},SASL_PLAINTEXT://127.0.0.1:{b2}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p},SASL_PLAINTEXT://127.0.0.1:{p2}",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:ANONYMOUS;User:{SASL_USER}",
        "group.share.heartbeat.interval.ms": "1000",
        "group.share.record.lock.duration.ms": "5000",
        "group.share.min.record.lock.duration.ms": "1000",
    }
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    log_path = os.path.join(root, "broker.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [binary, "serve", "--kafka-addr", f"127.0.0.1:{b}", "--http-addr", "127.0.0.1:0",
         "--amqp-addr", "", "--data-dir", os.path.join(root, "data"), *sets],
        stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"shoal exited with {proc.returncode}:\n" + open(log_path).read()[-3000:])
        try:
            for port in (b, b2):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, log_path
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("shoal not listening after 30 s")


def stop_broker(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- the clients (each runs as `capture-corpus.py --step NAME`) -----------------------------

def attempt(label, fn, *args, **kw):
    """Runs one client call; prints its outcome; never raises."""
    t = time.monotonic()
    try:
        r = fn(*args, **kw)
        if isinstance(r, dict):                     # confluent-kafka's {key: future}
            for k, f in r.items():
                if hasattr(f, "result"):
                    try:
                        f.result(timeout=8)
                    except Exception as e:
                        print(f"  {label}[{k}]: {type(e).__name__}: {str(e)[:120]}")
        elif hasattr(r, "result"):
            r = r.result(timeout=8)
        print(f"  {label}: ok ({time.monotonic() - t:.1f} s)")
        return r
    except Exception as e:
        print(f"  {label}: {type(e).__name__}: {str(e)[:160]}")
        return None


def step_kafka_python_admin(bs, bs_sasl):
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, ConfigResource, ConfigResourceType,
                             OffsetSpec, ResourcePattern, ResourcePatternFilter, ResourceType,
                             ScramMechanism, UserScramCredentialDeletion,
                             UserScramCredentialUpsertion)
    a = KafkaAdminClient(bootstrap_servers=bs, client_id="cap-kp-admin", request_timeout_ms=8000)
    t = "cap-kp-admin"
    attempt("create_topics", a.create_topics, {
        t: {"num_partitions": 2, "replication_factor": 1,
            "configs": {"retention.ms": "3600000", "cleanup.policy": "delete"}},
        t + "-gone": {"num_partitions": 1}}, timeout_ms=5000)
    attempt("create_topics validate_only", a.create_topics, {t + "-v": {"num_partitions": 1}},
            validate_only=True)
    attempt("list_topics", a.list_topics)
    attempt("describe_topics", a.describe_topics, [t])
    attempt("describe_topic_partitions", a.describe_topic_partitions, [t])
    attempt("describe_configs", a.describe_configs,
            [ConfigResource(ConfigResourceType.TOPIC, t), ConfigResource(ConfigResourceType.BROKER, "0")],
            include_synonyms=True)
    attempt("alter_configs (AlterConfigs)", a.alter_configs,
            [ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": "7200000"})],
            raise_on_unknown=False, incremental=False)
    attempt("alter_configs (Incremental)", a.alter_configs,
            [ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.bytes": "1048576"})],
            raise_on_unknown=False, incremental=True)
    attempt("create_partitions", a.create_partitions, {t: 3})
    attempt("list_partition_offsets", a.list_partition_offsets,
            {TopicPartition(t, 0): OffsetSpec.LATEST, TopicPartition(t, 1): OffsetSpec.EARLIEST,
             TopicPartition(t, 2): OffsetSpec.MAX_TIMESTAMP})
    attempt("delete_records", a.delete_records, {TopicPartition(t, 0): 0})
    attempt("describe_cluster", a.describe_cluster)
    attempt("describe_features", a.describe_features)
    attempt("describe_log_dirs", a.describe_log_dirs)
    attempt("alter_replica_log_dirs", a.alter_replica_log_dirs, {(t, 0, 0): "/nonexistent"})
    attempt("elect_leaders", a.elect_leaders, 0, {t: [0]}, raise_errors=False)
    attempt("alter_partition_reassignments", a.alter_partition_reassignments,
            {TopicPartition(t, 0): [0]})
    attempt("list_partition_reassignments", a.list_partition_reassignments)
    attempt("describe_producers", a.describe_producers, [TopicPartition(t, 0)])
    attempt("list_transactions", a.list_transactions)
    attempt("describe_transactions", a.describe_transactions, ["cap-kp-txn"])
    pattern = ResourcePattern(ResourceType.TOPIC, t, ACLResourcePatternType.LITERAL)
    attempt("create_acls", a.create_acls,
            [ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, pattern),
             ACL("User:bob", "*", ACLOperation.WRITE, ACLPermissionType.DENY,
                 ResourcePattern(ResourceType.GROUP, "cap-", ACLResourcePatternType.PREFIXED))])
    anyf = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                     ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    attempt("describe_acls", a.describe_acls, anyf)
    attempt("delete_acls", a.delete_acls,
            [ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                       ResourcePatternFilter(ResourceType.TOPIC, t, ACLResourcePatternType.MATCH))])
    attempt("alter_user_scram_credentials", a.alter_user_scram_credentials, [
        UserScramCredentialUpsertion("cap-kp-user", ScramMechanism.SCRAM_SHA_256, "pw"),
        UserScramCredentialUpsertion("cap-kp-user", ScramMechanism.SCRAM_SHA_512, "pw", iterations=8192)])
    attempt("describe_user_scram_credentials", a.describe_user_scram_credentials)
    attempt("describe_user_scram_credentials (named)", a.describe_user_scram_credentials, ["cap-kp-user", "nobody"])
    attempt("alter_user_scram_credentials (delete)", a.alter_user_scram_credentials,
            [UserScramCredentialDeletion("cap-kp-user", ScramMechanism.SCRAM_SHA_256)])
    attempt("delete_topics", a.delete_topics, [t + "-gone"])
    attempt("close", a.close)


def step_kafka_python_clients(bs, bs_sasl):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    t, g = "cap-kp", "cap-kp-g"
    p = KafkaProducer(bootstrap_servers=bs, client_id="cap-kp-producer", compression_type="gzip",
                      linger_ms=5, acks="all", request_timeout_ms=8000)
    for i in range(20):
        p.send(t, key=f"k{i % 4}".encode(), value=f"v{i}".encode(), headers=[("h", b"x")])
    attempt("produce gzip+keys", p.flush, timeout=10)
    p.close(timeout=5)
    c = KafkaConsumer(t, bootstrap_servers=bs, group_id=g, client_id="cap-kp-consumer",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      request_timeout_ms=10000, session_timeout_ms=10000)
    got, deadline = 0, time.monotonic() + 12
    while got < 20 and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            got += len(recs)
    print(f"  consumed {got}")
    attempt("commit", c.commit)
    attempt("commit (explicit, leader epoch 0)", c.commit,
            {TopicPartition(t, 0): OffsetAndMetadata(got or 1, "meta", 0)})
    attempt("committed", c.committed, TopicPartition(t, 0))
    attempt("offsets_for_times", c.offsets_for_times, {TopicPartition(t, 0): 0})
    attempt("end_offsets", c.end_offsets, [TopicPartition(t, 0)])
    meta = attempt("group_metadata", c.group_metadata)
    # A transaction that commits the (still open) consumer's offsets, then one that aborts.
    tp = KafkaProducer(bootstrap_servers=bs, client_id="cap-kp-txn", transactional_id="cap-kp-txn",
                       request_timeout_ms=8000)
    attempt("init_transactions", tp.init_transactions)
    attempt("begin_transaction", tp.begin_transaction)
    attempt("send in txn", tp.send, t, key=b"tk", value=b"in-txn")
    attempt("send_offsets_to_transaction", tp.send_offsets_to_transaction,
            {TopicPartition(t, 0): OffsetAndMetadata(got or 1, "", -1)}, meta or g)
    attempt("commit_transaction", tp.commit_transaction)
    attempt("begin_transaction", tp.begin_transaction)
    attempt("send in txn", tp.send, t, value=b"aborted")
    attempt("abort_transaction", tp.abort_transaction)
    tp.close(timeout=5)
    attempt("close consumer", c.close)
    # A second member resumes from the committed offsets (KIP-320 validation may send
    # OffsetForLeaderEpoch), reading committed records only.
    rc = KafkaConsumer(t, bootstrap_servers=bs, group_id=g, client_id="cap-kp-resume",
                       isolation_level="read_committed", auto_offset_reset="earliest",
                       enable_auto_commit=False, fetch_max_wait_ms=200, request_timeout_ms=10000,
                       session_timeout_ms=10000)
    n, deadline = 0, time.monotonic() + 4
    while time.monotonic() < deadline:
        n += sum(len(r) for r in rc.poll(timeout_ms=300).values())
    print(f"  resumed member read {n}")
    attempt("close resumed", rc.close)


def step_kafka_python_groups(bs, bs_sasl):
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import MemberToRemove
    from kafka.structs import OffsetAndMetadata
    a = KafkaAdminClient(bootstrap_servers=bs, client_id="cap-kp-groups", request_timeout_ms=8000)
    t, g = "cap-kp", "cap-kp-g"
    attempt("list_groups", a.list_groups)
    attempt("list_groups (filters)", a.list_groups, states_filter=["Empty", "Stable"],
            types_filter=["classic", "consumer", "share"])
    attempt("describe_groups", a.describe_groups, [g, "cap-nope"], include_authorized_operations=True)
    attempt("list_group_offsets", a.list_group_offsets, g)
    attempt("alter_group_offsets", a.alter_group_offsets, g, {TopicPartition(t, 0): OffsetAndMetadata(3, "", -1)})
    attempt("remove_group_members", a.remove_group_members, g,
            [MemberToRemove(group_instance_id="cap-static")] if "group_instance_id" in
            getattr(MemberToRemove, "_fields", ("group_instance_id",)) else [])
    attempt("delete_group_offsets", a.delete_group_offsets, g, [TopicPartition(t, 1)])
    attempt("delete_groups", a.delete_groups, ["cap-nope"])
    attempt("list_transactions (filters)", a.list_transactions, state_filters=["CompleteCommit"],
            transactional_id_pattern="cap-.*")
    attempt("describe_transactions", a.describe_transactions, ["cap-kp-txn", "cap-cf-txn"])
    attempt("find_hanging_transactions", a.find_hanging_transactions)
    states = attempt("describe_producers", a.describe_producers, [TopicPartition(t, 0)]) or {}
    active = [s for st in states.values() for s in st.active_producers]
    pid, epoch = (active[0].producer_id, active[0].producer_epoch) if active else (1000, 0)
    from kafka.admin import AbortTransactionSpec
    attempt("abort_transaction (WriteTxnMarkers)", a.abort_transaction,
            AbortTransactionSpec(TopicPartition(t, 0), pid, epoch))
    # No KafkaAdminClient method sends the quota APIs: kafka-python's own request classes,
    # sent through its connection manager.
    from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest
    attempt("AlterClientQuotas (raw)", a._manager.run, a._manager.send, AlterClientQuotasRequest(
        entries=[([("user", SASL_USER), ("client-id", None)],
                  [("producer_byte_rate", 1048576.0, False), ("request_percentage", 0.0, True)])],
        validate_only=False))
    attempt("DescribeClientQuotas (raw)", a._manager.run, a._manager.send, DescribeClientQuotasRequest(
        components=[("user", 0, SASL_USER), ("client-id", 2, None)], strict=False))
    attempt("close", a.close)


def step_confluent_producers(bs, bs_sasl):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    t = "cap-cf"
    attempt("create 3-partition topic", AdminClient({"bootstrap.servers": bs}).create_topics,
            [NewTopic(t, num_partitions=3, replication_factor=1)])
    p = Producer({"bootstrap.servers": bs, "client.id": "cap-cf-idem", "enable.idempotence": True,
                  "compression.type": "zstd", "linger.ms": 5})
    for i in range(20):
        p.produce(t, key=f"k{i % 4}", value=f"v{i}", headers={"h": b"x"})
    print(f"  idempotent zstd produce: {p.flush(10)} unsent")
    p2 = Producer({"bootstrap.servers": bs, "client.id": "cap-cf-lz4", "compression.type": "lz4",
                   "acks": 1})
    for i in range(5):
        p2.produce(t, value=f"lz4-{i}", partition=0)
    p2.produce(t, value=None, key="tombstone")
    print(f"  lz4 acks=1 produce: {p2.flush(10)} unsent")
    c = Consumer({"bootstrap.servers": bs, "group.id": "cap-cf-txn-g", "client.id": "cap-cf-txn-c",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([t])
    msgs, deadline = [], time.monotonic() + 10
    while not msgs and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            msgs.append(m)
    print(f"  txn consumer got {len(msgs)}")
    tp = Producer({"bootstrap.servers": bs, "client.id": "cap-cf-txn", "transactional.id": "cap-cf-txn",
                   "transaction.timeout.ms": 30000})
    attempt("init_transactions", tp.init_transactions, 10)
    attempt("begin_transaction", tp.begin_transaction)
    tp.produce(t, key="tx", value="committed")
    tp.produce(t + "-2", value="second topic")
    offsets = [TopicPartition(m.topic(), m.partition(), m.offset() + 1) for m in msgs] or \
        [TopicPartition(t, 0, 1)]
    attempt("send_offsets_to_transaction", tp.send_offsets_to_transaction, offsets,
            c.consumer_group_metadata(), 10)
    attempt("commit_transaction", tp.commit_transaction, 10)
    attempt("begin_transaction", tp.begin_transaction)
    tp.produce(t, value="aborted")
    attempt("abort_transaction", tp.abort_transaction, 10)
    tp.flush(5)
    c.close()


def step_confluent_consumers(bs, bs_sasl):
    from confluent_kafka import Consumer, TopicPartition
    t = "cap-cf"
    for proto, g in (("classic", "cap-cf-g"), ("consumer", "cap-cf-848")):
        conf = {"bootstrap.servers": bs, "group.id": g, "client.id": f"cap-cf-{proto}",
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "group.protocol": proto}
        if proto == "classic":
            conf["partition.assignment.strategy"] = "cooperative-sticky"
        c = Consumer(conf)
        c.subscribe([t])
        got, deadline = 0, time.monotonic() + 10
        while got < 10 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got += 1
        print(f"  {proto} group consumed {got}")
        attempt("commit sync", c.commit, asynchronous=False)
        attempt("commit explicit", c.commit, offsets=[TopicPartition(t, 0, 2)], asynchronous=False)
        attempt("committed", c.committed, [TopicPartition(t, 0)], timeout=5)
        if proto == "classic":
            attempt("offsets_for_times", c.offsets_for_times, [TopicPartition(t, 0, 0)], timeout=5)
            attempt("get_watermark_offsets", c.get_watermark_offsets, TopicPartition(t, 0), timeout=5)
            attempt("list_topics", c.list_topics, timeout=5)
        attempt("close", c.close)
    # A new member resumes the classic group from its commits (librdkafka validates a committed
    # offset that carries a leader epoch with OffsetForLeaderEpoch).
    c = Consumer({"bootstrap.servers": bs, "group.id": "cap-cf-g", "client.id": "cap-cf-resume",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 200})
    c.subscribe([t])
    n, deadline = 0, time.monotonic() + 4
    while time.monotonic() < deadline:
        m = c.poll(0.3)
        n += m is not None and m.error() is None
    print(f"  resumed member read {n}")
    attempt("close", c.close)
    # Positions that carry a leader epoch (assign, then seek): librdkafka validates them
    # (KIP-320) with OffsetForLeaderEpoch before fetching.
    c = Consumer({"bootstrap.servers": bs, "group.id": "cap-cf-assign", "client.id": "cap-cf-assign",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 200})
    attempt("assign with leader epoch", c.assign, [TopicPartition(t, 0, 1, leader_epoch=0)])
    n, deadline = 0, time.monotonic() + 2
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        n += m is not None and m.error() is None
    attempt("seek with leader epoch", c.seek, TopicPartition(t, 0, 2, leader_epoch=0))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        n += m is not None and m.error() is None
    print(f"  assigned consumer read {n}")
    attempt("close", c.close)


def step_confluent_admin(bs, bs_sasl):
    from confluent_kafka import (ConsumerGroupTopicPartitions, ElectionType, IsolationLevel,
                                 TopicCollection, TopicPartition)
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, AdminClient, AlterConfigOpType,
                                       ConfigEntry, ConfigResource, NewPartitions, NewTopic,
                                       OffsetSpec, ResourcePatternType, ResourceType,
                                       ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)
    a = AdminClient({"bootstrap.servers": bs, "client.id": "cap-cf-admin"})
    t = "cap-cf-admin"
    attempt("create_topics", a.create_topics, [
        NewTopic(t, num_partitions=2, replication_factor=1,
                 config={"retention.ms": "3600000", "max.message.bytes": "1000000"}),
        NewTopic(t + "-gone", num_partitions=1, replication_factor=1)], operation_timeout=5)
    attempt("create_partitions", a.create_partitions, [NewPartitions(t, 3)])
    attempt("describe_topics", a.describe_topics, TopicCollection([t, "cap-cf"]),
            include_authorized_operations=True)
    attempt("list_topics", a.list_topics, timeout=5)
    attempt("describe_configs", a.describe_configs,
            [ConfigResource(ResourceType.TOPIC, t), ConfigResource(ResourceType.BROKER, "0")])
    attempt("alter_configs", a.alter_configs,
            [ConfigResource(ResourceType.TOPIC, t, set_config={"retention.ms": "7200000"})])
    attempt("incremental_alter_configs", a.incremental_alter_configs, [
        ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
            ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)]),
        ConfigResource(ResourceType.GROUP, "cap-share-g", incremental_configs=[
            ConfigEntry("share.auto.offset.reset", "earliest",
                        incremental_operation=AlterConfigOpType.SET)])])
    attempt("list_groups", a.list_groups, timeout=5)
    attempt("list_consumer_groups", a.list_consumer_groups)
    try:
        from confluent_kafka import ConsumerGroupState, ConsumerGroupType
        attempt("list_consumer_groups (filters)", a.list_consumer_groups,
                states={ConsumerGroupState.STABLE, ConsumerGroupState.EMPTY},
                types={ConsumerGroupType.CLASSIC, ConsumerGroupType.CONSUMER})
    except ImportError as e:
        print(f"  list_consumer_groups (filters): {e}")
    attempt("describe_consumer_groups", a.describe_consumer_groups,
            ["cap-cf-g", "cap-cf-848", "cap-kp-g"], include_authorized_operations=True)
    attempt("list_consumer_group_offsets", a.list_consumer_group_offsets,
            [ConsumerGroupTopicPartitions("cap-cf-g")])
    attempt("list_consumer_group_offsets (partitions)", a.list_consumer_group_offsets,
            [ConsumerGroupTopicPartitions("cap-cf-g", [TopicPartition("cap-cf", 0)])], require_stable=True)
    attempt("alter_consumer_group_offsets", a.alter_consumer_group_offsets,
            [ConsumerGroupTopicPartitions("cap-cf-g", [TopicPartition("cap-cf", 0, 1)])])
    attempt("delete_consumer_groups", a.delete_consumer_groups, ["cap-cf-txn-g"])
    attempt("delete_records", a.delete_records, [TopicPartition("cap-cf", 0, 1)])
    attempt("describe_cluster", a.describe_cluster, include_authorized_operations=True)
    attempt("list_offsets", a.list_offsets, {
        TopicPartition("cap-cf", 0): OffsetSpec.latest(),
        TopicPartition("cap-cf", 1): OffsetSpec.earliest(),
        TopicPartition("cap-cf", 2): OffsetSpec.max_timestamp(),
        TopicPartition(t, 0): OffsetSpec.for_timestamp(int(time.time() * 1000) - 60000)},
        isolation_level=IsolationLevel.READ_COMMITTED)
    attempt("elect_leaders", a.elect_leaders, ElectionType.PREFERRED, [TopicPartition(t, 0)])
    attempt("create_acls", a.create_acls, [
        AclBinding(ResourceType.TOPIC, t, ResourcePatternType.LITERAL, "User:carol", "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "cap-", ResourcePatternType.PREFIXED, "User:carol",
                   "127.0.0.1", AclOperation.DESCRIBE, AclPermissionType.DENY)])
    anyf = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)
    attempt("describe_acls", a.describe_acls, anyf)
    attempt("delete_acls", a.delete_acls, [AclBindingFilter(
        ResourceType.TOPIC, t, ResourcePatternType.MATCH, "User:carol", None,
        AclOperation.ANY, AclPermissionType.ANY)])
    attempt("alter_user_scram_credentials", a.alter_user_scram_credentials, [
        UserScramCredentialUpsertion(SASL_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     SASL_PASSWORD.encode()),
        UserScramCredentialUpsertion(SASL_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                     SASL_PASSWORD.encode(), b"fixed-salt"),
        UserScramCredentialUpsertion("cap-cf-tmp", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     b"tmp")])
    attempt("describe_user_scram_credentials", a.describe_user_scram_credentials)
    attempt("describe_user_scram_credentials (named)", a.describe_user_scram_credentials,
            [SASL_USER, "cap-cf-tmp"])
    attempt("alter_user_scram_credentials (delete)", a.alter_user_scram_credentials,
            [UserScramCredentialDeletion("cap-cf-tmp", ScramMechanism.SCRAM_SHA_256)])
    attempt("delete_topics", a.delete_topics, [t + "-gone"], operation_timeout=5)


def step_confluent_share(bs, bs_sasl):
    from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
    t, g = "cap-share", "cap-share-g"
    c = ShareConsumer({"bootstrap.servers": bs, "group.id": g, "client.id": "cap-share",
                       "share.acknowledgement.mode": "explicit", "socket.timeout.ms": 8000,
                       "max.poll.records": 50})
    c.subscribe([t])
    p = Producer({"bootstrap.servers": bs, "linger.ms": 1})
    acks = [AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, AcknowledgeType.REJECT]
    # At least 4 s of polling (so ShareFetch carries piggy-backed acknowledgements and later
    # session epochs), at most 15 s waiting for the first deliveries; every other batch is
    # acknowledged with commit_sync (ShareAcknowledge), the rest on the next poll.
    started, got, n, batches, nxt = time.monotonic(), 0, 0, 0, 0.0
    while time.monotonic() - started < 15 and (got < 6 or time.monotonic() - started < 4):
        if time.monotonic() >= nxt:
            for _ in range(3):
                p.produce(t, value=f"s{n}", partition=0)
                n += 1
            p.flush(5)
            nxt = time.monotonic() + 0.5
        batch = [m for m in c.poll(0.5) if m.error() is None]
        for m in batch:
            try:
                c.acknowledge(m, acks[got % 3])
            except Exception as e:
                print(f"  acknowledge: {e}")
            got += 1
        if batch:
            batches += 1
            if batches % 2:
                attempt("commit_sync", c.commit_sync, 5)
    print(f"  share consumer got {got} (produced {n})")
    attempt("commit_async", c.commit_async)
    attempt("close", c.close)


def step_sasl(bs, bs_sasl):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        conf = {"bootstrap.servers": bs_sasl, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": mech, "sasl.username": SASL_USER, "sasl.password": SASL_PASSWORD,
                "client.id": f"cap-sasl-{mech.lower()}"}
        attempt(f"confluent {mech} list_topics", AdminClient(conf).list_topics, timeout=6)
    p = Producer({"bootstrap.servers": bs_sasl, "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": SASL_USER,
                  "sasl.password": SASL_PASSWORD})
    p.produce("cap-sasl", value=b"over sasl")
    print(f"  sasl produce: {p.flush(6)} unsent")
    from kafka import KafkaAdminClient
    for mech in ("PLAIN", "SCRAM-SHA-256"):
        try:
            a = KafkaAdminClient(bootstrap_servers=bs_sasl, security_protocol="SASL_PLAINTEXT",
                                 sasl_mechanism=mech, sasl_plain_username=SASL_USER,
                                 sasl_plain_password=SASL_PASSWORD, request_timeout_ms=6000,
                                 client_id=f"cap-kp-sasl-{mech.lower()}")
            attempt(f"kafka-python {mech} list_topics", a.list_topics)
            a.close()
        except Exception as e:
            print(f"  kafka-python {mech}: {type(e).__name__}: {e}")


STEPS = {
    "kafka-python admin": step_kafka_python_admin,
    "kafka-python clients": step_kafka_python_clients,
    "confluent producers": step_confluent_producers,
    "confluent consumers": step_confluent_consumers,
    "confluent admin": step_confluent_admin,          # also creates the SASL user
    "kafka-python groups": step_kafka_python_groups,
    "confluent share": step_confluent_share,
    "sasl": step_sasl,
}

KAFKAJS = r"""
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');
const bs = process.argv[2];
const topic = 'cap-kjs';
const kafka = new Kafka({ clientId: 'cap-kjs', brokers: [bs], logLevel: logLevel.NOTHING,
  connectionTimeout: 5000, requestTimeout: 8000, retry: { retries: 2 } });
async function step(label, fn) {
  const t = Date.now();
  try { await fn(); console.log(`  ${label}: ok (${((Date.now() - t) / 1000).toFixed(1)} s)`); }
  catch (e) { console.log(`  ${label}: ${e.name}: ${String(e.message).slice(0, 160)}`); }
}
(async () => {
  const admin = kafka.admin();
  await step('admin connect', () => admin.connect());
  await step('createTopics', () => admin.createTopics({ waitForLeaders: true, topics: [
    { topic, numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '3600000' }] },
    { topic: topic + '-gone', numPartitions: 1 }] }));
  await step('fetchTopicMetadata', () => admin.fetchTopicMetadata({ topics: [topic] }));
  await step('listTopics', () => admin.listTopics());
  await step('describeCluster', () => admin.describeCluster());
  await step('createPartitions', () => admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }));
  await step('describeConfigs', () => admin.describeConfigs({ includeSynonyms: true,
    resources: [{ type: 2, name: topic }, { type: 4, name: '0' }] }));
  await step('alterConfigs', () => admin.alterConfigs({ resources: [{ type: 2, name: topic,
    configEntries: [{ name: 'retention.ms', value: '7200000' }] }] }));
  const producer = kafka.producer();
  await step('producer connect', () => producer.connect());
  await step('send gzip', () => producer.send({ topic, compression: CompressionTypes.GZIP,
    messages: Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 4}`, value: `v${i}`,
      headers: { h: 'x' } })) }));
  await step('sendBatch', () => producer.sendBatch({ topicMessages: [
    { topic, messages: [{ value: 'batch-0', partition: 0 }] }] }));
  const consumer = kafka.consumer({ groupId: 'cap-kjs-g', sessionTimeout: 10000, maxWaitTimeInMs: 500 });
  await step('consume group', async () => {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let got = 0;
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 12000);
      consumer.run({ eachMessage: async () => { got += 1; if (got >= 21) { clearTimeout(timer); resolve(); } } });
    });
    console.log(`  kafkajs consumed ${got}`);
    await consumer.disconnect();
  });
  await step('fetchOffsets', () => admin.fetchOffsets({ groupId: 'cap-kjs-g', topics: [topic] }));
  await step('fetchTopicOffsets', () => admin.fetchTopicOffsets(topic));
  await step('fetchTopicOffsetsByTimestamp', () => admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - 60000));
  await step('setOffsets', () => admin.setOffsets({ groupId: 'cap-kjs-g', topic,
    partitions: [{ partition: 0, offset: '1' }] }));
  await step('listGroups', () => admin.listGroups());
  await step('describeGroups', () => admin.describeGroups(['cap-kjs-g']));
  await step('deleteTopicRecords', () => admin.deleteTopicRecords({ topic,
    partitions: [{ partition: 0, offset: '1' }] }));
  await step('createAcls', () => admin.createAcls({ acl: [{ resourceType: 2, resourceName: topic,
    resourcePatternType: 3, principal: 'User:dave', host: '*', operation: 3, permissionType: 3 }] }));
  await step('describeAcls', () => admin.describeAcls({ resourceType: 1, resourcePatternType: 1,
    operation: 1, permissionType: 1 }));
  await step('deleteAcls', () => admin.deleteAcls({ filters: [{ resourceType: 2, resourceName: topic,
    resourcePatternType: 3, principal: 'User:dave', host: '*', operation: 1, permissionType: 1 }] }));
  const txp = kafka.producer({ transactionalId: 'cap-kjs-txn', idempotent: true, maxInFlightRequests: 1 });
  await step('transaction commit', async () => {
    await txp.connect();
    const txn = await txp.transaction();
    await txn.send({ topic, messages: [{ key: 'tx', value: 'in-txn' }] });
    await txn.sendOffsets({ consumerGroupId: 'cap-kjs-g', topics: [{ topic, partitions: [{ partition: 0, offset: '2' }] }] });
    await txn.commit();
  });
  await step('transaction abort', async () => {
    const txn = await txp.transaction();
    await txn.send({ topic, messages: [{ value: 'aborted' }] });
    await txn.abort();
  });
  await step('deleteGroups', () => admin.deleteGroups(['cap-kjs-nope']));
  await step('deleteTopics', () => admin.deleteTopics({ topics: [topic + '-gone'] }));
  await txp.disconnect().catch(() => {});
  await producer.disconnect().catch(() => {});
  await admin.disconnect().catch(() => {});
})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
"""


def external_steps(bs, tmp):
    """(label, argv, stdin, env) of the non-Python clients."""
    js = os.path.join(tmp, "capture-kafkajs.js")
    with open(js, "w") as f:
        f.write(KAFKAJS)
    env = dict(os.environ, NODE_PATH=str(KAFKAJS_MODULES))
    lines = "".join(f"k{i % 3}:kcat-{i}\n" for i in range(10))
    return [
        ("kcat -L", ["kcat", "-b", bs, "-L", "-m", "5"], None, None),
        ("kcat -P", ["kcat", "-b", bs, "-P", "-t", "cap-kcat", "-K", ":", "-z", "snappy",
                     "-X", "message.timeout.ms=8000", "-m", "5"], lines, None),
        ("kcat -P -p0", ["kcat", "-b", bs, "-P", "-t", "cap-kcat", "-p", "0",
                         "-X", "message.timeout.ms=8000"], "plain-1\nplain-2\n", None),
        ("kcat -C -G", ["kcat", "-b", bs, "-C", "-G", "cap-kcat-g", "cap-kcat", "-c", "12", "-e",
                        "-X", "auto.offset.reset=earliest", "-q"], None, None),
        ("kcat -C -o", ["kcat", "-b", bs, "-C", "-t", "cap-kcat", "-p", "0", "-o", "-2", "-e", "-q"],
         None, None),
        ("kcat -Q", ["kcat", "-b", bs, "-Q", "-t", f"cap-kcat:0:{int(time.time() * 1000) - 60000}"],
         None, None),
        ("kafkajs", ["node", js, bs], None, env),
    ]


def run_child(label, argv, timeout, stdin=None, env=None):
    t = time.monotonic()
    print(f"== {label} (timeout {timeout:.0f} s)", flush=True)
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                           env=env, start_new_session=True)
        out = (r.stdout + ("\n" + r.stderr if r.returncode and r.stderr else "")).strip()
        status = f"exit {r.returncode}"
    except subprocess.TimeoutExpired as e:
        out = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes)
               else (e.stdout or "")).strip()
        status = "TIMED OUT"
    except OSError as e:
        out, status = "", f"could not run: {e}"
    if label.startswith("kcat"):               # kcat prints records / metadata: keep it short
        out = "\n".join(out.splitlines()[:3])
    if out:
        print("\n".join("  " + l if not l.startswith("  ") else l for l in out.splitlines()[-60:]))
    print(f"   -> {status} in {time.monotonic() - t:.1f} s", flush=True)
    return status


# --- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    ap.add_argument("--budget", type=float, default=110, help="seconds for all clients together")
    ap.add_argument("--per-version-cap", type=int, default=40)
    ap.add_argument("--keep-existing", action="store_true")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap-sasl", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.step:                                    # child: one Python client step
        STEPS[args.step](args.bootstrap, args.bootstrap_sasl)
        return

    started = time.monotonic()
    binary = os.environ.get("SHOAL_BIN", "/var/tmp/dev-target/release/shoal")
    py = os.environ.get("SHOAL_PY", "/var/tmp/shoal-venv/bin/python")
    table = load_api_table()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.keep_existing:
        for f in out.iterdir():
            if f.is_file() and FILE_RE.match(f.name):
                f.unlink()
    corpus = Corpus(out, table, args.per_version_cap)

    tmp = tempfile.mkdtemp(prefix="shoal-capture-")
    lsock, lsock_sasl = listen_socket(), listen_socket()
    p, p2 = lsock.getsockname()[1], lsock_sasl.getsockname()[1]
    b, b2 = free_port(), free_port()
    broker = None
    proxies = []
    try:
        broker, log_path = start_broker(binary, tmp, b, b2, p, p2)
        proxies = [Proxy(lsock, b, corpus), Proxy(lsock_sasl, b2, corpus)]
        bs, bs_sasl = f"127.0.0.1:{p}", f"127.0.0.1:{p2}"
        print(f"shoal on :{b} (SASL :{b2}), proxied as {bs} (SASL {bs_sasl}); data {tmp}")
        deadline = time.monotonic() + args.budget
        step_timeout = {"kafka-python clients": 30, "confluent share": 22, "kafkajs": 35,
                        "confluent consumers": 30}
        plan = [(name, [py, os.path.abspath(__file__), "--step", name, "--bootstrap", bs,
                        "--bootstrap-sasl", bs_sasl], None, None) for name in STEPS]
        plan += external_steps(bs, tmp)
        statuses = {}
        for label, argv, stdin, env in plan:
            left = deadline - time.monotonic()
            if left < 3:
                statuses[label] = "skipped (budget spent)"
                print(f"== {label}: skipped, budget spent")
                continue
            statuses[label] = run_child(label, argv, min(step_timeout.get(label, 20), left), stdin, env)
        time.sleep(0.5)                              # let the last frames through the proxy
    finally:
        for px in proxies:
            px.close()
        if broker is not None:
            stop_broker(broker)
    errors = []
    if broker is not None:
        with open(log_path, errors="replace") as f:
            errors = [l.rstrip() for l in f if " ERROR " in l]
    shutil.rmtree(tmp, ignore_errors=True)

    # --- report ---
    print("\n== per API key: requests seen / corpus files / versions")
    for key in sorted(corpus.frames):
        print(f"  {key:3d} {table[key][0]:<30} {corpus.frames[key]:6d} {corpus.files[key]:5d}  "
              f"v{','.join(map(str, sorted(corpus.versions[key])))}")
    never = [k for k in sorted(table) if k not in corpus.frames]
    print(f"\n== advertised API keys no client sent ({len(never)} of {len(table)}):")
    for k in never:
        print(f"  {k:3d} {table[k][0]}")
    if corpus.unknown:
        print(f"\n== requests with API keys outside the table (not written): {dict(corpus.unknown)}")
    if corpus.skipped:
        print(f"\n== skipped: {dict(corpus.skipped)}")
    files = [f for f in out.iterdir() if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    print(f"\n== {len(files)} files, {size} bytes in {out}; {sum(px.connections for px in proxies)} "
          f"proxied connections; {time.monotonic() - started:.0f} s")
    print("== steps: " + json.dumps(statuses))
    if errors:
        print(f"\n== the broker logged {len(errors)} ERROR lines, e.g.:")
        for l in errors[:10]:
            print("  " + l[:300])


if __name__ == "__main__":
    main()
