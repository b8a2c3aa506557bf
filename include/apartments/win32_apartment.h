// apartments/win32_apartment.h
//
// Apartments and the COM modal wait with Win32 names, signatures and values:
// CoInitialize(Ex), CoUninitialize, CoGetApartmentType, CoIncrementMTAUsage,
// CoDecrementMTAUsage, CoGetCurrentProcess, CoGetCurrentLogicalThreadId,
// CoWaitForMultipleHandles and CoRegisterMessageFilter.
//
// The model, as on Windows:
// - A thread joins a single-threaded apartment (STA) with
//   CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) and owns it alone; the
//   first STA alive in the process is the main STA (APTTYPE_MAINSTA). Each STA
//   owns a hidden message-only window ("OleMainThreadWndClass"); a call from
//   another apartment is a message POSTED to that window, so it counts against
//   the STA thread's posted-message quota (apartments/message_queue.h) and runs
//   only when the STA thread pumps messages (GetMessageW + DispatchMessageW, or
//   a COM modal wait).
// - There is at most one multithreaded apartment (MTA) per process. It exists
//   from the first CoInitializeEx(COINIT_MULTITHREADED) or CoIncrementMTAUsage
//   until the last of them is undone. Calls into it from another apartment run
//   on MTA worker threads owned by the runtime (a pool grown on demand). While
//   it exists, a thread that never initialized COM is in the implicit MTA.
// - Teardown: the last CoUninitialize of an STA, or its thread exiting, shuts
//   the STA down: calls queued to it and not yet run fail with
//   RPC_E_DISCONNECTED (their callers wake up), later calls into it fail the
//   same way, and its window is destroyed.
//
// Differences from Windows: COINIT_DISABLE_OLE1DDE and COINIT_SPEED_OVER_MEMORY
// are accepted and ignored; there is no neutral or application STA; async
// calls (CALLTYPE_ASYNC) are never made by this runtime, so a message filter
// never sees that call type; IMessageFilter::MessagePending's
// PENDINGMSG_CANCELCALL cancels the pending call as CoCancelCall does (still
// queued: withdrawn, never runs, RPC_E_CALL_CANCELED at once; running: the
// callee sees CoTestCancel and the caller gets its result when it returns,
// see win32_com.h); the main STA is the first
// STA created while no main STA is alive (so after the main STA ends, the next
// new STA becomes the main STA).
//
// Errors of the calls themselves (RPC_E_DISCONNECTED, RPC_E_SYS_CALL_FAILED,
// ...) come with an explanation in the caller's error info
// (apartments/error_info.h); docs/design.md follows one call through the channel.
//
// Thread safety: every function acts on the calling thread's COM state and may
// be called from any thread.
#ifndef APARTMENTS_WIN32_APARTMENT_H_
#define APARTMENTS_WIN32_APARTMENT_H_

#include "apartments/win32_com.h"
#include "apartments/win32_types.h"

typedef enum tagCOINIT {
  COINIT_MULTITHREADED = 0x0,
  COINIT_APARTMENTTHREADED = 0x2,
  COINIT_DISABLE_OLE1DDE = 0x4,
  COINIT_SPEED_OVER_MEMORY = 0x8
} COINIT;

typedef enum _APTTYPE {
  APTTYPE_CURRENT = -1,
  APTTYPE_STA = 0,
  APTTYPE_MTA = 1,
  APTTYPE_NA = 2,
  APTTYPE_MAINSTA = 3
} APTTYPE;

typedef enum _APTTYPEQUALIFIER {
  APTTYPEQUALIFIER_NONE = 0,
  APTTYPEQUALIFIER_IMPLICIT_MTA = 1,
  APTTYPEQUALIFIER_NA_ON_MTA = 2,
  APTTYPEQUALIFIER_NA_ON_STA = 3,
  APTTYPEQUALIFIER_NA_ON_IMPLICIT_MTA = 4,
  APTTYPEQUALIFIER_NA_ON_MAINSTA = 5,
  APTTYPEQUALIFIER_APPLICATION_STA = 6,
  APTTYPEQUALIFIER_RESERVED_1 = 7
} APTTYPEQUALIFIER;

