// Randomized handle values fed to every handle-taking function: nothing
// crashes, and each call fails with its documented error value and
// ERROR_INVALID_HANDLE.
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
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

using HandleFuzzTest = ktest::KernelTest;

// The seed is fixed so failures reproduce; APARTMENTS_FUZZ_SEED overrides it
// to explore. Every failure message carries the seed and the value.
std::uint64_t FuzzSeed() {
  if (const char* env = std::getenv("APARTMENTS_FUZZ_SEED")) return std::strtoull(env, nullptr, 0);
  return 0x5eedfa11c0ffee42ull;
}

VOID WINAPI NeverRuns(ULONG_PTR) { ADD_FAILURE() << "an APC queued through a bad handle ran"; }

std::string Hex(HANDLE h) {
  std::ostringstream out;
  out << "0x" << std::hex << Bits(h);
  return out.str();
}

// Live objects of every kind, used as the valid side of mixed calls and as
// the bases of "near miss" values.
struct LiveObjects {
  ScopedHandle auto_event{CreateEventW(nullptr, FALSE, TRUE, nullptr)};
  ScopedHandle manual_event{CreateEventW(nullptr, TRUE, FALSE, nullptr)};
  ScopedHandle mutex{CreateMutexW(nullptr, FALSE, nullptr)};
  ScopedHandle semaphore{CreateSemaphoreW(nullptr, 0, 10, nullptr)};
  ScopedHandle process;
  ScopedHandle thread;

  std::vector<HANDLE> All() const {
    return {auto_event.get(), manual_event.get(), mutex.get(), semaphore.get(), process.get(),
            thread.get()};
  }
};

// Produces values that are not open handles: random 64-bit words, small
// integers, near misses of live handles (wrong generation, misaligned, other
// index), closed handles and boundary values.
class BadHandleSource {
 public:
  BadHandleSource(std::uint64_t seed, std::vector<HANDLE> live, std::vector<HANDLE> closed)
      : rng_(seed), live_(std::move(live)), closed_(std::move(closed)) {}

  HANDLE Next() {
    for (;;) {
      HANDLE candidate = Candidate();
      // Pseudo-handles are valid by definition; open handles are not "bad".
      if (IsPseudoHandle(candidate)) continue;
      if (ResolveHandle(candidate)) continue;
      return candidate;
    }
  }

 private:
  HANDLE Candidate() {
    std::uint64_t r = rng_();
    switch (r % 6) {
      case 0: return FromBits(rng_());
      case 1: return FromBits(rng_() % 8192);
      case 2: {  // A live handle with a generation it never had.
        std::uintptr_t base = Bits(live_[rng_() % live_.size()]);
        std::uintptr_t generation_flip = (rng_() | 1) << 40;
        return FromBits(base ^ generation_flip);
      }
      case 3: {  // A live handle, misaligned or moved to a nearby index.
        std::uintptr_t base = Bits(live_[rng_() % live_.size()]);
        std::int64_t delta = static_cast<std::int64_t>(rng_() % 512) - 256;
        return FromBits(base + static_cast<std::uintptr_t>(delta));
      }
      case 4: return closed_[rng_() % closed_.size()];
      default: {
        static const std::uintptr_t kBoundaries[] = {
            0, 4, 0xFFFFFFFCu, 0xFFFFFFFFu, std::uintptr_t{1} << 32,
            (std::uintptr_t{1} << 32) | 4, ~std::uintptr_t{0} - 2, ~std::uintptr_t{0} - 3,
            std::uintptr_t{1} << 63, (std::uintptr_t{0xFFFFFFFFu} << 32) | 4};
        return FromBits(kBoundaries[rng_() % (sizeof kBoundaries / sizeof kBoundaries[0])]);
      }
    }
  }

  std::mt19937_64 rng_;
  std::vector<HANDLE> live_;
  std::vector<HANDLE> closed_;
};

constexpr DWORD kInvalidHandle = ERROR_INVALID_HANDLE;

