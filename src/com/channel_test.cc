// Tests of the channel: calls between apartments, the modal loop, message
// filters, teardown with calls queued or running, and the explanations
// attached to failed calls.
//
// Over 800 lines on purpose: one suite for the channel whose cases share its
// fixtures; split it by subject (filters, teardown, explanations) when it grows
// further.
#include <gmock/gmock.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/error_info.h"
#include "apartments/message_queue.h"
#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/apartment_impl.h"
#include "com/com_test_util.h"
#include "gtest/gtest.h"
#include "kernel/kernel.h"
#include "message/queue.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::Eventually;
using testing::RunInMta;
using testing::ScopedPostLimit;
using testing::RunInSta;
using testing::StaThread;
using testing::TestEvent;
using testing::TestMessageFilter;

// Tests that an STA calls into another STA, the call runs on the target's
// thread, and its result comes back.
TEST(ChannelTest, StaToStaReturnsValue) {
  StaThread target(L"target");
  RunInSta([&] {
    int value = 41;
    DWORD ran_on = 0;
    EXPECT_EQ(InvokeInApartment(target.apartment(), [&] {
                ran_on = GetCurrentThreadId();
                value += 1;
                return S_FALSE;
              }),
              S_FALSE);
    EXPECT_EQ(value, 42);
    EXPECT_EQ(ran_on, target.tid());
  });
}

// Tests that an MTA thread calls into an STA and gets its result.
TEST(ChannelTest, MtaToStaReturnsValue) {
  StaThread target;
  RunInMta([&] {
    DWORD ran_on = 0;
    EXPECT_EQ(InvokeInApartment(target.apartment(), [&] {
                ran_on = GetCurrentThreadId();
                return E_NOTIMPL;
              }),
              E_NOTIMPL);
    EXPECT_EQ(ran_on, target.tid());
  });
}

// Tests that an STA calls into the MTA: the call runs on an MTA worker
// thread that is in the MTA, and returns its value.
TEST(ChannelTest, StaToMtaRunsOnWorker) {
  CO_MTA_USAGE_COOKIE cookie;
  ASSERT_EQ(CoIncrementMTAUsage(&cookie), S_OK);
  ApartmentRef mta;
  BoundedThread find([&] { mta = CurrentApartment(); });
  find.Join();
  ASSERT_NE(mta, nullptr);
  RunInSta([&] {
    DWORD caller = GetCurrentThreadId();
    DWORD ran_on = 0;
    APTTYPE type = APTTYPE_CURRENT;
    APTTYPEQUALIFIER qualifier;
    EXPECT_EQ(InvokeInApartment(mta, [&] {
                ran_on = GetCurrentThreadId();
                EXPECT_TRUE(CurrentApartment() == mta);
                return CoGetApartmentType(&type, &qualifier);
              }),
              S_OK);
    EXPECT_NE(ran_on, caller);
    EXPECT_EQ(type, APTTYPE_MTA);
  });
  EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
}

// Tests that a call into the caller's own apartment runs directly.
TEST(ChannelTest, SameApartmentRunsDirectly) {
  RunInSta([] {
    DWORD ran_on = 0;
    EXPECT_EQ(InvokeInApartment(CurrentApartment(), [&] {
                ran_on = GetCurrentThreadId();
                return S_OK;
              }),
              S_OK);
    EXPECT_EQ(ran_on, GetCurrentThreadId());
  });
}

// Tests that a thread in no apartment gets CO_E_NOTINITIALIZED, explained.
TEST(ChannelTest, UninitializedCallerIsNotInitialized) {
  StaThread target;
  BoundedThread t([&] {
    bool ran = false;
    EXPECT_EQ(InvokeInApartment(target.apartment(), [&] {
                ran = true;
                return S_OK;
              }),
              CO_E_NOTINITIALIZED);
    EXPECT_FALSE(ran);
    EXPECT_THAT(LastErrorDescription(), ::testing::HasSubstr("in no apartment"));
    EXPECT_EQ(LastErrorHResult(), CO_E_NOTINITIALIZED);
  });
}

