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
// loaded and that are no longer in use, as Windows does: each loaded server's
// DllCanUnloadNow is called on the calling thread, holding the runtime's
// table of loaded servers (so it must not activate COM classes itself); a
// server that does not export it, or answers S_FALSE, stays. A
// server answering S_OK becomes a candidate, stamped with the time; a later
// call at least `dwUnloadDelay` ms after that unloads it (dlclose), if it still
// answers S_OK. A server used again while a candidate (CoGetClassObject)
// stops being one. The delay applies to servers with a class registered
// Free, Both or Neutral; for Apartment and legacy (no ThreadingModel)
// servers it is 0, as on Windows (their objects are bound to one STA thread),
// so one call unloads them. `dwUnloadDelay` INFINITE means Windows' default,
// 10 minutes; 0 unloads every unused server in this call.
// Deviation: Windows keeps one list per apartment that the calling thread
// can host; here the list is the process's (a server is loaded once).
// Thread safety: any thread, also one in no apartment. Never unloads a
// server while a CoGetClassObject is calling its DllGetClassObject.
// `dwReserved` must be 0 (ignored).
void WINAPI CoFreeUnusedLibrariesEx(DWORD dwUnloadDelay, DWORD dwReserved);

// CoFreeUnusedLibraries()
//
// CoFreeUnusedLibrariesEx(INFINITE, 0).
void WINAPI CoFreeUnusedLibraries(void);

}  // extern "C"

#endif  // APARTMENTS_WIN32_INPROC_H_
