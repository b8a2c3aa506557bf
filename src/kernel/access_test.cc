// Access rights: what Open*, Create*Ex and DuplicateHandle grant, and the
// right each function checks, as Windows does (Wine's kernel32 sync.c tests,
// which run on Windows, and Microsoft's "Synchronization Object Security and
// Access Rights" and "Thread Security and Access Rights" pages).
#include <string>

#include "apartments/last_error.h"
#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::ScopedHandle;

using AccessTest = ktest::KernelTest;

const DWORD kDenied = ERROR_ACCESS_DENIED;

// A duplicate of `source` with exactly `access` (not DUPLICATE_SAME_ACCESS).
ScopedHandle Narrowed(HANDLE source, DWORD access) {
  HANDLE copy = nullptr;
  EXPECT_TRUE(DuplicateHandle(GetCurrentProcess(), source, GetCurrentProcess(), &copy, access,
                              FALSE, 0));
  return ScopedHandle(copy);
}

// Tests that Open* asking for no access right fails with ERROR_ACCESS_DENIED
// (Windows' access check refuses an empty request), for each kind.
TEST_F(AccessTest, OpenWithNoAccessIsDenied) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, L"access_test.event"));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, L"access_test.mutex"));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 1, L"access_test.semaphore"));
  SetLastError(0);
  EXPECT_EQ(OpenEventW(0, FALSE, L"access_test.event"), nullptr);
  EXPECT_EQ(GetLastError(), kDenied);
  SetLastError(0);
  EXPECT_EQ(OpenMutexW(0, FALSE, L"access_test.mutex"), nullptr);
  EXPECT_EQ(GetLastError(), kDenied);
  SetLastError(0);
  EXPECT_EQ(OpenSemaphoreW(0, FALSE, L"access_test.semaphore"), nullptr);
  EXPECT_EQ(GetLastError(), kDenied);
}

// Tests that a missing name is ERROR_FILE_NOT_FOUND whatever access is asked
// (the name is looked up before the access is checked).
TEST_F(AccessTest, OpenOfMissingNameIsNotFoundEvenWithNoAccess) {
  SetLastError(0);
  EXPECT_EQ(OpenMutexW(0, FALSE, L"access_test.missing"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
}

// Tests that OpenMutex accepts exactly the single rights Windows accepts (the
// mutex's own, the standard ones, the generic ones and MAXIMUM_ALLOWED;
// Wine's test_mutex expects the others to fail: 0x0de0fffe), denies the rest
// with ERROR_ACCESS_DENIED, and ACCESS_SYSTEM_SECURITY with
// ERROR_PRIVILEGE_NOT_HELD; and that a handle with any of them releases the
// mutex its thread owns.
TEST_F(AccessTest, OpenMutexGrantsWindowsSetOfSingleRights) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, L"access_test.bits"));
  DWORD failed = 0;
  for (int i = 0; i < 32; ++i) {
    const DWORD right = DWORD{1} << i;
    SetLastError(0);
    HANDLE opened = OpenMutexW(right, FALSE, L"access_test.bits");
    if (opened == nullptr) {
      failed |= right;
      EXPECT_EQ(GetLastError(), right == ACCESS_SYSTEM_SECURITY
                                    ? static_cast<DWORD>(ERROR_PRIVILEGE_NOT_HELD)
                                    : kDenied)
          << std::hex << right;
      continue;
    }
    // Owned once more, released through the narrow handle.
    EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_OBJECT_0);
    EXPECT_TRUE(ReleaseMutex(opened)) << std::hex << right;
    CloseHandle(opened);
  }
  EXPECT_EQ(failed, 0x0de0fffeu);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

