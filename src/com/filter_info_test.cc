// Tests of what a message filter's HandleInComingCall is told about each
// incoming call (INTERFACEINFO and call type), as Windows tells it.
#include <mutex>
#include <vector>

#include "apartments/win32.h"
#include "com/marshal_test_util.h"
#include "gtest/gtest.h"

namespace apartments::internal::testing {
namespace {

struct SeenCall {
  DWORD call_type;
  IUnknown* object;
  IID iid;
  WORD method;
};

// A message filter that records the calls it is asked about, and accepts
// them all. Owned by the test.
class RecordingFilter final : public IMessageFilter {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown || riid == IID_IMessageFilter) {
      *ppv = static_cast<IMessageFilter*>(this);
      return S_OK;
    }
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return 2; }
  STDMETHODIMP_(ULONG) Release() override { return 1; }
  STDMETHODIMP_(DWORD) HandleInComingCall(DWORD call_type, HTASK, DWORD,
                                          LPINTERFACEINFO info) override {
    std::lock_guard lock(mu_);
    if (info == nullptr) {
      seen_.push_back({call_type, nullptr, IID_NULL, 0xFFFF});
    } else {
      // The pointer is only valid during the call: a remote QueryInterface
      // for it must answer.
      if (info->pUnk != nullptr && info->iid == IID_IRemUnknown) {
        IUnknown* rem = nullptr;
        rem_unknown_answers_ = info->pUnk->QueryInterface(IID_IRemUnknown,
                                                           reinterpret_cast<void**>(&rem)) == S_OK;
        if (rem != nullptr) rem->Release();
      }
      seen_.push_back({call_type, info->pUnk, info->iid, info->wMethod});
    }
    return SERVERCALL_ISHANDLED;
  }
  STDMETHODIMP_(DWORD) RetryRejectedCall(HTASK, DWORD, DWORD) override { return static_cast<DWORD>(-1); }
  STDMETHODIMP_(DWORD) MessagePending(HTASK, DWORD, DWORD) override {
    return PENDINGMSG_WAITDEFPROCESS;
  }

  std::vector<SeenCall> TakeSeen() {
    std::lock_guard lock(mu_);
    return std::exchange(seen_, {});
  }
  bool rem_unknown_answers() {
    std::lock_guard lock(mu_);
    return rem_unknown_answers_;
  }

 private:
  std::mutex mu_;
  std::vector<SeenCall> seen_;
  bool rem_unknown_answers_ = false;
};

// A class factory that makes Counters.
class CounterFactory final : public ComObject<CounterFactory, IClassFactory> {
 public:
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    *ppv = nullptr;
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    static DeathRecord counters;  // Counters may outlive the factory.
    Counter* counter = MakeComObject<Counter>(&counters);
    HRESULT hr = counter->QueryInterface(riid, ppv);
    counter->Release();
    return hr;
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }
};

class FilterInfoTest : public MarshalTest {};

// Tests that a call through a proxy names the object's interface pointer, the
// interface's IID and the method's number (IClassFactory: CreateInstance 3,
// LockServer 4), as a top-level call.
TEST_F(FilterInfoTest, ProxyCallNamesObjectInterfaceAndMethod) {
  AptThread server, client;
  RecordingFilter filter;
  CounterFactory* factory = nullptr;
  IStream* stream = nullptr;
  server.Run([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
    factory = MakeComObject<CounterFactory>();
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(
                  IID_IClassFactory, static_cast<IClassFactory*>(factory), &stream),
              S_OK);
  });
  client.Run([&] {
    IClassFactory* proxy = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IClassFactory,
                                             reinterpret_cast<void**>(&proxy)),
              S_OK);
    filter.TakeSeen();
    ICounter* counter = nullptr;
    EXPECT_EQ(proxy->CreateInstance(nullptr, IID_ICounter, reinterpret_cast<void**>(&counter)),
              S_OK);
    EXPECT_EQ(proxy->LockServer(TRUE), S_OK);
    std::vector<SeenCall> seen = filter.TakeSeen();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].call_type, static_cast<DWORD>(CALLTYPE_TOPLEVEL));
    EXPECT_EQ(seen[0].object, static_cast<IUnknown*>(static_cast<IClassFactory*>(factory)));
    EXPECT_EQ(seen[0].iid, IID_IClassFactory);
    EXPECT_EQ(seen[0].method, 3);
    EXPECT_EQ(seen[1].iid, IID_IClassFactory);
    EXPECT_EQ(seen[1].method, 4);
    if (counter != nullptr) counter->Release();
    proxy->Release();
  });
  server.Run([&] {
    factory->Release();
    EXPECT_EQ(CoRegisterMessageFilter(nullptr, nullptr), S_OK);
  });
}

