// Tests of marshaling behaviours that Windows defines and Wine's ole32
// conformance tests (dlls/ole32/tests/marshal.c, run on Windows) check:
// callee HRESULTs through proxies, wrong-thread and no-COM calls, marshal
// data lifecycle (read faults, released and table-weak data), the
// free-threaded marshaler's data, the global interface table's class object,
// and the interfaces every standard proxy answers itself.
//
// Over 800 lines on purpose: each case mirrors one check of Wine's marshal.c,
// kept in one file so that they read side by side with it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>

#include "apartments/error_info.h"
#include "com/marshal_test_util.h"

namespace apartments::internal::testing {
namespace {

constexpr CLSID kClsidStdMarshal = GuidFromLiteral("00000017-0000-0000-C000-000000000046");
constexpr CLSID kClsidInProcFreeMarshaler = GuidFromLiteral("0000033A-0000-0000-C000-000000000046");


ULONGLONG StreamPosition(IStream* stream) {
  ULARGE_INTEGER position{};
  EXPECT_EQ(stream->Seek(LARGE_INTEGER{}, STREAM_SEEK_CUR, &position), S_OK);
  return position.QuadPart;
}

template <typename T>
HRESULT Unmarshal(IStream* stream, T** out) {
  return CoUnmarshalInterface(stream, InterfaceId<T>(), reinterpret_cast<void**>(out));
}

// A class factory whose CreateInstance returns a fixed HRESULT and leaves
// *ppv null (Wine's TestRE_ClassFactory and TestMsg_ClassFactory).
class NullFactory final : public ComObject<NullFactory, IClassFactory> {
 public:
  explicit NullFactory(HRESULT result) : result_(result) {}
  STDMETHODIMP CreateInstance(IUnknown*, REFIID, void** ppv) override {
    *ppv = nullptr;
    return result_;
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }

 private:
  HRESULT result_;
};

// A static object counting its references (AddRef/Release), never deleted:
// what Wine's tests call "locks".
class LockCounter final : public IUnknown {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (riid == IID_IUnknown) {
      AddRef();
      *ppv = static_cast<IUnknown*>(this);
      return S_OK;
    }
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return static_cast<ULONG>(++locks); }
  STDMETHODIMP_(ULONG) Release() override {
    long left = --locks;
    if (left == 0) ++releases_to_zero;
    return static_cast<ULONG>(left);
  }
  std::atomic<long> locks{0};
  std::atomic<int> releases_to_zero{0};  // where Wine's TestCrash object crashes
};

// --- Item: callee HRESULTs ---------------------------------------------------------

// Tests that IClassFactory::CreateInstance through a proxy returns the
// callee's success code unchanged when it leaves the object null: S_FALSE
// and S_OK with *ppv == NULL (this used to come back as E_NOINTERFACE).
TEST_F(MarshalTest, ClassFactoryProxyReturnsSuccessWithNullObjectUnchanged) {
  for (HRESULT result : {S_FALSE, S_OK}) {
    AptThread a, b;
    IStream* stream = nullptr;
    a.Run([&] {
      NullFactory* factory = MakeComObject<NullFactory>(result);
      stream =
          MarshalInto(static_cast<IClassFactory*>(factory), MSHLFLAGS_NORMAL, IID_IClassFactory);
      factory->Release();
    });
    b.Run([&] {
      IClassFactory* proxy = nullptr;
      ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
      void* object = reinterpret_cast<void*>(0x1);
      EXPECT_EQ(proxy->CreateInstance(nullptr, IID_IUnknown, &object), result);
      EXPECT_EQ(object, nullptr);
      proxy->Release();
    });
    stream->Release();
  }
}

// Tests that an [out] interface of the proxy recipe left null by a
// successful callee comes back as that success with a null pointer.
TEST_F(MarshalTest, RecipeOutInterfaceNullSuccessComesBackUnchanged) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<IHolder*>(counter), MSHLFLAGS_NORMAL, IID_IHolder);
    counter->Release();
  });
  b.Run([&] {
    IHolder* proxy = nullptr;
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    ICounter* held = reinterpret_cast<ICounter*>(0x1);
    EXPECT_EQ(proxy->Get(&held), S_OK);  // holds nothing yet
    EXPECT_EQ(held, nullptr);
    proxy->Release();
  });
  stream->Release();
  EXPECT_EQ(death.deaths, 1);
}

// --- Item: wrong thread, no COM ----------------------------------------------------

