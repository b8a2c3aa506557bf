// Regression tests of the COM core's reliability under abrupt events: releases
// that must never be lost (message filters, the queue quota, client
// apartments that end), threads that exit inside calls (no std::terminate,
// and an explanation that says what happened), and unmarshaling racing a
// disconnection.
//
// Over 800 lines on purpose: one regression suite whose cases share the
// fixtures that stage abrupt events (exits inside calls, quota, filters).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "apartments/apartment.h"
#include "apartments/error_info.h"
#include "com/com_test_util.h"
#include "com/error_info.h"
#include "com/marshal_test_util.h"
#include "kernel/kernel_test_util.h"

namespace apartments::internal::testing {
namespace {

constexpr DWORD kBoundMs = 10000;

// A hand-written object (ICounter and IHolder) with hooks, counting its own
// references so that tests can check what the runtime still holds.
class Probe final : public ICounter, public IHolder {
 public:
  std::function<void(REFIID)> on_query;    // Before answering QueryInterface.
  std::function<HRESULT(int)> on_add;      // Add's result (S_OK when unset).
  std::function<void(ICounter*)> on_death;  // With the held counter, if any.
  std::function<HRESULT(ICounter*)> on_set;  // Set's result, instead of holding.
  std::function<void(ULONG)> on_release;     // After a Release that leaves refs.
  std::atomic<int>* deaths = nullptr;
  bool refuse_identity = false;       // QueryInterface(IID_IUnknown) fails.
  bool ignore_held_failure = false;   // AddToHeld succeeds whatever Add returns.


  // IUnknown (both bases share it).
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (on_query) on_query(riid);
    if (refuse_identity && riid == IID_IUnknown) {
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    if (riid == IID_IUnknown || riid == IID_ICounter) {
      *ppv = static_cast<ICounter*>(this);
    } else if (riid == IID_IHolder) {
      *ppv = static_cast<IHolder*>(this);
    } else {
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    AddRef();
    return S_OK;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return ++refs_; }
  STDMETHODIMP_(ULONG) Release() override {
    const ULONG left = --refs_;
    if (left != 0 && on_release) on_release(left);
    if (left == 0) {
      if (on_death) on_death(held_);
      if (held_ != nullptr) held_->Release();
      if (deaths != nullptr) ++*deaths;
      delete this;
    }
    return left;
  }
  ULONG refs() const { return refs_.load(); }

  // ICounter
  STDMETHODIMP Add(int delta, int* total) override {
    if (on_add) return on_add(delta);
    if (total != nullptr) *total = (value_ += delta);
    return S_OK;
  }
  STDMETHODIMP ThreadId(DWORD* tid) override {
    *tid = GetCurrentThreadId();
    return S_OK;
  }
  // IHolder
  STDMETHODIMP Set(ICounter* counter) override {
    if (on_set) return on_set(counter);
    if (counter != nullptr) counter->AddRef();
    if (held_ != nullptr) held_->Release();
    held_ = counter;
    return S_OK;
  }
  STDMETHODIMP Get(ICounter** counter) override {
    *counter = held_;
    if (held_ != nullptr) held_->AddRef();
    return S_OK;
  }
  STDMETHODIMP AddToHeld(int delta, int* total, DWORD* tid) override {
    if (held_ == nullptr) return E_UNEXPECTED;
    HRESULT hr = held_->Add(delta, total);
    if (held_hr_ != nullptr) *held_hr_ = hr;
    if (ignore_held_failure) return S_OK;
    if (FAILED(hr)) return hr;
    return held_->ThreadId(tid);
  }

  // Where AddToHeld records the held counter's Add result.
  void RecordHeldResultIn(std::atomic<HRESULT>* out) { held_hr_ = out; }

 private:
  ~Probe() = default;
  std::atomic<ULONG> refs_{1};
  int value_ = 0;
  ICounter* held_ = nullptr;
  std::atomic<HRESULT>* held_hr_ = nullptr;
};

// Marshals `unk`'s interface `iid` (NORMAL) into a new stream, rewound.
IStream* MarshalNormal(IUnknown* unk, REFIID iid) {
  IStream* stream = nullptr;
  EXPECT_EQ(CoMarshalInterThreadInterfaceInStream(iid, unk, &stream), S_OK);
  return stream;
}

// Starts a thread (CreateThread, so ExitThread is allowed in it) and waits,
// bounded, for it to end; returns its exit code.
DWORD RunThreadToEnd(std::function<DWORD()> body) {
  HANDLE thread = ktest::StartThread(std::move(body));
  EXPECT_NE(thread, nullptr);
  if (thread == nullptr) return 0xdead;
  EXPECT_EQ(WaitForSingleObject(thread, kBoundMs), WAIT_OBJECT_0) << "thread did not end";
  DWORD code = 0xdead;
  EXPECT_TRUE(GetExitCodeThread(thread, &code));
  CloseHandle(thread);
  return code;
}

// Calls Add(1) through `counter` and returns the HRESULT.

class ReliabilityTest : public MarshalTest {};

// --- Releases are never lost --------------------------------------------------

// Tests that the release of an object's last proxy reaches the object's STA
// although that STA's message filter rejects every incoming call: the
// runtime's release traffic is not the application's (this release used to
// be rejected and dropped, keeping the object alive until the STA ended).
TEST_F(ReliabilityTest, ReleaseIsNotDroppedByRejectingMessageFilter) {
  std::atomic<int> deaths{0};
  TestMessageFilter filter;
  filter.on_incoming = [](DWORD) { return SERVERCALL_REJECTED; };
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Probe* probe = new Probe;
    probe->deaths = &deaths;
    stream = MarshalNormal(static_cast<ICounter*>(probe), IID_ICounter);
    probe->Release();
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
  });
  b.Run([&] {
    ICounter* proxy = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              S_OK);
    EXPECT_EQ(Poke(proxy), RPC_E_CALL_REJECTED);  // The application's call is the filter's.
    proxy->Release();
  });
  EXPECT_EQ(deaths.load(), 1);  // Released synchronously, in its apartment.
  a.Run([&] { ASSERT_EQ(CoRegisterMessageFilter(nullptr, nullptr), S_OK); });
}

