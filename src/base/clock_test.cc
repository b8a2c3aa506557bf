// The injectable clock: the system clock, FakeClock, ScopedClockForTesting.
#include "apartments/clock.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace apartments {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// Tests that by default GetClock() is the system's steady clock.
TEST(ClockTest, DefaultClockIsSteadyClock) {
  auto before = std::chrono::steady_clock::now();
  Clock::TimePoint now = GetClock().Now();
  auto after = std::chrono::steady_clock::now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

// Tests that the default clock never goes backwards.
TEST(ClockTest, DefaultClockIsMonotonic) {
  Clock::TimePoint previous = GetClock().Now();
  for (int i = 0; i < 1000; ++i) {
    Clock::TimePoint now = GetClock().Now();
    ASSERT_GE(now, previous);
    previous = now;
  }
}

// Tests that a FakeClock stands still until advanced.
TEST(ClockTest, FakeClockStandsStill) {
  FakeClock clock;
  Clock::TimePoint start = clock.Now();
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
}

// Tests that FakeClocks start at the same fixed point, 1000 hours from a
// default-constructed TimePoint ("never"). Regression: the start was
// hours(1000).count() taken as nanoseconds, 1 microsecond after "never".
TEST(ClockTest, FakeClocksStartAtTheSameFixedPoint) {
  FakeClock a;
  FakeClock b;
  EXPECT_EQ(a.Now(), b.Now());
  EXPECT_EQ(a.Now() - Clock::TimePoint{}, hours(1000));
}

// Tests that Advance moves a FakeClock forward by exactly the amount given,
// down to nanoseconds, and accumulates.
TEST(ClockTest, FakeClockAdvancesExactly) {
  FakeClock clock;
  Clock::TimePoint start = clock.Now();
  clock.Advance(seconds(5));
  EXPECT_EQ(clock.Now() - start, seconds(5));
  clock.Advance(milliseconds(250));
  clock.Advance(nanoseconds(1));
  EXPECT_EQ(clock.Now() - start, seconds(5) + milliseconds(250) + nanoseconds(1));
  clock.Advance(Clock::Duration::zero());
  EXPECT_EQ(clock.Now() - start, seconds(5) + milliseconds(250) + nanoseconds(1));
}

// Tests that concurrent Advance calls from several threads all count.
TEST(ClockTest, ConcurrentAdvancesAllCount) {
  constexpr int kThreads = 4;
  constexpr int kAdvances = 1000;
  FakeClock clock;
  Clock::TimePoint start = clock.Now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < kAdvances; ++k) clock.Advance(milliseconds(1));
    });
  }
  // Bounded by construction: each thread does a fixed amount of non-blocking work.
  for (auto& t : threads) t.join();
  EXPECT_EQ(clock.Now() - start, milliseconds(kThreads * kAdvances));
}

// Tests that ScopedClockForTesting installs its clock for the scope and
// restores the system clock when the scope ends.
TEST(ClockTest, ScopedClockInstallsAndRestores) {
  FakeClock fake;
  {
    ScopedClockForTesting installed(&fake);
    EXPECT_EQ(&GetClock(), &fake);
    EXPECT_EQ(GetClock().Now(), fake.Now());
    fake.Advance(seconds(3));
    EXPECT_EQ(GetClock().Now(), fake.Now());
  }
  EXPECT_NE(&GetClock(), &fake);
  auto before = std::chrono::steady_clock::now();
  Clock::TimePoint now = GetClock().Now();
  auto after = std::chrono::steady_clock::now();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
}

// Tests that SetClockForTesting(nullptr) restores the system clock.
TEST(ClockTest, SetClockNullRestoresSystemClock) {
  FakeClock fake;
  const Clock* system = &GetClock();
  SetClockForTesting(&fake);
  EXPECT_EQ(&GetClock(), &fake);
  SetClockForTesting(nullptr);
  EXPECT_EQ(&GetClock(), system);
}

// Tests that an installed clock is what other threads see too.
TEST(ClockTest, InstalledClockIsProcessWide) {
  FakeClock fake;
  fake.Advance(hours(2));
  ScopedClockForTesting installed(&fake);
  const Clock* seen = nullptr;
  Clock::TimePoint seen_now{};
  std::thread t([&] {
    seen = &GetClock();
    seen_now = GetClock().Now();
  });
  t.join();  // Bounded: the thread does two reads and returns.
  EXPECT_EQ(seen, &fake);
  EXPECT_EQ(seen_now, fake.Now());
}

}  // namespace
}  // namespace apartments