// Tests that every handle-taking function, given a value that is not an open
// handle, fails with its documented value and ERROR_INVALID_HANDLE, and that
// the live objects it was mixed with are left untouched.
TEST_F(HandleFuzzTest, BadHandlesFailEverywhereWithInvalidHandle) {
  const std::uint64_t seed = FuzzSeed();
  SCOPED_TRACE("fuzz seed " + std::to_string(seed) + " (set APARTMENTS_FUZZ_SEED to replay)");
  LiveObjects live;
  HANDLE process = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(),
                              &process, 0, FALSE, DUPLICATE_SAME_ACCESS));
  live.process.reset(process);
  ScopedHandle thread_may_exit(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  live.thread.reset(StartThread([&] { return WaitForSingleObject(thread_may_exit.get(), kJoinMs); }));
  ASSERT_TRUE(live.auto_event && live.manual_event && live.mutex && live.semaphore &&
              live.thread);
  std::vector<HANDLE> closed;
  for (int i = 0; i < 32; ++i) {
    HANDLE h = i % 2 == 0 ? CreateEventW(nullptr, FALSE, FALSE, nullptr)
                          : CreateSemaphoreW(nullptr, 0, 1, nullptr);
    ASSERT_TRUE(CloseHandle(h));
    closed.push_back(h);
  }
  BadHandleSource source(seed, live.All(), closed);
  std::mt19937_64 positions(seed ^ 0x9e3779b97f4a7c15ull);

  constexpr int kIterations = 2000;
  for (int i = 0; i < kIterations; ++i) {
    HANDLE bad = source.Next();
    SCOPED_TRACE("iteration " + std::to_string(i) + ", value " + Hex(bad));
    bool ok = true;
    auto expect = [&](bool condition, const char* what) {
      if (!condition) {
        ADD_FAILURE() << what << " (last error " << GetLastError() << ")";
        ok = false;
      }
    };
    auto expect_error = [&](const char* what) {
      DWORD error = GetLastError();
      if (error != kInvalidHandle) {
        ADD_FAILURE() << what << ": last error " << error << ", expected ERROR_INVALID_HANDLE";
        ok = false;
      }
    };

    SetLastError(0);
    expect(SetEvent(bad) == FALSE, "SetEvent");
    expect_error("SetEvent");
    SetLastError(0);
    expect(ResetEvent(bad) == FALSE, "ResetEvent");
    expect_error("ResetEvent");
    SetLastError(0);
    expect(PulseEvent(bad) == FALSE, "PulseEvent");
    expect_error("PulseEvent");
    SetLastError(0);
    expect(ReleaseMutex(bad) == FALSE, "ReleaseMutex");
    expect_error("ReleaseMutex");
    LONG previous = -5;
    SetLastError(0);
    expect(ReleaseSemaphore(bad, 1, &previous) == FALSE && previous == -5, "ReleaseSemaphore");
    expect_error("ReleaseSemaphore");

    SetLastError(0);
    expect(WaitForSingleObject(bad, 0) == WAIT_FAILED, "WaitForSingleObject");
    expect_error("WaitForSingleObject");
    SetLastError(0);
    expect(WaitForSingleObjectEx(bad, 0, TRUE) == WAIT_FAILED, "WaitForSingleObjectEx");
    expect_error("WaitForSingleObjectEx");

    // The bad value among valid handles, at a random position: the whole wait
    // fails and the signaled auto-reset event is not consumed.
    HANDLE mixed[4] = {live.auto_event.get(), live.manual_event.get(), live.semaphore.get(),
                       live.mutex.get()};
    DWORD count = 1 + static_cast<DWORD>(positions() % 4);
    mixed[positions() % count] = bad;
    for (BOOL wait_all : {FALSE, TRUE}) {
      SetLastError(0);
      expect(WaitForMultipleObjects(count, mixed, wait_all, 0) == WAIT_FAILED,
             "WaitForMultipleObjects");
      expect_error("WaitForMultipleObjects");
      SetLastError(0);
      expect(WaitForMultipleObjectsEx(count, mixed, wait_all, 0, TRUE) == WAIT_FAILED,
             "WaitForMultipleObjectsEx");
      expect_error("WaitForMultipleObjectsEx");
    }

    SetLastError(0);
    expect(SignalObjectAndWait(bad, live.auto_event.get(), 0, FALSE) == WAIT_FAILED,
           "SignalObjectAndWait(bad, live)");
    expect_error("SignalObjectAndWait(bad, live)");
    SetLastError(0);
    expect(SignalObjectAndWait(live.manual_event.get(), bad, 0, TRUE) == WAIT_FAILED,
           "SignalObjectAndWait(live, bad)");
    expect_error("SignalObjectAndWait(live, bad)");

    SetLastError(0);
    expect(CloseHandle(bad) == FALSE, "CloseHandle");
    expect_error("CloseHandle");

    HANDLE target = FromBits(0xABC0);
    SetLastError(0);
    expect(DuplicateHandle(GetCurrentProcess(), bad, GetCurrentProcess(), &target, 0, FALSE,
                           DUPLICATE_SAME_ACCESS) == FALSE && target == FromBits(0xABC0),
           "DuplicateHandle(source)");
    expect_error("DuplicateHandle(source)");
    SetLastError(0);
    expect(DuplicateHandle(GetCurrentProcess(), bad, GetCurrentProcess(), &target, 0, FALSE,
                           DUPLICATE_CLOSE_SOURCE) == FALSE,
           "DuplicateHandle(source, close)");
    expect_error("DuplicateHandle(source, close)");
    SetLastError(0);
    expect(DuplicateHandle(bad, live.auto_event.get(), GetCurrentProcess(), &target, 0, FALSE,
                           DUPLICATE_SAME_ACCESS) == FALSE,
           "DuplicateHandle(source process)");
    expect_error("DuplicateHandle(source process)");
    SetLastError(0);
    expect(DuplicateHandle(GetCurrentProcess(), live.auto_event.get(), bad, &target, 0, FALSE,
                           DUPLICATE_SAME_ACCESS) == FALSE,
           "DuplicateHandle(target process)");
    expect_error("DuplicateHandle(target process)");

    DWORD code = 0xC0DE;
    SetLastError(0);
    expect(GetExitCodeThread(bad, &code) == FALSE && code == 0xC0DE, "GetExitCodeThread");
    expect_error("GetExitCodeThread");
    SetLastError(0);
    expect(ResumeThread(bad) == static_cast<DWORD>(-1), "ResumeThread");
    expect_error("ResumeThread");
    SetLastError(0);
    expect(GetThreadId(bad) == 0, "GetThreadId");
    expect_error("GetThreadId");
    SetLastError(0);
    expect(QueueUserAPC(&NeverRuns, bad, 0) == 0, "QueueUserAPC");
    expect_error("QueueUserAPC");
    expect(SetThreadDescription(bad, L"fuzz") == HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE),
           "SetThreadDescription");
    LPWSTR description = reinterpret_cast<LPWSTR>(0x10);
    expect(GetThreadDescription(bad, &description) == HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE) &&
               description == nullptr,
           "GetThreadDescription");

    if (!ok) break;  // One value's failures are enough to diagnose.
  }

  // The live objects are as they were: the auto-reset event is still
  // signaled, nothing was released or duplicated, no APC is pending.
  EXPECT_EQ(WaitForSingleObject(live.auto_event.get(), 0), WAIT_OBJECT_0);
  EXPECT_EQ(WaitForSingleObject(live.manual_event.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(live.semaphore.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(SleepEx(0, TRUE), 0u);
  ASSERT_TRUE(SetEvent(thread_may_exit.get()));
  EXPECT_EQ(WaitForSingleObject(live.thread.get(), kJoinMs), WAIT_OBJECT_0);
}

// Tests that a valid handle to the wrong kind of object is refused by every
// kind-specific function with ERROR_INVALID_HANDLE, leaving the object as it was.
TEST_F(HandleFuzzTest, WrongKindHandlesAreRejected) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  ScopedHandle mutex(CreateMutexW(nullptr, FALSE, nullptr));
  ScopedHandle semaphore(CreateSemaphoreW(nullptr, 0, 10, nullptr));
  HANDLE thread_handle = StartThread([] { return DWORD{0}; });
  ASSERT_NE(thread_handle, nullptr);
  ScopedHandle thread(thread_handle);
  ASSERT_EQ(WaitForSingleObject(thread.get(), kJoinMs), WAIT_OBJECT_0);
  HANDLE process = GetCurrentProcess();

  auto check = [](bool failed, const char* what, HANDLE h) {
    DWORD error = GetLastError();
    EXPECT_TRUE(failed) << what << " accepted " << Hex(h);
    EXPECT_EQ(error, kInvalidHandle) << what << " with " << Hex(h);
  };
  for (HANDLE h : {mutex.get(), semaphore.get(), thread.get(), process}) {
    SetLastError(0);
    check(!SetEvent(h), "SetEvent", h);
    SetLastError(0);
    check(!ResetEvent(h), "ResetEvent", h);
    SetLastError(0);
    check(!PulseEvent(h), "PulseEvent", h);
  }
  for (HANDLE h : {event.get(), semaphore.get(), thread.get(), process}) {
    SetLastError(0);
    check(!ReleaseMutex(h), "ReleaseMutex", h);
  }
  for (HANDLE h : {event.get(), mutex.get(), thread.get(), process}) {
    SetLastError(0);
    check(!ReleaseSemaphore(h, 1, nullptr), "ReleaseSemaphore", h);
  }
  for (HANDLE h : {event.get(), mutex.get(), semaphore.get(), process}) {
    DWORD code = 0;
    SetLastError(0);
    check(!GetExitCodeThread(h, &code), "GetExitCodeThread", h);
    SetLastError(0);
    check(ResumeThread(h) == static_cast<DWORD>(-1), "ResumeThread", h);
    SetLastError(0);
    check(GetThreadId(h) == 0, "GetThreadId", h);
    SetLastError(0);
    check(QueueUserAPC(&NeverRuns, h, 0) == 0, "QueueUserAPC", h);
    EXPECT_EQ(SetThreadDescription(h, L"x"), HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
    LPWSTR out = nullptr;
    EXPECT_EQ(GetThreadDescription(h, &out), HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
  }
  for (HANDLE h : {event.get(), mutex.get(), semaphore.get(), thread.get()}) {
    HANDLE copy = nullptr;
    SetLastError(0);
    check(!DuplicateHandle(h, event.get(), process, &copy, 0, FALSE, DUPLICATE_SAME_ACCESS),
          "DuplicateHandle(source process)", h);
    SetLastError(0);
    check(!DuplicateHandle(process, event.get(), h, &copy, 0, FALSE, DUPLICATE_SAME_ACCESS),
          "DuplicateHandle(target process)", h);
  }
  EXPECT_EQ(WaitForSingleObject(event.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(semaphore.get(), 0), WAIT_TIMEOUT);
  EXPECT_EQ(WaitForSingleObject(mutex.get(), 0), WAIT_OBJECT_0);
  EXPECT_TRUE(ReleaseMutex(mutex.get()));
}

}  // namespace
}  // namespace apartments::internal
