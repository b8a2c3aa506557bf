// The peer process of the cross-process tests (src/remote/local_server_test.cc).
//
//   peer -Embedding     the server of CLSID_Peer (launched by activation from
//                       its registration entry); exits when its last object
//                       is released. PEER_MODE=never-register: never
//                       registers; PEER_MODE=exit-3: exits with status 3 at
//                       once.
//   peer --client       a client of the test process's CLSID_InTest: creates
//                       an object, calls Notify(1), then waits to be killed.
// Either way it ends itself after a safety bound (30 s), so a test that
// fails never leaves it behind.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "apartments/com_object.h"
#include "remote/test_peer/peer_interfaces.h"

namespace {

std::atomic<int> live_objects{0};
DWORD main_tid = 0;
DWORD class_cookie = 0;

class Peer final : public apartments::ComObject<Peer, peer::IPeer> {
 public:
  Peer() { ++live_objects; }
  ~Peer() override {
    if (kept_ != nullptr) kept_->Release();
    // The last object gone: the server's work is done (Windows servers do
    // this with CoReleaseServerProcess).
    // It stops taking new clients first (revoking removes its socket at
    // once), so that no client reaches a server on its way out.
    if (--live_objects == 0) {
      if (class_cookie != 0) (void)CoRevokeClassObject(class_cookie);
      class_cookie = 0;
      PostThreadMessageW(main_tid, WM_QUIT, 0, 0);
    }
  }
  STDMETHODIMP Add(int a, int b, int* sum) override {
    if (sum == nullptr) return E_POINTER;
    *sum = a + b;
    return S_OK;
  }
  STDMETHODIMP GetPid(DWORD* pid) override {
    if (pid == nullptr) return E_POINTER;
    *pid = static_cast<DWORD>(getpid());
    return S_OK;
  }
  STDMETHODIMP CallBack(peer::ICallback* callback, int value) override {
    if (callback == nullptr) return E_POINTER;
    return callback->Notify(value);
  }
  STDMETHODIMP Keep(peer::ICallback* callback) override {
    if (callback != nullptr) callback->AddRef();
    if (kept_ != nullptr) kept_->Release();
    kept_ = callback;
    return S_OK;
  }
  STDMETHODIMP GetKept(peer::ICallback** callback) override {
    if (callback == nullptr) return E_POINTER;
    *callback = kept_;
    if (kept_ != nullptr) kept_->AddRef();
    return S_OK;
  }
  STDMETHODIMP Block(peer::ICallback* started) override {
    if (started != nullptr) (void)started->Notify(0);
    for (;;) pause();
  }
  STDMETHODIMP Echo(LPCWSTR in, BSTR* out) override {
    if (out == nullptr) return E_POINTER;
    std::wstring text = L"echo: ";
    text += in != nullptr ? in : L"(null)";
    *out = SysAllocString(text.c_str());
    return S_OK;
  }
  STDMETHODIMP FillQueueThenCall(peer::ICallback* callback) override {
    if (callback == nullptr) return E_POINTER;
    int posted = 0;
    while (PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0)) ++posted;
    HRESULT hr = callback->Notify(posted);
    // Drained here, so that the quota is free again for what follows.
    MSG msg;
    while (PeekMessageW(&msg, nullptr, WM_USER, WM_USER, PM_REMOVE)) {
    }
    return hr;
  }
  STDMETHODIMP Fail(HRESULT code) override {
    ICreateErrorInfo* create = nullptr;
    if (SUCCEEDED(CreateErrorInfo(&create))) {
      (void)create->SetDescription(const_cast<LPOLESTR>(L"peer failed on purpose"));
      IErrorInfo* info = nullptr;
      if (SUCCEEDED(create->QueryInterface(IID_IErrorInfo, reinterpret_cast<void**>(&info)))) {
        (void)SetErrorInfo(0, info);
        info->Release();
      }
      create->Release();
    }
    return code;
  }

 private:
  peer::ICallback* kept_ = nullptr;
};

class Factory final : public apartments::ComObject<Factory, IClassFactory> {
 public:
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    *ppv = nullptr;
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    Peer* object = apartments::MakeComObject<Peer>();
    if (object == nullptr) return E_OUTOFMEMORY;
    HRESULT hr = object->QueryInterface(riid, ppv);
    object->Release();
    return hr;
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }
};

int Serve() {
  const char* mode = std::getenv("PEER_MODE");
  if (mode != nullptr && std::strcmp(mode, "exit-3") == 0) return 3;
  if (mode != nullptr && std::strcmp(mode, "never-register") == 0) {
    for (;;) pause();
  }
  if (FAILED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED))) return 10;
  main_tid = GetCurrentThreadId();
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
  Factory* factory = apartments::MakeComObject<Factory>();
  DWORD cookie = 0;
  HRESULT hr = CoRegisterClassObject(peer::CLSID_Peer, factory->Identity(), CLSCTX_LOCAL_SERVER,
                                     REGCLS_MULTIPLEUSE, &cookie);
  factory->Release();
  if (FAILED(hr)) {
    std::fprintf(stderr, "peer: CoRegisterClassObject: 0x%08x\n", static_cast<unsigned>(hr));
    return 11;
  }
  class_cookie = cookie;
  while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  if (class_cookie != 0) (void)CoRevokeClassObject(class_cookie);
  CoUninitialize();
  return 0;
}

int Client() {
  if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) return 20;
  peer::ICallback* object = nullptr;
  HRESULT hr = CoCreateInstance(peer::CLSID_InTest, nullptr, CLSCTX_LOCAL_SERVER,
                                peer::IID_ICallback, reinterpret_cast<void**>(&object));
  if (FAILED(hr)) {
    std::fprintf(stderr, "peer --client: CoCreateInstance: 0x%08x\n", static_cast<unsigned>(hr));
    return 21;
  }
  (void)object->Notify(1);
  for (;;) pause();  // Holds `object` until killed.
}

}  // namespace

int main(int argc, char** argv) {
  // The safety bound: never outlive a test that forgot us.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    std::fprintf(stderr, "peer: safety bound reached, exiting\n");
    _exit(99);
  }).detach();
  if (argc > 1 && std::strcmp(argv[1], "-Embedding") == 0) return Serve();
  if (argc > 1 && std::strcmp(argv[1], "--client") == 0) return Client();
  std::fprintf(stderr, "usage: peer -Embedding | --client\n");
  return 2;
}
