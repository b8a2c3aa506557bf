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
// caller in the library loops this way (the kernel wait engine, FutexLock,
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

// A mutex on one futex word, for the short sections of the kernel lock (and
// the message queues' locks): the uncontended lock and unlock are one atomic
// operation each, inline, where std::mutex costs two calls into libpthread
// (a COM call takes such locks five or six times). Word: 0 free, 1 locked, 2
// locked with sleepers. Not recursive; BasicLockable (std::lock_guard,
// std::unique_lock). Memory ordering: lock() acquires, unlock() releases.
class FutexLock {
 public:
  void lock() noexcept {
    std::uint32_t expected = 0;
    if (__builtin_expect(word_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                                       std::memory_order_relaxed),
                         1)) {
      return;
    }
    LockSlow();
  }
  // A sleeper is woken only when one may exist (state 2). The word must
  // outlive every thread that may still wake it (the library's locks are
  // never destroyed, or live in type-stable objects), so a late FUTEX_WAKE is
  // harmless.
  void unlock() noexcept {
    if (__builtin_expect(word_.exchange(0, std::memory_order_release) == 2, 0)) {
      FutexWake(&word_, 1);
    }
  }

 private:
  [[gnu::noinline, gnu::cold]] void LockSlow() noexcept {
    // Spin a little: the holder is inside a few dozen instructions. On a
    // shared vCPU the spin is short enough not to matter before we sleep.
    for (int i = 0; i < 64; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      std::uint32_t expected = 0;
      if (word_.load(std::memory_order_relaxed) == 0 &&
          word_.compare_exchange_weak(expected, 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return;
      }
    }
    // Mark contended (2) and sleep while locked. Race-free: the unlocker
    // swaps in 0 and wakes when it sees 2; FutexWait re-checks that the word
    // is still 2 before it sleeps.
    std::uint32_t c = word_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      FutexWait(&word_, 2, nullptr);
      c = word_.exchange(2, std::memory_order_acquire);
    }
  }

  std::atomic<std::uint32_t> word_{0};
};

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
