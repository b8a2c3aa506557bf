// Mutexes: ownership, recursion, ERROR_NOT_OWNER, initial owner, names,
// abandonment.
#include <atomic>
#include <string>

#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::WaitUntilBlocked;

using MutexTest = ktest::KernelTest;

// Runs WaitForSingleObject(mutex, 0) on a fresh thread, releasing the mutex
// again when that acquired it; returns the wait's result (WAIT_FAILED when the
// thread could not be run).
DWORD TryAcquireOnOtherThread(HANDLE mutex) {
  std::atomic<DWORD> result{WAIT_FAILED};
  HANDLE t = StartThread([&] {
    DWORD r = WaitForSingleObject(mutex, 0);
    if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED_0) ReleaseMutex(mutex);
    result.store(r);
    return DWORD{0};
  });
  if (t == nullptr || !JoinThread(t)) return WAIT_FAILED;
  return result.load();
}

// Tests that a free mutex is acquired by a wait and released by ReleaseMutex,
// after which another ReleaseMutex fails with ERROR_NOT_OWNER.
TEST_F(MutexTest, WaitAcquiresAndReleaseMutexFrees) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  ASSERT_TRUE(mutex);
  ASSERT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_TIMEOUT);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_OBJECT_0);
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
}

// Tests that the owner may acquire its mutex recursively and must release it
// as many times before another thread can acquire it.
TEST_F(MutexTest, OwnerRecursionNeedsMatchingReleases) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_OBJECT_0);
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_TIMEOUT);  // One level still held.
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_OBJECT_0);
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
}

// Tests that a thread that does not own the mutex gets ERROR_NOT_OWNER from
// ReleaseMutex and leaves the owner's hold intact.
TEST_F(MutexTest, ReleaseByNonOwnerFailsWithNotOwner) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, nullptr));
  std::atomic<BOOL> released{TRUE};
  std::atomic<DWORD> error{0};
  HANDLE t = StartThread([&] {
    SetLastError(0);
    released.store(ReleaseMutex(mutex.get()));
    error.store(GetLastError());
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  EXPECT_FALSE(released.load());
  EXPECT_EQ(error.load(), static_cast<DWORD>(ERROR_NOT_OWNER));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_TIMEOUT);  // Still ours.
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

// Tests that bInitialOwner TRUE makes the creating thread the owner.
TEST_F(MutexTest, InitialOwnerOwnsNewMutex) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, nullptr));
  ASSERT_TRUE(mutex);
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_TIMEOUT);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_OBJECT_0);
}

// Tests that bInitialOwner FALSE creates a free mutex (releasing it fails).
TEST_F(MutexTest, NoInitialOwnerCreatesFreeMutex) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_OBJECT_0);
}

// Tests that bInitialOwner is ignored when CreateMutexW opens an existing
// named mutex (ERROR_ALREADY_EXISTS, the caller does not become the owner).
TEST_F(MutexTest, InitialOwnerIgnoredForExistingNamedMutex) {
  ScopedHandle first(CreateMutexW(nullptr, FALSE, L"mutex_test.existing"));
  ASSERT_TRUE(first);
  ScopedHandle second(CreateMutexW(nullptr, TRUE, L"mutex_test.existing"));
  ASSERT_TRUE(second);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ALREADY_EXISTS));
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(second.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
}

// Tests that a new named mutex created with bInitialOwner reports
// ERROR_SUCCESS, not whatever acquiring it left behind.
TEST_F(MutexTest, NewNamedMutexWithInitialOwnerReportsSuccess) {
  SetLastError(12345);
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, L"mutex_test.new_owned"));
  ASSERT_TRUE(mutex);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

