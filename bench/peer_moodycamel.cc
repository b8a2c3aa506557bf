// Peer: moodycamel::BlockingConcurrentQueue, a blocking lock-free queue, for
// posting throughput (items the size of a MSG's payload).
#include <memory>

#include "harness.h"
#include "workloads.h"

#if PEER_AVAILABLE
#include <concurrentqueue/blockingconcurrentqueue.h>

namespace bench {
namespace {

class MoodycamelPosts {
 public:
  template <typename OnMarker>
  void Consume(Signal& ready, OnMarker on_marker) {
    ready.Notify();
    for (;;) {
      Item item;
      queue_.wait_dequeue(item);
      if (item.kind == kStop) return;
      if (item.kind == kMarker) on_marker();
    }
  }
  void Post(std::int64_t i) { queue_.enqueue(Item{kMessage, static_cast<std::uintptr_t>(i), 0}); }
  void PostMarker() { queue_.enqueue(Item{kMarker, 0, 0}); }
  void PostStop() { queue_.enqueue(Item{kStop, 0, 0}); }

 private:
  enum Kind : unsigned { kMessage, kMarker, kStop };
  struct Item {
    unsigned kind;
    std::uintptr_t wparam;
    std::intptr_t lparam;
  };
  moodycamel::BlockingConcurrentQueue<Item> queue_;
};

}  // namespace
}  // namespace bench
#endif  // PEER_AVAILABLE

int main(int argc, char** argv) {
  using namespace bench;
  const char* kPost = "peer:moodycamel BlockingConcurrentQueue";
#if PEER_AVAILABLE
  RegisterPosting(kPost, [] { return std::make_unique<MoodycamelPosts>(); });
#else
  for (const char* group : {"post1", "post2"}) {
    RegisterSkipped(group, kPost, {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned},
                    "skipped: not installed (libconcurrentqueue-dev)");
  }
#endif
  return RunCases(argc, argv);
}
