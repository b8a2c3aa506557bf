// Serialization by type (apartments/wire.h) and the recipe's remote path
// (apartments/proxy.h), without a process or a socket: a loopback
// RemoteCalls hands the serialized call straight to the server's stub table,
// so every byte the real transport would carry goes through the writer, the
// reader and the stubs.
#include <gtest/gtest.h>

#include <cstdint>
#include <cwchar>
#include <memory>
#include <string>

#include "apartments/com_object.h"
#include "apartments/proxy.h"
#include "apartments/win32.h"
#include "com/proxy_manager.h"
#include "com/wire_stubs.h"

namespace wire_test {

struct Point {
  int x;
  double y;
};
enum class Color : std::int32_t { kRed = 1, kBlue = 2 };

struct ISample : public IUnknown {
  STDMETHOD(Scalars)(int a, double b, Color c, BOOL d, REFGUID g, std::int64_t* sum) PURE;
  STDMETHOD(Structs)(Point p, const Point* in, Point* inout) PURE;
  STDMETHOD(Strings)(LPCWSTR in, BSTR bstr, BSTR* out) PURE;
  STDMETHOD(Interfaces)(ISample* in, ISample** out) PURE;
  STDMETHOD(Fail)(int code) PURE;
};
APARTMENTS_INTERFACE(ISample, IUnknown, "5a0e4c2d-8f1b-4d7a-9c3e-2b6d1f0a9e71");

struct IDerived : public ISample {
  STDMETHOD(Twice)(int a, int* b) PURE;
};
APARTMENTS_INTERFACE(IDerived, ISample, "5a0e4c2d-8f1b-4d7a-9c3e-2b6d1f0a9e72");

// An in-process-only interface: void* cannot cross, and it is not declared
// for other processes, so it still compiles.
struct IBuffer : public IUnknown {
  STDMETHOD(Fill)(void* data, ULONG size) PURE;
};
APARTMENTS_INTERFACE(IBuffer, IUnknown, "5a0e4c2d-8f1b-4d7a-9c3e-2b6d1f0a9e73");

APARTMENTS_PROXY_BEGIN(ISample)
  APARTMENTS_PROXY_METHOD(Scalars, (int a, double b, Color c, BOOL d, REFGUID g, std::int64_t* sum),
                          (a, b, c, d, g, sum))
  APARTMENTS_PROXY_METHOD(Structs, (Point p, const Point* in, Point* inout), (p, in, inout))
  APARTMENTS_PROXY_METHOD(Strings, (LPCWSTR in, BSTR bstr, BSTR* out), (in, bstr, out))
  APARTMENTS_PROXY_METHOD(Interfaces, (ISample* in, ISample** out), (in, out))
  APARTMENTS_PROXY_METHOD(Fail, (int code), (code))
APARTMENTS_PROXY_END(ISample)
APARTMENTS_REMOTE_INTERFACE(ISample)

APARTMENTS_PROXY_BEGIN_DERIVED(IDerived, ISample)
  APARTMENTS_PROXY_METHOD(Twice, (int a, int* b), (a, b))
APARTMENTS_PROXY_END(IDerived)
APARTMENTS_REMOTE_INTERFACE(IDerived)

APARTMENTS_PROXY_BEGIN(IBuffer)
  APARTMENTS_PROXY_METHOD(Fill, (void* data, ULONG size), (data, size))
APARTMENTS_PROXY_END(IBuffer)

// The compile-time rule, checked here (a declaration with APARTMENTS_REMOTE_INTERFACE
// of IBuffer would not compile).
static_assert(!apartments::internal::WireArg<void*>::kSupported);
static_assert(!apartments::internal::WireArg<const void*>::kSupported);
static_assert(!apartments::internal::WireArg<int**>::kSupported);
static_assert(!apartments::internal::WireArg<Point**>::kSupported);
static_assert(!apartments::internal::WireArg<int&>::kSupported);
static_assert(apartments::internal::WireArg<REFIID>::kSupported);
static_assert(apartments::internal::WireArg<LPCWSTR>::kSupported);
static_assert(apartments::internal::WireArg<BSTR*>::kSupported);
static_assert(apartments::internal::WireArg<ISample**>::kSupported);

class Sample final : public apartments::ComObject<Sample, IDerived, IBuffer> {
 public:
  STDMETHODIMP Scalars(int a, double b, Color c, BOOL d, REFGUID g, std::int64_t* sum) override {
    if (sum == nullptr) return E_POINTER;
    *sum = a + static_cast<std::int64_t>(b) + static_cast<int>(c) + d + g.Data1;
    return S_OK;
  }
  STDMETHODIMP Structs(Point p, const Point* in, Point* inout) override {
    if (in == nullptr || inout == nullptr) return E_POINTER;
    inout->x = p.x + in->x + inout->x;
    inout->y = p.y + in->y + inout->y;
    return S_OK;
  }
  STDMETHODIMP Strings(LPCWSTR in, BSTR bstr, BSTR* out) override {
    if (out == nullptr) return E_POINTER;
    std::wstring text = std::wstring(in != nullptr ? in : L"(null)") + L"+" +
                        (bstr != nullptr ? bstr : L"(null)") + L":" +
                        std::to_wstring(SysStringLen(bstr));
    *out = SysAllocString(text.c_str());
    return S_OK;
  }
  STDMETHODIMP Interfaces(ISample* in, ISample** out) override {
    if (out == nullptr) return E_POINTER;
    received_ = in != nullptr;
    *out = in != nullptr ? in : static_cast<ISample*>(this);
    (*out)->AddRef();
    return S_OK;
  }
  STDMETHODIMP Fail(int code) override { return static_cast<HRESULT>(code); }
  STDMETHODIMP Twice(int a, int* b) override {
    if (b == nullptr) return E_POINTER;
    *b = 2 * a;
    return S_OK;
  }
  STDMETHODIMP Fill(void*, ULONG) override { return S_OK; }

