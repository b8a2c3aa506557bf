#include "apartments/com_object.h"

#include <atomic>
#include <thread>
#include <vector>

#include "apartments/win32.h"
#include "gtest/gtest.h"

namespace {

struct IAlpha : public IUnknown {
  STDMETHOD_(int, Alpha)() PURE;
};
APARTMENTS_INTERFACE(IAlpha, IUnknown, "a0000000-0000-0000-0000-000000000001");

struct IBeta : public IAlpha {
  STDMETHOD_(int, Beta)() PURE;
};
APARTMENTS_INTERFACE(IBeta, IAlpha, "b0000000-0000-0000-0000-000000000002");

struct IGamma : public IUnknown {
  STDMETHOD_(int, Gamma)() PURE;
};
APARTMENTS_INTERFACE(IGamma, IUnknown, "c0000000-0000-0000-0000-000000000003");

class Thing final : public apartments::ComObject<Thing, IBeta, IGamma> {
 public:
  explicit Thing(std::atomic<int>* destroyed) : destroyed_(destroyed) {}
  STDMETHODIMP_(int) Alpha() override { return 1; }
  STDMETHODIMP_(int) Beta() override { return 2; }
  STDMETHODIMP_(int) Gamma() override { return 3; }

 private:
  ~Thing() override { destroyed_->fetch_add(1); }
  std::atomic<int>* destroyed_;
};

class ThingTest : public ::testing::Test {
 protected:
  void SetUp() override { thing_ = apartments::MakeComObject<Thing>(&destroyed_); }
  void TearDown() override {
    if (thing_ != nullptr) thing_->Release();
  }
  std::atomic<int> destroyed_{0};
  Thing* thing_ = nullptr;
};

// Tests that QueryInterface for IUnknown returns the same pointer from every
// interface of the object.
TEST_F(ThingTest, IUnknownIdentity) {
  IBeta* beta = thing_;
  IGamma* gamma = thing_;
  IUnknown* from_beta = nullptr;
  IUnknown* from_gamma = nullptr;
  ASSERT_EQ(beta->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&from_beta)), S_OK);
  ASSERT_EQ(gamma->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&from_gamma)), S_OK);
  EXPECT_EQ(from_beta, from_gamma);
  EXPECT_EQ(from_beta, thing_->Identity());
  from_beta->Release();
  from_gamma->Release();
}

// Tests that QueryInterface answers each listed interface and its bases.
TEST_F(ThingTest, AnswersListedInterfacesAndBases) {
  IAlpha* alpha = nullptr;
  IBeta* beta = nullptr;
  IGamma* gamma = nullptr;
  ASSERT_EQ(thing_->QueryInterface(IID_PPV_ARGS(&alpha)), S_OK);
  ASSERT_EQ(thing_->QueryInterface(IID_PPV_ARGS(&beta)), S_OK);
  ASSERT_EQ(thing_->QueryInterface(IID_PPV_ARGS(&gamma)), S_OK);
  EXPECT_EQ(alpha->Alpha(), 1);
  EXPECT_EQ(beta->Beta(), 2);
  EXPECT_EQ(gamma->Gamma(), 3);
  // QI round trip: from gamma back to beta gives the same beta pointer.
  IBeta* beta2 = nullptr;
  ASSERT_EQ(gamma->QueryInterface(IID_PPV_ARGS(&beta2)), S_OK);
  EXPECT_EQ(beta2, beta);
  alpha->Release();
  beta->Release();
  beta2->Release();
  gamma->Release();
}

// Tests that an unsupported IID gives E_NOINTERFACE and nulls *ppv.
TEST_F(ThingTest, UnsupportedIidNullsOut) {
  void* p = reinterpret_cast<void*>(0x1234);
  EXPECT_EQ(thing_->QueryInterface(IID_IStream, &p), E_NOINTERFACE);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(thing_->RefCountForTesting(), 1u);
}

// Tests that a null ppv gives E_POINTER.
TEST_F(ThingTest, NullPpvIsEPointer) {
  EXPECT_EQ(thing_->QueryInterface(IID_IUnknown, nullptr), E_POINTER);
  EXPECT_EQ(thing_->QueryInterface(IID_IStream, nullptr), E_POINTER);
}

// Tests that AddRef/Release count and the last Release destroys the object.
TEST_F(ThingTest, RefCountingDestroysAtZero) {
  EXPECT_EQ(thing_->AddRef(), 2u);
  EXPECT_EQ(thing_->AddRef(), 3u);
  EXPECT_EQ(thing_->Release(), 2u);
  EXPECT_EQ(thing_->Release(), 1u);
  EXPECT_EQ(destroyed_.load(), 0);
  EXPECT_EQ(thing_->Release(), 0u);
  EXPECT_EQ(destroyed_.load(), 1);
  thing_ = nullptr;
}

// Tests that a successful QueryInterface adds a reference.
TEST_F(ThingTest, QueryInterfaceAddsReference) {
  IGamma* gamma = nullptr;
  ASSERT_EQ(thing_->QueryInterface(IID_PPV_ARGS(&gamma)), S_OK);
  EXPECT_EQ(thing_->RefCountForTesting(), 2u);
  gamma->Release();
  EXPECT_EQ(thing_->RefCountForTesting(), 1u);
}

// Tests that concurrent AddRef/Release from many threads destroy exactly
// once, after the last Release.
TEST_F(ThingTest, ConcurrentRefCounting) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  for (int i = 0; i < kThreads; ++i) thing_->AddRef();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < kIterations; ++i) {
        IUnknown* unk = nullptr;
        thing_->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&unk));
        unk->Release();
      }
      thing_->Release();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(destroyed_.load(), 0);
  EXPECT_EQ(thing_->RefCountForTesting(), 1u);
}

// An object answering an extra IID through QueryInterfaceExtra.
class Extra final : public apartments::ComObject<Extra, IAlpha> {
 public:
  STDMETHODIMP_(int) Alpha() override { return 7; }
  HRESULT QueryInterfaceExtra(REFIID riid, void** ppv) {
    if (riid == IID_IAgileObject) {
      // A marker interface: any IUnknown-shaped pointer of this object works.
      *ppv = static_cast<IAlpha*>(this);
      AddRef();
      return S_OK;
    }
    return E_NOINTERFACE;
  }
};

// Tests that QueryInterfaceExtra is consulted after the table.
TEST(ComObjectTest, QueryInterfaceExtra) {
  Extra* e = apartments::MakeComObject<Extra>();
  void* p = nullptr;
  EXPECT_EQ(e->QueryInterface(IID_IAgileObject, &p), S_OK);
  EXPECT_EQ(p, static_cast<IAlpha*>(e));
  e->Release();
  EXPECT_EQ(e->QueryInterface(IID_IStream, &p), E_NOINTERFACE);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(e->Release(), 0u);
}

}  // namespace
