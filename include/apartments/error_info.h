// apartments/error_info.h
//
// Modern accessors for the calling thread's COM error info, the object that
// SetErrorInfo/GetErrorInfo (apartments/win32_com.h) keep per thread. Whenever
// the runtime fails a call it puts an explanation there, in plain words with
// the facts at hand (which apartment, which thread, what it is blocked on).
//
// Reading versus taking: GetErrorInfo() *takes* the error info (the thread's
// slot is cleared and the caller owns the reference, as on Windows), so a
// second GetErrorInfo sees nothing. The accessors here only *read*: the slot is
// left as it is, so logging a failure does not hide it from code that calls
// GetErrorInfo afterwards.
//
// Thread safety: each function reads the calling thread's own slot; any
// thread may call them, with or without COM initialized. None blocks.
#ifndef APARTMENTS_ERROR_INFO_H_
#define APARTMENTS_ERROR_INFO_H_

#include <string>

#include "apartments/win32_types.h"

namespace apartments {

// LastErrorDescription()
//
// The description (IErrorInfo::GetDescription) of the calling thread's error
// info, as UTF-8, without clearing it; "" when the thread has none or its
// object returns no description.
std::string LastErrorDescription();

// LastErrorSource()
//
// The source (IErrorInfo::GetSource) of the calling thread's error info, as
// UTF-8, without clearing it; "" when there is none.
std::string LastErrorSource();

// LastErrorHResult()
//
// The HRESULT the runtime recorded with the calling thread's error info when
// the runtime itself failed a call; S_OK (0) when the thread has no error
// info or it was set by other code (IErrorInfo carries no HRESULT).
HRESULT LastErrorHResult();

}  // namespace apartments

#endif  // APARTMENTS_ERROR_INFO_H_