// Tests that QueryInterface through a proxy from another apartment returns
// RPC_E_WRONG_THREAD for every IID, also those the proxy could answer
// locally, while Release from there still works.
TEST_F(MarshalTest, QueryInterfaceFromAnotherApartmentIsWrongThread) {
  DeathRecord death;
  AptThread a, b, c;
  IStream* stream = nullptr;
  ICounter* proxy = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  b.Run([&] { ASSERT_EQ(Unmarshal(stream, &proxy), S_OK); });
  c.Run([&] {
    for (const IID* iid : {&IID_IUnknown, &IID_ICounter, &IID_IHolder, &IID_IMultiQI, &IID_IMarshal,
                           &IID_IClientSecurity, &IID_IUnsupported}) {
      void* out = reinterpret_cast<void*>(0x1);
      EXPECT_EQ(proxy->QueryInterface(*iid, &out), RPC_E_WRONG_THREAD);
      EXPECT_EQ(out, nullptr);
    }
    proxy->Release();  // allowed from anywhere
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that a call through a proxy from a thread that never initialized
// COM, while no MTA exists, returns CO_E_NOTINITIALIZED; its QueryInterface
// RPC_E_WRONG_THREAD; and CoRegisterMessageFilter there CO_E_NOT_SUPPORTED,
// leaving the out parameter alone (Wine's test_proxy_used_in_wrong_thread
// and test_CoRegisterMessageFilter, on Windows).
TEST_F(MarshalTest, ProxyCallFromThreadWithoutComIsNotInitialized) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  ICounter* proxy = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  b.Run([&] { ASSERT_EQ(Unmarshal(stream, &proxy), S_OK); });
  BoundedThread t([&] {
    ASSERT_EQ(CurrentApartment(), nullptr) << "an MTA exists: this thread is in it";
    EXPECT_EQ(Poke(proxy), CO_E_NOTINITIALIZED);
    EXPECT_NE(LastErrorDescription().find("in no apartment"), std::string::npos)
        << LastErrorDescription();
    void* out = nullptr;
    EXPECT_EQ(proxy->QueryInterface(IID_IMultiQI, &out), RPC_E_WRONG_THREAD);
    EXPECT_EQ(proxy->QueryInterface(IID_IStream, &out), RPC_E_WRONG_THREAD);
    IMessageFilter* previous = reinterpret_cast<IMessageFilter*>(0xdeadbeef);
    EXPECT_EQ(CoRegisterMessageFilter(nullptr, &previous), CO_E_NOT_SUPPORTED);
    EXPECT_EQ(previous, reinterpret_cast<IMessageFilter*>(0xdeadbeef));
  });
  t.Join();
  b.Run([&] { proxy->Release(); });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that the same call from a thread that never initialized COM, while
// an MTA exists, is a call from the implicit MTA: RPC_E_WRONG_THREAD.
TEST_F(MarshalTest, ProxyCallFromImplicitMtaIsWrongThread) {
  DeathRecord death;
  AptThread a, b, mta(AptThread::kMta);
  IStream* stream = nullptr;
  ICounter* proxy = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  b.Run([&] { ASSERT_EQ(Unmarshal(stream, &proxy), S_OK); });
  BoundedThread t([&] {
    ASSERT_NE(CurrentApartment(), nullptr);
    EXPECT_EQ(Poke(proxy), RPC_E_WRONG_THREAD);
  });
  t.Join();
  b.Run([&] { proxy->Release(); });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// --- Item: marshal data lifecycle ------------------------------------------------

// Tests that CoUnmarshalInterface and CoReleaseMarshalData on a stream with
// no bytes, or too few, left at its position return STG_E_READFAULT
// (Wine's test_bad_marshal_stream), and that the data is intact afterwards.
// Tests that CoGetMarshalSizeMax gives at least what CoMarshalInterface
// writes, and fails as CoMarshalInterface does on bad arguments.
TEST_F(MarshalTest, MarshalSizeMaxCoversWhatIsWritten) {
  DeathRecord death;
  AptThread a;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    IUnknown* unk = static_cast<ICounter*>(counter);
    ULONG size = 0;
    ASSERT_EQ(CoGetMarshalSizeMax(&size, IID_ICounter, unk, MSHCTX_INPROC, nullptr,
                                  MSHLFLAGS_NORMAL),
              S_OK);
    IStream* stream = NewStream();
    ASSERT_EQ(CoMarshalInterface(stream, IID_ICounter, unk, MSHCTX_INPROC, nullptr,
                                 MSHLFLAGS_NORMAL),
              S_OK);
    ULARGE_INTEGER end{};
    ASSERT_EQ(stream->Seek(LARGE_INTEGER{}, STREAM_SEEK_CUR, &end), S_OK);
    EXPECT_GT(size, 0u);
    EXPECT_LE(end.QuadPart, size);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    stream->Release();
    EXPECT_EQ(CoGetMarshalSizeMax(nullptr, IID_ICounter, unk, MSHCTX_INPROC, nullptr,
                                  MSHLFLAGS_NORMAL),
              E_INVALIDARG);
    size = 7;
    EXPECT_EQ(CoGetMarshalSizeMax(&size, IID_ICounter, nullptr, MSHCTX_INPROC, nullptr,
                                  MSHLFLAGS_NORMAL),
              E_INVALIDARG);
    EXPECT_EQ(size, 0u);
    counter->Release();
  });
  EXPECT_EQ(death.deaths.load(), 1);
}

TEST_F(MarshalTest, ShortStreamIsReadFault) {
  DeathRecord death;
  AptThread a;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    IStream* stream = NewStream();
    ASSERT_EQ(CoMarshalInterface(stream, IID_ICounter, static_cast<ICounter*>(counter),
                                 MSHCTX_INPROC, nullptr, MSHLFLAGS_NORMAL),
              S_OK);
    // At the end of the stream.
    EXPECT_EQ(CoReleaseMarshalData(stream), STG_E_READFAULT);
    IUnknown* out = nullptr;
    EXPECT_EQ(CoUnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              STG_E_READFAULT);
    // A few bytes short.
    LARGE_INTEGER back{};
    back.QuadPart = -4;
    ASSERT_EQ(stream->Seek(back, STREAM_SEEK_END, nullptr), S_OK);
    EXPECT_EQ(CoReleaseMarshalData(stream), STG_E_READFAULT);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    stream->Release();
    IStream* empty = NewStream();
    EXPECT_EQ(CoUnmarshalInterface(empty, IID_IUnknown, reinterpret_cast<void**>(&out)),
              STG_E_READFAULT);
    empty->Release();
    counter->Release();
  });
  EXPECT_EQ(death.deaths, 1);
}

