// Tests of in-process servers: CoGetClassObject/CoCreateInstance loading the
// sample server (examples/inproc_server), where each threading model's
// objects live as Windows places them (Microsoft's InprocServer32 page),
// unloading (CoFreeUnusedLibrariesEx), and each error.
#include "com/inproc_server.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "apartments/clock.h"
#include "apartments/diagnostics.h"
#include "apartments/error_info.h"
#include "apartments/inproc_server.h"
#include "apartments/win32.h"
#include "com/apartment_impl.h"
#include "com/com_test_util.h"
#include "com/marshal_test_util.h"
#include "gtest/gtest.h"
#define APARTMENTS_SAMPLE_DEFINE_PROXIES
#include "sample_interfaces.h"

namespace apartments::internal::testing {
namespace {

constexpr const char* kServer = APARTMENTS_SAMPLE_SERVER_PATH;
constexpr CLSID kUnregistered = GuidFromLiteral("6f0b7f0e-3a5c-4c1e-9d35-2f4a8e0b7cff");

// Where an object turned out to live, seen from its creator.
struct Placement {
  HRESULT hr = E_FAIL;
  DWORD object_tid = 0;  // The thread that ran WhereAmI.
  DWORD caller_tid = 0;
  bool direct = false;   // The caller holds the object itself, not a proxy.
};

// Creates `clsid` on the calling thread and asks the object where it runs.
Placement CreateHere(REFCLSID clsid) {
  Placement p;
  p.caller_tid = GetCurrentThreadId();
  sample::IWhere* where = nullptr;
  p.hr = CoCreateInstance(clsid, nullptr, CLSCTX_INPROC_SERVER, IID_PPV_ARGS(&where));
  if (FAILED(p.hr)) return p;
  ULONGLONG address = 0;
  p.hr = where->WhereAmI(&p.object_tid, &address);
  p.direct = address == reinterpret_cast<std::uintptr_t>(where);
  where->Release();
  return p;
}

Placement CreateInSta(REFCLSID clsid) {
  Placement p;
  RunInSta([&] { p = CreateHere(clsid); });
  return p;
}

Placement CreateInMta(REFCLSID clsid) {
  Placement p;
  RunInMta([&] { p = CreateHere(clsid); });
  return p;
}

// From a thread that never initialized COM while the MTA exists.
Placement CreateInImplicitMta(REFCLSID clsid) {
  CO_MTA_USAGE_COOKIE cookie = nullptr;
  EXPECT_EQ(CoIncrementMTAUsage(&cookie), S_OK);
  Placement p;
  {
    BoundedThread t([&] { p = CreateHere(clsid); });
  }
  EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
  return p;
}

// Whether the creator got the object itself, running on its own thread.
::testing::AssertionResult IsTheObjectItself(const Placement& p) {
  if (p.hr != S_OK) return ::testing::AssertionFailure() << "creation or call failed: " << std::hex << p.hr;
  if (!p.direct) return ::testing::AssertionFailure() << "the creator holds a proxy";
  if (p.object_tid != p.caller_tid) {
    return ::testing::AssertionFailure() << "it ran on thread " << p.object_tid << ", not the caller's "
                                         << p.caller_tid;
  }
  return ::testing::AssertionSuccess();
}

// Whether the creator got a proxy to an object living on thread `tid`.
::testing::AssertionResult IsProxyInto(const Placement& p, DWORD tid) {
  if (p.hr != S_OK) return ::testing::AssertionFailure() << "creation or call failed: " << std::hex << p.hr;
  if (p.direct) return ::testing::AssertionFailure() << "the creator holds the object itself";
  if (p.object_tid != tid || tid == p.caller_tid) {
    return ::testing::AssertionFailure() << "it ran on thread " << p.object_tid << ", expected " << tid
                                         << " (the caller is " << p.caller_tid << ")";
  }
  return ::testing::AssertionSuccess();
}

// Whether the dynamic loader still has the library mapped.
bool Mapped(const char* path) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  dlclose(handle);
  return true;
}

class InprocServerTest : public MarshalTest {
 protected:
  void SetUp() override {
    if (const char* old = getenv("APARTMENTS_CLASS_PATH")) saved_path_ = old;
    char dir[] = "/tmp/apartments-inproc-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    setenv("APARTMENTS_CLASS_PATH", dir_.c_str(), 1);
  }
  void TearDown() override {
    ShutdownInprocHostsForTesting();
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_EQ(LoadedInprocServersForTesting(), 0u) << "a server stayed loaded";
    MarshalTest::TearDown();
    std::filesystem::remove_all(dir_);
    if (saved_path_.empty()) {
      unsetenv("APARTMENTS_CLASS_PATH");
    } else {
      setenv("APARTMENTS_CLASS_PATH", saved_path_.c_str(), 1);
    }
  }