// Tests that a callee that throws gives RPC_E_SERVERFAULT with the
// exception's message in the caller's error info.
TEST(ChannelTest, ThrowingCalleeIsServerFault) {
  StaThread target(L"thrower");
  RunInMta([&] {
    EXPECT_EQ(InvokeInApartment(target.apartment(),
                                []() -> HRESULT { throw std::runtime_error("disk on fire"); }),
              RPC_E_SERVERFAULT);
    std::string text = LastErrorDescription();
    EXPECT_THAT(text, ::testing::HasSubstr("disk on fire"));
    EXPECT_THAT(text, ::testing::HasSubstr("RPC_E_SERVERFAULT"));
    EXPECT_THAT(text, ::testing::HasSubstr("'thrower'"));
  });
}

// Tests that a callback into an STA that waits for its own outgoing call is
// served in its modal loop (a nested call), and its message filter sees
// CALLTYPE_NESTED.
TEST(ChannelTest, CallbackIntoWaitingStaIsNested) {
  StaThread b(L"b");
  TestMessageFilter filter;
  RunInSta([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
    ApartmentRef a = CurrentApartment();
    DWORD a_tid = GetCurrentThreadId();
    DWORD callback_ran_on = 0;
    HRESULT inner = E_FAIL;
    EXPECT_EQ(InvokeInApartment(b.apartment(), [&] {
                inner = InvokeInApartment(a, [&] {
                  callback_ran_on = GetCurrentThreadId();
                  return S_OK;
                });
                return S_OK;
              }),
              S_OK);
    EXPECT_EQ(inner, S_OK);
    EXPECT_EQ(callback_ran_on, a_tid);
    EXPECT_EQ(filter.incoming.load(), 1);
    EXPECT_EQ(filter.last_call_type.load(), static_cast<DWORD>(CALLTYPE_NESTED));
  });
}

// Tests that an unrelated call arriving while the STA waits on its own call
// is CALLTYPE_TOPLEVEL_CALLPENDING, and one arriving while it pumps
// normally is CALLTYPE_TOPLEVEL.
TEST(ChannelTest, UnrelatedCallWhilePendingIsToplevelCallPending) {
  TestMessageFilter filter;
  TestEvent b_running, release_b;
  StaThread b(L"b");
  ApartmentRef a;
  TestEvent a_ready, a_done;
  std::atomic<DWORD> seen{0};
  BoundedThread a_thread([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
    a = CurrentApartment();
    a_ready.Set();
    // A waits on B, which is held until a third thread has called into A.
    EXPECT_EQ(InvokeInApartment(b.apartment(), [&] {
                b_running.Set();
                return release_b.Wait() ? S_OK : E_FAIL;
              }),
              S_OK);
    a_done.Set();
    CoUninitialize();
  });
  ASSERT_TRUE(a_ready.Wait());
  ASSERT_TRUE(b_running.Wait());
  RunInMta([&] {
    EXPECT_EQ(InvokeInApartment(a, [&] {
                seen = filter.last_call_type.load();
                return S_OK;
              }),
              S_OK);
  });
  EXPECT_EQ(seen.load(), static_cast<DWORD>(CALLTYPE_TOPLEVEL_CALLPENDING));
  release_b.Set();
  ASSERT_TRUE(a_done.Wait());
}