  bool received_ = false;
};

using apartments::internal::InterfaceProxyBase;
using apartments::internal::ProxyManagerBase;
using apartments::internal::RemoteCalls;
using apartments::internal::ServerCall;
using apartments::internal::WireMessage;

// A proxy manager whose "other process" is `target`, reached through the
// serialized form only. `tamper` may change the [in] data on the way.
class Loopback final : public ProxyManagerBase, public RemoteCalls {
 public:
  explicit Loopback(IUnknown* target) : target_(target) { target_->AddRef(); }
  ~Loopback() {
    for (InterfaceProxyBase* proxy : proxies_) delete proxy;
    target_->Release();
  }

  template <typename I>
  I* Proxy() {
    InterfaceProxyBase* proxy = apartments::internal::LookupProxyFactory(
        apartments::InterfaceId<I>())(this);
    proxies_.push_back(proxy);
    return static_cast<I*>(proxy->InterfacePointer());
  }

  ULONG AddRefProxy() noexcept override { return 2; }
  ULONG ReleaseProxy() override { return 1; }
  HRESULT QueryInterfaceProxy(REFIID, void**) override { return E_NOINTERFACE; }
  HRESULT Call(REFIID, const ServerCall&) override { return E_UNEXPECTED; }
  RemoteCalls* Remote() noexcept override { return this; }

  HRESULT CallRemote(REFIID iid, WORD method, WireMessage in, WireMessage* out,
                     bool* ran) override {
    ++calls_;
    if (tamper) tamper(in);
    auto stub = apartments::internal::LookupWireStub(iid, method);
    if (stub == nullptr) return RPC_E_INVALIDMETHOD;
    void* itf = nullptr;
    HRESULT hr = target_->QueryInterface(iid, &itf);
    if (FAILED(hr)) return hr;
    *ran = true;
    hr = stub(itf, in, out);
    static_cast<IUnknown*>(itf)->Release();
    return hr;
  }
  HRESULT CannotCross(REFIID, WORD) override { return RPC_X_BAD_STUB_DATA; }

  std::function<void(WireMessage&)> tamper;
  int calls_ = 0;

