// Live inspection served from the hang watchdog's thread
// (apartments/inspect.h).
//
// Everything here runs on the watchdog thread except the constructor (on the
// thread calling Start()), Wake() and the signal handler. The thread never
// blocks anywhere but in poll(): every socket is non-blocking, every client
// has a deadline, and the wake eventfd is in every poll set, so Stop() is
// answered at once whatever a client does. Snapshots are taken with
// TakeSnapshot(), which only takes the layers' short locks one at a time.
#include "diag/inspect_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "apartments/inspect.h"
#include "base/explain.h"
#include "base/thread_state.h"

namespace apartments {
namespace internal {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::atomic<std::int64_t> g_timeout_ms{1000};
std::atomic<std::uint64_t> g_accepted{0};
// One serving watchdog and one dump-signal owner per process.
std::atomic<bool> g_serving{false};
std::atomic<bool> g_dump_owned{false};

// The dump signal's pipe, created once and never closed, so that a handler
// running on another thread while the owner stops never writes to a closed
// (or reused) descriptor. -1 until created.
std::atomic<int> g_dump_write_fd{-1};
int g_dump_read_fd = -1;
std::once_flag g_dump_pipe_once;
struct sigaction g_previous_action;  // Owner only.

void DumpSignalHandler(int) {
  // Async-signal-safe: an atomic load (lock-free int) and write(2); errno is
  // preserved for the interrupted code. A full pipe means a dump is pending
  // already, so a lost byte loses nothing.
  const int saved_errno = errno;
  const int fd = g_dump_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = write(fd, &byte, 1);
  }
  errno = saved_errno;
}

void Log(const std::string& message) {
  std::string line = "apartments: " + message + "\n";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

std::string Errno(int error) { return std::strerror(error); }

std::string ModeText(mode_t mode) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(mode & 07777));
  return buffer;
}

// Creates `dir` (0700) or checks the existing one; "" when fine, else why not.
std::string PrepareDirectory(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return "cannot create " + dir + ": " + Errno(errno);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return "cannot stat " + dir + ": " + Errno(errno);
  if (!S_ISDIR(st.st_mode)) return "refusing " + dir + ": not a directory (a symlink?)";
  if (st.st_uid != geteuid()) {
    return "refusing " + dir + ": owned by uid " + std::to_string(st.st_uid) + ", not " +
           std::to_string(geteuid());
  }
  if ((st.st_mode & 077) != 0) {
    return "refusing " + dir + ": mode " + ModeText(st.st_mode) +
           " gives group or others access (must be 0700)";
  }
  return std::string();
}

bool ProcessGone(long pid) { return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// Removes "<pid>.sock" files of processes that no longer exist, and our own
// pid's (an earlier process with our pid; we own serving in this one).
void RemoveStaleSockets(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  const long self = getpid();
  while (dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    const std::size_t dot = name.find(".sock");
    if (dot == 0 || dot == std::string::npos || dot + 5 != name.size()) continue;
    if (name.find_first_not_of("0123456789") != dot) continue;
    const long pid = std::strtol(name.c_str(), nullptr, 10);
    if (pid == self || ProcessGone(pid)) unlink((dir + "/" + name).c_str());
  }
  closedir(d);
}

std::string Millis(Clock::Duration d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f",
                std::chrono::duration<double, std::milli>(d).count());
  return buffer;
}

