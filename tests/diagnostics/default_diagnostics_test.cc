// Self-diagnosis in its default configuration (apartments/diagnostics.h,
// "Self-diagnosis on by default"): each classic failure of a ported program
// is reported on stderr with no diagnostic API called. This binary is its own
// process so that nothing but the defaults configures diagnostics; it only
// installs a FakeClock (thresholds pass without sleeping) and reads what the
// process writes to stderr.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/clock.h"
#include "apartments/error_info.h"
#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/com_test_util.h"
#include "diag/default_diagnostics.h"
#include "diag/diag_test_util.h"
#include "kernel/kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

using std::chrono::seconds;

// Sends this process's stderr (fd 2) to a file for the whole binary, so that
// the tests read the reports the default diagnostics print there.
class StderrFile : public ::testing::Environment {
 public:
  void SetUp() override {
    char path[] = "/tmp/default-diagnostics-stderr-XXXXXX";
    fd_ = mkstemp(path);
    ASSERT_GE(fd_, 0);
    unlink(path);
    std::fflush(stderr);
    saved_ = dup(2);
    ASSERT_EQ(dup2(fd_, 2), 2);
  }
  void TearDown() override {
    std::fflush(stderr);
    dup2(saved_, 2);
  }
  // Everything written since offset `from`.
  std::string ReadFrom(off_t from) const {
    std::fflush(stderr);
    std::string out;
    char buffer[4096];
    for (off_t at = from;;) {
      const ssize_t n = pread(fd_, buffer, sizeof buffer, at);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
      at += n;
    }
    return out;
  }
  off_t End() const {
    std::fflush(stderr);
    return lseek(fd_, 0, SEEK_END);
  }
  // The original stderr, for showing a failed test's reports.
  int saved() const { return saved_; }

 private:
  int fd_ = -1;
  int saved_ = -1;
};

StderrFile* const g_stderr =
    static_cast<StderrFile*>(::testing::AddGlobalTestEnvironment(new StderrFile));

// The reports one test caused: stderr from the test's start. Shows them on
// the real stderr when the test failed.
class Reports {
 public:
  Reports() : from_(g_stderr->End()) {}
  ~Reports() {
    if (::testing::Test::HasFailure()) {
      const std::string text = "--- stderr of the test ---\n" + Text() + "--- end ---\n";
      [[maybe_unused]] ssize_t n = write(g_stderr->saved(), text.data(), text.size());
    }
  }
  std::string Text() const { return g_stderr->ReadFrom(from_); }

 private:
  off_t from_;
};

// Advances `clock` by `step` and waits until the default watchdog has
// finished a poll that began after the advance (the advance wakes it).
void AdvanceAndPoll(FakeClock& clock, Clock::Duration step) {
  clock.Advance(step);
  const WatchdogPollCounts at_advance = DefaultWatchdogPollCountsForTesting();
  ASSERT_TRUE(Eventually(
      [&] { return DefaultWatchdogPollCountsForTesting().finished > at_advance.started; }));
}

// Advances the clock a second at a time, a poll after each, until stderr
// holds `needle` (true) or two minutes of fake time have passed (false).
bool AdvanceUntil(FakeClock& clock, const Reports& reports, const std::string& needle) {
  for (int i = 0; i < 120; ++i) {
    if (::testing::Value(reports.Text(), ::testing::HasSubstr(needle))) return true;
    AdvanceAndPoll(clock, seconds(1));
  }
  return ::testing::Value(reports.Text(), ::testing::HasSubstr(needle));
}

std::string Tid(DWORD tid) { return std::to_string(tid); }

// Whether `text` names thread `tid` called `name` with its STA ("STA n" or,
// for the process's first, "main STA n"); `lead` is "Thread" or "thread".
bool NamesSta(const std::string& text, const char* lead, DWORD tid, const std::string& name) {
  const std::string label = std::string(lead) + " " + Tid(tid) + " '" + name + "' [";
  return ::testing::Value(text, ::testing::HasSubstr(label + "STA ")) ||
         ::testing::Value(text, ::testing::HasSubstr(label + "main STA "));
}

// Ends the alertable wait of the thread whose handle is `thread` (an APC),
// and closes the handle.
void Interrupt(HANDLE thread) {
  ASSERT_NE(thread, nullptr);
  QueueUserAPC(&NoOpApc, thread, 0);
  CloseHandle(thread);
}