// Tests that CoMarshalInterface takes its lasting reference before it drops
// the one QueryInterface gave it, so a fresh object's count never falls back
// to 0 inside the call (this destroyed a fresh object: 0, 1, 0; Wine's
// test_crash_couninitialize, whose object crashes when its count reaches 0,
// marshal.c:1886).
TEST_F(MarshalTest, MarshalNeverDropsFreshObjectCountToZero) {
  LockCounter object;
  AptThread a;
  a.Run([&] {
    IStream* stream = NewStream();
    ASSERT_EQ(CoMarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                 MSHLFLAGS_NORMAL),
              S_OK);
    EXPECT_EQ(object.releases_to_zero.load(), 0);
    EXPECT_GT(object.locks.load(), 0);
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    stream->Release();
  });
  EXPECT_EQ(object.locks.load(), 0);
  EXPECT_EQ(object.releases_to_zero.load(), 1);
}

// Tests that a second same-apartment unmarshal of NORMAL data fails with
// CO_E_OBJNOTCONNECTED: the first took the data's only strong reference and
// handed out the object itself, so the stub is gone (this gave S_OK and a
// disconnected proxy; Wine's test_normal_marshal_and_unmarshal_twice,
// marshal.c:2499-2523, the object's locks after each step included).
TEST_F(MarshalTest, SameApartmentSecondUnmarshalOfNormalDataIsObjNotConnected) {
  LockCounter object;
  AptThread a;
  a.Run([&] {
    IStream* stream = NewStream();
    ASSERT_EQ(CoMarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                 MSHLFLAGS_NORMAL),
              S_OK);
    EXPECT_GT(object.locks.load(), 0);
    Rewind(stream);
    IUnknown* first = nullptr;
    ASSERT_EQ(CoUnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&first)), S_OK);
    EXPECT_EQ(first, &object);
    EXPECT_GT(object.locks.load(), 0);
    Rewind(stream);
    IUnknown* second = &object;
    EXPECT_EQ(CoUnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&second)),
              CO_E_OBJNOTCONNECTED);
    EXPECT_EQ(second, nullptr);
    stream->Release();
    EXPECT_GT(object.locks.load(), 0);
    first->Release();
    EXPECT_EQ(object.locks.load(), 0);
  });
}

