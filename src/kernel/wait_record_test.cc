// Wait records (ReadWaitRecord): what a blocked thread publishes about its wait.
#include <atomic>
#include <chrono>

#include "apartments/clock.h"
#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::WaitUntilBlocked;

using WaitRecordTest = ktest::KernelTest;

// Tests that a thread blocked in WaitForSingleObject on a named event
// publishes a kKernelWait record naming the event (kind, the handle it used,
// its name, its serial) with `since` taken from the installed clock.
TEST_F(WaitRecordTest, BlockedSingleWaitPublishesTheEvent) {
  FakeClock clock;
  ScopedClockForTesting installed(&clock);
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, L"wait_record_test.event"));
  ASSERT_TRUE(event);
  DWORD tid = 0;
  HANDLE t = StartThread([&] { return WaitForSingleObject(event.get(), kJoinMs); }, 0, &tid);
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(WaitUntilBlocked(tid));

  WaitRecord record = ReadWaitRecord(tid);
  EXPECT_EQ(record.kind, BlockKind::kKernelWait);
  EXPECT_EQ(record.since, clock.Now());
  EXPECT_FALSE(record.wait_all);
  EXPECT_FALSE(record.alertable);
  ASSERT_EQ(record.objects.size(), 1u);
  const WaitedObject& waited = record.objects[0];
  EXPECT_EQ(waited.kind, ObjectKind::kEvent);
  EXPECT_EQ(waited.handle, event.get());
  EXPECT_EQ(waited.name, L"wait_record_test.event");
  EXPECT_EQ(waited.owner_tid, 0u);
  EXPECT_FALSE(waited.signaled);
  EXPECT_NE(waited.serial, 0u);
  EXPECT_EQ(waited.serial, ResolveHandle(event.get())->serial());

  ASSERT_TRUE(SetEvent(event.get()));
  ASSERT_TRUE(JoinThread(t));
}

// Tests that `since` is the installed clock's time when the wait began: a
// later wait after advancing the fake clock reports the later time.
TEST_F(WaitRecordTest, SinceFollowsTheInstalledClock) {
  FakeClock clock;
  ScopedClockForTesting installed(&clock);
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  for (int round = 0; round < 2; ++round) {
    Clock::TimePoint expected = clock.Now();
    DWORD tid = 0;
    HANDLE t = StartThread([&] { return WaitForSingleObject(event.get(), kJoinMs); }, 0, &tid);
    ASSERT_TRUE(WaitUntilBlocked(tid));
    EXPECT_EQ(ReadWaitRecord(tid).since, expected) << "round " << round;
    clock.Advance(std::chrono::seconds(7));
    EXPECT_EQ(ReadWaitRecord(tid).since, expected);  // Stamped once, at the start.
    ASSERT_TRUE(SetEvent(event.get()));
    ASSERT_TRUE(JoinThread(t));
  }
}

// Tests that a thread blocked on a mutex publishes the owner's thread id.
TEST_F(WaitRecordTest, MutexWaitShowsOwner) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, L"wait_record_test.mutex"));
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        DWORD r = WaitForSingleObject(mutex.get(), kJoinMs);
        if (r == WAIT_OBJECT_0) ReleaseMutex(mutex.get());
        return r;
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  WaitRecord record = ReadWaitRecord(tid);
  ASSERT_EQ(record.objects.size(), 1u);
  EXPECT_EQ(record.objects[0].kind, ObjectKind::kMutex);
  EXPECT_EQ(record.objects[0].owner_tid, GetCurrentThreadId());
  EXPECT_EQ(record.objects[0].name, L"wait_record_test.mutex");
  EXPECT_FALSE(record.objects[0].signaled);
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  DWORD code = WAIT_FAILED;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, WAIT_OBJECT_0);
  CloseHandle(t);
}

// Tests that the record is cleared when the wait ends: the woken thread reads
// kNone for itself, and so does everybody once it has gone.
TEST_F(WaitRecordTest, RecordIsClearedWhenWaitEnds) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<int> kind_after{-1};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        DWORD r = WaitForSingleObject(event.get(), kJoinMs);
        kind_after.store(static_cast<int>(ReadWaitRecord(GetCurrentThreadId()).kind));
        return r;
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(SetEvent(event.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(kind_after.load(), static_cast<int>(BlockKind::kNone));
  EXPECT_EQ(ReadWaitRecord(tid).kind, BlockKind::kNone);
}

// Tests that a wait that times out clears its record too.
TEST_F(WaitRecordTest, RecordIsClearedWhenWaitTimesOut) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<int> kind_after{-1};
  std::atomic<std::size_t> objects_after{99};
  HANDLE t = StartThread([&] {
    DWORD r = WaitForSingleObject(event.get(), 20);
    WaitRecord record = ReadWaitRecord(GetCurrentThreadId());
    kind_after.store(static_cast<int>(record.kind));
    objects_after.store(record.objects.size());
    return r;
  });
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  CloseHandle(t);
  EXPECT_EQ(code, WAIT_TIMEOUT);
  EXPECT_EQ(kind_after.load(), static_cast<int>(BlockKind::kNone));
  EXPECT_EQ(objects_after.load(), 0u);
}

