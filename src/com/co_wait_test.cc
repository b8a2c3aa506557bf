// Tests of CoWaitForMultipleHandles' pumping in an STA, which follows
// Windows' rule (Wine's compobj.c test_CoWaitForMultipleHandles, run on
// Windows): the handles first, APCs before messages, only COM calls, sent
// messages and posted DDE messages dispatched, the rest left queued but
// examined, the quit flag consumed.
#include <atomic>
#include <vector>

#include "apartments/win32.h"
#include "com/com_test_util.h"
#include "gtest/gtest.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::RunInMta;
using testing::RunInSta;
using testing::TestEvent;

// The messages the test window received, in order (the window's thread only).
thread_local std::vector<UINT> t_received;

LRESULT CALLBACK RecordingProc(HWND hwnd, UINT msg, WPARAM wparam, LPARAM lparam) {
  t_received.push_back(msg);
  return DefWindowProcW(hwnd, msg, wparam, lparam);
}

// A message-only window on the calling thread that records what it receives.
class RecordingWindow {
 public:
  RecordingWindow() {
    static const ATOM atom = [] {
      WNDCLASSW wc{};
      wc.lpfnWndProc = &RecordingProc;
      wc.lpszClassName = L"apartments.co_wait_test";
      return RegisterClassW(&wc);
    }();
    hwnd_ = CreateWindowExW(0, MAKEINTATOM(atom), L"", 0, 0, 0, 0, 0, HWND_MESSAGE, nullptr,
                            nullptr, nullptr);
    t_received.clear();
  }
  ~RecordingWindow() { DestroyWindow(hwnd_); }
  HWND hwnd() const { return hwnd_; }

 private:
  HWND hwnd_;
};

bool Queued(HWND hwnd, UINT message, WPARAM* wparam = nullptr) {
  MSG msg;
  if (!PeekMessageW(&msg, hwnd, message, message, PM_REMOVE)) return false;
  if (wparam != nullptr) *wparam = msg.wParam;
  return true;
}

// Tests that a wait already satisfied returns at once and dispatches nothing,
// even with a DDE message queued (Windows: "unexpectedly pumped messages").
TEST(CoWaitTest, SatisfiedWaitDispatchesNothing) {
  RunInSta([] {
    RecordingWindow window;
    ASSERT_NE(window.hwnd(), nullptr);
    HANDLE event = CreateEventW(nullptr, TRUE, TRUE, nullptr);
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_DDE_FIRST, 0, 0));
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 1, &event, &index), S_OK);
    EXPECT_EQ(index, 0u);
    EXPECT_TRUE(t_received.empty());
    EXPECT_TRUE(Queued(window.hwnd(), WM_DDE_FIRST));
    CloseHandle(event);
  });
}

// Tests that a wait that times out dispatches the posted DDE messages, in
// order, and leaves other posted messages queued (Windows dispatches
// WM_DDE_FIRST there but not WM_USER; the outgoing call's modal loop
// dispatches neither).
TEST(CoWaitTest, DispatchesDdeMessagesOnly) {
  RunInSta([] {
    RecordingWindow window;
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_NULL, 0, 0));
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_DDE_FIRST, 0, 0));
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_USER + 1, 0, 0));
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_DDE_FIRST + 1, 0, 0));
    ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_DDE_LAST, 0, 0));
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 1, &event, &index), RPC_S_CALLPENDING);
    EXPECT_EQ(t_received, (std::vector<UINT>{WM_DDE_FIRST, WM_DDE_FIRST + 1}));
    EXPECT_FALSE(Queued(nullptr, WM_DDE_LAST));  // A thread message: taken, no window.
    EXPECT_TRUE(Queued(window.hwnd(), WM_USER + 1));
    EXPECT_TRUE(Queued(window.hwnd(), WM_NULL));
    CloseHandle(event);
  });
}

// Tests that a message sent to the waiting thread is served during the wait.
TEST(CoWaitTest, ServesSentMessages) {
  RunInSta([] {
    RecordingWindow window;
    HWND hwnd = window.hwnd();
    HANDLE done = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    BoundedThread sender([&] {
      SendMessageW(hwnd, WM_USER, 0, 0);
      SetEvent(done);
    });
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(0, testing::kBoundMs, 1, &done, &index), S_OK);
    EXPECT_EQ(index, 0u);
    EXPECT_EQ(t_received, std::vector<UINT>{WM_USER});
    sender.Join();
    CloseHandle(done);
  });
}

