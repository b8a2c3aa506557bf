#include "com/error_info.h"

#include <atomic>
#include <string>
#include <thread>

#include "apartments/com_object.h"
#include "apartments/error_info.h"
#include "apartments/win32.h"
#include "gtest/gtest.h"

namespace {

// A user-implemented error object that counts its destruction.
class CountedErrorInfo final : public apartments::ComObject<CountedErrorInfo, IErrorInfo> {
 public:
  explicit CountedErrorInfo(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  STDMETHODIMP GetGUID(GUID* g) override {
    *g = GUID_NULL;
    return S_OK;
  }
  STDMETHODIMP GetSource(BSTR* s) override {
    *s = SysAllocString(L"counted");
    return S_OK;
  }
  STDMETHODIMP GetDescription(BSTR* s) override {
    *s = SysAllocString(L"d\u00e9j\u00e0 vu");
    return S_OK;
  }
  STDMETHODIMP GetHelpFile(BSTR* s) override {
    *s = nullptr;
    return S_OK;
  }
  STDMETHODIMP GetHelpContext(DWORD* c) override {
    *c = 0;
    return S_OK;
  }

 private:
  ~CountedErrorInfo() override { destroyed_->fetch_add(1); }
  std::atomic<int>* destroyed_;
};

class ErrorInfoTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_EQ(SetErrorInfo(0, nullptr), S_OK); }
};

// Tests that GetErrorInfo returns S_FALSE and null when there is none.
TEST_F(ErrorInfoTest, NoneGivesSFalse) {
  IErrorInfo* info = reinterpret_cast<IErrorInfo*>(1);
  EXPECT_EQ(GetErrorInfo(0, &info), S_FALSE);
  EXPECT_EQ(info, nullptr);
}

// Tests that GetErrorInfo hands over the object set and clears the slot.
TEST_F(ErrorInfoTest, SetThenGetTransfersAndClears) {
  std::atomic<int> destroyed{0};
  auto* mine = apartments::MakeComObject<CountedErrorInfo>(&destroyed);
  ASSERT_EQ(SetErrorInfo(0, mine), S_OK);
  EXPECT_EQ(mine->RefCountForTesting(), 2u);
  IErrorInfo* got = nullptr;
  ASSERT_EQ(GetErrorInfo(0, &got), S_OK);
  EXPECT_EQ(got, static_cast<IErrorInfo*>(mine));
  EXPECT_EQ(mine->RefCountForTesting(), 2u);  // The slot's reference moved.
  IErrorInfo* again = nullptr;
  EXPECT_EQ(GetErrorInfo(0, &again), S_FALSE);
  got->Release();
  mine->Release();
  EXPECT_EQ(destroyed.load(), 1);
}

// Tests that SetErrorInfo(nullptr) and replacement release the old object.
TEST_F(ErrorInfoTest, ClearAndReplaceRelease) {
  std::atomic<int> destroyed{0};
  auto* a = apartments::MakeComObject<CountedErrorInfo>(&destroyed);
  auto* b = apartments::MakeComObject<CountedErrorInfo>(&destroyed);
  ASSERT_EQ(SetErrorInfo(0, a), S_OK);
  a->Release();
  ASSERT_EQ(SetErrorInfo(0, b), S_OK);  // Replaces a.
  b->Release();
  EXPECT_EQ(destroyed.load(), 1);
  ASSERT_EQ(SetErrorInfo(0, nullptr), S_OK);
  EXPECT_EQ(destroyed.load(), 2);
}

// Tests that a nonzero reserved argument or null out pointer is E_INVALIDARG.
TEST_F(ErrorInfoTest, ArgumentErrors) {
  IErrorInfo* info = nullptr;
  EXPECT_EQ(SetErrorInfo(1, nullptr), E_INVALIDARG);
  EXPECT_EQ(GetErrorInfo(1, &info), E_INVALIDARG);
  EXPECT_EQ(GetErrorInfo(0, nullptr), E_INVALIDARG);
  EXPECT_EQ(CreateErrorInfo(nullptr), E_INVALIDARG);
}

// Tests that error info is per thread: another thread sees none.
TEST_F(ErrorInfoTest, PerThread) {
  apartments::internal::SetCallErrorInfo(E_FAIL, "main thread", "test");
  HRESULT other = S_OK;
  std::thread t([&] {
    IErrorInfo* info = nullptr;
    other = GetErrorInfo(0, &info);
  });
  t.join();
  EXPECT_EQ(other, S_FALSE);
  EXPECT_EQ(apartments::LastErrorDescription(), "main thread");
}

// Tests that a thread's error info is released when the thread exits.
TEST_F(ErrorInfoTest, ReleasedAtThreadExit) {
  std::atomic<int> destroyed{0};
  std::thread t([&] {
    auto* mine = apartments::MakeComObject<CountedErrorInfo>(&destroyed);
    ASSERT_EQ(SetErrorInfo(0, mine), S_OK);
    mine->Release();
    // The runtime's own objects too (ASan would report the leak).
    apartments::internal::SetCallErrorInfo(E_FAIL, "leak check", "test");
    auto* second = apartments::MakeComObject<CountedErrorInfo>(&destroyed);
    ASSERT_EQ(SetErrorInfo(0, second), S_OK);
    second->Release();
    EXPECT_EQ(destroyed.load(), 1);
  });
  t.join();
  EXPECT_EQ(destroyed.load(), 2);
}