  // Registers `clsid` as served by `library` with `model` ("" = legacy).
  void Register(REFCLSID clsid, const std::string& model, const std::string& library = kServer) {
    ASSERT_EQ(RegisterInprocServer(
                  {.clsid = clsid, .library_path = library, .threading_model = model}),
              S_OK);
  }

  std::string dir_;
  std::string saved_path_;
};

// --- Where objects live ---------------------------------------------------------

// Tests that an Apartment class created from an STA lives in that STA: the
// caller holds the object itself and calls run on its own thread.
TEST_F(InprocServerTest, ApartmentFromStaLivesInCallersSta) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  EXPECT_TRUE(IsTheObjectItself(CreateInSta(sample::CLSID_SampleApartment)));
}

// Tests that an Apartment class created from the MTA lives in the host STA
// the runtime starts, and the caller gets a proxy.
TEST_F(InprocServerTest, ApartmentFromMtaLivesInHostSta) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  Placement p = CreateInMta(sample::CLSID_SampleApartment);
  EXPECT_TRUE(IsProxyInto(p, InprocHostStaThreadIdForTesting()));
}

// Tests that an Apartment class created from the implicit MTA also lives in
// the host STA.
TEST_F(InprocServerTest, ApartmentFromImplicitMtaLivesInHostSta) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  Placement p = CreateInImplicitMta(sample::CLSID_SampleApartment);
  EXPECT_TRUE(IsProxyInto(p, InprocHostStaThreadIdForTesting()));
}

// Tests that the host STA's thread is named as such, with the class that
// made the runtime start it (explanations and wait chains show the name).
TEST_F(InprocServerTest, HostStaThreadNamesItselfAndItsClass) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  ASSERT_EQ(CreateInMta(sample::CLSID_SampleApartment).hr, S_OK);
  const std::string name = ThreadNameOf(InprocHostStaThreadIdForTesting());
  EXPECT_NE(name.find("host STA"), std::string::npos) << name;
  EXPECT_NE(name.find(ClassEntryFileName(sample::CLSID_SampleApartment)), std::string::npos)
      << name;
}

// Tests that a wait chain through the host STA names it as such, with its
// class: a caller waiting on an object there while the host STA is blocked.
TEST_F(InprocServerTest, WaitChainNamesTheHostSta) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInMta([] {
    sample::IWhere* where = nullptr;
    ASSERT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&where)),
              S_OK);
    ApartmentRef host = InprocHostStaApartmentForTesting();
    ASSERT_TRUE(host);
    TestEvent blocked;
    TestEvent release;
    BoundedThread blocker([&] {
      (void)CoInitializeEx(nullptr, COINIT_MULTITHREADED);
      EXPECT_EQ(InvokeInApartment(host,
                                  [&] {
                                    blocked.Set();
                                    return release.Wait() ? S_OK : E_FAIL;
                                  }),
                S_OK);
      CoUninitialize();
    });
    ASSERT_TRUE(blocked.Wait());
    BoundedThread caller([&] {
      int sum = 0;
      EXPECT_EQ(where->Add(1, 2, &sum), S_OK);  // Queued behind the blocked call.
    });
    std::string chain;
    const bool named = Eventually([&] {
      chain = FormatWaitChain(GetWaitChain(caller.tid()));
      return chain.find("host STA (for " +
                        ClassEntryFileName(sample::CLSID_SampleApartment) + ")") !=
                 std::string::npos &&
             chain.find("event") != std::string::npos;
    });
    release.Set();
    caller.Join();
    blocker.Join();
    EXPECT_TRUE(named) << chain;
    where->Release();
  });
}

