#!/usr/bin/env bash
# Installs everything mrconn needs on a fresh Debian 12 machine (as root) and
# unpacks the pinned hiredis sources into .deps/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

HIREDIS_SDIST_VERSION=3.3.0   # the PyPI package hiredis 3.3.0 vendors hiredis 1.3.0
HIREDIS_SDIST_SHA256=105596aad9249634361815c574351f1bd50455dc23b537c2940066c4a9dea685

packages=(redis-server redis-tools libuv1-dev libssl-dev cmake clang libclang-dev
          libclang-rt-14-dev pkg-config openssl valgrind python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The redis-server package starts a system instance on 6379; tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi

dest=.deps/hiredis-${HIREDIS_SDIST_VERSION}
if [ ! -f "$dest/vendor/hiredis/async.h" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "setup: fetching the hiredis ${HIREDIS_SDIST_VERSION} sdist (hiredis 1.3.0 C sources)"
  python3 -m pip download --quiet --no-deps --no-binary :all: \
    "hiredis==${HIREDIS_SDIST_VERSION}" -d "$tmp"
  tarball="$tmp/hiredis-${HIREDIS_SDIST_VERSION}.tar.gz"
  echo "${HIREDIS_SDIST_SHA256}  $tarball" | sha256sum -c --quiet -
  mkdir -p .deps
  tar -xzf "$tarball" -C .deps
  grep -q 'HIREDIS_MAJOR 1' "$dest/vendor/hiredis/hiredis.h"
  grep -q 'HIREDIS_MINOR 3' "$dest/vendor/hiredis/hiredis.h"
fi
echo "setup: ready (hiredis sources in $dest/vendor/hiredis)"
