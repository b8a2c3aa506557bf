// The object a message filter sees as pUnk for the runtime's own calls
// between apartments (IRemUnknown: remote QueryInterface and Release).
#include "apartments/win32_com.h"
#include "com/apartment.h"

namespace apartments::internal {
namespace {

// Stands for the apartment's IRemUnknown, as Windows names it to message
// filters. It lives as long as the process, so its reference count is
// nominal; its methods are not callable (it only identifies the calls).
class RemUnknown final : public IRemUnknown {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (IsEqualIID(riid, IID_IUnknown) || IsEqualIID(riid, IID_IRemUnknown)) {
      *ppv = static_cast<IRemUnknown*>(this);
      return S_OK;
    }
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return 2; }
  STDMETHODIMP_(ULONG) Release() override { return 1; }
};

}  // namespace

IUnknown* RemUnknownObject() noexcept {
  static RemUnknown object;
  return &object;
}

}  // namespace apartments::internal
