// Tests of Ref<I> and AgileRef<I> (include/apartments/ref.h).
#include <gtest/gtest.h>

#include <atomic>

#include "apartments/apartment.h"
#include "apartments/com_object.h"
#include "apartments/proxy.h"
#include "apartments/ref.h"
#include "apartments/win32.h"

namespace modern_ref_test {

struct IWhere : public IUnknown {
  STDMETHOD(Where)(DWORD* tid) PURE;
};
APARTMENTS_INTERFACE(IWhere, IUnknown, "5b1f3c2e-7a44-4d0e-9a51-0c6f2e8b9d11");

APARTMENTS_PROXY_BEGIN(IWhere)
  APARTMENTS_PROXY_METHOD(Where, (DWORD* tid), (tid))
APARTMENTS_PROXY_END(IWhere)

std::atomic<DWORD> g_destroyed_on{0};

class WhereObject final : public apartments::ComObject<WhereObject, IWhere> {
 public:
  STDMETHODIMP Where(DWORD* tid) override {
    *tid = GetCurrentThreadId();
    return S_OK;
  }

 private:
  ~WhereObject() override { g_destroyed_on = GetCurrentThreadId(); }
};

}  // namespace modern_ref_test

namespace apartments {
namespace {

using modern_ref_test::IWhere;

TEST(ModernRefTest, AgileRefCrossesThreeApartmentsAndIsReleasedOnEach) {
  // Tests that an AgileRef made in its home apartment yields a working proxy in two
  // other apartments, each released there, and the object dies on its home thread.
  modern_ref_test::g_destroyed_on = 0;
  Apartment home({.name = "ref-home"});
  Apartment b({.name = "ref-b"});
  Apartment c({.name = "ref-c"});
  {
    Result<AgileRef<IWhere>> agile = home.Call([] {
      Ref<IWhere> object =
          Ref<IWhere>::Adopt(apartments::MakeComObject<modern_ref_test::WhereObject>());
      return object.Agile();
    }).value();
    ASSERT_TRUE(agile.has_value()) << agile.error().message;
    for (const Apartment* there : {&b, &c, &home}) {
      Result<DWORD> ran_on = there->Call([&]() -> DWORD {
        Result<Ref<IWhere>> where = agile->Get();  // A proxy, released in this apartment.
        if (!where) return 0;
        Result<Ref<IUnknown>> unknown = where->As<IUnknown>();
        if (!unknown) return 0;
        DWORD tid = 0;
        return (*where)->Where(&tid) == S_OK ? tid : 0;
      });
      ASSERT_TRUE(ran_on.has_value()) << ran_on.error().message;
      EXPECT_EQ(*ran_on, home.thread_id());
    }
  }
  // The last AgileRef revoked the registration: the object is gone, released at home.
  Result<void> sync = home.Call([] {});
  ASSERT_TRUE(sync.has_value());
  EXPECT_EQ(modern_ref_test::g_destroyed_on.load(), home.thread_id());
}

TEST(ModernRefTest, AsUnsupportedInterfaceIsNoInterface) {
  // Tests that As<J>() for an interface the object lacks returns E_NOINTERFACE.
  Apartment home({.name = "ref-as"});
  Result<HRESULT> code = home.Call([] {
    Ref<IUnknown> object = Ref<IUnknown>::Adopt(
        static_cast<IWhere*>(apartments::MakeComObject<modern_ref_test::WhereObject>()));
    return object.As<IMarshal>().code();
  });
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, E_NOINTERFACE);
}

}  // namespace
}  // namespace apartments
