// Tests of the inspection server inside this process (apartments/inspect.h);
// tools/wct_test.cc tests it from another process, through apartments-wct.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/clock.h"
#include "apartments/diagnostics.h"
#include "apartments/inspect.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "diag/inspect_server.h"
#include "kernel/kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

int ConnectTo(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF, at most kBoundMs; "<no answer in time>" otherwise.
std::string ReadAll(int fd) {
  std::string answer;
  const auto deadline = SteadyClock::now() + milliseconds(kBoundMs);
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return answer + "<no answer in time>";
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buffer[4096];
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return answer;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
}

// Sends `request` (as is) and returns the whole answer.
std::string Ask(const std::string& path, const std::string& request) {
  const int fd = ConnectTo(path);
  if (fd < 0) return "<connect failed>";
  [[maybe_unused]] ssize_t sent = send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer = ReadAll(fd);
  close(fd);
  return answer;
}

class InspectServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("APARTMENTS_INSPECT");
    // These tests serve from watchdogs of their own: the process's default
    // one (on since the first queue) must not hold the one serving slot.
    saved_ = GetDiagnosticsOptions();
    DiagnosticsOptions options = saved_;
    options.serve_inspection = false;
    SetDiagnosticsOptions(options);
    char templ[] = "/tmp/inspect-test-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    root_ = templ;
    dir_ = root_ + "/apartments";
  }
  void TearDown() override {
    unsetenv("APARTMENTS_INSPECT");
    SetInspectionTimeoutForTesting(milliseconds(1000));
    std::filesystem::remove_all(root_);
    SetDiagnosticsOptions(saved_);
  }
  HangWatchdogOptions Options() {
    HangWatchdogOptions options;
    options.serve_inspection = true;
    options.inspection_directory = dir_;
    options.poll_interval = milliseconds(10);
    options.callback = [](const HangReport&) {};
    return options;
  }
  std::string root_;
  std::string dir_;
  DiagnosticsOptions saved_;
};

// Tests that a watchdog not asked to serve creates no file at all.
TEST_F(InspectServerTest, NotServedUnlessAsked) {
  HangWatchdogOptions options = Options();
  options.serve_inspection = false;
  HangWatchdog watchdog(options);
  watchdog.Start();
  EXPECT_EQ(watchdog.inspection_socket_path(), "");
  EXPECT_NE(access(dir_.c_str(), F_OK), 0);
}

// Tests that APARTMENTS_INSPECT=1 turns serving on without the option.
TEST_F(InspectServerTest, EnvironmentVariableTurnsServingOn) {
  setenv("APARTMENTS_INSPECT", "1", 1);
  HangWatchdogOptions options = Options();
  options.serve_inspection = false;
  HangWatchdog watchdog(options);
  watchdog.Start();
  EXPECT_EQ(watchdog.inspection_socket_path(), InspectionSocketPath(getpid(), dir_));
}

// Tests the protocol's requests, the modes, and that Stop() removes the socket.
TEST_F(InspectServerTest, AnswersRequestsAndRemovesSocketOnStop) {
  HangWatchdog watchdog(Options());
  watchdog.Start();
  const std::string path = watchdog.inspection_socket_path();
  ASSERT_EQ(path, dir_ + "/" + std::to_string(getpid()) + ".sock");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  EXPECT_EQ(Ask(path, "version\n"), "ok\napartments-inspect 1\n");
  const std::string text = Ask(path, "snapshot text\n");
  EXPECT_EQ(text.rfind("ok\nprocess " + std::to_string(getpid()) + " ", 0), 0u) << text;
  EXPECT_THAT(text, ::testing::HasSubstr("'hang watchdog'"));
  EXPECT_THAT(text, ::testing::HasSubstr("hangs (threshold 5.0 s"));
  const std::string json = Ask(path, "snapshot json\r\n");
  EXPECT_EQ(json.rfind("ok\n{\"pid\":" + std::to_string(getpid()), 0), 0u) << json;
  EXPECT_THAT(json, ::testing::HasSubstr("\"thread_name\":\"hang watchdog\""));
  EXPECT_THAT(json, ::testing::HasSubstr("\"hangs\":[]"));
  EXPECT_EQ(Ask(path, "dance\n"),
            "error unknown request 'dance' (expected 'snapshot text', 'snapshot json' or "
            "'version')\n");
  EXPECT_EQ(Ask(path, std::string(kInspectionMaxRequest + 10, 'x')),
            "error request too long (at most " + std::to_string(kInspectionMaxRequest) +
                " bytes)\n");

  watchdog.Stop();
  EXPECT_EQ(watchdog.inspection_socket_path(), "");
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_EQ(ConnectTo(path), -1);
}

// Tests that an existing directory that others may read is refused.
TEST_F(InspectServerTest, RefusesDirectoryWithGroupOrOtherAccess) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  HangWatchdog watchdog(Options());
  watchdog.Start();
  EXPECT_EQ(watchdog.inspection_socket_path(), "");
  EXPECT_NE(access(InspectionSocketPath(getpid(), dir_).c_str(), F_OK), 0);
}

// Tests that a symlink in place of the directory is refused (it could point
// to a directory of the attacker's choosing).
TEST_F(InspectServerTest, RefusesSymlinkedDirectory) {
  const std::string target = root_ + "/elsewhere";
  ASSERT_EQ(mkdir(target.c_str(), 0700), 0);
  ASSERT_EQ(symlink(target.c_str(), dir_.c_str()), 0);
  HangWatchdog watchdog(Options());
  watchdog.Start();
  EXPECT_EQ(watchdog.inspection_socket_path(), "");
}

