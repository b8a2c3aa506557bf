// Tests of marshaling: marshal data by flag, forged streams, the global
// interface table, agile objects, proxies (identity, QueryInterface, wrong
// thread, release), interface arguments, disconnection and teardown.
//
// Over 800 lines on purpose: one suite for one subject whose cases share the
// same fixtures and helpers; split it by subject (forged streams, the table,
// teardown) when it grows further.
#include <future>
#include <thread>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "apartments/error_info.h"
#include "com/marshal_test_util.h"

namespace apartments::internal::testing {
namespace {


// Tests that NORMAL marshal data unmarshals once into a working proxy, and a
// second unmarshal gives CO_E_OBJNOTCONNECTED with an explanation.
TEST_F(MarshalTest, NormalDataUnmarshalsOnce) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  b.Run([&] {
    ICounter* proxy = nullptr;
    ASSERT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)), S_OK);
    DWORD tid = 0;
    EXPECT_EQ(proxy->ThreadId(&tid), S_OK);
    EXPECT_EQ(tid, a.tid());
    Rewind(stream);
    ICounter* again = nullptr;
    EXPECT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&again)),
              CO_E_OBJNOTCONNECTED);
    EXPECT_EQ(again, nullptr);
    EXPECT_NE(LastErrorDescription().find("unmarshals only once"), std::string::npos)
        << LastErrorDescription();
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
  stream->Release();
}

// Tests that CoReleaseMarshalData discards unconsumed NORMAL data, releasing
// the object on its own thread; a second release gives CO_E_OBJNOTCONNECTED
// (unmarshaling it afterwards: marshal_conformance_test.cc).
TEST_F(MarshalTest, ReleaseMarshalDataDiscardsNormalData) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
    EXPECT_EQ(death.deaths, 0);  // the marshal data keeps it
  });
  b.Run([&] {
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), CO_E_OBJNOTCONNECTED);
  });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());  // released on its own thread
  stream->Release();
}

// Tests that TABLESTRONG data unmarshals many times and keeps the object
// alive with no proxy left, until CoReleaseMarshalData.
TEST_F(MarshalTest, TableStrongKeepsObjectUntilReleased) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLESTRONG);
    counter->Release();
  });
  b.Run([&] {
    for (int i = 0; i < 3; ++i) {
      Rewind(stream);
      ICounter* proxy = nullptr;
      ASSERT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)), S_OK);
      int total = 0;
      EXPECT_EQ(proxy->Add(1, &total), S_OK);
      EXPECT_EQ(total, i + 1);  // the same object each time
      proxy->Release();
    }
    EXPECT_EQ(death.deaths, 0);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
  });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
  stream->Release();
}

// Tests that TABLEWEAK data does not keep the object exported: once the last
// proxy goes, unmarshaling gives CO_E_OBJNOTREG (as Windows); the object itself
// lives on while its owner holds it.
TEST_F(MarshalTest, TableWeakDoesNotKeepObjectExported) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  Counter* counter = nullptr;
  a.Run([&] {
    counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLEWEAK);
  });
  b.Run([&] {
    ICounter* proxy = nullptr;
    ASSERT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)), S_OK);
    EXPECT_EQ(Poke(proxy), S_OK);
    proxy->Release();
    Rewind(stream);
    EXPECT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
              CO_E_OBJNOTREG);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
  });
  EXPECT_EQ(death.deaths, 0);
  a.Run([&] { counter->Release(); });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that CoLockObjectExternal keeps an object exported for TABLEWEAK data