// Tests that explanations name the host STA as such, with its class: a call
// through a proxy after the host STA ended says which apartment went away.
TEST_F(InprocServerTest, ExplanationsNameTheHostSta) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInMta([] {
    sample::IWhere* where = nullptr;
    ASSERT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&where)),
              S_OK);
    ShutdownInprocHostsForTesting();
    DWORD tid = 0;
    ULONGLONG address = 0;
    EXPECT_EQ(where->WhereAmI(&tid, &address), RPC_E_DISCONNECTED);
    const std::string why = LastErrorDescription();
    EXPECT_NE(why.find("host STA (for " + ClassEntryFileName(sample::CLSID_SampleApartment)),
              std::string::npos)
        << why;
    where->Release();
  });
}

// Tests that a Free class created from an STA lives in the MTA (a proxy, a
// thread other than the caller's and the host STA's).
TEST_F(InprocServerTest, FreeFromStaLivesInMta) {
  Register(sample::CLSID_SampleFree, "Free");
  Placement p = CreateInSta(sample::CLSID_SampleFree);
  ASSERT_EQ(p.hr, S_OK);
  EXPECT_FALSE(p.direct);
  EXPECT_NE(p.object_tid, p.caller_tid);
  EXPECT_EQ(InprocHostStaThreadIdForTesting(), 0u) << "a Free class needs no host STA";
}

// Tests that a Free class created from the MTA lives there: the object
// itself, called on the caller's thread.
TEST_F(InprocServerTest, FreeFromMtaIsTheObjectItself) {
  Register(sample::CLSID_SampleFree, "Free");
  EXPECT_TRUE(IsTheObjectItself(CreateInMta(sample::CLSID_SampleFree)));
}

// Tests that a Free class created from the implicit MTA is the object itself.
TEST_F(InprocServerTest, FreeFromImplicitMtaIsTheObjectItself) {
  Register(sample::CLSID_SampleFree, "Free");
  EXPECT_TRUE(IsTheObjectItself(CreateInImplicitMta(sample::CLSID_SampleFree)));
}

// Tests that a Both class lives where it is created: in an STA, the MTA and
// the implicit MTA the caller holds the object itself.
TEST_F(InprocServerTest, BothLivesWhereCreated) {
  Register(sample::CLSID_SampleApartment, "Both");
  for (Placement p : {CreateInSta(sample::CLSID_SampleApartment),
                      CreateInMta(sample::CLSID_SampleApartment),
                      CreateInImplicitMta(sample::CLSID_SampleApartment)}) {
    EXPECT_TRUE(IsTheObjectItself(p));
  }
}

// Tests that a Neutral class runs on its caller's thread from an STA, the MTA
// and the implicit MTA (our choice without a neutral apartment: as Both;
// docs/inproc_servers.md).
TEST_F(InprocServerTest, NeutralRunsOnCallersThread) {
  Register(sample::CLSID_SampleApartment, "Neutral");
  for (Placement p : {CreateInSta(sample::CLSID_SampleApartment),
                      CreateInMta(sample::CLSID_SampleApartment),
                      CreateInImplicitMta(sample::CLSID_SampleApartment)}) {
    ASSERT_EQ(p.hr, S_OK);
    EXPECT_EQ(p.object_tid, p.caller_tid);
  }
}

// Tests that the ThreadingModel value is matched case-insensitively, as
// Windows reads it ("apartment" from the MTA still goes to the host STA).
TEST_F(InprocServerTest, ThreadingModelIgnoresCase) {
  Register(sample::CLSID_SampleApartment, "aPaRtMeNt");
  Placement p = CreateInMta(sample::CLSID_SampleApartment);
  ASSERT_EQ(p.hr, S_OK);
  EXPECT_EQ(p.object_tid, InprocHostStaThreadIdForTesting());
}

