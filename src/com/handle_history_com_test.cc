// Tests that COM failures built on a bad handle carry the handle history:
// CoWaitForMultipleHandles on a handle another thread closed, and a cross-
// apartment call whose reply event another thread closed twice.
#include <gmock/gmock.h>

#include <atomic>
#include <string>

#include "apartments/error_info.h"
#include "apartments/last_error.h"
#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/apartment_impl.h"
#include "com/com_test_util.h"
#include "gtest/gtest.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::RunInMta;
using testing::RunInSta;
using testing::StaThread;
using testing::TestEvent;

// Tests that CoWaitForMultipleHandles, in an STA, on a handle a named thread
// closed, fails with HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE) and both the
// error info and the last error explanation name that thread.
TEST(HandleHistoryComTest, CoWaitOnHandleClosedElsewhereNamesTheCloser) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, L"com-history-event");
  ASSERT_NE(event, nullptr);
  DWORD closer_tid = 0;
  {
    BoundedThread closer([&] {
      SetThreadDescription(GetCurrentThread(), L"stray-closer");
      closer_tid = GetCurrentThreadId();
      CloseHandle(event);
    });
  }
  RunInSta([&] {
    DWORD index = 0;
    HANDLE handles[2] = {GetCurrentProcess(), event};
    EXPECT_EQ(CoWaitForMultipleHandles(0, 0, 2, handles, &index),
              HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
    const std::string info = LastErrorDescription();
    EXPECT_THAT(info,
                ::testing::HasSubstr("CoWaitForMultipleHandles failed with ERROR_INVALID_HANDLE"))
        << info;
    EXPECT_THAT(info, ::testing::HasSubstr("number 1"));
    EXPECT_THAT(info, ::testing::HasSubstr("an event 'com-history-event'"));
    // The closer has exited, so only its id is known now.
    EXPECT_THAT(info, ::testing::HasSubstr("closed by thread " + std::to_string(closer_tid)));
    EXPECT_EQ(LastErrorExplanation(), info);
    EXPECT_EQ(LastErrorHResult(), HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
  });
}

struct HandOff {
  std::atomic<HANDLE> handle{nullptr};
  HANDLE go = nullptr;    // Set when `handle` is ready for the stray thread.
  HANDLE done = nullptr;  // Set by the stray thread when it has closed it twice.
};
HandOff* g_handoff = nullptr;

// Tests that a call whose reply event was closed twice by another thread
// fails with RPC_E_SYS_CALL_FAILED, never runs, and its error info names the
// closing thread, the double close and the target's wait chain.
TEST(HandleHistoryComTest, ReplyEventClosedTwiceByAnotherThreadIsNamed) {
  HandOff handoff;
  handoff.go = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  handoff.done = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  g_handoff = &handoff;
  std::atomic<DWORD> stray_tid{0};
  std::atomic<bool> second_close_failed{false};
  TestEvent release;  // Keeps the stray thread (and its name) alive until checked.
  BoundedThread stray([&] {
    SetThreadDescription(GetCurrentThread(), L"stray-closer");
    stray_tid = GetCurrentThreadId();
    if (WaitForSingleObject(handoff.go, 10000) != WAIT_OBJECT_0) return;
    HANDLE h = handoff.handle.load();
    CloseHandle(h);
    second_close_failed = !CloseHandle(h);
    SetEvent(handoff.done);
    (void)release.Wait();
  });
  StaThread target(L"history-target");
  RunInMta([&] {
    // The hook runs on the caller right before the channel resolves the
    // reply event: hand the handle to the stray thread and let it close it.
    SetReplyEventHookForTesting([](HANDLE h) {
      g_handoff->handle = h;
      SetEvent(g_handoff->go);
      WaitForSingleObject(g_handoff->done, 10000);
    });
    bool ran = false;
    HRESULT hr = InvokeInApartment(target.apartment(), [&] {
      ran = true;
      return S_OK;
    });
    SetReplyEventHookForTesting(nullptr);
    EXPECT_EQ(hr, RPC_E_SYS_CALL_FAILED);
    EXPECT_FALSE(ran);
    const std::string text = LastErrorDescription();
    const std::string stray_name =
        "thread " + std::to_string(stray_tid.load()) + " 'stray-closer'";
    EXPECT_THAT(text, ::testing::HasSubstr("RPC_E_SYS_CALL_FAILED"));
    EXPECT_THAT(text,
                ::testing::HasSubstr("created by thread " + std::to_string(GetCurrentThreadId())))
        << text;
    EXPECT_THAT(text, ::testing::HasSubstr("closed by " + stray_name));
    EXPECT_THAT(text, ::testing::HasSubstr("closed again by " + stray_name));
    EXPECT_THAT(text, ::testing::HasSubstr("Wait chain of thread " + std::to_string(target.tid())))
        << text;
    EXPECT_EQ(LastErrorExplanation(), text);
    // The channel recovers: the next call works.
    EXPECT_EQ(InvokeInApartment(target.apartment(), [] { return S_OK; }), S_OK);
  });
  release.Set();
  stray.Join();
  EXPECT_TRUE(second_close_failed.load());
  g_handoff = nullptr;
  CloseHandle(handoff.go);
  CloseHandle(handoff.done);
}

}  // namespace
}  // namespace apartments::internal
