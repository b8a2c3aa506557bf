// ComRuntime: the one owner of COM's process-wide marshaling state.
//
// Its parts are objects of their own, each with its contract in its header:
//   StubManagers     stub_manager.h      exported objects, per apartment
//   ProxyManagers    proxy_manager.h     proxies of objects of other apartments
//   MarshalPackets   marshal_data.h      the marshal records and their packets
//   GlobalInterfaceTableImpl             global_interface_table.h
//   ClassRegistry    class_registry.h    CoRegisterClassObject's registrations
// and the runtime itself keeps what they share: the one lock, the id and
// cookie sequences, the key of the marshal data's checks, and one record per
// apartment that exported or imported objects, which its shutdown clears
// (OnApartmentShutdown). The free-threaded marshaler
// (free_threaded_marshaler.h) holds no state beyond the key. The Win32
// entry points (marshal.cc) are thin wrappers that reach the parts through
// ComRuntime::Get(); the parts reach one another through the runtime they
// were made with.
//
// Lifetime: made on first use, never destroyed (threads may still release
// proxies while the process exits).
//
// Locking: one lock (Lock(), com_lock.h) guards every table of every part
// and every stub and proxy manager's mutable state: the runtime's own state
// is reachable only through its guard (ComGuard), the parts' only with one in
// hand (ComGuarded), and every method that requires the lock takes the guard
// as proof. It is one lock because the parts' state is intertwined (a
// stub's counts change with the packets and proxy managers that hold it).
// Only AddRef is ever called on user objects while holding it;
// QueryInterface, Release and calls run outside it. Apartment locks are never
// taken under it (shutdown callbacks are registered outside it).
#ifndef APARTMENTS_SRC_COM_COM_RUNTIME_H_
#define APARTMENTS_SRC_COM_COM_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "apartments/win32_com.h"
#include "com/apartment.h"
#include "com/class_registry.h"
#include "com/com_lock.h"
#include "com/global_interface_table.h"
#include "com/marshal_data.h"
#include "com/proxy_manager.h"
#include "com/stub_manager.h"

namespace apartments::internal {

class ComRuntime {
 public:
  // The process's runtime. Any thread.
  static ComRuntime& Get();

  ComRuntime(const ComRuntime&) = delete;
  ComRuntime& operator=(const ComRuntime&) = delete;

  StubManagers& stubs() { return stubs_; }
  ProxyManagers& proxies() { return proxies_; }
  MarshalPackets& packets() { return packets_; }
  GlobalInterfaceTableImpl& git() { return git_; }
  GlobalInterfaceTableFactory& git_factory() { return git_factory_; }
  ClassRegistry& classes() { return classes_; }

  // Takes the one lock (see the top of this file).
  [[nodiscard]] ComGuard Lock() { return state_.Lock(); }

  // A process-unique id for a stub manager or a packet.
  static std::uint64_t NextIdLocked(const ComGuard& guard) { return guard->next_id++; }
  // A new cookie (the global interface table's and the class registry's
  // share one sequence).
  static DWORD NextCookieLocked(const ComGuard& guard);
  // The key of the checks marshal data carries (random per process).
  std::uint64_t secret() const { return secret_; }

  // Makes sure `apartment` has a record and a shutdown callback that runs
  // OnApartmentShutdown. Returns false once it has shut down (its callbacks
  // ran or can no longer be registered).
  bool EnsureApartmentRecord(const ApartmentRef& apartment);
  // The record of apartment `id`, or null.
  static ApartmentRecord* FindApartmentLocked(const ComGuard& guard, std::uint64_t id);
  // As FindApartmentLocked, but null also once its shutdown has begun.
  static ApartmentRecord* FindLiveApartmentLocked(const ComGuard& guard, std::uint64_t id);

 private:
  ComRuntime();

  // Apartment `apartment_id` shuts down (its shutdown callback, on its own
  // thread): disconnects the objects it exported and releases them here,
  // and lets the proxies it held go.
  void OnApartmentShutdown(std::uint64_t apartment_id);

  Guarded<ComRuntimeState> state_;
  // Immutable after construction.
  std::uint64_t secret_ = 0;

  StubManagers stubs_{*this};
  ProxyManagers proxies_{*this};
  MarshalPackets packets_{*this};
  GlobalInterfaceTableImpl git_{*this};
  GlobalInterfaceTableFactory git_factory_{git_};
  ClassRegistry classes_{*this};
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_COM_RUNTIME_H_
