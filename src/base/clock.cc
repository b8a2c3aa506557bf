#include "apartments/clock.h"

#include <sched.h>
#include <time.h>

#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

namespace apartments {
namespace {

class SystemClock final : public Clock {
 public:
  TimePoint Now() const noexcept override { return std::chrono::steady_clock::now(); }
};

// Never destroyed: threads of the runtime (the hang watchdog, MTA workers,
// apartments still running) may read the clock while the process exits, after
// static destructors ran (a destroyed SystemClock's vptr is Clock's: UBSan's
// "invalid vptr", or a pure virtual call). Constant-initialized, so it is
// usable from any static initializer too.
union ImmortalSystemClock {
  constexpr ImmortalSystemClock() : clock() {}
  ~ImmortalSystemClock() {}  // Leaves `clock` alone.
  SystemClock clock;
};
constinit ImmortalSystemClock g_system_clock;
constexpr const SystemClock& kSystemClock = g_system_clock.clock;
std::atomic<const Clock*> g_clock{&kSystemClock};
// Threads inside GuardedNow() with a test clock. SetClockForTesting waits for
// it to drop to zero, so that a clock it replaced is no longer being read
// when it returns (and the test may destroy it).
std::atomic<int> g_guarded_readers{0};

std::mutex g_listeners_mu;
std::vector<std::pair<void (*)(void*), void*>>& Listeners() {
  static auto* listeners = new std::vector<std::pair<void (*)(void*), void*>>();
  return *listeners;
}

}  // namespace

namespace internal {

void AddClockListener(void (*fn)(void*), void* context) {
  std::lock_guard lock(g_listeners_mu);
  Listeners().emplace_back(fn, context);
}

void RemoveClockListener(void (*fn)(void*), void* context) {
  std::lock_guard lock(g_listeners_mu);
  auto& listeners = Listeners();
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    if (listeners[i].first == fn && listeners[i].second == context) {
      listeners.erase(listeners.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

void NotifyClockAdvanced() noexcept {
  // Under the lock, so that a listener removed by RemoveClockListener is
  // never called after it returns (its context may be freed then).
  std::lock_guard lock(g_listeners_mu);
  for (auto& [fn, context] : Listeners()) fn(context);
}

Clock::TimePoint GuardedNow() noexcept {
  const Clock* clock = g_clock.load(std::memory_order_acquire);
  if (__builtin_expect(clock == &kSystemClock, 1)) return kSystemClock.Now();
  // Race-free with SetClockForTesting (all seq_cst): if our load below still
  // sees the old clock, it precedes the writer's store, so our increment does
  // too, and the writer's wait sees it until we are done with that clock.
  g_guarded_readers.fetch_add(1, std::memory_order_seq_cst);
  clock = g_clock.load(std::memory_order_seq_cst);
  const Clock::TimePoint now = clock->Now();
  g_guarded_readers.fetch_sub(1, std::memory_order_seq_cst);
  return now;
}

Clock::TimePoint CoarseNow() noexcept {
  const Clock* clock = g_clock.load(std::memory_order_acquire);
  if (__builtin_expect(clock != &kSystemClock, 0)) return clock->Now();
  // The same clock as steady_clock (CLOCK_MONOTONIC), as of the last tick:
  // read from the vDSO's data page, no TSC read.
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return Clock::TimePoint(std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec));
}

}  // namespace internal

const Clock& GetClock() noexcept { return *g_clock.load(std::memory_order_acquire); }

void SetClockForTesting(const Clock* clock) noexcept {
  g_clock.store(clock != nullptr ? clock : &kSystemClock, std::memory_order_seq_cst);
  // A background reader (the default hang watchdog) may still be inside the
  // replaced clock's Now(): wait until it is out (see GuardedNow).
  while (g_guarded_readers.load(std::memory_order_seq_cst) != 0) sched_yield();
}

}  // namespace apartments
