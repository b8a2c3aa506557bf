// Remote proxy managers (remote_proxy.h).
#include "remote/remote_proxy.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "apartments/proxy.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "base/explain.h"
#include "com/apartment.h"
#include "com/error_info.h"
#include "com/proxy_manager.h"
#include "com/wire_stubs.h"

namespace apartments::internal {
namespace {

// Answered only by remote proxy managers (QueryInterface hands out the
// manager itself).
constexpr IID kIidRemoteProxy = GuidFromLiteral("b7c1d6a2-3e0f-4d8b-a3c4-5f2e9d1b7a60");
constexpr std::string_view kSource = "apartments remote call";

std::string IidText(REFIID iid) {
  char text[40];
  std::snprintf(text, sizeof text, "{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
                static_cast<unsigned>(iid.Data1), iid.Data2, iid.Data3, iid.Data4[0],
                iid.Data4[1], iid.Data4[2], iid.Data4[3], iid.Data4[4], iid.Data4[5],
                iid.Data4[6], iid.Data4[7]);
  return text;
}

std::string CallText(const OutgoingCall& call) {
  if (call.query) return "QueryInterface for " + IidText(call.iid);
  return "method " + std::to_string(call.method) + " of interface " + IidText(call.iid);
}

// Waits for `done` as the channel waits for a reply: an STA in the modal
// wait (serving incoming calls and sent messages, so the server can call
// back into it), other threads without pumping.
HRESULT WaitForReply(HANDLE done) {
  ApartmentRef current = CurrentApartment();
  if (current && current->kind() == ApartmentKind::kSta) {
    for (;;) {
      DWORD index = 0;
      HRESULT hr = CoWaitForMultipleHandles(0, INFINITE, 1, &done, &index);
      if (hr == S_OK && index == 0) return S_OK;
      if (FAILED(hr)) break;
      // An APC or other input ended the wait; the reply is still to come.
    }
  }
  return WaitForSingleObject(done, INFINITE) == WAIT_OBJECT_0 ? S_OK : RPC_E_SYS_CALL_FAILED;
}

class RemoteProxyManager;

// IClassFactory for an object in another process: CreateInstance returns an
// object of a run-time IID, which the recipe cannot express.
class RemoteClassFactoryProxy final : public InterfaceProxy<IClassFactory> {
 public:
  using InterfaceProxy::InterfaceProxy;

  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    *ppv = nullptr;
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    WireMessage in;
    WireWriter(in).Value(riid);
    WireMessage out;
    bool ran = false;
    HRESULT hr = manager()->Remote()->CallRemote(
        IID_IClassFactory, VtableSlot(&IClassFactory::CreateInstance), std::move(in), &out, &ran);
    if (!ran || FAILED(hr)) return hr;
    WireReader reader(out);
    HRESULT read = reader.Interface(riid, ppv);
    if (FAILED(read)) return read;
    return reader.AtEnd() ? hr : RPC_X_BAD_STUB_DATA;
  }

  STDMETHODIMP LockServer(BOOL lock) override {
    return ForwardRemoteCall<IClassFactory>(*manager()->Remote(), &IClassFactory::LockServer, lock);
  }
};

class RemoteProxyManager final : public IUnknown, public ProxyManagerBase, public RemoteCalls {
 public:
  RemoteProxyManager(std::shared_ptr<RemoteObject> object, REFIID known)
      : object_(std::move(object)) {
    if (known != IID_IUnknown) known_.insert(known);
  }

  const std::shared_ptr<RemoteObject>& object() const { return object_; }

  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    return QueryInterfaceProxy(riid, ppv);
  }
  STDMETHODIMP_(ULONG) AddRef() override { return AddRefProxy(); }
  STDMETHODIMP_(ULONG) Release() override { return ReleaseProxy(); }