// while proxies come and go, until the lock is dropped.
TEST_F(MarshalTest, LockObjectExternalKeepsTableWeakDataValid) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  Counter* counter = nullptr;
  a.Run([&] {
    counter = MakeComObject<Counter>(&death);
    ASSERT_EQ(CoLockObjectExternal(static_cast<ICounter*>(counter), TRUE, TRUE), S_OK);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLEWEAK);
  });
  b.Run([&] {
    for (int i = 0; i < 2; ++i) {
      Rewind(stream);
      ICounter* proxy = nullptr;
      ASSERT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)), S_OK);
      proxy->Release();
    }
  });
  a.Run([&] {
    EXPECT_EQ(CoLockObjectExternal(static_cast<ICounter*>(counter), FALSE, TRUE), S_OK);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    counter->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that forged and corrupted streams are rejected with
// RPC_E_INVALID_OBJREF, empty and truncated ones with STG_E_READFAULT (as
// Windows), and null arguments with E_INVALIDARG, never crashing.
TEST_F(MarshalTest, ForgedAndTruncatedStreamsAreRejected) {
  DeathRecord death;
  AptThread a;
  a.Run([&] {
    IUnknown* out = nullptr;
    // Garbage.
    IStream* garbage = NewStream();
    char junk[200];
    for (std::size_t i = 0; i < sizeof junk; ++i) junk[i] = static_cast<char>(i * 37);
    ASSERT_EQ(garbage->Write(junk, sizeof junk, nullptr), S_OK);
    Rewind(garbage);
    EXPECT_EQ(CoUnmarshalInterface(garbage, IID_IUnknown, reinterpret_cast<void**>(&out)),
              RPC_E_INVALID_OBJREF);
    Rewind(garbage);
    EXPECT_EQ(CoReleaseMarshalData(garbage), RPC_E_INVALID_OBJREF);
    garbage->Release();
    // Empty.
    IStream* empty = NewStream();
    EXPECT_EQ(CoUnmarshalInterface(empty, IID_IUnknown, reinterpret_cast<void**>(&out)),
              STG_E_READFAULT);
    EXPECT_NE(LastErrorDescription().find("ends before"), std::string::npos);
    empty->Release();

    // A real record, truncated and then corrupted byte by byte.
    Counter* counter = MakeComObject<Counter>(&death);
    IStream* real = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLESTRONG);
    BYTE bytes[kMarshalRecordSize];
    ASSERT_EQ(real->Read(bytes, sizeof bytes, nullptr), S_OK);
    IStream* truncated = NewStream();
    ASSERT_EQ(truncated->Write(bytes, sizeof bytes - 1, nullptr), S_OK);
    Rewind(truncated);
    EXPECT_EQ(CoUnmarshalInterface(truncated, IID_IUnknown, reinterpret_cast<void**>(&out)),
              STG_E_READFAULT);
    truncated->Release();
    for (std::size_t i = 0; i < sizeof bytes; ++i) {
      BYTE forged[kMarshalRecordSize];
      std::memcpy(forged, bytes, sizeof forged);
      forged[i] ^= 0x5a;
      IStream* s = NewStream();
      ASSERT_EQ(s->Write(forged, sizeof forged, nullptr), S_OK);
      Rewind(s);
      EXPECT_EQ(CoUnmarshalInterface(s, IID_IUnknown, reinterpret_cast<void**>(&out)),
                RPC_E_INVALID_OBJREF)
          << "byte " << i;
      EXPECT_EQ(out, nullptr);
      s->Release();
    }
    EXPECT_EQ(CoUnmarshalInterface(nullptr, IID_IUnknown, reinterpret_cast<void**>(&out)),
              E_INVALIDARG);
    EXPECT_EQ(CoUnmarshalInterface(real, IID_IUnknown, nullptr), E_INVALIDARG);
    EXPECT_EQ(CoMarshalInterface(nullptr, IID_IUnknown, counter->Identity(), MSHCTX_INPROC, nullptr, 0),
              E_INVALIDARG);
    EXPECT_EQ(CoMarshalInterface(real, IID_IUnknown, nullptr, MSHCTX_INPROC, nullptr, 0),
              E_INVALIDARG);
    EXPECT_EQ(CoMarshalInterface(real, IID_IUnknown, static_cast<ICounter*>(counter),
                                 MSHCTX_INPROC, nullptr, 0x100),
              E_INVALIDARG);
    EXPECT_EQ(CoMarshalInterface(real, IID_IUnknown, static_cast<ICounter*>(counter),
                                 MSHCTX_DIFFERENTMACHINE, nullptr, 0),
              E_NOTIMPL);
    EXPECT_EQ(CoMarshalInterface(real, IID_IStream, static_cast<ICounter*>(counter),
                                 MSHCTX_INPROC, nullptr, 0),
              E_NOINTERFACE);
    Rewind(real);
    EXPECT_EQ(CoReleaseMarshalData(real), S_OK);
    real->Release();
    counter->Release();
  });
  EXPECT_EQ(death.deaths, 1);
}

// Tests that marshaling functions need an apartment: CO_E_NOTINITIALIZED on
// a thread that is in none.
TEST_F(MarshalTest, NoApartmentIsNotInitialized) {
  BoundedThread t([] {
    IStream* stream = NewStream();
    IUnknown* out = nullptr;
    EXPECT_EQ(CoUnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              CO_E_NOTINITIALIZED);
    EXPECT_EQ(CoMarshalInterface(stream, IID_IUnknown, stream, MSHCTX_INPROC, nullptr, 0),
              CO_E_NOTINITIALIZED);
    EXPECT_EQ(CoCreateInstance(CLSID_StdGlobalInterfaceTable, nullptr, CLSCTX_INPROC_SERVER,
                               IID_IGlobalInterfaceTable, reinterpret_cast<void**>(&out)),
              CO_E_NOTINITIALIZED);
    stream->Release();
  });
}

// Tests that unmarshaling in the object's own apartment returns the object
// itself, not a proxy.
TEST_F(MarshalTest, SameApartmentUnmarshalReturnsObject) {
  DeathRecord death;
  AptThread a;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    IStream* stream = nullptr;
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, static_cast<ICounter*>(counter),
                                                    &stream),
              S_OK);
    ICounter* back = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&back)),
              S_OK);
    EXPECT_EQ(back, static_cast<ICounter*>(counter));
    back->Release();
    counter->Release();
  });
  EXPECT_EQ(death.deaths, 1);
}

