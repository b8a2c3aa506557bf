// Threads: CreateThread, exit codes, ids, suspension, ExitThread, the
// GetCurrentThread pseudo-handle, thread descriptions.
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
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

using ThreadTest = ktest::KernelTest;

// GetThreadDescription as a std::wstring; "<error 0x...>" when it fails.
std::wstring DescriptionOf(HANDLE thread) {
  LPWSTR raw = nullptr;
  HRESULT hr = GetThreadDescription(thread, &raw);
  if (FAILED(hr)) return L"<error " + std::to_wstring(static_cast<DWORD>(hr)) + L">";
  std::wstring copy = raw != nullptr ? raw : L"<null>";
  LocalFree(raw);
  return copy;
}

// The Linux name (comm) of thread `tid` of this process, without the newline.
std::string LinuxThreadName(DWORD tid) {
  std::string path = "/proc/self/task/" + std::to_string(tid) + "/comm";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<gone>";
  char buffer[64] = {};
  ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  std::string name(buffer, n > 0 ? static_cast<size_t>(n) : 0);
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

// Tests that a thread's handle is signaled when it exits and GetExitCodeThread
// then gives its routine's return value.
TEST_F(ThreadTest, HandleSignaledOnExitWithReturnValue) {
  HANDLE t = StartThread([] { return DWORD{1234}; });
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, 1234u);
  EXPECT_EQ(WaitForSingleObject(t, 0), WAIT_OBJECT_0);  // Stays signaled.
  EXPECT_TRUE(CloseHandle(t));
}

// Tests that GetExitCodeThread reports STILL_ACTIVE while the thread runs.
TEST_F(ThreadTest, ExitCodeIsStillActiveWhileRunning) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE t = StartThread([&] {
    WaitForSingleObject(go.get(), kJoinMs);
    return DWORD{7};
  });
  ASSERT_NE(t, nullptr);
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, STILL_ACTIVE);
  EXPECT_EQ(WaitForSingleObject(t, 0), WAIT_TIMEOUT);
  ASSERT_TRUE(SetEvent(go.get()));
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, 7u);
  CloseHandle(t);
}

// Tests that the id CreateThread stores, GetThreadId of the handle, and
// GetCurrentThreadId inside the thread are one and the same (the Linux tid).
TEST_F(ThreadTest, ThreadIdsAgree) {
  std::atomic<DWORD> inside{0};
  std::atomic<DWORD> inside_pseudo{0};
  std::atomic<DWORD> linux_tid{0};
  DWORD reported = 0;
  HANDLE t = StartThread(
      [&] {
        inside.store(GetCurrentThreadId());
        inside_pseudo.store(GetThreadId(GetCurrentThread()));
        linux_tid.store(static_cast<DWORD>(::syscall(SYS_gettid)));
        return DWORD{0};
      },
      0, &reported);
  ASSERT_NE(t, nullptr);
  EXPECT_NE(reported, 0u);
  EXPECT_EQ(GetThreadId(t), reported);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  EXPECT_EQ(inside.load(), reported);
  EXPECT_EQ(inside_pseudo.load(), reported);
  EXPECT_EQ(linux_tid.load(), reported);
  EXPECT_NE(reported, GetCurrentThreadId());
  CloseHandle(t);
}

// Tests that GetCurrentThreadId and GetCurrentProcessId are the Linux tid and pid.
TEST_F(ThreadTest, CurrentIdsAreLinuxIds) {
  EXPECT_EQ(GetCurrentThreadId(), static_cast<DWORD>(::syscall(SYS_gettid)));
  EXPECT_EQ(GetCurrentProcessId(), static_cast<DWORD>(::getpid()));
}

// Tests that CreateThread accepts a null thread-id pointer.
TEST_F(ThreadTest, NullThreadIdPointerIsAccepted) {
  HANDLE t = StartThread([] { return DWORD{5}; }, 0, nullptr);
  ASSERT_NE(t, nullptr);
  EXPECT_NE(GetThreadId(t), 0u);
  ASSERT_TRUE(JoinThread(t));
}

