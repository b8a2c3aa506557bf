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
    std::lock_guard lock(mu_);
    timer->armed_ = true;
    timer->where_ = armed_.emplace(deadline, timer);
    // A new earliest deadline: the thread's timeout is too long now.
    if (timer->where_ == armed_.begin()) Wake();
  }

  void Disarm(DeadlineTimer* timer) noexcept {
    std::unique_lock lock(mu_);
    if (timer->armed_) {
      armed_.erase(timer->where_);
      timer->armed_ = false;
      return;
    }
    // Fired or firing. Inside a callback (the only code this thread runs
    // unlocked) it may be its own: never wait for ourselves.
    if (std::this_thread::get_id() == thread_id_) return;
    fired_.wait(lock, [&] { return firing_ != timer; });
  }

 private:
  DeadlineThread() {
    // Before the thread starts, and never removed: `this` is never freed.
    AddClockListener(&OnClockAdvanced, this);
    std::thread thread([this] { Main(); });
    std::lock_guard lock(mu_);
    thread_id_ = thread.get_id();
    thread.detach();
  }

  // FakeClock::Advance, on the advancing thread, under the listeners' lock
  // (so the order is listeners' lock -> mu_; nothing here takes them the
  // other way round).
  static void OnClockAdvanced(void* self) {
    auto* thread = static_cast<DeadlineThread*>(self);
    std::lock_guard lock(thread->mu_);
    thread->Wake();
  }

  void Wake() {  // mu_ held.
    woken_ = true;
    wake_.notify_one();
  }

  void Main() {
    SetThreadDescription(GetCurrentThread(), L"apartments deadlines");
    std::unique_lock lock(mu_);
    for (;;) {
      std::optional<std::chrono::steady_clock::time_point> until;
      // GetClock() is read only here, under mu_, while a timer is armed. A
      // test's FakeClock outlives the timers armed against it (their owners
      // wait on them), so this thread never reads a clock the test has
      // uninstalled and destroyed (why it sleeps on a condition variable,
      // not in a kernel wait, which stamps every wait with GetClock()).
      while (!armed_.empty()) {
        const auto first = armed_.begin();
        const Clock::Duration left = first->first - GetClock().Now();
        if (left > Clock::Duration::zero()) {
          // Re-checked on every wake: a test's clock wakes us as it
          // advances; the real clock, by this timeout (bounded, so that a
          // far deadline cannot overflow it).
          until = std::chrono::steady_clock::now() + std::min<Clock::Duration>(left, kMaxSleep);
          break;
        }
        DeadlineTimer* timer = first->second;
        armed_.erase(first);
        timer->armed_ = false;
        firing_ = timer;
        void (*fn)(void*) = timer->fn_;
        void* context = timer->context_;
        // Unlocked while fn runs: it takes other locks and may arm or disarm
        // timers. From here on `timer` may be destroyed (by fn, on this
        // thread, or by a Disarm() that waits for `firing_` to change): it is
        // only compared, never dereferenced.
        lock.unlock();
        fn(context);
        lock.lock();
        firing_ = nullptr;
        fired_.notify_all();
      }
      // woken_ is set under mu_ by every Arm of an earliest deadline and every
      // clock advance, so none is lost between the check above and the wait.
      if (until) {
        wake_.wait_until(lock, *until, [this] { return woken_; });
      } else {
        wake_.wait(lock, [this] { return woken_; });
      }
      woken_ = false;
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;   // woken_ set.
  std::condition_variable fired_;  // firing_ changed.
  // Guarded by mu_.
  std::multimap<Clock::TimePoint, DeadlineTimer*> armed_;
  DeadlineTimer* firing_ = nullptr;
  bool woken_ = false;
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