// Case 1. Tests that an STA stuck in a non-pumping wait while messages queue
// up behind it is reported: its name, id and apartment, the event it waits
// on, for how long, and the advice to use CoWaitForMultipleHandles.
TEST(DefaultDiagnosticsTest, StaInNonPumpingWaitIsReported) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  HANDLE never = CreateEventW(nullptr, TRUE, FALSE, L"never-signaled");
  TestEvent waiting;
  std::atomic<HANDLE> self{nullptr};
  StaThread sta(L"stuck-sta", [&] {
    self.store(DuplicateCurrentThreadHandle());
    waiting.Set();
    WaitForSingleObjectEx(never, INFINITE, TRUE);  // Ended by an APC.
  });
  ASSERT_TRUE(waiting.Wait());
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(sta.tid()).kind == BlockKind::kKernelWait; }));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(PostThreadMessageW(sta.tid(), WM_APP + 1, 0, 0));

  EXPECT_TRUE(AdvanceUntil(clock, reports, "is not responding"));
  const std::string text = reports.Text();
  EXPECT_TRUE(NamesSta(text, "Thread", sta.tid(), "stuck-sta")) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("3 posted (quota"));
  EXPECT_THAT(text, ::testing::HasSubstr("blocked in kernel wait for "));
  EXPECT_THAT(text, ::testing::HasSubstr("-> event 'never-signaled' handle 0x"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("What to do next: thread " + Tid(sta.tid()) +
                                   " 'stuck-sta' is a single-threaded apartment blocked in a wait "
                                   "that does not pump messages: use CoWaitForMultipleHandles"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("Stack of thread " + Tid(sta.tid())));

  Interrupt(self.load());
  sta.Stop();
  CloseHandle(never);
}

// Case 2. Tests that a cycle through a mutex and a COM call is reported once
// it has lasted past the cycle threshold even though the wait on the mutex
// has a timeout: naming both threads, the mutex and its owner, the call into
// the STA, and that it may resolve by timeout.
TEST(DefaultDiagnosticsTest, TimedMutexAndComCallCycleIsReported) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  StaThread sta_a(L"sta-a");
  StaThread sta_b(L"sta-b");
  HANDLE mutex = CreateMutexW(nullptr, FALSE, L"held-by-a");
  std::atomic<DWORD> b_tid{0};
  std::atomic<HANDLE> b_handle{nullptr};
  ApartmentRef apt_a = sta_a.apartment();
  ApartmentRef apt_b = sta_b.apartment();
  HRESULT outer = E_FAIL;
  BoundedThread caller([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    outer = InvokeInApartment(apt_a, [&]() -> HRESULT {
      if (WaitForSingleObject(mutex, kBoundMs) != WAIT_OBJECT_0) return E_FAIL;
      const HRESULT inner = InvokeInApartment(apt_b, [&]() -> HRESULT {
        b_handle.store(DuplicateCurrentThreadHandle());
        b_tid.store(GetCurrentThreadId());
        // A long timeout: the cycle lasts until the test's APC ends it.
        const DWORD r = WaitForSingleObjectEx(mutex, 60'000, TRUE);
        if (r == WAIT_OBJECT_0) ReleaseMutex(mutex);
        return r == WAIT_IO_COMPLETION ? S_OK : E_UNEXPECTED;
      });
      ReleaseMutex(mutex);
      return inner;
    });
    CoUninitialize();
  });
  ASSERT_TRUE(Eventually([&] {
    return b_tid.load() != 0 && ReadWaitRecord(b_tid.load()).kind == BlockKind::kKernelWait;
  }));

  EXPECT_TRUE(AdvanceUntil(clock, reports, "Deadlock while it lasts"));
  const std::string text = reports.Text();
  EXPECT_THAT(text, ::testing::HasSubstr("2 threads have waited on each other"));
  EXPECT_THAT(text, ::testing::HasSubstr("may resolve by timeout"));
  EXPECT_TRUE(NamesSta(text, "thread", sta_a.tid(), "sta-a")) << text;
  EXPECT_TRUE(NamesSta(text, "thread", sta_b.tid(), "sta-b")) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("(with a timeout)"));
  EXPECT_THAT(text, ::testing::HasSubstr("mutex 'held-by-a' handle 0x"));
  EXPECT_THAT(text, ::testing::HasSubstr("owned by thread " + Tid(sta_a.tid())));
  EXPECT_THAT(text, ::testing::HasSubstr("call into STA "));
  EXPECT_THAT(
      text, ::testing::HasSubstr("What to do next: thread " + Tid(sta_b.tid()) +
                                 " 'sta-b' is a "
                                 "single-threaded apartment blocked in a wait that does not pump"))
      << text;

  Interrupt(b_handle.load());
  caller.Join();
  EXPECT_EQ(outer, S_OK);
  CloseHandle(mutex);
}

