// The deadline thread behind DeadlineTimer (see deadline_timer.h).
#include "com/deadline_timer.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "apartments/win32_kernel.h"
#include "com/cancel.h"
#include "kernel/kernel.h"

namespace apartments::internal {

class DeadlineThread {
 public:
  // Created with the first Arm(); never destroyed (its thread is detached and
  // may be asleep in a wait when the process exits).
  static DeadlineThread& Get() {
    static auto* thread = new DeadlineThread();
    return *thread;
  }

  void Arm(DeadlineTimer* timer, Clock::TimePoint deadline) {
    bool earliest;
    {
      std::lock_guard lock(mu_);
      timer->armed_ = true;
      timer->where_ = armed_.emplace(deadline, timer);
      earliest = timer->where_ == armed_.begin();
    }
    // A new earliest deadline: the thread's timeout is too long now. The
    // event is auto-reset and the thread re-reads the map after every wake,
    // so a signal is never lost, at worst spurious.
    if (earliest) SignalEvent(*wake_);
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
  DeadlineThread() : wake_(new Event(std::wstring(), false, false)), clock_wake_(wake_) {
    std::thread thread([this] { Main(); });
    std::lock_guard lock(mu_);
    thread_id_ = thread.get_id();
    thread.detach();
  }

  void Main() {
    SetThreadDescription(GetCurrentThread(), L"apartments deadlines");
    KernelObject* objects[1] = {wake_};
    HANDLE handles[1] = {nullptr};
    std::unique_lock lock(mu_);
    for (;;) {
      DWORD timeout_ms = INFINITE;
      while (!armed_.empty()) {
        const auto first = armed_.begin();
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(first->first -
                                                                       GetClock().Now());
        if (left.count() > 0) {
          // Re-checked on every wake: a test's clock wakes us as it
          // advances; the real clock, by this timeout.
          timeout_ms = static_cast<DWORD>(
              std::min<std::chrono::milliseconds::rep>(left.count(), INFINITE - 1));
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
      lock.unlock();
      (void)WaitForObjects(objects, handles, 1, false, timeout_ms, false);
      lock.lock();
    }
  }

  Event* const wake_;  // Auto-reset; never freed.
  const ClockWakeRegistration clock_wake_;

  std::mutex mu_;
  std::condition_variable fired_;  // firing_ changed.
  // Guarded by mu_.
  std::multimap<Clock::TimePoint, DeadlineTimer*> armed_;
  DeadlineTimer* firing_ = nullptr;
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
