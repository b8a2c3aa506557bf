#!/usr/bin/env bash
# Sets up the machine (with the benchmark peers), builds the release preset and
# runs every benchmark, printing each figure as a ratio to a floor measured in
# the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
cmake --preset release >/dev/null
cmake --build --preset release
for bench in build/release/bench/*_bench; do
  echo "=== $(basename "$bench")"
  "$bench" "$@"
done
