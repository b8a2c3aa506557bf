// apartments/win32_types.h
//
// The basic Win32 types, with Windows' sizes on an LP64 Linux host.
//
// Windows is LLP64: `long` is 32 bits there. On Linux `long` is 64 bits, so the
// 32-bit Win32 types (LONG, ULONG, DWORD, HRESULT) are declared on `int`, as
// Winelib does. Pointer-sized types (ULONG_PTR, WPARAM, LPARAM) are 64 bits.
//
// Wide strings: WCHAR is `wchar_t`, which is 32 bits (UTF-32) on Linux, not 16
// bits as on Windows. We chose this so that Windows code using `L"..."`
// literals and `wchar_t` compiles unchanged; the cost is that code assuming
// `sizeof(WCHAR) == 2` (byte counts of wide strings) must be reviewed. All
// wide-string APIs take and return NUL-terminated `wchar_t` strings.
#ifndef APARTMENTS_WIN32_TYPES_H_
#define APARTMENTS_WIN32_TYPES_H_

#include "apartments/win32_typedefs.h"

// Calling-convention and annotation macros are empty on Linux.
#ifndef WINAPI
#define WINAPI
#endif
#ifndef CALLBACK
#define CALLBACK
#endif
#ifndef APIENTRY
#define APIENTRY
#endif
#ifndef STDMETHODCALLTYPE
#define STDMETHODCALLTYPE
#endif
#ifndef STDAPICALLTYPE
#define STDAPICALLTYPE
#endif
#ifndef _In_
#define _In_
#define _In_opt_
#define _Out_
#define _Out_opt_
#define _Inout_
#define _Inout_opt_
#endif

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define INVALID_HANDLE_VALUE ((HANDLE)(LONG_PTR)-1)

// Handle <-> 32-bit integer conversions, as basetsd.h declares them for 64-bit
// Windows. Every handle value fits in 32 bits (win32_kernel.h, "Handles"), and
// every HWND too, so a handle truncated with HandleToULong/HandleToLong and
// widened back with ULongToHandle/LongToHandle names the same object; the
// pseudo-handles (-1, -2) survive the signed round trip, as on Windows.
inline ULONG HandleToULong(const void* h) { return static_cast<ULONG>(reinterpret_cast<ULONG_PTR>(h)); }
inline LONG HandleToLong(const void* h) { return static_cast<LONG>(reinterpret_cast<LONG_PTR>(h)); }
inline HANDLE ULongToHandle(ULONG h) { return reinterpret_cast<HANDLE>(static_cast<ULONG_PTR>(h)); }
inline HANDLE LongToHandle(LONG h) { return reinterpret_cast<HANDLE>(static_cast<LONG_PTR>(h)); }

#endif  // APARTMENTS_WIN32_TYPES_H_
