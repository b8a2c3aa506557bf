// Local servers: publishing class objects to other processes of the same
// user, and activating a class in a server process (com/local_server_hooks.h,
// docs/out_of_process.md).
//
// Where: one Unix socket per published class, named by the CLSID in registry
// form, in the per-user runtime directory (APARTMENTS_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/apartments, else /tmp/apartments-<uid>), which must be a
// directory of ours with mode 0700; the socket is 0600, and each side checks
// the other's uid (SO_PEERCRED).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include <kj/async-unix.h>
#include <kj/debug.h>

#include "apartments/inproc_server.h"
#include "apartments/inspect.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_marshal.h"
#include "com/apartment.h"
#include "com/error_info.h"
#include "com/local_server_hooks.h"
#include "remote/connection.h"
#include "remote/io_thread.h"
#include "remote/remote_proxy.h"

extern char** environ;

namespace apartments::internal {
namespace {

constexpr std::string_view kActivationSource = "CoGetClassObject";
constexpr std::string_view kRegisterSource = "CoRegisterClassObject";
constexpr DWORD kDefaultStartTimeoutMs = 30000;

std::string ErrnoText(int error) { return std::strerror(error); }

// The per-user runtime directory, created when missing. E_ACCESSDENIED (with
// *why) when it cannot be made or is not safely ours.
HRESULT RuntimeDirectory(std::string* dir, std::string* why) {
  std::string path;
  if (const char* set = std::getenv("APARTMENTS_RUNTIME_DIR"); set != nullptr && *set != 0) {
    path = set;
  } else {
    // The directory live inspection uses too ($XDG_RUNTIME_DIR/apartments or
    // /tmp/apartments-<uid>): one per-user place for the runtime's sockets
    // (inspection's are named <pid>.sock, ours by CLSID).
    path = DefaultInspectionDirectory();
  }
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    *why = "the runtime directory " + path + " cannot be created: " + ErrnoText(errno);
    return E_ACCESSDENIED;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
      (st.st_mode & 077) != 0) {
    // Another user could otherwise plant a socket where our clients look.
    *why = "the runtime directory " + path +
           " is not a directory owned by this user with mode 0700 (refused: another user "
           "could reach or replace its sockets)";
    return E_ACCESSDENIED;
  }
  *dir = path;
  return S_OK;
}

bool SocketAddress(const std::string& path, sockaddr_un* address) {
  *address = sockaddr_un{};
  address->sun_family = AF_UNIX;
  if (path.size() >= sizeof address->sun_path) return false;
  std::memcpy(address->sun_path, path.c_str(), path.size() + 1);
  return true;
}

// --- Publishing ------------------------------------------------------------------

void RemoveSocket(const std::string& path, ino_t inode);

struct Listener {
  int fd = -1;
  std::string path;
  ino_t inode = 0;
  bool single_use = false;
  std::shared_ptr<GitEntry> object;
  kj::Own<kj::UnixEventPort::FdObserver> observer;
  kj::Maybe<kj::Promise<void>> loop;

  Listener() = default;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() {
    loop = nullptr;  // Cancels the accept loop before what it uses goes.
    observer = nullptr;
    if (fd >= 0) close(fd);
    RemoveSocket(path, inode);
  }
};

// On the I/O thread.
std::unordered_map<DWORD, kj::Own<Listener>>& Listeners() {
  static auto* listeners = new std::unordered_map<DWORD, kj::Own<Listener>>;
  return *listeners;
}

void StopListening(DWORD cookie) { Listeners().erase(cookie); }

// Accepts every pending client (edge-triggered: until EAGAIN).
kj::Promise<void> AcceptLoop(DWORD cookie, Listener& listener) {
  return listener.observer->whenBecomesReadable().then([cookie, &listener]() -> kj::Promise<void> {
    for (;;) {
      int fd = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        break;  // EAGAIN: wait for the next; anything else: try again later.
      }
      auto peer = std::make_shared<PeerInfo>();
      peer->role = "client process";
      if (!ReadPeer(fd, peer.get()) || peer->uid != geteuid()) {
        close(fd);  // Only the same user may call (the 0700 directory should make this moot).
        continue;
      }
      ServeClientConnection(fd, peer, listener.object);
      if (listener.single_use) {
        // REGCLS_SINGLEUSE: one client, then hidden from further activations.
        IoThread::Get().Post([cookie] { StopListening(cookie); });
        return kj::NEVER_DONE;
      }
    }
    return AcceptLoop(cookie, listener);
  });
}

