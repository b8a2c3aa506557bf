// Tests of apartments-wct against a child process it inspects
// (wct_test_child), and of the server's refusal of another user.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

extern char** environ;

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr auto kBound = std::chrono::seconds(20);  // Every wait in these tests.

// A spawned process with pipes to its stdin, stdout and stderr. The
// destructor kills it if still running and reaps it.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& runtime_dir) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "XDG_RUNTIME_DIR=", 16) != 0 &&
          std::strncmp(*e, "APARTMENTS_INSPECT=", 19) != 0) {
        env.push_back(*e);
      }
    }
    env.push_back("XDG_RUNTIME_DIR=" + runtime_dir);
    std::vector<char*> envp, args;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (std::string& a : argv_copy) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
      pid_ = -1;
    }
  }
  ~Process() {
    CloseStdin();
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
    if (err_ >= 0) close(err_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void CloseStdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }

  // Reads stdout (or stderr) until it contains all of `needles`, EOF, or the
  // bound; returns everything read so far from that stream.
  std::string ReadUntil(bool from_stderr, const std::vector<std::string>& needles) {
    std::string& buffer = from_stderr ? err_text_ : out_text_;
    const int fd = from_stderr ? err_ : out_;
    const auto deadline = SteadyClock::now() + kBound;
    auto done = [&] {
      for (const std::string& n : needles) {
        if (!::testing::Value(buffer, ::testing::HasSubstr(n))) return false;
      }
      return true;
    };
    while (!done()) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
      if (left <= 0) break;
      pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(fd, chunk, sizeof chunk);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    return buffer;
  }

  // Reads both streams to EOF and reaps the process, all within the bound;
  // the exit code, or -1 (and a failure) if it did not finish.
  int Finish() {
    const auto deadline = SteadyClock::now() + kBound;
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
      if (left <= 0) {
        ADD_FAILURE() << "process " << pid_ << " did not finish in time";
        return -1;
      }
      pollfd p[2] = {{out_open ? out_ : -1, POLLIN, 0}, {err_open ? err_ : -1, POLLIN, 0}};
      if (poll(p, 2, static_cast<int>(left)) <= 0) continue;
      char chunk[4096];
      for (int i = 0; i < 2; ++i) {
        if (p[i].revents == 0) continue;
        const ssize_t n = read(p[i].fd, chunk, sizeof chunk);
        if (n > 0) {
          (i == 0 ? out_text_ : err_text_).append(chunk, static_cast<std::size_t>(n));
        } else {
          (i == 0 ? out_open : err_open) = false;
        }
      }
    }
    // Its output closed: it is exiting. Wait for that, bounded, via a pidfd.
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
      pollfd p = {pidfd, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kBound).count()));
      close(pidfd);
      if (r <= 0) {
        ADD_FAILURE() << "process " << pid_ << " closed its output but did not exit";
        return -1;
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  const std::string& out() const { return out_text_; }
  const std::string& err() const { return err_text_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string out_text_, err_text_;
};

struct RunResult {
  int code = -1;
  std::string out, err;
};

class WctTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/wct-test-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    runtime_dir_ = templ;
    // Traversable, so that the root-only tests' other user reaches the
    // socket's own directory and is stopped there (or at the peer check).
    ASSERT_EQ(chmod(runtime_dir_.c_str(), 0711), 0);
  }
  void TearDown() override { std::filesystem::remove_all(runtime_dir_); }

  RunResult Wct(std::vector<std::string> args) { return WctIn(runtime_dir_, std::move(args)); }
  // Runs apartments-wct with XDG_RUNTIME_DIR=`runtime_dir`.
  RunResult WctIn(const std::string& runtime_dir, std::vector<std::string> args) {
    args.insert(args.begin(), WCT_PATH);
    Process p(args, runtime_dir);
    p.CloseStdin();
    RunResult r;
    r.code = p.Finish();
    r.out = p.out();
    r.err = p.err();
    return r;
  }

  // Starts wct_test_child serve; returns its socket path once it is ready.
  std::string StartChild(Process& child) {
    const std::string out = child.ReadUntil(false, {"ready ", "\n"});
    const std::size_t at = out.find("ready ");
    if (at == std::string::npos || out.find('\n', at) == std::string::npos) {
      ADD_FAILURE() << "child not ready: " << out << child.ReadUntil(true, {});
      return std::string();
    }
    return out.substr(at + 6, out.find('\n', at) - at - 6);
  }

  std::string runtime_dir_;
};

