// Apartments across processes, end to end: the test process and a peer
// process (test_peer/peer.cc) on the real transport (Unix sockets, Cap'n
// Proto, the I/O thread, couriers). Every wait is bounded: the test's own
// waits by kBound, a call into the peer by the peer's 30 s safety bound (it
// exits, and the call fails), a peer that must die by SIGKILL.
//
// Each test process has its own runtime directory and class directory
// (private to it), and the peer inherits both through the environment.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "apartments/com_object.h"
#include "apartments/error_info.h"
#include "apartments/inproc_server.h"
#include "base/test_util.h"
#include "remote/test_peer/peer_interfaces.h"

extern char** environ;

namespace apartments::internal {
namespace {

using ::testing::HasSubstr;
using testing::BoundedThread;
using testing::kBound;
using testing::kBoundMs;

// The directories, made once per test process.
struct Directories {
  std::string runtime;
  std::string classes;
};

const Directories& PrivateDirectories() {
  // Leaked: the exit handler below still uses it.
  static const Directories& dirs = *[] {
    auto* made = new Directories;
    Directories& d = *made;
    char runtime[] = "/tmp/apartments-remote-test-XXXXXX";
    char classes[] = "/tmp/apartments-remote-classes-XXXXXX";
    if (mkdtemp(runtime) == nullptr || mkdtemp(classes) == nullptr) std::abort();
    d.runtime = runtime;
    d.classes = classes;
    setenv("APARTMENTS_RUNTIME_DIR", runtime, 1);
    setenv("APARTMENTS_CLASS_PATH", classes, 1);
    std::atexit([] {
      // Best effort: the entries written, then both directories (a socket a
      // failed test left stays, and so does its directory).
      const Directories& dirs = PrivateDirectories();
      unlink((dirs.classes + "/" + ClassEntryFileName(peer::CLSID_Peer)).c_str());
      rmdir(dirs.classes.c_str());
      // A killed server's socket stays behind (as it would for real).
      unlink((dirs.runtime + "/" + ClassEntryFileName(peer::CLSID_Peer)).c_str());
      rmdir(dirs.runtime.c_str());
    });
    return made;
  }();
  return dirs;
}

void WriteEntry(REFCLSID clsid, const std::string& text) {
  std::ofstream(PrivateDirectories().classes + "/" + ClassEntryFileName(clsid)) << text;
}

// Waits for `event` while serving incoming calls (this thread is an STA).
bool PumpUntil(HANDLE event, DWORD ms = kBoundMs) {
  DWORD index = 0;
  return CoWaitForMultipleHandles(0, ms, 1, &event, &index) == S_OK && index == 0;
}

// Pumps until `condition` holds or the bound passes.
template <typename Condition>
bool PumpUntil(Condition condition, DWORD ms = kBoundMs) {
  HANDLE never = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  const DWORD start = GetTickCount();
  bool held = condition();
  while (!held && GetTickCount() - start < ms) {
    DWORD index = 0;
    (void)CoWaitForMultipleHandles(0, 5, 1, &never, &index);
    held = condition();
  }
  CloseHandle(never);
  return held;
}

class Callback final : public ComObject<Callback, peer::ICallback> {
 public:
  Callback() : event_(CreateEventW(nullptr, TRUE, FALSE, nullptr)) {}
  ~Callback() override { CloseHandle(event_); }
  STDMETHODIMP Notify(int value) override {
    value_ = value;
    tid_ = GetCurrentThreadId();
    SetEvent(event_);
    return S_OK;
  }
  HANDLE event() const { return event_; }
  std::atomic<int> value_{-1};
  std::atomic<DWORD> tid_{0};

 private:
  HANDLE event_;
};

class RemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PrivateDirectories();
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    WriteEntry(peer::CLSID_Peer, std::string("LocalServer32=") + APARTMENTS_REMOTE_TEST_PEER + "\n");
  }
  void TearDown() override {
    // The peer exits when its last object goes; the next test must not
    // reach it while it exits (it would find the class object gone), so
    // wait for it (bounded; reaped here, or already by the runtime).
    if (peer_pid_ != 0) {
      EXPECT_TRUE(PumpUntil([&] {
        int status = 0;
        return waitpid(peer_pid_, &status, WNOHANG) != 0;
      })) << "the peer did not exit";
      kill(peer_pid_, SIGKILL);
    }
    unsetenv("PEER_MODE");
    unsetenv("APARTMENTS_SERVER_START_TIMEOUT_MS");
    CoUninitialize();
  }

