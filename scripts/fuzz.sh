#!/usr/bin/env bash
# Coverage-guided fuzzing of Shoal's request decoder (shoal_wire::fuzz_one) with cargo-fuzz /
# libFuzzer, on stable Rust.
#
#   scripts/fuzz.sh [SECONDS] [LIBFUZZER_ARG...]      (SECONDS defaults to 120)
#
# Installs cargo-fuzz if missing, builds the `requests` target of crates/wire/fuzz without a
# sanitizer (`-s none`: AddressSanitizer needs the nightly-only -Zsanitizer), writes the
# generated seed corpus (every advertised API key and version) to a temporary directory, and
# fuzzes for SECONDS over it plus the committed corpus crates/wire/fuzz/corpus/requests/ (read
# only; new inputs go to a scratch corpus). Prints libFuzzer's final stats and the edge coverage,
# and exits non-zero on a crash, a panic escaping fuzz_one, an allocation sized from an unchecked
# length (see fuzz_targets/requests.rs), a timeout or an out-of-memory; the input is then in
# crates/wire/fuzz/artifacts/requests/ and printed in base64.
#
# Environment:
#   CARGO_TARGET_DIR          build directory (default crates/wire/fuzz/target)
#   SHOAL_FUZZ_CORPUS         keep the scratch corpus here across runs (default: a temp dir)
#   SHOAL_FUZZ_CRASH_DIR      also copy crash inputs here
#   SHOAL_FUZZ_TIMEOUT        seconds one input may take before it counts as a hang (default 10)
#   SHOAL_FUZZ_MAX_ALLOC_MB   largest single allocation allowed (default 256)
#   SHOAL_FUZZ_PANIC=abort    also fail on panics the decoder catches (kafka-protocol panics)
#   SHOAL_FUZZ_SANITIZER      none (default) or address; address sets RUSTC_BOOTSTRAP=1 so
#                             -Zsanitizer is accepted by stable rustc (unsupported; ~5x slower)
#   CARGO_FUZZ_VERSION        cargo-fuzz to install when missing (default 0.13.2)
#   SHOAL_FUZZ_NICE           prefix for heavy commands (default "nice -n 10"; "" for none)
set -euo pipefail

seconds=${1:-120}
shift || true
case $seconds in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [LIBFUZZER_ARG...]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wire=$root/crates/wire
fuzz=$wire/fuzz
committed=$fuzz/corpus/requests
sanitizer=${SHOAL_FUZZ_SANITIZER:-none}
timeout=${SHOAL_FUZZ_TIMEOUT:-10}
read -r -a nice <<<"${SHOAL_FUZZ_NICE-nice -n 10}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$fuzz/target}
export PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi

now() { date +%s; }
t0=$(now)

command -v cargo >/dev/null || { echo "fuzz.sh: cargo not found (install Rust via rustup)" >&2; exit 1; }
command -v c++ >/dev/null || command -v clang++ >/dev/null || command -v g++ >/dev/null ||
    { echo "fuzz.sh: a C++ compiler is needed to build libFuzzer (apt-get install g++)" >&2; exit 1; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz ${CARGO_FUZZ_VERSION:-0.13.2}"
    "${nice[@]}" cargo install cargo-fuzz --locked --version "${CARGO_FUZZ_VERSION:-0.13.2}"
fi
t_install=$(now)

echo "== building the requests target (-s $sanitizer, target dir $CARGO_TARGET_DIR)"
(cd "$wire" && "${nice[@]}" cargo fuzz build -s "$sanitizer" requests)
t_build=$(now)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
seeds=$tmp/seeds
"${nice[@]}" cargo run -q --manifest-path "$fuzz/Cargo.toml" --bin seed -- "$seeds"
t_seed=$(now)

if [ ! -d "$committed" ]; then
    mkdir -p "$committed"
    touch "$committed/.gitkeep"
fi
corpus=${SHOAL_FUZZ_CORPUS:-$tmp/corpus}
mkdir -p "$corpus"
artifacts=$fuzz/artifacts/requests
mkdir -p "$artifacts"
before=$(ls -A "$artifacts")
log=$tmp/fuzz.log

echo "== fuzzing for ${seconds}s: scratch corpus $corpus, seeds $(ls "$seeds" | wc -l)," \
    "committed corpus $(find "$committed" -type f ! -name .gitkeep | wc -l) files"
set +e
(cd "$wire" && "${nice[@]}" cargo fuzz run -s "$sanitizer" requests "$corpus" "$seeds" "$committed" -- \
    -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 "$@") 2>&1 |
    tee "$log" | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|NEW_FUNC' |
    sed -u '/Recommended dictionary/,/End of recommended dictionary/d'
rc=${PIPESTATUS[0]}
set -e
t_run=$(now)

echo
echo "== results"
grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
grep -E '^stat::' "$log" || true
total=$(sed -n 's/.*Loaded 1 modules *(\([0-9]*\) inline 8-bit counters).*/\1/p' "$log" | head -1)
cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
if [ -n "$cov" ] && [ -n "$total" ]; then
    echo "edge coverage: cov $cov of $total instrumented edges" \
        "($(awk -v c="$cov" -v t="$total" 'BEGIN { printf "%.1f", 100 * c / t }')%), ft $ft"
fi
echo "wall time: install $((t_install - t0))s, build $((t_build - t_install))s," \
    "seeds $((t_seed - t_build))s, fuzz $((t_run - t_seed))s"

new=$(comm -13 <(printf '%s\n' "$before" | sort) <(ls -A "$artifacts" | sort) | sed '/^$/d')
if [ "$rc" -ne 0 ] || [ -n "$new" ] || ! grep -qE '^#[0-9]+[[:space:]]+DONE' "$log"; then
    echo
    echo "== FAILED (libFuzzer exit $rc)"
    grep -E '==shoal-fuzz==|panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -20 || true
    for f in $new; do
        echo "-- $artifacts/$f ($(wc -c <"$artifacts/$f") bytes), base64:"
        base64 -w 76 "$artifacts/$f" | head -60
        if [ -n "${SHOAL_FUZZ_CRASH_DIR:-}" ]; then
            mkdir -p "$SHOAL_FUZZ_CRASH_DIR" && cp "$artifacts/$f" "$SHOAL_FUZZ_CRASH_DIR/"
        fi
    done
    echo "reproduce: (cd crates/wire && cargo fuzz run -s $sanitizer requests <artifact>)"
    exit 1
fi
echo "== no crashes"
