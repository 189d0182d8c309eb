"""Where the AMQP 0-9-1 tests (test_amqp_*.py) connect, and helpers they share.

Target, chosen by the environment variable AMQP_TARGET:

- unset or `shoal` (the default): conftest's session broker (`broker` fixture), whose AMQP
  front end listens on 127.0.0.1:5672 (guest/guest) next to Kafka on 127.0.0.1:9092. Every
  test runs; nothing is skipped.
- `rabbitmq`: a rabbitmq-server (Debian's package, /usr/lib/rabbitmq/bin/rabbitmq-server or
  $RABBITMQ_SERVER) started here for the session on free ports of 127.0.0.1, with its own
  epmd, node name, Mnesia and log directories in a temporary directory, and stopped at the
  end. This mode never needs a Shoal binary: tests that need Shoal itself (a Kafka client on
  the queue's topic, killing or restarting the Shoal process) are marked `shoal_only` and are
  skipped in this mode only. Passing in this mode is what shows the tests encode RabbitMQ's
  behaviour.

The test modules load this file as a pytest plugin (`pytest_plugins = ["amqp_harness"]`) so
that its session fixture exists once per run, not once per module.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pika
import pytest

from conftest import Broker, free_port

TARGET = os.environ.get("AMQP_TARGET", "shoal").strip().lower() or "shoal"
if TARGET not in ("shoal", "rabbitmq"):
    raise RuntimeError(f"AMQP_TARGET must be 'shoal' or 'rabbitmq', not {TARGET!r}")
RABBIT = TARGET == "rabbitmq"

# Only in RabbitMQ mode: a test that needs Shoal's own features or process.
shoal_only = pytest.mark.skipif(RABBIT, reason="needs Shoal itself (AMQP_TARGET=rabbitmq)")

SHOAL_AMQP_PORT = 5672          # conftest's broker: `--amqp-addr 127.0.0.1:5672`
WAIT_S = 15                     # the bound of every single wait in these tests
SEED_CONNECTION = "pika.ConnectionParameters('localhost')"



def unique(prefix):
    """A queue/exchange name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Endpoint:
    """An AMQP broker address (plus, for Shoal, its Kafka bootstrap address)."""

    def __init__(self, host, port, kind, kafka=None):
        self.host, self.port, self.kind, self.kafka = host, port, kind, kafka

    def params(self, **kw):
        kw.setdefault("credentials", pika.PlainCredentials("guest", "guest"))
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("socket_timeout", 10)
        kw.setdefault("blocked_connection_timeout", 30)
        return pika.ConnectionParameters(self.host, self.port, **kw)

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def seed_code(self, code):
        """A seed snippet as it must run against this endpoint: byte-for-byte unchanged against
        Shoal (it listens where the snippets connect, localhost:5672); against RabbitMQ only the
        host and port of `pika.ConnectionParameters('localhost')` are rewritten."""
        if self.kind == "shoal":
            return code
        assert SEED_CONNECTION in code, code
        return code.replace(SEED_CONNECTION, f"pika.ConnectionParameters('{self.host}', {self.port})")

    def __repr__(self):
        return f"Endpoint({self.kind} amqp://{self.host}:{self.port})"


# --- RabbitMQ ------------------------------------------------------------------------------