// Tests that a legacy class (no ThreadingModel) created in the main STA is
// the object itself.
TEST_F(InprocServerTest, LegacyFromMainStaIsTheObjectItself) {
  Register(sample::CLSID_SampleApartment, "");
  AptThread main_sta(AptThread::kSta);
  ApartmentRef main = MainStaApartment();
  ASSERT_TRUE(main && main->thread_id() == main_sta.tid()) << "another main STA is alive";
  Placement p;
  main_sta.Run([&] { p = CreateHere(sample::CLSID_SampleApartment); });
  EXPECT_TRUE(IsTheObjectItself(p));
  EXPECT_EQ(p.object_tid, main_sta.tid());
}

// Tests that a legacy class created from another STA, the MTA and the
// implicit MTA lives in the main STA, and the caller gets a proxy.
TEST_F(InprocServerTest, LegacyFromOtherApartmentsLivesInMainSta) {
  Register(sample::CLSID_SampleApartment, "");
  AptThread main_sta(AptThread::kSta);
  ApartmentRef main = MainStaApartment();
  ASSERT_TRUE(main && main->thread_id() == main_sta.tid()) << "another main STA is alive";
  for (Placement p : {CreateInSta(sample::CLSID_SampleApartment),
                      CreateInMta(sample::CLSID_SampleApartment),
                      CreateInImplicitMta(sample::CLSID_SampleApartment)}) {
    EXPECT_TRUE(IsProxyInto(p, main_sta.tid()));
  }
}

// Tests that a legacy class created from the MTA while the process has no
// STA lives in a host STA the runtime starts, which is the main STA.
TEST_F(InprocServerTest, LegacyWithoutMainStaStartsHostMainSta) {
  Register(sample::CLSID_SampleApartment, "");
  ASSERT_FALSE(MainStaApartment()) << "another main STA is alive";
  Placement p = CreateInMta(sample::CLSID_SampleApartment);
  EXPECT_TRUE(IsProxyInto(p, InprocHostStaThreadIdForTesting()));
  ApartmentRef main = MainStaApartment();
  ASSERT_TRUE(main);
  EXPECT_EQ(main->thread_id(), InprocHostStaThreadIdForTesting());
}

// Tests that CoGetClassObject gives the class object where its objects live:
// from the MTA, an Apartment class's factory is a proxy whose CreateInstance
// makes the object in the host STA.
TEST_F(InprocServerTest, ClassObjectFromMtaIsProxyIntoHostSta) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInMta([] {
    IClassFactory* factory = nullptr;
    ASSERT_EQ(CoGetClassObject(sample::CLSID_SampleApartment, CLSCTX_INPROC_SERVER, nullptr,
                               IID_PPV_ARGS(&factory)),
              S_OK);
    sample::IWhere* where = nullptr;
    ASSERT_EQ(factory->CreateInstance(nullptr, IID_PPV_ARGS(&where)), S_OK);
    DWORD tid = 0;
    ULONGLONG address = 0;
    EXPECT_EQ(where->WhereAmI(&tid, &address), S_OK);
    EXPECT_EQ(tid, InprocHostStaThreadIdForTesting());
    where->Release();
    factory->Release();
  });
}

// A class implemented in the test binary, registered at run time.
class LocalWhere final : public InprocObject<LocalWhere, sample::IWhere> {
 public:
  static constexpr DWORD kMarker = 0xFFFFFFFEu;
  STDMETHODIMP WhereAmI(DWORD* thread_id, ULONGLONG* object_address) override {
    *thread_id = kMarker;
    *object_address = reinterpret_cast<std::uintptr_t>(static_cast<sample::IWhere*>(this));
    return S_OK;
  }
  STDMETHODIMP Add(int a, int b, int* sum) override { return E_NOTIMPL; }
};

// Tests that a class object registered at run time (CoRegisterClassObject)
// wins over the class's entry: the server is not loaded.
TEST_F(InprocServerTest, RunTimeRegistrationWinsOverEntry) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    auto* factory = new InprocClassFactory<LocalWhere>();
    DWORD cookie = 0;
    ASSERT_EQ(CoRegisterClassObject(sample::CLSID_SampleApartment, factory, CLSCTX_INPROC_SERVER,
                                    REGCLS_MULTIPLEUSE, &cookie),
              S_OK);
    factory->Release();
    Placement p = CreateHere(sample::CLSID_SampleApartment);
    EXPECT_EQ(p.hr, S_OK);
    EXPECT_EQ(p.object_tid, LocalWhere::kMarker);
    EXPECT_EQ(CoRevokeClassObject(cookie), S_OK);
  });
  EXPECT_EQ(LoadedInprocServersForTesting(), 0u);
}

