#!/usr/bin/env bash
# The benchmark suite in one command: installs the peers (scripts/setup.sh
# --bench), builds the release preset, runs every benchmark binary (ours, the
# floors, each peer, the Win32 workloads natively and under Wine, memory, and
# the syscall probes) and prints ONE table (bench/bench_table.cc).
#
# Usage: scripts/bench.sh [--results] [--quick] [--no-setup] [--gbench] [-- HARNESS-ARGS]
#   --results   also writes the table to bench/RESULTS.md
#   --quick     5 repetitions of 10 ms batches and a small memory run (a smoke test)
#   --no-setup  does not run scripts/setup.sh --bench
#   --gbench    afterwards also runs the Google Benchmark micro-benchmarks
#               (kernel_bench, message_bench)
#   HARNESS-ARGS go to every suite binary, e.g. -- --filter=roundtrip --reps=21
set -euo pipefail
cd "$(dirname "$0")/.."

results=0 quick=0 setup=1 gbench=0
harness_args=()
while (($#)); do
  case "$1" in
    --results) results=1 ;;
    --quick) quick=1 ;;
    --no-setup) setup=0 ;;
    --gbench) gbench=1 ;;
    --) shift; harness_args+=("$@"); break ;;
    *) echo "bench: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
((quick)) && harness_args=(--reps=5 --batch_ms=10 "${harness_args[@]}")

((setup)) && scripts/setup.sh --bench
cmake --preset release | grep 'apartments:' || true  # Which peers were found.
cmake --build --preset release

B=build/release/bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
raw="$work/raw.txt"
started=$(date +%s)

# Runs one suite binary, appending its lines to $raw and echoing progress.
run() {
  local name="$1"
  shift
  echo "=== $name" >&2
  "$@" | tr -d '\r' | tee -a "$raw" | awk -F'\t' '
      $1 == "RESULT" { printf "  %-10s %-10s %-45s %12.1f ns\n", $2, $3, $4, $5 }
      $1 == "SKIP"   { printf "  %-10s %-10s %-45s %s\n", $2, $3, $4, $5 }' >&2
}

run floors "$B/floors_bench" "${harness_args[@]}"
run ours "$B/win32_bench" "${harness_args[@]}"
[[ -x $B/com_bench ]] && run com "$B/com_bench" "${harness_args[@]}"
for peer in "$B"/peer_*; do
  [[ -x $peer ]] && run "$(basename "$peer")" "$peer" "${harness_args[@]}"
done

# --- Wine: the same Win32 source as a Windows executable. ---
if [[ -f $B/win32_workloads.exe ]] && command -v wine >/dev/null; then
  export WINEDEBUG=-all WINEPREFIX="$work/wineprefix"
  wine_start=$(date +%s)
  # The first start creates the prefix (slow); it is excluded from the figures.
  wineboot -i >/dev/null 2>&1 || wine cmd /c exit >/dev/null 2>&1 || true
  echo "=== wine prefix created in $(($(date +%s) - wine_start)) s (not timed)" >&2
  run wine wine "$B/win32_workloads.exe" "${harness_args[@]}"
  echo -e "NOTE\tWine: $(wine --version 2>/dev/null), WINEDEBUG=-all, a fresh WINEPREFIX; wine rows run bench/win32_workloads.cc built with MinGW-w64 (x86_64-w64-mingw32-g++-posix -O2 -static), ours rows the same file built against <apartments/win32.h>" >>"$raw"
  wineserver -k 2>/dev/null || true
else
  "$B/win32_bench" --list "${harness_args[@]}" | sed 's/ours:/wine:/' |
    awk -F/ '{ printf "SKIP\t%s\t%s\t%s\tskipped: wine or MinGW-w64 not installed\n", $1, $2, $3 }' >>"$raw"
fi

# --- Memory. ---
if [[ -x $B/memory_bench ]]; then
  if ((quick)); then run memory "$B/memory_bench" --threads=50 --messages=2000
  else run memory "$B/memory_bench"; fi
fi

