// Tests of apartments: CoInitializeEx counting and models, CoGetApartmentType
// (main STA, implicit MTA), MTA usage, identities, shutdown callbacks.
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/apartment_impl.h"
#include "com/com_test_util.h"
#include "gtest/gtest.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::RunInSta;
using testing::StaThread;
using testing::TestEvent;

struct AptType {
  HRESULT hr;
  APTTYPE type;
  APTTYPEQUALIFIER qualifier;
};
AptType GetAptType() {
  AptType t{};
  t.hr = CoGetApartmentType(&t.type, &t.qualifier);
  return t;
}

// Tests that CoInitializeEx counts: S_OK, then S_FALSE, and the apartment
// stays until the matching number of CoUninitialize calls.
TEST(ApartmentTest, InitializeCountsAndLastUninitializeLeaves) {
  BoundedThread t([] {
    EXPECT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    EXPECT_EQ(CoInitialize(nullptr), S_FALSE);
    CoUninitialize();
    AptType t1 = GetAptType();
    EXPECT_EQ(t1.hr, S_OK);
    EXPECT_TRUE(t1.type == APTTYPE_STA || t1.type == APTTYPE_MAINSTA);
    CoUninitialize();
    AptType t2 = GetAptType();
    EXPECT_EQ(t2.hr, CO_E_NOTINITIALIZED);
    EXPECT_EQ(t2.type, APTTYPE_CURRENT);
    CoUninitialize();  // One too many: ignored.
  });
}

// Tests that asking for the other model gives RPC_E_CHANGED_MODE and is not
// counted.
TEST(ApartmentTest, OtherModelIsChangedMode) {
  BoundedThread t([] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_MULTITHREADED), S_OK);
    EXPECT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), RPC_E_CHANGED_MODE);
    CoUninitialize();
    EXPECT_EQ(GetAptType().hr, CO_E_NOTINITIALIZED);
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED | COINIT_DISABLE_OLE1DDE), S_OK);
    EXPECT_EQ(CoInitializeEx(nullptr, COINIT_MULTITHREADED), RPC_E_CHANGED_MODE);
    CoUninitialize();
  });
}

// Tests that a reserved pointer or unknown flags give E_INVALIDARG.
TEST(ApartmentTest, BadArgumentsAreInvalidArg) {
  BoundedThread t([] {
    int reserved = 0;
    EXPECT_EQ(CoInitializeEx(&reserved, COINIT_MULTITHREADED), E_INVALIDARG);
    EXPECT_EQ(CoInitializeEx(nullptr, 0x100), E_INVALIDARG);
    EXPECT_EQ(CoGetApartmentType(nullptr, nullptr), E_INVALIDARG);
    EXPECT_EQ(GetAptType().hr, CO_E_NOTINITIALIZED);
  });
}

// Tests that the first STA alive is the main STA and a second one is not.
TEST(ApartmentTest, FirstStaIsMainSta) {
  StaThread first(L"first");
  StaThread second(L"second");
  EXPECT_TRUE(first.apartment()->is_main_sta());
  EXPECT_FALSE(second.apartment()->is_main_sta());
  APTTYPE type = APTTYPE_CURRENT;
  BoundedThread caller([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_MULTITHREADED), S_OK);
    APTTYPEQUALIFIER q1, q2;
    EXPECT_EQ(InvokeInApartment(first.apartment(), [&] { return CoGetApartmentType(&type, &q1); }),
              S_OK);
    EXPECT_EQ(type, APTTYPE_MAINSTA);
    EXPECT_EQ(InvokeInApartment(second.apartment(), [&] { return CoGetApartmentType(&type, &q2); }),
              S_OK);
    EXPECT_EQ(type, APTTYPE_STA);
    CoUninitialize();
  });
}

// Tests that a thread that never initialized is in the implicit MTA while an
// MTA exists, and in no apartment once it is gone.
TEST(ApartmentTest, ImplicitMtaWhileMtaExists) {
  TestEvent mta_up, checked;
  BoundedThread mta([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_MULTITHREADED), S_OK);
    AptType t = GetAptType();
    EXPECT_EQ(t.type, APTTYPE_MTA);
    EXPECT_EQ(t.qualifier, APTTYPEQUALIFIER_NONE);
    mta_up.Set();
    EXPECT_TRUE(checked.Wait());
    CoUninitialize();
  });
  ASSERT_TRUE(mta_up.Wait());
  BoundedThread bystander([] {
    AptType t = GetAptType();
    EXPECT_EQ(t.hr, S_OK);
    EXPECT_EQ(t.type, APTTYPE_MTA);
    EXPECT_EQ(t.qualifier, APTTYPEQUALIFIER_IMPLICIT_MTA);
    ApartmentRef current = CurrentApartment();
    ASSERT_NE(current, nullptr);
    EXPECT_EQ(current->kind(), ApartmentKind::kMta);
    EXPECT_TRUE(current->IsCurrent());
  });
  bystander.Join();
  checked.Set();
  mta.Join();
  BoundedThread after([] {
    EXPECT_EQ(GetAptType().hr, CO_E_NOTINITIALIZED);
    EXPECT_EQ(CurrentApartment(), nullptr);
  });
}

