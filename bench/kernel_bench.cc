// Kernel-object benchmarks: event ping-pong against a raw futex ping-pong
// (the floor) and std::mutex + std::condition_variable (a peer), per vCPU
// placement; and the no-syscall fast paths of events against one system call.
//
// Run: build/release/bench/kernel_bench  (see bench/README.md)
#include <condition_variable>
#include <mutex>

#include "apartments/win32.h"
#include "bench_util.h"

namespace apartments::bench {
namespace {

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

void EventPingPong(benchmark::State& state, Placement placement) {
  HANDLE ping = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  HANDLE pong = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  std::atomic<bool> stop{false};
  {
    PinnedPartner partner(placement, [&] {
      for (;;) {
        WaitForSingleObject(ping, INFINITE);
        if (stop.load(std::memory_order_acquire)) break;
        SetEvent(pong);
      }
    });
    for (auto _ : state) {
      SetEvent(ping);
      WaitForSingleObject(pong, INFINITE);
    }
    stop.store(true, std::memory_order_release);
    SetEvent(ping);
  }
  CloseHandle(ping);
  CloseHandle(pong);
}

void CondvarPingPong(benchmark::State& state, Placement placement) {
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;  // 0: main's, 1: partner's, 2: stop. Guarded by mu.
  {
    PinnedPartner partner(placement, [&] {
      std::unique_lock lock(mu);
      for (;;) {
        cv.wait(lock, [&] { return turn != 0; });
        if (turn == 2) break;
        turn = 0;
        cv.notify_one();
      }
    });
    for (auto _ : state) {
      std::unique_lock lock(mu);
      turn = 1;
      cv.notify_one();
      cv.wait(lock, [&] { return turn == 0; });
    }
    std::lock_guard lock(mu);
    turn = 2;
    cv.notify_one();
  }
}

void OneSyscall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(syscall(SYS_getppid));
}

void WaitOnSignaledEvent(benchmark::State& state) {
  HANDLE event = CreateEventW(nullptr, TRUE, TRUE, nullptr);
  for (auto _ : state) benchmark::DoNotOptimize(WaitForSingleObject(event, INFINITE));
  CloseHandle(event);
}

void SetEventNoWaiterThenConsume(benchmark::State& state) {
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  for (auto _ : state) {
    SetEvent(event);
    benchmark::DoNotOptimize(WaitForSingleObject(event, 0));
  }
  CloseHandle(event);
}

std::string FloorOf(const std::string& name) {
  auto slash = name.find('/');
  std::string workload = name.substr(0, slash);
  std::string rest = slash == std::string::npos ? "" : name.substr(slash);
  if (workload == "event_pingpong" || workload == "condvar_pingpong") return "futex_pingpong" + rest;
  if (workload == "wait_signaled_event" || workload == "set_event_no_waiter+consume") {
    return "one_syscall";
  }
  return "";
}

void Register() {
  for (Placement p : {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned}) {
    std::string suffix = std::string("/") + PlacementName(p);
    for (auto [name, fn] : {std::pair{"futex_pingpong", &FutexPingPong},
                            std::pair{"event_pingpong", &EventPingPong},
                            std::pair{"condvar_pingpong", &CondvarPingPong}}) {
      auto* b = benchmark::RegisterBenchmark((name + suffix).c_str(), fn, p);
      b->UseRealTime()->Repetitions(kRepetitions)->ReportAggregatesOnly(true)->MinTime(0.05);
      AddSpreadStatistics(b);
    }
  }
  for (auto [name, fn] : {std::pair{"one_syscall", &OneSyscall},
                          std::pair{"wait_signaled_event", &WaitOnSignaledEvent},
                          std::pair{"set_event_no_waiter+consume", &SetEventNoWaiterThenConsume}}) {
    auto* b = benchmark::RegisterBenchmark(name, fn);
    b->Repetitions(kRepetitions)->ReportAggregatesOnly(true)->MinTime(0.05);
    AddSpreadStatistics(b);
  }
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