std::string ProcessName() {
  char buffer[64] = {};
  const int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string();
  const ssize_t n = read(fd, buffer, sizeof buffer - 1);
  close(fd);
  std::string name(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

std::string VersionLine() {
  return "apartments-inspect " + std::to_string(kInspectionProtocolVersion) + "\n";
}

// Poll for `events` on `fd` or the wake fd until `deadline`: 1 ready, 0 timed
// out, -1 woken (or a poll error).
int WaitFor(int fd, short events, int wake_fd, SteadyClock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return 0;
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    const int r = poll(fds, 2, static_cast<int>(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (fds[1].revents != 0) return -1;
    if (fds[0].revents != 0) return 1;
  }
}

}  // namespace

void SetInspectionTimeoutForTesting(std::chrono::milliseconds timeout) {
  g_timeout_ms.store(timeout.count(), std::memory_order_relaxed);
}

std::uint64_t InspectionConnectionsAcceptedForTesting() {
  return g_accepted.load(std::memory_order_relaxed);
}

std::string FormatInspection(const ProcessSnapshot& snapshot, const InspectionContext& context) {
  std::string out = "process " + std::to_string(getpid()) + " '" + ProcessName() + "': ";
  out += FormatSnapshot(snapshot);
  out += "hangs (threshold " + FormatDuration(context.threshold) + ", permanent after " +
         FormatDuration(context.permanent_threshold) + "):";
  if (context.hangs.empty()) out += " none";
  out += "\n";
  for (const HangState& h : context.hangs) {
    out += "  thread " + std::to_string(h.tid);
    if (!h.thread_name.empty()) out += " '" + h.thread_name + "'";
    if (!h.apartment.empty()) out += " [" + h.apartment + "]";
    out += " " + (h.state == "pending" ? std::string("has not pumped")
                  : h.state == "hung"  ? std::string("HUNG: has not pumped")
                                       : std::string("PERMANENTLY HUNG: has not pumped")) +
           " for " + FormatDuration(h.duration) + " with messages waiting\n";
  }
  out += "recent reports:";
  if (context.recent_reports.empty()) out += " none";
  out += "\n";
  for (const std::string& report : context.recent_reports) {
    // Indented, so that a report's lines stay apart from the sections.
    std::size_t begin = 0;
    while (begin < report.size()) {
      std::size_t end = report.find('\n', begin);
      if (end == std::string::npos) end = report.size();
      out += "  | " + report.substr(begin, end - begin) + "\n";
      begin = end + 1;
    }
  }
  return out;
}

std::string InspectionToJson(const ProcessSnapshot& snapshot, const InspectionContext& context) {
  std::string out = "{\"pid\":" + std::to_string(getpid()) + ",\"process\":";
  AppendJsonString(&out, ProcessName());
  out += ",\"protocol\":" + std::to_string(kInspectionProtocolVersion) +
         ",\"hang_threshold_ms\":" + Millis(context.threshold) +
         ",\"permanent_threshold_ms\":" + Millis(context.permanent_threshold) + ",\"hangs\":[";
  for (std::size_t i = 0; i < context.hangs.size(); ++i) {
    const HangState& h = context.hangs[i];
    if (i > 0) out += ",";
    out += "{\"tid\":" + std::to_string(h.tid) + ",\"thread_name\":";
    AppendJsonString(&out, h.thread_name);
    out += ",\"apartment\":";
    AppendJsonString(&out, h.apartment);
    out += ",\"state\":";
    AppendJsonString(&out, h.state);
    out += ",\"duration_ms\":" + Millis(h.duration) + "}";
  }
  out += "],\"recent_reports\":[";
  for (std::size_t i = 0; i < context.recent_reports.size(); ++i) {
    if (i > 0) out += ",";
    AppendJsonString(&out, context.recent_reports[i]);
  }
  out += "],\"snapshot\":" + ToJson(snapshot) + "}\n";
  return out;
}

WatchdogWaiter::WatchdogWaiter(const HangWatchdogOptions& options) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) Log("hang watchdog: eventfd failed: " + Errno(errno));

  const char* env = std::getenv("APARTMENTS_INSPECT");
  const bool serve = options.serve_inspection || (env != nullptr && std::strcmp(env, "1") == 0);
  if (serve && wake_fd_ >= 0) {
    if (g_serving.exchange(true)) {
      Log("inspection not served: another hang watchdog in this process serves it");
    } else {
      owns_serving_ = true;
      const std::string dir = options.inspection_directory.empty()
                                  ? DefaultInspectionDirectory()
                                  : options.inspection_directory;
      const std::string path = InspectionSocketPath(getpid(), dir);
      std::string error = PrepareDirectory(dir);
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      if (error.empty() && path.size() >= sizeof address.sun_path) {
        error = "socket path too long: " + path;
      }
      if (error.empty()) {
        RemoveStaleSockets(dir);
        std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
        listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct stat st;
        // The directory is 0700 and ours, so nobody else can reach the socket
        // between bind() and chmod().
        if (listen_fd_ < 0 ||
            bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            chmod(path.c_str(), 0600) != 0 || listen(listen_fd_, 8) != 0 ||
            stat(path.c_str(), &st) != 0) {
          error = "cannot serve on " + path + ": " + Errno(errno);
          if (listen_fd_ >= 0) {
            close(listen_fd_);
            listen_fd_ = -1;
          }
        } else {
          socket_inode_ = st.st_ino;
          socket_path_ = path;
        }
      }
      if (!error.empty()) {
        Log("inspection not served: " + error);
        owns_serving_ = false;
        g_serving.store(false);
      }
    }
  }

  if (options.dump_signal != 0 && wake_fd_ >= 0) {
    if (g_dump_owned.exchange(true)) {
      Log("dump signal not installed: another hang watchdog in this process owns it");
    } else {
      std::call_once(g_dump_pipe_once, [] {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
          g_dump_read_fd = fds[0];
          g_dump_write_fd.store(fds[1]);
        }
      });
      struct sigaction action{};
      action.sa_handler = DumpSignalHandler;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESTART;
      if (g_dump_read_fd < 0 ||
          sigaction(options.dump_signal, &action, &g_previous_action) != 0) {
        Log("dump signal " + std::to_string(options.dump_signal) +
            " not installed: " + Errno(errno));
        g_dump_owned.store(false);
      } else {
        owns_dump_ = true;
        dump_signal_ = options.dump_signal;
      }
    }
  }
}

