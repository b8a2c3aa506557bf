// Helpers for the marshaling tests: threads in apartments that run closures
// on demand, and test objects that record where they die. Test-only.
#ifndef APARTMENTS_SRC_COM_MARSHAL_TEST_UTIL_H_
#define APARTMENTS_SRC_COM_MARSHAL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "apartments/com_object.h"
#include "apartments/proxy.h"
#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/marshal.h"
#include "message/test_util.h"

namespace apartments::internal::testing {

// A CLSCTX_LOCAL_SERVER registration is also published to other processes
// (a socket in the runtime directory, docs/out_of_process.md): each test
// process gets a private runtime directory, so that test processes running
// side by side never reach each other's class objects. Removed at exit (the
// registrations' sockets are gone by then, or the directory stays).
// The runtime creates it on first use (mode 0700), so a process that
// publishes nothing leaves nothing behind.
inline const bool kPrivateRuntimeDirectory = [] {
  static std::string path = "/tmp/apartments-com-test-" + std::to_string(getpid());
  setenv("APARTMENTS_RUNTIME_DIR", path.c_str(), 1);
  std::atexit([] { rmdir(path.c_str()); });
  return true;
}();

// A thread in an STA (pumping, so it serves incoming calls) or in the MTA,
// running closures handed to it with Run(). Shutdown() (or the destructor)
// uninitializes COM on that thread and joins it, bounded.
class AptThread {
 public:
  enum Kind { kSta, kMta };
  explicit AptThread(Kind kind = kSta)
      : thread_([this, kind] {
          if (FAILED(CoInitializeEx(nullptr, kind == kSta ? COINIT_APARTMENTTHREADED
                                                          : COINIT_MULTITHREADED))) {
            std::abort();
          }
          apartment_ = CurrentApartment();
          MSG msg;
          PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
          ready_.Set();
          for (;;) {
            HANDLE wake = wake_.get();
            MsgWaitForMultipleObjectsEx(1, &wake, INFINITE, QS_ALLINPUT, MWMO_INPUTAVAILABLE);
            while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
            std::deque<std::function<void()>> tasks;
            bool quit;
            {
              std::lock_guard lock(mu_);
              ResetEvent(wake_.get());
              tasks.swap(tasks_);
              quit = quit_;
            }
            for (auto& task : tasks) task();
            if (quit && tasks.empty()) break;
          }
          apartment_.reset();
          CoUninitialize();
        }) {
    if (!ready_.Wait()) std::abort();
  }
  ~AptThread() { Shutdown(); }

  // Runs `f` on this thread and waits for it (at most kBoundMs, else the
  // binary aborts: a failure, not a hang).
  void Run(const std::function<void()>& f) {
    TestEvent done;
    {
      std::lock_guard lock(mu_);
      tasks_.push_back([&] {
        f();
        done.Set();
      });
    }
    SetEvent(wake_.get());
    if (!done.Wait()) {
      std::fprintf(stderr, "apartment thread did not run a task in time\n");
      std::abort();
    }
  }

  // CoUninitialize on the thread, then join (bounded).
  void Shutdown() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    SetEvent(wake_.get());
    thread_.Join();
  }

  DWORD tid() const { return thread_.tid(); }

 private:
  TestEvent ready_;
  TestEvent wake_;
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
  bool quit_ = false;
  ApartmentRef apartment_;
  BoundedThread thread_;
};

// Test interfaces.
struct ICounter : public IUnknown {
  STDMETHOD(Add)(int delta, int* total) PURE;
  STDMETHOD(ThreadId)(DWORD* tid) PURE;
};
APARTMENTS_INTERFACE(ICounter, IUnknown, "3b0a4c1e-8f21-4d6a-9c11-2a7e5d0f6b01");

struct IHolder : public IUnknown {
  STDMETHOD(Set)(ICounter* counter) PURE;
  STDMETHOD(Get)(ICounter** counter) PURE;
  // Calls the held counter's Add and reports the thread it ran on.
  STDMETHOD(AddToHeld)(int delta, int* total, DWORD* tid) PURE;
};
APARTMENTS_INTERFACE(IHolder, IUnknown, "3b0a4c1e-8f21-4d6a-9c11-2a7e5d0f6b02");

// Supported by no object: QueryInterface for it must fail.
struct IUnsupported : public IUnknown {
  STDMETHOD(Nothing)() PURE;
};
APARTMENTS_INTERFACE(IUnsupported, IUnknown, "3b0a4c1e-8f21-4d6a-9c11-2a7e5d0f6b03");