// Tests that CREATE_SUSPENDED holds the routine until ResumeThread, which
// returns the previous suspend count (1, then 0 for the running thread).
TEST_F(ThreadTest, CreateSuspendedRunsOnlyAfterResume) {
  std::atomic<bool> ran{false};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        ran.store(true);
        return DWORD{3};
      },
      CREATE_SUSPENDED, &tid);
  ASSERT_NE(t, nullptr);
  EXPECT_NE(tid, 0u);
  EXPECT_EQ(GetThreadId(t), tid);
  EXPECT_EQ(WaitForSingleObject(t, 30), WAIT_TIMEOUT);
  EXPECT_FALSE(ran.load());
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, STILL_ACTIVE);
  EXPECT_EQ(ResumeThread(t), 1u);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  EXPECT_TRUE(ran.load());
  EXPECT_EQ(ResumeThread(t), 0u);
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, 3u);
  CloseHandle(t);
}

// Tests that ResumeThread on a thread that is not suspended returns 0.
TEST_F(ThreadTest, ResumeRunningThreadReturnsZero) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE t = StartThread([&] { return WaitForSingleObject(go.get(), kJoinMs); });
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(ResumeThread(t), 0u);
  EXPECT_EQ(ResumeThread(GetCurrentThread()), 0u);
  ASSERT_TRUE(SetEvent(go.get()));
  ASSERT_TRUE(JoinThread(t));
}