// Tests that the release of an object's last proxy, made while the object's
// STA has its queue at the posted-message quota, is delivered once that STA
// pumps again (it used to fail with the quota and be forgotten).
TEST_F(ReliabilityTest, ReleaseAtQueueQuotaIsDeliveredLater) {
  std::atomic<int> deaths{0};
  TestEvent blocked, unblock;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Probe* probe = new Probe;
    probe->deaths = &deaths;
    stream = MarshalNormal(static_cast<ICounter*>(probe), IID_ICounter);
    probe->Release();
  });
  ICounter* proxy = nullptr;
  b.Run([&] {
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              S_OK);
  });
  // Park a's thread (not pumping) and fill its queue up to the quota.
  std::thread parker([&] {
    a.Run([&] {
      blocked.Set();
      (void)unblock.Wait();
    });
  });
  ASSERT_TRUE(blocked.Wait());
  DWORD posted = 0;
  while (PostThreadMessageW(a.tid(), WM_USER + 7, 0, 0)) ++posted;
  ASSERT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_ENOUGH_QUOTA));
  ASSERT_GT(posted, 0u);
  b.Run([&] {
    EXPECT_EQ(Poke(proxy), RPC_E_SYS_CALL_FAILED);  // An application call: refused.
    proxy->Release();                                // The runtime's: deferred.
  });
  EXPECT_EQ(deaths.load(), 0);  // a has not pumped yet.
  unblock.Set();
  parker.join();
  EXPECT_TRUE(Eventually([&] { return deaths.load() == 1; })) << "the release was lost";
}

// --- A client apartment that ends releases its references at once ------------

// Tests that when the STA that unmarshaled a proxy uninitializes (no MTA in
// the process), the object's reference count returns at once to what it was
// before unmarshaling, although the proxy is never released; calls through
// the stale proxy give CO_E_OBJNOTCONNECTED and its Release still works
// (the references used to stay until the object's own apartment ended; Windows
// releases them at once: Wine's marshal tests, test_no_couninitialize_client).
TEST_F(ReliabilityTest, ClientStaEndReleasesItsRemoteReferencesAtOnce) {
  AptThread a;
  Probe* probe = nullptr;
  ULONG before = 0;
  IStream* stream = nullptr;
  a.Run([&] {
    probe = new Probe;
    before = probe->refs();
    stream = MarshalNormal(static_cast<ICounter*>(probe), IID_ICounter);
  });
  ICounter* proxy = nullptr;
  RunInSta([&] {
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              S_OK);
    EXPECT_EQ(Poke(proxy), S_OK);
  });  // CoUninitialize; the proxy is not released.
  ULONG after = 0;
  a.Run([&] { after = probe->refs(); });
  EXPECT_EQ(after, before) << "the ended client's references were kept";
  RunInSta([&] {
    EXPECT_EQ(Poke(proxy), CO_E_OBJNOTCONNECTED);
    proxy->Release();
  });
  a.Run([&] { probe->Release(); });
}

