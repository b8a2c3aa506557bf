// Stub managers, marshal data, proxy managers, the global interface table,
// the free-threaded marshaler and the in-process class registry (see
// marshal.h for the ownership and the states).
#include "com/marshal.h"

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "apartments/clock.h"
#include "apartments/error_info.h"
#include "apartments/errors.h"
#include "apartments/proxy.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_marshal.h"
#include "com/apartment.h"
#include "com/com_thread.h"
#include "com/error_info.h"
#include "com/guid_format.h"
#include "base/explain.h"
#include "base/thread_state.h"
#include "com/proxy_local_interfaces.h"

namespace apartments::internal {
namespace {

// Answered only by our proxy managers (QueryInterface hands out the manager).
constexpr IID kIidProxyManager = GuidFromLiteral("6d1b7c3e-52a4-4c0f-9a57-1f0c6a0d4b21");
// The class Windows' free-threaded marshaler reports from GetUnmarshalClass.
constexpr CLSID kClsidInProcFreeMarshaler = GuidFromLiteral("0000033A-0000-0000-C000-000000000046");

constexpr char kSignature[8] = {'A', 'P', 'T', 'O', 'B', 'J', 'R', '1'};
constexpr std::uint32_t kKindStandard = 1;
constexpr std::uint32_t kKindDirect = 2;
constexpr DWORD kKnownFlags = MSHLFLAGS_TABLESTRONG | MSHLFLAGS_TABLEWEAK | MSHLFLAGS_NOPING;

// The marshal record. Every field is checked on the way in; the stream never
// carries an address.
struct WireRecord {
  char signature[8];
  std::uint32_t flags;
  std::uint32_t kind;
  std::uint64_t apartment_id;
  std::uint64_t object_id;
  std::uint64_t packet_id;
  IID iid;
  std::uint64_t check;
};
static_assert(sizeof(WireRecord) == kMarshalRecordSize);

enum class DisconnectReason { kNone, kReleased, kDisconnectObject, kApartmentShutDown };

struct StubManager {
  // Immutable after creation.
  std::uint64_t id = 0;
  ApartmentRef apartment;
  std::uint64_t apartment_id = 0;
  const void* identity_address = nullptr;  // for explanations only

  // Guarded by State::mu.
  IUnknown* identity = nullptr;  // one reference until released on its thread
  std::unordered_map<IID, void*> interfaces;  // one reference each
  // Written under State::mu; also read without it by a proxy's fast check
  // (ProxyManager::CheckUsable), where a stale "connected" is the same race
  // as a disconnect just after the check: the call finds out in the stub.
  std::atomic<bool> connected{true};
  DisconnectReason reason = DisconnectReason::kNone;
  Clock::TimePoint disconnect_time{};
  long strong = 0;          // NORMAL/TABLESTRONG data, proxy managers, locks
  long weak = 0;            // TABLEWEAK data
  long external_locks = 0;  // CoLockObjectExternal (also counted in strong)
};

struct Packet {
  DWORD flags = 0;
  IID iid{};
  std::shared_ptr<StubManager> stub;  // standard marshaling
  IUnknown* direct = nullptr;          // agile object: one reference
  std::uint64_t apartment_id = 0;
};

class ProxyManager;

struct ApartmentRecord {
  ApartmentRef apartment;
  // Stubs exported from here whose object references are not yet released.
  std::unordered_map<std::uint64_t, std::shared_ptr<StubManager>> stubs;
  // Proxy managers living here.
  std::unordered_set<ProxyManager*> proxies;
};

struct ClassRegistration {
  CLSID clsid;
  std::uint64_t packet;
  // The registering apartment, which owns the registration (revoked at its
  // end; revocable only from it), and the CLSCTX it was registered for.
  std::uint64_t apartment_id = 0;
  DWORD context = 0;
};

struct State {
  std::mutex mu;
  std::uint64_t next_id = 1;
  std::uint64_t secret = 0;
  std::map<std::pair<std::uint64_t, IUnknown*>, std::shared_ptr<StubManager>> stubs_by_identity;
  std::unordered_map<std::uint64_t, Packet> packets;
  std::map<std::pair<std::uint64_t, std::uint64_t>, ProxyManager*> proxies;
  std::unordered_map<std::uint64_t, ApartmentRecord> apartments;
  std::unordered_set<std::uint64_t> dead_apartments;
  DWORD next_cookie = 0x100;
  std::unordered_map<DWORD, std::uint64_t> git;  // cookie -> TABLESTRONG packet
  std::unordered_map<DWORD, ClassRegistration> classes;
  // Apartments whose shutdown callback revokes their class objects (one each).
  std::unordered_set<std::uint64_t> class_apartments;
  std::size_t live_stubs = 0;
  std::size_t live_proxies = 0;

  State() {
    std::random_device random;
    secret = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  }
};

// Never destroyed: threads may still release proxies while the process exits.
State& S() {
  static State* state = new State;
  return *state;
}

// --- Explanations -------------------------------------------------------------

std::string Hex(const void* p) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%p", p);
  return buffer;
}

std::string DescribeCurrentThread() {
  ApartmentRef current = CurrentApartment();
  std::string where = current ? current->Describe() : "no apartment";
  return "thread " + std::to_string(GetCurrentThreadId()) + " (in " + where + ")";
}

std::string DescribeStub(const StubManager& stub) {
  return "object " + Hex(stub.identity_address) + " (exported from " +
         stub.apartment->Describe() + " as stub " + std::to_string(stub.id) + ")";
}

// Requires S().mu (reads the disconnect fields).
std::string DescribeDisconnectLocked(const StubManager& stub) {
  std::string text = DescribeStub(stub) + " was disconnected ";
  text += Ago(stub.disconnect_time);
  switch (stub.reason) {
    case DisconnectReason::kDisconnectObject:
      text += " by CoDisconnectObject on its apartment's thread";
      break;
    case DisconnectReason::kApartmentShutDown:
      text += " when " + stub.apartment->Describe() + " shut down";
      break;
    case DisconnectReason::kReleased:
      text += " when its last external reference (proxy, strong marshal data or lock) was released";
      break;
    case DisconnectReason::kNone:
      break;
  }
  return text;
}

constexpr std::string_view kSource = "apartments marshaling";

// Keeps the calling thread's error info across internal calls that may set
// it (releases through the channel), so a Release never changes it.
class PreserveErrorInfo {
 public:
  PreserveErrorInfo() : saved_(ExchangeThreadErrorInfo(nullptr)) {}
  ~PreserveErrorInfo() {
    IErrorInfo* replaced = ExchangeThreadErrorInfo(saved_);
    if (replaced != nullptr) replaced->Release();
  }
  PreserveErrorInfo(const PreserveErrorInfo&) = delete;
  PreserveErrorInfo& operator=(const PreserveErrorInfo&) = delete;

