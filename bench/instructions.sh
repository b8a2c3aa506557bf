#!/usr/bin/env bash
# Figures that do not move with the host: instructions, branches, branch
# mispredictions and cache misses per operation, for each call path and for the
# floors and peers beside it.
#
# Each case runs twice under callgrind (valgrind's instruction-level simulator),
# for --ops=LOW and --ops=HIGH operations, in probe mode (harness.h: one case,
# exactly that many operations, no calibration). The difference of the two runs,
# divided by HIGH-LOW, is the cost of one operation with start-up and tear-down
# cancelled out, for all of the process's threads together (a round trip counts
# the caller's and the callee's side). Instruction and branch counts are exact
# and repeat run to run; misses come from callgrind's cache and branch-predictor
# simulation of a generic CPU, so they compare paths with each other, not with
# this host's hardware counters.
#
# Under valgrind the threads run one at a time, as if on one vCPU, so the figures
# are those of the same-vCPU placement. `sched_getcpu` and `clock_gettime` take
# their slow paths under valgrind (no vDSO): a path that calls them is charged a
# few hundred instructions more than it costs natively.
#
# Usage: bench/instructions.sh [--build DIR] [--low N] [--high N] [--markdown]
#                               [--filter TEXT]
#   DIR defaults to build/release (scripts/bench.sh builds it; so does
#   `cmake --preset release && cmake --build --preset release`).
#   --markdown prints the table as Markdown (for bench/RESULTS.md).
#   --filter runs only the cases whose probe name contains TEXT.
# The first line names the CPU model (lscpu's "Model name", family and model)
# and the date: callgrind's counts do not depend on the CPU, but the
# library's choices can (e.g. which CPU a thread runs on), and RESULTS.md
# keeps a section per CPU model.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/release low=2000 high=12000 markdown=0 filter=
while (($#)); do
  case "$1" in
    --build) build="$2"; shift ;;
    --low) low="$2"; shift ;;
    --high) high="$2"; shift ;;
    --markdown) markdown=1 ;;
    --filter) filter="$2"; shift ;;
    *) echo "instructions: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "instructions: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
((high > low)) || { echo "instructions: --high must exceed --low" >&2; exit 2; }

B="$build/bench"
# binary <TAB> probe (group/placement/implementation, as `BINARY --list` prints).
cases=(
  "floors_bench	roundtrip/same_cpu/floor:futex ping-pong"
  "floors_bench	roundtrip/same_cpu/peer:std mutex+condvar+promise"
  "com_bench	roundtrip/same_cpu/ours:COM STA->STA (IAdder proxy)"
  "com_bench	roundtrip/same_cpu/ours:COM MTA->STA (IAdder proxy)"
  "com_bench	roundtrip/same_cpu/ours:COM STA->MTA (IAdder proxy)"
  "com_bench	roundtrip/same_cpu/ours:Apartment::Call (modern)"
  "win32_bench	roundtrip/same_cpu/ours:event ping-pong"
  "win32_bench	roundtrip/same_cpu/ours:SendMessageW"
  "peer_asio	roundtrip/same_cpu/peer:Boost.Asio post+promise"
  "peer_kj	roundtrip/same_cpu/peer:KJ Executor::executeSync"
  "peer_qt	roundtrip/same_cpu/peer:Qt invokeMethod BlockingQueued"
  "peer_winpr	roundtrip/same_cpu/peer:WinPR events (manual-reset)"
  "floors_bench	post1/same_cpu/floor:mutex+condvar deque"
  "win32_bench	post1/same_cpu/ours:PostThreadMessageW"
  "peer_asio	post1/same_cpu/peer:Boost.Asio post"
  "peer_moodycamel	post1/same_cpu/peer:moodycamel BlockingConcurrentQueue"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints the `totals:` line of a callgrind run of one case for $3 operations.
totals() {
  local binary="$1" probe="$2" ops="$3" out="$work/cg.out"
  valgrind --tool=callgrind --branch-sim=yes --cache-sim=yes --callgrind-out-file="$out" \
    "$B/$binary" "--probe=$probe" "--ops=$ops" >/dev/null 2>"$work/valgrind.log" || {
    echo "instructions: $binary $probe failed under valgrind:" >&2
    tail -5 "$work/valgrind.log" >&2
    return 1
  }
  grep '^totals:' "$out"
}

cpu=$(lscpu 2>/dev/null | awk -F: '
  /^Model name/ { gsub(/^ +/, "", $2); name = $2 }
  /^CPU family/ { gsub(/^ +/, "", $2); family = $2 }
  /^Model:/ { gsub(/^ +/, "", $2); model = $2 }
  END { printf "%s (family %s, model %s)", name, family, model }')
about="$(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $(nproc) CPUs; per operation: callgrind, the difference of $high and $low operations"
if ((markdown)); then
  echo "$about."
  echo
  echo "| case | instructions | branches | mispredicted | L1 misses (I+D) | LL misses |"
  echo "|---|---:|---:|---:|---:|---:|"
else
  echo "# $about"
  printf '%-62s %12s %9s %9s %9s %9s\n' "case (per operation)" instructions branches mispred "L1 miss" "LL miss"
fi
for entry in "${cases[@]}"; do
  binary="${entry%%	*}" probe="${entry#*	}"
  [[ -z $filter || $probe == *"$filter"* ]] || continue
  if [[ ! -x $B/$binary ]]; then
    echo "instructions: skipped $probe: $B/$binary was not built (its peer is not installed)" >&2
    continue
  fi
  if ! "$B/$binary" --list 2>/dev/null | grep -qxF "$probe"; then
    echo "instructions: skipped $probe: $binary does not offer it" >&2
    continue
  fi
  # A peer built without its library answers every probe with a SKIP line.
  if skip=$("$B/$binary" "--probe=$probe" --ops=1 | grep '^SKIP'); then
    echo "instructions: skipped $probe: ${skip##*	}" >&2
    continue
  fi
  t_low=$(totals "$binary" "$probe" "$low") || continue
  t_high=$(totals "$binary" "$probe" "$high") || continue
  # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
  awk -v lo="$t_low" -v hi="$t_high" -v n=$((high - low)) -v name="$probe" -v md="$markdown" '
    BEGIN {
      split(lo, a, " "); split(hi, b, " ")
      # A count that does not grow with the operations (a miss that only
      # start-up pays) can differ by a few between runs: show it as 0.
      for (i = 2; i <= 14; i++) { d[i - 1] = (b[i] - a[i]) / n; if (d[i - 1] < 0) d[i - 1] = 0 }
      ir = d[1]; l1 = d[4] + d[5] + d[6]; ll = d[7] + d[8] + d[9]
      br = d[10] + d[12]; bm = d[11] + d[13]
      if (md) printf "| %s | %.0f | %.0f | %.1f | %.1f | %.1f |\n", name, ir, br, bm, l1, ll
      else printf "%-62s %12.0f %9.0f %9.1f %9.1f %9.1f\n", name, ir, br, bm, l1, ll
    }'
done