struct Registration {
  CLSID clsid{};
  DWORD flags = 0;
  std::shared_ptr<GitEntry> object;
  bool published = false;
  // The socket, once published (to remove it at once when withdrawn).
  std::string path;
  ino_t inode = 0;
};

// Removes the socket unless another server has replaced it since.
void RemoveSocket(const std::string& path, ino_t inode) {
  struct stat st {};
  if (!path.empty() && stat(path.c_str(), &st) == 0 && st.st_ino == inode) unlink(path.c_str());
}

struct Registrations {
  std::mutex mu;
  std::map<DWORD, Registration> by_cookie;  // Guarded by mu.
};

Registrations& Published() {
  static auto* registrations = new Registrations;
  return *registrations;
}

// Makes the socket and hands it to the I/O thread. Caller's thread.
HRESULT StartListening(DWORD cookie, Registration& registration) {
  std::string dir;
  std::string why;
  HRESULT hr = RuntimeDirectory(&dir, &why);
  if (FAILED(hr)) {
    SetCallErrorInfo(hr, "the class object cannot be published to other processes: " + why,
                     kRegisterSource);
    return hr;
  }
  const std::string path = dir + "/" + ClassEntryFileName(registration.clsid);
  sockaddr_un address;
  if (!SocketAddress(path, &address)) {
    SetCallErrorInfo(E_INVALIDARG, "the socket path " + path + " is too long for a Unix socket",
                     kRegisterSource);
    return E_INVALIDARG;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    SetCallErrorInfo(E_OUTOFMEMORY, "socket() failed: " + ErrnoText(errno), kRegisterSource);
    return E_OUTOFMEMORY;
  }
  // The last server to register a class serves new clients (a stale socket
  // of a server that died is replaced the same way).
  unlink(path.c_str());
  struct stat st {};
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      chmod(path.c_str(), 0600) != 0 || listen(fd, 64) != 0 || stat(path.c_str(), &st) != 0) {
    const int error = errno;
    close(fd);
    SetCallErrorInfo(E_ACCESSDENIED, "the socket " + path + " cannot be made: " + ErrnoText(error),
                     kRegisterSource);
    return E_ACCESSDENIED;
  }
  registration.path = path;
  registration.inode = st.st_ino;
  auto listener = kj::heap<Listener>();
  listener->fd = fd;
  listener->path = path;
  listener->inode = st.st_ino;
  listener->single_use = (registration.flags & (REGCLS_MULTIPLEUSE | REGCLS_MULTI_SEPARATE)) == 0;
  listener->object = registration.object;
  IoThread::Get().Post([cookie, listener = std::make_shared<kj::Own<Listener>>(kj::mv(listener))] {
    Listener& l = **listener;
    l.observer = kj::heap<kj::UnixEventPort::FdObserver>(
        IoThread::Get().event_port(), l.fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
    l.loop = AcceptLoop(cookie, l).eagerlyEvaluate([](kj::Exception&& e) {
      std::fprintf(stderr, "apartments: accepting clients failed: %s\n", e.getDescription().cStr());
    });
    Listeners()[cookie] = kj::mv(*listener);
  });
  return S_OK;
}

// --- Activation -----------------------------------------------------------------

// Children this process launched as servers (so their exit status is ours
// to read).
struct Launched {
  std::mutex mu;
  std::set<pid_t> pids;  // Guarded by mu.
};

Launched& LaunchedServers() {
  static auto* launched = new Launched;
  return *launched;
}

int ConnectTo(const std::string& path, int* error) {
  sockaddr_un address;
  if (!SocketAddress(path, &address)) {
    *error = ENAMETOOLONG;
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = errno;
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    *error = errno;
    close(fd);
    return -1;
  }
  return fd;
}

DWORD StartTimeoutMs() {
  if (const char* set = std::getenv("APARTMENTS_SERVER_START_TIMEOUT_MS"); set != nullptr) {
    char* end = nullptr;
    unsigned long value = std::strtoul(set, &end, 10);
    if (end != set && *end == 0 && value > 0 && value < 3600000) return static_cast<DWORD>(value);
  }
  return kDefaultStartTimeoutMs;
}