 private:
  IErrorInfo* saved_;
};

// --- Apartment records and stub managers ---------------------------------------

void OnApartmentShutdown(std::uint64_t apartment_id);

// Makes sure `apartment` has a record and a shutdown callback. Returns false
// once it has shut down (its callbacks ran or can no longer be registered).
bool EnsureApartmentRecord(const ApartmentRef& apartment) {
  State& s = S();
  const std::uint64_t id = apartment->id();
  {
    std::lock_guard lock(s.mu);
    if (s.dead_apartments.contains(id)) return false;
    if (s.apartments.contains(id)) return true;
  }
  // Registered outside the lock: the apartment may hold its own lock while
  // running callbacks, which take ours. Two threads may both register; the
  // callback is idempotent.
  if (!apartment->AddShutdownCallback([id] { OnApartmentShutdown(id); })) {
    std::lock_guard lock(s.mu);
    s.dead_apartments.insert(id);
    return false;
  }
  std::lock_guard lock(s.mu);
  if (s.dead_apartments.contains(id)) return false;
  auto [it, inserted] = s.apartments.try_emplace(id);
  if (inserted) it->second.apartment = apartment;
  return true;
}

// Marks `stub` disconnected. Requires S().mu. Its references stay until
// ReleaseStubReferences runs on its thread.
void MarkDisconnectedLocked(const std::shared_ptr<StubManager>& stub, DisconnectReason reason) {
  State& s = S();
  if (!stub->connected) return;
  stub->connected = false;
  stub->reason = reason;
  stub->disconnect_time = GetClock().Now();
  auto key = std::make_pair(stub->apartment_id, stub->identity);
  auto it = s.stubs_by_identity.find(key);
  if (it != s.stubs_by_identity.end() && it->second == stub) s.stubs_by_identity.erase(it);
}

// Releases the object references of a disconnected stub. Must run on the
// stub's apartment thread (or an MTA thread for the MTA). Idempotent.
void ReleaseStubReferences(const std::shared_ptr<StubManager>& stub) {
  State& s = S();
  IUnknown* identity = nullptr;
  std::unordered_map<IID, void*> interfaces;
  {
    std::lock_guard lock(s.mu);
    identity = std::exchange(stub->identity, nullptr);
    interfaces.swap(stub->interfaces);
    auto record = s.apartments.find(stub->apartment_id);
    if (record != s.apartments.end()) record->second.stubs.erase(stub->id);
    if (identity != nullptr) --s.live_stubs;
  }
  for (auto& [iid, itf] : interfaces) static_cast<IUnknown*>(itf)->Release();
  if (identity != nullptr) identity->Release();
}

// Releases a disconnected stub's references on its own thread: directly when
// we are there, otherwise by a runtime call through the channel, which the
// target's message filter does not see and nothing cancels (as Windows'
// IRemUnknown::RemRelease traffic is the runtime's, not the application's).
// A release is never lost: when that call cannot be made now (the target's
// queue is at its quota, this thread is in no apartment, for instance a
// client apartment shutting down, or inside an input-synchronous call), it is
// posted one-way (PostRuntimeWork) and runs when the target next pumps, or at
// its shutdown at the latest. ReleaseStubReferences is idempotent, so a call
// that failed after running (its thread exited inside a user's Release) costs
// nothing more.
void ReleaseStubReferencesInItsApartment(const std::shared_ptr<StubManager>& stub) {
  if (stub->apartment->IsCurrent()) {
    ReleaseStubReferences(stub);
    return;
  }
  PreserveErrorInfo preserve;
  HRESULT hr = InvokeRuntimeInApartment(stub->apartment, [stub] {
    ReleaseStubReferences(stub);
    return S_OK;
  });
  if (SUCCEEDED(hr)) return;
  // False only once the apartment is gone: its shutdown released the stub.
  (void)PostRuntimeWork(stub->apartment, [stub] { ReleaseStubReferences(stub); });
}

// Drops one strong reference; the last one disconnects the stub and releases
// the object in its apartment.
void ReleaseStrong(const std::shared_ptr<StubManager>& stub) {
  bool release = false;
  {
    std::lock_guard lock(S().mu);
    --stub->strong;
    if (stub->strong <= 0 && stub->connected) {
      MarkDisconnectedLocked(stub, DisconnectReason::kReleased);
      release = true;
    }
  }
  if (release) ReleaseStubReferencesInItsApartment(stub);
}

// Finds or creates the stub manager of `identity` in `apartment` (the
// calling thread's). Returns S_OK, RPC_E_DISCONNECTED when the apartment is
// shutting down, or E_OUTOFMEMORY.
HRESULT GetOrCreateStub(const ApartmentRef& apartment, IUnknown* identity,
                        std::shared_ptr<StubManager>* out) {
  State& s = S();
  if (!EnsureApartmentRecord(apartment)) {
    SetCallErrorInfo(RPC_E_DISCONNECTED,
                     "Cannot export an object from " + apartment->Describe() +
                         ": the apartment is shutting down.",
                     kSource);
    return RPC_E_DISCONNECTED;
  }
  const auto key = std::make_pair(apartment->id(), identity);
  {
    std::lock_guard lock(s.mu);
    auto it = s.stubs_by_identity.find(key);
    if (it != s.stubs_by_identity.end()) {
      *out = it->second;
      return S_OK;
    }
  }
  std::shared_ptr<StubManager> stub;
  try {
    stub = std::make_shared<StubManager>();
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  stub->apartment = apartment;
  stub->apartment_id = apartment->id();
  stub->identity_address = identity;
  identity->AddRef();
  stub->identity = identity;
  bool lost_race = false;
  {
    std::lock_guard lock(s.mu);
    auto record = s.apartments.find(stub->apartment_id);
    if (record == s.apartments.end()) {
      lost_race = true;  // shut down meanwhile
    } else {
      auto [it, inserted] = s.stubs_by_identity.try_emplace(key, stub);
      if (inserted) {
        stub->id = s.next_id++;
        record->second.stubs.emplace(stub->id, stub);
        ++s.live_stubs;
        *out = stub;
      } else {
        *out = it->second;
        lost_race = true;
      }
    }
  }
  if (lost_race) {
    identity->Release();
    if (!*out) return RPC_E_DISCONNECTED;
  }
  return S_OK;
}

// Makes the stub hold interface `riid` of its object. Runs on the stub's
// apartment thread. Returns S_OK, the object's QueryInterface failure, or
// RPC_E_DISCONNECTED.
HRESULT EnsureInterface(const std::shared_ptr<StubManager>& stub, REFIID riid) {
  IUnknown* identity = nullptr;
  {
    std::lock_guard lock(S().mu);
    if (!stub->connected) return RPC_E_DISCONNECTED;
    if (stub->interfaces.contains(riid)) return S_OK;
    identity = stub->identity;
    identity->AddRef();
  }
  void* itf = nullptr;
  HRESULT hr = identity->QueryInterface(riid, &itf);
  identity->Release();
  if (FAILED(hr)) return hr;
  if (itf == nullptr) return E_NOINTERFACE;
  bool keep = false;
  bool connected = false;
  {
    std::lock_guard lock(S().mu);
    connected = stub->connected;
    if (connected) keep = stub->interfaces.try_emplace(riid, itf).second;
  }
  if (!keep) static_cast<IUnknown*>(itf)->Release();
  // Disconnected during the QueryInterface (by it, or by its apartment's
  // teardown): there is no interface to call any more.
  return connected ? S_OK : RPC_E_DISCONNECTED;
}

// --- Proxy factories -------------------------------------------------------------

struct FactoryTable {
  std::mutex mu;
  std::unordered_map<IID, ProxyFactory> factories;
};

FactoryTable& Factories() {
  static FactoryTable* table = new FactoryTable;
  return *table;
}

ProxyFactory LookupProxyFactory(REFIID iid) {
  static std::once_flag standard;
  std::call_once(standard, [] { RegisterStandardProxies(); });
  FactoryTable& table = Factories();
  std::lock_guard lock(table.mu);
  auto it = table.factories.find(iid);
  return it == table.factories.end() ? nullptr : it->second;
}

// --- Proxy manager -----------------------------------------------------------------

class ProxyManager final : public IUnknown, public ProxyManagerBase {
 public:
  ProxyManager(ApartmentRef client, std::shared_ptr<StubManager> stub)
      : client_(std::move(client)), client_id_(client_->id()), stub_(std::move(stub)),
        local_(this, &IsOwnRemoteInterface) {}

  // IUnknown: the proxy's identity.
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
    if (remaining == 0) Destroy();
    return remaining;
  }

  // Takes a reference unless the manager is already dying (count 0), for
  // lookups in the tables. Requires S().mu, which Destroy also takes before
  // leaving the tables, so a manager found there is still allocated.
  bool TryAddRefLocked() noexcept {
    ULONG n = refs_.load(std::memory_order_relaxed);
    while (n != 0) {
      if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  HRESULT QueryInterfaceProxy(REFIID riid, void** ppv) override {
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
      std::lock_guard lock(S().mu);
      auto it = proxies_.find(riid);
      if (it != proxies_.end()) {
        AddRefProxy();
        *ppv = it->second->InterfacePointer();
        return S_OK;
      }
    }
    ProxyFactory factory = LookupProxyFactory(riid);
    if (factory == nullptr) return E_NOINTERFACE;
    HRESULT hr = CheckUsable();
    if (FAILED(hr)) return hr;
    // An interface the stub already holds (the marshaled one, made at marshal
    // time, or one another client asked for) needs no round trip: as on
    // Windows, where the marshal packet carries the interface's IPID,
    // unmarshaling never calls into the object's apartment, so it works
    // while that apartment's thread is busy and not pumping.
    bool known;
    {
      std::lock_guard lock(S().mu);
      known = stub_->connected && stub_->interfaces.count(riid) != 0;
    }
    if (!known) {
      bool disconnected = false;
      static constexpr RemUnknownCall kRemQueryInterface{kRemQueryInterfaceMethod};
      hr = InvokeInApartment(
          stub_->apartment,
          [&]() -> HRESULT {
            HRESULT ensured = EnsureInterface(stub_, riid);
            disconnected = ensured == RPC_E_DISCONNECTED;
            return ensured;
          },
          nullptr, &kRemQueryInterface);
      if (disconnected) return FailDisconnected();
      if (FAILED(hr)) return hr;
    }
    InterfaceProxyBase* proxy = factory(this);
    if (proxy == nullptr) return E_OUTOFMEMORY;
    InterfaceProxyBase* extra = nullptr;
    {
      std::lock_guard lock(S().mu);
      auto [it, inserted] = proxies_.try_emplace(riid, proxy);
      if (!inserted) extra = proxy;
      AddRefProxy();
      *ppv = it->second->InterfacePointer();
    }
    delete extra;
    return S_OK;
  }

  HRESULT Call(REFIID iid, const ServerCall& call) override {
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

  // The object's interface `iid` as the stub holds it (no reference), or
  // null once disconnected; on the stub's apartment, as CallOnStub's lookup.
  IUnknown* ServerInterface(REFIID iid) const noexcept {
    void* itf = nullptr;
    if (stub_->apartment->kind() == ApartmentKind::kSta) {
      // No lock, as in CallOnStub: only this thread changes the map.
      if (stub_->connected.load(std::memory_order_acquire)) {
        auto it = stub_->interfaces.find(iid);
        if (it != stub_->interfaces.end()) itf = it->second;
      }
    } else {
      std::lock_guard lock(S().mu);
      if (stub_->connected) {
        auto it = stub_->interfaces.find(iid);
        if (it != stub_->interfaces.end()) itf = it->second;
      }
    }
    return static_cast<IUnknown*>(itf);
  }

  // The server half of Call, on the stub's apartment.
  HRESULT CallOnStub(REFIID iid, const ServerCall& call, bool* disconnected) {
    void* itf = nullptr;
    if (stub_->apartment->kind() == ApartmentKind::kSta) {
      // No lock: an STA stub's `interfaces` changes only on its own thread,
      // which is this one (EnsureInterface, ReleaseStubReferences, both
      // served here), so nothing writes it while we read; other threads
      // only read it. A disconnect from another thread clears `connected`
      // (atomic) first and leaves the references for this thread to release.
      if (stub_->connected.load(std::memory_order_acquire)) {
        auto it = stub_->interfaces.find(iid);
        if (it != stub_->interfaces.end()) itf = it->second;
      }
      if (itf != nullptr) static_cast<IUnknown*>(itf)->AddRef();
    } else {
      std::lock_guard lock(S().mu);  // MTA: any MTA thread may release them.
      if (stub_->connected) {
        auto it = stub_->interfaces.find(iid);
        if (it != stub_->interfaces.end()) itf = it->second;
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

  // Whether the proxy may be used from the calling thread; sets error info
  // when not.
  HRESULT CheckUsable() {
    // Fast path, no lock (every call through the proxy): each flag only ever
    // goes from usable to unusable, so a stale read is the same race as a
    // disconnect just after the check, which the call itself reports.
    if (__builtin_expect(!client_gone_.load(std::memory_order_acquire) &&
                             !client_->IsShutDown() && client_->IsCurrent() &&
                             stub_->connected.load(std::memory_order_acquire),
                         1)) {
      return S_OK;
    }
    std::unique_lock lock(S().mu);
    if (client_gone_ || client_->IsShutDown()) {
      std::string text = "This proxy of " + DescribeStub(*stub_) + " belonged to " +
                         client_->Describe() + ", which was uninitialized " +
                         Ago(client_gone_ ? client_gone_time_ : client_->shutdown_time()) +
                         "; the proxies an apartment held are disconnected when it goes, "
                         "whichever thread uses them afterwards.";
      lock.unlock();
      SetCallErrorInfo(CO_E_OBJNOTCONNECTED, text, kSource);
      return CO_E_OBJNOTCONNECTED;
    }
    lock.unlock();
    if (!client_->IsCurrent()) {
      if (!CurrentApartment()) return FailNotInitialized();
      return FailWrongThread();
    }
    lock.lock();
    if (!stub_->connected) {
      lock.unlock();
      return FailDisconnected();
    }
    return S_OK;
  }

  // QueryInterface's check: RPC_E_WRONG_THREAD from another apartment (a
  // proxy whose own apartment is gone is left to CheckUsable).
  HRESULT CheckQueryApartment() {
    if (__builtin_expect(client_->IsCurrent(), 1)) return S_OK;
    if (client_gone_.load(std::memory_order_acquire) || client_->IsShutDown()) return S_OK;
    return FailWrongThread();
  }

  HRESULT FailWrongThread() {
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

  // A call from a thread that is in no apartment (it never called
  // CoInitializeEx, and no MTA exists for it to be in implicitly).
  HRESULT FailNotInitialized() {
    SetCallErrorInfo(CO_E_NOTINITIALIZED,
                     "This proxy of " + DescribeStub(*stub_) + " was called from thread " +
                         std::to_string(GetCurrentThreadId()) +
                         ", which is in no apartment: it never called CoInitializeEx, and no "
                         "MTA exists that it would be in implicitly. Call CoInitializeEx on "
                         "it, and use there a proxy unmarshaled in its own apartment.",
                     kSource);
    return CO_E_NOTINITIALIZED;
  }

  // For unmarshaling data whose object is gone: the interface proxy for
  // `riid` without asking the object (its calls fail with
  // RPC_E_DISCONNECTED), as Windows builds a proxy from NORMAL data without
  // contacting the server.
  HRESULT QueryInterfaceUnchecked(REFIID riid, void** ppv) noexcept {
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
    InterfaceProxyBase* proxy = factory(this);
    if (proxy == nullptr) return E_OUTOFMEMORY;
    InterfaceProxyBase* extra = nullptr;
    {
      std::lock_guard lock(S().mu);
      auto [it, inserted] = proxies_.try_emplace(riid, proxy);
      if (!inserted) extra = proxy;
      AddRefProxy();
      *ppv = it->second->InterfacePointer();
    }
    delete extra;
    return S_OK;
  }

  // Whether `p` is this manager's IUnknown or one of its interface proxies.
  bool OwnsRemoteInterface(IUnknown* p) {
    if (p == static_cast<IUnknown*>(this)) return true;
    std::lock_guard lock(S().mu);
    for (auto& [iid, proxy] : proxies_) {
      if (proxy->InterfacePointer() == static_cast<void*>(p)) return true;
    }
    return false;
  }

  // Sets the disconnect explanation and returns RPC_E_DISCONNECTED.
  HRESULT FailDisconnected() {
    std::string text;
    {
      std::lock_guard lock(S().mu);
      text = "Call through a proxy failed: " + DescribeDisconnectLocked(*stub_) + ".";
    }
    SetCallErrorInfo(RPC_E_DISCONNECTED, text, kSource);
    return RPC_E_DISCONNECTED;
  }

  // At the client apartment's shutdown. Requires S().mu.
  void MarkClientGoneLocked() {
    client_gone_ = true;
    client_gone_time_ = GetClock().Now();
  }

  // Gives up the strong reference on the stub (client apartment shutdown).
  void DropStubReference() {
    bool had;
    {
      std::lock_guard lock(S().mu);
      had = std::exchange(holds_stub_ref_, false);
    }
    if (had) ReleaseStrong(stub_);
  }

  const std::shared_ptr<StubManager>& stub() const { return stub_; }
  const ApartmentRef& client() const { return client_; }

 private:
  ~ProxyManager() {
    for (auto& [iid, proxy] : proxies_) delete proxy;
  }

  void Destroy() {
    // Deleted however this ends: releasing the stub may wait in the modal
    // loop, where a served call can end the thread (ExitThread unwinds here).
    struct DeleteAtEnd {
      ProxyManager* self;
      ~DeleteAtEnd() { delete self; }
    } delete_at_end{this};
    State& s = S();
    bool had;
    {
      std::lock_guard lock(s.mu);
      auto it = s.proxies.find({client_id_, stub_->id});
      if (it != s.proxies.end() && it->second == this) s.proxies.erase(it);
      auto record = s.apartments.find(client_id_);
      if (record != s.apartments.end()) record->second.proxies.erase(this);
      had = std::exchange(holds_stub_ref_, false);
      --s.live_proxies;
    }
    if (had) {
      PreserveErrorInfo preserve;
      ReleaseStrong(stub_);
    }
  }

  std::atomic<ULONG> refs_{1};
  const ApartmentRef client_;
  const std::uint64_t client_id_;
  const std::shared_ptr<StubManager> stub_;
  // Guarded by S().mu.
  bool holds_stub_ref_ = true;
  // Written under S().mu; read without it by CheckUsable's fast path.
  std::atomic<bool> client_gone_{false};
  Clock::TimePoint client_gone_time_{};
  std::unordered_map<IID, InterfaceProxyBase*> proxies_;
  ProxyLocalInterfaces local_;

  static bool IsOwnRemoteInterface(ProxyManagerBase* manager, IUnknown* p) {
    return static_cast<ProxyManager*>(manager)->OwnsRemoteInterface(p);
  }
};

// The proxy manager of `stub` in `client` (AddRef'ed), created if needed.
// Consumes one strong reference on `stub` that the caller holds.
HRESULT GetOrCreateProxyManager(const ApartmentRef& client, const std::shared_ptr<StubManager>& stub,
                                ProxyManager** out) {
  State& s = S();
  *out = nullptr;
  bool extra_ref = false;
  HRESULT hr = S_OK;
  if (!EnsureApartmentRecord(client)) {
    extra_ref = true;
    hr = CO_E_NOTINITIALIZED;
  } else {
    std::lock_guard lock(s.mu);
    auto record = s.apartments.find(client->id());
    if (record == s.apartments.end()) {
      extra_ref = true;
      hr = CO_E_NOTINITIALIZED;
    } else {
      auto key = std::make_pair(client->id(), stub->id);
      auto it = s.proxies.find(key);
      if (it != s.proxies.end() && it->second->TryAddRefLocked()) {
        *out = it->second;
        extra_ref = true;
      } else {
        auto* manager = new (std::nothrow) ProxyManager(client, stub);
        if (manager == nullptr) {
          extra_ref = true;
          hr = E_OUTOFMEMORY;
        } else {
          s.proxies[key] = manager;
          record->second.proxies.insert(manager);
          ++s.live_proxies;
          *out = manager;
        }
      }
    }
  }
  if (extra_ref) ReleaseStrong(stub);
  if (hr == CO_E_NOTINITIALIZED) {
    SetCallErrorInfo(hr, "Cannot unmarshal into " + client->Describe() + ": it is shutting down.",
                     kSource);
  }
  return hr;
}

// The proxy manager behind `unk`, AddRef'ed, or null when `unk` is no proxy.
ProxyManager* AsProxyManager(IUnknown* unk) {
  void* pm = nullptr;
  if (FAILED(unk->QueryInterface(kIidProxyManager, &pm)) || pm == nullptr) return nullptr;
  return static_cast<ProxyManager*>(static_cast<IUnknown*>(pm));
}

// --- Agile objects -----------------------------------------------------------------

bool IsAgile(IUnknown* unk) {
  IUnknown* agile = nullptr;
  if (SUCCEEDED(unk->QueryInterface(IID_IAgileObject, reinterpret_cast<void**>(&agile))) &&
      agile != nullptr) {
    agile->Release();
    return true;
  }
  IMarshal* marshal = nullptr;
  if (FAILED(unk->QueryInterface(IID_IMarshal, reinterpret_cast<void**>(&marshal))) ||
      marshal == nullptr) {
    return false;
  }
  CLSID clsid = CLSID_NULL;
  HRESULT hr = marshal->GetUnmarshalClass(IID_IUnknown, unk, MSHCTX_INPROC, nullptr,
                                          MSHLFLAGS_NORMAL, &clsid);
  marshal->Release();
  return SUCCEEDED(hr) && clsid == kClsidInProcFreeMarshaler;
}

// --- Packets -----------------------------------------------------------------------

std::uint64_t Check(const WireRecord& r) {
  std::uint64_t h = S().secret ^ 0x9e3779b97f4a7c15ull;
  auto mix = [&h](std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
  };
  mix(r.flags);
  mix(r.kind);
  mix(r.apartment_id);
  mix(r.object_id);
  mix(r.packet_id);
  std::uint64_t iid_words[2];
  std::memcpy(iid_words, &r.iid, sizeof iid_words);
  mix(iid_words[0]);
  mix(iid_words[1]);
  return h;
}

// Registers a standard-marshaling packet for interface `riid` of the object
// behind `stub`, counting it as a strong or weak export, and fills `record`.
// RPC_E_DISCONNECTED when the stub was disconnected meanwhile.
HRESULT AddStandardPacket(State& s, const std::shared_ptr<StubManager>& stub, DWORD flags,
                          REFIID riid, bool weak, WireRecord* record) {
  std::lock_guard lock(s.mu);
  if (!stub->connected) return RPC_E_DISCONNECTED;
  ++(weak ? stub->weak : stub->strong);
  Packet packet;
  packet.flags = flags;
  packet.iid = riid;
  packet.stub = stub;
  packet.apartment_id = stub->apartment_id;
  record->kind = kKindStandard;
  record->apartment_id = stub->apartment_id;
  record->object_id = stub->id;
  record->packet_id = s.next_id++;
  s.packets.emplace(record->packet_id, std::move(packet));
  record->check = Check(*record);
  return S_OK;
}

// Marshals interface `riid` of `unk` into a new packet. The calling thread
// must be in an apartment (`current`).
HRESULT MarshalToPacket(const ApartmentRef& current, IUnknown* unk, REFIID riid, DWORD flags,
                        WireRecord* record) {
  State& s = S();
  std::memset(record, 0, sizeof *record);
  std::memcpy(record->signature, kSignature, sizeof kSignature);
  record->flags = flags;
  record->iid = riid;
  const bool weak = (flags & MSHLFLAGS_TABLEWEAK) != 0;

  if (ProxyManager* pm = AsProxyManager(unk)) {
    // A proxy: the data names the original object in its own apartment.
    std::unique_ptr<IUnknown, void (*)(IUnknown*)> hold(pm, [](IUnknown* p) { p->Release(); });
    HRESULT hr = pm->CheckUsable();
    if (FAILED(hr)) return hr;
    void* itf = nullptr;
    hr = pm->QueryInterface(riid, &itf);
    if (FAILED(hr)) return hr;
    static_cast<IUnknown*>(itf)->Release();
    return AddStandardPacket(s, pm->stub(), flags, riid, weak, record);
  }

  void* itf = nullptr;
  HRESULT hr = unk->QueryInterface(riid, &itf);
  if (FAILED(hr)) return hr;
  if (itf == nullptr) return E_NOINTERFACE;

  if (IsAgile(unk)) {
    std::lock_guard lock(s.mu);
    Packet packet;
    packet.flags = flags;
    packet.iid = riid;
    packet.direct = static_cast<IUnknown*>(itf);  // the packet's reference
    // Except for TABLEWEAK data, which holds none (as the free-threaded
    // marshaler's on Windows): its object must be kept alive by its owner.
    if (weak) packet.direct->Release();
    record->kind = kKindDirect;
    record->packet_id = s.next_id++;
    s.packets.emplace(record->packet_id, std::move(packet));
    record->check = Check(*record);
    return S_OK;
  }
  static_cast<IUnknown*>(itf)->Release();

  IUnknown* identity = nullptr;
  hr = unk->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity));
  if (FAILED(hr)) return hr;
  std::shared_ptr<StubManager> stub;
  hr = GetOrCreateStub(current, identity, &stub);
  identity->Release();
  if (FAILED(hr)) return hr;
  hr = EnsureInterface(stub, riid);
  if (FAILED(hr)) return hr;
  return AddStandardPacket(s, stub, flags, riid, weak, record);
}

bool IsNormal(DWORD flags) { return (flags & (MSHLFLAGS_TABLESTRONG | MSHLFLAGS_TABLEWEAK)) == 0; }

HRESULT FailPacketGone(std::uint64_t packet_id) {
  SetCallErrorInfo(CO_E_OBJNOTCONNECTED,
                   "The marshal data (packet " + std::to_string(packet_id) +
                       ") is no longer valid: MSHLFLAGS_NORMAL data unmarshals only once, and "
                       "data released with CoReleaseMarshalData (or a revoked global interface "
                       "table cookie) cannot be unmarshaled.",
                   kSource);
  return CO_E_OBJNOTCONNECTED;
}

// The object was disconnected (CoDisconnectObject, its apartment's shutdown)
// after the packet was found connected but before its proxy was ready: the
// unmarshal fails as it would have a moment later, with CO_E_OBJNOTCONNECTED
// (win32_marshal.h), not the RPC_E_DISCONNECTED of a call through a proxy.
HRESULT FailUnmarshalRacedDisconnect(const StubManager& stub) {
  std::string text;
  {
    std::lock_guard lock(S().mu);
    text = stub.connected ? "Cannot unmarshal: " + stub.apartment->Describe() +
                                " shut down while the proxy of " + DescribeStub(stub) +
                                " was being made."
                          : "Cannot unmarshal: " + DescribeDisconnectLocked(stub) +
                                ", while the proxy was being made.";
  }
  SetCallErrorInfo(CO_E_OBJNOTCONNECTED, text, kSource);
  return CO_E_OBJNOTCONNECTED;
}
HRESULT UnmarshalStaleRecord(const ApartmentRef& current, const WireRecord& record, REFIID riid_in,
                             void** ppv);

// Unmarshals packet `packet_id` in the calling apartment. NORMAL packets are
// consumed whatever the outcome. `expected` (when non-null) is the record
// the packet must match.
HRESULT UnmarshalPacket(std::uint64_t packet_id, REFIID riid_in, void** ppv,
                        const WireRecord* expected) {
  State& s = S();
  *ppv = nullptr;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;

  Packet packet;
  bool normal = false;
  bool same_apartment = false;
  bool missing = false;
  IUnknown* identity = nullptr;
  std::string gone;
  {
    std::lock_guard lock(s.mu);
    auto it = s.packets.find(packet_id);
    missing = it == s.packets.end();
  }
  // Error info is set outside the lock (it allocates and may release).
  if (missing) {
    return expected != nullptr ? UnmarshalStaleRecord(current, *expected, riid_in, ppv)
                               : FailPacketGone(packet_id);
  }
  HRESULT gone_hr = CO_E_OBJNOTCONNECTED;
  {
    std::lock_guard lock(s.mu);
    auto it = s.packets.find(packet_id);
    if (it == s.packets.end()) return CO_E_OBJNOTCONNECTED;  // consumed meanwhile
    if (expected != nullptr &&
        (it->second.apartment_id != expected->apartment_id ||
         (it->second.stub ? it->second.stub->id : 0) != expected->object_id ||
         it->second.flags != expected->flags || !(it->second.iid == expected->iid))) {
      return RPC_E_INVALID_OBJREF;
    }
    packet = it->second;
    normal = IsNormal(packet.flags);
    if (normal) s.packets.erase(it);
    if (packet.direct != nullptr) {
      if (!normal) packet.direct->AddRef();
    } else {
      const auto& stub = packet.stub;
      if (!stub->connected) {
        gone = "Cannot unmarshal: " + DescribeDisconnectLocked(*stub) + ".";
        // Table data asks the object's apartment for references, which no
        // longer knows the object (Windows: CO_E_OBJNOTREG).
        if (!normal && stub->reason != DisconnectReason::kApartmentShutDown) {
          gone_hr = CO_E_OBJNOTREG;
        }
      } else {
        same_apartment = stub->apartment_id == current->id();
        if (same_apartment) {
          identity = stub->identity;
          identity->AddRef();
        } else if (!normal) {
          ++stub->strong;  // for the proxy manager; NORMAL data hands over its own
        }
      }
    }
  }
  {
    const IID& riid = riid_in == IID_NULL ? packet.iid : riid_in;
    if (packet.direct != nullptr) {
      HRESULT hr = packet.direct->QueryInterface(riid, ppv);
      packet.direct->Release();
      return hr;
    }
    if (!gone.empty()) {
      SetCallErrorInfo(gone_hr, gone, kSource);
      return gone_hr;
    }
    if (same_apartment) {
      // In the object's own apartment: the object itself.
      HRESULT hr = identity->QueryInterface(riid, ppv);
      identity->Release();
      if (normal) ReleaseStrong(packet.stub);
      return hr;
    }
    ProxyManager* pm = nullptr;
    HRESULT hr = GetOrCreateProxyManager(current, packet.stub, &pm);
    if (FAILED(hr)) return hr;
    hr = pm->QueryInterfaceProxy(riid, ppv);
    pm->ReleaseProxy();
    if (hr == RPC_E_DISCONNECTED) return FailUnmarshalRacedDisconnect(*packet.stub);
    return hr;
  }
}

// A proxy for marshal data whose object is gone, built without asking
// anyone: its calls fail with RPC_E_DISCONNECTED. `server` is the object's
// apartment (still alive).
HRESULT UnmarshalDisconnectedProxy(const ApartmentRef& current, const ApartmentRef& server,
                                   const WireRecord& record, REFIID riid, void** ppv) {
  State& s = S();
  std::shared_ptr<StubManager> placeholder;
  try {
    placeholder = std::make_shared<StubManager>();
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  placeholder->id = record.object_id;
  placeholder->apartment = server;
  placeholder->apartment_id = record.apartment_id;
  placeholder->connected = false;
  placeholder->reason = DisconnectReason::kReleased;
  placeholder->disconnect_time = GetClock().Now();
  if (!EnsureApartmentRecord(current)) return CO_E_NOTINITIALIZED;
  auto* manager = new (std::nothrow) ProxyManager(current, placeholder);
  if (manager == nullptr) return E_OUTOFMEMORY;
  {
    std::lock_guard lock(s.mu);
    auto it = s.apartments.find(current->id());
    if (it != s.apartments.end()) it->second.proxies.insert(manager);
    ++s.live_proxies;
  }
  HRESULT hr = manager->QueryInterfaceUnchecked(riid, ppv);
  manager->ReleaseProxy();
  return hr;
}

// Unmarshals a checked record whose packet no longer exists (consumed or
// released), with the outcomes Windows gives such data:
// - NORMAL data: while its object is still exported (the data was
//   consumed), CO_E_OBJNOTCONNECTED ("unmarshals only once"); once the
//   object is gone (the data was released), a proxy whose calls return
//   RPC_E_DISCONNECTED.
// - TABLESTRONG/TABLEWEAK data released with CoReleaseMarshalData: a working
//   proxy while something else (a proxy, a lock) keeps the object exported,
//   otherwise CO_E_OBJNOTREG.
// - Data of an apartment that shut down: CO_E_OBJNOTCONNECTED.
HRESULT UnmarshalStaleRecord(const ApartmentRef& current, const WireRecord& record, REFIID riid_in,
                             void** ppv) {
  State& s = S();
  const IID& riid = riid_in == IID_NULL ? record.iid : riid_in;
  if (record.kind != kKindStandard) return FailPacketGone(record.packet_id);
  const bool normal = IsNormal(record.flags);
  ApartmentRef server;
  std::shared_ptr<StubManager> stub;
  IUnknown* identity = nullptr;
  {
    std::lock_guard lock(s.mu);
    auto apartment = s.apartments.find(record.apartment_id);
    if (apartment != s.apartments.end() && !s.dead_apartments.contains(record.apartment_id)) {
      server = apartment->second.apartment;
      auto found = apartment->second.stubs.find(record.object_id);
      if (found != apartment->second.stubs.end() && found->second->connected) {
        stub = found->second;
        if (!normal) {
          if (stub->apartment_id == current->id()) {
            identity = stub->identity;
            identity->AddRef();
          } else {
            ++stub->strong;  // for the proxy manager
          }
        }
      }
    }
  }
  if (!server) return FailPacketGone(record.packet_id);
  if (normal) {
    if (stub) return FailPacketGone(record.packet_id);
    return UnmarshalDisconnectedProxy(current, server, record, riid, ppv);
  }
  if (!stub) {
    SetCallErrorInfo(CO_E_OBJNOTREG,
                     "The marshal data (packet " + std::to_string(record.packet_id) +
                         ") was released with CoReleaseMarshalData and its object is no "
                         "longer exported from " + server->Describe() +
                         ": released table data unmarshals only while a proxy or a lock "
                         "keeps the object exported.",
                     kSource);
    return CO_E_OBJNOTREG;
  }
  if (identity != nullptr) {
    HRESULT hr = identity->QueryInterface(riid, ppv);
    identity->Release();
    return hr;
  }
  ProxyManager* pm = nullptr;
  HRESULT hr = GetOrCreateProxyManager(current, stub, &pm);
  if (FAILED(hr)) return hr;
  hr = pm->QueryInterfaceProxy(riid, ppv);
  pm->ReleaseProxy();
  return hr;
}

// Discards packet `packet_id` (CoReleaseMarshalData).
HRESULT ReleasePacket(std::uint64_t packet_id, const WireRecord* expected) {
  State& s = S();
  Packet packet;
  bool missing = false;
  {
    std::lock_guard lock(s.mu);
    auto it = s.packets.find(packet_id);
    missing = it == s.packets.end();
  }
  if (missing) return FailPacketGone(packet_id);
  {
    std::lock_guard lock(s.mu);
    auto it = s.packets.find(packet_id);
    if (it == s.packets.end()) return CO_E_OBJNOTCONNECTED;  // released meanwhile
    if (expected != nullptr && it->second.apartment_id != expected->apartment_id) {
      return RPC_E_INVALID_OBJREF;
    }
    packet = std::move(it->second);
    s.packets.erase(it);
  }
  if (packet.direct != nullptr) {
    if ((packet.flags & MSHLFLAGS_TABLEWEAK) == 0) packet.direct->Release();
    return S_OK;
  }
  if ((packet.flags & MSHLFLAGS_TABLEWEAK) != 0) {
    bool release = false;
    {
      std::lock_guard lock(s.mu);
      --packet.stub->weak;
      if (packet.stub->weak <= 0 && packet.stub->strong <= 0 && packet.stub->connected) {
        MarkDisconnectedLocked(packet.stub, DisconnectReason::kReleased);
        release = true;
      }
    }
    if (release) ReleaseStubReferencesInItsApartment(packet.stub);
    return S_OK;
  }
  ReleaseStrong(packet.stub);
  return S_OK;
}

// Reads and checks a marshal record.
HRESULT ReadRecord(IStream* stream, WireRecord* record) {
  ULONG read = 0;
  HRESULT hr = stream->Read(record, sizeof *record, &read);
  if (FAILED(hr)) return hr;
  auto invalid = [](const char* why) {
    SetCallErrorInfo(RPC_E_INVALID_OBJREF,
                     std::string("The stream does not hold valid marshal data: ") + why + ".",
                     kSource);
    return RPC_E_INVALID_OBJREF;
  };
  if (read != sizeof *record) {
    // As Windows, for which a stream that runs out is a read fault.
    SetCallErrorInfo(STG_E_READFAULT,
                     "The stream ends before the end of the marshal record (" +
                         std::to_string(read) + " of " + std::to_string(sizeof *record) +
                         " bytes left at its current position).",
                     kSource);
    return STG_E_READFAULT;
  }
  if (std::memcmp(record->signature, kSignature, sizeof kSignature) != 0) {
    return invalid("the record's signature is wrong (not written by CoMarshalInterface, or "
                   "the stream is not positioned at its start)");
  }
  if ((record->kind != kKindStandard && record->kind != kKindDirect) ||
      (record->flags & ~kKnownFlags) != 0 || record->check != Check(*record)) {
    return invalid("the record is corrupted");
  }
  return S_OK;
}

// --- Shutdown ----------------------------------------------------------------------

void OnApartmentShutdown(std::uint64_t apartment_id) {
  State& s = S();
  std::vector<std::shared_ptr<StubManager>> stubs;
  std::vector<ProxyManager*> proxies;
  {
    std::lock_guard lock(s.mu);
    s.dead_apartments.insert(apartment_id);
    auto it = s.apartments.find(apartment_id);
    if (it == s.apartments.end()) return;
    for (auto& [id, stub] : it->second.stubs) {
      MarkDisconnectedLocked(stub, DisconnectReason::kApartmentShutDown);
      stubs.push_back(stub);
    }
    for (ProxyManager* pm : it->second.proxies) {
      pm->MarkClientGoneLocked();
      if (pm->TryAddRefLocked()) proxies.push_back(pm);
    }
    it->second.proxies.clear();
    // Keep the record (without proxies) until its stubs are released below.
  }
  // Exported objects are released here, on the apartment's own thread.
  for (auto& stub : stubs) ReleaseStubReferences(stub);
  // Proxies held here let go of their objects (in the objects' apartments).
  for (ProxyManager* pm : proxies) {
    pm->DropStubReference();
    pm->Release();
  }
  ApartmentRef keep_alive;
  {
    std::lock_guard lock(s.mu);
    auto it = s.apartments.find(apartment_id);
    if (it != s.apartments.end()) {
      keep_alive = std::move(it->second.apartment);
      s.apartments.erase(it);
    }
  }
}

// --- The global interface table ------------------------------------------------------

class GlobalInterfaceTableImpl final : public IGlobalInterfaceTable, public IAgileObject {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown || riid == IID_IGlobalInterfaceTable) {
      *ppv = static_cast<IGlobalInterfaceTable*>(this);
    } else if (riid == IID_IAgileObject) {
      *ppv = static_cast<IAgileObject*>(this);
    } else {
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    return S_OK;
  }
  // A process singleton: references are not counted, and both report 1, as
  // Windows' table does (Wine's ole32 tests, run on Windows, check it).
  STDMETHODIMP_(ULONG) AddRef() override { return 1; }
  STDMETHODIMP_(ULONG) Release() override { return 1; }

  STDMETHODIMP RegisterInterfaceInGlobal(IUnknown* pUnk, REFIID riid, DWORD* pdwCookie) override {
    if (pdwCookie != nullptr) *pdwCookie = 0;
    if (pUnk == nullptr || pdwCookie == nullptr) return E_INVALIDARG;
    ApartmentRef current = CurrentApartment();
    if (!current) return CO_E_NOTINITIALIZED;
    WireRecord record;
    HRESULT hr = MarshalToPacket(current, pUnk, riid, MSHLFLAGS_TABLESTRONG, &record);
    if (FAILED(hr)) return hr;
    State& s = S();
    std::lock_guard lock(s.mu);
    DWORD cookie = s.next_cookie++;
    if (s.next_cookie == 0) s.next_cookie = 0x100;
    s.git.emplace(cookie, record.packet_id);
    *pdwCookie = cookie;
    return S_OK;
  }

  STDMETHODIMP RevokeInterfaceFromGlobal(DWORD dwCookie) override {
    if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
    std::uint64_t packet = 0;
    {
      std::lock_guard lock(S().mu);
      auto it = S().git.find(dwCookie);
      if (it == S().git.end()) return E_INVALIDARG;
      packet = it->second;
      S().git.erase(it);
    }
    return ReleasePacket(packet, nullptr);
  }

  STDMETHODIMP GetInterfaceFromGlobal(DWORD dwCookie, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_INVALIDARG;
    *ppv = nullptr;
    if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
    std::uint64_t packet = 0;
    {
      std::lock_guard lock(S().mu);
      auto it = S().git.find(dwCookie);
      if (it == S().git.end()) return E_INVALIDARG;
      packet = it->second;
    }
    return UnmarshalPacket(packet, riid, ppv, nullptr);
  }
};

GlobalInterfaceTableImpl& TheGit() {
  static GlobalInterfaceTableImpl* git = new GlobalInterfaceTableImpl;
  return *git;
}

// The class object of CLSID_StdGlobalInterfaceTable (CoGetClassObject): its
// CreateInstance hands out the table. A process singleton like the table.
class GlobalInterfaceTableFactory final : public IClassFactory, public IAgileObject {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown || riid == IID_IClassFactory) {
      *ppv = static_cast<IClassFactory*>(this);
    } else if (riid == IID_IAgileObject) {
      *ppv = static_cast<IAgileObject*>(this);
    } else {
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    return S_OK;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return 2; }
  STDMETHODIMP_(ULONG) Release() override { return 1; }
  STDMETHODIMP CreateInstance(IUnknown* pUnkOuter, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_INVALIDARG;
    *ppv = nullptr;
    if (pUnkOuter != nullptr) return CLASS_E_NOAGGREGATION;
    return TheGit().QueryInterface(riid, ppv);
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }
};

GlobalInterfaceTableFactory& TheGitFactory() {
  static GlobalInterfaceTableFactory* factory = new GlobalInterfaceTableFactory;
  return *factory;
}

// --- The free-threaded marshaler ---------------------------------------------------

// The free-threaded marshaler's own in-process data (its IMarshal methods
// called directly), laid out as Windows': the MSHLFLAGS (4 bytes), the
// interface pointer (8 bytes), then 16 bytes that Windows leaves opaque and
// that hold here a keyed check of the first two, so that data not written by
// this process's marshaler is refused (RPC_E_INVALID_OBJREF) before its
// pointer is touched. Like Windows', the data is not tracked: it may be
// unmarshaled or released in any order, and keeping the object alive is the
// caller's affair (NORMAL and TABLESTRONG data hold one reference, which
// unmarshaling NORMAL data and releasing either hands back; TABLEWEAK data
// holds none).
constexpr std::size_t kFtmDataSize = sizeof(DWORD) + sizeof(std::uint64_t) + sizeof(GUID);

bool IsInProcess(DWORD context) { return context == MSHCTX_INPROC || context == MSHCTX_CROSSCTX; }

void FtmCheck(DWORD flags, std::uint64_t pointer, std::uint64_t check[2]) {
  std::uint64_t h = S().secret ^ 0x5bd1e9955bd1e995ull;
  auto mix = [&h](std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  };
  mix(flags);
  mix(pointer);
  check[0] = h;
  mix(0xc4ceb9fe1a85ec53ull);
  check[1] = h;
}

HRESULT MarshalFreeThreaded(IStream* stream, REFIID riid, IUnknown* unk, DWORD flags) {
  if (stream == nullptr || unk == nullptr || (flags & ~kKnownFlags) != 0) return E_INVALIDARG;
  void* itf = nullptr;
  HRESULT hr = unk->QueryInterface(riid, &itf);
  if (FAILED(hr)) return hr;
  if (itf == nullptr) return E_NOINTERFACE;
  const auto pointer = reinterpret_cast<std::uint64_t>(itf);
  unsigned char data[kFtmDataSize];
  std::uint64_t check[2];
  FtmCheck(flags, pointer, check);
  std::memcpy(data, &flags, sizeof(DWORD));
  std::memcpy(data + sizeof(DWORD), &pointer, sizeof pointer);
  std::memcpy(data + sizeof(DWORD) + sizeof pointer, check, sizeof check);
  ULONG written = 0;
  hr = stream->Write(data, sizeof data, &written);
  if (SUCCEEDED(hr) && written != sizeof data) hr = STG_E_MEDIUMFULL;
  // TABLEWEAK data holds no reference (Windows'); the others keep the
  // QueryInterface's one.
  if (FAILED(hr) || (flags & MSHLFLAGS_TABLEWEAK) != 0) static_cast<IUnknown*>(itf)->Release();
  return hr;
}

// Reads and checks free-threaded marshal data; *object is its pointer.
HRESULT ReadFreeThreaded(IStream* stream, DWORD* flags, IUnknown** object) {
  if (stream == nullptr) return E_INVALIDARG;
  unsigned char data[kFtmDataSize];
  ULONG read = 0;
  HRESULT hr = stream->Read(data, sizeof data, &read);
  if (FAILED(hr)) return hr;
  if (read != sizeof data) return STG_E_READFAULT;
  std::uint64_t pointer = 0;
  std::uint64_t check[2];
  std::uint64_t expected[2];
  std::memcpy(flags, data, sizeof(DWORD));
  std::memcpy(&pointer, data + sizeof(DWORD), sizeof pointer);
  std::memcpy(check, data + sizeof(DWORD) + sizeof pointer, sizeof check);
  FtmCheck(*flags, pointer, expected);
  if (pointer == 0 || check[0] != expected[0] || check[1] != expected[1]) {
    SetCallErrorInfo(RPC_E_INVALID_OBJREF,
                     "The stream does not hold data written by this process's free-threaded "
                     "marshaler.",
                     kSource);
    return RPC_E_INVALID_OBJREF;
  }
  *object = reinterpret_cast<IUnknown*>(pointer);
  return S_OK;
}

HRESULT UnmarshalFreeThreaded(IStream* stream, REFIID riid, void** ppv) {
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  DWORD flags = 0;
  IUnknown* object = nullptr;
  HRESULT hr = ReadFreeThreaded(stream, &flags, &object);
  if (FAILED(hr)) return hr;
  hr = object->QueryInterface(riid, ppv);
  // NORMAL data hands its reference over, whatever the QueryInterface gave.
  if (IsNormal(flags)) object->Release();
  return hr;
}

HRESULT ReleaseFreeThreaded(IStream* stream) {
  DWORD flags = 0;
  IUnknown* object = nullptr;
  HRESULT hr = ReadFreeThreaded(stream, &flags, &object);
  if (FAILED(hr)) return hr;
  if ((flags & MSHLFLAGS_TABLEWEAK) == 0) object->Release();
  return S_OK;
}

class FreeThreadedMarshaler final : public IUnknown {
 public:
  explicit FreeThreadedMarshaler(IUnknown* outer) : marshal_(this, outer) {}

  // The inner (non-delegating) IUnknown.
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown) {
      *ppv = static_cast<IUnknown*>(this);
    } else if (riid == IID_IMarshal) {
      *ppv = static_cast<IMarshal*>(&marshal_);
    } else {
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    static_cast<IUnknown*>(*ppv)->AddRef();
    return S_OK;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return refs_.fetch_add(1, std::memory_order_relaxed) + 1; }
  STDMETHODIMP_(ULONG) Release() override {
    ULONG remaining = refs_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (remaining == 0) delete this;
    return remaining;
  }

 private:
  class Marshal final : public IMarshal {
   public:
    Marshal(FreeThreadedMarshaler* inner, IUnknown* outer)
        : controlling_(outer != nullptr ? outer : inner) {}
    STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
      return controlling_->QueryInterface(riid, ppv);
    }
    STDMETHODIMP_(ULONG) AddRef() override { return controlling_->AddRef(); }
    STDMETHODIMP_(ULONG) Release() override { return controlling_->Release(); }

    STDMETHODIMP GetUnmarshalClass(REFIID, void*, DWORD, void*, DWORD, CLSID* pCid) override {
      if (pCid == nullptr) return E_POINTER;
      *pCid = kClsidInProcFreeMarshaler;
      return S_OK;
    }
    STDMETHODIMP GetMarshalSizeMax(REFIID, void*, DWORD dwDestContext, void*, DWORD,
                                   DWORD* pSize) override {
      if (pSize == nullptr) return E_POINTER;
      *pSize = IsInProcess(dwDestContext) ? static_cast<DWORD>(kFtmDataSize)
                                          : static_cast<DWORD>(kMarshalRecordSize);
      return S_OK;
    }
    STDMETHODIMP MarshalInterface(IStream* pStm, REFIID riid, void* pv, DWORD dwDestContext,
                                  void* pvDestContext, DWORD mshlflags) override {
      IUnknown* unk = pv != nullptr ? static_cast<IUnknown*>(pv) : controlling_;
      if (!IsInProcess(dwDestContext)) {
        return CoMarshalInterface(pStm, riid, unk, dwDestContext, pvDestContext, mshlflags);
      }
      return MarshalFreeThreaded(pStm, riid, unk, mshlflags);
    }
    STDMETHODIMP UnmarshalInterface(IStream* pStm, REFIID riid, void** ppv) override {
      return UnmarshalFreeThreaded(pStm, riid, ppv);
    }
    STDMETHODIMP ReleaseMarshalData(IStream* pStm) override { return ReleaseFreeThreaded(pStm); }
    STDMETHODIMP DisconnectObject(DWORD) override { return S_OK; }

   private:
    IUnknown* controlling_;  // not counted: the outer object owns us
  };

  ~FreeThreadedMarshaler() = default;

  std::atomic<ULONG> refs_{1};
  Marshal marshal_;
};

// --- Class registry ------------------------------------------------------------------

// The class objects an apartment registered belong to it, as on Windows
// (Wine's compobj.c test_registered_object_thread_affinity, run on Windows):
// an in-process activation (CLSCTX_INPROC_*) finds only the calling
// apartment's registrations; CLSCTX_LOCAL_SERVER also finds those other
// apartments registered for CLSCTX_LOCAL_SERVER, and returns a proxy, so that
// activation goes through the registering apartment like any call into it.
HRESULT LookupClassPacket(REFCLSID clsid, std::uint64_t apartment_id, DWORD context,
                          std::uint64_t* packet) {
  std::lock_guard lock(S().mu);
  const ClassRegistration* other_apartment = nullptr;
  for (auto& [cookie, registration] : S().classes) {
    if (registration.clsid != clsid) continue;
    if (registration.apartment_id == apartment_id && (registration.context & context) != 0) {
      *packet = registration.packet;
      return S_OK;
    }
    if ((registration.context & context & CLSCTX_LOCAL_SERVER) != 0 && other_apartment == nullptr) {
      other_apartment = &registration;
    }
  }
  if (other_apartment == nullptr) return REGDB_E_CLASSNOTREG;
  *packet = other_apartment->packet;
  return S_OK;
}

// Revokes every class object apartment `apartment_id` registered (its
// shutdown callback, on its own thread).
void RevokeApartmentClasses(std::uint64_t apartment_id) {
  std::vector<std::uint64_t> packets;
  {
    std::lock_guard lock(S().mu);
    S().class_apartments.erase(apartment_id);
    for (auto it = S().classes.begin(); it != S().classes.end();) {
      if (it->second.apartment_id == apartment_id) {
        packets.push_back(it->second.packet);
        it = S().classes.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::uint64_t packet : packets) (void)ReleasePacket(packet, nullptr);
}

}  // namespace

std::size_t LiveStubManagersForTesting() {
  std::lock_guard lock(S().mu);
  return S().live_stubs;
}

std::size_t LiveProxyManagersForTesting() {
  std::lock_guard lock(S().mu);
  return S().live_proxies;
}

// --- proxy.h's entry points ----------------------------------------------------------

void RegisterProxyFactory(const IID& iid, ProxyFactory factory) noexcept {
  FactoryTable& table = Factories();
  std::lock_guard lock(table.mu);
  table.factories[iid] = factory;
}

namespace {

// Runs `step` (marshaling or unmarshaling an interface argument) and, when it
// fails, leaves an explanation on the calling thread that names the
// argument's interface, the apartment and the cause (the step's own
// explanation when it set one, never one left by earlier work); on success
// the thread's error info is as before. On the callee's side the channel
// carries that explanation back to the caller (ServeCall), so a call that
// fails because its [in] interface cannot be unmarshaled, or its [out]
// interface marshaled, is explained to the caller.
template <typename Step>
HRESULT ExplainedArgumentStep(const char* action, REFIID iid, Step step) {
  IErrorInfo* saved = ExchangeThreadErrorInfo(nullptr);
  const HRESULT hr = step();
  if (SUCCEEDED(hr)) {
    if (IErrorInfo* set = ExchangeThreadErrorInfo(saved)) set->Release();
    return hr;
  }
  if (saved != nullptr) saved->Release();
  const std::string cause = LastErrorDescription();
  OLECHAR iid_text[kGuidStringChars];
  FormatGuid(iid, iid_text);
  ApartmentRef current = CurrentApartment();
  SetCallErrorInfo(hr,
                   std::string("Could not ") + action + " an interface argument of a proxy call (" +
                       WideToUtf8(iid_text) + ") in " +
                       (current ? current->Describe() : DescribeCurrentThread()) + ": " +
                       (cause.empty() ? FormatHResult(hr) : cause),
                   kSource);
  return hr;
}

}  // namespace

HRESULT MarshalArgument(IUnknown* object, REFIID iid, std::uint64_t* token) {
  *token = 0;
  return ExplainedArgumentStep("marshal", iid, [&]() -> HRESULT {
    ApartmentRef current = CurrentApartment();
    if (!current) return CO_E_NOTINITIALIZED;
    WireRecord record;
    HRESULT hr = MarshalToPacket(current, object, iid, MSHLFLAGS_NORMAL, &record);
    if (SUCCEEDED(hr)) *token = record.packet_id;
    return hr;
  });
}

HRESULT UnmarshalArgument(std::uint64_t token, REFIID iid, void** ppv) {
  return ExplainedArgumentStep("unmarshal", iid,
                               [&] { return UnmarshalPacket(token, iid, ppv, nullptr); });
}

void ReleaseArgument(std::uint64_t token) {
  PreserveErrorInfo preserve;
  (void)ReleasePacket(token, nullptr);
}

}  // namespace apartments::internal

namespace apartments {

IGlobalInterfaceTable* GlobalInterfaceTable() noexcept { return &internal::TheGit(); }

}  // namespace apartments

using apartments::internal::ApartmentRef;
using apartments::internal::CurrentApartment;
using apartments::internal::WireRecord;

extern "C" {

HRESULT WINAPI CoMarshalInterface(LPSTREAM pStm, REFIID riid, LPUNKNOWN pUnk, DWORD dwDestContext,
                                  LPVOID pvDestContext, DWORD mshlflags) {
  using namespace apartments::internal;
  if (pStm == nullptr || pUnk == nullptr || (mshlflags & ~kKnownFlags) != 0 ||
      ((mshlflags & MSHLFLAGS_TABLESTRONG) && (mshlflags & MSHLFLAGS_TABLEWEAK))) {
    return E_INVALIDARG;
  }
  if (dwDestContext != MSHCTX_INPROC && dwDestContext != MSHCTX_CROSSCTX) {
    SetCallErrorInfo(E_NOTIMPL,
                     "Only in-process marshaling (MSHCTX_INPROC, MSHCTX_CROSSCTX) is supported.",
                     kSource);
    return E_NOTIMPL;
  }
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  WireRecord record;
  HRESULT hr = MarshalToPacket(current, pUnk, riid, mshlflags, &record);
  if (FAILED(hr)) return hr;
  ULONG written = 0;
  hr = pStm->Write(&record, sizeof record, &written);
  if (SUCCEEDED(hr) && written != sizeof record) hr = STG_E_MEDIUMFULL;
  if (FAILED(hr)) {
    PreserveErrorInfo preserve;
    (void)ReleasePacket(record.packet_id, nullptr);
  }
  return hr;
}

HRESULT WINAPI CoGetMarshalSizeMax(ULONG* pulSize, REFIID riid, LPUNKNOWN pUnk,
                                   DWORD dwDestContext, LPVOID pvDestContext, DWORD mshlflags) {
  using namespace apartments::internal;
  if (pulSize != nullptr) *pulSize = 0;
  if (pulSize == nullptr || pUnk == nullptr || (mshlflags & ~kKnownFlags) != 0) return E_INVALIDARG;
  if (dwDestContext != MSHCTX_INPROC && dwDestContext != MSHCTX_CROSSCTX) return E_NOTIMPL;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  // CoMarshalInterface writes one WireRecord, whatever the object.
  *pulSize = static_cast<ULONG>(sizeof(WireRecord));
  return S_OK;
}

HRESULT WINAPI CoUnmarshalInterface(LPSTREAM pStm, REFIID riid, LPVOID* ppv) {
  using namespace apartments::internal;
  if (ppv != nullptr) *ppv = nullptr;
  if (pStm == nullptr || ppv == nullptr) return E_INVALIDARG;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  WireRecord record;
  HRESULT hr = ReadRecord(pStm, &record);
  if (FAILED(hr)) return hr;
  return UnmarshalPacket(record.packet_id, riid, ppv, &record);
}

HRESULT WINAPI CoReleaseMarshalData(LPSTREAM pStm) {
  using namespace apartments::internal;
  if (pStm == nullptr) return E_INVALIDARG;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  WireRecord record;
  HRESULT hr = ReadRecord(pStm, &record);
  if (FAILED(hr)) return hr;
  return ReleasePacket(record.packet_id, &record);
}

HRESULT WINAPI CoMarshalInterThreadInterfaceInStream(REFIID riid, LPUNKNOWN pUnk, LPSTREAM* ppStm) {
  if (ppStm == nullptr) return E_INVALIDARG;
  *ppStm = nullptr;
  if (pUnk == nullptr) return E_INVALIDARG;
  IStream* stream = nullptr;
  HRESULT hr = CreateStreamOnHGlobal(nullptr, TRUE, &stream);
  if (FAILED(hr)) return hr;
  hr = CoMarshalInterface(stream, riid, pUnk, MSHCTX_INPROC, nullptr, MSHLFLAGS_NORMAL);
  if (FAILED(hr)) {
    stream->Release();
    return hr;
  }
  LARGE_INTEGER zero{};
  (void)stream->Seek(zero, STREAM_SEEK_SET, nullptr);
  *ppStm = stream;
  return S_OK;
}

HRESULT WINAPI CoGetInterfaceAndReleaseStream(LPSTREAM pStm, REFIID iid, LPVOID* ppv) {
  if (ppv != nullptr) *ppv = nullptr;
  if (pStm == nullptr) return E_INVALIDARG;
  if (ppv == nullptr) {
    pStm->Release();
    return E_INVALIDARG;
  }
  HRESULT hr = CoUnmarshalInterface(pStm, iid, ppv);
  pStm->Release();
  return hr;
}

HRESULT WINAPI CoDisconnectObject(LPUNKNOWN pUnk, DWORD dwReserved) {
  using namespace apartments::internal;
  if (pUnk == nullptr || dwReserved != 0) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  if (ProxyManager* pm = AsProxyManager(pUnk)) {
    pm->Release();
    return S_OK;
  }
  IUnknown* identity = nullptr;
  if (FAILED(pUnk->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity)))) {
    return S_OK;
  }
  std::shared_ptr<StubManager> stub;
  {
    std::lock_guard lock(S().mu);
    auto it = S().stubs_by_identity.find({current->id(), identity});
    if (it != S().stubs_by_identity.end()) {
      stub = it->second;
      MarkDisconnectedLocked(stub, DisconnectReason::kDisconnectObject);
    }
  }
  identity->Release();
  if (stub) ReleaseStubReferences(stub);
  return S_OK;
}

HRESULT WINAPI CoLockObjectExternal(LPUNKNOWN pUnk, BOOL fLock, BOOL fLastUnlockReleases) {
  using namespace apartments::internal;
  if (pUnk == nullptr) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  if (ProxyManager* pm = AsProxyManager(pUnk)) {
    pm->Release();
    return S_OK;
  }
  IUnknown* identity = nullptr;
  HRESULT hr = pUnk->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity));
  if (FAILED(hr)) return hr;
  std::shared_ptr<StubManager> stub;
  if (fLock) {
    hr = GetOrCreateStub(current, identity, &stub);
    identity->Release();
    if (FAILED(hr)) return hr;
    std::lock_guard lock(S().mu);
    if (!stub->connected) return RPC_E_DISCONNECTED;
    ++stub->strong;
    ++stub->external_locks;
    return S_OK;
  }
  bool unlocked = false;
  {
    std::lock_guard lock(S().mu);
    auto it = S().stubs_by_identity.find({current->id(), identity});
    if (it != S().stubs_by_identity.end() && it->second->external_locks > 0) {
      stub = it->second;
      --stub->external_locks;
      unlocked = true;
    }
  }
  identity->Release();
  if (unlocked && !fLastUnlockReleases) {
    // Windows: such an unlock counts table-weak data as references, so it
    // does not release an object that TABLEWEAK data still names.
    std::lock_guard lock(S().mu);
    if (stub->weak > 0 && stub->strong == 1) {
      --stub->strong;
      unlocked = false;
    }
  }
  if (unlocked) ReleaseStrong(stub);
  return S_OK;
}

