// Self-diagnosis starts lazily (apartments/diagnostics.h): not at static
// initialization, not for kernel objects and threads, but at the first
// message queue; then it serves inspection with no code; and a forked child
// starts its own. One process, tests in order (each builds on the previous).
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "apartments/inspect.h"
#include "apartments/win32.h"
#include "diag/default_diagnostics.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

// The number of this process's threads named `name` (/proc/self/task/*/comm).
int ThreadsNamed(const std::string& name) {
  int count = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + entry->d_name + "/comm");
    std::string line;
    std::getline(comm, line);
    if (line == name) ++count;
  }
  closedir(dir);
  return count;
}

int ThreadCount() {
  int count = 0;
  DIR* dir = opendir("/proc/self/task");
  while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

DWORD WINAPI WaitOnEvent(LPVOID parameter) {
  return WaitForSingleObject(static_cast<HANDLE>(parameter), kBoundMs);
}

// Tests that a program using only kernel objects and threads (no message
// queue, no COM) starts no diagnostics: no thread, no socket.
TEST(NoQueueDiagnosticsTest, KernelObjectsAndThreadsStartNothing) {
  // A first thread, started and joined, so that a runtime starting a thread
  // of its own with the process's first one (ThreadSanitizer's) has done so.
  std::thread([] {}).join();
  const int before = ThreadCount();
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE mutex = CreateMutexW(nullptr, TRUE, L"no-queue-mutex");
  HANDLE thread = CreateThread(nullptr, 0, &WaitOnEvent, event, 0, nullptr);
  ASSERT_NE(thread, nullptr);
  EXPECT_EQ(WaitForSingleObject(thread, 20), WAIT_TIMEOUT);  // Blocked in the library.
  SetEvent(event);
  EXPECT_EQ(WaitForSingleObject(thread, kBoundMs), WAIT_OBJECT_0);
  CloseHandle(thread);
  ReleaseMutex(mutex);
  CloseHandle(mutex);
  CloseHandle(event);

  EXPECT_FALSE(DefaultDiagnosticsStartedForTesting());
  EXPECT_EQ(ThreadsNamed("hang watchdog"), 0);
  // The helper thread's handle is signaled just before the thread is gone.
  EXPECT_TRUE(Eventually([&] { return ThreadCount() == before; }));
  EXPECT_FALSE(Exists(InspectionSocketPath(getpid())));
}

// Tests that the first message queue starts the watchdog thread and serves
// inspection (the socket exists, owner-only) with no code.
TEST(NoQueueDiagnosticsTest, FirstQueueStartsWatchdogAndInspection) {
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // Creates this thread's queue.
  EXPECT_TRUE(DefaultDiagnosticsStartedForTesting());
  // The thread names itself as it starts.
  EXPECT_TRUE(Eventually([] { return ThreadsNamed("hang watchdog") == 1; }));
  const std::string socket = InspectionSocketPath(getpid());
  EXPECT_TRUE(Exists(socket)) << socket;
  struct stat st;
  ASSERT_EQ(stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second queue starts nothing more.
  BoundedThread other([] {
    MSG m;
    PeekMessageW(&m, nullptr, 0, 0, PM_NOREMOVE);
  });
  other.Join();
  EXPECT_EQ(ThreadsNamed("hang watchdog"), 1);
}

// Tests that a forked child, which inherits no watchdog thread, starts its
// own at its first queue, with its own pid's socket.
TEST(NoQueueDiagnosticsTest, ForkedChildStartsItsOwn) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer does not support threads started after a multi-threaded fork";
#endif
#if defined(__SANITIZE_ADDRESS__)
  // The child of a multi-threaded parent inherits the sanitizer allocator's
  // locks as the parent's other threads held them; its first thread then
  // waits for one that no thread of the child will release.
  GTEST_SKIP() << "AddressSanitizer's allocator is not safe to use after a multi-threaded fork";
#endif
  // The parent's diagnostics start at its first queue (the test may be the
  // first, or the only one, its process runs).
  BoundedThread first([] {
    MSG m;
    PeekMessageW(&m, nullptr, 0, 0, PM_NOREMOVE);
  });
  first.Join();
  ASSERT_TRUE(DefaultDiagnosticsStartedForTesting());
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only async-signal-safe checks before the first queue: exit codes say
    // what failed.
    if (DefaultDiagnosticsStartedForTesting()) _exit(2);
    BoundedThread t([] {
      MSG m;
      PeekMessageW(&m, nullptr, 0, 0, PM_NOREMOVE);
    });
    t.Join();
    if (!DefaultDiagnosticsStartedForTesting()) _exit(3);
    if (!Eventually([] { return ThreadsNamed("hang watchdog") == 1; })) _exit(4);
    if (!Exists(InspectionSocketPath(getpid()))) _exit(5);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent's is still there.
  EXPECT_TRUE(Eventually([] { return ThreadsNamed("hang watchdog") == 1; }));
}

}  // namespace
}  // namespace apartments::internal::testing
