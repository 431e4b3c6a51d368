#!/usr/bin/env bash
# The benchmarks: one JSON object per line, one line per scenario (see
# bench/bench.c). Run after scripts/setup.sh; builds in Release first.
#   scripts/bench.sh              all scenarios, then scale, then the callgrind count
#   scripts/bench.sh hot_path ... only those scenarios (no callgrind)
#   scripts/bench.sh scale        only the scale scenario (bench/scale.c)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target mrconn_bench mrconn_scale >/dev/null
# 10,000 connections, and the redis-servers' side of them.
ulimit -n "$(ulimit -Hn)"
if [ "${1:-}" = scale ]; then exec build/mrconn_scale; fi
build/mrconn_bench "$@"
[ $# -eq 0 ] || exit 0
build/mrconn_scale

# Instructions per MRConn_Get + MRConn_SendCommand, counted by callgrind over
# exactly the measured function (repeatable, unlike wall time).
sends=20000
out=$(mktemp -d)
valgrind --tool=callgrind --collect-atstart=no --toggle-collect='bench_hot_path_sends*' \
  --callgrind-out-file="$out/callgrind.out" build/mrconn_bench --callgrind $sends >/dev/null 2>"$out/log"
total=$(callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
printf '{"scenario":"hot_path_callgrind","callgrind_instr_per_send":%s,"sends":%d}\n' \
  "$(awk -v t="$total" -v n="$sends" 'BEGIN {printf "%.0f", t / n}')" "$sends"
callgrind_annotate --inclusive=no "$out/callgrind.out" 2>/dev/null \
  | awk '/^-+$/ {n++} n>=3 && NF>1 && $1 ~ /^[0-9,]+$/ && shown++ < 8 {print}' > "$out/top.txt"
echo "# hottest functions (self instructions, over $sends sends):" >&2
sed 's/^/#   /' "$out/top.txt" >&2
rm -rf "$out"