HRESULT WINAPI CoCreateFreeThreadedMarshaler(LPUNKNOWN punkOuter, LPUNKNOWN* ppunkMarshal) {
  if (ppunkMarshal == nullptr) return E_INVALIDARG;
  auto* ftm = new (std::nothrow) apartments::internal::FreeThreadedMarshaler(punkOuter);
  *ppunkMarshal = ftm;
  return ftm == nullptr ? E_OUTOFMEMORY : S_OK;
}

HRESULT WINAPI CoGetClassObject(REFCLSID rclsid, DWORD dwClsContext, LPVOID pvReserved, REFIID riid,
                                LPVOID* ppv) {
  using namespace apartments::internal;
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  if (rclsid == CLSID_StdGlobalInterfaceTable) {
    if ((dwClsContext & (CLSCTX_INPROC_SERVER | CLSCTX_LOCAL_SERVER)) == 0) {
      return REGDB_E_CLASSNOTREG;
    }
    return TheGitFactory().QueryInterface(riid, ppv);
  }
  std::uint64_t packet = 0;
  HRESULT hr = LookupClassPacket(rclsid, current->id(), dwClsContext, &packet);
  if (FAILED(hr)) return hr;
  return UnmarshalPacket(packet, riid, ppv, nullptr);
}

HRESULT WINAPI CoCreateInstance(REFCLSID rclsid, LPUNKNOWN pUnkOuter, DWORD dwClsContext,
                                REFIID riid, LPVOID* ppv) {
  using namespace apartments::internal;
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  if ((dwClsContext & (CLSCTX_INPROC_SERVER | CLSCTX_LOCAL_SERVER)) == 0) return REGDB_E_CLASSNOTREG;
  if (rclsid == CLSID_StdGlobalInterfaceTable) {
    if (pUnkOuter != nullptr) return CLASS_E_NOAGGREGATION;
    return TheGit().QueryInterface(riid, ppv);
  }
  IClassFactory* factory = nullptr;
  HRESULT hr = CoGetClassObject(rclsid, dwClsContext, nullptr, IID_IClassFactory,
                                reinterpret_cast<void**>(&factory));
  if (FAILED(hr)) return hr;
  hr = factory->CreateInstance(pUnkOuter, riid, ppv);
  factory->Release();
  return hr;
}