typedef enum tagCOWAIT_FLAGS {
  COWAIT_DEFAULT = 0,
  COWAIT_WAITALL = 1,
  COWAIT_ALERTABLE = 2,
  COWAIT_INPUTAVAILABLE = 4,
  COWAIT_DISPATCH_CALLS = 8,
  COWAIT_DISPATCH_WINDOW_MESSAGES = 0x10
} COWAIT_FLAGS;

// An opaque token for one CoIncrementMTAUsage.
struct CO_MTA_USAGE_COOKIE__ {
  int unused;
};
typedef CO_MTA_USAGE_COOKIE__* CO_MTA_USAGE_COOKIE;

extern "C" {

// CoInitializeEx()
//
// Joins the calling thread to an apartment: an STA of its own when
// `dwCoInit` has COINIT_APARTMENTTHREADED, else the process's MTA (created if
// none exists). Calls are counted per thread; each successful one (S_OK or
// S_FALSE) needs a CoUninitialize.
// Returns S_OK for the first initialization; S_FALSE when already initialized
// in the same model; RPC_E_CHANGED_MODE (not counted) when already
// initialized in the other model; E_INVALIDARG for a non-null `pvReserved` or
// unknown flag bits. Creating an STA makes the thread's message queue and its
// hidden window; E_OUTOFMEMORY if that fails.
// Blocks: no.
HRESULT WINAPI CoInitializeEx(LPVOID pvReserved, DWORD dwCoInit);
// CoInitialize(): CoInitializeEx(pvReserved, COINIT_APARTMENTTHREADED).
HRESULT WINAPI CoInitialize(LPVOID pvReserved);

// CoUninitialize()
//
// Undoes one successful CoInitialize(Ex) of the calling thread; does nothing
// when there is none. The last one leaves the apartment: for an STA it shuts
// the apartment down on this thread (shutdown callbacks run, queued calls fail
// with RPC_E_DISCONNECTED, the window is destroyed, the message filter is
// released); for the MTA it gives up this thread's use, and the last user
// shuts the MTA down (queued calls into it fail with RPC_E_DISCONNECTED).
// May run shutdown callbacks, which may pump messages.
void WINAPI CoUninitialize(void);

// CoGetApartmentType()
//
// The calling thread's apartment: APTTYPE_MAINSTA, APTTYPE_STA or
// APTTYPE_MTA, with APTTYPEQUALIFIER_IMPLICIT_MTA for a thread that never
// initialized while the MTA exists (APTTYPEQUALIFIER_NONE otherwise).
// Returns S_OK; E_INVALIDARG for a null argument; CO_E_NOTINITIALIZED (with
// *pAptType = APTTYPE_CURRENT, *pAptQualifier = APTTYPEQUALIFIER_NONE) for a
// thread in no apartment.
HRESULT WINAPI CoGetApartmentType(APTTYPE* pAptType, APTTYPEQUALIFIER* pAptQualifier);

// CoIncrementMTAUsage() / CoDecrementMTAUsage()
//
// Keeps the MTA alive (creating it if needed) without joining it, until the
// matching CoDecrementMTAUsage(cookie). Returns S_OK; E_INVALIDARG for a null
// `pCookie` or a cookie that is not outstanding (already decremented or never
// issued). The last decrement of the last user shuts the MTA down on the
// calling thread.
HRESULT WINAPI CoIncrementMTAUsage(CO_MTA_USAGE_COOKIE* pCookie);
HRESULT WINAPI CoDecrementMTAUsage(CO_MTA_USAGE_COOKIE Cookie);

// CoGetCurrentProcess()
//
// A number unique to the calling thread for the life of the process (never
// reused, unlike thread ids), as Windows documents. Never fails.
DWORD WINAPI CoGetCurrentProcess(void);

// CoGetCurrentLogicalThreadId()
//
// The causality id of the calling thread: while it runs an incoming call, the
// id of the logical thread that made it (so a chain of nested calls shares one
// id); otherwise the thread's own id, made on first use. Returns S_OK, or
// E_INVALIDARG for a null `pguid`.
HRESULT WINAPI CoGetCurrentLogicalThreadId(GUID* pguid);

// CoWaitForMultipleHandles()
//
// Waits for one (or, with COWAIT_WAITALL, all) of `cHandles` handles, at most
// MAXIMUM_WAIT_OBJECTS - 1, or `dwTimeout` ms. In an STA it pumps as Windows'
// does there (not as the modal loop of an outgoing call): the handles come
// first (a wait already satisfied returns at once and dispatches nothing);
// with COWAIT_ALERTABLE, queued APCs run first, even while messages are
// pending (S_OK, *lpdwindex = WAIT_IO_COMPLETION); while it waits it serves
// incoming COM calls and messages sent to the thread, and dispatches posted
// DDE messages (WM_DDE_FIRST..WM_DDE_LAST, any window of the thread, in
// order); other posted messages stay queued but count as examined (a later
// MsgWaitForMultipleObjects does not wake for them), unless
// COWAIT_DISPATCH_WINDOW_MESSAGES dispatches them too. A quit posted with
// PostQuitMessage is consumed and not posted again, as on Windows (a WM_QUIT
// posted to a window as a message stays queued). The message filter's
// MessagePending is not consulted (there is no outgoing call). Anywhere else
// (MTA, no apartment) it waits without pumping or examining the queue.
// Published as BlockKind::kComCall.
// COWAIT_WAITALL in an STA has Windows' documented meaning: it returns only
// once every handle is signaled AND input has arrived in the queue
// (MsgWaitForMultipleObjectsEx with MWMO_WAITALL), and serves nothing while it
// waits; prefer waiting for one handle at a time in an STA. In an STA COM
// calls are always served (COWAIT_DISPATCH_CALLS is accepted: it matters only
// to application STAs, which do not exist here). COWAIT_INPUTAVAILABLE
// returns S_OK with *lpdwindex = cHandles when posted input other than COM
// calls is in the queue.
// Returns S_OK with *lpdwindex = the index of the signaled handle
// (WAIT_ABANDONED_0 + i for an abandoned mutex, WAIT_IO_COMPLETION when
// COWAIT_ALERTABLE and APCs ran); RPC_S_CALLPENDING on timeout; E_INVALIDARG
// for a null `lpdwindex` or `pHandles`, unknown flags, or too many handles;
// RPC_E_NO_SYNC for `cHandles` 0; HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)
// for a handle that is not open.
HRESULT WINAPI CoWaitForMultipleHandles(DWORD dwFlags, DWORD dwTimeout, ULONG cHandles,
                                        LPHANDLE pHandles, LPDWORD lpdwindex);

// CoRegisterMessageFilter()
//
// Installs `lpMessageFilter` (AddRef'ed; null removes it) as the calling STA's
// message filter and stores the previous one in *lplpMessageFilter (the
// caller owns that reference) or releases it when that pointer is null.
// The filter's HandleInComingCall decides on each incoming call (CALLTYPE_
// TOPLEVEL, CALLTYPE_NESTED for a callback in the causality of this thread's
// pending outgoing call, CALLTYPE_TOPLEVEL_CALLPENDING for an unrelated call
// arriving while one is pending), with an INTERFACEINFO naming the call as
// Windows does: the object's interface pointer, the interface's IID and the
// method's vtable number (IClassFactory::CreateInstance: IID_IClassFactory,
// 3); the runtime's own calls between apartments are IRemUnknown calls
// (IID_IRemUnknown, 3 RemQueryInterface, 5 RemRelease; win32_com.h).
// A call made with the modern API (apartments::Apartment::Call) names no
// interface: {NULL, IID_NULL, 0}. SERVERCALL_REJECTED and
// SERVERCALL_RETRYLATER reach the caller's RetryRejectedCall, whose answer is
// honoured: (DWORD)-1 fails the call with RPC_E_CALL_REJECTED, 0-99 retries at
// once, 100 and above retries after that many ms (spent in the modal loop).
// A caller without a filter gives up (RPC_E_CALL_REJECTED). MessagePending is
// called when non-COM input arrives while the thread waits in the modal loop.
// Returns S_OK; CO_E_NOT_SUPPORTED in the MTA and on a thread in no
// apartment (as Windows; *lplpMessageFilter is left alone). The filter is
// released at the last CoUninitialize.
HRESULT WINAPI CoRegisterMessageFilter(LPMESSAGEFILTER lpMessageFilter,
                                       LPMESSAGEFILTER* lplpMessageFilter);

}  // extern "C"

#endif  // APARTMENTS_WIN32_APARTMENT_H_
