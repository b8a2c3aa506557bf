// Tests of the handle history and the last error explanations built on it:
// who made a handle, who closed it (twice), forged values, the ring's bound,
// and a stress of creates, closes and failing waits on many threads.
#include "kernel/handle_history.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/last_error.h"
#include "apartments/win32.h"
#include "kernel/kernel_test_util.h"

namespace apartments::internal {
namespace {

using ktest::Bits;
using ktest::FromBits;
using ktest::JoinThread;
using ktest::kJoinMs;
using ktest::KernelTest;
using ktest::ScopedHandle;
using ktest::StartThread;

using HandleHistoryTest = KernelTest;

std::string Thread(DWORD tid, const char* name) {
  return "thread " + std::to_string(tid) + " '" + name + "'";
}

// A thread that runs `body` once told to, then stays alive (so its name can
// still be read) until released; every step bounded.
class StepThread {
 public:
  StepThread(const wchar_t* name, std::function<void()> body)
      : go_(CreateEventW(nullptr, FALSE, FALSE, nullptr)),
        done_(CreateEventW(nullptr, FALSE, FALSE, nullptr)),
        release_(CreateEventW(nullptr, TRUE, FALSE, nullptr)) {
    thread_ = StartThread(
        [this, name, body = std::move(body)]() -> DWORD {
          SetThreadDescription(GetCurrentThread(), name);
          if (WaitForSingleObject(go_.get(), kJoinMs) != WAIT_OBJECT_0) return 1;
          body();
          SetEvent(done_.get());
          return WaitForSingleObject(release_.get(), kJoinMs) == WAIT_OBJECT_0 ? 0 : 2;
        },
        0, &tid_);
  }
  ~StepThread() {
    SetEvent(release_.get());
    if (thread_ != nullptr) {
      EXPECT_TRUE(JoinThread(thread_));
    }
  }
  // Runs the body on the thread and waits (bounded) for it to finish.
  [[nodiscard]] bool Run() {
    SetEvent(go_.get());
    return WaitForSingleObject(done_.get(), kJoinMs) == WAIT_OBJECT_0;
  }
  DWORD tid() const { return tid_; }

 private:
  ScopedHandle go_, done_, release_;
  HANDLE thread_ = nullptr;
  DWORD tid_ = 0;
};

// Tests that a wait on a handle thread A made and thread B closed, made by
// thread C, explains itself naming A and B, the kind and name, and how long
// ago each happened (FakeClock).
TEST_F(HandleHistoryTest, WaitOnHandleClosedByAnotherThreadNamesCreatorAndCloser) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  HANDLE event = nullptr;
  DWORD wait_result = 0, wait_error = 0;
  std::string explanation;
  StepThread a(L"creator-A", [&] { event = CreateEventW(nullptr, TRUE, FALSE, L"jobs-ready"); });
  StepThread b(L"closer-B", [&] { CloseHandle(event); });
  StepThread c(L"waiter-C", [&] {
    wait_result = WaitForSingleObject(event, 0);
    wait_error = GetLastError();
    explanation = LastErrorExplanation();
  });
  ASSERT_TRUE(a.Run());
  ASSERT_NE(event, nullptr);
  clock.Advance(std::chrono::seconds(3));
  ASSERT_TRUE(b.Run());
  clock.Advance(std::chrono::milliseconds(1500));
  ASSERT_TRUE(c.Run());
  EXPECT_EQ(wait_result, WAIT_FAILED);
  EXPECT_EQ(wait_error, static_cast<DWORD>(ERROR_INVALID_HANDLE));
  EXPECT_THAT(explanation,
              ::testing::HasSubstr("WaitForSingleObject failed with ERROR_INVALID_HANDLE"))
      << explanation;
  EXPECT_THAT(explanation, ::testing::HasSubstr("an event 'jobs-ready'"));
  EXPECT_THAT(explanation,
              ::testing::HasSubstr("created by " + Thread(a.tid(), "creator-A") + " 4.5 s ago"))
      << explanation;
  EXPECT_THAT(explanation,
              ::testing::HasSubstr("closed by " + Thread(b.tid(), "closer-B") + " 1.5 s ago"))
      << explanation;
  EXPECT_THAT(explanation, ::testing::Not(::testing::HasSubstr("double close")));
}

// Tests that after a double close the explanation names the first closer and
// the second one, and that the second CloseHandle itself explains its failure.
TEST_F(HandleHistoryTest, DoubleCloseNamesBothClosers) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  HANDLE mutex = CreateMutexW(nullptr, FALSE, nullptr);
  ASSERT_NE(mutex, nullptr);
  BOOL second_result = TRUE;
  std::string second_explanation;
  StepThread first(L"first-closer", [&] { CloseHandle(mutex); });
  StepThread second(L"second-closer", [&] {
    second_result = CloseHandle(mutex);
    second_explanation = LastErrorExplanation();
  });
  ASSERT_TRUE(first.Run());
  clock.Advance(std::chrono::milliseconds(200));
  ASSERT_TRUE(second.Run());
  clock.Advance(std::chrono::milliseconds(300));
  EXPECT_FALSE(second_result);
  EXPECT_THAT(second_explanation,
              ::testing::HasSubstr("CloseHandle failed with ERROR_INVALID_HANDLE"))
      << second_explanation;
  EXPECT_THAT(second_explanation,
              ::testing::HasSubstr("closed by " + Thread(first.tid(), "first-closer")))
      << second_explanation;

