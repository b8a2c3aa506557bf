// A process for apartments-wct's tests (test-only). Two modes:
//
//   wct_test_child serve [--dump-signal]
//     Runs an STA thread 'stuck-sta' stuck in WaitForSingleObject on an event
//     'never-signaled' with three posted messages in its queue, and nothing
//     else: the default diagnostics serve inspection in the default directory
//     (the test sets XDG_RUNTIME_DIR), with the hang threshold at 100 ms
//     (APARTMENTS_HANG_THRESHOLD_MS). Once its own socket shows the hang,
//     prints "ready <socket path>" on stdout; exits cleanly when stdin closes
//     or reads "exit". With --dump-signal, a watchdog of its own owns SIGQUIT.
//
//   wct_test_child peer <uid> <socket path>
//     Drops to `uid` (setgid/setgroups/setuid), connects to the socket, asks
//     "version", prints "connected" and the answer, or "connect failed: <errno
//     name>" (exit 3). Used by root tests to play another user.
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "apartments/diagnostics.h"
#include "apartments/inspect.h"
#include "apartments/win32.h"

namespace {

using namespace apartments;

// Asks this process's own inspection socket for its text snapshot ("" when
// it does not answer).
std::string AskSelf(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string();
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const char request[] = "snapshot text\n";
    [[maybe_unused]] ssize_t sent = send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) answer.append(buffer, n);
  }
  close(fd);
  return answer;
}

int Serve(bool dump_signal) {
  // The default diagnostics serve inspection with no code; only the hang
  // threshold is shortened, through the environment (before the first queue).
  setenv("APARTMENTS_HANG_THRESHOLD_MS", "100", 0);
  HANDLE never = CreateEventW(nullptr, TRUE, FALSE, L"never-signaled");
  HANDLE hung = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE queue_ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::atomic<DWORD> sta_tid{0};
  std::thread sta([&] {
    SetThreadDescription(GetCurrentThread(), L"stuck-sta");
    if (FAILED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED))) std::abort();
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    sta_tid.store(GetCurrentThreadId());
    SetEvent(queue_ready);
    WaitForSingleObject(never, INFINITE);
    while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) {
    }
    CoUninitialize();
  });
  if (WaitForSingleObject(queue_ready, 10000) != WAIT_OBJECT_0) return 2;
  for (UINT i = 0; i < 3; ++i) PostThreadMessageW(sta_tid.load(), WM_APP + i, 0, 0);

  // The dump signal is not part of the defaults: a watchdog of the program's
  // own (not serving: the default one does) installs it.
  std::unique_ptr<HangWatchdog> dumper;
  if (dump_signal) {
    HangWatchdogOptions options;
    options.threshold = std::chrono::milliseconds(100);
    options.permanent_threshold = std::chrono::hours(1);
    options.poll_interval = std::chrono::milliseconds(20);
    options.dump_signal = SIGQUIT;
    options.callback = [&](const HangReport& report) {
      if (report.event == HangEvent::kHung && report.tid == sta_tid.load()) SetEvent(hung);
    };
    dumper = std::make_unique<HangWatchdog>(options);
    dumper->Start();
  }
  const std::string path = InspectionSocketPath(getpid());
  bool ready = false;
  for (int i = 0; i < 1000 && !ready; ++i) {
    ready = dump_signal ? WaitForSingleObject(hung, 10) == WAIT_OBJECT_0
                        : AskSelf(path).find("HUNG: has not pumped") != std::string::npos;
    if (!ready && !dump_signal) Sleep(10);  // Polling the server, not synchronizing threads.
  }
  int rc = 0;
  if (!ready) {
    std::printf("failed\n");
    rc = 2;
  } else {
    std::printf("ready %s\n", path.c_str());
  }
  std::fflush(stdout);
  char line[64];
  while (rc == 0 && std::fgets(line, sizeof line, stdin) != nullptr) {
    if (std::strncmp(line, "exit", 4) == 0) break;
  }
  SetEvent(never);
  sta.join();
  if (dumper) dumper->Stop();
  CloseHandle(never);
  CloseHandle(hung);
  CloseHandle(queue_ready);
  return rc;
}

int Peer(uid_t uid, const std::string& path) {
  if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0) {
    std::printf("cannot drop to uid %u: %s\n", static_cast<unsigned>(uid), std::strerror(errno));
    return 4;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::printf("connect failed: %s\n", errno == EACCES ? "EACCES" : std::strerror(errno));
    return 3;
  }
  std::printf("connected\n");
  // The server may refuse before reading: a failed send still lets us read
  // its answer.
  const char request[] = "version\n";
  [[maybe_unused]] ssize_t sent = send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
  // The server answers and closes within its own timeout; the test bounds us.
  char buffer[512];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) std::fwrite(buffer, 1, n, stdout);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) {
    return Serve(argc >= 3 && std::strcmp(argv[2], "--dump-signal") == 0);
  }
  if (argc == 4 && std::strcmp(argv[1], "peer") == 0) {
    return Peer(static_cast<uid_t>(std::strtoul(argv[2], nullptr, 10)), argv[3]);
  }
  std::fprintf(stderr, "usage: wct_test_child serve [--dump-signal] | peer <uid> <socket>\n");
  return 1;
}
