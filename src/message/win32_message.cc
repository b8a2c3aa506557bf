// The Win32 message API over the queues (queue.h) and the window table
// (window.h).
#include <chrono>

#include "apartments/win32_errors.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "kernel/handle_history.h"
#include "message/queue.h"
#include "message/window.h"

using namespace apartments::internal;

namespace {

template <typename T>
T Fail(DWORD error, T value) {
  SetLastError(error);
  return value;
}

constexpr UINT kPeekFlags = PM_REMOVE | PM_NOYIELD | PM_QS_INPUT | PM_QS_POSTMESSAGE |
                            PM_QS_PAINT | PM_QS_SENDMESSAGE;

// Validates a Get/Peek hwnd filter: NULL, -1, or a window of this thread.
bool ValidFilterWindow(HWND hwnd) {
  if (hwnd == nullptr || hwnd == reinterpret_cast<HWND>(-1)) return true;
  WindowInfo info;
  return LookupWindow(hwnd, &info) && info.owner_tid == CurrentThreadId();
}

// Shared by SendMessageW and SendMessageTimeoutW. Sets the last error and
// returns false on failure.
bool Send(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam, UINT flags, DWORD timeout_ms,
          LRESULT* result) {
  *result = 0;
  WindowInfo info;
  if (!LookupWindow(hwnd, &info)) return Fail(ERROR_INVALID_WINDOW_HANDLE, false);
  MessageQueue& self = CurrentQueue();
  if (info.owner_tid == self.tid()) {
    DWORD error = CallOwnWindowProc(hwnd, message, wparam, lparam, result);
    if (error != ERROR_SUCCESS) return Fail(error, false);
    return true;
  }
  if ((flags & SMTO_ABORTIFHUNG) != 0 && info.queue->LooksHung(std::chrono::seconds(5))) {
    return Fail(ERROR_TIMEOUT, false);
  }
  auto* sent = new SentMessage();
  sent->hwnd = hwnd;
  sent->message = message;
  sent->wparam = wparam;
  sent->lparam = lparam;
  sent->sender = &self;
  sent->sender_tid = self.tid();
  if (info.queue->QueueSent(info.incarnation, sent) != ERROR_SUCCESS) {
    delete sent;
    return Fail(ERROR_INVALID_WINDOW_HANDLE, false);
  }
  DWORD error =
      self.AwaitReply(sent, info.queue, info.owner_tid, timeout_ms, (flags & SMTO_BLOCK) != 0);
  if (error == ERROR_SUCCESS) *result = sent->result;
  sent->Release();
  if (error != ERROR_SUCCESS) return Fail(error, false);
  return true;
}

BOOL GetOrPeek(LPMSG msg, HWND hwnd, UINT min, UINT max, UINT flags, bool wait) {
  MessageQueue& queue = CurrentQueue();
  if (hwnd == nullptr && min == 0 && max == 0 && (flags & ~PM_NOYIELD) == PM_REMOVE &&
      queue.TakeNextMessage(msg)) {
    // The common loop's case, without building a filter (queue.h).
    CurrentThreadState().activity.PublishFilter(nullptr, 0, 0);
    return TRUE;
  }
  if (!ValidFilterWindow(hwnd)) return Fail<BOOL>(ERROR_INVALID_WINDOW_HANDLE, wait ? -1 : FALSE);
  CurrentThreadState().activity.PublishFilter(hwnd, min, max);  // For the hang watchdog.
  MessageQueue::Filter filter;
  filter.hwnd = hwnd;
  filter.min = min;
  filter.max = max;
  filter.remove = (flags & PM_REMOVE) != 0;
  const UINT kinds = flags >> 16;
  if (kinds != 0) {
    filter.posted = (kinds & (QS_POSTMESSAGE | QS_ALLPOSTMESSAGE)) != 0;
    filter.sent = (kinds & QS_SENDMESSAGE) != 0;
  }
  return queue.GetOrPeek(filter, wait, msg) ? TRUE : FALSE;
}

}  // namespace

extern "C" {

BOOL WINAPI PostThreadMessageW(DWORD idThread, UINT Msg, WPARAM wParam, LPARAM lParam) {
  DWORD error = PostToThread(idThread, nullptr, Msg, wParam, lParam);
  if (__builtin_expect(error != ERROR_SUCCESS, 0)) return Fail(error, FALSE);
  return TRUE;
}

BOOL WINAPI PostMessageW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
  if (hWnd == nullptr) {
    MessageQueue& self = CurrentQueue();
    DWORD error = self.Post(self.tid(), 0, nullptr, Msg, wParam, lParam);
    if (error != ERROR_SUCCESS) return Fail(error, FALSE);
    return TRUE;
  }
  if (hWnd == HWND_BROADCAST) return TRUE;  // Message-only windows get no broadcasts.
  WindowInfo info;
  if (!LookupWindow(hWnd, &info)) return Fail(ERROR_INVALID_WINDOW_HANDLE, FALSE);
  DWORD error = info.queue->Post(info.owner_tid, info.incarnation, hWnd, Msg, wParam, lParam);
  if (error == ERROR_INVALID_THREAD_ID) error = ERROR_INVALID_WINDOW_HANDLE;
  if (error != ERROR_SUCCESS) return Fail(error, FALSE);
  return TRUE;
}

VOID WINAPI PostQuitMessage(int nExitCode) { CurrentQueue().PostQuit(nExitCode); }