  ULONG AddRefProxy() noexcept override {
    // Relaxed: a new reference comes from an existing one.
    return refs_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  ULONG ReleaseProxy() override {
    // acq_rel: the thread reaching 0 sees every other thread's use first.
    ULONG remaining = refs_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (remaining == 0) delete this;
    return remaining;
  }

  HRESULT QueryInterfaceProxy(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    *ppv = nullptr;
    if (riid == IID_IUnknown || riid == kIidRemoteProxy) {
      AddRefProxy();
      *ppv = static_cast<IUnknown*>(this);
      return S_OK;
    }
    bool known = false;
    {
      std::lock_guard lock(mu_);
      auto it = proxies_.find(riid);
      if (it != proxies_.end()) {
        AddRefProxy();
        *ppv = it->second->InterfacePointer();
        return S_OK;
      }
      known = known_.count(riid) != 0;
    }
    ProxyFactory factory = riid == IID_IClassFactory ? &MakeProxy<RemoteClassFactoryProxy>
                                                     : LookupProxyFactory(riid);
    if (factory == nullptr || !IsWireInterface(riid)) {
      SetCallErrorInfo(E_NOINTERFACE,
                       "interface " + IidText(riid) +
                           " cannot be used on an object of another process from this one: " +
                           (factory == nullptr ? "this process has no proxy recipe for it "
                                                 "(APARTMENTS_PROXY_BEGIN)"
                                               : "it is not declared for other processes "
                                                 "(APARTMENTS_REMOTE_INTERFACE)"),
                       kSource);
      return E_NOINTERFACE;
    }
    if (!known) {
      auto call = std::make_shared<OutgoingCall>();
      call->query = true;
      call->iid = riid;
      HRESULT hr = Exchange(call);
      if (FAILED(hr)) return hr;
    }
    InterfaceProxyBase* made = factory(this);
    if (made == nullptr) return E_OUTOFMEMORY;
    InterfaceProxyBase* proxy = nullptr;
    {
      std::lock_guard lock(mu_);
      known_.insert(riid);
      auto [it, inserted] = proxies_.emplace(riid, made);
      proxy = it->second;
      if (!inserted) {
        delete made;  // Another thread made it first.
      }
    }
    AddRefProxy();
    *ppv = proxy->InterfacePointer();
    return S_OK;
  }

  HRESULT Call(REFIID, const ServerCall&) override {
    // Never reached: interface proxies see Remote() and serialize instead.
    return E_UNEXPECTED;
  }

  RemoteCalls* Remote() noexcept override { return this; }

  HRESULT CallRemote(REFIID iid, WORD method, WireMessage in, WireMessage* out,
                     bool* ran) override {
    *ran = false;
    auto call = std::make_shared<OutgoingCall>();
    call->iid = iid;
    call->method = method;
    call->args = std::move(in.bytes);
    HRESULT hr = TokensFromWire(in, &call->caps);
    in.Clear();
    if (FAILED(hr)) return hr;
    hr = Exchange(call);
    if (!call->delivered) return hr;
    *ran = true;
    out->bytes = std::move(call->outs);
    WireFromTokens(call->out_caps, out);
    call->out_caps.clear();
    return hr;
  }

  HRESULT CannotCross(REFIID iid, WORD method) override {
    SetCallErrorInfo(RPC_X_BAD_STUB_DATA,
                     "method " + std::to_string(method) + " of interface " + IidText(iid) +
                         " has a parameter that cannot cross a process (apartments/wire.h); "
                         "declare the interface with APARTMENTS_REMOTE_INTERFACE to find it at "
                         "compile time",
                     kSource);
    return RPC_X_BAD_STUB_DATA;
  }

 private:
  ~RemoteProxyManager() {
    for (auto& [iid, proxy] : proxies_) delete proxy;
  }

  // Sends `call` and waits for its end; explains a failure.
  HRESULT Exchange(const std::shared_ptr<OutgoingCall>& call) {
    PeerInfo& peer = *object_->peer;
    if (peer.dead.load(std::memory_order_acquire)) return FailDisconnected(*call);
    call->done = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (call->done == nullptr) return E_OUTOFMEMORY;
    SendCall(object_, call);
    if (FAILED(WaitForReply(call->done))) {
      // The I/O thread still signals the event later: it stays open (a
      // handle leaked in a case that needs a broken kernel).
      SetCallErrorInfo(RPC_E_SYS_CALL_FAILED,
                       "the wait for the reply of " + CallText(*call) + " to " + peer.Describe() +
                           " failed",
                       kSource);
      return RPC_E_SYS_CALL_FAILED;
    }
    CloseHandle(call->done);
    call->done = nullptr;
    if (call->delivered) {
      if (FAILED(call->result) && !call->explanation.empty()) {
        SetCallErrorInfo(call->result, peer.Describe() + ": " + call->explanation, kSource);
      }
      return call->result;
    }
    if (call->server_died) {
      SetCallErrorInfo(RPC_E_SERVER_DIED,
                       "The call (" + CallText(*call) + ") to " + peer.Describe() +
                           " failed with RPC_E_SERVER_DIED: the connection ended while the "
                           "call was in progress, " +
                           Ago(peer.died_at()) + "; " + peer.DescribeEnd() +
                           ". Whether the call ran is unknown. (Cap'n Proto: " +
                           call->explanation + ")",
                       kSource);
      return RPC_E_SERVER_DIED;
    }
    if (call->result == RPC_E_DISCONNECTED) return FailDisconnected(*call);
    SetCallErrorInfo(call->result,
                     "The call (" + CallText(*call) + ") to " + peer.Describe() +
                         " failed: " + call->explanation,
                     kSource);
    return call->result;
  }

  HRESULT FailDisconnected(const OutgoingCall& call) {
    PeerInfo& peer = *object_->peer;
    SetCallErrorInfo(RPC_E_DISCONNECTED,
                     "The call (" + CallText(call) + ") to " + peer.Describe() +
                         " failed with RPC_E_DISCONNECTED: the connection to it ended " +
                         Ago(peer.died_at()) + " (" + peer.DescribeEnd() +
                         "), so the call was not sent.",
                     kSource);
    return RPC_E_DISCONNECTED;
  }

  const std::shared_ptr<RemoteObject> object_;
  std::atomic<ULONG> refs_{1};
  std::mutex mu_;
  std::unordered_map<IID, InterfaceProxyBase*> proxies_;  // Guarded by mu_.
  std::unordered_set<IID> known_;                         // Guarded by mu_.
};

}  // namespace

HRESULT CreateRemoteProxy(std::shared_ptr<RemoteObject> object, REFIID known, IUnknown** out) {
  *out = nullptr;
  auto* manager = new (std::nothrow) RemoteProxyManager(std::move(object), known);
  if (manager == nullptr) return E_OUTOFMEMORY;
  *out = static_cast<IUnknown*>(manager);
  return S_OK;
}

std::shared_ptr<RemoteObject> RemoteObjectOf(IUnknown* unknown) {
  if (unknown == nullptr) return nullptr;
  // An in-process proxy answers the question below only after a round trip
  // to its object's apartment: ask it first whether it is one (answered
  // locally).
  if (ProxyManager* local = AsProxyManager(unknown)) {
    local->Release();
    return nullptr;
  }
  void* manager = nullptr;
  if (FAILED(unknown->QueryInterface(kIidRemoteProxy, &manager)) || manager == nullptr) {
    return nullptr;
  }
  auto* remote = static_cast<RemoteProxyManager*>(static_cast<IUnknown*>(manager));
  std::shared_ptr<RemoteObject> object = remote->object();
  remote->Release();
  return object;
}

}  // namespace apartments::internal
