// IMultiQI, IMarshal and IClientSecurity of a standard proxy (see
// proxy_local_interfaces.h).
#include "com/proxy_local_interfaces.h"

#include <cwchar>

#include "apartments/win32_marshal.h"
#include "com/guid_format.h"
#include "com/marshal.h"

namespace apartments::internal {
namespace {

// What Windows' proxy manager reports from IMarshal::GetUnmarshalClass.
constexpr CLSID kClsidStdMarshal = GuidFromLiteral("00000017-0000-0000-C000-000000000046");

bool IsKnownAuthnService(DWORD service) {
  switch (service) {
    case RPC_C_AUTHN_NONE:
    case RPC_C_AUTHN_DCE_PRIVATE:
    case RPC_C_AUTHN_DCE_PUBLIC:
    case RPC_C_AUTHN_DEC_PUBLIC:
    case RPC_C_AUTHN_GSS_NEGOTIATE:
    case RPC_C_AUTHN_WINNT:
    case RPC_C_AUTHN_GSS_SCHANNEL:
    case RPC_C_AUTHN_GSS_KERBEROS:
    case RPC_C_AUTHN_DPA:
    case RPC_C_AUTHN_MSN:
    case RPC_C_AUTHN_KERNEL:
    case RPC_C_AUTHN_DIGEST:
    case RPC_C_AUTHN_NEGO_EXTENDER:
    case RPC_C_AUTHN_PKU2U:
    case RPC_C_AUTHN_MQ:
    case static_cast<DWORD>(RPC_C_AUTHN_DEFAULT):
      return true;
    default:
      return false;
  }
}

}  // namespace

ProxyLocalInterfaces::ProxyLocalInterfaces(ProxyManagerBase* manager, IsRemoteFn is_remote) noexcept
    : manager_(manager), is_remote_(is_remote) {}

void* ProxyLocalInterfaces::Find(REFIID riid) noexcept {
  IUnknown* found = nullptr;
  if (riid == IID_IMultiQI) {
    found = &multi_qi_;
  } else if (riid == IID_IMarshal) {
    found = &marshal_;
  } else if (riid == IID_IClientSecurity) {
    found = &client_security_;
  } else {
    return nullptr;
  }
  manager_->AddRefProxy();
  return found;
}

// --- IMultiQI ---------------------------------------------------------------------

HRESULT ProxyLocalInterfaces::MultiQI::QueryInterface(REFIID riid, void** ppv) {
  return parts_->manager_->QueryInterfaceProxy(riid, ppv);
}
ULONG ProxyLocalInterfaces::MultiQI::AddRef() { return parts_->manager_->AddRefProxy(); }
ULONG ProxyLocalInterfaces::MultiQI::Release() { return parts_->manager_->ReleaseProxy(); }

HRESULT ProxyLocalInterfaces::MultiQI::QueryMultipleInterfaces(ULONG cMQIs, MULTI_QI* pMQIs) {
  if (cMQIs == 0) return E_INVALIDARG;
  if (pMQIs == nullptr) return E_POINTER;
  ULONG requested = 0;
  ULONG found = 0;
  for (ULONG i = 0; i < cMQIs; ++i) {
    MULTI_QI& entry = pMQIs[i];
    // As documented, an entry whose pItf is not null on input is ignored.
    if (entry.pItf != nullptr) continue;
    ++requested;
    if (entry.pIID == nullptr) {
      entry.hr = E_POINTER;
      continue;
    }
    void* itf = nullptr;
    entry.hr = parts_->manager_->QueryInterfaceProxy(*entry.pIID, &itf);
    if (SUCCEEDED(entry.hr)) {
      entry.pItf = static_cast<IUnknown*>(itf);
      ++found;
    }
  }
  // The documented results (Windows' proxy manager; CO_S_NOTALLINTERFACES is
  // CoCreateInstanceEx's code, not this method's).
  if (found == requested) return S_OK;
  return found == 0 ? E_NOINTERFACE : S_FALSE;
}

// --- IMarshal ---------------------------------------------------------------------

HRESULT ProxyLocalInterfaces::Marshal::QueryInterface(REFIID riid, void** ppv) {
  return parts_->manager_->QueryInterfaceProxy(riid, ppv);
}
ULONG ProxyLocalInterfaces::Marshal::AddRef() { return parts_->manager_->AddRefProxy(); }
ULONG ProxyLocalInterfaces::Marshal::Release() { return parts_->manager_->ReleaseProxy(); }

HRESULT ProxyLocalInterfaces::Marshal::GetUnmarshalClass(REFIID, void*, DWORD, void*, DWORD,
                                                         CLSID* pCid) {
  if (pCid == nullptr) return E_POINTER;
  *pCid = kClsidStdMarshal;
  return S_OK;
}

HRESULT ProxyLocalInterfaces::Marshal::GetMarshalSizeMax(REFIID, void*, DWORD, void*, DWORD,
                                                         DWORD* pSize) {
  if (pSize == nullptr) return E_POINTER;
  *pSize = static_cast<DWORD>(kMarshalRecordSize);
  return S_OK;
}

HRESULT ProxyLocalInterfaces::Marshal::MarshalInterface(IStream* pStm, REFIID riid, void*,
                                                        DWORD dwDestContext, void* pvDestContext,
                                                        DWORD mshlflags) {
  // Whatever `pv` says, the data names the object this proxy stands for.
  IUnknown* identity = nullptr;
  HRESULT hr =
      parts_->manager_->QueryInterfaceProxy(IID_IUnknown, reinterpret_cast<void**>(&identity));
  if (FAILED(hr)) return hr;
  hr = CoMarshalInterface(pStm, riid, identity, dwDestContext, pvDestContext, mshlflags);
  identity->Release();
  return hr;
}

HRESULT ProxyLocalInterfaces::Marshal::UnmarshalInterface(IStream* pStm, REFIID riid, void** ppv) {
  return CoUnmarshalInterface(pStm, riid, ppv);
}

HRESULT ProxyLocalInterfaces::Marshal::ReleaseMarshalData(IStream* pStm) {
  return CoReleaseMarshalData(pStm);
}

HRESULT ProxyLocalInterfaces::Marshal::DisconnectObject(DWORD) {
  // A client has nothing to disconnect (the object lives elsewhere).
  return S_OK;
}

// --- IClientSecurity ----------------------------------------------------------------

HRESULT ProxyLocalInterfaces::ClientSecurity::QueryInterface(REFIID riid, void** ppv) {
  return parts_->manager_->QueryInterfaceProxy(riid, ppv);
}
ULONG ProxyLocalInterfaces::ClientSecurity::AddRef() { return parts_->manager_->AddRefProxy(); }
ULONG ProxyLocalInterfaces::ClientSecurity::Release() { return parts_->manager_->ReleaseProxy(); }

// The blanket belongs to the proxy's remote interfaces: the local ones
// (IMultiQI, IMarshal, IClientSecurity itself) have none, as on Windows.
HRESULT ProxyLocalInterfaces::ClientSecurity::CheckProxy(IUnknown* proxy) {
  if (proxy == nullptr) return E_INVALIDARG;
  if (proxy == static_cast<IUnknown*>(&parts_->multi_qi_) ||
      proxy == static_cast<IUnknown*>(&parts_->marshal_) ||
      proxy == static_cast<IUnknown*>(&parts_->client_security_)) {
    return E_NOINTERFACE;
  }
  return parts_->is_remote_(parts_->manager_, proxy) ? S_OK : E_NOINTERFACE;
}

HRESULT ProxyLocalInterfaces::ClientSecurity::QueryBlanket(IUnknown* pProxy, DWORD* pAuthnSvc,
                                                           DWORD* pAuthzSvc,
                                                           OLECHAR** pServerPrincName,
                                                           DWORD* pAuthnLevel, DWORD* pImpLevel,
                                                           void** pAuthInfo, DWORD* pCapabilites) {
  HRESULT hr = CheckProxy(pProxy);
  if (FAILED(hr)) return hr;
  std::lock_guard lock(mu_);
  if (pServerPrincName != nullptr) {
    *pServerPrincName = nullptr;
    if (has_principal_) {
      // The caller frees it with CoTaskMemFree.
      std::size_t bytes = (principal_.size() + 1) * sizeof(OLECHAR);
      auto* copy = static_cast<OLECHAR*>(CoTaskMemAlloc(bytes));
      if (copy == nullptr) return E_OUTOFMEMORY;
      std::wmemcpy(copy, principal_.c_str(), principal_.size() + 1);
      *pServerPrincName = copy;
    }
  }
  if (pAuthnSvc != nullptr) *pAuthnSvc = authn_service_;
  if (pAuthzSvc != nullptr) *pAuthzSvc = authz_service_;
  if (pAuthnLevel != nullptr) *pAuthnLevel = authn_level_;
  if (pImpLevel != nullptr) *pImpLevel = imp_level_;
  if (pAuthInfo != nullptr) *pAuthInfo = auth_info_;
  if (pCapabilites != nullptr) *pCapabilites = capabilities_;
  return S_OK;
}

HRESULT ProxyLocalInterfaces::ClientSecurity::SetBlanket(IUnknown* pProxy, DWORD dwAuthnSvc,
                                                         DWORD dwAuthzSvc,
                                                         OLECHAR* pServerPrincName,
                                                         DWORD dwAuthnLevel, DWORD dwImpLevel,
                                                         void* pAuthInfo, DWORD dwCapabilities) {
  HRESULT hr = CheckProxy(pProxy);
  if (FAILED(hr)) return hr;
  if (!IsKnownAuthnService(dwAuthnSvc) ||
      (dwAuthzSvc > RPC_C_AUTHZ_DCE && dwAuthzSvc != static_cast<DWORD>(RPC_C_AUTHZ_DEFAULT)) ||
      dwAuthnLevel > RPC_C_AUTHN_LEVEL_PKT_PRIVACY || dwImpLevel > RPC_C_IMP_LEVEL_DELEGATE) {
    return E_INVALIDARG;
  }
  std::lock_guard lock(mu_);
  if (dwAuthnSvc != static_cast<DWORD>(RPC_C_AUTHN_DEFAULT)) authn_service_ = dwAuthnSvc;
  if (dwAuthzSvc != static_cast<DWORD>(RPC_C_AUTHZ_DEFAULT)) authz_service_ = dwAuthzSvc;
  if (pServerPrincName != COLE_DEFAULT_PRINCIPAL) {
    has_principal_ = pServerPrincName != nullptr;
    principal_ = has_principal_ ? std::wstring(pServerPrincName) : std::wstring();
  }
  if (dwAuthnLevel != RPC_C_AUTHN_LEVEL_DEFAULT) authn_level_ = dwAuthnLevel;
  if (dwImpLevel != RPC_C_IMP_LEVEL_DEFAULT) imp_level_ = dwImpLevel;
  if (pAuthInfo != COLE_DEFAULT_AUTHINFO) auth_info_ = pAuthInfo;
  capabilities_ = dwCapabilities;
  return S_OK;
}

HRESULT ProxyLocalInterfaces::ClientSecurity::CopyProxy(IUnknown* pProxy, IUnknown** ppCopy) {
  if (ppCopy == nullptr) return E_INVALIDARG;
  *ppCopy = nullptr;
  HRESULT hr = CheckProxy(pProxy);
  if (FAILED(hr)) return hr;
  // One blanket per proxy manager: the "copy" is the proxy itself. In-process
  // the blanket changes nothing, so a private copy would behave the same.
  pProxy->AddRef();
  *ppCopy = pProxy;
  return S_OK;
}

}  // namespace apartments::internal
