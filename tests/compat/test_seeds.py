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


class Snippet:
    """A seed snippet running as a script, its stdout collected line by line."""

    def __init__(self, code, prelude=""):
        program = prelude + "exec(compile(%r, 'seed_snippet.py', 'exec'), {'__name__': '__main__'})\n" % code
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", program], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                       daemon=True)
        self.reader.start()

    def printed(self, text):
        return any(text in line for line in list(self.lines))

    def stop(self):
        """Stops the snippet (its consumer loop never ends); returns (stdout, stderr)."""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.reader.join(timeout=5)
        return "".join(self.lines), err


def produce_rounds_until_printed(snippet, topic, make_values, render, seconds=40):
    """Once a second produces a fresh round `make_values(round)` until every value of one round
    is printed by `snippet` (as `render(value)`). The snippets' consumers start at the latest
    offset (kafka-python's default), so rounds sent before they have joined are not expected.
    Returns the round seen, or None."""
    deadline = time.time() + seconds
    rnd = 0
    while time.time() < deadline:
        produce(topic, [v.encode() for v in make_values(rnd)])
        time.sleep(1)
        for r in range(rnd + 1):
            if all(snippet.printed(render(v)) for v in make_values(r)):
                return r
        rnd += 1
    return None


def test_the_seeds_contain_the_expected_kafka_snippets():
    assert len([b for bs in SNIPPETS.values() for b in bs]) >= 3, SNIPPETS.keys()


def test_seed_000_consumer_group_prints_every_record(broker):
    snippet = Snippet(snippet_using("group_id='my-group'"))
    seen = produce_rounds_until_printed(snippet, "my-topic", lambda r: [f"seed000-{r}-{i}" for i in range(5)],
                                        lambda v: f"key=None value=b'{v}'")
    out, err = snippet.stop()
    assert seen is not None, (out, err)
    offsets = [int(m.group(1)) for i in range(5)
               for m in [re.search(rf"my-topic:0:(\d+): key=None value=b'seed000-{seen}-{i}'", out)] if m]
    assert len(offsets) == 5 and offsets == sorted(offsets), (out, err)
    assert "Traceback" not in err, err


def test_seed_003_consumer_group_prints_values(broker):
    snippet = Snippet(snippet_using("group_id='my_group'"))
    seen = produce_rounds_until_printed(snippet, "my_topic", lambda r: [f"seed003-{r}-{i}" for i in range(5)],
                                        lambda v: f"b'{v}'")
    out, err = snippet.stop()
    assert seen is not None, (out, err)
    assert "Traceback" not in err, err


def test_seed_001_producer_and_consumer(broker):
    prelude = (
        "import time as _real_time, types\n"
        "time = types.SimpleNamespace(sleep=lambda s: _real_time.sleep(s / 1000))\n"
        "import builtins; builtins.time = time\n"
    )
    snippet = Snippet(snippet_using("test_topic"), prelude)
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
    # Then its consumer (no group, latest) prints what is produced after it has started.
    seen = produce_rounds_until_printed(
        snippet, "test_topic", lambda r: [json.dumps({"id": 10_000 + 10 * r + i, "value": "after"}) for i in range(3)],
        lambda v: f"Received message: {json.loads(v)!r}")
    out, err = snippet.stop()
    watcher.assign([tp])
    watcher.seek_to_beginning(tp)
    ids = []
    for batch in iter(lambda: watcher.poll(timeout_ms=2000), {}):
        for records in batch.values():
            ids += [json.loads(r.value)["id"] for r in records]
    watcher.close()
    assert ids[:1000] == list(range(1000)), "the snippet's 1000 records, in order"
    assert seen is not None, (out, err)
    assert "Traceback" not in err, err
