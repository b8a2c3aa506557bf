// Helpers shared by the kernel layer's tests (*_test.cc in this folder). Not
// part of the library: nothing outside the tests includes this header.
//
// The rules they serve (STYLE.md): no sleeps standing in for synchronization,
// and every cross-thread step is bounded, so a misbehaving thread fails the
// test instead of hanging it.
#ifndef APARTMENTS_SRC_KERNEL_KERNEL_TEST_UTIL_H_
#define APARTMENTS_SRC_KERNEL_KERNEL_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sched.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "apartments/win32_errors.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_types.h"
#include "base/test_util.h"
#include "kernel/kernel.h"

namespace apartments::internal::ktest {

// The longest any cross-thread step may take before the test fails. Generous
// on purpose: sanitizer builds on two vCPUs are slow, and a correct run never
// comes near it.
inline constexpr DWORD kJoinMs = testing::kBoundMs;

// Owns a handle and closes it at scope exit, so a failing assertion does not
// leak it into the next test's handle count.
class ScopedHandle {
 public:
  ScopedHandle() = default;
  explicit ScopedHandle(HANDLE handle) noexcept : handle_(handle) {}
  ~ScopedHandle() { reset(); }
  ScopedHandle(ScopedHandle&& other) noexcept : handle_(other.release()) {}
  ScopedHandle& operator=(ScopedHandle&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedHandle(const ScopedHandle&) = delete;
  ScopedHandle& operator=(const ScopedHandle&) = delete;

  HANDLE get() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }
  HANDLE release() noexcept { return std::exchange(handle_, nullptr); }
  void reset(HANDLE handle = nullptr) noexcept {
    if (handle_ != nullptr) CloseHandle(handle_);
    handle_ = handle;
  }

 private:
  HANDLE handle_ = nullptr;
};

// Every kernel test checks that it closed every handle it opened.
class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override { handles_at_start_ = OpenHandleCountForTesting(); }
  void TearDown() override {
    EXPECT_EQ(OpenHandleCountForTesting(), handles_at_start_) << "the test leaked handles";
  }

 private:
  std::size_t handles_at_start_ = 0;
};

// Starts a thread (CreateThread) running `body`; returns its handle, or NULL.
inline HANDLE StartThread(std::function<DWORD()> body, DWORD flags = 0,
                          DWORD* thread_id = nullptr) {
  auto* heap = new std::function<DWORD()>(std::move(body));
  HANDLE thread = CreateThread(
      nullptr, 0,
      [](LPVOID parameter) -> DWORD {
        // Owned here so that ExitThread's unwinding frees it too.
        std::unique_ptr<std::function<DWORD()>> routine(
            static_cast<std::function<DWORD()>*>(parameter));
        return (*routine)();
      },
      heap, flags, thread_id);
  if (thread == nullptr) delete heap;
  return thread;
}

// Waits (bounded) for a thread handle to be signaled, then closes it.
// False when the thread did not exit in time.
[[nodiscard]] inline bool JoinThread(HANDLE thread, DWORD timeout_ms = kJoinMs) {
  bool exited = WaitForSingleObject(thread, timeout_ms) == WAIT_OBJECT_0;
  CloseHandle(thread);
  return exited;
}

// Waits until the thread `tid` is blocked in a wait of `kind`.
[[nodiscard]] inline bool WaitUntilBlocked(DWORD tid, BlockKind kind = BlockKind::kKernelWait) {
  return testing::Eventually([&] { return ReadWaitRecord(tid).kind == kind; });
}

// How many of `tids` are blocked in a kernel wait right now.
inline int CountBlocked(const std::vector<DWORD>& tids) {
  int blocked = 0;
  for (DWORD tid : tids) blocked += ReadWaitRecord(tid).kind == BlockKind::kKernelWait ? 1 : 0;
  return blocked;
}

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double ElapsedMs() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// A timed wait may end this much before its nominal time (clock granularity).
inline constexpr double kTimeoutSlackMs = 2.0;

inline std::uintptr_t Bits(HANDLE handle) { return reinterpret_cast<std::uintptr_t>(handle); }
inline HANDLE FromBits(std::uintptr_t bits) { return reinterpret_cast<HANDLE>(bits); }

}  // namespace apartments::internal::ktest

#endif  // APARTMENTS_SRC_KERNEL_KERNEL_TEST_UTIL_H_
