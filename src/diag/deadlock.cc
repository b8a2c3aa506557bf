// The deadlock detector (apartments/diagnostics.h).
//
// Hook placement. The kernel wait engine calls Check() on a thread that is
// about to sleep in an untimed wait, right after publishing its wait record.
// A cycle closes exactly when its last thread blocks, so checking there finds
// it at once, without a polling thread and without latency; the thread that
// closes it is the one that sees it (or, when several close it at once, at
// least one of them: each publishes before it looks, under the kernel lock).
// A periodic scan would instead cost a whole-process walk per period and find
// cycles late. When detection is off the hook is not installed at all.
//
// Zero false positives. The chain is read hop by hop, so it may mix instants;
// before reporting, WaitCycleStillHolds re-checks every hop at one instant
// under the kernel lock: the same wait (by id), unsatisfied, the same edge.
// Which edges block (EdgeBlocks) depends only on the waits' immutable fields,
// which the ids pin down.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <iterator>
#include <utility>

#include "apartments/diagnostics.h"
#include "base/thread_state.h"
#include "base/explain.h"
#include "diag/default_diagnostics.h"
#include "diag/wait_graph.h"
#include "kernel/kernel.h"

namespace apartments {
namespace {

using internal::ChainHop;

// Cycles already reported, each as its sorted (tid, wait id) pairs. Bounded:
// a cycle's waits never end, so an evicted one could only be re-reported if
// more than kRemembered other deadlocks were found since.
constexpr std::size_t kRemembered = 256;

struct DetectorState {
  std::mutex mu;
  std::function<void(const DeadlockReport&)> callback;           // Guarded by mu.
  std::deque<std::vector<std::pair<DWORD, std::uint64_t>>> reported;  // Guarded by mu.
};

DetectorState& State() {
  static auto* state = new DetectorState();
  return *state;
}

std::atomic<DeadlockMode> g_mode{DeadlockMode::kIgnore};

}  // namespace

namespace internal {

// Reports the cycle `chain` (whose thread-to-thread edges are `hops`) unless
// its set of waits was reported already. Runs on the thread that closed it
// (the block hook) or on the watchdog's (the scan).
bool ReportCycle(WaitChain chain, const std::vector<ChainHop>& hops, const CycleFinding& finding) {
  const DWORD self = internal::CurrentThreadId();
  std::vector<std::pair<DWORD, std::uint64_t>> key;
  for (const ChainHop& hop : hops) key.emplace_back(hop.tid, hop.wait_id);
  std::sort(key.begin(), key.end());
  std::function<void(const DeadlockReport&)> callback;
  {
    DetectorState& state = State();
    std::lock_guard lock(state.mu);
    if (std::find(state.reported.begin(), state.reported.end(), key) != state.reported.end()) {
      return false;
    }
    state.reported.push_back(std::move(key));
    if (state.reported.size() > kRemembered) state.reported.pop_front();
    callback = state.callback;
  }

  DeadlockReport report;
  for (const ChainHop& hop : hops) report.threads.push_back(hop.tid);
  report.detected_at = internal::GuardedNow();
  const std::string count = std::to_string(report.threads.size());
  if (finding.definite) {
    report.text = "Deadlock: " + count +
                  " threads wait on each other and none of the waits can end:\n";
  } else {
    report.text = "Deadlock while it lasts: " + count + " threads have waited on each other for " +
                  internal::FormatDuration(finding.lasted) + " (past the cycle threshold).";
    if (finding.timed) {
      report.text += " A wait in the cycle has a timeout, so it may resolve by timeout,"
                     " but until then none of these threads makes progress.";
    } else {
      report.text += " A thread in it serves calls while it waits, but is itself handling"
                     " the call the cycle waits on, so its pumping cannot end it.";
    }
    report.text += "\n";
  }
  report.text += FormatWaitChain(chain) + internal::AdviceFor(chain);
  report.chain = std::move(chain);
  // Each thread's stack: the others are asleep in their waits (the capture
  // interrupts them and they sleep again); the wait is bounded.
  for (DWORD tid : report.threads) {
    std::optional<ThreadStack> stack = CaptureThreadStack(tid);
    if (stack && tid == self) {
      // Our own stack starts in this detector: show it from the wait, like
      // the others'.
      auto& frames = stack->frames;
      for (std::size_t i = 0; i < frames.size() && i < 6; ++i) {
        if (frames[i].function.find("WaitForObjects") != std::string::npos) {
          frames.erase(frames.begin(), frames.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      }
    }
    report.text += "Stack of thread " + std::to_string(tid) +
                   (stack ? ":\n" + FormatStack(*stack) : std::string(": unavailable.\n"));
    if (stack) report.stacks.push_back(std::move(*stack));
  }
  if (callback) {
    callback(report);
  } else {
    std::string fields = "\"definite\":" + std::string(finding.definite ? "true" : "false") +
                         ",\"may_resolve_by_timeout\":" + (finding.timed ? "true" : "false") +
                         ",\"threads\":[";
    for (std::size_t i = 0; i < report.threads.size(); ++i) {
      fields += (i > 0 ? "," : "") + std::to_string(report.threads[i]);
    }
    fields += "],\"chain\":" + ToJson(report.chain);
    internal::EmitReport("deadlock", report.text, fields);
  }
  return true;
}

}  // namespace internal

namespace {

using internal::CycleFinding;
using internal::ReportCycle;

// Whether the waits, followed from this thread hop by hop (NextWaitHopTid:
// no names, no text, no allocation), come back to it. Almost every chain
// ends at the first or second hop (the thread waited for is running, or idle
// in its message loop), so this is what an ordinary wait pays: one or two
// short kernel-lock reads. Only a chain that comes back is built in full.
bool MayCloseCycle(DWORD self) {
  DWORD seen[16];
  std::size_t count = 0;
  DWORD current = self;
  for (;;) {
    const DWORD next = internal::NextWaitHopTid(current);
    if (next == 0) return false;
    if (next == self) return true;
    if (std::find(seen, seen + count, next) != seen + count) return false;  // Not through us.
    if (count == std::size(seen)) return true;  // Long chain: let the full walk decide.
    seen[count++] = next;
    current = next;
  }
}

void Check() {
  const DWORD self = internal::CurrentThreadId();
  if (!MayCloseCycle(self)) return;
  std::vector<ChainHop> hops;
  WaitChain chain = internal::BuildWaitChain(self, &hops);
  // Only cycles through this thread: any other was checked when it closed.
  if (!chain.is_cycle || !chain.is_deadlock || chain.cycle_begin != 0) return;
  if (!internal::WaitCycleStillHolds(hops.data(), hops.size())) return;
  if (ReportCycle(std::move(chain), hops, CycleFinding{.definite = true}) &&
      g_mode.load(std::memory_order_relaxed) == DeadlockMode::kAbort) {
    std::abort();
  }
}

}  // namespace

void SetDeadlockMode(DeadlockMode mode) {
  g_mode.store(mode, std::memory_order_relaxed);
  internal::SetBlockHookForDiagnostics(mode == DeadlockMode::kIgnore ? nullptr : &Check);
}

DeadlockMode GetDeadlockMode() { return g_mode.load(std::memory_order_relaxed); }

void SetDeadlockCallback(std::function<void(const DeadlockReport&)> callback) {
  DetectorState& state = State();
  std::lock_guard lock(state.mu);
  state.callback = std::move(callback);
}

}  // namespace apartments
