// apartments/win32_message.h
//
// Thread message queues and message-only windows with Win32 names,
// signatures and values: PostThreadMessageW, PostMessageW, SendMessageW,
// GetMessageW, PeekMessageW, DispatchMessageW, MsgWaitForMultipleObjectsEx,
// RegisterClassW, CreateWindowExW, ...
//
// Queues. A thread gets its message queue on its first message call (any
// function below that reads, waits on or creates something for the calling
// thread's queue: GetMessageW, PeekMessageW, WaitMessage, GetQueueStatus,
// MsgWaitForMultipleObjects(Ex), PostQuitMessage, CreateWindowExW,
// SendMessageW, PostMessageW(NULL, ...), InSendMessage(Ex), ReplyMessage).
// Until then PostThreadMessageW to it fails with ERROR_INVALID_THREAD_ID. A
// thread's queue, and every window it owns, goes away when the thread exits:
// messages still queued are released (counted for diagnostics), windows are
// destroyed WITHOUT WM_DESTROY/WM_NCDESTROY being sent, pending SendMessageW
// calls to it fail, and later posts fail with ERROR_INVALID_THREAD_ID.
//
// The posted-message quota. Like Windows (USERPostMessageLimit), a queue holds
// at most a fixed number of posted messages, 10,000 by default. A post past
// the limit fails with ERROR_NOT_ENOUGH_QUOTA (1816): the message is not
// queued and the queue is unharmed. The limit is per process; see
// apartments/message_queue.h (SetPostMessageLimit, APARTMENTS_POST_MESSAGE_LIMIT).
// WM_QUIT from PostQuitMessage is a flag, not a queued message, and does not
// count against the quota.
//
// Windows. Only message-only windows exist: CreateWindowExW accepts
// HWND_MESSAGE or NULL as the parent and creates a message-only window in
// both cases (it is never shown, has no size, and receives no broadcasts). A
// real window as parent fails with ERROR_NOT_SUPPORTED. An HWND is an index
// plus a generation into a process-wide table: a destroyed, stale or forged
// HWND gives ERROR_INVALID_WINDOW_HANDLE, never undefined behaviour. Class
// names are process-wide and case-insensitive; hInstance is accepted and
// ignored when naming a class.
//
// Order and priority. Posted messages are delivered in FIFO order per queue
// (so per sender). Messages sent from another thread (SendMessageW) are
// served before posted ones, inside GetMessageW, PeekMessageW, WaitMessage
// and inside the receiving thread's own SendMessageW while it waits for a
// reply. MsgWaitForMultipleObjects(Ex) only reports them (QS_SENDMESSAGE), as
// on Windows: the next GetMessageW or PeekMessageW runs them.
//
// Streams of posts. Windows promises no delivery latency, and neither do we:
// a GetMessageW loop that is being fed a stream of posts (its latest run took
// more than one message) yields its CPU to a producer running on the same
// CPU instead of sleeping, and lets a producer on another CPU get a batch
// ahead before it takes the messages (while more keep arriving, for about
// 50 µs at most). This keeps throughput up without delaying round trips: a
// thread answering one message at a time never waits this way.
//
// Not supported (no input devices, no painting): keyboard, mouse, timer and
// paint messages; the QS_ input bits are defined but never set.
// TranslateMessage does nothing.
//
// Every function here may be called from any thread unless it says otherwise.
// Functions that fail set the thread's last error (GetLastError).
#ifndef APARTMENTS_WIN32_MESSAGE_H_
#define APARTMENTS_WIN32_MESSAGE_H_

#include "apartments/win32_types.h"

typedef struct HINSTANCE__ {
  int unused;
} * HINSTANCE;
typedef HINSTANCE HMODULE;
typedef struct HICON__ {
  int unused;
} * HICON;
typedef HICON HCURSOR;
typedef struct HBRUSH__ {
  int unused;
} * HBRUSH;
typedef struct HMENU__ {
  int unused;
} * HMENU;

