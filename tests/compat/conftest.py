"""Fixtures for the real-client compatibility suite.

A fresh `shoal serve` runs on 127.0.0.1:9092 (the address the seeds' snippets hard-code), with
AMQP 0-9-1 on 127.0.0.1:5672 (where the pika snippets connect), and a temporary data directory
for the whole session. `SHOAL_BIN` names the binary (default: the release build under
CARGO_TARGET_DIR or ./target).
"""
import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BOOTSTRAP = "127.0.0.1:9092"
AMQP_ADDR = "127.0.0.1:5672"     # AMQP 0-9-1 (the pika seed snippets' default localhost:5672)


def shoal_bin():
    if os.environ.get("SHOAL_BIN"):
        return os.environ["SHOAL_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        p = target / profile / "shoal"
        if p.exists():
            return str(p)
    raise RuntimeError("no shoal binary: run `cargo build --release -p shoal` or set SHOAL_BIN")


def wait_port(host, port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {host}:{port}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The admin HTTP API's token (`http.auth.token`) every test broker gets; it is required only
# while security is on (an authorizer or a non-PLAINTEXT Kafka listener).
ADMIN_TOKEN = "shoal-test-token"


class Broker:
    """A `shoal serve` on its own free port and data directory. `kill()` then `start()`
    restarts it on the same port and data; each run logs to its own file."""

    def __init__(self, settings, prefix="shoal-broker-", extra_args=(), amqp=False, http=False):
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.data_dir = os.path.join(self.root, "data")
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        # With `amqp`, AMQP 0-9-1 on its own free port too (kept across restarts).
        self.amqp_port = free_port() if amqp else None
        # With `http`, the admin HTTP API on a known free port too (else `127.0.0.1:0`).
        self.http_port = free_port() if http else None
        self.settings = settings
        self.extra_args = list(extra_args)
        self.proc = None
        self.logs = []

    def start(self, timeout=60):
        log_path = os.path.join(self.root, f"broker-{len(self.logs) + 1}.log")
        self.logs.append(log_path)
        settings = {"http.auth.token": ADMIN_TOKEN, **self.settings}
        sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [shoal_bin(), "serve", "--kafka-addr", self.bootstrap,
                 "--http-addr", f"127.0.0.1:{self.http_port or 0}",
                 "--amqp-addr", f"127.0.0.1:{self.amqp_port or 0}",
                 "--data-dir", self.data_dir, *sets, *self.extra_args],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoal exited with {self.proc.returncode} before listening "
                                   f"on {self.bootstrap}:\n{self.log_tail()}")
            try:
                wait_port("127.0.0.1", self.port, timeout=0.5)
                if self.amqp_port:
                    wait_port("127.0.0.1", self.amqp_port, timeout=0.5)
                if self.http_port:
                    wait_port("127.0.0.1", self.http_port, timeout=0.5)
                return
            except RuntimeError:
                pass
        raise RuntimeError(f"shoal not listening on {self.bootstrap} after {timeout} s:\n"
                           f"{self.log_tail()}")

    def kill(self):
        """SIGKILL: no drain, no fsync, no goodbye to the clients."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines=40):
        with open(self.logs[-1], errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def finish(self):
        """Stops the broker, removes its directory, fails on any ERROR it logged (a client
        can look happy while the broker failed behind it, as in conftest)."""
        self.stop()
        errors = []
        for path in self.logs:
            with open(path, errors="replace") as f:
                errors += [f"{os.path.basename(path)}: {line}" for line in f if " ERROR " in line]
        if os.environ.get("KEEP_COMPAT_DATA"):
            print("broker data kept in", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        assert not errors, "the broker logged errors:\n" + "".join(errors)


@contextlib.contextmanager
def running_broker(settings, prefix="shoal-broker-", **kw):
    """A started [`Broker`] for a `with` block; stopped and checked (`finish`) at its end."""
    b = Broker(settings, prefix=prefix, **kw)
    try:
        b.start()
        yield b
    finally:
        b.finish()


def add_listeners(b, listeners):
    """Gives the not yet started `b` one listener per entry of `listeners` (attribute name ->
    security protocol, e.g. {"ssl": "SSL"}) after its PLAINTEXT one, each on its own free port,
    as `b.<name>_port` and `b.<name>_bootstrap`. Returns the new ports, in order."""
    ports, spec = [], [f"PLAINTEXT://{b.bootstrap}"]
    for name, protocol in listeners.items():
        port = free_port()
        setattr(b, f"{name}_port", port)
        setattr(b, f"{name}_bootstrap", f"127.0.0.1:{port}")
        spec.append(f"{protocol}://127.0.0.1:{port}")
        ports.append(port)
    b.settings["listeners"] = ",".join(spec)
    return ports


def discard(b):
    """Stops `b` and removes its directory without checking its logs (for a broker that did
    not start, or was not meant to). Returns None."""
    b.stop()
    shutil.rmtree(b.root, ignore_errors=True)


def start_broker(settings, prefix="shoal-broker-", listeners=None, **kw):
    """A started [`Broker`] on a copy of `settings`, with the extra `listeners` of
    `add_listeners` (each waited for too); `kw` as for `Broker`. A broker that does not come up
    is discarded before the error propagates. Returns the broker (end it with `finish()`)."""
    b = Broker(dict(settings), prefix=prefix, **kw)
    ports = add_listeners(b, listeners) if listeners else []
    try:
        b.start()
        for port in ports:
            wait_port("127.0.0.1", port, timeout=10)
    except BaseException:
        discard(b)
        raise
    return b


def broker_log(b):
    """The text of `b`'s current log (its latest run's)."""
    with open(b.logs[-1], errors="replace") as f:
        return f.read()


@pytest.fixture(scope="session")
def broker():
    data = tempfile.mkdtemp(prefix="shoal-compat-")
    log = open(os.path.join(data, "broker.log"), "w")
    proc = subprocess.Popen(
        [shoal_bin(), "serve", "--kafka-addr", BOOTSTRAP, "--http-addr", "127.0.0.1:0",
         "--data-dir", os.path.join(data, "data"), "--amqp-addr", AMQP_ADDR,
         "--set", "group.initial.rebalance.delay.ms=0"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_port("127.0.0.1", 9092)
        wait_port("127.0.0.1", 5672)
        yield BOOTSTRAP
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        with open(os.path.join(data, "broker.log")) as f:
            errors = [line for line in f if " ERROR " in line]
        if os.environ.get("KEEP_COMPAT_DATA"):
            print("compat data kept in", data)
        else:
            shutil.rmtree(data, ignore_errors=True)
        # A client can look happy while the broker failed behind it: an ERROR fails the run.
        assert not errors, "the broker logged errors:\n" + "".join(errors)


def kcat(*args, input=None, timeout=30):
    """Runs kcat against the broker and returns (returncode, stdout, stderr)."""
    r = subprocess.run(["kcat", "-b", BOOTSTRAP, *args], input=input, capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr
