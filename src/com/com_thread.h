// The COM layer's per-thread data, kept in
// ThreadState::layer_data[Layer::kCom].
//
// Lifecycle: created on the thread's first COM call that needs it
// (CurrentComThreadData); destroyed on that thread when it exits, by the COM
// layer's exit hook, which first releases everything the data holds (the
// error info now; apartment state later). A thread that never needed COM data
// has none (ComThreadDataIfAny returns null).
//
// Thread safety: a thread's ComThreadData is touched only by that thread.
// Other threads must not read it (diagnostics that need to will get their own
// published fields).
#ifndef APARTMENTS_SRC_COM_COM_THREAD_H_
#define APARTMENTS_SRC_COM_COM_THREAD_H_

#include "apartments/win32_com.h"

namespace apartments::internal {

struct ComThreadData {
  // The thread's error info (SetErrorInfo/GetErrorInfo): one reference owned
  // by this slot, or null.
  IErrorInfo* error_info = nullptr;

  // Apartment state (added by the COM core) goes here.
};

// The calling thread's data, created on first use (allocates once per
// thread; aborts only if that allocation fails).
ComThreadData& CurrentComThreadData();

// The calling thread's data, or null when it has none yet. Never creates it.
ComThreadData* ComThreadDataIfAny() noexcept;

// Swaps the calling thread's error info for `info` (whose reference the slot
// takes over) and returns the previous one (whose reference the caller now
// owns), without AddRef or Release. Release the result outside any lock: its
// Release may run arbitrary code, including SetErrorInfo.
IErrorInfo* ExchangeThreadErrorInfo(IErrorInfo* info);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_COM_THREAD_H_