typedef UINT_PTR WPARAM;
typedef LONG_PTR LPARAM;
typedef LONG_PTR LRESULT;
typedef WORD ATOM;
typedef DWORD_PTR* PDWORD_PTR;

typedef LRESULT(CALLBACK* WNDPROC)(HWND, UINT, WPARAM, LPARAM);
typedef VOID(CALLBACK* SENDASYNCPROC)(HWND, UINT, ULONG_PTR, LRESULT);

typedef struct tagPOINT {
  LONG x;
  LONG y;
} POINT, *PPOINT, *LPPOINT;

typedef struct tagMSG {
  HWND hwnd;
  UINT message;
  WPARAM wParam;
  LPARAM lParam;
  DWORD time;  // GetTickCount() when posted (coarse: within a few ms).
  POINT pt;    // Always {0, 0}: there is no cursor.
} MSG, *PMSG, *LPMSG;

typedef struct tagWNDCLASSW {
  UINT style;
  WNDPROC lpfnWndProc;
  int cbClsExtra;
  int cbWndExtra;
  HINSTANCE hInstance;
  HICON hIcon;
  HCURSOR hCursor;
  HBRUSH hbrBackground;
  LPCWSTR lpszMenuName;
  LPCWSTR lpszClassName;
} WNDCLASSW, *PWNDCLASSW, *LPWNDCLASSW;

typedef struct tagWNDCLASSEXW {
  UINT cbSize;
  UINT style;
  WNDPROC lpfnWndProc;
  int cbClsExtra;
  int cbWndExtra;
  HINSTANCE hInstance;
  HICON hIcon;
  HCURSOR hCursor;
  HBRUSH hbrBackground;
  LPCWSTR lpszMenuName;
  LPCWSTR lpszClassName;
  HICON hIconSm;
} WNDCLASSEXW, *PWNDCLASSEXW, *LPWNDCLASSEXW;

typedef struct tagCREATESTRUCTW {
  LPVOID lpCreateParams;
  HINSTANCE hInstance;
  HMENU hMenu;
  HWND hwndParent;
  int cy;
  int cx;
  int y;
  int x;
  LONG style;
  LPCWSTR lpszName;
  LPCWSTR lpszClass;
  DWORD dwExStyle;
} CREATESTRUCTW, *LPCREATESTRUCTW;

#define MAKEINTATOM(i) ((LPWSTR)((ULONG_PTR)((WORD)(i))))
#ifndef MAKELONG
#define MAKELONG(a, b) ((LONG)(((WORD)(((DWORD_PTR)(a)) & 0xffff)) | ((DWORD)((WORD)(((DWORD_PTR)(b)) & 0xffff))) << 16))
#endif
#ifndef LOWORD
#define LOWORD(l) ((WORD)(((DWORD_PTR)(l)) & 0xffff))
#define HIWORD(l) ((WORD)((((DWORD_PTR)(l)) >> 16) & 0xffff))
#endif

// Messages.
#define WM_NULL 0x0000
#define WM_CREATE 0x0001
#define WM_DESTROY 0x0002
#define WM_CLOSE 0x0010
#define WM_QUIT 0x0012
#define WM_NCCREATE 0x0081
#define WM_NCDESTROY 0x0082
#define WM_TIMER 0x0113
// The DDE messages (<dde.h>), which CoWaitForMultipleHandles dispatches in an STA.
#define WM_DDE_FIRST 0x03E0
#define WM_DDE_LAST (WM_DDE_FIRST + 8)
#define WM_USER 0x0400
#define WM_APP 0x8000

// PeekMessage flags.
#define PM_NOREMOVE 0x0000u
#define PM_REMOVE 0x0001u
#define PM_NOYIELD 0x0002u

