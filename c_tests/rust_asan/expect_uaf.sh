#!/usr/bin/env bash
# expect_uaf.sh <program>: passes only if AddressSanitizer stops <program>
# with a heap-use-after-free detected in the Rust fixture's own code
# (uaf/src/lib.rs), i.e. the sanitizer build's Rust flags instrument Rust.
set -uo pipefail
out=$(ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 "$1" 2>&1)
status=$?
echo "$out"
# The faulting access's stack: its first frame outside std (inlined std
# frames share its pc) must be the fixture's function, at that same pc.
stack=$(echo "$out" | sed -n '/^READ of size/,/^$/p')
pc0=$(echo "$stack" | awk '$1 == "#0" {print $2; exit}')
own=$(echo "$stack" | grep -E '^ *#[0-9]+ ' | grep -v ' /rustc/' | head -1)
if [ "$status" -ne 0 ] && echo "$out" | grep -q 'ERROR: AddressSanitizer: heap-use-after-free' \
   && [[ "$own" == *" $pc0 in mrconn_asan_uaf::read_after_free "*rust_asan/uaf/src/lib.rs:* ]]; then
  echo "ASan reported the Rust fixture's heap-use-after-free in: ${own#* in }"
  echo "1 passed, 0 failed"
  exit 0
fi
echo "expected an ASan heap-use-after-free report in uaf/src/lib.rs (exit $status)"
echo "0 passed, 1 failed"
exit 1
