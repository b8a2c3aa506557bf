// Thin wrappers over futex(2), private to the process.
#ifndef APARTMENTS_SRC_KERNEL_FUTEX_H_
#define APARTMENTS_SRC_KERNEL_FUTEX_H_

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <cstdint>

namespace apartments::internal {

// Sleeps while `*word == expected`, until woken or until the absolute
// CLOCK_MONOTONIC `deadline` (nullptr: no deadline). Returns false on timeout.
// Spurious returns happen; callers re-check their condition in a loop.
// EINTR (a signal handler ran, e.g. a diagnostics stack capture) is one of
// them: it returns true, never "timed out", and since `deadline` is absolute
// the caller's next FutexWait sleeps for the remaining time only. Every
// caller in the library loops this way (the kernel wait engine, QueueLock,
// thread start-up); src/diag/stack_test.cc checks waits survive signals.
inline bool FutexWait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                      const timespec* deadline) noexcept {
  long rc = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word),
                      FUTEX_WAIT_BITSET_PRIVATE, expected, deadline, nullptr,
                      FUTEX_BITSET_MATCH_ANY);
  return !(rc == -1 && errno == ETIMEDOUT);
}

inline void FutexWake(std::atomic<std::uint32_t>* word, int count) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, count,
            nullptr, nullptr, 0);
}

// The absolute CLOCK_MONOTONIC time `ms` milliseconds from now.
inline timespec DeadlineAfterMs(std::uint32_t ms) noexcept {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  std::int64_t nsec = now.tv_nsec + static_cast<std::int64_t>(ms % 1000) * 1000000;
  timespec deadline;
  deadline.tv_sec = now.tv_sec + ms / 1000 + nsec / 1000000000;
  deadline.tv_nsec = nsec % 1000000000;
  return deadline;
}

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_KERNEL_FUTEX_H_
