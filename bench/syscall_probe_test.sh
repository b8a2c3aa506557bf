#!/usr/bin/env bash
# Tests that the event fast paths make no system call: the probe's syscall
# count under strace must not grow between 10 and 1,000,000 iterations.
set -euo pipefail
probe="$1"
count() {
  local out
  out=$(mktemp)
  strace -f -c -o "$out" "$probe" "$1" >/dev/null
  awk '$NF == "total" { print $4 }' "$out"
  rm -f "$out"
}
small=$(count 10)
large=$(count 1000000)
echo "syscalls: 10 iterations: $small, 1000000 iterations: $large (3 fast-path operations each)"
if (( large - small > 5 )); then
  echo "FAIL: the fast paths made $((large - small)) extra system calls"
  exit 1
fi
echo "PASS: no system call on the fast paths"
