// The process's global interface table (IGlobalInterfaceTable) and the
// class object of CLSID_StdGlobalInterfaceTable. Each cookie names
// TABLESTRONG marshal data (MarshalPackets) made in the registering
// apartment; GetInterfaceFromGlobal unmarshals it in the caller's.
#ifndef APARTMENTS_SRC_COM_GLOBAL_INTERFACE_TABLE_H_
#define APARTMENTS_SRC_COM_GLOBAL_INTERFACE_TABLE_H_

#include <cstdint>
#include <unordered_map>

#include "apartments/win32_com.h"
#include "apartments/win32_marshal.h"
#include "com/com_lock.h"

namespace apartments::internal {

class ComRuntime;

// A process singleton owned by the ComRuntime: references are not counted,
// and AddRef and Release both report 1, as Windows' table does (Wine's ole32
// tests, run on Windows, check it). Any thread in an apartment; the methods
// return CO_E_NOTINITIALIZED on one that is in none, E_INVALIDARG for an
// unknown cookie, and otherwise what marshaling or unmarshaling returns.
class GlobalInterfaceTableImpl final : public IGlobalInterfaceTable, public IAgileObject {
 public:
  explicit GlobalInterfaceTableImpl(ComRuntime& runtime) noexcept : runtime_(runtime) {}
  GlobalInterfaceTableImpl(const GlobalInterfaceTableImpl&) = delete;
  GlobalInterfaceTableImpl& operator=(const GlobalInterfaceTableImpl&) = delete;

  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override;
  STDMETHODIMP_(ULONG) AddRef() override { return 1; }
  STDMETHODIMP_(ULONG) Release() override { return 1; }

  STDMETHODIMP RegisterInterfaceInGlobal(IUnknown* pUnk, REFIID riid, DWORD* pdwCookie) override;
  STDMETHODIMP RevokeInterfaceFromGlobal(DWORD dwCookie) override;
  STDMETHODIMP GetInterfaceFromGlobal(DWORD dwCookie, REFIID riid, void** ppv) override;

 private:
  ComRuntime& runtime_;
  // Cookie -> TABLESTRONG packet.
  ComGuarded<std::unordered_map<DWORD, std::uint64_t>> cookies_;
};

// The class object of CLSID_StdGlobalInterfaceTable (CoGetClassObject): its
// CreateInstance hands out the table. A process singleton like the table
// (AddRef reports 2, Release 1, as Windows').
class GlobalInterfaceTableFactory final : public IClassFactory, public IAgileObject {
 public:
  explicit GlobalInterfaceTableFactory(GlobalInterfaceTableImpl& table) noexcept : table_(table) {}
  GlobalInterfaceTableFactory(const GlobalInterfaceTableFactory&) = delete;
  GlobalInterfaceTableFactory& operator=(const GlobalInterfaceTableFactory&) = delete;

  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override;
  STDMETHODIMP_(ULONG) AddRef() override { return 2; }
  STDMETHODIMP_(ULONG) Release() override { return 1; }
  STDMETHODIMP CreateInstance(IUnknown* pUnkOuter, REFIID riid, void** ppv) override;
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }

 private:
  GlobalInterfaceTableImpl& table_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_GLOBAL_INTERFACE_TABLE_H_