// Waits `ms` the way the calling thread should: an STA keeps serving its
// incoming calls and sent messages.
void PauseBriefly(HANDLE never, DWORD ms) {
  ApartmentRef current = CurrentApartment();
  if (current && current->kind() == ApartmentKind::kSta) {
    DWORD index = 0;
    (void)CoWaitForMultipleHandles(0, ms, 1, &never, &index);
    return;
  }
  (void)WaitForSingleObject(never, ms);
}

std::string StatusText(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return "was killed by signal " + std::to_string(WTERMSIG(status)) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

// Launches `executable -Embedding` and waits until it accepts on `path`.
// Returns the connected socket, or -1 with the failure explained.
int LaunchAndConnect(REFCLSID clsid, const ClassEntry& entry, const std::string& path,
                     pid_t* launched) {
  const std::string name = ClassEntryFileName(clsid);
  const std::string& executable = entry.local_server;
  char* argv[] = {const_cast<char*>(executable.c_str()), const_cast<char*>("-Embedding"), nullptr};
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, executable.c_str(), nullptr, nullptr, argv, environ);
  if (spawned != 0) {
    SetCallErrorInfo(CO_E_SERVER_EXEC_FAILURE,
                     "the server of class " + name + " could not be started: '" + executable +
                         "' (LocalServer32 in " + entry.entry_path + "): " + ErrnoText(spawned),
                     kActivationSource);
    return -1;
  }
  {
    std::lock_guard lock(LaunchedServers().mu);
    LaunchedServers().pids.insert(pid);
  }
  *launched = pid;
  const DWORD timeout = StartTimeoutMs();
  HANDLE never = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  const DWORD start = GetTickCount();
  int fd = -1;
  std::string failure;
  for (;;) {
    int error = 0;
    fd = ConnectTo(path, &error);
    if (fd >= 0) break;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      failure = "the server '" + executable + "' (process " + std::to_string(pid) + ") " +
                StatusText(status) + " before it registered class " + name +
                " (CoRegisterClassObject with CLSCTX_LOCAL_SERVER)";
      break;
    }
    if (GetTickCount() - start >= timeout) {
      kill(pid, SIGKILL);
      (void)waitpid(pid, &status, 0);
      failure = "the server '" + executable + "' (process " + std::to_string(pid) +
                ") did not register class " + name + " within " + std::to_string(timeout) +
                " ms (APARTMENTS_SERVER_START_TIMEOUT_MS); it was killed";
      break;
    }
    // TODO(perf): watch the directory (inotify) instead of polling.
    PauseBriefly(never, 5);
  }
  CloseHandle(never);
  if (fd < 0) {
    SetCallErrorInfo(CO_E_SERVER_EXEC_FAILURE, failure, kActivationSource);
    std::lock_guard lock(LaunchedServers().mu);
    LaunchedServers().pids.erase(pid);
  }
  return fd;
}

}  // namespace

HRESULT PublishLocalServer(REFCLSID clsid, IUnknown* object, DWORD flags, DWORD cookie) {
  Registration registration;
  registration.clsid = clsid;
  registration.flags = flags;
  HRESULT hr = MakeGitEntry(object, &registration.object);
  if (FAILED(hr)) return hr;
  const bool now = (flags & REGCLS_SUSPENDED) == 0;
  if (now) {
    hr = StartListening(cookie, registration);
    if (FAILED(hr)) return hr;
    registration.published = true;
  }
  {
    Registrations& published = Published();
    std::lock_guard lock(published.mu);
    published.by_cookie[cookie] = registration;
  }
  // The registration ends with its apartment, for other processes too.
  if (ApartmentRef current = CurrentApartment()) {
    current->AddShutdownCallback([cookie] { WithdrawLocalServer(cookie); });
  }
  return S_OK;
}

void WithdrawLocalServer(DWORD cookie) {
  Registration registration;
  {
    Registrations& published = Published();
    std::lock_guard lock(published.mu);
    auto it = published.by_cookie.find(cookie);
    if (it == published.by_cookie.end()) return;
    registration = std::move(it->second);
    published.by_cookie.erase(it);
  }
  // At once, on this thread: no new client finds the socket, and the object
  // is released here, in its apartment (clients still connected get
  // CO_E_OBJNOTCONNECTED), as on Windows where a revoked class object is
  // released by CoRevokeClassObject or by the apartment's end.
  RemoveSocket(registration.path, registration.inode);
  registration.object->RevokeNow();
  IoThread::Get().Post([cookie] { StopListening(cookie); });
}

