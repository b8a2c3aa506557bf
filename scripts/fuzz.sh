#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (clang, ASan+UBSan: the "fuzz" preset) and runs
# each one on its corpus (tests/fuzz/corpus/<name>, read-only: new inputs go
# to build/fuzz/corpus/<name>).
# Usage: scripts/fuzz.sh [--seconds N] [--runs N] [fuzzer...]
#   default: CI's brief run, the CTest tests of the preset (20,000 executions
#   each, at most 15 s); --seconds N runs each fuzzer N seconds instead (the
#   long run, e.g. --seconds 3600), keeping what it finds in build/fuzz/corpus.
# A crash, leak or undocumented result stops the run and leaves the input in
# build/fuzz/artifacts/ (replay: build/fuzz/tests/fuzz/<name> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=""
runs=""
fuzzers=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) fuzzers+=("$1"); shift ;;
  esac
done
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (scripts/setup.sh installs clang, libfuzzer-14-dev and libclang-rt-14-dev); fuzzers skipped"
  exit 0
fi
((${#fuzzers[@]})) || fuzzers=(handle_wait_fuzz message_fuzz unmarshal_fuzz)

echo "=== fuzz: configure and build"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

if [[ -z "$seconds" && -z "$runs" ]]; then
  echo "=== fuzz: brief runs (ctest)"
  regex=$(IFS='|'; echo "^(${fuzzers[*]})\$")
  (cd build/fuzz && ctest -R "$regex" --output-on-failure)
  exit 0
fi
mkdir -p build/fuzz/artifacts
for f in "${fuzzers[@]}"; do
  mkdir -p "build/fuzz/corpus/$f"
  echo "=== fuzz: $f"
  args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/)
  [[ -n "$seconds" ]] && args+=(-max_total_time="$seconds")
  [[ -n "$runs" ]] && args+=(-runs="$runs")
  "build/fuzz/tests/fuzz/$f" "${args[@]}" "build/fuzz/corpus/$f" "tests/fuzz/corpus/$f"
done
