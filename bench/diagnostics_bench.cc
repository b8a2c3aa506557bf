// The cost of self-diagnosis on by default (issue 19: "at most 3% on the call
// and post benchmarks, measured on and off in the same run; say what the
// always-on part costs per wait"). Three workloads, each in alternating
// rounds with the default diagnostics on (as every process has them: the
// watchdog thread polling every 500 ms, deadlock detection's hook on every
// untimed wait that sleeps, inspection served) and off
// (SetDiagnosticsOptions{.mode = kOff}), in the same process:
//
//   call  the STA->STA IAdder proxy call (com_bench's), ns per call;
//   post  PostThreadMessageW to a thread in GetMessageW, batches of 64 with
//         a reply event per batch (the consumer sleeps between batches), ns
//         per message;
//   wait  an event ping-pong between two threads, each WaitForSingleObject
//         (INFINITE) sleeping: ns per round trip (two sleeping waits, each
//         running the deadlock hook when on).
//
// Rounds alternate off/on/on/off (ABBA) so that drift cancels; the figure is
// the median of the per-pair ratios. Prints one line per workload.
//
// Usage: diagnostics_bench [rounds] [scale]   (defaults 12, 1.0)
//        diagnostics_bench --probe=<call|post|wait> --diag=<on|off> --ops=N
// The second form runs one workload once, N operations, unmeasured, with
// diagnostics on or off: run it under callgrind for two N and divide the
// difference to get instructions per operation (bench/README.md, "noisy host").
#include <apartments/com_object.h>
#include <apartments/diagnostics.h>
#include <apartments/proxy.h>
#include <apartments/win32.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace diagbench {

struct IAdder : public IUnknown {
  STDMETHOD(AddOne)(LONGLONG v, LONGLONG* result) PURE;
};
APARTMENTS_INTERFACE(IAdder, IUnknown, "3f5b9a3e-7c1d-4e2a-9b8f-0a1b2c3d4e19");

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

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "%s failed\n", what);
    std::exit(1);
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void SetDiagnostics(bool on) {
  apartments::DiagnosticsOptions options;  // The defaults: report, inspection served.
  if (!on) options.mode = apartments::DiagnosticsMode::kOff;
  apartments::SetDiagnosticsOptions(options);
}

double NsPer(std::chrono::steady_clock::time_point start, long ops) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
             .count() /
         static_cast<double>(ops);
}

// --probe mode: the one workload to run, its setting and size ("" : timed).
std::string g_probe;
bool g_probe_on = true;
long g_probe_ops = 0;

// Runs `run` (returns ns per operation) in ABBA rounds; prints the result.
// In --probe mode, runs it once if it is the probed workload.
void Measure(const char* name, const char* unit, int rounds, const std::function<double()>& run) {
  if (!g_probe.empty()) {
    if (g_probe != name) return;
    SetDiagnostics(g_probe_on);
    run();
    std::printf("PROBE %s diag=%s\n", name, g_probe_on ? "on" : "off");
    return;
  }
  run();  // Warm-up.
  std::vector<double> off;
  std::vector<double> on;
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) {
    double a;
    double b;
    if (r % 2 == 0) {
      SetDiagnostics(false);
      a = run();
      SetDiagnostics(true);
      b = run();
    } else {
      SetDiagnostics(true);
      b = run();
      SetDiagnostics(false);
      a = run();
    }
    off.push_back(a);
    on.push_back(b);
    ratios.push_back(b / a);
  }
  SetDiagnostics(true);
  const double ratio = Median(ratios);
  std::printf("%-5s median off %8.0f ns/%s, on %8.0f ns/%s, on/off %.3f (%+.1f%%), "
              "difference %+.0f ns/%s\n",
              name, Median(off), unit, Median(on), unit, ratio, (ratio - 1) * 100,
              Median(on) - Median(off), unit);
  std::fflush(stdout);
}

}  // namespace diagbench

