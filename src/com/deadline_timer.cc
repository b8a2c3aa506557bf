// The deadline thread behind DeadlineTimer (see deadline_timer.h).
#include "com/deadline_timer.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "apartments/win32_kernel.h"

namespace apartments::internal {

// The longest single sleep: a far deadline is re-checked this often.
constexpr Clock::Duration kMaxSleep = std::chrono::hours(1);

class DeadlineThread {
 public:
  // Created with the first Arm(); never destroyed (its thread is detached and
  // may be asleep in a wait when the process exits).
  static DeadlineThread& Get() {
    static auto* thread = new DeadlineThread();
    return *thread;
  }

  void Arm(DeadlineTimer* timer, Clock::TimePoint deadline) {
    auto timers = timers_.Lock();
    DeadlineTimer::Slot& slot = timer->slot_.Get(timers);
    slot.armed = true;
    slot.where = timers->armed.emplace(deadline, timer);
    // A new earliest deadline: the thread's timeout is too long now.
    if (slot.where == timers->armed.begin()) Wake(timers);
  }

  void Disarm(DeadlineTimer* timer) noexcept {
    auto timers = timers_.Lock();
    DeadlineTimer::Slot& slot = timer->slot_.Get(timers);
    if (slot.armed) {
      timers->armed.erase(slot.where);
      slot.armed = false;
      return;
    }
    // Fired or firing. Inside a callback (the only code this thread runs
    // unlocked) it may be its own: never wait for ourselves.
    if (std::this_thread::get_id() == thread_id_) return;
    timers.Wait(fired_, [&] { return timers->firing != timer; });
  }

 private:
  DeadlineThread() {
    // Before the thread starts, and never removed: `this` is never freed.
    AddClockListener(&OnClockAdvanced, this);
    std::thread thread([this] { Main(); });
    auto timers = timers_.Lock();  // thread_id_ is read under it by Disarm.
    thread_id_ = thread.get_id();
    thread.detach();
  }

  // FakeClock::Advance, on the advancing thread, under the listeners' lock
  // (so the order is listeners' lock -> timers_; nothing here takes them the
  // other way round).
  static void OnClockAdvanced(void* self) {
    auto* thread = static_cast<DeadlineThread*>(self);
    auto timers = thread->timers_.Lock();
    thread->Wake(timers);
  }

  void Wake(DeadlineTimersGuard& timers) {
    timers->woken = true;
    wake_.notify_one();
  }

  // Under the lock: takes the first due timer (sets `firing`), waiting until
  // one is due. GetClock() is read only here, under the lock, while a timer
  // is armed. A test's FakeClock outlives the timers armed against it (their
  // owners wait on them), so this thread never reads a clock the test has
  // uninstalled and destroyed (why it sleeps on a condition variable, not in
  // a kernel wait, which stamps every wait with GetClock()).
  DeadlineTimer* TakeDue(DeadlineTimersGuard& timers) {
    for (;;) {
      std::optional<std::chrono::steady_clock::time_point> until;
      if (!timers->armed.empty()) {
        const auto first = timers->armed.begin();
        const Clock::Duration left = first->first - GetClock().Now();
        if (left <= Clock::Duration::zero()) {
          DeadlineTimer* timer = first->second;
          timers->armed.erase(first);
          timer->slot_.Get(timers).armed = false;
          timers->firing = timer;
          return timer;
        }
        // Re-checked on every wake: a test's clock wakes us as it advances;
        // the real clock, by this timeout (bounded, so that a far deadline
        // cannot overflow it).
        until = std::chrono::steady_clock::now() + std::min<Clock::Duration>(left, kMaxSleep);
      }
      // woken is set under the lock by every Arm of an earliest deadline and
      // every clock advance, so none is lost between the check above and the
      // wait.
      if (until) {
        timers.WaitUntil(wake_, *until, [&] { return timers->woken; });
      } else {
        timers.Wait(wake_, [&] { return timers->woken; });
      }
      timers->woken = false;
    }
  }

  void Main() {
    SetThreadDescription(GetCurrentThread(), L"apartments deadlines");
    for (;;) {
      void (*fn)(void*);
      void* context;
      {
        auto timers = timers_.Lock();
        DeadlineTimer* timer = TakeDue(timers);
        // Written by Arm() before it published the timer under this lock.
        fn = timer->fn_;
        context = timer->context_;
      }
      // Unlocked while fn runs: it takes other locks and may arm or disarm
      // timers. From here on the timer may be destroyed (by fn, on this
      // thread, or by a Disarm() that waits for `firing` to change): it is
      // only compared, never dereferenced.
      fn(context);
      auto timers = timers_.Lock();
      timers->firing = nullptr;
      fired_.notify_all();
    }
  }

  Guarded<DeadlineTimers> timers_;
  std::condition_variable wake_;   // woken set (waited on with timers_'s lock).
  std::condition_variable fired_;  // firing changed (likewise).
  // Set once, under timers_'s lock, before any timer can fire.
  std::thread::id thread_id_;
};

void DeadlineTimer::Arm(Clock::TimePoint deadline, void (*fn)(void*), void* context) {
  DeadlineThread& thread = DeadlineThread::Get();
  // Written before the timer is published under the thread's lock, which
  // the firing thread takes before reading them.
  fn_ = fn;
  context_ = context;
  thread.Arm(this, deadline);
}

void DeadlineTimer::Disarm() noexcept {
  // Never armed: nothing to do, and no thread to start.
  if (fn_ == nullptr) return;
  DeadlineThread::Get().Disarm(this);
}

}  // namespace apartments::internal