// Tests that CoIncrementMTAUsage keeps an MTA alive without joining it, and
// that a cookie can be returned only once.
TEST(ApartmentTest, MtaUsageCookies) {
  BoundedThread t([] {
    CO_MTA_USAGE_COOKIE cookie = nullptr;
    EXPECT_EQ(CoIncrementMTAUsage(nullptr), E_INVALIDARG);
    ASSERT_EQ(CoIncrementMTAUsage(&cookie), S_OK);
    AptType t1 = GetAptType();
    EXPECT_EQ(t1.type, APTTYPE_MTA);
    EXPECT_EQ(t1.qualifier, APTTYPEQUALIFIER_IMPLICIT_MTA);
    ApartmentRef mta = CurrentApartment();
    EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
    EXPECT_TRUE(mta->IsShutDown());
    EXPECT_EQ(CoDecrementMTAUsage(cookie), E_INVALIDARG);
    EXPECT_EQ(GetAptType().hr, CO_E_NOTINITIALIZED);
  });
}

// The process's MTA for a test: a usage cookie keeps it alive meanwhile.
class MtaForTest {
 public:
  MtaForTest() {
    if (CoIncrementMTAUsage(&cookie_) != S_OK) std::abort();
    BoundedThread find([this] { mta_ = CurrentApartment(); });
  }
  ~MtaForTest() { EXPECT_EQ(CoDecrementMTAUsage(cookie_), S_OK); }
  const ApartmentRef& get() const { return mta_; }

 private:
  CO_MTA_USAGE_COOKIE cookie_ = nullptr;
  ApartmentRef mta_;
};

// Tests that a call into the MTA that blocks does not keep another call from
// running: while every worker is busy, the pool starts one more (the first
// call returns only once the second one has run).
TEST(ApartmentTest, MtaPoolGrowsPastBlockedWorkers) {
  MtaForTest mta;
  TestEvent first_running, second_ran;
  HRESULT first = E_FAIL, second = E_FAIL;
  DWORD first_tid = 0, second_tid = 0;
  BoundedThread a([&] {
    RunInSta([&] {
      first = InvokeInApartment(mta.get(), [&] {
        first_tid = GetCurrentThreadId();
        first_running.Set();
        return second_ran.Wait() ? S_OK : E_FAIL;
      });
    });
  });
  ASSERT_TRUE(first_running.Wait());
  RunInSta([&] {
    second = InvokeInApartment(mta.get(), [&] {
      second_tid = GetCurrentThreadId();
      second_ran.Set();
      return S_OK;
    });
  });
  a.Join();
  EXPECT_EQ(first, S_OK);
  EXPECT_EQ(second, S_OK);
  EXPECT_NE(first_tid, second_tid);
}

// Tests that calls into the MTA from many STAs at once each run once, on a
// worker, and return their own result: the hand-off to parked workers loses,
// duplicates and mixes up no call.
TEST(ApartmentTest, MtaCallsFromManyThreadsEachRunOnce) {
  MtaForTest mta;
  constexpr int kCallers = 6;
  constexpr int kCalls = 300;
  std::atomic<int> ran{0};
  std::atomic<int> wrong{0};
  std::vector<std::unique_ptr<BoundedThread>> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.push_back(std::make_unique<BoundedThread>([&] {
      RunInSta([&] {
        const DWORD caller = GetCurrentThreadId();
        for (int i = 0; i < kCalls; ++i) {
          int value = -1;
          const HRESULT hr = InvokeInApartment(mta.get(), [&, i] {
            ran.fetch_add(1);
            value = i;
            return GetCurrentThreadId() != caller ? S_OK : E_UNEXPECTED;
          });
          if (hr != S_OK || value != i) wrong.fetch_add(1);
        }
      });
    }));
  }
  for (auto& caller : callers) caller->Join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ran.load(), kCallers * kCalls);
}

// Tests that CoGetCurrentProcess is stable within a thread and differs
// between threads.
TEST(ApartmentTest, CurrentProcessIsPerThread) {
  DWORD mine = CoGetCurrentProcess();
  EXPECT_NE(mine, 0u);
  EXPECT_EQ(CoGetCurrentProcess(), mine);
  DWORD other = 0;
  BoundedThread t([&] { other = CoGetCurrentProcess(); });
  t.Join();
  EXPECT_NE(other, mine);
}

// Tests that a callee sees its caller's logical thread id (causality).
TEST(ApartmentTest, LogicalThreadIdFlowsIntoCallee) {
  StaThread sta;
  BoundedThread t([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    GUID mine, again, seen{};
    EXPECT_EQ(CoGetCurrentLogicalThreadId(nullptr), E_INVALIDARG);
    ASSERT_EQ(CoGetCurrentLogicalThreadId(&mine), S_OK);
    ASSERT_EQ(CoGetCurrentLogicalThreadId(&again), S_OK);
    EXPECT_EQ(mine, again);
    EXPECT_EQ(InvokeInApartment(sta.apartment(), [&] { return CoGetCurrentLogicalThreadId(&seen); }),
              S_OK);
    EXPECT_EQ(seen, mine);
    CoUninitialize();
  });
}

