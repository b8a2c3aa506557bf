#!/usr/bin/env bash
# Tests that a Win32 program behaves here as on Windows: the native build's
# output must equal the expected file (recorded under Wine, corrected where
# Wine departs from Microsoft's documentation; see known_wine_deviations.txt).
# Where MinGW-w64 and Wine are installed, the same source is also built as a
# Windows executable and run under Wine, and must agree outside the known
# deviations.
# The Windows build links ole32/oleaut32/uuid, so COM programs can use it too.
# Usage: run_conformance.sh <native-binary> <source.cc> <expected> <deviations> [--wine]
set -euo pipefail
native="$1" source="$2" expected="$3" deviations="$4" use_wine="${5:-}"
work=$(mktemp -d)
trap 'rm -rf "$work" 2>/dev/null || true' EXIT

"$native" > "$work/native.txt"
if ! diff -u "$expected" "$work/native.txt"; then
  echo "FAIL: native behaviour differs from Windows' (lines marked + are ours)"
  exit 1
fi
echo "native: $(grep -c . "$work/native.txt") observations match Windows"

if [[ "$use_wine" != "--wine" ]]; then exit 0; fi
mingw=$(command -v x86_64-w64-mingw32-g++-posix || command -v x86_64-w64-mingw32-g++ || true)
if [[ -z "$mingw" ]] || ! command -v wine >/dev/null; then
  echo "wine: skipped (install wine and g++-mingw-w64-x86-64 to compare live)"
  exit 0
fi
"$mingw" -std=c++20 -O1 -static "$source" -o "$work/conformance.exe" -lole32 -loleaut32 -luuid
export WINEPREFIX="$work/wineprefix" WINEDEBUG=-all
timeout 300 wine "$work/conformance.exe" 2>/dev/null | tr -d '\r' > "$work/wine.txt"
# Let this prefix's wineserver exit before the prefix is removed.
timeout 30 wineserver -w 2>/dev/null || true
filter() { grep -v -F -f <(grep -v '^#' "$deviations") "$1" || true; }
if ! diff -u <(filter "$expected") <(filter "$work/wine.txt"); then
  echo "FAIL: Wine's behaviour changed outside the known deviations"
  exit 1
fi
echo "wine: $(grep -c . "$work/wine.txt") observations agree (known deviations ignored)"
