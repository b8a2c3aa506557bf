// Message-only windows and window classes: the process-wide window table.
//
// An HWND is (generation << 16) | index into the table, index 1..65535 and
// generation 1..32767, so a destroyed, stale or forged HWND is detected, and
// every HWND fits in 31 bits: truncated to 32 bits (HandleToULong) and widened
// back, signed or not, it is the same HWND, as on 64-bit Windows.
// Freed slots are reused in FIFO order once enough are free, so a stale HWND
// stays invalid for as long as possible. Changes to the table take one
// mutex, never held while a window procedure runs; the lookups of the call
// path (LookupWindow, IsLiveWindow, CallOwnWindowProc) take no lock.
//
// Lifecycle of a window slot:
//   kFree --(CreateWindowExW)--> kAlive --(DestroyWindow: WM_DESTROY,
//   WM_NCDESTROY sent; or owner thread exit: nothing sent)--> kFree
#ifndef APARTMENTS_SRC_MESSAGE_WINDOW_H_
#define APARTMENTS_SRC_MESSAGE_WINDOW_H_

#include <cstdint>

#include "apartments/win32_message.h"

namespace apartments::internal {

class MessageQueue;

// What a thread needs to post or send to a window, copied out of the table.
struct WindowInfo {
  DWORD owner_tid = 0;
  MessageQueue* queue = nullptr;  // Type-stable; check `incarnation` when posting.
  std::uint64_t incarnation = 0;
};

// Resolves `hwnd`; false when it is not a live window. Any thread; lock-free.
bool LookupWindow(HWND hwnd, WindowInfo* info);
// Whether `hwnd` is a live window. Any thread; lock-free.
bool IsLiveWindow(HWND hwnd);
// Calls the window procedure of `hwnd`, which must belong to the calling
// thread. Returns ERROR_SUCCESS with *result set, ERROR_INVALID_WINDOW_HANDLE,
// or ERROR_MESSAGE_SYNC_ONLY (another thread's window).
DWORD CallOwnWindowProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam,
                        LRESULT* result);
// Frees every window of thread `tid` without sending anything (thread exit).
void DestroyWindowsOfThread(DWORD tid);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_MESSAGE_WINDOW_H_