// Tests that an STA has a live hidden message-only window owned by its
// thread, destroyed at the last CoUninitialize.
TEST(ApartmentTest, StaOwnsHiddenWindowUntilUninitialize) {
  BoundedThread t([] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    auto* sta = static_cast<ApartmentImpl*>(CurrentApartment().get());
    HWND hwnd = sta->hwnd();
    EXPECT_TRUE(IsWindow(hwnd));
    EXPECT_EQ(GetWindowThreadProcessId(hwnd, nullptr), GetCurrentThreadId());
    CoUninitialize();
    EXPECT_FALSE(IsWindow(hwnd));
  });
}

// Tests that Describe() names the apartment, its thread id and its name.
TEST(ApartmentTest, DescribeNamesThread) {
  StaThread sta(L"ui-thread");
  std::string text = sta.apartment()->Describe();
  EXPECT_NE(text.find("STA " + std::to_string(sta.apartment()->id())), std::string::npos) << text;
  EXPECT_NE(text.find("thread " + std::to_string(sta.tid())), std::string::npos) << text;
  EXPECT_NE(text.find("'ui-thread'"), std::string::npos) << text;
  EXPECT_EQ(sta.apartment()->thread_id(), sta.tid());
}

// Tests that shutdown callbacks run on the STA's thread in reverse order of
// registration, and that registering after shutdown returns false.
TEST(ApartmentTest, ShutdownCallbacksRunInReverseOnStaThread) {
  std::vector<int> order;
  std::vector<DWORD> threads;
  ApartmentRef apartment;
  DWORD sta_tid = 0;
  BoundedThread t([&] {
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    apartment = CurrentApartment();
    sta_tid = GetCurrentThreadId();
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(apartment->AddShutdownCallback([&, i] {
        order.push_back(i);
        threads.push_back(GetCurrentThreadId());
      }));
    }
    EXPECT_FALSE(apartment->IsShutDown());
    CoUninitialize();
  });
  t.Join();
  EXPECT_EQ(order, (std::vector<int>{2, 1, 0}));
  for (DWORD tid : threads) EXPECT_EQ(tid, sta_tid);
  EXPECT_TRUE(apartment->IsShutDown());
  EXPECT_FALSE(apartment->AddShutdownCallback([] {}));
}

// Tests that an STA whose thread exits without CoUninitialize is shut down
// by the thread-exit hook (callbacks run, window gone).
TEST(ApartmentTest, ThreadExitShutsStaDown) {
  ApartmentRef apartment;
  std::atomic<bool> ran{false};
  HWND hwnd = nullptr;
  {
    BoundedThread t([&] {
      ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
      apartment = CurrentApartment();
      hwnd = static_cast<ApartmentImpl*>(apartment.get())->hwnd();
      apartment->AddShutdownCallback([&] { ran = true; });
    });
  }
  ASSERT_NE(apartment, nullptr);
  EXPECT_TRUE(ran.load());
  EXPECT_TRUE(apartment->IsShutDown());
  EXPECT_FALSE(IsWindow(hwnd));
}

// Tests that CoRegisterMessageFilter works only in an STA: CO_E_NOT_SUPPORTED
// in the MTA and outside any apartment (leaving *lplpMessageFilter alone, as
// Wine's compobj tests check on Windows); it returns the
// previous filter, and the filter is released at the last CoUninitialize.
TEST(ApartmentTest, MessageFilterRegistration) {
  testing::TestMessageFilter a, b;
  BoundedThread none([&] {
    EXPECT_EQ(CoRegisterMessageFilter(&a, nullptr), CO_E_NOT_SUPPORTED);
  });
  testing::RunInMta([&] {
    EXPECT_EQ(CoRegisterMessageFilter(&a, nullptr), CO_E_NOT_SUPPORTED);
    IMessageFilter* untouched = &b;  // failure leaves the out parameter alone
    EXPECT_EQ(CoRegisterMessageFilter(&a, &untouched), CO_E_NOT_SUPPORTED);
    EXPECT_EQ(untouched, &b);
  });
  testing::RunInSta([&] {
    EXPECT_EQ(CoRegisterMessageFilter(&a, nullptr), S_OK);
    EXPECT_EQ(a.refs(), 2);
    IMessageFilter* previous = nullptr;
    EXPECT_EQ(CoRegisterMessageFilter(&b, &previous), S_OK);
    EXPECT_EQ(previous, &a);
    previous->Release();
    EXPECT_EQ(b.refs(), 2);
  });
  EXPECT_EQ(a.refs(), 1);
  EXPECT_EQ(b.refs(), 1);
}

}  // namespace
}  // namespace apartments::internal
