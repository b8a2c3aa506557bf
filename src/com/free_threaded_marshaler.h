// The free-threaded marshaler (CoCreateFreeThreadedMarshaler): an IMarshal
// whose in-process marshal data carries the object's pointer itself, so that
// unmarshaling in any apartment gives the object, not a proxy.
#ifndef APARTMENTS_SRC_COM_FREE_THREADED_MARSHALER_H_
#define APARTMENTS_SRC_COM_FREE_THREADED_MARSHALER_H_

#include <cstdint>

#include "apartments/win32_com.h"

namespace apartments::internal {

// The class Windows' free-threaded marshaler reports from GetUnmarshalClass;
// an object whose IMarshal reports it is agile (marshaled directly).
inline constexpr CLSID kClsidInProcFreeMarshaler =
    GuidFromLiteral("0000033A-0000-0000-C000-000000000046");

// A new free-threaded marshaler aggregated by `outer` (may be null), with
// one reference, in *out. `secret` keys the check its marshal data carries
// (ComRuntime::secret()). Returns S_OK or E_OUTOFMEMORY (*out null).
HRESULT CreateFreeThreadedMarshaler(std::uint64_t secret, IUnknown* outer, IUnknown** out);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_FREE_THREADED_MARSHALER_H_
