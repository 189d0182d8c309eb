"""kcat (librdkafka) against Shoal: produce (-P), consume (-C), and balanced consumer groups
(-G) where two members share a topic's partitions."""
import subprocess
import time

from conftest import BOOTSTRAP, kcat


def test_kcat_produces_and_consumes_keyed_records(broker):
    lines = "".join(f"key{i}:value{i}\n" for i in range(20))
    rc, _, err = kcat("-P", "-t", "kcat-basic", "-K:", "-z", "lz4", input=lines)
    assert rc == 0, err
    rc, out, err = kcat("-C", "-t", "kcat-basic", "-e", "-f", "%k=%s\n")
    assert rc == 0, err
    assert out.splitlines() == [f"key{i}=value{i}" for i in range(20)]


def test_kcat_metadata_lists_topic_and_broker(broker):
    kcat("-P", "-t", "kcat-meta", input="x\n")
    rc, out, err = kcat("-L", "-t", "kcat-meta")
    assert rc == 0, err
    assert "1 brokers" in out and 'topic "kcat-meta" with 1 partitions' in out


def test_kcat_balanced_consumers_share_partitions(broker):
    subprocess.run(["kcat", "-b", BOOTSTRAP, "-L"], capture_output=True)
    # A 4-partition topic via auto-creation is 1 partition by default, so create explicitly
    # through kafka-python's admin client.
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic("kcat-group", num_partitions=4, replication_factor=1)])
    admin.close()
    members = [
        subprocess.Popen(["kcat", "-b", BOOTSTRAP, "-G", "kcat-g", "-f", "%p %s\n", "-X",
                          "auto.offset.reset=earliest", "kcat-group"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        time.sleep(6)  # both members join and settle (initial delay is 0 in this suite)
        lines = "".join(f"k{i}:v{i}\n" for i in range(200))
        rc, _, err = kcat("-P", "-t", "kcat-group", "-K:", input=lines)
        assert rc == 0, err
        time.sleep(4)
    finally:
        for m in members:
            m.terminate()
    outs = [m.communicate(timeout=20) for m in members]
    parts = [set(l.split()[0] for l in o.splitlines() if l.strip()) for o, _ in outs]
    values = [l.split()[1] for o, _ in outs for l in o.splitlines() if l.strip()]
    assert sorted(values) == sorted(f"v{i}" for i in range(200)), "every record consumed once"
    assert parts[0] and parts[1], f"both members got partitions: {parts}"
    assert not (parts[0] & parts[1]), f"no partition owned by both members: {parts}"
    assert parts[0] | parts[1] == {"0", "1", "2", "3"}
