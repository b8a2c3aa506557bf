// The hang watchdog's cost when nothing is wrong (diagnostics issue: "at most
// 3% on the call benchmark, measured on/off in the same run"): the STA->STA
// IAdder proxy call of com_bench, in alternating rounds with no watchdog and
// with a started HangWatchdog (default options, poll interval from argv[1],
// default 100 ms). Prints each round and the ratio of the medians.
//
// What "off" includes: the per-dispatch publication the watchdog relies on
// (a few relaxed stores per DispatchMessage and incoming call) is always
// compiled in; only the watchdog thread and its polls are toggled.
//
// Usage: watchdog_bench [poll_ms] [rounds] [calls_per_round]
#include <apartments/com_object.h>
#include <apartments/diagnostics.h>
#include <apartments/proxy.h>
#include <apartments/win32.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace wdbench {

struct IAdder : public IUnknown {
  STDMETHOD(AddOne)(LONGLONG v, LONGLONG* result) PURE;
};
APARTMENTS_INTERFACE(IAdder, IUnknown, "3f5b9a3e-7c1d-4e2a-9b8f-0a1b2c3d4e02");

APARTMENTS_PROXY_BEGIN(IAdder)
  APARTMENTS_PROXY_METHOD(AddOne, (LONGLONG v, LONGLONG* result), (v, result))
APARTMENTS_PROXY_END(IAdder)

class Adder final : public apartments::ComObject<Adder, IAdder> {
 public:
  STDMETHODIMP AddOne(LONGLONG v, LONGLONG* result) override {
    *result = v + 1;
    return S_OK;
  }
};

void Check(HRESULT hr, const char* what) {
  if (FAILED(hr)) {
    std::fprintf(stderr, "%s failed: 0x%08x\n", what, static_cast<unsigned>(hr));
    std::exit(1);
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace wdbench

int main(int argc, char** argv) {
  using namespace wdbench;
  const int poll_ms = argc > 1 ? std::atoi(argv[1]) : 100;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 10;
  const int calls = argc > 3 ? std::atoi(argv[3]) : 20000;

  IStream* marshaled = nullptr;
  std::atomic<DWORD> server_tid{0};
  HANDLE ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::thread server([&] {
    Check(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), "CoInitializeEx (server)");
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    server_tid = GetCurrentThreadId();
    Adder* adder = apartments::MakeComObject<Adder>();
    Check(CoMarshalInterThreadInterfaceInStream(IID_IAdder, adder, &marshaled), "marshal");
    adder->Release();
    SetEvent(ready);
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
    CoUninitialize();
  });
  if (WaitForSingleObject(ready, 10000) != WAIT_OBJECT_0) return 1;
  Check(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), "CoInitializeEx (caller)");
  IAdder* proxy = nullptr;
  Check(CoGetInterfaceAndReleaseStream(marshaled, IID_IAdder, reinterpret_cast<void**>(&proxy)),
        "unmarshal");

  auto run = [&] {
    LONGLONG v = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) Check(proxy->AddOne(v, &v), "AddOne");
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() -
                                                             start)
                        .count();
    return ns / calls;
  };
  run();  // Warm-up.
  std::vector<double> off;
  std::vector<double> on;
  for (int r = 0; r < rounds; ++r) {
    off.push_back(run());
    apartments::HangWatchdogOptions options;
    options.poll_interval = std::chrono::milliseconds(poll_ms);
    apartments::HangWatchdog watchdog(options);
    watchdog.Start();
    on.push_back(run());
    watchdog.Stop();
    std::printf("round %2d: off %8.0f ns/call   on %8.0f ns/call\n", r, off.back(), on.back());
  }
  const double ratio = Median(on) / Median(off);
  std::printf("STA->STA call, watchdog poll %d ms: median off %.0f ns, on %.0f ns, on/off %.3f "
              "(%+.1f%%)\n",
              poll_ms, Median(off), Median(on), ratio, (ratio - 1) * 100);
  proxy->Release();
  PostThreadMessageW(server_tid.load(), WM_QUIT, 0, 0);
  server.join();
  CoUninitialize();
  CloseHandle(ready);
  return 0;
}
