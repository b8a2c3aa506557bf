// Tests of critical sections (apartments/win32_synch.h).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "apartments/win32_synch.h"
#include "kernel/kernel_test_util.h"

namespace apartments::internal::ktest {
namespace {

using testing::BoundedThread;
using testing::Eventually;

HANDLE TidHandle(DWORD tid) { return reinterpret_cast<HANDLE>(static_cast<ULONG_PTR>(tid)); }

class CriticalSectionTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    InitializeCriticalSection(&cs_);
  }
  void TearDown() override {
    DeleteCriticalSection(&cs_);
    KernelTest::TearDown();
  }
  CRITICAL_SECTION cs_;
};

// Tests that the layout is winnt.h's RTL_CRITICAL_SECTION on 64-bit Windows.
TEST(CriticalSectionLayoutTest, MatchesWinnt) {
  EXPECT_EQ(sizeof(CRITICAL_SECTION), 40u);
  EXPECT_EQ(offsetof(RTL_CRITICAL_SECTION, LockCount), 8u);
  EXPECT_EQ(offsetof(RTL_CRITICAL_SECTION, RecursionCount), 12u);
  EXPECT_EQ(offsetof(RTL_CRITICAL_SECTION, OwningThread), 16u);
  EXPECT_EQ(offsetof(RTL_CRITICAL_SECTION, LockSemaphore), 24u);
  EXPECT_EQ(offsetof(RTL_CRITICAL_SECTION, SpinCount), 32u);
}

// Tests that a new section is free: LockCount -1, no owner, no recursion.
TEST_F(CriticalSectionTest, NewSectionIsFree) {
  EXPECT_EQ(cs_.LockCount, -1);
  EXPECT_EQ(cs_.RecursionCount, 0);
  EXPECT_EQ(cs_.OwningThread, nullptr);
  EXPECT_EQ(cs_.DebugInfo, nullptr);
}

// Tests that Enter is recursive and records the owner's id and depth, and
// that the matching Leaves free the section.
TEST_F(CriticalSectionTest, EnterIsRecursiveAndRecordsOwner) {
  EnterCriticalSection(&cs_);
  EXPECT_EQ(cs_.OwningThread, TidHandle(GetCurrentThreadId()));
  EXPECT_EQ(cs_.RecursionCount, 1);
  EXPECT_EQ(cs_.LockCount, 0);
  EnterCriticalSection(&cs_);
  EXPECT_TRUE(TryEnterCriticalSection(&cs_));
  EXPECT_EQ(cs_.RecursionCount, 3);
  EXPECT_EQ(cs_.LockCount, 2);
  LeaveCriticalSection(&cs_);
  LeaveCriticalSection(&cs_);
  EXPECT_EQ(cs_.OwningThread, TidHandle(GetCurrentThreadId()));
  LeaveCriticalSection(&cs_);
  EXPECT_EQ(cs_.LockCount, -1);
  EXPECT_EQ(cs_.RecursionCount, 0);
  EXPECT_EQ(cs_.OwningThread, nullptr);
}

// Tests that TryEnter fails at once while another thread owns the section,
// and succeeds once it has left.
TEST_F(CriticalSectionTest, TryEnterFailsWhileOtherThreadOwns) {
  EnterCriticalSection(&cs_);
  std::atomic<int> tried{-1};
  {
    BoundedThread other([&] { tried.store(TryEnterCriticalSection(&cs_)); });
  }
  EXPECT_EQ(tried.load(), FALSE);
  EXPECT_EQ(cs_.LockCount, 0);  // The failed try left no trace.
  LeaveCriticalSection(&cs_);
  {
    BoundedThread other([&] {
      tried.store(TryEnterCriticalSection(&cs_));
      if (tried.load()) LeaveCriticalSection(&cs_);
    });
  }
  EXPECT_EQ(tried.load(), TRUE);
}

