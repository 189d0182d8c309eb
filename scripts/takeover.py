#!/usr/bin/env python3
"""Takeover time after a consumer is killed (SIGKILL, no LeaveGroup, no close): the time from
the kill until the surviving member of the group receives the records the dead one owned.

Modes, each on a fresh `shoal serve`:
- consumer groups, classic protocol and KIP-848 consumer protocol, with Kafka's behaviour
  (the dead member's partitions move after its session timeout) and with Shoal's
  `group.connection.close.session.timeout.ms=1000` (after 1 s once its connection closed);
- share groups: records held by the dead member come back at lock expiry
  (`group.share.release.on.connection.close=false`) or at once when its connection closes
  (the default, as Kafka 4.1).

Usage: python3 scripts/takeover.py [--shoal PATH] [--session-timeout-ms 45000]
       [--lock-ms 30000] [--modes classic,consumer,share]
Prints one line per mode and a Markdown table. Needs confluent-kafka (the CI venv has it).
Each mode takes about its timeout plus ~10 s.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(shoal, settings):
    root = tempfile.mkdtemp(prefix="shoal-takeover-")
    port = free_port()
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen([shoal, "serve", "--kafka-addr", f"127.0.0.1:{port}",
                             "--http-addr", "127.0.0.1:0", "--amqp-addr", "127.0.0.1:0", "--data-dir",
                             os.path.join(root, "data"), *sets],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, root, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("broker did not start")


CHILD = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer, ShareConsumer
    bootstrap, topic, group, kind, session_ms = sys.argv[1:6]
    if kind == "share":
        c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "share.acknowledgement.mode": "explicit"})
    else:
        conf = {"bootstrap.servers": bootstrap, "group.id": group,
                "auto.offset.reset": "earliest", "enable.auto.commit": False}
        if kind == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["session.timeout.ms"] = int(session_ms)
        c = Consumer(conf)
    c.subscribe([topic])
    while True:
        got = c.poll(1.0)
        msgs = got if kind == "share" else ([got] if got is not None else [])
        msgs = [m for m in msgs if m is not None and m.error() is None]
        if msgs:
            print("HOLDING", flush=True)  # never acknowledged / committed; waits for the kill
            while True:
                time.sleep(1)
""")


def set_group_config(bootstrap, group, key, value):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(10)


def measure(shoal, kind, settings, session_ms):
    proc, root, bootstrap = start_broker(shoal, settings)
    try:
        topic, group = f"t-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            f.result(10)
        if kind == "share":
            set_group_config(bootstrap, group, "share.auto.offset.reset", "earliest")
        p = Producer({"bootstrap.servers": bootstrap})
        for i in range(100):
            p.produce(topic, value=str(i))
        p.flush(10)
        child = subprocess.Popen([sys.executable, "-c", CHILD, bootstrap, topic, group, kind,
                                  str(session_ms)], stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if "HOLDING" not in line:
            raise RuntimeError(f"{kind}: the first consumer got nothing")
        # The survivor joins while the first one holds the partition (or the records).
        if kind == "share":
            survivor = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                                      "share.acknowledgement.mode": "explicit"})
        else:
            conf = {"bootstrap.servers": bootstrap, "group.id": group,
                    "auto.offset.reset": "earliest", "enable.auto.commit": False}
            if kind == "consumer":
                conf["group.protocol"] = "consumer"
            else:
                conf["session.timeout.ms"] = session_ms
            survivor = Consumer(conf)
        survivor.subscribe([topic])
        # Let the survivor join and settle (it gets nothing: the partition or the records
        # are the first consumer's).
        settle = time.time() + 8
        while time.time() < settle:
            got = survivor.poll(0.5)
            msgs = got if kind == "share" else ([got] if got is not None else [])
            if any(m is not None and m.error() is None for m in msgs):
                raise RuntimeError(f"{kind}: the survivor got records before the kill")
        t0 = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = t0 + 180
        while time.time() < deadline:
            got = survivor.poll(0.05)
            msgs = got if kind == "share" else ([got] if got is not None else [])
            if any(m is not None and m.error() is None for m in msgs):
                took = time.time() - t0
                break
        else:
            took = float("nan")
        try:
            survivor.close()
        except Exception:
            pass
        return took
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    default_bin = os.path.join(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/shoal-target"),
                               "release", "shoal")
    ap.add_argument("--shoal", default=default_bin)
    ap.add_argument("--session-timeout-ms", type=int, default=45000)
    ap.add_argument("--lock-ms", type=int, default=30000)
    ap.add_argument("--modes", default="classic,consumer,share")
    a = ap.parse_args()
    base = {"group.initial.rebalance.delay.ms": "0",
            "group.consumer.session.timeout.ms": str(a.session_timeout_ms),
            "group.share.record.lock.duration.ms": str(a.lock_ms),
            "group.share.min.record.lock.duration.ms": "1000"}
    rows = []
    for kind in a.modes.split(","):
        if kind == "share":
            cases = [("lock expiry", {"group.share.release.on.connection.close": "false"}),
                     ("connection close (default)", {})]
        else:
            cases = [("session timeout (Kafka)", {}),
                     ("connection close, 1 s grace",
                      {"group.connection.close.session.timeout.ms": "1000"})]
        for label, extra in cases:
            took = measure(a.shoal, kind, {**base, **extra}, a.session_timeout_ms)
            print(f"{kind:9} {label:30} {took:7.2f} s", flush=True)
            rows.append((kind, label, took))
    print("\n| group | takeover after | seconds |\n|---|---|---|")
    for kind, label, took in rows:
        print(f"| {kind} | {label} | {took:.2f} |")


if __name__ == "__main__":
    main()