// Tests that a client STA whose thread exits without CoUninitialize releases
// its remote references too, and that the stale proxy's Release works from
// another thread afterwards.
TEST_F(ReliabilityTest, ClientThreadExitReleasesItsRemoteReferences) {
  std::atomic<int> deaths{0};
  AptThread a;
  IStream* stream = nullptr;
  a.Run([&] {
    Probe* probe = new Probe;
    probe->deaths = &deaths;
    stream = MarshalNormal(static_cast<ICounter*>(probe), IID_ICounter);
    probe->Release();
  });
  ICounter* proxy = nullptr;
  EXPECT_EQ(RunThreadToEnd([&]() -> DWORD {
              if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) return 1;
              if (CoGetInterfaceAndReleaseStream(stream, IID_ICounter,
                                                 reinterpret_cast<void**>(&proxy)) != S_OK) {
                return 2;
              }
              return Poke(proxy) == S_OK ? 0 : 3;  // Exits in its STA.
            }),
            0u);
  // Released by the time the thread has ended (as on Windows, where the
  // exiting client's apartment releases in DLL_THREAD_DETACH).
  EXPECT_EQ(deaths.load(), 1) << "the exited client's reference was kept";
  RunInMta([&] {
    EXPECT_EQ(Poke(proxy), CO_E_OBJNOTCONNECTED);
    proxy->Release();
  });
}

// Tests churn: many short-lived client STAs unmarshal proxies of one object,
// call it, and end, some releasing their proxy, some not, while another
// client keeps calling; at quiescence the object holds only its own
// reference and the live client's.
TEST_F(ReliabilityTest, ChurningClientsLeaveNoReferenceBehind) {
  AptThread a, keeper;
  Probe* probe = nullptr;
  ULONG before = 0;
  a.Run([&] {
    probe = new Probe;
    before = probe->refs();
  });
  auto marshal = [&] {
    IStream* stream = nullptr;
    a.Run([&] { stream = MarshalNormal(static_cast<ICounter*>(probe), IID_ICounter); });
    return stream;
  };
  ICounter* kept = nullptr;
  IStream* kept_stream = marshal();
  keeper.Run([&] {
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(kept_stream, IID_ICounter,
                                             reinterpret_cast<void**>(&kept)),
              S_OK);
  });
  std::vector<ICounter*> stale;
  for (int i = 0; i < 24; ++i) {
    IStream* stream = marshal();
    ICounter* proxy = nullptr;
    RunInSta([&] {
      ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter,
                                               reinterpret_cast<void**>(&proxy)),
                S_OK);
      EXPECT_EQ(Poke(proxy), S_OK);
      if (i % 2 == 0) {
        proxy->Release();
        proxy = nullptr;
      }
    });
    if (proxy != nullptr) stale.push_back(proxy);
    keeper.Run([&] { EXPECT_EQ(Poke(kept), S_OK); });
  }
  ULONG with_keeper = 0;
  ASSERT_TRUE(Eventually([&] {
    a.Run([&] { with_keeper = probe->refs(); });
    return with_keeper == before + 2;  // The keeper's stub: identity and ICounter.
  })) << with_keeper;
  for (ICounter* proxy : stale) proxy->Release();
  keeper.Run([&] { kept->Release(); });
  ULONG after = 0;
  EXPECT_TRUE(Eventually([&] {
    a.Run([&] { after = probe->refs(); });
    return after == before;
  })) << after;
  a.Run([&] { probe->Release(); });
}

// --- ExitThread inside calls ----------------------------------------------------