// Tests the global interface table: register in one apartment, get from
// several (the object itself at home, proxies elsewhere), revoke from
// another; a revoked cookie gives E_INVALIDARG.
TEST_F(MarshalTest, GlobalInterfaceTableAcrossApartments) {
  DeathRecord death;
  AptThread a, b;
  AptThread c(AptThread::kMta);
  DWORD cookie = 0;
  Counter* counter = nullptr;
  a.Run([&] {
    IGlobalInterfaceTable* git = nullptr;
    ASSERT_EQ(CoCreateInstance(CLSID_StdGlobalInterfaceTable, nullptr, CLSCTX_INPROC_SERVER,
                               IID_IGlobalInterfaceTable, reinterpret_cast<void**>(&git)),
              S_OK);
    EXPECT_EQ(git, GlobalInterfaceTable());
    counter = MakeComObject<Counter>(&death);
    ASSERT_EQ(git->RegisterInterfaceInGlobal(static_cast<ICounter*>(counter), IID_ICounter, &cookie),
              S_OK);
    EXPECT_NE(cookie, 0u);
    ICounter* home = nullptr;
    ASSERT_EQ(git->GetInterfaceFromGlobal(cookie, IID_ICounter, reinterpret_cast<void**>(&home)),
              S_OK);
    EXPECT_EQ(home, static_cast<ICounter*>(counter));
    home->Release();
    counter->Release();
    git->Release();
  });
  for (AptThread* t : {&b, &c}) {
    t->Run([&] {
      ICounter* proxy = nullptr;
      ASSERT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_ICounter,
                                                                 reinterpret_cast<void**>(&proxy)),
                S_OK);
      EXPECT_NE(proxy, static_cast<ICounter*>(counter));
      DWORD tid = 0;
      EXPECT_EQ(proxy->ThreadId(&tid), S_OK);
      EXPECT_EQ(tid, a.tid());
      proxy->Release();
    });
  }
  EXPECT_EQ(death.deaths, 0);
  c.Run([&] {
    EXPECT_EQ(GlobalInterfaceTable()->RevokeInterfaceFromGlobal(cookie), S_OK);
    EXPECT_EQ(GlobalInterfaceTable()->RevokeInterfaceFromGlobal(cookie), E_INVALIDARG);
    ICounter* proxy = nullptr;
    EXPECT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_ICounter,
                                                               reinterpret_cast<void**>(&proxy)),
              E_INVALIDARG);
    EXPECT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_ICounter, nullptr),
              E_INVALIDARG);
    EXPECT_EQ(GlobalInterfaceTable()->RegisterInterfaceInGlobal(nullptr, IID_ICounter, &cookie),
              E_INVALIDARG);
  });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
}

// An object aggregating the free-threaded marshaler.
class FreeThreaded final : public ComObject<FreeThreaded, ICounter> {
 public:
  FreeThreaded() { EXPECT_EQ(CoCreateFreeThreadedMarshaler(Identity(), &ftm_), S_OK); }
  HRESULT QueryInterfaceExtra(REFIID riid, void** ppv) {
    if (riid == IID_IMarshal) return ftm_->QueryInterface(riid, ppv);
    return E_NOINTERFACE;
  }
  STDMETHODIMP Add(int, int* total) override {
    *total = 0;
    return S_OK;
  }
  STDMETHODIMP ThreadId(DWORD* tid) override {
    *tid = GetCurrentThreadId();
    return S_OK;
  }

 private:
  ~FreeThreaded() override { ftm_->Release(); }
  IUnknown* ftm_ = nullptr;
};

class Agile final : public ComObject<Agile, ICounter, IAgileObject> {
 public:
  STDMETHODIMP Add(int, int* total) override {
    *total = 0;
    return S_OK;
  }
  STDMETHODIMP ThreadId(DWORD* tid) override {
    *tid = GetCurrentThreadId();
    return S_OK;
  }
};

