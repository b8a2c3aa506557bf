// Guarded<T>: data reachable only through its lock.
#include "base/guarded.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace apartments::internal {
namespace {

constexpr int kJoinSeconds = 10;

// A thread whose join is bounded (pthread_timedjoin_np): one that never
// finishes fails the test instead of hanging it (and is abandoned).
class Worker {
 public:
  explicit Worker(std::function<void()> body)
      : body_(std::make_unique<std::function<void()>>(std::move(body))) {
    started_ = pthread_create(&thread_, nullptr, &Run, body_.get()) == 0;
  }
  ~Worker() {
    if (started_ && !joined_) pthread_detach(thread_);  // Already failing; do not hang.
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  [[nodiscard]] bool Join() {
    if (!started_ || joined_) return false;
    timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += kJoinSeconds;
    joined_ = pthread_timedjoin_np(thread_, nullptr, &deadline) == 0;
    if (!joined_) (void)body_.release();  // The thread may still run it.
    return joined_;
  }

 private:
  static void* Run(void* body) {
    (*static_cast<std::function<void()>*>(body))();
    return nullptr;
  }

  std::unique_ptr<std::function<void()>> body_;
  pthread_t thread_{};
  bool started_ = false;
  bool joined_ = false;
};

// Whether another thread finds `guarded` locked (TryLock fails there).
template <typename G>
bool LockedElsewhere(G& guarded) {
  bool locked = false;
  Worker probe([&] { locked = !guarded.TryLock().has_value(); });
  EXPECT_TRUE(probe.Join());
  return locked;
}

// Tests that the data is constructed from Guarded's arguments and reached
// through Lock().
TEST(GuardedTest, LockReachesTheData) {
  Guarded<std::string> text(3, 'x');
  EXPECT_EQ(*text.Lock(), "xxx");
  text.Lock()->append("y");
  EXPECT_EQ(*text.Lock(), "xxxy");
}

// Tests that a guard holds the lock until it goes: another thread's TryLock
// fails while it lives and succeeds after.
TEST(GuardedTest, GuardHoldsTheLockUntilItGoes) {
  Guarded<int> value(1);
  {
    auto locked = value.Lock();
    EXPECT_TRUE(LockedElsewhere(value));
  }
  EXPECT_FALSE(LockedElsewhere(value));
  std::optional<Guarded<int>::Locked> again = value.TryLock();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(**again, 1);
}

// Tests that increments made through guards on several threads are never
// lost (each one is made under the lock).
TEST(GuardedTest, UpdatesFromManyThreadsAreNotLost) {
  Guarded<long> counter(0);
  constexpr int kThreads = 4;
  constexpr int kIncrements = 20000;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(std::make_unique<Worker>([&] {
      for (int i = 0; i < kIncrements; ++i) ++*counter.Lock();
    }));
  }
  for (auto& worker : workers) ASSERT_TRUE(worker->Join());
  EXPECT_EQ(*counter.Lock(), long{kThreads} * kIncrements);
}

// Tests that With runs its function under the lock and returns its result.
TEST(GuardedTest, WithRunsUnderTheLockAndReturnsTheResult) {
  Guarded<std::vector<int>> values;
  values.With([](std::vector<int>& v) { v.push_back(7); });
  bool locked_meanwhile = false;
  const std::size_t size = values.With([&](std::vector<int>& v) {
    locked_meanwhile = LockedElsewhere(values);
    return v.size();
  });
  EXPECT_TRUE(locked_meanwhile);
  EXPECT_EQ(size, 1u);
}

// Tests that a condition variable waits on the guard's lock (released while
// it waits, so another thread can change the data) and the guard reaches
// the data again when the wait returns.
TEST(GuardedTest, ConditionVariableWaitsOnTheGuardsLock) {
  Guarded<bool> ready(false);
  std::condition_variable changed;
  std::unique_ptr<Worker> setter;
  {
    auto locked = ready.Lock();
    // Started while we hold the lock: it can set the flag only once the wait
    // below has released it.
    setter = std::make_unique<Worker>([&] {
      *ready.Lock() = true;
      changed.notify_all();
    });
    EXPECT_TRUE(
        locked.WaitFor(changed, std::chrono::seconds(kJoinSeconds), [&] { return *locked; }));
    // Held again once the wait returns.
    EXPECT_TRUE(LockedElsewhere(ready));
  }
  ASSERT_TRUE(setter->Join());
}

// Tests that GetWithoutLock reaches the same data as the guard.
TEST(GuardedTest, GetWithoutLockReachesTheSameData) {
  Guarded<int> value(5);
  value.GetWithoutLock("not shared: only this thread knows `value`") = 6;
  const Guarded<int>& view = value;
  EXPECT_EQ(view.GetWithoutLock("not shared"), 6);
  EXPECT_EQ(*value.Lock(), 6);
}

// Tests that data guarded by another object's lock is reached with that
// lock's guard, and the guard holds the lock meanwhile.
TEST(GuardedTest, GuardedByIsReachedWithTheLocksGuard) {
  struct Tables {
    int generation = 0;
  };
  using TablesGuard = Guarded<Tables>::Locked;
  Guarded<Tables> tables;
  GuardedBy<std::string, TablesGuard> name("a");
  {
    auto guard = tables.Lock();
    name.Get(guard) += "b";
    ++guard->generation;
    EXPECT_TRUE(LockedElsewhere(tables));
  }
  EXPECT_EQ(name.GetWithoutLock("not shared"), "ab");
  EXPECT_EQ(tables.Lock()->generation, 1);
}

}  // namespace
}  // namespace apartments::internal