// Tests ExitThread in a callback: STA A calls B through a proxy, B calls A
// back, and A's callback calls ExitThread. A's thread ends (this was
// std::terminate: the forced unwind hit a noexcept proxy function), B's
// callback gets RPC_E_DISCONNECTED, and the process goes on; A's references
// on B's object are released.
TEST_F(ReliabilityTest, ExitThreadInCallbackEndsOnlyThatThread) {
  std::atomic<int> deaths{0};
  std::atomic<HRESULT> callback_hr{S_OK};
  AptThread b;
  IStream* stream = nullptr;
  b.Run([&] {
    Probe* holder = new Probe;
    holder->deaths = &deaths;
    holder->RecordHeldResultIn(&callback_hr);
    stream = MarshalNormal(static_cast<IHolder*>(holder), IID_IHolder);
    holder->Release();
  });
  IHolder* holder = nullptr;  // A's proxy, left behind by its thread.
  const DWORD code = RunThreadToEnd([&]() -> DWORD {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) return 1;
    if (CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)) !=
        S_OK) {
      return 2;
    }
    Probe* exiter = new Probe;
    exiter->on_add = [](int) -> HRESULT { ExitThread(42); };
    if (holder->Set(static_cast<ICounter*>(exiter)) != S_OK) return 3;
    exiter->Release();
    int total = 0;
    DWORD tid = 0;
    (void)holder->AddToHeld(1, &total, &tid);  // B calls back: the callback exits.
    return 4;                                  // Never reached.
  });
  EXPECT_EQ(code, 42u);
  EXPECT_EQ(callback_hr.load(), RPC_E_DISCONNECTED);
  // B lets go of what it held of A, and A's reference on B's object goes.
  EXPECT_TRUE(Eventually([&] { return deaths.load() == 1; })) << "A's proxy of B's object was kept";
  holder->Release();  // Stale (its apartment ended), but still releasable.
}

// Tests ExitThread in a call served inside the modal wait of a proxy's
// Release: A releases its last proxy of B's object, whose destructor (on B)
// calls back into A, where the callback exits. This was std::terminate
// (the forced unwind crossed the noexcept Release); now A ends, B's callback
// gets RPC_E_DISCONNECTED, and the object is destroyed once.
TEST_F(ReliabilityTest, ExitThreadInsideReleaseModalWait) {
  std::atomic<int> deaths{0};
  std::atomic<HRESULT> callback_hr{S_OK};
  AptThread b;
  IStream* stream = nullptr;
  b.Run([&] {
    Probe* holder = new Probe;
    holder->deaths = &deaths;
    holder->on_death = [&callback_hr](ICounter* held) {
      int total = 0;
      if (held != nullptr) callback_hr = held->Add(1, &total);
    };
    stream = MarshalNormal(static_cast<IHolder*>(holder), IID_IHolder);
    holder->Release();
  });
  const DWORD code = RunThreadToEnd([&]() -> DWORD {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) return 1;
    IHolder* holder = nullptr;
    if (CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)) !=
        S_OK) {
      return 2;
    }
    Probe* exiter = new Probe;
    exiter->on_add = [](int) -> HRESULT { ExitThread(43); };
    if (holder->Set(static_cast<ICounter*>(exiter)) != S_OK) return 3;
    exiter->Release();
    holder->Release();  // B's object dies and calls back: the callback exits.
    return 4;           // Never reached.
  });
  EXPECT_EQ(code, 43u);
  EXPECT_EQ(callback_hr.load(), RPC_E_DISCONNECTED);
  EXPECT_EQ(deaths.load(), 1);
}

// Pumps the calling STA until it has served `budget_ms` worth of waiting
// (bounded: a thread expected to exit inside a call it serves returns 5).
DWORD PumpUntilExited(DWORD budget_ms = kBoundMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
  MSG msg;
  while (std::chrono::steady_clock::now() < deadline) {
    MsgWaitForMultipleObjectsEx(0, nullptr, 10, QS_ALLINPUT, MWMO_INPUTAVAILABLE);
    while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
  }
  return 5;
}

