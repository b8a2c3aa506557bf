// Tests that waits in EnterCriticalSection take part in wait chains and
// deadlock detection.
#include <atomic>
#include <cstdlib>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/diagnostics.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_synch.h"
#include "diag/diag_test_util.h"
#include "kernel/kernel.h"

namespace apartments::internal::testing {
namespace {

// Two threads, each owning one critical section and entering the other's: a
// deadlock that EnterCriticalSection alone can never end. To keep the test
// bounded, End() breaks it from outside: it leaves thread A's section on A's
// behalf (the same three field updates A's own Leave makes; our Leave does
// not check the caller, as Windows' does not), so B gets it, finishes and
// leaves both, which lets A through. A skips its own Leave of the section
// that was left for it. This runs whether or not the deadlock was reported,
// so a missing report fails the test rather than hanging it.
class CrossedSections {
 public:
  CrossedSections()
      : a_([this] { Run(L"cs-a", &cs_a_, &cs_b_, /*is_a=*/true); }),
        b_([this] { Run(L"cs-b", &cs_b_, &cs_a_, /*is_a=*/false); }) {}
  ~CrossedSections() { End(); }

  bool BothBlocked() {
    return entered_.load() == 2 && ReadWaitRecord(a_.tid()).kind == BlockKind::kKernelWait &&
           ReadWaitRecord(b_.tid()).kind == BlockKind::kKernelWait &&
           NextWaitHopTid(a_.tid()) == b_.tid() && NextWaitHopTid(b_.tid()) == a_.tid();
  }
  void End() {
    if (ended_.exchange(true)) return;
    // Wait (bounded) until both own their section, so A's is ours to leave.
    if (!Eventually([&] { return entered_.load() == 2; })) std::abort();
    LeaveCriticalSection(&cs_a_);
    a_.Join();
    b_.Join();
    DeleteCriticalSection(&cs_a_);
    DeleteCriticalSection(&cs_b_);
  }
  DWORD a() const { return a_.tid(); }
  DWORD b() const { return b_.tid(); }

 private:
  static CRITICAL_SECTION* Init(CRITICAL_SECTION* cs) {
    InitializeCriticalSection(cs);
    return cs;
  }
  void Run(const wchar_t* name, CRITICAL_SECTION* own, CRITICAL_SECTION* other, bool is_a) {
    SetThreadDescription(GetCurrentThread(), name);
    EnterCriticalSection(own);
    entered_.fetch_add(1);
    // Bounded: a partner that never takes its section fails the test.
    if (!Eventually([&] { return entered_.load() >= 2; })) std::abort();
    EnterCriticalSection(other);
    LeaveCriticalSection(other);
    if (!is_a) LeaveCriticalSection(own);  // A's own was left for it by End().
  }

  CRITICAL_SECTION cs_a_;
  CRITICAL_SECTION cs_b_;
  bool initialized_ = (Init(&cs_a_), Init(&cs_b_), true);
  std::atomic<int> entered_{0};
  std::atomic<bool> ended_{false};
  BoundedThread a_;
  BoundedThread b_;
};

// Tests that two threads each holding one critical section and entering the
// other's are reported as a deadlock, the chain naming both sections and both
// threads.
TEST(CriticalSectionDeadlockTest, CrossedSectionsAreReported) {
  DeadlockRecorder recorder;
  CrossedSections crossed;
  ASSERT_TRUE(Eventually([&] { return crossed.BothBlocked(); }));
  ASSERT_TRUE(Eventually([&] { return recorder.count() > 0; }));
  std::vector<DeadlockReport> reports = recorder.reports();
  ASSERT_GE(reports.size(), 1u);
  const DeadlockReport& report = reports[0];
  ASSERT_EQ(report.threads.size(), 2u);
  EXPECT_TRUE((report.threads[0] == crossed.a() && report.threads[1] == crossed.b()) ||
              (report.threads[0] == crossed.b() && report.threads[1] == crossed.a()));
  EXPECT_TRUE(report.chain.is_deadlock);
  EXPECT_THAT(report.text, ::testing::HasSubstr("'cs-a'"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("'cs-b'"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("(EnterCriticalSection)"));
  EXPECT_THAT(report.text, ::testing::HasSubstr("a deadlock cycle"));
  crossed.End();
}

}  // namespace
}  // namespace apartments::internal::testing
