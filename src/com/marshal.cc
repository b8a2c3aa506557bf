// The Win32 marshaling entry points (CoMarshalInterface and the others, the
// global interface table's accessor, the class registry's and the
// free-threaded marshaler's) and proxy.h's argument marshaling: thin wrappers
// that check their arguments and hand over to the parts of the ComRuntime
// (com_runtime.h), which own the state.
#include "com/marshal.h"

#include <cstdint>
#include <mutex>
#include <string>

#include "apartments/error_info.h"
#include "apartments/errors.h"
#include "apartments/proxy.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_marshal.h"
#include "com/apartment.h"
#include "com/com_runtime.h"
#include "com/local_server_hooks.h"
#include "com/free_threaded_marshaler.h"
#include "com/guid_format.h"
#include "com/inproc_server.h"
#include "com/marshal_text.h"
#include "base/thread_state.h"

namespace apartments::internal {

std::size_t LiveStubManagersForTesting() {
  ComRuntime& runtime = ComRuntime::Get();
  return runtime.stubs().LiveCountLocked(runtime.Lock());
}

std::size_t LiveProxyManagersForTesting() {
  ComRuntime& runtime = ComRuntime::Get();
  return runtime.proxies().LiveCountLocked(runtime.Lock());
}

// --- proxy.h's entry points (RegisterProxyFactory: proxy_manager.cc) ---------------

namespace {

// Runs `step` (marshaling or unmarshaling an interface argument) and, when it
// fails, leaves an explanation on the calling thread that names the
// argument's interface, the apartment and the cause (the step's own
// explanation when it set one, never one left by earlier work); on success
// the thread's error info is as before. On the callee's side the channel
// carries that explanation back to the caller (ServeCall), so a call that
// fails because its [in] interface cannot be unmarshaled, or its [out]
// interface marshaled, is explained to the caller.
template <typename Step>
HRESULT ExplainedArgumentStep(const char* action, REFIID iid, Step step) {
  IErrorInfo* saved = ExchangeThreadErrorInfo(nullptr);
  const HRESULT hr = step();
  if (SUCCEEDED(hr)) {
    if (IErrorInfo* set = ExchangeThreadErrorInfo(saved)) set->Release();
    return hr;
  }
  if (saved != nullptr) saved->Release();
  const std::string cause = LastErrorDescription();
  OLECHAR iid_text[kGuidStringChars];
  FormatGuid(iid, iid_text);
  ApartmentRef current = CurrentApartment();
  SetCallErrorInfo(hr,
                   std::string("Could not ") + action + " an interface argument of a proxy call (" +
                       WideToUtf8(iid_text) + ") in " +
                       (current ? current->Describe() : DescribeCurrentThread()) + ": " +
                       (cause.empty() ? FormatHResult(hr) : cause),
                   kSource);
  return hr;
}

}  // namespace

HRESULT MarshalArgument(IUnknown* object, REFIID iid, std::uint64_t* token) {
  *token = 0;
  return ExplainedArgumentStep("marshal", iid, [&]() -> HRESULT {
    ApartmentRef current = CurrentApartment();
    if (!current) return CO_E_NOTINITIALIZED;
    WireRecord record;
    HRESULT hr =
        ComRuntime::Get().packets().Marshal(current, object, iid, MSHLFLAGS_NORMAL, &record);
    if (SUCCEEDED(hr)) *token = record.packet_id;
    return hr;
  });
}

HRESULT UnmarshalArgument(std::uint64_t token, REFIID iid, void** ppv) {
  return ExplainedArgumentStep("unmarshal", iid, [&] {
    return ComRuntime::Get().packets().Unmarshal(token, iid, ppv, nullptr);
  });
}

void ReleaseArgument(std::uint64_t token) {
  PreserveErrorInfo preserve;
  (void)ComRuntime::Get().packets().Release(token, nullptr);
}

}  // namespace apartments::internal

namespace apartments {

IGlobalInterfaceTable* GlobalInterfaceTable() noexcept { return &internal::ComRuntime::Get().git(); }

}  // namespace apartments

using apartments::internal::ApartmentRef;
using apartments::internal::CurrentApartment;
using apartments::internal::WireRecord;