// Tests that an outgoing call from inside a message sent by another thread
// fails with RPC_E_CANTCALLOUT_ININPUTSYNCCALL and never runs.
TEST(ChannelTest, CallFromSentMessageIsRefused) {
  StaThread target;
  static HRESULT result;
  static bool ran;
  static std::atomic<bool> served;
  static ApartmentRef* target_ref;
  static std::string explanation;
  target_ref = const_cast<ApartmentRef*>(&target.apartment());
  result = S_OK;
  ran = false;
  served = false;
  HWND hwnd = nullptr;
  TestEvent created, sent;
  testing::ScopedClass cls(L"ChannelTestSentClass",
                           [](HWND h, UINT m, WPARAM w, LPARAM l) -> LRESULT {
                             if (m != WM_APP) return DefWindowProcW(h, m, w, l);
                             result = InvokeInApartment(*target_ref, [] {
                               ran = true;
                               return S_OK;
                             });
                             explanation = LastErrorDescription();
                             served = true;
                             return 1;
                           });
  StaThread receiver(L"receiver", [&] {
    hwnd = testing::CreateMessageWindow(L"ChannelTestSentClass");
    created.Set();
    EXPECT_TRUE(sent.Wait());
    // Serve the sent message: MsgWait reports it (as Windows' does), the
    // PeekMessageW after it runs it.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!served.load() && std::chrono::steady_clock::now() < deadline) {
      MsgWaitForMultipleObjectsEx(0, nullptr, 100, QS_ALLINPUT, MWMO_INPUTAVAILABLE);
      MSG msg;
      PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    }
    DestroyWindow(hwnd);
  });
  ASSERT_TRUE(created.Wait());
  BoundedThread sender([&] {
    sent.Set();
    EXPECT_EQ(SendMessageW(hwnd, WM_APP, 0, 0), 1);
  });
  sender.Join();
  receiver.Stop();
  EXPECT_EQ(result, RPC_E_CANTCALLOUT_ININPUTSYNCCALL);
  EXPECT_FALSE(ran);
  EXPECT_THAT(explanation, ::testing::HasSubstr("SendMessage"));
}

// Tests that a callee's filter rejecting a call fails it with
// RPC_E_CALL_REJECTED when the caller has no filter, and the call never runs.
TEST(ChannelTest, RejectedCallFailsWithoutCallerFilter) {
  TestMessageFilter callee_filter;
  callee_filter.on_incoming = [](DWORD) { return SERVERCALL_REJECTED; };
  StaThread target(L"rejecter", [&] {
    ASSERT_EQ(CoRegisterMessageFilter(&callee_filter, nullptr), S_OK);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  });
  RunInSta([&] {
    bool ran = false;
    EXPECT_EQ(InvokeInApartment(target.apartment(), [&] {
                ran = true;
                return S_OK;
              }),
              RPC_E_CALL_REJECTED);
    EXPECT_FALSE(ran);
    EXPECT_THAT(LastErrorDescription(), ::testing::HasSubstr("SERVERCALL_REJECTED"));
  });
}

// Tests that RetryRejectedCall returning 0-99 retries at once: a call
// rejected twice with SERVERCALL_RETRYLATER then accepted succeeds.
TEST(ChannelTest, RetryRejectedCallRetriesAtOnce) {
  TestMessageFilter callee_filter, caller_filter;
  std::atomic<int> rejections{2};
  callee_filter.on_incoming = [&](DWORD) {
    return rejections.fetch_sub(1) > 0 ? SERVERCALL_RETRYLATER : SERVERCALL_ISHANDLED;
  };
  caller_filter.on_retry = [](DWORD type) {
    EXPECT_EQ(type, static_cast<DWORD>(SERVERCALL_RETRYLATER));
    return DWORD{0};
  };
  StaThread target(L"busy", [&] {
    ASSERT_EQ(CoRegisterMessageFilter(&callee_filter, nullptr), S_OK);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  });
  RunInSta([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&caller_filter, nullptr), S_OK);
    int runs = 0;
    EXPECT_EQ(InvokeInApartment(target.apartment(), [&] {
                ++runs;
                return S_OK;
              }),
              S_OK);
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(caller_filter.retries.load(), 2);
    EXPECT_EQ(callee_filter.incoming.load(), 3);
  });
}

// Tests that RetryRejectedCall returning 100 or more retries after that many
// milliseconds, and -1 gives up with RPC_E_CALL_REJECTED.
TEST(ChannelTest, RetryRejectedCallRetriesLaterThenGivesUp) {
  TestMessageFilter callee_filter, caller_filter;
  callee_filter.on_incoming = [](DWORD) { return SERVERCALL_RETRYLATER; };
  std::atomic<int> answers{0};
  caller_filter.on_retry = [&](DWORD) {
    return answers.fetch_add(1) == 0 ? DWORD{150} : static_cast<DWORD>(-1);
  };
  StaThread target(L"busy", [&] {
    ASSERT_EQ(CoRegisterMessageFilter(&callee_filter, nullptr), S_OK);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  });
  RunInSta([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&caller_filter, nullptr), S_OK);
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(InvokeInApartment(target.apartment(), [] { return S_OK; }), RPC_E_CALL_REJECTED);
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_GE(elapsed, std::chrono::milliseconds(150));
    EXPECT_EQ(callee_filter.incoming.load(), 2);
    EXPECT_EQ(caller_filter.retries.load(), 2);
    EXPECT_THAT(LastErrorDescription(), ::testing::HasSubstr("RetryRejectedCall returned -1"))
        << LastErrorDescription();
  });
}

