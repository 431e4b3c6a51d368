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

# Sanitizers (ASan/UBSan/LSan on the C code, ASan on the Rust code with a
# nightly toolchain, valgrind), the soak and a short fuzz run: see the
# script's header for its knobs.
scripts/sanitize.sh
