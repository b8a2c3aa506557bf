// Tests of the modern API (include/apartments/apartment.h, bound.h, task.h).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "apartments/apartment.h"
#include "apartments/bound.h"
#include "apartments/message_queue.h"
#include "apartments/task.h"
#include "apartments/win32.h"
#include "com/apartment_test_peer.h"
#include "message/queue.h"
#include "message/test_util.h"

namespace apartments {
namespace {

using internal::testing::BoundedThread;
using internal::testing::Eventually;
using internal::testing::QueueDepth;
using internal::testing::TestEvent;

constexpr auto kBound = std::chrono::seconds(10);

// Destroys `apartment` on a bounded thread while its loop is blocked in a
// callable that has started and waits for `release`; releases it only once
// the stop request is visible, so everything queued behind the blocker meets
// the shutdown. (Regression: with a blocker still queued, the loop dropped it
// at once and the apartment was gone while this still polled it.)
void DestroyWhileBlocked(std::unique_ptr<Apartment>& apartment, TestEvent& release) {
  Apartment* raw = apartment.get();
  BoundedThread destroyer([&] { apartment.reset(); });
  ASSERT_TRUE(Eventually([&] { return internal::ApartmentTestPeer::StopRequested(*raw); }));
  release.Set();
  destroyer.Join();
}

TEST(ModernApartmentTest, CallReturnsValueFromApartmentThread) {
  // Tests that Call runs the callable on the apartment's thread and returns its value.
  Apartment apartment({.name = "modern-call"});
  Result<DWORD> tid = apartment.Call([] { return GetCurrentThreadId(); });
  ASSERT_TRUE(tid.has_value()) << tid.error().message;
  EXPECT_EQ(*tid, apartment.thread_id());
  EXPECT_NE(*tid, GetCurrentThreadId());
  Result<void> done = apartment.Call([] {});
  EXPECT_TRUE(done.has_value());
}

TEST(ModernApartmentTest, PostedCallableWaitsOutModalLoop) {
  // Tests that a callable posted to an apartment that waits in the COM modal loop
  // (inside its own outgoing Call) does not run there, while a call into it is
  // served there; it runs once the apartment is back in its message loop. Posts and
  // calls share one queue and one message, so only the modal loop's filter keeps the
  // posted callable out.
  Apartment worker({.name = "modal-post"});
  Apartment other({.name = "modal-other"});
  std::atomic<bool> ran{false};
  std::atomic<bool> ran_inside{true};
  Result<bool> outer = worker.Call([&] {
    Result<void> inner = other.Call([&] {
      EXPECT_EQ(worker.Post([&] { ran = true; }), S_OK);
      // Queued behind the posted callable, and still served in the modal loop.
      EXPECT_TRUE(worker.Call([] {}).has_value());
    });
    ran_inside = ran.load();
    return inner.has_value();
  });
  ASSERT_TRUE(outer.has_value()) << outer.error().message;
  EXPECT_TRUE(*outer);
  EXPECT_FALSE(ran_inside.load());
  ASSERT_TRUE(Eventually([&] { return ran.load(); }));
}

TEST(ModernApartmentTest, ExceptionBecomesServerFaultWithMessage) {
  // Tests that a callable's exception arrives as RPC_E_SERVERFAULT with its what().
  Apartment apartment({.name = "modern-throw"});
  Result<int> r = apartment.Call([]() -> int { throw std::runtime_error("disk on fire"); });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_SERVERFAULT);
  EXPECT_NE(r.error().message.find("disk on fire"), std::string::npos) << r.error().message;
}

TEST(ModernApartmentTest, CallOnOwnThreadRunsDirectly) {
  // Tests that a Call made on the apartment's own thread runs inline (no deadlock).
  Apartment apartment({.name = "modern-nested"});
  Result<int> r = apartment.Call([&] { return apartment.Call([] { return 7; }).value_or(-1); });
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 7);
  EXPECT_TRUE(apartment.Call([&] { return apartment.IsCurrent(); }).value_or(false));
  EXPECT_FALSE(apartment.IsCurrent());
}

TEST(ModernApartmentTest, PostsRunInOrderBeforeALaterCall) {
  // Tests that posts run in FIFO order on the apartment thread, ahead of a later Call.
  Apartment apartment({.name = "modern-post"});
  std::vector<int> seen;  // Touched only on the apartment thread until the Call returns.
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(apartment.Post([&seen, i] { seen.push_back(i); }), S_OK);
  }
  Result<std::vector<int>> copy = apartment.Call([&] { return seen; });
  ASSERT_TRUE(copy.has_value());
  ASSERT_EQ(copy->size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*copy)[i], i);
}

