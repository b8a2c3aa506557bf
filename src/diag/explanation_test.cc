#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/clock.h"
#include "apartments/error_info.h"
#include "apartments/message_queue.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "com/apartment.h"
#include "com/com_test_util.h"
#include "kernel/kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

// Tests that RPC_E_SYS_CALL_FAILED for a full STA queue carries the target's
// whole wait chain: past the mutex it waits on, to the mutex's owner and the
// event that owner waits on, with how long each has waited.
TEST(ExplanationTest, QueueFullCarriesFullWaitChain) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  const DWORD saved_limit = GetPostMessageLimit();
  ASSERT_EQ(SetPostMessageLimit(3), S_OK);
  HANDLE mutex = CreateMutexW(nullptr, FALSE, L"cache-mutex");
  HANDLE never = CreateEventW(nullptr, TRUE, FALSE, L"disk-flushed");
  TestEvent holder_has_mutex;
  BoundedThread holder([&] {
    SetThreadDescription(GetCurrentThread(), L"holder");
    if (WaitForSingleObject(mutex, kBoundMs) != WAIT_OBJECT_0) std::abort();
    holder_has_mutex.Set();
    WaitForSingleObject(never, kBoundMs);
    ReleaseMutex(mutex);
  });
  ASSERT_TRUE(holder_has_mutex.Wait());
  StaThread target(L"stuck-on-cache", [&] {
    if (WaitForSingleObject(mutex, kBoundMs) == WAIT_OBJECT_0) ReleaseMutex(mutex);
    MSG msg;
    while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
  });
  ASSERT_TRUE(Eventually([&] {
    return ReadWaitRecord(target.tid()).kind == BlockKind::kKernelWait &&
           ReadWaitRecord(holder.tid()).kind == BlockKind::kKernelWait;
  }));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(PostThreadMessageW(target.tid(), WM_APP, 0, 0));
  clock.Advance(std::chrono::seconds(7));
  std::string text;
  RunInMta([&] {
    EXPECT_EQ(InvokeInApartment(target.apartment(), [] { return S_OK; }), RPC_E_SYS_CALL_FAILED);
    text = LastErrorDescription();
  });
  EXPECT_THAT(text, ::testing::HasSubstr("Wait chain of thread " + std::to_string(target.tid())));
  const std::string described = target.apartment()->Describe();  // "STA 3 (thread ...)"
  const std::string label = described.substr(0, described.find(" ("));
  EXPECT_THAT(text, ::testing::HasSubstr("'stuck-on-cache' [" + label + "]"));
  EXPECT_THAT(text, ::testing::HasSubstr("mutex 'cache-mutex'"));
  EXPECT_THAT(text, ::testing::HasSubstr("-> thread " + std::to_string(holder.tid()) +
                                         " 'holder' blocked in kernel wait for 7.0 s"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("event 'disk-flushed'"));
  SetEvent(never);
  holder.Join();
  target.Stop();
  EXPECT_EQ(SetPostMessageLimit(saved_limit), S_OK);
  CloseHandle(mutex);
  CloseHandle(never);
}

}  // namespace
}  // namespace apartments::internal::testing
