// apartments-wct: wait chain traversal for a live process using apartments.
//
//   apartments-wct <pid> [--json] [--socket PATH] [--timeout-ms N]
//   apartments-wct <pid> --ping
//   apartments-wct --list
//
// Asks the process's hang watchdog (on by default in any process that uses
// message queues or COM), over its inspection socket (apartments/inspect.h),
// for every thread's apartment, queue, last-pumped age and wait chain, the
// cycles among them, the current hangs and the recent reports, and prints
// the answer. The tool depends on nothing but the protocol, so it can inspect
// a process built against another version of the library.
//
// Exit codes: 0 answered; 1 usage; 2 no such process; 3 the process does
// not serve inspection (or left only a stale socket); 4 permission denied;
// 5 the server failed, answered an error, or timed out.
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitNoProcess = 2;
constexpr int kExitNotServing = 3;
constexpr int kExitDenied = 4;
constexpr int kExitFailed = 5;

const char kUsage[] =
    "usage: apartments-wct <pid> [--json] [--socket PATH] [--timeout-ms N]\n"
    "       apartments-wct <pid> --ping\n"
    "       apartments-wct --list\n"
    "Prints the threads, apartments, message queues, wait chains, cycles, hangs\n"
    "and recent diagnostic reports of a running process that uses apartments.\n"
    "\n"
    "Every process that has made a message queue or called CoInitializeEx serves\n"
    "this by default (an owner-only socket; only your own uid or root may ask),\n"
    "and reports hangs and deadlocks to stderr by itself. The environment of the\n"
    "inspected process configures that (docs/diagnostics.md):\n"
    "  APARTMENTS_DIAGNOSTICS=off|report|abort  all diagnostics off; report (default);\n"
    "                                           or abort on a deadlock no timeout ends\n"
    "  APARTMENTS_INSPECT=0|1                   serve apartments-wct (default 1)\n"
    "  APARTMENTS_HANG_THRESHOLD_MS=N           not responding after N ms (5000)\n"
    "  APARTMENTS_CALL_THRESHOLD_MS=N           one call or message handled N ms (5000)\n"
    "  APARTMENTS_CYCLE_THRESHOLD_MS=N          a cycle that may still end, after N ms (5000)\n"
    "  APARTMENTS_DIAGNOSTICS_FORMAT=text|json  report format (text)\n"
    "  APARTMENTS_DIAGNOSTICS_OUTPUT=stderr|socket|/path  where reports go (stderr);\n"
    "                                           the last 16 are always shown here too\n";

using SteadyClock = std::chrono::steady_clock;

void Error(const std::string& message) {
  std::fprintf(stderr, "apartments-wct: %s\n", message.c_str());
}

bool ProcessExists(long pid) { return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

std::string ProcessName(long pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/comm";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "?";
  char buffer[64] = {};
  if (std::fgets(buffer, sizeof buffer, f) == nullptr) buffer[0] = '\0';
  std::fclose(f);
  std::string name = buffer;
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

// The value of XDG_RUNTIME_DIR in process `pid`'s environment (as it was at
// exec), when we may read it; "" otherwise.
std::string RuntimeDirOf(long pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/environ";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return std::string();
  std::string environment;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0 && environment.size() < (1u << 20)) {
    environment.append(buffer, n);
  }
  std::fclose(f);
  const std::string key = "XDG_RUNTIME_DIR=";
  for (std::size_t at = 0; at < environment.size();) {
    const std::size_t end = environment.find('\0', at);
    const std::string entry = environment.substr(at, end == std::string::npos ? end : end - at);
    if (entry.rfind(key, 0) == 0) return entry.substr(key.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return std::string();
}

// The directories process `pid` of `uid` may serve from, most likely first:
// its own XDG_RUNTIME_DIR, ours (same user), the usual one, the fallback.
std::vector<std::string> CandidateDirectories(long pid, uid_t uid) {
  std::vector<std::string> dirs;
  if (pid != 0) {
    const std::string theirs = RuntimeDirOf(pid);
    if (!theirs.empty() && theirs[0] == '/') dirs.push_back(theirs + "/apartments");
  }
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/' && uid == geteuid()) {
    dirs.push_back(std::string(runtime) + "/apartments");
  }
  dirs.push_back("/run/user/" + std::to_string(uid) + "/apartments");
  dirs.push_back("/tmp/apartments-" + std::to_string(uid));
  std::vector<std::string> unique;
  for (const std::string& d : dirs) {
    bool seen = false;
    for (const std::string& u : unique) seen = seen || u == d;
    if (!seen) unique.push_back(d);
  }
  return unique;
}

// connect(2) to `path`: the fd, or -1 with errno set.
int Connect(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

// Sends `request` and reads the whole answer within `timeout`; false on
// timeout or error (with `*error` set).
bool Exchange(int fd, const std::string& request, std::chrono::milliseconds timeout,
              std::string* answer, std::string* error) {
  const auto deadline = SteadyClock::now() + timeout;
  const std::string line = request + "\n";
  // EPIPE/ECONNRESET: the server answered (a refusal) and closed before our
  // request arrived; its answer is still there to read.
  const ssize_t sent = send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  if (sent < 0 && errno != EPIPE && errno != ECONNRESET) {
    *error = std::string("cannot send the request: ") + std::strerror(errno);
    return false;
  }
  if (sent >= 0 && static_cast<std::size_t>(sent) != line.size()) {
    *error = "cannot send the request: short write";
    return false;
  }
  char buffer[65536];
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) {
      *error = "no complete answer within " + std::to_string(timeout.count()) +
               " ms (is the watchdog thread stuck?)";
      return false;
    }
    pollfd p = {fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      *error = std::string("poll: ") + std::strerror(errno);
      return false;
    }
    if (r == 0) continue;
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      // A server that refuses us closes without reading our request, which
      // resets the connection after its answer.
      if (errno == ECONNRESET && !answer->empty()) return true;
      *error = std::string("cannot read the answer: ") + std::strerror(errno);
      return false;
    }
    answer->append(buffer, static_cast<std::size_t>(n));
  }
}