APARTMENTS_PROXY_BEGIN(ICounter)
  APARTMENTS_PROXY_METHOD(Add, (int delta, int* total), (delta, total))
  APARTMENTS_PROXY_METHOD(ThreadId, (DWORD * tid), (tid))
APARTMENTS_PROXY_END(ICounter)

APARTMENTS_PROXY_BEGIN(IHolder)
  APARTMENTS_PROXY_METHOD(Set, (ICounter * counter), (counter))
  APARTMENTS_PROXY_METHOD(Get, (ICounter * *counter), (counter))
  APARTMENTS_PROXY_METHOD(AddToHeld, (int delta, int* total, DWORD* tid), (delta, total, tid))
APARTMENTS_PROXY_END(IHolder)

APARTMENTS_PROXY_BEGIN(IUnsupported)
  APARTMENTS_PROXY_METHOD(Nothing, (), ())
APARTMENTS_PROXY_END(IUnsupported)

// What a test object saw of its own death.
struct DeathRecord {
  std::atomic<int> deaths{0};
  std::atomic<DWORD> tid{0};
};

// A counter (and holder) that records the thread it is destroyed on.
class Counter final : public ComObject<Counter, ICounter, IHolder> {
 public:
  explicit Counter(DeathRecord* death) : death_(death) {}

  STDMETHODIMP Add(int delta, int* total) override {
    if (total == nullptr) return E_POINTER;
    *total = (value_ += delta);
    return S_OK;
  }
  STDMETHODIMP ThreadId(DWORD* tid) override {
    *tid = GetCurrentThreadId();
    return S_OK;
  }
  STDMETHODIMP Set(ICounter* counter) override {
    if (counter != nullptr) counter->AddRef();
    if (held_ != nullptr) held_->Release();
    held_ = counter;
    return S_OK;
  }
  STDMETHODIMP Get(ICounter** counter) override {
    if (counter == nullptr) return E_POINTER;
    *counter = held_;
    if (held_ != nullptr) held_->AddRef();
    return S_OK;
  }
  STDMETHODIMP AddToHeld(int delta, int* total, DWORD* tid) override {
    if (held_ == nullptr) return E_UNEXPECTED;
    HRESULT hr = held_->Add(delta, total);
    if (FAILED(hr)) return hr;
    return held_->ThreadId(tid);
  }

 private:
  ~Counter() override {
    if (held_ != nullptr) held_->Release();
    death_->tid = GetCurrentThreadId();
    ++death_->deaths;
  }

  DeathRecord* death_;
  int value_ = 0;
  ICounter* held_ = nullptr;
};

// Checks, at the end of a test, that no stub or proxy manager outlived it.
// Stream helpers shared by the marshaling tests.
inline IStream* NewStream() {  // A new memory stream (the caller releases it).
  IStream* stream = nullptr;
  EXPECT_EQ(CreateStreamOnHGlobal(nullptr, TRUE, &stream), S_OK);
  return stream;
}

inline void Rewind(IStream* stream) {
  LARGE_INTEGER zero{};
  ASSERT_EQ(stream->Seek(zero, STREAM_SEEK_SET, nullptr), S_OK);
}

// Marshals `object` in the calling apartment with `flags` into a new stream,
// rewound.
inline IStream* MarshalInto(IUnknown* object, DWORD flags, REFIID iid = IID_ICounter) {
  IStream* stream = NewStream();
  EXPECT_EQ(CoMarshalInterface(stream, iid, object, MSHCTX_INPROC, nullptr, flags), S_OK);
  Rewind(stream);
  return stream;
}

// Calls Add(1) through `counter` and returns the HRESULT.
inline HRESULT Poke(ICounter* counter) {
  int total = 0;
  return counter->Add(1, &total);
}

class MarshalTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_TRUE(Eventually([] { return LiveStubManagersForTesting() == 0; }))
        << LiveStubManagersForTesting() << " stub managers leaked";
    EXPECT_TRUE(Eventually([] { return LiveProxyManagersForTesting() == 0; }))
        << LiveProxyManagersForTesting() << " proxy managers leaked";
  }
};

}  // namespace apartments::internal::testing

#endif  // APARTMENTS_SRC_COM_MARSHAL_TEST_UTIL_H_