BOOL WINAPI GetMessageW(LPMSG lpMsg, HWND hWnd, UINT wMsgFilterMin, UINT wMsgFilterMax) {
  if (lpMsg == nullptr) return Fail<BOOL>(ERROR_INVALID_PARAMETER, -1);
  if (GetOrPeek(lpMsg, hWnd, wMsgFilterMin, wMsgFilterMax, PM_REMOVE, true) != TRUE) return -1;
  return lpMsg->message == WM_QUIT ? FALSE : TRUE;
}

BOOL WINAPI PeekMessageW(LPMSG lpMsg, HWND hWnd, UINT wMsgFilterMin, UINT wMsgFilterMax,
                         UINT wRemoveMsg) {
  if (lpMsg == nullptr) return Fail(ERROR_INVALID_PARAMETER, FALSE);
  if ((wRemoveMsg & ~kPeekFlags) != 0) return Fail(ERROR_INVALID_FLAGS, FALSE);
  return GetOrPeek(lpMsg, hWnd, wMsgFilterMin, wMsgFilterMax, wRemoveMsg, false);
}

LRESULT WINAPI DispatchMessageW(const MSG* lpMsg) {
  if (lpMsg == nullptr) return Fail<LRESULT>(ERROR_INVALID_PARAMETER, 0);
  if (lpMsg->hwnd == nullptr) return 0;
  LRESULT result = 0;
  DWORD error = CallOwnWindowProc(lpMsg->hwnd, lpMsg->message, lpMsg->wParam, lpMsg->lParam,
                                  &result);
  if (error != ERROR_SUCCESS) return Fail<LRESULT>(error, 0);
  return result;
}

BOOL WINAPI TranslateMessage(const MSG*) { return FALSE; }

DWORD WINAPI GetQueueStatus(UINT flags) {
  if ((flags & ~kQsValidMask) != 0) return Fail<DWORD>(ERROR_INVALID_FLAGS, 0);
  return CurrentQueue().QueueStatus(flags);
}

BOOL WINAPI WaitMessage(void) {
  CurrentQueue().MsgWait(nullptr, nullptr, 0, INFINITE, QS_ALLINPUT, 0);
  return TRUE;
}

DWORD WINAPI MsgWaitForMultipleObjectsEx(DWORD nCount, const HANDLE* pHandles,
                                         DWORD dwMilliseconds, DWORD dwWakeMask, DWORD dwFlags) {
  if (nCount > MAXIMUM_WAIT_OBJECTS - 1 || (nCount > 0 && pHandles == nullptr) ||
      (dwFlags & ~(MWMO_WAITALL | MWMO_ALERTABLE | MWMO_INPUTAVAILABLE)) != 0 ||
      (dwWakeMask & ~kQsValidMask) != 0) {
    return Fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
  }
  ObjectRef refs[MAXIMUM_WAIT_OBJECTS];
  KernelObject* objects[MAXIMUM_WAIT_OBJECTS];
  for (DWORD i = 0; i < nCount; ++i) {
    refs[i] = ResolveHandle(pHandles[i]);
    if (!refs[i]) {
      ExplainInvalidHandle("MsgWaitForMultipleObjectsEx", pHandles[i], nullptr, i, nCount);
      return Fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
    }
    objects[i] = refs[i].get();
  }
  if ((dwFlags & MWMO_WAITALL) != 0) {
    for (DWORD i = 0; i < nCount; ++i) {
      for (DWORD j = 0; j < i; ++j) {
        if (objects[i] == objects[j]) return Fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
      }
    }
  }
  return CurrentQueue().MsgWait(objects, pHandles, nCount, dwMilliseconds, dwWakeMask, dwFlags);
}

DWORD WINAPI MsgWaitForMultipleObjects(DWORD nCount, const HANDLE* pHandles, BOOL fWaitAll,
                                       DWORD dwMilliseconds, DWORD dwWakeMask) {
  return MsgWaitForMultipleObjectsEx(nCount, pHandles, dwMilliseconds, dwWakeMask,
                                     fWaitAll ? MWMO_WAITALL : 0);
}

LRESULT WINAPI SendMessageW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
  LRESULT result;
  Send(hWnd, Msg, wParam, lParam, SMTO_NORMAL, INFINITE, &result);
  return result;
}

LRESULT WINAPI SendMessageTimeoutW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam,
                                   UINT fuFlags, UINT uTimeout, PDWORD_PTR lpdwResult) {
  LRESULT result;
  if (!Send(hWnd, Msg, wParam, lParam, fuFlags, uTimeout, &result)) return 0;
  if (lpdwResult != nullptr) *lpdwResult = static_cast<DWORD_PTR>(result);
  return 1;
}

BOOL WINAPI InSendMessage(void) {
  MessageQueue* queue = CurrentQueueIfAny();
  return queue != nullptr && queue->current_received() != nullptr ? TRUE : FALSE;
}

DWORD WINAPI InSendMessageEx(LPVOID) {
  MessageQueue* queue = CurrentQueueIfAny();
  if (queue == nullptr || queue->current_received() == nullptr) return ISMEX_NOSEND;
  return ISMEX_SEND | (queue->current_received()->replied ? ISMEX_REPLIED : 0);
}

BOOL WINAPI ReplyMessage(LRESULT lResult) {
  MessageQueue* queue = CurrentQueueIfAny();
  if (queue == nullptr) return FALSE;
  SentMessage* sent = queue->current_received();
  if (sent == nullptr || sent->replied) return FALSE;
  queue->Reply(sent, lResult);
  return TRUE;
}

}  // extern "C"