// Tests that an STA stuck in WaitForSingleObject on a named event stops
// serving calls; once its queue is full, the next call fails at once with
// RPC_E_SYS_CALL_FAILED, never runs, and the error info names the event,
// the queue depth and quota, the thread and how long it has been stuck.
TEST(ChannelTest, StuckStaQueueFullExplainsWhatItIsBlockedOn) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ScopedPostLimit limit(10);
  HANDLE stuck = CreateEventW(nullptr, TRUE, FALSE, L"database-lock-released");
  TestEvent entered;
  StaThread target(L"stuck-sta", [&] {
    entered.Set();
    WaitForSingleObject(stuck, testing::kBoundMs);
    MSG msg;
    while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
  });
  ASSERT_TRUE(entered.Wait());
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(target.tid()).kind == BlockKind::kKernelWait; }));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(PostThreadMessageW(target.tid(), WM_APP, 0, 0));
  clock.Advance(std::chrono::seconds(5));
  RunInMta([&] {
    bool ran = false;
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(InvokeInApartment(target.apartment(), [&] {
                ran = true;
                return S_OK;
              }),
              RPC_E_SYS_CALL_FAILED);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    EXPECT_FALSE(ran);
    std::string text = LastErrorDescription();
    EXPECT_EQ(LastErrorHResult(), RPC_E_SYS_CALL_FAILED);
    EXPECT_THAT(text, ::testing::HasSubstr("'database-lock-released'"));
    EXPECT_THAT(text, ::testing::HasSubstr("event"));
    EXPECT_THAT(text, ::testing::HasSubstr("depth 10"));
    EXPECT_THAT(text, ::testing::HasSubstr("quota 10"));
    EXPECT_THAT(text, ::testing::HasSubstr("'stuck-sta'"));
    EXPECT_THAT(text, ::testing::HasSubstr(std::to_string(target.tid())));
    EXPECT_THAT(text, ::testing::HasSubstr("5.0 s ago"));
  });
  SetEvent(stuck);
  target.Stop();
  CloseHandle(stuck);
}

// Tests that a mutex an STA is stuck on is reported with its owner thread.
TEST(ChannelTest, StuckStaReportsMutexOwner) {
  ScopedPostLimit limit(3);
  HANDLE mutex = CreateMutexW(nullptr, TRUE, L"config-mutex");  // Owned by this thread.
  TestEvent entered;
  StaThread target(L"waits-for-mutex", [&] {
    entered.Set();
    if (WaitForSingleObject(mutex, testing::kBoundMs) == WAIT_OBJECT_0) ReleaseMutex(mutex);
  });
  ASSERT_TRUE(entered.Wait());
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(target.tid()).kind == BlockKind::kKernelWait; }));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(PostThreadMessageW(target.tid(), WM_APP, 0, 0));
  DWORD owner = GetCurrentThreadId();
  RunInMta([&] {
    EXPECT_EQ(InvokeInApartment(target.apartment(), [] { return S_OK; }), RPC_E_SYS_CALL_FAILED);
    std::string text = LastErrorDescription();
    EXPECT_THAT(text, ::testing::HasSubstr("mutex 'config-mutex'"));
    EXPECT_THAT(text, ::testing::HasSubstr("owned by thread " + std::to_string(owner)));
  });
  ReleaseMutex(mutex);
  target.Stop();
  CloseHandle(mutex);
}

