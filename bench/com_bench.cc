// COM workloads: a synchronous call returning v + 1 through a proxy, built
// with the proxy.h recipe for a small IAdder interface.
//   roundtrip  COM STA->STA   caller and object each in their own STA
//              COM MTA->STA   the caller in the MTA, the object in an STA
//              COM STA->MTA   the caller in an STA, the object in the MTA
//              Apartment::Call  the modern API: worker.Call([v] { return v + 1; })
//                             from an STA into an Apartment's thread (apartments/apartment.h)
// The object's thread is the partner (pinned per placement) except for
// STA->MTA, where calls run on an MTA worker thread the library starts; it
// inherits the affinity of the thread that started it (the caller's).
#include <apartments/apartment.h>
#include <apartments/com_object.h>
#include <apartments/proxy.h>
#include <apartments/win32.h>

#include <atomic>

#include "harness.h"
#include "workloads.h"

namespace bench {

struct IAdder : public IUnknown {
  STDMETHOD(AddOne)(LONGLONG v, LONGLONG* result) PURE;
};
APARTMENTS_INTERFACE(IAdder, IUnknown, "3f5b9a3e-7c1d-4e2a-9b8f-0a1b2c3d4e01");

APARTMENTS_PROXY_BEGIN(IAdder)
  APARTMENTS_PROXY_METHOD(AddOne, (LONGLONG v, LONGLONG* result), (v, result))
APARTMENTS_PROXY_END(IAdder)

namespace {

class Adder final : public apartments::ComObject<Adder, IAdder> {
 public:
  STDMETHODIMP AddOne(LONGLONG v, LONGLONG* result) override {
    if (result == nullptr) return E_POINTER;
    *result = v + 1;
    return S_OK;
  }
};

void Check(HRESULT hr, const char* what) {
  if (FAILED(hr)) {
    std::fprintf(stderr, "%s failed: 0x%08x\n", what, static_cast<unsigned>(hr));
    std::abort();
  }
}

// The object lives in `server_model`'s apartment on the partner thread; the
// measuring thread joins `caller_model` and calls through a proxy.
void ComCall(Runner& r, Placement p, DWORD caller_model, DWORD server_model) {
  Check(CoInitializeEx(nullptr, caller_model), "CoInitializeEx (caller)");
  IStream* marshaled = nullptr;
  IAdder* proxy = nullptr;
  std::atomic<DWORD> server_tid{0};
  HANDLE stop_event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        Check(CoInitializeEx(nullptr, server_model), "CoInitializeEx (server)");
        MSG msg;
        PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // The queue, before WM_QUIT can come.
        server_tid.store(GetCurrentThreadId());
        Adder* adder = apartments::MakeComObject<Adder>();
        Check(CoMarshalInterThreadInterfaceInStream(IID_IAdder, adder, &marshaled), "marshal");
        adder->Release();
        ready.Notify();
        if (server_model == COINIT_APARTMENTTHREADED) {
          while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
        } else {
          WaitForSingleObject(stop_event, INFINITE);  // Calls run on MTA workers.
        }
        CoUninitialize();
      },
      [&](long long v) {
        if (proxy == nullptr) {
          Check(CoGetInterfaceAndReleaseStream(marshaled, IID_IAdder,
                                               reinterpret_cast<void**>(&proxy)),
                "unmarshal");
        }
        LONGLONG result = 0;
        Check(proxy->AddOne(v, &result), "IAdder::AddOne");
        return static_cast<long long>(result);
      },
      [&] {
        if (proxy != nullptr) proxy->Release();
        PostThreadMessageW(server_tid.load(), WM_QUIT, 0, 0);
        SetEvent(stop_event);
      });
  CloseHandle(stop_event);
  CoUninitialize();
}

// The modern API's synchronous call, from an STA (as modern_bench's row
// `modern:Apartment::Call`) into an Apartment pinned as the partner.
void ModernCall(Runner& r, Placement p) {
  PinMain(p);
  Check(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), "CoInitializeEx (caller)");
  {
    apartments::Apartment worker({.name = "worker"});
    if (!worker.Call([p] { PinPartner(p); }).has_value()) Check(E_FAIL, "pin worker");
    long long v = 0;
    r.Run([&](std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) {
        const long long x = v;
        auto result = worker.Call([x] { return x + 1; });
        if (!result.has_value() || *result != x + 1) Check(E_FAIL, "Apartment::Call");
        v = *result;
      }
    });
  }
  CoUninitialize();
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  RegisterAllPlacements("roundtrip", "ours:COM STA->STA (IAdder proxy)", [](Runner& r, Placement p) {
    ComCall(r, p, COINIT_APARTMENTTHREADED, COINIT_APARTMENTTHREADED);
  });
  RegisterAllPlacements("roundtrip", "ours:COM MTA->STA (IAdder proxy)", [](Runner& r, Placement p) {
    ComCall(r, p, COINIT_MULTITHREADED, COINIT_APARTMENTTHREADED);
  });
  RegisterAllPlacements("roundtrip", "ours:COM STA->MTA (IAdder proxy)", [](Runner& r, Placement p) {
    ComCall(r, p, COINIT_APARTMENTTHREADED, COINIT_MULTITHREADED);
  });
  RegisterAllPlacements("roundtrip", "ours:Apartment::Call (modern)", ModernCall);
  return RunCases(argc, argv);
}
