// Semaphores: counts, ReleaseSemaphore, ERROR_TOO_MANY_POSTS, parameters, names.
#include <atomic>
#include <cstdint>
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

using SemaphoreTest = ktest::KernelTest;

// LONG is 32 bits (win32_types.h); <climits>' kLongMax is the 64-bit long's.
constexpr LONG kLongMax = INT32_MAX;
constexpr LONG kLongMin = INT32_MIN;

// Takes every unit currently available without blocking; returns how many.
int Drain(HANDLE semaphore) {
  int taken = 0;
  while (WaitForSingleObject(semaphore, 0) == WAIT_OBJECT_0) ++taken;
  return taken;
}

// Tests that a semaphore's initial count is the number of waits it satisfies.
TEST_F(SemaphoreTest, InitialCountSatisfiesThatManyWaits) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 3, 10, nullptr));
  ASSERT_TRUE(semaphore);
  EXPECT_EQ(Drain(semaphore.get()), 3);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
}

// Tests that ReleaseSemaphore adds its count and reports the previous count.
TEST_F(SemaphoreTest, ReleaseReportsPreviousCount) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 5, nullptr));
  LONG previous = -1;
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 2, &previous));
  EXPECT_EQ(previous, 0);
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, &previous));
  EXPECT_EQ(previous, 2);
  ASSERT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_OBJECT_0);
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, &previous));
  EXPECT_EQ(previous, 2);
  EXPECT_EQ(Drain(semaphore.get()), 3);
}

// Tests that ReleaseSemaphore accepts a null previous-count pointer.
TEST_F(SemaphoreTest, ReleaseAcceptsNullPreviousCount) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 5, nullptr));
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 4, nullptr));
  EXPECT_EQ(Drain(semaphore.get()), 4);
}

// Tests that a release past the maximum fails with ERROR_TOO_MANY_POSTS and
// leaves the count (and the previous-count output) unchanged.
TEST_F(SemaphoreTest, ReleasePastMaximumFailsAndLeavesCountUnchanged) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 3, 5, nullptr));
  LONG previous = -7;
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), 3, &previous));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TOO_MANY_POSTS));
  EXPECT_EQ(previous, -7);
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 2, &previous));  // Exactly to the maximum.
  EXPECT_EQ(previous, 3);
  EXPECT_EQ(Drain(semaphore.get()), 5);
}

// Tests that the maximum check does not overflow near kLongMax.
TEST_F(SemaphoreTest, MaximumCheckDoesNotOverflow) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, kLongMax - 1, kLongMax, nullptr));
  ASSERT_TRUE(semaphore);
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), kLongMax, nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TOO_MANY_POSTS));
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), 2, nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TOO_MANY_POSTS));
  LONG previous = 0;
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, &previous));
  EXPECT_EQ(previous, kLongMax - 1);
}

// Tests that a release count of zero or less fails with ERROR_INVALID_PARAMETER
// and changes nothing.
TEST_F(SemaphoreTest, NonPositiveReleaseCountIsInvalid) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 1, 5, nullptr));
  for (LONG count : {0, -1, kLongMin}) {
    SetLastError(0);
    EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), count, nullptr)) << count;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER)) << count;
  }
  EXPECT_EQ(Drain(semaphore.get()), 1);
}

