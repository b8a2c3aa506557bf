// The suite's workload shapes, written once and filled in by each
// implementation (ours, the floors, every peer, and the Win32 source built for
// Wine): a synchronous round trip returning v + 1, and one-way posting
// throughput with one or two producers.
#ifndef APARTMENTS_BENCH_WORKLOADS_H_
#define APARTMENTS_BENCH_WORKLOADS_H_

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "harness.h"

namespace bench {

// A round trip: `serve(ready)` runs on the partner thread (pinned per
// `placement`), calls ready.Notify() once it can take calls, and returns when
// `stop()` (called on the measuring thread after the runs) tells it to.
// `call(v)` runs on the measuring thread and must return v + 1 (checked).
template <typename Serve, typename Call, typename Stop>
void RoundTrip(Runner& runner, Placement placement, Serve serve, Call call, Stop stop) {
  PinMain(placement);
  Signal ready;
  std::thread partner([&] {
    PinPartner(placement);
    serve(ready);
  });
  ready.Wait();
  long long v = 0;
  runner.Run([&](std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
      long long next = call(v);
      if (next != v + 1) {
        std::fprintf(stderr, "round trip returned %lld for %lld\n", next, v);
        std::abort();
      }
      v = next;
    }
  });
  stop();
  partner.join();
}

// One-way posting. The implementation provides, as members of `impl`:
//   void Consume(Signal& ready, OnMarker on_marker)  on the consumer thread:
//       sets up, ready.Notify(), then takes messages until the stop message,
//       calling on_marker() for each marker;
//   void Post(std::int64_t i), void PostMarker(), void PostStop()  on producers
//       (Post retries, yielding, while the queue is full).
// `producers` threads post n messages in all per batch, then one marker each;
// the batch ends when the consumer has seen every marker. Placement: the
// producers share the measuring thread's CPU; the consumer gets the partner's.
template <typename Impl>
void PostThroughput(Runner& runner, Placement placement, int producers, Impl& impl) {
  auto [main_cpu, partner_cpu] = CpusFor(placement);
  PinCurrentThread(main_cpu);
  Signal ready, batch_done;
  std::thread consumer([&, partner_cpu = partner_cpu] {
    PinCurrentThread(partner_cpu);
    int markers = 0;  // Touched by the consumer thread only.
    impl.Consume(ready, [&] {
      if (++markers == producers) {
        markers = 0;
        batch_done.Notify();
      }
    });
  });
  ready.Wait();
  {
    Helpers helpers(producers - 1, main_cpu, [&](std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) impl.Post(i);
      impl.PostMarker();
    });
    runner.Run([&](std::int64_t n) {
      const std::int64_t share = n / producers;
      if (producers > 1) helpers.Start(share);
      for (std::int64_t i = 0; i < n - share * (producers - 1); ++i) impl.Post(i);
      impl.PostMarker();
      batch_done.Wait();
      if (producers > 1) helpers.WaitDone();
    });
  }
  impl.PostStop();
  consumer.join();
}

// Registers a posting case for 1 and 2 producers under every placement;
// `make()` returns a fresh implementation object for each run.
template <typename Make>
void RegisterPosting(const std::string& impl_name, Make make) {
  for (int producers : {1, 2}) {
    RegisterAllPlacements(producers == 1 ? "post1" : "post2", impl_name,
                          [make, producers](Runner& r, Placement p) {
                            auto impl = make();
                            PostThroughput(r, p, producers, *impl);
                          });
  }
}

}  // namespace bench

#endif  // APARTMENTS_BENCH_WORKLOADS_H_
