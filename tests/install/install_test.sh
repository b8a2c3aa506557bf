#!/usr/bin/env bash
# Tests that an installed apartments works from another project, through
# find_package(apartments) and through pkg-config.
# Usage: install_test.sh <build-dir> <source-dir>
set -euo pipefail
build="$1"
source="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/tests/install/consumer" -B "$work/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer/consumer"
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH="$libdir"
# shellcheck disable=SC2046
g++ "$source/tests/install/consumer/main.cc" -o "$work/consumer-pc" $(pkg-config --cflags --libs apartments)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$work/consumer-pc"
# The wait-chain CLI installs beside the library (when tools are built).
if [ -e "$build/tools/apartments-wct" ]; then
  "$work/prefix/bin/apartments-wct" --help | grep -q "usage: apartments-wct"
fi
echo "PASS: find_package and pkg-config consumers built and ran"
