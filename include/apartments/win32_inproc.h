// apartments/win32_inproc.h
//
// In-process servers (COM classes in shared libraries), the Win32 side: the
// exports a server provides (DllGetClassObject, DllCanUnloadNow,
// DllRegisterServer, DllUnregisterServer) as Windows declares them, and
// CoFreeUnusedLibraries(Ex). CoGetClassObject and CoCreateInstance
// (win32_marshal.h) load a registered server when the calling process has no
// class object registered at run time for the class; docs/inproc_servers.md
// describes the registration entries and where objects live.
// Writing a server: apartments/inproc_server.h.
#ifndef APARTMENTS_WIN32_INPROC_H_
#define APARTMENTS_WIN32_INPROC_H_

#include "apartments/win32_com.h"
#include "apartments/win32_errors.h"

// The exports' types (Windows' <objbase.h>/<combaseapi.h> names).
typedef HRESULT(STDAPICALLTYPE* LPFNGETCLASSOBJECT)(REFCLSID, REFIID, LPVOID*);
typedef HRESULT(STDAPICALLTYPE* LPFNCANUNLOADNOW)(void);

#ifndef SELFREG_E_CLASS
// DllRegisterServer/DllUnregisterServer could not write or remove a class's
// registration (Windows' <olectl.h>).
#define SELFREG_E_CLASS _HRESULT_TYPEDEF_(0x80040201)
#endif

extern "C" {

// CoFreeUnusedLibrariesEx()
//
// Unloads the in-process servers that CoGetClassObject/CoCreateInstance
// loaded for the calling thread's apartment and that are no longer in use, as
// Windows does. Each apartment keeps a list of the servers whose class
// objects were got in it (for an Apartment class created from the MTA, the
// host STA's list); this call sweeps the caller's apartment's list (a thread
// in the MTA, explicit or implicit, also sweeps the host STA's, which hosts
// objects on the MTA's behalf). Each listed server's DllCanUnloadNow is
// called on the calling thread, holding the runtime's table of loaded servers
// (so it must not activate COM classes itself); a server that does not
// export it, or answers S_FALSE, stays. A server answering S_OK becomes a
// candidate, stamped with the time; a later call at least `dwUnloadDelay` ms
// after that takes it off the list, if it still answers S_OK. A server used
// again in that apartment while a candidate (CoGetClassObject) stops being
// one. The delay applies to servers with a class registered Free, Both or
// Neutral; for Apartment and legacy (no ThreadingModel) servers it is 0, as
// on Windows (their objects are bound to one STA thread), so one call takes
// them off. `dwUnloadDelay` INFINITE means Windows' default, 10 minutes; 0
// takes every unused server off at once. A server is loaded once per process
// and unloaded (dlclose) when no apartment's list names it any more.
// When an apartment shuts down (its last CoUninitialize), its unused servers
// are taken off its list as by this call with delay 0; servers still in use
// stay loaded (an object may outlive its apartment), and any thread's
// CoFreeUnusedLibraries unloads them once they answer S_OK (Windows'
// CoUninitialize documentation says it unloads all the thread's DLLs; this
// runtime never unloads code whose DllCanUnloadNow says it is in use).
// Thread safety: any thread; on one in no apartment it only unloads the
// servers no apartment lists. Never unloads a server while a CoGetClassObject
// is calling its DllGetClassObject.
// `dwReserved` must be 0 (ignored).
void WINAPI CoFreeUnusedLibrariesEx(DWORD dwUnloadDelay, DWORD dwReserved);

// CoFreeUnusedLibraries()
//
// CoFreeUnusedLibrariesEx(INFINITE, 0).
void WINAPI CoFreeUnusedLibraries(void);

}  // extern "C"

#endif  // APARTMENTS_WIN32_INPROC_H_
