// The test helpers every layer's tests share: the one bound of every wait,
// waiting until a condition holds, threads that must finish, and substring
// checks. Test-only. Layers add their own (message/test_util.h: events and
// message loops; kernel/kernel_test_util.h: handles) on top of these.
#ifndef APARTMENTS_SRC_BASE_TEST_UTIL_H_
#define APARTMENTS_SRC_BASE_TEST_UTIL_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <thread>
#include <utility>

#include "apartments/win32_kernel.h"

namespace apartments::internal::testing {

// The upper bound of every wait in tests: a wait that takes longer is a
// failure (or, for a thread, an abort), never a hang.
inline constexpr DWORD kBoundMs = 10000;
inline constexpr std::chrono::milliseconds kBound{kBoundMs};

// Substring checks: EXPECT_THAT(text, HasSubstr("queue is full")) prints the
// text on a failure.
using ::testing::HasSubstr;
using ::testing::Not;

// Eventually()
//
// Polls `condition` until it is true or `bound` passes, then returns whether
// it is. For states another thread reaches while blocked, which it cannot
// signal itself (prefer an event where there is one). Yields between polls,
// then sleeps briefly, so a loaded machine's other threads get the CPU.
template <typename Condition>
[[nodiscard]] bool Eventually(Condition&& condition, std::chrono::milliseconds bound = kBound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  for (int i = 0;; ++i) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    if (i < 100) {
      sched_yield();
    } else {
      timespec pause{0, 200 * 1000};
      nanosleep(&pause, nullptr);
    }
  }
}

// BoundedThread
//
// A thread that must start and finish within kBound: the constructor waits
// for it to start, Join() (and the destructor) for it to finish, and either
// aborts the test binary (a failure that names itself, not a hang) when the
// bound passes.
class BoundedThread {
 public:
  explicit BoundedThread(std::function<void()> body)
      : thread_([this, body = std::move(body)] {
          tid_.store(GetCurrentThreadId());
          started_.set_value();
          body();
          done_.set_value();
        }) {
    if (started_.get_future().wait_for(kBound) != std::future_status::ready) {
      Abort("did not start");
    }
  }
  ~BoundedThread() { Join(); }
  BoundedThread(const BoundedThread&) = delete;
  BoundedThread& operator=(const BoundedThread&) = delete;

  void Join() {
    if (!thread_.joinable()) return;
    if (done_future_.wait_for(kBound) != std::future_status::ready) Abort("did not finish in time");
    thread_.join();
  }
  // The thread's id (GetCurrentThreadId on it).
  DWORD tid() const { return tid_.load(); }

 private:
  [[noreturn]] static void Abort(const char* what) {
    std::fprintf(stderr, "test thread %s\n", what);
    std::fflush(stderr);
    std::abort();
  }
  std::promise<void> started_;
  std::promise<void> done_;
  std::future<void> done_future_ = done_.get_future();
  std::atomic<DWORD> tid_{0};
  std::thread thread_;  // Last: starts once the members above exist.
};

}  // namespace apartments::internal::testing

#endif  // APARTMENTS_SRC_BASE_TEST_UTIL_H_
