#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "apartments/clock.h"
#include "apartments/diagnostics.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "com/apartment.h"
#include "diag/diag_test_util.h"
#include "kernel/kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

using std::chrono::seconds;

// Tests that a chain follows a waiter to the mutex it waits on, to the mutex's
// owner, and on to the event that owner waits on, with names and durations.
TEST(WaitChainTest, FollowsMutexToOwnerAndOwnersWait) {
  FakeClock clock;
  ScopedClockForTesting scoped_clock(&clock);
  HANDLE mutex = CreateMutexW(nullptr, FALSE, L"chain-mutex");
  TestEvent release_owner;
  TestEvent owner_has_mutex;
  BoundedThread owner([&] {
    SetThreadDescription(GetCurrentThread(), L"owner");
    ASSERT_EQ(WaitForSingleObject(mutex, kBoundMs), WAIT_OBJECT_0);
    owner_has_mutex.Set();
    ASSERT_TRUE(release_owner.Wait());
    ReleaseMutex(mutex);
  });
  ASSERT_TRUE(owner_has_mutex.Wait());
  BoundedThread waiter([&] {
    SetThreadDescription(GetCurrentThread(), L"waiter");
    ASSERT_EQ(WaitForSingleObject(mutex, kBoundMs), WAIT_OBJECT_0);
    ReleaseMutex(mutex);
  });
  ASSERT_TRUE(Eventually([&] {
    return ReadWaitRecord(waiter.tid()).kind == BlockKind::kKernelWait &&
           ReadWaitRecord(owner.tid()).kind == BlockKind::kKernelWait;
  }));
  clock.Advance(seconds(3));

  WaitChain chain = GetWaitChain(waiter.tid());
  ASSERT_EQ(chain.nodes.size(), 4u) << FormatWaitChain(chain);
  EXPECT_FALSE(chain.is_cycle);
  EXPECT_EQ(chain.nodes[0].type, WaitNodeType::kThread);
  EXPECT_EQ(chain.nodes[0].thread_name, "waiter");
  EXPECT_EQ(chain.nodes[0].block_kind, "kernel wait");
  EXPECT_TRUE(chain.nodes[0].timed);
  EXPECT_EQ(chain.nodes[1].type, WaitNodeType::kObject);
  EXPECT_EQ(chain.nodes[1].object_kind, "mutex");
  EXPECT_EQ(chain.nodes[1].object_name, "chain-mutex");
  EXPECT_EQ(chain.nodes[1].handle, mutex);
  EXPECT_EQ(chain.nodes[1].owner_tid, owner.tid());
  EXPECT_EQ(chain.nodes[2].type, WaitNodeType::kThread);
  EXPECT_EQ(chain.nodes[2].tid, owner.tid());
  EXPECT_EQ(chain.nodes[2].thread_name, "owner");
  EXPECT_EQ(chain.nodes[2].waited, seconds(3));
  EXPECT_EQ(chain.nodes[3].object_kind, "event");
  EXPECT_FALSE(chain.nodes[3].signaled);

  const std::string text = FormatWaitChain(chain);
  EXPECT_NE(text.find("'waiter' blocked in kernel wait for 3.0 s"), std::string::npos) << text;
  EXPECT_NE(text.find("mutex 'chain-mutex'"), std::string::npos) << text;
  EXPECT_NE(text.find("owned by thread " + std::to_string(owner.tid())), std::string::npos)
      << text;
  const std::string json = ToJson(chain);
  EXPECT_NE(json.find("\"object_kind\":\"mutex\",\"handle\":"), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"chain-mutex\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"thread_name\":\"owner\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"waited_ms\":3000.000"), std::string::npos) << json;

  release_owner.Set();
  owner.Join();
  waiter.Join();
  CloseHandle(mutex);
}

// Tests that a thread that does not block has a one-node chain.
TEST(WaitChainTest, UnblockedThreadHasOneNode) {
  WaitChain chain = GetWaitChain(GetCurrentThreadId());
  ASSERT_EQ(chain.nodes.size(), 1u);
  EXPECT_EQ(chain.nodes[0].block_kind, "none");
  EXPECT_FALSE(chain.is_cycle);
}

// Tests that a snapshot lists a blocked thread with its name and chain, and
// renders as JSON that names it.
TEST(WaitChainTest, SnapshotListsBlockedThread) {
  TestEvent go;
  BoundedThread blocked([&] {
    SetThreadDescription(GetCurrentThread(), L"snap-blocked");
    ASSERT_TRUE(go.Wait());
  });
  ASSERT_TRUE(Eventually(
      [&] { return ReadWaitRecord(blocked.tid()).kind == BlockKind::kKernelWait; }));
  ProcessSnapshot snapshot = TakeSnapshot();
  const ThreadSnapshot* found = nullptr;
  for (const ThreadSnapshot& t : snapshot.threads) {
    if (t.tid == blocked.tid()) found = &t;
  }
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "snap-blocked");
  ASSERT_GE(found->chain.nodes.size(), 2u);
  EXPECT_EQ(found->chain.nodes[1].object_kind, "event");
  EXPECT_TRUE(snapshot.cycles.empty());
  EXPECT_NE(ToJson(snapshot).find("\"name\":\"snap-blocked\""), std::string::npos);
  EXPECT_NE(FormatSnapshot(snapshot).find("'snap-blocked'"), std::string::npos);
  go.Set();
}

// Tests that the chain of an STA waiting for its call into the MTA goes
// through the MTA to the worker running the call, and on to what the worker
// is blocked on.
TEST(WaitChainTest, MtaCallFollowsToWorker) {
  ASSERT_TRUE(SUCCEEDED(CoInitializeEx(nullptr, COINIT_MULTITHREADED)));
  ApartmentRef mta = CurrentApartment();
  ASSERT_NE(mta, nullptr);
  HANDLE blocker = CreateEventW(nullptr, TRUE, FALSE, L"mta-blocker");
  HRESULT hr = E_FAIL;
  BoundedThread caller([&] {
    SetThreadDescription(GetCurrentThread(), L"sta-caller");
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) std::abort();
    hr = InvokeInApartment(mta, [&] {
      return WaitForSingleObject(blocker, kBoundMs) == WAIT_OBJECT_0 ? S_OK : E_FAIL;
    });
    CoUninitialize();
  });
  WaitChain chain;
  ASSERT_TRUE(Eventually([&] {
    chain = GetWaitChain(caller.tid());
    return chain.nodes.size() == 4 && chain.nodes[2].block_kind == "kernel wait";
  })) << FormatWaitChain(chain);
  EXPECT_EQ(chain.nodes[0].thread_name, "sta-caller");
  EXPECT_EQ(chain.nodes[0].block_kind, "COM call");
  EXPECT_TRUE(chain.nodes[0].pumps_com);
  EXPECT_EQ(chain.nodes[1].type, WaitNodeType::kApartment);
  EXPECT_EQ(chain.nodes[1].apartment, "MTA " + std::to_string(mta->id()));
  EXPECT_EQ(chain.nodes[2].thread_name, "MTA worker");
  EXPECT_EQ(chain.nodes[3].object_name, "mta-blocker");
  SetEvent(blocker);
  caller.Join();
  EXPECT_EQ(hr, S_OK);
  CloseHandle(blocker);
  mta.reset();
  CoUninitialize();
}

}  // namespace
}  // namespace apartments::internal::testing
