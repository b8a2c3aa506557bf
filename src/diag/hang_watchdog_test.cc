#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/clock.h"
#include "apartments/diagnostics.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "kernel/kernel.h"
#include "message/queue.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

using std::chrono::seconds;

class ReportSink {
 public:
  HangWatchdogOptions Options() {
    HangWatchdogOptions options;
    options.threshold = seconds(5);
    options.permanent_threshold = seconds(30);
    options.callback = [this](const HangReport& report) {
      std::lock_guard lock(mu_);
      reports_.push_back(report);
    };
    return options;
  }
  std::vector<HangReport> reports() {
    std::lock_guard lock(mu_);
    return reports_;
  }

 private:
  std::mutex mu_;
  std::vector<HangReport> reports_;
};

// A thread with a message queue, stuck in WaitForSingleObject on an event
// until released, then draining its queue.
class StuckThread {
 public:
  StuckThread()
      : event_(CreateEventW(nullptr, TRUE, FALSE, L"unblock-me")),
        thread_([this] {
          SetThreadDescription(GetCurrentThread(), L"stuck-ui");
          MSG msg;
          PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
          ready_.Set();
          WaitForSingleObject(event_, kBoundMs);
          DrainQueue();
          drained_.Set();
          // Stay alive (with the queue) until the test is done with it.
          if (!exit_.Wait()) std::abort();
        }) {
    if (!ready_.Wait()) std::abort();
    if (!Eventually([&] { return ReadWaitRecord(tid()).kind == BlockKind::kKernelWait; })) {
      std::abort();
    }
  }
  ~StuckThread() {
    Release();
    exit_.Set();
    thread_.Join();
    CloseHandle(event_);
  }
  void Release() { SetEvent(event_); }
  DWORD tid() const { return thread_.tid(); }
  // Waits (bounded) until the thread has drained its queue after Release().
  [[nodiscard]] bool WaitDrained() { return drained_.Wait(); }

 private:
  HANDLE event_;
  TestEvent ready_;
  TestEvent drained_;
  TestEvent exit_;
  BoundedThread thread_;
};

// Tests that a thread with messages pending that does not pump is reported
// once when it passes the threshold, with its name, queue and wait chain, and
// that the episode ending is reported as transient with its duration.
TEST(HangWatchdogTest, ReportsHangOnceThenTransientResolution) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  StuckThread stuck;
  ASSERT_TRUE(PostThreadMessageW(stuck.tid(), WM_APP, 0, 0));
  ASSERT_TRUE(PostThreadMessageW(stuck.tid(), WM_APP, 0, 0));
  watchdog.Poll();
  clock.Advance(seconds(4));
  watchdog.Poll();
  EXPECT_TRUE(sink.reports().empty());
  clock.Advance(seconds(1));
  watchdog.Poll();
  watchdog.Poll();
  std::vector<HangReport> reports = sink.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].event, HangEvent::kHung);
  EXPECT_EQ(reports[0].tid, stuck.tid());
  EXPECT_EQ(reports[0].thread_name, "stuck-ui");
  EXPECT_EQ(reports[0].queue_depth, 2u);
  EXPECT_EQ(reports[0].duration, seconds(5));
  EXPECT_THAT(reports[0].text, ::testing::HasSubstr("'stuck-ui' is not responding"));
  EXPECT_THAT(reports[0].text, ::testing::HasSubstr("event 'unblock-me'"));

  clock.Advance(seconds(2));
  stuck.Release();
  ASSERT_TRUE(stuck.WaitDrained());
  watchdog.Poll();
  reports = sink.reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].event, HangEvent::kResolved);
  EXPECT_EQ(reports[1].duration, seconds(7));
  EXPECT_THAT(reports[1].text, ::testing::HasSubstr("a transient hang"));
}

// Tests that a hang lasting past the second threshold is reported as
// permanent, once.
TEST(HangWatchdogTest, ReportsPermanentHang) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  StuckThread stuck;
  ASSERT_TRUE(PostThreadMessageW(stuck.tid(), WM_APP, 0, 0));
  watchdog.Poll();
  clock.Advance(seconds(31));
  watchdog.Poll();
  watchdog.Poll();
  std::vector<HangReport> reports = sink.reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].event, HangEvent::kHung);
  EXPECT_EQ(reports[1].event, HangEvent::kPermanent);
  EXPECT_EQ(reports[1].duration, seconds(31));
}

// Tests that a thread idle in GetMessage with an empty queue is never hung.
TEST(HangWatchdogTest, IdleThreadIsNeverHung) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  BoundedThread idle([] {
    MSG msg;
    GetMessageWithin(&msg);
  });
  ASSERT_TRUE(
      Eventually([&] { return ReadWaitRecord(idle.tid()).kind == BlockKind::kMessageIdle; }));
  watchdog.Poll();
  clock.Advance(seconds(60));
  watchdog.Poll();
  EXPECT_TRUE(sink.reports().empty());
  ASSERT_TRUE(PostThreadMessageW(idle.tid(), WM_APP, 0, 0));
  idle.Join();
}

// Tests that a started watchdog stops promptly.
TEST(HangWatchdogTest, StartAndStop) {
  ReportSink sink;
  HangWatchdog watchdog(sink.Options());
  watchdog.Start();
  watchdog.Stop();
  watchdog.Stop();
  EXPECT_TRUE(sink.reports().empty());
}

}  // namespace
}  // namespace apartments::internal::testing
