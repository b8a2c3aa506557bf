// apartments/win32_typedefs.h
//
// The basic Win32 types (DWORD, HRESULT, HANDLE, HWND, ...), with Windows'
// sizes on an LP64 Linux host, and no macro: the modern API's headers
// (apartments/apartment.h, result.h, ...) include this one, so that code using
// only them gets no Win32 macro (S_OK, INFINITE, TRUE, WINAPI, ...).
// apartments/win32_types.h adds the macros; see it for the choices (LONG on
// `int`, WCHAR on a 32-bit wchar_t).
#ifndef APARTMENTS_WIN32_TYPEDEFS_H_
#define APARTMENTS_WIN32_TYPEDEFS_H_

#include <cstddef>
#include <cstdint>

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
// code that only stores one (the library's thread activity records) needs
// nothing of the message API.
typedef struct HWND__ {
  int unused;
} * HWND;

#endif  // APARTMENTS_WIN32_TYPEDEFS_H_
