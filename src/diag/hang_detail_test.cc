// Tests of the hang watchdog's details: stacks in reports, single-call
// overruns, filtered pumps (watchdog and the channel's explanation), and
// stacks in deadlock reports.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/clock.h"
#include "apartments/diagnostics.h"
#include "apartments/error_info.h"
#include "apartments/message_queue.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "com/apartment.h"
#include "com/com_test_util.h"
#include "diag/diag_test_util.h"
#include "kernel/kernel.h"
#include "message/pump_filter.h"
#include "message/test_util.h"

namespace apartments::internal::testing {

// Never inlined, outside the anonymous namespace: their names must appear in
// the captured stacks.
__attribute__((noinline)) DWORD HangTestStuckInWait(HANDLE event) {
  DWORD result = WaitForSingleObject(event, kBoundMs);
  asm volatile("" ::: "memory");
  return result;
}

__attribute__((noinline)) void HangTestSlowHandler(HANDLE entered, HANDLE release) {
  SetEvent(entered);
  WaitForSingleObject(release, kBoundMs);
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) DWORD DeadlockTestLockSecond(HANDLE own, HANDLE other,
                                                        std::atomic<int>* owned, HANDLE ready) {
  if (WaitForSingleObject(own, kBoundMs) != WAIT_OBJECT_0) return WAIT_FAILED;
  owned->fetch_add(1);
  SetEvent(ready);
  // Bounded: a partner that never takes its mutex fails the test.
  if (!::apartments::internal::testing::Eventually([&] { return owned->load() >= 2; })) {
    return WAIT_FAILED;
  }
  DWORD result = WaitForSingleObjectEx(other, INFINITE, TRUE);  // Ended by an APC.
  if (result == WAIT_OBJECT_0 || result == WAIT_ABANDONED_0) ReleaseMutex(other);
  ReleaseMutex(own);
  asm volatile("" ::: "memory");
  return result;
}

namespace {

using std::chrono::seconds;

#if defined(__SANITIZE_THREAD__)
constexpr bool kCaptureMayBeUnavailable = true;  // See stack_test.cc.
#else
constexpr bool kCaptureMayBeUnavailable = false;
#endif

bool StackHas(const std::optional<ThreadStack>& stack, const std::string& name) {
  if (!stack) return false;
  for (const StackFrame& f : stack->frames) {
    if (::testing::Value(f.function, ::testing::HasSubstr(name))) return true;
  }
  return false;
}

// Expects `stack` to name `function`, or (under TSan only) to be unavailable.
void ExpectStackNames(const std::optional<ThreadStack>& stack, const std::string& function,
                      const std::string& text) {
  if (!stack && kCaptureMayBeUnavailable) {
    EXPECT_THAT(text, ::testing::HasSubstr("unavailable"));
    return;
  }
  ASSERT_TRUE(stack.has_value()) << text;
  EXPECT_TRUE(StackHas(stack, function)) << text;
  EXPECT_THAT(text, ::testing::HasSubstr(function));
}

class ReportSink {
 public:
  HangWatchdogOptions Options() {
    HangWatchdogOptions options;
    options.threshold = seconds(5);
    options.permanent_threshold = seconds(30);
    options.call_threshold = seconds(5);
    options.callback = [this](const HangReport& report) {
      std::lock_guard lock(mu_);
      reports_.push_back(report);
    };
    return options;
  }
  // Reports about thread `tid` only (other tests' threads may linger).
  std::vector<HangReport> reports(DWORD tid) {
    std::lock_guard lock(mu_);
    std::vector<HangReport> out;
    for (const HangReport& r : reports_) {
      if (r.tid == tid) out.push_back(r);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<HangReport> reports_;
};

// Tests that a hang report carries the hung thread's stack, with the test's
// function in it, and that capture_stacks = false leaves it out.
TEST(HangDetailTest, HangReportCarriesStack) {
  for (bool capture : {true, false}) {
    FakeClock clock;
    ScopedClockForTesting use_clock(&clock);
    ReportSink sink;
    HangWatchdogOptions options = sink.Options();
    options.capture_stacks = capture;
    HangWatchdog watchdog(options);
    TestEvent ready;
    TestEvent release;
    BoundedThread stuck([&] {
      MSG msg;
      PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
      ready.Set();
      HangTestStuckInWait(release.get());
      DrainQueue();
    });
    ASSERT_TRUE(ready.Wait());
    ASSERT_TRUE(
        Eventually([&] { return ReadWaitRecord(stuck.tid()).kind == BlockKind::kKernelWait; }));
    ASSERT_TRUE(PostThreadMessageW(stuck.tid(), WM_APP, 0, 0));
    watchdog.Poll();
    clock.Advance(seconds(5));
    watchdog.Poll();
    std::vector<HangReport> reports = sink.reports(stuck.tid());
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].event, HangEvent::kHung);
    if (capture) {
      ExpectStackNames(reports[0].stack, "HangTestStuckInWait", reports[0].text);
    } else {
      EXPECT_FALSE(reports[0].stack.has_value());
      EXPECT_THAT(reports[0].text, ::testing::Not(::testing::HasSubstr("Stack of thread")));
    }
    release.Set();
    stuck.Join();
  }
}

// Tests that one message whose handling passes call_threshold is reported as
// an overrun (the window, the message, the stack), once, and its end as
// kCallResolved with the duration; a shorter one is not reported.
TEST(HangDetailTest, ReportsSingleCallOverrun) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  static HANDLE entered;
  static HANDLE release;
  TestEvent entered_event;
  TestEvent release_event;
  entered = entered_event.get();
  release = release_event.get();
  ScopedClass window_class(L"HangDetailSlow", [](HWND hwnd, UINT message, WPARAM w, LPARAM l) {
    if (message == WM_APP + 1) {
      HangTestSlowHandler(entered, release);
      return LRESULT{0};
    }
    return DefWindowProcW(hwnd, message, w, l);
  });
  std::atomic<HWND> window{nullptr};
  TestEvent created;
  TestEvent finished;
  TestEvent exit;
  BoundedThread ui([&] {
    window = CreateMessageWindow(L"HangDetailSlow");
    created.Set();
    MSG msg;
    for (int handled = 0; handled < 2 && GetMessageWithin(&msg);) {
      DispatchMessageW(&msg);
      if (msg.message == WM_APP + 1) {
        ++handled;
        finished.Set();
      }
    }
    DestroyWindow(window.load());
    (void)exit.Wait();  // Stay alive until the watchdog's last look.
  });
  ASSERT_TRUE(created.Wait());

