#include <atomic>
#include <memory>
#include <thread>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/diagnostics.h"
#include "apartments/win32_kernel.h"
#include "com/apartment.h"
#include "com/com_test_util.h"
#include "diag/diag_test_util.h"
#include "kernel/kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {
namespace {

// Two threads, each owning one mutex and waiting (alertably, so the test can
// end it with an APC) for the other's. `timeout` applies to the second wait.
class CrossedMutexes {
 public:
  explicit CrossedMutexes(DWORD timeout)
      : mutex_a_(CreateMutexW(nullptr, FALSE, L"dl-mutex-a")),
        mutex_b_(CreateMutexW(nullptr, FALSE, L"dl-mutex-b")),
        a_([this, timeout] { Run(L"dl-a", mutex_a_, mutex_b_, timeout, &handle_a_); }),
        b_([this, timeout] { Run(L"dl-b", mutex_b_, mutex_a_, timeout, &handle_b_); }) {}
  ~CrossedMutexes() {
    End();
    CloseHandle(mutex_a_);
    CloseHandle(mutex_b_);
  }

  bool BothBlocked() {
    return ReadWaitRecord(a_.tid()).kind == BlockKind::kKernelWait &&
           ReadWaitRecord(b_.tid()).kind == BlockKind::kKernelWait &&
           ReadWaitRecord(a_.tid()).objects.size() == 1 &&
           ReadWaitRecord(a_.tid()).objects[0].owner_tid == b_.tid() &&
           ReadWaitRecord(b_.tid()).objects.size() == 1 &&
           ReadWaitRecord(b_.tid()).objects[0].owner_tid == a_.tid();
  }
  // Ends both waits with APCs and joins the threads.
  void End() {
    if (ended_.exchange(true)) return;
    QueueUserAPC(&NoOpApc, handle_a_.load(), 0);
    QueueUserAPC(&NoOpApc, handle_b_.load(), 0);
    a_.Join();
    b_.Join();
    CloseHandle(handle_a_.load());
    CloseHandle(handle_b_.load());
  }
  DWORD a() const { return a_.tid(); }
  DWORD b() const { return b_.tid(); }

 private:
  void Run(const wchar_t* name, HANDLE own, HANDLE other, DWORD timeout,
           std::atomic<HANDLE>* handle) {
    SetThreadDescription(GetCurrentThread(), name);
    handle->store(DuplicateCurrentThreadHandle());
    if (WaitForSingleObject(own, kBoundMs) != WAIT_OBJECT_0) std::abort();
    owned_.fetch_add(1);
    // Bounded: a partner that never takes its mutex fails the test.
    if (!::apartments::internal::testing::Eventually([&] { return owned_.load() >= 2; })) {
      std::abort();
    }
    DWORD r = WaitForSingleObjectEx(other, timeout, TRUE);
    if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED_0) ReleaseMutex(other);
    ReleaseMutex(own);
  }

  HANDLE mutex_a_;
  HANDLE mutex_b_;
  std::atomic<int> owned_{0};
  std::atomic<HANDLE> handle_a_{nullptr};
  std::atomic<HANDLE> handle_b_{nullptr};
  std::atomic<bool> ended_{false};
  BoundedThread a_;
  BoundedThread b_;
};

