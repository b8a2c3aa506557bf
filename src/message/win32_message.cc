// The Win32 message API over the queues (queue.h) and the window table
// (window.h).
#include <chrono>
#include <cstdint>

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

// The system messages whose parameters carry pointers, which Windows refuses
// to post (ERROR_MESSAGE_SYNC_ONLY): only a send can carry them, since the
// pointed-to data must outlive the call. The list Wine's user32 keeps
// (message_pointer_flags), one bit per message below 0x320.
bool IsPointerMessage(UINT message, WPARAM wparam) noexcept {
  static constexpr UINT kPointerMessages[] = {
      0x0001 /*WM_CREATE*/, 0x000C /*WM_SETTEXT*/, 0x000D /*WM_GETTEXT*/,
      0x001A /*WM_WININICHANGE*/, 0x001B /*WM_DEVMODECHANGE*/, 0x0024 /*WM_GETMINMAXINFO*/,
      0x002B /*WM_DRAWITEM*/, 0x002C /*WM_MEASUREITEM*/, 0x002D /*WM_DELETEITEM*/,
      0x0039 /*WM_COMPAREITEM*/, 0x0046 /*WM_WINDOWPOSCHANGING*/, 0x0047 /*WM_WINDOWPOSCHANGED*/,
      0x004A /*WM_COPYDATA*/, 0x004E /*WM_NOTIFY*/, 0x0053 /*WM_HELP*/,
      0x007C /*WM_STYLECHANGING*/, 0x007D /*WM_STYLECHANGED*/, 0x0081 /*WM_NCCREATE*/,
      0x0083 /*WM_NCCALCSIZE*/, 0x0087 /*WM_GETDLGCODE*/, 0x00B0 /*EM_GETSEL*/,
      0x00B2 /*EM_GETRECT*/, 0x00B3 /*EM_SETRECT*/, 0x00B4 /*EM_SETRECTNP*/,
      0x00C2 /*EM_REPLACESEL*/, 0x00C4 /*EM_GETLINE*/, 0x00CB /*EM_SETTABSTOPS*/,
      0x00E3 /*SBM_GETRANGE*/, 0x00E9 /*SBM_SETSCROLLINFO*/, 0x00EA /*SBM_GETSCROLLINFO*/,
      0x00EB /*SBM_GETSCROLLBARINFO*/, 0x0140 /*CB_GETEDITSEL*/, 0x0143 /*CB_ADDSTRING*/,
      0x0145 /*CB_DIR*/, 0x0148 /*CB_GETLBTEXT*/, 0x014A /*CB_INSERTSTRING*/,
      0x014C /*CB_FINDSTRING*/, 0x014D /*CB_SELECTSTRING*/, 0x0152 /*CB_GETDROPPEDCONTROLRECT*/,
      0x0158 /*CB_FINDSTRINGEXACT*/, 0x0180 /*LB_ADDSTRING*/, 0x0181 /*LB_INSERTSTRING*/,
      0x0189 /*LB_GETTEXT*/, 0x018C /*LB_SELECTSTRING*/, 0x018D /*LB_DIR*/,
      0x018F /*LB_FINDSTRING*/, 0x0191 /*LB_GETSELITEMS*/, 0x0192 /*LB_SETTABSTOPS*/,
      0x0196 /*LB_ADDFILE*/, 0x0198 /*LB_GETITEMRECT*/, 0x01A2 /*LB_FINDSTRINGEXACT*/,
      0x0213 /*WM_NEXTMENU*/, 0x0214 /*WM_SIZING*/, 0x0216 /*WM_MOVING*/,
      0x0219 /*WM_DEVICECHANGE*/, 0x0220 /*WM_MDICREATE*/, 0x0229 /*WM_MDIGETACTIVE*/,
      0x022A /*WM_DROPOBJECT*/, 0x022B /*WM_QUERYDROPOBJECT*/, 0x022D /*WM_DRAGLOOP*/,
      0x022E /*WM_DRAGSELECT*/, 0x022F /*WM_DRAGMOVE*/, 0x030C /*WM_ASKCBFORMATNAME*/,
  };
  if (message > 0x030C) return false;  // The common case (WM_USER and up): one compare.
  // WM_DEVICECHANGE carries a pointer only for its 0x8000 events.
  if (message == 0x0219 && (wparam & 0x8000) == 0) return false;
  for (UINT m : kPointerMessages) {
    if (m == message) return true;
  }
  return false;
}

constexpr UINT kPeekFlags = PM_REMOVE | PM_NOYIELD | PM_QS_INPUT | PM_QS_POSTMESSAGE |
                            PM_QS_PAINT | PM_QS_SENDMESSAGE;

// Validates a Get/Peek hwnd filter: NULL, -1 (or a value Windows reads as
// -1: IsThreadMessageFilter), or a window of this thread.
bool ValidFilterWindow(HWND hwnd) {
  if (hwnd == nullptr || IsThreadMessageFilter(hwnd)) return true;
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
  // A timeout with the high bit set (other than INFINITE) is negative, as
  // Windows reads it: the call times out at once and the message is never
  // delivered (Wine's user32 msg.c test_SendMessageTimeout, 0x80000000).
  if (timeout_ms != INFINITE && static_cast<std::int32_t>(timeout_ms) < 0) {
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
  if (__builtin_expect(IsPointerMessage(Msg, wParam), 0)) {
    return Fail(ERROR_MESSAGE_SYNC_ONLY, FALSE);
  }
  DWORD error = PostToThread(idThread, nullptr, Msg, wParam, lParam);
  if (__builtin_expect(error != ERROR_SUCCESS, 0)) return Fail(error, FALSE);
  return TRUE;
}

BOOL WINAPI PostMessageW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
  if (__builtin_expect(IsPointerMessage(Msg, wParam), 0)) {
    return Fail(ERROR_MESSAGE_SYNC_ONLY, FALSE);
  }
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
    ACCESS_MASK granted;
    refs[i] = ResolveHandle(pHandles[i], &granted);
    if (!refs[i]) {
      ExplainInvalidHandle("MsgWaitForMultipleObjectsEx", pHandles[i], nullptr, i, nCount);
      return Fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
    }
    if ((granted & SYNCHRONIZE) == 0) {
      ExplainAccessDenied("MsgWaitForMultipleObjectsEx", pHandles[i], refs[i]->kind(), granted,
                          "SYNCHRONIZE");
      return Fail(ERROR_ACCESS_DENIED, WAIT_FAILED);
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
  return CurrentQueue().MsgWait(objects, pHandles, nCount, dwMilliseconds, dwWakeMask,
                               dwFlags | kMwmoReportSentOnly);
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
  // 0 means no timeout, as on Windows NT (Wine's test_SendMessageTimeout).
  const DWORD timeout = uTimeout == 0 ? INFINITE : uTimeout;
  if (!Send(hWnd, Msg, wParam, lParam, fuFlags, timeout, &result)) return 0;
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
