// COM channel benchmarks: a synchronous cross-apartment call (InvokeInApartment
// returning v + 1) against a raw futex ping-pong (the floor), per vCPU
// placement: STA -> STA (the target pumps GetMessageW/DispatchMessageW, the
// caller waits in the modal loop), MTA -> STA, and STA -> MTA (the call runs
// on an MTA worker; workers are not pinned, so only "unpinned" is measured).
//
// Run: build/release/bench/com_bench  (see bench/README.md)
#include <memory>

#include "apartments/win32.h"
#include "bench_util.h"
#include "com/apartment.h"

namespace apartments::bench {
namespace {

using apartments::internal::ApartmentRef;
using apartments::internal::CurrentApartment;
using apartments::internal::InvokeInApartment;

constexpr int kRepetitions = 12;

void FutexPingPong(benchmark::State& state, Placement placement) {
  std::atomic<std::uint32_t> ping{0}, pong{0};
  std::atomic<bool> stop{false};
  {
    PinnedPartner partner(placement, [&] {
      for (;;) {
        FutexWaitWhile(ping, 0);
        ping.store(0, std::memory_order_relaxed);
        if (stop.load(std::memory_order_acquire)) break;
        pong.store(1, std::memory_order_release);
        FutexWakeOne(pong);
      }
    });
    for (auto _ : state) {
      ping.store(1, std::memory_order_release);
      FutexWakeOne(ping);
      FutexWaitWhile(pong, 0);
      pong.store(0, std::memory_order_relaxed);
    }
    stop.store(true, std::memory_order_release);
    ping.store(1, std::memory_order_release);
    FutexWakeOne(ping);
  }
}

// Calls `target` with v + 1 from the benchmark thread, initialized in
// `caller_model` (COINIT_*), until the state says stop.
void CallLoop(benchmark::State& state, const ApartmentRef& target, DWORD caller_model) {
  CoInitializeEx(nullptr, caller_model);
  int v = 0;
  for (auto _ : state) {
    HRESULT hr = InvokeInApartment(target, [&v] {
      v = v + 1;
      return S_OK;
    });
    if (hr != S_OK) {
      state.SkipWithError("call failed");
      break;
    }
  }
  benchmark::DoNotOptimize(v);
  CoUninitialize();
}

// The partner: an STA pumping messages until WM_QUIT.
void ComIntoSta(benchmark::State& state, Placement placement, DWORD caller_model) {
  std::atomic<DWORD> tid{0};
  std::shared_ptr<ApartmentRef> target = std::make_shared<ApartmentRef>();
  std::atomic<bool> ready{false};
  {
    PinnedPartner partner(placement, [&] {
      CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
      *target = CurrentApartment();
      MSG msg;
      PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
      tid.store(GetCurrentThreadId(), std::memory_order_relaxed);
      ready.store(true, std::memory_order_release);
      while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
      CoUninitialize();
    });
    while (!ready.load(std::memory_order_acquire)) std::this_thread::yield();
    CallLoop(state, *target, caller_model);
    PostThreadMessageW(tid.load(), WM_QUIT, 0, 0);
  }
}

void StaToSta(benchmark::State& state, Placement placement) {
  ComIntoSta(state, placement, COINIT_APARTMENTTHREADED);
}

void MtaToSta(benchmark::State& state, Placement placement) {
  ComIntoSta(state, placement, COINIT_MULTITHREADED);
}

void StaToMta(benchmark::State& state) {
  CO_MTA_USAGE_COOKIE cookie;
  CoIncrementMTAUsage(&cookie);
  ApartmentRef mta = CurrentApartment();  // The implicit MTA.
  CallLoop(state, mta, COINIT_APARTMENTTHREADED);
  CoDecrementMTAUsage(cookie);
}

std::string FloorOf(const std::string& name) {
  auto slash = name.find('/');
  std::string workload = name.substr(0, slash);
  std::string rest = slash == std::string::npos ? "" : name.substr(slash);
  if (workload.rfind("com_", 0) == 0) return "futex_pingpong" + rest;
  return "";
}

void Register() {
  for (Placement p : {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned}) {
    std::string suffix = std::string("/") + PlacementName(p);
    for (auto [name, fn] : {std::pair{"futex_pingpong", &FutexPingPong},
                            std::pair{"com_sta_to_sta", &StaToSta},
                            std::pair{"com_mta_to_sta", &MtaToSta}}) {
      auto* b = benchmark::RegisterBenchmark((name + suffix).c_str(), fn, p);
      b->UseRealTime()->Repetitions(kRepetitions)->ReportAggregatesOnly(true)->MinTime(0.05);
      AddSpreadStatistics(b);
    }
  }
  auto* b = benchmark::RegisterBenchmark("com_sta_to_mta/unpinned", &StaToMta);
  b->UseRealTime()->Repetitions(kRepetitions)->ReportAggregatesOnly(true)->MinTime(0.05);
  AddSpreadStatistics(b);
}

}  // namespace
}  // namespace apartments::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  apartments::bench::Register();
  apartments::bench::RatioReporter reporter(&apartments::bench::FloorOf);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
