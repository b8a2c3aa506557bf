// Helpers shared by the message layer's tests. Test-only.
#ifndef APARTMENTS_SRC_MESSAGE_TEST_UTIL_H_
#define APARTMENTS_SRC_MESSAGE_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "apartments/message_queue.h"
#include "apartments/win32.h"
#include "kernel/kernel.h"
#include "message/queue.h"

namespace apartments::internal::testing {

inline constexpr DWORD kBoundMs = 10000;  // Upper bound of every wait in tests.

// A manual-reset kernel event, closed on destruction.
class TestEvent {
 public:
  TestEvent() : handle_(CreateEventW(nullptr, TRUE, FALSE, nullptr)) {}
  ~TestEvent() { CloseHandle(handle_); }
  TestEvent(const TestEvent&) = delete;
  TestEvent& operator=(const TestEvent&) = delete;
  void Set() { SetEvent(handle_); }
  // Waits at most kBoundMs; false on timeout.
  [[nodiscard]] bool Wait(DWORD ms = kBoundMs) { return WaitForSingleObject(handle_, ms) == WAIT_OBJECT_0; }
  HANDLE get() const { return handle_; }

 private:
  HANDLE handle_;
};

// A thread that must finish within a bound: the destructor waits for it at
// most kBoundMs and aborts the test binary (a failure, not a hang) otherwise.
class BoundedThread {
 public:
  explicit BoundedThread(std::function<void()> body)
      : thread_([this, body = std::move(body)] {
          tid_.store(GetCurrentThreadId());
          started_.Set();
          body();
          done_.Set();
        }) {
    if (!started_.Wait()) Abort("did not start");
  }
  ~BoundedThread() { Join(); }
  BoundedThread(const BoundedThread&) = delete;
  BoundedThread& operator=(const BoundedThread&) = delete;

  void Join() {
    if (!thread_.joinable()) return;
    if (!done_.Wait()) Abort("did not finish in time");
    thread_.join();
  }
  DWORD tid() const { return tid_.load(); }

 private:
  [[noreturn]] static void Abort(const char* what) {
    std::fprintf(stderr, "test thread %s\n", what);
    std::fflush(stderr);
    std::abort();
  }
  TestEvent started_;
  TestEvent done_;
  std::atomic<DWORD> tid_{0};
  std::thread thread_;
};

// Retrieves the next message (PM_REMOVE) within `ms`: false on timeout. Never
// blocks unboundedly, unlike GetMessageW.
inline bool GetMessageWithin(MSG* msg, DWORD ms = kBoundMs, HWND hwnd = nullptr, UINT min = 0,
                             UINT max = 0) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    if (PeekMessageW(msg, hwnd, min, max, PM_REMOVE)) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    MsgWaitForMultipleObjectsEx(0, nullptr, static_cast<DWORD>(left.count()), QS_ALLINPUT,
                                MWMO_INPUTAVAILABLE);
  }
}

// Empties the calling thread's queue (and quit flag).
inline void DrainQueue() {
  MSG msg;
  while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) {
  }
}

// Polls `condition` until true or kBoundMs pass (for states another thread
// reaches while blocked, which it cannot signal itself). Yields between polls.
inline bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBoundMs);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::yield();
  }
  return condition();
}

// Registers a window class for the lifetime of the object.
class ScopedClass {
 public:
  ScopedClass(const wchar_t* name, WNDPROC proc) : name_(name) {
    WNDCLASSW wc{};
    wc.lpfnWndProc = proc;
    wc.lpszClassName = name;
    atom_ = RegisterClassW(&wc);
  }
  ~ScopedClass() { UnregisterClassW(name_, nullptr); }
  ATOM atom() const { return atom_; }
  const wchar_t* name() const { return name_; }

 private:
  const wchar_t* name_;
  ATOM atom_;
};

inline HWND CreateMessageWindow(const wchar_t* class_name, void* param = nullptr) {
  return CreateWindowExW(0, class_name, L"", 0, 0, 0, 0, 0, HWND_MESSAGE, nullptr, nullptr, param);
}

// Restores the posted-message limit at the end of a test.
class ScopedPostLimit {
 public:
  explicit ScopedPostLimit(DWORD limit) : saved_(GetPostMessageLimit()) {
    EXPECT_EQ(SetPostMessageLimit(limit), S_OK);
  }
  ~ScopedPostLimit() { EXPECT_EQ(SetPostMessageLimit(saved_), S_OK); }
  ScopedPostLimit(const ScopedPostLimit&) = delete;
  ScopedPostLimit& operator=(const ScopedPostLimit&) = delete;

 private:
  DWORD saved_;
};

// Posted messages waiting in thread `tid`'s queue (0 when it has none).
inline std::uint64_t QueueDepth(DWORD tid) {
  MessageQueueStats stats;
  return ReadMessageQueueStats(tid, &stats) ? stats.depth : 0;
}

}  // namespace apartments::internal::testing

#endif  // APARTMENTS_SRC_MESSAGE_TEST_UTIL_H_
