// apartments/last_error.h
//
// Why a handle-taking call failed, in words: the per-thread "last error
// explanation" and the handle history behind it. Windows' GetLastError says
// only ERROR_INVALID_HANDLE ("The handle is invalid."); here the runtime also
// remembers the last 4096 handle closes (which thread made each handle and
// when, which thread closed it, when and from where, and any second close), so
// a wait on a handle somebody else closed can name that somebody.
//
// Relation to COM error info (apartments/error_info.h). COM calls the runtime
// fails put their explanation in the thread's COM error info
// (LastErrorDescription()). Kernel-level failures have no error object, so
// they fill this separate, cheap per-thread slot instead. A COM call that
// fails because of a bad handle (CoWaitForMultipleHandles, or a cross-
// apartment call whose reply event was closed: RPC_E_SYS_CALL_FAILED) sets
// both, with the same history text.
//
// Clearing rules (like GetLastError): the slot describes the most recent
// failure on this thread that set it, and is overwritten by the next one.
// Successful calls leave it alone, so read it right after the failing call.
// It is set by every Win32 function of this library that takes a handle and
// fails with ERROR_INVALID_HANDLE (WaitForSingleObject[Ex],
// WaitForMultipleObjects[Ex], SignalObjectAndWait, MsgWaitForMultipleObjects
// [Ex], CloseHandle, DuplicateHandle, SetEvent, ResetEvent, PulseEvent,
// ReleaseMutex, ReleaseSemaphore, QueueUserAPC, the thread-handle functions)
// and by CoWaitForMultipleHandles and cross-apartment calls failing on a
// handle. Other failures do not touch it. Success paths never pay for it.
#ifndef APARTMENTS_LAST_ERROR_H_
#define APARTMENTS_LAST_ERROR_H_

#include <string>

#include "apartments/win32_types.h"

namespace apartments {

// LastErrorExplanation()
//
// The calling thread's last error explanation, e.g. "WaitForSingleObject
// failed with ERROR_INVALID_HANDLE: handle 0x300000008 is not open: it was an
// event 'jobs' (object #17), created by thread 12 'worker' 1.5 s ago, and closed
// by thread 34 'ui' 1.2 s ago (CloseHandle called from Shutdown()+0x2c). It
// was closed again by thread 34 'ui' 1.1 s ago: a double close ..."; "" when
// no failure has set it on this thread (or after ClearLastErrorExplanation).
// Thread safety: the calling thread's own slot; any thread. Never blocks.
std::string LastErrorExplanation();

// ClearLastErrorExplanation()
//
// Empties the calling thread's slot (for code that wants to tell a fresh
// explanation from an old one). Any thread; never blocks.
void ClearLastErrorExplanation() noexcept;

// DescribeHandleHistory()
//
// What the runtime knows about the handle value `handle` now, as one or two
// sentences: open (and of what kind), never a handle of this process (NULL,
// forged, uninitialized), or closed, with who made and closed it and when
// while the history still remembers the close ("no record" once 4096 later
// closes pushed it out). Handle values are not reused for a long while (each
// slot carries a 32-bit generation), so the most recent close of exactly this
// value is the one described; after 2^32 reuses of one slot a value repeats
// and an old value may be described by its newest namesake.
// Thread safety: any thread; a close racing with the call may be missed.
// Never blocks (allocates).
std::string DescribeHandleHistory(HANDLE handle);

}  // namespace apartments

#endif  // APARTMENTS_LAST_ERROR_H_
