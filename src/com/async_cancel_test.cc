// Tests of the early withdrawal of a cancellable co_await CallAsync
// (Apartment::CallAsync(f, CallOptions), src/com/modern_apartment.cc): a
// stop request or a deadline withdraws the queued task at once, and exactly
// one of withdrawal, the apartment running it, and the apartment's shutdown
// ends it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "apartments/apartment.h"
#include "apartments/clock.h"
#include "apartments/error_info.h"
#include "apartments/message_queue.h"
#include "apartments/task.h"
#include "apartments/win32.h"
#include "com/apartment_test_peer.h"
#include "com/cancel_test_util.h"
#include "message/queue.h"
#include "message/test_util.h"

namespace apartments {
namespace {

using internal::testing::Block;
using internal::testing::BoundedThread;
using internal::testing::Eventually;
using internal::testing::QueueDepth;
using internal::testing::ScopedPostLimit;
using internal::testing::TestEvent;

constexpr auto kBound = std::chrono::seconds(10);

// What one awaiting coroutine saw: where it resumed, and how often (a second
// resumption of a finished coroutine would be a crash or a count of 2).
struct Observed {
  std::atomic<bool> ran{false};
  std::atomic<DWORD> resumed_on{0};
  std::atomic<int> resumes{0};
};

Task<Result<int>> AwaitCall(const Apartment& apartment, CallOptions options, Observed* seen) {
  Result<int> r = co_await apartment.CallAsync(
      [seen] {
        seen->ran = true;
        return 7;
      },
      std::move(options));
  seen->resumed_on = GetCurrentThreadId();
  ++seen->resumes;
  co_return r;
}

// Runs everything queued on `apartment` before it (a Call waits for its turn).
void Flush(const Apartment& apartment) {
  ASSERT_TRUE(Eventually([&] { return QueueDepth(apartment.thread_id()) == 0; }));
  ASSERT_TRUE(apartment.Call([] {}).has_value());
}

TEST(AsyncCancelTest, StopWhileQueuedResumesAtOnceAndFreesQuotaSlot) {
  // Tests that a CallAsync queued behind a blocked apartment, whose stop is then
  // requested, resumes with RPC_E_CALL_CANCELED before the apartment is released, on
  // the requesting thread; its callable never runs and its quota slot is freed at once
  // (with the queue at the quota, one more post succeeds).
  constexpr DWORD kLimit = 8;
  ScopedPostLimit limit(kLimit);
  TestEvent started, release;
  Apartment apartment({.name = "acancel-stop"});
  Block(apartment, started, release);
  for (DWORD i = 0; i + 1 < kLimit; ++i) ASSERT_EQ(apartment.Post([] {}), S_OK);
  std::stop_source stop;
  Observed seen;
  Task<Result<int>> task = AwaitCall(apartment, CallOptions{stop.get_token(), {}}, &seen);
  EXPECT_EQ(QueueDepth(apartment.thread_id()), kLimit);
  EXPECT_EQ(apartment.Post([] {}), RPC_E_SYS_CALL_FAILED);  // Full: the call holds a slot.

  stop.request_stop();
  ASSERT_TRUE(task.WaitFor(kBound));  // The apartment is still blocked.
  Result<int> r = task.Get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_CALL_CANCELED);
  EXPECT_THAT(r.error().message, ::testing::HasSubstr("still queued"));
  EXPECT_THAT(r.error().message, ::testing::HasSubstr("acancel-stop"));
  EXPECT_EQ(seen.resumed_on.load(), GetCurrentThreadId());
  EXPECT_EQ(QueueDepth(apartment.thread_id()), kLimit - 1);
  EXPECT_EQ(apartment.Post([] {}), S_OK);  // The freed slot.