TEST(ModernApartmentTest, PostAtQuotaFailsAndDestroysCallableOnCaller) {
  // Tests that a Post past the posted-message quota returns RPC_E_SYS_CALL_FAILED and
  // destroys the callable on the calling thread without running it.
  const DWORD old_limit = GetPostMessageLimit();
  ASSERT_EQ(SetPostMessageLimit(8), S_OK);
  {
    // Declared before the apartment: queued probes run (or are dropped) before it is gone.
    auto ran = std::make_shared<std::atomic<bool>>(false);
    std::atomic<DWORD> destroyed_on{0};
    TestEvent release;
    Apartment apartment({.name = "modern-quota"});
    ASSERT_EQ(apartment.Post([&] { (void)release.Wait(); }), S_OK);
    HRESULT hr = S_OK;
    struct Probe {
      std::shared_ptr<std::atomic<bool>> ran;
      std::atomic<DWORD>* destroyed_on;
      bool armed = true;
      Probe(std::shared_ptr<std::atomic<bool>> r, std::atomic<DWORD>* d) : ran(r), destroyed_on(d) {}
      Probe(Probe&& o) noexcept : ran(o.ran), destroyed_on(o.destroyed_on) { o.armed = false; }
      ~Probe() {
        if (armed) destroyed_on->store(GetCurrentThreadId());
      }
      void operator()() { ran->store(true); }
    };
    for (int i = 0; i < 100 && hr == S_OK; ++i) {
      destroyed_on.store(0);
      hr = apartment.Post(Probe(ran, &destroyed_on));
    }
    EXPECT_EQ(hr, RPC_E_SYS_CALL_FAILED);
    EXPECT_EQ(destroyed_on.load(), GetCurrentThreadId());
    EXPECT_FALSE(ran->load());
    release.Set();
    // The queue drains: the probes that were queued run.
    ASSERT_TRUE(Eventually([&] { return ran->load(); }));
  }
  ASSERT_EQ(SetPostMessageLimit(old_limit), S_OK);
}

TEST(ModernApartmentTest, ShutdownFailsQueuedCallsWithDisconnected) {
  // Tests that destroying an apartment fails a queued Call with RPC_E_DISCONNECTED and
  // destroys a queued Post without running it, instead of running either.
  auto apartment = std::make_unique<Apartment>(Apartment::Options{.name = "modern-down"});
  const DWORD tid = apartment->thread_id();
  TestEvent started, release;
  ASSERT_EQ(apartment->Post([&] {
    started.Set();
    (void)release.Wait();
  }), S_OK);
  ASSERT_TRUE(started.Wait());
  std::atomic<bool> post_ran{false};
  ASSERT_EQ(apartment->Post([&] { post_ran = true; }), S_OK);
  std::promise<Result<int>> call_result;
  Apartment* raw = apartment.get();
  BoundedThread caller([&] { call_result.set_value(raw->Call([] { return 1; })); });
  ASSERT_TRUE(Eventually([&] { return QueueDepth(tid) >= 2; }));
  DestroyWhileBlocked(apartment, release);
  caller.Join();
  Result<int> r = call_result.get_future().get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_DISCONNECTED);
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_FALSE(post_ran.load());
}

TEST(ModernApartmentTest, PostAfterShutdownOfCurrentApartmentIsDisconnected) {
  // Tests that Current() wraps an STA thread's apartment, Post runs from its own loop,
  // and after its CoUninitialize posts fail with RPC_E_DISCONNECTED.
  std::promise<HRESULT> after;
  std::atomic<bool> ran{false};
  BoundedThread thread([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    Result<Apartment> current = Apartment::Current();
    ASSERT_TRUE(current.has_value()) << current.error().message;
    ASSERT_EQ(current->Post([&] {
      ran = true;
      PostQuitMessage(0);
    }), S_OK);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
    CoUninitialize();
    after.set_value(current->Post([] {}));
  });
  thread.Join();
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(after.get_future().get(), RPC_E_DISCONNECTED);
}

TEST(ModernApartmentTest, CurrentOutsideAnyApartmentIsNotInitialized) {
  // Tests that Apartment::Current() on a thread in no apartment returns CO_E_NOTINITIALIZED.
  std::promise<HRESULT> code;
  BoundedThread thread([&] { code.set_value(Apartment::Current().code()); });
  thread.Join();
  EXPECT_EQ(code.get_future().get(), CO_E_NOTINITIALIZED);
}

struct Recorder {
  static inline std::atomic<DWORD> constructed_on{0};
  static inline std::atomic<DWORD> destroyed_on{0};
  explicit Recorder(int start) : value(start) { constructed_on = GetCurrentThreadId(); }
  ~Recorder() { destroyed_on = GetCurrentThreadId(); }
  int Add(int n) {
    APARTMENTS_CHECK_ON_APARTMENT(checker);
    return value += n;
  }
  ApartmentChecker checker;
  int value;
};