// --- Unloading -------------------------------------------------------------------

// Tests that a server is loaded once for many objects and stays loaded while
// one of its objects lives, then unloads (dlclose) once none does.
TEST_F(InprocServerTest, NeverUnloadedWhileAnObjectLives) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    sample::IWhere* first = nullptr;
    sample::IWhere* second = nullptr;
    ASSERT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&first)),
              S_OK);
    ASSERT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&second)),
              S_OK);
    EXPECT_EQ(LoadedInprocServersForTesting(), 1u);
    first->Release();
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    int sum = 0;
    EXPECT_EQ(second->Add(2, 3, &sum), S_OK);  // Its code is still mapped.
    EXPECT_EQ(sum, 5);
    second->Release();
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
  EXPECT_FALSE(Mapped(kServer));
}

// Tests that a class object kept alive keeps its server loaded.
TEST_F(InprocServerTest, NeverUnloadedWhileAClassObjectLives) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    IClassFactory* factory = nullptr;
    ASSERT_EQ(CoGetClassObject(sample::CLSID_SampleApartment, CLSCTX_INPROC_SERVER, nullptr,
                               IID_PPV_ARGS(&factory)),
              S_OK);
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    factory->Release();
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
}

// Tests that IClassFactory::LockServer(TRUE) keeps the server loaded after
// its class object is released, until LockServer(FALSE).
TEST_F(InprocServerTest, LockServerKeepsServerLoaded) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    IClassFactory* factory = nullptr;
    ASSERT_EQ(CoGetClassObject(sample::CLSID_SampleApartment, CLSCTX_INPROC_SERVER, nullptr,
                               IID_PPV_ARGS(&factory)),
              S_OK);
    EXPECT_EQ(factory->LockServer(TRUE), S_OK);
    // A second class object to undo the lock with after the first is gone.
    IClassFactory* again = nullptr;
    ASSERT_EQ(CoGetClassObject(sample::CLSID_SampleApartment, CLSCTX_INPROC_SERVER, nullptr,
                               IID_PPV_ARGS(&again)),
              S_OK);
    factory->Release();
    again->Release();
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    ASSERT_EQ(CoGetClassObject(sample::CLSID_SampleApartment, CLSCTX_INPROC_SERVER, nullptr,
                               IID_PPV_ARGS(&again)),
              S_OK);
    EXPECT_EQ(again->LockServer(FALSE), S_OK);
    again->Release();
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
}

// Tests that CoFreeUnusedLibraries (the default, 10-minute delay) unloads an
// unused Apartment server at once: Windows takes the delay as 0 for
// Apartment and legacy servers.
TEST_F(InprocServerTest, ApartmentServerUnloadsWithoutDelay) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    ASSERT_EQ(CreateHere(sample::CLSID_SampleApartment).hr, S_OK);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    CoFreeUnusedLibraries();
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
}