// Tests that a call whose reply event handle was closed by mistake fails
// with RPC_E_SYS_CALL_FAILED, never runs, and the error info says so.
TEST(ChannelTest, ClosedReplyEventIsSysCallFailed) {
  StaThread target;
  RunInMta([&] {
    SetReplyEventHookForTesting([](HANDLE h) { CloseHandle(h); });
    bool ran = false;
    HRESULT hr = InvokeInApartment(target.apartment(), [&] {
      ran = true;
      return S_OK;
    });
    SetReplyEventHookForTesting(nullptr);
    EXPECT_EQ(hr, RPC_E_SYS_CALL_FAILED);
    EXPECT_FALSE(ran);
    std::string text = LastErrorDescription();
    EXPECT_THAT(text, ::testing::HasSubstr("reply event handle 0x"));
    EXPECT_THAT(text, ::testing::HasSubstr("not open"));
    // The channel recovers: the next call works.
    EXPECT_EQ(InvokeInApartment(target.apartment(), [] { return S_OK; }), S_OK);
  });
}

// Tests that calls queued to an STA that uninitializes without pumping fail
// with RPC_E_DISCONNECTED, their callers wake up, and none of them ran.
TEST(ChannelTest, ShutdownWithCallsQueuedDisconnectsThem) {
  TestEvent blocked, release;
  StaThread target(L"leaving", [&] {
    blocked.Set();
    EXPECT_TRUE(release.Wait());
    CoUninitialize();  // Without pumping: the queued calls are never run.
    CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);  // Balanced by StaThread.
  });
  ASSERT_TRUE(blocked.Wait());
  std::atomic<int> ran{0}, disconnected{0};
  std::vector<std::string> texts(3);
  std::vector<std::unique_ptr<BoundedThread>> callers;
  for (int i = 0; i < 3; ++i) {
    callers.push_back(std::make_unique<BoundedThread>([&, i] {
      ASSERT_EQ(CoInitializeEx(nullptr, COINIT_MULTITHREADED), S_OK);
      if (InvokeInApartment(target.apartment(), [&] {
            ++ran;
            return S_OK;
          }) == RPC_E_DISCONNECTED) {
        ++disconnected;
      }
      texts[i] = LastErrorDescription();
      CoUninitialize();
    }));
  }
  MessageQueueStats stats;
  ASSERT_TRUE(Eventually([&] {
    return ReadMessageQueueStats(target.tid(), &stats) && stats.depth == 3;
  }));
  release.Set();
  for (auto& c : callers) c->Join();
  EXPECT_EQ(disconnected.load(), 3);
  EXPECT_EQ(ran.load(), 0);
  for (const std::string& text : texts) {
    EXPECT_THAT(text, ::testing::HasSubstr("shut down"));
    EXPECT_THAT(text, ::testing::HasSubstr("still queued"));
    EXPECT_THAT(text, ::testing::HasSubstr("'leaving'"));
  }
}