  // A new peer server and an object in it.
  peer::IPeer* StartPeer() {
    peer::IPeer* object = nullptr;
    HRESULT hr = CoCreateInstance(peer::CLSID_Peer, nullptr, CLSCTX_LOCAL_SERVER, peer::IID_IPeer,
                                  reinterpret_cast<void**>(&object));
    EXPECT_EQ(hr, S_OK) << LastErrorDescription();
    DWORD pid = 0;
    if (object != nullptr && SUCCEEDED(object->GetPid(&pid))) peer_pid_ = static_cast<pid_t>(pid);
    return object;
  }

  pid_t peer_pid_ = 0;
};

// Tests that CoCreateInstance(CLSCTX_LOCAL_SERVER) launches the server its
// registration entry names, and a call runs there and returns its results.
TEST_F(RemoteTest, ActivationLaunchesTheServerAndACallCrosses) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  int sum = 0;
  EXPECT_EQ(object->Add(2, 3, &sum), S_OK);
  EXPECT_EQ(sum, 5);
  DWORD pid = 0;
  EXPECT_EQ(object->GetPid(&pid), S_OK);
  EXPECT_NE(pid, 0u);
  EXPECT_NE(pid, static_cast<DWORD>(getpid()));
  object->Release();
}

// Tests that strings cross both ways.
TEST_F(RemoteTest, StringsCross) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  BSTR out = nullptr;
  EXPECT_EQ(object->Echo(L"across", &out), S_OK);
  ASSERT_NE(out, nullptr);
  EXPECT_STREQ(out, L"echo: across");
  SysFreeString(out);
  object->Release();
}

// Tests that the server's failure and its error info come back, naming the
// server process.
TEST_F(RemoteTest, TheServersFailureAndExplanationComeBack) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  EXPECT_EQ(object->Fail(E_ACCESSDENIED), E_ACCESSDENIED);
  EXPECT_THAT(LastErrorDescription(), HasSubstr("peer failed on purpose"));
  EXPECT_THAT(LastErrorDescription(), HasSubstr("server process"));
  object->Release();
}

// Tests that the server can call back into the waiting caller's STA: the
// callback runs on the caller's thread while it waits for the call.
TEST_F(RemoteTest, ACallbackIntoTheWaitingStaIsServed) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  Callback* callback = MakeComObject<Callback>();
  EXPECT_EQ(object->CallBack(callback, 7), S_OK);
  EXPECT_EQ(callback->value_, 7);
  EXPECT_EQ(callback->tid_, GetCurrentThreadId());
  object->Release();
  // The server released the callback with its object (asynchronously: its
  // release comes back through this STA's queue).
  EXPECT_TRUE(PumpUntil([&] { return callback->RefCountForTesting() == 1; }));
  callback->Release();
}

// Tests that an [in] interface kept by the server comes back from an [out]
// parameter as this process's own object, not a proxy through the server.
TEST_F(RemoteTest, AnInterfaceSentThereComesBackAsItself) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  Callback* callback = MakeComObject<Callback>();
  EXPECT_EQ(object->Keep(callback), S_OK);
  peer::ICallback* back = nullptr;
  EXPECT_EQ(object->GetKept(&back), S_OK);
  EXPECT_EQ(back, static_cast<peer::ICallback*>(callback));
  if (back != nullptr) back->Release();
  object->Release();
  EXPECT_TRUE(PumpUntil([&] { return callback->RefCountForTesting() == 1; }));
  callback->Release();
}

// Tests that a server killed (SIGKILL) while a call is in progress fails
// that call with RPC_E_SERVER_DIED, explained with its pid and signal, and
// a later call with RPC_E_DISCONNECTED.
TEST_F(RemoteTest, AServerKilledMidCallFailsTheCallWithServerDied) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  DWORD pid = 0;
  ASSERT_EQ(object->GetPid(&pid), S_OK);
  Callback* started = MakeComObject<Callback>();
  // Kills the server once the call is running there (its callback arrived),
  // or after the bound, so that the call always ends.
  BoundedThread killer([&] {
    (void)WaitForSingleObject(started->event(), kBoundMs);
    kill(static_cast<pid_t>(pid), SIGKILL);
  });
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_EQ(object->Block(started), RPC_E_SERVER_DIED);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, kBound);
  killer.Join();
  EXPECT_EQ(started->value_, 0);  // It was killed mid-call.
  const std::string why = LastErrorDescription();
  EXPECT_THAT(why, HasSubstr("RPC_E_SERVER_DIED"));
  EXPECT_THAT(why, HasSubstr(std::to_string(pid)));
  EXPECT_THAT(why, HasSubstr("SIGKILL"));
  EXPECT_THAT(why, HasSubstr("test_peer"));
  int sum = 0;
  EXPECT_EQ(object->Add(1, 2, &sum), RPC_E_DISCONNECTED);
  EXPECT_THAT(LastErrorDescription(), HasSubstr("was not sent"));
  object->Release();
  // The dead connection dropped the server's reference to the callback.
  EXPECT_TRUE(PumpUntil([&] { return started->RefCountForTesting() == 1; }));
  started->Release();
}