struct HelperContext {
  ApartmentRef apt_a;
  ApartmentRef apt_b;
  std::atomic<DWORD> b_tid{0};
  std::atomic<HRESULT> result{E_FAIL};
};

DWORD WINAPI HelperCallsIntoB(LPVOID parameter) {
  auto* context = static_cast<HelperContext*>(parameter);
  SetThreadDescription(GetCurrentThread(), L"helper");
  if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
  context->result = InvokeInApartment(context->apt_b, [context]() -> HRESULT {
    context->b_tid.store(GetCurrentThreadId());
    // B calls back into A, which does not pump.
    return InvokeInApartment(context->apt_a, [] { return S_OK; });
  });
  CoUninitialize();
  return 0;
}

// Case 3. Tests that a cycle through a non-pumping wait on a helper thread is
// reported: STA A waits with WaitForSingleObject on a helper thread whose call
// goes into STA B, and B's method calls back into A. B pumps while it waits,
// but is handling the helper's call, so its pumping cannot end the cycle.
TEST(DefaultDiagnosticsTest, CycleThroughHelperThreadIsReported) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  StaThread sta_a(L"sta-a");
  StaThread sta_b(L"sta-b");
  HelperContext context;
  context.apt_a = sta_a.apartment();
  context.apt_b = sta_b.apartment();
  std::atomic<DWORD> helper_tid{0};
  std::atomic<HANDLE> a_handle{nullptr};
  HRESULT outer = E_FAIL;
  BoundedThread caller([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    outer = InvokeInApartment(context.apt_a, [&]() -> HRESULT {
      a_handle.store(DuplicateCurrentThreadHandle());
      DWORD tid = 0;
      HANDLE helper = CreateThread(nullptr, 0, &HelperCallsIntoB, &context, 0, &tid);
      if (helper == nullptr) return E_FAIL;
      helper_tid.store(tid);
      // Not pumping: B's call into this STA waits. Ended by the test's APC.
      const DWORD r = WaitForSingleObjectEx(helper, INFINITE, TRUE);
      CloseHandle(helper);
      return r == WAIT_IO_COMPLETION ? S_OK : E_UNEXPECTED;
    });
    CoUninitialize();
  });
  ASSERT_TRUE(Eventually([&] {
    return context.b_tid.load() != 0 &&
           ReadWaitRecord(context.b_tid.load()).kind == BlockKind::kComCall &&
           ReadWaitRecord(sta_a.tid()).kind == BlockKind::kKernelWait;
  }));

  EXPECT_TRUE(AdvanceUntil(clock, reports, "Deadlock while it lasts"));
  const std::string text = reports.Text();
  EXPECT_THAT(text, ::testing::HasSubstr("3 threads have waited on each other"));
  EXPECT_THAT(text, ::testing::HasSubstr("is itself handling the call the cycle waits on"));
  EXPECT_TRUE(NamesSta(text, "thread", sta_a.tid(), "sta-a")) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("thread " + Tid(helper_tid.load()) + " 'helper' [MTA "));
  EXPECT_TRUE(NamesSta(text, "thread", sta_b.tid(), "sta-b")) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("-> thread handle 0x"));
  EXPECT_THAT(
      text, ::testing::HasSubstr("What to do next: thread " + Tid(sta_a.tid()) +
                                 " 'sta-a' is a "
                                 "single-threaded apartment blocked in a wait that does not pump"))
      << text;

  Interrupt(a_handle.load());
  caller.Join();
  EXPECT_EQ(outer, S_OK);
  // A serves B's call once back in its loop; then the helper's call returns.
  EXPECT_TRUE(Eventually([&] { return context.result.load() == S_OK; }));
}

LRESULT CALLBACK PlainWindowProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  return DefWindowProcW(hwnd, message, wparam, lparam);
}

