// The global interface table (global_interface_table.h).
#include "com/global_interface_table.h"

#include <mutex>

#include "com/com_runtime.h"

namespace apartments::internal {
namespace {

// QueryInterface of an agile process singleton whose one interface
// `Interface` (IID `interface_iid`) also stands for IUnknown: no reference is
// counted.
template <typename Interface, typename Self>
HRESULT QueryAgileSingleton(Self* self, REFIID interface_iid, REFIID riid, void** ppv) {
  if (ppv == nullptr) return E_POINTER;
  if (riid == IID_IUnknown || riid == interface_iid) {
    *ppv = static_cast<Interface*>(self);
  } else if (riid == IID_IAgileObject) {
    *ppv = static_cast<IAgileObject*>(self);
  } else {
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  return S_OK;
}

}  // namespace

STDMETHODIMP GlobalInterfaceTableImpl::QueryInterface(REFIID riid, void** ppv) {
  return QueryAgileSingleton<IGlobalInterfaceTable>(this, IID_IGlobalInterfaceTable, riid, ppv);
}

STDMETHODIMP GlobalInterfaceTableImpl::RegisterInterfaceInGlobal(IUnknown* pUnk, REFIID riid,
                                                                 DWORD* pdwCookie) {
  if (pdwCookie != nullptr) *pdwCookie = 0;
  if (pUnk == nullptr || pdwCookie == nullptr) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  WireRecord record;
  HRESULT hr = runtime_.packets().Marshal(current, pUnk, riid, MSHLFLAGS_TABLESTRONG, &record);
  if (FAILED(hr)) return hr;
  auto guard = runtime_.Lock();
  DWORD cookie = ComRuntime::NextCookieLocked(guard);
  cookies_.Get(guard).emplace(cookie, record.packet_id);
  *pdwCookie = cookie;
  return S_OK;
}

STDMETHODIMP GlobalInterfaceTableImpl::RevokeInterfaceFromGlobal(DWORD dwCookie) {
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  std::uint64_t packet = 0;
  {
    auto guard = runtime_.Lock();
    auto& cookies = cookies_.Get(guard);
    auto it = cookies.find(dwCookie);
    if (it == cookies.end()) return E_INVALIDARG;
    packet = it->second;
    cookies.erase(it);
  }
  return runtime_.packets().Release(packet, nullptr);
}

STDMETHODIMP GlobalInterfaceTableImpl::GetInterfaceFromGlobal(DWORD dwCookie, REFIID riid,
                                                              void** ppv) {
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  std::uint64_t packet = 0;
  {
    auto guard = runtime_.Lock();
    const auto& cookies = cookies_.Get(guard);
    auto it = cookies.find(dwCookie);
    if (it == cookies.end()) return E_INVALIDARG;
    packet = it->second;
  }
  return runtime_.packets().Unmarshal(packet, riid, ppv, nullptr);
}

STDMETHODIMP GlobalInterfaceTableFactory::QueryInterface(REFIID riid, void** ppv) {
  return QueryAgileSingleton<IClassFactory>(this, IID_IClassFactory, riid, ppv);
}

STDMETHODIMP GlobalInterfaceTableFactory::CreateInstance(IUnknown* pUnkOuter, REFIID riid,
                                                         void** ppv) {
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  if (pUnkOuter != nullptr) return CLASS_E_NOAGGREGATION;
  return table_.QueryInterface(riid, ppv);
}

}  // namespace apartments::internal
