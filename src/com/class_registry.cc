// The in-process class registry (class_registry.h).
#include "com/class_registry.h"

#include <mutex>
#include <vector>

#include "com/com_runtime.h"

namespace apartments::internal {

// The class objects an apartment registered belong to it, as on Windows
// (Wine's compobj.c test_registered_object_thread_affinity, run on Windows):
// an in-process activation (CLSCTX_INPROC_*) finds only the calling
// apartment's registrations; CLSCTX_LOCAL_SERVER also finds those other
// apartments registered for CLSCTX_LOCAL_SERVER, and returns a proxy, so that
// activation goes through the registering apartment like any call into it.
HRESULT ClassRegistry::LookupPacket(REFCLSID clsid, std::uint64_t apartment_id, DWORD context,
                                    std::uint64_t* packet) {
  auto guard = runtime_.Lock();
  const Registration* other_apartment = nullptr;
  for (auto& [cookie, registration] : table_.Get(guard).classes) {
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

HRESULT ClassRegistry::GetClassObject(const ApartmentRef& current, REFCLSID clsid, DWORD context,
                                      REFIID riid, void** ppv) {
  std::uint64_t packet = 0;
  HRESULT hr = LookupPacket(clsid, current->id(), context, &packet);
  if (FAILED(hr)) return hr;
  return runtime_.packets().Unmarshal(packet, riid, ppv, nullptr);
}

// Revokes every class object apartment `apartment_id` registered (its
// shutdown callback, on its own thread).
void ClassRegistry::RevokeApartment(std::uint64_t apartment_id) {
  std::vector<std::uint64_t> packets;
  {
    auto guard = runtime_.Lock();
    Table& table = table_.Get(guard);
    table.watched_apartments.erase(apartment_id);
    for (auto it = table.classes.begin(); it != table.classes.end();) {
      if (it->second.apartment_id == apartment_id) {
        packets.push_back(it->second.packet);
        it = table.classes.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::uint64_t packet : packets) (void)runtime_.packets().Release(packet, nullptr);
}

HRESULT ClassRegistry::WatchApartment(const ApartmentRef& current) {
  const std::uint64_t apartment_id = current->id();
  // The registration ends with its apartment (Windows revokes an apartment's
  // class objects at its CoUninitialize); the callback runs on that thread.
  bool needs_callback;
  needs_callback = table_.Get(runtime_.Lock()).watched_apartments.insert(apartment_id).second;
  // Registered outside the lock (the apartment takes its own lock, and its
  // callbacks take ours).
  if (needs_callback &&
      !current->AddShutdownCallback([this, apartment_id] { RevokeApartment(apartment_id); })) {
    table_.Get(runtime_.Lock()).watched_apartments.erase(apartment_id);
    return CO_E_NOTINITIALIZED;
  }
  return S_OK;
}

HRESULT ClassRegistry::Register(const ApartmentRef& current, REFCLSID clsid, IUnknown* object,
                                DWORD context, DWORD* cookie) {
  const std::uint64_t apartment_id = current->id();
  HRESULT hr = WatchApartment(current);
  if (FAILED(hr)) return hr;
  WireRecord record;
  hr = runtime_.packets().Marshal(current, object, IID_IUnknown, MSHLFLAGS_TABLESTRONG, &record);
  if (FAILED(hr)) return hr;
  // Another apartment may register the same class (each finds its own).
  auto same = [&](const Registration& registration) {
    return registration.clsid == clsid && registration.apartment_id == apartment_id &&
           (registration.context & context) != 0;
  };
  bool duplicate = false;
  {
    auto guard = runtime_.Lock();
    Table& table = table_.Get(guard);
    for (auto& [key, registration] : table.classes) duplicate |= same(registration);
    if (!duplicate) {
      DWORD new_cookie = ComRuntime::NextCookieLocked(guard);
      table.classes.emplace(new_cookie,
                            Registration{clsid, record.packet_id, apartment_id, context});
      *cookie = new_cookie;
    }
  }
  if (duplicate) {
    (void)runtime_.packets().Release(record.packet_id, nullptr);
    return CO_E_OBJISREG;
  }
  return S_OK;
}

HRESULT ClassRegistry::Revoke(const ApartmentRef& current, DWORD cookie) {
  std::uint64_t packet = 0;
  {
    auto guard = runtime_.Lock();
    auto& classes = table_.Get(guard).classes;
    auto it = classes.find(cookie);
    if (it == classes.end()) return CO_E_OBJNOTREG;
    // Only the registering apartment may revoke (Windows).
    if (it->second.apartment_id != current->id()) return RPC_E_WRONG_THREAD;
    packet = it->second.packet;
    classes.erase(it);
  }
  return runtime_.packets().Release(packet, nullptr);
}

}  // namespace apartments::internal