extern "C" {

HRESULT WINAPI CoMarshalInterface(LPSTREAM pStm, REFIID riid, LPUNKNOWN pUnk, DWORD dwDestContext,
                                  LPVOID pvDestContext, DWORD mshlflags) {
  using namespace apartments::internal;
  if (pStm == nullptr || pUnk == nullptr || (mshlflags & ~kKnownFlags) != 0 ||
      ((mshlflags & MSHLFLAGS_TABLESTRONG) && (mshlflags & MSHLFLAGS_TABLEWEAK))) {
    return E_INVALIDARG;
  }
  if (dwDestContext != MSHCTX_INPROC && dwDestContext != MSHCTX_CROSSCTX) {
    SetCallErrorInfo(E_NOTIMPL,
                     "Only in-process marshaling (MSHCTX_INPROC, MSHCTX_CROSSCTX) is supported.",
                     kSource);
    return E_NOTIMPL;
  }
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  WireRecord record;
  MarshalPackets& packets = ComRuntime::Get().packets();
  HRESULT hr = packets.Marshal(current, pUnk, riid, mshlflags, &record);
  if (FAILED(hr)) return hr;
  ULONG written = 0;
  hr = pStm->Write(&record, sizeof record, &written);
  if (SUCCEEDED(hr) && written != sizeof record) hr = STG_E_MEDIUMFULL;
  if (FAILED(hr)) {
    PreserveErrorInfo preserve;
    (void)packets.Release(record.packet_id, nullptr);
  }
  return hr;
}

HRESULT WINAPI CoGetMarshalSizeMax(ULONG* pulSize, REFIID riid, LPUNKNOWN pUnk,
                                   DWORD dwDestContext, LPVOID pvDestContext, DWORD mshlflags) {
  using namespace apartments::internal;
  if (pulSize != nullptr) *pulSize = 0;
  if (pulSize == nullptr || pUnk == nullptr || (mshlflags & ~kKnownFlags) != 0) return E_INVALIDARG;
  if (dwDestContext != MSHCTX_INPROC && dwDestContext != MSHCTX_CROSSCTX) return E_NOTIMPL;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  // CoMarshalInterface writes one WireRecord, whatever the object.
  *pulSize = static_cast<ULONG>(sizeof(WireRecord));
  return S_OK;
}

HRESULT WINAPI CoUnmarshalInterface(LPSTREAM pStm, REFIID riid, LPVOID* ppv) {
  using namespace apartments::internal;
  if (ppv != nullptr) *ppv = nullptr;
  if (pStm == nullptr || ppv == nullptr) return E_INVALIDARG;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  WireRecord record;
  MarshalPackets& packets = ComRuntime::Get().packets();
  HRESULT hr = packets.ReadRecord(pStm, &record);
  if (FAILED(hr)) return hr;
  return packets.Unmarshal(record.packet_id, riid, ppv, &record);
}

HRESULT WINAPI CoReleaseMarshalData(LPSTREAM pStm) {
  using namespace apartments::internal;
  if (pStm == nullptr) return E_INVALIDARG;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  WireRecord record;
  MarshalPackets& packets = ComRuntime::Get().packets();
  HRESULT hr = packets.ReadRecord(pStm, &record);
  if (FAILED(hr)) return hr;
  return packets.Release(record.packet_id, &record);
}

HRESULT WINAPI CoMarshalHresult(LPSTREAM pStm, HRESULT hresult) {
  if (pStm == nullptr) return E_INVALIDARG;
  return pStm->Write(&hresult, sizeof hresult, nullptr);
}

HRESULT WINAPI CoUnmarshalHresult(LPSTREAM pStm, HRESULT* phresult) {
  if (pStm == nullptr || phresult == nullptr) return E_INVALIDARG;
  HRESULT value = 0;
  ULONG read = 0;
  HRESULT hr = pStm->Read(&value, sizeof value, &read);
  if (FAILED(hr)) return hr;
  if (read != sizeof value) return STG_E_READFAULT;
  *phresult = value;
  return S_OK;
}

HRESULT WINAPI CoMarshalInterThreadInterfaceInStream(REFIID riid, LPUNKNOWN pUnk, LPSTREAM* ppStm) {
  if (ppStm == nullptr) return E_INVALIDARG;
  *ppStm = nullptr;
  if (pUnk == nullptr) return E_INVALIDARG;
  IStream* stream = nullptr;
  HRESULT hr = CreateStreamOnHGlobal(nullptr, TRUE, &stream);
  if (FAILED(hr)) return hr;
  hr = CoMarshalInterface(stream, riid, pUnk, MSHCTX_INPROC, nullptr, MSHLFLAGS_NORMAL);
  if (FAILED(hr)) {
    stream->Release();
    return hr;
  }
  LARGE_INTEGER zero{};
  (void)stream->Seek(zero, STREAM_SEEK_SET, nullptr);
  *ppStm = stream;
  return S_OK;
}

HRESULT WINAPI CoGetInterfaceAndReleaseStream(LPSTREAM pStm, REFIID iid, LPVOID* ppv) {
  if (ppv != nullptr) *ppv = nullptr;
  if (pStm == nullptr) return E_INVALIDARG;
  if (ppv == nullptr) {
    pStm->Release();
    return E_INVALIDARG;
  }
  HRESULT hr = CoUnmarshalInterface(pStm, iid, ppv);
  pStm->Release();
  return hr;
}

HRESULT WINAPI CoDisconnectObject(LPUNKNOWN pUnk, DWORD dwReserved) {
  using namespace apartments::internal;
  if (pUnk == nullptr || dwReserved != 0) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  if (ProxyManager* pm = AsProxyManager(pUnk)) {
    pm->Release();
    return S_OK;
  }
  IUnknown* identity = nullptr;
  if (FAILED(pUnk->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity)))) {
    return S_OK;
  }
  ComRuntime::Get().stubs().Disconnect(current, identity);
  return S_OK;
}

