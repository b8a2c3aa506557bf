// The sample in-process server's contract, shared by the server and its
// clients: interfaces, IIDs, CLSIDs and (for clients) the proxy recipe.
//
// The server includes this header as it is. A client defines
// APARTMENTS_SAMPLE_DEFINE_PROXIES before including it in exactly one of its
// source files: that file then holds the proxy recipe (apartments/proxy.h),
// which needs the apartments runtime that only the client links. A proxy is
// needed wherever an object lives in another apartment than its caller (an
// Apartment class created from the MTA, a Free class created from an STA).
#ifndef APARTMENTS_EXAMPLES_INPROC_SERVER_SAMPLE_INTERFACES_H_
#define APARTMENTS_EXAMPLES_INPROC_SERVER_SAMPLE_INTERFACES_H_

#include "apartments/win32_com.h"

namespace sample {

// What the sample's objects do: say where they run, and add.
struct IWhere : public IUnknown {
  // The Linux thread id (GetCurrentThreadId) of the thread running the call,
  // and the object's own address (a caller holding a proxy sees another
  // address than the pointer it holds).
  STDMETHOD(WhereAmI)(DWORD* thread_id, ULONGLONG* object_address) PURE;
  STDMETHOD(Add)(int a, int b, int* sum) PURE;
};
APARTMENTS_INTERFACE(IWhere, IUnknown, "6f0b7f0e-3a5c-4c1e-9d35-2f4a8e0b7c11");

// ThreadingModel=Apartment.
inline constexpr CLSID CLSID_SampleApartment =
    apartments::internal::GuidFromLiteral("6f0b7f0e-3a5c-4c1e-9d35-2f4a8e0b7c21");
// ThreadingModel=Free.
inline constexpr CLSID CLSID_SampleFree =
    apartments::internal::GuidFromLiteral("6f0b7f0e-3a5c-4c1e-9d35-2f4a8e0b7c22");

}  // namespace sample

#ifdef APARTMENTS_SAMPLE_DEFINE_PROXIES
#include "apartments/proxy.h"

namespace sample {
APARTMENTS_PROXY_BEGIN(IWhere)
  APARTMENTS_PROXY_METHOD(WhereAmI, (DWORD* thread_id, ULONGLONG* object_address),
                          (thread_id, object_address))
  APARTMENTS_PROXY_METHOD(Add, (int a, int b, int* sum), (a, b, sum))
APARTMENTS_PROXY_END(IWhere)
}  // namespace sample
#endif

#endif  // APARTMENTS_EXAMPLES_INPROC_SERVER_SAMPLE_INTERFACES_H_
