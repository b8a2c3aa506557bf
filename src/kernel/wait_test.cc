// Waits: timeouts, wait-any, wait-all, argument checks, SignalObjectAndWait,
// Sleep.
#include <atomic>
#include <vector>

#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::kTimeoutSlackMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::Stopwatch;
using ktest::WaitUntilBlocked;

using WaitTest = ktest::KernelTest;

constexpr DWORD kShortMs = 30;

// Tests that a wait on a non-signaled object times out after (not before) its timeout.
TEST_F(WaitTest, SingleWaitTimesOut) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  Stopwatch watch;
  EXPECT_EQ(WaitForSingleObject(event.get(), kShortMs), WAIT_TIMEOUT);
  EXPECT_GE(watch.ElapsedMs(), kShortMs - kTimeoutSlackMs);
}

// Tests that a zero timeout polls: WAIT_TIMEOUT for a non-signaled object.
TEST_F(WaitTest, ZeroTimeoutPolls) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObjectEx(event.get(), 0, TRUE), WAIT_TIMEOUT);
}

// Tests that wait-any and wait-all on non-signaled objects time out after their timeout.
TEST_F(WaitTest, MultipleWaitTimesOut) {
  ScopedHandle a(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle b(CreateSemaphoreW(nullptr, 0, 1, nullptr));
  HANDLE handles[] = {a.get(), b.get()};
  Stopwatch any_watch;
  EXPECT_EQ(WaitForMultipleObjects(2, handles, FALSE, kShortMs), WAIT_TIMEOUT);
  EXPECT_GE(any_watch.ElapsedMs(), kShortMs - kTimeoutSlackMs);
  Stopwatch all_watch;
  EXPECT_EQ(WaitForMultipleObjects(2, handles, TRUE, kShortMs), WAIT_TIMEOUT);
  EXPECT_GE(all_watch.ElapsedMs(), kShortMs - kTimeoutSlackMs);
}

// Tests that a blocked wait returns as soon as its object is signaled, long
// before its timeout.
TEST_F(WaitTest, BlockedWaitEndsWhenSignaled) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(WaitForSingleObject(event.get(), INFINITE));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(SetEvent(event.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
}

// Tests that a wait-any returns the lowest signaled index and acquires only
// that object.
TEST_F(WaitTest, WaitAnyReturnsLowestSignaledIndex) {
  ScopedHandle e0(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle e1(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle s2(CreateSemaphoreW(nullptr, 1, 1, nullptr));
  HANDLE handles[] = {e0.get(), e1.get(), s2.get()};
  EXPECT_EQ(WaitForMultipleObjects(3, handles, FALSE, 0), WAIT_OBJECT_0 + 1);
  EXPECT_EQ(WaitForSingleObject(s2.get(), 0), WAIT_OBJECT_0);  // Not taken.
  ASSERT_TRUE(ReleaseSemaphore(s2.get(), 1, nullptr));
  EXPECT_EQ(WaitForMultipleObjects(3, handles, FALSE, 0), WAIT_OBJECT_0 + 2);
  EXPECT_EQ(WaitForMultipleObjects(3, handles, FALSE, 0), WAIT_TIMEOUT);
}

// Tests the wait-any fast path for a signaled first event: it returns index
// 0 and consumes only that event (auto-reset), whatever follows it, and a
// manual-reset first event stays signaled.
TEST_F(WaitTest, WaitAnyTakesSignaledFirstEventOnly) {
  ScopedHandle e0(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle e1(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle m2(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  HANDLE handles[] = {e0.get(), e1.get()};
  EXPECT_EQ(WaitForMultipleObjects(2, handles, FALSE, INFINITE), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(e0.get(), 0), WAIT_TIMEOUT);   // Consumed.
  EXPECT_EQ(WaitForMultipleObjects(2, handles, FALSE, INFINITE), WAIT_OBJECT_0 + 1);
  EXPECT_EQ(WaitForMultipleObjects(2, handles, FALSE, 0), WAIT_TIMEOUT);
  HANDLE manual_first[] = {m2.get(), e0.get()};
  EXPECT_EQ(WaitForMultipleObjects(2, manual_first, FALSE, INFINITE), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(m2.get(), 0), WAIT_OBJECT_0);  // Still signaled.
  // Wait-all never takes the shortcut: with e0 unsignaled nothing is taken.
  HANDLE all[] = {m2.get(), e0.get()};
  EXPECT_EQ(WaitForMultipleObjects(2, all, TRUE, 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(m2.get(), 0), WAIT_OBJECT_0);
}

// Tests that a blocked wait-any woken by its highest object reports that index.
TEST_F(WaitTest, BlockedWaitAnyReportsIndexOfSignaledObject) {
  ScopedHandle e0(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle e1(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle e2(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        HANDLE handles[] = {e0.get(), e1.get(), e2.get()};
        result.store(WaitForMultipleObjects(3, handles, FALSE, kJoinMs));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(SetEvent(e2.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0 + 2);
  EXPECT_EQ(WaitForSingleObject(e2.get(), 0), WAIT_TIMEOUT);  // Consumed by the wait.
}

// Tests that a wait-all on signaled objects acquires every one of them.
TEST_F(WaitTest, WaitAllAcquiresEveryObject) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 1, 5, nullptr));
  ScopedHandle manual(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  HANDLE handles[] = {event.get(), semaphore.get(), manual.get()};
  EXPECT_EQ(WaitForMultipleObjects(3, handles, TRUE, 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(manual.get(), 0), WAIT_OBJECT_0);  // Manual stays set.
}

// Tests that a wait-all that cannot have every object acquires none: an
// auto-reset event paired with an empty semaphore stays signaled.
TEST_F(WaitTest, WaitAllAcquiresNothingWhenOneObjectIsNotSignaled) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 5, nullptr));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  HANDLE handles[] = {event.get(), mutex.get(), semaphore.get()};
  EXPECT_EQ(WaitForMultipleObjects(3, handles, TRUE, kShortMs), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);  // Still signaled.
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(mutex.get()));  // Never acquired.
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
}

// Tests that while a wait-all is blocked, the objects that are signaled stay
// available to other threads (nothing is held partially).
TEST_F(WaitTest, BlockedWaitAllHoldsNothing) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 5, nullptr));
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        HANDLE handles[] = {event.get(), semaphore.get()};
        result.store(WaitForMultipleObjects(2, handles, TRUE, kJoinMs));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);  // We can take it.
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, nullptr));
  // The waiter now has the semaphore but not the event: still blocked, and
  // the semaphore's unit is still there for others.
  EXPECT_EQ(ReadWaitRecord(tid).kind, BlockKind::kKernelWait);
  LONG previous = -1;
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, &previous));
  EXPECT_EQ(previous, 1);
  ASSERT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_OBJECT_0);
  ASSERT_TRUE(SetEvent(event.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
}

// Tests that a blocked wait-all completes when its last object is signaled,
// not before.
TEST_F(WaitTest, BlockedWaitAllCompletesOnLastObject) {
  ScopedHandle a(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle b(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        HANDLE handles[] = {a.get(), b.get()};
        result.store(WaitForMultipleObjects(2, handles, TRUE, kJoinMs));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(SetEvent(a.get()));
  EXPECT_EQ(ReadWaitRecord(tid).kind, BlockKind::kKernelWait);
  ASSERT_TRUE(SetEvent(b.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(a.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(b.get(), 0), WAIT_TIMEOUT);
}

// Tests that a count of 0, a count above MAXIMUM_WAIT_OBJECTS and a null array
// fail with WAIT_FAILED and ERROR_INVALID_PARAMETER.
TEST_F(WaitTest, InvalidCountsAndNullArrayAreRejected) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  std::vector<HANDLE> many(MAXIMUM_WAIT_OBJECTS + 1, event.get());
  struct Case {
    DWORD count;
    const HANDLE* handles;
  };
  for (Case c : {Case{0, many.data()}, Case{MAXIMUM_WAIT_OBJECTS + 1, many.data()},
                 Case{0xFFFFFFFFu, many.data()}, Case{1, nullptr}, Case{0, nullptr}}) {
    for (BOOL wait_all : {FALSE, TRUE}) {
      SetLastError(0);
      EXPECT_EQ(WaitForMultipleObjects(c.count, c.handles, wait_all, 0), WAIT_FAILED);
      EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
      SetLastError(0);
      EXPECT_EQ(WaitForMultipleObjectsEx(c.count, c.handles, wait_all, 0, TRUE), WAIT_FAILED);
      EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
    }
  }
}

// Tests that a wait-all naming the same handle twice fails with
// ERROR_INVALID_PARAMETER and acquires nothing.
TEST_F(WaitTest, WaitAllRejectsSameHandleTwice) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  HANDLE handles[] = {event.get(), event.get()};
  SetLastError(0);
  EXPECT_EQ(WaitForMultipleObjects(2, handles, TRUE, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
}

// Tests that a wait-all naming one object through two different handles (a
// DuplicateHandle copy) also fails with ERROR_INVALID_PARAMETER.
TEST_F(WaitTest, WaitAllRejectsSameObjectThroughDuplicateHandle) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 2, 2, nullptr));
  ScopedHandle other(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  HANDLE duplicate = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), semaphore.get(), GetCurrentProcess(),
                              &duplicate, 0, FALSE, DUPLICATE_SAME_ACCESS));
  ScopedHandle owned_duplicate(duplicate);
  ASSERT_NE(duplicate, semaphore.get());
  HANDLE handles[] = {semaphore.get(), other.get(), duplicate};
  SetLastError(0);
  EXPECT_EQ(WaitForMultipleObjects(3, handles, TRUE, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  LONG previous = -1;
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), 1, &previous));  // Still full.
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TOO_MANY_POSTS));
}

