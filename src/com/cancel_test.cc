// Tests of call cancellation and deadlines (com/cancel.h): the channel's
// withdrawal of queued calls, cancellation of running calls, the Win32
// CoCancelCall family and the modern API's stop tokens and deadlines.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include "apartments/apartment.h"
#include "apartments/bound.h"
#include "apartments/clock.h"
#include "apartments/message_queue.h"
#include "apartments/task.h"
#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/apartment_test_peer.h"
#include "com/cancel.h"
#include "com/com_test_util.h"
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

TEST(CancelTest, CancelWhileQueuedWithdrawsCallAndFreesQuotaSlot) {
  // Tests that a call cancelled while queued never runs and gives its quota slot back:
  // with the queue at the quota, cancelling it lets one more post succeed.
  constexpr DWORD kLimit = 8;
  ScopedPostLimit limit(kLimit);
  Apartment apartment({.name = "cancel-queued"});
  TestEvent started, release;
  Block(apartment, started, release);
  for (DWORD i = 0; i + 1 < kLimit; ++i) ASSERT_EQ(apartment.Post([] {}), S_OK);
  std::atomic<bool> ran{false};
  std::stop_source stop;
  std::promise<Error> result;
  BoundedThread caller([&] {
    Result<int> r = apartment.Call(
        [&] {
          ran = true;
          return 1;
        },
        CallOptions{stop.get_token(), std::nullopt});
    result.set_value(r.has_value() ? Error{S_OK, ""} : r.error());
  });
  ASSERT_TRUE(Eventually([&] { return QueueDepth(apartment.thread_id()) == kLimit; }));
  EXPECT_EQ(apartment.Post([] {}), RPC_E_SYS_CALL_FAILED);  // Full: the call holds a slot.
  stop.request_stop();
  std::future<Error> future = result.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  Error error = future.get();
  EXPECT_EQ(error.code, RPC_E_CALL_CANCELED);
  EXPECT_THAT(error.message, ::testing::HasSubstr("never ran"));
  EXPECT_THAT(error.message, ::testing::HasSubstr("cancel-queued"));
  EXPECT_EQ(QueueDepth(apartment.thread_id()), kLimit - 1);
  EXPECT_EQ(apartment.Post([] {}), S_OK);  // The freed slot.
  release.Set();
  caller.Join();
  ASSERT_TRUE(Eventually([&] { return QueueDepth(apartment.thread_id()) == 0; }));
  ASSERT_TRUE(apartment.Call([] {}).has_value());  // Runs after everything queued before.
  EXPECT_FALSE(ran.load());
  SetErrorInfo(0, nullptr);  // The refused post's explanation stays out of later tests.
}

TEST(CancelTest, CancelAfterTargetTookItsBatchLeavesTombstone) {
  // Tests the withdrawal of a call whose message the target thread has already moved
  // into its retrieval batch (behind a blocked callable): the caller still returns at
  // once, the call never runs, and its message is skipped when the thread reaches it.
  Apartment apartment({.name = "cancel-batch"});
  TestEvent first_started, first_release, second_started, second_release;
  Block(apartment, first_started, first_release);
  ASSERT_EQ(apartment.Post([&] {
    second_started.Set();
    (void)second_release.Wait();
  }), S_OK);
  std::atomic<bool> ran{false};
  std::stop_source stop;
  std::promise<Error> result;
  BoundedThread caller([&] {
    Result<void> r = apartment.Call([&] { ran = true; }, CallOptions{stop.get_token(), {}});
    result.set_value(r.has_value() ? Error{S_OK, ""} : r.error());
  });
  ASSERT_TRUE(Eventually([&] { return QueueDepth(apartment.thread_id()) == 2; }));
  // The thread takes both queued messages into its batch and blocks in the first.
  first_release.Set();
  ASSERT_TRUE(second_started.Wait());
  stop.request_stop();
  std::future<Error> future = result.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  Error error = future.get();
  EXPECT_EQ(error.code, RPC_E_CALL_CANCELED);
  EXPECT_THAT(error.message, ::testing::HasSubstr("never ran"));
  second_release.Set();
  caller.Join();
  ASSERT_TRUE(apartment.Call([] {}).has_value());
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 0u);
}

