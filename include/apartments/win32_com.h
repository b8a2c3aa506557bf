// apartments/win32_com.h
//
// The COM ABI with Win32 names, signatures and values: GUID/IID/CLSID, the
// interface macros (STDMETHOD, PURE, ...), IUnknown and the standard
// interfaces the runtime uses (IClassFactory, ISequentialStream, IStream,
// IMarshal, IAgileObject, IGlobalInterfaceTable, IMultiQI, IClientSecurity,
// IMessageFilter, IErrorInfo, ICreateErrorInfo, ISupportErrorInfo), task
// memory, BSTRs, per-thread error info, and CreateStreamOnHGlobal. Everything here works without
// CoInitializeEx: none of it depends on an apartment.
//
// Interface IDs. Windows attaches an IID to an interface type with
// `__declspec(uuid)`; GCC has no such thing. Here one line after the
// interface's definition, in the interface's own namespace, does it:
//
//   struct IFoo : public IUnknown {
//     STDMETHOD(Bar)(int x) PURE;
//   };
//   APARTMENTS_INTERFACE(IFoo, IUnknown, "12345678-9abc-def0-1234-56789abcdef0");
//
// That defines `IID_IFoo` (an inline constexpr IID), makes
// `apartments::InterfaceId<IFoo>()` and `__uuidof(IFoo)` return it, and records
// that IFoo derives from IUnknown, so that apartments::ComObject answers
// QueryInterface for every interface on the chain. A malformed GUID string is a
// compile error; naming a base the interface does not derive from is a compile
// error. Code ported with `DEFINE_GUID(IID_IFoo, ...)` binds the existing
// constant instead: `APARTMENTS_INTERFACE_IID(IFoo, IUnknown, IID_IFoo);`.
// `__uuidof` accepts a type, a pointer type or an expression (as MSVC does);
// an interface without a declared IID fails to compile there.
//
// Differences from Windows, all deliberate:
// - WCHAR/OLECHAR is a 32-bit wchar_t (see win32_types.h), so a BSTR holds
//   UTF-32 code units and SysStringByteLen() is 4 x SysStringLen().
// - DEFINE_GUID always defines an `inline constexpr GUID` (there is no
//   INITGUID split and no uuid.lib to link).
// - HGLOBAL is an opaque handle to a block allocated by GlobalAlloc here; it is
//   never the block's address, even for GMEM_FIXED.
// - The `interface` keyword macro of <objbase.h> is not defined (it would
//   break every C++ program using `interface` as an identifier); use `struct`.
//
// Thread safety: every function here may be called from any thread, with or
// without COM initialized, unless it says otherwise.
#ifndef APARTMENTS_WIN32_COM_H_
#define APARTMENTS_WIN32_COM_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string_view>
#include <type_traits>

#include "apartments/win32_errors.h"
#include "apartments/win32_types.h"

// --- Calling conventions and interface-declaration macros ---------------------

#ifndef STDMETHODVCALLTYPE
#define STDMETHODVCALLTYPE
#endif
#ifndef EXTERN_C
#define EXTERN_C extern "C"
#endif

#define STDMETHOD(method) virtual HRESULT STDMETHODCALLTYPE method
#define STDMETHOD_(type, method) virtual type STDMETHODCALLTYPE method
#define STDMETHODV(method) virtual HRESULT STDMETHODVCALLTYPE method
#define STDMETHODV_(type, method) virtual type STDMETHODVCALLTYPE method
#define STDMETHODIMP HRESULT STDMETHODCALLTYPE
#define STDMETHODIMP_(type) type STDMETHODCALLTYPE
#define STDMETHODIMPV HRESULT STDMETHODVCALLTYPE
#define STDMETHODIMPV_(type) type STDMETHODVCALLTYPE
#define PURE = 0
#define THIS_
#define THIS void
#define DECLARE_INTERFACE(iface) struct iface
#define DECLARE_INTERFACE_(iface, baseiface) struct iface : public baseiface
#define STDAPI EXTERN_C HRESULT STDAPICALLTYPE
#define STDAPI_(type) EXTERN_C type STDAPICALLTYPE
// Windows' MIDL_INTERFACE(x) also attaches the uuid; here it cannot, so follow
// the interface with APARTMENTS_INTERFACE (see the file comment).
#define MIDL_INTERFACE(x) struct

// --- Types --------------------------------------------------------------------

typedef WCHAR OLECHAR;
typedef OLECHAR* LPOLESTR;
typedef const OLECHAR* LPCOLESTR;
typedef OLECHAR* BSTR;
typedef BSTR* LPBSTR;
typedef void* HGLOBAL;
typedef void* HTASK;
typedef short VARIANT_BOOL;

