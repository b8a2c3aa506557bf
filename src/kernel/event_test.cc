// Events: CreateEvent*/OpenEvent*, SetEvent, ResetEvent, PulseEvent, names.
#include <atomic>
#include <string>
#include <vector>

#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::CountBlocked;
using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::WaitUntilBlocked;

using EventTest = ktest::KernelTest;

// Tests that a new event's handle is a non-null multiple of 4, distinct from
// the pseudo-handles and from other events' handles.
TEST_F(EventTest, CreateReturnsDistinctAlignedHandles) {
  ScopedHandle a(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle b(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(a.get(), b.get());
  for (HANDLE h : {a.get(), b.get()}) {
    EXPECT_EQ(ktest::Bits(h) % 4, 0u);
    EXPECT_NE(h, GetCurrentProcess());
    EXPECT_NE(h, GetCurrentThread());
  }
}

// Tests that a manual-reset event created signaled satisfies every wait.
TEST_F(EventTest, ManualResetInitiallySignaledSatisfiesRepeatedWaits) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ASSERT_TRUE(event);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
}

// Tests that events created non-signaled (either reset mode) do not satisfy a wait.
TEST_F(EventTest, InitiallyNonSignaledTimesOut) {
  ScopedHandle manual(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle automatic(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  EXPECT_EQ(WaitForSingleObject(manual.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(automatic.get(), 0), WAIT_TIMEOUT);
}

// Tests that an auto-reset event created signaled satisfies exactly one wait.
TEST_F(EventTest, AutoResetInitiallySignaledSatisfiesOneWait) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that SetEvent leaves a manual-reset event signaled until ResetEvent.
TEST_F(EventTest, ManualResetStaysSignaledUntilReset) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ASSERT_TRUE(SetEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  ASSERT_TRUE(ResetEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that SetEvent on an auto-reset event satisfies one wait, which resets it.
TEST_F(EventTest, AutoResetIsConsumedByOneWait) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ASSERT_TRUE(SetEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that setting an already signaled auto-reset event does not count:
// two SetEvents still satisfy a single wait.
TEST_F(EventTest, SetEventDoesNotAccumulate) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ASSERT_TRUE(SetEvent(event.get()));
  ASSERT_TRUE(SetEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that ResetEvent clears a signaled auto-reset event and is a no-op
// (success) on a non-signaled one.
TEST_F(EventTest, ResetEventClearsAutoResetAndSucceedsWhenAlreadyClear) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, TRUE, nullptr));
  ASSERT_TRUE(ResetEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  SetLastError(12345);
  EXPECT_TRUE(ResetEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that PulseEvent with no waiter leaves either kind of event non-signaled.
TEST_F(EventTest, PulseWithoutWaitersLeavesEventNonSignaled) {
  ScopedHandle manual(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle automatic(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ASSERT_TRUE(PulseEvent(manual.get()));
  ASSERT_TRUE(PulseEvent(automatic.get()));
  EXPECT_EQ(WaitForSingleObject(manual.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(automatic.get(), 0), WAIT_TIMEOUT);
}

// Tests that PulseEvent on a signaled manual-reset event leaves it non-signaled.
TEST_F(EventTest, PulseOnSignaledManualResetResetsIt) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ASSERT_TRUE(PulseEvent(event.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that PulseEvent on a manual-reset event releases every thread waiting
// at that moment, then leaves the event non-signaled.
TEST_F(EventTest, PulseOnManualResetReleasesAllCurrentWaiters) {
  constexpr int kWaiters = 3;
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  std::atomic<int> released{0};
  std::vector<HANDLE> threads;
  std::vector<DWORD> tids(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    HANDLE t = StartThread(
        [&] {
          if (WaitForSingleObject(event.get(), kJoinMs) == WAIT_OBJECT_0) released.fetch_add(1);
          return DWORD{0};
        },
        0, &tids[i]);
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (DWORD tid : tids) ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(PulseEvent(event.get()));
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(released.load(), kWaiters);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that PulseEvent on an auto-reset event releases exactly one of the
// waiting threads and leaves the event non-signaled.
TEST_F(EventTest, PulseOnAutoResetReleasesExactlyOneWaiter) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  std::atomic<int> released{0};
  std::vector<HANDLE> threads;
  std::vector<DWORD> tids(2);
  for (int i = 0; i < 2; ++i) {
    HANDLE t = StartThread(
        [&] {
          if (WaitForSingleObject(event.get(), kJoinMs) == WAIT_OBJECT_0) released.fetch_add(1);
          return DWORD{0};
        },
        0, &tids[i]);
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (DWORD tid : tids) ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(PulseEvent(event.get()));
  // A satisfied wait is taken off the record inside PulseEvent, so the count
  // of still-blocked threads is exact as soon as PulseEvent returns.
  EXPECT_EQ(CountBlocked(tids), 1);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  ASSERT_TRUE(SetEvent(event.get()));  // Releases the other one.
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(released.load(), 2);
}

// Tests that SetEvent wakes a thread blocked on the event, and that what the
// setter wrote before SetEvent is visible to the woken thread.
TEST_F(EventTest, SetEventWakesBlockedWaiterWithItsWritesVisible) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  int payload = 0;  // Plain memory: ThreadSanitizer checks the ordering.
  int seen = -1;
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        DWORD r = WaitForSingleObject(event.get(), kJoinMs);
        if (r == WAIT_OBJECT_0) seen = payload;
        return r;
      },
      0, &tid);
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  payload = 42;
  ASSERT_TRUE(SetEvent(event.get()));
  DWORD code = 0;
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  ASSERT_TRUE(GetExitCodeThread(t, &code));
  CloseHandle(t);
  EXPECT_EQ(code, WAIT_OBJECT_0);
  EXPECT_EQ(seen, 42);
}

// Tests that any non-zero BOOL counts as TRUE for the reset mode and the
// initial state.
TEST_F(EventTest, NonZeroBoolsAreTrue) {
  ScopedHandle event(CreateEventW(nullptr, 2, -1, nullptr));
  ASSERT_TRUE(event);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);  // Manual reset.
}

// Tests that CreateEventExW maps CREATE_EVENT_MANUAL_RESET and
// CREATE_EVENT_INITIAL_SET to the reset mode and the initial state.
TEST_F(EventTest, CreateEventExFlagsSelectModeAndInitialState) {
  ScopedHandle plain(CreateEventExW(nullptr, nullptr, 0, EVENT_ALL_ACCESS));
  ScopedHandle auto_set(CreateEventExW(nullptr, nullptr, CREATE_EVENT_INITIAL_SET, SYNCHRONIZE));
  ScopedHandle manual_set(CreateEventExW(
      nullptr, nullptr, CREATE_EVENT_MANUAL_RESET | CREATE_EVENT_INITIAL_SET, EVENT_ALL_ACCESS));
  ScopedHandle manual(CreateEventExW(nullptr, nullptr, CREATE_EVENT_MANUAL_RESET, EVENT_ALL_ACCESS));
  ASSERT_TRUE(plain && auto_set && manual_set && manual);

  EXPECT_EQ(WaitForSingleObject(plain.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(auto_set.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(auto_set.get(), 0), WAIT_TIMEOUT);  // Auto-reset.
  EXPECT_EQ(WaitForSingleObject(manual_set.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(manual_set.get(), 0), WAIT_OBJECT_0);  // Manual.
  EXPECT_EQ(WaitForSingleObject(manual.get(), 0), WAIT_TIMEOUT);
  ASSERT_TRUE(SetEvent(manual.get()));
  EXPECT_EQ(WaitForSingleObject(manual.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(manual.get(), 0), WAIT_OBJECT_0);
}

// Tests that CreateEventExW rejects unknown flags with ERROR_INVALID_PARAMETER.
TEST_F(EventTest, CreateEventExRejectsUnknownFlags) {
  SetLastError(0);
  EXPECT_EQ(CreateEventExW(nullptr, nullptr, 0x4, EVENT_ALL_ACCESS), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests that creating a new named event sets the last error to ERROR_SUCCESS.
TEST_F(EventTest, CreatingNewNamedEventClearsLastError) {
  SetLastError(12345);
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, L"event_test.fresh"));
  ASSERT_TRUE(event);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
}

// Tests that a second create of a named event returns a new handle to the same
// object, with ERROR_ALREADY_EXISTS.
TEST_F(EventTest, SecondCreateOfNamedEventOpensSameObject) {
  ScopedHandle first(CreateEventW(nullptr, TRUE, FALSE, L"event_test.shared"));
  ASSERT_TRUE(first);
  SetLastError(0);
  ScopedHandle second(CreateEventW(nullptr, TRUE, FALSE, L"event_test.shared"));
  ASSERT_TRUE(second);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ALREADY_EXISTS));
  EXPECT_NE(first.get(), second.get());
  ASSERT_TRUE(SetEvent(first.get()));
  EXPECT_EQ(WaitForSingleObject(second.get(), 0), WAIT_OBJECT_0);
  ASSERT_TRUE(ResetEvent(second.get()));
  EXPECT_EQ(WaitForSingleObject(first.get(), 0), WAIT_TIMEOUT);
}

// Tests that opening an existing named event through CreateEventW ignores the
// new call's reset mode and initial state, as on Windows.
TEST_F(EventTest, SecondCreateIgnoresFlags) {
  ScopedHandle first(CreateEventW(nullptr, FALSE, FALSE, L"event_test.flags"));
  ScopedHandle second(CreateEventW(nullptr, TRUE, TRUE, L"event_test.flags"));
  ASSERT_TRUE(first && second);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ALREADY_EXISTS));
  EXPECT_EQ(WaitForSingleObject(second.get(), 0), WAIT_TIMEOUT);  // Not set by the second call.
  ASSERT_TRUE(SetEvent(second.get()));
  EXPECT_EQ(WaitForSingleObject(first.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(first.get(), 0), WAIT_TIMEOUT);  // Still auto-reset.
}

// Tests that an event name held by a mutex or a semaphore cannot be created as
// an event: NULL with ERROR_INVALID_HANDLE.
TEST_F(EventTest, NameUsedByAnotherKindFailsWithInvalidHandle) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, L"event_test.taken_by_mutex"));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 1, L"event_test.taken_by_semaphore"));
  ASSERT_TRUE(mutex && semaphore);
  SetLastError(0);
  EXPECT_EQ(CreateEventW(nullptr, FALSE, FALSE, L"event_test.taken_by_mutex"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(CreateEventW(nullptr, FALSE, FALSE, L"event_test.taken_by_semaphore"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that OpenEventW finds a named event and returns another handle to it.
TEST_F(EventTest, OpenEventFindsNamedEvent) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, L"event_test.open"));
  SetLastError(12345);
  ScopedHandle opened(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.open"));
  ASSERT_TRUE(opened);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  EXPECT_NE(opened.get(), event.get());
  ASSERT_TRUE(SetEvent(opened.get()));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
}

// Tests that OpenEventW of an unknown name fails with ERROR_FILE_NOT_FOUND.
TEST_F(EventTest, OpenEventOfUnknownNameFailsWithFileNotFound) {
  SetLastError(0);
  EXPECT_EQ(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.never_created"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
  SetLastError(0);
  EXPECT_EQ(OpenEventA(EVENT_ALL_ACCESS, FALSE, "event_test.never_created"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
}

// Tests that OpenEventW of a name held by another kind fails with
// ERROR_INVALID_HANDLE.
TEST_F(EventTest, OpenEventOfAnotherKindFailsWithInvalidHandle) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, L"event_test.open_mutex"));
  ASSERT_TRUE(mutex);
  SetLastError(0);
  EXPECT_EQ(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.open_mutex"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that OpenEventW/A with a null name fail with ERROR_INVALID_PARAMETER.
TEST_F(EventTest, OpenEventWithNullNameFailsWithInvalidParameter) {
  SetLastError(0);
  EXPECT_EQ(OpenEventW(EVENT_ALL_ACCESS, FALSE, nullptr), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  SetLastError(0);
  EXPECT_EQ(OpenEventA(EVENT_ALL_ACCESS, FALSE, nullptr), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests that a name lives while any handle to its event is open and disappears
// with the last one; the name can then be created afresh.
TEST_F(EventTest, NameDisappearsWhenLastHandleCloses) {
  HANDLE first = CreateEventW(nullptr, FALSE, TRUE, L"event_test.transient");
  HANDLE second = OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.transient");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(CloseHandle(first));
  ScopedHandle third(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.transient"));
  EXPECT_TRUE(third);
  third.reset();
  ASSERT_TRUE(CloseHandle(second));

  SetLastError(0);
  EXPECT_EQ(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.transient"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
  // A new object with the old name: not ERROR_ALREADY_EXISTS, and its own state.
  ScopedHandle fresh(CreateEventW(nullptr, FALSE, FALSE, L"event_test.transient"));
  ASSERT_TRUE(fresh);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  EXPECT_EQ(WaitForSingleObject(fresh.get(), 0), WAIT_TIMEOUT);
}

// Tests that event names are case-sensitive, as on Windows.
TEST_F(EventTest, NamesAreCaseSensitive) {
  ScopedHandle upper(CreateEventW(nullptr, TRUE, FALSE, L"event_test.Case"));
  ScopedHandle lower(CreateEventW(nullptr, TRUE, FALSE, L"event_test.case"));
  ASSERT_TRUE(upper && lower);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  ASSERT_TRUE(SetEvent(upper.get()));
  EXPECT_EQ(WaitForSingleObject(lower.get(), 0), WAIT_TIMEOUT);
}

// Tests that an empty name creates an unnamed event (two are distinct objects).
TEST_F(EventTest, EmptyNameCreatesUnnamedEvent) {
  ScopedHandle a(CreateEventW(nullptr, TRUE, FALSE, L""));
  ScopedHandle b(CreateEventW(nullptr, TRUE, FALSE, L""));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  ASSERT_TRUE(SetEvent(a.get()));
  EXPECT_EQ(WaitForSingleObject(b.get(), 0), WAIT_TIMEOUT);
}

// Tests that the A and W variants name the same objects: a UTF-8 name given to
// CreateEventA is found by OpenEventW with the same characters, and back.
TEST_F(EventTest, AnsiAndWideVariantsShareNames) {
  ScopedHandle by_a(CreateEventA(nullptr, TRUE, FALSE, "event_test.caf\xC3\xA9-\xE2\x82\xAC"));
  ASSERT_TRUE(by_a);
  ScopedHandle opened_w(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"event_test.caf\u00E9-\u20AC"));
  ASSERT_TRUE(opened_w);
  ASSERT_TRUE(SetEvent(opened_w.get()));
  EXPECT_EQ(WaitForSingleObject(by_a.get(), 0), WAIT_OBJECT_0);

  ScopedHandle by_w(CreateEventW(nullptr, TRUE, FALSE, L"event_test.\U0001F600"));
  ASSERT_TRUE(by_w);
  ScopedHandle opened_a(OpenEventA(EVENT_ALL_ACCESS, FALSE, "event_test.\xF0\x9F\x98\x80"));
  ASSERT_TRUE(opened_a);
  ScopedHandle again_a(CreateEventA(nullptr, TRUE, FALSE, "event_test.\xF0\x9F\x98\x80"));
  ASSERT_TRUE(again_a);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ALREADY_EXISTS));
  ASSERT_TRUE(SetEvent(again_a.get()));
  EXPECT_EQ(WaitForSingleObject(opened_a.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(by_w.get(), 0), WAIT_OBJECT_0);
}

// Tests that CreateEventA with a null name creates an unnamed event.
TEST_F(EventTest, CreateEventAWithNullNameCreatesUnnamedEvent) {
  ScopedHandle event(CreateEventA(nullptr, FALSE, TRUE, nullptr));
  ASSERT_TRUE(event);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that SetEvent, ResetEvent and PulseEvent refuse a handle to another
// kind of object with ERROR_INVALID_HANDLE, leaving that object alone.
TEST_F(EventTest, EventFunctionsRejectOtherKinds) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 5, nullptr));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  for (HANDLE h : {semaphore.get(), mutex.get(), GetCurrentThread(), GetCurrentProcess()}) {
    SetLastError(0);
    EXPECT_FALSE(SetEvent(h));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    SetLastError(0);
    EXPECT_FALSE(ResetEvent(h));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    SetLastError(0);
    EXPECT_FALSE(PulseEvent(h));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
}

}  // namespace
}  // namespace apartments::internal
