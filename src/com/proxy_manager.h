// Proxy managers: the client side of an object exported from another
// apartment (marshal.h has the ownership and the states), and ProxyManagers,
// the runtime's part that finds and creates them.
//
// Locking: the fields under the runtime's lock are ComGuarded (com_lock.h);
// methods ending in Locked take its guard as proof that it is held, the
// others take it as they need. The call path (Call, CheckUsable's fast path,
// CallOnStub on an STA) takes no lock.
#ifndef APARTMENTS_SRC_COM_PROXY_MANAGER_H_
#define APARTMENTS_SRC_COM_PROXY_MANAGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

#include "apartments/clock.h"
#include "apartments/proxy.h"
#include "apartments/win32_com.h"
#include "com/apartment.h"
#include "com/com_lock.h"
#include "com/proxy_local_interfaces.h"
#include "com/stub_manager.h"

namespace apartments::internal {

class ComRuntime;

// The interface proxy factory registered for `iid` (RegisterProxyFactory,
// and the standard ones), or null.
ProxyFactory LookupProxyFactory(REFIID iid);

class ProxyManager final : public IUnknown, public ProxyManagerBase {
 public:
  ProxyManager(ComRuntime& runtime, ApartmentRef client, std::shared_ptr<StubManager> stub)
      : runtime_(runtime), client_(std::move(client)), client_id_(client_->id()),
        stub_(std::move(stub)), local_(this, &IsOwnRemoteInterface) {}

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
  // lookups in the tables. Under the runtime's lock, which Destroy also
  // takes before leaving the tables, so a manager found there is still
  // allocated.
  bool TryAddRefLocked(const ComGuard&) noexcept {
    ULONG n = refs_.load(std::memory_order_relaxed);
    while (n != 0) {
      if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  HRESULT QueryInterfaceProxy(REFIID riid, void** ppv) override;
  HRESULT Call(REFIID iid, const ServerCall& call) override;

  // The object's interface `iid` as the stub holds it (no reference), or
  // null once disconnected; on the stub's apartment, as CallOnStub's lookup.
  IUnknown* ServerInterface(REFIID iid) const noexcept;

  // The server half of Call, on the stub's apartment.
  HRESULT CallOnStub(REFIID iid, const ServerCall& call, bool* disconnected);

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
    return CheckUsableSlow();
  }

  // For unmarshaling data whose object is gone: the interface proxy for
  // `riid` without asking the object (its calls fail with
  // RPC_E_DISCONNECTED), as Windows builds a proxy from NORMAL data without
  // contacting the server.
  HRESULT QueryInterfaceUnchecked(REFIID riid, void** ppv) noexcept;

  // At the client apartment's shutdown.
  void MarkClientGoneLocked(const ComGuard& guard) {
    client_gone_ = true;
    shared_.Get(guard).client_gone_time = GetClock().Now();
  }

  // Gives up the strong reference on the stub (client apartment shutdown).
  void DropStubReference();

  const std::shared_ptr<StubManager>& stub() const { return stub_; }
  const ApartmentRef& client() const { return client_; }

 private:
  ~ProxyManager() {
    for (auto& [iid, proxy] :
         shared_.GetWithoutLock("being deleted: no reference and in no table").proxies) {
      delete proxy;
    }
  }

  // CheckUsable when its fast path did not answer: takes the lock.
  HRESULT CheckUsableSlow();
  // QueryInterface's check: RPC_E_WRONG_THREAD from another apartment (a
  // proxy whose own apartment is gone is left to CheckUsable).
  HRESULT CheckQueryApartment();
  HRESULT FailWrongThread();
  // A call from a thread that is in no apartment (it never called
  // CoInitializeEx, and no MTA exists for it to be in implicitly).
  HRESULT FailNotInitialized();
  // Sets the disconnect explanation and returns RPC_E_DISCONNECTED.
  HRESULT FailDisconnected();
  // Makes sure the stub holds `riid` (a round trip to its apartment when it
  // does not yet).
  HRESULT EnsureServerInterface(REFIID riid);
  // Adds the interface proxy `factory` makes for `riid` and hands it out.
  HRESULT AddInterfaceProxy(REFIID riid, ProxyFactory factory, void** ppv);
  // Whether `p` is this manager's IUnknown or one of its interface proxies.
  bool OwnsRemoteInterface(IUnknown* p);
  void Destroy();

  static bool IsOwnRemoteInterface(ProxyManagerBase* manager, IUnknown* p) {
    return static_cast<ProxyManager*>(manager)->OwnsRemoteInterface(p);
  }

  ComRuntime& runtime_;
  std::atomic<ULONG> refs_{1};
  const ApartmentRef client_;
  const std::uint64_t client_id_;
  const std::shared_ptr<StubManager> stub_;
  // Written under the runtime's lock; read without it by CheckUsable's fast
  // path.
  std::atomic<bool> client_gone_{false};
  struct Shared {
    bool holds_stub_ref = true;
    Clock::TimePoint client_gone_time{};
    std::unordered_map<IID, InterfaceProxyBase*> proxies{};
  };
  ComGuarded<Shared> shared_;
  ProxyLocalInterfaces local_;
};

// The proxy manager behind `unk`, AddRef'ed, or null when `unk` is no proxy.
ProxyManager* AsProxyManager(IUnknown* unk);

class ProxyManagers {
 public:
  explicit ProxyManagers(ComRuntime& runtime) noexcept : runtime_(runtime) {}
  ProxyManagers(const ProxyManagers&) = delete;
  ProxyManagers& operator=(const ProxyManagers&) = delete;

  // The proxy manager of `stub` in `client` (AddRef'ed), created if needed.
  // Consumes one strong reference on `stub` that the caller holds. Returns
  // S_OK, CO_E_NOTINITIALIZED (with error info) when `client` is shutting
  // down, or E_OUTOFMEMORY.
  HRESULT GetOrCreate(const ApartmentRef& client, const std::shared_ptr<StubManager>& stub,
                      ProxyManager** out);

  // A proxy manager in `client` for `placeholder`, a disconnected stub that
  // stands for an object that is gone; it is in no lookup table. Returns
  // S_OK, CO_E_NOTINITIALIZED or E_OUTOFMEMORY.
  HRESULT CreateForGoneObject(const ApartmentRef& client,
                              std::shared_ptr<StubManager> placeholder, ProxyManager** out);

  // Takes `manager` (of `client_id`, for stub `stub_id`) out of the tables
  // as it is destroyed.
  void ForgetLocked(const ComGuard& guard, ProxyManager* manager, std::uint64_t client_id,
                    std::uint64_t stub_id);

  std::size_t LiveCountLocked(const ComGuard& guard) const { return table_.Get(guard).live; }

 private:
  struct Table {
    std::map<std::pair<std::uint64_t, std::uint64_t>, ProxyManager*> by_client_and_stub{};
    std::size_t live = 0;
  };

  ComRuntime& runtime_;
  ComGuarded<Table> table_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_PROXY_MANAGER_H_
