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

// "STA 3" etc. for a ThreadState::apartment_tag; "" for 0.
std::string ApartmentLabel(std::uint64_t tag);
// The apartment label of thread `tid` ("" when none or unknown).
std::string ApartmentOfThread(DWORD tid);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_DIAG_WAIT_GRAPH_H_
