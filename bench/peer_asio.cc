// Peer: Boost.Asio. A call is asio::post() of a handler to an io_context run
// by the partner thread, answered through a std::promise; posting throughput
// is asio::post() of empty handlers.
#include <memory>
#include <string>

#include "harness.h"
#include "workloads.h"

#if PEER_AVAILABLE
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <future>

namespace bench {
namespace {

namespace asio = boost::asio;

void AsioCall(Runner& r, Placement p) {
  asio::io_context context;
  auto work = asio::make_work_guard(context);
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        ready.Notify();
        context.run();
      },
      [&](long long v) {
        std::promise<long long> result;
        std::future<long long> f = result.get_future();
        asio::post(context, [&result, v] { result.set_value(v + 1); });
        return f.get();
      },
      [&] { work.reset(); });
}

class AsioPosts {
 public:
  AsioPosts() : work_(asio::make_work_guard(context_)) {}
  template <typename OnMarker>
  void Consume(Signal& ready, OnMarker on_marker) {
    on_marker_ = on_marker;
    ready.Notify();
    context_.run();
  }
  void Post(std::int64_t i) {
    asio::post(context_, [this, i] { sink_ += i; });
  }
  void PostMarker() {
    asio::post(context_, [this] { on_marker_(); });
  }
  void PostStop() {
    asio::post(context_, [this] { work_.reset(); });
  }

 private:
  asio::io_context context_{1};  // concurrency hint 1: one thread runs it.
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::function<void()> on_marker_;
  std::int64_t sink_ = 0;  // Consumer thread only.
};

}  // namespace
}  // namespace bench
#endif  // PEER_AVAILABLE

int main(int argc, char** argv) {
  using namespace bench;
  const char* kCall = "peer:Boost.Asio post+promise";
  const char* kPost = "peer:Boost.Asio post";
#if PEER_AVAILABLE
  RegisterAllPlacements("roundtrip", kCall, AsioCall);
  RegisterPosting(kPost, [] { return std::make_unique<AsioPosts>(); });
#else
  for (const char* group : {"roundtrip", "post1", "post2"}) {
    RegisterSkipped(group, group == std::string("roundtrip") ? kCall : kPost,
                    {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned},
                    "skipped: not installed (libboost-dev)");
  }
#endif
  return RunCases(argc, argv);
}
