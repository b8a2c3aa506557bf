// Helpers for the diagnostics tests.
#ifndef APARTMENTS_SRC_DIAG_DIAG_TEST_UTIL_H_
#define APARTMENTS_SRC_DIAG_DIAG_TEST_UTIL_H_

#include <mutex>
#include <vector>

#include "apartments/diagnostics.h"
#include "apartments/win32_kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {

// A real handle to the calling thread (for QueueUserAPC from another thread).
inline HANDLE DuplicateCurrentThreadHandle() {
  HANDLE handle = nullptr;
  DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &handle, 0,
                  FALSE, DUPLICATE_SAME_ACCESS);
  return handle;
}

inline void CALLBACK NoOpApc(ULONG_PTR) {}

// Collects deadlock reports while in scope (installs the callback and mode).
class DeadlockRecorder {
 public:
  explicit DeadlockRecorder(DeadlockMode mode = DeadlockMode::kReport)
      : previous_(GetDeadlockMode()) {
    SetDeadlockCallback([this](const DeadlockReport& report) {
      std::lock_guard lock(mu_);
      reports_.push_back(report);
    });
    SetDeadlockMode(mode);
  }
  ~DeadlockRecorder() {
    // The mode the process had: the default diagnostics' (report) when on.
    SetDeadlockMode(previous_);
    SetDeadlockCallback(nullptr);
  }
  DeadlockRecorder(const DeadlockRecorder&) = delete;
  DeadlockRecorder& operator=(const DeadlockRecorder&) = delete;

  std::vector<DeadlockReport> reports() {
    std::lock_guard lock(mu_);
    return reports_;
  }
  std::size_t count() {
    std::lock_guard lock(mu_);
    return reports_.size();
  }

 private:
  const DeadlockMode previous_;
  std::mutex mu_;
  std::vector<DeadlockReport> reports_;
};

}  // namespace apartments::internal::testing

#endif  // APARTMENTS_SRC_DIAG_DIAG_TEST_UTIL_H_