// Tests that a wait-any accepts the same object twice and reports the lower index.
TEST_F(WaitTest, WaitAnyAcceptsDuplicates) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle other(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  HANDLE handles[] = {other.get(), event.get(), event.get()};
  EXPECT_EQ(WaitForMultipleObjects(3, handles, FALSE, 0), WAIT_OBJECT_0 + 1);
  EXPECT_EQ(WaitForMultipleObjects(3, handles, FALSE, 0), WAIT_TIMEOUT);
}

// Tests that a blocked wait-any naming one object twice is woken once by its
// signal, and consumes a single unit.
TEST_F(WaitTest, BlockedWaitAnyWithDuplicatesWakesOnce) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 5, nullptr));
  HANDLE duplicate = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), semaphore.get(), GetCurrentProcess(),
                              &duplicate, 0, FALSE, DUPLICATE_SAME_ACCESS));
  ScopedHandle owned_duplicate(duplicate);
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        HANDLE handles[] = {semaphore.get(), duplicate, semaphore.get()};
        result.store(WaitForMultipleObjects(3, handles, FALSE, kJoinMs));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 2, nullptr));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_OBJECT_0);  // One unit left.
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
}

// Tests that MAXIMUM_WAIT_OBJECTS (64) handles work, for wait-all and for a
// wait-any satisfied only by the last one.
TEST_F(WaitTest, SixtyFourHandlesWork) {
  std::vector<ScopedHandle> owned;
  HANDLE handles[MAXIMUM_WAIT_OBJECTS];
  for (int i = 0; i < MAXIMUM_WAIT_OBJECTS; ++i) {
    owned.emplace_back(CreateEventW(nullptr, FALSE, FALSE, nullptr));
    ASSERT_TRUE(owned.back());
    handles[i] = owned.back().get();
  }
  ASSERT_TRUE(SetEvent(handles[MAXIMUM_WAIT_OBJECTS - 1]));
  EXPECT_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, handles, FALSE, 0),
            WAIT_OBJECT_0 + MAXIMUM_WAIT_OBJECTS - 1);
  for (HANDLE h : handles) ASSERT_TRUE(SetEvent(h));
  EXPECT_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, handles, TRUE, 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, handles, FALSE, 0), WAIT_TIMEOUT);
}