// Queue status bits (GetQueueStatus, MsgWaitForMultipleObjects wake masks).
#define QS_KEY 0x0001u
#define QS_MOUSEMOVE 0x0002u
#define QS_MOUSEBUTTON 0x0004u
#define QS_POSTMESSAGE 0x0008u
#define QS_TIMER 0x0010u
#define QS_PAINT 0x0020u
#define QS_SENDMESSAGE 0x0040u
#define QS_HOTKEY 0x0080u
#define QS_ALLPOSTMESSAGE 0x0100u
#define QS_RAWINPUT 0x0400u
#define QS_TOUCH 0x0800u
#define QS_POINTER 0x1000u
#define QS_MOUSE (QS_MOUSEMOVE | QS_MOUSEBUTTON)
#define QS_INPUT (QS_MOUSE | QS_KEY | QS_RAWINPUT | QS_TOUCH | QS_POINTER)
#define QS_ALLEVENTS (QS_INPUT | QS_POSTMESSAGE | QS_TIMER | QS_PAINT | QS_HOTKEY)
#define QS_ALLINPUT (QS_INPUT | QS_POSTMESSAGE | QS_TIMER | QS_PAINT | QS_HOTKEY | QS_SENDMESSAGE)

#define PM_QS_INPUT (QS_INPUT << 16)
#define PM_QS_POSTMESSAGE ((QS_POSTMESSAGE | QS_HOTKEY | QS_TIMER) << 16)
#define PM_QS_PAINT (QS_PAINT << 16)
#define PM_QS_SENDMESSAGE (QS_SENDMESSAGE << 16)

// MsgWaitForMultipleObjectsEx flags.
#define MWMO_WAITALL 0x0001u
#define MWMO_ALERTABLE 0x0002u
#define MWMO_INPUTAVAILABLE 0x0004u

// SendMessageTimeout flags.
#define SMTO_NORMAL 0x0000u
#define SMTO_BLOCK 0x0001u
#define SMTO_ABORTIFHUNG 0x0002u
#define SMTO_NOTIMEOUTIFNOTHUNG 0x0008u
#define SMTO_ERRORONEXIT 0x0020u

// InSendMessageEx results.
#define ISMEX_NOSEND 0x00000000u
#define ISMEX_SEND 0x00000001u
#define ISMEX_NOTIFY 0x00000002u
#define ISMEX_CALLBACK 0x00000004u
#define ISMEX_REPLIED 0x00000008u

// Special window handles.
#define HWND_MESSAGE ((HWND)-3)
#define HWND_BROADCAST ((HWND)0xffff)

// GetWindowLongPtr indexes.
#define GWLP_WNDPROC (-4)
#define GWLP_HINSTANCE (-6)
#define GWLP_HWNDPARENT (-8)
#define GWLP_ID (-12)
#define GWLP_USERDATA (-21)

extern "C" {

// --- Posting ----------------------------------------------------------------

// Queues a message on the thread `idThread`'s queue (hwnd NULL) and returns
// at once. Errors: ERROR_INVALID_THREAD_ID when that thread has no queue (it
// never made a message call, or has exited); ERROR_NOT_ENOUGH_QUOTA when its
// queue already holds the posted-message limit (nothing is queued);
// ERROR_MESSAGE_SYNC_ONLY for a system message whose parameters carry
// pointers (WM_SETTEXT, WM_COPYDATA, WM_CREATE, WM_WINDOWPOSCHANGING, the
// list and combo box string messages, ...: the list Wine keeps, which Windows
// refuses likewise), checked first, as PostMessageW does.
// Memory ordering: writes made before the post are visible to the thread that
// retrieves the message.
BOOL WINAPI PostThreadMessageW(DWORD idThread, UINT Msg, WPARAM wParam, LPARAM lParam);
// Queues a message for `hWnd` on its owning thread's queue. hWnd NULL posts a
// thread message to the calling thread (as PostThreadMessageW would);
// HWND_BROADCAST succeeds and reaches nobody (message-only windows receive no
// broadcasts). Errors: ERROR_MESSAGE_SYNC_ONLY (as PostThreadMessageW),
// ERROR_INVALID_WINDOW_HANDLE, ERROR_NOT_ENOUGH_QUOTA.
// A message posted to a window destroyed before it is retrieved is dropped at
// retrieval (and counted).
BOOL WINAPI PostMessageW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam);
// Sets the calling thread's quit flag: once no posted message matching the
// reader's filter remains, GetMessageW returns 0 with WM_QUIT (wParam =
// nExitCode) and PeekMessageW(PM_REMOVE) returns it and clears the flag,
// whatever the reader's message range (as both pages document; an hWnd
// filter naming a window still excludes it).
VOID WINAPI PostQuitMessage(int nExitCode);

