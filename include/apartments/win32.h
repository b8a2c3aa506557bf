// apartments/win32.h
//
// The Win32-compatible surface of apartments: code written against
// <windows.h> for this subset compiles against this header unchanged, with
// Windows' names, signatures, types and numeric values.
//
//   win32_types.h   BOOL, DWORD, HANDLE, HRESULT, WCHAR, ... (LP64 sizes)
//   win32_errors.h  S_*, E_*, RPC_E_*, CO_E_*, ERROR_*, HRESULT_FROM_WIN32,
//                   FormatMessage
//   win32_kernel.h  events, mutexes, semaphores, threads, waits, APCs,
//                   CloseHandle, DuplicateHandle, last error
//   win32_message.h thread message queues (posted-message quota), sent
//                   messages, message-only windows, MsgWaitForMultipleObjectsEx
//   win32_com.h     GUID/IID, IUnknown and the standard interfaces, STDMETHOD,
//                   BSTR, CoTaskMem*, SetErrorInfo/GetErrorInfo,
//                   CreateStreamOnHGlobal
//   win32_apartment.h  CoInitializeEx, CoUninitialize, CoGetApartmentType,
//                   MTA usage, CoWaitForMultipleHandles, CoRegisterMessageFilter
//   win32_marshal.h CoMarshalInterface and friends, the global interface
//                   table, CoDisconnectObject, CoLockObjectExternal, the
//                   free-threaded marshaler, CoCreateInstance
//   win32_inproc.h  in-process servers: DllGetClassObject's types,
//                   CoFreeUnusedLibraries(Ex)
#ifndef APARTMENTS_WIN32_H_
#define APARTMENTS_WIN32_H_

#include "apartments/win32_types.h"
#include "apartments/win32_errors.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_synch.h"
#include "apartments/win32_message.h"
#include "apartments/win32_com.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_marshal.h"
#include "apartments/win32_inproc.h"

#endif  // APARTMENTS_WIN32_H_