// Tests that a thread blocked in EnterCriticalSection publishes a kernel wait
// on an object named after the section whose chain leads to the owner, and
// gets the section when the owner leaves.
TEST_F(CriticalSectionTest, BlockedEnterRecordsWaitOnOwner) {
  EnterCriticalSection(&cs_);
  std::atomic<bool> entered{false};
  BoundedThread waiter([&] {
    EnterCriticalSection(&cs_);
    entered.store(true);
    EXPECT_EQ(cs_.OwningThread, TidHandle(GetCurrentThreadId()));
    LeaveCriticalSection(&cs_);
  });
  ASSERT_TRUE(WaitUntilBlocked(waiter.tid()));
  WaitRecord record = ReadWaitRecord(waiter.tid());
  ASSERT_EQ(record.objects.size(), 1u);
  char address[32];
  std::snprintf(address, sizeof address, "%p", static_cast<void*>(&cs_));
  const std::wstring expected_name =
      L"critical section " + std::wstring(address, address + std::strlen(address)) +
      L" (EnterCriticalSection)";
  EXPECT_EQ(record.objects[0].name, expected_name);
  EXPECT_EQ(NextWaitHopTid(waiter.tid()), GetCurrentThreadId());
  EXPECT_FALSE(entered.load());
  EXPECT_EQ(cs_.LockCount, 1);  // The owner, and one waiter.
  LeaveCriticalSection(&cs_);
  waiter.Join();
  EXPECT_TRUE(entered.load());
  EXPECT_EQ(cs_.LockCount, -1);
}

// Tests mutual exclusion under contention: every increment made inside the
// section survives, with threads entering recursively and trying too.
TEST_F(CriticalSectionTest, ContendedEntersExcludeEachOther) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  long counter = 0;  // Guarded by cs_.
  std::vector<std::unique_ptr<BoundedThread>> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.push_back(std::make_unique<BoundedThread>([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        if (t == 0 && TryEnterCriticalSection(&cs_)) {
          ++counter;
          LeaveCriticalSection(&cs_);
          continue;
        }
        EnterCriticalSection(&cs_);
        EnterCriticalSection(&cs_);
        ++counter;
        LeaveCriticalSection(&cs_);
        LeaveCriticalSection(&cs_);
      }
    }));
  }
  for (auto& thread : threads) thread->Join();
  EXPECT_EQ(counter, long{kThreads} * kRounds);
  EXPECT_EQ(cs_.LockCount, -1);
  EXPECT_EQ(cs_.OwningThread, nullptr);
}

// Tests that InitializeCriticalSectionEx refuses reserved flag bits with
// ERROR_INVALID_PARAMETER and accepts the documented ones.
TEST(CriticalSectionInitTest, ExRejectsReservedFlags) {
  CRITICAL_SECTION cs;
  SetLastError(0);
  EXPECT_FALSE(InitializeCriticalSectionEx(&cs, 0, 0x20000000));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  ASSERT_TRUE(InitializeCriticalSectionEx(&cs, 100, CRITICAL_SECTION_NO_DEBUG_INFO));
  EnterCriticalSection(&cs);
  LeaveCriticalSection(&cs);
  DeleteCriticalSection(&cs);
}

// Tests that SetCriticalSectionSpinCount returns the previous spin count.
TEST(CriticalSectionInitTest, SetSpinCountReturnsPrevious) {
  CRITICAL_SECTION cs;
  ASSERT_TRUE(InitializeCriticalSectionAndSpinCount(&cs, 0));
  (void)SetCriticalSectionSpinCount(&cs, 4000);
  const DWORD stored = static_cast<DWORD>(cs.SpinCount);  // 0 on one CPU, as Windows.
  EXPECT_EQ(SetCriticalSectionSpinCount(&cs, 0), stored);
  EXPECT_EQ(SetCriticalSectionSpinCount(&cs, 0), 0u);
  DeleteCriticalSection(&cs);
}

}  // namespace
}  // namespace apartments::internal::ktest