 private:
  IUnknown* target_;
  std::vector<InterfaceProxyBase*> proxies_;
};

class WireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sample_ = apartments::MakeComObject<Sample>();
    loopback_ = std::make_unique<Loopback>(sample_->Identity());
  }
  void TearDown() override {
    loopback_.reset();
    EXPECT_EQ(sample_->RefCountForTesting(), 1u);
    sample_->Release();
  }
  Sample* sample_ = nullptr;
  std::unique_ptr<Loopback> loopback_;
};

// Tests that integers, floating point, enums, BOOL and a GUID by reference
// cross, and an [out] integer comes back.
TEST_F(WireTest, ScalarsCrossAndTheOutValueComesBack) {
  ISample* proxy = loopback_->Proxy<ISample>();
  GUID guid{};
  guid.Data1 = 1000;
  std::int64_t sum = -1;
  EXPECT_EQ(proxy->Scalars(3, 4.5, Color::kBlue, TRUE, guid, &sum), S_OK);
  EXPECT_EQ(sum, 3 + 4 + 2 + 1 + 1000);
  EXPECT_EQ(loopback_->calls_, 1);
}

// Tests that a struct crosses by value, through an [in] pointer and through
// an [in, out] pointer, which comes back changed.
TEST_F(WireTest, StructsCrossByValueAndThroughPointers) {
  ISample* proxy = loopback_->Proxy<ISample>();
  Point in{10, 0.5};
  Point inout{100, 0.25};
  EXPECT_EQ(proxy->Structs(Point{1, 1.0}, &in, &inout), S_OK);
  EXPECT_EQ(inout.x, 111);
  EXPECT_DOUBLE_EQ(inout.y, 1.75);
}

// Tests that a null pointer crosses as null (the callee sees it).
TEST_F(WireTest, NullPointersCrossAsNull) {
  ISample* proxy = loopback_->Proxy<ISample>();
  Point inout{};
  EXPECT_EQ(proxy->Structs(Point{}, nullptr, &inout), E_POINTER);
  std::int64_t* none = nullptr;
  EXPECT_EQ(proxy->Scalars(0, 0, Color::kRed, FALSE, GUID{}, none), E_POINTER);
}

// Tests that an LPCWSTR and a BSTR cross (the callee gets a real BSTR) and an
// [out] BSTR comes back as the caller's own BSTR.
TEST_F(WireTest, StringsCrossAndAnOutBstrIsTheCallers) {
  ISample* proxy = loopback_->Proxy<ISample>();
  BSTR in = SysAllocString(L"world");
  BSTR out = nullptr;
  EXPECT_EQ(proxy->Strings(L"hello", in, &out), S_OK);
  ASSERT_NE(out, nullptr);
  EXPECT_STREQ(out, L"hello+world:5");
  EXPECT_EQ(SysStringLen(out), std::wcslen(L"hello+world:5"));
  SysFreeString(out);
  out = nullptr;
  EXPECT_EQ(proxy->Strings(nullptr, nullptr, &out), S_OK);
  EXPECT_STREQ(out, L"(null)+(null):0");
  SysFreeString(out);
  SysFreeString(in);
}

// Tests that interface pointers cross both ways with their references
// balanced (the fixture checks the count goes back to 1).
TEST_F(WireTest, InterfacePointersCrossBothWays) {
  ISample* proxy = loopback_->Proxy<ISample>();
  Sample* other = apartments::MakeComObject<Sample>();
  ISample* out = nullptr;
  EXPECT_EQ(proxy->Interfaces(other, &out), S_OK);
  EXPECT_TRUE(sample_->received_);
  EXPECT_EQ(out, static_cast<ISample*>(other));
  out->Release();
  out = nullptr;
  EXPECT_EQ(proxy->Interfaces(nullptr, &out), S_OK);
  EXPECT_FALSE(sample_->received_);
  EXPECT_EQ(out, static_cast<ISample*>(sample_));
  out->Release();
  EXPECT_EQ(other->RefCountForTesting(), 1u);
  other->Release();
}

