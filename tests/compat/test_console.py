"""The web console, in Debian's headless Chromium (playwright-core): a live 3-member group of
real confluent-kafka consumers shows on the group page with its state, members, a partition
ownership map (one owner per partition), lag per partition in records and seconds, the lag
chart, the throughput chart and the rebalance timeline; the topic page's message browser shows
records, with the topic's throughput chart and compression ratio. A live share group (a
confluent-kafka ShareConsumer holding acquired records, having accepted and rejected others)
shows in the share-groups section and on its own page with the member, each share-partition's
in-flight window and records by state as the admin API reports them, and the delivery-count
histogram; its lz4-compressed topic shows a compression ratio below 1."""
import json
import os
import pathlib
import subprocess
import threading
import time
import urllib.request

import confluent_kafka
import confluent_kafka.admin

from test_metrics import SHARE_LOCK_SETTINGS, HeldShareConsumer, set_group_config, start_broker

HERE = pathlib.Path(__file__).resolve().parent
GROUP = "console-demo"
TOPIC = "console-topic"
SHARE_GROUP = "console-queue"
SHARE_TOPIC = "console-jobs"


def get(http, path):
    with urllib.request.urlopen(f"http://{http}{path}", timeout=10) as r:
        return json.loads(r.read())


def member(bootstrap, stop, committed_per_member):
    c = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "partition.assignment.strategy": "range",
    })
    c.subscribe([TOPIC])
    done = {}
    try:
        while not stop.is_set():
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            # Commit only the first few records this member reads of each partition: the
            # rest stays as lag (which partitions it reads depends on the rebalances).
            if done.get(m.partition(), 0) < committed_per_member:
                c.commit(message=m, asynchronous=False)
                done[m.partition()] = done.get(m.partition(), 0) + 1
    finally:
        c.close()


def test_console_shows_a_live_group_with_members_ownership_lag_and_messages():
    proc, bootstrap, http = start_broker(["--set", "console.lag.sample.interval.ms=300",
                                          *SHARE_LOCK_SETTINGS])
    stop = threading.Event()
    threads = []
    share = None
    try:
        admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([confluent_kafka.admin.NewTopic(TOPIC, 3, 1)])[TOPIC].result(10)
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
        for i in range(90):
            producer.produce(TOPIC, key=f"k{i}".encode(), value=f"order {i}".encode(),
                             partition=i % 3)
        assert producer.flush(10) == 0

        for _ in range(3):
            t = threading.Thread(target=member, args=(bootstrap, stop, 5), daemon=True)
            t.start()
            threads.append(t)
        deadline = time.time() + 30
        while time.time() < deadline:
            g = get(http, f"/api/v1/groups/{GROUP}") if any(
                x["group_id"] == GROUP for x in get(http, "/api/v1/groups")) else {}
            lag = get(http, f"/api/v1/groups/{GROUP}/lag") if g else {"partitions": []}
            if g.get("state") == "Stable" and len(g.get("members", [])) == 3 and \
                    sum(p["current_offset"] >= 0 for p in lag["partitions"]) == 3:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the group never settled: {g}")
        time.sleep(1)  # let the members finish their few commits
        expected_lag = get(http, f"/api/v1/groups/{GROUP}/lag")["total_lag"]
        assert 0 < expected_lag <= 90 - 15

        # The share group: 40 lz4-compressed records of 2 partitions; the consumer rejects
        # one, accepts ten and holds the rest.
        admin.create_topics([confluent_kafka.admin.NewTopic(SHARE_TOPIC, 2, 1)])[SHARE_TOPIC] \
            .result(10)
        lz4 = confluent_kafka.Producer({"bootstrap.servers": bootstrap,
                                        "compression.type": "lz4", "linger.ms": 50})
        for i in range(40):
            lz4.produce(SHARE_TOPIC, value=f"job {i} ".encode() + b"payload " * 20,
                        partition=i % 2)
        assert lz4.flush(10) == 0
        set_group_config(bootstrap, SHARE_GROUP, "share.auto.offset.reset", "earliest")
        share = HeldShareConsumer(bootstrap, SHARE_GROUP, SHARE_TOPIC, accept=10)
        assert share.ready.wait(40)
        assert not share.errors, share.errors
        api_share = get(http, f"/api/v1/groups/{SHARE_GROUP}")
        assert api_share["group_type"] == "share" and len(api_share["members"]) == 1

        env = dict(os.environ)
        r = subprocess.run(["node", str(HERE / "console" / "check.mjs"), http, GROUP, TOPIC,
                            SHARE_GROUP, SHARE_TOPIC],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout.strip().splitlines()[-1])

        assert report["page_errors"] == []
        assert report["state"] == "Stable"
        members = set(get(http, f"/api/v1/groups/{GROUP}")["members"][i]["member_id"]
                      for i in range(3))
        assert set(report["members"]) == members
        # One cell per partition, each owned by exactly one of the three members.
        assert sorted(c["partition"] for c in report["cells"]) == [0, 1, 2]
        assert {c["owner"] for c in report["cells"]} == members
        # The page shows the lag the API reports (nothing is consumed-and-committed any more).
        assert report["total_lag"] == expected_lag
        assert sum(row["records"] for row in report["lag_rows"]) == expected_lag
        assert all(row["seconds"] > 0 for row in report["lag_rows"])
        assert report["chart_samples"] >= 2
        assert report["rebalances"] >= 1
        assert any(GROUP in row and "Stable" in row for row in report["group_rows"])
        assert report["messages"] >= 1
        assert report["group_throughput_samples"] >= 1
        assert report["topic_throughput_samples"] >= 1
        assert float(report["topic_compression_ratio"]) == 1.0, "uncompressed batches"

        # The share group, on the groups page and its own: what the admin API reports.
        api_share = get(http, f"/api/v1/groups/{SHARE_GROUP}")
        member_ids = [m["member_id"] for m in api_share["members"]]
        expected = [dict(topic=p["topic"], partition=p["partition"],
                         start_offset=p["start_offset"], end_offset=p["end_offset"],
                         lag=p["lag"], **p["records"]) for p in api_share["partitions"]]
        for shown in (report["share_list"], report["share_detail"]):
            assert shown["members"] == member_ids
            assert shown["partitions"] == expected
        assert report["share_detail"]["state"] == "Stable"
        rows = report["share_detail"]["partitions"]
        assert sum(p["acquired"] for p in rows) == share.held() > 0
        assert sum(p["start_offset"] + p["acknowledged"] + p["archived"] for p in rows) == \
            share.accepted + share.rejected
        assert report["share_detail"]["total_lag"] == 40 - share.accepted - share.rejected
        assert report["share_detail"]["histogram"] == [dict(delivery_count=1,
                                                             records=share.accepted)]
        assert report["share_detail"]["rejected"] == 1
        assert 0 < report["share_topic_compression_ratio"] < 1, "lz4 saved space"
    finally:
        if share is not None:
            share.stop()
        stop.set()
        for t in threads:
            t.join(timeout=10)
        proc.terminate()
        proc.wait(timeout=20)
