"""kafkajs (a pure-JavaScript client with its own protocol implementation) against Shoal."""
import json
import pathlib
import subprocess

from conftest import BOOTSTRAP

HERE = pathlib.Path(__file__).parent / "kafkajs"


def test_kafkajs_admin_produce_group_commit_and_resume(broker):
    r = subprocess.run(["node", str(HERE / "group.js"), BOOTSTRAP], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert found["first"] == sorted(f"v{i}" for i in range(30)), "every gzip record consumed once"
    assert found["second"] == ["after-commit"], "the second member resumed after the commit"
    assert found["committed"] == 31, "committed offsets cover all 31 records"
    assert found["state"] in ("Empty", "Dead"), found["state"]
