// Tests that class registrations belong to their apartment, as on Windows
// (Wine's compobj.c test_CoRegisterClassObject and
// test_registered_object_thread_affinity, run on Windows).
#include "apartments/win32.h"
#include "com/marshal_test_util.h"
#include "gtest/gtest.h"

namespace apartments::internal::testing {
namespace {

constexpr CLSID kClsid = GuidFromLiteral("5201163f-8164-4fd0-a1a2-5d5a3654d3bd");

class Factory final : public ComObject<Factory, IClassFactory> {
 public:
  explicit Factory(DeathRecord* death) : death_(death) {}
  ~Factory() {
    ++death_->deaths;
    death_->tid = GetCurrentThreadId();
  }
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

 private:
  DeathRecord* death_;
};

HRESULT GetFactory(DWORD context) {
  IClassFactory* factory = nullptr;
  HRESULT hr = CoGetClassObject(kClsid, context, nullptr, IID_IClassFactory,
                                reinterpret_cast<void**>(&factory));
  if (factory != nullptr) factory->Release();
  return hr;
}

class ClassRegistryTest : public MarshalTest {};

// Tests that an in-process registration made in an STA is found from that
// apartment only: another apartment gets REGDB_E_CLASSNOTREG, and may
// register the same class itself.
TEST_F(ClassRegistryTest, InprocRegistrationBelongsToItsApartment) {
  DeathRecord death;
  AptThread a, b;
  DWORD cookie = 0;
  a.Run([&] {
    Factory* factory = MakeComObject<Factory>(&death);
    ASSERT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(factory),
                                    CLSCTX_INPROC_SERVER, REGCLS_SINGLEUSE, &cookie),
              S_OK);
    factory->Release();
    EXPECT_EQ(GetFactory(CLSCTX_INPROC_SERVER), S_OK);
  });
  b.Run([&] {
    EXPECT_EQ(GetFactory(CLSCTX_INPROC_SERVER), REGDB_E_CLASSNOTREG);
    ICounter* counter = nullptr;
    EXPECT_EQ(CoCreateInstance(kClsid, nullptr, CLSCTX_INPROC_SERVER, IID_ICounter,
                               reinterpret_cast<void**>(&counter)),
              REGDB_E_CLASSNOTREG);
    DeathRecord other_death;
    Factory* other = MakeComObject<Factory>(&other_death);
    DWORD other_cookie = 0;
    EXPECT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(other),
                                    CLSCTX_INPROC_SERVER, REGCLS_SINGLEUSE, &other_cookie),
              S_OK);
    other->Release();
    EXPECT_EQ(CoRevokeClassObject(other_cookie), S_OK);
    EXPECT_EQ(other_death.deaths, 1);
  });
  a.Run([&] { EXPECT_EQ(CoRevokeClassObject(cookie), S_OK); });
  EXPECT_EQ(death.deaths, 1);
}

// Tests that CoRevokeClassObject from another apartment fails with
// RPC_E_WRONG_THREAD and leaves the registration in place.
TEST_F(ClassRegistryTest, RevokeFromAnotherApartmentIsWrongThread) {
  DeathRecord death;
  AptThread a, b;
  DWORD cookie = 0;
  a.Run([&] {
    Factory* factory = MakeComObject<Factory>(&death);
    ASSERT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(factory),
                                    CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE, &cookie),
              S_OK);
    factory->Release();
  });
  b.Run([&] {
    EXPECT_EQ(CoRevokeClassObject(cookie), RPC_E_WRONG_THREAD);
    EXPECT_EQ(GetFactory(CLSCTX_LOCAL_SERVER), S_OK);  // Still registered: a proxy.
  });
  EXPECT_EQ(death.deaths, 0);
  a.Run([&] { EXPECT_EQ(CoRevokeClassObject(cookie), S_OK); });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
}

// Tests that a class object registered in an STA is revoked when that
// apartment ends: it is released on its thread at CoUninitialize, and the
// class is no longer found, from anywhere.
TEST_F(ClassRegistryTest, RegistrationEndsWithItsApartment) {
  DeathRecord death;
  DWORD registering_tid = 0;
  BoundedThread registering([&] {
    registering_tid = GetCurrentThreadId();
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    Factory* factory = MakeComObject<Factory>(&death);
    DWORD cookie = 0;
    ASSERT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(factory),
                                    CLSCTX_INPROC_SERVER | CLSCTX_LOCAL_SERVER,
                                    REGCLS_MULTIPLEUSE, &cookie),
              S_OK);
    factory->Release();
    CoUninitialize();
    EXPECT_EQ(death.deaths, 1);
    EXPECT_EQ(death.tid, registering_tid);
    ASSERT_EQ(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED), S_OK);
    EXPECT_EQ(GetFactory(CLSCTX_INPROC_SERVER), REGDB_E_CLASSNOTREG);
    EXPECT_EQ(GetFactory(CLSCTX_LOCAL_SERVER), REGDB_E_CLASSNOTREG);
    CoUninitialize();
  });
  registering.Join();
}

// Tests that activation from another apartment through a CLSCTX_LOCAL_SERVER
// registration goes through the registering STA: the object is created on
// that thread and arrives as a proxy.
TEST_F(ClassRegistryTest, LocalServerActivationGoesThroughTheRegisteringSta) {
  AptThread a, b;
  DWORD cookie = 0;
  DeathRecord death;
  a.Run([&] {
    Factory* factory = MakeComObject<Factory>(&death);
    ASSERT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(factory),
                                    CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE, &cookie),
              S_OK);
    factory->Release();
  });
  b.Run([&] {
    EXPECT_EQ(GetFactory(CLSCTX_INPROC_SERVER), REGDB_E_CLASSNOTREG);
    ICounter* counter = nullptr;
    ASSERT_EQ(CoCreateInstance(kClsid, nullptr, CLSCTX_LOCAL_SERVER, IID_ICounter,
                               reinterpret_cast<void**>(&counter)),
              S_OK);
    DWORD tid = 0;
    EXPECT_EQ(counter->ThreadId(&tid), S_OK);
    EXPECT_EQ(tid, a.tid());
    counter->Release();
  });
  a.Run([&] { EXPECT_EQ(CoRevokeClassObject(cookie), S_OK); });
}

}  // namespace
}  // namespace apartments::internal::testing