  // A short call: seen once in flight, then done before the threshold.
  ASSERT_TRUE(PostMessageW(window.load(), WM_APP + 1, 0, 0));
  ASSERT_TRUE(entered_event.Wait());
  watchdog.Poll();
  clock.Advance(seconds(4));
  ResetEvent(entered_event.get());
  release_event.Set();
  ASSERT_TRUE(finished.Wait());
  ResetEvent(release_event.get());
  ResetEvent(finished.get());
  watchdog.Poll();
  EXPECT_TRUE(sink.reports(ui.tid()).empty());

  // A long one.
  ASSERT_TRUE(PostMessageW(window.load(), WM_APP + 1, 0, 0));
  ASSERT_TRUE(entered_event.Wait());
  // In its wait (past SetEvent), so that the report's chain shows it.
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(ui.tid()).kind == BlockKind::kKernelWait; }));
  watchdog.Poll();
  clock.Advance(seconds(4));
  watchdog.Poll();
  EXPECT_TRUE(sink.reports(ui.tid()).empty());
  clock.Advance(seconds(1));
  watchdog.Poll();
  watchdog.Poll();
  std::vector<HangReport> reports = sink.reports(ui.tid());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].event, HangEvent::kCallOverrun);
  EXPECT_EQ(reports[0].duration, seconds(5));
  EXPECT_THAT(reports[0].call, ::testing::HasSubstr("message 0x8001"));
  EXPECT_THAT(reports[0].text, ::testing::HasSubstr("is overrunning one call"));
  EXPECT_THAT(reports[0].text, ::testing::HasSubstr("blocked in kernel wait"));
  ExpectStackNames(reports[0].stack, "HangTestSlowHandler", reports[0].text);

  clock.Advance(seconds(2));
  release_event.Set();
  ASSERT_TRUE(finished.Wait());
  watchdog.Poll();
  reports = sink.reports(ui.tid());
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].event, HangEvent::kCallResolved);
  EXPECT_EQ(reports[1].duration, seconds(7));
  EXPECT_EQ(reports[1].call, reports[0].call);
  exit.Set();
  ui.Join();
}