// Tests that an unused Free server is unloaded only by a call made at least
// the delay after the call that found it unused.
TEST_F(InprocServerTest, FreeServerUnloadsAfterTheDelay) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Register(sample::CLSID_SampleFree, "Free");
  RunInMta([&] {
    ASSERT_EQ(CreateHere(sample::CLSID_SampleFree).hr, S_OK);
    CoFreeUnusedLibrariesEx(1000, 0);  // Now a candidate.
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    clock.Advance(std::chrono::milliseconds(999));
    CoFreeUnusedLibrariesEx(1000, 0);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    clock.Advance(std::chrono::milliseconds(1));
    CoFreeUnusedLibrariesEx(1000, 0);
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
}

// Tests that a candidate server used again is no longer a candidate: the
// delay starts over.
TEST_F(InprocServerTest, UsingACandidateRestartsTheDelay) {
  FakeClock clock;
  ScopedClockForTesting use_clock(&clock);
  Register(sample::CLSID_SampleFree, "Free");
  RunInMta([&] {
    ASSERT_EQ(CreateHere(sample::CLSID_SampleFree).hr, S_OK);
    CoFreeUnusedLibrariesEx(1000, 0);
    clock.Advance(std::chrono::milliseconds(1000));
    ASSERT_EQ(CreateHere(sample::CLSID_SampleFree).hr, S_OK);
    CoFreeUnusedLibrariesEx(1000, 0);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
    clock.Advance(std::chrono::milliseconds(1000));
    CoFreeUnusedLibrariesEx(1000, 0);
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
}

// Tests that CoFreeUnusedLibraries frees only the libraries loaded for the
// calling thread's apartment (Microsoft's CoFreeUnusedLibrariesEx page): a
// call from another STA leaves a server loaded by this one.
TEST_F(InprocServerTest, FreeUnusedSweepsOnlyTheCallersApartment) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    ASSERT_EQ(CreateHere(sample::CLSID_SampleApartment).hr, S_OK);
    RunInSta([] { CoFreeUnusedLibrariesEx(0, 0); });
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer)) << "another STA unloaded it";
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
}

// Tests that a server loaded by two apartments stays loaded until each has
// let go of it.
TEST_F(InprocServerTest, ServerListedByTwoApartmentsNeedsBoth) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  CO_MTA_USAGE_COOKIE cookie = nullptr;
  ASSERT_EQ(CoIncrementMTAUsage(&cookie), S_OK);  // Keeps the MTA's list alive.
  RunInSta([] {
    ASSERT_EQ(CreateHere(sample::CLSID_SampleApartment).hr, S_OK);
    // The MTA's Apartment object lives in the host STA: listed there too.
    RunInMta([] { ASSERT_EQ(CreateHere(sample::CLSID_SampleApartment).hr, S_OK); });
    CoFreeUnusedLibrariesEx(0, 0);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer)) << "the host STA still lists it";
    RunInMta([] { CoFreeUnusedLibrariesEx(0, 0); });  // The MTA sweeps the host STA's list.
    EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  });
  EXPECT_EQ(CoDecrementMTAUsage(cookie), S_OK);
}

// Tests that an apartment's end unloads the servers it loaded that are no
// longer in use, as Windows' CoUninitialize does, with no
// CoFreeUnusedLibraries call.
TEST_F(InprocServerTest, ApartmentEndUnloadsItsUnusedServers) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    ASSERT_EQ(CreateHere(sample::CLSID_SampleApartment).hr, S_OK);
    EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
  });
  EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
  EXPECT_FALSE(Mapped(kServer));
}

// Tests that a server whose object outlives the apartment that made it stays
// loaded (its code still runs), and is unloaded by a later
// CoFreeUnusedLibraries once the object is gone.
TEST_F(InprocServerTest, ServerOutlivesItsApartmentWhileAnObjectLives) {
  Register(sample::CLSID_SampleFree, "Both");
  sample::IWhere* survivor = nullptr;  // A Both object: usable from any thread.
  RunInSta([&] {
    ASSERT_EQ(CoCreateInstance(sample::CLSID_SampleFree, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&survivor)),
              S_OK);
  });
  ASSERT_NE(survivor, nullptr);
  EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
  RunInMta([] { CoFreeUnusedLibrariesEx(0, 0); });
  EXPECT_TRUE(IsInprocServerLoadedForTesting(kServer));
  int sum = 0;
  EXPECT_EQ(survivor->Add(20, 22, &sum), S_OK);  // Its code is still mapped.
  EXPECT_EQ(sum, 42);
  survivor->Release();
  RunInMta([] { CoFreeUnusedLibrariesEx(0, 0); });
  EXPECT_FALSE(IsInprocServerLoadedForTesting(kServer));
}

// --- Errors ----------------------------------------------------------------------

