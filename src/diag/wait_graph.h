// The diagnostics layer's internals shared by wait chains and the deadlock
// detector.
#ifndef APARTMENTS_SRC_DIAG_WAIT_GRAPH_H_
#define APARTMENTS_SRC_DIAG_WAIT_GRAPH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "apartments/diagnostics.h"
#include "kernel/kernel.h"

namespace apartments::internal {

using ChainHop = CycleHop;

// Builds the chain from `tid` (see GetWaitChain); when `hops` is not null,
// appends each thread-to-thread edge followed, with the wait it came from.
WaitChain BuildWaitChain(DWORD tid, std::vector<ChainHop>* hops);

// Whether the edge `from` -> `to` (two thread nodes) blocks `from` until `to`
// ends its own wait: false when `from` is timed or `to` serves the request.
bool EdgeBlocks(const WaitNode& from, const WaitNode& to);

// Whether the edge `from` -> `to` could hold `from` for as long as `to`
// waits, ignoring timeouts: EdgeBlocks, or `to` pumps but is itself handling
// a call (`to_dispatch_depth` > 0), which may be the one `from` waits on. The
// watchdog reports such cycles once they have lasted past a threshold.
bool EdgeMayBlock(const WaitNode& from, const WaitNode& to, std::uint32_t to_dispatch_depth);
// The depth of the dispatches thread `tid` is in (base/activity.h); 0 when
// none, unknown, or being changed.
std::uint32_t DispatchDepthOf(DWORD tid);

// One line saying what to do next about the first blocked or busy thread of
// `chain` (or, for a cycle, about the wait that is easiest to change):
// "What to do next: ...\n". `busy` says the chain's thread is running a call.
std::string AdviceFor(const WaitChain& chain, bool busy = false);

// What made a cycle worth reporting.
struct CycleFinding {
  // No wait in it can end (the block hook found it); else it has lasted past
  // the cycle threshold (the watchdog's scan).
  bool definite = false;
  bool timed = false;          // A wait in it has a timeout.
  Clock::Duration lasted{};    // Not definite: how long it has lasted.
};
// Reports the cycle (deadlock.cc: to the deadlock callback, else the default
// report destination) unless its set of waits was reported before; returns
// whether it did. Captures the stacks of its threads (bounded).
bool ReportCycle(WaitChain chain, const std::vector<ChainHop>& hops, const CycleFinding& finding);

// "STA 3" etc. for a ThreadState::apartment_tag; "" for 0.
std::string ApartmentLabel(std::uint64_t tag);
// The apartment label of thread `tid` ("" when none or unknown).
std::string ApartmentOfThread(DWORD tid);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_DIAG_WAIT_GRAPH_H_
