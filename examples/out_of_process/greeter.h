// The interface the out-of-process example's server and client share: the
// IID, the CLSID, the proxy recipe and its declaration for other processes.
#ifndef APARTMENTS_EXAMPLES_OUT_OF_PROCESS_GREETER_H_
#define APARTMENTS_EXAMPLES_OUT_OF_PROCESS_GREETER_H_

#include <apartments/proxy.h>
#include <apartments/win32.h>

namespace greeter {

struct IListener : public IUnknown {
  STDMETHOD(Heard)(LPCWSTR text) PURE;
};
APARTMENTS_INTERFACE(IListener, IUnknown, "0a7e3d52-6c1b-4f08-9e2d-5b4c3a291801");

struct IGreeter : public IUnknown {
  STDMETHOD(Greet)(LPCWSTR name, BSTR* greeting) PURE;
  STDMETHOD(GetPid)(DWORD* pid) PURE;
  // Calls listener->Heard() while the caller waits (a callback across processes).
  STDMETHOD(Tell)(IListener* listener, LPCWSTR text) PURE;
};
APARTMENTS_INTERFACE(IGreeter, IUnknown, "0a7e3d52-6c1b-4f08-9e2d-5b4c3a291802");

APARTMENTS_PROXY_BEGIN(IListener)
  APARTMENTS_PROXY_METHOD(Heard, (LPCWSTR text), (text))
APARTMENTS_PROXY_END(IListener)
APARTMENTS_REMOTE_INTERFACE(IListener)

APARTMENTS_PROXY_BEGIN(IGreeter)
  APARTMENTS_PROXY_METHOD(Greet, (LPCWSTR name, BSTR* greeting), (name, greeting))
  APARTMENTS_PROXY_METHOD(GetPid, (DWORD* pid), (pid))
  APARTMENTS_PROXY_METHOD(Tell, (IListener* listener, LPCWSTR text), (listener, text))
APARTMENTS_PROXY_END(IGreeter)
APARTMENTS_REMOTE_INTERFACE(IGreeter)

inline constexpr CLSID CLSID_Greeter =
    apartments::internal::GuidFromLiteral("0a7e3d52-6c1b-4f08-9e2d-5b4c3a291810");

}  // namespace greeter

#endif  // APARTMENTS_EXAMPLES_OUT_OF_PROCESS_GREETER_H_