// Tests that a class with no entry is REGDB_E_CLASSNOTREG, explained with the
// directories searched.
TEST_F(InprocServerTest, NoEntryIsClassNotRegistered) {
  RunInSta([&] {
    IUnknown* unknown = nullptr;
    EXPECT_EQ(CoCreateInstance(kUnregistered, nullptr, CLSCTX_INPROC_SERVER, IID_PPV_ARGS(&unknown)),
              REGDB_E_CLASSNOTREG);
    EXPECT_EQ(unknown, nullptr);
    const std::string why = LastErrorDescription();
    EXPECT_NE(why.find("no registration entry"), std::string::npos) << why;
    EXPECT_NE(why.find(dir_), std::string::npos) << why;
  });
}

// Tests that an entry is not used for a context without
// CLSCTX_INPROC_SERVER (REGDB_E_CLASSNOTREG, nothing loaded).
TEST_F(InprocServerTest, LocalServerContextDoesNotLoadInprocServer) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInSta([] {
    IClassFactory* factory = nullptr;
    EXPECT_EQ(CoGetClassObject(sample::CLSID_SampleApartment, CLSCTX_LOCAL_SERVER, nullptr,
                               IID_PPV_ARGS(&factory)),
              REGDB_E_CLASSNOTREG);
  });
  EXPECT_EQ(LoadedInprocServersForTesting(), 0u);
}

// Tests that a library that does not load is CO_E_DLLNOTFOUND, explained
// with its path and the loader's message.
TEST_F(InprocServerTest, LibraryThatDoesNotLoadIsDllNotFound) {
  const std::string missing = dir_ + "/libmissing.so";
  Register(sample::CLSID_SampleApartment, "Apartment", missing);
  RunInSta([&] {
    IUnknown* unknown = nullptr;
    EXPECT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&unknown)),
              CO_E_DLLNOTFOUND);
    const std::string why = LastErrorDescription();
    EXPECT_NE(why.find(missing), std::string::npos) << why;
    EXPECT_NE(why.find("No such file"), std::string::npos) << why;
  });
}

// Tests that a library without DllGetClassObject is CO_E_ERRORINDLL, and is
// not kept loaded.
TEST_F(InprocServerTest, MissingExportIsErrorInDll) {
  Register(sample::CLSID_SampleApartment, "Apartment", "libm.so.6");
  RunInSta([] {
    IUnknown* unknown = nullptr;
    EXPECT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&unknown)),
              CO_E_ERRORINDLL);
    const std::string why = LastErrorDescription();
    EXPECT_NE(why.find("DllGetClassObject"), std::string::npos) << why;
  });
  EXPECT_EQ(LoadedInprocServersForTesting(), 0u);
}

// Tests that an unknown ThreadingModel is REGDB_E_BADTHREADINGMODEL, named in
// the explanation, and loads nothing.
TEST_F(InprocServerTest, BadThreadingModelIsRejected) {
  Register(sample::CLSID_SampleApartment, "Sideways");
  RunInMta([] {
    IUnknown* unknown = nullptr;
    EXPECT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&unknown)),
              REGDB_E_BADTHREADINGMODEL);
    EXPECT_NE(LastErrorDescription().find("Sideways"), std::string::npos);
  });
  EXPECT_EQ(LoadedInprocServersForTesting(), 0u);
}

// Tests that a host STA that cannot start fails the activation with
// E_OUTOFMEMORY (as Windows' host apartments do), explained with the class
// it was for, and that the next activation starts one.
TEST_F(InprocServerTest, HostStaThatCannotStartIsExplained) {
  Register(sample::CLSID_SampleApartment, "Apartment");
  RunInMta([] {
    FailNextHostStaStartForTesting(CO_E_INIT_TLS);
    sample::IWhere* where = nullptr;
    EXPECT_EQ(CoCreateInstance(sample::CLSID_SampleApartment, nullptr, CLSCTX_INPROC_SERVER,
                               IID_PPV_ARGS(&where)),
              E_OUTOFMEMORY);
    EXPECT_EQ(where, nullptr);
    EXPECT_THAT(LastErrorDescription(),
                HasSubstr("host STA (for " + ClassEntryFileName(sample::CLSID_SampleApartment) +
                          ") could not start"));
    EXPECT_EQ(InprocHostStaThreadIdForTesting(), 0u);
    EXPECT_EQ(CreateHere(sample::CLSID_SampleApartment).hr, S_OK);
  });
}

