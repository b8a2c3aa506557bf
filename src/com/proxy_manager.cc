// Proxy managers (proxy_manager.h).
#include "com/proxy_manager.h"

#include <mutex>
#include <new>
#include <string>

#include "com/com_runtime.h"
#include "com/marshal.h"
#include "com/marshal_text.h"

namespace apartments::internal {
namespace {

// Answered only by our proxy managers (QueryInterface hands out the manager).
constexpr IID kIidProxyManager = GuidFromLiteral("6d1b7c3e-52a4-4c0f-9a57-1f0c6a0d4b21");

struct FactoryTable {
  std::mutex mu;
  std::unordered_map<IID, ProxyFactory> factories;
};

FactoryTable& Factories() {
  static FactoryTable* table = new FactoryTable;
  return *table;
}

}  // namespace

ProxyFactory LookupProxyFactory(REFIID iid) {
  static std::once_flag standard;
  std::call_once(standard, [] { RegisterStandardProxies(); });
  FactoryTable& table = Factories();
  std::lock_guard lock(table.mu);
  auto it = table.factories.find(iid);
  return it == table.factories.end() ? nullptr : it->second;
}

void RegisterProxyFactory(const IID& iid, ProxyFactory factory) noexcept {
  FactoryTable& table = Factories();
  std::lock_guard lock(table.mu);
  table.factories[iid] = factory;
}

HRESULT ProxyManager::QueryInterfaceProxy(REFIID riid, void** ppv) {
  if (ppv == nullptr) return E_POINTER;
  *ppv = nullptr;
  if (riid != kIidProxyManager) {
    // As on Windows, a proxy answers nothing, not even what it could
    // answer locally, to another apartment.
    HRESULT hr = CheckQueryApartment();
    if (FAILED(hr)) return hr;
  }
  if (riid == IID_IUnknown || riid == kIidProxyManager) {
    AddRefProxy();
    *ppv = static_cast<IUnknown*>(this);
    return S_OK;
  }
  if (void* local = local_.Find(riid)) {
    *ppv = local;
    return S_OK;
  }
  {
    auto guard = runtime_.Lock();
    auto& proxies = shared_.Get(guard).proxies;
    auto it = proxies.find(riid);
    if (it != proxies.end()) {
      AddRefProxy();
      *ppv = it->second->InterfacePointer();
      return S_OK;
    }
  }
  ProxyFactory factory = LookupProxyFactory(riid);
  if (factory == nullptr) return E_NOINTERFACE;
  HRESULT hr = CheckUsable();
  if (FAILED(hr)) return hr;
  hr = EnsureServerInterface(riid);
  if (FAILED(hr)) return hr;
  return AddInterfaceProxy(riid, factory, ppv);
}

HRESULT ProxyManager::EnsureServerInterface(REFIID riid) {
  // An interface the stub already holds (the marshaled one, made at marshal
  // time, or one another client asked for) needs no round trip: as on
  // Windows, where the marshal packet carries the interface's IPID,
  // unmarshaling never calls into the object's apartment, so it works
  // while that apartment's thread is busy and not pumping.
  bool known;
  {
    auto guard = runtime_.Lock();
    known = stub_->connected && stub_->state.Get(guard).interfaces.count(riid) != 0;
  }
  if (known) return S_OK;
  bool disconnected = false;
  static constexpr RemUnknownCall kRemQueryInterface{kRemQueryInterfaceMethod};
  HRESULT hr = InvokeInApartment(
      stub_->apartment,
      [&]() -> HRESULT {
        HRESULT ensured = runtime_.stubs().EnsureInterface(stub_, riid);
        disconnected = ensured == RPC_E_DISCONNECTED;
        return ensured;
      },
      nullptr, &kRemQueryInterface);
  if (disconnected) return FailDisconnected();
  return hr;
}

HRESULT ProxyManager::AddInterfaceProxy(REFIID riid, ProxyFactory factory, void** ppv) {
  InterfaceProxyBase* proxy = factory(this);
  if (proxy == nullptr) return E_OUTOFMEMORY;
  InterfaceProxyBase* extra = nullptr;
  {
    auto guard = runtime_.Lock();
    auto [it, inserted] = shared_.Get(guard).proxies.try_emplace(riid, proxy);
    if (!inserted) extra = proxy;
    AddRefProxy();
    *ppv = it->second->InterfacePointer();
  }
  delete extra;
  return S_OK;
}

HRESULT ProxyManager::Call(REFIID iid, const ServerCall& call) {
  HRESULT hr = CheckUsable();
  if (FAILED(hr)) return hr;
  // The callable captures one pointer, so std::function stores it inline:
  // no allocation per call. The frame also describes the call to the
  // object's message filter (CallDescription: one pointer stored per call).
  struct Frame final : CallDescription {
    Frame(ProxyManager* s, const IID& i, const ServerCall& c) noexcept
        : self(s), iid(i), call(c) {}
    INTERFACEINFO Describe() const noexcept override {
      return INTERFACEINFO{self->ServerInterface(iid), iid, call.method()};
    }
    ProxyManager* self;
    const IID& iid;
    const ServerCall& call;
    bool disconnected = false;
  } frame{this, iid, call};
  hr = InvokeInApartment(
      stub_->apartment,
      [&frame]() -> HRESULT {
        return frame.self->CallOnStub(frame.iid, frame.call, &frame.disconnected);
      },
      nullptr, &frame);
  if (frame.disconnected) return FailDisconnected();
  return hr;
}

IUnknown* ProxyManager::ServerInterface(REFIID iid) const noexcept {
  void* itf = nullptr;
  if (stub_->apartment->kind() == ApartmentKind::kSta) {
    if (stub_->connected.load(std::memory_order_acquire)) {
      const auto& interfaces =
          stub_->state.GetWithoutLock("STA stub, on its thread: see CallOnStub").interfaces;
      auto it = interfaces.find(iid);
      if (it != interfaces.end()) itf = it->second;
    }
  } else {
    auto guard = runtime_.Lock();
    if (stub_->connected) {
      const auto& interfaces = stub_->state.Get(guard).interfaces;
      auto it = interfaces.find(iid);
      if (it != interfaces.end()) itf = it->second;
    }
  }
  return static_cast<IUnknown*>(itf);
}

// Inline: on every call's path, and used only here (Call's lambda).
inline HRESULT ProxyManager::CallOnStub(REFIID iid, const ServerCall& call, bool* disconnected) {
  void* itf = nullptr;
  if (stub_->apartment->kind() == ApartmentKind::kSta) {
    // No lock: an STA stub's `interfaces` changes only on its own thread,
    // which is this one (EnsureInterface, ReleaseReferences, both served
    // here), so nothing writes it while we read; other threads only read
    // it. A disconnect from another thread clears `connected` (atomic)
    // first and leaves the references for this thread to release.
    if (stub_->connected.load(std::memory_order_acquire)) {
      const auto& interfaces =
          stub_->state
              .GetWithoutLock("STA stub, on its thread: the only one that writes `interfaces`")
              .interfaces;
      auto it = interfaces.find(iid);
      if (it != interfaces.end()) itf = it->second;
    }
    if (itf != nullptr) static_cast<IUnknown*>(itf)->AddRef();
  } else {
    auto guard = runtime_.Lock();  // MTA: any MTA thread may release them.
    if (stub_->connected) {
      const auto& interfaces = stub_->state.Get(guard).interfaces;
      auto it = interfaces.find(iid);
      if (it != interfaces.end()) itf = it->second;
    }
    if (itf != nullptr) static_cast<IUnknown*>(itf)->AddRef();
  }
  if (itf == nullptr) {
    *disconnected = true;
    return RPC_E_DISCONNECTED;
  }
  // The reference keeps the interface alive through a CoDisconnectObject
  // made by the call itself.
  struct Releaser {
    void* itf;
    // noexcept(false): the object's Release may wait for another apartment
    // (it may hold proxies), where a served call can end the thread.
    ~Releaser() noexcept(false) { static_cast<IUnknown*>(itf)->Release(); }
  } releaser{itf};
  return call(itf);
}

HRESULT ProxyManager::CheckUsableSlow() {
  std::string gone;
  {
    auto guard = runtime_.Lock();
    if (client_gone_ || client_->IsShutDown()) {
      gone = "This proxy of " + DescribeStub(*stub_) + " belonged to " + client_->Describe() +
             ", which was uninitialized " +
             Ago(client_gone_ ? shared_.Get(guard).client_gone_time
                                     : client_->shutdown_time()) +
             "; the proxies an apartment held are disconnected when it goes, "
             "whichever thread uses them afterwards.";
    }
  }
  if (!gone.empty()) {
    SetCallErrorInfo(CO_E_OBJNOTCONNECTED, gone, kSource);
    return CO_E_OBJNOTCONNECTED;
  }
  if (!client_->IsCurrent()) {
    if (!CurrentApartment()) return FailNotInitialized();
    return FailWrongThread();
  }
  bool connected;
  {
    auto guard = runtime_.Lock();
    connected = stub_->connected;
  }
  if (!connected) return FailDisconnected();
  return S_OK;
}

HRESULT ProxyManager::CheckQueryApartment() {
  if (__builtin_expect(client_->IsCurrent(), 1)) return S_OK;
  if (client_gone_.load(std::memory_order_acquire) || client_->IsShutDown()) return S_OK;
  return FailWrongThread();
}

HRESULT ProxyManager::FailWrongThread() {
  SetCallErrorInfo(RPC_E_WRONG_THREAD,
                   "This proxy of " + DescribeStub(*stub_) + " belongs to " +
                       client_->Describe() + ", but it was used from " +
                       DescribeCurrentThread() +
                       ". A proxy may only be used in the apartment that unmarshaled it "
                       "(Release excepted); marshal the interface again, for instance "
                       "through the global interface table, to use it here.",
                   kSource);
  return RPC_E_WRONG_THREAD;
}

HRESULT ProxyManager::FailNotInitialized() {
  SetCallErrorInfo(CO_E_NOTINITIALIZED,
                   "This proxy of " + DescribeStub(*stub_) + " was called from thread " +
                       std::to_string(GetCurrentThreadId()) +
                       ", which is in no apartment: it never called CoInitializeEx, and no "
                       "MTA exists that it would be in implicitly. Call CoInitializeEx on "
                       "it, and use there a proxy unmarshaled in its own apartment.",
                   kSource);
  return CO_E_NOTINITIALIZED;
}

HRESULT ProxyManager::QueryInterfaceUnchecked(REFIID riid, void** ppv) noexcept {
  *ppv = nullptr;
  if (riid == IID_IUnknown) {
    AddRefProxy();
    *ppv = static_cast<IUnknown*>(this);
    return S_OK;
  }
  if (void* local = local_.Find(riid)) {
    *ppv = local;
    return S_OK;
  }
  ProxyFactory factory = LookupProxyFactory(riid);
  if (factory == nullptr) return E_NOINTERFACE;
  return AddInterfaceProxy(riid, factory, ppv);
}

bool ProxyManager::OwnsRemoteInterface(IUnknown* p) {
  if (p == static_cast<IUnknown*>(this)) return true;
  auto guard = runtime_.Lock();
  for (auto& [iid, proxy] : shared_.Get(guard).proxies) {
    if (proxy->InterfacePointer() == static_cast<void*>(p)) return true;
  }
  return false;
}

HRESULT ProxyManager::FailDisconnected() {
  std::string text;
  {
    auto guard = runtime_.Lock();
    text = "Call through a proxy failed: " + DescribeDisconnectLocked(guard, *stub_) + ".";
  }
  SetCallErrorInfo(RPC_E_DISCONNECTED, text, kSource);
  return RPC_E_DISCONNECTED;
}

void ProxyManager::DropStubReference() {
  bool had;
  {
    auto guard = runtime_.Lock();
    had = std::exchange(shared_.Get(guard).holds_stub_ref, false);
  }
  if (had) runtime_.stubs().ReleaseStrong(stub_);
}

void ProxyManager::Destroy() {
  // Deleted however this ends: releasing the stub may wait in the modal
  // loop, where a served call can end the thread (ExitThread unwinds here).
  struct DeleteAtEnd {
    ProxyManager* self;
    ~DeleteAtEnd() { delete self; }
  } delete_at_end{this};
  bool had;
  {
    auto guard = runtime_.Lock();
    runtime_.proxies().ForgetLocked(guard, this, client_id_, stub_->id);
    had = std::exchange(shared_.Get(guard).holds_stub_ref, false);
  }
  if (had) {
    PreserveErrorInfo preserve;
    runtime_.stubs().ReleaseStrong(stub_);
  }
}

ProxyManager* AsProxyManager(IUnknown* unk) {
  void* pm = nullptr;
  if (FAILED(unk->QueryInterface(kIidProxyManager, &pm)) || pm == nullptr) return nullptr;
  return static_cast<ProxyManager*>(static_cast<IUnknown*>(pm));
}

void ProxyManagers::ForgetLocked(const ComGuard& guard, ProxyManager* manager,
                                 std::uint64_t client_id, std::uint64_t stub_id) {
  Table& table = table_.Get(guard);
  auto it = table.by_client_and_stub.find({client_id, stub_id});
  if (it != table.by_client_and_stub.end() && it->second == manager) {
    table.by_client_and_stub.erase(it);
  }
  if (ApartmentRecord* record = ComRuntime::FindApartmentLocked(guard, client_id)) {
    record->proxies.erase(manager);
  }
  --table.live;
}

HRESULT ProxyManagers::GetOrCreate(const ApartmentRef& client,
                                   const std::shared_ptr<StubManager>& stub, ProxyManager** out) {
  *out = nullptr;
  bool extra_ref = false;
  HRESULT hr = S_OK;
  if (!runtime_.EnsureApartmentRecord(client)) {
    extra_ref = true;
    hr = CO_E_NOTINITIALIZED;
  } else {
    auto guard = runtime_.Lock();
    ApartmentRecord* record = ComRuntime::FindApartmentLocked(guard, client->id());
    if (record == nullptr) {
      extra_ref = true;
      hr = CO_E_NOTINITIALIZED;
    } else {
      auto key = std::make_pair(client->id(), stub->id);
      Table& table = table_.Get(guard);
      auto it = table.by_client_and_stub.find(key);
      if (it != table.by_client_and_stub.end() && it->second->TryAddRefLocked(guard)) {
        *out = it->second;
        extra_ref = true;
      } else {
        auto* manager = new (std::nothrow) ProxyManager(runtime_, client, stub);
        if (manager == nullptr) {
          extra_ref = true;
          hr = E_OUTOFMEMORY;
        } else {
          table.by_client_and_stub[key] = manager;
          record->proxies.insert(manager);
          ++table.live;
          *out = manager;
        }
      }
    }
  }
  if (extra_ref) runtime_.stubs().ReleaseStrong(stub);
  if (hr == CO_E_NOTINITIALIZED) {
    SetCallErrorInfo(hr, "Cannot unmarshal into " + client->Describe() + ": it is shutting down.",
                     kSource);
  }
  return hr;
}

HRESULT ProxyManagers::CreateForGoneObject(const ApartmentRef& client,
                                           std::shared_ptr<StubManager> placeholder,
                                           ProxyManager** out) {
  *out = nullptr;
  if (!runtime_.EnsureApartmentRecord(client)) return CO_E_NOTINITIALIZED;
  auto* manager = new (std::nothrow) ProxyManager(runtime_, client, std::move(placeholder));
  if (manager == nullptr) return E_OUTOFMEMORY;
  {
    auto guard = runtime_.Lock();
    if (ApartmentRecord* record = ComRuntime::FindApartmentLocked(guard, client->id())) {
      record->proxies.insert(manager);
    }
    ++table_.Get(guard).live;
  }
  *out = manager;
  return S_OK;
}

}  // namespace apartments::internal
