// APCs: QueueUserAPC and alertable waits (SleepEx, Wait*Ex, SignalObjectAndWait).
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::WaitUntilBlocked;

using ApcTest = ktest::KernelTest;

// What an APC saw when it ran. Passed to the APC as its ULONG_PTR parameter.
struct ApcLog {
  std::atomic<int> runs{0};
  std::atomic<DWORD> tid{0};
};

VOID WINAPI RecordApc(ULONG_PTR parameter) {
  auto* log = reinterpret_cast<ApcLog*>(parameter);
  log->tid.store(GetCurrentThreadId());
  log->runs.fetch_add(1);
}

ULONG_PTR AsParameter(ApcLog& log) { return reinterpret_cast<ULONG_PTR>(&log); }

// Tests that an APC queued to a thread in SleepEx(..., TRUE) runs on that
// thread, and SleepEx then returns WAIT_IO_COMPLETION.
TEST_F(ApcTest, AlertableSleepRunsApcOnTargetThread) {
  ApcLog log;
  std::atomic<DWORD> result{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(SleepEx(kJoinMs, TRUE));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(WaitUntilBlocked(tid, BlockKind::kSleep));
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.runs.load(), 1);
  EXPECT_EQ(log.tid.load(), tid);
}

// Tests that SleepEx(INFINITE, TRUE) is ended by an APC.
TEST_F(ApcTest, InfiniteAlertableSleepEndsWithApc) {
  ApcLog log;
  std::atomic<DWORD> result{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(SleepEx(INFINITE, TRUE));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid, BlockKind::kSleep));
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.tid.load(), tid);
}

// Tests that an alertable WaitForSingleObjectEx returns WAIT_IO_COMPLETION
// after running an APC, without touching the object waited on.
TEST_F(ApcTest, AlertableWaitForSingleObjectExReturnsIoCompletion) {
  ApcLog log;
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 1, nullptr));
  std::atomic<DWORD> result{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(WaitForSingleObjectEx(semaphore.get(), kJoinMs, TRUE));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.tid.load(), tid);
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, nullptr));  // The wait took nothing.
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_OBJECT_0);
}