// Case 4. Tests that a SendMessageW to a window whose thread is stuck in a
// wait is reported: the window's thread as not responding, with the sender,
// the sender's chain through to the event the window's thread waits on, and
// the advice about SendMessageW.
TEST(DefaultDiagnosticsTest, SendMessageToStuckWindowThreadIsReported) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  ScopedClass window_class(L"DefaultDiagnosticsWindow", &PlainWindowProc);
  HANDLE never = CreateEventW(nullptr, TRUE, FALSE, L"window-never-signaled");
  std::atomic<HWND> hwnd{nullptr};
  std::atomic<HANDLE> window_handle{nullptr};
  BoundedThread window_thread([&] {
    SetThreadDescription(GetCurrentThread(), L"window-thread");
    window_handle.store(DuplicateCurrentThreadHandle());
    hwnd.store(CreateWindowExW(0, L"DefaultDiagnosticsWindow", L"", 0, 0, 0, 0, 0, nullptr,
                               nullptr, nullptr, nullptr));
    WaitForSingleObjectEx(never, INFINITE, TRUE);  // Ended by an APC.
    MSG msg;
    while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
    DestroyWindow(hwnd.load());
  });
  ASSERT_TRUE(Eventually([&] {
    return hwnd.load() != nullptr &&
           ReadWaitRecord(window_thread.tid()).kind == BlockKind::kKernelWait;
  }));
  BoundedThread sender([&] {
    SetThreadDescription(GetCurrentThread(), L"sender");
    SendMessageW(hwnd.load(), WM_APP + 4, 0, 0);
  });
  ASSERT_TRUE(
      Eventually([&] { return ReadWaitRecord(sender.tid()).kind == BlockKind::kSendMessage; }));

  EXPECT_TRUE(AdvanceUntil(clock, reports, "in SendMessageW for it"));
  const std::string text = reports.Text();
  EXPECT_THAT(text, ::testing::HasSubstr("Thread " + Tid(window_thread.tid()) +
                                         " 'window-thread' is not responding: thread " +
                                         Tid(sender.tid()) + " 'sender' has waited "))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("thread " + Tid(sender.tid()) +
                                         " 'sender' blocked in SendMessage"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("-> event 'window-never-signaled' handle 0x"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("What to do next: SendMessageW waits until the window's thread "
                                   "pumps messages; thread " +
                                   Tid(window_thread.tid()) + " 'window-thread' does not"))
      << text;

  Interrupt(window_handle.load());
  sender.Join();
  window_thread.Join();
  CloseHandle(never);
}

// Case 5. Tests that one incoming COM call handled past the call threshold
// while messages wait behind it is reported as busy, not blocked, with what
// waits behind it and the thread's stack.
TEST(DefaultDiagnosticsTest, LongRunningIncomingCallIsReportedAsBusy) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  StaThread sta(L"busy-sta");
  ApartmentRef apt = sta.apartment();
  std::atomic<bool> running{false};
  std::atomic<bool> release{false};
  BoundedThread caller([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    (void)InvokeInApartment(apt, [&]() -> HRESULT {
      running.store(true);
      // Busy: computing, not waiting on anything of the library's.
      // Bounded: the test releases it once the report is in.
      (void)::apartments::internal::testing::Eventually([&] { return release.load(); });
      return S_OK;
    });
    CoUninitialize();
  });
  ASSERT_TRUE(Eventually([&] { return running.load(); }));
  ASSERT_TRUE(PostThreadMessageW(sta.tid(), WM_APP + 5, 0, 0));
  ASSERT_TRUE(PostThreadMessageW(sta.tid(), WM_APP + 5, 0, 0));

  EXPECT_TRUE(AdvanceUntil(clock, reports, "is overrunning one call"));
  const std::string text = reports.Text();
  EXPECT_TRUE(NamesSta(text, "Thread", sta.tid(), "busy-sta")) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("it has been handling COM call for "));
  EXPECT_THAT(text, ::testing::HasSubstr("It is busy running it, not blocked in a wait"));
  EXPECT_THAT(text, ::testing::HasSubstr("Behind it wait 2 posted messages"));
  EXPECT_THAT(text, ::testing::HasSubstr("What to do next: thread " + Tid(sta.tid()) +
                                         " 'busy-sta' is busy running the call, not waiting"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("Stack of thread " + Tid(sta.tid())));

  release.store(true);
  caller.Join();
}