// Tests that NORMAL data released with CoReleaseMarshalData still
// unmarshals, into a proxy whose calls return RPC_E_DISCONNECTED (Wine's
// test_marshal_and_unmarshal_invalid); its object is not kept alive by it.
TEST_F(MarshalTest, ReleasedNormalDataUnmarshalsIntoDisconnectedProxy) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  b.Run([&] {
    ASSERT_EQ(CoReleaseMarshalData(stream), S_OK);
    EXPECT_EQ(death.deaths, 1);
    Rewind(stream);
    ICounter* proxy = nullptr;
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    ASSERT_NE(proxy, nullptr);
    EXPECT_EQ(Poke(proxy), RPC_E_DISCONNECTED);
    EXPECT_EQ(proxy->Release(), 0u);
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that TABLEWEAK data released while a proxy keeps the object
// exported still unmarshals into a working proxy (Wine's
// test_tableweak_marshal_releasedata1), and that the object goes with the
// last proxy.
TEST_F(MarshalTest, ReleasedTableWeakDataUnmarshalsWhileProxyKeepsObject) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  Counter* counter = nullptr;
  a.Run([&] {
    counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLEWEAK);
  });
  ICounter* first = nullptr;
  b.Run([&] { ASSERT_EQ(Unmarshal(stream, &first), S_OK); });
  a.Run([&] {
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    counter->Release();  // the proxy's stub keeps it now
  });
  EXPECT_EQ(death.deaths, 0);
  b.Run([&] {
    Rewind(stream);
    ICounter* second = nullptr;
    ASSERT_EQ(Unmarshal(stream, &second), S_OK);
    EXPECT_EQ(Poke(second), S_OK);
    first->Release();
    EXPECT_EQ(Poke(second), S_OK);
    second->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests that table-weak data whose object is no longer exported gives
// CO_E_OBJNOTREG: after the last proxy went (Wine's
// test_proxy_marshal_and_unmarshal_weak), and after the data was released
// with no proxy (test_tableweak_marshal_releasedata2).
TEST_F(MarshalTest, TableWeakDataOfGoneObjectIsObjNotReg) {
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
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    proxy->Release();
    Rewind(stream);
    EXPECT_EQ(Unmarshal(stream, &proxy), CO_E_OBJNOTREG);
    EXPECT_EQ(proxy, nullptr);
  });
  IStream* released = nullptr;
  a.Run([&] {
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    released = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLEWEAK);
    EXPECT_EQ(CoReleaseMarshalData(released), S_OK);
    Rewind(released);
  });
  b.Run([&] {
    ICounter* proxy = nullptr;
    EXPECT_EQ(Unmarshal(released, &proxy), CO_E_OBJNOTREG);
  });
  a.Run([&] { counter->Release(); });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
  released->Release();
}

// Tests that CoLockObjectExternal(obj, FALSE, FALSE) does not release an
// object that table-weak data still names, while (obj, FALSE, TRUE) does
// (Wine's test_lock_object_external).
TEST_F(MarshalTest, UnlockWithoutLastUnlockReleasesKeepsTableWeakObject) {
  for (BOOL last_unlock_releases : {FALSE, TRUE}) {
    DeathRecord death;
    AptThread a, b;
    IStream* stream = nullptr;
    Counter* counter = nullptr;
    a.Run([&] {
      counter = MakeComObject<Counter>(&death);
      stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_TABLEWEAK);
      ASSERT_EQ(CoLockObjectExternal(static_cast<ICounter*>(counter), TRUE, last_unlock_releases),
                S_OK);
      ASSERT_EQ(CoLockObjectExternal(static_cast<ICounter*>(counter), FALSE, last_unlock_releases),
                S_OK);
    });
    b.Run([&] {
      ICounter* proxy = nullptr;
      if (last_unlock_releases) {
        EXPECT_EQ(Unmarshal(stream, &proxy), CO_E_OBJNOTREG);
      } else {
        ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
        EXPECT_EQ(Poke(proxy), S_OK);
        proxy->Release();
      }
    });
    a.Run([&] {
      Rewind(stream);
      EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
      counter->Release();
    });
    EXPECT_EQ(death.deaths, 1);
    stream->Release();
  }
}

// Tests that CoMarshalHresult writes the HRESULT as its 4 bytes and
// CoUnmarshalHresult reads them back (Wine's test_hresult_marshaling,
// marshal.c:2538-2552), and that a short stream is STG_E_READFAULT.
TEST(HresultMarshalTest, RoundTripsAsFourBytes) {
  const HRESULT kDeadBeef = static_cast<HRESULT>(0xdeadbeef);
  IStream* stream = NewStream();
  ASSERT_EQ(CoMarshalHresult(stream, kDeadBeef), S_OK);
  EXPECT_EQ(StreamPosition(stream), 4u);
  Rewind(stream);
  HRESULT raw = 0;
  ULONG read = 0;
  ASSERT_EQ(stream->Read(&raw, sizeof raw, &read), S_OK);
  EXPECT_EQ(read, 4u);
  EXPECT_EQ(raw, kDeadBeef);
  Rewind(stream);
  HRESULT back = 0;
  EXPECT_EQ(CoUnmarshalHresult(stream, &back), S_OK);
  EXPECT_EQ(back, kDeadBeef);
  back = S_FALSE;
  EXPECT_EQ(CoUnmarshalHresult(stream, &back), STG_E_READFAULT);
  EXPECT_EQ(back, S_FALSE);
  EXPECT_EQ(CoMarshalHresult(nullptr, S_OK), E_INVALIDARG);
  EXPECT_EQ(CoUnmarshalHresult(stream, nullptr), E_INVALIDARG);
  stream->Release();
}

// --- Item: the free-threaded marshaler -------------------------------------------

IMarshal* NewFreeThreadedMarshaler() {
  IUnknown* ftm = nullptr;
  EXPECT_EQ(CoCreateFreeThreadedMarshaler(nullptr, &ftm), S_OK);
  IMarshal* marshal = nullptr;
  EXPECT_EQ(ftm->QueryInterface(IID_IMarshal, reinterpret_cast<void**>(&marshal)), S_OK);
  ftm->Release();
  return marshal;
}

