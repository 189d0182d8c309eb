"""The Kafka snippets from the user's seed documents (../shared/seeds), run unchanged against
Shoal on localhost:9092. The code is read from the seed files at test time, so what runs is
exactly what the documents say.

Seed 001's producer calls `time.sleep(1)` without importing `time` (a bug in the snippet: it
raises NameError against any broker) and sleeps 1000 s in total. The harness runs its text
unchanged but with a `time` module in its globals whose `sleep` lasts a thousandth as long.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import BOOTSTRAP, ROOT

SEEDS = pathlib.Path(os.environ.get("SHOAL_SEEDS", ROOT.parent / "shared" / "seeds"))


def kafka_snippets():
    """{seed file stem: [python code blocks that use kafka-python]}"""
    out = {}
    for f in sorted(SEEDS.glob("*.txt")):
        blocks = re.findall(r"```python\n(.*?)```", f.read_text(encoding="utf-8"), re.S)
        kafka = [b for b in blocks if re.search(r"^\s*(from kafka import|import kafka)", b, re.M)]
        if kafka:
            out[f.stem] = kafka
    return out


SNIPPETS = kafka_snippets()


def snippet_using(text):
    for blocks in SNIPPETS.values():
        for b in blocks:
            if text in b:
                return b
    pytest.fail(f"no seed snippet contains {text!r}; seeds read from {SEEDS}")


def produce(topic, values):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for v in values:
        p.send(topic, v)
    p.flush()
    p.close()


def run_for(code, seconds, prelude=""):
    """Runs `code` as a script for `seconds`, then stops it; returns (stdout, stderr)."""
    program = prelude + "exec(compile(%r, 'seed_snippet.py', 'exec'), {'__name__': '__main__'})\n" % code
    proc = subprocess.Popen([sys.executable, "-u", "-c", program], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    return out, err


def test_the_seeds_contain_the_expected_kafka_snippets():
    assert len([b for bs in SNIPPETS.values() for b in bs]) >= 3, SNIPPETS.keys()


def run_while_producing(code, topic, values, seconds=20, settle=6):
    """Starts the snippet, lets its consumer join (it starts at the latest offset, kafka-python's
    default), then produces `values`; returns the snippet's (stdout, stderr)."""
    result = {}
    t = threading.Thread(target=lambda: result.update(zip(("out", "err"), run_for(code, seconds))))
    t.start()
    time.sleep(settle)
    produce(topic, values)
    t.join()
    return result["out"], result["err"]


def test_seed_000_consumer_group_prints_every_record(broker):
    code = snippet_using("group_id='my-group'")
    out, err = run_while_producing(code, "my-topic", [f"seed000-{i}".encode() for i in range(5)])
    for i in range(5):
        assert re.search(rf"my-topic:0:\d+: key=None value=b'seed000-{i}'", out), (out, err)
    assert "Traceback" not in err, err


def test_seed_003_consumer_group_prints_values(broker):
    code = snippet_using("group_id='my_group'")
    out, err = run_while_producing(code, "my_topic", [f"seed003-{i}".encode() for i in range(5)])
    for i in range(5):
        assert f"b'seed003-{i}'" in out, (out, err)
    assert "Traceback" not in err, err


def test_seed_001_producer_and_consumer(broker):
    code = snippet_using("test_topic")
    prelude = (
        "import time as _real_time, types\n"
        "time = types.SimpleNamespace(sleep=lambda s: _real_time.sleep(s / 1000))\n"
        "import builtins; builtins.time = time\n"
    )
    result = {}

    def run():
        result["out"], result["err"] = run_for(code, 40, prelude)

    t = threading.Thread(target=run)
    t.start()
    from kafka import KafkaConsumer, TopicPartition
    watcher = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    tp = TopicPartition("test_topic", 0)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if watcher.end_offsets([tp]).get(tp, 0) >= 1000:
                break
        except Exception:
            pass
        time.sleep(0.5)
    time.sleep(3)  # the snippet's consumer subscribes (latest) once producing is done
    produce("test_topic", [json.dumps({"id": 1000 + i, "value": "after"}).encode() for i in range(3)])
    t.join()
    out, err = result["out"], result["err"]
    watcher.assign([tp])
    watcher.seek_to_beginning(tp)
    ids = []
    for batch in iter(lambda: watcher.poll(timeout_ms=2000), {}):
        for records in batch.values():
            ids += [json.loads(r.value)["id"] for r in records]
    watcher.close()
    assert ids[:1000] == list(range(1000)), "the snippet's 1000 records, in order"
    for i in range(3):
        assert f"Received message: {{'id': {1000 + i}, 'value': 'after'}}" in out, (out, err)
    assert "Traceback" not in err, err