// --- Retrieving -------------------------------------------------------------

// Calling thread only (its own queue). Serves messages sent to the thread
// first, then retrieves the first posted message matching the filters:
//  hWnd: NULL any message; (HWND)-1 thread messages only (hwnd NULL), and so
//   do (HWND)1 and (HWND)0xFFFFFFFF (Windows compares a window handle's 32
//   bits; Wine treats 1 like -1); a window of the calling thread: that
//   window's messages. Another thread's window or an invalid one fails with
//   ERROR_INVALID_WINDOW_HANDLE.
//  wMsgFilterMin/Max: 0/0 any message; min <= max the inclusive range; min >
//   max every message outside (max, min) (as Windows and Wine do).
// GetMessageW blocks, idle (BlockKind::kMessageIdle in the wait record), until
// a message arrives; returns nonzero for a message, 0 for WM_QUIT, -1 on
// error (a bad hWnd filter or a null lpMsg: ERROR_INVALID_PARAMETER).
BOOL WINAPI GetMessageW(LPMSG lpMsg, HWND hWnd, UINT wMsgFilterMin, UINT wMsgFilterMax);
// Never blocks. wRemoveMsg: PM_NOREMOVE or PM_REMOVE, optionally | PM_NOYIELD
// (ignored) | PM_QS_* (restricts which kinds are examined: without
// PM_QS_SENDMESSAGE sent messages are not served; without PM_QS_POSTMESSAGE
// no posted message or WM_QUIT is returned; none given means all). Returns
// TRUE when a posted message (or WM_QUIT) was stored in lpMsg, FALSE when
// none (sent messages served meanwhile do not count). Errors as GetMessageW.
BOOL WINAPI PeekMessageW(LPMSG lpMsg, HWND hWnd, UINT wMsgFilterMin, UINT wMsgFilterMax,
                         UINT wRemoveMsg);
// Calls the window procedure of lpMsg->hwnd with the message and returns its
// result. Calling thread's windows only: another thread's window gives 0 and
// ERROR_MESSAGE_SYNC_ONLY; an invalid one 0 and ERROR_INVALID_WINDOW_HANDLE;
// a thread message (hwnd NULL) returns 0 and does nothing.
LRESULT WINAPI DispatchMessageW(const MSG* lpMsg);
// Does nothing (no keyboard input); returns FALSE.
BOOL WINAPI TranslateMessage(const MSG* lpMsg);
// Calling thread only. High word: the QS_ kinds of message currently in the
// queue; low word: the kinds added since the last GetQueueStatus, GetMessageW
// or PeekMessageW that are still in the queue; both masked by `flags`, whose
// changed bits are then cleared. Invalid flags: 0 and ERROR_INVALID_FLAGS.
DWORD WINAPI GetQueueStatus(UINT flags);
// Calling thread only. Blocks (idle) until new input arrives in the queue:
// input already there when the queue was last examined does not count, as on
// Windows. Serves sent messages while waiting. Returns TRUE.
BOOL WINAPI WaitMessage(void);

