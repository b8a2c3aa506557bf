// apartments/win32_marshal.h
//
// Marshaling with Win32 names, signatures and values: passing an interface
// pointer from the apartment that owns the object to another apartment, where
// it arrives as a proxy. Everything here is in-process (MSHCTX_INPROC).
//
// How an object travels:
//   apartment A: CoMarshalInterface(stream, IID_IFoo, obj, MSHCTX_INPROC, ...)
//                writes a small record ("marshal data") into the stream and
//                exports the object from A (a stub manager holds it).
//   apartment B: CoUnmarshalInterface(stream, IID_IFoo, &p) reads it back:
//                - in A itself, p is the object;
//                - for an agile object (IAgileObject, or aggregating the
//                  free-threaded marshaler), p is the object in every
//                  apartment;
//                - otherwise p is a proxy that belongs to B: its calls run in
//                  A (posted to A's thread when A is an STA) while B waits.
//   The global interface table and CoMarshalInterThreadInterfaceInStream are
//   conveniences over the same mechanism.
//
// Marshal data by flag (the whole lifecycle):
//   MSHLFLAGS_NORMAL       unmarshal once: the first CoUnmarshalInterface
//                          consumes it; a second gives CO_E_OBJNOTCONNECTED
//                          while the object is still exported. Until
//                          consumed it keeps the object alive;
//                          CoReleaseMarshalData discards it unconsumed.
//                          Data released that way (or whose object is gone)
//                          still unmarshals in another apartment, as on
//                          Windows, into a proxy whose calls return
//                          RPC_E_DISCONNECTED; in the object's own apartment
//                          it gives CO_E_OBJNOTCONNECTED (so does a second
//                          same-apartment unmarshal, which finds the stub
//                          gone once the first took the only strong
//                          reference).
//   MSHLFLAGS_TABLESTRONG  unmarshal any number of times; keeps the object
//                          alive until CoReleaseMarshalData.
//   MSHLFLAGS_TABLEWEAK    unmarshal any number of times while something
//                          else keeps the object exported (a proxy or a
//                          CoLockObjectExternal lock); once the last of those
//                          goes, the object is released and unmarshaling
//                          gives CO_E_OBJNOTREG. CoReleaseMarshalData
//                          discards it.
//   Table data released with CoReleaseMarshalData still unmarshals (into a
//   working proxy) while something else keeps its object exported, and gives
//   CO_E_OBJNOTREG once nothing does, as on Windows. Marshal data whose
//   object's apartment shut down unmarshals to CO_E_OBJNOTCONNECTED.
//
// Proxies. One proxy manager per (apartment, object): every proxy of one
// object in one apartment answers QueryInterface(IID_IUnknown) with the same
// pointer. QueryInterface for an interface the proxy has not seen yet asks
// the object in its apartment (a cross-apartment call); AddRef and Release
// are local; releasing the last reference releases the object in its own
// apartment, on its own thread. Calls on a proxy return:
//   RPC_E_WRONG_THREAD    used from another apartment than the one that
//                         unmarshaled it (Release still works from anywhere;
//                         QueryInterface, for any IID, returns this too)
//   CO_E_NOTINITIALIZED   called from a thread in no apartment (it never
//                         initialized COM and no MTA exists for it to be in
//                         implicitly; while an MTA exists such a thread is
//                         in it, and gets RPC_E_WRONG_THREAD)
//   CO_E_OBJNOTCONNECTED  the proxy's own apartment was uninitialized
//   RPC_E_DISCONNECTED    the object was disconnected (CoDisconnectObject,
//                         or its apartment shut down)
//   and the channel's errors (RPC_E_SYS_CALL_FAILED, RPC_E_SERVERFAULT, ...).
// Each of these failures sets error info on the calling thread saying which
// object, which apartment, and since when (GetErrorInfo,
// apartments::LastErrorDescription()).
// Proxies exist for IUnknown, IClassFactory, ISequentialStream, IStream and
// every interface declared with apartments/proxy.h; QueryInterface on a proxy
// for any other interface gives E_NOINTERFACE. A call's result is the
// callee's HRESULT unchanged, a success code with a null [out] object
// included. Every proxy also answers, locally, as Windows' proxy manager:
//   IMultiQI         QueryMultipleInterfaces: S_OK (all found), S_FALSE
//                    (some), E_NOINTERFACE (none), with each entry's pItf
//                    and hr filled in (entries whose pItf is not null on
//                    input are ignored, as documented).
//   IMarshal         the standard marshaler (GetUnmarshalClass:
//                    CLSID_StdMarshal); the data it writes names the
//                    original object, as CoMarshalInterface of the proxy.
//   IClientSecurity  the security blanket, per proxy (not per interface):
//                    QueryBlanket reports it (Windows' defaults for a local
//                    call until set: RPC_C_AUTHN_WINNT, RPC_C_AUTHZ_NONE, no
//                    principal, RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
//                    RPC_C_IMP_LEVEL_IDENTIFY, EOAC_NONE; the principal is
//                    CoTaskMemAlloc'ed), SetBlanket records it (E_INVALIDARG
//                    for an unknown authentication service or level), both
//                    E_NOINTERFACE for the proxy's local interfaces.
//                    In-process calls never leave the process, so the
//                    blanket changes nothing about them; CopyProxy returns
//                    the proxy itself (AddRef'ed).
//
// Differences from Windows, all deliberate:
// - Only in-process contexts: MSHCTX_INPROC and MSHCTX_CROSSCTX (treated as
//   INPROC). MSHCTX_LOCAL, MSHCTX_NOSHAREDMEM and MSHCTX_DIFFERENTMACHINE give
//   E_NOTIMPL.
// - A custom IMarshal implemented by the object is not consulted (the
//   free-threaded marshaler is recognised); the object is marshaled with the
//   standard marshaler. TODO(windows-compat): custom marshaling.
// - The marshal data is this library's own record, not a DCOM OBJREF; it is
//   checked on the way in, so forged or corrupted data gives
//   RPC_E_INVALID_OBJREF and never touches memory it does not own (a stream
//   that ends too soon gives STG_E_READFAULT, as on Windows).
//
// Thread safety: every function may be called from any thread in an
// apartment (COM initialized, or in the implicit MTA); otherwise they return
// CO_E_NOTINITIALIZED. Functions that may cross apartments say so; they wait
// as the channel does (an STA caller pumps in the modal loop, serving
// incoming calls; an MTA caller waits without pumping).
#ifndef APARTMENTS_WIN32_MARSHAL_H_
#define APARTMENTS_WIN32_MARSHAL_H_