// Tests that CreateMutexA/OpenMutexW and CreateMutexW/OpenMutexA reach the
// same named mutex; an unknown name gives ERROR_FILE_NOT_FOUND and another
// kind's name ERROR_INVALID_HANDLE.
TEST_F(MutexTest, NamedMutexOpenVariants) {
  ScopedHandle by_a(CreateMutexA(nullptr, FALSE, "mutex_test.named"));
  ASSERT_TRUE(by_a);
  ScopedHandle opened(OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"mutex_test.named"));
  ASSERT_TRUE(opened);
  ScopedHandle opened_a(OpenMutexA(MUTEX_ALL_ACCESS, FALSE, "mutex_test.named"));
  ASSERT_TRUE(opened_a);
  ASSERT_EQ(WaitForSingleObject(opened.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(TryAcquireOnOtherThread(by_a.get()), WAIT_TIMEOUT);
  EXPECT_TRUE(ReleaseMutex(opened_a.get()));  // Same object, same owner.

  SetLastError(0);
  EXPECT_EQ(OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"mutex_test.absent"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, L"mutex_test.an_event"));
  SetLastError(0);
  EXPECT_EQ(OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"mutex_test.an_event"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(CreateMutexW(nullptr, FALSE, L"mutex_test.an_event"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(CreateMutexW(nullptr, TRUE, L"mutex_test.an_event"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(OpenMutexA(MUTEX_ALL_ACCESS, FALSE, nullptr), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests that ReleaseMutex refuses a handle to another kind of object.
TEST_F(MutexTest, ReleaseMutexRejectsOtherKinds) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(event.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that when a thread exits holding a mutex, the next thread to acquire
// it gets WAIT_ABANDONED and becomes its owner.
TEST_F(MutexTest, ExitingOwnerAbandonsMutex) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  HANDLE owner = StartThread([&] { return WaitForSingleObject(mutex.get(), 0); });
  ASSERT_NE(owner, nullptr);
  DWORD code = 0;
  ASSERT_EQ(WaitForSingleObject(owner, kJoinMs), WAIT_OBJECT_0);
  ASSERT_TRUE(GetExitCodeThread(owner, &code));
  CloseHandle(owner);
  ASSERT_EQ(code, WAIT_OBJECT_0);  // The thread did acquire it.

  EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_ABANDONED);
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_TIMEOUT);  // We own it now.
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

// Tests that only the first acquirer after abandonment sees WAIT_ABANDONED.
TEST_F(MutexTest, OnlyFirstAcquirerSeesAbandoned) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  HANDLE owner = StartThread([&] { return WaitForSingleObject(mutex.get(), 0); });
  ASSERT_TRUE(JoinThread(owner));
  ASSERT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_ABANDONED);
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_OBJECT_0);
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_OBJECT_0);
}

// Tests that a mutex created with bInitialOwner by a thread that then exits is
// abandoned like one acquired by a wait.
TEST_F(MutexTest, InitialOwnerThatExitsAbandonsMutex) {
  HANDLE created = nullptr;
  HANDLE t = StartThread([&] {
    created = CreateMutexW(nullptr, TRUE, nullptr);
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  ASSERT_NE(created, nullptr);
  ScopedHandle mutex(created);
  EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_ABANDONED);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

// Tests that a thread blocked on a mutex is woken with WAIT_ABANDONED when the
// owner exits, and then owns it.
TEST_F(MutexTest, BlockedWaiterIsWokenWithAbandoned) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  ScopedHandle owner_may_exit(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle owner_holds(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE owner = StartThread([&] {
    DWORD r = WaitForSingleObject(mutex.get(), 0);
    SetEvent(owner_holds.get());
    WaitForSingleObject(owner_may_exit.get(), kJoinMs);
    return r;
  });
  ASSERT_NE(owner, nullptr);
  ASSERT_EQ(WaitForSingleObject(owner_holds.get(), kJoinMs), WAIT_OBJECT_0);

  std::atomic<DWORD> waiter_result{WAIT_FAILED};
  std::atomic<BOOL> waiter_released{FALSE};
  DWORD waiter_tid = 0;
  HANDLE waiter = StartThread(
      [&] {
        DWORD r = WaitForSingleObject(mutex.get(), kJoinMs);
        waiter_result.store(r);
        if (r == WAIT_ABANDONED) waiter_released.store(ReleaseMutex(mutex.get()));
        return DWORD{0};
      },
      0, &waiter_tid);
  ASSERT_NE(waiter, nullptr);
  ASSERT_TRUE(WaitUntilBlocked(waiter_tid));
  ASSERT_TRUE(SetEvent(owner_may_exit.get()));
  ASSERT_TRUE(JoinThread(owner));
  ASSERT_TRUE(JoinThread(waiter));
  EXPECT_EQ(waiter_result.load(), WAIT_ABANDONED);
  EXPECT_TRUE(waiter_released.load());  // It was the owner.
}

// Tests that a mutex the exiting thread held recursively is fully abandoned:
// the new owner releases it once and it is free.
TEST_F(MutexTest, RecursiveHoldIsFullyAbandoned) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, nullptr));
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  HANDLE owner = StartThread([&] {
    for (int i = 0; i < 3; ++i) WaitForSingleObject(mutex.get(), 0);
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(owner));
  ASSERT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_ABANDONED);
  ASSERT_TRUE(ReleaseMutex(mutex.get()));
  EXPECT_EQ(TryAcquireOnOtherThread(mutex.get()), WAIT_OBJECT_0);
}

// Tests that a wait-any reports an abandoned mutex as WAIT_ABANDONED_0 + its index.
TEST_F(MutexTest, WaitAnyReportsAbandonedIndex) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  HANDLE owner = StartThread([&] { return WaitForSingleObject(mutex.get(), 0); });
  ASSERT_TRUE(JoinThread(owner));
  HANDLE handles[] = {event.get(), mutex.get()};
  EXPECT_EQ(WaitForMultipleObjects(2, handles, FALSE, 0), WAIT_ABANDONED_0 + 1);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

// Tests that a wait-all that acquires abandoned mutexes reports the lowest
// abandoned index and owns all of them.
TEST_F(MutexTest, WaitAllReportsLowestAbandonedIndex) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ScopedHandle first(CreateMutexW(nullptr, FALSE, nullptr));
  ScopedHandle second(CreateMutexW(nullptr, FALSE, nullptr));
  HANDLE owner = StartThread([&] {
    WaitForSingleObject(first.get(), 0);
    WaitForSingleObject(second.get(), 0);
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(owner));
  HANDLE handles[] = {event.get(), second.get(), first.get()};
  EXPECT_EQ(WaitForMultipleObjects(3, handles, TRUE, 0), WAIT_ABANDONED_0 + 1);
  EXPECT_TRUE(ReleaseMutex(first.get()));
  EXPECT_TRUE(ReleaseMutex(second.get()));
  // Both abandonments were consumed by that one wait.
  EXPECT_EQ(WaitForSingleObject(first.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(second.get(), 0), WAIT_OBJECT_0);
  EXPECT_TRUE(ReleaseMutex(first.get()));
  EXPECT_TRUE(ReleaseMutex(second.get()));
}

// Tests that a thread blocked in a wait-any on [event, mutex] is woken with
// WAIT_ABANDONED_0 + 1 when the mutex's owner exits.
TEST_F(MutexTest, BlockedWaitAnyIsWokenWithAbandonedIndex) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  ScopedHandle owner_may_exit(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle owner_holds(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE owner = StartThread([&] {
    WaitForSingleObject(mutex.get(), 0);
    SetEvent(owner_holds.get());
    WaitForSingleObject(owner_may_exit.get(), kJoinMs);
    return DWORD{0};
  });
  ASSERT_EQ(WaitForSingleObject(owner_holds.get(), kJoinMs), WAIT_OBJECT_0);
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE waiter = StartThread(
      [&] {
        HANDLE handles[] = {event.get(), mutex.get()};
        DWORD r = WaitForMultipleObjects(2, handles, FALSE, kJoinMs);
        result.store(r);
        if (r == WAIT_ABANDONED_0 + 1) ReleaseMutex(mutex.get());
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(SetEvent(owner_may_exit.get()));
  ASSERT_TRUE(JoinThread(owner));
  ASSERT_TRUE(JoinThread(waiter));
  EXPECT_EQ(result.load(), WAIT_ABANDONED_0 + 1);
}

// Tests that a mutex whose every handle was closed while it was owned is
// destroyed cleanly when its owner releases it (no leak, no use after free).
TEST_F(MutexTest, OwnedMutexOutlivesItsHandlesUntilReleased) {
  HANDLE mutex = CreateMutexW(nullptr, TRUE, nullptr);
  ASSERT_NE(mutex, nullptr);
  HANDLE alias = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), mutex, GetCurrentProcess(), &alias, 0, FALSE,
                              DUPLICATE_SAME_ACCESS));
  ASSERT_TRUE(CloseHandle(mutex));
  EXPECT_TRUE(ReleaseMutex(alias));  // The object outlived the closed handle.
  ASSERT_TRUE(CloseHandle(alias));
}

// Tests that a thread that closes every handle to a mutex it owns and then
// exits abandons the mutex without crashing or leaking (the abandonment drops
// the last reference). A named mutex then disappears with its name.
TEST_F(MutexTest, AbandoningUnreferencedMutexDestroysIt) {
  HANDLE t = StartThread([] {
    HANDLE mutex = CreateMutexW(nullptr, TRUE, L"mutex_test.orphan");
    CloseHandle(mutex);
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  SetLastError(0);
  EXPECT_EQ(OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"mutex_test.orphan"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
}

// Tests that closing the last handle of a named mutex removes its name even
// while a thread still owns it, as on Windows (a name lives exactly as long as
// some handle to the object is open).
TEST_F(MutexTest, ClosingLastHandleOfOwnedNamedMutexRemovesName) {
  std::atomic<bool> reopened_while_aliased{false};
  std::atomic<DWORD> error_after_last_close{0};
  HANDLE t = StartThread([&] {
    HANDLE mutex = CreateMutexW(nullptr, TRUE, L"mutex_test.held");
    HANDLE alias = nullptr;
    DuplicateHandle(GetCurrentProcess(), mutex, GetCurrentProcess(), &alias, 0, FALSE,
                    DUPLICATE_SAME_ACCESS);
    CloseHandle(mutex);
    HANDLE reopened = OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"mutex_test.held");
    reopened_while_aliased.store(reopened != nullptr);
    if (reopened != nullptr) CloseHandle(reopened);
    CloseHandle(alias);  // The last handle; the thread still owns the mutex.
    SetLastError(0);
    HANDLE gone = OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"mutex_test.held");
    error_after_last_close.store(gone == nullptr ? GetLastError() : ERROR_SUCCESS);
    if (gone != nullptr) CloseHandle(gone);
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  EXPECT_TRUE(reopened_while_aliased.load());
  EXPECT_EQ(error_after_last_close.load(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
}

// Tests that a mutex created with bInitialOwner is owned from the moment its
// name can be found: another thread that opens it by name right away cannot
// acquire it. Regression: ownership was taken after the handle (and name)
// were published, so a racing OpenMutexW + wait could acquire the mutex first
// and the creator then overwrote that ownership, leaving two owners and
// corrupting both threads' owned-mutex lists.
TEST_F(MutexTest, InitialOwnershipIsAtomicWithCreation) {
  // Enough rounds that the unfixed code failed in every run (typically within
  // 5,000-12,000 rounds); each round is a few microseconds.
  constexpr int kRounds = 20000;
  ScopedHandle attempted(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle round_start(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<int> stolen{0};
  std::atomic<bool> stop{false};
  HANDLE opener = StartThread([&] {
    for (int r = 0; r < kRounds; ++r) {
      if (WaitForSingleObject(round_start.get(), kJoinMs) != WAIT_OBJECT_0 || stop.load()) break;
      std::wstring name = L"mutex_test.race." + std::to_wstring(r);
      HANDLE mutex = nullptr;
      // Spin on the name so the open lands as early as possible inside the
      // creator's CreateMutexW.
      while (mutex == nullptr && !stop.load()) {
        mutex = OpenMutexW(MUTEX_ALL_ACCESS, FALSE, name.c_str());
      }
      if (mutex == nullptr) break;
      DWORD result = WaitForSingleObject(mutex, 0);
      if (result == WAIT_OBJECT_0 || result == WAIT_ABANDONED) {
        stolen.fetch_add(1);
        ReleaseMutex(mutex);
      }
      CloseHandle(mutex);
      SetEvent(attempted.get());
    }
    return DWORD{0};
  });
  ASSERT_NE(opener, nullptr);
  int failed_round = -1;
  std::string failure;
  for (int r = 0; r < kRounds && failed_round < 0; ++r) {
    std::wstring name = L"mutex_test.race." + std::to_wstring(r);
    SetEvent(round_start.get());
    HANDLE mutex = CreateMutexW(nullptr, TRUE, name.c_str());
    if (mutex == nullptr) {
      failed_round = r, failure = "CreateMutexW failed";
      break;
    }
    bool attempted_in_time = WaitForSingleObject(attempted.get(), kJoinMs) == WAIT_OBJECT_0;
    BOOL released = ReleaseMutex(mutex);
    CloseHandle(mutex);
    if (!attempted_in_time) failed_round = r, failure = "the opener never tried";
    else if (stolen.load() != 0) failed_round = r, failure = "another thread acquired the new mutex";
    else if (!released) failed_round = r, failure = "the creator did not own its new mutex";
  }
  stop.store(true);
  SetEvent(round_start.get());
  ASSERT_TRUE(JoinThread(opener));
  EXPECT_EQ(failed_round, -1) << failure << " in round " << failed_round;
}

}  // namespace
}  // namespace apartments::internal