SIZE_T StreamBytes(IStream* stream) {
  HGLOBAL global = nullptr;
  EXPECT_EQ(GetHGlobalFromStream(stream, &global), S_OK);
  return GlobalSize(global);
}

// Tests that the free-threaded marshaler's in-process data has Windows'
// size and layout: GetMarshalSizeMax 28 bytes (flags, a 64-bit pointer, a
// GUID), exactly that many written, the flags then the pointer first
// (Wine's test_freethreadedmarshaler / test_freethreadedmarshaldata).
TEST_F(MarshalTest, FreeThreadedMarshalerDataHasWindowsSizeAndLayout) {
  AptThread a;
  a.Run([] {
    LockCounter object;
    IMarshal* marshal = NewFreeThreadedMarshaler();
    DWORD size = 0;
    ASSERT_EQ(marshal->GetMarshalSizeMax(IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                         MSHLFLAGS_NORMAL, &size),
              S_OK);
    EXPECT_EQ(size, sizeof(DWORD) + sizeof(std::uint64_t) + sizeof(GUID));
    CLSID clsid{};
    ASSERT_EQ(marshal->GetUnmarshalClass(IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                         MSHLFLAGS_NORMAL, &clsid),
              S_OK);
    EXPECT_EQ(clsid, kClsidInProcFreeMarshaler);
    for (DWORD flags : {MSHLFLAGS_NORMAL, MSHLFLAGS_TABLESTRONG, MSHLFLAGS_TABLEWEAK}) {
      IStream* stream = NewStream();
      ASSERT_EQ(
          marshal->MarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr, flags),
          S_OK);
      EXPECT_EQ(StreamBytes(stream), size);
      HGLOBAL global = nullptr;
      ASSERT_EQ(GetHGlobalFromStream(stream, &global), S_OK);
      auto* bytes = static_cast<const unsigned char*>(GlobalLock(global));
      DWORD written_flags = 0;
      void* written_pointer = nullptr;
      std::memcpy(&written_flags, bytes, sizeof written_flags);
      std::memcpy(&written_pointer, bytes + sizeof(DWORD), sizeof written_pointer);
      GlobalUnlock(global);
      EXPECT_EQ(written_flags, flags);
      EXPECT_EQ(written_pointer, static_cast<void*>(static_cast<IUnknown*>(&object)));
      Rewind(stream);
      EXPECT_EQ(marshal->ReleaseMarshalData(stream), S_OK);
      stream->Release();
    }
    EXPECT_EQ(object.locks, 0);
    marshal->Release();
  });
}

// Tests the free-threaded marshaler's reference rules and the sequences
// Windows allows: NORMAL data holds a reference that unmarshaling hands
// over; TABLESTRONG data holds one until released; TABLEWEAK data holds
// none; released NORMAL data may still be unmarshaled (it is not tracked).
TEST_F(MarshalTest, FreeThreadedMarshalerReferencesAndSequences) {
  AptThread a;
  a.Run([] {
    LockCounter object;
    IMarshal* marshal = NewFreeThreadedMarshaler();
    IStream* stream = NewStream();
    IUnknown* out = nullptr;

    ASSERT_EQ(marshal->MarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                        MSHLFLAGS_NORMAL),
              S_OK);
    EXPECT_EQ(object.locks, 1);
    Rewind(stream);
    ASSERT_EQ(marshal->UnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              S_OK);
    EXPECT_EQ(out, static_cast<IUnknown*>(&object));
    out->Release();
    EXPECT_EQ(object.locks, 0);

    Rewind(stream);
    ASSERT_EQ(marshal->MarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                        MSHLFLAGS_TABLESTRONG),
              S_OK);
    Rewind(stream);
    ASSERT_EQ(marshal->UnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              S_OK);
    out->Release();
    EXPECT_EQ(object.locks, 1);
    Rewind(stream);
    EXPECT_EQ(marshal->ReleaseMarshalData(stream), S_OK);
    EXPECT_EQ(object.locks, 0);

    Rewind(stream);
    ASSERT_EQ(marshal->MarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                        MSHLFLAGS_TABLEWEAK),
              S_OK);
    EXPECT_EQ(object.locks, 0);
    Rewind(stream);
    ASSERT_EQ(marshal->UnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              S_OK);
    EXPECT_EQ(object.locks, 1);
    out->Release();
    EXPECT_EQ(object.locks, 0);

    // NORMAL data released, then unmarshaled anyway: allowed, no net reference.
    Rewind(stream);
    ASSERT_EQ(marshal->MarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                        MSHLFLAGS_NORMAL),
              S_OK);
    EXPECT_EQ(marshal->DisconnectObject(0), S_OK);  // does nothing
    EXPECT_EQ(object.locks, 1);
    Rewind(stream);
    EXPECT_EQ(marshal->ReleaseMarshalData(stream), S_OK);
    EXPECT_EQ(object.locks, 0);
    object.AddRef();  // what keeps the object alive is the caller's affair
    Rewind(stream);
    ASSERT_EQ(marshal->UnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              S_OK);
    EXPECT_EQ(out, static_cast<IUnknown*>(&object));
    EXPECT_EQ(object.locks, 1);
    object.Release();

    stream->Release();
    marshal->Release();
  });
}