// Tests that CreateErrorInfo's object round-trips every field through
// ICreateErrorInfo and IErrorInfo.
TEST_F(ErrorInfoTest, CreateErrorInfoRoundTrip) {
  ICreateErrorInfo* create = nullptr;
  ASSERT_EQ(CreateErrorInfo(&create), S_OK);
  OLECHAR source[] = L"My.Component";
  OLECHAR description[] = L"It broke";
  OLECHAR help[] = L"help.chm";
  EXPECT_EQ(create->SetGUID(IID_IStream), S_OK);
  EXPECT_EQ(create->SetSource(source), S_OK);
  EXPECT_EQ(create->SetDescription(description), S_OK);
  EXPECT_EQ(create->SetHelpFile(help), S_OK);
  EXPECT_EQ(create->SetHelpContext(42), S_OK);
  IErrorInfo* info = nullptr;
  ASSERT_EQ(create->QueryInterface(IID_PPV_ARGS(&info)), S_OK);
  GUID g;
  EXPECT_EQ(info->GetGUID(&g), S_OK);
  EXPECT_EQ(g, IID_IStream);
  BSTR s = nullptr;
  EXPECT_EQ(info->GetSource(&s), S_OK);
  EXPECT_STREQ(s, L"My.Component");
  SysFreeString(s);
  EXPECT_EQ(info->GetDescription(&s), S_OK);
  EXPECT_STREQ(s, L"It broke");
  EXPECT_EQ(SysStringLen(s), 8u);
  SysFreeString(s);
  EXPECT_EQ(info->GetHelpFile(&s), S_OK);
  EXPECT_STREQ(s, L"help.chm");
  SysFreeString(s);
  DWORD ctx = 0;
  EXPECT_EQ(info->GetHelpContext(&ctx), S_OK);
  EXPECT_EQ(ctx, 42u);
  // Identity across the two interfaces.
  IUnknown* u1 = nullptr;
  IUnknown* u2 = nullptr;
  create->QueryInterface(IID_PPV_ARGS(&u1));
  info->QueryInterface(IID_PPV_ARGS(&u2));
  EXPECT_EQ(u1, u2);
  u1->Release();
  u2->Release();
  info->Release();
  create->Release();
}

// Tests that an unset string reads back as a null BSTR.
TEST_F(ErrorInfoTest, UnsetStringsAreNull) {
  ICreateErrorInfo* create = nullptr;
  ASSERT_EQ(CreateErrorInfo(&create), S_OK);
  IErrorInfo* info = nullptr;
  ASSERT_EQ(create->QueryInterface(IID_PPV_ARGS(&info)), S_OK);
  BSTR s = reinterpret_cast<BSTR>(1);
  EXPECT_EQ(info->GetDescription(&s), S_OK);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(info->GetDescription(nullptr), E_INVALIDARG);
  info->Release();
  create->Release();
}

// Tests that the runtime's error info is readable with GetErrorInfo and
// with the C++ accessors, which do not clear it.
TEST_F(ErrorInfoTest, SetCallErrorInfoReadableBothWays) {
  apartments::internal::SetCallErrorInfo(RPC_E_SYS_CALL_FAILED,
                                         "queue of thread 'ui' is full (10000 of 10000)",
                                         "apartments");
  EXPECT_EQ(apartments::LastErrorDescription(), "queue of thread 'ui' is full (10000 of 10000)");
  EXPECT_EQ(apartments::LastErrorSource(), "apartments");
  EXPECT_EQ(apartments::LastErrorHResult(), RPC_E_SYS_CALL_FAILED);
  // Still there after reading: GetErrorInfo gets it and then clears it.
  IErrorInfo* info = nullptr;
  ASSERT_EQ(GetErrorInfo(0, &info), S_OK);
  BSTR s = nullptr;
  ASSERT_EQ(info->GetDescription(&s), S_OK);
  EXPECT_STREQ(s, L"queue of thread 'ui' is full (10000 of 10000)");
  SysFreeString(s);
  info->Release();
  EXPECT_EQ(apartments::LastErrorDescription(), "");
  EXPECT_EQ(apartments::LastErrorHResult(), S_OK);
}

// Tests that the accessors convert a user object's description to UTF-8
// and report no runtime HRESULT for it.
TEST_F(ErrorInfoTest, AccessorsOnUserObject) {
  std::atomic<int> destroyed{0};
  auto* mine = apartments::MakeComObject<CountedErrorInfo>(&destroyed);
  ASSERT_EQ(SetErrorInfo(0, mine), S_OK);
  mine->Release();
  EXPECT_EQ(apartments::LastErrorDescription(), "d\xC3\xA9j\xC3\xA0 vu");
  EXPECT_EQ(apartments::LastErrorSource(), "counted");
  EXPECT_EQ(apartments::LastErrorHResult(), S_OK);
  // Clear here: `destroyed` dies with this function (TearDown is too late;
  // this was a stack use-after-return that crashed under TSan).
  ASSERT_EQ(SetErrorInfo(0, nullptr), S_OK);
  EXPECT_EQ(destroyed.load(), 1);
}

// Tests that ClearCallErrorInfo empties the slot.
TEST_F(ErrorInfoTest, ClearCallErrorInfo) {
  apartments::internal::SetCallErrorInfo(E_FAIL, "x", "y");
  apartments::internal::ClearCallErrorInfo();
  IErrorInfo* info = nullptr;
  EXPECT_EQ(GetErrorInfo(0, &info), S_FALSE);
}

}  // namespace
