#!/usr/bin/env bash
# wrap_staticlib.sh <cargo libmrconn.a> <exports.txt> <out dir>
#
# Turns cargo's staticlib into <out dir>/libmrconn_c.a: one relocatable
# object in which every symbol but the C API is local, so that a second Rust
# staticlib in the same link (RediSearch's libredisearch_rs.a) cannot clash
# with our std, allocator shims or dependencies, nor bind to them.
set -euo pipefail
raw=$1 exports=$2 out=$3
mkdir -p "$out"
lib="$out/libmrconn_c.a"
if [ "$lib" -nt "$raw" ] && [ "$lib" -nt "$exports" ] && [ "$lib" -nt "$0" ]; then
  exit 0
fi
all="$out/mrconn_all.o" obj="$out/mrconn.o"

ld -r --whole-archive "$raw" -o "$all"

# COMDAT groups are merged by name across the whole link: a group of ours
# (e.g. DW.ref.rust_eh_personality) would win over the other library's and
# leave its references dangling once our copy is local. Give ours private names.
renames="$out/comdat-renames.txt"
readelf -gW "$all" | sed -n 's/^COMDAT group section .*\[\(.*\)\] contains.*/\1/p' | sort -u \
  | awk '{print $1 " mrconn." $1}' > "$renames"

# Embedded LLVM bitcode would be handed to the linker plugin and misread.
objcopy --redefine-syms="$renames" --keep-global-symbols="$exports" \
  --remove-section=.llvmbc --remove-section=.llvmcmd "$all" "$obj"
rm -f "$out/libmrconn_c.a" "$all"
ar rcs "$out/libmrconn_c.a" "$obj"