class RabbitServer:
    """A private rabbitmq-server: its own epmd, ports, node name and directories."""

    def __init__(self, erl_args="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"):
        # One scheduler, no busy-waiting by default: the machine is shared with a Rust build.
        # scripts/bench-amqp.py passes "" (RabbitMQ's defaults) to measure it at its best.
        self.erl_args = erl_args
        self.root = tempfile.mkdtemp(prefix="amqp-rabbit-")
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"shoaltest{self.port}@localhost"
        self.proc = self.epmd = None
        self.log_path = os.path.join(self.root, "server.out")

    def binary(self):
        for p in (os.environ.get("RABBITMQ_SERVER"), "/usr/lib/rabbitmq/bin/rabbitmq-server"):
            if p and os.path.exists(p):
                return p
        raise RuntimeError("no rabbitmq-server: `apt-get install rabbitmq-server` or set RABBITMQ_SERVER")

    def start(self, timeout=90):
        r = self.root
        os.makedirs(os.path.join(r, "home"))
        with open(os.path.join(r, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(r, "rabbitmq-env.conf"), "w"):
            pass                                  # not /etc/rabbitmq/rabbitmq-env.conf
        with open(os.path.join(r, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                    "loopback_users.guest = true\n")
        env = dict(os.environ)
        env.update({
            "HOME": os.path.join(r, "home"),      # the Erlang cookie goes here
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": os.path.join(r, "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": os.path.join(r, "rabbitmq.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(r, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(r, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(r, "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(r, "plugins-expand"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": self.erl_args,
        })
        env.pop("RABBITMQ_ALLOW_INPUT", None)
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([self.binary()], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=r,
                                         start_new_session=True)
        endpoint = Endpoint("127.0.0.1", self.port, "rabbitmq")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                endpoint.connect().close()
                return endpoint
            except Exception:
                time.sleep(0.25)
        raise RuntimeError(f"rabbitmq-server not accepting AMQP after {timeout} s:\n{self.tail()}")

    def tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    @staticmethod
    def _end(proc, timeout):
        """Ends a process group this harness started (SIGTERM, then SIGKILL)."""
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:                                       # helpers (erl_child_setup, inet_gethost)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self):
        self._end(self.proc, 30)
        self._end(self.epmd, 5)
        if os.environ.get("KEEP_COMPAT_DATA"):
            print("rabbitmq data kept in", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def amqp(request):
    """The AMQP endpoint of this run (see the module docstring)."""
    if RABBIT:
        server = RabbitServer()
        try:
            yield server.start()
        finally:
            server.stop()
    else:
        from conftest import wait_port
        kafka = request.getfixturevalue("broker")          # conftest's `shoal serve`
        wait_port("127.0.0.1", SHOAL_AMQP_PORT)
        yield Endpoint("127.0.0.1", SHOAL_AMQP_PORT, "shoal", kafka=kafka)


@pytest.fixture
def conn(amqp):
    """A connection for one test, closed afterwards (if the broker has not closed it)."""
    c = amqp.connect()
    try:
        yield c
    finally:
        if c.is_open:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def ch(conn):
    return conn.channel()


# --- helpers -------------------------------------------------------------------------------

def consume_n(conn, channel, queue, n, timeout=WAIT_S, auto_ack=True, settle=0.0, on_message=None):
    """Consumes from `queue` until n messages arrived (or `timeout`), then `settle` seconds more
    to catch extras; cancels the consumer. Returns [(method, properties, body)]. With
    auto_ack=False each message is acked unless `on_message` (called with ch, method,
    properties, body) handles it and returns True."""
    got = []

    def cb(c, method, props, body):
        got.append((method, props, body))
        handled = on_message(c, method, props, body) if on_message else False
        if not auto_ack and not handled:
            c.basic_ack(method.delivery_tag)

    tag = channel.basic_consume(queue, cb, auto_ack=auto_ack)
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=min(0.2, max(0.0, deadline - time.monotonic())))
    end = time.monotonic() + settle
    while time.monotonic() < end:
        conn.process_data_events(time_limit=max(0.0, end - time.monotonic()))
    channel.basic_cancel(tag)
    return got


def get_one(channel, queue, timeout=WAIT_S, auto_ack=False):
    """basic.get until a message is there (or `timeout`): (method, properties, body) or None."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = channel.basic_get(queue, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def wait_until(predicate, timeout=WAIT_S, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def queue_counts(channel, queue):
    """(message_count, consumer_count) from a passive queue.declare."""
    ok = channel.queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


def assert_alive(amqp):
    """A fresh connection still works end to end: declare, publish, get, ack."""
    c = amqp.connect()
    try:
        chan = c.channel()
        q = chan.queue_declare("", exclusive=True).method.queue
        chan.basic_publish("", q, b"still alive")
        got = get_one(chan, q, timeout=10)
        assert got is not None and got[2] == b"still alive", got
        chan.basic_ack(got[0].delivery_tag)
    finally:
        c.close()


class Script:
    """A Python program in a subprocess, its stdout collected line by line (and its stderr)."""

    def __init__(self, code, env=None):
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        self.lines, self.err_lines = [], []
        self.readers = [threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                         daemon=True),
                        threading.Thread(target=lambda: self.err_lines.extend(iter(self.proc.stderr.readline, "")),
                                         daemon=True)]
        for r in self.readers:
            r.start()

    def printed(self, text):
        return [line for line in list(self.lines) if text in line]

    def _joined(self):
        for r in self.readers:
            r.join(timeout=5)
        return "".join(self.lines), "".join(self.err_lines)

    def wait_printed(self, text, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.printed(text):
                return
            if self.proc.poll() is not None:
                out, err = self._joined()
                if self.printed(text):
                    return
                raise AssertionError(f"script exited ({self.proc.returncode}) before printing "
                                     f"{text!r}:\n{out}\n{err}")
            time.sleep(0.05)
        raise AssertionError(f"script did not print {text!r} within {timeout} s: {self.lines}\n"
                             f"{''.join(self.err_lines)}")

    def wait(self, timeout=WAIT_S):
        """Waits for it to exit by itself: (returncode, stdout, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            out, err = self._joined()
            raise AssertionError(f"script still running after {timeout} s:\n{out}\n{err}")
        out, err = self._joined()
        return self.proc.returncode, out, err

    def stop(self, sig=signal.SIGTERM):
        """Ends it (if still running): (stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self._joined()


class ShoalProcess(Broker):
    """A separate `shoal serve` (own data directory, free ports) that a test may SIGKILL and
    restart on the same data directory and AMQP port (conftest's `Broker` with AMQP on).
    Shoal mode only. `start()` returns the AMQP endpoint."""

    def __init__(self, extra_args=()):
        super().__init__({}, prefix="shoal-amqp-", extra_args=extra_args, amqp=True)
        self.endpoint = Endpoint("127.0.0.1", self.amqp_port, "shoal")

    def start(self, timeout=60):
        super().start(timeout)
        return self.endpoint