// Tests that two threads each waiting for the mutex the other owns are
// reported once, naming both threads and both mutexes.
TEST(DeadlockTest, KernelMutexCycleReportedOnce) {
  DeadlockRecorder recorder;
  CrossedMutexes crossed(INFINITE);
  ASSERT_TRUE(Eventually([&] { return recorder.count() > 0; }));
  ASSERT_TRUE(Eventually([&] { return crossed.BothBlocked(); }));
  std::vector<DeadlockReport> reports = recorder.reports();
  ASSERT_EQ(reports.size(), 1u);
  const DeadlockReport& report = reports[0];
  ASSERT_EQ(report.threads.size(), 2u);
  EXPECT_TRUE((report.threads[0] == crossed.a() && report.threads[1] == crossed.b()) ||
              (report.threads[0] == crossed.b() && report.threads[1] == crossed.a()));
  EXPECT_TRUE(report.chain.is_cycle);
  EXPECT_TRUE(report.chain.is_deadlock);
  EXPECT_THAT(report.text, ::testing::HasSubstr("'dl-a'"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("'dl-b'"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("mutex 'dl-mutex-a'"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("mutex 'dl-mutex-b'"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("a deadlock cycle"));

  // The snapshot sees the same cycle.
  ProcessSnapshot snapshot = TakeSnapshot();
  ASSERT_EQ(snapshot.cycles.size(), 1u);
  EXPECT_TRUE(snapshot.cycle_is_deadlock[0]);
  EXPECT_EQ(snapshot.cycles[0].size(), 2u);
  crossed.End();
  EXPECT_EQ(recorder.count(), 1u);
}

// Tests that a cycle of waits with timeouts shows in the chain as a cycle but
// is never reported as a deadlock (it ends by itself).
TEST(DeadlockTest, TimedCycleIsNotADeadlock) {
  DeadlockRecorder recorder;
  CrossedMutexes crossed(kBoundMs);
  ASSERT_TRUE(Eventually([&] { return crossed.BothBlocked(); }));
  WaitChain chain = GetWaitChain(crossed.a());
  EXPECT_TRUE(chain.is_cycle) << FormatWaitChain(chain);
  EXPECT_FALSE(chain.is_deadlock);
  EXPECT_THAT(FormatWaitChain(chain), ::testing::HasSubstr("not a deadlock"));
  crossed.End();
  EXPECT_EQ(recorder.count(), 0u);
}

// Tests that an STA holding a mutex while its call into another STA waits on
// that mutex is reported as a deadlock through the apartment edge.
TEST(DeadlockTest, ComCallIntoStaWaitingOnCallersMutex) {
  DeadlockRecorder recorder;
  StaThread sta_a(L"sta-a");
  StaThread sta_b(L"sta-b");
  HANDLE mutex = CreateMutexW(nullptr, FALSE, L"held-by-a");
  std::atomic<HANDLE> b_handle{nullptr};
  ApartmentRef apt_a = sta_a.apartment();
  ApartmentRef apt_b = sta_b.apartment();
  HRESULT outer = E_FAIL;
  BoundedThread caller([&] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
    outer = InvokeInApartment(apt_a, [&]() -> HRESULT {
      if (WaitForSingleObject(mutex, kBoundMs) != WAIT_OBJECT_0) return E_FAIL;
      HRESULT inner = InvokeInApartment(apt_b, [&]() -> HRESULT {
        b_handle.store(DuplicateCurrentThreadHandle());
        DWORD r = WaitForSingleObjectEx(mutex, INFINITE, TRUE);
        if (r == WAIT_OBJECT_0) ReleaseMutex(mutex);
        return r == WAIT_IO_COMPLETION ? S_OK : E_UNEXPECTED;
      });
      ReleaseMutex(mutex);
      return inner;
    });
    CoUninitialize();
  });
  // While the caller waits, the cycle forms and is reported; then break it.
  EXPECT_TRUE(Eventually([&] { return recorder.count() > 0; }));
  ASSERT_TRUE(Eventually([&] { return b_handle.load() != nullptr; }));
  QueueUserAPC(&NoOpApc, b_handle.load(), 0);
  caller.Join();
  EXPECT_EQ(outer, S_OK);
  std::vector<DeadlockReport> reports = recorder.reports();
  ASSERT_EQ(reports.size(), 1u);
  const std::string& text = reports[0].text;
  EXPECT_THAT(text, ::testing::HasSubstr("'sta-a'"));
  EXPECT_THAT(text, ::testing::HasSubstr("'sta-b'"));
  EXPECT_THAT(text, ::testing::HasSubstr("COM call"));
  EXPECT_THAT(text, ::testing::HasSubstr("call into STA"));
  EXPECT_THAT(text, ::testing::HasSubstr("mutex 'held-by-a'"));
  CloseHandle(b_handle.load());
  CloseHandle(mutex);
}

// Tests that two STAs calling each other, each serving calls in its modal
// loop, are not reported: the nested call completes.
TEST(DeadlockTest, MutualStaCallsWhilePumpingAreNotADeadlock) {
  DeadlockRecorder recorder;
  StaThread sta_a(L"mutual-a");
  StaThread sta_b(L"mutual-b");
  ApartmentRef apt_a = sta_a.apartment();
  ApartmentRef apt_b = sta_b.apartment();
  HRESULT hr = E_FAIL;
  RunInMta([&] {
    hr = InvokeInApartment(apt_a, [&]() -> HRESULT {
      return InvokeInApartment(apt_b, [&]() -> HRESULT {
        return InvokeInApartment(apt_a, [] { return S_OK; });
      });
    });
  });
  EXPECT_EQ(hr, S_OK);
  EXPECT_EQ(recorder.count(), 0u);
}

// Tests that threads taking mutexes in random orders (out-of-order ones with
// a timeout, so no real deadlock exists) while snapshots are taken never get
// a deadlock report, though transient cycles form.
TEST(DeadlockTest, RandomizedWaitsNeverReportFalseDeadlock) {
  DeadlockRecorder recorder;
  constexpr int kThreads = 4;
  constexpr int kMutexes = 3;
  constexpr int kIterations = 300;
  HANDLE mutexes[kMutexes];
  for (HANDLE& m : mutexes) m = CreateMutexW(nullptr, FALSE, nullptr);
  std::atomic<int> running{kThreads};
  std::atomic<std::uint64_t> snapshots{0};
  // The workers start once the observer is taking snapshots, so the two
  // overlap however the threads are scheduled.
  HANDLE observing = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  BoundedThread observer([&] {
    do {
      ProcessSnapshot snapshot = TakeSnapshot();
      (void)ToJson(snapshot);
      (void)FormatSnapshot(snapshot);
      snapshots.fetch_add(1);
      SetEvent(observing);
    } while (running.load() > 0);
  });
  std::vector<std::unique_ptr<BoundedThread>> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(std::make_unique<BoundedThread>([&, t] {
      if (WaitForSingleObject(observing, kBoundMs) != WAIT_OBJECT_0) std::abort();
      std::mt19937 rng(1234 + t);
      for (int i = 0; i < kIterations; ++i) {
        int first = static_cast<int>(rng() % kMutexes);
        int second = static_cast<int>(rng() % kMutexes);
        if (first == second) continue;
        const bool in_order = first < second;
        if (WaitForSingleObject(mutexes[first], INFINITE) != WAIT_OBJECT_0) std::abort();
        DWORD r = WaitForSingleObject(mutexes[second], in_order ? INFINITE : 1);
        if (r == WAIT_OBJECT_0) ReleaseMutex(mutexes[second]);
        ReleaseMutex(mutexes[first]);
      }
      running.fetch_sub(1);
    }));
  }
  for (auto& w : workers) w->Join();
  observer.Join();
  EXPECT_GT(snapshots.load(), 0u);
  EXPECT_EQ(recorder.count(), 0u);
  for (HANDLE m : mutexes) CloseHandle(m);
  CloseHandle(observing);
}

}  // namespace
}  // namespace apartments::internal::testing
