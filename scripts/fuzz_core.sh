#!/usr/bin/env bash
# In-process fuzzing of crates/mrconn-core; scripts/test.sh runs it after the
# unit tests, and it runs on its own too. fuzz/core reads each input as a
# program of pool picks, shrinks, expands, node retirements, replies, state
# events, drain deadlines and shutdowns, runs it on the real Pool, next_state
# and DrainBook, and checks a model of the connections after every step
# (fuzz/core/src/lib.rs). No I/O: tens of thousands of programs a second.
#
# With the nightly toolchain: libFuzzer (libfuzzer-sys), built with the
# sanitizer-coverage flags cargo-fuzz uses, seeded by fuzz/core/corpus (new
# inputs go to a temporary directory). Without nightly it says so loudly and
# runs the same programs as a seeded property test on stable instead, for the
# same count. An invariant violation or crash fails the script; a libFuzzer
# crash input is kept in fuzz/core/target/crashes/.
#
# Environment:
#   MRCONN_FUZZ_CORE_RUNS    executions (default 100000)
#   MRCONN_FUZZ_CORE_SEED    replay a run (default: a new seed, printed)
#   MRCONN_FUZZ_CORE_STABLE  1: the stable property test even with nightly
#
# Replay a crash: fuzz/core/target/<host>/release/fuzz_core <crash file>
set -euo pipefail
cd "$(dirname "$0")/../fuzz/core"
export PATH="$HOME/.cargo/bin:$PATH"

runs=${MRCONN_FUZZ_CORE_RUNS:-100000}
seed=${MRCONN_FUZZ_CORE_SEED:-}

step() { printf '\n== %s\n' "$*"; }

step "fuzz/core: cargo fmt --check, clippy"
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings

if [ "${MRCONN_FUZZ_CORE_STABLE:-0}" != 1 ] && cargo +nightly --version >/dev/null 2>&1; then
  host=$(rustc +nightly -vV | sed -n 's/^host: //p')
  step "fuzz/core: libFuzzer build (nightly, sanitizer coverage, $host)"
  # cargo-fuzz's flags, less two: -sanitizer-coverage-trace-compares cost 4x
  # the CPU time (the model's checks compare a lot) and found no more edges,
  # since no input byte is matched against magic values; ASan cost 10x on
  # code that is all safe Rust. --target keeps the flags off build scripts.
  unset CARGO_ENCODED_RUSTFLAGS
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo +nightly build --release --quiet --features libfuzzer --bin fuzz_core \
    --target "$host" --target-dir target

  step "fuzz/core: libFuzzer, $runs executions over fuzz/core/corpus"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p target/crashes
  log=target/fuzz_core.log
  status=0
  "target/$host/release/fuzz_core" -runs="$runs" ${seed:+-seed="$seed"} -max_len=4096 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$PWD/target/crashes/" \
    "$work" corpus >"$log" 2>&1 || status=$?
  # The log without the per-input lines and the recommended dictionary.
  sed -E -e '/^#[0-9]+\s+(NEW|REDUCE|pulse)/d' \
    -e '/^###### Recommended dictionary/,/^###### End of recommended dictionary/d' "$log"
  if [ "$status" != 0 ]; then
    echo "fuzz/core: FAILED (libFuzzer exit $status; full log $PWD/$log)" >&2
    exit 1
  fi
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  if [ -z "$done_runs" ] || [ "$done_runs" -lt "$runs" ]; then
    echo "fuzz/core: FAILED (${done_runs:-no} executions, $runs wanted)" >&2
    exit 1
  fi
  echo "fuzz/core: libFuzzer ran $done_runs executions ($per_sec execs/s), no crash"
else
  cat >&2 <<EOF

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! fuzz/core: NO LIBFUZZER RUN. The nightly toolchain is missing
!! (cargo +nightly fails) or MRCONN_FUZZ_CORE_STABLE=1. Running the same
!! programs as a seeded property test on stable instead: $runs executions,
!! random rather than coverage-guided.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF
  step "fuzz/core: seeded property test (stable), $runs executions"
  MRCONN_FUZZ_CORE_RUNS=$runs MRCONN_FUZZ_CORE_SEED=$seed \
    cargo test --release --quiet --test seeded -- --nocapture
fi