// Tests that a call executing when its STA decides to shut down completes
// normally, while the call queued behind it is disconnected.
TEST(ChannelTest, ShutdownWithCallExecutingCompletesIt) {
  TestEvent first_running, second_queued;
  std::atomic<bool> quit{false};
  StaThread target(L"busy", [&] {
    MSG msg;
    while (!quit.load() && GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  });
  HRESULT first = E_FAIL, second = E_FAIL;
  std::atomic<bool> second_ran{false};
  BoundedThread a([&] {
    RunInMta([&] {
      first = InvokeInApartment(target.apartment(), [&] {
        first_running.Set();
        // Hold the STA until the second call is queued behind this one.
        if (!second_queued.Wait()) return E_FAIL;
        quit = true;
        CoUninitialize();  // The STA ends while this call runs.
        return S_OK;
      });
    });
  });
  ASSERT_TRUE(first_running.Wait());
  BoundedThread b([&] {
    RunInMta([&] {
      second = InvokeInApartment(target.apartment(), [&] {
        second_ran = true;
        return S_OK;
      });
    });
  });
  MessageQueueStats stats;
  ASSERT_TRUE(Eventually([&] {
    return ReadMessageQueueStats(target.tid(), &stats) && stats.depth == 1;
  }));
  second_queued.Set();
  a.Join();
  b.Join();
  EXPECT_EQ(first, S_OK);
  EXPECT_EQ(second, RPC_E_DISCONNECTED);
  EXPECT_FALSE(second_ran.load());
}

// Tests that calls queued to an STA whose thread exits without
// CoUninitialize are disconnected, and later calls fail at once.
TEST(ChannelTest, ThreadExitDisconnectsQueuedCalls) {
  TestEvent blocked, release;
  ApartmentRef apartment;
  DWORD tid = 0;
  auto sta = std::make_unique<BoundedThread>([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    apartment = CurrentApartment();
    tid = GetCurrentThreadId();
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    blocked.Set();
    EXPECT_TRUE(release.Wait());
    // Exits still initialized.
  });
  ASSERT_TRUE(blocked.Wait());
  HRESULT queued = E_FAIL;
  BoundedThread caller([&] {
    RunInMta([&] { queued = InvokeInApartment(apartment, [] { return S_OK; }); });
  });
  MessageQueueStats stats;
  ASSERT_TRUE(Eventually([&] { return ReadMessageQueueStats(tid, &stats) && stats.depth == 1; }));
  release.Set();
  caller.Join();
  sta->Join();
  EXPECT_EQ(queued, RPC_E_DISCONNECTED);
  RunInMta([&] {
    EXPECT_EQ(InvokeInApartment(apartment, [] { return S_OK; }), RPC_E_DISCONNECTED);
    EXPECT_THAT(LastErrorDescription(), ::testing::HasSubstr("before the call was made"))
        << LastErrorDescription();
  });
}

// Tests that calls queued to the MTA fail with RPC_E_DISCONNECTED when its
// last user leaves, while a call running on a worker completes.
TEST(ChannelTest, MtaShutdownDisconnectsQueuedCalls) {
  CO_MTA_USAGE_COOKIE cookie;
  ASSERT_EQ(CoIncrementMTAUsage(&cookie), S_OK);
  ApartmentRef mta;
  BoundedThread find([&] { mta = CurrentApartment(); });
  find.Join();
  TestEvent running, release;
  HRESULT executing = E_FAIL;
  BoundedThread a([&] {
    RunInSta([&] {
      executing = InvokeInApartment(mta, [&] {
        running.Set();
        return release.Wait() ? S_OK : E_FAIL;
      });
    });
  });
  ASSERT_TRUE(running.Wait());
  EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
  EXPECT_TRUE(mta->IsShutDown());
  release.Set();
  a.Join();
  EXPECT_EQ(executing, S_OK);
  RunInSta([&] {
    EXPECT_EQ(InvokeInApartment(mta, [] { return S_OK; }), RPC_E_DISCONNECTED);
    EXPECT_THAT(LastErrorDescription(), ::testing::HasSubstr("the MTA"));
  });
}

// Tests that a WM_QUIT posted while an STA waits in the modal loop is kept
// for after the wait, and other posted messages stay queued, undispatched.
TEST(ChannelTest, ModalWaitKeepsQuitAndPostedMessages) {
  StaThread b;
  RunInSta([&] {
    ApartmentRef a = CurrentApartment();
    DWORD a_tid = GetCurrentThreadId();
    EXPECT_EQ(InvokeInApartment(b.apartment(), [&] {
                EXPECT_TRUE(PostThreadMessageW(a_tid, WM_APP + 1, 5, 0));
                // A callback that ends A's message loop: its WM_QUIT must
                // survive the modal wait.
                return InvokeInApartment(a, [] {
                  PostQuitMessage(7);
                  return S_OK;
                });
              }),
              S_OK);
    MSG msg;
    ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
    EXPECT_EQ(msg.message, static_cast<UINT>(WM_APP + 1));
    ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
    EXPECT_EQ(msg.message, static_cast<UINT>(WM_QUIT));
    EXPECT_EQ(msg.wParam, 7u);
  });
}

// Tests that CoWaitForMultipleHandles with COWAIT_DISPATCH_WINDOW_MESSAGES
// dispatches posted messages and consumes the quit posted with
// PostQuitMessage, as it does without the flag (Windows; this used to
// re-post it).
TEST(ChannelTest, CoWaitDispatchWindowMessagesConsumesQuit) {
  RunInSta([] {
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    PostQuitMessage(3);
    ASSERT_TRUE(PostMessageW(nullptr, WM_APP, 0, 0));
    DWORD index = 99;
    EXPECT_EQ(CoWaitForMultipleHandles(COWAIT_DISPATCH_WINDOW_MESSAGES, 20, 1, &event, &index),
              RPC_S_CALLPENDING);
    MSG msg;
    EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));  // WM_APP was dispatched.
    CloseHandle(event);
  });
}

