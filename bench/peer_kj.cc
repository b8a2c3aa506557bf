// Peer: Cap'n Proto's KJ. The partner thread runs a kj::EventLoop; the caller
// uses its kj::Executor::executeSync() to run `v + 1` there and wait.
#include <string>

#include "harness.h"
#include "workloads.h"

#if PEER_AVAILABLE
#include <kj/async.h>
#include <kj/mutex.h>

namespace bench {
namespace {

void KjCall(Runner& r, Placement p) {
  const kj::Executor* executor = nullptr;  // Set by the partner before ready.
  kj::Own<kj::PromiseFulfiller<void>> stop_fulfiller;  // Partner thread only.
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        kj::EventLoop loop;
        kj::WaitScope wait_scope(loop);
        auto paf = kj::newPromiseAndFulfiller<void>();
        stop_fulfiller = kj::mv(paf.fulfiller);
        executor = &kj::getCurrentThreadExecutor();
        ready.Notify();
        paf.promise.wait(wait_scope);
        stop_fulfiller = nullptr;
      },
      [&](long long v) { return executor->executeSync([v] { return v + 1; }); },
      [&] { executor->executeSync([&] { stop_fulfiller->fulfill(); }); });
}

}  // namespace
}  // namespace bench
#endif  // PEER_AVAILABLE

int main(int argc, char** argv) {
  using namespace bench;
  const char* kCall = "peer:KJ Executor::executeSync";
#if PEER_AVAILABLE
  RegisterAllPlacements("roundtrip", kCall, KjCall);
#else
  RegisterSkipped("roundtrip", kCall, {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned},
                  "skipped: not installed (libcapnp-dev)");
#endif
  return RunCases(argc, argv);
}