// LARGE_INTEGER / ULARGE_INTEGER as in winnt.h: a 64-bit value with its low
// and high halves addressable.
typedef union _LARGE_INTEGER {
  struct {
    DWORD LowPart;
    LONG HighPart;
  };
  struct {
    DWORD LowPart;
    LONG HighPart;
  } u;
  LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

typedef union _ULARGE_INTEGER {
  struct {
    DWORD LowPart;
    DWORD HighPart;
  };
  struct {
    DWORD LowPart;
    DWORD HighPart;
  } u;
  ULONGLONG QuadPart;
} ULARGE_INTEGER, *PULARGE_INTEGER;

#ifndef APARTMENTS_FILETIME_DEFINED
#define APARTMENTS_FILETIME_DEFINED
typedef struct _FILETIME {
  DWORD dwLowDateTime;
  DWORD dwHighDateTime;
} FILETIME, *PFILETIME, *LPFILETIME;
#endif

// --- GUID ---------------------------------------------------------------------

// The 16-byte GUID with Windows' field layout: Data1 is a 32-bit DWORD-sized
// field, then two 16-bit fields and 8 bytes.
typedef struct _GUID {
  unsigned int Data1;
  unsigned short Data2;
  unsigned short Data3;
  unsigned char Data4[8];
} GUID;
typedef GUID IID;
typedef GUID CLSID;
typedef GUID* LPGUID;
typedef IID* LPIID;
typedef CLSID* LPCLSID;
typedef const GUID* LPCGUID;
typedef const GUID& REFGUID;
typedef const IID& REFIID;
typedef const CLSID& REFCLSID;

static_assert(sizeof(GUID) == 16, "GUID must be 16 bytes, as on Windows");

constexpr bool operator==(const GUID& a, const GUID& b) noexcept {
  if (a.Data1 != b.Data1 || a.Data2 != b.Data2 || a.Data3 != b.Data3) return false;
  for (int i = 0; i < 8; ++i) {
    if (a.Data4[i] != b.Data4[i]) return false;
  }
  return true;
}

// IsEqualGUID / IsEqualIID / IsEqualCLSID: nonzero when equal (BOOL, as the
// C++ inline versions of <guiddef.h>).
constexpr BOOL IsEqualGUID(REFGUID a, REFGUID b) noexcept { return a == b ? TRUE : FALSE; }
#define IsEqualIID(riid1, riid2) IsEqualGUID(riid1, riid2)
#define IsEqualCLSID(rclsid1, rclsid2) IsEqualGUID(rclsid1, rclsid2)

// DEFINE_GUID(name, l, w1, w2, b1..b8): defines `name` as an inline constexpr
// GUID, usable in headers and in several translation units.
#define DEFINE_GUID(name, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \
  inline constexpr GUID name = {l, w1, w2, {b1, b2, b3, b4, b5, b6, b7, b8}}

DEFINE_GUID(GUID_NULL, 0x00000000, 0x0000, 0x0000, 0, 0, 0, 0, 0, 0, 0, 0);
DEFINE_GUID(IID_NULL, 0x00000000, 0x0000, 0x0000, 0, 0, 0, 0, 0, 0, 0, 0);
DEFINE_GUID(CLSID_NULL, 0x00000000, 0x0000, 0x0000, 0, 0, 0, 0, 0, 0, 0, 0);
// The class of the process's global interface table (CoCreateInstance).
DEFINE_GUID(CLSID_StdGlobalInterfaceTable, 0x00000323, 0x0000, 0x0000, 0xC0, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x46);

template <>
struct std::hash<GUID> {
  // Two 64-bit words mixed by multiplication: a handful of instructions
  // (interface lookups on every cross-apartment call hash an IID).
  std::size_t operator()(const GUID& g) const noexcept {
    const std::uint64_t head = std::uint64_t{g.Data1} << 32 | std::uint64_t{g.Data2} << 16 | g.Data3;
    std::uint64_t tail;
    std::memcpy(&tail, g.Data4, sizeof tail);
    const std::uint64_t h = (head ^ (tail * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return static_cast<std::size_t>(h ^ (h >> 31));
  }
};

namespace apartments {
namespace internal {

// Not constexpr: calling it while evaluating a constant expression is what
// turns a malformed GUID literal into a compile error.
void MalformedGuidLiteral();

constexpr int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  MalformedGuidLiteral();
  return 0;
}

// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", with or without braces, at
// compile time.
consteval GUID GuidFromLiteral(std::string_view s) {
  if (s.size() == 38) {
    if (s.front() != '{' || s.back() != '}') MalformedGuidLiteral();
    s = s.substr(1, 36);
  }
  if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
    MalformedGuidLiteral();
  }
  auto hex = [&](std::size_t pos, int digits) {
    unsigned long long v = 0;
    for (int i = 0; i < digits; ++i) v = v * 16 + static_cast<unsigned>(HexDigit(s[pos + i]));
    return v;
  };
  GUID g{};
  g.Data1 = static_cast<unsigned int>(hex(0, 8));
  g.Data2 = static_cast<unsigned short>(hex(9, 4));
  g.Data3 = static_cast<unsigned short>(hex(14, 4));
  g.Data4[0] = static_cast<unsigned char>(hex(19, 2));
  g.Data4[1] = static_cast<unsigned char>(hex(21, 2));
  for (int i = 0; i < 6; ++i) g.Data4[2 + i] = static_cast<unsigned char>(hex(24 + 2 * i, 2));
  return g;
}

}  // namespace internal

// ComInterface: a type with an IID declared by APARTMENTS_INTERFACE (found by
// argument-dependent lookup in the interface's namespace).
template <typename I>
concept ComInterface = requires { ApartmentsInterfaceIid(std::type_identity<I>{}); };

template <ComInterface I>
inline constexpr IID kInterfaceIdOf = ApartmentsInterfaceIid(std::type_identity<I>{});

// InterfaceId<I>()
//
// The IID of interface I, as a reference to a constant that lives for the
// whole program (so it binds to REFIID). Compile error if I has no IID.
template <ComInterface I>
constexpr const IID& InterfaceId() noexcept {
  return kInterfaceIdOf<I>;
}

// The interface I derives from (void for IUnknown).
template <ComInterface I>
using InterfaceBase = typename decltype(ApartmentsInterfaceBase(std::type_identity<I>{}))::type;

}  // namespace apartments

// APARTMENTS_INTERFACE_IID(I, Base, iid_constant): declares that interface I,
// derived from interface Base, has the IID `iid_constant` (a constexpr IID).
// Use at namespace scope, in I's namespace, after I's definition.
#define APARTMENTS_INTERFACE_IID(Interface, Base, iid_constant)                         \
  [[maybe_unused]] constexpr ::IID ApartmentsInterfaceIid(                              \
      ::std::type_identity<Interface>) noexcept {                                       \
    return iid_constant;                                                                \
  }                                                                                     \
  [[maybe_unused]] constexpr ::std::type_identity<Base> ApartmentsInterfaceBase(        \
      ::std::type_identity<Interface>) noexcept {                                       \
    return {};                                                                          \
  }                                                                                     \
  static_assert(::std::is_base_of_v<Base, Interface>, #Interface " must derive from " #Base)

// APARTMENTS_INTERFACE(I, Base, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"):
// defines IID_I and declares it as I's IID (see the file comment).
#define APARTMENTS_INTERFACE(Interface, Base, guid_string)                    \
  inline constexpr ::IID IID_##Interface =                                    \
      ::apartments::internal::GuidFromLiteral(guid_string);                   \
  APARTMENTS_INTERFACE_IID(Interface, Base, IID_##Interface)

// __uuidof(T) for a type, pointer type or expression, as MSVC's. Not defined
// where the compiler has its own (MSVC extensions).
#if !defined(_MSC_EXTENSIONS) && !defined(__uuidof)
#define __uuidof(x)                                                                          \
  (::apartments::InterfaceId<::std::remove_cvref_t<::std::remove_pointer_t<::std::remove_cvref_t< \
       __typeof__(x)>>>>())
#endif

// IID_PPV_ARGS(pp): expands to `__uuidof(**pp), (void**)pp` for QueryInterface
// and friends, checking that *pp is an interface pointer.
template <typename T>
void** IID_PPV_ARGS_Helper(T** pp) {
  static_assert(apartments::ComInterface<T>, "IID_PPV_ARGS needs an interface with an IID");
  return reinterpret_cast<void**>(pp);
}
#define IID_PPV_ARGS(ppType) __uuidof(**(ppType)), IID_PPV_ARGS_Helper(ppType)

// --- IUnknown -----------------------------------------------------------------

// The root of every interface. No virtual destructor: the vtable is exactly
// QueryInterface, AddRef, Release, as on Windows.
//
// Rules every implementation keeps (apartments::ComObject does):
// - QueryInterface(riid, nullptr) returns E_POINTER; for an unsupported riid it
//   sets *ppv = nullptr and returns E_NOINTERFACE; on success *ppv holds an
//   AddRef'ed pointer.
// - QueryInterface for IID_IUnknown from any interface of one object returns
//   the same pointer (the object's identity).
// - AddRef/Release return the new count (informational only).
struct IUnknown {
  STDMETHOD(QueryInterface)(REFIID riid, void** ppvObject) PURE;
  STDMETHOD_(ULONG, AddRef)() PURE;
  STDMETHOD_(ULONG, Release)() PURE;

  template <class Q>
  HRESULT STDMETHODCALLTYPE QueryInterface(Q** pp) {
    return QueryInterface(__uuidof(Q), reinterpret_cast<void**>(pp));
  }
};
typedef IUnknown* LPUNKNOWN;

inline constexpr IID IID_IUnknown = apartments::internal::GuidFromLiteral(
    "00000000-0000-0000-C000-000000000046");
[[maybe_unused]] constexpr IID ApartmentsInterfaceIid(std::type_identity<IUnknown>) noexcept {
  return IID_IUnknown;
}
[[maybe_unused]] constexpr std::type_identity<void> ApartmentsInterfaceBase(
    std::type_identity<IUnknown>) noexcept {
  return {};
}

// --- IClassFactory --------------------------------------------------------------

struct IClassFactory : public IUnknown {
  STDMETHOD(CreateInstance)(IUnknown* pUnkOuter, REFIID riid, void** ppvObject) PURE;
  STDMETHOD(LockServer)(BOOL fLock) PURE;
};
typedef IClassFactory* LPCLASSFACTORY;
APARTMENTS_INTERFACE(IClassFactory, IUnknown, "00000001-0000-0000-C000-000000000046");

// --- ISequentialStream and IStream -------------------------------------------

typedef enum tagSTREAM_SEEK {
  STREAM_SEEK_SET = 0,
  STREAM_SEEK_CUR = 1,
  STREAM_SEEK_END = 2
} STREAM_SEEK;

typedef enum tagSTGC {
  STGC_DEFAULT = 0,
  STGC_OVERWRITE = 1,
  STGC_ONLYIFCURRENT = 2,
  STGC_DANGEROUSLYCOMMITMERELYTODISKCACHE = 4,
  STGC_CONSOLIDATE = 8
} STGC;

typedef enum tagSTATFLAG { STATFLAG_DEFAULT = 0, STATFLAG_NONAME = 1, STATFLAG_NOOPEN = 2 } STATFLAG;

typedef enum tagSTGTY {
  STGTY_STORAGE = 1,
  STGTY_STREAM = 2,
  STGTY_LOCKBYTES = 3,
  STGTY_PROPERTY = 4
} STGTY;

// glibc's <fcntl.h> defines LOCK_WRITE (128, for the obsolete LOCK_MAND
// flock flags, gone from Linux since 5.15) when _GNU_SOURCE is on, as it is by
// default in g++. Windows code means IStream's LOCKTYPE, so this header takes
// the name back; flock users should use LOCK_SH/LOCK_EX, which are untouched.
#ifdef LOCK_WRITE
#undef LOCK_WRITE
#endif
typedef enum tagLOCKTYPE { LOCK_WRITE = 1, LOCK_EXCLUSIVE = 2, LOCK_ONLYONCE = 4 } LOCKTYPE;

#define STGM_READ 0x00000000L
#define STGM_WRITE 0x00000001L
#define STGM_READWRITE 0x00000002L
#define STGM_SHARE_EXCLUSIVE 0x00000010L
#define STGM_CREATE 0x00001000L

typedef struct tagSTATSTG {
  LPOLESTR pwcsName;
  DWORD type;
  ULARGE_INTEGER cbSize;
  FILETIME mtime;
  FILETIME ctime;
  FILETIME atime;
  DWORD grfMode;
  DWORD grfLocksSupported;
  CLSID clsid;
  DWORD grfStateBits;
  DWORD reserved;
} STATSTG;

struct ISequentialStream : public IUnknown {
  STDMETHOD(Read)(void* pv, ULONG cb, ULONG* pcbRead) PURE;
  STDMETHOD(Write)(const void* pv, ULONG cb, ULONG* pcbWritten) PURE;
};
APARTMENTS_INTERFACE(ISequentialStream, IUnknown, "0c733a30-2a1c-11ce-ade5-00aa0044773d");

struct IStream : public ISequentialStream {
  STDMETHOD(Seek)(LARGE_INTEGER dlibMove, DWORD dwOrigin, ULARGE_INTEGER* plibNewPosition) PURE;
  STDMETHOD(SetSize)(ULARGE_INTEGER libNewSize) PURE;
  STDMETHOD(CopyTo)(IStream* pstm, ULARGE_INTEGER cb, ULARGE_INTEGER* pcbRead,
                    ULARGE_INTEGER* pcbWritten) PURE;
  STDMETHOD(Commit)(DWORD grfCommitFlags) PURE;
  STDMETHOD(Revert)() PURE;
  STDMETHOD(LockRegion)(ULARGE_INTEGER libOffset, ULARGE_INTEGER cb, DWORD dwLockType) PURE;
  STDMETHOD(UnlockRegion)(ULARGE_INTEGER libOffset, ULARGE_INTEGER cb, DWORD dwLockType) PURE;
  STDMETHOD(Stat)(STATSTG* pstatstg, DWORD grfStatFlag) PURE;
  STDMETHOD(Clone)(IStream** ppstm) PURE;
};
typedef IStream* LPSTREAM;
APARTMENTS_INTERFACE(IStream, ISequentialStream, "0000000c-0000-0000-C000-000000000046");

// --- Marshaling ---------------------------------------------------------------

typedef enum tagMSHLFLAGS {
  MSHLFLAGS_NORMAL = 0,
  MSHLFLAGS_TABLESTRONG = 1,
  MSHLFLAGS_TABLEWEAK = 2,
  MSHLFLAGS_NOPING = 4
} MSHLFLAGS;

typedef enum tagMSHCTX {
  MSHCTX_LOCAL = 0,
  MSHCTX_NOSHAREDMEM = 1,
  MSHCTX_DIFFERENTMACHINE = 2,
  MSHCTX_INPROC = 3,
  MSHCTX_CROSSCTX = 4
} MSHCTX;

struct IMarshal : public IUnknown {
  STDMETHOD(GetUnmarshalClass)(REFIID riid, void* pv, DWORD dwDestContext, void* pvDestContext,
                               DWORD mshlflags, CLSID* pCid) PURE;
  STDMETHOD(GetMarshalSizeMax)(REFIID riid, void* pv, DWORD dwDestContext, void* pvDestContext,
                               DWORD mshlflags, DWORD* pSize) PURE;
  STDMETHOD(MarshalInterface)(IStream* pStm, REFIID riid, void* pv, DWORD dwDestContext,
                              void* pvDestContext, DWORD mshlflags) PURE;
  STDMETHOD(UnmarshalInterface)(IStream* pStm, REFIID riid, void** ppv) PURE;
  STDMETHOD(ReleaseMarshalData)(IStream* pStm) PURE;
  STDMETHOD(DisconnectObject)(DWORD dwReserved) PURE;
};
typedef IMarshal* LPMARSHAL;
APARTMENTS_INTERFACE(IMarshal, IUnknown, "00000003-0000-0000-C000-000000000046");

// A marker: an object implementing it may be called from any apartment.
struct IAgileObject : public IUnknown {};
APARTMENTS_INTERFACE(IAgileObject, IUnknown, "94ea2b94-e9cc-49e0-c0ff-ee64ca8f5b90");

struct IGlobalInterfaceTable : public IUnknown {
  STDMETHOD(RegisterInterfaceInGlobal)(IUnknown* pUnk, REFIID riid, DWORD* pdwCookie) PURE;
  STDMETHOD(RevokeInterfaceFromGlobal)(DWORD dwCookie) PURE;
  STDMETHOD(GetInterfaceFromGlobal)(DWORD dwCookie, REFIID riid, void** ppv) PURE;
};
APARTMENTS_INTERFACE(IGlobalInterfaceTable, IUnknown, "00000146-0000-0000-C000-000000000046");

// Asks a proxy for several interfaces in one go (every standard proxy answers
// it): each entry's pItf/hr is filled in; the call returns S_OK when every
// interface was found, S_FALSE when some were, E_NOINTERFACE when none was.
typedef struct tagMULTI_QI {
  const IID* pIID;
  IUnknown* pItf;
  HRESULT hr;
} MULTI_QI;

struct IMultiQI : public IUnknown {
  STDMETHOD(QueryMultipleInterfaces)(ULONG cMQIs, MULTI_QI* pMQIs) PURE;
};
APARTMENTS_INTERFACE(IMultiQI, IUnknown, "00000020-0000-0000-C000-000000000046");

// The security blanket of a proxy's calls (every standard proxy answers it).
#define RPC_C_AUTHN_NONE 0
#define RPC_C_AUTHN_DCE_PRIVATE 1
#define RPC_C_AUTHN_DCE_PUBLIC 2
#define RPC_C_AUTHN_DEC_PUBLIC 4
#define RPC_C_AUTHN_GSS_NEGOTIATE 9
#define RPC_C_AUTHN_WINNT 10
#define RPC_C_AUTHN_GSS_SCHANNEL 14
#define RPC_C_AUTHN_GSS_KERBEROS 16
#define RPC_C_AUTHN_DPA 17
#define RPC_C_AUTHN_MSN 18
#define RPC_C_AUTHN_DIGEST 21
#define RPC_C_AUTHN_KERNEL 20
#define RPC_C_AUTHN_NEGO_EXTENDER 30
#define RPC_C_AUTHN_PKU2U 31
#define RPC_C_AUTHN_MQ 100
#define RPC_C_AUTHN_DEFAULT 0xFFFFFFFFL
#define RPC_C_AUTHZ_NONE 0
#define RPC_C_AUTHZ_NAME 1
#define RPC_C_AUTHZ_DCE 2
#define RPC_C_AUTHZ_DEFAULT 0xFFFFFFFF
#define RPC_C_AUTHN_LEVEL_DEFAULT 0
#define RPC_C_AUTHN_LEVEL_NONE 1
#define RPC_C_AUTHN_LEVEL_CONNECT 2
#define RPC_C_AUTHN_LEVEL_CALL 3
#define RPC_C_AUTHN_LEVEL_PKT 4
#define RPC_C_AUTHN_LEVEL_PKT_INTEGRITY 5
#define RPC_C_AUTHN_LEVEL_PKT_PRIVACY 6
#define RPC_C_IMP_LEVEL_DEFAULT 0
#define RPC_C_IMP_LEVEL_ANONYMOUS 1
#define RPC_C_IMP_LEVEL_IDENTIFY 2
#define RPC_C_IMP_LEVEL_IMPERSONATE 3
#define RPC_C_IMP_LEVEL_DELEGATE 4
#define EOAC_NONE 0
#define COLE_DEFAULT_PRINCIPAL ((OLECHAR*)(INT_PTR)-1)
#define COLE_DEFAULT_AUTHINFO ((void*)(INT_PTR)-1)

struct IClientSecurity : public IUnknown {
  STDMETHOD(QueryBlanket)(IUnknown* pProxy, DWORD* pAuthnSvc, DWORD* pAuthzSvc,
                          OLECHAR** pServerPrincName, DWORD* pAuthnLevel, DWORD* pImpLevel,
                          void** pAuthInfo, DWORD* pCapabilites) PURE;
  STDMETHOD(SetBlanket)(IUnknown* pProxy, DWORD dwAuthnSvc, DWORD dwAuthzSvc,
                        OLECHAR* pServerPrincName, DWORD dwAuthnLevel, DWORD dwImpLevel,
                        void* pAuthInfo, DWORD dwCapabilities) PURE;
  STDMETHOD(CopyProxy)(IUnknown* pProxy, IUnknown** ppCopy) PURE;
};
APARTMENTS_INTERFACE(IClientSecurity, IUnknown, "0000013D-0000-0000-C000-000000000046");

// --- Message filter -----------------------------------------------------------

typedef enum tagCALLTYPE {
  CALLTYPE_TOPLEVEL = 1,
  CALLTYPE_NESTED = 2,
  CALLTYPE_ASYNC = 3,
  CALLTYPE_TOPLEVEL_CALLPENDING = 4,
  CALLTYPE_ASYNC_CALLPENDING = 5
} CALLTYPE;

typedef enum tagSERVERCALL {
  SERVERCALL_ISHANDLED = 0,
  SERVERCALL_REJECTED = 1,
  SERVERCALL_RETRYLATER = 2
} SERVERCALL;

typedef enum tagPENDINGTYPE { PENDINGTYPE_TOPLEVEL = 1, PENDINGTYPE_NESTED = 2 } PENDINGTYPE;

typedef enum tagPENDINGMSG {
  PENDINGMSG_CANCELCALL = 0,
  PENDINGMSG_WAITNOPROCESS = 1,
  PENDINGMSG_WAITDEFPROCESS = 2
} PENDINGMSG;

// What IMessageFilter::HandleInComingCall is told about an incoming call, as
// Windows fills it: `pUnk` the object's interface pointer the call is made on
// (valid during HandleInComingCall only), `iid` that interface, `wMethod` the
// method's number in its vtable (QueryInterface 0, AddRef 1, Release 2, then
// the interface's own methods in declaration order: IClassFactory's
// CreateInstance is 3). COM's own calls between apartments (a proxy's remote
// QueryInterface, and the release of the references an apartment held) are
// IRemUnknown calls: `iid` IID_IRemUnknown, `wMethod` 3 (RemQueryInterface)
// or 5 (RemRelease), `pUnk` the runtime's IRemUnknown object.
typedef struct tagINTERFACEINFO {
  IUnknown* pUnk;
  IID iid;
  WORD wMethod;
} INTERFACEINFO, *LPINTERFACEINFO;

// The interface of COM's own reference-counting calls between apartments, as
// message filters see them (its methods are not callable here).
struct IRemUnknown : public IUnknown {};
APARTMENTS_INTERFACE(IRemUnknown, IUnknown, "00000131-0000-0000-C000-000000000046");

struct IMessageFilter : public IUnknown {
  STDMETHOD_(DWORD, HandleInComingCall)(DWORD dwCallType, HTASK htaskCaller, DWORD dwTickCount,
                                        LPINTERFACEINFO lpInterfaceInfo) PURE;
  STDMETHOD_(DWORD, RetryRejectedCall)(HTASK htaskCallee, DWORD dwTickCount,
                                       DWORD dwRejectType) PURE;
  STDMETHOD_(DWORD, MessagePending)(HTASK htaskCallee, DWORD dwTickCount,
                                    DWORD dwPendingType) PURE;
};
typedef IMessageFilter* LPMESSAGEFILTER;
APARTMENTS_INTERFACE(IMessageFilter, IUnknown, "00000016-0000-0000-C000-000000000046");

// --- Error info -----------------------------------------------------------------

struct IErrorInfo : public IUnknown {
  STDMETHOD(GetGUID)(GUID* pGUID) PURE;
  STDMETHOD(GetSource)(BSTR* pBstrSource) PURE;
  STDMETHOD(GetDescription)(BSTR* pBstrDescription) PURE;
  STDMETHOD(GetHelpFile)(BSTR* pBstrHelpFile) PURE;
  STDMETHOD(GetHelpContext)(DWORD* pdwHelpContext) PURE;
};
APARTMENTS_INTERFACE(IErrorInfo, IUnknown, "1CF2B120-547D-101B-8E65-08002B2BD119");

struct ICreateErrorInfo : public IUnknown {
  STDMETHOD(SetGUID)(REFGUID rguid) PURE;
  STDMETHOD(SetSource)(LPOLESTR szSource) PURE;
  STDMETHOD(SetDescription)(LPOLESTR szDescription) PURE;
  STDMETHOD(SetHelpFile)(LPOLESTR szHelpFile) PURE;
  STDMETHOD(SetHelpContext)(DWORD dwHelpContext) PURE;
};
APARTMENTS_INTERFACE(ICreateErrorInfo, IUnknown, "22F03340-547D-101B-8E65-08002B2BD119");

struct ISupportErrorInfo : public IUnknown {
  STDMETHOD(InterfaceSupportsErrorInfo)(REFIID riid) PURE;
};
APARTMENTS_INTERFACE(ISupportErrorInfo, IUnknown, "DF0B3D60-548F-101B-8E65-08002B2BD119");

// --- Functions ------------------------------------------------------------------

#define GMEM_FIXED 0x0000u
#define GMEM_MOVEABLE 0x0002u
#define GMEM_ZEROINIT 0x0040u
#define GHND (GMEM_MOVEABLE | GMEM_ZEROINIT)
#define GPTR (GMEM_FIXED | GMEM_ZEROINIT)

extern "C" {

// StringFromGUID2()
//
// Writes "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" (upper-case hex, NUL
// terminated, 39 characters with the NUL) into `lpsz`. Returns 39, or 0 when
// `cchMax` < 39, `lpsz` is null, or the GUID is null (a C caller's NULL
// REFGUID): nothing is written then, and the last error is left alone.
int WINAPI StringFromGUID2(REFGUID rguid, LPOLESTR lpsz, int cchMax);

// StringFromCLSID() / StringFromIID()
//
// Sets *lplpsz to a new CoTaskMemAlloc'ed string in StringFromGUID2's format;
// the caller frees it with CoTaskMemFree. Returns S_OK, E_INVALIDARG when
// `lplpsz` is null, or when the GUID is null (a C caller's NULL REFGUID;
// *lplpsz is set to null then), or E_OUTOFMEMORY.
HRESULT WINAPI StringFromCLSID(REFCLSID rclsid, LPOLESTR* lplpsz);
HRESULT WINAPI StringFromIID(REFIID rclsid, LPOLESTR* lplpsz);

// CLSIDFromString()
//
// Parses "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" (hex digits of either case,
// braces required, nothing after the closing brace). A null `lpsz` yields
// CLSID_NULL and S_OK, as on Windows. Returns NOERROR, or CO_E_CLASSSTRING:
//   - for a string starting with '{' that is malformed, with *pclsid as
//     Windows leaves it: the fields before the bad character parsed, the field
//     holding it with the digits read before it, later fields untouched (so a
//     valid GUID followed by more text leaves that GUID);
//   - for any other string, which Windows looks up as a ProgID; there is no
//     registry here, so no ProgID is known, and *pclsid is set to CLSID_NULL
//     (as Windows does for a ProgID it does not know).
// E_INVALIDARG when `pclsid` is null.
HRESULT WINAPI CLSIDFromString(LPCOLESTR lpsz, LPCLSID pclsid);

// IIDFromString()
//
// Parses the same format; a null `lpsz` yields IID_NULL and S_OK. As Windows:
// a string that is not 38 characters long gives E_INVALIDARG and leaves
// *lpiid untouched (ProgIDs are not looked up); one of the right length that
// does not start with '{' gives CO_E_IIDSTRING, untouched; a malformed one
// starting with '{' gives CO_E_IIDSTRING with *lpiid partly parsed, as
// CLSIDFromString leaves it. A null `lpiid` gives E_INVALIDARG.
HRESULT WINAPI IIDFromString(LPCOLESTR lpsz, LPIID lpiid);

// CoCreateGuid()
//
// A new random (version 4, RFC 4122 variant) GUID from the kernel's random
// source. Returns S_OK, E_INVALIDARG when `pguid` is null, or
// E_FAIL if the kernel's random source fails.
HRESULT WINAPI CoCreateGuid(GUID* pguid);

// CoTaskMemAlloc() / CoTaskMemRealloc() / CoTaskMemFree()
//
// The COM task allocator, over malloc. CoTaskMemAlloc(0) returns a unique
// non-null block; it returns null when out of memory. CoTaskMemRealloc(nullptr,
// cb) allocates; CoTaskMemRealloc(pv, 0) frees pv and returns null; on failure
// it returns null and pv is untouched. CoTaskMemFree(nullptr) does nothing.
LPVOID WINAPI CoTaskMemAlloc(SIZE_T cb);
LPVOID WINAPI CoTaskMemRealloc(LPVOID pv, SIZE_T cb);
void WINAPI CoTaskMemFree(LPVOID pv);

// BSTRs. A BSTR points at the first character of a NUL-terminated WCHAR
// string; the DWORD just before it holds the string's length in bytes
// (excluding the terminator), as on Windows, so a BSTR may contain embedded
// NULs. A null BSTR is a valid, empty string everywhere: SysStringLen(nullptr)
// == 0. Every BSTR returned here is freed with SysFreeString.
//
// SysAllocString(): a copy of the NUL-terminated `psz`; null for a null `psz`
// or when out of memory.
BSTR WINAPI SysAllocString(const OLECHAR* psz);
// SysAllocStringLen(): `ui` characters copied from `strIn` (which may contain
// NULs), plus a terminator; with a null `strIn` the characters are zeroed.
// Null when out of memory or `ui` is too large to express in bytes.
BSTR WINAPI SysAllocStringLen(const OLECHAR* strIn, UINT ui);
// SysAllocStringByteLen(): `len` bytes copied from `psz` (zeroed when null),
// plus a terminator; SysStringLen() of the result is len / sizeof(OLECHAR).
BSTR WINAPI SysAllocStringByteLen(LPCSTR psz, UINT len);
// SysReAllocString() / SysReAllocStringLen(): replace *pbstr with a new BSTR
// from `psz` (which may point into *pbstr) and free the old one. Return TRUE;
// FALSE when `pbstr` is null or out of memory (then *pbstr is unchanged).
// SysReAllocString with a null `psz` leaves *pbstr null.
INT WINAPI SysReAllocString(BSTR* pbstr, const OLECHAR* psz);
INT WINAPI SysReAllocStringLen(BSTR* pbstr, const OLECHAR* psz, UINT len);
// SysFreeString(): frees a BSTR from the functions above; null is ignored.
void WINAPI SysFreeString(BSTR bstrString);
// SysStringLen(): the length in characters (embedded NULs counted); 0 for null.
UINT WINAPI SysStringLen(BSTR pbstr);
// SysStringByteLen(): the length in bytes (4 per character here); 0 for null.
UINT WINAPI SysStringByteLen(BSTR bstr);

// SetErrorInfo()
//
// Replaces the calling thread's error info with `perrinfo` (AddRef'ed), or
// clears it when null; the previous object is released. The slot is per
// thread and is released when the thread exits.
// Returns S_OK, or E_INVALIDARG when `dwReserved` is not 0.
HRESULT WINAPI SetErrorInfo(DWORD dwReserved, IErrorInfo* perrinfo);

// GetErrorInfo()
//
// Moves the calling thread's error info to *pperrinfo: the caller owns that
// reference (Release it) and the thread's slot is cleared, so a second call
// returns S_FALSE. Returns S_OK; S_FALSE with *pperrinfo = nullptr when there
// is none; E_INVALIDARG when `dwReserved` is not 0 or `pperrinfo` is null.
// apartments::LastErrorDescription() reads without clearing.
HRESULT WINAPI GetErrorInfo(DWORD dwReserved, IErrorInfo** pperrinfo);

// CreateErrorInfo()
//
// A new, empty error object implementing ICreateErrorInfo and IErrorInfo
// (QueryInterface between them); its methods are thread-safe. Returns S_OK,
// E_INVALIDARG when `pperrinfo` is null, or E_OUTOFMEMORY.
HRESULT WINAPI CreateErrorInfo(ICreateErrorInfo** pperrinfo);

// GlobalAlloc() and friends: just enough of the Win32 global heap to back
// CreateStreamOnHGlobal. The HGLOBAL is an opaque handle (never the address);
// GlobalLock returns the current address of the block's bytes, which moves
// when a stream on the block grows it (as moveable memory does on Windows).
// Lock counts are kept but do not pin the block. GlobalFree returns null on
// success and `hMem` itself for a null handle.
HGLOBAL WINAPI GlobalAlloc(UINT uFlags, SIZE_T dwBytes);
LPVOID WINAPI GlobalLock(HGLOBAL hMem);
BOOL WINAPI GlobalUnlock(HGLOBAL hMem);
SIZE_T WINAPI GlobalSize(HGLOBAL hMem);
HGLOBAL WINAPI GlobalFree(HGLOBAL hMem);

// CreateStreamOnHGlobal()
//
// A stream over a memory block: over `hGlobal` (its size is GlobalSize()) or,
// when `hGlobal` is null, over a new empty block. With fDeleteOnRelease the
// block is freed when the last stream on it (the stream and its clones) is
// released; otherwise the caller keeps ownership (GetHGlobalFromStream).
// The stream grows as it is written. Its methods are thread-safe; clones
// share the bytes and have their own seek pointers.
// Stream semantics, as Windows' HGLOBAL stream:
//   Read/Write: S_OK (a short read is not an error); null `pv` with cb > 0 is
//     STG_E_INVALIDPOINTER; a write that cannot grow the block STG_E_MEDIUMFULL.
//   Seek: STG_E_INVALIDFUNCTION for an unknown origin or a resulting position
//     below 0 or above 0xFFFFFFFF (sizes and positions are 32-bit, as there);
//     seeking past the end is allowed and a later write fills the gap with 0.
//   SetSize: STG_E_INVALIDFUNCTION above 0xFFFFFFFF, STG_E_MEDIUMFULL when out
//     of memory; new bytes are zero; the seek pointer does not move.
//   CopyTo: STG_E_INVALIDPOINTER for a null target.
//   Commit, Revert: S_OK (nothing is transacted).
//   LockRegion, UnlockRegion: STG_E_INVALIDFUNCTION (locking unsupported;
//     Stat reports grfLocksSupported = 0).
//   Stat: STG_E_INVALIDPOINTER for null, STG_E_INVALIDFLAG for an unknown
//     flag; type STGTY_STREAM, cbSize, no name.
//   Clone: STG_E_INVALIDPOINTER for null; the clone starts at the same seek
//     position.
// Returns S_OK, E_INVALIDARG when `ppstm` is null, E_OUTOFMEMORY.
HRESULT WINAPI CreateStreamOnHGlobal(HGLOBAL hGlobal, BOOL fDeleteOnRelease, LPSTREAM* ppstm);

// GetHGlobalFromStream()
//
// The block under a stream made by CreateStreamOnHGlobal. Returns S_OK, or
// E_INVALIDARG for a null argument or a stream of any other kind.
HRESULT WINAPI GetHGlobalFromStream(LPSTREAM pstm, HGLOBAL* phglobal);

// --- Call cancellation ------------------------------------------------------
//
// Synchronous cross-apartment calls made by a thread are cancellable when that
// thread had call cancellation enabled when the call began (enabling or
// disabling later does not affect a call already pending), as on Windows. The
// enable count belongs to the thread, not to its apartment: CoInitializeEx and
// CoUninitialize leave it as it is (what Windows does, as Wine's
// test_call_cancellation records on Windows; the documentation's remark that
// a thread uninitialized and initialized again has cancellation disabled is
// not borne out by the count).
//
// CoEnableCallCancellation(): counted; S_OK. E_INVALIDARG when `pReserved`
// is not null. Calling thread only.
HRESULT WINAPI CoEnableCallCancellation(LPVOID pReserved);
// CoDisableCallCancellation(): undoes one CoEnableCallCancellation and returns
// S_OK, whether that disabled cancellation or more enables remain (it stays
// enabled until every enable is undone); CO_E_CANCEL_DISABLED, changing
// nothing, when nothing was enabled; E_INVALIDARG when `pReserved` is not
// null. These are the codes Windows returns (Wine's test_call_cancellation on
// Windows), not the ones its documentation lists. Calling thread only.
HRESULT WINAPI CoDisableCallCancellation(LPVOID pReserved);
// CoCancelCall()
//
// Requests cancellation of the cancellable cross-apartment call that thread
// `dwThreadId` (0: the calling thread) is waiting for (its innermost one).
// Any thread. Returns:
//   S_OK                  the request was made; when `ulTimeout` > 0, the call
//                         also ended cancelled within ulTimeout seconds, or had
//                         not ended by then
//   RPC_E_CALL_COMPLETE   the call ended with its own result within the
//                         ulTimeout seconds this function waited
//   RPC_E_CALL_CANCELED   the call was already cancelled
//   CO_E_CANCEL_DISABLED  cancellation is not enabled on that thread (or no
//                         such thread)
//   E_NOINTERFACE         that thread is making no cancellable call (no cancel
//                         object, as Windows says)
// Blocks up to `ulTimeout` seconds (0: returns at once), without pumping.
// What the cancelled caller sees: a call still queued in the target is
// withdrawn (it never runs, its quota slot is freed) and the caller returns
// RPC_E_CALL_CANCELED at once; a call already running sees the request
// through CoTestCancel, and the caller returns RPC_E_CALL_CANCELED when it
// returns. Deviation: on Windows the client may give up on a running call
// after ulTimeout; here the caller always waits for a running callee (its
// arguments live in the caller's frame), so ulTimeout bounds only how long
// CoCancelCall itself waits. The caller's error info explains which case.
HRESULT WINAPI CoCancelCall(DWORD dwThreadId, ULONG ulTimeout);
// CoTestCancel(): in a callee, whether its caller cancelled the call:
// RPC_E_CALL_CANCELED, else RPC_S_CALLPENDING (also for calls that are not
// cancellable); RPC_E_CALL_COMPLETE outside any incoming call. Never blocks.
HRESULT WINAPI CoTestCancel(void);

}  // extern "C"

#endif  // APARTMENTS_WIN32_COM_H_