// Tests ExitThread in a call served while a callee that threw releases its
// [in] interface: A's method throws, the runtime releases the [in] proxy of
// B's object, that release waits in A's modal loop, and B calls A back
// there; the callback exits. This was std::terminate ("terminate called
// after throwing an instance of 'std::runtime_error'": the release ran inside
// the proxy's catch handler, so the forced unwind met a caught exception).
// Now A ends, B's callback and B's call get RPC_E_DISCONNECTED, and B's
// object is back to B's own reference.
TEST_F(ReliabilityTest, ExitThreadWhileReleasingArgumentsOfThrowingCallEndsOnlyThatThread) {
  IStream* exiter_stream = nullptr;
  IStream* thrower_stream = nullptr;
  TestEvent marshaled;
  std::atomic<bool> set_ran{false};
  HANDLE a = ktest::StartThread([&]() -> DWORD {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) return 1;
    Probe* exiter = new Probe;
    exiter->on_add = [](int) -> HRESULT { ExitThread(44); };
    Probe* thrower = new Probe;
    thrower->on_set = [&set_ran](ICounter*) -> HRESULT {
      set_ran = true;
      throw std::runtime_error("Set threw");
    };
    exiter_stream = MarshalNormal(static_cast<ICounter*>(exiter), IID_ICounter);
    thrower_stream = MarshalNormal(static_cast<IHolder*>(thrower), IID_IHolder);
    exiter->Release();
    thrower->Release();
    marshaled.Set();
    return PumpUntilExited();
  });
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(marshaled.Wait());
  AptThread b;
  std::atomic<HRESULT> callback_hr{S_OK};
  HRESULT set_hr = S_OK;
  ULONG refs_after = 0;
  b.Run([&] {
    ICounter* exiter = nullptr;
    IHolder* thrower = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(exiter_stream, IID_ICounter,
                                             reinterpret_cast<void**>(&exiter)),
              S_OK);
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(thrower_stream, IID_IHolder,
                                             reinterpret_cast<void**>(&thrower)),
              S_OK);
    Probe* argument = new Probe;
    bool armed = true;
    // The stub's last reference on the argument goes (after A's method
    // threw) while A waits for that release: call A back from there.
    argument->on_release = [&](ULONG left) {
      if (left != 1 || !armed || !set_ran.load()) return;
      armed = false;
      int total = 0;
      callback_hr = exiter->Add(1, &total);
    };
    set_hr = thrower->Set(static_cast<ICounter*>(argument));
    argument->on_release = nullptr;
    refs_after = argument->refs();
    argument->Release();
    exiter->Release();
    thrower->Release();
  });
  EXPECT_EQ(WaitForSingleObject(a, kBoundMs), WAIT_OBJECT_0) << "A did not end";
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(a, &code));
  CloseHandle(a);
  EXPECT_EQ(code, 44u);
  EXPECT_EQ(callback_hr.load(), RPC_E_DISCONNECTED);
  EXPECT_EQ(set_hr, RPC_E_DISCONNECTED);
  EXPECT_EQ(refs_after, 1u) << "A's reference on B's object was kept";
}

// Tests that a release withdrawn by ExitThread is still delivered: A
// releases its last proxy of B's object while B does not pump, so the
// release waits in A's queue-pumping modal loop; there A serves a call that
// exits, which withdraws the release before B ever saw it. The release used
// to be lost (B's object lived on); now B's object dies once B pumps again.
TEST_F(ReliabilityTest, ReleaseWithdrawnByExitThreadIsDeliveredLater) {
  std::atomic<int> deaths{0};
  AptThread b;
  IStream* object_stream = nullptr;
  b.Run([&] {
    Probe* object = new Probe;
    object->deaths = &deaths;
    object_stream = MarshalNormal(static_cast<ICounter*>(object), IID_ICounter);
    object->Release();
  });
  IStream* exiter_stream = nullptr;
  TestEvent marshaled, exiter_called;
  HANDLE a = ktest::StartThread([&]() -> DWORD {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) return 1;
    ICounter* object = nullptr;
    if (CoGetInterfaceAndReleaseStream(object_stream, IID_ICounter,
                                       reinterpret_cast<void**>(&object)) != S_OK) {
      return 2;
    }
    Probe* exiter = new Probe;
    exiter->on_add = [](int) -> HRESULT { ExitThread(45); };
    exiter_stream = MarshalNormal(static_cast<ICounter*>(exiter), IID_ICounter);
    exiter->Release();
    marshaled.Set();
    // The call that will exit is queued here before the release starts.
    if (!exiter_called.Wait()) return 3;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBoundMs);
    while ((GetQueueStatus(QS_POSTMESSAGE) >> 16) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return 4;
      std::this_thread::yield();
    }
    object->Release();  // Waits for B, serves the exiting call.
    return 6;           // Never reached.
  });
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(marshaled.Wait());
  // B stops pumping until A has ended.
  TestEvent b_parked, unpark;
  std::thread parker([&] {
    b.Run([&] {
      b_parked.Set();
      (void)unpark.Wait();
    });
  });
  ASSERT_TRUE(b_parked.Wait());
  HRESULT exiter_hr = S_OK;
  {
    AptThread caller(AptThread::kMta);
    caller.Run([&] {
      ICounter* exiter = nullptr;
      ASSERT_EQ(CoGetInterfaceAndReleaseStream(exiter_stream, IID_ICounter,
                                               reinterpret_cast<void**>(&exiter)),
                S_OK);
      exiter_called.Set();
      int total = 0;
      exiter_hr = exiter->Add(1, &total);
      exiter->Release();
    });
  }
  EXPECT_EQ(WaitForSingleObject(a, kBoundMs), WAIT_OBJECT_0) << "A did not end";
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(a, &code));
  CloseHandle(a);
  EXPECT_EQ(code, 45u);
  EXPECT_EQ(exiter_hr, RPC_E_DISCONNECTED);
  EXPECT_EQ(deaths.load(), 0) << "B did not pump: nothing can have released its object yet";
  unpark.Set();
  parker.join();
  EXPECT_TRUE(Eventually([&] { return deaths.load() == 1; })) << "the withdrawn release was lost";
}

