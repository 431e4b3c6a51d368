#!/usr/bin/env bash
# The archive exposes exactly the C API (cmake/exports.txt) as global
# symbols, and defines nothing of hiredis, libuv, OpenSSL or RediSearch.
set -euo pipefail
archive=$1 exports=$2
# Under ASan (the sanitizer build) every instrumented object also carries
# ___asan_globals_registered, hidden and common: one flag per linked module,
# shared with the C objects on purpose.
defined=$(nm -g --defined-only "$archive" | awk 'NF==3 && $3 != "___asan_globals_registered" {print $3}' | sort)
expected=$(sort "$exports")
if [ "$defined" != "$expected" ]; then
  echo "global symbols of $archive differ from $exports:"
  diff <(echo "$expected") <(echo "$defined") || true
  echo "0 passed, 1 failed"
  exit 1
fi
for prefix in redis uv_ SSL_ RedisModule_ RS_ dict array_ MREndpoint_ MRReply_; do
  if nm --defined-only "$archive" | awk 'NF==3 {print $3}' | grep -q "^$prefix"; then
    echo "$archive defines a $prefix* symbol"
    echo "0 passed, 1 failed"
    exit 1
  fi
done
echo "$(echo "$defined" | wc -l) exported symbols, all from the C API; no hiredis/libuv/OpenSSL/RediSearch symbol"
echo "1 passed, 0 failed"