TEST(CancelTest, StopRequestedBeforeCallNeverRuns) {
  // Tests that a call whose token is already stopped returns RPC_E_CALL_CANCELED
  // and never runs.
  Apartment apartment({.name = "cancel-early"});
  std::stop_source stop;
  stop.request_stop();
  std::atomic<bool> ran{false};
  BoundedThread caller([&] {
    Result<void> r = apartment.Call([&] { ran = true; }, CallOptions{stop.get_token(), {}});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, RPC_E_CALL_CANCELED);
  });
  caller.Join();
  ASSERT_TRUE(apartment.Call([] {}).has_value());
  EXPECT_FALSE(ran.load());
}

TEST(CancelTest, CancelWhileRunningReachesCallee) {
  // Tests that a running callee sees the cancellation (stop token, CoTestCancel) and the
  // caller gets RPC_E_CALL_CANCELED once the callee returns.
  Apartment apartment({.name = "cancel-running"});
  TestEvent running;
  std::stop_source stop;
  std::atomic<HRESULT> test_before{S_OK}, test_after{S_OK};
  std::atomic<bool> saw_stop{false};
  std::promise<Error> result;
  BoundedThread caller([&] {
    Result<int> r = apartment.Call(
        [&](std::stop_token token) {
          test_before = CoTestCancel();
          running.Set();
          std::mutex mu;
          std::condition_variable_any cv;
          std::unique_lock lock(mu);
          // Woken by the stop request itself; bounded so a bug fails, not hangs.
          saw_stop = cv.wait_for(lock, token, kBound, [] { return false; }) ||
                     token.stop_requested();
          test_after = CoTestCancel();
          return 5;
        },
        CallOptions{stop.get_token(), std::nullopt});
    result.set_value(r.has_value() ? Error{S_OK, ""} : r.error());
  });
  ASSERT_TRUE(running.Wait());
  stop.request_stop();
  std::future<Error> future = result.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  Error error = future.get();
  EXPECT_EQ(error.code, RPC_E_CALL_CANCELED);
  EXPECT_THAT(error.message, ::testing::HasSubstr("while it was running"));
  EXPECT_TRUE(saw_stop.load());
  EXPECT_EQ(test_before.load(), RPC_S_CALLPENDING);
  EXPECT_EQ(test_after.load(), RPC_E_CALL_CANCELED);
}

TEST(CancelTest, CancelRacingCompletionHasExactlyOneOutcome) {
  // Tests that cancelling races completion safely: each call either ran (value, or
  // cancelled while running) or never ran (withdrawn or refused before start), and the
  // number of runs equals the number of calls that say they ran.
  Apartment apartment({.name = "cancel-race"});
  constexpr int kIterations = 300;
  std::atomic<int> runs{0};
  int said_ran = 0, said_never = 0, values = 0;
  BoundedThread caller([&] {
    for (int i = 0; i < kIterations; ++i) {
      std::stop_source stop;
      std::thread canceller([&] { stop.request_stop(); });
      Result<int> r = apartment.Call(
          [&] {
            runs.fetch_add(1);
            return 1;
          },
          CallOptions{stop.get_token(), std::nullopt});
      canceller.join();
      if (r.has_value()) {
        ++values;
        ++said_ran;
      } else {
        ASSERT_EQ(r.error().code, RPC_E_CALL_CANCELED);
        if (::testing::Value(r.error().message, ::testing::HasSubstr("never ran"))) {
          ++said_never;
        } else {
          ASSERT_THAT(r.error().message, ::testing::HasSubstr("while it was running"));
          ++said_ran;
        }
      }
    }
  });
  caller.Join();
  ASSERT_TRUE(apartment.Call([] {}).has_value());  // Nothing withdrawn runs late.
  std::printf("race outcomes: %d values, %d ran then cancelled, %d never ran\n", values, said_ran - values, said_never);
  EXPECT_EQ(said_ran + said_never, kIterations);
  EXPECT_EQ(runs.load(), said_ran);
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 0u);
}