// Tests that a handle without SYNCHRONIZE cannot be waited on: WAIT_FAILED
// with ERROR_ACCESS_DENIED from every wait function, and the object is left
// as it was.
TEST_F(AccessTest, WaitWithoutSynchronizeIsDenied) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ScopedHandle modify_only = Narrowed(event.get(), EVENT_MODIFY_STATE);
  HANDLE h = modify_only.get();
  SetLastError(0);
  EXPECT_EQ(WaitForSingleObject(h, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
  SetLastError(0);
  EXPECT_EQ(WaitForSingleObjectEx(h, 0, TRUE), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
  HANDLE both[2] = {event.get(), h};
  SetLastError(0);
  EXPECT_EQ(WaitForMultipleObjects(2, both, FALSE, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
  // The auto-reset event is still signaled: the failed waits consumed nothing.
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
}

// Tests that SetEvent, ResetEvent and PulseEvent need EVENT_MODIFY_STATE and
// leave the event alone without it.
TEST_F(AccessTest, EventFunctionsNeedModifyState) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle sync_only = Narrowed(event.get(), SYNCHRONIZE);
  SetLastError(0);
  EXPECT_FALSE(SetEvent(sync_only.get()));
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_EQ(WaitForSingleObject(sync_only.get(), 0), WAIT_TIMEOUT);
  SetLastError(0);
  EXPECT_FALSE(PulseEvent(sync_only.get()));
  EXPECT_EQ(GetLastError(), kDenied);
  ASSERT_TRUE(SetEvent(event.get()));
  SetLastError(0);
  EXPECT_FALSE(ResetEvent(sync_only.get()));
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_EQ(WaitForSingleObject(sync_only.get(), 0), WAIT_OBJECT_0);
}

// Tests that the access-denied failure explains itself: the function, the
// handle's kind, the right it lacks and the mask it has.
TEST_F(AccessTest, AccessDeniedIsExplained) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle sync_only = Narrowed(event.get(), SYNCHRONIZE);
  ClearLastErrorExplanation();
  ASSERT_FALSE(SetEvent(sync_only.get()));
  const std::string text = LastErrorExplanation();
  EXPECT_NE(text.find("SetEvent failed with ERROR_ACCESS_DENIED"), std::string::npos) << text;
  EXPECT_NE(text.find("an event handle without the EVENT_MODIFY_STATE right"), std::string::npos)
      << text;
  EXPECT_NE(text.find("0x00100000"), std::string::npos) << text;
}

// Tests that the generic rights map onto each kind's own, as Windows maps
// them: GENERIC_WRITE lets an event be set but not waited on, GENERIC_EXECUTE
// the reverse, GENERIC_ALL and MAXIMUM_ALLOWED give everything.
TEST_F(AccessTest, GenericRightsMapToSpecificOnes) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, L"access_test.generic"));
  ScopedHandle write(OpenEventW(GENERIC_WRITE, FALSE, L"access_test.generic"));
  ASSERT_TRUE(write);
  EXPECT_TRUE(SetEvent(write.get()));
  EXPECT_EQ(WaitForSingleObject(write.get(), 0), WAIT_FAILED);
  ScopedHandle execute(OpenEventW(GENERIC_EXECUTE, FALSE, L"access_test.generic"));
  ASSERT_TRUE(execute);
  EXPECT_EQ(WaitForSingleObject(execute.get(), 0), WAIT_OBJECT_0);
  EXPECT_FALSE(ResetEvent(execute.get()));
  for (DWORD all : {static_cast<DWORD>(GENERIC_ALL), static_cast<DWORD>(MAXIMUM_ALLOWED)}) {
    ScopedHandle full(OpenEventW(all, FALSE, L"access_test.generic"));
    ASSERT_TRUE(full);
    EXPECT_TRUE(ResetEvent(full.get()));
    EXPECT_EQ(WaitForSingleObject(full.get(), 0), WAIT_TIMEOUT);
  }
}

// Tests that ReleaseSemaphore needs SEMAPHORE_MODIFY_STATE and leaves the
// count alone without it.
TEST_F(AccessTest, ReleaseSemaphoreNeedsModifyState) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 2, nullptr));
  ScopedHandle sync_only = Narrowed(semaphore.get(), SYNCHRONIZE);
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(sync_only.get(), 1, nullptr));
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_EQ(WaitForSingleObject(sync_only.get(), 0), WAIT_TIMEOUT);
}

// Tests that ReleaseMutex needs no right, only ownership: an owner releases
// through a handle with SYNCHRONIZE alone, as on Windows.
TEST_F(AccessTest, ReleaseMutexNeedsOnlyOwnership) {
  ScopedHandle mutex(CreateMutexW(nullptr, TRUE, nullptr));
  ScopedHandle sync_only = Narrowed(mutex.get(), SYNCHRONIZE);
  EXPECT_TRUE(ReleaseMutex(sync_only.get()));
  SetLastError(0);
  EXPECT_FALSE(ReleaseMutex(sync_only.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_OWNER));
}

