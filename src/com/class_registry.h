// The in-process class registry (CoRegisterClassObject, CoRevokeClassObject,
// and the lookup of CoGetClassObject). A registration is TABLESTRONG marshal
// data (MarshalPackets) made in the registering apartment, which owns it: it
// is revoked at that apartment's shutdown, and revocable only from it.
#ifndef APARTMENTS_SRC_COM_CLASS_REGISTRY_H_
#define APARTMENTS_SRC_COM_CLASS_REGISTRY_H_

#include <cstdint>
#include <unordered_map>
#include <unordered_set>

#include "apartments/win32_com.h"
#include "com/apartment.h"
#include "com/com_lock.h"

namespace apartments::internal {

class ComRuntime;

class ClassRegistry {
 public:
  explicit ClassRegistry(ComRuntime& runtime) noexcept : runtime_(runtime) {}
  ClassRegistry(const ClassRegistry&) = delete;
  ClassRegistry& operator=(const ClassRegistry&) = delete;

  // CoRegisterClassObject in `current`: S_OK with the cookie in *cookie,
  // CO_E_OBJISREG when `current` already registered `clsid` for an
  // overlapping context, CO_E_NOTINITIALIZED when it is shutting down, or
  // marshaling's failure.
  HRESULT Register(const ApartmentRef& current, REFCLSID clsid, IUnknown* object, DWORD context,
                   DWORD* cookie);

  // CoRevokeClassObject from `current`: S_OK, CO_E_OBJNOTREG for an unknown
  // cookie, RPC_E_WRONG_THREAD from another apartment than the registering
  // one.
  HRESULT Revoke(const ApartmentRef& current, DWORD cookie);

  // CoGetClassObject's lookup: the class object registered for `clsid`, as
  // `current` sees it (see the definition), unmarshaled for `riid`.
  // REGDB_E_CLASSNOTREG when there is none.
  HRESULT GetClassObject(const ApartmentRef& current, REFCLSID clsid, DWORD context, REFIID riid,
                         void** ppv);

 private:
  struct Registration {
    CLSID clsid;
    std::uint64_t packet;
    // The registering apartment, which owns the registration (revoked at its
    // end; revocable only from it), and the CLSCTX it was registered for.
    std::uint64_t apartment_id = 0;
    DWORD context = 0;
  };

  HRESULT LookupPacket(REFCLSID clsid, std::uint64_t apartment_id, DWORD context,
                       std::uint64_t* packet);
  // Makes sure `current`'s shutdown revokes its registrations.
  HRESULT WatchApartment(const ApartmentRef& current);
  void RevokeApartment(std::uint64_t apartment_id);

  struct Table {
    std::unordered_map<DWORD, Registration> classes{};
    // Apartments whose shutdown callback revokes their class objects (one
    // each).
    std::unordered_set<std::uint64_t> watched_apartments{};
  };

  ComRuntime& runtime_;
  ComGuarded<Table> table_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_CLASS_REGISTRY_H_