TEST(CancelTest, DeadlineWithFakeClockTimesOutQueuedCall) {
  // Tests that a call whose deadline passes (a FakeClock advanced by the test) while it
  // is queued returns RPC_E_TIMEOUT, explained, and never runs.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  Apartment apartment({.name = "cancel-deadline"});
  TestEvent started, release;
  Block(apartment, started, release);
  std::atomic<bool> ran{false};
  std::promise<Error> result;
  const Clock::TimePoint deadline = clock.Now() + std::chrono::seconds(1);
  BoundedThread caller([&] {
    Result<void> r = apartment.Call([&] { ran = true; }, CallOptions{{}, deadline});
    result.set_value(r.has_value() ? Error{S_OK, ""} : r.error());
  });
  ASSERT_TRUE(Eventually([&] { return QueueDepth(apartment.thread_id()) == 1; }));
  std::future<Error> future = result.get_future();
  clock.Advance(std::chrono::milliseconds(500));
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 1u);  // Still queued: not yet due.
  clock.Advance(std::chrono::milliseconds(600));
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  Error error = future.get();
  EXPECT_EQ(error.code, RPC_E_TIMEOUT);
  EXPECT_THAT(error.message, ::testing::HasSubstr("deadline passed"));
  EXPECT_THAT(error.message, ::testing::HasSubstr("never ran"));
  EXPECT_EQ(QueueDepth(apartment.thread_id()), 0u);
  release.Set();
  caller.Join();
  ASSERT_TRUE(apartment.Call([] {}).has_value());
  EXPECT_FALSE(ran.load());
}

TEST(CancelTest, DeadlineAlreadyPassedNeverRuns) {
  // Tests that a deadline in the past fails the call with RPC_E_TIMEOUT without running it.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  Apartment apartment({.name = "cancel-past"});
  std::atomic<bool> ran{false};
  BoundedThread caller([&] {
    Result<void> r = apartment.Call([&] { ran = true; },
                                    CallOptions{{}, clock.Now() - std::chrono::seconds(1)});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, RPC_E_TIMEOUT);
  });
  caller.Join();
  ASSERT_TRUE(apartment.Call([] {}).has_value());
  EXPECT_FALSE(ran.load());
}

struct Slow {
  int Wait(HANDLE release) {
    (void)WaitForSingleObject(release, 10000);
    return 3;
  }
};

TEST(CancelTest, BoundCallWithOptionsIsCancellable) {
  // Tests that Bound<T>::CallWithOptions withdraws a queued method call when stopped.
  Apartment apartment({.name = "cancel-bound"});
  Result<Bound<Slow>> bound = Bound<Slow>::Create(apartment);
  ASSERT_TRUE(bound.has_value());
  TestEvent started, release;
  Block(apartment, started, release);
  std::stop_source stop;
  stop.request_stop();
  BoundedThread caller([&] {  // Keeps the error info off the test's main thread.
    Result<int> r = bound->CallWithOptions(CallOptions{stop.get_token(), {}}, &Slow::Wait,
                                           release.get());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, RPC_E_CALL_CANCELED);
  });
  caller.Join();
  release.Set();
}

TEST(Win32CancelTest, EnableDisableAreCountedAndValidated) {
  // Tests CoEnableCallCancellation/CoDisableCallCancellation counting and arguments,
  // with Windows' codes: every disable that undoes an enable says S_OK.
  BoundedThread thread([] {
    int reserved = 0;
    EXPECT_EQ(CoEnableCallCancellation(&reserved), E_INVALIDARG);
    EXPECT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    EXPECT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);  // One enable remains.
    EXPECT_EQ(CoCancelCall(0, 0), E_NOINTERFACE);  // Still enabled, but no call pending.
    EXPECT_EQ(CoDisableCallCancellation(&reserved), E_INVALIDARG);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);
    EXPECT_EQ(CoCancelCall(0, 0), CO_E_CANCEL_DISABLED);
    EXPECT_EQ(CoTestCancel(), RPC_E_CALL_COMPLETE);  // Not inside an incoming call.
  });
}

TEST(Win32CancelTest, DisableWithNothingEnabledIsCancelDisabled) {
  // Tests that CoDisableCallCancellation with nothing enabled returns
  // CO_E_CANCEL_DISABLED and changes nothing, before any enable and after the
  // enables are undone (Windows; this returned E_FAIL).
  BoundedThread thread([] {
    EXPECT_EQ(CoDisableCallCancellation(nullptr), CO_E_CANCEL_DISABLED);
    EXPECT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), CO_E_CANCEL_DISABLED);
    EXPECT_EQ(CoCancelCall(0, 0), CO_E_CANCEL_DISABLED);
    EXPECT_EQ(CoEnableCallCancellation(nullptr), S_OK);  // Not driven below zero.
    EXPECT_EQ(CoCancelCall(0, 0), E_NOINTERFACE);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);
  });
}

