// The documented IIDs of the standard interfaces, checked byte for byte.
#include <string>

#include "apartments/win32.h"
#include "gtest/gtest.h"

namespace {

std::wstring Str(REFGUID g) {
  OLECHAR buf[39];
  StringFromGUID2(g, buf, 39);
  return buf;
}

// Tests that IID_IUnknown is {00000000-0000-0000-C000-000000000046}.
TEST(IidTest, IUnknown) {
  EXPECT_EQ(Str(IID_IUnknown), L"{00000000-0000-0000-C000-000000000046}");
  EXPECT_EQ(__uuidof(IUnknown), IID_IUnknown);
  constexpr IID kExpected = {0, 0, 0, {0xC0, 0, 0, 0, 0, 0, 0, 0x46}};
  EXPECT_EQ(IID_IUnknown, kExpected);
}

// Tests each standard interface's IID against Microsoft's documented value.
TEST(IidTest, StandardInterfaces) {
  EXPECT_EQ(Str(__uuidof(IClassFactory)), L"{00000001-0000-0000-C000-000000000046}");
  EXPECT_EQ(Str(__uuidof(ISequentialStream)), L"{0C733A30-2A1C-11CE-ADE5-00AA0044773D}");
  EXPECT_EQ(Str(__uuidof(IStream)), L"{0000000C-0000-0000-C000-000000000046}");
  EXPECT_EQ(Str(__uuidof(IMarshal)), L"{00000003-0000-0000-C000-000000000046}");
  EXPECT_EQ(Str(__uuidof(IAgileObject)), L"{94EA2B94-E9CC-49E0-C0FF-EE64CA8F5B90}");
  EXPECT_EQ(Str(__uuidof(IGlobalInterfaceTable)), L"{00000146-0000-0000-C000-000000000046}");
  EXPECT_EQ(Str(__uuidof(IMessageFilter)), L"{00000016-0000-0000-C000-000000000046}");
  EXPECT_EQ(Str(__uuidof(IErrorInfo)), L"{1CF2B120-547D-101B-8E65-08002B2BD119}");
  EXPECT_EQ(Str(__uuidof(ICreateErrorInfo)), L"{22F03340-547D-101B-8E65-08002B2BD119}");
  EXPECT_EQ(Str(__uuidof(ISupportErrorInfo)), L"{DF0B3D60-548F-101B-8E65-08002B2BD119}");
  EXPECT_EQ(Str(CLSID_StdGlobalInterfaceTable), L"{00000323-0000-0000-C000-000000000046}");
}

// Tests that the IID_ constants and __uuidof have equal values (distinct
// objects, as on Windows, where __uuidof is not the IID_ symbol).
TEST(IidTest, ConstantsMatchUuidof) {
  EXPECT_EQ(__uuidof(IStream), IID_IStream);
  EXPECT_EQ(__uuidof(IErrorInfo), IID_IErrorInfo);
  EXPECT_EQ(__uuidof(IMessageFilter), IID_IMessageFilter);
}

// Tests the interface inheritance chain recorded for QueryInterface.
TEST(IidTest, BaseChain) {
  static_assert(std::is_same_v<apartments::InterfaceBase<IStream>, ISequentialStream>);
  static_assert(std::is_same_v<apartments::InterfaceBase<ISequentialStream>, IUnknown>);
  static_assert(std::is_same_v<apartments::InterfaceBase<IUnknown>, void>);
  SUCCEED();
}

// Tests the enum and flag values of the message filter and stream ABI.
TEST(IidTest, EnumValues) {
  EXPECT_EQ(CALLTYPE_TOPLEVEL, 1);
  EXPECT_EQ(CALLTYPE_NESTED, 2);
  EXPECT_EQ(CALLTYPE_ASYNC, 3);
  EXPECT_EQ(CALLTYPE_TOPLEVEL_CALLPENDING, 4);
  EXPECT_EQ(CALLTYPE_ASYNC_CALLPENDING, 5);
  EXPECT_EQ(SERVERCALL_ISHANDLED, 0);
  EXPECT_EQ(SERVERCALL_REJECTED, 1);
  EXPECT_EQ(SERVERCALL_RETRYLATER, 2);
  EXPECT_EQ(PENDINGTYPE_TOPLEVEL, 1);
  EXPECT_EQ(PENDINGTYPE_NESTED, 2);
  EXPECT_EQ(PENDINGMSG_CANCELCALL, 0);
  EXPECT_EQ(PENDINGMSG_WAITNOPROCESS, 1);
  EXPECT_EQ(PENDINGMSG_WAITDEFPROCESS, 2);
  EXPECT_EQ(STREAM_SEEK_SET, 0);
  EXPECT_EQ(STREAM_SEEK_CUR, 1);
  EXPECT_EQ(STREAM_SEEK_END, 2);
  EXPECT_EQ(STGC_ONLYIFCURRENT, 2);
  EXPECT_EQ(MSHLFLAGS_TABLEWEAK, 2);
  EXPECT_EQ(MSHCTX_INPROC, 3);
  EXPECT_EQ(sizeof(LARGE_INTEGER), 8u);
  EXPECT_EQ(sizeof(ULARGE_INTEGER), 8u);
}

// A class written the Windows way, with STDMETHOD/STDMETHODIMP macros,
// compiles and overrides the interface.
class WindowsStyleFactory : public IClassFactory {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (IsEqualIID(riid, IID_IUnknown) || IsEqualIID(riid, IID_IClassFactory)) {
      *ppv = static_cast<IClassFactory*>(this);
      AddRef();
      return S_OK;
    }
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return ++refs_; }
  STDMETHODIMP_(ULONG) Release() override { return --refs_; }
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    return CLASS_E_NOAGGREGATION;
  }
  STDMETHODIMP LockServer(BOOL lock) override { return S_OK; }
  ULONG refs_ = 1;
};

// Tests that Windows-style declarations compile and the template
// QueryInterface(Q**) overload of IUnknown works.
TEST(IidTest, WindowsStyleClassCompiles) {
  WindowsStyleFactory f;
  IUnknown* unk = &f;
  IClassFactory* cf = nullptr;
  EXPECT_EQ(unk->QueryInterface(&cf), S_OK);
  EXPECT_EQ(cf, &f);
  EXPECT_EQ(f.refs_, 2u);
  IStream* s = reinterpret_cast<IStream*>(1);
  EXPECT_EQ(unk->QueryInterface(&s), E_NOINTERFACE);
  EXPECT_EQ(s, nullptr);
}

}  // namespace
