// Proxies for your own interfaces: a complete example (README.md, "Proxies
// for your own interfaces"). A calculator lives in a worker thread's STA; the
// main thread's STA calls it through a proxy, hands it a logger that lives
// in the main STA (the calculator calls it back while the main thread waits)
// and gets the logger back as its own object. Exits 0 when all went as
// described.
#include <apartments/com_object.h>
#include <apartments/proxy.h>
#include <apartments/win32.h>

#include <atomic>
#include <cstdio>
#include <thread>

namespace calc {

// 1. The interfaces, each with an IID.
struct ILogger : public IUnknown {
  STDMETHOD(Log)(int value) PURE;
};
APARTMENTS_INTERFACE(ILogger, IUnknown, "8e0c52b4-5f3a-4b8e-9d7e-1c2a3b4c5d01");

struct ICalculator : public IUnknown {
  STDMETHOD(Add)(int a, int b, int* sum) PURE;
  STDMETHOD(SetLogger)(ILogger* logger) PURE;   // [in] interface
  STDMETHOD(GetLogger)(ILogger** logger) PURE;  // [out] interface
};
APARTMENTS_INTERFACE(ICalculator, IUnknown, "8e0c52b4-5f3a-4b8e-9d7e-1c2a3b4c5d02");

// 2. Their proxies: one line per method.
APARTMENTS_PROXY_BEGIN(ILogger)
  APARTMENTS_PROXY_METHOD(Log, (int value), (value))
APARTMENTS_PROXY_END(ILogger)

APARTMENTS_PROXY_BEGIN(ICalculator)
  APARTMENTS_PROXY_METHOD(Add, (int a, int b, int* sum), (a, b, sum))
  APARTMENTS_PROXY_METHOD(SetLogger, (ILogger* logger), (logger))
  APARTMENTS_PROXY_METHOD(GetLogger, (ILogger** logger), (logger))
APARTMENTS_PROXY_END(ICalculator)

// 3. The objects: ordinary single-threaded code.
class Calculator final : public apartments::ComObject<Calculator, ICalculator> {
 public:
  STDMETHODIMP Add(int a, int b, int* sum) override {
    if (sum == nullptr) return E_POINTER;
    *sum = a + b;
    return logger_ != nullptr ? logger_->Log(*sum) : S_OK;  // a call back into the caller
  }
  STDMETHODIMP SetLogger(ILogger* logger) override {
    if (logger != nullptr) logger->AddRef();
    if (logger_ != nullptr) logger_->Release();
    logger_ = logger;
    return S_OK;
  }
  STDMETHODIMP GetLogger(ILogger** logger) override {
    if (logger == nullptr) return E_POINTER;
    *logger = logger_;
    if (logger_ != nullptr) logger_->AddRef();
    return S_OK;
  }

 private:
  ~Calculator() override {
    if (logger_ != nullptr) logger_->Release();
  }
  ILogger* logger_ = nullptr;
};

class Logger final : public apartments::ComObject<Logger, ILogger> {
 public:
  STDMETHODIMP Log(int value) override {
    last_value = value;
    last_thread = GetCurrentThreadId();
    return S_OK;
  }
  int last_value = 0;
  DWORD last_thread = 0;
};

}  // namespace calc

int main() {
  using namespace calc;
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);

  // The worker STA: creates the calculator, marshals it for the main thread,
  // then pumps messages (serving calls) until WM_QUIT.
  HANDLE ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  IStream* marshaled = nullptr;
  std::atomic<DWORD> worker_tid{0};
  std::thread worker([&] {
    CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
    worker_tid = GetCurrentThreadId();
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // create the queue before WM_QUIT can come
    Calculator* calculator = apartments::MakeComObject<Calculator>();
    CoMarshalInterThreadInterfaceInStream(IID_ICalculator, calculator, &marshaled);
    calculator->Release();  // the marshal data keeps it alive
    SetEvent(ready);
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
    CoUninitialize();
  });
  WaitForSingleObject(ready, INFINITE);
  CloseHandle(ready);

  bool ok = true;
  auto check = [&ok](bool condition, const char* what) {
    std::printf("%s: %s\n", condition ? "ok  " : "FAIL", what);
    ok = ok && condition;
  };

  ICalculator* calculator = nullptr;  // a proxy: calls run on the worker thread
  HRESULT hr = CoGetInterfaceAndReleaseStream(marshaled, IID_ICalculator,
                                              reinterpret_cast<void**>(&calculator));
  check(hr == S_OK, "unmarshaled the calculator");
  if (hr != S_OK) return 1;

  Logger* logger = apartments::MakeComObject<Logger>();
  check(calculator->SetLogger(logger) == S_OK, "passed our logger (the worker gets a proxy)");
  int sum = 0;
  check(calculator->Add(2, 3, &sum) == S_OK && sum == 5, "2 + 3 = 5 across apartments");
  check(logger->last_value == 5 && logger->last_thread == GetCurrentThreadId(),
        "the worker called our logger back, on our thread, while we waited");
  ILogger* back = nullptr;
  check(calculator->GetLogger(&back) == S_OK && back == logger,
        "the logger came back as our own object");
  if (back != nullptr) back->Release();
  check(calculator->SetLogger(nullptr) == S_OK, "the worker released its logger proxy");

  calculator->Release();  // the calculator is destroyed on the worker thread
  logger->Release();
  PostThreadMessageW(worker_tid, WM_QUIT, 0, 0);
  worker.join();
  CoUninitialize();
  std::printf("%s\n", ok ? "proxy example: all as described" : "proxy example: FAILED");
  return ok ? 0 : 1;
}
