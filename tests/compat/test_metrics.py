"""Prometheus `/metrics` on the admin port: the reference OpenMetrics parser
(prometheus_client) accepts the whole page, and after a real confluent-kafka group consumed
and committed, the page shows traffic per topic, request counts and latency histograms,
rebalances, and the group's lag under kafka_exporter's names."""
import os
import socket
import subprocess
import tempfile
import urllib.request

import confluent_kafka
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import shoal_bin


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(extra=()):
    """A private broker on free ports; returns (process, bootstrap, http address)."""
    data = tempfile.mkdtemp(prefix="shoal-metrics-")
    port = free_port()
    proc = subprocess.Popen(
        [shoal_bin(), "serve", "--kafka-addr", f"127.0.0.1:{port}", "--http-addr", "127.0.0.1:0",
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