HRESULT WINAPI CoRegisterClassObject(REFCLSID rclsid, LPUNKNOWN pUnk, DWORD dwClsContext,
                                     DWORD flags, LPDWORD lpdwRegister) {
  using namespace apartments::internal;
  if (lpdwRegister != nullptr) *lpdwRegister = 0;
  if (pUnk == nullptr || lpdwRegister == nullptr) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  const std::uint64_t apartment_id = current->id();
  // The registration ends with its apartment (Windows revokes an apartment's
  // class objects at its CoUninitialize); the callback runs on that thread.
  bool needs_callback;
  {
    std::lock_guard lock(S().mu);
    needs_callback = S().class_apartments.insert(apartment_id).second;
  }
  // Registered outside the lock (the apartment takes its own lock, and its
  // callbacks take ours).
  if (needs_callback &&
      !current->AddShutdownCallback([apartment_id] { RevokeApartmentClasses(apartment_id); })) {
    std::lock_guard lock(S().mu);
    S().class_apartments.erase(apartment_id);
    return CO_E_NOTINITIALIZED;
  }
  WireRecord record;
  HRESULT hr = MarshalToPacket(current, pUnk, IID_IUnknown, MSHLFLAGS_TABLESTRONG, &record);
  if (FAILED(hr)) return hr;
  // Another apartment may register the same class (each finds its own).
  auto same = [&](const ClassRegistration& registration) {
    return registration.clsid == rclsid && registration.apartment_id == apartment_id &&
           (registration.context & dwClsContext) != 0;
  };
  bool duplicate = false;
  {
    std::lock_guard lock(S().mu);
    for (auto& [cookie, registration] : S().classes) duplicate |= same(registration);
    if (!duplicate) {
      DWORD cookie = S().next_cookie++;
      S().classes.emplace(cookie, ClassRegistration{rclsid, record.packet_id, apartment_id,
                                                    dwClsContext});
      *lpdwRegister = cookie;
    }
  }
  if (duplicate) {
    (void)ReleasePacket(record.packet_id, nullptr);
    return CO_E_OBJISREG;
  }
  return S_OK;
}

HRESULT WINAPI CoRevokeClassObject(DWORD dwRegister) {
  using namespace apartments::internal;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  std::uint64_t packet = 0;
  {
    std::lock_guard lock(S().mu);
    auto it = S().classes.find(dwRegister);
    if (it == S().classes.end()) return CO_E_OBJNOTREG;
    // Only the registering apartment may revoke (Windows).
    if (it->second.apartment_id != current->id()) return RPC_E_WRONG_THREAD;
    packet = it->second.packet;
    S().classes.erase(it);
  }
  return ReleasePacket(packet, nullptr);
}

}  // extern "C"