TEST(Win32CancelTest, CountSurvivesCoInitializeAndCoUninitialize) {
  // Tests that the enable count belongs to the thread: CoInitializeEx and the
  // last CoUninitialize leave it as it is (Windows, per Wine's
  // test_call_cancellation; this used to reset it at CoUninitialize).
  BoundedThread thread([] {
    EXPECT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);  // The enable made before.
    EXPECT_EQ(CoDisableCallCancellation(nullptr), CO_E_CANCEL_DISABLED);
    EXPECT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    CoUninitialize();
    EXPECT_EQ(CoCancelCall(0, 0), E_NOINTERFACE);  // Still enabled.
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);
    EXPECT_EQ(CoDisableCallCancellation(nullptr), CO_E_CANCEL_DISABLED);
  });
}

TEST(Win32CancelTest, CoCancelCallFromAnotherThread) {
  // Tests that CoCancelCall from another thread reaches the callee (CoTestCancel), that
  // a second cancel says RPC_E_CALL_CANCELED, and that the caller gets the callee's
  // RPC_E_CALL_CANCELED with error info.
  Apartment apartment({.name = "cancel-win32"});
  TestEvent running, cancelled;
  std::atomic<HRESULT> seen{S_OK};
  std::atomic<DWORD> caller_tid{0};
  std::promise<HRESULT> result;
  BoundedThread caller([&] {
    caller_tid = GetCurrentThreadId();
    EXPECT_EQ(CoCancelCall(0, 0), CO_E_CANCEL_DISABLED);
    ASSERT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    // The call's HRESULT: its error, else the callee's.
    Result<HRESULT> r = apartment.Call([&]() -> HRESULT {
      running.Set();
      if (!cancelled.Wait()) return E_FAIL;
      seen = CoTestCancel();
      return seen.load() == RPC_E_CALL_CANCELED ? RPC_E_CALL_CANCELED : S_OK;
    });
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);
    result.set_value(r ? *r : r.code());
  });
  ASSERT_TRUE(running.Wait());
  EXPECT_EQ(CoCancelCall(caller_tid.load(), 0), S_OK);
  EXPECT_EQ(CoCancelCall(caller_tid.load(), 0), RPC_E_CALL_CANCELED);
  cancelled.Set();
  std::future<HRESULT> future = result.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(future.get(), RPC_E_CALL_CANCELED);
  EXPECT_EQ(seen.load(), RPC_E_CALL_CANCELED);
}

TEST(Win32CancelTest, CoCancelCallReportsCompletionWithinTimeout) {
  // Tests that CoCancelCall with a timeout returns RPC_E_CALL_COMPLETE when the callee
  // ignores the request and completes with its own result, which the caller gets.
  Apartment apartment({.name = "cancel-complete"});
  TestEvent running;
  std::atomic<DWORD> caller_tid{0};
  std::promise<HRESULT> result;
  std::stop_source done;
  BoundedThread caller([&] {
    caller_tid = GetCurrentThreadId();
    ASSERT_EQ(CoEnableCallCancellation(nullptr), S_OK);
    Result<HRESULT> r = apartment.Call([&]() -> HRESULT {
      running.Set();
      // Returns once the cancel request is visible (bounded), ignoring it.
      for (auto until = std::chrono::steady_clock::now() + kBound;
           CoTestCancel() != RPC_E_CALL_CANCELED && std::chrono::steady_clock::now() < until;) {
        std::this_thread::yield();
      }
      return S_FALSE;
    });
    EXPECT_EQ(CoDisableCallCancellation(nullptr), S_OK);
    result.set_value(r ? *r : r.code());
  });
  ASSERT_TRUE(running.Wait());
  EXPECT_EQ(CoCancelCall(caller_tid.load(), 10), RPC_E_CALL_COMPLETE);
  std::future<HRESULT> future = result.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(future.get(), S_FALSE);
}