// Tests CoWaitForMultipleHandles' argument errors.
TEST(ChannelTest, CoWaitArgumentErrors) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  DWORD index;
  EXPECT_EQ(CoWaitForMultipleHandles(0, 0, 1, &event, nullptr), E_INVALIDARG);
  EXPECT_EQ(CoWaitForMultipleHandles(0, 0, 1, nullptr, &index), E_INVALIDARG);
  EXPECT_EQ(CoWaitForMultipleHandles(0x100, 0, 1, &event, &index), E_INVALIDARG);
  EXPECT_EQ(CoWaitForMultipleHandles(0, 0, 0, &event, &index), RPC_E_NO_SYNC);
  HANDLE many[MAXIMUM_WAIT_OBJECTS];
  for (HANDLE& h : many) h = event;
  EXPECT_EQ(CoWaitForMultipleHandles(0, 0, MAXIMUM_WAIT_OBJECTS, many, &index), E_INVALIDARG);
  HANDLE dup[2] = {event, event};
  EXPECT_EQ(CoWaitForMultipleHandles(COWAIT_WAITALL, 0, 2, dup, &index), E_INVALIDARG);
  HANDLE closed = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  CloseHandle(closed);
  EXPECT_EQ(CoWaitForMultipleHandles(0, 0, 1, &closed, &index),
            HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
  // The failure leaves its explanation in the error info; take it, so later
  // tests on this thread start with none.
  EXPECT_TRUE(LastErrorDescription().find("is not open") != std::string::npos);
  EXPECT_EQ(SetErrorInfo(0, nullptr), S_OK);
  CloseHandle(event);
}

// Tests that CoWaitForMultipleHandles times out with RPC_S_CALLPENDING and
// returns the index of a signaled handle, in an STA and in the MTA.
TEST(ChannelTest, CoWaitTimeoutAndIndex) {
  auto check = [] {
    HANDLE events[2] = {CreateEventW(nullptr, TRUE, FALSE, nullptr),
                        CreateEventW(nullptr, TRUE, FALSE, nullptr)};
    DWORD index = 99;
    EXPECT_EQ(CoWaitForMultipleHandles(0, 10, 2, events, &index), RPC_S_CALLPENDING);
    SetEvent(events[1]);
    EXPECT_EQ(CoWaitForMultipleHandles(0, testing::kBoundMs, 2, events, &index), S_OK);
    EXPECT_EQ(index, 1u);
    EXPECT_EQ(CoWaitForMultipleHandles(COWAIT_WAITALL, 10, 2, events, &index), RPC_S_CALLPENDING);
    CloseHandle(events[0]);
    CloseHandle(events[1]);
  };
  RunInSta(check);
  RunInMta([&] {
    check();
    HANDLE both[2] = {CreateEventW(nullptr, TRUE, TRUE, nullptr),
                      CreateEventW(nullptr, TRUE, TRUE, nullptr)};
    DWORD index = 99;
    EXPECT_EQ(CoWaitForMultipleHandles(COWAIT_WAITALL, testing::kBoundMs, 2, both, &index), S_OK);
    EXPECT_EQ(index, 0u);
    CloseHandle(both[0]);
    CloseHandle(both[1]);
  });
}

// Tests that an STA waiting in CoWaitForMultipleHandles serves incoming
// calls meanwhile.
TEST(ChannelTest, CoWaitInStaServesIncomingCalls) {
  HANDLE done = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ApartmentRef a;
  TestEvent ready;
  HRESULT wait_result = E_FAIL;
  BoundedThread a_thread([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    a = CurrentApartment();
    ready.Set();
    DWORD index;
    wait_result = CoWaitForMultipleHandles(0, testing::kBoundMs, 1, &done, &index);
    CoUninitialize();
  });
  ASSERT_TRUE(ready.Wait());
  DWORD ran_on = 0;
  RunInMta([&] {
    EXPECT_EQ(InvokeInApartment(a, [&] {
                ran_on = GetCurrentThreadId();
                SetEvent(done);
                return S_OK;
              }),
              S_OK);
  });
  a_thread.Join();
  EXPECT_EQ(wait_result, S_OK);
  EXPECT_EQ(ran_on, a_thread.tid());
  CloseHandle(done);
}