// Tests that a wait-all publishes every object in order with the handles
// used, which are signaled, and its wait_all/alertable flags.
TEST_F(WaitRecordTest, WaitAllRecordListsObjectsInOrder) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 1, L"wait_record_test.semaphore"));
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        HANDLE handles[] = {event.get(), semaphore.get()};
        return WaitForMultipleObjectsEx(2, handles, TRUE, kJoinMs, TRUE);
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  WaitRecord record = ReadWaitRecord(tid);
  EXPECT_EQ(record.kind, BlockKind::kKernelWait);
  EXPECT_TRUE(record.wait_all);
  EXPECT_TRUE(record.alertable);
  ASSERT_EQ(record.objects.size(), 2u);
  EXPECT_EQ(record.objects[0].kind, ObjectKind::kEvent);
  EXPECT_EQ(record.objects[0].handle, event.get());
  EXPECT_EQ(record.objects[0].name, L"");
  EXPECT_TRUE(record.objects[0].signaled);
  EXPECT_EQ(record.objects[1].kind, ObjectKind::kSemaphore);
  EXPECT_EQ(record.objects[1].handle, semaphore.get());
  EXPECT_EQ(record.objects[1].name, L"wait_record_test.semaphore");
  EXPECT_FALSE(record.objects[1].signaled);
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, nullptr));
  ASSERT_TRUE(JoinThread(t));
}

// Tests that the record shows the very handle the waiter passed (here a
// duplicate), and a thread handle's kind when waiting on a thread.
TEST_F(WaitRecordTest, RecordShowsHandleAsPassedAndThreadKind) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE target = StartThread([&] { return WaitForSingleObject(go.get(), kJoinMs); });
  ASSERT_NE(target, nullptr);
  ScopedHandle owned_target(target);
  HANDLE alias = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), target, GetCurrentProcess(), &alias, 0, FALSE,
                              DUPLICATE_SAME_ACCESS));
  ScopedHandle owned_alias(alias);
  DWORD tid = 0;
  HANDLE waiter = StartThread([&] { return WaitForSingleObject(alias, kJoinMs); }, 0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  WaitRecord record = ReadWaitRecord(tid);
  ASSERT_EQ(record.objects.size(), 1u);
  EXPECT_EQ(record.objects[0].kind, ObjectKind::kThread);
  EXPECT_EQ(record.objects[0].handle, alias);
  ASSERT_TRUE(SetEvent(go.get()));
  ASSERT_TRUE(JoinThread(waiter));
  EXPECT_EQ(WaitForSingleObject(target, kJoinMs), WAIT_OBJECT_0);
}

// Tests that an alertable SleepEx publishes a kSleep record with no objects.
TEST_F(WaitRecordTest, AlertableSleepPublishesSleepRecord) {
  FakeClock clock;
  ScopedClockForTesting installed(&clock);
  DWORD tid = 0;
  HANDLE t = StartThread([] { return SleepEx(kJoinMs, TRUE); }, 0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid, BlockKind::kSleep));
  WaitRecord record = ReadWaitRecord(tid);
  EXPECT_EQ(record.kind, BlockKind::kSleep);
  EXPECT_TRUE(record.alertable);
  EXPECT_TRUE(record.objects.empty());
  EXPECT_EQ(record.since, clock.Now());
  ASSERT_NE(QueueUserAPC([](ULONG_PTR) {}, t, 0), 0u);
  ASSERT_TRUE(JoinThread(t));
}

// Tests that a running thread, and a thread id that does not exist, read kNone.
TEST_F(WaitRecordTest, RunningAndUnknownThreadsReadNone) {
  WaitRecord self = ReadWaitRecord(GetCurrentThreadId());
  EXPECT_EQ(self.kind, BlockKind::kNone);
  EXPECT_TRUE(self.objects.empty());
  EXPECT_EQ(ReadWaitRecord(0).kind, BlockKind::kNone);
  EXPECT_EQ(ReadWaitRecord(0x7FFFFFF0u).kind, BlockKind::kNone);
}

// Tests that the kind and object kind names used in reports are the expected words.
TEST_F(WaitRecordTest, KindNames) {
  EXPECT_STREQ(ObjectKindName(ObjectKind::kEvent), "event");
  EXPECT_STREQ(ObjectKindName(ObjectKind::kMutex), "mutex");
  EXPECT_STREQ(ObjectKindName(ObjectKind::kSemaphore), "semaphore");
  EXPECT_STREQ(ObjectKindName(ObjectKind::kThread), "thread");
  EXPECT_STREQ(ObjectKindName(ObjectKind::kProcess), "process");
  EXPECT_STREQ(BlockKindName(BlockKind::kNone), "running");
  EXPECT_STREQ(BlockKindName(BlockKind::kKernelWait), "waiting on kernel objects");
  EXPECT_STREQ(BlockKindName(BlockKind::kSleep), "sleeping");
}

}  // namespace
}  // namespace apartments::internal