TEST(Win32CancelTest, CallsWithoutCancellationAreNotCancellable) {
  // Tests that CoCancelCall cannot reach a call made while cancellation was disabled.
  Apartment apartment({.name = "cancel-off"});
  TestEvent running, release;
  std::atomic<DWORD> caller_tid{0};
  BoundedThread caller([&] {
    caller_tid = GetCurrentThreadId();
    Result<int> r = apartment.Call([&] {
      running.Set();
      (void)release.Wait();
      return 9;
    });
    EXPECT_EQ(r.value_or(-1), 9);
  });
  ASSERT_TRUE(running.Wait());
  EXPECT_EQ(CoCancelCall(caller_tid.load(), 0), CO_E_CANCEL_DISABLED);
  release.Set();
}

}  // namespace
}  // namespace apartments

namespace apartments {
namespace {

TEST(ModernFutureTest, CallFutureDeliversValueFaultAndDisconnect) {
  // Tests that CallFuture's future carries the value, RPC_E_SERVERFAULT, and
  // RPC_E_DISCONNECTED for a callable dropped at shutdown (never a broken promise).
  auto apartment = std::make_unique<Apartment>(Apartment::Options{.name = "future"});
  std::future<Result<DWORD>> tid = apartment->CallFuture([] { return GetCurrentThreadId(); });
  ASSERT_EQ(tid.wait_for(kBound), std::future_status::ready);
  Result<DWORD> value = tid.get();
  ASSERT_TRUE(value.has_value());
  EXPECT_EQ(*value, apartment->thread_id());
  std::future<Result<int>> fault =
      apartment->CallFuture([]() -> int { throw std::runtime_error("no luck"); });
  ASSERT_EQ(fault.wait_for(kBound), std::future_status::ready);
  Result<int> faulted = fault.get();
  ASSERT_FALSE(faulted.has_value());
  EXPECT_EQ(faulted.error().code, RPC_E_SERVERFAULT);
  EXPECT_THAT(faulted.error().message, ::testing::HasSubstr("no luck"));
  TestEvent started, release;
  Block(*apartment, started, release);
  std::atomic<bool> ran{false};
  std::future<Result<void>> dropped = apartment->CallFuture([&] { ran = true; });
  Apartment* raw = apartment.get();
  BoundedThread destroyer([&] { apartment.reset(); });
  ASSERT_TRUE(Eventually([&] { return internal::ApartmentTestPeer::StopRequested(*raw); }));
  release.Set();
  destroyer.Join();
  ASSERT_EQ(dropped.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(dropped.get().code(), RPC_E_DISCONNECTED);
  EXPECT_FALSE(ran.load());
}

TEST(ModernCheckerDeathTest, WrongApartmentAborts) {
  // Tests that APARTMENTS_CHECK_ON_APARTMENT aborts, naming the expression, when used
  // off the apartment's thread, and passes on it.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Apartment apartment({.name = "affine"});
  EXPECT_TRUE(apartment.Call([&] { APARTMENTS_CHECK_ON_APARTMENT(apartment); }).has_value());
  EXPECT_DEATH(APARTMENTS_CHECK_ON_APARTMENT(apartment), "apartment");
}

}  // namespace
}  // namespace apartments

namespace apartments {
namespace {

Task<Result<int>> AsyncCancellable(const Apartment& apartment, std::atomic<bool>* ran,
                                   CallOptions options) {
  co_return co_await apartment.CallAsync(
      [ran] {
        *ran = true;
        return 1;
      },
      std::move(options));
}

TEST(CancelCoroutineTest, CancelledCallAsyncResumesWithErrorAndNeverRuns) {
  // Tests that a CallAsync whose token is stopped while it is queued resumes with
  // RPC_E_CALL_CANCELED (never hangs) and its callable never runs.
  Apartment apartment({.name = "cancel-coro"});
  TestEvent started, release;
  Block(apartment, started, release);
  std::stop_source stop;
  std::atomic<bool> ran{false};
  Task<Result<int>> task = AsyncCancellable(apartment, &ran, CallOptions{stop.get_token(), {}});
  stop.request_stop();
  release.Set();
  ASSERT_TRUE(task.WaitFor(kBound));
  Result<int> r = task.Get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_CALL_CANCELED);
  EXPECT_FALSE(ran.load());
}

TEST(CancelCoroutineTest, CallAsyncPastDeadlineResumesWithTimeout) {
  // Tests that a CallAsync reached after its (FakeClock) deadline resumes with RPC_E_TIMEOUT.
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  Apartment apartment({.name = "cancel-coro-dl"});
  TestEvent started, release;
  Block(apartment, started, release);
  std::atomic<bool> ran{false};
  Task<Result<int>> task =
      AsyncCancellable(apartment, &ran, CallOptions{{}, clock.Now() + std::chrono::seconds(1)});
  clock.Advance(std::chrono::seconds(2));
  release.Set();
  ASSERT_TRUE(task.WaitFor(kBound));
  EXPECT_EQ(task.Get().code(), RPC_E_TIMEOUT);
  EXPECT_FALSE(ran.load());
}

}  // namespace
}  // namespace apartments

