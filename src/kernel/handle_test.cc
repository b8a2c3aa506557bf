// Handles: CloseHandle, stale/forged/pseudo handles, DuplicateHandle, closing
// a handle that another thread waits on, the open-handle count.
#include <atomic>
#include <mutex>
#include <vector>

#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::Bits;
using ktest::FromBits;
using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::ScopedHandle;
using ktest::StartThread;
using ktest::WaitUntilBlocked;

using HandleTest = ktest::KernelTest;

BOOL Duplicate(HANDLE source, HANDLE* target, DWORD options = DUPLICATE_SAME_ACCESS) {
  return DuplicateHandle(GetCurrentProcess(), source, GetCurrentProcess(), target, 0, FALSE,
                         options);
}

bool IsOpen(HANDLE handle) { return static_cast<bool>(ResolveHandle(handle)); }

// Tests that closing a handle twice fails the second time with ERROR_INVALID_HANDLE.
TEST_F(HandleTest, DoubleCloseFails) {
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  ASSERT_NE(event, nullptr);
  EXPECT_TRUE(CloseHandle(event));
  SetLastError(0);
  EXPECT_FALSE(CloseHandle(event));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that every function refuses a closed handle with ERROR_INVALID_HANDLE.
TEST_F(HandleTest, ClosedHandleIsRejectedEverywhere) {
  HANDLE event = CreateEventW(nullptr, TRUE, TRUE, nullptr);
  ASSERT_TRUE(CloseHandle(event));
  SetLastError(0);
  EXPECT_FALSE(SetEvent(event));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(WaitForSingleObject(event, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  HANDLE copy = nullptr;
  SetLastError(0);
  EXPECT_FALSE(Duplicate(event, &copy));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that a stale handle stays invalid after its table slot is reused by a
// new object, and cannot reach or close that new object.
TEST_F(HandleTest, StaleHandleStaysInvalidAfterSlotReuse) {
  HANDLE stale = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ASSERT_NE(stale, nullptr);
  ASSERT_TRUE(CloseHandle(stale));
  // Create and close events until one lands in the stale handle's slot (freed
  // slots are reused first in, first out, behind 1024 others).
  ScopedHandle kept;
  HANDLE reused = nullptr;
  for (int i = 0; i < 1 << 20 && reused == nullptr; ++i) {
    ScopedHandle h(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    ASSERT_TRUE(h);
    // The index is bits 19..2 (handle_table.cc).
    if ((Bits(h.get()) & 0xFFFFCu) == (Bits(stale) & 0xFFFFCu)) {
      kept = std::move(h);
      reused = kept.get();
    }
  }
  ASSERT_NE(reused, nullptr) << "the slot was never reused";
  EXPECT_NE(reused, stale);  // Same slot, new generation.
  SetLastError(0);
  EXPECT_FALSE(SetEvent(stale));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  EXPECT_EQ(WaitForSingleObject(reused, 0), WAIT_TIMEOUT);  // Untouched.
  EXPECT_FALSE(CloseHandle(stale));
  EXPECT_TRUE(IsOpen(reused));
  EXPECT_TRUE(SetEvent(reused));
}

// Tests that handle values fit in 32 bits, as on 64-bit Windows: truncated
// with HandleToULong and widened back with ULongToHandle, a handle is
// unchanged and names the same object (sync.c test_WaitForSingleObject's
// modify_handle does this).
TEST_F(HandleTest, HandleSurvivesTruncationTo32Bits) {
  std::vector<ScopedHandle> events;
  for (int i = 0; i < 64; ++i) {
    events.emplace_back(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    ASSERT_TRUE(events.back());
    EXPECT_LT(Bits(events.back().get()), std::uintptr_t{0x80000000u}) << events.back().get();
    EXPECT_EQ(ULongToHandle(HandleToULong(events.back().get())), events.back().get());
    EXPECT_EQ(LongToHandle(HandleToLong(events.back().get())), events.back().get());
  }
  HANDLE widened = ULongToHandle(HandleToULong(events.back().get()));
  EXPECT_TRUE(SetEvent(widened));
  EXPECT_EQ(WaitForSingleObject(events.back().get(), 0), WAIT_OBJECT_0);
}

// Tests that a 32-bit handle value with its low two tag bits set, widened
// back to a HANDLE, still names the object, as sync.c:1265-1297 checks on
// Windows (a wait times out, then succeeds once the event is set).
TEST_F(HandleTest, TruncatedHandleWithTagBitsWorks) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ASSERT_TRUE(event);
  for (ULONG tag : {1u, 2u, 3u}) {
    HANDLE tagged = ULongToHandle(HandleToULong(event.get()) | tag);
    EXPECT_EQ(WaitForSingleObject(tagged, 0), WAIT_TIMEOUT) << tag;
  }
  EXPECT_TRUE(SetEvent(ULongToHandle(HandleToULong(event.get()) | 3)));
  EXPECT_EQ(WaitForSingleObject(ULongToHandle(HandleToULong(event.get()) | 2), 0), WAIT_OBJECT_0);
  EXPECT_TRUE(ResetEvent(LongToHandle(HandleToLong(event.get()) | 1)));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
}

// Tests that the pseudo-handles survive the signed 32-bit round trip, as
// LongToHandle sign-extends on Windows.
TEST_F(HandleTest, PseudoHandlesSurviveSignedTruncation) {
  EXPECT_EQ(LongToHandle(HandleToLong(GetCurrentProcess())), GetCurrentProcess());
  EXPECT_EQ(LongToHandle(HandleToLong(GetCurrentThread())), GetCurrentThread());
}

// Tests that a closed handle's value does not come back soon: 8192 create and
// close pairs never reissue it (with 11 generation bits and last-in first-out
// reuse it came back after 2047).
TEST_F(HandleTest, ClosedValueIsNotReissuedSoon) {
  HANDLE old = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(CloseHandle(old));
  for (int i = 0; i < 8192; ++i) {
    HANDLE h = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    ASSERT_NE(h, nullptr);
    ASSERT_NE(h, old) << "after " << i << " pairs";
    ASSERT_TRUE(CloseHandle(h));
  }
}

// Tests that NULL is never a valid handle.
TEST_F(HandleTest, NullHandleIsInvalid) {
  SetLastError(0);
  EXPECT_FALSE(CloseHandle(nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_EQ(WaitForSingleObject(nullptr, 0), WAIT_FAILED);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  SetLastError(0);
  EXPECT_FALSE(SetEvent(nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that INVALID_HANDLE_VALUE is the process pseudo-handle, as on Windows:
// closing it is a successful no-op, waiting on it times out, and it is not an
// event.
TEST_F(HandleTest, InvalidHandleValueIsTheProcessPseudoHandle) {
  EXPECT_EQ(INVALID_HANDLE_VALUE, GetCurrentProcess());
  EXPECT_TRUE(CloseHandle(INVALID_HANDLE_VALUE));
  EXPECT_EQ(WaitForSingleObject(INVALID_HANDLE_VALUE, 20), WAIT_TIMEOUT);
  SetLastError(0);
  EXPECT_FALSE(SetEvent(INVALID_HANDLE_VALUE));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
}

// Tests that closing the pseudo-handles succeeds and leaves them usable.
TEST_F(HandleTest, ClosingPseudoHandlesIsANoOp) {
  EXPECT_TRUE(CloseHandle(GetCurrentThread()));
  EXPECT_TRUE(CloseHandle(GetCurrentProcess()));
  EXPECT_EQ(GetThreadId(GetCurrentThread()), GetCurrentThreadId());
  HANDLE copy = nullptr;
  ASSERT_TRUE(Duplicate(GetCurrentThread(), &copy));
  EXPECT_TRUE(CloseHandle(copy));
}

// Tests that forged values (unused slots, huge indexes, a wrong generation,
// tagged values of those) are rejected with ERROR_INVALID_HANDLE.
TEST_F(HandleTest, ForgedValuesAreRejected) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  std::uintptr_t real = Bits(event.get());
  std::vector<HANDLE> forged = {
      FromBits(real + 4),                          // The next index.
      FromBits((real ^ (std::uintptr_t{1} << 63)) | 3),  // Wrong generation, tagged.
      FromBits(1),                                 // NULL, tagged.
      FromBits(3),
      FromBits(real ^ (std::uintptr_t{1} << 63)),  // Wrong generation.
      FromBits(real + (std::uintptr_t{0x4000} << 32)),
      FromBits(real & 0xFFFFFu),                   // Generation 0 (bits 30..20).
      FromBits(std::uintptr_t{1} << 20),           // Index 0.
      FromBits(real | (std::uintptr_t{1} << 31)),  // Bit 31, never issued.
      FromBits(real | (std::uintptr_t{1} << 32)),  // High bits, never issued.
      FromBits((std::uintptr_t{1} << 20) | 0xFFFFCu),  // Index beyond the table.
      FromBits(4),
      FromBits(0x1000),
      FromBits(~std::uintptr_t{0} - 3),           // (HANDLE)-4.
  };
  for (HANDLE h : forged) {
    ASSERT_FALSE(IsOpen(h)) << h;
    SetLastError(0);
    EXPECT_FALSE(SetEvent(h)) << h;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE)) << h;
    SetLastError(0);
    EXPECT_FALSE(CloseHandle(h)) << h;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE)) << h;
  }
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  EXPECT_TRUE(IsOpen(event.get()));
}

// Tests that each created or duplicated handle adds one to the open-handle
// count and each close removes one.
TEST_F(HandleTest, OpenHandleCountTracksCreateDuplicateClose) {
  std::size_t start = OpenHandleCountForTesting();
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  EXPECT_EQ(OpenHandleCountForTesting(), start + 1);
  HANDLE copy = nullptr;
  ASSERT_TRUE(Duplicate(event, &copy));
  EXPECT_EQ(OpenHandleCountForTesting(), start + 2);
  ASSERT_TRUE(CloseHandle(event));
  EXPECT_EQ(OpenHandleCountForTesting(), start + 1);
  EXPECT_FALSE(CloseHandle(event));
  EXPECT_EQ(OpenHandleCountForTesting(), start + 1);
  ASSERT_TRUE(CloseHandle(copy));
  EXPECT_EQ(OpenHandleCountForTesting(), start);
}

// Tests that DUPLICATE_SAME_ACCESS gives a second, distinct handle to the same
// object, which outlives the closing of the source.
TEST_F(HandleTest, DuplicateGivesSecondHandleToSameObject) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE copy = nullptr;
  SetLastError(12345);
  ASSERT_TRUE(Duplicate(event, &copy));
  ScopedHandle owned_copy(copy);
  EXPECT_NE(copy, event);
  EXPECT_EQ(Bits(copy) % 4, 0u);
  ASSERT_TRUE(SetEvent(event));
  EXPECT_EQ(WaitForSingleObject(copy, 0), WAIT_OBJECT_0);
  ASSERT_TRUE(CloseHandle(event));
  ASSERT_TRUE(ResetEvent(copy));
  EXPECT_EQ(WaitForSingleObject(copy, 0), WAIT_TIMEOUT);
}

// Tests that DUPLICATE_CLOSE_SOURCE closes the source and leaves the duplicate.
TEST_F(HandleTest, DuplicateCloseSourceClosesSource) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE copy = nullptr;
  ASSERT_TRUE(Duplicate(event, &copy, DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
  ScopedHandle owned_copy(copy);
  EXPECT_FALSE(IsOpen(event));
  EXPECT_FALSE(CloseHandle(event));
  EXPECT_TRUE(SetEvent(copy));
}

// Tests that DUPLICATE_CLOSE_SOURCE with a null target closes the source and
// succeeds (the Windows idiom for closing a handle).
TEST_F(HandleTest, DuplicateCloseSourceWithNullTargetJustCloses) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  EXPECT_TRUE(Duplicate(event, nullptr, DUPLICATE_CLOSE_SOURCE));
  EXPECT_FALSE(IsOpen(event));
}

// Tests that moving the only handle of a named object with
// DUPLICATE_CLOSE_SOURCE keeps its name. Regression guard: with names tied to
// open handles, closing the source before making the duplicate dropped the
// count to zero and removed the name.
TEST_F(HandleTest, DuplicateCloseSourceKeepsName) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, L"handle_test.moved");
  ASSERT_NE(event, nullptr);
  HANDLE moved = nullptr;
  ASSERT_TRUE(Duplicate(event, &moved, DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
  ScopedHandle owned_moved(moved);
  ScopedHandle reopened(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"handle_test.moved"));
  ASSERT_TRUE(reopened);
  ASSERT_TRUE(SetEvent(reopened.get()));
  EXPECT_EQ(WaitForSingleObject(moved, 0), WAIT_OBJECT_0);
}

// Tests that a null target without DUPLICATE_CLOSE_SOURCE fails with
// ERROR_INVALID_PARAMETER and leaves the source open.
TEST_F(HandleTest, DuplicateWithNullTargetIsInvalid) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  SetLastError(0);
  EXPECT_FALSE(Duplicate(event.get(), nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  EXPECT_TRUE(IsOpen(event.get()));
}

// Tests that DuplicateHandle ignores option bits it does not know, as Windows
// and Wine do: the duplicate is made. Regression: it failed with
// ERROR_INVALID_PARAMETER and left the source open under
// DUPLICATE_CLOSE_SOURCE, against its header.
TEST_F(HandleTest, DuplicateIgnoresUnknownOptions) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE copy = nullptr;
  ASSERT_TRUE(Duplicate(event.get(), &copy, DUPLICATE_SAME_ACCESS | 0x8 | 0x100));
  ScopedHandle owned_copy(copy);
  EXPECT_TRUE(SetEvent(copy));
  EXPECT_TRUE(IsOpen(event.get()));
}

// Tests that DUPLICATE_CLOSE_SOURCE with an unknown option bit closes the
// source (and duplicates it).
TEST_F(HandleTest, DuplicateCloseSourceWithUnknownOptionClosesSource) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE copy = nullptr;
  ASSERT_TRUE(Duplicate(event, &copy, DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE | 0x100));
  ScopedHandle owned_copy(copy);
  EXPECT_FALSE(IsOpen(event));
  EXPECT_TRUE(SetEvent(copy));
}

// Tests that DUPLICATE_CLOSE_SOURCE closes the source even when the
// duplication fails (a bad target process handle, an access the object does
// not have), as Windows documents.
TEST_F(HandleTest, DuplicateCloseSourceClosesSourceWhenDuplicationFails) {
  HANDLE first = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE copy = nullptr;
  SetLastError(0);
  EXPECT_FALSE(DuplicateHandle(GetCurrentProcess(), first, nullptr, &copy, 0, FALSE,
                               DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  EXPECT_FALSE(IsOpen(first));
  HANDLE second = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  SetLastError(0);
  EXPECT_FALSE(DuplicateHandle(GetCurrentProcess(), second, GetCurrentProcess(), &copy,
                               THREAD_QUERY_INFORMATION, FALSE, DUPLICATE_CLOSE_SOURCE));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ACCESS_DENIED));
  EXPECT_FALSE(IsOpen(second));
}

// Tests that a bad source process handle closes nothing, even with
// DUPLICATE_CLOSE_SOURCE: the source handle belongs to that process.
TEST_F(HandleTest, DuplicateWithBadSourceProcessClosesNothing) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE copy = nullptr;
  SetLastError(0);
  EXPECT_FALSE(DuplicateHandle(nullptr, event.get(), GetCurrentProcess(), &copy, 0, FALSE,
                               DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  EXPECT_TRUE(IsOpen(event.get()));
}

// Tests that the two low bits of a handle are tag bits: a valid handle with
// them set names its object for waits, SetEvent, DuplicateHandle (whose
// result is untagged) and CloseHandle, as on Windows.
TEST_F(HandleTest, TaggedHandleNamesItsObject) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ASSERT_NE(event, nullptr);
  for (std::uintptr_t tag = 1; tag <= 3; ++tag) {
    HANDLE tagged = FromBits(Bits(event) | tag);
    SetLastError(12345);
    EXPECT_EQ(WaitForSingleObject(tagged, 0), WAIT_TIMEOUT) << tag;
    EXPECT_TRUE(SetEvent(tagged)) << tag;
    EXPECT_EQ(WaitForMultipleObjects(1, &tagged, TRUE, 0), WAIT_OBJECT_0) << tag;
    EXPECT_TRUE(ResetEvent(tagged)) << tag;
    EXPECT_EQ(GetLastError(), 12345u) << tag;  // Success leaves the last error alone.
    HANDLE copy = nullptr;
    ASSERT_TRUE(Duplicate(tagged, &copy)) << tag;
    EXPECT_EQ(Bits(copy) & 3, 0u) << tag;
    EXPECT_TRUE(CloseHandle(copy)) << tag;
  }
  EXPECT_TRUE(CloseHandle(FromBits(Bits(event) | 2)));
  SetLastError(0);
  EXPECT_FALSE(CloseHandle(event));  // The tagged close closed it.
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  EXPECT_FALSE(SetEvent(FromBits(Bits(event) | 1)));
}

// Tests that the pseudo-handles still work as themselves (waits time out on
// the live thread and process; the thread one duplicates into a thread
// handle), and that values next to them are not handles.
TEST_F(HandleTest, PseudoHandlesStillWork) {
  EXPECT_EQ(WaitForSingleObject(GetCurrentProcess(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(GetCurrentThread(), 0), WAIT_TIMEOUT);
  HANDLE thread = nullptr;
  ASSERT_TRUE(Duplicate(GetCurrentThread(), &thread));
  ScopedHandle owned_thread(thread);
  EXPECT_EQ(GetThreadId(thread), GetCurrentThreadId());
  for (std::uintptr_t minus : {3u, 4u}) {
    SetLastError(0);
    EXPECT_EQ(WaitForSingleObject(FromBits(~std::uintptr_t{0} - minus + 1), 0), WAIT_FAILED);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
}

// Tests that DuplicateHandle fails with ERROR_INVALID_HANDLE when a process
// handle is not the current process (NULL, an event, a thread, a closed
// handle), and duplicates nothing.
TEST_F(HandleTest, DuplicateRejectsInvalidProcessHandles) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE closed = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ASSERT_TRUE(CloseHandle(closed));
  std::size_t before = OpenHandleCountForTesting();
  for (HANDLE process : {static_cast<HANDLE>(nullptr), event.get(), GetCurrentThread(), closed}) {
    HANDLE copy = nullptr;
    SetLastError(0);
    EXPECT_FALSE(DuplicateHandle(process, event.get(), GetCurrentProcess(), &copy, 0, FALSE,
                                 DUPLICATE_SAME_ACCESS));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    SetLastError(0);
    EXPECT_FALSE(DuplicateHandle(GetCurrentProcess(), event.get(), process, &copy, 0, FALSE,
                                 DUPLICATE_SAME_ACCESS));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
  EXPECT_EQ(OpenHandleCountForTesting(), before);
  EXPECT_TRUE(IsOpen(event.get()));
}

// Tests that a real handle to the current process (a duplicate of
// GetCurrentProcess()) works as a DuplicateHandle process handle, and waiting
// on it times out like the pseudo-handle.
TEST_F(HandleTest, DuplicatedProcessHandleWorksAsProcessHandle) {
  HANDLE process = nullptr;
  ASSERT_TRUE(Duplicate(GetCurrentProcess(), &process));
  ScopedHandle owned_process(process);
  EXPECT_NE(process, GetCurrentProcess());
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE copy = nullptr;
  ASSERT_TRUE(DuplicateHandle(process, event.get(), process, &copy, 0, FALSE,
                              DUPLICATE_SAME_ACCESS));
  ScopedHandle owned_copy(copy);
  ASSERT_TRUE(SetEvent(copy));
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(process, 10), WAIT_TIMEOUT);
}

// Tests that closing the handle a thread is waiting on does not break its
// wait: the waiter still wakes when the object is signaled through another
// handle.
TEST_F(HandleTest, ClosingHandleBeingWaitedOnKeepsWaitWorking) {
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  HANDLE other = nullptr;
  ASSERT_TRUE(Duplicate(event, &other));
  ScopedHandle owned_other(other);
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&, event] {
        result.store(WaitForSingleObject(event, kJoinMs));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(CloseHandle(event));
  ASSERT_TRUE(SetEvent(other));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
}

// Tests that closing the only handle to an object a thread waits on keeps the
// object alive until that wait ends (here by timing out), without harm.
TEST_F(HandleTest, ClosingOnlyHandleBeingWaitedOnKeepsObjectAlive) {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&, event] {
        result.store(WaitForSingleObject(event, 100));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(CloseHandle(event));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_TIMEOUT);
}

// Tests that closing the last handle of a named event a thread is waiting on
// removes the name (as on Windows) while the wait goes on: a new event made
// with that name is a different object and does not wake the waiter.
// Regression: names lived as long as the object, so the waiter's reference
// kept the old name, and the "new" event was the old one.
TEST_F(HandleTest, ClosingLastHandleOfWaitedNamedEventRemovesName) {
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, L"handle_test.waited");
  ASSERT_NE(event, nullptr);
  std::atomic<DWORD> result{WAIT_FAILED};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&, event] {
        result.store(WaitForSingleObject(event, 200));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(WaitUntilBlocked(tid));
  ASSERT_TRUE(CloseHandle(event));
  SetLastError(0);
  EXPECT_EQ(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"handle_test.waited"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
  ScopedHandle fresh(CreateEventW(nullptr, FALSE, FALSE, L"handle_test.waited"));
  ASSERT_TRUE(fresh);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SUCCESS));
  ASSERT_TRUE(SetEvent(fresh.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(result.load(), WAIT_TIMEOUT);  // The old object was never signaled.
  EXPECT_EQ(WaitForSingleObject(fresh.get(), 0), WAIT_OBJECT_0);
}

// Tests that when several threads close the same handle at once, exactly one
// close succeeds and the others fail with ERROR_INVALID_HANDLE.
TEST_F(HandleTest, ConcurrentClosesOfOneHandleSucceedOnce) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::vector<HANDLE> handles(kRounds);
  for (HANDLE& h : handles) {
    h = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    ASSERT_NE(h, nullptr);
  }
  std::atomic<int> successes{0};
  std::atomic<int> wrong_errors{0};
  std::vector<HANDLE> threads;
  for (int i = 0; i < kThreads; ++i) {
    HANDLE t = StartThread([&] {
      for (HANDLE h : handles) {
        if (CloseHandle(h)) {
          successes.fetch_add(1);
        } else if (GetLastError() != static_cast<DWORD>(ERROR_INVALID_HANDLE)) {
          wrong_errors.fetch_add(1);
        }
      }
      return DWORD{0};
    });
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  for (HANDLE t : threads) ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(successes.load(), kRounds);
  EXPECT_EQ(wrong_errors.load(), 0);
}

// Tests that using a handle while another thread closes it either works on the
// live object or fails cleanly with ERROR_INVALID_HANDLE: never a crash, never
// a leak.
TEST_F(HandleTest, UseRacingCloseIsSafe) {
  constexpr int kRounds = 300;
  std::atomic<HANDLE> current{nullptr};
  std::atomic<bool> stop{false};
  std::atomic<int> wrong_errors{0};
  HANDLE user = StartThread([&] {
    while (!stop.load()) {
      HANDLE h = current.load();
      if (h == nullptr) continue;
      if (!SetEvent(h) && GetLastError() != static_cast<DWORD>(ERROR_INVALID_HANDLE)) {
        wrong_errors.fetch_add(1);
      }
      DWORD r = WaitForSingleObject(h, 0);
      if (r != WAIT_OBJECT_0 && r != WAIT_TIMEOUT &&
          !(r == WAIT_FAILED && GetLastError() == static_cast<DWORD>(ERROR_INVALID_HANDLE))) {
        wrong_errors.fetch_add(1);
      }
    }
    return DWORD{0};
  });
  ASSERT_NE(user, nullptr);
  for (int i = 0; i < kRounds; ++i) {
    HANDLE h = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    ASSERT_NE(h, nullptr);
    current.store(h);
    Sleep(0);
    ASSERT_TRUE(CloseHandle(h));
  }
  stop.store(true);
  ASSERT_TRUE(JoinThread(user));
  EXPECT_EQ(wrong_errors.load(), 0);
}

// Tests that a full handle table (1,048,575 handles) fails every handle-making
// call with ERROR_NO_SYSTEM_RESOURCES and leaves nothing half-made: a new
// named object leaves no name behind, an existing name survives, a failed
// DUPLICATE_CLOSE_SOURCE still closes its source (as on Windows), a failed
// CreateThread starts nothing; and the table works again once handles close.
TEST_F(HandleTest, FullTableFailsCleanly) {
  ScopedHandle event(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle named(CreateEventW(nullptr, TRUE, FALSE, L"handle_test.full.existing"));
  ASSERT_TRUE(event && named);
  std::vector<HANDLE> filler;
  filler.reserve(std::size_t{1} << 20);
  for (;;) {
    HANDLE copy = nullptr;
    if (!Duplicate(event.get(), &copy)) break;
    filler.push_back(copy);
    ASSERT_LT(filler.size(), std::size_t{1} << 21) << "the table never filled";
  }
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NO_SYSTEM_RESOURCES));
  auto expect_no_resources = [](HANDLE h, const char* what) {
    DWORD error = GetLastError();
    EXPECT_EQ(h, nullptr) << what;
    EXPECT_EQ(error, static_cast<DWORD>(ERROR_NO_SYSTEM_RESOURCES)) << what;
    if (h != nullptr) CloseHandle(h);
  };
  expect_no_resources(CreateEventW(nullptr, FALSE, FALSE, nullptr), "CreateEventW");
  expect_no_resources(CreateEventW(nullptr, FALSE, FALSE, L"handle_test.full.new"),
                      "CreateEventW(new name)");
  expect_no_resources(CreateEventW(nullptr, FALSE, FALSE, L"handle_test.full.existing"),
                      "CreateEventW(existing name)");
  expect_no_resources(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"handle_test.full.existing"),
                      "OpenEventW");
  expect_no_resources(CreateMutexW(nullptr, TRUE, nullptr), "CreateMutexW");
  expect_no_resources(CreateMutexW(nullptr, TRUE, L"handle_test.full.mutex"), "CreateMutexW(name)");
  expect_no_resources(CreateSemaphoreW(nullptr, 0, 1, nullptr), "CreateSemaphoreW");
  std::atomic<bool> ran{false};
  expect_no_resources(CreateThread(
                          nullptr, 0,
                          [](LPVOID p) -> DWORD {
                            static_cast<std::atomic<bool>*>(p)->store(true);
                            return 0;
                          },
                          &ran, 0, nullptr),
                      "CreateThread");
  HANDLE copy = reinterpret_cast<HANDLE>(0x4);
  SetLastError(0);
  EXPECT_FALSE(Duplicate(GetCurrentThread(), &copy));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NO_SYSTEM_RESOURCES));
  // DUPLICATE_CLOSE_SOURCE closes the source even though the duplicate fails.
  HANDLE source = filler.back();
  filler.pop_back();
  SetLastError(0);
  EXPECT_FALSE(Duplicate(source, &copy, DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NO_SYSTEM_RESOURCES));
  EXPECT_FALSE(IsOpen(source));

  // One slot is free again: the failed named creates left no name behind,
  // and the existing name still works.
  SetLastError(0);
  EXPECT_EQ(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"handle_test.full.new"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
  SetLastError(0);
  EXPECT_EQ(OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"handle_test.full.mutex"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_FILE_NOT_FOUND));
  ScopedHandle reopened(OpenEventW(EVENT_ALL_ACCESS, FALSE, L"handle_test.full.existing"));
  EXPECT_TRUE(reopened);
  reopened.reset();

  for (HANDLE h : filler) ASSERT_TRUE(CloseHandle(h));
  EXPECT_FALSE(ran.load());
  {
    // The failed CreateMutexW(TRUE) calls left this thread owning nothing.
    KernelThreadData& data = CurrentKernelData();
    std::lock_guard lock(KernelLock());
    EXPECT_EQ(data.owned_head, nullptr);
  }
  HANDLE t = StartThread([] { return DWORD{0}; });
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(JoinThread(t));
}

}  // namespace
}  // namespace apartments::internal
