// Connections, tokens and the object capability (connection.h).
#include "remote/connection.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <unordered_map>

#include <capnp/capability.h>
#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include "apartments/error_info.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_marshal.h"
#include "com/error_info.h"
#include "com/wire_stubs.h"
#include "remote/io_thread.h"
#include "remote/object.capnp.h"
#include "remote/remote_proxy.h"

namespace apartments::internal {

// --- PeerInfo ----------------------------------------------------------------

void PeerInfo::MarkDead() noexcept {
  if (dead.exchange(true, std::memory_order_acq_rel)) return;
  std::lock_guard lock(mu_);
  died_at_ = GetClock().Now();
}

Clock::TimePoint PeerInfo::died_at() const {
  std::lock_guard lock(mu_);
  return died_at_;
}

std::string PeerInfo::Describe() const {
  std::string text = role + " " + std::to_string(pid);
  if (!executable.empty()) text += " (" + executable + ")";
  return text;
}

std::string PeerInfo::DescribeEnd() {
  std::lock_guard end_lock(end_mu_);
  if (!end_text_.empty()) return end_text_;
  std::string text;
  if (started_by_us) {
    // The socket closes while the process exits, a moment before its exit
    // status can be collected: wait for it, within a bound.
    int status = 0;
    pid_t reaped = 0;
    for (int i = 0; i < 500; ++i) {
      reaped = waitpid(pid, &status, WNOHANG);
      if (reaped != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (reaped == pid && WIFSIGNALED(status)) {
      const char* name = sigabbrev_np(WTERMSIG(status));
      text = "it was killed by signal " + std::to_string(WTERMSIG(status)) +
             (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
    } else if (reaped == pid && WIFEXITED(status)) {
      text = "it exited with status " + std::to_string(WEXITSTATUS(status));
    } else if (reaped == 0) {
      text = "it closed the connection and is still running (not reaped after 500 ms)";
    } else {
      text = "its exit status could not be read";
    }
  } else {
    text = kill(pid, 0) == 0 || errno == EPERM
               ? "it closed the connection and is still running"
               : "it has exited (its exit status is unknown: this process did not start it)";
  }
  end_text_ = text;
  return end_text_;
}

bool ReadPeer(int fd, PeerInfo* peer) {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return false;
  peer->pid = credentials.pid;
  peer->uid = credentials.uid;
  char path[4096];
  const std::string link = "/proc/" + std::to_string(credentials.pid) + "/exe";
  ssize_t n = readlink(link.c_str(), path, sizeof path - 1);
  if (n > 0) peer->executable.assign(path, static_cast<std::size_t>(n));
  return true;
}

// --- The GIT -----------------------------------------------------------------

namespace {

IGlobalInterfaceTable* Git() {
  // The process's one table (a singleton that is never destroyed); any
  // apartment may use it.
  static IGlobalInterfaceTable* git = [] {
    IGlobalInterfaceTable* table = nullptr;
    (void)CoCreateInstance(CLSID_StdGlobalInterfaceTable, nullptr, CLSCTX_INPROC_SERVER,
                           IID_IGlobalInterfaceTable, reinterpret_cast<void**>(&table));
    return table;
  }();
  return git;
}

}  // namespace

void GitEntry::RevokeNow() {
  if (revoked_.exchange(true, std::memory_order_acq_rel)) return;
  if (IGlobalInterfaceTable* git = Git()) (void)git->RevokeInterfaceFromGlobal(cookie);
}

GitEntry::~GitEntry() {
  if (revoked_.load(std::memory_order_acquire)) return;
  // Revoking releases the object in its apartment, which may wait: never on
  // the I/O thread.
  const DWORD revoked = cookie;
  Couriers::Get().Post([revoked] {
    if (IGlobalInterfaceTable* git = Git()) (void)git->RevokeInterfaceFromGlobal(revoked);
  });
}

HRESULT MakeGitEntry(IUnknown* object, std::shared_ptr<GitEntry>* out) {
  IGlobalInterfaceTable* git = Git();
  if (git == nullptr) return E_UNEXPECTED;
  DWORD cookie = 0;
  HRESULT hr = git->RegisterInterfaceInGlobal(object, IID_IUnknown, &cookie);
  if (FAILED(hr)) return hr;
  *out = std::make_shared<GitEntry>(cookie);
  return S_OK;
}

HRESULT GetFromGit(const GitEntry& entry, REFIID iid, void** ppv) {
  *ppv = nullptr;
  IGlobalInterfaceTable* git = Git();
  if (git == nullptr) return E_UNEXPECTED;
  IUnknown* unknown = nullptr;
  HRESULT hr = git->GetInterfaceFromGlobal(entry.cookie, IID_IUnknown,
                                           reinterpret_cast<void**>(&unknown));
  if (FAILED(hr)) return hr;
  hr = unknown->QueryInterface(iid, ppv);
  unknown->Release();
  return hr;
}

// --- Tokens --------------------------------------------------------------------

HRESULT MakeToken(IUnknown* object, REFIID iid, Token* token) {
  *token = Token{};
  token->iid = iid;
  if (object == nullptr) return S_OK;
  if (std::shared_ptr<RemoteObject> remote = RemoteObjectOf(object)) {
    token->remote = std::move(remote);
    return S_OK;
  }
  return MakeGitEntry(object, &token->local);
}

HRESULT MaterializeToken(const Token& token, IUnknown** out) {
  *out = nullptr;
  if (token.local) return GetFromGit(*token.local, IID_IUnknown, reinterpret_cast<void**>(out));
  if (token.remote) return CreateRemoteProxy(token.remote, token.iid, out);
  return S_OK;
}

HRESULT TokensFromWire(const WireMessage& message, std::vector<Token>* tokens) {
  tokens->clear();
  HRESULT hr = S_OK;
  for (const WireInterface& itf : message.interfaces) {
    Token token;
    HRESULT made = MakeToken(itf.object, itf.iid, &token);
    if (FAILED(made) && SUCCEEDED(hr)) hr = made;
    tokens->push_back(std::move(token));
  }
  // The message keeps its references; its owner releases them (Clear) on
  // this thread, in their apartment.
  return hr;
}

void WireFromTokens(const std::vector<Token>& tokens, WireMessage* message) {
  for (const Token& token : tokens) {
    IUnknown* object = nullptr;
    // A token that cannot be made an interface again (its object is gone)
    // stays null; reading it then fails the call as bad data.
    (void)MaterializeToken(token, &object);
    message->interfaces.push_back(WireInterface{object, token.iid});
  }
}

// --- The I/O thread's state ------------------------------------------------------

namespace {

using capnp::rpc::twoparty::Side;
using capnp::rpc::twoparty::VatId;

kj::ArrayPtr<const kj::byte> GuidBytes(const GUID& guid) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(&guid), sizeof guid);
}

bool ReadGuid(capnp::Data::Reader data, GUID* guid) {
  if (data.size() != sizeof *guid) return false;
  std::memcpy(guid, data.begin(), sizeof *guid);
  return true;
}

class Connection {
 public:
  // A client's connection to a server.
  Connection(kj::Own<kj::AsyncIoStream> stream, std::shared_ptr<PeerInfo> peer)
      : peer_(std::move(peer)),
        stream_(kj::mv(stream)),
        network_(*stream_, Side::CLIENT),
        rpc_(capnp::makeRpcClient(network_)) {}
  // A server's connection from a client, whose bootstrap is `bootstrap`.
  Connection(kj::Own<kj::AsyncIoStream> stream, std::shared_ptr<PeerInfo> peer,
             capnp::Capability::Client bootstrap)
      : peer_(std::move(peer)),
        stream_(kj::mv(stream)),
        network_(*stream_, Side::SERVER),
        rpc_(capnp::makeRpcServer(network_, kj::mv(bootstrap))) {}

  Object::Client Bootstrap() {
    capnp::MallocMessageBuilder message(8);
    auto vat = message.getRoot<VatId>();
    vat.setSide(Side::SERVER);
    return rpc_.bootstrap(vat).castAs<Object>();
  }

  kj::Promise<void> OnDisconnect() { return network_.onDisconnect(); }
  const std::shared_ptr<PeerInfo>& peer() const { return peer_; }

 private:
  std::shared_ptr<PeerInfo> peer_;
  kj::Own<kj::AsyncIoStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<VatId> rpc_;
};

class TaskErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {
    // Every task handles its own errors; one reaching here is a bug of ours.
    std::fprintf(stderr, "apartments: remote task failed: %s\n",
                 exception.getDescription().cStr());
  }
};

class ObjectServer;

// Everything below is touched only on the I/O thread.
struct IoState {
  TaskErrors errors;
  kj::TaskSet tasks{errors};
  capnp::CapabilityServerSet<Object> servers;
  std::unordered_map<std::uint64_t, kj::Own<Connection>> connections;
  std::uint64_t next_connection = 1;
  std::unordered_map<std::uint64_t, Object::Client> imports;
  std::uint64_t next_import = 1;
  std::unordered_map<std::uint64_t, kj::Own<kj::PromiseFulfiller<void>>> incoming;
  std::uint64_t next_incoming = 1;
};

IoState& Io() {
  // Created on the I/O thread by its first user; leaked (the thread runs
  // until the process ends).
  static IoState* state = new IoState;
  return *state;
}

std::uint64_t Import(Object::Client client) {
  IoState& io = Io();
  const std::uint64_t id = io.next_import++;
  io.imports.emplace(id, kj::mv(client));
  return id;
}

// One call that arrived for an object of ours: filled by a courier.
struct IncomingCall {
  bool query = false;
  IID iid{};
  WORD method = 0;
  std::vector<unsigned char> args;
  std::vector<Token> caps;
  HRESULT result = E_UNEXPECTED;
  std::vector<unsigned char> outs;
  std::vector<Token> out_caps;
  std::string explanation;
};

std::string IidText(REFIID iid) {
  char text[40];
  std::snprintf(text, sizeof text, "{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
                static_cast<unsigned>(iid.Data1), iid.Data2, iid.Data3, iid.Data4[0],
                iid.Data4[1], iid.Data4[2], iid.Data4[3], iid.Data4[4], iid.Data4[5],
                iid.Data4[6], iid.Data4[7]);
  return text;
}

// On a courier: makes the call on the object, through its apartment.
void RunIncoming(const GitEntry& entry, IncomingCall& call) {
  ClearCallErrorInfo();
  IUnknown* object = nullptr;
  HRESULT hr = GetFromGit(entry, IID_IUnknown, reinterpret_cast<void**>(&object));
  if (FAILED(hr)) {
    call.result = hr == E_INVALIDARG ? CO_E_OBJNOTCONNECTED : hr;
    call.explanation = "the object is no longer registered in the server process (its apartment "
                       "ended or it was revoked)";
    return;
  }
  void* itf = nullptr;
  hr = object->QueryInterface(call.iid, &itf);
  if (SUCCEEDED(hr) && !IsWireInterface(call.iid)) {
    hr = E_NOINTERFACE;
    call.explanation = "the object has interface " + IidText(call.iid) +
                       " but the server process did not declare it for other processes "
                       "(APARTMENTS_REMOTE_INTERFACE)";
  }
  if (call.query || FAILED(hr)) {
    if (itf != nullptr) static_cast<IUnknown*>(itf)->Release();
    object->Release();
    call.result = hr;
    return;
  }
  WireStubFunction stub = LookupWireStub(call.iid, call.method);
  if (stub == nullptr) {
    static_cast<IUnknown*>(itf)->Release();
    object->Release();
    call.result = RPC_E_INVALIDMETHOD;
    call.explanation = "interface " + IidText(call.iid) + " has no method " +
                       std::to_string(call.method) + " declared for other processes";
    return;
  }
  WireMessage in;
  in.bytes = std::move(call.args);
  WireFromTokens(call.caps, &in);
  call.caps.clear();
  WireMessage out;
  try {
    hr = stub(itf, in, &out);
    if (FAILED(hr)) call.explanation = LastErrorDescription();
  } catch (const std::exception& e) {
    hr = RPC_E_SERVERFAULT;
    call.explanation = std::string("the method threw an exception: ") + e.what();
  } catch (...) {
    hr = RPC_E_SERVERFAULT;
    call.explanation = "the method threw an exception that is not a std::exception";
  }
  in.Clear();
  static_cast<IUnknown*>(itf)->Release();
  object->Release();
  call.outs = std::move(out.bytes);
  HRESULT tokens = TokensFromWire(out, &call.out_caps);
  out.Clear();
  if (FAILED(tokens) && SUCCEEDED(hr)) hr = tokens;
  call.result = hr;
}

Object::Client ToClient(const Token& token, const std::shared_ptr<PeerInfo>& peer);
kj::Promise<Token> FromClient(Object::Client client, const IID& iid,
                              const std::shared_ptr<PeerInfo>& peer);

// The capability of one object of this process, given to `peer`.
class ObjectServer final : public Object::Server {
 public:
  ObjectServer(std::shared_ptr<GitEntry> entry, std::shared_ptr<PeerInfo> peer)
      : entry_(std::move(entry)), peer_(std::move(peer)) {}

  const std::shared_ptr<GitEntry>& entry() const { return entry_; }

  kj::Promise<void> call(CallContext context) override {
    auto params = context.getParams();
    auto call = std::make_shared<IncomingCall>();
    auto caps = params.getCaps();
    auto iids = params.getCapIids();
    if (!ReadGuid(params.getIid(), &call->iid) || caps.size() != iids.size()) {
      context.getResults().setResult(RPC_X_BAD_STUB_DATA);
      return kj::READY_NOW;
    }
    call->method = params.getMethod();
    auto args = params.getArgs();
    call->args.assign(args.begin(), args.end());
    auto tokens = kj::heapArrayBuilder<kj::Promise<Token>>(caps.size());
    for (unsigned i = 0; i < caps.size(); ++i) {
      IID iid{};
      if (!ReadGuid(iids[i], &iid)) {
        context.getResults().setResult(RPC_X_BAD_STUB_DATA);
        return kj::READY_NOW;
      }
      tokens.add(FromClient(caps[i], iid, peer_));
    }
    return kj::joinPromises(tokens.finish())
        .then([this, call](kj::Array<Token> tokens) {
          for (Token& token : tokens) call->caps.push_back(std::move(token));
          return Dispatch(call);
        })
        .then([context, call, peer = peer_]() mutable {
          auto results = context.getResults();
          results.setResult(call->result);
          results.setOuts(kj::arrayPtr(call->outs.data(), call->outs.size()));
          auto out_caps = results.initCaps(static_cast<unsigned>(call->out_caps.size()));
          auto out_iids = results.initCapIids(static_cast<unsigned>(call->out_caps.size()));
          for (unsigned i = 0; i < call->out_caps.size(); ++i) {
            out_caps.set(i, ToClient(call->out_caps[i], peer));
            out_iids.set(i, GuidBytes(call->out_caps[i].iid));
          }
          results.setExplanation(call->explanation);
        });
  }

  kj::Promise<void> queryInterface(QueryInterfaceContext context) override {
    auto call = std::make_shared<IncomingCall>();
    call->query = true;
    if (!ReadGuid(context.getParams().getIid(), &call->iid)) {
      context.getResults().setResult(RPC_X_BAD_STUB_DATA);
      return kj::READY_NOW;
    }
    return Dispatch(call).then([context, call]() mutable {
      context.getResults().setResult(call->result);
      context.getResults().setExplanation(call->explanation);
    });
  }

 private:
  // Hands `call` to a courier and resolves when it is done.
  kj::Promise<void> Dispatch(std::shared_ptr<IncomingCall> call) {
    IoState& io = Io();
    auto paf = kj::newPromiseAndFulfiller<void>();
    const std::uint64_t id = io.next_incoming++;
    io.incoming.emplace(id, kj::mv(paf.fulfiller));
    Couriers::Get().Post([entry = entry_, call, id] {
      RunIncoming(*entry, *call);
      IoThread::Get().Post([id] {
        IoState& io = Io();
        auto it = io.incoming.find(id);
        if (it == io.incoming.end()) return;
        kj::Own<kj::PromiseFulfiller<void>> fulfiller = kj::mv(it->second);
        io.incoming.erase(it);
        fulfiller->fulfill();
      });
    });
    return kj::mv(paf.promise);
  }

  std::shared_ptr<GitEntry> entry_;
  std::shared_ptr<PeerInfo> peer_;
};

Object::Client ToClient(const Token& token, const std::shared_ptr<PeerInfo>& peer) {
  IoState& io = Io();
  if (token.local) return io.servers.add(kj::heap<ObjectServer>(token.local, peer));
  if (token.remote) {
    auto it = io.imports.find(token.remote->id);
    if (it != io.imports.end()) return it->second;
  }
  return Object::Client(KJ_EXCEPTION(DISCONNECTED, "the object's process is gone"));
}

kj::Promise<Token> FromClient(Object::Client client, const IID& iid,
                              const std::shared_ptr<PeerInfo>& peer) {
  IoState& io = Io();
  return io.servers.getLocalServer(client).then(
      [client, iid, peer](kj::Maybe<Object::Server&> local) mutable {
        Token token;
        token.iid = iid;
        KJ_IF_MAYBE(server, local) {
          // Our own object, back home: the caller gets it (or an in-process
          // proxy), not a proxy through the other process.
          token.local = static_cast<ObjectServer&>(*server).entry();
        } else {
          token.remote = std::make_shared<RemoteObject>(peer, Import(kj::mv(client)));
        }
        return token;
      });
}

void Finish(const std::shared_ptr<OutgoingCall>& call) { SetEvent(call->done); }

void FailCall(const std::shared_ptr<OutgoingCall>& call, const std::shared_ptr<PeerInfo>& peer,
              const kj::Exception& e) {
  if (e.getType() == kj::Exception::Type::DISCONNECTED) {
    peer->MarkDead();
    call->server_died = true;
    call->result = RPC_E_SERVER_DIED;
  } else {
    call->result = RPC_E_SYS_CALL_FAILED;
  }
  call->explanation = e.getDescription().cStr();
}

void SendOnIoThread(const std::shared_ptr<RemoteObject>& target,
                    const std::shared_ptr<OutgoingCall>& call) {
  IoState& io = Io();
  const std::shared_ptr<PeerInfo>& peer = target->peer;
  auto it = io.imports.find(target->id);
  if (it == io.imports.end() || peer->dead.load(std::memory_order_acquire)) {
    call->result = RPC_E_DISCONNECTED;
    Finish(call);
    return;
  }
  if (call->query) {
    auto request = it->second.queryInterfaceRequest();
    request.setIid(GuidBytes(call->iid));
    io.tasks.add(request.send()
                     .then(
                         [call](capnp::Response<Object::QueryInterfaceResults> response) {
                           call->delivered = true;
                           call->result = response.getResult();
                           call->explanation = response.getExplanation().cStr();
                         },
                         [call, peer](kj::Exception&& e) { FailCall(call, peer, e); })
                     .then([call] { Finish(call); }));
    return;
  }
  auto request = it->second.callRequest();
  request.setIid(GuidBytes(call->iid));
  request.setMethod(call->method);
  request.setArgs(kj::arrayPtr(call->args.data(), call->args.size()));
  auto caps = request.initCaps(static_cast<unsigned>(call->caps.size()));
  auto iids = request.initCapIids(static_cast<unsigned>(call->caps.size()));
  for (unsigned i = 0; i < call->caps.size(); ++i) {
    caps.set(i, ToClient(call->caps[i], peer));
    iids.set(i, GuidBytes(call->caps[i].iid));
  }
  call->caps.clear();
  io.tasks.add(
      request.send()
          .then(
              [call, peer](capnp::Response<Object::CallResults> response) -> kj::Promise<void> {
                auto caps = response.getCaps();
                auto iids = response.getCapIids();
                if (caps.size() != iids.size()) {
                  call->result = RPC_X_BAD_STUB_DATA;
                  return kj::READY_NOW;
                }
                call->delivered = true;
                call->result = response.getResult();
                auto outs = response.getOuts();
                call->outs.assign(outs.begin(), outs.end());
                call->explanation = response.getExplanation().cStr();
                auto tokens = kj::heapArrayBuilder<kj::Promise<Token>>(caps.size());
                for (unsigned i = 0; i < caps.size(); ++i) {
                  IID iid{};
                  if (!ReadGuid(iids[i], &iid)) {
                    call->delivered = false;
                    call->result = RPC_X_BAD_STUB_DATA;
                    return kj::READY_NOW;
                  }
                  tokens.add(FromClient(caps[i], iid, peer));
                }
                return kj::joinPromises(tokens.finish()).then([call](kj::Array<Token> tokens) {
                  for (Token& token : tokens) call->out_caps.push_back(std::move(token));
                });
              },
              [call, peer](kj::Exception&& e) { FailCall(call, peer, e); })
          .then([call] { Finish(call); }));
}

// Adds a connection and watches it end.
Connection& AddConnection(kj::Own<Connection> connection) {
  IoState& io = Io();
  std::shared_ptr<PeerInfo> peer = connection->peer();
  const std::uint64_t id = peer->connection_id;
  Connection& added = *connection;
  io.tasks.add(connection->OnDisconnect().then([peer, id] {
    peer->MarkDead();
    // A server we started is our child: reap it (and keep how it ended for
    // the explanations), on a courier since it may wait a moment.
    if (peer->started_by_us) Couriers::Get().Post([peer] { (void)peer->DescribeEnd(); });
    // Not from inside the connection's own promise: destroyed next.
    IoThread::Get().Post([id] { Io().connections.erase(id); });
  }));
  io.connections.emplace(id, kj::mv(connection));
  return added;
}

}  // namespace

RemoteObject::~RemoteObject() {
  const std::uint64_t import = id;
  IoThread::Get().Post([import] { Io().imports.erase(import); });
}

void SendCall(const std::shared_ptr<RemoteObject>& target, std::shared_ptr<OutgoingCall> call) {
  IoThread::Get().Post([target, call = std::move(call)] { SendOnIoThread(target, call); });
}

HRESULT ConnectToServer(int fd, std::shared_ptr<PeerInfo> peer,
                        std::shared_ptr<RemoteObject>* bootstrap) {
  struct Setup {
    HANDLE done = nullptr;
    std::uint64_t import = 0;
  };
  auto setup = std::make_shared<Setup>();
  setup->done = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (setup->done == nullptr) {
    close(fd);
    return E_OUTOFMEMORY;
  }
  IoThread::Get().Post([fd, peer, setup] {
    IoState& io = Io();
    peer->connection_id = io.next_connection++;
    auto stream = IoThread::Get().provider().wrapSocketFd(
        fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    Connection& connection = AddConnection(kj::heap<Connection>(kj::mv(stream), peer));
    setup->import = Import(connection.Bootstrap());
    SetEvent(setup->done);
  });
  // Local work on the I/O thread only (no round trip to the peer), which
  // never waits for an apartment: a plain wait is enough.
  DWORD waited = WaitForSingleObject(setup->done, 30000);
  CloseHandle(setup->done);
  if (waited != WAIT_OBJECT_0) return RPC_E_SYS_CALL_FAILED;
  *bootstrap = std::make_shared<RemoteObject>(std::move(peer), setup->import);
  return S_OK;
}

void ServeClientConnection(int fd, std::shared_ptr<PeerInfo> peer,
                           std::shared_ptr<GitEntry> object) {
  IoState& io = Io();
  peer->connection_id = io.next_connection++;
  auto stream =
      IoThread::Get().provider().wrapSocketFd(fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  Object::Client bootstrap = io.servers.add(kj::heap<ObjectServer>(std::move(object), peer));
  AddConnection(kj::heap<Connection>(kj::mv(stream), peer, kj::mv(bootstrap)));
}

std::size_t LiveConnectionsForTesting() {
  struct Count {
    HANDLE done = nullptr;
    std::size_t count = 0;
  };
  auto count = std::make_shared<Count>();
  count->done = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  IoThread::Get().Post([count] {
    count->count = Io().connections.size();
    SetEvent(count->done);
  });
  (void)WaitForSingleObject(count->done, 30000);
  CloseHandle(count->done);
  return count->count;
}

}  // namespace apartments::internal