  release.Set();
  Flush(apartment);
  EXPECT_FALSE(seen.ran.load());
  EXPECT_EQ(seen.resumes.load(), 1);
  SetErrorInfo(0, nullptr);  // The refused post's explanation stays out of later tests.
}

TEST(AsyncCancelTest, DeadlineWhileQueuedResumesWhenFakeClockPassesIt) {
  // Tests that a CallAsync queued behind a blocked apartment resumes with RPC_E_TIMEOUT
  // when a FakeClock is advanced past its deadline (not before), on the deadline
  // thread, before the apartment is released; its callable never runs and its quota
  // slot is freed.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  TestEvent started, release;
  Apartment apartment({.name = "acancel-dl"});
  Block(apartment, started, release);
  Observed seen, marker_seen;
  Task<Result<int>> task =
      AwaitCall(apartment, CallOptions{{}, clock.Now() + std::chrono::seconds(2)}, &seen);
  // A marker with an earlier deadline: once it has resumed, the deadline thread has
  // also looked at the later deadline after this advance, and must have left it.
  Task<Result<int>> marker =
      AwaitCall(apartment, CallOptions{{}, clock.Now() + std::chrono::seconds(1)}, &marker_seen);
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 2u);

  clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(marker.WaitFor(kBound));
  EXPECT_EQ(marker.Get().code(), RPC_E_TIMEOUT);
  EXPECT_FALSE(task.WaitFor(std::chrono::seconds(0)));  // Its deadline has not passed.
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 1u);

  clock.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(task.WaitFor(kBound));  // The apartment is still blocked.
  Result<int> r = task.Get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_TIMEOUT);
  EXPECT_THAT(r.error().message, ::testing::HasSubstr("still queued"));
  EXPECT_THAT(r.error().message, ::testing::HasSubstr("deadline thread"));
  EXPECT_NE(seen.resumed_on.load(), GetCurrentThreadId());
  EXPECT_NE(seen.resumed_on.load(), apartment.thread_id());
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 0u);

  release.Set();
  Flush(apartment);
  EXPECT_FALSE(seen.ran.load());
  EXPECT_FALSE(marker_seen.ran.load());
}

TEST(AsyncCancelTest, AlreadyCancelledIsNeverQueued) {
  // Tests that a CallAsync whose stop is already requested, or whose deadline has
  // already passed, resumes at once on the awaiting thread with the error without
  // being queued.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  TestEvent started, release;
  Apartment apartment({.name = "acancel-early"});
  Block(apartment, started, release);
  std::stop_source stop;
  stop.request_stop();
  Observed stopped, late;
  Task<Result<int>> a = AwaitCall(apartment, CallOptions{stop.get_token(), {}}, &stopped);
  Task<Result<int>> b = AwaitCall(apartment, CallOptions{{}, clock.Now()}, &late);
  ASSERT_TRUE(a.WaitFor(std::chrono::seconds(0)));  // Finished before the call returned.
  ASSERT_TRUE(b.WaitFor(std::chrono::seconds(0)));
  Result<int> ra = a.Get();
  Result<int> rb = b.Get();
  EXPECT_EQ(ra.code(), RPC_E_CALL_CANCELED);
  EXPECT_EQ(rb.code(), RPC_E_TIMEOUT);
  EXPECT_THAT(ra.error().message, ::testing::HasSubstr("before it was queued"));
  EXPECT_EQ(stopped.resumed_on.load(), GetCurrentThreadId());
  EXPECT_EQ(late.resumed_on.load(), GetCurrentThreadId());
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 0u);
  release.Set();
  Flush(apartment);
  EXPECT_FALSE(stopped.ran.load());
  EXPECT_FALSE(late.ran.load());
}

// The options come in as a parameter: GCC 12 destroys twice a temporary of a
// class type with a non-trivial destructor (a braced CallOptions{...}, a lambda
// capturing a std::string) made inside the co_await expression.
Task<Result<bool>> AwaitStoppable(const Apartment& apartment, CallOptions options,
                                  TestEvent* running, TestEvent* release, Observed* seen) {
  Result<bool> r = co_await apartment.CallAsync(
      [running, release](std::stop_token token) {
        running->Set();
        (void)release->Wait();
        return token.stop_requested();
      },
      std::move(options));
  seen->resumed_on = GetCurrentThreadId();
  co_return r;
}

