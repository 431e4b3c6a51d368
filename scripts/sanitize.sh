#!/usr/bin/env bash
# The reliability pass of the test command (issue 5); scripts/test.sh runs it
# after the plain tests, and it runs on its own too (after scripts/setup.sh).
#
#  1. every C test (ctest) built with clang's AddressSanitizer + UBSan, leaks
#     checked by LeakSanitizer at exit (build-asan, MRCONN_SANITIZE=ON);
#  2. the Rust tests, representative C tests, the fuzz corpus and a short
#     soak under valgrind memcheck, on the plain build: ASan cannot instrument
#     the Rust code on stable Rust, valgrind sees every byte of it;
#  3. the soak (c_tests/soak/soak.c) under ASan: 3 redis-servers and a RESP
#     server, load, pool churn and injected faults; nothing lost, duplicated
#     or leaked, no stall, at least 80 % of the commands really sent and 500
#     faults a minute;
#  4. a short libFuzzer run of fuzz/fuzz_api.c over fuzz/corpus.
# Any sanitizer or valgrind report fails the pass.
#
# Environment:
#   MRCONN_SOAK_SECONDS      soak under ASan, seconds (default 60)
#   MRCONN_SOAK_SEED         replay a soak (default: new seed, printed)
#   MRCONN_VALGRIND_SOAK_SECONDS  soak under valgrind (default 15; 0 skips)
#   MRCONN_FUZZ_SECONDS      libFuzzer time (default 30)
#   MRCONN_PLAIN_BUILD       the plain build dir valgrind uses (default build)
#   MRCONN_SANITIZE_ONLY     space-separated subset of: asan valgrind soak fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

asan_dir=build-asan
plain_dir=${MRCONN_PLAIN_BUILD:-build}
soak_seconds=${MRCONN_SOAK_SECONDS:-60}
vg_soak_seconds=${MRCONN_VALGRIND_SOAK_SECONDS:-15}
fuzz_seconds=${MRCONN_FUZZ_SECONDS:-30}
only=${MRCONN_SANITIZE_ONLY:-asan valgrind soak fuzz}

step() { printf '\n== %s\n' "$*"; }
wants() { [[ " $only " == *" $1 "* ]]; }

# Fail on the first report of any kind; keep the reports readable.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=report_objects=1

if wants asan || wants soak || wants fuzz; then
  step "sanitizer build (clang, ASan + UBSan) in $asan_dir"
  cc=clang
  command -v clang >/dev/null || cc=gcc   # no clang: gcc's ASan, and no fuzzer
  if [ -f "$asan_dir/CMakeCache.txt" ] && ! grep -q "CMAKE_C_COMPILER:.*$cc" "$asan_dir/CMakeCache.txt"; then
    rm -rf "$asan_dir/CMakeCache.txt" "$asan_dir/CMakeFiles"
  fi
  CC=$cc cmake -S . -B "$asan_dir" -DCMAKE_BUILD_TYPE=Debug -DMRCONN_SANITIZE=ON >/dev/null
  cmake --build "$asan_dir" -j"$(nproc)"
fi

if wants asan; then
  step "C tests under ASan + UBSan + LSan"
  (cd "$asan_dir" && ctest --output-on-failure)
fi

if wants valgrind; then
  step "Rust tests (cargo test --workspace) under valgrind memcheck"
  # Each test executable from its package's directory, as cargo runs it.
  cargo test --workspace --no-run --quiet
  while IFS=$'\t' read -r dir exe; do
    (cd "$dir" && valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
       --show-leak-kinds=definite "$exe" -q) || { echo "valgrind: $exe FAILED"; exit 1; }
  done < <(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
')

  step "C tests under valgrind memcheck (covers the Rust code)"
  vg_tests=()
  for t in test_smoke test_drain_load test_drain_deadline test_shutdown test_faults; do
    [ -f "c_tests/$t.c" ] && vg_tests+=("$t")
  done
  cmake --build "$plain_dir" -j"$(nproc)" --target "${vg_tests[@]}" mrconn_soak mrconn_fuzz_replay >/dev/null
  vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
      --show-leak-kinds=definite --track-fds=no --fair-sched=yes)
  for t in "${vg_tests[@]}"; do
    log=$(mktemp)
    start=$(date +%s)
    if ! "${vg[@]}" "$plain_dir/$t" >"$log" 2>&1; then
      cat "$log"
      echo "valgrind: $t FAILED"
      exit 1
    fi
    echo "valgrind: $t clean ($(grep -E '^[0-9]+ passed' "$log" | tail -1), $(( $(date +%s) - start )) s)"
    rm -f "$log"
  done
  # The fuzzer's corpus (hostile API sequences), replayed without libFuzzer.
  "${vg[@]}" "$plain_dir/mrconn_fuzz_replay" fuzz/corpus
  if [ "$vg_soak_seconds" != 0 ]; then
    # Memory errors only: valgrind's slowdown voids the timing bounds (stalls,
    # the share of commands sent, faults a minute), which the ASan soak checks.
    "${vg[@]}" "$plain_dir/mrconn_soak" --seconds "$vg_soak_seconds" --max-stall-ms 0 --inflight 100 \
      --min-sent-pct 0 --min-faults-per-min 0
    echo "valgrind: soak clean"
  fi
fi

if wants soak; then
  step "soak under ASan + UBSan + LSan (${soak_seconds} s)"
  args=(--seconds "$soak_seconds")
  [ -n "${MRCONN_SOAK_SEED:-}" ] && args+=(--seed "$MRCONN_SOAK_SEED")
  "$asan_dir/mrconn_soak" "${args[@]}"
fi

if wants fuzz; then
  if [ -x "$asan_dir/mrconn_fuzz_api" ]; then
    step "libFuzzer: fuzz/fuzz_api.c for ${fuzz_seconds} s"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # New inputs go to $work; fuzz/corpus only seeds. A crash is written to
    # $asan_dir/fuzz-crash-* and fails the pass.
    "$asan_dir/mrconn_fuzz_api" -max_total_time="$fuzz_seconds" -max_len=512 -timeout=20 \
      -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$asan_dir/fuzz-" \
      "$work" fuzz/corpus 2>&1 | grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' \
      || { echo "libFuzzer: FAILED"; exit 1; }
  else
    echo "libFuzzer: skipped (needs clang)"
    only=${only/fuzz/}
  fi
fi
passes=0
for p in $only; do passes=$((passes + 1)); done
echo
echo "sanitize: $passes passed, 0 failed"