// Calls back into the server from inside the server's callback.
class Reentrant final : public ComObject<Reentrant, peer::ICallback> {
 public:
  explicit Reentrant(peer::IPeer* server) : server_(server) {}
  STDMETHODIMP Notify(int posted) override {
    posted_ = posted;
    int sum = 0;
    result_ = server_->Add(1, 2, &sum);
    why_ = LastErrorDescription();
    return S_OK;
  }
  peer::IPeer* server_;
  int posted_ = 0;
  HRESULT result_ = E_UNEXPECTED;
  std::string why_;
};

// Tests that a call into a server STA whose posted-message queue is full
// fails with RPC_E_SYS_CALL_FAILED and the server's explanation, as it does
// within a process.
TEST_F(RemoteTest, ACallIntoAFullServerQueueFailsWithItsExplanation) {
  peer::IPeer* object = StartPeer();
  ASSERT_NE(object, nullptr);
  Reentrant* callback = MakeComObject<Reentrant>(object);
  EXPECT_EQ(object->FillQueueThenCall(callback), S_OK) << LastErrorDescription();
  EXPECT_GT(callback->posted_, 0);
  EXPECT_EQ(callback->result_, RPC_E_SYS_CALL_FAILED);
  EXPECT_THAT(callback->why_, HasSubstr("queue is full"));
  EXPECT_THAT(callback->why_, HasSubstr("server process"));
  // Drained: calls go through again.
  int sum = 0;
  EXPECT_EQ(object->Add(2, 2, &sum), S_OK);
  EXPECT_EQ(sum, 4);
  object->Release();
  EXPECT_TRUE(PumpUntil([&] { return callback->RefCountForTesting() == 1; }));
  callback->Release();
}

// Tests that a server that never registers fails activation with
// CO_E_SERVER_EXEC_FAILURE after the start bound, and is killed.
TEST_F(RemoteTest, AServerThatNeverRegistersFailsActivation) {
  setenv("PEER_MODE", "never-register", 1);
  setenv("APARTMENTS_SERVER_START_TIMEOUT_MS", "300", 1);
  peer::IPeer* object = nullptr;
  EXPECT_EQ(CoCreateInstance(peer::CLSID_Peer, nullptr, CLSCTX_LOCAL_SERVER, peer::IID_IPeer,
                             reinterpret_cast<void**>(&object)),
            CO_E_SERVER_EXEC_FAILURE);
  EXPECT_EQ(object, nullptr);
  EXPECT_THAT(LastErrorDescription(), HasSubstr("did not register class"));
  EXPECT_THAT(LastErrorDescription(), HasSubstr("within 300 ms"));
}

// Tests that a server that exits before registering fails activation with
// CO_E_SERVER_EXEC_FAILURE naming its exit status.
TEST_F(RemoteTest, AServerThatExitsFirstFailsActivationWithItsStatus) {
  setenv("PEER_MODE", "exit-3", 1);
  peer::IPeer* object = nullptr;
  EXPECT_EQ(CoCreateInstance(peer::CLSID_Peer, nullptr, CLSCTX_LOCAL_SERVER, peer::IID_IPeer,
                             reinterpret_cast<void**>(&object)),
            CO_E_SERVER_EXEC_FAILURE);
  EXPECT_THAT(LastErrorDescription(), HasSubstr("exited with status 3"));
}

// Tests that an executable that cannot be started fails activation with
// CO_E_SERVER_EXEC_FAILURE naming it.
TEST_F(RemoteTest, AMissingServerExecutableFailsActivation) {
  WriteEntry(peer::CLSID_Peer, "LocalServer32=/nonexistent/server\n");
  peer::IPeer* object = nullptr;
  EXPECT_EQ(CoCreateInstance(peer::CLSID_Peer, nullptr, CLSCTX_LOCAL_SERVER, peer::IID_IPeer,
                             reinterpret_cast<void**>(&object)),
            CO_E_SERVER_EXEC_FAILURE);
  EXPECT_THAT(LastErrorDescription(), HasSubstr("/nonexistent/server"));
}