// Tests that a blocked 64-handle wait-all completes once every object is set.
TEST_F(WaitTest, BlockedSixtyFourHandleWaitAllCompletes) {
  std::vector<ScopedHandle> owned;
  std::vector<HANDLE> handles;
  for (int i = 0; i < MAXIMUM_WAIT_OBJECTS; ++i) {
    owned.emplace_back(CreateEventW(nullptr, FALSE, FALSE, nullptr));
    handles.push_back(owned.back().get());
  }
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        result.store(WaitForMultipleObjects(MAXIMUM_WAIT_OBJECTS, handles.data(), TRUE, kJoinMs));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  for (HANDLE h : handles) ASSERT_TRUE(SetEvent(h));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
  for (HANDLE h : handles) EXPECT_EQ(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
}

// Tests that one invalid handle fails the whole wait with ERROR_INVALID_HANDLE
// and acquires none of the valid objects.
TEST_F(WaitTest, InvalidHandleInArrayFailsWholeWait) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  HANDLE closed = CreateEventW(nullptr, FALSE, TRUE, nullptr);
  ASSERT_TRUE(CloseHandle(closed));
  HANDLE handles[] = {event.get(), closed};
  for (BOOL wait_all : {FALSE, TRUE}) {
    SetLastError(0);
    EXPECT_EQ(WaitForMultipleObjects(2, handles, wait_all, 0), WAIT_FAILED);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
}

// Tests that waiting on GetCurrentProcess() (== INVALID_HANDLE_VALUE) times
// out: the process is never signaled while it runs.
TEST_F(WaitTest, WaitOnCurrentProcessTimesOut) {
  ASSERT_EQ(GetCurrentProcess(), INVALID_HANDLE_VALUE);
  Stopwatch watch;
  EXPECT_EQ(WaitForSingleObject(INVALID_HANDLE_VALUE, kShortMs), WAIT_TIMEOUT);
  EXPECT_GE(watch.ElapsedMs(), kShortMs - kTimeoutSlackMs);
}

// Tests that waiting on GetCurrentThread() with WaitForSingleObject times
// out: the calling thread is not signaled while it runs the wait.
TEST_F(WaitTest, WaitOnCurrentThreadTimesOut) {
  EXPECT_EQ(WaitForSingleObject(GetCurrentThread(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(GetCurrentThread(), kShortMs), WAIT_TIMEOUT);
}

// Tests that WaitForMultipleObjects(Ex) refuses the pseudo-handles with
// WAIT_FAILED and ERROR_INVALID_HANDLE, as Windows does (sync.c:1369-1380),
// at once and acquiring none of the other objects.
TEST_F(WaitTest, WaitForMultipleObjectsRefusesPseudoHandles) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  for (HANDLE pseudo : {GetCurrentProcess(), GetCurrentThread()}) {
    HANDLE alone[] = {pseudo};
    SetLastError(0xdeadbeef);
    EXPECT_EQ(WaitForMultipleObjects(1, alone, FALSE, 100), WAIT_FAILED);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    HANDLE mixed[] = {event.get(), pseudo};
    for (BOOL wait_all : {FALSE, TRUE}) {
      SetLastError(0xdeadbeef);
      EXPECT_EQ(WaitForMultipleObjectsEx(2, mixed, wait_all, 0, FALSE), WAIT_FAILED);
      EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    }
  }
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);  // Still signaled.
}

// Tests that SignalObjectAndWait signals the first object and waits on the second.
TEST_F(WaitTest, SignalObjectAndWaitSignalsThenWaits) {
  ScopedHandle to_signal(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle to_wait(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  EXPECT_EQ(SignalObjectAndWait(to_signal.get(), to_wait.get(), 0, FALSE), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(to_signal.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(to_wait.get(), 0), WAIT_TIMEOUT);  // Consumed.
}

// Tests that SignalObjectAndWait times out on a non-signaled object after
// having signaled the other.
TEST_F(WaitTest, SignalObjectAndWaitTimesOut) {
  ScopedHandle to_signal(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle to_wait(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  Stopwatch watch;
  EXPECT_EQ(SignalObjectAndWait(to_signal.get(), to_wait.get(), kShortMs, FALSE), WAIT_TIMEOUT);
  EXPECT_GE(watch.ElapsedMs(), kShortMs - kTimeoutSlackMs);
  EXPECT_EQ(WaitForSingleObject(to_signal.get(), 0), WAIT_OBJECT_0);
}

// Tests that SignalObjectAndWait hands off to another thread: the thread woken
// by the signal answers on the object waited on.
TEST_F(WaitTest, SignalObjectAndWaitHandsOffToAnotherThread) {
  ScopedHandle request(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle reply(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  int value = 0;
  HANDLE t = StartThread([&] {
    if (WaitForSingleObject(request.get(), kJoinMs) != WAIT_OBJECT_0) return DWORD{1};
    value *= 2;
    SetEvent(reply.get());
    return DWORD{0};
  });
  value = 21;
  EXPECT_EQ(SignalObjectAndWait(request.get(), reply.get(), kJoinMs, FALSE), WAIT_OBJECT_0);
  EXPECT_EQ(value, 42);
  ASSERT_TRUE(JoinThread(t));
}

// Tests that SignalObjectAndWait releases a mutex and a semaphore unit when
// those are the objects to signal.
TEST_F(WaitTest, SignalObjectAndWaitReleasesMutexAndSemaphore) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, nullptr));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 1, nullptr));
  ScopedHandle ready(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  EXPECT_EQ(SignalObjectAndWait(mutex.get(), ready.get(), 0, FALSE), WAIT_OBJECT_0);
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(mutex.get()));  // No longer ours.
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
  EXPECT_EQ(SignalObjectAndWait(semaphore.get(), ready.get(), 0, FALSE), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_OBJECT_0);
}

// Tests that SignalObjectAndWait fails with WAIT_FAILED, without waiting, when
// the signal fails: a mutex the caller does not own (ERROR_NOT_OWNER), a full
// semaphore (ERROR_TOO_MANY_POSTS), a thread (ERROR_INVALID_HANDLE).
TEST_F(WaitTest, SignalObjectAndWaitFailsWhenSignalFails) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  ScopedHandle full(CreateSemaphoreW(nullptr, 1, 1, nullptr));
  ScopedHandle never(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  struct Case {
    HANDLE to_signal;
    DWORD error;
  };
  for (Case c : {Case{mutex.get(), ERROR_NOT_OWNER}, Case{full.get(), ERROR_TOO_MANY_POSTS},
                 Case{GetCurrentThread(), ERROR_INVALID_HANDLE},
                 Case{GetCurrentProcess(), ERROR_INVALID_HANDLE}}) {
    SetLastError(0);
    Stopwatch watch;
    EXPECT_EQ(SignalObjectAndWait(c.to_signal, never.get(), kJoinMs, FALSE), WAIT_FAILED);
    EXPECT_EQ(GetLastError(), c.error);
    EXPECT_LT(watch.ElapsedMs(), kJoinMs);  // It did not wait.
  }
}

// Tests that SignalObjectAndWait with an invalid handle on either side fails
// with ERROR_INVALID_HANDLE and signals nothing.
TEST_F(WaitTest, SignalObjectAndWaitWithInvalidHandleSignalsNothing) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE closed = CreateEventW(nullptr, FALSE, TRUE, nullptr);
  ASSERT_TRUE(CloseHandle(closed));
  SetLastError(0);
  EXPECT_EQ(SignalObjectAndWait(event.get(), closed, 0, FALSE), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);  // Not signaled.
  SetLastError(0);
  EXPECT_EQ(SignalObjectAndWait(closed, event.get(), 0, FALSE), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that Sleep and SleepEx (non-alertable) sleep at least the time given
// and SleepEx returns 0; Sleep(0) returns at once.
TEST_F(WaitTest, SleepSleepsAtLeastTheTimeGiven) {
  Stopwatch watch;
  Sleep(kShortMs);
  EXPECT_GE(watch.ElapsedMs(), kShortMs - kTimeoutSlackMs);
  Stopwatch watch_ex;
  EXPECT_EQ(SleepEx(kShortMs, FALSE), 0u);
  EXPECT_GE(watch_ex.ElapsedMs(), kShortMs - kTimeoutSlackMs);
  Sleep(0);
  EXPECT_EQ(SleepEx(0, FALSE), 0u);
  EXPECT_EQ(SleepEx(0, TRUE), 0u);  // No APC queued.
}

// Tests that GetTickCount64 is monotonic and advances with real time (to
// within a timer tick, as on Windows), and that GetTickCount is its low 32
// bits.
TEST_F(WaitTest, TickCountAdvances) {
  ULONGLONG before = GetTickCount64();
  Sleep(kShortMs);
  ULONGLONG after = GetTickCount64();
  constexpr DWORD kTickMs = 10;  // Linux: 1-4 ms (HZ 1000-250); a margin.
  EXPECT_GE(after - before, kShortMs - kTickMs);
  DWORD low = GetTickCount();
  EXPECT_LT(low - static_cast<DWORD>(after), 1000u);  // Unsigned: correct across a wrap.
}

}  // namespace
}  // namespace apartments::internal