// Waits for the handles (kernel objects, at most MAXIMUM_WAIT_OBJECTS - 1)
// or for queue input of the QS_ kinds in dwWakeMask; one kernel wait over
// nCount + 1 objects, published as BlockKind::kMessageIdle. Returns
// WAIT_OBJECT_0 + i for handle i (lowest signaled first), WAIT_OBJECT_0 +
// nCount for input, WAIT_ABANDONED_0 + i, WAIT_TIMEOUT, WAIT_IO_COMPLETION
// (MWMO_ALERTABLE, APCs ran), or WAIT_FAILED with ERROR_INVALID_HANDLE (a bad
// handle) or ERROR_INVALID_PARAMETER (nCount > 63, null array, unknown flags
// or mask bits, a duplicate handle with MWMO_WAITALL).
// Input: without MWMO_INPUTAVAILABLE only input added since the queue was
// last examined (GetMessageW, PeekMessageW, GetQueueStatus) counts; with it,
// any input in the queue. One deviation: messages already taken into the
// reader's private batch are "examined" when the batch was taken, so input
// that arrived after the last refill may wake a wait Windows would not wake
// (never the reverse).
// Sent messages are not served inside the wait, as on Windows: with
// QS_SENDMESSAGE in dwWakeMask, one that arrives (or, with
// MWMO_INPUTAVAILABLE, is pending) returns WAIT_OBJECT_0 + nCount, and the
// next GetMessageW or PeekMessageW runs it; without it, it does not wake the
// wait. A handle without SYNCHRONIZE: WAIT_FAILED with ERROR_ACCESS_DENIED.
// MWMO_WAITALL returns WAIT_OBJECT_0 once every handle is signaled (and
// acquired) and input is present.
DWORD WINAPI MsgWaitForMultipleObjectsEx(DWORD nCount, const HANDLE* pHandles,
                                         DWORD dwMilliseconds, DWORD dwWakeMask, DWORD dwFlags);
DWORD WINAPI MsgWaitForMultipleObjects(DWORD nCount, const HANDLE* pHandles, BOOL fWaitAll,
                                       DWORD dwMilliseconds, DWORD dwWakeMask);

// --- Sending ----------------------------------------------------------------

// Calls hWnd's window procedure and returns its result. For a window of the
// calling thread the procedure is called directly. For another thread's
// window, the message is queued to that thread, which runs it the next time
// it examines its queue (before posted messages); the caller blocks
// (BlockKind::kSendMessage, target_tid = the window's thread) until the reply,
// and meanwhile serves messages SENT to it (so two threads sending to each
// other complete), but not posted ones. Returns 0 with
// ERROR_INVALID_WINDOW_HANDLE for an invalid window, or when the window's
// thread exits before replying.
LRESULT WINAPI SendMessageW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam);
// As SendMessageW, but gives up after uTimeout ms: returns 0 with
// ERROR_TIMEOUT (the message, if the receiver has not started it yet, is
// withdrawn and never runs; if it is running, its result is discarded).
// As on Windows NT, uTimeout 0 means no timeout (as INFINITE does), and a
// timeout with the high bit set (other than INFINITE) is negative: 0 with
// ERROR_TIMEOUT at once, the message never delivered.
// SMTO_BLOCK: do not serve sent messages while waiting. SMTO_ABORTIFHUNG:
// fail at once with ERROR_TIMEOUT when the receiver is hung (not waiting for
// messages and has not examined its queue for 5 s by apartments::GetClock()).
// SMTO_NOTIMEOUTIFNOTHUNG and SMTO_ERRORONEXIT are accepted; the timeout
// always applies. On success returns nonzero and stores the result in
// lpdwResult when not null. Same-thread windows: called directly, no timeout.
LRESULT WINAPI SendMessageTimeoutW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam,
                                   UINT fuFlags, UINT uTimeout, PDWORD_PTR lpdwResult);