  EXPECT_EQ(ReleaseMutex(mutex), FALSE);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  const std::string text = LastErrorExplanation();
  EXPECT_THAT(text, ::testing::HasSubstr("ReleaseMutex failed"));
  EXPECT_THAT(text, ::testing::HasSubstr("a mutex (object #"));
  EXPECT_THAT(text, ::testing::HasSubstr("closed by " + Thread(first.tid(), "first-closer") +
                                         " 500 ms ago"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("closed again by " +
                                         Thread(second.tid(), "second-closer") + " 300 ms ago"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("double close"));
  // The closer's call site is recorded (the address inside this test binary).
  EXPECT_THAT(text, ::testing::HasSubstr("CloseHandle called from "));
}

// Tests that values this process never issued are called so: NULL, a
// misaligned value, an index past the table, and a real slot's future
// generation.
TEST_F(HandleHistoryTest, ForgedHandlesWereNeverOpen) {
  ScopedHandle live(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ASSERT_TRUE(live);
  const HANDLE forged[] = {nullptr, FromBits(0x1003), FromBits((std::uintptr_t{7} << 32) | (0xFFFF0u << 2)),
                           FromBits(Bits(live.get()) + (std::uintptr_t{1000} << 32))};
  for (HANDLE h : forged) {
    ClearLastErrorExplanation();
    EXPECT_EQ(WaitForSingleObject(h, 0), WAIT_FAILED);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    const std::string text = LastErrorExplanation();
    EXPECT_THAT(text, ::testing::HasSubstr("was never a handle"));
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("closed by")));
  }
}

// Tests that an open handle of the wrong kind is explained as such.
TEST_F(HandleHistoryTest, WrongKindIsExplained) {
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  ASSERT_TRUE(mutex);
  EXPECT_FALSE(SetEvent(mutex.get()));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  const std::string text = LastErrorExplanation();
  EXPECT_THAT(text, ::testing::HasSubstr("SetEvent failed"));
  EXPECT_THAT(text, ::testing::HasSubstr("is open, but it is a mutex, not an event"));
}

// Tests the clearing rules: a success leaves the explanation, the next
// failure replaces it, ClearLastErrorExplanation empties it.
TEST_F(HandleHistoryTest, ExplanationLastsUntilTheNextFailure) {
  HANDLE closed = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  ASSERT_TRUE(CloseHandle(closed));
  ScopedHandle open(CreateEventW(nullptr, TRUE, TRUE, nullptr));
  ASSERT_EQ(WaitForSingleObject(closed, 0), WAIT_FAILED);
  const std::string first = LastErrorExplanation();
  EXPECT_THAT(first, ::testing::HasSubstr("WaitForSingleObject failed"));
  ASSERT_EQ(WaitForSingleObject(open.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(LastErrorExplanation(), first);
  HANDLE both[] = {open.get(), closed};
  ASSERT_EQ(WaitForMultipleObjects(2, both, FALSE, 0), WAIT_FAILED);
  const std::string second = LastErrorExplanation();
  EXPECT_THAT(second, ::testing::HasSubstr("WaitForMultipleObjects failed"));
  EXPECT_THAT(second, ::testing::HasSubstr("of its 2 handles, number 1"));
  ClearLastErrorExplanation();
  EXPECT_EQ(LastErrorExplanation(), "");
}

// Tests that DuplicateHandle and SignalObjectAndWait explain a closed source.
TEST_F(HandleHistoryTest, DuplicateAndSignalAndWaitExplain) {
  HANDLE closed = CreateSemaphoreW(nullptr, 0, 1, L"history-sem");
  ASSERT_TRUE(CloseHandle(closed));
  HANDLE copy = nullptr;
  EXPECT_FALSE(DuplicateHandle(GetCurrentProcess(), closed, GetCurrentProcess(), &copy, 0, FALSE,
                               DUPLICATE_SAME_ACCESS));
  std::string text = LastErrorExplanation();
  EXPECT_THAT(text, ::testing::HasSubstr("DuplicateHandle failed"));
  EXPECT_THAT(text, ::testing::HasSubstr("a semaphore 'history-sem'"));
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  EXPECT_EQ(SignalObjectAndWait(event.get(), closed, 0, FALSE), WAIT_FAILED);
  text = LastErrorExplanation();
  EXPECT_THAT(text, ::testing::HasSubstr("SignalObjectAndWait (the object to wait on) failed"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("closed by thread " + std::to_string(GetCurrentThreadId())));
}

// Tests that the history is bounded: once kHandleHistoryCapacity later closes
// have happened, the oldest close is forgotten and the explanation says there
// is no record, instead of guessing.
TEST_F(HandleHistoryTest, RingOverflowForgetsTheOldestHonestly) {
  HANDLE old = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  ASSERT_TRUE(CloseHandle(old));
  auto churn = [](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      HANDLE h = CreateEventW(nullptr, FALSE, FALSE, nullptr);
      ASSERT_NE(h, nullptr);
      ASSERT_TRUE(CloseHandle(h));
    }
  };
  churn(kHandleHistoryCapacity / 2);
  EXPECT_TRUE(FindHandleClose(old, nullptr, nullptr));
  churn(kHandleHistoryCapacity / 2);
  EXPECT_FALSE(FindHandleClose(old, nullptr, nullptr));
  EXPECT_EQ(WaitForSingleObject(old, 0), WAIT_FAILED);
  const std::string text = LastErrorExplanation();
  EXPECT_THAT(text, ::testing::HasSubstr("is not open"));
  EXPECT_THAT(text, ::testing::HasSubstr("has no record"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("was never a handle")));
}

// Tests that a long name is cut at a character boundary to the record's size.
TEST_F(HandleHistoryTest, LongNamesAreTruncatedWhole) {
  // 13 three-byte characters (39 bytes) then one more: only 13 fit in 40.
  std::wstring name(14, L'\u20AC');
  HANDLE h = CreateEventW(nullptr, FALSE, FALSE, name.c_str());
  ASSERT_TRUE(CloseHandle(h));
  HandleCloseRecord record;
  ASSERT_TRUE(FindHandleClose(h, &record, nullptr));
  EXPECT_EQ(record.name.size(), 39u);
  EXPECT_EQ(record.kind, ObjectKind::kEvent);
  EXPECT_EQ(record.closer_tid, GetCurrentThreadId());
}

// Tests, under ThreadSanitizer too, that creates, closes, double closes and
// failing waits on many threads at once keep the history consistent: a
// thread's own handle is either described as closed by that thread, or (when
// other threads' closes pushed it out) honestly as having no record.
TEST_F(HandleHistoryTest, ConcurrentCreateCloseWaitStress) {
  constexpr int kThreads = 6;
  constexpr int kRounds = 400;
  std::atomic<int> wrong{0};
  std::atomic<int> described{0};
  std::vector<HANDLE> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.push_back(StartThread([&]() -> DWORD {
      const std::string me = "closed by thread " + std::to_string(GetCurrentThreadId());
      for (int i = 0; i < kRounds; ++i) {
        HANDLE h = CreateEventW(nullptr, FALSE, FALSE, nullptr);
        if (h == nullptr || !CloseHandle(h)) return 1;
        if (i % 3 == 0 && CloseHandle(h)) return 2;  // A double close must fail.
        if (WaitForSingleObject(h, 0) != WAIT_FAILED) return 3;
        const std::string text = LastErrorExplanation();
        if (::testing::Value(text, ::testing::HasSubstr(me))) {
          described.fetch_add(1, std::memory_order_relaxed);
        } else if (!::testing::Value(text, ::testing::HasSubstr("has no record"))) {
          wrong.fetch_add(1, std::memory_order_relaxed);
        }
      }
      return 0;
    }));
    ASSERT_NE(threads.back(), nullptr);
  }
  for (HANDLE thread : threads) {
    ASSERT_EQ(WaitForSingleObject(thread, 60000), WAIT_OBJECT_0);
    DWORD code = 99;
    EXPECT_TRUE(GetExitCodeThread(thread, &code));
    EXPECT_EQ(code, 0u);
    CloseHandle(thread);
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(described.load(), 0);
}

}  // namespace
}  // namespace apartments::internal
