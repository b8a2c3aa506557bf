// The interfaces a standard proxy answers itself, without a call into the
// object's apartment, as Windows' proxy manager does: IMultiQI, IMarshal and
// IClientSecurity. Each is a part of its proxy manager (its AddRef, Release
// and QueryInterface are the manager's), so it lives as long as the manager.
#ifndef APARTMENTS_SRC_COM_PROXY_LOCAL_INTERFACES_H_
#define APARTMENTS_SRC_COM_PROXY_LOCAL_INTERFACES_H_

#include <mutex>
#include <string>

#include "apartments/proxy.h"
#include "apartments/win32_com.h"

namespace apartments::internal {

class ProxyLocalInterfaces {
 public:
  // `is_remote(manager, p)` says whether `p` is `manager`'s IUnknown or one
  // of its interface proxies (what IClientSecurity's blanket applies to).
  using IsRemoteFn = bool (*)(ProxyManagerBase* manager, IUnknown* p);

  ProxyLocalInterfaces(ProxyManagerBase* manager, IsRemoteFn is_remote) noexcept;
  ProxyLocalInterfaces(const ProxyLocalInterfaces&) = delete;
  ProxyLocalInterfaces& operator=(const ProxyLocalInterfaces&) = delete;

  // The local interface `riid`, AddRef'ed (one reference on the manager), or
  // null when `riid` names none of them.
  void* Find(REFIID riid) noexcept;

 private:
  // IMultiQI: QueryMultipleInterfaces asks the manager for each IID in turn.
  class MultiQI final : public IMultiQI {
   public:
    explicit MultiQI(ProxyLocalInterfaces* parts) : parts_(parts) {}
    STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override;
    STDMETHODIMP_(ULONG) AddRef() override;
    STDMETHODIMP_(ULONG) Release() override;
    STDMETHODIMP QueryMultipleInterfaces(ULONG cMQIs, MULTI_QI* pMQIs) override;

   private:
    ProxyLocalInterfaces* parts_;
  };

  // IMarshal: the standard marshaler of the object the proxy stands for
  // (marshaling a proxy names the original object in its own apartment).
  class Marshal final : public IMarshal {
   public:
    explicit Marshal(ProxyLocalInterfaces* parts) : parts_(parts) {}
    STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override;
    STDMETHODIMP_(ULONG) AddRef() override;
    STDMETHODIMP_(ULONG) Release() override;
    STDMETHODIMP GetUnmarshalClass(REFIID riid, void* pv, DWORD dwDestContext, void* pvDestContext,
                                   DWORD mshlflags, CLSID* pCid) override;
    STDMETHODIMP GetMarshalSizeMax(REFIID riid, void* pv, DWORD dwDestContext, void* pvDestContext,
                                   DWORD mshlflags, DWORD* pSize) override;
    STDMETHODIMP MarshalInterface(IStream* pStm, REFIID riid, void* pv, DWORD dwDestContext,
                                  void* pvDestContext, DWORD mshlflags) override;
    STDMETHODIMP UnmarshalInterface(IStream* pStm, REFIID riid, void** ppv) override;
    STDMETHODIMP ReleaseMarshalData(IStream* pStm) override;
    STDMETHODIMP DisconnectObject(DWORD dwReserved) override;

   private:
    ProxyLocalInterfaces* parts_;
  };

  // IClientSecurity: the blanket is recorded and reported back; in-process
  // calls never leave the process, so it changes nothing about them.
  class ClientSecurity final : public IClientSecurity {
   public:
    explicit ClientSecurity(ProxyLocalInterfaces* parts) : parts_(parts) {}
    STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override;
    STDMETHODIMP_(ULONG) AddRef() override;
    STDMETHODIMP_(ULONG) Release() override;
    STDMETHODIMP QueryBlanket(IUnknown* pProxy, DWORD* pAuthnSvc, DWORD* pAuthzSvc,
                              OLECHAR** pServerPrincName, DWORD* pAuthnLevel, DWORD* pImpLevel,
                              void** pAuthInfo, DWORD* pCapabilites) override;
    STDMETHODIMP SetBlanket(IUnknown* pProxy, DWORD dwAuthnSvc, DWORD dwAuthzSvc,
                            OLECHAR* pServerPrincName, DWORD dwAuthnLevel, DWORD dwImpLevel,
                            void* pAuthInfo, DWORD dwCapabilities) override;
    STDMETHODIMP CopyProxy(IUnknown* pProxy, IUnknown** ppCopy) override;

   private:
    HRESULT CheckProxy(IUnknown* proxy);

    ProxyLocalInterfaces* parts_;
    std::mutex mu_;
    // The blanket (Windows' defaults for a local call until SetBlanket).
    DWORD authn_service_ = RPC_C_AUTHN_WINNT;
    DWORD authz_service_ = RPC_C_AUTHZ_NONE;
    bool has_principal_ = false;
    std::wstring principal_;
    DWORD authn_level_ = RPC_C_AUTHN_LEVEL_PKT_PRIVACY;
    DWORD imp_level_ = RPC_C_IMP_LEVEL_IDENTIFY;
    void* auth_info_ = nullptr;  // the caller's, not owned (as documented)
    DWORD capabilities_ = EOAC_NONE;
  };

  ProxyManagerBase* const manager_;
  const IsRemoteFn is_remote_;
  MultiQI multi_qi_{this};
  Marshal marshal_{this};
  ClientSecurity client_security_{this};
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_PROXY_LOCAL_INTERFACES_H_