// Calling thread: whether the window procedure now running serves a message
// sent by another thread. InSendMessageEx returns ISMEX_NOSEND, or ISMEX_SEND
// | ISMEX_REPLIED once ReplyMessage was called. lpReserved must be NULL.
BOOL WINAPI InSendMessage(void);
DWORD WINAPI InSendMessageEx(LPVOID lpReserved);
// Replies early to the message sent by another thread that the calling thread
// is serving: the sender resumes with lResult. FALSE when not serving a sent
// message or already replied.
BOOL WINAPI ReplyMessage(LRESULT lResult);

// --- Window classes and windows -------------------------------------------

// Registers a class; returns its atom (0xC000 and up) or 0 with
// ERROR_CLASS_ALREADY_EXISTS (same name, case-insensitive),
// ERROR_INVALID_PARAMETER (null class, procedure or name; wrong cbSize;
// negative extra bytes).
ATOM WINAPI RegisterClassW(const WNDCLASSW* lpWndClass);
ATOM WINAPI RegisterClassExW(const WNDCLASSEXW* lpWndClass);
// Unregisters a class named by string or MAKEINTATOM. Errors:
// ERROR_CLASS_DOES_NOT_EXIST, ERROR_CLASS_HAS_WINDOWS.
BOOL WINAPI UnregisterClassW(LPCWSTR lpClassName, HINSTANCE hInstance);
// Creates a message-only window owned by the calling thread (see the file
// comment for parents). Sends WM_NCCREATE (FALSE fails the creation) and
// WM_CREATE (-1 fails it; the window is destroyed) with a CREATESTRUCTW in
// lParam, as Windows does. Errors: ERROR_CANNOT_FIND_WND_CLASS,
// ERROR_INVALID_WINDOW_HANDLE (bad parent), ERROR_NOT_SUPPORTED (a real
// parent), ERROR_NOT_ENOUGH_MEMORY (65,535 windows exist).
HWND WINAPI CreateWindowExW(DWORD dwExStyle, LPCWSTR lpClassName, LPCWSTR lpWindowName,
                            DWORD dwStyle, int X, int Y, int nWidth, int nHeight,
                            HWND hWndParent, HMENU hMenu, HINSTANCE hInstance, LPVOID lpParam);
// Owning thread only (else ERROR_ACCESS_DENIED). Sends WM_DESTROY then
// WM_NCDESTROY, then the handle is invalid. Messages still queued for it are
// dropped when reached; sends waiting for it fail.
BOOL WINAPI DestroyWindow(HWND hWnd);
// Default processing: WM_NCCREATE returns TRUE; WM_CLOSE destroys the window;
// anything else returns 0.
LRESULT WINAPI DefWindowProcW(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam);
// The id of the thread owning the window (and the process id in
// lpdwProcessId when not null); 0 with ERROR_INVALID_WINDOW_HANDLE.
DWORD WINAPI GetWindowThreadProcessId(HWND hWnd, LPDWORD lpdwProcessId);
// Whether hWnd names a live window. Never fails.
BOOL WINAPI IsWindow(HWND hWnd);
// GWLP_USERDATA, GWLP_WNDPROC (a null procedure: ERROR_INVALID_PARAMETER),
// GWLP_ID, GWLP_HINSTANCE (read and written), GWLP_HWNDPARENT (reads 0).
// SetWindowLongPtrW returns the previous value. Other indexes (extra window
// bytes are not supported): ERROR_INVALID_INDEX. A bad window:
// ERROR_INVALID_WINDOW_HANDLE. Both return 0 on failure; as on Windows,
// success does not clear the last error, so callers that must tell a stored 0
// from a failure call SetLastError(0) first.
LONG_PTR WINAPI SetWindowLongPtrW(HWND hWnd, int nIndex, LONG_PTR dwNewLong);
LONG_PTR WINAPI GetWindowLongPtrW(HWND hWnd, int nIndex);

}  // extern "C"

#endif  // APARTMENTS_WIN32_MESSAGE_H_