// Tests that the method number of a proxy-recipe interface is its vtable
// slot, for an interface derived from another (IStream: Read 3, Write 4,
// Seek 5) and for a user interface (ICounter: Add 3, ThreadId 4).
TEST_F(FilterInfoTest, ProxyRecipeMethodNumbersAreVtableSlots) {
  EXPECT_EQ(VtableSlot(&IStream::Read), 3);
  EXPECT_EQ(VtableSlot(&IStream::Write), 4);
  EXPECT_EQ(VtableSlot(&IStream::Seek), 5);
  EXPECT_EQ(VtableSlot(&IClassFactory::CreateInstance), 3);
  AptThread server, client;
  RecordingFilter filter;
  DeathRecord counter_death;
  Counter* counter = nullptr;
  IStream* stream = nullptr;
  server.Run([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
    counter = MakeComObject<Counter>(&counter_death);
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, static_cast<ICounter*>(counter),
                                                    &stream),
              S_OK);
  });
  client.Run([&] {
    ICounter* proxy = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              S_OK);
    filter.TakeSeen();
    DWORD tid = 0;
    EXPECT_EQ(proxy->ThreadId(&tid), S_OK);
    std::vector<SeenCall> seen = filter.TakeSeen();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].iid, IID_ICounter);
    EXPECT_EQ(seen[0].method, 4);
    EXPECT_EQ(seen[0].object, static_cast<IUnknown*>(static_cast<ICounter*>(counter)));
    proxy->Release();
  });
  server.Run([&] {
    counter->Release();
    EXPECT_EQ(CoRegisterMessageFilter(nullptr, nullptr), S_OK);
  });
}

// Tests that a proxy's QueryInterface for an interface the stub does not hold
// yet reaches the filter as IRemUnknown::RemQueryInterface (3), naming an
// object that answers QueryInterface(IID_IRemUnknown), and that the release
// of the last reference (RemRelease) is the runtime's own traffic, which the
// filter does not see, so that a rejecting filter cannot lose it (issue 18).
TEST_F(FilterInfoTest, RuntimeCallsAreRemUnknownCalls) {
  AptThread server, client;
  RecordingFilter filter;
  DeathRecord counter_death;
  Counter* counter = nullptr;
  IStream* stream = nullptr;
  server.Run([&] {
    ASSERT_EQ(CoRegisterMessageFilter(&filter, nullptr), S_OK);
    counter = MakeComObject<Counter>(&counter_death);
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, static_cast<ICounter*>(counter),
                                                    &stream),
              S_OK);
  });
  client.Run([&] {
    ICounter* proxy = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              S_OK);
    filter.TakeSeen();
    IHolder* holder = nullptr;
    EXPECT_EQ(proxy->QueryInterface(IID_IHolder, reinterpret_cast<void**>(&holder)), S_OK);
    std::vector<SeenCall> seen = filter.TakeSeen();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].iid, IID_IRemUnknown);
    EXPECT_EQ(seen[0].method, 3);
    EXPECT_NE(seen[0].object, nullptr);
    if (holder != nullptr) holder->Release();
    proxy->Release();
    EXPECT_TRUE(filter.TakeSeen().empty());
  });
  EXPECT_TRUE(filter.rem_unknown_answers());
  server.Run([&] {
    counter->Release();
    // The release was delivered: the server's reference was the last one.
    EXPECT_EQ(counter_death.deaths.load(), 1);
    EXPECT_EQ(CoRegisterMessageFilter(nullptr, nullptr), S_OK);
  });
}

}  // namespace
}  // namespace apartments::internal::testing
