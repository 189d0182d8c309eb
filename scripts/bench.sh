#!/usr/bin/env bash
# The benchmark command (docs/benchmarks.md): builds shoal in release mode, starts a fresh
# broker on a free local port (data under /var/tmp) with group.initial.rebalance.delay.ms=0,
# and runs `shoal bench throughput --e2e` (100 B and 1 KiB records, acks 1 and -1, 1 and 12
# partitions, next to the disk and loopback limits of the same run) and
# `shoal bench convergence` (N = 2, 10, 50 members; classic and consumer protocols), plus
# `shoal bench native-produce` (the broker's produce capacity with a lean producer) and
# librdkafka's rdkafka_performance, each next to the disk limit of the same run, and
# `shoal bench share` (share-group consumers with per-record acknowledgements, 1 and 4
# members, next to a consumer group reading the same records).
#   bash scripts/bench.sh [ARGS]               # all (ARGS go to convergence)
#   bash scripts/bench.sh throughput [ARGS]    # one of them, ARGS to that subcommand
#   bash scripts/bench.sh convergence [ARGS]   # e.g. --runs 5, --client k=v
#   bash scripts/bench.sh share [ARGS]         # e.g. --records 1000000,400000
#   bash scripts/bench.sh txn [ARGS]           # transactional vs idempotent produce, e.g. --records 500000
#   bash scripts/bench.sh amqp [ARGS]          # AMQP: Shoal vs rabbitmq-server (scripts/bench-amqp.py)
#   bash scripts/bench.sh log                  # criterion benches of the log (cargo bench)
# To measure another broker instead: shoal bench ... --bootstrap-server HOST:PORT
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
cargo build --release -p shoal >/dev/null
BIN="$CARGO_TARGET_DIR/release/shoal"
WHAT=all
case "${1:-}" in throughput|convergence|share|txn) WHAT="$1"; shift ;; esac
if [ "${1:-}" = log ]; then
  exec cargo bench -p shoal-log --bench log
fi
if [ "${1:-}" = amqp ]; then
  # Shoal next to a private rabbitmq-server (apt-get install rabbitmq-server), same load.
  shift
  exec env SHOAL_BIN="$BIN" "${SHOAL_VENV:-/var/tmp/shoal-venv}/bin/python" scripts/bench-amqp.py "$@"
fi
DATA="$(mktemp -d -p /var/tmp)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN" serve --kafka-addr "127.0.0.1:$PORT" --http-addr 127.0.0.1:0 --amqp-addr 127.0.0.1:0 --data-dir "$DATA/data" \
  --set group.initial.rebalance.delay.ms=0 >"$DATA/broker.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  grep -q "kafka listening" "$DATA/broker.log" 2>/dev/null && break
  sleep 0.1
done
echo "# shoal $("$BIN" --version | awk '{print $2}'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
# librdkafka's own rdkafka_performance, built from the sources rdkafka-sys bundles (cached
# next to the conformance test-runner): the reference numbers Kafka-compatible brokers quote.
perf() {
  local out; out="$(ls -td "$CARGO_TARGET_DIR"/release/build/rdkafka-sys-*/out | head -1)"
  local tool="/var/tmp/shoal-librdkafka-tests/rdkafka_performance"
  if [ ! -x "$tool" ] || [ "$out/src/librdkafka.so" -nt "$tool" ]; then
    mkdir -p "$(dirname "$tool")"
    gcc -O2 -I"$out/src" "$out/examples/rdkafka_performance.c" -o "$tool" -L"$out/src" -lrdkafka -lpthread -lm
  fi
  local n=2000000
  "$BIN" topic create perf-100 -p 1 --bootstrap-server "127.0.0.1:$PORT" >/dev/null
  echo "rdkafka_performance, $n records of 100 B, 1 partition:"
  LD_LIBRARY_PATH="$out/src" "$tool" -P -t perf-100 -p 0 -s 100 -c "$n" -b "127.0.0.1:$PORT" \
    -X linger.ms=5 -X queue.buffering.max.messages=2000000 2>&1 | grep -E "messages produced" | tail -1
  LD_LIBRARY_PATH="$out/src" "$tool" -C -t perf-100 -p 0 -o beginning -c "$n" -b "127.0.0.1:$PORT" \
    -X fetch.max.bytes=52428800 -X queued.min.messages=2000000 2>&1 | grep -E "messages .* consumed in" | grep -v INTERVAL | tail -1
  "$BIN" topic create perf-1k -p 1 --bootstrap-server "127.0.0.1:$PORT" >/dev/null
  echo "rdkafka_performance, $n records of 1 KiB, acks=-1, 1 partition (disk limit of this run: $DISK MB/s):"
  LD_LIBRARY_PATH="$out/src" "$tool" -P -t perf-1k -p 0 -s 1024 -c "$n" -b "127.0.0.1:$PORT" -a -1 \
    -X linger.ms=5 -X queue.buffering.max.messages=2000000 2>&1 | grep -E "messages produced" | tail -1 |
    awk -v disk="$DISK" '{ print; for (i = 1; i < NF; i++) if ($(i+1) ~ /^MB\/s/) printf "  = %.0f%% of the disk\n", 100 * $i / disk }'
}

# The broker's own produce capacity: a lean Kafka-protocol producer, so that the client's
# CPU on these shared cores does not hide the broker's (docs/benchmarks.md).
native() {
  local out
  out="$("$BIN" bench native-produce --bootstrap-server "127.0.0.1:$PORT" --disk-dir "$DATA" --sizes 1024,100)"
  echo "$out"
  DISK="$(echo "$out" | awk '/^baseline/ { print $(NF-1) }')"
}

DISK=0
if [ "$WHAT" = throughput ]; then
  "$BIN" bench throughput --bootstrap-server "127.0.0.1:$PORT" --disk-dir "$DATA" --e2e "$@"
  native
  perf
elif [ "$WHAT" = all ]; then
  "$BIN" bench throughput --bootstrap-server "127.0.0.1:$PORT" --disk-dir "$DATA" --e2e
  native
  perf
fi
if [ "$WHAT" = all ] || [ "$WHAT" = convergence ]; then
  "$BIN" bench convergence --bootstrap-server "127.0.0.1:$PORT" "$@"
fi
if [ "$WHAT" = share ]; then
  "$BIN" bench share --bootstrap-server "127.0.0.1:$PORT" "$@"
elif [ "$WHAT" = all ]; then
  "$BIN" bench share --bootstrap-server "127.0.0.1:$PORT"
fi
if [ "$WHAT" = txn ]; then
  "$BIN" bench txn --bootstrap-server "127.0.0.1:$PORT" "$@"
elif [ "$WHAT" = all ]; then
  "$BIN" bench txn --bootstrap-server "127.0.0.1:$PORT"
fi
