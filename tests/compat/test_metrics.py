"""Prometheus `/metrics` on the admin port: the reference OpenMetrics parser
(prometheus_client) accepts the whole page, and after a real confluent-kafka group consumed
and committed, the page shows traffic per topic, request counts and latency histograms,
rebalances, and the group's lag under kafka_exporter's names. After a real
confluent-kafka ShareConsumer (KIP-932) accepted, rejected and still holds records, the page
shows the share group and each share-partition's window, records by state and lag."""
import os
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.request

import confluent_kafka
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourceType)
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import shoal_bin, free_port


def start_broker(extra=()):
    """A private broker on free ports; returns (process, bootstrap, http address)."""
    data = tempfile.mkdtemp(prefix="shoal-metrics-")
    port = free_port()
    proc = subprocess.Popen(
        [shoal_bin(), "serve", "--kafka-addr", f"127.0.0.1:{port}", "--http-addr", "127.0.0.1:0", "--amqp-addr", "127.0.0.1:0",
         "--data-dir", os.path.join(data, "data"), "--set", "num.partitions=3",
         "--set", "group.initial.rebalance.delay.ms=0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    http = None
    for line in proc.stdout:
        if line.startswith("shoal: http listening on "):
            http = line.split()[-1]
        if line.startswith("shoal: kafka listening on "):
            break
    assert http, "the broker did not print its http address"
    return proc, f"127.0.0.1:{port}", http


def samples(families, name, **labels):
    return [s for f in families.values() for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def total(families, name, **labels):
    return sum(s.value for s in samples(families, name, **labels))


def test_metrics_parse_and_show_traffic_rebalances_and_lag():
    proc, bootstrap, http = start_broker()
    try:
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for i in range(30):
            producer.produce("metered", key=f"k{i}".encode(), value=f"v{i}".encode())
        assert producer.flush(10) == 0

        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap, "group.id": "meter",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        consumer.subscribe(["metered"])
        got = []
        while len(got) < 20:
            m = consumer.poll(10)
            assert m is not None, f"only {len(got)} records consumed"
            assert m.error() is None, m.error()
            got.append(m)
        # Commit exactly the first 20 consumed (per partition: the next offset to read).
        last = {}
        for m in got:
            last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
        consumer.commit(offsets=[confluent_kafka.TopicPartition("metered", p, o + 1)
                                 for p, o in last.items()], asynchronous=False)
        consumer.close()

        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            text = r.read().decode()
        # The strict OpenMetrics parser raises on anything malformed.
        families = {f.name: f for f in text_string_to_metric_families(text)}

        assert total(families, "shoal_topic_records_in_total", topic="metered") == 30
        assert total(families, "shoal_topic_bytes_in_total", topic="metered") > 30 * 4
        assert total(families, "shoal_topic_records_out_total", topic="metered") >= 20
        assert total(families, "shoal_requests_total", api="Produce") >= 1
        assert total(families, "shoal_requests_total", api="Fetch") >= 1
        assert samples(families, "shoal_request_duration_seconds_bucket", api="Fetch")
        assert total(families, "shoal_group_rebalances_total", group="meter",
                     protocol="classic") >= 1
        assert total(families, "shoal_groups", type="classic", state="Empty") == 1

        assert total(families, "kafka_topic_partition_current_offset", topic="metered") == 30
        assert total(families, "kafka_topic_partition_oldest_offset", topic="metered") == 0
        assert total(families, "kafka_topic_partitions", topic="metered") == 3
        # Per partition the group committed: offset = what it read, lag = log end - offset.
        # (Partitions the consumer never read have no committed offset and no lag row, as
        # with kafka_exporter.)
        for p, o in last.items():
            labels = dict(consumergroup="meter", topic="metered", partition=str(p))
            end = total(families, "kafka_topic_partition_current_offset", topic="metered",
                        partition=str(p))
            assert total(families, "kafka_consumergroup_current_offset", **labels) == o + 1
            assert total(families, "kafka_consumergroup_lag", **labels) == end - (o + 1)
        reported = {s.labels["partition"]
                    for s in samples(families, "kafka_consumergroup_lag", consumergroup="meter")}
        assert reported == {str(p) for p in last}
        lag_seconds = samples(families, "kafka_consumergroup_lag_seconds", consumergroup="meter")
        assert lag_seconds and all(s.value >= 0 for s in lag_seconds)
        assert total(families, "kafka_consumergroup_members", consumergroup="meter") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --- share groups ----------------------------------------------------------------------------

# Record locks long enough that what a held consumer acquired stays ACQUIRED for the test.
SHARE_LOCK_SETTINGS = ["--set", "group.share.record.lock.duration.ms=60000",
                       "--set", "group.share.min.record.lock.duration.ms=1000"]


def set_group_config(bootstrap, group, key, value):
    """IncrementalAlterConfigs SET on the GROUP resource (e.g. share.auto.offset.reset)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(key, str(value), incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=10)


class HeldShareConsumer:
    """A confluent-kafka ShareConsumer (explicit acknowledgement) in its own thread: its first
    non-empty poll's records are REJECTed (the first), ACCEPTed (the next `accept`) and the
    rest kept unacknowledged, so they stay ACQUIRED; `ready` is set once the broker confirmed
    the acknowledgements. `stop()` closes it (the held records are released)."""

    def __init__(self, bootstrap, group, topic, accept):
        self.bootstrap, self.group, self.topic, self.accept = bootstrap, group, topic, accept
        self.delivered = []        # (partition, offset) of the first batch
        self.accepted = self.rejected = 0
        self.errors = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        c = None
        try:
            c = confluent_kafka.ShareConsumer({
                "bootstrap.servers": self.bootstrap, "group.id": self.group,
                "client.id": "held-share-consumer", "share.acknowledgement.mode": "explicit",
                "socket.timeout.ms": 10000})
            c.subscribe([self.topic])
            batch, deadline = [], time.monotonic() + 30
            while not batch and time.monotonic() < deadline:
                batch = [m for m in c.poll(0.5) if m.error() is None]
            assert batch, "no record delivered in 30 s"
            self.delivered = [(m.partition(), m.offset()) for m in batch]
            for i, m in enumerate(batch):
                if i == 0:
                    c.acknowledge(m, confluent_kafka.AcknowledgeType.REJECT)
                    self.rejected += 1
                elif i <= self.accept:
                    c.acknowledge(m, confluent_kafka.AcknowledgeType.ACCEPT)
                    self.accepted += 1
            result = c.commit_sync(10)
            self.errors += [f"{tp.partition}: {e}" for tp, e in result.items() if e is not None]
            self.ready.set()
            self._stop.wait(60)
        except Exception:
            self.errors.append(traceback.format_exc())
        finally:
            self.ready.set()
            if c is not None:
                c.close()

    def held(self):
        return len(self.delivered) - self.accepted - self.rejected

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=20)


def test_metrics_show_share_groups_per_share_partition():
    proc, bootstrap, http = start_broker(SHARE_LOCK_SETTINGS)
    consumer = None
    try:
        topic, group = "queued", "queue-workers"
        n = 30
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for i in range(n):
            producer.produce(topic, value=f"job {i}".encode(), partition=i % 3)
        assert producer.flush(10) == 0
        set_group_config(bootstrap, group, "share.auto.offset.reset", "earliest")
        consumer = HeldShareConsumer(bootstrap, group, topic, accept=5)
        assert consumer.ready.wait(40)
        assert not consumer.errors, consumer.errors

        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as r:
            text = r.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in ("shoal_share_partition_start_offset", "shoal_share_partition_end_offset",
                     "shoal_share_partition_records", "shoal_share_partition_lag",
                     "shoal_share_group_members"):
            assert name in families, f"{name} missing from /metrics"

        assert total(families, "shoal_groups", type="share", state="Stable") == 1
        assert total(families, "shoal_share_group_members", group=group) == 1
        g = dict(group=group, topic=topic)
        starts = {s.labels["partition"]: s.value
                  for s in samples(families, "shoal_share_partition_start_offset", **g)}
        ends = {s.labels["partition"]: s.value
                for s in samples(families, "shoal_share_partition_end_offset", **g)}
        # Every partition the consumer was delivered from has state; its window ends one
        # past the last offset delivered (everything from offset 0: earliest).
        last = {}
        for p, o in consumer.delivered:
            last[str(p)] = max(last.get(str(p), -1), o)
        assert set(last) <= set(starts) == set(ends), (starts, ends, last)
        for p, o in last.items():
            assert ends[p] == o + 1, (p, ends, last)
            assert starts[p] <= ends[p]
        records = {st: total(families, "shoal_share_partition_records", state=st, **g)
                   for st in ("acquired", "available", "acknowledged", "archiving", "archived")}
        assert consumer.held() > 0, "the first batch was all acknowledged"
        assert records["acquired"] == consumer.held(), (records, consumer.held())
        assert records["available"] == 0 and records["archiving"] == 0, records
        # Finished records: before the SPSO, or acknowledged/archived inside the window.
        finished = sum(starts.values()) + records["acknowledged"] + records["archived"]
        assert finished == consumer.accepted + consumer.rejected, (records, starts)
        assert total(families, "shoal_share_partition_lag", **g) == \
            n - consumer.accepted - consumer.rejected
        assert total(families, "shoal_share_records_acknowledged_total", delivery_count="1",
                     **g) == consumer.accepted
        assert total(families, "shoal_share_records_archived_total", reason="rejected",
                     **g) == 1
        # A share group is not a consumer group: no kafka_exporter series for it.
        assert not samples(families, "kafka_consumergroup_members", consumergroup=group)
        assert not samples(families, "kafka_consumergroup_lag", consumergroup=group)
    finally:
        if consumer is not None:
            consumer.stop()
        proc.terminate()
        proc.wait(timeout=20)