// Tests that a handler idle in a nested message loop (a modal dialog's) is
// not reported as overrunning.
TEST(HangDetailTest, NestedIdleLoopIsNotAnOverrun) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  static HANDLE entered;
  TestEvent entered_event;
  entered = entered_event.get();
  ScopedClass window_class(L"HangDetailModal", [](HWND hwnd, UINT message, WPARAM w, LPARAM l) {
    if (message == WM_APP + 2) {
      SetEvent(entered);
      MSG nested;
      GetMessageWithin(&nested, kBoundMs, nullptr, WM_APP + 3, WM_APP + 3);
      return LRESULT{0};
    }
    return DefWindowProcW(hwnd, message, w, l);
  });
  TestEvent created;
  std::atomic<HWND> window{nullptr};
  BoundedThread ui([&] {
    window = CreateMessageWindow(L"HangDetailModal");
    created.Set();
    MSG msg;
    if (GetMessageWithin(&msg)) DispatchMessageW(&msg);
    DestroyWindow(window.load());
  });
  ASSERT_TRUE(created.Wait());
  ASSERT_TRUE(PostMessageW(window.load(), WM_APP + 2, 0, 0));
  ASSERT_TRUE(entered_event.Wait());
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(ui.tid()).kind == BlockKind::kMessageIdle; }));
  watchdog.Poll();
  clock.Advance(seconds(10));
  watchdog.Poll();
  EXPECT_TRUE(sink.reports(ui.tid()).empty());
  ASSERT_TRUE(PostThreadMessageW(ui.tid(), WM_APP + 3, 0, 0));
  ui.Join();
}

// Tests that an incoming COM call that overruns is reported as a "COM call".
TEST(HangDetailTest, ReportsComCallOverrun) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  StaThread server(L"slow-server");
  TestEvent entered;
  TestEvent release;
  HRESULT hr = E_FAIL;
  BoundedThread caller([&] {
    RunInMta([&] {
      hr = InvokeInApartment(server.apartment(), [&] {
        HangTestSlowHandler(entered.get(), release.get());
        return S_OK;
      });
    });
  });
  ASSERT_TRUE(entered.Wait());
  watchdog.Poll();
  clock.Advance(seconds(6));
  watchdog.Poll();
  std::vector<HangReport> reports = sink.reports(server.tid());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].event, HangEvent::kCallOverrun);
  EXPECT_EQ(reports[0].call, "COM call");
  EXPECT_THAT(reports[0].text, ::testing::HasSubstr("'slow-server'"));
  ExpectStackNames(reports[0].stack, "HangTestSlowHandler", reports[0].text);
  release.Set();
  caller.Join();
  EXPECT_EQ(hr, S_OK);
  // The caller wakes when the call completes, a moment before the server
  // leaves its dispatch: poll once the server is back in its message loop
  // (this failed under TSan once the caller's wake-up got faster).
  ASSERT_TRUE(
      Eventually([&] { return ReadWaitRecord(server.tid()).kind == BlockKind::kMessageIdle; }));
  watchdog.Poll();
  reports = sink.reports(server.tid());
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].event, HangEvent::kCallResolved);
}

