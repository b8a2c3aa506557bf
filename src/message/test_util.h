// Helpers shared by the message layer's tests (and those above it), on top of
// base/test_util.h (bounds, Eventually, BoundedThread, HasSubstr). Test-only.
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
#include "base/test_util.h"
#include "kernel/kernel.h"
#include "message/queue.h"

namespace apartments::internal::testing {

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
