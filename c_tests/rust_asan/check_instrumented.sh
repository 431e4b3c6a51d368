#!/usr/bin/env bash
# check_instrumented.sh <wrapped libmrconn_c.a>: fails unless mrconn's own
# code in the archive calls AddressSanitizer's checks, so the Rust
# instrumentation cannot silently disappear from the sanitizer build.
# readelf, not nm: binutils nm cannot read the objects of rustc 1.95+.
set -euo pipefail
archive=$1
symbols=$(readelf -Ws "$archive" | awk '$7 == "UND" && $8 ~ /^__asan_/ {print $8}' | sort -u) || symbols=""
# Functions of the crate (mangled names hold "6mrconn") or of its C API
# (MRConn*), one text section each, whose relocations call __asan_report_*.
functions=$(readelf -rW "$archive" \
  | awk '/^Relocation section/ {sec = $3} / __asan_report_/ {print sec}' | sort -u \
  | grep -cE "^'\\.rela\\.text\\.(.*6mrconn|MRConn)") || true
if [ -z "$symbols" ] || ! grep -q '^__asan_init$' <<<"$symbols" || [ "$functions" -eq 0 ]; then
  echo "$archive: mrconn's code is not instrumented by AddressSanitizer"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "Rust ASan: $functions functions of mrconn in $archive call __asan_report_*;" \
     "$(wc -l <<<"$symbols") __asan_* symbols referenced (readelf)"
echo "1 passed, 0 failed"