// Tests that objects aggregating the free-threaded marshaler, or
// implementing IAgileObject, reach other apartments as themselves.
TEST_F(MarshalTest, AgileObjectsPassDirectly) {
  AptThread a, b;
  ICounter* objects[2] = {MakeComObject<FreeThreaded>(), MakeComObject<Agile>()};
  for (ICounter* object : objects) {
    IStream* stream = nullptr;
    a.Run([&] {
      ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, object, &stream), S_OK);
    });
    b.Run([&] {
      ICounter* got = nullptr;
      ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&got)),
                S_OK);
      EXPECT_EQ(got, object);
      DWORD tid = 0;
      EXPECT_EQ(got->ThreadId(&tid), S_OK);
      EXPECT_EQ(tid, b.tid());  // called directly, on the caller's thread
      got->Release();
    });
    object->Release();
  }
}

// Tests IUnknown identity: every proxy of one object in one apartment answers
// QueryInterface(IID_IUnknown) with the same pointer; another apartment gets
// its own proxy; QueryInterface from a proxy back is symmetric.
TEST_F(MarshalTest, ProxyIdentityHolds) {
  DeathRecord death;
  AptThread a, b, c;
  DWORD cookie = 0;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    ASSERT_EQ(GlobalInterfaceTable()->RegisterInterfaceInGlobal(static_cast<ICounter*>(counter),
                                                                 IID_ICounter, &cookie),
              S_OK);
    counter->Release();
  });
  IUnknown* b_identity = nullptr;
  b.Run([&] {
    ICounter* first = nullptr;
    IHolder* second = nullptr;
    ASSERT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_ICounter,
                                                               reinterpret_cast<void**>(&first)),
              S_OK);
    ASSERT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_IHolder,
                                                               reinterpret_cast<void**>(&second)),
              S_OK);
    IUnknown* u1 = nullptr;
    IUnknown* u2 = nullptr;
    ASSERT_EQ(first->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&u1)), S_OK);
    ASSERT_EQ(second->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&u2)), S_OK);
    EXPECT_EQ(u1, u2);
    ICounter* again = nullptr;
    ASSERT_EQ(u2->QueryInterface(IID_ICounter, reinterpret_cast<void**>(&again)), S_OK);
    EXPECT_EQ(again, first);  // one interface proxy per interface
    b_identity = u1;
    again->Release();
    u1->Release();
    u2->Release();
    first->Release();
    second->Release();
  });
  c.Run([&] {
    IUnknown* u = nullptr;
    ASSERT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_IUnknown,
                                                               reinterpret_cast<void**>(&u)),
              S_OK);
    EXPECT_NE(u, b_identity);  // b's proxy is gone or b's own; c has its own
    u->Release();
    EXPECT_EQ(GlobalInterfaceTable()->RevokeInterfaceFromGlobal(cookie), S_OK);
  });
  EXPECT_EQ(death.deaths, 1);
}

// Tests that QueryInterface on a proxy for an interface not seen yet asks the
// object's apartment: a supported one yields a working proxy, an unsupported
// one (or one without a proxy) E_NOINTERFACE.
TEST_F(MarshalTest, QueryInterfaceForNewInterfaceCrosses) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_IUnknown, static_cast<ICounter*>(counter),
                                                    &stream),
              S_OK);
    counter->Release();
  });
  b.Run([&] {
    IUnknown* proxy = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IUnknown, reinterpret_cast<void**>(&proxy)),
              S_OK);
    IHolder* holder = nullptr;
    ASSERT_EQ(proxy->QueryInterface(IID_IHolder, reinterpret_cast<void**>(&holder)), S_OK);
    EXPECT_EQ(holder->Set(nullptr), S_OK);
    void* none = reinterpret_cast<void*>(1);
    EXPECT_EQ(proxy->QueryInterface(IID_IUnsupported, &none), E_NOINTERFACE);
    EXPECT_EQ(none, nullptr);
    EXPECT_EQ(proxy->QueryInterface(IID_IStream, &none), E_NOINTERFACE);
    EXPECT_EQ(proxy->QueryInterface(IID_IMessageFilter, &none), E_NOINTERFACE);  // no proxy
    EXPECT_EQ(proxy->QueryInterface(IID_IHolder, nullptr), E_POINTER);
    holder->Release();
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 1);
}

