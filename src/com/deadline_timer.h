// Deadlines nobody waits on: a process-wide thread that calls back when the
// process's clock (GetClock(), apartments/clock.h) reaches a time point. The
// modern API's co_await CallAsync(f, {.deadline}) uses it to withdraw a task
// still queued at its deadline, because no thread of the caller is blocked
// there to notice (a synchronous Call's caller watches its own deadline in
// its wait, channel.cc).
//
// It waits as the synchronous caller does: with the real time left to the
// earliest deadline as timeout, and woken by a clock listener
// (internal::AddClockListener, behind the caller's ClockWakeRegistration)
// whenever a test advances its FakeClock, so it re-reads the clock and never
// polls a fake one. Unlike the caller it sleeps on a condition variable, not
// in a kernel wait (which stamps every wait with GetClock()): this thread
// outlives every test, so it reads GetClock() only while a timer is armed,
// whose owner keeps a test's clock alive. The thread starts with the first
// Arm() and lives until the process exits (as the MTA workers do).
//
// State of a DeadlineTimer:
//   disarmed --Arm()--> armed --the clock reaches the deadline--> firing
//   (fn runs on the timer thread) --fn returns--> disarmed (never re-fires)
//   armed --Disarm()--> disarmed (fn never runs)
//   firing --Disarm() on another thread--> blocks until fn returns
//   firing --Disarm() on the timer thread (inside fn)--> returns at once
// The last row lets fn end the object that owns the DeadlineTimer (it may
// resume a coroutine whose frame holds it): like std::stop_callback, whose
// destructor does not wait for its own callback.
#ifndef APARTMENTS_SRC_COM_DEADLINE_TIMER_H_
#define APARTMENTS_SRC_COM_DEADLINE_TIMER_H_

#include <map>

#include "apartments/clock.h"
#include "base/guarded.h"

namespace apartments::internal {

class DeadlineTimer;

// What the deadline thread's lock guards (deadline_timer.cc): the armed
// timers by deadline, the one whose fn is running, and its wake-up flag.
struct DeadlineTimers {
  std::multimap<Clock::TimePoint, DeadlineTimer*> armed;
  DeadlineTimer* firing = nullptr;  // Only compared, never dereferenced.
  bool woken = false;
};
using DeadlineTimersGuard = Guarded<DeadlineTimers>::Locked;

class DeadlineTimer {
 public:
  DeadlineTimer() = default;
  ~DeadlineTimer() { Disarm(); }
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  // Calls fn(context) once, on the timer thread, as soon as GetClock().Now()
  // >= deadline (at once if it already is), unless disarmed first. Any
  // thread; the object must be disarmed (never armed, fired, or Disarm()ed).
  // fn must be short and must not block on anything another deadline's fn
  // does: every deadline of the process fires on the one thread. It may
  // arm or disarm any DeadlineTimer, including its own.
  // Memory ordering: writes made before Arm() are visible to fn.
  void Arm(Clock::TimePoint deadline, void (*fn)(void*), void* context);
  // Disarms: when it returns, fn is not running and will not run (except
  // when called from fn itself, see the state table). Any thread; a no-op
  // when disarmed. Blocks only while fn runs on the timer thread.
  void Disarm() noexcept;

 private:
  friend class DeadlineThread;
  // Written by Arm() before it publishes the timer under the thread's lock.
  void (*fn_)(void*) = nullptr;
  void* context_ = nullptr;
  // Where the timer stands in the thread's table; reachable only with the
  // thread's lock held (its guard).
  struct Slot {
    bool armed = false;
    std::multimap<Clock::TimePoint, DeadlineTimer*>::iterator where;
  };
  GuardedBy<Slot, DeadlineTimersGuard> slot_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_DEADLINE_TIMER_H_