// Tests that CreateThread rejects a null routine and unknown creation flags
// with ERROR_INVALID_PARAMETER.
TEST_F(ThreadTest, CreateThreadRejectsInvalidArguments) {
  SetLastError(0);
  EXPECT_EQ(CreateThread(nullptr, 0, nullptr, nullptr, 0, nullptr), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  SetLastError(0);
  DWORD id = 0xDEAD;
  EXPECT_EQ(CreateThread(nullptr, 0, [](LPVOID) -> DWORD { return 0; }, nullptr, 0x8, &id),
            nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests that CreateThread fails cleanly when the thread cannot be started (a
// stack no machine can map): NULL with ERROR_NOT_ENOUGH_MEMORY, the routine
// never runs, and no handle is left behind.
TEST_F(ThreadTest, CreateThreadFailsCleanlyWhenThreadCannotStart) {
  std::atomic<bool> ran{false};
  SetLastError(0);
  DWORD id = 0xDEAD;
  HANDLE t = CreateThread(
      nullptr, SIZE_T{1} << 46,
      [](LPVOID p) -> DWORD {
        static_cast<std::atomic<bool>*>(p)->store(true);
        return 0;
      },
      &ran, 0, &id);
  EXPECT_EQ(t, nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_ENOUGH_MEMORY));
  EXPECT_FALSE(ran.load());
  if (t != nullptr) {
    EXPECT_TRUE(JoinThread(t));
  }
}

// Tests that a requested stack size is honoured (at least that much stack)
// and STACK_SIZE_PARAM_IS_A_RESERVATION is accepted.
TEST_F(ThreadTest, StackSizeIsHonoured) {
  constexpr SIZE_T kStack = 512 * 1024;
  for (DWORD flags : {0u, static_cast<DWORD>(STACK_SIZE_PARAM_IS_A_RESERVATION)}) {
    std::atomic<size_t> size{0};
    HANDLE t = CreateThread(
        nullptr, kStack,
        [](LPVOID p) -> DWORD {
          pthread_attr_t attributes;
          size_t s = 0;
          if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
            pthread_attr_getstacksize(&attributes, &s);
            pthread_attr_destroy(&attributes);
          }
          static_cast<std::atomic<size_t>*>(p)->store(s);
          return 0;
        },
        &size, flags, nullptr);
    ASSERT_NE(t, nullptr);
    ASSERT_TRUE(JoinThread(t));
    EXPECT_GE(size.load(), kStack);
  }
}

// Tests that GetExitCodeThread with a null out pointer fails with
// ERROR_INVALID_PARAMETER.
TEST_F(ThreadTest, GetExitCodeThreadRejectsNullOutPointer) {
  SetLastError(0);
  EXPECT_FALSE(GetExitCodeThread(GetCurrentThread(), nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

struct SetsFlagOnDestruction {
  std::atomic<bool>* flag;
  ~SetsFlagOnDestruction() { flag->store(true); }
};

[[noreturn]] void ExitFromNestedFrame(std::atomic<bool>* inner_destroyed) {
  SetsFlagOnDestruction inner{inner_destroyed};
  ExitThread(77);
}

// Tests that ExitThread ends the thread with its code, after running the
// destructors of every frame it unwinds; nothing after it runs.
TEST_F(ThreadTest, ExitThreadUnwindsAndSetsExitCode) {
  std::atomic<bool> outer_destroyed{false};
  std::atomic<bool> inner_destroyed{false};
  std::atomic<bool> ran_past_exit{false};
  HANDLE t = StartThread([&] {
    SetsFlagOnDestruction outer{&outer_destroyed};
    ExitFromNestedFrame(&inner_destroyed);
    ran_past_exit.store(true);  // Never reached.
    return DWORD{1};
  });
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(t, &code));
  EXPECT_EQ(code, 77u);
  EXPECT_TRUE(inner_destroyed.load());
  EXPECT_TRUE(outer_destroyed.load());
  EXPECT_FALSE(ran_past_exit.load());
  CloseHandle(t);
}

// Tests that GetCurrentThread is the pseudo-handle (HANDLE)-2, naming the
// calling thread: its id, STILL_ACTIVE, never signaled, and CloseHandle on it
// succeeds without effect.
TEST_F(ThreadTest, CurrentThreadPseudoHandle) {
  EXPECT_EQ(GetCurrentThread(), reinterpret_cast<HANDLE>(static_cast<LONG_PTR>(-2)));
  EXPECT_EQ(GetCurrentProcess(), reinterpret_cast<HANDLE>(static_cast<LONG_PTR>(-1)));
  EXPECT_EQ(GetThreadId(GetCurrentThread()), GetCurrentThreadId());
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(GetCurrentThread(), &code));
  EXPECT_EQ(code, STILL_ACTIVE);
  EXPECT_EQ(WaitForSingleObject(GetCurrentThread(), 0), WAIT_TIMEOUT);
  EXPECT_TRUE(CloseHandle(GetCurrentThread()));
  EXPECT_EQ(GetThreadId(GetCurrentThread()), GetCurrentThreadId());
}

// Tests that the pseudo-handle names whichever thread uses it: inside another
// thread it is that thread.
TEST_F(ThreadTest, PseudoHandleNamesTheCallingThread) {
  std::atomic<DWORD> seen{0};
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        seen.store(GetThreadId(GetCurrentThread()));
        return DWORD{0};
      },
      0, &tid);
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(seen.load(), tid);
  EXPECT_NE(seen.load(), GetCurrentThreadId());
}

// Tests that DuplicateHandle of GetCurrentThread gives a real handle to the
// calling thread that another thread can use.
TEST_F(ThreadTest, DuplicatedCurrentThreadHandleWorksFromAnotherThread) {
  HANDLE self = nullptr;
  ASSERT_TRUE(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self,
                              0, FALSE, DUPLICATE_SAME_ACCESS));
  ScopedHandle owned(self);
  EXPECT_NE(self, GetCurrentThread());
  EXPECT_EQ(ktest::Bits(self) % 4, 0u);
  std::atomic<DWORD> id_seen{0};
  std::atomic<DWORD> code_seen{0};
  std::atomic<DWORD> wait_seen{WAIT_FAILED};
  HANDLE t = StartThread([&] {
    id_seen.store(GetThreadId(self));
    DWORD code = 0;
    if (GetExitCodeThread(self, &code)) code_seen.store(code);
    wait_seen.store(WaitForSingleObject(self, 0));
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(id_seen.load(), GetCurrentThreadId());
  EXPECT_EQ(code_seen.load(), STILL_ACTIVE);
  EXPECT_EQ(wait_seen.load(), WAIT_TIMEOUT);
}

// Tests that a handle a thread not started by CreateThread (a std::thread)
// made with DuplicateHandle(GetCurrentThread()) is signaled when that thread
// exits, with exit code 0.
TEST_F(ThreadTest, DuplicatedHandleOfForeignThreadIsSignaledOnExit) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  std::promise<HANDLE> handle_promise;
  std::future<HANDLE> handle_future = handle_promise.get_future();
  std::atomic<DWORD> tid{0};
  std::thread worker([&] {
    HANDLE self = nullptr;
    DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self, 0, FALSE,
                    DUPLICATE_SAME_ACCESS);
    tid.store(GetCurrentThreadId());
    handle_promise.set_value(self);
    WaitForSingleObject(go.get(), kJoinMs);
  });
  ASSERT_EQ(handle_future.wait_for(std::chrono::milliseconds(kJoinMs)), std::future_status::ready);
  ScopedHandle self(handle_future.get());
  ASSERT_TRUE(self);
  EXPECT_EQ(GetThreadId(self.get()), tid.load());
  EXPECT_EQ(WaitForSingleObject(self.get(), 0), WAIT_TIMEOUT);
  ASSERT_TRUE(SetEvent(go.get()));
  bool exited = WaitForSingleObject(self.get(), kJoinMs) == WAIT_OBJECT_0;
  if (!exited) {
    worker.detach();
    FAIL() << "the std::thread's handle was not signaled when it exited";
  }
  worker.join();  // It has exited: only its last thread-local teardown remains.
  DWORD code = STILL_ACTIVE;
  EXPECT_TRUE(GetExitCodeThread(self.get(), &code));
  EXPECT_EQ(code, 0u);
}