// Tests that CreateSemaphore rejects counts outside 0 <= initial <= maximum,
// maximum > 0, with ERROR_INVALID_PARAMETER (both variants).
TEST_F(SemaphoreTest, InvalidCountsAreRejected) {
  struct Case {
    LONG initial, maximum;
  };
  for (Case c : {Case{0, 0}, Case{0, -1}, Case{-1, 5}, Case{6, 5}, Case{1, 0}, Case{kLongMin, 1}}) {
    SetLastError(0);
    EXPECT_EQ(CreateSemaphoreW(nullptr, c.initial, c.maximum, nullptr), nullptr)
        << c.initial << "/" << c.maximum;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
    SetLastError(0);
    EXPECT_EQ(CreateSemaphoreA(nullptr, c.initial, c.maximum, "semaphore_test.invalid"), nullptr);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  }
  // The rejected named create did not leave the name behind.
  SetLastError(0);
  EXPECT_EQ(OpenSemaphoreA(SEMAPHORE_ALL_ACCESS, FALSE, "semaphore_test.invalid"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
}

// Tests that initial == maximum is a valid, full semaphore.
TEST_F(SemaphoreTest, InitialEqualToMaximumIsFull) {
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 2, 2, nullptr));
  ASSERT_TRUE(semaphore);
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(semaphore.get(), 1, nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TOO_MANY_POSTS));
  EXPECT_EQ(Drain(semaphore.get()), 2);
}

// Tests that a named semaphore is opened by a second create (which ignores its
// counts, with ERROR_ALREADY_EXISTS) and by OpenSemaphoreW/A; other kinds'
// names and unknown names fail.
TEST_F(SemaphoreTest, NamedSemaphoreCreateAndOpen) {
  ScopedHandle first(CreateSemaphoreW(nullptr, 1, 2, L"semaphore_test.named"));
  ASSERT_TRUE(first);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  ScopedHandle second(CreateSemaphoreA(nullptr, 0, 100, "semaphore_test.named"));
  ASSERT_TRUE(second);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ALREADY_EXISTS));
  ScopedHandle opened_w(OpenSemaphoreW(SEMAPHORE_ALL_ACCESS, FALSE, L"semaphore_test.named"));
  ScopedHandle opened_a(OpenSemaphoreA(SEMAPHORE_ALL_ACCESS, FALSE, "semaphore_test.named"));
  ASSERT_TRUE(opened_w && opened_a);
  LONG previous = -1;
  SetLastError(0);
  EXPECT_FALSE(ReleaseSemaphore(opened_w.get(), 2, &previous));  // Maximum is still 2.
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TOO_MANY_POSTS));
  ASSERT_TRUE(ReleaseSemaphore(opened_a.get(), 1, &previous));
  EXPECT_EQ(previous, 1);
  EXPECT_EQ(Drain(second.get()), 2);

  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, L"semaphore_test.an_event"));
  SetLastError(0);
  EXPECT_EQ(OpenSemaphoreW(SEMAPHORE_ALL_ACCESS, FALSE, L"semaphore_test.an_event"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(CreateSemaphoreW(nullptr, 0, 1, L"semaphore_test.an_event"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(OpenSemaphoreW(SEMAPHORE_ALL_ACCESS, FALSE, L"semaphore_test.absent"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
}

// Tests that ReleaseSemaphore refuses a handle to another kind of object.
TEST_F(SemaphoreTest, ReleaseRejectsOtherKinds) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  for (HANDLE h : {event.get(), mutex.get(), GetCurrentThread(), GetCurrentProcess()}) {
    SetLastError(0);
    EXPECT_FALSE(ReleaseSemaphore(h, 1, nullptr));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that releasing n units wakes exactly n of the blocked waiters.
TEST_F(SemaphoreTest, ReleaseWakesExactlyThatManyWaiters) {
  constexpr int kWaiters = 3;
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 10, nullptr));
  std::atomic<int> acquired{0};
  std::vector<HANDLE> threads;
  std::vector<DWORD> tids(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    HANDLE t = StartThread(
        [&] {
          if (WaitForSingleObject(semaphore.get(), kJoinMs) == WAIT_OBJECT_0) acquired.fetch_add(1);
          return DWORD{0};
        },
        0, &tids[i]);
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (DWORD tid : tids) ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 2, nullptr));
  EXPECT_EQ(CountBlocked(tids), 1);  // Satisfied waits leave the record inside the release.
  ASSERT_TRUE(ReleaseSemaphore(semaphore.get(), 1, nullptr));
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(acquired.load(), kWaiters);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
}

}  // namespace
}  // namespace apartments::internal
