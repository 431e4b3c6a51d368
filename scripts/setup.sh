#!/usr/bin/env bash
# Installs everything mrconn needs on a fresh Debian 12 machine (as root) and
# unpacks the pinned hiredis sources into .deps/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# The PyPI hiredis sdists vendor hiredis's C sources under vendor/hiredis:
# 3.3.0 has hiredis 1.3.0 (the default build's), 3.4.2 has 1.4.0, 3.5.0 has
# 1.5.0 (the version matrix of scripts/test.sh), 2.3.2 has 1.2.0 (refused at
# configure time, also checked there). Pinned by sha256.
HIREDIS_SDIST_VERSION=3.3.0
declare -A HIREDIS_SDISTS=(
  [3.3.0]=105596aad9249634361815c574351f1bd50455dc23b537c2940066c4a9dea685
  [3.4.2]=9a566dc70e9dd84be3550babc56a8e109bb65cafcac635aea027fa425196a7d7
  [3.5.0]=c227592cc56b7df247abe4755c26723965be68972be2149fa441ac33d82131ba
  [2.3.2]=733e2456b68f3f126ddaf2cd500a33b25146c3676b97ea843665717bda0c5d43
)

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

fetch_hiredis() {
  local version=$1 dest=.deps/hiredis-$1
  [ -f "$dest/vendor/hiredis/async.h" ] && return
  local tmp
  tmp=$(mktemp -d)
  echo "setup: fetching the hiredis ${version} sdist (hiredis C sources)"
  python3 -m pip download --quiet --no-deps --no-binary :all: "hiredis==${version}" -d "$tmp"
  echo "${HIREDIS_SDISTS[$version]}  $tmp/hiredis-${version}.tar.gz" | sha256sum -c --quiet -
  mkdir -p .deps
  tar -xzf "$tmp/hiredis-${version}.tar.gz" -C .deps
  rm -rf "$tmp"
}
for version in "${!HIREDIS_SDISTS[@]}"; do
  fetch_hiredis "$version"
done
dest=.deps/hiredis-${HIREDIS_SDIST_VERSION}
grep -q 'HIREDIS_MAJOR 1' "$dest/vendor/hiredis/hiredis.h"
grep -q 'HIREDIS_MINOR 3' "$dest/vendor/hiredis/hiredis.h"
echo "setup: ready (hiredis sources in $dest/vendor/hiredis)"