HRESULT WINAPI CoLockObjectExternal(LPUNKNOWN pUnk, BOOL fLock, BOOL fLastUnlockReleases) {
  using namespace apartments::internal;
  if (pUnk == nullptr) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  if (ProxyManager* pm = AsProxyManager(pUnk)) {
    pm->Release();
    return S_OK;
  }
  IUnknown* identity = nullptr;
  HRESULT hr = pUnk->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity));
  if (FAILED(hr)) return hr;
  return ComRuntime::Get().stubs().LockExternal(current, identity, fLock != FALSE,
                                                 fLastUnlockReleases != FALSE);
}

HRESULT WINAPI CoCreateFreeThreadedMarshaler(LPUNKNOWN punkOuter, LPUNKNOWN* ppunkMarshal) {
  if (ppunkMarshal == nullptr) return E_INVALIDARG;
  using namespace apartments::internal;
  return CreateFreeThreadedMarshaler(ComRuntime::Get().secret(), punkOuter, ppunkMarshal);
}

HRESULT WINAPI CoGetClassObject(REFCLSID rclsid, DWORD dwClsContext, LPVOID pvReserved, REFIID riid,
                                LPVOID* ppv) {
  using namespace apartments::internal;
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  if (rclsid == CLSID_StdGlobalInterfaceTable) {
    if ((dwClsContext & (CLSCTX_INPROC_SERVER | CLSCTX_LOCAL_SERVER)) == 0) {
      return REGDB_E_CLASSNOTREG;
    }
    return ComRuntime::Get().git_factory().QueryInterface(riid, ppv);
  }
  HRESULT hr =
      ComRuntime::Get().classes().GetClassObject(current, rclsid, dwClsContext, riid, ppv);
  if (hr == REGDB_E_CLASSNOTREG && (dwClsContext & CLSCTX_INPROC_SERVER) != 0) {
    // No run-time registration: a registered in-process server (inproc_server.cc).
    hr = GetInprocServerClassObject(rclsid, riid, ppv);
  }
  if (hr == REGDB_E_CLASSNOTREG && (dwClsContext & CLSCTX_LOCAL_SERVER) != 0) {
    // Nor in-process: a server process (the remote layer, local_server_hooks.h).
    hr = GetLocalServerClassObject(rclsid, riid, ppv);
  }
  return hr;
}

HRESULT WINAPI CoCreateInstance(REFCLSID rclsid, LPUNKNOWN pUnkOuter, DWORD dwClsContext,
                                REFIID riid, LPVOID* ppv) {
  using namespace apartments::internal;
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  if (!CurrentApartment()) return CO_E_NOTINITIALIZED;
  if ((dwClsContext & (CLSCTX_INPROC_SERVER | CLSCTX_LOCAL_SERVER)) == 0) return REGDB_E_CLASSNOTREG;
  if (rclsid == CLSID_StdGlobalInterfaceTable) {
    if (pUnkOuter != nullptr) return CLASS_E_NOAGGREGATION;
    return ComRuntime::Get().git().QueryInterface(riid, ppv);
  }
  IClassFactory* factory = nullptr;
  HRESULT hr = CoGetClassObject(rclsid, dwClsContext, nullptr, IID_IClassFactory,
                                reinterpret_cast<void**>(&factory));
  if (FAILED(hr)) return hr;
  hr = factory->CreateInstance(pUnkOuter, riid, ppv);
  factory->Release();
  return hr;
}

HRESULT WINAPI CoRegisterClassObject(REFCLSID rclsid, LPUNKNOWN pUnk, DWORD dwClsContext,
                                     DWORD flags, LPDWORD lpdwRegister) {
  using namespace apartments::internal;
  if (lpdwRegister != nullptr) *lpdwRegister = 0;
  if (pUnk == nullptr || lpdwRegister == nullptr) return E_INVALIDARG;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  HRESULT hr =
      ComRuntime::Get().classes().Register(current, rclsid, pUnk, dwClsContext, lpdwRegister);
  if (FAILED(hr) || (dwClsContext & CLSCTX_LOCAL_SERVER) == 0) return hr;
  // Also for other processes (the remote layer, local_server_hooks.h).
  hr = PublishLocalServer(rclsid, pUnk, flags, *lpdwRegister);
  if (FAILED(hr)) {
    (void)ComRuntime::Get().classes().Revoke(current, *lpdwRegister);
    *lpdwRegister = 0;
  }
  return hr;
}

HRESULT WINAPI CoRevokeClassObject(DWORD dwRegister) {
  using namespace apartments::internal;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  HRESULT hr = ComRuntime::Get().classes().Revoke(current, dwRegister);
  if (SUCCEEDED(hr)) WithdrawLocalServer(dwRegister);
  return hr;
}

HRESULT WINAPI CoResumeClassObjects() {
  using namespace apartments::internal;
  return ResumeLocalServers();
}

}  // extern "C"
