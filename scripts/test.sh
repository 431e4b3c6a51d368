#!/usr/bin/env bash
# Runs every test: Rust (format, lints, unit tests, header freshness), then
# the C tests against real redis-servers through ctest, then the reliability
# pass (scripts/sanitize.sh: sanitizers, valgrind, soak, fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo test (mrconn-core unit tests, header freshness)"
cargo test --workspace --quiet
scripts/fuzz_core.sh  # mrconn-core in-process: 100000 libFuzzer (nightly) or seeded programs

step "C tests (ctest)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure)

# The hiredis versions RediSearch may ship (README, "hiredis versions"): the
# tests that lean on hiredis's internals, against 1.4.0 and 1.5.0 sources;
# 1.2.0 must be refused at configure time, naming the supported range.
matrix_tests="test_send_path test_drain_churn test_drain_deadline test_drain_errors test_drain_expand test_drain_load test_drain_topology test_reentry test_shutdown test_pick"
for sdist in 3.4.2 3.5.0; do
  step "C tests against hiredis from the PyPI hiredis $sdist sdist"
  cmake -S . -B "build-hiredis-$sdist" -DCMAKE_BUILD_TYPE=Debug \
    -DMRCONN_HIREDIS_DIR="$PWD/.deps/hiredis-$sdist/vendor" | grep 'mrconn: hiredis'
  # shellcheck disable=SC2086
  cmake --build "build-hiredis-$sdist" -j"$(nproc)" --target $matrix_tests
  (cd "build-hiredis-$sdist" && ctest --output-on-failure -R "^(${matrix_tests// /|})\$")
done
step "hiredis 1.2.0 is refused at configure time"
if cmake -S . -B build-hiredis-2.3.2 -DMRCONN_HIREDIS_DIR="$PWD/.deps/hiredis-2.3.2/vendor" \
     >build-hiredis-2.3.2.log 2>&1 || ! grep -q '1.3.0 to 1.5.0' build-hiredis-2.3.2.log; then
  cat build-hiredis-2.3.2.log
  echo "hiredis 1.2.0: expected a configure error naming the supported range"
  exit 1
fi
echo "refused: $(grep -o 'hiredis 1.2.0 in .*' build-hiredis-2.3.2.log | head -1) (supported: hiredis 1.3.0 to 1.5.0)"

# Sanitizers (ASan/UBSan/LSan on the C code, ASan on the Rust code with a
# nightly toolchain, valgrind), the soak and a short fuzz run: see the
# script's header for its knobs.
scripts/sanitize.sh
