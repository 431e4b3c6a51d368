#!/usr/bin/env bash
# Installs what is needed, builds everything, and runs the demo: three local
# redis-servers, pools of 8, a shrink under load drained gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Release, in build-rel as scripts/bench.sh (scripts/test.sh builds Debug in build).
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-rel -j"$(nproc)"
exec build-rel/mrconn_demo
