// apartments/errors.h
//
// Names and messages for HRESULT and Win32 error values, for logs, error info
// and diagnostics: "RPC_E_SYS_CALL_FAILED (0x80010100): System call failed."
// instead of a bare number.
//
// The codes known are the ones apartments/win32_errors.h defines; the messages
// are Windows' English system message texts (what FormatMessage returns on
// Windows, without the trailing "\r\n").
//
// Thread safety: every function here may be called from any thread, at any
// time (including before main and during exit); none blocks. The Describe*
// functions allocate nothing and return pointers to static strings; the
// Format* functions allocate only the std::string they return.
#ifndef APARTMENTS_ERRORS_H_
#define APARTMENTS_ERRORS_H_

#include <span>
#include <string>

#include "apartments/win32_errors.h"
#include "apartments/win32_types.h"

namespace apartments {

// What is known about one error value. Both fields point to static,
// NUL-terminated strings that live for the whole program, or are both nullptr
// when the value is unknown.
struct ErrorDescription {
  const char* name;     // "RPC_E_SYS_CALL_FAILED", "ERROR_INVALID_HANDLE"
  const char* message;  // "System call failed."
};

// DescribeHResult()
//
// Names an HRESULT: S_OK, S_FALSE, E_*, RPC_E_*, CO_E_*, ... by their own
// name; any other HRESULT_FROM_WIN32(x) of a known Win32 error x as
// "HRESULT_FROM_WIN32(ERROR_X)" with x's message. Where an HRESULT has its own
// name, that name wins: 0x80070057 is "E_INVALIDARG", not
// "HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)".
// Returns {nullptr, nullptr} for an unknown value.
ErrorDescription DescribeHResult(HRESULT hr) noexcept;

// DescribeWin32Error()
//
// Names a Win32 error value (GetLastError()): "ERROR_INVALID_HANDLE", "The
// handle is invalid.". ERROR_SUCCESS (= NO_ERROR) is known.
// Returns {nullptr, nullptr} for an unknown value.
ErrorDescription DescribeWin32Error(DWORD code) noexcept;

// FormatHResult()
//
// "RPC_E_SYS_CALL_FAILED (0x80010100): System call failed.", or for an
// unknown value "0x8001FFFE (unknown HRESULT)". The number is always the
// 8-digit upper-case hex of the 32-bit value.
std::string FormatHResult(HRESULT hr);

// FormatWin32Error()
//
// "ERROR_INVALID_HANDLE (6): The handle is invalid.", or for an unknown value
// "12345 (unknown Win32 error)". The number is unsigned decimal.
std::string FormatWin32Error(DWORD code);

namespace internal {

// The tables behind the functions above, exposed for their tests only.
struct HResultEntry {
  HRESULT value;
  const char* name;
  const char* message;
};

struct Win32ErrorEntry {
  DWORD value;
  const char* name;          // "ERROR_INVALID_HANDLE"
  const char* hresult_name;  // "HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)"
  const char* message;
};

std::span<const HResultEntry> HResultTableForTesting() noexcept;
std::span<const Win32ErrorEntry> Win32ErrorTableForTesting() noexcept;

}  // namespace internal
}  // namespace apartments

#endif  // APARTMENTS_ERRORS_H_
