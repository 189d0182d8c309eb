#!/usr/bin/env bash
# The one test command (see README): installs what the tests need, then runs
#   1. cargo fmt/clippy checks,
#   2. `cargo test --workspace` (unit tests, scenario tables, and real librdkafka clients
#      against a real `shoal` process),
#   3. tests/compat: kcat, kafka-python, confluent-kafka, kafkajs, the seeds' own snippets,
#      Prometheus metrics (reference parser) and the web console (headless Chromium),
#   4. tests/compat/librdkafka: librdkafka's own test suite (group and produce/fetch tests),
#      both consumer group protocols;
#   between 2 and 3, a 60 s libFuzzer run over the request decoder (scripts/fuzz.sh).
# Idempotent; safe to rerun. Needs root (or sudo) for apt on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/shoal-target}"
VENV="${SHOAL_VENV:-/var/tmp/shoal-venv}"
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

step() { printf '\n==> %s\n' "$*"; }

step "system packages (kcat; gcc/g++/make/python3-venv, libssl-dev/pkg-config/openssl for TLS for librdkafka, its tests and the Python clients; chromium for the console test)"
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v make >/dev/null 2>&1 || need+=(make)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
# librdkafka with TLS (the rdkafka crate's `ssl` feature) and the TLS tests' certificates.
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "Python clients in $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/compat/requirements.txt

step "kafkajs in tests/compat/kafkajs; playwright-core (no browser download) in tests/compat/console"
(cd tests/compat/kafkajs && npm install --no-audit --no-fund --no-package-lock --silent)
(cd tests/compat/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-package-lock --silent)

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "coverage-guided fuzzing of the request decoder (scripts/fuzz.sh, ${SHOAL_FUZZ_SECONDS:-60} s; longer runs in docs/operations.md)"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR-fuzz" SHOAL_FUZZ_NICE="" bash scripts/fuzz.sh "${SHOAL_FUZZ_SECONDS:-60}"

step "real-client compatibility suite (tests/compat)"
cargo build --release -p shoal
SHOAL_BIN="$CARGO_TARGET_DIR/release/shoal" "$VENV/bin/python" -m pytest -p no:warnings -v tests/compat

step "librdkafka's own tests against shoal (tests/compat/librdkafka, classic and consumer protocols)"
SHOAL_BIN="$CARGO_TARGET_DIR/release/shoal" bash tests/compat/librdkafka/run.sh
