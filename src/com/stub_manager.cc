// Stub managers (stub_manager.h).
#include "com/stub_manager.h"

#include <mutex>
#include <new>
#include <utility>

#include "com/com_runtime.h"
#include "com/marshal_text.h"

namespace apartments::internal {

std::string DescribeStub(const StubManager& stub) {
  return "object " + Hex(stub.identity_address) + " (exported from " +
         stub.apartment->Describe() + " as stub " + std::to_string(stub.id) + ")";
}

std::string DescribeDisconnectLocked(const StubManager& stub) {
  std::string text = DescribeStub(stub) + " was disconnected ";
  text += SecondsAgo(stub.disconnect_time);
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

void StubManagers::MarkDisconnectedLocked(const std::shared_ptr<StubManager>& stub,
                                          DisconnectReason reason) {
  if (!stub->connected) return;
  stub->connected = false;
  stub->reason = reason;
  stub->disconnect_time = GetClock().Now();
  auto key = std::make_pair(stub->apartment_id, stub->identity);
  auto it = by_identity_.find(key);
  if (it != by_identity_.end() && it->second == stub) by_identity_.erase(it);
}

void StubManagers::ReleaseReferences(const std::shared_ptr<StubManager>& stub) {
  IUnknown* identity = nullptr;
  std::unordered_map<IID, void*> interfaces;
  {
    std::lock_guard lock(runtime_.mu());
    identity = std::exchange(stub->identity, nullptr);
    interfaces.swap(stub->interfaces);
    if (ApartmentRecord* record = runtime_.FindApartmentLocked(stub->apartment_id)) {
      record->stubs.erase(stub->id);
    }
    if (identity != nullptr) --live_;
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
// its shutdown at the latest. ReleaseReferences is idempotent, so a call
// that failed after running (its thread exited inside a user's Release) costs
// nothing more.
void StubManagers::ReleaseReferencesInItsApartment(const std::shared_ptr<StubManager>& stub) {
  if (stub->apartment->IsCurrent()) {
    ReleaseReferences(stub);
    return;
  }
  // Posted one-way unless the call ran: also when this thread leaves the
  // call by a forced unwind (ExitThread in a call served while it waited),
  // which withdraws the call if it had not started.
  struct PostUnlessDelivered {
    StubManagers* self;
    const std::shared_ptr<StubManager>& stub;
    bool delivered = false;
    ~PostUnlessDelivered() {
      // False only once the apartment is gone: its shutdown released the stub.
      if (!delivered) {
        (void)PostRuntimeWork(stub->apartment,
                              [self = self, s = stub] { self->ReleaseReferences(s); });
      }
    }
  } fallback{this, stub};
  PreserveErrorInfo preserve;
  HRESULT hr = InvokeRuntimeInApartment(stub->apartment, [this, stub] {
    ReleaseReferences(stub);
    return S_OK;
  });
  fallback.delivered = SUCCEEDED(hr);
}

void StubManagers::ReleaseStrong(const std::shared_ptr<StubManager>& stub) {
  bool release = false;
  {
    std::lock_guard lock(runtime_.mu());
    --stub->strong;
    if (stub->strong <= 0 && stub->connected) {
      MarkDisconnectedLocked(stub, DisconnectReason::kReleased);
      release = true;
    }
  }
  if (release) ReleaseReferencesInItsApartment(stub);
}

void StubManagers::ReleaseWeak(const std::shared_ptr<StubManager>& stub) {
  bool release = false;
  {
    std::lock_guard lock(runtime_.mu());
    --stub->weak;
    if (stub->weak <= 0 && stub->strong <= 0 && stub->connected) {
      MarkDisconnectedLocked(stub, DisconnectReason::kReleased);
      release = true;
    }
  }
  if (release) ReleaseReferencesInItsApartment(stub);
}

HRESULT StubManagers::GetOrCreate(const ApartmentRef& apartment, IUnknown* identity,
                                  std::shared_ptr<StubManager>* out) {
  if (!runtime_.EnsureApartmentRecord(apartment)) {
    SetCallErrorInfo(RPC_E_DISCONNECTED,
                     "Cannot export an object from " + apartment->Describe() +
                         ": the apartment is shutting down.",
                     kSource);
    return RPC_E_DISCONNECTED;
  }
  {
    std::lock_guard lock(runtime_.mu());
    if (auto found = FindLocked(apartment->id(), identity)) {
      *out = std::move(found);
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
    std::lock_guard lock(runtime_.mu());
    ApartmentRecord* record = runtime_.FindApartmentLocked(stub->apartment_id);
    if (record == nullptr) {
      lost_race = true;  // shut down meanwhile
    } else {
      auto [it, inserted] = by_identity_.try_emplace({apartment->id(), identity}, stub);
      if (inserted) {
        stub->id = runtime_.NextIdLocked();
        record->stubs.emplace(stub->id, stub);
        ++live_;
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

HRESULT StubManagers::EnsureInterface(const std::shared_ptr<StubManager>& stub, REFIID riid) {
  IUnknown* identity = nullptr;
  {
    std::lock_guard lock(runtime_.mu());
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
    std::lock_guard lock(runtime_.mu());
    connected = stub->connected;
    if (connected) keep = stub->interfaces.try_emplace(riid, itf).second;
  }
  if (!keep) static_cast<IUnknown*>(itf)->Release();
  // Disconnected during the QueryInterface (by it, or by its apartment's
  // teardown): there is no interface to call any more.
  return connected ? S_OK : RPC_E_DISCONNECTED;
}

std::shared_ptr<StubManager> StubManagers::FindLocked(std::uint64_t apartment_id,
                                                      IUnknown* identity) const {
  auto it = by_identity_.find({apartment_id, identity});
  return it == by_identity_.end() ? nullptr : it->second;
}

void StubManagers::Disconnect(const ApartmentRef& current, IUnknown* identity) {
  std::shared_ptr<StubManager> stub;
  {
    std::lock_guard lock(runtime_.mu());
    stub = FindLocked(current->id(), identity);
    if (stub) MarkDisconnectedLocked(stub, DisconnectReason::kDisconnectObject);
  }
  identity->Release();
  if (stub) ReleaseReferences(stub);
}

HRESULT StubManagers::LockExternal(const ApartmentRef& current, IUnknown* identity, bool lock,
                                   bool last_unlock_releases) {
  std::shared_ptr<StubManager> stub;
  if (lock) {
    HRESULT hr = GetOrCreate(current, identity, &stub);
    identity->Release();
    if (FAILED(hr)) return hr;
    std::lock_guard guard(runtime_.mu());
    if (!stub->connected) return RPC_E_DISCONNECTED;
    ++stub->strong;
    ++stub->external_locks;
    return S_OK;
  }
  bool unlocked = false;
  {
    std::lock_guard guard(runtime_.mu());
    stub = FindLocked(current->id(), identity);
    if (stub && stub->external_locks > 0) {
      --stub->external_locks;
      unlocked = true;
    }
  }
  identity->Release();
  if (unlocked && !last_unlock_releases) {
    // Windows: such an unlock counts table-weak data as references, so it
    // does not release an object that TABLEWEAK data still names.
    std::lock_guard guard(runtime_.mu());
    if (stub->weak > 0 && stub->strong == 1) {
      --stub->strong;
      unlocked = false;
    }
  }
  if (unlocked) ReleaseStrong(stub);
  return S_OK;
}

}  // namespace apartments::internal