// Tests that the text report names the stuck STA, its apartment, its queue,
// what it waits on, and that the watchdog sees it hung.
TEST_F(WctTest, TextShowsThreadsQueuesChainsAndHangs) {
  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  ASSERT_FALSE(StartChild(child).empty());
  const RunResult r = Wct({std::to_string(child.pid())});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::HasSubstr("'stuck-sta' [main STA "));
  EXPECT_THAT(r.out, ::testing::HasSubstr(": queue 3/10000"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("blocked in kernel wait"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("-> event 'never-signaled'"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("'hang watchdog'"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("'stuck-sta' [main STA "));
  EXPECT_THAT(r.out, ::testing::HasSubstr("HUNG: has not pumped for"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("process " + std::to_string(child.pid())));
}

// Tests that --json gives the same facts as JSON.
TEST_F(WctTest, JsonShowsThreadsQueuesChainsAndHangs) {
  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  ASSERT_FALSE(StartChild(child).empty());
  const RunResult r = Wct({std::to_string(child.pid()), "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"pid\":" + std::to_string(child.pid()) + ",", 0), 0u) << r.out;
  EXPECT_THAT(r.out, ::testing::HasSubstr("\"name\":\"stuck-sta\",\"apartment\":\"main STA "));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\"queue_depth\":3,\"queue_quota\":10000"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\"object_kind\":\"event\""));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\"name\":\"never-signaled\""));
  EXPECT_THAT(r.out,
              ::testing::HasSubstr("\"thread_name\":\"stuck-sta\",\"apartment\":\"main STA "));
  EXPECT_THAT(r.out, ::testing::HasSubstr("\"state\":\"hung\""));
  EXPECT_EQ(r.out.back(), '\n');
}

