#!/usr/bin/env bash
# Sets up the machine, then builds and runs the whole test suite: the release
# build's tests, everything under AddressSanitizer + UndefinedBehaviorSanitizer,
# the concurrency tests under ThreadSanitizer (each preset includes the short
# randomized stress run, tests/stress), then a brief run of each libFuzzer
# fuzzer (tests/fuzz, clang). Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

run_preset() {
  local preset="$1"
  echo "=== ${preset}: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  echo "=== ${preset}: test"
  ctest --preset "$preset"
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"

run_preset release
run_preset asan
run_preset tsan
# The fuzzers need clang (setup.sh installs it); without it they are skipped,
# saying so.
scripts/fuzz.sh
echo "=== all suites passed (release, asan+ubsan, tsan, fuzzers)"