// Tests that a proxy used from another apartment than its own gives
// RPC_E_WRONG_THREAD, with error info naming both, and that releasing it
// from there still works and releases the object on its own thread.
TEST_F(MarshalTest, WrongThreadAndReleaseFromThere) {
  DeathRecord death;
  AptThread a, b;
  AptThread c(AptThread::kMta);
  ICounter* proxy = nullptr;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  b.Run([&] {
    ASSERT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)), S_OK);
  });
  c.Run([&] {
    EXPECT_EQ(Poke(proxy), RPC_E_WRONG_THREAD);
    std::string why = LastErrorDescription();
    EXPECT_NE(why.find("only be used in the apartment that unmarshaled it"), std::string::npos)
        << why;
    EXPECT_NE(why.find(std::to_string(b.tid())), std::string::npos) << why;
    EXPECT_EQ(LastErrorHResult(), RPC_E_WRONG_THREAD);
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
  stream->Release();
}

// Tests that interface pointers passed as [in] arguments arrive as proxies
// (calls on them run back in the caller's apartment, which serves them while
// it waits), and [out] results come back as the caller's own object.
TEST_F(MarshalTest, InterfaceArgumentsCrossAsProxies) {
  DeathRecord holder_death, local_death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* holder = MakeComObject<Counter>(&holder_death);
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_IHolder, static_cast<IHolder*>(holder),
                                                    &stream),
              S_OK);
    holder->Release();
  });
  b.Run([&] {
    IHolder* holder = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)),
              S_OK);
    Counter* local = MakeComObject<Counter>(&local_death);
    ASSERT_EQ(holder->Set(static_cast<ICounter*>(local)), S_OK);
    int total = 0;
    DWORD tid = 0;
    ASSERT_EQ(holder->AddToHeld(5, &total, &tid), S_OK);  // a calls back into b
    EXPECT_EQ(total, 5);
    EXPECT_EQ(tid, b.tid());
    ICounter* back = nullptr;
    ASSERT_EQ(holder->Get(&back), S_OK);
    EXPECT_EQ(back, static_cast<ICounter*>(local));  // home again: the object itself
    back->Release();
    EXPECT_EQ(holder->Get(nullptr), E_POINTER);
    ASSERT_EQ(holder->Set(nullptr), S_OK);  // a releases its proxy of local
    local->Release();
    EXPECT_EQ(local_death.deaths, 1);
    EXPECT_EQ(local_death.tid, b.tid());
    holder->Release();
  });
  EXPECT_EQ(holder_death.deaths, 1);
  EXPECT_EQ(holder_death.tid, a.tid());
}

// Tests that an [out] interface from a third apartment arrives as a proxy
// to the original object, wherever it was passed through.
TEST_F(MarshalTest, OutInterfaceFromThirdApartmentIsProxyToOriginal) {
  DeathRecord holder_death, counter_death;
  AptThread a, b, c;
  IStream* holder_stream = nullptr;
  IStream* counter_stream = nullptr;
  a.Run([&] {
    Counter* holder = MakeComObject<Counter>(&holder_death);
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_IHolder, static_cast<IHolder*>(holder),
                                                    &holder_stream),
              S_OK);
    holder->Release();
  });
  c.Run([&] {
    Counter* counter = MakeComObject<Counter>(&counter_death);
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, static_cast<ICounter*>(counter),
                                                    &counter_stream),
              S_OK);
    counter->Release();
  });
  b.Run([&] {
    IHolder* holder = nullptr;
    ICounter* counter = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(holder_stream, IID_IHolder,
                                             reinterpret_cast<void**>(&holder)),
              S_OK);
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(counter_stream, IID_ICounter,
                                             reinterpret_cast<void**>(&counter)),
              S_OK);
    ASSERT_EQ(holder->Set(counter), S_OK);  // b's proxy of c's object, passed to a
    ICounter* back = nullptr;
    ASSERT_EQ(holder->Get(&back), S_OK);
    EXPECT_EQ(back, counter);  // b's one proxy of that object
    DWORD tid = 0;
    EXPECT_EQ(back->ThreadId(&tid), S_OK);
    EXPECT_EQ(tid, c.tid());
    back->Release();
    ASSERT_EQ(holder->Set(nullptr), S_OK);
    counter->Release();
    holder->Release();
  });
  EXPECT_EQ(counter_death.deaths, 1);
  EXPECT_EQ(counter_death.tid, c.tid());
  EXPECT_EQ(holder_death.tid, a.tid());
}

