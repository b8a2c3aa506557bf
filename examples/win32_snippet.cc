// A classic Win32 COM snippet, compiled unchanged against <apartments/win32.h>
// (its modern-API twin is examples/modern_twin.cc; docs/porting.md compares
// them line by line).
//
// The main thread is an STA that owns a counter object. It marshals the
// counter to a worker thread with CoMarshalInterThreadInterfaceInStream; the
// worker (in the MTA) unmarshals a proxy and calls it: each call runs on the
// main thread, which pumps in CoWaitForMultipleHandles meanwhile. Then the
// main STA shuts down (CoUninitialize) while the worker still holds its
// proxy: the worker's next call fails with RPC_E_DISCONNECTED, with an
// explanation in the error info, instead of hanging or crashing.
// Exits 0 when everything behaved as described.
#include <apartments/com_object.h>
#include <apartments/error_info.h>
#include <apartments/proxy.h>
#include <apartments/win32.h>

#include <cstdio>

struct ICounter : public IUnknown {
  STDMETHOD(Increment)(LONG* value) PURE;
};
APARTMENTS_INTERFACE(ICounter, IUnknown, "5d3c9a10-2b7e-4f61-8a4d-6e5f70819a01");

APARTMENTS_PROXY_BEGIN(ICounter)
  APARTMENTS_PROXY_METHOD(Increment, (LONG* value), (value))
APARTMENTS_PROXY_END(ICounter)

class Counter final : public apartments::ComObject<Counter, ICounter> {
 public:
  explicit Counter(DWORD home) : home_(home) {}
  STDMETHODIMP Increment(LONG* value) override {
    if (value == nullptr) return E_POINTER;
    if (GetCurrentThreadId() != home_) return RPC_E_WRONG_THREAD;  // never: COM runs it at home
    *value = ++count_;
    return S_OK;
  }

 private:
  DWORD home_;
  LONG count_ = 0;
};

struct WorkerArgs {
  IStream* stream;        // The marshaled counter; the worker consumes it.
  HANDLE calls_done;      // Set by the worker after its first calls.
  HANDLE home_shut_down;  // Set by the main thread after CoUninitialize.
  int failures;
};

DWORD WINAPI Worker(LPVOID param) {
  auto* args = static_cast<WorkerArgs*>(param);
  CoInitializeEx(nullptr, COINIT_MULTITHREADED);
  ICounter* counter = nullptr;
  HRESULT hr = CoGetInterfaceAndReleaseStream(args->stream, IID_ICounter,
                                              reinterpret_cast<void**>(&counter));
  if (FAILED(hr)) {
    std::printf("worker: CoGetInterfaceAndReleaseStream failed: 0x%08x\n", static_cast<unsigned>(hr));
    ++args->failures;
    SetEvent(args->calls_done);
    CoUninitialize();
    return 1;
  }
  LONG value = 0;
  for (int i = 0; i < 3; ++i) {
    hr = counter->Increment(&value);  // Runs on the main thread.
    if (FAILED(hr)) ++args->failures;
  }
  std::printf("worker: counter is %d after three calls through the proxy\n", static_cast<int>(value));
  if (value != 3) ++args->failures;
  SetEvent(args->calls_done);

  // The object's apartment goes away; the proxy stays valid to hold and to
  // Release, but its calls fail.
  WaitForSingleObject(args->home_shut_down, INFINITE);
  hr = counter->Increment(&value);
  if (hr == RPC_E_DISCONNECTED) {
    std::printf("worker: after the home STA shut down: RPC_E_DISCONNECTED (%s)\n",
                apartments::LastErrorDescription().c_str());
  } else {
    std::printf("worker: expected RPC_E_DISCONNECTED, got 0x%08x\n", static_cast<unsigned>(hr));
    ++args->failures;
  }
  counter->Release();
  CoUninitialize();
  return 0;
}

int main() {
  if (FAILED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED))) return 1;
  Counter* object = apartments::MakeComObject<Counter>(GetCurrentThreadId());

  WorkerArgs args{nullptr, CreateEventW(nullptr, TRUE, FALSE, nullptr),
                  CreateEventW(nullptr, TRUE, FALSE, nullptr), 0};
  HRESULT hr = CoMarshalInterThreadInterfaceInStream(IID_ICounter, object, &args.stream);
  object->Release();  // The marshaled stream holds the object now.
  if (FAILED(hr)) return 1;

  HANDLE thread = CreateThread(nullptr, 0, Worker, &args, 0, nullptr);
  // Wait for the worker's calls while pumping: they run here, as messages.
  DWORD index = 0;
  hr = CoWaitForMultipleHandles(0, 10000, 1, &args.calls_done, &index);
  if (hr != S_OK) {
    std::printf("main: CoWaitForMultipleHandles: 0x%08x\n", static_cast<unsigned>(hr));
    return 1;
  }

  CoUninitialize();  // The STA shuts down; the counter is released here.
  SetEvent(args.home_shut_down);
  WaitForSingleObject(thread, INFINITE);
  CloseHandle(thread);
  CloseHandle(args.calls_done);
  CloseHandle(args.home_shut_down);
  std::printf("%s\n", args.failures == 0 ? "ok" : "FAILED");
  return args.failures == 0 ? 0 : 1;
}
