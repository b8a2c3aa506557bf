// The runtime's side of COM error info: the error object behind
// CreateErrorInfo, and a cheap way for the runtime to explain a failed call.
#ifndef APARTMENTS_SRC_COM_ERROR_INFO_H_
#define APARTMENTS_SRC_COM_ERROR_INFO_H_

#include <string_view>

#include "apartments/win32_com.h"

namespace apartments::internal {

// SetCallErrorInfo()
//
// Replaces the calling thread's error info with a new error object whose
// description and source are the given UTF-8 texts and whose GUID is
// GUID_NULL; `hr` is remembered for apartments::LastErrorHResult(). Call it
// where the runtime fails a call, right before returning `hr`.
// Thread safety: the calling thread's slot only. Allocates; if out of memory
// the slot is cleared instead (a stale explanation is worse than none).
// Lifetime: the texts are copied.
void SetCallErrorInfo(HRESULT hr, std::string_view description, std::string_view source);

// ClearCallErrorInfo()
//
// Clears the calling thread's error info (SetErrorInfo(0, nullptr)).
void ClearCallErrorInfo();

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_ERROR_INFO_H_
