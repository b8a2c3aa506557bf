// The out-of-process example's server (README, "An out-of-process server"):
// started by COM with -Embedding when a client asks for CLSID_Greeter, it
// registers its class object for other processes, serves calls in its STA,
// and exits when its last object is released.
#include <apartments/com_object.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "greeter.h"

namespace {

DWORD main_thread = 0;
DWORD class_cookie = 0;
std::atomic<int> objects{0};

class Greeter final : public apartments::ComObject<Greeter, greeter::IGreeter> {
 public:
  Greeter() { ++objects; }
  ~Greeter() override {
    if (--objects == 0) {
      // No more clients: stop being found (the socket goes at once), then leave.
      (void)CoRevokeClassObject(class_cookie);
      PostQuitMessage(0);
    }
  }
  STDMETHODIMP Greet(LPCWSTR name, BSTR* greeting) override {
    if (greeting == nullptr) return E_POINTER;
    std::wstring text = L"Hello, ";
    text += name != nullptr ? name : L"stranger";
    text += L", from process " + std::to_wstring(getpid());
    *greeting = SysAllocString(text.c_str());
    return S_OK;
  }
  STDMETHODIMP GetPid(DWORD* pid) override {
    if (pid == nullptr) return E_POINTER;
    *pid = static_cast<DWORD>(getpid());
    return S_OK;
  }
  STDMETHODIMP Tell(greeter::IListener* listener, LPCWSTR text) override {
    if (listener == nullptr) return E_POINTER;
    return listener->Heard(text);  // Into the client's STA, which waits for us.
  }
};

class Factory final : public apartments::ComObject<Factory, IClassFactory> {
 public:
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    *ppv = nullptr;
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    Greeter* greeter = apartments::MakeComObject<Greeter>();
    if (greeter == nullptr) return E_OUTOFMEMORY;
    HRESULT hr = greeter->QueryInterface(riid, ppv);
    greeter->Release();
    return hr;
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-Embedding") != 0) {
    std::fprintf(stderr, "usage: %s -Embedding (started by COM for its clients)\n", argv[0]);
    return 2;
  }
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  main_thread = GetCurrentThreadId();
  Factory* factory = apartments::MakeComObject<Factory>();
  HRESULT hr = CoRegisterClassObject(greeter::CLSID_Greeter, factory, CLSCTX_LOCAL_SERVER,
                                     REGCLS_MULTIPLEUSE, &class_cookie);
  factory->Release();
  if (FAILED(hr)) {
    std::fprintf(stderr, "server: CoRegisterClassObject failed: 0x%08x\n", static_cast<unsigned>(hr));
    return 1;
  }
  MSG msg;
  while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  CoUninitialize();
  return 0;
}