namespace apartments::internal {
namespace {

TEST(ChannelCancelTest, StaCallerCancelsRunningMtaCall) {
  // Tests the channel directly: an STA caller (modal wait) cancels a call running on an
  // MTA worker, which sees its stop token; the caller gets RPC_E_CALL_CANCELED.
  CO_MTA_USAGE_COOKIE cookie;
  ASSERT_EQ(CoIncrementMTAUsage(&cookie), S_OK);
  ApartmentRef mta;
  BoundedThread find([&] { mta = CurrentApartment(); });
  find.Join();
  ASSERT_NE(mta, nullptr);
  std::stop_source stop;
  TestEvent running;
  std::atomic<bool> saw_stop{false};
  BoundedThread canceller([&] {
    if (running.Wait()) stop.request_stop();
  });
  testing::RunInSta([&] {
    CallControl control{stop.get_token(), std::nullopt};
    HRESULT hr = InvokeInApartment(
        mta,
        [&]() -> HRESULT {
          std::stop_token token = CurrentIncomingStopToken();
          running.Set();
          std::mutex mu;
          std::condition_variable_any cv;
          std::unique_lock lock(mu);
          saw_stop = cv.wait_for(lock, token, kBound, [] { return false; }) ||
                     token.stop_requested();
          return S_OK;
        },
        &control);
    EXPECT_EQ(hr, RPC_E_CALL_CANCELED);
    EXPECT_THAT(LastErrorDescription(), ::testing::HasSubstr("the MTA"));
  });
  canceller.Join();
  EXPECT_TRUE(saw_stop.load());
  EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
}

TEST(ChannelCancelTest, MessageFilterCancelCallWithdrawsQueuedCall) {
  // Tests that IMessageFilter::MessagePending answering PENDINGMSG_CANCELCALL cancels
  // the caller's queued call: it returns RPC_E_CALL_CANCELED and never runs.
  testing::StaThread b(L"filter-callee");
  TestEvent blocking, release;
  BoundedThread blocker([&] {
    testing::RunInMta([&] {
      EXPECT_EQ(InvokeInApartment(b.apartment(), [&] {
                  blocking.Set();
                  return release.Wait() ? S_OK : E_FAIL;
                }),
                S_OK);
    });
  });
  ASSERT_TRUE(blocking.Wait());
  testing::TestMessageFilter filter;
  filter.on_pending = [] { return static_cast<DWORD>(PENDINGMSG_CANCELCALL); };
  std::atomic<bool> ran{false};
  std::atomic<DWORD> a_tid{0};
  std::promise<HRESULT> result;
  BoundedThread a([&] {
    testing::RunInSta([&] {
      ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
      a_tid = GetCurrentThreadId();
      result.set_value(InvokeInApartment(b.apartment(), [&] {
        ran = true;
        return S_OK;
      }));
      MSG msg;
      EXPECT_TRUE(PeekMessageW(&msg, nullptr, WM_APP, WM_APP, PM_REMOVE));  // Left queued.
      ASSERT_EQ(CoRegisterMessageFilter(nullptr, nullptr), S_OK);
    });
  });
  ASSERT_TRUE(Eventually([&] { return a_tid.load() != 0 && QueueDepth(b.tid()) == 1; }));
  ASSERT_TRUE(PostThreadMessageW(a_tid.load(), WM_APP, 0, 0));
  std::future<HRESULT> future = result.get_future();
  ASSERT_EQ(future.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(future.get(), RPC_E_CALL_CANCELED);
  EXPECT_GT(filter.pending.load(), 0);
  release.Set();
  a.Join();
  blocker.Join();
  EXPECT_FALSE(ran.load());
}

}  // namespace
}  // namespace apartments::internal
