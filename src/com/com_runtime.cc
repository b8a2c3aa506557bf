// The COM runtime's process state, its apartment records and their shutdown
// (com_runtime.h).
#include "com/com_runtime.h"

#include <random>
#include <utility>
#include <vector>

namespace apartments::internal {

ComRuntime& ComRuntime::Get() {
  // Never destroyed: threads may still release proxies while the process
  // exits.
  static ComRuntime* runtime = new ComRuntime;
  return *runtime;
}

ComRuntime::ComRuntime() {
  std::random_device random;
  secret_ = (static_cast<std::uint64_t>(random()) << 32) ^ random();
}

DWORD ComRuntime::NextCookieLocked() {
  DWORD cookie = next_cookie_++;
  if (next_cookie_ == 0) next_cookie_ = 0x100;
  return cookie;
}

ApartmentRecord* ComRuntime::FindApartmentLocked(std::uint64_t id) {
  auto it = apartments_.find(id);
  return it == apartments_.end() ? nullptr : &it->second;
}

ApartmentRecord* ComRuntime::FindLiveApartmentLocked(std::uint64_t id) {
  if (dead_apartments_.contains(id)) return nullptr;
  return FindApartmentLocked(id);
}

bool ComRuntime::EnsureApartmentRecord(const ApartmentRef& apartment) {
  const std::uint64_t id = apartment->id();
  {
    std::lock_guard lock(mu_);
    if (dead_apartments_.contains(id)) return false;
    if (apartments_.contains(id)) return true;
  }
  // Registered outside the lock: the apartment may hold its own lock while
  // running callbacks, which take ours. Two threads may both register; the
  // callback is idempotent.
  if (!apartment->AddShutdownCallback([this, id] { OnApartmentShutdown(id); })) {
    std::lock_guard lock(mu_);
    dead_apartments_.insert(id);
    return false;
  }
  std::lock_guard lock(mu_);
  if (dead_apartments_.contains(id)) return false;
  auto [it, inserted] = apartments_.try_emplace(id);
  if (inserted) it->second.apartment = apartment;
  return true;
}

void ComRuntime::OnApartmentShutdown(std::uint64_t apartment_id) {
  std::vector<std::shared_ptr<StubManager>> stubs;
  std::vector<ProxyManager*> proxies;
  {
    std::lock_guard lock(mu_);
    dead_apartments_.insert(apartment_id);
    auto it = apartments_.find(apartment_id);
    if (it == apartments_.end()) return;
    for (auto& [id, stub] : it->second.stubs) {
      stubs_.MarkDisconnectedLocked(stub, DisconnectReason::kApartmentShutDown);
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
  for (auto& stub : stubs) stubs_.ReleaseReferences(stub);
  // Proxies held here let go of their objects (in the objects' apartments).
  for (ProxyManager* pm : proxies) {
    pm->DropStubReference();
    pm->Release();
  }
  ApartmentRef keep_alive;
  {
    std::lock_guard lock(mu_);
    auto it = apartments_.find(apartment_id);
    if (it != apartments_.end()) {
      keep_alive = std::move(it->second.apartment);
      apartments_.erase(it);
    }
  }
}

}  // namespace apartments::internal
