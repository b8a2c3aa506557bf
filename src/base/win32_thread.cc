// Win32 per-thread basics: last error, thread and process ids, tick counts.
#include <time.h>
#include <unistd.h>

#include "apartments/win32_kernel.h"
#include "base/thread_state.h"

namespace {
thread_local DWORD t_last_error = 0;
}  // namespace

extern "C" {

DWORD WINAPI GetLastError(void) { return t_last_error; }
VOID WINAPI SetLastError(DWORD dwErrCode) { t_last_error = dwErrCode; }

DWORD WINAPI GetCurrentThreadId(void) { return apartments::internal::CurrentThreadId(); }
DWORD WINAPI GetCurrentProcessId(void) { return static_cast<DWORD>(::getpid()); }

HANDLE WINAPI GetCurrentProcess(void) { return reinterpret_cast<HANDLE>(static_cast<LONG_PTR>(-1)); }
HANDLE WINAPI GetCurrentThread(void) { return reinterpret_cast<HANDLE>(static_cast<LONG_PTR>(-2)); }

ULONGLONG WINAPI GetTickCount64(void) {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<ULONGLONG>(now.tv_sec) * 1000 + static_cast<ULONGLONG>(now.tv_nsec) / 1000000;
}
DWORD WINAPI GetTickCount(void) { return static_cast<DWORD>(GetTickCount64()); }

}  // extern "C"