HRESULT ResumeLocalServers() {
  Registrations& published = Published();
  std::lock_guard lock(published.mu);
  for (auto& [cookie, registration] : published.by_cookie) {
    if (registration.published) continue;
    HRESULT hr = StartListening(cookie, registration);
    if (FAILED(hr)) return hr;
    registration.published = true;
  }
  return S_OK;
}

namespace {

HRESULT ActivateOnce(REFCLSID clsid, REFIID riid, void** ppv, bool* launched_one);

}  // namespace

HRESULT GetLocalServerClassObject(REFCLSID clsid, REFIID riid, void** ppv) {
  *ppv = nullptr;
  // A server that is exiting (its last object just went) may still accept
  // on its socket; the class object is then gone before the first reply.
  // Windows' SCM starts a new server then; so do we: try again, a few times,
  // as long as the server we reached was not one we just started.
  HRESULT hr = E_UNEXPECTED;
  for (int attempt = 0; attempt < 5; ++attempt) {
    bool launched = false;
    hr = ActivateOnce(clsid, riid, ppv, &launched);
    if (launched || (hr != RPC_E_SERVER_DIED && hr != RPC_E_DISCONNECTED)) return hr;
  }
  return hr;
}

namespace {

HRESULT ActivateOnce(REFCLSID clsid, REFIID riid, void** ppv, bool* launched_one) {
  *ppv = nullptr;
  const std::string name = ClassEntryFileName(clsid);
  std::string dir;
  std::string why;
  HRESULT hr = RuntimeDirectory(&dir, &why);
  if (FAILED(hr)) {
    SetCallErrorInfo(hr, "no server process can be reached for class " + name + ": " + why,
                     kActivationSource);
    return hr;
  }
  const std::string path = dir + "/" + name;
  int error = 0;
  int fd = ConnectTo(path, &error);
  pid_t launched = 0;
  if (fd < 0) {
    // No server runs (no socket, or a stale one: nobody accepts): start the
    // one the registration entry names.
    ClassEntry entry;
    if (!ReadClassEntry(clsid, &entry) || entry.local_server.empty()) {
      std::string dirs;
      for (const std::string& d : ClassEntryDirectories()) dirs += (dirs.empty() ? "" : ", ") + d;
      SetCallErrorInfo(REGDB_E_CLASSNOTREG,
                       "class " + name + " is not registered: no class object in this process, "
                       "no server process has published it (no socket " + path +
                           "), and no registration entry with LocalServer32 in " + dirs,
                       kActivationSource);
      return REGDB_E_CLASSNOTREG;
    }
    *launched_one = true;
    fd = LaunchAndConnect(clsid, entry, path, &launched);
    if (fd < 0) return CO_E_SERVER_EXEC_FAILURE;
  }
  auto peer = std::make_shared<PeerInfo>();
  peer->role = "server process";
  if (!ReadPeer(fd, peer.get())) {
    close(fd);
    SetCallErrorInfo(E_ACCESSDENIED, "the credentials of the server on " + path +
                                         " cannot be read", kActivationSource);
    return E_ACCESSDENIED;
  }
  if (peer->uid != geteuid()) {
    close(fd);
    SetCallErrorInfo(E_ACCESSDENIED,
                     "the server on " + path + " (process " + std::to_string(peer->pid) +
                         ") runs as another user (uid " + std::to_string(peer->uid) + "): refused",
                     kActivationSource);
    return E_ACCESSDENIED;
  }
  {
    std::lock_guard lock(LaunchedServers().mu);
    peer->started_by_us = LaunchedServers().pids.count(peer->pid) != 0;
  }
  std::shared_ptr<RemoteObject> bootstrap;
  hr = ConnectToServer(fd, peer, &bootstrap);
  if (FAILED(hr)) return hr;
  IUnknown* proxy = nullptr;
  hr = CreateRemoteProxy(std::move(bootstrap), IID_IUnknown, &proxy);
  if (FAILED(hr)) return hr;
  hr = proxy->QueryInterface(riid, ppv);
  proxy->Release();
  return hr;
}

}  // namespace
}  // namespace apartments::internal
