// The Win32 workloads, written once against the Win32 API only. Built twice
// (bench/CMakeLists.txt): natively against <apartments/win32.h> as
// `win32_bench` (rows labelled "ours:"), and with MinGW-w64 as
// `win32_bench.exe`, which scripts/bench.sh runs under Wine (rows labelled
// "wine:"), so the two sit side by side in the table.
//   roundtrip  event ping-pong    SetEvent(ping); WaitForSingleObject(pong)
//              SendMessageW       to a message-only window on another thread,
//                                 whose window procedure returns wParam + 1
//   post1/2    PostThreadMessageW one-way, consumer in GetMessageW (quota on)
//   wait       WaitForSingleObject on a signaled manual-reset event;
//              SetEvent with no waiter, then a zero-timeout wait consuming it
#if defined(_WIN32)
#include <windows.h>
#else
#include <apartments/win32.h>
#endif

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"
#include "workloads.h"

// Rows from the Windows build are Wine's (it is only ever run under Wine here).
#if defined(_WIN32)
#define WORKLOADS_IMPL "wine"
#else
#define WORKLOADS_IMPL "ours"
#endif

namespace bench {
namespace {

std::string Label(const char* what) { return std::string(WORKLOADS_IMPL) + ":" + what; }

void EventPingPong(Runner& r, Placement p) {
  HANDLE ping = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  HANDLE pong = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  std::atomic<bool> stop{false};
  long long value = 0;  // Handed over by the events (SetEvent releases, the wait acquires).
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        ready.Notify();
        for (;;) {
          WaitForSingleObject(ping, INFINITE);
          if (stop.load(std::memory_order_acquire)) return;
          ++value;
          SetEvent(pong);
        }
      },
      [&](long long v) {
        value = v;
        SetEvent(ping);
        WaitForSingleObject(pong, INFINITE);
        return value;
      },
      [&] {
        stop.store(true, std::memory_order_release);
        SetEvent(ping);
      });
  CloseHandle(ping);
  CloseHandle(pong);
}

LRESULT CALLBACK EchoProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  if (message == WM_USER) return static_cast<LRESULT>(wparam + 1);
  return DefWindowProcW(hwnd, message, wparam, lparam);
}

void SendMessageRoundTrip(Runner& r, Placement p) {
  static const ATOM kClass = [] {
    WNDCLASSW wc{};
    wc.lpfnWndProc = &EchoProc;
    wc.lpszClassName = L"BenchEcho";
    return RegisterClassW(&wc);
  }();
  (void)kClass;
  HWND hwnd = nullptr;
  DWORD tid = 0;
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        hwnd = CreateWindowExW(0, L"BenchEcho", L"", 0, 0, 0, 0, 0, HWND_MESSAGE, nullptr,
                               nullptr, nullptr);
        tid = GetCurrentThreadId();
        ready.Notify();
        MSG msg;
        while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
        DestroyWindow(hwnd);
      },
      [&](long long v) {
        return static_cast<long long>(SendMessageW(hwnd, WM_USER, static_cast<WPARAM>(v), 0));
      },
      [&] { PostThreadMessageW(tid, WM_QUIT, 0, 0); });
}

class ThreadMessages {
 public:
  template <typename OnMarker>
  void Consume(Signal& ready, OnMarker on_marker) {
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // Creates the queue.
    tid_.store(GetCurrentThreadId(), std::memory_order_release);
    ready.Notify();
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) {
      if (msg.message == WM_APP) on_marker();
    }
  }
  void Post(std::int64_t i) { PostOrRetry(WM_USER, static_cast<WPARAM>(i)); }
  void PostMarker() { PostOrRetry(WM_APP, 0); }
  void PostStop() { PostOrRetry(WM_QUIT, 0); }

 private:
  void PostOrRetry(UINT message, WPARAM wparam) {
    // Past the quota (10,000 queued) the post fails: let the consumer drain.
    while (!PostThreadMessageW(tid_.load(std::memory_order_acquire), message, wparam, 0)) {
      std::this_thread::yield();
    }
  }
  std::atomic<DWORD> tid_{0};
};

void WaitSignaled(Runner& r, Placement) {
  HANDLE e = CreateEventW(nullptr, TRUE, TRUE, nullptr);
  r.Run([&](std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) WaitForSingleObject(e, 0);
  });
  CloseHandle(e);
}

void SetEventNoWaiter(Runner& r, Placement) {
  HANDLE e = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  r.Run([&](std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
      SetEvent(e);
      WaitForSingleObject(e, 0);
    }
  });
  CloseHandle(e);
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  RegisterAllPlacements("roundtrip", Label("event ping-pong"), EventPingPong);
  RegisterAllPlacements("roundtrip", Label("SendMessageW"), SendMessageRoundTrip);
  RegisterPosting(Label("PostThreadMessageW"), [] { return std::make_unique<ThreadMessages>(); });
  Register("wait", Label("WaitForSingleObject(signaled)"), {Placement::kSingle}, WaitSignaled);
  Register("wait", Label("SetEvent(no waiter)+consume"), {Placement::kSingle}, SetEventNoWaiter);
  return RunCases(argc, argv);
}
