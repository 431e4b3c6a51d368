#!/usr/bin/env bash
# Installs what is needed, builds everything, and runs the demo: three local
# redis-servers, pools of 8, a shrink under load drained gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
exec build/mrconn_demo