// Tests that the socket is owner-only (0600) in an owner-only (0700)
// directory under XDG_RUNTIME_DIR, and is removed when the process stops.
TEST_F(WctTest, SocketIsOwnerOnlyAndRemovedOnExit) {
  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  const std::string path = StartChild(child);
  ASSERT_EQ(path, runtime_dir_ + "/apartments/" + std::to_string(child.pid()) + ".sock");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  ASSERT_EQ(stat((runtime_dir_ + "/apartments").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  child.CloseStdin();
  EXPECT_EQ(child.Finish(), 0) << child.err();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

// Tests --list: the serving child is listed, and a socket left by a process
// that no longer exists is removed.
TEST_F(WctTest, ListShowsServingProcessesAndRemovesStaleSockets) {
  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  const std::string path = StartChild(child);
  ASSERT_FALSE(path.empty());
  // A pid above any pid_max (2^22) never exists.
  const std::string stale = runtime_dir_ + "/apartments/2147483646.sock";
  const int fd = open(stale.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  const RunResult r = Wct({"--list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              ::testing::HasSubstr(std::to_string(child.pid()) + "\twct_test_child\t" + path));
  EXPECT_THAT(r.out, ::testing::Not(::testing::HasSubstr("2147483646")));
  EXPECT_THAT(r.err, ::testing::HasSubstr("removed stale socket " + stale));
  EXPECT_NE(access(stale.c_str(), F_OK), 0);
}

// Tests the errors: no such process, a process that does not serve, a bad
// argument; and --ping.
TEST_F(WctTest, ErrorsAndExitCodes) {
  RunResult r = Wct({"2147483646"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, ::testing::HasSubstr("no such process: 2147483646"));

  r = Wct({std::to_string(getpid())});  // This test does not serve.
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, ::testing::HasSubstr("does not serve inspection"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("APARTMENTS_INSPECT=1"));

  r = Wct({"--bogus"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("usage:"));

  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  ASSERT_FALSE(StartChild(child).empty());
  r = Wct({std::to_string(child.pid()), "--ping"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "apartments-inspect 1\n");
}

// Tests that the tool finds the socket through the target's own
// XDG_RUNTIME_DIR when its own differs (a shell without a session, sudo).
TEST_F(WctTest, FindsSocketThroughTargetsEnvironment) {
  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  ASSERT_FALSE(StartChild(child).empty());
  const RunResult r = WctIn("/nonexistent-runtime-dir", {std::to_string(child.pid()), "--ping"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "apartments-inspect 1\n");
}

// A listening socket standing in for a server, driven by the test.
class FakeServer {
 public:
  explicit FakeServer(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
  }
  ~FakeServer() { close(fd_); }
  // The next client, within the bound; -1 if none came.
  int Accept() {
    pollfd p = {fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kBound).count())) != 1) return -1;
    return accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Tests the exit codes for a refusal and for a server that never answers,
// and that a refusal sent before the request is read is still shown (the
// connection is reset after it).
TEST_F(WctTest, RefusalAndTimeoutExitCodes) {
  const std::string path = runtime_dir_ + "/fake.sock";
  FakeServer server(path);
  {
    Process wct({WCT_PATH, "12345", "--socket", path}, runtime_dir_);
    const int client = server.Accept();
    ASSERT_GE(client, 0);
    const char refusal[] = "error permission denied: uid 1 may not inspect a process of uid 2\n";
    ASSERT_EQ(send(client, refusal, sizeof refusal - 1, MSG_NOSIGNAL),
              static_cast<ssize_t>(sizeof refusal - 1));
    close(client);
    EXPECT_EQ(wct.Finish(), 4);
    EXPECT_THAT(wct.err(),
                ::testing::HasSubstr("process 12345: permission denied: uid 1 may not inspect"))
        << wct.err();
  }
  {
    Process wct({WCT_PATH, "12345", "--socket", path, "--timeout-ms", "200"}, runtime_dir_);
    const int client = server.Accept();
    ASSERT_GE(client, 0);
    EXPECT_EQ(wct.Finish(), 5);  // Holds the connection, never answers.
    EXPECT_THAT(wct.err(), ::testing::HasSubstr("no complete answer within 200 ms"));
    close(client);
  }
}

// Tests that a stale socket (nothing listens) is reported as not serving.
TEST_F(WctTest, StaleSocketOfLiveProcessIsNotServing) {
  const std::string dir = runtime_dir_ + "/apartments";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string path = dir + "/" + std::to_string(getpid()) + ".sock";
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  close(fd);  // Bound, never listened: connect gets ECONNREFUSED.
  const RunResult r = Wct({std::to_string(getpid())});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, ::testing::HasSubstr("stale socket"));
}

// Tests that another user is refused by the directory's permissions and,
// with those deliberately loosened, by the server's SO_PEERCRED check.
TEST_F(WctTest, AnotherUserIsRefused) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to play another user (setuid to 65534); the peer "
                    "check is exercised by the root CI run";
  }
  Process child({WCT_CHILD_PATH, "serve"}, runtime_dir_);
  const std::string path = StartChild(child);
  ASSERT_FALSE(path.empty());

  // Defense 1: the 0700 directory.
  {
    Process peer({WCT_CHILD_PATH, "peer", "65534", path}, runtime_dir_);
    EXPECT_EQ(peer.Finish(), 3) << peer.out() << peer.err();
    EXPECT_THAT(peer.out(), ::testing::HasSubstr("connect failed: EACCES"));
  }
  // Defense 2: the peer's credentials, with the file modes opened up.
  ASSERT_EQ(chmod((runtime_dir_ + "/apartments").c_str(), 0711), 0);
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  {
    Process peer({WCT_CHILD_PATH, "peer", "65534", path}, runtime_dir_);
    EXPECT_EQ(peer.Finish(), 0) << peer.out() << peer.err();
    EXPECT_THAT(peer.out(),
                ::testing::HasSubstr("connected\nerror permission denied: uid 65534 may not "
                                     "inspect a process of uid 0\n"))
        << peer.out();
    EXPECT_THAT(peer.out(), ::testing::Not(::testing::HasSubstr("apartments-inspect")));
  }
  // The owner is still served.
  const RunResult r = Wct({std::to_string(child.pid()), "--ping"});
  EXPECT_EQ(r.code, 0) << r.err;
}

// Tests that the dump signal makes the child print its snapshot to stderr,
// from the watchdog thread, while its STA is stuck.
TEST_F(WctTest, DumpSignalWritesSnapshotToStderr) {
  Process child({WCT_CHILD_PATH, "serve", "--dump-signal"}, runtime_dir_);
  ASSERT_FALSE(StartChild(child).empty());
  ASSERT_EQ(kill(child.pid(), SIGQUIT), 0);
  const std::string err = child.ReadUntil(true, {"'stuck-sta' [main STA ", "HUNG: has not pumped"});
  EXPECT_THAT(err, ::testing::HasSubstr("-> event 'never-signaled'"));
  EXPECT_THAT(err, ::testing::HasSubstr("HUNG: has not pumped"));
  // Still alive and serving (SIGQUIT's default would have killed it).
  const RunResult r = Wct({std::to_string(child.pid()), "--ping"});
  EXPECT_EQ(r.code, 0) << r.err;
  child.CloseStdin();
  EXPECT_EQ(child.Finish(), 0) << child.err();
}

}  // namespace