WatchdogWaiter::~WatchdogWaiter() {
  if (owns_dump_) {
    sigaction(dump_signal_, &g_previous_action, nullptr);
    g_dump_owned.store(false);
  }
  if (listen_fd_ >= 0) {
    // Remove the socket only if it is still the one we bound.
    struct stat st;
    if (stat(socket_path_.c_str(), &st) == 0 && st.st_ino == socket_inode_) {
      unlink(socket_path_.c_str());
    }
    close(listen_fd_);
  }
  if (owns_serving_) g_serving.store(false);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void WatchdogWaiter::Wake() {
  // The store happens before the write, and WaitAndServe checks the flag
  // after every poll() return, so a wake is never lost: either it sees the
  // flag, or it is in (or about to enter) poll() with the eventfd readable.
  stopped_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void ForgetServingAfterFork() noexcept {
  g_serving.store(false, std::memory_order_relaxed);
  g_dump_owned.store(false, std::memory_order_relaxed);
}

void WatchdogWaiter::PollSoon() {
  // The eventfd counts; WaitAndServe drains it and returns true when not
  // stopped, so a poll follows every PollSoon() that precedes it.
  poll_soon_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

bool WatchdogWaiter::WaitAndServe(SteadyClock::time_point deadline,
                                  const std::function<InspectionContext()>& context) {
  if (wake_fd_ < 0) {
    // No eventfd: poll without serving (Stop is then seen within an interval).
    while (!stopped_.load(std::memory_order_acquire) && SteadyClock::now() < deadline &&
           !poll_soon_.exchange(false, std::memory_order_acq_rel)) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
      poll(nullptr, 0, static_cast<int>(std::min<std::int64_t>(left.count(), 50)));
    }
    return !stopped_.load(std::memory_order_acquire);
  }
  for (;;) {
    if (stopped_.load(std::memory_order_acquire)) return false;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return true;
    pollfd fds[3] = {{wake_fd_, POLLIN, 0},
                     {listen_fd_, POLLIN, 0},
                     {owns_dump_ ? g_dump_read_fd : -1, POLLIN, 0}};
    const int r = poll(fds, 3, static_cast<int>(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      Log("hang watchdog: poll failed: " + Errno(errno));
      return !stopped_.load(std::memory_order_acquire);
    }
    if (fds[0].revents != 0) {
      if (stopped_.load(std::memory_order_acquire)) return false;
      std::uint64_t count;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof count);
      if (poll_soon_.exchange(false, std::memory_order_acq_rel)) return true;  // Poll now.
      continue;
    }
    if (fds[2].revents != 0) {
      char bytes[64];
      while (read(g_dump_read_fd, bytes, sizeof bytes) > 0) {
      }
      Dump(context);
    }
    if (fds[1].revents != 0) {
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client >= 0) {
        g_accepted.fetch_add(1, std::memory_order_relaxed);
        ServeClient(client, context);
        close(client);
      }
    }
  }
}

void WatchdogWaiter::Dump(const std::function<InspectionContext()>& context) {
  const std::string text = FormatInspection(TakeSnapshot(), context());
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

void WatchdogWaiter::ServeClient(int fd, const std::function<InspectionContext()>& context) {
  const auto timeout = std::chrono::milliseconds(g_timeout_ms.load(std::memory_order_relaxed));
  // Sends `reply` within the timeout; gives up on a client that does not read.
  auto send_all = [&](const std::string& reply) {
    const auto deadline = SteadyClock::now() + timeout;
    std::size_t sent = 0;
    while (sent < reply.size()) {
      const ssize_t n = send(fd, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (WaitFor(fd, POLLOUT, wake_fd_, deadline) != 1) return;
      } else {
        return;
      }
    }
  };

  ucred peer{};
  socklen_t length = sizeof peer;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
    send_all("error permission denied: cannot read the peer's credentials\n");
    return;
  }
  if (peer.uid != geteuid() && peer.uid != 0) {
    send_all("error permission denied: uid " + std::to_string(peer.uid) +
             " may not inspect a process of uid " + std::to_string(geteuid()) + "\n");
    return;
  }

  // One line, bounded in size and time.
  std::string request;
  const auto deadline = SteadyClock::now() + timeout;
  bool complete = false;
  while (!complete) {
    char buffer[kInspectionMaxRequest];
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      request.append(buffer, static_cast<std::size_t>(n));
      const std::size_t newline = request.find('\n');
      if (newline != std::string::npos) {
        request.resize(newline);
        complete = true;
      } else if (request.size() >= kInspectionMaxRequest) {
        send_all("error request too long (at most " + std::to_string(kInspectionMaxRequest) +
                 " bytes)\n");
        return;
      }
    } else if (n == 0) {
      complete = true;  // EOF ends the line.
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      const int ready = WaitFor(fd, POLLIN, wake_fd_, deadline);
      if (ready < 0) return;  // Stopping.
      if (ready == 0) {
        send_all("error timeout: no request within " + std::to_string(timeout.count()) +
                 " ms\n");
        return;
      }
    } else {
      return;
    }
  }
  if (request.size() > kInspectionMaxRequest) {
    send_all("error request too long (at most " + std::to_string(kInspectionMaxRequest) +
             " bytes)\n");
    return;
  }
  if (!request.empty() && request.back() == '\r') request.pop_back();
  if (request == "version") {
    send_all("ok\n" + VersionLine());
  } else if (request == "snapshot text" || request == "snapshot") {
    send_all("ok\n" + FormatInspection(TakeSnapshot(), context()));
  } else if (request == "snapshot json") {
    send_all("ok\n" + InspectionToJson(TakeSnapshot(), context()));
  } else {
    std::string shown;
    for (char c : request) shown.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    send_all("error unknown request '" + shown +
             "' (expected 'snapshot text', 'snapshot json' or 'version')\n");
  }
}

}  // namespace internal

std::string DefaultInspectionDirectory() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return std::string(runtime) + "/apartments";
  return "/tmp/apartments-" + std::to_string(geteuid());
}

std::string InspectionSocketPath(int pid, const std::string& directory) {
  return (directory.empty() ? DefaultInspectionDirectory() : directory) + "/" +
         std::to_string(pid) + ".sock";
}

}  // namespace apartments
