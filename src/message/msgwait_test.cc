// Tests of MsgWaitForMultipleObjects(Ex) and WaitMessage.
#include <gtest/gtest.h>

#include "message/test_util.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::CreateMessageWindow;
using testing::DrainQueue;
using testing::Eventually;
using testing::ScopedClass;
using testing::TestEvent;

LRESULT CALLBACK TripleProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  if (message == WM_USER) return static_cast<LRESULT>(wparam * 3);
  return DefWindowProcW(hwnd, message, wparam, lparam);
}

class MsgWaitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DrainQueue();
    GetQueueStatus(QS_ALLINPUT);  // Everything examined.
  }
  void TearDown() override { DrainQueue(); }
};

// Tests that a message posted by another thread during the wait returns
// WAIT_OBJECT_0 + nCount.
TEST_F(MsgWaitTest, PostedInputWakesWait) {
  TestEvent never;
  const DWORD self = GetCurrentThreadId();
  TestEvent go;
  BoundedThread poster([&] {
    if (go.Wait()) PostThreadMessageW(self, WM_USER, 0, 0);
  });
  go.Set();
  HANDLE handles[] = {never.get()};
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(1, handles, testing::kBoundMs, QS_ALLINPUT, 0),
            WAIT_OBJECT_0 + 1);
}

// Tests that a signaled handle returns its index, before input.
TEST_F(MsgWaitTest, SignaledHandleReturnsItsIndex) {
  TestEvent a, b;
  b.Set();
  HANDLE handles[] = {a.get(), b.get()};
  EXPECT_EQ(MsgWaitForMultipleObjects(2, handles, FALSE, 0, QS_ALLINPUT), WAIT_OBJECT_0 + 1);
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0));
  EXPECT_EQ(MsgWaitForMultipleObjects(2, handles, FALSE, 0, QS_ALLINPUT), WAIT_OBJECT_0 + 1);
}

// Tests that the wait times out with nothing to wake it.
TEST_F(MsgWaitTest, TimesOut) {
  TestEvent never;
  HANDLE handles[] = {never.get()};
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(1, handles, 30, QS_ALLINPUT, 0), static_cast<DWORD>(WAIT_TIMEOUT));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 0, QS_ALLINPUT, 0), static_cast<DWORD>(WAIT_TIMEOUT));
}

// Tests Windows' semantics: without MWMO_INPUTAVAILABLE, input already in the
// queue when it was last examined does not wake the wait; with it, it does.
TEST_F(MsgWaitTest, OnlyNewInputWakesWithoutInputAvailable) {
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0));
  // Not yet examined: it is new.
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 0, QS_ALLINPUT, 0), WAIT_OBJECT_0);
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE));  // Examined.
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 30, QS_ALLINPUT, 0),
            static_cast<DWORD>(WAIT_TIMEOUT));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 30, QS_ALLINPUT, MWMO_INPUTAVAILABLE),
            WAIT_OBJECT_0);
}

// Tests that the wake mask selects the kinds of input that wake the wait.
TEST_F(MsgWaitTest, WakeMaskSelectsInputKinds) {
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 0, QS_SENDMESSAGE, 0),
            static_cast<DWORD>(WAIT_TIMEOUT));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 0, QS_POSTMESSAGE, 0), WAIT_OBJECT_0);
}

// Tests argument validation.
TEST_F(MsgWaitTest, InvalidArgumentsFail) {
  HANDLE handles[MAXIMUM_WAIT_OBJECTS] = {};
  SetLastError(0);
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(MAXIMUM_WAIT_OBJECTS, handles, 0, QS_ALLINPUT, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(1, nullptr, 0, QS_ALLINPUT, 0), WAIT_FAILED);
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 0, QS_ALLINPUT, 0x100), WAIT_FAILED);
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 0, 0x80000000u, 0), WAIT_FAILED);
  HANDLE bad[] = {reinterpret_cast<HANDLE>(0x4444)};
  SetLastError(0);
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(1, bad, 0, QS_ALLINPUT, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  TestEvent e;
  HANDLE twice[] = {e.get(), e.get()};
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(2, twice, 0, QS_ALLINPUT, MWMO_WAITALL), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests MWMO_WAITALL: all handles signaled is not enough without input; with
// input it returns WAIT_OBJECT_0.
TEST_F(MsgWaitTest, WaitAllNeedsHandlesAndInput) {
  TestEvent a, b;
  a.Set();
  b.Set();
  HANDLE handles[] = {a.get(), b.get()};
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(2, handles, 30, QS_ALLINPUT, MWMO_WAITALL),
            static_cast<DWORD>(WAIT_TIMEOUT));
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(2, handles, testing::kBoundMs, QS_ALLINPUT, MWMO_WAITALL),
            WAIT_OBJECT_0);
}