// Tests that CoDisconnectObject releases the runtime's references at once
// and later calls through proxies give RPC_E_DISCONNECTED saying so.
TEST_F(MarshalTest, DisconnectObjectDisconnectsProxies) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  Counter* counter = nullptr;
  a.Run([&] {
    counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
  });
  ICounter* proxy = nullptr;
  b.Run([&] {
    ASSERT_EQ(CoUnmarshalInterface(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)), S_OK);
    EXPECT_EQ(Poke(proxy), S_OK);
  });
  a.Run([&] {
    EXPECT_EQ(counter->RefCountForTesting(), 3u);  // ours, the stub's identity and ICounter
    EXPECT_EQ(CoDisconnectObject(static_cast<ICounter*>(counter), 0), S_OK);
    EXPECT_EQ(counter->RefCountForTesting(), 1u);
    EXPECT_EQ(CoDisconnectObject(nullptr, 0), E_INVALIDARG);
    EXPECT_EQ(CoDisconnectObject(static_cast<ICounter*>(counter), 0), S_OK);  // nothing left
  });
  b.Run([&] {
    EXPECT_EQ(Poke(proxy), RPC_E_DISCONNECTED);
    std::string why = LastErrorDescription();
    EXPECT_NE(why.find("CoDisconnectObject"), std::string::npos) << why;
    EXPECT_NE(why.find(std::to_string(a.tid())), std::string::npos) << why;
    IHolder* holder = nullptr;
    EXPECT_EQ(proxy->QueryInterface(IID_IHolder, reinterpret_cast<void**>(&holder)),
              RPC_E_DISCONNECTED);
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 0);
  a.Run([&] { counter->Release(); });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that when the object's apartment shuts down, its exported objects are
// released on its thread and proxies elsewhere get RPC_E_DISCONNECTED.
TEST_F(MarshalTest, ServerApartmentShutdownDisconnectsProxies) {
  DeathRecord death;
  AptThread b;
  ICounter* proxy = nullptr;
  DWORD a_tid = 0;
  {
    AptThread a;
    a_tid = a.tid();
    IStream* stream = nullptr;
    a.Run([&] {
      Counter* counter = MakeComObject<Counter>(&death);
      ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, static_cast<ICounter*>(counter),
                                                      &stream),
                S_OK);
      counter->Release();
    });
    b.Run([&] {
      ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
                S_OK);
    });
    a.Shutdown();
  }
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a_tid);
  b.Run([&] {
    EXPECT_EQ(Poke(proxy), RPC_E_DISCONNECTED);
    EXPECT_NE(LastErrorDescription().find("shut down"), std::string::npos) << LastErrorDescription();
    proxy->Release();
  });
}

// Tests that when a proxy's own apartment shuts down its proxies are
// disconnected (CO_E_OBJNOTCONNECTED from anywhere afterwards), the object
// is released in its apartment, and the stale proxy can still be released.
TEST_F(MarshalTest, ClientApartmentShutdownDisconnectsItsProxies) {
  DeathRecord death;
  AptThread a;
  AptThread c(AptThread::kMta);
  ICounter* proxy = nullptr;
  {
    AptThread b;
    IStream* stream = nullptr;
    a.Run([&] {
      Counter* counter = MakeComObject<Counter>(&death);
      ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_ICounter, static_cast<ICounter*>(counter),
                                                      &stream),
                S_OK);
      counter->Release();
    });
    b.Run([&] {
      ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_ICounter, reinterpret_cast<void**>(&proxy)),
                S_OK);
    });
    b.Shutdown();
  }
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
  c.Run([&] {
    EXPECT_EQ(Poke(proxy), CO_E_OBJNOTCONNECTED);
    EXPECT_NE(LastErrorDescription().find("uninitialized"), std::string::npos);
    proxy->Release();
  });
}

// Tests the built-in IStream proxy: a memory stream living in one apartment
// is read, written, sought and cloned from another; the clone arrives as a
// proxy.
TEST_F(MarshalTest, StreamProxyWorks) {
  AptThread a, b;
  IStream* marshaled = nullptr;
  a.Run([&] {
    IStream* stream = NewStream();
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_IStream, stream, &marshaled), S_OK);
    stream->Release();
  });
  b.Run([&] {
    IStream* remote = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(marshaled, IID_IStream, reinterpret_cast<void**>(&remote)),
              S_OK);
    ULONG n = 0;
    ASSERT_EQ(remote->Write("hello", 5, &n), S_OK);
    EXPECT_EQ(n, 5u);
    LARGE_INTEGER zero{};
    ULARGE_INTEGER pos{};
    ASSERT_EQ(remote->Seek(zero, STREAM_SEEK_SET, &pos), S_OK);
    EXPECT_EQ(pos.QuadPart, 0u);
    IStream* clone = nullptr;
    ASSERT_EQ(remote->Clone(&clone), S_OK);
    char buffer[8] = {};
    ASSERT_EQ(clone->Read(buffer, 5, &n), S_OK);
    EXPECT_EQ(std::string(buffer, n), "hello");
    STATSTG stat{};
    ASSERT_EQ(remote->Stat(&stat, STATFLAG_NONAME), S_OK);
    EXPECT_EQ(stat.cbSize.QuadPart, 5u);
    ISequentialStream* sequential = nullptr;
    ASSERT_EQ(remote->QueryInterface(IID_ISequentialStream, reinterpret_cast<void**>(&sequential)),
              S_OK);
    ASSERT_EQ(sequential->Write("!", 1, &n), S_OK);
    sequential->Release();
    clone->Release();
    remote->Release();
  });
}

