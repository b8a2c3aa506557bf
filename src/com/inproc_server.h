// In-process servers, the runtime's side: finding a class's registration
// entry, loading its shared library once (reference-counted, unloaded only by
// CoFreeUnusedLibraries(Ex)), and getting its class object in the apartment
// its ThreadingModel requires, starting a host STA or a host MTA when the
// process has none that fits (docs/inproc_servers.md has the table).
//
// A library is loaded once per process and listed, as on Windows, in the
// list of each apartment its class objects were got in (the host STA's for
// an Apartment class created from the MTA). CoFreeUnusedLibrariesEx sweeps
// the calling thread's apartment's list (from the MTA, also the host STA's);
// a library leaves a list when its DllCanUnloadNow says S_OK (after the
// delay, for Free, Both and Neutral classes), and is unloaded (dlclose) when
// no list names it and no CoGetClassObject uses it. An apartment that shuts
// down unloads its unused libraries and lets go of the others, which stay
// loaded (an object may outlive its apartment) until a CoFreeUnusedLibraries
// on any thread finds them unused.
//
// A listing's states (per apartment):
//   listed --(sweep: DllCanUnloadNow S_OK, delay not 0)--> candidate
//   candidate --(used again in that apartment)--> listed
//   candidate --(a later sweep, delay elapsed, still S_OK)--> gone from the list
//   listed --(sweep: S_OK and no delay, or the apartment shuts down and S_OK)--> gone
//
// Locking: one mutex guards the table of loaded servers; DllCanUnloadNow is
// called holding it (so that no CoGetClassObject pins a server between its
// answer and the dlclose); DllGetClassObject is called without it, with the
// server pinned.
#ifndef APARTMENTS_SRC_COM_INPROC_SERVER_H_
#define APARTMENTS_SRC_COM_INPROC_SERVER_H_

#include <cstddef>
#include <string>

#include "apartments/win32_com.h"
#include "com/apartment.h"

namespace apartments::internal {

// GetInprocServerClassObject()
//
// CoGetClassObject's CLSCTX_INPROC_SERVER activation of a class with no class
// object registered at run time for the caller: reads the class's entry,
// loads its library, and returns its class object (interface `riid`) living
// where the threading model puts it: the object itself when that is the
// calling apartment, else a proxy (the class object is got and marshaled in
// the host apartment, unmarshaled here). Blocks while a host apartment starts
// and while the call into it runs (an STA caller pumps, as for any call).
// Returns S_OK or, with an explanation in the error info (source
// "CoGetClassObject"):
//   REGDB_E_CLASSNOTREG        no entry, or one without InprocServer32
//   REGDB_E_BADTHREADINGMODEL  a ThreadingModel other than Apartment, Free,
//                              Both, Neutral (case-insensitive) or empty
//   CO_E_DLLNOTFOUND           dlopen failed (the path and dlerror's text)
//   CO_E_ERRORINDLL            the library does not export DllGetClassObject
//   E_OUTOFMEMORY              a host apartment cannot start (and why)
//   DllGetClassObject's own failure (CLASS_E_CLASSNOTAVAILABLE, E_NOINTERFACE)
//   a channel or marshaling failure of the call into the host apartment.
// The caller is in an apartment (CoGetClassObject checked).
HRESULT GetInprocServerClassObject(REFCLSID clsid, REFIID riid, void** ppv);

// Test-only views and controls.
// The host STA's thread id, or 0 when none has started (or it was stopped).
DWORD InprocHostStaThreadIdForTesting();
// The host STA's apartment, or null.
ApartmentRef InprocHostStaApartmentForTesting();
// Makes the next host STA's thread fail to start with `hr` (as when its
// thread cannot be created or CoInitializeEx fails on it); S_OK clears it.
void FailNextHostStaStartForTesting(HRESULT hr);
// Whether the library at `path` (as written in the entry) is loaded.
bool IsInprocServerLoadedForTesting(const std::string& path);
std::size_t LoadedInprocServersForTesting();
// Ends the host STA (its objects are released on its thread as it ends) and
// gives up the host MTA's usage, so that a test leaves the process as it
// found it. Not while a CoGetClassObject runs.
void ShutdownInprocHostsForTesting();

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_INPROC_SERVER_H_
