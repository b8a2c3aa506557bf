// apartments/clock.h
//
// The clock behind everything time-dependent in diagnostics: wait records'
// "since", queue "last pumped" stamps, the hang watchdog. Tests install a
// FakeClock and advance it instead of sleeping.
//
// Kernel waits with a timeout (WaitForSingleObject(h, 100)) always use the
// real monotonic clock: a fake clock cannot make the kernel sleep less.
#ifndef APARTMENTS_CLOCK_H_
#define APARTMENTS_CLOCK_H_

#include <atomic>
#include <chrono>

namespace apartments {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  // Thread safety: any thread. Never blocks.
  virtual TimePoint Now() const noexcept = 0;
};

// The process's clock: the system's steady clock unless a test installed another.
// Thread safety: any thread.
const Clock& GetClock() noexcept;

// Installs `clock` as the process's clock (nullptr restores the system clock).
// `clock` must outlive its installation. Meant for tests; readers see either the
// old or the new clock, and readers through internal::GuardedNow() are done
// with the old one when this returns.
void SetClockForTesting(const Clock* clock) noexcept;

namespace internal {
// Deadline waiters (a cross-apartment call with a deadline) register here to
// be woken when a test advances its clock, so they never poll a fake clock.
// `fn(context)` runs on the advancing thread, under an internal lock: it must
// be short and must not register or unregister. Any thread.
void AddClockListener(void (*fn)(void*), void* context);
void RemoveClockListener(void (*fn)(void*), void* context);
// Runs the listeners (FakeClock::Advance calls it after moving the time).
void NotifyClockAdvanced() noexcept;
// GetClock().Now(), but with the system clock only as fine as its last tick
// (1-4 ms) and about ten times cheaper: for stamps the call path takes on
// every message ("last pumped"), where milliseconds are plenty. An installed
// test clock is read exactly. Any thread; never blocks.
Clock::TimePoint CoarseNow() noexcept;
// GetClock().Now() for threads that run beside tests (the default hang
// watchdog and what it calls): SetClockForTesting does not return while such
// a read of the clock it replaced is in progress, so a test may destroy its
// FakeClock after uninstalling it. Any thread; never blocks.
Clock::TimePoint GuardedNow() noexcept;
}  // namespace internal

// A manually advanced clock. Starts at an arbitrary fixed point, far (1000
// hours) from a default-constructed TimePoint, which callers use as "never".
// Thread safety: Now() and Advance() from any thread.
class FakeClock final : public Clock {
 public:
  FakeClock() noexcept
      : now_(std::chrono::duration_cast<Duration>(std::chrono::hours(1000)).count()) {}
  TimePoint Now() const noexcept override {
    return TimePoint(Duration(now_.load(std::memory_order_acquire)));
  }
  // Moves the time forward and wakes deadline waiters (internal::
  // NotifyClockAdvanced), which re-read Now() and see the new time.
  void Advance(Duration by) noexcept {
    now_.fetch_add(by.count(), std::memory_order_acq_rel);
    internal::NotifyClockAdvanced();
  }

 private:
  std::atomic<Duration::rep> now_;
};

// RAII installation of a clock for the duration of a test scope.
class ScopedClockForTesting {
 public:
  explicit ScopedClockForTesting(const Clock* clock) noexcept { SetClockForTesting(clock); }
  ~ScopedClockForTesting() { SetClockForTesting(nullptr); }
  ScopedClockForTesting(const ScopedClockForTesting&) = delete;
  ScopedClockForTesting& operator=(const ScopedClockForTesting&) = delete;
};

}  // namespace apartments

#endif  // APARTMENTS_CLOCK_H_
