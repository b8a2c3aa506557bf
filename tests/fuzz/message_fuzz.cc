// libFuzzer target: the message API. Each input is a program of operations on
// the fuzzing thread's queue and its message-only windows: posts to threads
// and windows (live, destroyed, forged, broadcast), peeks with any filter and
// flags, dispatches and sends, queue status, zero-timeout message waits,
// class and window creation and destruction, window longs, quit, and floods
// to a lowered quota. Every result must be one the header documents, and at
// the end of each input (windows destroyed, queue drained, classes gone) the
// process's open handle count is back where it started.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "apartments/message_queue.h"
#include "apartments/win32.h"
#include "fuzz_util.h"
#include "kernel/kernel.h"

namespace {

using fuzz::Expect;
using fuzz::ExpectOneOf;

int g_proc_calls = 0;

LRESULT CALLBACK FuzzProc(HWND hwnd, UINT msg, WPARAM wp, LPARAM lp) {
  ++g_proc_calls;
  if (msg == WM_USER + 7) return 42;
  return DefWindowProcW(hwnd, msg, wp, lp);
}

const wchar_t* const kClasses[] = {L"FuzzClassA", L"fuzzclassa", L"FuzzClassB", L"", L"NoSuchClass"};

struct State {
  std::vector<HWND> windows;    // live windows of this thread
  std::vector<HWND> destroyed;  // windows this input destroyed
  bool registered[3] = {};      // kClasses[0] (== [1]) and [2]
  HANDLE event = nullptr;
};

HWND PickWindow(State& s, fuzz::Input& in) {
  std::uint8_t how = in.Byte();
  switch (how % 7) {
    case 0: return nullptr;
    case 1: return HWND_BROADCAST;
    case 2: return HWND_MESSAGE;
    case 3: return reinterpret_cast<HWND>(static_cast<std::uintptr_t>(in.U64()));
    case 4: return s.destroyed.empty() ? nullptr : s.destroyed[in.Byte() % s.destroyed.size()];
    default: return s.windows.empty() ? nullptr : s.windows[in.Byte() % s.windows.size()];
  }
}

bool IsLive(const State& s, HWND h) {
  for (HWND w : s.windows) {
    if (w == h) return true;
  }
  return false;
}

// Messages the fuzzer may deliver: none carries a pointer a window procedure
// would follow (Windows would crash on a forged one as well).
UINT PickMessage(fuzz::Input& in) {
  switch (in.Below(4)) {
    case 0: return WM_NULL;
    case 1: return WM_USER + in.Byte();
    case 2: return WM_APP + in.Byte();
    default: return WM_USER + 7;
  }
}

void Destroy(State& s, HWND h) {
  for (std::size_t k = 0; k < s.windows.size(); ++k) {
    if (s.windows[k] == h) {
      s.windows.erase(s.windows.begin() + static_cast<std::ptrdiff_t>(k));
      s.destroyed.push_back(h);
      Expect(DestroyWindow(h) == TRUE, "DestroyWindow of a live window failed");
      return;
    }
  }
}

void RunOne(fuzz::Input& in, State& s) {
  MSG msg{};
  switch (in.Below(14)) {
    case 0: {  // PostThreadMessageW to this thread, another, or none
      DWORD tid = in.Below(3) == 0 ? in.U32() : GetCurrentThreadId();
      SetLastError(0);
      if (!PostThreadMessageW(tid, PickMessage(in), in.U32(), in.U32())) {
        ExpectOneOf<DWORD>("PostThreadMessageW", GetLastError(),
                           {ERROR_INVALID_THREAD_ID, ERROR_NOT_ENOUGH_QUOTA});
      }
      break;
    }
    case 1: {  // PostMessageW to any window value
      HWND h = PickWindow(s, in);
      SetLastError(0);
      if (!PostMessageW(h, PickMessage(in), in.U32(), in.U32())) {
        ExpectOneOf<DWORD>("PostMessageW", GetLastError(), {ERROR_INVALID_WINDOW_HANDLE, ERROR_NOT_ENOUGH_QUOTA});
        Expect(!IsLive(s, h) || GetLastError() == ERROR_NOT_ENOUGH_QUOTA, "PostMessageW to a live window failed");
      }
      break;
    }
    case 2: {  // PeekMessageW with any filter and flags
      HWND h = PickWindow(s, in);
      UINT min = in.Below(2) ? 0 : PickMessage(in), max = in.Below(2) ? 0 : PickMessage(in);
      UINT flags = in.Below(4) == 0 ? in.U32() : (in.Byte() & (PM_REMOVE | PM_NOYIELD));
      const bool null_msg = in.Byte() % 16 == 0;
      SetLastError(0);
      BOOL got = PeekMessageW(null_msg ? nullptr : &msg, h, min, max, flags);
      if (!got) {
        ExpectOneOf<DWORD>("PeekMessageW", GetLastError(),
                           {0, ERROR_INVALID_WINDOW_HANDLE, ERROR_INVALID_PARAMETER, ERROR_INVALID_FLAGS});
      } else {
        Expect(!null_msg, "PeekMessageW stored a message through a null pointer");
      }
      break;
    }
    case 3: {  // GetMessageW, only when a message is surely there
      if (!PostThreadMessageW(GetCurrentThreadId(), WM_USER + 1, 0, 0)) break;
      BOOL r = GetMessageW(&msg, nullptr, 0, 0);
      Expect(r != -1, "GetMessageW failed with a message waiting");
      break;
    }
    case 4: {  // DispatchMessageW of any message
      msg.hwnd = PickWindow(s, in);
      msg.message = PickMessage(in);
      msg.wParam = in.U32();
      msg.lParam = in.U32();
      SetLastError(0);
      DispatchMessageW(&msg);
      ExpectOneOf<DWORD>("DispatchMessageW", GetLastError(), {0, ERROR_INVALID_WINDOW_HANDLE});
      break;
    }
    case 5: {  // SendMessageW / SendMessageTimeoutW to any window
      HWND h = PickWindow(s, in);
      UINT m = PickMessage(in);
      SetLastError(0);
      if (in.Below(2)) {
        LRESULT r = SendMessageW(h, m, 0, 0);
        if (IsLive(s, h) && m == WM_USER + 7) Expect(r == 42, "SendMessageW lost the procedure's result");
      } else {
        DWORD_PTR result = 0;
        SendMessageTimeoutW(h, m, 0, 0, in.Below(2) ? SMTO_BLOCK : SMTO_NORMAL, 0, &result);
      }
      ExpectOneOf<DWORD>("SendMessageW", GetLastError(), {0, ERROR_INVALID_WINDOW_HANDLE, ERROR_TIMEOUT});
      break;
    }
    case 6: {  // GetQueueStatus with any flags
      UINT flags = in.Below(2) ? in.U32() : (in.Byte() | (in.Byte() << 8)) & QS_ALLINPUT;
      SetLastError(0);
      DWORD r = GetQueueStatus(flags);
      if (r == 0) ExpectOneOf<DWORD>("GetQueueStatus", GetLastError(), {0, ERROR_INVALID_FLAGS});
      break;
    }
    case 7: {  // MsgWaitForMultipleObjectsEx, zero timeout
      HANDLE handles[66];
      DWORD n = in.Below(66);
      for (DWORD k = 0; k < n; ++k) {
        handles[k] = in.Below(4) == 0 ? reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(in.U64())) : s.event;
      }
      DWORD mask = in.Below(4) == 0 ? in.U32() : QS_ALLINPUT;
      DWORD flags = in.Below(4) == 0 ? in.U32() : (in.Byte() & (MWMO_INPUTAVAILABLE | MWMO_WAITALL));
      SetLastError(0);
      DWORD r = MsgWaitForMultipleObjectsEx(n, handles, 0, mask, flags);
      if (r == WAIT_FAILED) {
        ExpectOneOf<DWORD>("MsgWaitForMultipleObjectsEx", GetLastError(),
                           {ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER});
      } else {
        Expect(r == WAIT_TIMEOUT || r <= WAIT_OBJECT_0 + n || (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + n) ||
                   r == WAIT_IO_COMPLETION,
               "MsgWaitForMultipleObjectsEx: result out of range");
      }
      break;
    }
    case 8: {  // RegisterClassW / UnregisterClassW
      // The class atoms are never reused here (0xC000-0xFFFF, then
      // ERROR_NOT_ENOUGH_MEMORY for good; Windows frees an atom with its
      // class): registrations stop well before that unless
      // APARTMENTS_FUZZ_STRICT_ATOMS asks to see the failure.
      static int registrations = 0;
      if (++registrations > 12000 && std::getenv("APARTMENTS_FUZZ_STRICT_ATOMS") == nullptr) break;
      int c = in.Below(5);
      const bool reg = in.Below(2);
      int slot = c <= 1 ? 0 : c == 2 ? 2 : -1;
      SetLastError(0);
      if (reg) {
        WNDCLASSW wc{};
        wc.lpfnWndProc = in.Below(8) == 0 ? nullptr : FuzzProc;
        wc.lpszClassName = kClasses[c];
        ATOM atom = RegisterClassW(&wc);
        if (atom == 0) {
          ExpectOneOf<DWORD>("RegisterClassW", GetLastError(), {ERROR_CLASS_ALREADY_EXISTS, ERROR_INVALID_PARAMETER});
        } else {
          Expect(slot >= 0 ? !s.registered[slot] : true, "RegisterClassW registered a class twice");
          if (slot >= 0) {
            s.registered[slot] = true;
          } else {
            // A class this program does not track: gone at once.
            Expect(UnregisterClassW(kClasses[c], nullptr) == TRUE, "UnregisterClassW of a fresh class failed");
          }
        }
      } else {
        if (UnregisterClassW(kClasses[c], nullptr)) {
          Expect(slot >= 0 && s.registered[slot], "UnregisterClassW removed a class never registered");
          s.registered[slot] = false;
        } else {
          ExpectOneOf<DWORD>("UnregisterClassW", GetLastError(),
                             {ERROR_CLASS_DOES_NOT_EXIST, ERROR_CLASS_HAS_WINDOWS, ERROR_INVALID_PARAMETER});
        }
      }
      break;
    }
    case 9: {  // CreateWindowExW with any class and parent
      if (s.windows.size() >= 8) break;
      int c = in.Below(5);
      HWND parent = PickWindow(s, in);
      SetLastError(0);
      HWND h = CreateWindowExW(0, kClasses[c], L"", 0, 0, 0, 0, 0, parent, nullptr, nullptr, nullptr);
      if (h == nullptr) {
        ExpectOneOf<DWORD>("CreateWindowExW", GetLastError(),
                           {ERROR_CANNOT_FIND_WND_CLASS, ERROR_INVALID_WINDOW_HANDLE, ERROR_NOT_SUPPORTED});
      } else {
        s.windows.push_back(h);
      }
      break;
    }
    case 10: {  // DestroyWindow of anything
      HWND h = PickWindow(s, in);
      if (IsLive(s, h)) {
        Destroy(s, h);
      } else {
        SetLastError(0);
        Expect(DestroyWindow(h) == FALSE, "DestroyWindow succeeded on a window this input does not own");
        ExpectOneOf<DWORD>("DestroyWindow", GetLastError(), {ERROR_INVALID_WINDOW_HANDLE, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 11: {  // Window longs with any index
      HWND h = PickWindow(s, in);
      int index = in.Below(2) ? static_cast<int>(in.U32()) : -static_cast<int>(in.Below(32));
      if (index == GWLP_WNDPROC) break;  // would replace the procedure with a number
      SetLastError(0);
      if (in.Below(2)) {
        SetWindowLongPtrW(h, index, static_cast<LONG_PTR>(in.U32()));
      } else {
        GetWindowLongPtrW(h, index);
      }
      ExpectOneOf<DWORD>("Get/SetWindowLongPtrW", GetLastError(),
                         {0, ERROR_INVALID_WINDOW_HANDLE, ERROR_INVALID_INDEX, ERROR_INVALID_PARAMETER});
      break;
    }
    case 12: {  // quit, then take it back
      PostQuitMessage(static_cast<int>(in.Byte()));
      bool seen = false;
      while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) seen |= msg.message == WM_QUIT;
      Expect(seen, "PostQuitMessage's WM_QUIT never came");
      break;
    }
    default: {  // flood to a lowered quota: the post past it fails, nothing else
      const DWORD saved = apartments::GetPostMessageLimit();
      const DWORD limit = 1 + in.Below(64);
      Expect(apartments::SetPostMessageLimit(limit) == S_OK, "SetPostMessageLimit refused a valid limit");
      int posted = 0;
      while (PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0)) {
        if (++posted > 100000) fuzz::Fail("the quota never stopped a flood");
      }
      ExpectOneOf<DWORD>("flood", GetLastError(), {ERROR_NOT_ENOUGH_QUOTA});
      Expect(apartments::SetPostMessageLimit(saved) == S_OK, "SetPostMessageLimit refused the saved limit");
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // the queue exists
  const std::size_t before = apartments::internal::OpenHandleCountForTesting();
  fuzz::Input in(data, size);
  State s;
  s.event = CreateEventW(nullptr, TRUE, in.Byte() & 1, nullptr);
  for (int step = 0; step < 128 && !in.empty(); ++step) RunOne(in, s);
  while (!s.windows.empty()) Destroy(s, s.windows.back());
  while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) {
  }
  UnregisterClassW(kClasses[0], nullptr);
  UnregisterClassW(kClasses[2], nullptr);
  CloseHandle(s.event);
  if (apartments::internal::OpenHandleCountForTesting() != before) fuzz::Fail("handles leaked by this input");
  return 0;
}