// Tests that a duplicate of a CreateThread thread's pseudo-handle names the
// same thread object as the handle CreateThread returned.
TEST_F(ThreadTest, DuplicatedPseudoHandleIsTheCreatedThreadObject) {
  HANDLE from_inside = nullptr;
  HANDLE t = StartThread([&] {
    DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &from_inside, 0,
                    FALSE, DUPLICATE_SAME_ACCESS);
    return DWORD{99};
  });
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  ASSERT_NE(from_inside, nullptr);
  ScopedHandle inside(from_inside);
  EXPECT_EQ(WaitForSingleObject(inside.get(), 0), WAIT_OBJECT_0);
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(inside.get(), &code));
  EXPECT_EQ(code, 99u);
  EXPECT_EQ(GetThreadId(inside.get()), GetThreadId(t));
  HANDLE both[] = {t, inside.get()};
  SetLastError(0);
  EXPECT_EQ(WaitForMultipleObjects(2, both, TRUE, 0), WAIT_FAILED);  // Same object twice.
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  CloseHandle(t);
}

// Tests that closing a thread's handle does not stop or detach-kill the thread.
TEST_F(ThreadTest, ClosingThreadHandleLetsThreadRun) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  ScopedHandle done(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE t = StartThread([&] {
    if (WaitForSingleObject(go.get(), kJoinMs) == WAIT_OBJECT_0) SetEvent(done.get());
    return DWORD{0};
  });
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(CloseHandle(t));
  ASSERT_TRUE(SetEvent(go.get()));
  EXPECT_EQ(WaitForSingleObject(done.get(), kJoinMs), WAIT_OBJECT_0);
}

// Tests that a wait-all on several thread handles completes when all have exited.
TEST_F(ThreadTest, WaitAllOnThreadHandles) {
  constexpr int kThreads = 4;
  std::vector<HANDLE> threads;
  for (int i = 0; i < kThreads; ++i) {
    HANDLE t = StartThread([i] { return static_cast<DWORD>(i * 10); });
    ASSERT_NE(t, nullptr);
    threads.push_back(t);
  }
  EXPECT_EQ(WaitForMultipleObjects(kThreads, threads.data(), TRUE, kJoinMs), WAIT_OBJECT_0);
  for (int i = 0; i < kThreads; ++i) {
    DWORD code = 0;
    EXPECT_TRUE(GetExitCodeThread(threads[i], &code));
    EXPECT_EQ(code, static_cast<DWORD>(i * 10));
    CloseHandle(threads[i]);
  }
}

// Tests that a thread's description set on itself reads back (including
// characters outside the BMP) and sets the Linux thread name to its first 15
// bytes.
TEST_F(ThreadTest, DescriptionRoundTripsOnSelf) {
  std::wstring read_back;
  std::string linux_name;
  HRESULT set_result = E_FAIL;
  HANDLE t = StartThread([&] {
    set_result = SetThreadDescription(GetCurrentThread(), L"worker \u00E9\U0001F600 number one");
    read_back = DescriptionOf(GetCurrentThread());
    linux_name = LinuxThreadName(GetCurrentThreadId());
    return DWORD{0};
  });
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(set_result, S_OK);
  EXPECT_EQ(read_back, L"worker \u00E9\U0001F600 number one");
  // "worker " (7) + é (2) + 😀 (4) + " nu" (3) = 16 bytes: 15 keeps "worker é😀 n".
  EXPECT_EQ(linux_name, "worker \xC3\xA9\xF0\x9F\x98\x80 n");
}

// Tests that a thread that never set a description reads back "".
TEST_F(ThreadTest, UnnamedThreadHasEmptyDescription) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  HANDLE t = StartThread([&] { return WaitForSingleObject(go.get(), kJoinMs); });
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(DescriptionOf(t), L"");
  ASSERT_TRUE(SetEvent(go.get()));
  ASSERT_TRUE(JoinThread(t));
}