// Case 6. Tests that an STA whose filtered pump (thread messages only) runs
// only between ordinary waits is reported with the filter, the apartment's
// window it leaves out, what waits behind it, and the advice to pump without
// a filter.
TEST(DefaultDiagnosticsTest, IntermittentFilteredPumpIsReported) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  std::atomic<bool> stop{false};
  HANDLE tick = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  StaThread sta(L"filtered-sta", [&] {
    MSG msg;
    while (!stop.load()) {
      // Thread messages only: the COM window's messages stay queued.
      while (PeekMessageW(&msg, reinterpret_cast<HWND>(-1), 0, 0, PM_REMOVE)) {
      }
      WaitForSingleObject(tick, 5);  // An ordinary wait between the pumps.
    }
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  });
  ApartmentRef apt = sta.apartment();
  HRESULT hr = E_FAIL;
  BoundedThread caller([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    hr = InvokeInApartment(apt, [] { return S_OK; });
    CoUninitialize();
  });

  EXPECT_TRUE(AdvanceUntil(clock, reports, "that excludes the apartment's window"));
  const std::string text = reports.Text();
  EXPECT_TRUE(NamesSta(text, "Thread", sta.tid(), "filtered-sta")) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("with a filter (thread messages only) that excludes the "
                                         "apartment's window 0x"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("1 message waits behind it"));
  EXPECT_THAT(text, ::testing::HasSubstr("What to do next: pump without a filter"));

  stop.store(true);
  SetEvent(tick);
  caller.Join();
  EXPECT_EQ(hr, S_OK);
  sta.Stop();
  CloseHandle(tick);
}

// Case 6, a wake mask. Tests that an STA asleep in MsgWaitForMultipleObjectsEx
// with a wake mask that leaves out posted messages (QS_KEY), which the
// apartment's calls never wake, is reported with the mask, the apartment's
// window, what waits behind it, and what to do next.
TEST(DefaultDiagnosticsTest, MsgWaitWakeMaskWithoutPostedMessagesIsReported) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Reports reports;
  std::atomic<bool> stop{false};
  HANDLE tick = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  StaThread sta(L"masked-sta", [&] {
    while (!stop.load()) MsgWaitForMultipleObjectsEx(1, &tick, INFINITE, QS_KEY, 0);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  });
  ApartmentRef apt = sta.apartment();
  HRESULT hr = E_FAIL;
  BoundedThread caller([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    hr = InvokeInApartment(apt, [] { return S_OK; });
    CoUninitialize();
  });

  EXPECT_TRUE(AdvanceUntil(clock, reports, "that leaves out posted messages"));
  const std::string text = reports.Text();
  EXPECT_TRUE(NamesSta(text, "Thread", sta.tid(), "masked-sta")) << text;
  EXPECT_THAT(text,
              ::testing::HasSubstr("waits in MsgWaitForMultipleObjectsEx with a wake mask (QS_KEY) "
                                   "that leaves out posted messages (QS_POSTMESSAGE), so what is "
                                   "posted to the apartment's window 0x"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("1 message waits behind it"));
  EXPECT_THAT(text, ::testing::HasSubstr("a wake mask with QS_POSTMESSAGE, such as QS_ALLINPUT"));

  stop.store(true);
  SetEvent(tick);
  caller.Join();
  EXPECT_EQ(hr, S_OK);
  sta.Stop();
  CloseHandle(tick);
}

// Case 7. Tests that a call into an apartment whose thread has exited fails
// with RPC_E_DISCONNECTED and an explanation naming the apartment, its
// thread (id and name) and that it exited, and what to do next.
TEST(DefaultDiagnosticsTest, CallIntoApartmentOfExitedThreadIsExplained) {
  ApartmentRef apt;
  DWORD tid = 0;
  {
    BoundedThread gone([&] {
      SetThreadDescription(GetCurrentThread(), L"gone-sta");
      if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) std::abort();
      apt = CurrentApartment();
      tid = GetCurrentThreadId();
      // Exits without CoUninitialize, as a thread that returns early does.
    });
  }
  std::string text;
  HRESULT hr = E_FAIL;
  RunInMta([&] {
    hr = InvokeInApartment(apt, [] { return S_OK; });
    text = LastErrorDescription();
  });
  EXPECT_EQ(hr, RPC_E_DISCONNECTED);
  EXPECT_THAT(text, ::testing::HasSubstr("(thread " + Tid(tid) + " 'gone-sta')"));
  EXPECT_THAT(text, ::testing::HasSubstr("its thread has exited"));
  EXPECT_THAT(text, ::testing::HasSubstr("What to do next: "));
}

}  // namespace
}  // namespace apartments::internal::testing