void CALLBACK CountApc(ULONG_PTR data) { ++*reinterpret_cast<int*>(data); }

// Tests MWMO_ALERTABLE: a queued APC runs inside the wait, which returns
// WAIT_IO_COMPLETION.
TEST_F(MsgWaitTest, AlertableWaitRunsApcs) {
  int ran = 0;
  HANDLE self;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self,
                              0, FALSE, DUPLICATE_SAME_ACCESS));
  ASSERT_NE(QueueUserAPC(&CountApc, self, reinterpret_cast<ULONG_PTR>(&ran)), 0u);
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, testing::kBoundMs, QS_ALLINPUT, MWMO_ALERTABLE),
            static_cast<DWORD>(WAIT_IO_COMPLETION));
  EXPECT_EQ(ran, 1);
  CloseHandle(self);
}

// Tests that MsgWaitForMultipleObjectsEx reports a message sent to the
// waiting thread (QS_SENDMESSAGE input) without running it, as Windows' does
// (Wine's user32 msg.c): the next PeekMessageW runs it. Regression: the wait
// ran it.
TEST_F(MsgWaitTest, ReportsSentMessageWithoutServingIt) {
  ScopedClass window_class(L"ApartmentsMsgWaitTest", &TripleProc);
  HWND hwnd = CreateMessageWindow(window_class.name());
  ASSERT_NE(hwnd, nullptr);
  TestEvent done;
  LRESULT result = 0;
  BoundedThread sender([&] {
    result = SendMessageW(hwnd, WM_USER, 5, 0);
    done.Set();
  });
  HANDLE handles[] = {done.get()};
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(1, handles, testing::kBoundMs, QS_ALLINPUT, 0),
            WAIT_OBJECT_0 + 1);
  EXPECT_EQ(HIWORD(GetQueueStatus(QS_SENDMESSAGE)), QS_SENDMESSAGE);  // Still pending.
  EXPECT_EQ(WaitForSingleObject(done.get(), 0), static_cast<DWORD>(WAIT_TIMEOUT));
  MSG msg;
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE));  // Runs it; no posted message.
  EXPECT_EQ(WaitForSingleObject(done.get(), testing::kBoundMs), WAIT_OBJECT_0);
  sender.Join();
  EXPECT_EQ(result, 15);
  DestroyWindow(hwnd);
}

// Tests that a sent message does not wake a wait whose mask lacks
// QS_SENDMESSAGE (it waits, unserved, for the next Get/PeekMessage).
TEST_F(MsgWaitTest, SentMessageOutsideWakeMaskDoesNotWake) {
  ScopedClass window_class(L"ApartmentsMsgWaitTest", &TripleProc);
  HWND hwnd = CreateMessageWindow(window_class.name());
  ASSERT_NE(hwnd, nullptr);
  LRESULT result = 0;
  BoundedThread sender([&] { result = SendMessageW(hwnd, WM_USER, 2, 0); });
  ASSERT_TRUE(Eventually([&] { return HIWORD(GetQueueStatus(QS_SENDMESSAGE)) != 0; }));
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(0, nullptr, 30, QS_POSTMESSAGE, MWMO_INPUTAVAILABLE),
            static_cast<DWORD>(WAIT_TIMEOUT));
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
  sender.Join();
  EXPECT_EQ(result, 6);
  DestroyWindow(hwnd);
}

// Tests that a handle without SYNCHRONIZE cannot be waited on here either:
// WAIT_FAILED with ERROR_ACCESS_DENIED.
TEST_F(MsgWaitTest, HandleWithoutSynchronizeIsDenied) {
  TestEvent e;
  HANDLE modify_only = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), e.get(), GetCurrentProcess(), &modify_only,
                              EVENT_MODIFY_STATE, FALSE, 0));
  SetLastError(0);
  EXPECT_EQ(MsgWaitForMultipleObjectsEx(1, &modify_only, 0, QS_ALLINPUT, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ACCESS_DENIED));
  CloseHandle(modify_only);
}

// Tests that WaitMessage returns when another thread posts, and that the
// waiting thread publishes itself as idle meanwhile.
TEST_F(MsgWaitTest, WaitMessageReturnsOnNewMessageAndIsIdle) {
  const DWORD self = GetCurrentThreadId();
  BoundedThread poster([&] {
    if (Eventually([&] { return ReadWaitRecord(self).kind == BlockKind::kMessageIdle; })) {
      PostThreadMessageW(self, WM_USER, 0, 0);
    } else {
      PostThreadMessageW(self, WM_USER, 1, 0);
    }
  });
  EXPECT_TRUE(WaitMessage());
  MSG msg;
  ASSERT_TRUE(testing::GetMessageWithin(&msg));
  EXPECT_EQ(msg.wParam, 0u) << "the waiter was never seen idle";
}

}  // namespace
}  // namespace apartments::internal
