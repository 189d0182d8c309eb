#!/usr/bin/env bash
# Conformance harness: librdkafka's own test suite (tests/ of the librdkafka sources bundled in
# the `rdkafka-sys` crate) against a real Shoal, in full mode (no -Q), for both consumer group
# protocols (TEST_CONSUMER_GROUP_PROTOCOL=classic and =consumer), TEST_KAFKA_VERSION=3.9.0.
#
# Shoal runs the way librdkafka's own test cluster (trivup) configures Kafka: num.partitions=4,
# topic auto-creation on, and Kafka's defaults otherwise (group.initial.rebalance.delay.ms=3000:
# tests such as 0102 expect two members started together to share the first generation).
# Only the tests that need a broker run (-L): the mock-cluster sub-tests test librdkafka alone.
#
# expected.txt lists what runs: `TEST MODE EXPECT [SUBTESTS]  # why`, MODE one of classic,
# consumer, both; EXPECT pass or fail; SUBTESTS (optional) a substring selecting sub-tests
# (librdkafka's SUBTESTS filter; '+' stands for a space), used to leave out only the sub-tests
# that need a feature
# Shoal lacks (docs/compatibility.md argues each). The script fails if an entry expected to
# pass fails, and reports entries expected to fail that now pass.
#
# Usage: tests/compat/librdkafka/run.sh            (every listed test, both modes)
#        TESTS="0018 0030" MODES=consumer tests/compat/librdkafka/run.sh
#        PARALLEL_MODES=0 tests/compat/librdkafka/run.sh   (modes one after the other)
# Needs: a built librdkafka (`cargo build` of this workspace builds it), gcc, g++, make, and
# the shoal binary ($SHOAL_BIN, default $CARGO_TARGET_DIR/release/shoal).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TARGET="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
SHOAL_BIN="${SHOAL_BIN:-$TARGET/release/shoal}"
MODES="${MODES:-classic consumer}"
EXPECTED="$HERE/expected.txt"
ONLY="${TESTS:-}"
PER_TEST_TIMEOUT="${PER_TEST_TIMEOUT:-900}"

# The librdkafka that rdkafka-sys built (its `out` dir holds the configured sources, the
# static and shared libraries, and tests/).
OUT=""
for d in $(ls -td "$TARGET"/release/build/rdkafka-sys-*/out "$TARGET"/debug/build/rdkafka-sys-*/out 2>/dev/null); do
  if [ -f "$d/src/librdkafka.so" ] && [ -f "$d/src-cpp/librdkafka++.so" ] && [ -f "$d/tests/test.c" ]; then
    OUT="$d"; break
  fi
done
if [ -z "$OUT" ]; then
  echo "librdkafka build not found under $TARGET; run cargo build --workspace first" >&2
  exit 2
fi
VERSION="$(sed -n 's/^#define RD_KAFKA_VERSION *\(0x[0-9a-fA-F]*\).*/\1/p' "$OUT/src/rdkafka.h")"
WORK="/var/tmp/shoal-librdkafka-tests/$VERSION"

if [ ! -x "$WORK/tests/test-runner" ] || [ "$OUT/src/librdkafka.so" -nt "$WORK/tests/test-runner" ]; then
  echo "==> building librdkafka's test-runner ($VERSION) in $WORK"
  rm -rf "$WORK"; mkdir -p "$WORK"
  cp -r "$OUT/tests" "$WORK/tests"
  # 0103 creates its topics with replication factor 3 (trivup's three-broker cluster); a
  # one-node broker refuses that as Kafka does (INVALID_REPLICATION_FACTOR), so the argument
  # becomes -1 (the broker's default). Nothing else in the test changes.
  sed -i 's/^\(\s*test_create_topic_wait_exists([^;]*\), 3, 5000);/\1, -1, 5000);/' \
    "$WORK/tests/0103-transactions.c"
  for x in src src-cpp mklove Makefile.config; do ln -s "$OUT/$x" "$WORK/$x"; done
  (cd "$WORK/tests" && make -j"$(nproc)" test-runner >"$WORK/build.log" 2>&1) || {
    tail -40 "$WORK/build.log"; exit 2; }
fi

RESULTS="$WORK/results"
rm -rf "$RESULTS"; mkdir -p "$RESULTS"

# run_one MODE TEST SUBTESTS LOG: one test-runner invocation; returns its exit code.
run_one() {
  set +e
  (cd "$WORK/tests" && LD_LIBRARY_PATH=../src:../src-cpp TEST_KAFKA_VERSION=3.9.0 \
    RDKAFKA_TEST_CONF="$RESULTS/test-$1.conf" \
    TEST_CONSUMER_GROUP_PROTOCOL="$1" TESTS="$2" SUBTESTS="$3" \
    timeout "$PER_TEST_TIMEOUT" ./test-runner -p1 -L >"$4" 2>&1 </dev/null) 2>/dev/null
  local rc=$?
  set -e
  return "$rc"
}

