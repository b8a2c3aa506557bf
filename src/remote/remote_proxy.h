// Proxies of objects in other processes: a remote proxy manager stands for
// one imported capability, and hands out interface proxies made by the proxy
// recipe (apartments/proxy.h), which see it as RemoteCalls and serialize
// their arguments (apartments/wire.h).
//
// Threads: a remote proxy may be used from any apartment (its calls go
// through the I/O thread, never through an apartment of this process), so it
// behaves like an agile object here; the caller waits as the channel does:
// an STA in CoWaitForMultipleHandles (serving incoming calls, so a callback
// from the server into the waiting STA is served), any other thread without
// pumping.
#ifndef APARTMENTS_SRC_REMOTE_REMOTE_PROXY_H_
#define APARTMENTS_SRC_REMOTE_REMOTE_PROXY_H_

#include <memory>

#include "apartments/win32_com.h"
#include "remote/connection.h"

namespace apartments::internal {

// A new remote proxy for `object` (*out: its IUnknown, one reference);
// `known` is an interface the object is known to have (IID_IUnknown when
// none), whose proxy is then made without asking the server.
HRESULT CreateRemoteProxy(std::shared_ptr<RemoteObject> object, REFIID known, IUnknown** out);

// The capability behind `unknown` when it is a remote proxy, else null.
std::shared_ptr<RemoteObject> RemoteObjectOf(IUnknown* unknown);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_REMOTE_REMOTE_PROXY_H_