// Tests that free-threaded marshal data that this process's marshaler did
// not write is refused before its pointer is used, and a short stream is a
// read fault.
TEST_F(MarshalTest, FreeThreadedMarshalerRefusesForgedAndShortData) {
  AptThread a;
  a.Run([] {
    LockCounter object;
    IMarshal* marshal = NewFreeThreadedMarshaler();
    IStream* stream = NewStream();
    ASSERT_EQ(marshal->MarshalInterface(stream, IID_IUnknown, &object, MSHCTX_INPROC, nullptr,
                                        MSHLFLAGS_TABLEWEAK),
              S_OK);
    HGLOBAL global = nullptr;
    ASSERT_EQ(GetHGlobalFromStream(stream, &global), S_OK);
    auto* bytes = static_cast<unsigned char*>(GlobalLock(global));
    bytes[5] ^= 0x40;  // another pointer
    GlobalUnlock(global);
    Rewind(stream);
    IUnknown* out = nullptr;
    EXPECT_EQ(marshal->UnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)),
              RPC_E_INVALID_OBJREF);
    EXPECT_EQ(out, nullptr);
    LARGE_INTEGER back{};
    back.QuadPart = -3;
    ASSERT_EQ(stream->Seek(back, STREAM_SEEK_END, nullptr), S_OK);
    EXPECT_EQ(marshal->ReleaseMarshalData(stream), STG_E_READFAULT);
    EXPECT_EQ(object.locks, 0);
    stream->Release();
    marshal->Release();
  });
}

// Tests that CoMarshalInterface of an agile object with TABLEWEAK takes no
// reference on it, as the free-threaded marshaler does on Windows.
TEST_F(MarshalTest, TableWeakAgileObjectTakesNoReference) {
  AptThread a, b;
  a.Run([&] {
    class Agile final : public IAgileObject {
     public:
      STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
        if (riid == IID_IUnknown || riid == IID_IAgileObject) {
          AddRef();
          *ppv = static_cast<IAgileObject*>(this);
          return S_OK;
        }
        *ppv = nullptr;
        return E_NOINTERFACE;
      }
      STDMETHODIMP_(ULONG) AddRef() override { return static_cast<ULONG>(++locks); }
      STDMETHODIMP_(ULONG) Release() override { return static_cast<ULONG>(--locks); }
      std::atomic<long> locks{0};
    } object;
    IStream* stream = MarshalInto(&object, MSHLFLAGS_TABLEWEAK, IID_IUnknown);
    EXPECT_EQ(object.locks, 0);
    b.Run([&] {
      IUnknown* out = nullptr;
      ASSERT_EQ(CoUnmarshalInterface(stream, IID_IUnknown, reinterpret_cast<void**>(&out)), S_OK);
      EXPECT_EQ(out, static_cast<IUnknown*>(&object));
      EXPECT_EQ(object.locks, 1);
      out->Release();
    });
    Rewind(stream);
    EXPECT_EQ(CoReleaseMarshalData(stream), S_OK);
    EXPECT_EQ(object.locks, 0);
    stream->Release();
  });
}

// --- Item: the global interface table --------------------------------------------

// Tests that CoGetClassObject(CLSID_StdGlobalInterfaceTable) gives a class
// factory (not the table) whose CreateInstance gives the process's table,
// and that the table's AddRef and Release both return 1 (Wine's
// test_globalinterfacetable, on Windows).
TEST_F(MarshalTest, GlobalInterfaceTableClassObjectAndCounts) {
  AptThread a;
  a.Run([] {
    IClassFactory* factory = nullptr;
    ASSERT_EQ(CoGetClassObject(CLSID_StdGlobalInterfaceTable, CLSCTX_INPROC_SERVER, nullptr,
                               IID_IClassFactory, reinterpret_cast<void**>(&factory)),
              S_OK);
    void* none = nullptr;
    EXPECT_EQ(factory->QueryInterface(IID_IGlobalInterfaceTable, &none), E_NOINTERFACE);
    IGlobalInterfaceTable* git = nullptr;
    ASSERT_EQ(
        factory->CreateInstance(nullptr, IID_IGlobalInterfaceTable, reinterpret_cast<void**>(&git)),
        S_OK);
    EXPECT_EQ(git, GlobalInterfaceTable());
    IUnknown* outer = git;
    EXPECT_EQ(factory->CreateInstance(outer, IID_IGlobalInterfaceTable, &none),
              CLASS_E_NOAGGREGATION);
    factory->Release();
    IGlobalInterfaceTable* created = nullptr;
    ASSERT_EQ(CoCreateInstance(CLSID_StdGlobalInterfaceTable, nullptr, CLSCTX_INPROC_SERVER,
                               IID_IGlobalInterfaceTable, reinterpret_cast<void**>(&created)),
              S_OK);
    EXPECT_EQ(created, git);
    EXPECT_EQ(created->AddRef(), 1u);
    EXPECT_EQ(created->AddRef(), 1u);
    EXPECT_EQ(created->Release(), 1u);
    EXPECT_EQ(created->Release(), 1u);
    created->Release();
    git->Release();
  });
}