// An STA whose loop takes only one window's messages (GetMessageW with an
// hwnd filter) until that window gets WM_APP + 9.
class FilteredSta {
 public:
  FilteredSta()
      : window_class_(L"HangDetailFiltered", &DefWindowProcW),
        sta_(L"filtered-pump", [this] {
          HWND own = CreateMessageWindow(L"HangDetailFiltered");
          window_ = own;
          created_.Set();
          MSG msg;
          while (GetMessageW(&msg, own, 0, 0) > 0 && msg.message != WM_APP + 9) {
            DispatchMessageW(&msg);
          }
          DestroyWindow(own);
          DrainQueue();
        }) {
    if (!created_.Wait()) std::abort();
    if (!Eventually([&] { return ReadWaitRecord(sta_.tid()).kind == BlockKind::kMessageIdle; })) {
      std::abort();
    }
  }
  ~FilteredSta() { Stop(); }
  void Stop() {
    if (!stopped_.exchange(true)) PostMessageW(window_.load(), WM_APP + 9, 0, 0);
    sta_.Stop();
  }
  DWORD tid() const { return sta_.tid(); }
  HWND window() const { return window_.load(); }
  const ApartmentRef& apartment() const { return sta_.apartment(); }

 private:
  ScopedClass window_class_;
  TestEvent created_;
  std::atomic<HWND> window_{nullptr};
  std::atomic<bool> stopped_{false};
  StaThread sta_;
};

std::string WindowText(HWND hwnd) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "window %p", static_cast<void*>(hwnd));
  return buffer;
}

// Tests that the watchdog's hang report names the filter that keeps the
// apartment's messages waiting.
TEST(HangDetailTest, HangReportNamesExcludingFilter) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdogOptions options = sink.Options();
  options.capture_stacks = false;
  HangWatchdog watchdog(options);
  FilteredSta sta;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(PostThreadMessageW(sta.tid(), WM_APP, 0, 0));
  watchdog.Poll();
  clock.Advance(seconds(5));
  watchdog.Poll();
  std::vector<HangReport> reports = sink.reports(sta.tid());
  ASSERT_EQ(reports.size(), 1u);
  const std::string expected = "Thread " + std::to_string(sta.tid()) +
                               " is pumping, but with a filter (" + WindowText(sta.window()) +
                               ") that excludes the apartment's window 0x";
  EXPECT_THAT(reports[0].filter, ::testing::HasSubstr(expected));
  EXPECT_THAT(reports[0].filter, ::testing::HasSubstr("; 3 messages wait behind it."));
  EXPECT_THAT(reports[0].text, ::testing::HasSubstr(reports[0].filter));
  sta.Stop();
}

// Tests that RPC_E_SYS_CALL_FAILED for a filtered STA whose queue filled says
// it pumps with a filter excluding the apartment's window.
TEST(HangDetailTest, QueueFullExplainsExcludingFilter) {
  const DWORD saved_limit = GetPostMessageLimit();
  ASSERT_EQ(SetPostMessageLimit(3), S_OK);
  {
    FilteredSta sta;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(PostThreadMessageW(sta.tid(), WM_APP, 0, 0));
    std::string text;
    RunInMta([&] {
      EXPECT_EQ(InvokeInApartment(sta.apartment(), [] { return S_OK; }), RPC_E_SYS_CALL_FAILED);
      text = LastErrorDescription();
    });
    EXPECT_THAT(text,
                ::testing::HasSubstr("Thread " + std::to_string(sta.tid()) +
                                     " is pumping, but with a filter (" + WindowText(sta.window()) +
                                     ") that excludes the apartment's window 0x"))
        << text;
    EXPECT_THAT(text, ::testing::HasSubstr("3 messages wait behind it."));
    // Room for the message that ends the loop.
    EXPECT_EQ(SetPostMessageLimit(saved_limit), S_OK);
    sta.Stop();
  }
}