// Tests that a caller whose callee's thread exits inside the call gets
// RPC_E_DISCONNECTED with an explanation saying the call ran and its thread
// exited in it, when (not the uptime), and nothing of "still queued: it never
// ran" (the outcome and the explanation used to disagree).
TEST_F(ReliabilityTest, ExitThreadInsideCallIsExplainedAsRanAndExited) {
  IStream* stream = nullptr;
  TestEvent marshaled, done;
  DWORD server_tid = 0;
  HANDLE server = ktest::StartThread([&]() -> DWORD {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) return 1;
    Probe* exiter = new Probe;
    exiter->on_add = [](int) -> HRESULT { ExitThread(44); };
    stream = MarshalNormal(static_cast<ICounter*>(exiter), IID_ICounter);
    exiter->Release();
    server_tid = GetCurrentThreadId();
    marshaled.Set();
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
    return 5;
  });
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(marshaled.Wait());
  RunInMta([&] {
    ICounter* proxy = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              S_OK);
    EXPECT_EQ(Poke(proxy), RPC_E_DISCONNECTED);
    const std::string why = LastErrorDescription();
    EXPECT_EQ(LastErrorHResult(), RPC_E_DISCONNECTED);
    EXPECT_NE(why.find("exited inside the call"), std::string::npos) << why;
    EXPECT_NE(why.find("ran but never returned"), std::string::npos) << why;
    EXPECT_NE(why.find(std::to_string(server_tid)), std::string::npos) << why;
    EXPECT_EQ(why.find("never ran"), std::string::npos) << why;
    EXPECT_EQ(why.find("still queued"), std::string::npos) << why;
    proxy->Release();
  });
  ASSERT_EQ(WaitForSingleObject(server, kBoundMs), WAIT_OBJECT_0);
  DWORD code = 0;
  EXPECT_TRUE(GetExitCodeThread(server, &code));
  EXPECT_EQ(code, 44u);
  CloseHandle(server);
}

// Tests that ExitThread inside a modern Apartment::Call ends the apartment's
// thread, and the call returns RPC_E_DISCONNECTED saying it ran and its
// thread exited (no std::terminate, no "never ran").
TEST_F(ReliabilityTest, ExitThreadInsideModernCallIsDisconnected) {
  ::apartments::Apartment apartment({.name = "modern-exit"});
  ::apartments::Result<int> r = apartment.Call([]() -> int { ExitThread(7); });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_DISCONNECTED);
  EXPECT_NE(r.error().message.find("exited inside the call"), std::string::npos)
      << r.error().message;
  ::apartments::Result<int> after = apartment.Call([] { return 1; });
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, RPC_E_DISCONNECTED);
}

// Tests that ExitThread inside a CallFuture callable gives the future
// RPC_E_DISCONNECTED (it used to abort: the callable's catch-all swallowed
// the forced unwind).
TEST_F(ReliabilityTest, ExitThreadInsideCallFutureAnswersTheFuture) {
  ::apartments::Apartment apartment({.name = "future-exit"});
  std::future<::apartments::Result<int>> future = apartment.CallFuture([]() -> int { ExitThread(8); });
  ASSERT_EQ(future.wait_for(std::chrono::milliseconds(kBoundMs)), std::future_status::ready);
  ::apartments::Result<int> r = future.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, RPC_E_DISCONNECTED);
  EXPECT_NE(r.error().message.find("exited"), std::string::npos) << r.error().message;
}

