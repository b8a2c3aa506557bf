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

DWORD ComRuntime::NextCookieLocked(const ComGuard& guard) {
  DWORD cookie = guard->next_cookie++;
  if (guard->next_cookie == 0) guard->next_cookie = 0x100;
  return cookie;
}

ApartmentRecord* ComRuntime::FindApartmentLocked(const ComGuard& guard, std::uint64_t id) {
  auto it = guard->apartments.find(id);
  return it == guard->apartments.end() ? nullptr : &it->second;
}

ApartmentRecord* ComRuntime::FindLiveApartmentLocked(const ComGuard& guard, std::uint64_t id) {
  if (guard->dead_apartments.contains(id)) return nullptr;
  return FindApartmentLocked(guard, id);
}

bool ComRuntime::EnsureApartmentRecord(const ApartmentRef& apartment) {
  const std::uint64_t id = apartment->id();
  {
    auto guard = Lock();
    if (guard->dead_apartments.contains(id)) return false;
    if (guard->apartments.contains(id)) return true;
  }
  // Registered outside the lock: the apartment may hold its own lock while
  // running callbacks, which take ours. Two threads may both register; the
  // callback is idempotent.
  if (!apartment->AddShutdownCallback([this, id] { OnApartmentShutdown(id); })) {
    Lock()->dead_apartments.insert(id);
    return false;
  }
  auto guard = Lock();
  if (guard->dead_apartments.contains(id)) return false;
  auto [it, inserted] = guard->apartments.try_emplace(id);
  if (inserted) it->second.apartment = apartment;
  return true;
}

void ComRuntime::OnApartmentShutdown(std::uint64_t apartment_id) {
  std::vector<std::shared_ptr<StubManager>> stubs;
  std::vector<ProxyManager*> proxies;
  {
    auto guard = Lock();
    guard->dead_apartments.insert(apartment_id);
    auto it = guard->apartments.find(apartment_id);
    if (it == guard->apartments.end()) return;
    for (auto& [id, stub] : it->second.stubs) {
      stubs_.MarkDisconnectedLocked(guard, stub, DisconnectReason::kApartmentShutDown);
      stubs.push_back(stub);
    }
    for (ProxyManager* pm : it->second.proxies) {
      pm->MarkClientGoneLocked(guard);
      if (pm->TryAddRefLocked(guard)) proxies.push_back(pm);
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
    auto guard = Lock();
    auto it = guard->apartments.find(apartment_id);
    if (it != guard->apartments.end()) {
      keep_alive = std::move(it->second.apartment);
      guard->apartments.erase(it);
    }
  }
}

}  // namespace apartments::internal