TEST(AsyncCancelTest, StopWhileRunningLetsCallableFinishWithItsValue) {
  // Tests that a stop requested while the callable runs is not a withdrawal: the
  // callable sees it on its token, and the coroutine resumes on the apartment thread
  // after it returns, with its value.
  Apartment apartment({.name = "acancel-run"});
  TestEvent running, release;
  std::stop_source stop;
  Observed seen;
  Task<Result<bool>> task =
      AwaitStoppable(apartment, CallOptions{stop.get_token(), {}}, &running, &release, &seen);
  ASSERT_TRUE(running.Wait());
  stop.request_stop();
  EXPECT_FALSE(task.WaitFor(std::chrono::seconds(0)));  // Still running: it was not withdrawn.
  release.Set();
  ASSERT_TRUE(task.WaitFor(kBound));
  Result<bool> r = task.Get();
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(*r);
  EXPECT_EQ(seen.resumed_on.load(), apartment.thread_id());
}

TEST(AsyncCancelTest, WithdrawnTaskInRetrievalBatchIsSkippedAfterItsFrameIsFreed) {
  // Tests the withdrawal of a task whose message the apartment thread has already moved
  // into its retrieval batch (behind a blocked callable): the coroutine still resumes at
  // once, and after its frame is freed the thread skips the message (a tombstone)
  // without touching the freed task (AddressSanitizer checks); the slot is freed then.
  Apartment apartment({.name = "acancel-batch"});
  TestEvent first_started, first_release, second_started, second_release;
  Block(apartment, first_started, first_release);
  ASSERT_EQ(apartment.Post([&] {
    second_started.Set();
    (void)second_release.Wait();
  }), S_OK);
  std::stop_source stop;
  Observed seen;
  {
    Task<Result<int>> task = AwaitCall(apartment, CallOptions{stop.get_token(), {}}, &seen);
    // The thread takes both queued messages into its batch and blocks in the first.
    first_release.Set();
    ASSERT_TRUE(second_started.Wait());
    EXPECT_EQ(QueueDepth(apartment.thread_id()), 1u);
    stop.request_stop();
    ASSERT_TRUE(task.WaitFor(kBound));
    EXPECT_EQ(task.Get().code(), RPC_E_CALL_CANCELED);
  }  // The coroutine frame, with the task in it, is freed here.
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 1u);  // Retrieved only when reached.
  second_release.Set();
  Flush(apartment);
  EXPECT_FALSE(seen.ran.load());
  EXPECT_EQ(seen.resumes.load(), 1);
}

// The outcome of one race between a cancellation and the apartment: either the
// callable ran and its value arrived, or it was cancelled and never ran.
struct Tally {
  int ran = 0;
  int withdrawn = 0;  // Cancelled while queued.
  int skipped = 0;    // Cancelled after the apartment took it, before it started.
};

void CheckOneOutcome(Task<Result<int>>& task, const Observed& seen, HRESULT why, Tally* tally) {
  ASSERT_TRUE(task.WaitFor(kBound));
  Result<int> r = task.Get();
  EXPECT_EQ(seen.resumes.load(), 1);
  if (r.has_value()) {
    EXPECT_EQ(*r, 7);
    EXPECT_TRUE(seen.ran.load());
    ++tally->ran;
  } else {
    EXPECT_EQ(r.error().code, why) << r.error().message;
    EXPECT_FALSE(seen.ran.load());
    ++(::testing::Value(r.error().message, ::testing::HasSubstr("still queued")) ? tally->withdrawn
                                                                                 : tally->skipped);
  }
}

// Varies the interleaving from one iteration to the next (not a wait for anything).
void Jitter(int i) {
  for (int k = 0; k < i % 7; ++k) std::this_thread::yield();
}

