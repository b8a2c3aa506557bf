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

#endif  // APARTMENTS_WIN32_TYPES_H_