// Tests that DuplicateHandle with a narrower mask narrows the duplicate,
// DUPLICATE_SAME_ACCESS keeps a narrowed mask (whatever dwDesiredAccess
// says), and a wider mask is granted when the kind has the rights.
TEST_F(AccessTest, DuplicateNarrowsKeepsAndWidens) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle sync_only = Narrowed(event.get(), SYNCHRONIZE);
  EXPECT_FALSE(SetEvent(sync_only.get()));
  HANDLE same = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), sync_only.get(), GetCurrentProcess(), &same,
                              EVENT_ALL_ACCESS, FALSE, DUPLICATE_SAME_ACCESS));
  ScopedHandle owned_same(same);
  EXPECT_FALSE(SetEvent(same));
  EXPECT_EQ(WaitForSingleObject(same, 0), WAIT_TIMEOUT);
  ScopedHandle widened = Narrowed(sync_only.get(), EVENT_ALL_ACCESS);
  EXPECT_TRUE(SetEvent(widened.get()));
}

// Tests that DuplicateHandle with a right the object's kind does not have
// fails with ERROR_ACCESS_DENIED and makes no handle.
TEST_F(AccessTest, DuplicateWithForeignRightIsDenied) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  const std::size_t before = OpenHandleCountForTesting();
  HANDLE copy = nullptr;
  SetLastError(0);
  EXPECT_FALSE(DuplicateHandle(GetCurrentProcess(), event.get(), GetCurrentProcess(), &copy,
                               EVENT_ALL_ACCESS | 0x4, FALSE, 0));
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_EQ(OpenHandleCountForTesting(), before);
}

// Tests that a duplicate with no access at all is allowed (as on Windows) and
// can only be closed: it can be neither waited on nor set.
TEST_F(AccessTest, DuplicateWithNoAccessCanOnlyBeClosed) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle none = Narrowed(event.get(), 0);
  ASSERT_TRUE(none);
  EXPECT_FALSE(SetEvent(none.get()));
  EXPECT_EQ(WaitForSingleObject(none.get(), 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_TRUE(CloseHandle(none.release()));
}

// Tests that CreateEventExW's handle has the access it asked for (SYNCHRONIZE
// alone cannot set it; no access at all is allowed) and that a right events
// lack is denied.
TEST_F(AccessTest, CreateEventExGrantsDesiredAccess) {
  ScopedHandle sync_only(CreateEventExW(nullptr, nullptr, CREATE_EVENT_INITIAL_SET, SYNCHRONIZE));
  ASSERT_TRUE(sync_only);
  EXPECT_FALSE(SetEvent(sync_only.get()));
  EXPECT_EQ(WaitForSingleObject(sync_only.get(), 0), WAIT_OBJECT_0);
  ScopedHandle none(CreateEventExW(nullptr, nullptr, 0, 0));
  EXPECT_TRUE(none);
  SetLastError(0);
  EXPECT_EQ(CreateEventExW(nullptr, nullptr, 0, EVENT_ALL_ACCESS | 0x8), nullptr);
  EXPECT_EQ(GetLastError(), kDenied);
}

// Tests that CreateMutexExW takes its initial owner from the flags and its
// access from dwDesiredAccess, and refuses unknown flags.
TEST_F(AccessTest, CreateMutexExGrantsDesiredAccess) {
  ScopedHandle mutex(CreateMutexExW(nullptr, nullptr, CREATE_MUTEX_INITIAL_OWNER, READ_CONTROL));
  ASSERT_TRUE(mutex);
  EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_FAILED);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));  // Owned from the start; no right needed.
  SetLastError(0);
  EXPECT_EQ(CreateMutexExW(nullptr, nullptr, 0x2, MUTEX_ALL_ACCESS), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests that CreateSemaphoreExW's handle has the access it asked for.
TEST_F(AccessTest, CreateSemaphoreExGrantsDesiredAccess) {
  ScopedHandle semaphore(CreateSemaphoreExW(nullptr, 1, 2, nullptr, 0, SYNCHRONIZE));
  ASSERT_TRUE(semaphore);
  EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), 1, nullptr));
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_OBJECT_0);
  SetLastError(0);
  EXPECT_EQ(CreateSemaphoreExW(nullptr, 1, 2, nullptr, 0, 0x4), nullptr);
  EXPECT_EQ(GetLastError(), kDenied);
}

// Tests that Create* handles have all access: the
// duplicate made with DUPLICATE_SAME_ACCESS can do everything.
TEST_F(AccessTest, CreateHandlesHaveAllAccess) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE same = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), event.get(), GetCurrentProcess(), &same, 0,
                              FALSE, DUPLICATE_SAME_ACCESS));
  ScopedHandle owned_same(same);
  EXPECT_TRUE(SetEvent(same));
  EXPECT_TRUE(ResetEvent(same));
  EXPECT_EQ(WaitForSingleObject(same, 0), WAIT_TIMEOUT);
}

