// Stub managers: the server side of an exported object (marshal.h has the
// ownership and the states), and StubManagers, the runtime's part that finds,
// creates, disconnects and releases them.
//
// Locking: the fields under the runtime's lock are ComGuarded (com_lock.h),
// reachable only with its guard; methods ending in Locked take that guard as
// proof that it is held, the others take the lock themselves.
#ifndef APARTMENTS_SRC_COM_STUB_MANAGER_H_
#define APARTMENTS_SRC_COM_STUB_MANAGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "apartments/clock.h"
#include "apartments/win32_com.h"
#include "com/apartment.h"
#include "com/com_lock.h"

namespace apartments::internal {

class ComRuntime;

enum class DisconnectReason { kNone, kReleased, kDisconnectObject, kApartmentShutDown };

struct StubManager {
  // Immutable after creation.
  std::uint64_t id = 0;
  ApartmentRef apartment;
  std::uint64_t apartment_id = 0;
  const void* identity_address = nullptr;  // for explanations only

  // Written under the runtime's lock; also read without it by a proxy's fast
  // check (ProxyManager::CheckUsable), where a stale "connected" is the same
  // race as a disconnect just after the check: the call finds out in the stub.
  std::atomic<bool> connected{true};

  struct State {
    IUnknown* identity = nullptr;  // one reference until released on its thread
    std::unordered_map<IID, void*> interfaces{};  // one reference each
    DisconnectReason reason = DisconnectReason::kNone;
    Clock::TimePoint disconnect_time{};
    long strong = 0;          // NORMAL/TABLESTRONG data, proxy managers, locks
    long weak = 0;            // TABLEWEAK data
    long external_locks = 0;  // CoLockObjectExternal (also counted in strong)
  };
  // Under the runtime's lock. An STA stub's `interfaces` is also read
  // without it on its own thread, the only one that writes it
  // (ProxyManager::CallOnStub says why that is safe).
  ComGuarded<State> state;
};

// "object 0x... (exported from <apartment> as stub N)".
std::string DescribeStub(const StubManager& stub);
// Why and when `stub` was disconnected (reads the disconnect fields under
// the runtime's lock, `guard`).
std::string DescribeDisconnectLocked(const ComGuard& guard, const StubManager& stub);

class StubManagers {
 public:
  explicit StubManagers(ComRuntime& runtime) noexcept : runtime_(runtime) {}
  StubManagers(const StubManagers&) = delete;
  StubManagers& operator=(const StubManagers&) = delete;

  // Finds or creates the stub manager of `identity` in `apartment` (the
  // calling thread's). Returns S_OK, RPC_E_DISCONNECTED when the apartment is
  // shutting down, or E_OUTOFMEMORY.
  HRESULT GetOrCreate(const ApartmentRef& apartment, IUnknown* identity,
                      std::shared_ptr<StubManager>* out);

  // Makes the stub hold interface `riid` of its object. Runs on the stub's
  // apartment thread. Returns S_OK, the object's QueryInterface failure, or
  // RPC_E_DISCONNECTED.
  HRESULT EnsureInterface(const std::shared_ptr<StubManager>& stub, REFIID riid);

  // Marks `stub` disconnected. Its references stay until ReleaseReferences
  // runs on its thread.
  void MarkDisconnectedLocked(const ComGuard& guard, const std::shared_ptr<StubManager>& stub,
                              DisconnectReason reason);

  // Releases the object references of a disconnected stub. Must run on the
  // stub's apartment thread (or an MTA thread for the MTA). Idempotent.
  void ReleaseReferences(const std::shared_ptr<StubManager>& stub);

  // Releases a disconnected stub's references on its own thread (see the
  // comment at the definition: never lost).
  void ReleaseReferencesInItsApartment(const std::shared_ptr<StubManager>& stub);

  // Drops one strong reference; the last one disconnects the stub and
  // releases the object in its apartment.
  void ReleaseStrong(const std::shared_ptr<StubManager>& stub);

  // Drops one weak reference (TABLEWEAK data released); the last reference
  // of either kind disconnects the stub as ReleaseStrong does.
  void ReleaseWeak(const std::shared_ptr<StubManager>& stub);

  // CoDisconnectObject for `identity` exported from `current`: disconnects
  // its stub, if any, and releases its references here. Consumes one
  // reference on `identity` (released before the stub's).
  void Disconnect(const ApartmentRef& current, IUnknown* identity);

  // CoLockObjectExternal for `identity` in `current` (its arguments'
  // meaning). Consumes one reference on `identity`.
  HRESULT LockExternal(const ApartmentRef& current, IUnknown* identity, bool lock,
                       bool last_unlock_releases);

  // The stub manager of `identity` in apartment `apartment_id`, or null.
  std::shared_ptr<StubManager> FindLocked(const ComGuard& guard, std::uint64_t apartment_id,
                                          IUnknown* identity) const;

  std::size_t LiveCountLocked(const ComGuard& guard) const { return table_.Get(guard).live; }

 private:
  struct Table {
    std::map<std::pair<std::uint64_t, IUnknown*>, std::shared_ptr<StubManager>> by_identity{};
    std::size_t live = 0;
  };

  ComRuntime& runtime_;
  ComGuarded<Table> table_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_STUB_MANAGER_H_