TEST(AsyncCancelTest, StopRacingTheApartmentHasExactlyOneOutcome) {
  // Tests that a stop requested while the apartment is taking the task ends it exactly
  // once: it ran (and the coroutine has its value) or it was cancelled and never ran;
  // the coroutine resumes once.
  Apartment apartment({.name = "acancel-race"});
  Tally tally;
  for (int i = 0; i < 2000; ++i) {
    std::stop_source stop;
    Observed seen;
    Task<Result<int>> task = AwaitCall(apartment, CallOptions{stop.get_token(), {}}, &seen);
    Jitter(i);
    stop.request_stop();
    CheckOneOutcome(task, seen, RPC_E_CALL_CANCELED, &tally);
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("stop race: %d ran, %d withdrawn, %d skipped\n", tally.ran, tally.withdrawn,
              tally.skipped);
}

TEST(AsyncCancelTest, DeadlineRacingTheApartmentHasExactlyOneOutcome) {
  // Tests that a deadline passing (a FakeClock advanced) while the apartment is taking
  // the task ends it exactly once, as for a stop request.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  Apartment apartment({.name = "acancel-dlrace"});
  Tally tally;
  for (int i = 0; i < 1000; ++i) {
    Observed seen;
    Task<Result<int>> task =
        AwaitCall(apartment, CallOptions{{}, clock.Now() + std::chrono::milliseconds(1)}, &seen);
    Jitter(i);
    clock.Advance(std::chrono::milliseconds(1));
    CheckOneOutcome(task, seen, RPC_E_TIMEOUT, &tally);
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("deadline race: %d ran, %d withdrawn, %d skipped\n", tally.ran, tally.withdrawn,
              tally.skipped);
}

TEST(AsyncCancelTest, ShutdownRacingCancellationResumesEachCoroutineOnce) {
  // Tests that cancellations (stop requests, and deadlines on odd iterations) racing the
  // apartment's shutdown drain end every queued CallAsync exactly once, with
  // RPC_E_CALL_CANCELED / RPC_E_TIMEOUT (withdrawn) or RPC_E_DISCONNECTED (dropped),
  // never running it; nothing leaks (AddressSanitizer checks).
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  constexpr int kCalls = 8;
  int withdrawn = 0;
  int dropped = 0;
  for (int i = 0; i < 40; ++i) {
    const bool by_deadline = i % 2 == 1;
    auto apartment = std::make_unique<Apartment>(Apartment::Options{.name = "acancel-down"});
    TestEvent started, release, go;
    Block(*apartment, started, release);
    std::stop_source stop;
    std::vector<std::unique_ptr<Observed>> seen;
    std::vector<Task<Result<int>>> tasks;
    for (int k = 0; k < kCalls; ++k) {
      seen.push_back(std::make_unique<Observed>());
      CallOptions options;
      if (by_deadline) {
        options.deadline = clock.Now() + std::chrono::seconds(1);
      } else {
        options.stop = stop.get_token();
      }
      tasks.push_back(AwaitCall(*apartment, std::move(options), seen.back().get()));
    }
    Apartment* raw = apartment.get();
    BoundedThread destroyer([&] { apartment.reset(); });
    BoundedThread canceller([&] {
      if (!go.Wait()) return;
      Jitter(i / 2);
      if (by_deadline) {
        clock.Advance(std::chrono::seconds(1));
      } else {
        stop.request_stop();
      }
    });
    // Everything queued now meets the shutdown once the blocker returns.
    ASSERT_TRUE(Eventually([&] { return internal::ApartmentTestPeer::StopRequested(*raw); }));
    go.Set();
    release.Set();
    destroyer.Join();
    canceller.Join();
    const HRESULT why = by_deadline ? RPC_E_TIMEOUT : RPC_E_CALL_CANCELED;
    for (int k = 0; k < kCalls; ++k) {
      ASSERT_TRUE(tasks[k].WaitFor(kBound));
      const HRESULT code = tasks[k].Get().code();
      EXPECT_TRUE(code == why || code == RPC_E_DISCONNECTED) << std::hex << code;
      (code == RPC_E_DISCONNECTED ? dropped : withdrawn) += 1;
      EXPECT_EQ(seen[k]->resumes.load(), 1);
      EXPECT_FALSE(seen[k]->ran.load());
    }
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("shutdown race: %d withdrawn, %d dropped\n", withdrawn, dropped);
}

}  // namespace
}  // namespace apartments