// Tests that thread handles check the documented THREAD_* rights: with
// SYNCHRONIZE alone a thread handle can be waited on but not queried,
// resumed, given an APC or named.
TEST_F(AccessTest, ThreadFunctionsNeedTheirRights) {
  ScopedHandle sync_only = Narrowed(GetCurrentThread(), SYNCHRONIZE);
  HANDLE h = sync_only.get();
  EXPECT_EQ(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
  DWORD code = 0;
  SetLastError(0);
  EXPECT_FALSE(GetExitCodeThread(h, &code));
  EXPECT_EQ(GetLastError(), kDenied);
  SetLastError(0);
  EXPECT_EQ(GetThreadId(h), 0u);
  EXPECT_EQ(GetLastError(), kDenied);
  SetLastError(0);
  EXPECT_EQ(QueueUserAPC([](ULONG_PTR) {}, h, 0), 0u);
  EXPECT_EQ(GetLastError(), kDenied);
  SetLastError(0);
  EXPECT_EQ(ResumeThread(h), static_cast<DWORD>(-1));
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_EQ(SetThreadDescription(h, L"x"), E_ACCESSDENIED);
  LPWSTR description = nullptr;
  EXPECT_EQ(GetThreadDescription(h, &description), E_ACCESSDENIED);
}

// Tests that THREAD_QUERY_INFORMATION brings THREAD_QUERY_LIMITED_INFORMATION
// (as since Vista), and that without SYNCHRONIZE the thread cannot be waited on.
TEST_F(AccessTest, ThreadQueryInformationImpliesLimited) {
  ScopedHandle query = Narrowed(GetCurrentThread(), THREAD_QUERY_INFORMATION);
  EXPECT_EQ(GetThreadId(query.get()), GetCurrentThreadId());
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(query.get(), &code));
  EXPECT_EQ(code, STILL_ACTIVE);
  SetLastError(0);
  EXPECT_EQ(WaitForSingleObject(query.get(), 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
}

// Tests that DuplicateHandle needs PROCESS_DUP_HANDLE on the process handle.
TEST_F(AccessTest, DuplicateNeedsProcessDupHandle) {
  ScopedHandle process = Narrowed(GetCurrentProcess(), PROCESS_QUERY_INFORMATION);
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE copy = nullptr;
  SetLastError(0);
  EXPECT_FALSE(DuplicateHandle(process.get(), event.get(), GetCurrentProcess(), &copy, 0, FALSE,
                               DUPLICATE_SAME_ACCESS));
  EXPECT_EQ(GetLastError(), kDenied);
}

// Tests that SignalObjectAndWait needs EVENT_MODIFY_STATE on an event to
// signal and SYNCHRONIZE on the object to wait on, and signals nothing when
// either is missing.
TEST_F(AccessTest, SignalObjectAndWaitChecksBothRights) {
  ScopedHandle to_signal(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle to_wait(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ScopedHandle signal_sync_only = Narrowed(to_signal.get(), SYNCHRONIZE);
  SetLastError(0);
  EXPECT_EQ(SignalObjectAndWait(signal_sync_only.get(), to_wait.get(), 0, FALSE), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
  ScopedHandle wait_modify_only = Narrowed(to_wait.get(), EVENT_MODIFY_STATE);
  SetLastError(0);
  EXPECT_EQ(SignalObjectAndWait(to_signal.get(), wait_modify_only.get(), 0, FALSE), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), kDenied);
  EXPECT_EQ(WaitForSingleObject(to_signal.get(), 0), WAIT_TIMEOUT);
}

// Tests that SignalObjectAndWait with an object that cannot be signaled (a
// thread handle) fails with ERROR_INVALID_HANDLE, as Windows
// (STATUS_OBJECT_TYPE_MISMATCH), and explains why. Regression: it failed
// with no explanation.
TEST_F(AccessTest, SignalObjectAndWaitOnThreadIsExplained) {
  ScopedHandle thread = Narrowed(GetCurrentThread(), THREAD_ALL_ACCESS);
  ScopedHandle to_wait(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ClearLastErrorExplanation();
  SetLastError(0);
  EXPECT_EQ(SignalObjectAndWait(thread.get(), to_wait.get(), 0, FALSE), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  const std::string text = LastErrorExplanation();
  EXPECT_NE(text.find("is open, but it is a thread, which cannot be signaled"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace apartments::internal