// Tests that the table's GetInterfaceFromGlobal on a thread in no apartment
// returns CO_E_NOTINITIALIZED (Wine's get_global_interface_proc).
TEST_F(MarshalTest, GlobalInterfaceTableNeedsAnApartment) {
  DeathRecord death;
  AptThread a;
  DWORD cookie = 0;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    ASSERT_EQ(GlobalInterfaceTable()->RegisterInterfaceInGlobal(static_cast<ICounter*>(counter),
                                                                IID_ICounter, &cookie),
              S_OK);
    counter->Release();
  });
  BoundedThread t([&] {
    ASSERT_EQ(CurrentApartment(), nullptr);
    void* out = nullptr;
    EXPECT_EQ(GlobalInterfaceTable()->GetInterfaceFromGlobal(cookie, IID_ICounter, &out),
              CO_E_NOTINITIALIZED);
  });
  t.Join();
  a.Run([&] { EXPECT_EQ(GlobalInterfaceTable()->RevokeInterfaceFromGlobal(cookie), S_OK); });
  EXPECT_EQ(death.deaths, 1);
}

// --- Item: what standard proxies answer ------------------------------------------

// Tests that a standard proxy answers IMultiQI, IMarshal and IClientSecurity
// (Wine's test_proxy_interfaces, on Windows), each part of the proxy
// (IUnknown gives the proxy's identity).
TEST_F(MarshalTest, ProxyAnswersMultiQiMarshalAndClientSecurity) {
  DeathRecord death;
  AptThread a, b;
  IStream* stream = nullptr;
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL, IID_IUnknown);
    counter->Release();
  });
  b.Run([&] {
    IUnknown* proxy = nullptr;
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    for (const IID* iid : {&IID_IMultiQI, &IID_IMarshal, &IID_IClientSecurity}) {
      IUnknown* itf = nullptr;
      ASSERT_EQ(proxy->QueryInterface(*iid, reinterpret_cast<void**>(&itf)), S_OK);
      IUnknown* identity = nullptr;
      ASSERT_EQ(itf->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity)), S_OK);
      EXPECT_EQ(identity, proxy);
      identity->Release();
      itf->Release();
    }
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests IMultiQI::QueryMultipleInterfaces on a proxy, as documented (and
// as Wine answers): S_OK when all are found, S_FALSE with per-entry results
// when some are, E_NOINTERFACE when none is; an entry whose pItf is set on
// input is ignored.
TEST_F(MarshalTest, ProxyQueryMultipleInterfaces) {
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
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    IMultiQI* mqi = nullptr;
    ASSERT_EQ(proxy->QueryInterface(IID_IMultiQI, reinterpret_cast<void**>(&mqi)), S_OK);
    MULTI_QI some[3] = {{&IID_IHolder, nullptr, E_FAIL},
                        {&IID_IUnsupported, nullptr, E_FAIL},
                        {&IID_IUnknown, nullptr, E_FAIL}};
    EXPECT_EQ(mqi->QueryMultipleInterfaces(3, some), S_FALSE);
    EXPECT_EQ(some[0].hr, S_OK);
    ASSERT_NE(some[0].pItf, nullptr);
    EXPECT_EQ(some[1].hr, E_NOINTERFACE);
    EXPECT_EQ(some[1].pItf, nullptr);
    EXPECT_EQ(some[2].hr, S_OK);
    int total = 0;
    DWORD tid = 0;
    EXPECT_EQ(static_cast<IHolder*>(some[0].pItf)->AddToHeld(1, &total, &tid), E_UNEXPECTED);
    some[0].pItf->Release();
    some[2].pItf->Release();
    MULTI_QI all[1] = {{&IID_ICounter, nullptr, E_FAIL}};
    EXPECT_EQ(mqi->QueryMultipleInterfaces(1, all), S_OK);
    all[0].pItf->Release();
    MULTI_QI none[1] = {{&IID_IUnsupported, nullptr, E_FAIL}};
    EXPECT_EQ(mqi->QueryMultipleInterfaces(1, none), E_NOINTERFACE);
    IUnknown* preset = reinterpret_cast<IUnknown*>(0x1);
    MULTI_QI ignored[2] = {{&IID_ICounter, preset, E_FAIL}, {&IID_IUnknown, nullptr, E_FAIL}};
    EXPECT_EQ(mqi->QueryMultipleInterfaces(2, ignored), S_OK);
    EXPECT_EQ(ignored[0].pItf, preset);
    EXPECT_EQ(ignored[0].hr, E_FAIL);
    ignored[1].pItf->Release();
    mqi->Release();
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

// Tests a proxy's IMarshal: CLSID_StdMarshal, and data it writes names the
// original object, which a third apartment unmarshals and calls.
TEST_F(MarshalTest, ProxyMarshalNamesOriginalObject) {
  DeathRecord death;
  AptThread a, b, c;
  IStream* stream = nullptr;
  IStream* again = NewStream();
  a.Run([&] {
    Counter* counter = MakeComObject<Counter>(&death);
    stream = MarshalInto(static_cast<ICounter*>(counter), MSHLFLAGS_NORMAL);
    counter->Release();
  });
  ICounter* proxy = nullptr;
  b.Run([&] {
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    IMarshal* marshal = nullptr;
    ASSERT_EQ(proxy->QueryInterface(IID_IMarshal, reinterpret_cast<void**>(&marshal)), S_OK);
    CLSID clsid{};
    EXPECT_EQ(marshal->GetUnmarshalClass(IID_ICounter, proxy, MSHCTX_INPROC, nullptr,
                                         MSHLFLAGS_NORMAL, &clsid),
              S_OK);
    EXPECT_EQ(clsid, kClsidStdMarshal);
    DWORD size = 0;
    EXPECT_EQ(marshal->GetMarshalSizeMax(IID_ICounter, proxy, MSHCTX_INPROC, nullptr,
                                         MSHLFLAGS_NORMAL, &size),
              S_OK);
    ASSERT_EQ(marshal->MarshalInterface(again, IID_ICounter, proxy, MSHCTX_INPROC, nullptr,
                                        MSHLFLAGS_NORMAL),
              S_OK);
    EXPECT_LE(StreamBytes(again), size);
    marshal->Release();
  });
  c.Run([&] {
    Rewind(again);
    ICounter* other = nullptr;
    ASSERT_EQ(Unmarshal(again, &other), S_OK);
    DWORD tid = 0;
    EXPECT_EQ(other->ThreadId(&tid), S_OK);
    EXPECT_EQ(tid, a.tid());
    other->Release();
  });
  b.Run([&] { proxy->Release(); });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
  again->Release();
}

// Tests a proxy's IClientSecurity: QueryBlanket succeeds for the proxy's
// interfaces (all out parameters optional) and fails with E_NOINTERFACE for
// its local ones; SetBlanket is recorded and refuses an unknown
// authentication service with E_INVALIDARG (Wine's test_client_security).
TEST_F(MarshalTest, ProxyClientSecurityBlanket) {
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
    ASSERT_EQ(Unmarshal(stream, &proxy), S_OK);
    IClientSecurity* security = nullptr;
    ASSERT_EQ(proxy->QueryInterface(IID_IClientSecurity, reinterpret_cast<void**>(&security)),
              S_OK);
    IMarshal* marshal = nullptr;
    ASSERT_EQ(proxy->QueryInterface(IID_IMarshal, reinterpret_cast<void**>(&marshal)), S_OK);
    EXPECT_EQ(security->QueryBlanket(proxy, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                     nullptr),
              S_OK);
    EXPECT_EQ(security->QueryBlanket(marshal, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                     nullptr),
              E_NOINTERFACE);
    DWORD authn = 0, authz = 0, level = 0, imp = 0, caps = 0;
    OLECHAR* principal = nullptr;
    void* info = nullptr;
    ASSERT_EQ(security->QueryBlanket(proxy, &authn, &authz, &principal, &level, &imp, &info, &caps),
              S_OK);
    EXPECT_EQ(security->SetBlanket(proxy, authn, authz, principal, level,
                                   RPC_C_IMP_LEVEL_IMPERSONATE, info, caps),
              S_OK);
    EXPECT_EQ(Poke(proxy), S_OK);
    EXPECT_EQ(security->SetBlanket(marshal, authn, authz, principal, level, imp, info, caps),
              E_NOINTERFACE);
    EXPECT_EQ(security->SetBlanket(proxy, 0xdeadbeef, authz, principal, level, imp, info, caps),
              E_INVALIDARG);
    CoTaskMemFree(principal);
    IUnknown* identity = nullptr;
    ASSERT_EQ(proxy->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity)), S_OK);
    DWORD imp_now = 0;
    EXPECT_EQ(security->QueryBlanket(identity, nullptr, nullptr, nullptr, nullptr, &imp_now,
                                     nullptr, nullptr),
              S_OK);
    EXPECT_EQ(imp_now, static_cast<DWORD>(RPC_C_IMP_LEVEL_IMPERSONATE));
    identity->Release();
    marshal->Release();
    security->Release();
    proxy->Release();
  });
  EXPECT_EQ(death.deaths, 1);
  stream->Release();
}

}  // namespace
}  // namespace apartments::internal::testing
