// Benchmarks of the message layer, each against its peer in the same run:
//   - PostThreadMessageW throughput (1 producer -> 1 consumer in GetMessageW,
//     quota accounting included) vs a mutex + condition variable deque;
//   - cross-thread SendMessageW round trip vs a raw futex ping-pong, with both
//     threads pinned to one CPU and to two different CPUs.
// After the runs, prints the ratios the performance targets are stated in.
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "apartments/win32.h"

namespace {

constexpr int kBatch = 200000;

std::mutex g_results_mu;
std::map<std::string, double> g_ns_per_op;  // Guarded by g_results_mu.

void Record(const std::string& name, double ns_per_op) {
  std::lock_guard lock(g_results_mu);
  g_ns_per_op[name] = ns_per_op;
}

// Pins the calling thread to `cpu` (-1: leave it). Returns false when the
// CPU is not available.
bool Pin(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

void Unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// --- Posting throughput -----------------------------------------------------

void BM_PostThreadMessage(benchmark::State& state) {
  HANDLE ready = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  HANDLE batch_done = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  std::atomic<DWORD> consumer_tid{0};
  std::thread consumer([&] {
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    consumer_tid.store(GetCurrentThreadId());
    SetEvent(ready);
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) {
      if (msg.message == WM_APP) SetEvent(batch_done);
    }
  });
  WaitForSingleObject(ready, INFINITE);
  const DWORD tid = consumer_tid.load();
  std::uint64_t quota_retries = 0;
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      while (!PostThreadMessageW(tid, WM_USER, static_cast<WPARAM>(i), 0)) {
        ++quota_retries;
        sched_yield();  // Queue full: let the consumer drain it.
      }
    }
    while (!PostThreadMessageW(tid, WM_APP, 0, 0)) sched_yield();
    WaitForSingleObject(batch_done, INFINITE);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  PostThreadMessageW(tid, WM_QUIT, 0, 0);
  consumer.join();
  CloseHandle(ready);
  CloseHandle(batch_done);
  const double items = static_cast<double>(state.iterations()) * kBatch;
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["quota_retries"] = static_cast<double>(quota_retries);
  Record("post", std::chrono::duration<double, std::nano>(elapsed).count() / items);
}
BENCHMARK(BM_PostThreadMessage)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

// The peer: a deque guarded by a mutex, consumer woken by a condvar.
void BM_MutexCondvarDeque(benchmark::State& state) {
  struct Item {
    unsigned message;
    std::uintptr_t wparam;
    std::intptr_t lparam;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread consumer([&] {
    for (;;) {
      Item item;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !queue.empty(); });
        item = queue.front();
        queue.pop_front();
      }
      if (item.message == WM_QUIT) return;
      if (item.message == WM_APP) {
        std::lock_guard lock(done_mu);
        done = true;
        done_cv.notify_one();
      }
    }
  });
  auto push = [&](unsigned message, std::uintptr_t wparam) {
    {
      std::lock_guard lock(mu);
      queue.push_back(Item{message, wparam, 0});
    }
    cv.notify_one();
  };
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) push(WM_USER, static_cast<std::uintptr_t>(i));
    push(WM_APP, 0);
    std::unique_lock lock(done_mu);
    done_cv.wait(lock, [&] { return done; });
    done = false;
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  push(WM_QUIT, 0);
  consumer.join();
  const double items = static_cast<double>(state.iterations()) * kBatch;
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  Record("deque", std::chrono::duration<double, std::nano>(elapsed).count() / items);
}
BENCHMARK(BM_MutexCondvarDeque)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

// --- Round trips ------------------------------------------------------------

LRESULT CALLBACK EchoProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  if (message == WM_USER) return static_cast<LRESULT>(wparam + 1);
  return DefWindowProcW(hwnd, message, wparam, lparam);
}

