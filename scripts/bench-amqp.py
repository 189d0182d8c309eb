#!/usr/bin/env python3
"""AMQP 0-9-1 benchmark: the same load against Shoal and Debian's rabbitmq-server, in one run.

    python3 scripts/bench-amqp.py [--messages N] [--sizes 100,1024] [--consumers 1,4] [--runs R]

Starts a Shoal (`shoal serve`, fresh data dir, AMQP on a free port) and a private
rabbitmq-server (tests/compat/amqp_harness.RabbitServer with RabbitMQ's default schedulers;
`apt-get install rabbitmq-server`), runs `shoal bench amqp` against each in turn (persistent
messages, publisher confirms, manual acks, prefetch 100), and prints a markdown table with
Shoal's rate as a multiple of RabbitMQ's and both p99 publish-to-deliver latencies. Bounded:
each run gives up after --timeout-s. SHOAL_BIN names the binary (default: the release build).
"""
import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "compat"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shoal_bin():
    if os.environ.get("SHOAL_BIN"):
        return os.environ["SHOAL_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "shoal")


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def bench(addr, a):
    cmd = [shoal_bin(), "bench", "amqp", "--addr", addr, "--messages", str(a.messages),
           "--sizes", a.sizes, "--consumers", a.consumers, "--runs", str(a.runs),
           "--timeout-s", str(a.timeout_s), "--output", "json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--sizes", default="100,1024")
    p.add_argument("--consumers", default="1,4")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout-s", type=int, default=300)
    a = p.parse_args()

    from amqp_harness import RabbitServer

    results = {}
    data = tempfile.mkdtemp(prefix="bench-amqp-shoal-")
    port = free_port()
    shoal = subprocess.Popen([shoal_bin(), "serve", "--kafka-addr", "127.0.0.1:0",
                              "--http-addr", "127.0.0.1:0", "--amqp-addr", f"127.0.0.1:{port}",
                              "--data-dir", os.path.join(data, "data")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        results["shoal"] = bench(f"127.0.0.1:{port}", a)
    finally:
        shoal.terminate()
        shoal.wait(timeout=30)
    rabbit = RabbitServer(erl_args="")
    try:
        endpoint = rabbit.start()
        results["rabbitmq"] = bench(f"127.0.0.1:{endpoint.port}", a)
    finally:
        rabbit.stop()

    print("| size | consumers | Shoal msg/s | RabbitMQ msg/s | Shoal / RabbitMQ | Shoal p99 ms | RabbitMQ p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for s, r in zip(results["shoal"], results["rabbitmq"]):
        print(f"| {s['size']} B | {s['consumers']} | {s['msgs_per_s']:.0f} | {r['msgs_per_s']:.0f} | "
              f"{s['msgs_per_s'] / max(r['msgs_per_s'], 1e-9):.2f}x | {s['p99_ms']:.1f} | {r['p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
