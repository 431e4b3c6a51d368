#!/usr/bin/env bash
# The benchmarks: one JSON object per line, one line per scenario (see
# bench/bench.c). Run after scripts/setup.sh; builds in Release first.
#   scripts/bench.sh              all scenarios, then scale, then the callgrind count
#   scripts/bench.sh hot_path ... only those scenarios (no callgrind); head_of_line
#                                 runs one pass per MRCONN_PICK, each in a child
#   scripts/bench.sh scale        only the scale scenario (bench/scale.c)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
# Release, in build-rel as scripts/demo.sh (scripts/test.sh builds Debug in build).
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-rel -j"$(nproc)" --target mrconn_bench mrconn_scale >/dev/null
# 10,000 connections, and the redis-servers' side of them.
ulimit -n "$(ulimit -Hn)"
# scale runs on jemalloc when the machine has it (Debian's redis-server
# brings it): the allocator behind RedisModule_Alloc in Redis. glibc's malloc,
# the test host's default, sorts its free lists inside the first malloc after
# thousands of frees, a stall of several ms that Redis never has. With
# jemalloc's background thread, as Redis runs it (jemalloc-bg-thread yes):
# without it jemalloc purges freed pages inside later allocations, and after
# the 60 s wait for TIME_WAIT (bench/scale.c) the first fill iteration of
# 3 x 512 and 20 x 500 took 1.8-2.8 ms (0.22-0.37 ms with the thread).
scale() {
  local je
  je=$(ldconfig -p | awk '/libjemalloc\.so\.2 / {print $NF; exit}')
  MALLOC_CONF="${MALLOC_CONF:-background_thread:true}" LD_PRELOAD="${je:-}" build-rel/mrconn_scale
}
if [ "${1:-}" = scale ]; then scale; exit; fi
build-rel/mrconn_bench "$@"
[ $# -eq 0 ] || exit 0
scale

# Instructions per MRConn_Get + MRConn_SendCommand, counted by callgrind over
# exactly the measured function (repeatable, unlike wall time), and their
# split. MRCONN_SEND_PATH=hiredis (see README) measures hiredis's own send.
sends=20000
out=$(mktemp -d)
valgrind --tool=callgrind --collect-atstart=no --toggle-collect='bench_hot_path_sends*' \
  --callgrind-out-file="$out/callgrind.out" build-rel/mrconn_bench --callgrind $sends >/dev/null 2>"$out/log"
total=$(callgrind_annotate "$out/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",", "", $1); t = $1} END {print t}')
# The split: each call's inclusive cost, from the measured function's callees;
# the rest is the benchmark's own loop.
read -r get send < <(callgrind_annotate --tree=calling --inclusive=yes "$out/callgrind.out" 2>/dev/null | awk '
  /\*  .*:bench_hot_path_sends / {inside = 1; next}
  inside && NF == 0 {inside = 0}
  inside && />  .*:MRConn_Get / {gsub(",", "", $1); get = $1}
  inside && />  .*:MRConn_SendCommand / {gsub(",", "", $1); send = $1}
  END {print get + 0, send + 0}')
awk -v t="$total" -v g="$get" -v s="$send" -v n="$sends" -v path="${MRCONN_SEND_PATH:-mrconn}" 'BEGIN {
  printf "{\"scenario\":\"hot_path_callgrind\",\"callgrind_instr_per_send\":%.0f,\"MRConn_Get\":%.0f,", t / n, g / n
  printf "\"MRConn_SendCommand\":%.0f,\"bench_loop\":%.0f,\"send_path\":\"%s\",\"sends\":%d}\n", s / n, (t - g - s) / n, path, n
}'
callgrind_annotate --inclusive=no "$out/callgrind.out" 2>/dev/null \
  | awk '/^-+$/ {n++} n>=3 && NF>1 && $1 ~ /^[0-9,]+$/ && shown++ < 8 {print}' > "$out/top.txt"
echo "# hottest functions (self instructions, over $sends sends):" >&2
sed 's/^/#   /' "$out/top.txt" >&2
rm -rf "$out"