// A class factory making Counters in its own apartment.
class CounterFactory final : public ComObject<CounterFactory, IClassFactory> {
 public:
  explicit CounterFactory(DeathRecord* death) : death_(death) {}
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    Counter* counter = MakeComObject<Counter>(death_);
    HRESULT hr = counter->QueryInterface(riid, ppv);
    counter->Release();
    return hr;
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }

 private:
  DeathRecord* death_;
};

// Tests CoRegisterClassObject/CoCreateInstance: an object created from
// another apartment through a CLSCTX_LOCAL_SERVER registration lives in the
// factory's apartment and arrives as a proxy; unknown classes give
// REGDB_E_CLASSNOTREG; only the registering apartment may revoke.
TEST_F(MarshalTest, ClassRegistryCreatesInFactoryApartment) {
  constexpr CLSID kClsid = GuidFromLiteral("3b0a4c1e-8f21-4d6a-9c11-2a7e5d0f6bff");
  DeathRecord death;
  AptThread a, b;
  DWORD registration = 0;
  a.Run([&] {
    CounterFactory* factory = MakeComObject<CounterFactory>(&death);
    ASSERT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(factory),
                                    CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE, &registration),
              S_OK);
    DWORD twice = 0;
    EXPECT_EQ(CoRegisterClassObject(kClsid, static_cast<IClassFactory*>(factory),
                                    CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE, &twice),
              CO_E_OBJISREG);
    factory->Release();
  });
  b.Run([&] {
    ICounter* counter = nullptr;
    ASSERT_EQ(CoCreateInstance(kClsid, nullptr, CLSCTX_LOCAL_SERVER, IID_ICounter,
                               reinterpret_cast<void**>(&counter)),
              S_OK);
    DWORD tid = 0;
    EXPECT_EQ(counter->ThreadId(&tid), S_OK);
    EXPECT_EQ(tid, a.tid());
    counter->Release();
    constexpr CLSID kUnknown = GuidFromLiteral("3b0a4c1e-8f21-4d6a-9c11-2a7e5d0f6bfe");
    EXPECT_EQ(CoCreateInstance(kUnknown, nullptr, CLSCTX_INPROC_SERVER, IID_ICounter,
                               reinterpret_cast<void**>(&counter)),
              REGDB_E_CLASSNOTREG);
    EXPECT_EQ(CoRevokeClassObject(registration), RPC_E_WRONG_THREAD);
  });
  a.Run([&] {
    EXPECT_EQ(CoRevokeClassObject(registration), S_OK);
    EXPECT_EQ(CoRevokeClassObject(registration), CO_E_OBJNOTREG);
  });
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, a.tid());
}

// Tests that a callee that throws gives its caller RPC_E_SERVERFAULT and
// that an interface argument unmarshaled for that call is released.
class Thrower final : public ComObject<Thrower, IHolder> {
 public:
  STDMETHODIMP Set(ICounter*) override { throw std::runtime_error("callee blew up"); }
  STDMETHODIMP Get(ICounter** c) override {
    *c = nullptr;
    return S_OK;
  }
  STDMETHODIMP AddToHeld(int, int*, DWORD*) override { return E_NOTIMPL; }
};

TEST_F(MarshalTest, ThrowingCalleeIsServerFaultAndReleasesArguments) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Thrower* thrower = MakeComObject<Thrower>();
    ASSERT_EQ(CoMarshalInterThreadInterfaceInStream(IID_IHolder, static_cast<IHolder*>(thrower),
                                                    &stream),
              S_OK);
    thrower->Release();
  });
  b.Run([&] {
    IHolder* holder = nullptr;
    ASSERT_EQ(CoGetInterfaceAndReleaseStream(stream, IID_IHolder, reinterpret_cast<void**>(&holder)),
              S_OK);
    Counter* local = MakeComObject<Counter>(&death);
    EXPECT_EQ(holder->Set(static_cast<ICounter*>(local)), RPC_E_SERVERFAULT);
    EXPECT_NE(LastErrorDescription().find("callee blew up"), std::string::npos);
    local->Release();
    EXPECT_EQ(death.deaths, 1);
    holder->Release();
  });
}