// Tests that ExitThread inside a callable posted with Apartment::Post ends
// the apartment's thread without aborting the process (the catch-all that
// reports a posted callable's exception used to swallow the forced unwind).
TEST_F(ReliabilityTest, ExitThreadInsidePostedCallableEndsOnlyItsThread) {
  ::apartments::Apartment apartment({.name = "post-exit"});
  ASSERT_EQ(apartment.Post([] { ExitThread(9); }), S_OK);
  EXPECT_TRUE(Eventually([&] {
    ::apartments::Result<int> r = apartment.Call([] { return 1; });
    return !r.has_value() && r.error().code == RPC_E_DISCONNECTED;
  }));
}

// --- Explanations of failed interface arguments --------------------------------------

// Tests that a call whose [out] interface cannot be marshaled back in the
// callee's apartment fails with that error and the explanation of why, on
// the caller's thread (it used to come with no error info at all).
TEST_F(ReliabilityTest, OutInterfaceThatCannotBeMarshaledBackIsExplained) {
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Probe* holder = new Probe;
    Probe* unmarshalable = new Probe;
    unmarshalable->refuse_identity = true;  // No identity: cannot be exported.
    holder->Set(static_cast<ICounter*>(unmarshalable));
    unmarshalable->Release();
    stream = MarshalNormal(static_cast<IHolder*>(holder), IID_IHolder);
    holder->Release();
  });
  b.Run([&] {
    IHolder* holder = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)),
              S_OK);
    ClearCallErrorInfo();
    ICounter* out = reinterpret_cast<ICounter*>(0x1);
    EXPECT_EQ(holder->Get(&out), E_NOINTERFACE);
    EXPECT_EQ(out, nullptr);
    const std::string why = LastErrorDescription();
    EXPECT_EQ(LastErrorHResult(), E_NOINTERFACE);
    EXPECT_NE(why.find("Could not marshal an interface argument"), std::string::npos) << why;
    EXPECT_NE(why.find(std::to_string(a.tid())), std::string::npos) << why;
    holder->Release();
  });
}

// Tests that a call whose [in] interface cannot be unmarshaled in the callee
// (its object was disconnected on the way, here by the callee's message
// filter) fails with CO_E_OBJNOTCONNECTED and the explanation of why, on the
// caller's thread (it used to come with no error info at all).
TEST_F(ReliabilityTest, InInterfaceThatCannotBeUnmarshaledInCalleeIsExplained) {
  AptThread a, b;
  TestMessageFilter filter;
  Probe* argument = nullptr;
  IStream* holder_stream = nullptr;
  IStream* argument_stream = nullptr;
  a.Run([&] {
    Probe* holder = new Probe;
    argument = new Probe;
    holder_stream = MarshalNormal(static_cast<IHolder*>(holder), IID_IHolder);
    argument_stream = MarshalNormal(static_cast<ICounter*>(argument), IID_ICounter);
    holder->Release();
    filter.on_incoming = [&](DWORD) {
      EXPECT_EQ(CoDisconnectObject(static_cast<ICounter*>(argument), 0), S_OK);
      return SERVERCALL_ISHANDLED;
    };
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
  });
  b.Run([&] {
    IHolder* holder = nullptr;
    ICounter* counter = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(holder_stream, IID_IHolder,
                                             reinterpret_cast<void**>(&holder)),
              S_OK);
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(argument_stream, IID_ICounter,
                                             reinterpret_cast<void**>(&counter)),
              S_OK);
    ClearCallErrorInfo();
    EXPECT_EQ(holder->Set(counter), CO_E_OBJNOTCONNECTED);
    const std::string why = LastErrorDescription();
    EXPECT_EQ(LastErrorHResult(), CO_E_OBJNOTCONNECTED);
    EXPECT_NE(why.find("Could not unmarshal an interface argument"), std::string::npos) << why;
    EXPECT_NE(why.find("CoDisconnectObject"), std::string::npos) << why;
    counter->Release();
    holder->Release();
  });
  a.Run([&] {
    ASSERT_EQ(CoRegisterMessageFilter(nullptr, nullptr), S_OK);
    argument->Release();
  });
}