// Tests that the callee's failure comes back unchanged and an [out]
// interface is then null.
TEST_F(WireTest, FailuresComeBackUnchanged) {
  ISample* proxy = loopback_->Proxy<ISample>();
  EXPECT_EQ(proxy->Fail(static_cast<int>(E_ACCESSDENIED)), E_ACCESSDENIED);
  EXPECT_EQ(proxy->Fail(S_FALSE), S_FALSE);
}

// Tests that a derived interface's own methods and its base's cross (the
// server's stub table walks to the base).
TEST_F(WireTest, DerivedInterfacesReachTheirBasesMethods) {
  IDerived* proxy = loopback_->Proxy<IDerived>();
  int twice = 0;
  EXPECT_EQ(proxy->Twice(21, &twice), S_OK);
  EXPECT_EQ(twice, 42);
  std::int64_t sum = 0;
  EXPECT_EQ(proxy->Scalars(1, 0, Color::kRed, FALSE, GUID{}, &sum), S_OK);
  EXPECT_EQ(sum, 2);
}

// Tests that truncated data fails the call with RPC_X_BAD_STUB_DATA and
// the method never runs.
TEST_F(WireTest, TruncatedDataIsRefused) {
  ISample* proxy = loopback_->Proxy<ISample>();
  loopback_->tamper = [](WireMessage& in) { in.bytes.resize(in.bytes.size() / 2); };
  Point inout{1, 1};
  Point in{};
  EXPECT_EQ(proxy->Structs(Point{}, &in, &inout), RPC_X_BAD_STUB_DATA);
  EXPECT_EQ(inout.x, 1);
}

// Tests that trailing bytes are refused too (a reader that stopped early
// would have read the wrong fields).
TEST_F(WireTest, TrailingDataIsRefused) {
  ISample* proxy = loopback_->Proxy<ISample>();
  loopback_->tamper = [](WireMessage& in) { in.bytes.push_back(0); };
  EXPECT_EQ(proxy->Fail(0), RPC_X_BAD_STUB_DATA);
}

// Tests that a forged interface index is refused, not followed.
TEST_F(WireTest, AForgedInterfaceIndexIsRefused) {
  ISample* proxy = loopback_->Proxy<ISample>();
  loopback_->tamper = [](WireMessage& in) {
    // [in] interface: present, index 0 -> index 7 (there is one).
    ASSERT_GE(in.bytes.size(), 5u);
    in.bytes[1] = 7;
  };
  Sample* other = apartments::MakeComObject<Sample>();
  ISample* out = nullptr;
  EXPECT_EQ(proxy->Interfaces(other, &out), RPC_X_BAD_STUB_DATA);
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(other->RefCountForTesting(), 1u);
  other->Release();
}

// Tests that a string whose length says more than the data holds is refused.
TEST_F(WireTest, AnOverlongStringIsRefused) {
  ISample* proxy = loopback_->Proxy<ISample>();
  loopback_->tamper = [](WireMessage& in) {
    // LPCWSTR: present (1 byte), length (4 bytes): make it huge.
    in.bytes[1] = 0xff;
    in.bytes[2] = 0xff;
    in.bytes[3] = 0xff;
    in.bytes[4] = 0x7f;
  };
  BSTR out = nullptr;
  EXPECT_EQ(proxy->Strings(L"abc", nullptr, &out), RPC_X_BAD_STUB_DATA);
  EXPECT_EQ(out, nullptr);
}

// Tests that a method whose parameters cannot cross, on an interface not
// declared for other processes, fails at run time through CannotCross.
TEST_F(WireTest, AnInterfaceNotDeclaredForOtherProcessesCannotCross) {
  IBuffer* proxy = loopback_->Proxy<IBuffer>();
  char buffer[4];
  EXPECT_EQ(proxy->Fill(buffer, sizeof buffer), RPC_X_BAD_STUB_DATA);
  EXPECT_EQ(loopback_->calls_, 0);
  EXPECT_FALSE(apartments::internal::IsWireInterface(IID_IBuffer));
  EXPECT_TRUE(apartments::internal::IsWireInterface(IID_ISample));
  EXPECT_TRUE(apartments::internal::IsWireInterface(IID_IClassFactory));
}

}  // namespace wire_test
