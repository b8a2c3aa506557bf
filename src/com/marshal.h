// The marshaling half of the COM core, as the rest of src/com sees it.
//
// Its state has one owner, ComRuntime (com_runtime.h), whose parts each have
// their own file: stub_manager.h, proxy_manager.h, marshal_data.h,
// global_interface_table.h, class_registry.h and free_threaded_marshaler.h;
// marshal.cc holds the Win32 entry points, thin wrappers over them.
//
// Ownership (all in-process, no wire format beyond the marshal record):
//   StubManager   one per exported object identity per apartment. Holds one
//                 reference on the object's IUnknown and one per interface
//                 asked for, all released on the object's own apartment
//                 thread: when the last strong external reference goes (the
//                 release is sent there with InvokeInApartment), on
//                 CoDisconnectObject, or at that apartment's shutdown (a
//                 shutdown callback).
//   Packet        one per CoMarshalInterface: the marshal data's state,
//                 named in the stream by a process-unique id (never by an
//                 address), so forged data can only name a packet that
//                 exists or fail.
//   ProxyManager  one per (client apartment, stub manager): the proxy's
//                 identity and its interface proxies, sharing one reference
//                 count. Holds one strong reference on the stub manager.
//
// Stub manager states:
//   connected --(last strong ref released / CoDisconnectObject /
//                its apartment shuts down)--> disconnected
//   disconnected: calls through proxies get RPC_E_DISCONNECTED, unmarshaling
//   CO_E_OBJNOTCONNECTED; its object references are released (on its thread)
//   right after the transition by a runtime call (no message filter, no
//   cancellation), or, when that call cannot be made now (queue quota, a
//   releasing thread inside an input-synchronous call), by one-way runtime
//   work that runs when the thread next pumps, or at its apartment's
//   shutdown at the latest: never lost.
//
// Locking: one mutex (ComRuntime::Lock()) guards every table and every stub and
// proxy manager's mutable state. Only AddRef is ever called on user objects while holding
// it; QueryInterface, Release and calls run outside it.
#ifndef APARTMENTS_SRC_COM_MARSHAL_H_
#define APARTMENTS_SRC_COM_MARSHAL_H_

#include <cstddef>
#include <cstdint>

#include "apartments/win32_com.h"

namespace apartments::internal {

// The size of the marshal record CoMarshalInterface writes.
inline constexpr std::size_t kMarshalRecordSize = 64;

// The number of live stub managers and proxy managers in the process, for
// leak tests.
std::size_t LiveStubManagersForTesting();
std::size_t LiveProxyManagersForTesting();

// Registers the built-in proxies (IClassFactory, ISequentialStream,
// IStream); defined in standard_proxies.cc.
void RegisterStandardProxies();

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_MARSHAL_H_