// Sets up a (the caller, with a proxy of b's holder) and b (holding a proxy
// of a's counter, whose Add fails with its own error info), then runs
// `body` on a with the holder proxy.
void WithCallbackThatFails(bool holder_ignores_failure,
                           const std::function<void(IHolder*)>& body) {
  AptThread a, b;
  IStream* stream = nullptr;
  b.Run([&] {
    Probe* holder = new Probe;
    holder->ignore_held_failure = holder_ignores_failure;
    stream = MarshalNormal(static_cast<IHolder*>(holder), IID_IHolder);
    holder->Release();
  });
  a.Run([&] {
    IHolder* holder = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)),
              S_OK);
    Probe* failing = new Probe;
    failing->on_add = [](int) -> HRESULT {
      SetCallErrorInfo(E_ACCESSDENIED, "the callback's own reason", "test");
      return E_ACCESSDENIED;
    };
    ASSERT_EQ(holder->Set(static_cast<ICounter*>(failing)), S_OK);
    failing->Release();
    body(holder);
    ASSERT_EQ(holder->Set(nullptr), S_OK);
    holder->Release();
  });
}

// Tests that a call served while the thread waits for its own call leaves
// nothing on that thread's error info: the waiting call's caller reads its
// own (it used to read the served call's text, stale, as if it explained its
// own call).
TEST_F(ReliabilityTest, ServedCallLeavesNoStaleErrorInfoOnWaitingThread) {
  WithCallbackThatFails(/*holder_ignores_failure=*/true, [](IHolder* holder) {
    SetCallErrorInfo(E_FAIL, "a's own earlier error", "test");
    int total = 0;
    DWORD tid = 0;
    // b calls back into a (served in a's modal loop), whose callback fails
    // with its error info; b ignores that and succeeds.
    EXPECT_EQ(holder->AddToHeld(1, &total, &tid), S_OK);
    EXPECT_EQ(LastErrorDescription(), "a's own earlier error");
  });
}

// Tests that a callee's error info for its failure reaches its caller, as
// Windows' channel carries a server's error object back: here through two
// hops (a's callback to b, b's failure to a).
TEST_F(ReliabilityTest, CalleeErrorInfoReachesItsCaller) {
  WithCallbackThatFails(/*holder_ignores_failure=*/false, [](IHolder* holder) {
    SetCallErrorInfo(E_FAIL, "a's own earlier error", "test");
    int total = 0;
    DWORD tid = 0;
    EXPECT_EQ(holder->AddToHeld(1, &total, &tid), E_ACCESSDENIED);
    EXPECT_EQ(LastErrorDescription(), "the callback's own reason");
  });
}

// --- Unmarshaling racing a disconnection ------------------------------------------

// Tests that unmarshaling data whose object is disconnected while the proxy
// is being made (here by the object's own QueryInterface calling
// CoDisconnectObject) fails with CO_E_OBJNOTCONNECTED, as the header
// documents, with the disconnection in the explanation (it used to return
// RPC_E_DISCONNECTED, or even a proxy of a disconnected object).
TEST_F(ReliabilityTest, UnmarshalRacingDisconnectIsObjNotConnected) {
  AptThread a, b;
  IStream* stream = nullptr;
  Probe* probe = nullptr;
  a.Run([&] {
    probe = new Probe;
    probe->on_query = [&probe](REFIID riid) {
      if (riid == IID_IHolder) {
        EXPECT_EQ(CoDisconnectObject(static_cast<ICounter*>(probe), 0), S_OK);
      }
    };
    stream = MarshalNormal(static_cast<ICounter*>(probe), IID_ICounter);
  });
  b.Run([&] {
    IHolder* holder = reinterpret_cast<IHolder*>(0x1);
    EXPECT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)),
              CO_E_OBJNOTCONNECTED);
    EXPECT_EQ(holder, nullptr);
    const std::string why = LastErrorDescription();
    EXPECT_NE(why.find("CoDisconnectObject"), std::string::npos) << why;
  });
  a.Run([&] {
    EXPECT_EQ(probe->refs(), 1u);
    probe->on_query = nullptr;
    probe->Release();
  });
}

}  // namespace
}  // namespace apartments::internal::testing