int main(int argc, char** argv) {
  using namespace diagbench;
  int rounds = 12;
  double scale = 1.0;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--probe=", 0) == 0) {
      g_probe = arg.substr(8);
    } else if (arg.rfind("--diag=", 0) == 0) {
      g_probe_on = arg.substr(7) == "on";
    } else if (arg.rfind("--ops=", 0) == 0) {
      g_probe_ops = std::atol(arg.c_str() + 6);
    } else if (positional++ == 0) {
      rounds = std::atoi(argv[i]);
    } else {
      scale = std::atof(argv[i]);
    }
  }
  // Probe sizes: N operations of the probed workload.
  const auto ops = [&](long timed) { return g_probe.empty() ? timed : g_probe_ops; };

  // --- call -------------------------------------------------------------------
  IStream* marshaled = nullptr;
  std::atomic<DWORD> server_tid{0};
  HANDLE ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::thread server([&] {
    Check(SUCCEEDED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED)), "CoInitializeEx");
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    server_tid = GetCurrentThreadId();
    Adder* adder = apartments::MakeComObject<Adder>();
    Check(SUCCEEDED(CoMarshalInterThreadInterfaceInStream(IID_IAdder, adder, &marshaled)),
          "marshal");
    adder->Release();
    SetEvent(ready);
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
    CoUninitialize();
  });
  Check(WaitForSingleObject(ready, 10000) == WAIT_OBJECT_0, "server start");
  Check(SUCCEEDED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED)), "CoInitializeEx");
  IAdder* proxy = nullptr;
  Check(SUCCEEDED(CoGetInterfaceAndReleaseStream(marshaled, IID_IAdder,
                                                 reinterpret_cast<void**>(&proxy))),
        "unmarshal");
  const long calls = ops(static_cast<long>(20000 * scale));
  Measure("call", "call", rounds, [&] {
    LONGLONG v = 0;
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < calls; ++i) Check(SUCCEEDED(proxy->AddOne(v, &v)), "AddOne");
    return NsPer(start, calls);
  });
  proxy->Release();
  PostThreadMessageW(server_tid.load(), WM_QUIT, 0, 0);
  server.join();

  // --- post -------------------------------------------------------------------
  constexpr int kBatch = 64;
  HANDLE batch_done = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  std::atomic<DWORD> consumer_tid{0};
  ResetEvent(ready);
  std::thread consumer([&] {
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    consumer_tid = GetCurrentThreadId();
    SetEvent(ready);
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) {
      if (msg.wParam == kBatch - 1) SetEvent(batch_done);
    }
  });
  Check(WaitForSingleObject(ready, 10000) == WAIT_OBJECT_0, "consumer start");
  const long batches = ops(static_cast<long>(2000 * scale)) / (g_probe.empty() ? 1 : kBatch);
  Measure("post", "msg", rounds, [&] {
    const auto start = std::chrono::steady_clock::now();
    for (long b = 0; b < batches; ++b) {
      for (int i = 0; i < kBatch; ++i) {
        Check(PostThreadMessageW(consumer_tid.load(), WM_APP, i, 0), "post");
      }
      Check(WaitForSingleObject(batch_done, 10000) == WAIT_OBJECT_0, "batch");
    }
    return NsPer(start, batches * kBatch);
  });
  PostThreadMessageW(consumer_tid.load(), WM_QUIT, 0, 0);
  consumer.join();

  // --- wait -------------------------------------------------------------------
  HANDLE ping = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  HANDLE pong = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  std::atomic<bool> stop{false};
  std::thread ponger([&] {
    while (WaitForSingleObject(ping, INFINITE) == WAIT_OBJECT_0 && !stop.load()) SetEvent(pong);
  });
  const long trips = ops(static_cast<long>(20000 * scale));
  Measure("wait", "trip", rounds, [&] {
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < trips; ++i) {
      SetEvent(ping);
      WaitForSingleObject(pong, INFINITE);
    }
    return NsPer(start, trips);
  });
  stop.store(true);
  SetEvent(ping);
  ponger.join();

  CoUninitialize();
  CloseHandle(ping);
  CloseHandle(pong);
  CloseHandle(batch_done);
  CloseHandle(ready);
  return 0;
}