int Inspect(long pid, const std::string& request, const std::string& socket_override,
            std::chrono::milliseconds timeout) {
  std::vector<std::string> paths;
  if (!socket_override.empty()) {
    paths.push_back(socket_override);
  } else {
    struct stat st;
    const std::string proc = "/proc/" + std::to_string(pid);
    if (stat(proc.c_str(), &st) != 0 || !ProcessExists(pid)) {
      Error("no such process: " + std::to_string(pid));
      return kExitNoProcess;
    }
    for (const std::string& dir : CandidateDirectories(pid, st.st_uid)) {
      paths.push_back(dir + "/" + std::to_string(pid) + ".sock");
    }
  }
  std::string denied;
  std::string stale;
  int fd = -1;
  for (const std::string& path : paths) {
    fd = Connect(path);
    if (fd >= 0) break;
    if (errno == EACCES || errno == EPERM) {
      if (denied.empty()) denied = path;
    } else if (errno == ECONNREFUSED) {
      if (stale.empty()) stale = path;
    }
  }
  if (fd < 0) {
    if (!denied.empty()) {
      Error("permission denied opening " + denied +
            ": only the process's user (or root) may inspect it");
      return kExitDenied;
    }
    std::string message = "process " + std::to_string(pid) + " does not serve inspection";
    if (!stale.empty()) {
      message += " (" + stale + " is a stale socket: nothing listens on it)";
    } else {
      message += " (no socket at";
      for (const std::string& path : paths) message += " " + path;
      message += ")";
    }
    message +=
        ".\nIt must start a HangWatchdog with serve_inspection = true, or run with "
        "APARTMENTS_INSPECT=1 and start one.";
    Error(message);
    return kExitNotServing;
  }
  std::string answer;
  std::string error;
  const bool ok = Exchange(fd, request, timeout, &answer, &error);
  close(fd);
  if (!ok) {
    Error("process " + std::to_string(pid) + ": " + error);
    return kExitFailed;
  }
  if (answer.rfind("ok\n", 0) == 0) {
    std::fwrite(answer.data() + 3, 1, answer.size() - 3, stdout);
    return kExitOk;
  }
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  if (answer.rfind("error ", 0) == 0) answer.erase(0, 6);
  if (answer.empty()) answer = "the server closed the connection without answering";
  Error("process " + std::to_string(pid) + ": " + answer);
  return answer.rfind("permission denied", 0) == 0 ? kExitDenied : kExitFailed;
}

// Lists the processes serving inspection for our user, removing sockets whose
// process is gone or that nobody listens on.
int List() {
  std::set<std::string> seen_dirs;
  int count = 0;
  for (const std::string& dir : CandidateDirectories(0, geteuid())) {
    char resolved[PATH_MAX];
    if (realpath(dir.c_str(), resolved) == nullptr) continue;
    if (!seen_dirs.insert(resolved).second) continue;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    std::vector<std::string> names;
    while (dirent* entry = readdir(d)) names.push_back(entry->d_name);
    closedir(d);
    for (const std::string& name : names) {
      const std::size_t dot = name.find(".sock");
      if (dot == 0 || dot == std::string::npos || dot + 5 != name.size() ||
          name.find_first_not_of("0123456789") != dot) {
        continue;
      }
      const long pid = std::strtol(name.c_str(), nullptr, 10);
      const std::string path = dir + "/" + name;
      bool stale = !ProcessExists(pid);
      if (!stale) {
        const int fd = Connect(path);
        if (fd >= 0) {
          close(fd);
        } else {
          stale = errno == ECONNREFUSED;
        }
      }
      if (stale) {
        if (unlink(path.c_str()) == 0) {
          std::fprintf(stderr, "apartments-wct: removed stale socket %s\n", path.c_str());
        }
        continue;
      }
      std::printf("%ld\t%s\t%s\n", pid, ProcessName(pid).c_str(), path.c_str());
      ++count;
    }
  }
  if (count == 0) std::fprintf(stderr, "apartments-wct: no process of yours serves inspection\n");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  long pid = 0;
  bool json = false;
  bool ping = false;
  bool list = false;
  std::string socket_override;
  long timeout_ms = 10000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      json = true;
    } else if (arg == "--ping") {
      ping = true;
    } else if (arg == "--list") {
      list = true;
    } else if (arg == "--socket" && i + 1 < argc) {
      socket_override = argv[++i];
    } else if (arg == "--timeout-ms" && i + 1 < argc) {
      char* end = nullptr;
      timeout_ms = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || timeout_ms <= 0) {
        Error("bad --timeout-ms: " + std::string(argv[i]));
        return kExitUsage;
      }
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    } else if (pid == 0 && !arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos) {
      pid = std::strtol(arg.c_str(), nullptr, 10);
      if (pid <= 0) {
        Error("bad pid: " + arg);
        return kExitUsage;
      }
    } else {
      Error("unexpected argument: " + arg);
      std::fputs(kUsage, stderr);
      return kExitUsage;
    }
  }
  if (list) {
    if (pid != 0 || json || ping) {
      std::fputs(kUsage, stderr);
      return kExitUsage;
    }
    return List();
  }
  if (pid == 0) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  const std::string request = ping ? "version" : json ? "snapshot json" : "snapshot text";
  return Inspect(pid, request, socket_override, std::chrono::milliseconds(timeout_ms));
}
