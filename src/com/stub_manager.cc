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

std::string DescribeDisconnectLocked(const ComGuard& guard, const StubManager& stub) {
  const StubManager::State& state = stub.state.Get(guard);
  std::string text = DescribeStub(stub) + " was disconnected ";
  text += Ago(state.disconnect_time);
  switch (state.reason) {
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

void StubManagers::MarkDisconnectedLocked(const ComGuard& guard,
                                          const std::shared_ptr<StubManager>& stub,
                                          DisconnectReason reason) {
  if (!stub->connected) return;
  StubManager::State& state = stub->state.Get(guard);
  stub->connected = false;
  state.reason = reason;
  state.disconnect_time = GetClock().Now();
  auto& by_identity = table_.Get(guard).by_identity;
  auto it = by_identity.find(std::make_pair(stub->apartment_id, state.identity));
  if (it != by_identity.end() && it->second == stub) by_identity.erase(it);
}

void StubManagers::ReleaseReferences(const std::shared_ptr<StubManager>& stub) {
  IUnknown* identity = nullptr;
  std::unordered_map<IID, void*> interfaces;
  {
    auto guard = runtime_.Lock();
    StubManager::State& state = stub->state.Get(guard);
    identity = std::exchange(state.identity, nullptr);
    interfaces.swap(state.interfaces);
    if (ApartmentRecord* record = ComRuntime::FindApartmentLocked(guard, stub->apartment_id)) {
      record->stubs.erase(stub->id);
    }
    if (identity != nullptr) --table_.Get(guard).live;
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
    auto guard = runtime_.Lock();
    StubManager::State& state = stub->state.Get(guard);
    --state.strong;
    if (state.strong <= 0 && stub->connected) {
      MarkDisconnectedLocked(guard, stub, DisconnectReason::kReleased);
      release = true;
    }
  }
  if (release) ReleaseReferencesInItsApartment(stub);
}

void StubManagers::ReleaseWeak(const std::shared_ptr<StubManager>& stub) {
  bool release = false;
  {
    auto guard = runtime_.Lock();
    StubManager::State& state = stub->state.Get(guard);
    --state.weak;
    if (state.weak <= 0 && state.strong <= 0 && stub->connected) {
      MarkDisconnectedLocked(guard, stub, DisconnectReason::kReleased);
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
    auto guard = runtime_.Lock();
    if (auto found = FindLocked(guard, apartment->id(), identity)) {
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
  stub->state.GetWithoutLock("not yet shared: just made").identity = identity;
  bool lost_race = false;
  {
    auto guard = runtime_.Lock();
    ApartmentRecord* record = ComRuntime::FindApartmentLocked(guard, stub->apartment_id);
    if (record == nullptr) {
      lost_race = true;  // shut down meanwhile
    } else {
      Table& table = table_.Get(guard);
      auto [it, inserted] = table.by_identity.try_emplace({apartment->id(), identity}, stub);
      if (inserted) {
        stub->id = guard->next_id++;
        record->stubs.emplace(stub->id, stub);
        ++table.live;
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
    auto guard = runtime_.Lock();
    const StubManager::State& state = stub->state.Get(guard);
    if (!stub->connected) return RPC_E_DISCONNECTED;
    if (state.interfaces.contains(riid)) return S_OK;
    identity = state.identity;
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
    auto guard = runtime_.Lock();
    connected = stub->connected;
    if (connected) keep = stub->state.Get(guard).interfaces.try_emplace(riid, itf).second;
  }
  if (!keep) static_cast<IUnknown*>(itf)->Release();
  // Disconnected during the QueryInterface (by it, or by its apartment's
  // teardown): there is no interface to call any more.
  return connected ? S_OK : RPC_E_DISCONNECTED;
}

std::shared_ptr<StubManager> StubManagers::FindLocked(const ComGuard& guard,
                                                      std::uint64_t apartment_id,
                                                      IUnknown* identity) const {
  const auto& by_identity = table_.Get(guard).by_identity;
  auto it = by_identity.find({apartment_id, identity});
  return it == by_identity.end() ? nullptr : it->second;
}

void StubManagers::Disconnect(const ApartmentRef& current, IUnknown* identity) {
  std::shared_ptr<StubManager> stub;
  {
    auto guard = runtime_.Lock();
    stub = FindLocked(guard, current->id(), identity);
    if (stub) MarkDisconnectedLocked(guard, stub, DisconnectReason::kDisconnectObject);
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
    auto guard = runtime_.Lock();
    if (!stub->connected) return RPC_E_DISCONNECTED;
    StubManager::State& state = stub->state.Get(guard);
    ++state.strong;
    ++state.external_locks;
    return S_OK;
  }
  bool unlocked = false;
  {
    auto guard = runtime_.Lock();
    stub = FindLocked(guard, current->id(), identity);
    if (stub && stub->state.Get(guard).external_locks > 0) {
      --stub->state.Get(guard).external_locks;
      unlocked = true;
    }
  }
  identity->Release();
  if (unlocked && !last_unlock_releases) {
    // Windows: such an unlock counts table-weak data as references, so it
    // does not release an object that TABLEWEAK data still names.
    auto guard = runtime_.Lock();
    StubManager::State& state = stub->state.Get(guard);
    if (state.weak > 0 && state.strong == 1) {
      --state.strong;
      unlocked = false;
    }
  }
  if (unlocked) ReleaseStrong(stub);
  return S_OK;
}

}  // namespace apartments::internal