// Tests that an alertable WaitForMultipleObjectsEx (any and all) returns
// WAIT_IO_COMPLETION after running an APC.
TEST_F(ApcTest, AlertableWaitForMultipleObjectsExReturnsIoCompletion) {
  ScopedHandle a(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle b(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  for (BOOL wait_all : {FALSE, TRUE}) {
    ApcLog log;
    std::atomic<DWORD> result{0};
    DWORD tid = 0;
    HANDLE t = StartThread(
        [&] {
          HANDLE handles[] = {a.get(), b.get()};
          result.store(WaitForMultipleObjectsEx(2, handles, wait_all, kJoinMs, TRUE));
          return DWORD{0};
        },
        0, &tid);
    ASSERT_TRUE(WaitUntilBlocked(tid));
    EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
    ASSERT_TRUE(JoinThread(t));
    EXPECT_EQ(result.load(), WAIT_IO_COMPLETION) << "wait_all " << wait_all;
    EXPECT_EQ(log.tid.load(), tid);
  }
}

// Tests that an alertable SignalObjectAndWait returns WAIT_IO_COMPLETION after
// running an APC (having signaled its first object).
TEST_F(ApcTest, AlertableSignalObjectAndWaitReturnsIoCompletion) {
  ApcLog log;
  ScopedHandle signaled(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle never(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  std::atomic<DWORD> result{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(SignalObjectAndWait(signaled.get(), never.get(), kJoinMs, TRUE));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.runs.load(), 1);
  EXPECT_EQ(WaitForSingleObject(signaled.get(), 0), WAIT_OBJECT_0);
}

// Tests that an alertable SleepEx with no APC sleeps its full time and returns 0.
TEST_F(ApcTest, AlertableSleepWithoutApcReturnsZeroAfterItsTime) {
  ktest::Stopwatch watch;
  EXPECT_EQ(SleepEx(30, TRUE), 0u);
  EXPECT_GE(watch.ElapsedMs(), 30 - ktest::kTimeoutSlackMs);
}

// Tests that an APC queued before the thread waits runs as soon as it enters
// an alertable wait (here: queued to itself through GetCurrentThread()).
TEST_F(ApcTest, ApcQueuedBeforeWaitRunsOnEntry) {
  ApcLog log;
  EXPECT_NE(QueueUserAPC(&RecordApc, GetCurrentThread(), AsParameter(log)), 0u);
  EXPECT_EQ(log.runs.load(), 0);  // Not until an alertable wait.
  EXPECT_EQ(SleepEx(0, TRUE), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.runs.load(), 1);
  EXPECT_EQ(log.tid.load(), GetCurrentThreadId());
  EXPECT_EQ(SleepEx(0, TRUE), 0u);  // Nothing left.
}

// Tests that a non-alertable wait does not run queued APCs: the thread stays
// blocked until its object is signaled, and the APC waits for the next
// alertable wait.
TEST_F(ApcTest, NonAlertableWaitDoesNotRunApcs) {
  ApcLog log;
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<DWORD> wait_result{WAIT_FAILED};
  std::atomic<int> runs_after_wait{-1};
  std::atomic<DWORD> alertable_result{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        wait_result.store(WaitForSingleObject(event.get(), kJoinMs));
        runs_after_wait.store(log.runs.load());
        alertable_result.store(SleepEx(0, TRUE));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  EXPECT_EQ(ReadWaitRecord(tid).kind, BlockKind::kKernelWait);  // Not woken by the APC.
  ASSERT_TRUE(SetEvent(event.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(wait_result.load(), WAIT_OBJECT_0);
  EXPECT_EQ(runs_after_wait.load(), 0);
  EXPECT_EQ(alertable_result.load(), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.runs.load(), 1);
}

// Tests that a non-alertable SleepEx does not run APCs queued to the sleeper.
TEST_F(ApcTest, NonAlertableSleepDoesNotRunApcs) {
  ApcLog log;
  EXPECT_NE(QueueUserAPC(&RecordApc, GetCurrentThread(), AsParameter(log)), 0u);
  EXPECT_EQ(SleepEx(5, FALSE), 0u);
  EXPECT_EQ(WaitForSingleObject(GetCurrentProcess(), 5), WAIT_TIMEOUT);
  EXPECT_EQ(log.runs.load(), 0);
  EXPECT_EQ(SleepEx(0, TRUE), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.runs.load(), 1);
}

std::mutex g_order_mu;
std::vector<int>* g_order = nullptr;

VOID WINAPI AppendOrder(ULONG_PTR value) {
  std::lock_guard lock(g_order_mu);
  g_order->push_back(static_cast<int>(value));
}

// Tests that every queued APC runs, in the order queued, within one alertable
// wait, which returns WAIT_IO_COMPLETION once.
TEST_F(ApcTest, QueuedApcsRunInOrderInOneWait) {
  std::vector<int> order;
  g_order = &order;
  for (int i = 1; i <= 4; ++i) {
    EXPECT_NE(QueueUserAPC(&AppendOrder, GetCurrentThread(), static_cast<ULONG_PTR>(i)), 0u);
  }
  EXPECT_EQ(SleepEx(0, TRUE), WAIT_IO_COMPLETION);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(SleepEx(0, TRUE), 0u);
  g_order = nullptr;
}

// Tests that an APC can be queued to a thread from a real handle another
// thread obtained with DuplicateHandle(GetCurrentThread()).
TEST_F(ApcTest, ApcThroughDuplicatedCurrentThreadHandle) {
  ApcLog log;
  HANDLE self = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self,
                              0, FALSE, DUPLICATE_SAME_ACCESS));
  ScopedHandle owned(self);
  std::atomic<DWORD> queued{0};
  HANDLE t = StartThread([&] {
    queued.store(QueueUserAPC(&RecordApc, self, AsParameter(log)));
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  EXPECT_NE(queued.load(), 0u);
  EXPECT_EQ(SleepEx(kJoinMs, TRUE), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.tid.load(), GetCurrentThreadId());
}

// Tests that an APC can be queued to a suspended thread and runs once the
// thread is resumed and waits alertably.
TEST_F(ApcTest, ApcQueuedToSuspendedThreadRunsAfterResume) {
  ApcLog log;
  std::atomic<DWORD> result{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(SleepEx(0, TRUE));
        return DWORD{0};
      },
      CREATE_SUSPENDED, &tid);
  ASSERT_NE(t, nullptr);
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  EXPECT_EQ(log.runs.load(), 0);
  EXPECT_EQ(ResumeThread(t), 1u);
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_IO_COMPLETION);
  EXPECT_EQ(log.tid.load(), tid);
}

// Tests that QueueUserAPC to a thread that has exited fails with ERROR_GEN_FAILURE.
TEST_F(ApcTest, QueueToExitedThreadFails) {
  ApcLog log;
  HANDLE t = StartThread([] { return DWORD{0}; });
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  SetLastError(0);
  EXPECT_EQ(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_GEN_FAILURE));
  CloseHandle(t);
  EXPECT_EQ(log.runs.load(), 0);
}

// Tests that APCs still queued when their thread exits are discarded, never run.
TEST_F(ApcTest, ApcsPendingAtExitNeverRun) {
  ApcLog log;
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE t = StartThread([&] { return WaitForSingleObject(go.get(), kJoinMs); });
  ASSERT_NE(t, nullptr);
  EXPECT_NE(QueueUserAPC(&RecordApc, t, AsParameter(log)), 0u);
  ASSERT_TRUE(SetEvent(go.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(log.runs.load(), 0);
}

// Tests that QueueUserAPC rejects a null function (ERROR_INVALID_PARAMETER)
// and handles that are not threads (ERROR_INVALID_HANDLE).
TEST_F(ApcTest, QueueUserApcArgumentErrors) {
  SetLastError(0);
  EXPECT_EQ(QueueUserAPC(nullptr, GetCurrentThread(), 0), 0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ApcLog log;
  for (HANDLE h : {event.get(), GetCurrentProcess(), static_cast<HANDLE>(nullptr)}) {
    SetLastError(0);
    EXPECT_EQ(QueueUserAPC(&RecordApc, h, AsParameter(log)), 0u);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
  EXPECT_EQ(SleepEx(0, TRUE), 0u);  // Nothing was queued to us.
  EXPECT_EQ(log.runs.load(), 0);
}

}  // namespace
}  // namespace apartments::internal
