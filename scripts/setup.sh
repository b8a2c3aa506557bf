#!/usr/bin/env bash
# Installs, idempotently, the Debian 12 packages that building and testing need.
# Usage: scripts/setup.sh [--bench] [--wine]
#   --bench  adds the optional benchmark peers (and implies --wine)
#   --wine   adds Wine and MinGW-w64, so conformance tests and benchmarks also
#            build the Win32 sources for Windows and run them under Wine
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config libgtest-dev libgmock-dev
          libbenchmark-dev strace libdw-dev libcapnp-dev capnproto
          clang libfuzzer-14-dev libclang-rt-14-dev)
for option in "$@"; do
  case "$option" in
    --bench) packages+=(libboost-dev qt6-base-dev libwinpr2-dev
                        libconcurrentqueue-dev linux-perf wine wine64 g++-mingw-w64-x86-64-posix) ;;
    --wine) packages+=(wine wine64 g++-mingw-w64-x86-64-posix) ;;
    *) echo "setup: unknown option $option" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