// Tests that a message-range filter is described, that a filter admitting
// the message in question is not blamed, and that a thread whose filtered
// pump runs only between kernel waits is described as pumping intermittently
// (it used to be described only by the wait it happened to be in).
TEST(HangDetailTest, RangeFilterDescribed) {
  std::atomic<BOOL> rc{-2};
  BoundedThread pump([&] {
    MSG msg;
    rc = GetMessageW(&msg, nullptr, WM_APP + 5, WM_APP + 6);
  });
  ASSERT_TRUE(
      Eventually([&] { return ReadWaitRecord(pump.tid()).kind == BlockKind::kMessageIdle; }));
  const std::string text = DescribePumpFilter(pump.tid(), nullptr, 0, nullptr, 2);
  EXPECT_EQ(text, "Thread " + std::to_string(pump.tid()) +
                      " is pumping, but with a filter (messages 0x8005..0x8006) that excludes "
                      "the waiting messages; 2 messages wait behind it.");
  EXPECT_EQ(DescribePumpFilter(pump.tid(), nullptr, WM_APP + 5, nullptr, 2), "");
  EXPECT_NE(DescribePumpFilter(pump.tid(), nullptr, WM_APP + 7, nullptr, 2), "");
  ASSERT_TRUE(PostThreadMessageW(pump.tid(), WM_APP + 5, 0, 0));
  pump.Join();
  EXPECT_EQ(rc.load(), TRUE);

  TestEvent release;
  TestEvent filtered;
  BoundedThread waiter([&] {
    MSG msg;
    PeekMessageW(&msg, nullptr, WM_APP + 5, WM_APP + 6, PM_NOREMOVE);
    filtered.Set();
    (void)release.Wait();
  });
  ASSERT_TRUE(filtered.Wait());
  ASSERT_TRUE(
      Eventually([&] { return ReadWaitRecord(waiter.tid()).kind == BlockKind::kKernelWait; }));
  EXPECT_EQ(DescribePumpFilter(waiter.tid(), nullptr, 0, nullptr, 2),
            "Thread " + std::to_string(waiter.tid()) +
                " pumps only between other waits (it is in a wait that does not pump now), and "
                "then with a filter (messages 0x8005..0x8006) that excludes the waiting "
                "messages; 2 messages wait behind it.");
  release.Set();
  waiter.Join();
}

// Tests that a deadlock report carries the stack of each thread in the cycle,
// with the function each one blocks in.
TEST(HangDetailTest, DeadlockReportCarriesStacks) {
  DeadlockRecorder recorder;
  HANDLE a = CreateMutexW(nullptr, FALSE, nullptr);
  HANDLE b = CreateMutexW(nullptr, FALSE, nullptr);
  std::atomic<int> owned{0};
  std::atomic<HANDLE> handle1{nullptr};
  std::atomic<HANDLE> handle2{nullptr};
  TestEvent ready1;
  TestEvent ready2;
  auto body = [&](HANDLE own, HANDLE other, std::atomic<HANDLE>* self, TestEvent* ready) {
    self->store(DuplicateCurrentThreadHandle());
    DeadlockTestLockSecond(own, other, &owned, ready->get());
  };
  BoundedThread t1([&] { body(a, b, &handle1, &ready1); });
  BoundedThread t2([&] { body(b, a, &handle2, &ready2); });
  ASSERT_TRUE(ready1.Wait());
  ASSERT_TRUE(ready2.Wait());
  ASSERT_TRUE(Eventually([&] { return recorder.count() > 0; }));
  std::vector<DeadlockReport> reports = recorder.reports();
  ASSERT_EQ(reports.size(), 1u);
  const DeadlockReport& report = reports[0];
  if (!kCaptureMayBeUnavailable) {
    EXPECT_EQ(report.stacks.size(), 2u) << report.text;
  }
  for (const ThreadStack& stack : report.stacks) {
    EXPECT_TRUE(StackHas(stack, "DeadlockTestLockSecond")) << report.text;
  }
  EXPECT_THAT(report.text, ::testing::HasSubstr("Stack of thread " + std::to_string(t1.tid())));
  EXPECT_THAT(report.text, ::testing::HasSubstr("Stack of thread " + std::to_string(t2.tid())));
  // End the waits (alertable) with APCs.
  QueueUserAPC(&NoOpApc, handle1.load(), 0);
  QueueUserAPC(&NoOpApc, handle2.load(), 0);
  t1.Join();
  t2.Join();
  CloseHandle(handle1.load());
  CloseHandle(handle2.load());
  CloseHandle(a);
  CloseHandle(b);
}

}  // namespace
}  // namespace apartments::internal::testing
