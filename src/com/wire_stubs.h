// The servers' side of interfaces declared for other processes
// (APARTMENTS_REMOTE_INTERFACE, apartments/proxy.h): per IID, its methods'
// stubs by vtable slot, and its base interface. Filled at static
// initialization; read by the remote layer when a call arrives.
#ifndef APARTMENTS_SRC_COM_WIRE_STUBS_H_
#define APARTMENTS_SRC_COM_WIRE_STUBS_H_

#include "apartments/proxy.h"
#include "apartments/win32_com.h"

namespace apartments::internal {

// The stub of method `slot` of interface `iid`, looked up in `iid`'s own
// table and then its bases'; null when `iid` was not declared for other
// processes or has no such method. Any thread.
WireStubFunction LookupWireStub(REFIID iid, WORD slot) noexcept;

// Whether `iid` was declared for other processes (IUnknown and
// IClassFactory always are). Any thread.
bool IsWireInterface(REFIID iid) noexcept;

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_WIRE_STUBS_H_