// Tests that one thread can set another's description: the target reads it
// back, and its Linux name changes.
TEST_F(ThreadTest, DescriptionSetFromAnotherThread) {
  ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  std::wstring seen_inside;
  DWORD tid = 0;
  HANDLE t = StartThread(
      [&] {
        if (WaitForSingleObject(go.get(), kJoinMs) != WAIT_OBJECT_0) return DWORD{1};
        seen_inside = DescriptionOf(GetCurrentThread());
        return DWORD{0};
      },
      0, &tid);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(SetThreadDescription(t, L"renamed-from-main"), S_OK);
  EXPECT_EQ(DescriptionOf(t), L"renamed-from-main");
  EXPECT_EQ(LinuxThreadName(tid), "renamed-from-ma");
  ASSERT_TRUE(SetEvent(go.get()));
  ASSERT_TRUE(JoinThread(t));
  EXPECT_EQ(seen_inside, L"renamed-from-main");
}

// Tests that a thread's description survives its exit, and can still be
// changed through its handle afterwards.
TEST_F(ThreadTest, DescriptionAfterExit) {
  HANDLE t = StartThread([] {
    SetThreadDescription(GetCurrentThread(), L"short-lived");
    return DWORD{0};
  });
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
  EXPECT_EQ(DescriptionOf(t), L"short-lived");
  EXPECT_EQ(SetThreadDescription(t, L"renamed after exit"), S_OK);
  EXPECT_EQ(DescriptionOf(t), L"renamed after exit");
  CloseHandle(t);
}

// Tests that a description set from another thread while the target is
// exiting is never lost. Regression: the exit path read the description
// before taking the kernel lock, so a SetThreadDescription landing in between
// was overwritten by the stale value.
TEST_F(ThreadTest, DescriptionSetDuringExitIsKept) {
  for (int i = 0; i < 100; ++i) {
    ScopedHandle named(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    ScopedHandle go(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    HANDLE t = StartThread([&] {
      SetThreadDescription(GetCurrentThread(), L"old");
      return SignalObjectAndWait(named.get(), go.get(), kJoinMs, FALSE);
    });
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(WaitForSingleObject(named.get(), kJoinMs), WAIT_OBJECT_0);
    ASSERT_TRUE(SetEvent(go.get()));
    ASSERT_EQ(SetThreadDescription(t, L"new"), S_OK);  // Races the thread's exit.
    ASSERT_EQ(WaitForSingleObject(t, kJoinMs), WAIT_OBJECT_0);
    std::wstring after = DescriptionOf(t);
    CloseHandle(t);
    ASSERT_EQ(after, L"new") << "iteration " << i;
  }
}

// Tests that the description functions reject bad arguments: a null
// description (E_INVALIDARG), a null out pointer (E_POINTER), and handles that
// are not threads (HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE), out pointer nulled).
TEST_F(ThreadTest, DescriptionArgumentErrors) {
  EXPECT_EQ(SetThreadDescription(GetCurrentThread(), nullptr), E_INVALIDARG);
  EXPECT_EQ(GetThreadDescription(GetCurrentThread(), nullptr), E_POINTER);
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  for (HANDLE h : {event.get(), GetCurrentProcess(), static_cast<HANDLE>(nullptr)}) {
    EXPECT_EQ(SetThreadDescription(h, L"x"), HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
    LPWSTR out = reinterpret_cast<LPWSTR>(0x1);
    EXPECT_EQ(GetThreadDescription(h, &out), HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE));
    EXPECT_EQ(out, nullptr);
  }
}

// Tests that GetThreadId, GetExitCodeThread and ResumeThread refuse handles to
// other kinds of objects with ERROR_INVALID_HANDLE.
TEST_F(ThreadTest, ThreadFunctionsRejectOtherKinds) {
  ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  for (HANDLE h : {event.get(), GetCurrentProcess()}) {
    SetLastError(0);
    EXPECT_EQ(GetThreadId(h), 0u);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    DWORD code = 12;
    SetLastError(0);
    EXPECT_FALSE(GetExitCodeThread(h, &code));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
    SetLastError(0);
    EXPECT_EQ(ResumeThread(h), static_cast<DWORD>(-1));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_HANDLE));
  }
}

}  // namespace
}  // namespace apartments::internal