// Tests that an STA caller publishes its wait as a COM call on the target's
// thread, and that MessagePending is called when other input arrives.
TEST(ChannelTest, WaitRecordAndMessagePending) {
  TestEvent running, release;
  StaThread b(L"callee");
  TestMessageFilter filter;
  DWORD a_tid = 0;
  TestEvent a_started;
  BoundedThread a([&] {
    RunInSta([&] {
      ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
      a_tid = GetCurrentThreadId();
      a_started.Set();
      EXPECT_EQ(InvokeInApartment(b.apartment(), [&] {
                  running.Set();
                  return release.Wait() ? S_OK : E_FAIL;
                }),
                S_OK);
      MSG msg;
      EXPECT_TRUE(PeekMessageW(&msg, nullptr, WM_APP, WM_APP, PM_REMOVE));  // Left queued.
    });
  });
  ASSERT_TRUE(a_started.Wait());
  ASSERT_TRUE(running.Wait());
  ASSERT_TRUE(Eventually([&] {
    WaitRecord record = ReadWaitRecord(a_tid);
    return record.kind == BlockKind::kComCall && record.target_tid == b.tid();
  }));
  ASSERT_TRUE(PostThreadMessageW(a_tid, WM_APP, 0, 0));
  ASSERT_TRUE(Eventually([&] { return filter.pending.load() > 0; }));
  release.Set();
  a.Join();
}

}  // namespace
}  // namespace apartments::internal

namespace apartments::internal {
namespace {

// Tests that a call into an STA that has gone away explains which apartment
// went away and how long ago, and never runs.
TEST(ChannelTest, DisconnectExplainsWhichApartmentAndWhen) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  ApartmentRef gone;
  testing::BoundedThread t([&] {
    SetThreadDescription(GetCurrentThread(), L"short-lived");
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    gone = CurrentApartment();
    CoUninitialize();
  });
  t.Join();
  clock.Advance(std::chrono::seconds(3));
  testing::RunInMta([&] {
    bool ran = false;
    EXPECT_EQ(InvokeInApartment(gone, [&] {
                ran = true;
                return S_OK;
              }),
              RPC_E_DISCONNECTED);
    EXPECT_FALSE(ran);
    std::string text = LastErrorDescription();
    EXPECT_EQ(LastErrorHResult(), RPC_E_DISCONNECTED);
    EXPECT_NE(text.find(gone->Describe()), std::string::npos) << text;
    EXPECT_NE(text.find("'short-lived'"), std::string::npos) << text;
    EXPECT_NE(text.find("shut down 3.0 s ago"), std::string::npos) << text;
  });
}

}  // namespace
}  // namespace apartments::internal

namespace apartments::internal {
namespace {

// Tests that a call from an STA into the MTA can call back into the waiting
// STA (served in its modal loop, as a nested call of the same causality).
TEST(ChannelTest, CallbackFromMtaWorkerIntoWaitingSta) {
  CO_MTA_USAGE_COOKIE cookie;
  ASSERT_EQ(CoIncrementMTAUsage(&cookie), S_OK);
  ApartmentRef mta;
  testing::BoundedThread find([&] { mta = CurrentApartment(); });
  find.Join();
  testing::TestMessageFilter filter;
  testing::RunInSta([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
    ApartmentRef sta = CurrentApartment();
    const DWORD sta_tid = GetCurrentThreadId();
    DWORD callback_on = 0;
    EXPECT_EQ(InvokeInApartment(mta, [&] {
                return InvokeInApartment(sta, [&] {
                  callback_on = GetCurrentThreadId();
                  return S_FALSE;
                });
              }),
              S_FALSE);
    EXPECT_EQ(callback_on, sta_tid);
    EXPECT_EQ(filter.last_call_type.load(), static_cast<DWORD>(CALLTYPE_NESTED));
  });
  EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
}

}  // namespace
}  // namespace apartments::internal
