// Kernel objects under contention: wait-all atomicity, exact wakeups, mutual
// exclusion, hand-offs, signals racing timeouts. Sized to finish in a few
// seconds under ThreadSanitizer on two vCPUs.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <vector>

#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::CountBlocked;
using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::WaitUntilBlocked;
using testing::BoundedThread;
using testing::Eventually;

using ConcurrencyTest = ktest::KernelTest;

// Tests that wait-all stays atomic under contention: threads doing wait-all on
// overlapping sets of auto-reset events and semaphores while others signal
// never acquire more than was signaled, and never acquire part of a set
// (every semaphore unit is either taken by a complete set or still there).
TEST_F(ConcurrencyTest, WaitAllIsAtomicUnderContention) {
  constexpr int kObjects = 5;  // 0-1: auto-reset events; 2-4: semaphores.
  constexpr int kSignalsPerSignaler = 400;
  constexpr int kSignalers = 2;
  std::vector<ScopedHandle> objects;
  for (int i = 0; i < kObjects; ++i) {
    objects.emplace_back(i < 2 ? CreateEventW(nullptr, FALSE, FALSE, nullptr)
                               : CreateSemaphoreW(nullptr, 0, 1 << 20, nullptr));
    ASSERT_TRUE(objects.back());
  }
  const std::vector<std::vector<int>> sets = {{0, 2}, {2, 3}, {1, 3, 4}, {0, 4}, {2, 4}};
  std::atomic<int> signaled[kObjects] = {};
  std::atomic<int> acquired[kObjects] = {};
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};

  std::vector<HANDLE> threads;
  for (const std::vector<int>& set : sets) {
    HANDLE t = StartThread([&, set] {
      std::vector<HANDLE> handles;
      for (int index : set) handles.push_back(objects[index].get());
      while (!stop.load()) {
        DWORD r = WaitForMultipleObjects(static_cast<DWORD>(handles.size()), handles.data(), TRUE, 5);
        if (r == WAIT_OBJECT_0) {
          for (int index : set) acquired[index].fetch_add(1);
        } else if (r != WAIT_TIMEOUT) {
          failures.fetch_add(1);
        }
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  std::vector<HANDLE> signalers;
  for (int s = 0; s < kSignalers; ++s) {
    HANDLE t = StartThread([&, s] {
      std::mt19937 rng(1234 + s);
      for (int i = 0; i < kSignalsPerSignaler; ++i) {
        int index = static_cast<int>(rng() % kObjects);
        // Count before signaling, so acquired <= signaled holds at every instant.
        signaled[index].fetch_add(1);
        BOOL ok = index < 2 ? SetEvent(objects[index].get())
                            : ReleaseSemaphore(objects[index].get(), 1, nullptr);
        if (!ok) failures.fetch_add(1);
        for (int k = 0; k < kObjects; ++k) {
          if (acquired[k].load() > signaled[k].load()) failures.fetch_add(1000);
        }
        if (i % 16 == 0) Sleep(0);
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    signalers.push_back(t);
  }
  for (HANDLE t : signalers) ASSERT_TRUE(JoinThread(t));
  stop.store(true);
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));

  EXPECT_EQ(failures.load(), 0);
  for (int i = 0; i < kObjects; ++i) {
    int remaining = 0;
    while (WaitForSingleObject(objects[i].get(), 0) == WAIT_OBJECT_0) ++remaining;
    if (i < 2) {
      // SetEvent on a signaled event does not count, so only an upper bound.
      EXPECT_LE(acquired[i].load() + remaining, signaled[i].load()) << "event " << i;
    } else {
      // A semaphore keeps every unit: taken or still there, exactly.
      EXPECT_EQ(acquired[i].load() + remaining, signaled[i].load()) << "semaphore " << i;
    }
  }
  int total_acquired = 0;
  for (auto& a : acquired) total_acquired += a.load();
  EXPECT_GT(total_acquired, 0);  // The test exercised something.
}

// Tests that N threads blocked on one auto-reset event are woken exactly one
// per SetEvent: after the i-th SetEvent exactly N - i are still blocked.
TEST_F(ConcurrencyTest, AutoResetWakesExactlyOneWaiterPerSet) {
  constexpr int kWaiters = 6;
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<int> woken{0};
  std::vector<HANDLE> threads;
  std::vector<DWORD> tids(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    HANDLE t = StartThread(
        [&] {
          DWORD r = WaitForSingleObject(event.get(), kJoinMs);
          if (r == WAIT_OBJECT_0) woken.fetch_add(1);
          return r;
        },
        0, &tids[i]);
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (DWORD tid : tids) ASSERT_TRUE(WaitUntilBlocked(tid));
  for (int i = 1; i <= kWaiters; ++i) {
    ASSERT_TRUE(SetEvent(event.get()));
    // A satisfied wait leaves the record inside SetEvent, so this is exact.
    ASSERT_EQ(CountBlocked(tids), kWaiters - i) << "after SetEvent #" << i;
    ASSERT_TRUE(Eventually([&] { return woken.load() == i; })) << "after SetEvent #" << i;
  }
  for (HANDLE t : threads) {
    ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
    DWORD code = WAIT_FAILED;
    EXPECT_TRUE(GetExitCodeThread(t, &code));
    EXPECT_EQ(code, WAIT_OBJECT_0);
    CloseHandle(t);
  }
  EXPECT_EQ(woken.load(), kWaiters);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);  // Every set was consumed.
}

// Tests that one SetEvent on a manual-reset event wakes every blocked waiter.
TEST_F(ConcurrencyTest, ManualResetWakesAllWaiters) {
  constexpr int kWaiters = 6;
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  std::vector<HANDLE> threads;
  std::vector<DWORD> tids(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    HANDLE t = StartThread([&] { return WaitForSingleObject(event.get(), kJoinMs); }, 0, &tids[i]);
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (DWORD tid : tids) ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(SetEvent(event.get()));
  EXPECT_EQ(CountBlocked(tids), 0);
  EXPECT_EQ(WaitForMultipleObjects(kWaiters, threads.data(), TRUE, kJoinMs), WAIT_OBJECT_0);
  for (HANDLE t : threads) {
    DWORD code = WAIT_FAILED;
    EXPECT_TRUE(GetExitCodeThread(t, &code));
    EXPECT_EQ(code, WAIT_OBJECT_0);
    CloseHandle(t);
  }
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);  // Still set.
}

// Tests that a mutex gives mutual exclusion under contention, and that what
// one owner wrote is visible to the next (plain memory, checked by TSan).
TEST_F(ConcurrencyTest, MutexMutualExclusion) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 400;
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  std::atomic<int> inside{0};
  std::atomic<int> violations{0};
  long counter = 0;  // Guarded by the mutex.
  std::vector<HANDLE> threads;
  for (int i = 0; i < kThreads; ++i) {
    HANDLE t = StartThread([&] {
      for (int k = 0; k < kIterations; ++k) {
        if (WaitForSingleObject(mutex.get(), kJoinMs) != WAIT_OBJECT_0) {
          violations.fetch_add(1000);
          return DWORD{1};
        }
        if (inside.fetch_add(1) != 0) violations.fetch_add(1);
        long seen = counter;
        if (k % 8 == 0) Sleep(0);  // Invite a competitor in, if exclusion were broken.
        counter = seen + 1;
        inside.fetch_sub(1);
        if (!ReleaseMutex(mutex.get())) violations.fetch_add(1000);
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(counter, kThreads * kIterations);
}

// Tests that two threads alternate correctly through a pair of auto-reset
// events: each sees the other's last write, in order, every round.
TEST_F(ConcurrencyTest, PingPong) {
  constexpr int kRounds = 1000;
  ScopedHandle ping(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle pong(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  int ball = 0;  // Plain memory handed back and forth.
  std::atomic<int> errors{0};
  HANDLE t = StartThread([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (WaitForSingleObject(ping.get(), kJoinMs) != WAIT_OBJECT_0) return DWORD{1};
      if (ball != 2 * i + 1) errors.fetch_add(1);
      ball = 2 * i + 2;
      SetEvent(pong.get());
    }
    return DWORD{0};
  });
  ASSERT_NE(t, nullptr);
  for (int i = 0; i < kRounds; ++i) {
    ball = 2 * i + 1;
    ASSERT_TRUE(SetEvent(ping.get()));
    ASSERT_EQ(WaitForSingleObject(pong.get(), kJoinMs), WAIT_OBJECT_0) << "round " << i;
    ASSERT_EQ(ball, 2 * i + 2) << "round " << i;
  }
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  DWORD code = 1;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  CloseHandle(t);
  EXPECT_EQ(code, 0u);
  EXPECT_EQ(errors.load(), 0);
}

// Pins the calling thread to the `index`th CPU it may use; false when it may
// use fewer than index + 1.
bool PinToNthCpu(int index) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
  int seen = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed) || seen++ != index) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(c, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  return false;
}

// Tests that the spin before a wait adapts: a waiter whose event is set from
// another CPU, but only long after its spin gave up, backs off (skips spins),
// and a ping-pong with a prompt peer brings it back to spinning; every wait
// returns the event in order meanwhile.
TEST_F(ConcurrencyTest, SpinBacksOffBeforeLongWaitsAndRecovers) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  if (CPU_COUNT(&allowed) < 2) GTEST_SKIP() << "needs two CPUs";
  constexpr int kSlowRounds = 8;
  constexpr int kFastRounds = 2000;
  ScopedHandle go(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle done(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<bool> fast{false};
  std::atomic<bool> stop{false};
  // The peer, on the second CPU: sets `done` for every `go`, late (after a
  // 2 ms sleep: far beyond any spin) in the slow rounds, at once afterwards.
  HANDLE peer = StartThread([&] {
    if (!PinToNthCpu(1)) return DWORD{1};
    for (;;) {
      if (WaitForSingleObject(go.get(), kJoinMs) != WAIT_OBJECT_0) return DWORD{2};
      if (stop.load()) return DWORD{0};
      if (!fast.load()) Sleep(2);
      SetEvent(done.get());
    }
  });
  ASSERT_NE(peer, nullptr);
  int highest = 0;
  int lowest_after = 100;
  std::atomic<int> failures{0};
  BoundedThread waiter([&] {
    if (!PinToNthCpu(0)) {
      failures.fetch_add(1);
      return;
    }
    for (int i = 0; i < kSlowRounds; ++i) {
      SetEvent(go.get());
      if (WaitForSingleObject(done.get(), kJoinMs) != WAIT_OBJECT_0) failures.fetch_add(1);
      highest = std::max(highest, SpinBackoffLevelForTesting());
    }
    fast.store(true);
    for (int i = 0; i < kFastRounds && lowest_after > 0; ++i) {
      SetEvent(go.get());
      if (WaitForSingleObject(done.get(), kJoinMs) != WAIT_OBJECT_0) failures.fetch_add(1);
      lowest_after = std::min(lowest_after, SpinBackoffLevelForTesting());
    }
  });
  waiter.Join();
  stop.store(true);
  SetEvent(go.get());
  DWORD code = 99;
  ASSERT_EQ(WaitForSingleObject(peer, kJoinMs), WAIT_OBJECT_0);
  EXPECT_TRUE(GetExitCodeThread(peer, &code));
  CloseHandle(peer);
  EXPECT_EQ(code, 0u);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(highest, 1) << "the waiter never backed off";
  EXPECT_EQ(lowest_after, 0) << "the waiter never spun again";
}

// Tests that a SetEvent racing a waiter's timeout is never lost: after each
// round the signal was either consumed by the wait or is still pending.
TEST_F(ConcurrencyTest, SignalRacingTimeoutIsNeverLost) {
  constexpr int kRounds = 300;
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle start(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle finished(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<DWORD> result{WAIT_FAILED};
  std::atomic<bool> stop{false};
  HANDLE t = StartThread([&] {
    for (;;) {
      if (WaitForSingleObject(start.get(), kJoinMs) != WAIT_OBJECT_0 || stop.load()) break;
      result.store(WaitForSingleObject(event.get(), 1));
      SetEvent(finished.get());
    }
    return DWORD{0};
  });
  ASSERT_NE(t, nullptr);
  int consumed = 0;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(SetEvent(start.get()));
    if (i % 3 != 0) Sleep(0);  // Vary where the signal lands relative to the timeout.
    ASSERT_TRUE(SetEvent(event.get()));
    ASSERT_EQ(WaitForSingleObject(finished.get(), kJoinMs), WAIT_OBJECT_0);
    DWORD r = result.load();
    if (r == WAIT_OBJECT_0) {
      ++consumed;
      ASSERT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT) << "round " << i;
    } else {
      ASSERT_EQ(r, WAIT_TIMEOUT) << "round " << i;
      ASSERT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0) << "signal lost, round " << i;
    }
  }
  stop.store(true);
  ASSERT_TRUE(SetEvent(start.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_GT(consumed, 0);
}

// Tests that semaphore units are conserved across producers and consumers
// that use timeouts: every released unit is taken exactly once or remains.
TEST_F(ConcurrencyTest, SemaphoreUnitsAreConserved) {
  constexpr int kProducers = 2;
  constexpr int kConsumers = 3;
  constexpr int kUnitsPerProducer = 500;
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 1 << 20, nullptr));
  std::atomic<int> taken{0};
  std::atomic<int> failures{0};
  std::atomic<bool> producers_done{false};
  std::vector<HANDLE> threads;
  for (int i = 0; i < kConsumers; ++i) {
    HANDLE t = StartThread([&] {
      for (;;) {
        DWORD r = WaitForSingleObject(semaphore.get(), 2);
        if (r == WAIT_OBJECT_0) {
          taken.fetch_add(1);
        } else if (r != WAIT_TIMEOUT) {
          failures.fetch_add(1);
        } else if (producers_done.load()) {
          break;
        }
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  std::vector<HANDLE> producers;
  for (int i = 0; i < kProducers; ++i) {
    HANDLE t = StartThread([&] {
      for (int k = 0; k < kUnitsPerProducer; ++k) {
        if (!ReleaseSemaphore(semaphore.get(), 1 + k % 2, nullptr)) failures.fetch_add(1);
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    producers.push_back(t);
  }
  for (HANDLE t : producers) ASSERT_TRUE(JoinThread(t));
  producers_done.store(true);
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  int remaining = 0;
  while (WaitForSingleObject(semaphore.get(), 0) == WAIT_OBJECT_0) ++remaining;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(taken.load() + remaining, kProducers * (kUnitsPerProducer / 2 * 3));
}

// Tests that mutex waiters and an exiting owner race cleanly: many short-lived
// threads that exit holding the mutex each hand it on as abandoned exactly
// once, and the mutex stays usable.
TEST_F(ConcurrencyTest, AbandonmentHandOffUnderContention) {
  constexpr int kOwners = 20;
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  std::atomic<int> abandoned_seen{0};
  std::atomic<int> other{0};
  std::vector<HANDLE> threads;
  for (int i = 0; i < kOwners; ++i) {
    // Each thread takes the mutex and exits without releasing it.
    HANDLE t = StartThread([&] {
      DWORD r = WaitForSingleObject(mutex.get(), kJoinMs);
      if (r == WAIT_ABANDONED) {
        abandoned_seen.fetch_add(1);
      } else if (r != WAIT_OBJECT_0) {
        other.fetch_add(1);
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(other.load(), 0);
  // The first owner found it free; every later one inherited it abandoned.
  EXPECT_EQ(abandoned_seen.load(), kOwners - 1);
  EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_ABANDONED);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

}  // namespace
}  // namespace apartments::internal