# --- System calls and context switches per operation. ---
# Each probe runs one case for N1 and for N2 operations; the difference,
# divided by N2 - N1, removes start-up and thread creation.
probes=(
  "floors_bench|roundtrip/same_cpu/floor:futex ping-pong"
  "win32_bench|roundtrip/same_cpu/ours:event ping-pong"
  "win32_bench|roundtrip/same_cpu/ours:SendMessageW"
  "com_bench|roundtrip/same_cpu/ours:COM STA->STA (IAdder proxy)"
  "com_bench|roundtrip/same_cpu/ours:COM STA->MTA (IAdder proxy)"
  "floors_bench|roundtrip/cross_cpu/floor:futex ping-pong"
  "win32_bench|roundtrip/cross_cpu/ours:event ping-pong"
  "com_bench|roundtrip/cross_cpu/ours:COM STA->STA (IAdder proxy)"
  "win32_bench|post1/same_cpu/ours:PostThreadMessageW"
  "win32_bench|wait/one_thread/ours:WaitForSingleObject(signaled)"
)
n1=2000 n2=12000
if perf stat -x, -e raw_syscalls:sys_enter,context-switches true >/dev/null 2>&1; then
  method=perf
  echo -e "NOTE\tSystem calls and context switches counted with perf stat -e raw_syscalls:sys_enter,context-switches (all threads), over ${n2} minus ${n1} operations" >>"$raw"
elif command -v strace >/dev/null; then
  method=strace
  echo -e "NOTE\tperf stat with raw_syscalls is not available here: system calls counted with strace -c -f, context switches with getrusage(RUSAGE_SELF) (all threads), over ${n2} minus ${n1} operations; strace slows every system call, so only the counts mean anything" >>"$raw"
else
  method=none
  echo -e "NOTE\tNeither perf nor strace available: no system-call counts" >>"$raw"
fi
count() {  # binary case ops -> "syscalls ctxsw"
  local bin="$1" case="$2" ops="$3" out
  case $method in
    perf)
      out=$(perf stat -x, -e raw_syscalls:sys_enter,context-switches -- \
            "$B/$bin" --probe="$case" --ops="$ops" 2>&1 >/dev/null)
      echo "$(awk -F, '/raw_syscalls/ { print $1 }' <<<"$out") $(awk -F, '/context-switches/ { print $1 }' <<<"$out")"
      ;;
    strace)
      local probe
      probe=$(strace -f -c -o "$work/strace.txt" "$B/$bin" --probe="$case" --ops="$ops")
      echo "$(awk '/ total$/ { print $(NF-2) }' "$work/strace.txt") $(awk -F'\t' '{ print $4 + $5 }' <<<"$probe")"
      ;;
  esac
}
if [[ $method != none ]]; then
  echo "=== syscalls per operation ($method)" >&2
  for p in "${probes[@]}"; do
    bin=${p%%|*} case=${p#*|}
    [[ -x $B/$bin ]] || continue
    read -r s1 c1 < <(count "$bin" "$case" $n1)
    read -r s2 c2 < <(count "$bin" "$case" $n2)
    line=$(awk -v s1="$s1" -v s2="$s2" -v c1="$c1" -v c2="$c2" -v d=$((n2 - n1)) -v c="$case" \
      'BEGIN { printf "INFO\tsyscalls\t%s\t%.2f syscalls/op, %.2f context switches/op", c, (s2 - s1) / d, (c2 - c1) / d }')
    echo "$line" >>"$raw"
    echo "  ${line#INFO	syscalls	}" >&2
  done
fi

cpus=$(nproc)
load=$(cut -d' ' -f1-3 /proc/loadavg)
title="apartments benchmark suite, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), ${cpus} vCPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average at the end ${load}, run took $(($(date +%s) - started)) s"
"$B/bench_table" --title="$title" <"$raw" | tee "$work/table.txt"

# --- Instructions per operation (callgrind): figures that do not move with
# the load or the host. About a minute; not in a --quick run. ---
if ((!quick)) && command -v valgrind >/dev/null; then
  echo "=== instructions per operation (callgrind)" >&2
  bench/instructions.sh --build build/release --markdown >"$work/instructions.md" || true
  cat "$work/instructions.md"
fi

if ((results)); then
  {
    cat bench/RESULTS.header.md
    echo
    echo '```'
    cat "$work/table.txt"
    echo '```'
    if [[ -s $work/instructions.md ]]; then
      echo
      echo "## Instructions per operation in this run (callgrind)"
      echo
      cat "$work/instructions.md"
    fi
  } >bench/RESULTS.md
  echo "bench: wrote bench/RESULTS.md" >&2
fi

if ((gbench)); then
  for bench in kernel_bench message_bench; do
    [[ -x $B/$bench ]] && { echo "=== $bench"; "$B/$bench"; }
  done
fi