// Tests that proxies in several apartments calling one object while its
// apartment shuts down each get S_OK or RPC_E_DISCONNECTED (counts add up),
// the object is released on its own thread, and nothing leaks.
TEST_F(MarshalTest, CallsRacingServerShutdownAllEnd) {
  constexpr int kClients = 3;
  constexpr int kCallsPerClient = 200;
  DeathRecord death;
  auto server = std::make_unique<AptThread>();
  const DWORD server_tid = server->tid();
  DWORD cookie = 0;
  server->Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    ASSERT_EQ(GlobalInterfaceTable()->RegisterInterfaceInGlobal(static_cast<ICounter*>(counter),
                                                                 IID_ICounter, &cookie),
              S_OK);
    counter->Release();
  });
  std::atomic<int> ok{0}, disconnected{0}, other{0};
  std::atomic<int> started{0};
  std::vector<std::unique_ptr<BoundedThread>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<BoundedThread>([&, i] {
      if (FAILED(CoInitializeEx(nullptr, i % 2 == 0 ? COINIT_APARTMENTTHREADED
                                                     : COINIT_MULTITHREADED))) {
        std::abort();
      }
      ICounter* proxy = nullptr;
      HRESULT hr = GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_ICounter,
                                                                  reinterpret_cast<void**>(&proxy));
      ++started;
      for (int call = 0; call < kCallsPerClient; ++call) {
        HRESULT r = SUCCEEDED(hr) ? Poke(proxy) : hr;
        if (r == S_OK) {
          ++ok;
        } else if (r == RPC_E_DISCONNECTED || r == CO_E_OBJNOTCONNECTED) {
          ++disconnected;
        } else {
          ++other;
        }
      }
      if (proxy != nullptr) proxy->Release();
      CoUninitialize();
    }));
  }
  ASSERT_TRUE(Eventually([&] { return started.load() == kClients; }));
  server->Shutdown();
  server.reset();
  clients.clear();
  EXPECT_EQ(ok + disconnected, kClients * kCallsPerClient);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(death.deaths, 1);
  EXPECT_EQ(death.tid, server_tid);
  AptThread cleanup;
  cleanup.Run([&] { EXPECT_EQ(GlobalInterfaceTable()->RevokeInterfaceFromGlobal(cookie), S_OK); });
}

}  // namespace
}  // namespace apartments::internal::testing

namespace apartments::internal::testing {
namespace {

struct BusyStaContext {
  HANDLE ready;
  HANDLE release;
  IStream* marshaled = nullptr;
};

DWORD WINAPI BusyStaMain(LPVOID argument) {
  auto* context = static_cast<BusyStaContext*>(argument);
  if (FAILED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED))) return 1;
  IStream* stream = nullptr;
  CreateStreamOnHGlobal(nullptr, TRUE, &stream);
  CoMarshalInterThreadInterfaceInStream(IID_IStream, stream, &context->marshaled);
  SetEvent(context->ready);
  // Busy: not pumping messages until released.
  WaitForSingleObject(context->release, INFINITE);
  stream->Release();
  CoUninitialize();
  return 0;
}

// Tests that unmarshaling the marshaled interface never calls into the
// object's apartment, so it succeeds while that STA's thread is blocked and
// not pumping, as on Windows. This hung before: the proxy asked the object's
// apartment for the interface it had already marshaled.
TEST(MarshalBusyServerTest, UnmarshalDoesNotCallIntoBusyApartment) {
  BusyStaContext context{CreateEventW(nullptr, TRUE, FALSE, nullptr),
                         CreateEventW(nullptr, TRUE, FALSE, nullptr)};
  HANDLE sta = CreateThread(nullptr, 0, &BusyStaMain, &context, 0, nullptr);
  ASSERT_EQ(WaitForSingleObject(context.ready, 10000), WAIT_OBJECT_0);
  std::promise<HRESULT> unmarshaled;
  std::future<HRESULT> result = unmarshaled.get_future();
  std::thread client([&] {
    CoInitializeEx(nullptr, COINIT_MULTITHREADED);
    IStream* proxy = nullptr;
    HRESULT hr = CoGetInterfaceAndReleaseStream(context.marshaled, IID_IStream,
                                                reinterpret_cast<void**>(&proxy));
    unmarshaled.set_value(hr);
    if (proxy != nullptr) proxy->Release();
    CoUninitialize();
  });
  bool in_time = result.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  SetEvent(context.release);  // Frees the client too if it was stuck.
  client.join();
  EXPECT_TRUE(in_time) << "CoGetInterfaceAndReleaseStream waited for the busy STA";
  EXPECT_EQ(result.get(), S_OK);
  EXPECT_EQ(WaitForSingleObject(sta, 10000), WAIT_OBJECT_0);
  CloseHandle(sta);
  CloseHandle(context.ready);
  CloseHandle(context.release);
}

}  // namespace
}  // namespace apartments::internal::testing
