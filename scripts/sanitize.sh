#!/usr/bin/env bash
# The reliability pass of the test command (issue 5); scripts/test.sh runs it
# after the plain tests, and it runs on its own too (after scripts/setup.sh).
#
#  1. every C test (ctest) in build-asan: the C code built with clang's
#     AddressSanitizer + UBSan, leaks checked by LeakSanitizer at exit, and
#     the Rust code (the mrconn staticlib) built by the nightly toolchain with
#     -Zsanitizer=address, wrapped as in the normal build; ctest also asserts
#     that the archives' mrconn code calls ASan's checks and that a broken
#     Rust fixture (c_tests/rust_asan/uaf) is reported;
#  2. valgrind memcheck over the Rust unit tests; without a nightly toolchain
#     (loud banner), also over every C test, the fuzz corpus and a short soak
#     on the plain build, since ASan then sees none of the Rust code;
#  3. the soak (c_tests/soak/soak.c) in build-asan: 3 redis-servers and a RESP
#     server, load, pool churn and injected faults; nothing lost, duplicated
#     or leaked, no stall, at least 80 % of the commands really sent and 500
#     faults a minute;
#  4. a short libFuzzer run of fuzz/fuzz_api.c over fuzz/corpus, in build-asan.
# Any sanitizer or valgrind report fails the pass.
#
# Environment:
#   MRCONN_SOAK_SECONDS      soak under ASan, seconds (default 60)
#   MRCONN_SOAK_SEED         replay a soak (default: new seed, printed)
#   MRCONN_VALGRIND_SOAK_SECONDS  soak under valgrind, without nightly (default 15; 0 skips)
#   MRCONN_FUZZ_SECONDS      libFuzzer time (default 30)
#   MRCONN_PLAIN_BUILD       the plain build dir valgrind uses (default build)
#   MRCONN_NIGHTLY           rustup toolchain for the Rust ASan build (default
#                            nightly; "none" forces the valgrind fallback)
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

# The Rust code under ASan needs -Zsanitizer, i.e. a nightly toolchain.
nightly=${MRCONN_NIGHTLY:-nightly}
rust_asan=""
if [ "$nightly" != none ] && cargo "+$nightly" --version >/dev/null 2>&1; then
  rust_asan=$nightly
  rust_cover="Rust code: AddressSanitizer ($(rustc "+$nightly" --version))"
else
  rust_cover="Rust code: NOT under ASan (no '$nightly' toolchain), valgrind memcheck instead"
  printf '\n%s\n!!! %s\n!!! %s\n%s\n' "$(printf '!%.0s' {1..78})" \
    "NO NIGHTLY RUST ('cargo +$nightly' failed): the Rust code is NOT built with ASan." \
    "Fallback: the Rust code is checked by valgrind memcheck over every C test." \
    "$(printf '!%.0s' {1..78})"
fi

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
  CC=$cc cmake -S . -B "$asan_dir" -DCMAKE_BUILD_TYPE=Debug -DMRCONN_SANITIZE=ON \
    -DMRCONN_RUST_ASAN_TOOLCHAIN="$rust_asan" >/dev/null
  cmake --build "$asan_dir" -j"$(nproc)"
  # Here, not only in ctest: the soak and fuzz passes rely on it too.
  if [ -n "$rust_asan" ]; then
    for lib in "$asan_dir"/mrconn_{master,v880,fuzzcov}/libmrconn_c.a; do
      if [ -f "$lib" ]; then c_tests/rust_asan/check_instrumented.sh "$lib" | sed -n 1p; fi
    done
  fi
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

  if [ -n "$rust_asan" ]; then
    echo "valgrind: C tests skipped, the Rust code ran under ASan in $asan_dir"
  else
    step "every C test under valgrind memcheck (the Rust code's only check without nightly)"
    cmake -S . -B "$plain_dir" -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$plain_dir" -j"$(nproc)" >/dev/null
    vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
        --show-leak-kinds=definite --track-fds=no --fair-sched=yes)
    vg_slow=()
    # ctest's own list: name, directory, command; scripts (no ELF) skipped.
    while IFS=$'\t' read -r name dir cmd; do
      read -ra argv <<<"$cmd"
      [ "$(head -c4 "${argv[0]}")" = $'\x7fELF' ] || continue
      log=$(mktemp)
      start=$(date +%s)
      status=0
      (cd "$dir" && "${vg[@]}" "${argv[@]}") >"$log" 2>&1 || status=$?
      # A valgrind report (exit 99) or a crash fails the pass. (Reports from
      # children a test forks to watch them die do not count.)
      if [ "$status" = 99 ] || [ "$status" -gt 128 ]; then
        cat "$log"
        echo "valgrind: $name FAILED"
        exit 1
      fi
      # A test's own checks failing under the 20-50x slowdown (timing
      # bounds) is no memory error: they ran in the plain ctest already.
      if [ "$status" != 0 ]; then
        grep -E '^ *FAILED ' "$log" || true
        vg_slow+=("$name")
      fi
      echo "valgrind: $name: no valgrind report ($(grep -E '^[0-9]+ passed' "$log" | tail -1), $(( $(date +%s) - start )) s)"
      rm -f "$log"
    done < <(cd "$plain_dir" && ctest --show-only=json-v1 | python3 -c '
import json, os, sys
for t in json.load(sys.stdin)["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    print(t["name"], props.get("WORKING_DIRECTORY", os.getcwd()), " ".join(t["command"]), sep="\t")
')
    # The fuzzer's corpus (hostile API sequences), replayed without libFuzzer.
    "${vg[@]}" "$plain_dir/mrconn_fuzz_replay" fuzz/corpus
    if [ "$vg_soak_seconds" != 0 ]; then
      # Memory errors only: valgrind's slowdown voids the timing bounds (stalls,
      # the share of commands sent, faults a minute), which the ASan soak checks.
      "${vg[@]}" "$plain_dir/mrconn_soak" --seconds "$vg_soak_seconds" --max-stall-ms 0 --inflight 100 \
        --min-sent-pct 0 --min-faults-per-min 0
      echo "valgrind: soak clean"
    fi
    if [ ${#vg_slow[@]} -gt 0 ]; then
      echo "valgrind: NOTE: no memory error, but under valgrind these tests failed their own (timing) checks: ${vg_slow[*]}"
    fi
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
echo "$rust_cover"
echo "sanitize: $passes passed, 0 failed"
