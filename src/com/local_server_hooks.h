// The seam between COM's class registry and out-of-process servers
// (docs/out_of_process.md). The COM layer calls these from
// CoRegisterClassObject, CoRevokeClassObject, CoResumeClassObjects and
// CoGetClassObject; the remote layer (src/remote/local_server.cc) defines
// them, as diag defines StartDiagnosticsOnFirstUse (a link-time hook: COM
// never includes the remote layer's headers).
#ifndef APARTMENTS_SRC_COM_LOCAL_SERVER_HOOKS_H_
#define APARTMENTS_SRC_COM_LOCAL_SERVER_HOOKS_H_

#include "apartments/win32_com.h"

namespace apartments::internal {

// CoRegisterClassObject(..., CLSCTX_LOCAL_SERVER, flags) after the in-process
// registration `cookie` succeeded, in the registering apartment: publishes
// `object` to other processes of the same user (unless flags has
// REGCLS_SUSPENDED: then at CoResumeClassObjects). Returns S_OK or the
// failure (explained), in which case the caller revokes `cookie`.
HRESULT PublishLocalServer(REFCLSID clsid, IUnknown* object, DWORD flags, DWORD cookie);

// CoRevokeClassObject(cookie) after the in-process revocation: stops
// publishing it (nothing when it was not published). Any thread.
void WithdrawLocalServer(DWORD cookie);

// CoResumeClassObjects: publishes every registration made with
// REGCLS_SUSPENDED. Returns S_OK or the first failure.
HRESULT ResumeLocalServers();

// CoGetClassObject's CLSCTX_LOCAL_SERVER activation of a class with no class
// object registered in this process: connects to the class's running server,
// or launches the one its registration entry names and waits (bounded) for
// it to register. Returns S_OK with a remote proxy in *ppv, or
// REGDB_E_CLASSNOTREG / CO_E_SERVER_EXEC_FAILURE / E_ACCESSDENIED / a call
// failure, explained in the error info.
HRESULT GetLocalServerClassObject(REFCLSID clsid, REFIID riid, void** ppv);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_LOCAL_SERVER_HOOKS_H_