// Tests that a class with neither a running server nor an entry is
// REGDB_E_CLASSNOTREG, explained.
TEST_F(RemoteTest, AnUnknownClassIsNotRegistered) {
  const CLSID unknown = GuidFromLiteral("3c5e1a7b-0d2f-4e6a-8b9c-7d1e2f3a4cff");
  IUnknown* object = nullptr;
  EXPECT_EQ(CoCreateInstance(unknown, nullptr, CLSCTX_LOCAL_SERVER, IID_IUnknown,
                             reinterpret_cast<void**>(&object)),
            REGDB_E_CLASSNOTREG);
  EXPECT_THAT(LastErrorDescription(), HasSubstr("LocalServer32"));
}

// Objects of CLSID_InTest, served by this process.
class Counted final : public ComObject<Counted, peer::ICallback> {
 public:
  explicit Counted(HANDLE notified) : notified_(notified) {}
  STDMETHODIMP Notify(int) override {
    SetEvent(notified_);
    return S_OK;
  }

 private:
  HANDLE notified_;
};

class CountedFactory final : public ComObject<CountedFactory, IClassFactory> {
 public:
  explicit CountedFactory(Counted* object) : object_(object) {}
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    return object_->QueryInterface(riid, ppv);
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }

 private:
  Counted* object_;
};

// Tests that a client process killed while it holds a reference releases it
// at once: the object goes back to this process's own reference.
TEST_F(RemoteTest, AClientKilledReleasesItsReferences) {
  HANDLE notified = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  Counted* object = MakeComObject<Counted>(notified);
  CountedFactory* factory = MakeComObject<CountedFactory>(object);
  DWORD cookie = 0;
  ASSERT_EQ(CoRegisterClassObject(peer::CLSID_InTest, factory->Identity(), CLSCTX_LOCAL_SERVER,
                                  REGCLS_MULTIPLEUSE, &cookie),
            S_OK);
  pid_t client = 0;
  char* argv[] = {const_cast<char*>(APARTMENTS_REMOTE_TEST_PEER), const_cast<char*>("--client"),
                  nullptr};
  ASSERT_EQ(posix_spawn(&client, APARTMENTS_REMOTE_TEST_PEER, nullptr, nullptr, argv, environ), 0);
  // The client holds the object once its Notify arrived (served here).
  EXPECT_TRUE(PumpUntil(notified));
  EXPECT_GT(object->RefCountForTesting(), 1u);
  kill(client, SIGKILL);
  int status = 0;
  EXPECT_EQ(waitpid(client, &status, 0), client);
  EXPECT_TRUE(PumpUntil([&] { return object->RefCountForTesting() == 1; }))
      << "references: " << object->RefCountForTesting();
  EXPECT_EQ(CoRevokeClassObject(cookie), S_OK);
  factory->Release();
  object->Release();
  CloseHandle(notified);
}

bool SocketExists(REFCLSID clsid) {
  struct stat st {};
  return stat((PrivateDirectories().runtime + "/" + ClassEntryFileName(clsid)).c_str(), &st) == 0;
}

// Tests that REGCLS_SUSPENDED publishes nothing until CoResumeClassObjects,
// and CoRevokeClassObject removes the socket at once.
TEST_F(RemoteTest, SuspendedRegistrationsArePublishedAtResume) {
  HANDLE notified = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  Counted* object = MakeComObject<Counted>(notified);
  CountedFactory* factory = MakeComObject<CountedFactory>(object);
  DWORD cookie = 0;
  ASSERT_EQ(CoRegisterClassObject(peer::CLSID_InTest, factory->Identity(), CLSCTX_LOCAL_SERVER,
                                  REGCLS_MULTIPLEUSE | REGCLS_SUSPENDED, &cookie),
            S_OK);
  EXPECT_FALSE(SocketExists(peer::CLSID_InTest));
  EXPECT_EQ(CoResumeClassObjects(), S_OK);
  EXPECT_TRUE(SocketExists(peer::CLSID_InTest));
  EXPECT_EQ(CoRevokeClassObject(cookie), S_OK);
  EXPECT_FALSE(SocketExists(peer::CLSID_InTest));
  factory->Release();
  EXPECT_TRUE(PumpUntil([&] { return object->RefCountForTesting() == 1; }));
  object->Release();
  CloseHandle(notified);
}

}  // namespace
}  // namespace apartments::internal