// range(0), range(1): the CPUs of the caller and the callee.
void BM_SendMessageRoundTrip(benchmark::State& state) {
  static const ATOM kClass = [] {
    WNDCLASSW wc{};
    wc.lpfnWndProc = &EchoProc;
    wc.lpszClassName = L"MessageBenchEcho";
    return RegisterClassW(&wc);
  }();
  (void)kClass;
  const int caller_cpu = static_cast<int>(state.range(0));
  const int callee_cpu = static_cast<int>(state.range(1));
  if (!Pin(caller_cpu)) {
    state.SkipWithError("cannot pin the caller");
    return;
  }
  HANDLE ready = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  std::atomic<HWND> hwnd{nullptr};
  std::atomic<DWORD> callee_tid{0};
  std::thread callee([&] {
    Pin(callee_cpu);
    hwnd.store(CreateWindowExW(0, L"MessageBenchEcho", L"", 0, 0, 0, 0, 0, HWND_MESSAGE, nullptr,
                               nullptr, nullptr));
    callee_tid.store(GetCurrentThreadId());
    SetEvent(ready);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
    DestroyWindow(hwnd.load());
  });
  WaitForSingleObject(ready, INFINITE);
  HWND target = hwnd.load();
  WPARAM value = 0;
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    value = static_cast<WPARAM>(SendMessageW(target, WM_USER, value, 0));
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  benchmark::DoNotOptimize(value);
  PostThreadMessageW(callee_tid.load(), WM_QUIT, 0, 0);
  callee.join();
  CloseHandle(ready);
  Unpin();
  Record(caller_cpu == callee_cpu ? "send_same_cpu" : "send_two_cpus",
         std::chrono::duration<double, std::nano>(elapsed).count() /
             static_cast<double>(state.iterations()));
}
BENCHMARK(BM_SendMessageRoundTrip)->Args({0, 0})->Args({0, 1})->UseRealTime()->MinTime(1.0);

// The floor: two threads ping-pong through one futex word.
void FutexWait(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}
void FutexWake(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

void BM_FutexRoundTrip(benchmark::State& state) {
  const int caller_cpu = static_cast<int>(state.range(0));
  const int callee_cpu = static_cast<int>(state.range(1));
  if (!Pin(caller_cpu)) {
    state.SkipWithError("cannot pin the caller");
    return;
  }
  // 0: idle, 1: request, 2: reply, 3: stop.
  std::atomic<std::uint32_t> word{0};
  std::thread callee([&] {
    Pin(callee_cpu);
    for (;;) {
      std::uint32_t w = word.load(std::memory_order_acquire);
      if (w == 3) return;
      if (w != 1) {
        FutexWait(&word, w);
        continue;
      }
      word.store(2, std::memory_order_release);
      FutexWake(&word);
    }
  });
  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    word.store(1, std::memory_order_release);
    FutexWake(&word);
    for (std::uint32_t w; (w = word.load(std::memory_order_acquire)) != 2;) FutexWait(&word, w);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  word.store(3, std::memory_order_release);
  FutexWake(&word);
  callee.join();
  Unpin();
  Record(caller_cpu == callee_cpu ? "futex_same_cpu" : "futex_two_cpus",
         std::chrono::duration<double, std::nano>(elapsed).count() /
             static_cast<double>(state.iterations()));
}
BENCHMARK(BM_FutexRoundTrip)->Args({0, 0})->Args({0, 1})->UseRealTime()->MinTime(1.0);

void PrintRatios() {
  std::lock_guard lock(g_results_mu);
  auto get = [](const char* name) {
    auto it = g_ns_per_op.find(name);
    return it == g_ns_per_op.end() ? 0.0 : it->second;
  };
  std::printf("\nRatios (same run):\n");
  if (get("post") > 0 && get("deque") > 0) {
    std::printf("  PostThreadMessageW throughput: %.1f M msg/s, mutex+condvar deque %.1f M msg/s: "
                "%.2fx the deque (target >= 2x)\n",
                1e3 / get("post"), 1e3 / get("deque"), get("deque") / get("post"));
  }
  if (get("send_same_cpu") > 0 && get("futex_same_cpu") > 0) {
    std::printf("  SendMessageW round trip, one CPU: %.2f us vs futex %.2f us: %.2fx (target <= 1.15x)\n",
                get("send_same_cpu") / 1e3, get("futex_same_cpu") / 1e3,
                get("send_same_cpu") / get("futex_same_cpu"));
  }
  if (get("send_two_cpus") > 0 && get("futex_two_cpus") > 0) {
    std::printf("  SendMessageW round trip, two CPUs: %.2f us vs futex %.2f us: %.2fx\n",
                get("send_two_cpus") / 1e3, get("futex_two_cpus") / 1e3,
                get("send_two_cpus") / get("futex_two_cpus"));
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  PrintRatios();
  return 0;
}