# show_failure LOG: the failure lines of a test-runner log, or its tail (a timeout or a crash
# leaves no failure line).
show_failure() {
  echo "---- $1 (failures) ----"
  if grep -a -q "TEST FAILURE\|Test assertion failed\|FAILED\|assert" "$1"; then
    grep -a -B2 -A6 "TEST FAILURE\|Test assertion failed\|FAILED\|assert" "$1" | head -60
  else
    tail -40 "$1"
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_mode MODE: every entry of expected.txt for MODE against its own Shoal. Prints one line
# per entry as it ends; writes $RESULTS/{summary,flaky,newly,details}-MODE.txt; returns the
# number of unexpected failures (0: all as expected).
run_mode() {
  local mode="$1" failures=0 data port shoal_pid
  local summary="$RESULTS/summary-$mode.txt" flaky="$RESULTS/flaky-$mode.txt"
  local newly="$RESULTS/newly-$mode.txt" details="$RESULTS/details-$mode.txt"
  : >"$summary"; : >"$flaky"; : >"$newly"; : >"$details"
  data="$(mktemp -d)"
  port="$(free_port)"
  "$SHOAL_BIN" serve --kafka-addr "127.0.0.1:$port" --http-addr 127.0.0.1:0 --amqp-addr 127.0.0.1:0 \
    --data-dir "$data/data" --set num.partitions=4 \
    >"$RESULTS/shoal-$mode.log" 2>&1 &
  shoal_pid=$!
  for _ in $(seq 1 100); do
    grep -q "kafka listening" "$RESULTS/shoal-$mode.log" 2>/dev/null && break
    sleep 0.1
  done
  echo "bootstrap.servers=127.0.0.1:$port" >"$RESULTS/test-$mode.conf"
  while read -r t m want sub _; do
    case "$t" in ''|'#'*) continue ;; esac
    [ "$m" = both ] || [ "$m" = "$mode" ] || continue
    if [ -n "$ONLY" ] && ! [[ " $ONLY " == *" $t "* ]]; then continue; fi
    case "$sub" in '#'*) sub="" ;; esac
    sub="${sub//+/ }"   # expected.txt writes a space inside SUBTESTS as '+'
    tag="${sub// /_}"
    start=$(date +%s)
    log="$RESULTS/$mode-$t${tag:+-$tag}.log"
    rc=0; run_one "$mode" "$t" "$sub" "$log" || rc=$?
    note=""
    if [ $rc -ne 0 ] && [ "$want" = pass ]; then
      # One retry for an entry expected to pass, reported as flaky (never as a plain pass):
      # these tests race real timers on a shared 2-core machine. The first log is kept.
      show_failure "$log" >>"$details"
      mv "$log" "${log%.log}.first-attempt.log"
      rc=0; run_one "$mode" "$t" "$sub" "$log" || rc=$?
      if [ $rc -eq 0 ]; then
        note=", flaky: failed once, passed on retry"
        echo "$t${sub:+ [$sub]} $mode" >>"$flaky"
      fi
    fi
    took=$(( $(date +%s) - start ))
    got=pass; [ $rc -eq 0 ] || got=fail
    line="$t${sub:+ [$sub]} $mode $got (${took}s, expected $want$note)"
    echo "$line" >>"$summary"
    echo "$line"
    if [ "$got" = fail ] && [ "$want" = pass ]; then
      failures=$((failures + 1))
      show_failure "$log" >>"$details"
    fi
    if [ "$got" = pass ] && [ "$want" = fail ]; then echo "$t $mode" >>"$newly"; fi
  done <"$EXPECTED"
  kill "$shoal_pid" 2>/dev/null || true
  wait "$shoal_pid" 2>/dev/null || true
  if grep -q " ERROR " "$RESULTS/shoal-$mode.log"; then
    { echo "the broker logged errors in $mode mode:"; grep " ERROR " "$RESULTS/shoal-$mode.log" | head -20; } >>"$details"
    failures=$((failures + 1))
  fi
  rm -rf "$data"
  return "$failures"
}

# The modes run side by side, each with its own broker (PARALLEL_MODES=0: one after the
# other). The tests mostly wait on group and session timers, so two lanes on two cores
# take about as long as the longer lane alone.
failures=0
pids=()
for mode in $MODES; do
  if [ "${PARALLEL_MODES:-1}" = 1 ]; then
    run_mode "$mode" & pids+=($!)
  else
    run_mode "$mode" || failures=$((failures + $?))
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || failures=$((failures + $?))
done
for mode in $MODES; do
  cat "$RESULTS/details-$mode.txt"
done
summary=(); flaky=(); newly_passing=()
for mode in $MODES; do
  while IFS= read -r l; do summary+=("$l"); done <"$RESULTS/summary-$mode.txt"
  while IFS= read -r l; do flaky+=("$l"); done <"$RESULTS/flaky-$mode.txt"
  while IFS= read -r l; do newly_passing+=("$l"); done <"$RESULTS/newly-$mode.txt"
done

echo
echo "==> librdkafka conformance summary"
printf '%s\n' "${summary[@]}"
if [ "${#flaky[@]}" -gt 0 ]; then
  echo "flaky (failed once, passed on retry; first logs in $RESULTS/*.first-attempt.log): ${flaky[*]}"
fi
if [ "${#newly_passing[@]}" -gt 0 ]; then
  echo "now passing (update expected.txt and docs/compatibility.md): ${newly_passing[*]}"
fi
if [ "$failures" -gt 0 ]; then
  echo "$failures unexpected failure(s); logs in $RESULTS"
  exit 1
fi