TEST(ModernBoundTest, ConstructsCallsAndDestroysOnApartmentThread) {
  // Tests that Bound<T> constructs, calls and destroys T on its apartment's thread.
  Apartment apartment({.name = "modern-bound"});
  Recorder::constructed_on = 0;
  Recorder::destroyed_on = 0;
  {
    Result<Bound<Recorder>> bound = Bound<Recorder>::Create(apartment, 5);
    ASSERT_TRUE(bound.has_value()) << bound.error().message;
    EXPECT_EQ(Recorder::constructed_on.load(), apartment.thread_id());
    Result<int> sum = bound->Call(&Recorder::Add, 2);
    ASSERT_TRUE(sum.has_value());
    EXPECT_EQ(*sum, 7);
  }
  EXPECT_EQ(Recorder::destroyed_on.load(), apartment.thread_id());
}

TEST(ModernBoundTest, ApartmentShutdownDestroysTOnItsThread) {
  // Tests that T is destroyed on its apartment's thread when the apartment shuts down
  // first, and later calls through the Bound return RPC_E_DISCONNECTED.
  auto apartment = std::make_unique<Apartment>(Apartment::Options{.name = "modern-bound2"});
  const DWORD tid = apartment->thread_id();
  Recorder::destroyed_on = 0;
  Result<Bound<Recorder>> bound = Bound<Recorder>::Create(*apartment, 1);
  ASSERT_TRUE(bound.has_value());
  apartment.reset();
  EXPECT_EQ(Recorder::destroyed_on.load(), tid);
  EXPECT_EQ(bound->Call(&Recorder::Add, 1).code(), RPC_E_DISCONNECTED);
}

Task<DWORD> ResumeOn(const Apartment& apartment, HRESULT* code) {
  Result<void> r = co_await apartment.Schedule();
  *code = r.code();
  co_return GetCurrentThreadId();
}

TEST(ModernCoroutineTest, ScheduleResumesOnApartmentThread) {
  // Tests that co_await Schedule() resumes the coroutine on the apartment's thread.
  Apartment apartment({.name = "modern-sched"});
  HRESULT code = E_FAIL;
  Task<DWORD> task = ResumeOn(apartment, &code);
  ASSERT_TRUE(task.WaitFor(kBound));
  EXPECT_EQ(task.Get(), apartment.thread_id());
  EXPECT_EQ(code, S_OK);
}

Task<Result<int>> AsyncAdd(const Apartment& apartment, int a, int b) {
  co_return co_await apartment.CallAsync([a, b] { return a + b; });
}

Task<Result<int>> AsyncThrow(const Apartment& apartment) {
  co_return co_await apartment.CallAsync([]() -> int { throw std::logic_error("bad input"); });
}

TEST(ModernCoroutineTest, CallAsyncReturnsValueAndServerFault) {
  // Tests that co_await CallAsync yields the callable's value, and RPC_E_SERVERFAULT with
  // the message when it throws.
  Apartment apartment({.name = "modern-async"});
  Task<Result<int>> ok = AsyncAdd(apartment, 2, 3);
  ASSERT_TRUE(ok.WaitFor(kBound));
  Result<int> sum = ok.Get();
  ASSERT_TRUE(sum.has_value());
  EXPECT_EQ(*sum, 5);
  Task<Result<int>> bad = AsyncThrow(apartment);
  ASSERT_TRUE(bad.WaitFor(kBound));
  Result<int> fault = bad.Get();
  ASSERT_FALSE(fault.has_value());
  EXPECT_EQ(fault.error().code, RPC_E_SERVERFAULT);
  EXPECT_NE(fault.error().message.find("bad input"), std::string::npos);
}

TEST(ModernCoroutineTest, SuspendedCoroutineResumesWithDisconnectAtShutdown) {
  // Tests that a coroutine waiting to resume on an apartment that shuts down resumes
  // with RPC_E_DISCONNECTED rather than never.
  auto apartment = std::make_unique<Apartment>(Apartment::Options{.name = "modern-sdown"});
  TestEvent started, release;
  ASSERT_EQ(apartment->Post([&] {
    started.Set();
    (void)release.Wait();
  }), S_OK);
  ASSERT_TRUE(started.Wait());
  HRESULT code = S_OK;
  Task<DWORD> task = ResumeOn(*apartment, &code);
  DestroyWhileBlocked(apartment, release);
  ASSERT_TRUE(task.WaitFor(kBound));
  (void)task.Get();
  EXPECT_EQ(code, RPC_E_DISCONNECTED);
}

TEST(ModernCheckerTest, CheckerKnowsItsThread) {
  // Tests that ApartmentChecker accepts its own thread and rejects another.
  ApartmentChecker checker;
  EXPECT_TRUE(checker.CalledOnValidApartment());
  std::promise<bool> other;
  BoundedThread thread([&] { other.set_value(checker.CalledOnValidApartment()); });
  thread.Join();
  EXPECT_FALSE(other.get_future().get());
}

}  // namespace
}  // namespace apartments