// Tests that a class the server does not serve gives its DllGetClassObject's
// CLASS_E_CLASSNOTAVAILABLE, explained on the caller's thread also when the
// server was asked in the host STA.
TEST_F(InprocServerTest, ClassTheServerDoesNotServe) {
  Register(kUnregistered, "Apartment");
  RunInMta([] {
    IUnknown* unknown = nullptr;
    EXPECT_EQ(CoCreateInstance(kUnregistered, nullptr, CLSCTX_INPROC_SERVER, IID_PPV_ARGS(&unknown)),
              CLASS_E_CLASSNOTAVAILABLE);
    EXPECT_NE(LastErrorDescription().find("does not serve"), std::string::npos);
  });
}

// --- Registration ----------------------------------------------------------------

// Tests that the server's DllRegisterServer writes an entry per class, naming
// the library and each class's model, and DllUnregisterServer removes them.
TEST_F(InprocServerTest, DllRegisterServerWritesEntries) {
  void* server = dlopen(kServer, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(server, nullptr);
  auto* register_server = reinterpret_cast<HRESULT (*)()>(dlsym(server, "DllRegisterServer"));
  auto* unregister_server = reinterpret_cast<HRESULT (*)()>(dlsym(server, "DllUnregisterServer"));
  ASSERT_NE(register_server, nullptr);
  ASSERT_NE(unregister_server, nullptr);
  EXPECT_EQ(register_server(), S_OK);
  ClassEntry entry;
  ASSERT_TRUE(ReadClassEntry(sample::CLSID_SampleApartment, &entry));
  EXPECT_EQ(std::filesystem::canonical(entry.library_path), std::filesystem::canonical(kServer));
  EXPECT_EQ(entry.threading_model, "Apartment");
  ASSERT_TRUE(ReadClassEntry(sample::CLSID_SampleFree, &entry));
  EXPECT_EQ(entry.threading_model, "Free");
  EXPECT_EQ(unregister_server(), S_OK);
  EXPECT_FALSE(ReadClassEntry(sample::CLSID_SampleApartment, &entry));
  EXPECT_FALSE(ReadClassEntry(sample::CLSID_SampleFree, &entry));
  dlclose(server);
}

// Tests that the first directory of the search path holding an entry wins
// (the per-user entry shadows the system one).
TEST_F(InprocServerTest, FirstDirectoryWins) {
  const std::string second = dir_ + "/system";
  setenv("APARTMENTS_CLASS_PATH", second.c_str(), 1);
  Register(sample::CLSID_SampleApartment, "Free");
  setenv("APARTMENTS_CLASS_PATH", (dir_ + ":" + second).c_str(), 1);
  Register(sample::CLSID_SampleApartment, "Both");
  ClassEntry entry;
  ASSERT_TRUE(ReadClassEntry(sample::CLSID_SampleApartment, &entry));
  EXPECT_EQ(entry.threading_model, "Both");
  EXPECT_EQ(entry.entry_path, dir_ + "/" + ClassEntryFileName(sample::CLSID_SampleApartment));
}

// Tests that an entry without a ThreadingModel line reads back as the legacy
// model (empty).
TEST_F(InprocServerTest, LegacyEntryHasNoThreadingModel) {
  Register(sample::CLSID_SampleApartment, "");
  ClassEntry entry;
  ASSERT_TRUE(ReadClassEntry(sample::CLSID_SampleApartment, &entry));
  EXPECT_EQ(entry.threading_model, "");
}

// Tests that unregistering a class that has no entry succeeds, as a second
// DllUnregisterServer does.
TEST_F(InprocServerTest, UnregisteringTwiceSucceeds) {
  Register(sample::CLSID_SampleApartment, "Both");
  EXPECT_EQ(UnregisterInprocServer(sample::CLSID_SampleApartment), S_OK);
  EXPECT_EQ(UnregisterInprocServer(sample::CLSID_SampleApartment), S_OK);
  ClassEntry entry;
  EXPECT_FALSE(ReadClassEntry(sample::CLSID_SampleApartment, &entry));
}

}  // namespace
}  // namespace apartments::internal::testing
