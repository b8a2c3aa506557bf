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

#include <cstddef>
#include <cstdint>

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

typedef int BOOL;
typedef unsigned char BYTE;
typedef unsigned char BOOLEAN;
typedef unsigned short WORD;
typedef int LONG;
typedef unsigned int ULONG;
typedef unsigned int DWORD;
typedef unsigned int UINT;
typedef int INT;
typedef long long LONGLONG;
typedef unsigned long long ULONGLONG;
typedef ULONGLONG DWORD64;
typedef std::intptr_t INT_PTR;
typedef std::uintptr_t UINT_PTR;
typedef std::intptr_t LONG_PTR;
typedef std::uintptr_t ULONG_PTR;
typedef ULONG_PTR DWORD_PTR;
typedef ULONG_PTR SIZE_T;
typedef LONG HRESULT;
typedef LONG SCODE;
typedef void VOID;
typedef void* PVOID;
typedef void* LPVOID;
typedef const void* LPCVOID;
typedef char CHAR;
typedef wchar_t WCHAR;
typedef CHAR* LPSTR;
typedef const CHAR* LPCSTR;
typedef WCHAR* LPWSTR;
typedef const WCHAR* LPCWSTR;
typedef DWORD* LPDWORD;
typedef LONG* LPLONG;
typedef BOOL* LPBOOL;

typedef void* HANDLE;
typedef HANDLE* PHANDLE;
typedef HANDLE* LPHANDLE;

// A window's handle is declared with the basic types, as in Windows' windef.h:
// code that only stores one (the thread activity records in src/base) needs
// nothing of the message API.
typedef struct HWND__ {
  int unused;
} * HWND;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define INVALID_HANDLE_VALUE ((HANDLE)(LONG_PTR)-1)

#endif  // APARTMENTS_WIN32_TYPES_H_
