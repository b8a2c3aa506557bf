// The COM runtime's one lock (com_runtime.h): what it guards at the root,
// and ComGuard, its guard, which every method that requires the lock takes as
// proof. The parts' fields under the same lock are ComGuarded<T>: reachable
// only with a ComGuard in hand.
#ifndef APARTMENTS_SRC_COM_COM_LOCK_H_
#define APARTMENTS_SRC_COM_COM_LOCK_H_

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "apartments/win32_types.h"
#include "base/guarded.h"
#include "com/apartment.h"

namespace apartments::internal {

struct StubManager;
class ProxyManager;

// What the runtime knows of one apartment that exported or imported objects.
struct ApartmentRecord {
  ApartmentRef apartment;
  // Stubs exported from here whose object references are not yet released.
  std::unordered_map<std::uint64_t, std::shared_ptr<StubManager>> stubs;
  // Proxy managers living here.
  std::unordered_set<ProxyManager*> proxies;
};

// The runtime's own state under its lock.
struct ComRuntimeState {
  std::uint64_t next_id = 1;
  DWORD next_cookie = 0x100;
  std::unordered_map<std::uint64_t, ApartmentRecord> apartments;
  std::unordered_set<std::uint64_t> dead_apartments;
};

// The guard of the runtime's lock (ComRuntime::Lock()).
using ComGuard = Guarded<ComRuntimeState>::Locked;

// A field of a part of the runtime, guarded by the runtime's lock.
template <typename T>
using ComGuarded = GuardedBy<T, ComGuard>;

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_COM_LOCK_H_