// Tests that a directory owned by another user is refused.
TEST_F(InspectServerTest, RefusesDirectoryOfAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user";
  ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir_.c_str(), 65534, 65534), 0);
  HangWatchdog watchdog(Options());
  watchdog.Start();
  EXPECT_EQ(watchdog.inspection_socket_path(), "");
}

// Tests that only one watchdog per process serves, and that the other can
// serve once the first stops.
TEST_F(InspectServerTest, OneServingWatchdogPerProcess) {
  HangWatchdog first(Options());
  HangWatchdog second(Options());
  first.Start();
  second.Start();
  EXPECT_NE(first.inspection_socket_path(), "");
  EXPECT_EQ(second.inspection_socket_path(), "");
  first.Stop();
  second.Stop();
  second.Start();
  EXPECT_NE(second.inspection_socket_path(), "");
  EXPECT_EQ(Ask(second.inspection_socket_path(), "version\n"), "ok\napartments-inspect 1\n");
}

// Tests that sockets of processes that are gone are removed at start, and
// others kept.
TEST_F(InspectServerTest, RemovesStaleSocketsAtStart) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
  const std::string stale = dir_ + "/2147483646.sock";  // Above any pid_max.
  const std::string live = dir_ + "/1.sock";            // init exists.
  const std::string other = dir_ + "/notes.txt";
  for (const std::string& f : {stale, live, other}) {
    const int fd = open(f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  HangWatchdog watchdog(Options());
  watchdog.Start();
  EXPECT_NE(watchdog.inspection_socket_path(), "");
  EXPECT_NE(access(stale.c_str(), F_OK), 0);
  EXPECT_EQ(access(live.c_str(), F_OK), 0);
  EXPECT_EQ(access(other.c_str(), F_OK), 0);
}

// Tests that a client that sends nothing is cut off at the timeout with an
// error line, after which the watchdog serves the next client.
TEST_F(InspectServerTest, SilentClientIsCutOffAtTimeout) {
  SetInspectionTimeoutForTesting(milliseconds(200));
  HangWatchdog watchdog(Options());
  watchdog.Start();
  const int silent = ConnectTo(watchdog.inspection_socket_path());
  ASSERT_GE(silent, 0);
  EXPECT_EQ(ReadAll(silent), "error timeout: no request within 200 ms\n");
  close(silent);
  EXPECT_EQ(Ask(watchdog.inspection_socket_path(), "version\n"), "ok\napartments-inspect 1\n");
}

// Tests that Stop() interrupts a connected client that sends nothing instead
// of waiting for its timeout (this would have taken the full minute).
TEST_F(InspectServerTest, StopDoesNotWaitForSilentClient) {
  SetInspectionTimeoutForTesting(milliseconds(60000));
  HangWatchdogOptions options = Options();
  options.poll_interval = milliseconds(60000);
  HangWatchdog watchdog(options);
  const std::uint64_t accepted = InspectionConnectionsAcceptedForTesting();
  watchdog.Start();
  const int silent = ConnectTo(watchdog.inspection_socket_path());
  ASSERT_GE(silent, 0);
  // The watchdog thread is now inside that client's request.
  ASSERT_TRUE(Eventually([&] { return InspectionConnectionsAcceptedForTesting() > accepted; }));
  const auto start = SteadyClock::now();
  watchdog.Stop();
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(5));
  close(silent);
}

// Tests that the served snapshot carries the watchdog's episodes: pending
// below the threshold, then hung, then permanent (with a FakeClock).
TEST_F(InspectServerTest, SnapshotShowsHangEpisodes) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  TestEvent release;
  TestEvent queued;
  BoundedThread stuck([&] {
    SetThreadDescription(GetCurrentThread(), L"stuck-worker");
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    queued.Set();
    WaitForSingleObject(release.get(), kBoundMs);
    DrainQueue();
  });
  ASSERT_TRUE(queued.Wait());
  ASSERT_TRUE(PostThreadMessageW(stuck.tid(), WM_APP, 0, 0));
  HangWatchdog watchdog(Options());
  watchdog.Start();
  const std::string path = watchdog.inspection_socket_path();
  const std::string name = "\"thread_name\":\"stuck-worker\",\"apartment\":\"\",\"state\":";
  EXPECT_TRUE(Eventually([&] {
    return ::testing::Value(Ask(path, "snapshot json\n"),
                            ::testing::HasSubstr(name + "\"pending\""));
  }));
  clock.Advance(std::chrono::seconds(6));
  EXPECT_TRUE(Eventually([&] {
    return ::testing::Value(Ask(path, "snapshot json\n"), ::testing::HasSubstr(name + "\"hung\""));
  }));
  clock.Advance(std::chrono::seconds(60));
  EXPECT_TRUE(Eventually([&] {
    return ::testing::Value(Ask(path, "snapshot json\n"),
                            ::testing::HasSubstr(name + "\"permanent\""));
  }));
  EXPECT_THAT(Ask(path, "snapshot text\n"),
              ::testing::HasSubstr("'stuck-worker' PERMANENTLY HUNG: has not pumped for 66.0 s"));
  release.Set();
  stuck.Join();
}

}  // namespace
}  // namespace apartments::internal::testing