// Tests that a posted message CoWaitForMultipleHandles does not dispatch is
// still marked examined: a later MsgWaitForMultipleObjectsEx waiting for new
// posted input does not wake for it, and it stays queued.
TEST(CoWaitTest, MarksTheQueueExamined) {
  RunInSta([] {
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    constexpr UINT kRegistered = 0xC065;
    ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), kRegistered, 0, 0));
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(COWAIT_ALERTABLE, 50, 1, &event, &index),
              RPC_S_CALLPENDING);
    EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 2, QS_ALLPOSTMESSAGE, MWMO_ALERTABLE),
              static_cast<DWORD>(WAIT_TIMEOUT));
    EXPECT_TRUE(Queued(nullptr, kRegistered));
    CloseHandle(event);
  });
}

std::atomic<int> g_apcs{0};
void CALLBACK CountApc(ULONG_PTR) { g_apcs.fetch_add(1); }

// Tests that an alertable wait runs queued APCs first, even with a DDE
// message pending, and returns S_OK with WAIT_IO_COMPLETION as the index,
// dispatching nothing.
TEST(CoWaitTest, AlertableRunsApcsBeforeMessages) {
  RunInSta([] {
    RecordingWindow window;
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_DDE_FIRST, 0, 0));
    g_apcs = 0;
    ASSERT_NE(QueueUserAPC(&CountApc, GetCurrentThread(), 0), 0u);
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(COWAIT_ALERTABLE, 50, 1, &event, &index), S_OK);
    EXPECT_EQ(index, static_cast<DWORD>(WAIT_IO_COMPLETION));
    EXPECT_EQ(g_apcs.load(), 1);
    EXPECT_TRUE(t_received.empty());
    EXPECT_TRUE(Queued(window.hwnd(), WM_DDE_FIRST));
    CloseHandle(event);
  });
}

// Tests that a quit posted with PostQuitMessage is consumed by the wait and
// not posted again (Windows: "CoWaitForMultipleHandles didn't remove WM_QUIT
// messages"); this used to re-post it.
TEST(CoWaitTest, ConsumesThePostedQuit) {
  RunInSta([] {
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    PostQuitMessage(44);
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 1, &event, &index), RPC_S_CALLPENDING);
    EXPECT_FALSE(Queued(nullptr, WM_QUIT));
    CloseHandle(event);
  });
}

// Tests that a WM_QUIT posted as a message to a window is an ordinary posted
// message to the wait: it stays queued, with its wParam, while the DDE
// message before it is dispatched.
TEST(CoWaitTest, LeavesAQuitMessagePostedToAWindow) {
  RunInSta([] {
    RecordingWindow window;
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_DDE_FIRST, 0, 0));
    ASSERT_TRUE(PostMessageW(window.hwnd(), WM_QUIT, 42, 0));
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 1, &event, &index), RPC_S_CALLPENDING);
    EXPECT_EQ(t_received, std::vector<UINT>{WM_DDE_FIRST});
    WPARAM code = 0;
    EXPECT_TRUE(Queued(window.hwnd(), WM_QUIT, &code));
    EXPECT_EQ(code, 42u);
    CloseHandle(event);
  });
}

// Tests that outside an STA (MTA, or no apartment) the wait neither pumps nor
// examines messages: the queue still has new input afterwards.
TEST(CoWaitTest, OutsideAnStaNothingIsPumpedOrExamined) {
  auto check = [] {
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // The thread's queue.
    ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_DDE_FIRST, 0, 0));
    DWORD index = 0xdeadbeef;
    EXPECT_EQ(CoWaitForMultipleHandles(0, 20, 1, &event, &index), RPC_S_CALLPENDING);
    EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 2, QS_ALLPOSTMESSAGE, MWMO_ALERTABLE),
              static_cast<DWORD>(WAIT_OBJECT_0));
    EXPECT_TRUE(Queued(nullptr, WM_DDE_FIRST));
    CloseHandle(event);
  };
  RunInMta(check);
  BoundedThread uninitialized(check);
}

// Tests the argument errors Windows gives, and that *lpdwindex is zeroed
// before them.
TEST(CoWaitTest, ArgumentErrorsZeroTheIndex) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  DWORD index = 0xdeadbeef;
  EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 0, nullptr, &index), E_INVALIDARG);
  EXPECT_EQ(index, 0u);
  index = 0xdeadbeef;
  EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 0, &event, &index), RPC_E_NO_SYNC);
  EXPECT_EQ(index, 0u);
  EXPECT_EQ(CoWaitForMultipleHandles(0, 50, 0, &event, nullptr), E_INVALIDARG);
  CloseHandle(event);
}

}  // namespace
}  // namespace apartments::internal