#include "apartments/win32_com.h"
#include "apartments/win32_types.h"

#ifndef CLSCTX_INPROC_SERVER
typedef enum tagCLSCTX {
  CLSCTX_INPROC_SERVER = 0x1,
  CLSCTX_INPROC_HANDLER = 0x2,
  CLSCTX_LOCAL_SERVER = 0x4,
  CLSCTX_REMOTE_SERVER = 0x10,
  CLSCTX_ALL = 0x17,
  CLSCTX_SERVER = 0x15
} CLSCTX;
#define CLSCTX_INPROC (CLSCTX_INPROC_SERVER | CLSCTX_INPROC_HANDLER)
#endif

extern "C" {

// CoMarshalInterface()
//
// Writes marshal data for interface `riid` of `pUnk` into `pStm` at its
// current position (advancing it), so that another apartment can unmarshal
// it. The object is taken to belong to the calling apartment (where it will
// be called), unless it is agile (passed directly) or a proxy (the data then
// refers to the original object, in its own apartment).
// Blocking: QueryInterface on `pUnk` for `riid`, which for a proxy may be a
// cross-apartment call.
// Returns S_OK; E_INVALIDARG for a null `pStm` or `pUnk` or unknown
// `mshlflags` bits; E_NOTIMPL for a context other than MSHCTX_INPROC and
// MSHCTX_CROSSCTX; E_NOINTERFACE when `pUnk` does not support `riid`;
// CO_E_NOTINITIALIZED when the calling thread is in no apartment;
// RPC_E_WRONG_THREAD / CO_E_OBJNOTCONNECTED / RPC_E_DISCONNECTED when `pUnk`
// is a proxy that cannot be used from here; RPC_E_DISCONNECTED when the
// calling apartment is shutting down; the stream's error when writing fails
// (nothing is exported then); E_OUTOFMEMORY.
// Lifetime: `pUnk` is AddRef'ed as long as the marshal data keeps it alive
// (see the file comment); `pvDestContext` is ignored.
HRESULT WINAPI CoMarshalInterface(LPSTREAM pStm, REFIID riid, LPUNKNOWN pUnk,
                                  DWORD dwDestContext, LPVOID pvDestContext, DWORD mshlflags);

// CoGetMarshalSizeMax()
//
// The most bytes CoMarshalInterface writes for `pUnk` in context
// `dwDestContext`, so that a caller can size its stream first.
// Thread safety: any thread in an apartment. Does not block.
// Returns S_OK with `*pulSize` set; E_INVALIDARG for a null `pulSize` or
// `pUnk`, or unknown `mshlflags` bits; E_NOTIMPL for a context other than
// MSHCTX_INPROC and MSHCTX_CROSSCTX (as CoMarshalInterface);
// CO_E_NOTINITIALIZED when the calling thread is in no apartment.
// Difference from Windows: the size is that of this library's own marshal
// record (every object, the free-threaded marshaler's included, is written
// as one), not of an OBJREF; an object's custom IMarshal is not asked.
HRESULT WINAPI CoGetMarshalSizeMax(ULONG* pulSize, REFIID riid, LPUNKNOWN pUnk,
                                   DWORD dwDestContext, LPVOID pvDestContext, DWORD mshlflags);

// CoUnmarshalInterface()
//
// Reads marshal data from `pStm` at its current position (advancing it past
// the record) and returns interface `riid` (IID_NULL: the interface that was
// marshaled) in *ppv: the object itself in its own apartment or when agile,
// otherwise a proxy belonging to the calling apartment.
// Blocking: may call the object's apartment (QueryInterface for an
// interface its proxy has not seen yet).
// Returns S_OK (also for released or stale data, see the file comment);
// E_INVALIDARG for a null `pStm` or `ppv`; STG_E_READFAULT when fewer bytes
// than a marshal record are left in the stream; RPC_E_INVALID_OBJREF when the
// stream does not hold a marshal record (wrong signature, corrupted);
// CO_E_OBJNOTCONNECTED when NORMAL data was already consumed, or the
// object's apartment shut down; CO_E_OBJNOTREG for TABLESTRONG/TABLEWEAK
// data whose object is no longer exported;
// E_NOINTERFACE when the object does not support `riid`;
// CO_E_NOTINITIALIZED; channel errors from the QueryInterface. On failure
// *ppv is null. Consuming NORMAL data happens even when the final
// QueryInterface fails, as on Windows.
HRESULT WINAPI CoUnmarshalInterface(LPSTREAM pStm, REFIID riid, LPVOID* ppv);

// CoReleaseMarshalData()
//
// Discards marshal data without unmarshaling it: NORMAL data not yet
// consumed, or TABLESTRONG/TABLEWEAK data. The object is released (in its
// own apartment, on its own thread) when nothing else keeps it. Advances the
// stream past the record.
// Blocking: may call the object's apartment to release it there.
// Returns S_OK; E_INVALIDARG for a null `pStm`; STG_E_READFAULT when fewer
// bytes than a marshal record are left; RPC_E_INVALID_OBJREF for a stream
// without a marshal record; CO_E_OBJNOTCONNECTED when the data was already
// consumed or released; CO_E_NOTINITIALIZED.
HRESULT WINAPI CoReleaseMarshalData(LPSTREAM pStm);

// CoMarshalHresult() / CoUnmarshalHresult()
//
// Write `hresult` to, or read *phresult from, `pStm` at its position as its 4
// bytes (little-endian, as Windows writes them), advancing the stream.
// Thread safety: any thread; no apartment needed. Blocking: only in the
// stream's own Write/Read.
// Return S_OK; E_INVALIDARG for a null `pStm` or `phresult`; the stream's
// Write/Read failure; CoUnmarshalHresult gives STG_E_READFAULT when fewer
// than 4 bytes are left (*phresult is untouched then).
HRESULT WINAPI CoMarshalHresult(LPSTREAM pStm, HRESULT hresult);
HRESULT WINAPI CoUnmarshalHresult(LPSTREAM pStm, HRESULT* phresult);

// CoMarshalInterThreadInterfaceInStream()
//
// CoMarshalInterface(MSHCTX_INPROC, MSHLFLAGS_NORMAL) into a new memory
// stream, rewound to its start; *ppStm owns one reference. Returns
// CoMarshalInterface's results, or E_INVALIDARG for a null `ppStm` (*ppStm
// is null on failure).
HRESULT WINAPI CoMarshalInterThreadInterfaceInStream(REFIID riid, LPUNKNOWN pUnk,
                                                     LPSTREAM* ppStm);

// CoGetInterfaceAndReleaseStream()
//
// CoUnmarshalInterface(pStm, iid, ppv), then releases `pStm` whether or not
// unmarshaling succeeded (as Windows does). Returns its results;
// E_INVALIDARG for a null `pStm` or `ppv`.
HRESULT WINAPI CoGetInterfaceAndReleaseStream(LPSTREAM pStm, REFIID iid, LPVOID* ppv);

// CoDisconnectObject()
//
// Disconnects every proxy of `pUnk` (an object exported from the calling
// apartment): the marshal data and proxies referring to it stop working
// (calls give RPC_E_DISCONNECTED, unmarshaling CO_E_OBJNOTCONNECTED), and the
// references the runtime held on the object are released now, on this
// thread. A call running on the object at that moment finishes normally.
// Marshaling the object again later exports it afresh.
// Returns S_OK (also when the object was never exported, or is a proxy, or
// was exported from another apartment: there is nothing to disconnect here);
// E_INVALIDARG for a null `pUnk` or a nonzero `dwReserved`;
// CO_E_NOTINITIALIZED.
HRESULT WINAPI CoDisconnectObject(LPUNKNOWN pUnk, DWORD dwReserved);

// CoLockObjectExternal()
//
// fLock = TRUE: exports `pUnk` from the calling apartment (if not yet) and
// holds one strong external lock on it, so it stays connected while
// table-weak marshal data or proxies come and go. fLock = FALSE: drops one
// such lock; when it was the last strong reference of any kind the object is
// released (disconnected), except, with `fLastUnlockReleases` FALSE, while
// TABLEWEAK marshal data still names it (as on Windows, such an unlock
// counts table-weak data as references; releasing the last of that data
// then releases the object).
// Returns S_OK (also for a proxy, where it does nothing, and for an unlock
// of an object holding no lock); E_INVALIDARG for null; CO_E_NOTINITIALIZED.
HRESULT WINAPI CoLockObjectExternal(LPUNKNOWN pUnk, BOOL fLock, BOOL fLastUnlockReleases);

// CoCreateFreeThreadedMarshaler()
//
// The free-threaded marshaler, to be aggregated by `punkOuter`: *ppunkMarshal
// is its inner (non-delegating) IUnknown, which the outer object's
// QueryInterface asks for IID_IMarshal. An object doing so is agile: every
// apartment that unmarshals it gets the object itself. Its IMarshal's
// IUnknown methods delegate to `punkOuter`. Called directly, that IMarshal
// writes Windows' in-process data: GetMarshalSizeMax and MarshalInterface
// give 28 bytes (the MSHLFLAGS, the interface pointer, 16 bytes that are a
// keyed check here, so data this process's marshaler did not write is
// refused with RPC_E_INVALID_OBJREF before its pointer is used; a short
// stream is STG_E_READFAULT). As on Windows the data is not tracked:
// NORMAL and TABLESTRONG data hold one reference on the object, TABLEWEAK
// data none; unmarshaling NORMAL data hands its reference over, releasing
// NORMAL or TABLESTRONG data drops it, and any of them may be unmarshaled
// again afterwards (keeping the object alive is then the caller's affair).
// Other contexts fall back to CoMarshalInterface. TABLEWEAK data written by
// CoMarshalInterface for an agile object holds no reference either.
// Thread safety: any thread; needs no apartment.
// Returns S_OK; E_INVALIDARG for a null `ppunkMarshal`; E_OUTOFMEMORY.
// A null `punkOuter` gives a stand-alone marshaler (as Windows).
HRESULT WINAPI CoCreateFreeThreadedMarshaler(LPUNKNOWN punkOuter, LPUNKNOWN* ppunkMarshal);

// CoCreateInstance()
//
// Creates an object of class `rclsid`. Known classes: CLSID_StdGlobalInterfaceTable
// (the process's one global interface table; IGlobalInterfaceTable), and
// classes registered with CoRegisterClassObject or as in-process servers,
// found as CoGetClassObject finds them. Blocking: a registered class object living in another apartment
// (CLSCTX_LOCAL_SERVER) is called through its proxy.
// Returns S_OK; E_INVALIDARG for a null `ppv`; CLASS_E_NOAGGREGATION for a
// non-null `pUnkOuter` with the table; REGDB_E_CLASSNOTREG for any other
// class or a `dwClsContext` without CLSCTX_INPROC_SERVER;
// E_NOINTERFACE; CO_E_NOTINITIALIZED.
HRESULT WINAPI CoCreateInstance(REFCLSID rclsid, LPUNKNOWN pUnkOuter, DWORD dwClsContext,
                                REFIID riid, LPVOID* ppv);

// CoRegisterClassObject()
//
// Registers `pUnk` (an IClassFactory, living in the calling apartment) as the
// class object of `rclsid` in the calling apartment; *lpdwRegister receives a
// cookie for CoRevokeClassObject. As on Windows, the registration belongs to
// that apartment: it is revoked (the object released on its thread) when the
// apartment ends (its last CoUninitialize), an in-process activation
// (CLSCTX_INPROC_*) finds it only from that apartment (elsewhere:
// REGDB_E_CLASSNOTREG), and a registration for CLSCTX_LOCAL_SERVER is also
// found from other apartments asking for CLSCTX_LOCAL_SERVER, which get a
// proxy of the factory: their calls go through the registering apartment
// (waiting while it does not pump, failing as calls into it do). Another
// apartment may register the same class. Within the process, `flags`
// (REGCLS_*) is accepted and ignored: every registration may be used many
// times.
// With CLSCTX_LOCAL_SERVER the class object is also published to other
// processes of the same user (docs/out_of_process.md): on an owner-only Unix
// socket named by the CLSID in the per-user runtime directory, where
// CoGetClassObject(CLSCTX_LOCAL_SERVER) in another process finds it; calls
// from there run in this apartment. REGCLS_SUSPENDED publishes it only at
// CoResumeClassObjects; REGCLS_SINGLEUSE serves one client connection and
// then stops publishing (the registration stays for this process);
// REGCLS_MULTIPLEUSE serves any number.
// Returns S_OK; E_INVALIDARG for null arguments; CO_E_OBJISREG when this
// apartment already registered the class for an overlapping context;
// CO_E_NOTINITIALIZED; marshaling errors; for CLSCTX_LOCAL_SERVER also
// E_ACCESSDENIED or CO_E_SERVER_EXEC_FAILURE when the socket cannot be made
// (explained in the error info; nothing stays registered).
HRESULT WINAPI CoRegisterClassObject(REFCLSID rclsid, LPUNKNOWN pUnk, DWORD dwClsContext,
                                     DWORD flags, LPDWORD lpdwRegister);

// CoResumeClassObjects()
//
// Publishes to other processes every class object registered with
// CLSCTX_LOCAL_SERVER | REGCLS_SUSPENDED that is not yet published (a server
// registers all its classes, then lets clients in at once). Any thread in an
// apartment or not. Returns S_OK, or the first failure to make a socket.
HRESULT WINAPI CoResumeClassObjects();

// CoRevokeClassObject()
//
// Removes a registration. Returns S_OK; CO_E_OBJNOTREG for an unknown cookie
// (or one already revoked, also by the end of its apartment);
// RPC_E_WRONG_THREAD from an apartment other than the registering one (the
// registration stays); CO_E_NOTINITIALIZED.
HRESULT WINAPI CoRevokeClassObject(DWORD dwRegister);

// CoGetClassObject()
//
// The class object of `rclsid` registered with CoRegisterClassObject: the
// calling apartment's own registration for a context in `dwClsContext` (the
// object itself), else, when `dwClsContext` has CLSCTX_LOCAL_SERVER, another
// apartment's CLSCTX_LOCAL_SERVER registration (a proxy). For
// CLSID_StdGlobalInterfaceTable, a class factory (a process singleton)
// whose CreateInstance gives the global interface table (it answers
// IClassFactory, not IGlobalInterfaceTable, as on Windows). Otherwise, when
// `dwClsContext` has CLSCTX_INPROC_SERVER, the class's registered in-process
// server (apartments/win32_inproc.h, docs/inproc_servers.md): its library is
// loaded and its DllGetClassObject asked, in the apartment its ThreadingModel
// requires (a proxy when that is not the caller's).
// Otherwise, when `dwClsContext` has CLSCTX_LOCAL_SERVER, a server process
// (docs/out_of_process.md): the one that published the class (see
// CoRegisterClassObject), or the one the class's registration entry names
// (LocalServer32), launched with -Embedding and waited for (bounded, default
// 30 s, APARTMENTS_SERVER_START_TIMEOUT_MS); the caller gets a proxy whose
// calls run in the server's apartment (an STA caller waits pumping, so the
// server may call back). Then also CO_E_SERVER_EXEC_FAILURE (the server did
// not start, exited, or did not register in time) and E_ACCESSDENIED (the
// socket belongs to another user), explained in the error info.
// Returns S_OK; E_INVALIDARG for a null `ppv`; REGDB_E_CLASSNOTREG;
// E_NOINTERFACE; CO_E_NOTINITIALIZED; for in-process servers also
// REGDB_E_BADTHREADINGMODEL, CO_E_DLLNOTFOUND, CO_E_ERRORINDLL and the
// server's own failures, each explained in the error info.
HRESULT WINAPI CoGetClassObject(REFCLSID rclsid, DWORD dwClsContext, LPVOID pvReserved,
                                REFIID riid, LPVOID* ppv);

}  // extern "C"

#define REGCLS_SINGLEUSE 0
#define REGCLS_MULTIPLEUSE 1
#define REGCLS_MULTI_SEPARATE 2
#define REGCLS_SUSPENDED 4
#define REGCLS_SURROGATE 8

namespace apartments {

// GlobalInterfaceTable()
//
// The process's global interface table (the object CoCreateInstance returns
// for CLSID_StdGlobalInterfaceTable), without a reference to release (AddRef
// and Release on it are no-ops that both return 1, as on Windows, where it
// is a singleton).
// RegisterInterfaceInGlobal marshals TABLESTRONG (the object stays alive
// until RevokeInterfaceFromGlobal, from any apartment);
// GetInterfaceFromGlobal unmarshals in the calling apartment (the object
// itself in its own apartment, a proxy elsewhere). Errors: E_INVALIDARG for
// null arguments and for a cookie that is not registered (never registered,
// or revoked); CO_E_NOTINITIALIZED; the marshaling errors above.
// Thread safety: any thread in an apartment.
IGlobalInterfaceTable* GlobalInterfaceTable() noexcept;

}  // namespace apartments

#endif  // APARTMENTS_WIN32_MARSHAL_H_
