// Tests of the deadline thread (com/deadline_timer.h).
#include "com/deadline_timer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "apartments/clock.h"
#include "apartments/win32.h"
#include "message/test_util.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::TestEvent;

// A callback that records its thread and sets an event.
struct Fired {
  static void Fn(void* self) {
    auto* fired = static_cast<Fired*>(self);
    fired->on = GetCurrentThreadId();
    fired->count.fetch_add(1);
    fired->event.Set();
  }
  std::atomic<DWORD> on{0};
  std::atomic<int> count{0};
  TestEvent event;
};

TEST(DeadlineTimerTest, FiresOnItsThreadWhenFakeClockReachesDeadlineNotBefore) {
  // Tests that an armed timer fires once, on the deadline thread, when a FakeClock is
  // advanced to its deadline, and not when it is advanced short of it.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  Fired late, marker;
  DeadlineTimer late_timer, marker_timer;
  late_timer.Arm(clock.Now() + std::chrono::seconds(2), &Fired::Fn, &late);
  marker_timer.Arm(clock.Now() + std::chrono::seconds(1), &Fired::Fn, &marker);
  clock.Advance(std::chrono::seconds(1));
  // The thread fires deadlines in order and re-reads the clock for the next one.
  ASSERT_TRUE(marker.event.Wait());
  EXPECT_EQ(late.count.load(), 0);
  clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(late.event.Wait());
  EXPECT_EQ(late.count.load(), 1);
  EXPECT_NE(late.on.load(), GetCurrentThreadId());
  EXPECT_EQ(late.on.load(), marker.on.load());
}

TEST(DeadlineTimerTest, PassedDeadlineFiresAtOnceWithRealClock) {
  // Tests that a timer armed with a deadline already passed fires without any clock
  // advance (the system clock).
  Fired fired;
  DeadlineTimer timer;
  timer.Arm(GetClock().Now(), &Fired::Fn, &fired);
  ASSERT_TRUE(fired.event.Wait());
  EXPECT_EQ(fired.count.load(), 1);
}

TEST(DeadlineTimerTest, DisarmedTimerNeverFires) {
  // Tests that a timer disarmed before its deadline never fires.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  Fired disarmed, marker;
  DeadlineTimer disarmed_timer, marker_timer;
  disarmed_timer.Arm(clock.Now() + std::chrono::seconds(1), &Fired::Fn, &disarmed);
  disarmed_timer.Disarm();
  // Same deadline, armed later: fires after the disarmed one would have.
  marker_timer.Arm(clock.Now() + std::chrono::seconds(1), &Fired::Fn, &marker);
  clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(marker.event.Wait());
  EXPECT_EQ(disarmed.count.load(), 0);
}

TEST(DeadlineTimerTest, CallbackMayDestroyItsOwnTimer) {
  // Tests that a callback may destroy the timer that fired it (Disarm on the deadline
  // thread does not wait for itself; this deadlocked the thread if it did).
  struct Owner {
    DeadlineTimer timer;
    TestEvent* done;
  };
  TestEvent done;
  auto* owner = new Owner{{}, &done};
  owner->timer.Arm(GetClock().Now(), [](void* self) {
    auto* o = static_cast<Owner*>(self);
    TestEvent* d = o->done;
    delete o;
    d->Set();
  }, owner);
  ASSERT_TRUE(done.Wait());
  // The thread is still serving deadlines.
  Fired after;
  DeadlineTimer after_timer;
  after_timer.Arm(GetClock().Now(), &Fired::Fn, &after);
  ASSERT_TRUE(after.event.Wait());
}

TEST(DeadlineTimerTest, DisarmWaitsForRunningCallback) {
  // Tests that Disarm on another thread returns only after a running callback has
  // returned, so the callback's context may be freed after it.
  struct Slow {
    TestEvent running, release;
    std::atomic<bool> finished{false};
  } slow;
  DeadlineTimer timer;
  timer.Arm(GetClock().Now(), [](void* self) {
    auto* s = static_cast<Slow*>(self);
    s->running.Set();
    (void)s->release.Wait();
    s->finished = true;
  }, &slow);
  ASSERT_TRUE(slow.running.Wait());
  std::atomic<bool> finished_at_disarm{false};
  BoundedThread disarmer([&] {
    timer.Disarm();
    finished_at_disarm = slow.finished.load();
  });
  slow.release.Set();
  disarmer.Join();
  EXPECT_TRUE(finished_at_disarm.load());
}

}  // namespace
}  // namespace apartments::internal
