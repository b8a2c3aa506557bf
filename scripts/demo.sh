#!/usr/bin/env bash
# Sets up the machine, builds the release preset and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target apartments-demo
exec build/release/tools/apartments-demo
