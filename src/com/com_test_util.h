// Helpers shared by the COM core's tests. Test-only.
#ifndef APARTMENTS_SRC_COM_COM_TEST_UTIL_H_
#define APARTMENTS_SRC_COM_COM_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "apartments/error_info.h"
#include "apartments/win32.h"
#include "com/apartment.h"
#include "message/test_util.h"

namespace apartments::internal::testing {

// A thread in its own STA, pumping GetMessageW/DispatchMessageW until WM_QUIT
// (or running `body` instead of pumping when given), then CoUninitialize.
// Bounded: its destructor stops it and fails the binary if it does not end.
class StaThread {
 public:
  explicit StaThread(const wchar_t* name = L"", std::function<void()> body = nullptr)
      : thread_([this, name, body = std::move(body)] {
          if (name[0] != 0) SetThreadDescription(GetCurrentThread(), name);
          if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) std::abort();
          apartment_ = CurrentApartment();
          MSG msg;
          PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // Make sure the queue exists.
          ready_.Set();
          if (body) {
            body();
          } else {
            while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
          }
          if (!uninitialized_.load()) CoUninitialize();
        }) {
    if (!ready_.Wait()) std::abort();
  }
  ~StaThread() { Stop(); }

  // Asks the pump to end (posts WM_QUIT) and joins.
  void Stop() {
    if (!stopped_.exchange(true)) PostThreadMessageW(thread_.tid(), WM_QUIT, 0, 0);
    thread_.Join();
  }
  const ApartmentRef& apartment() const { return apartment_; }
  DWORD tid() const { return thread_.tid(); }

 private:
  TestEvent ready_;
  ApartmentRef apartment_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> uninitialized_{false};
  BoundedThread thread_;
};

// Runs `body` on a new thread in the MTA (CoInitializeEx(MULTITHREADED)),
// waits for it (bounded).
inline void RunInMta(const std::function<void()>& body) {
  BoundedThread t([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    body();
    CoUninitialize();
  });
}

// Runs `body` on a new thread in its own STA that does not pump otherwise.
inline void RunInSta(const std::function<void()>& body) {
  BoundedThread t([&] {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) std::abort();
    body();
    CoUninitialize();
  });
}

// A message filter whose answers are set by the test, counting its calls.
class TestMessageFilter final : public IMessageFilter {
 public:
  std::function<DWORD(DWORD call_type)> on_incoming = [](DWORD) { return SERVERCALL_ISHANDLED; };
  std::function<DWORD(DWORD reject_type)> on_retry = [](DWORD) { return static_cast<DWORD>(-1); };
  std::function<DWORD()> on_pending = [] { return PENDINGMSG_WAITDEFPROCESS; };
  std::atomic<int> incoming{0}, retries{0}, pending{0};
  std::atomic<DWORD> last_call_type{0};

  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown || riid == IID_IMessageFilter) {
      *ppv = this;
      AddRef();
      return S_OK;
    }
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return ++refs_; }
  STDMETHODIMP_(ULONG) Release() override { return --refs_; }  // Owned by the test.
  STDMETHODIMP_(DWORD) HandleInComingCall(DWORD call_type, HTASK, DWORD, LPINTERFACEINFO) override {
    ++incoming;
    last_call_type = call_type;
    return on_incoming(call_type);
  }
  STDMETHODIMP_(DWORD) RetryRejectedCall(HTASK, DWORD, DWORD reject_type) override {
    ++retries;
    return on_retry(reject_type);
  }
  STDMETHODIMP_(DWORD) MessagePending(HTASK, DWORD, DWORD) override {
    ++pending;
    return on_pending();
  }
  int refs() const { return refs_.load(); }

 private:
  std::atomic<int> refs_{1};
};

}  // namespace apartments::internal::testing

#endif  // APARTMENTS_SRC_COM_COM_TEST_UTIL_H_
