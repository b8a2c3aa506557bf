// Tests of CaptureThreadStack: stacks of threads blocked in the library's
// waits, and those waits completing correctly after being interrupted.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "apartments/diagnostics.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "kernel/kernel.h"
#include "message/test_util.h"

namespace apartments::internal::testing {

// Outside the anonymous namespace and never inlined, so that their names are
// in the symbol table and in the captured frames.
__attribute__((noinline)) DWORD StackTestInfiniteWait(HANDLE event) {
  DWORD result = WaitForSingleObject(event, INFINITE);
  asm volatile("" ::: "memory");  // No tail call: keep this frame.
  return result;
}

__attribute__((noinline)) DWORD StackTestTimedWait(HANDLE event, DWORD ms) {
  DWORD result = WaitForSingleObject(event, ms);
  asm volatile("" ::: "memory");
  return result;
}

__attribute__((noinline)) BOOL StackTestGetMessage(MSG* msg) {
  BOOL result = GetMessageW(msg, nullptr, 0, 0);
  asm volatile("" ::: "memory");
  return result;
}

namespace {

using std::chrono::milliseconds;

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer defers signals to a thread blocked in a raw system call
// until it returns: a capture may then be unavailable (but must not hang).
constexpr bool kCaptureMayBeUnavailable = true;
#else
constexpr bool kCaptureMayBeUnavailable = false;
#endif

bool HasFunction(const ThreadStack& stack, const std::string& name) {
  for (const StackFrame& frame : stack.frames) {
    if (frame.function.find(name) != std::string::npos) return true;
  }
  return false;
}

std::string Basename(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Checks that the frame of `function` shows its function and module without
// file:line, and the stack's note names that module as built without debug
// information.
void ExpectNoteExplainsMissingLines(const ThreadStack& stack, const std::string& function) {
  const std::string text = FormatStack(stack);
  for (const StackFrame& f : stack.frames) {
    if (f.function.find(function) == std::string::npos) continue;
    EXPECT_TRUE(f.file.empty()) << text;
    ASSERT_FALSE(f.module.empty()) << text;
    EXPECT_NE(stack.note.find("without debug information"), std::string::npos) << text;
    EXPECT_NE(stack.note.find(Basename(f.module)), std::string::npos) << text;
    return;
  }
  ADD_FAILURE() << function << " not in the stack:\n" << text;
}

// Captures thread `tid`, checks the result, and returns whether it succeeded.
bool CaptureAndCheck(DWORD tid, const std::string& expected_function) {
  const auto start = std::chrono::steady_clock::now();
  std::optional<ThreadStack> stack = CaptureThreadStack(tid, milliseconds(500));
  // Bounded: the timeout plus symbolization, never a hang.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  if (!stack) {
    EXPECT_TRUE(kCaptureMayBeUnavailable) << "capture of thread " << tid << " unavailable";
    return false;
  }
  EXPECT_EQ(stack->tid, tid);
  EXPECT_FALSE(stack->frames.empty());
  EXPECT_TRUE(HasFunction(*stack, expected_function)) << FormatStack(*stack);
  if (::testing::Test::HasFailure() || std::getenv("STACK_TEST_PRINT") != nullptr) {
    std::fputs(FormatStack(*stack).c_str(), stderr);
  }
  // The capture machinery is not part of the stack.
  EXPECT_FALSE(HasFunction(*stack, "CaptureSignalHandler")) << FormatStack(*stack);
  return true;
}

// Tests the caller's own stack: taken directly, the test's own frame in it.
TEST(StackTest, CapturesOwnStack) {
  std::optional<ThreadStack> stack = CaptureThreadStack(GetCurrentThreadId());
  ASSERT_TRUE(stack.has_value());
  EXPECT_TRUE(HasFunction(*stack, "StackTest_CapturesOwnStack")) << FormatStack(*stack);
  EXPECT_FALSE(HasFunction(*stack, "CaptureThreadStack")) << FormatStack(*stack);
  const std::string text = FormatStack(*stack);
  EXPECT_NE(text.find("#0"), std::string::npos) << text;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Builds with DWARF line info (-g: the presets, RelWithDebInfo, Debug)
  // resolve file:line; a plain Release build has none, and the note says so.
  bool has_line = false;
  for (const StackFrame& f : stack->frames) {
    if (f.file.find("stack_test.cc") != std::string::npos && f.line > 0) has_line = true;
  }
  if (!has_line) ExpectNoteExplainsMissingLines(*stack, "StackTest_CapturesOwnStack");
#endif
}

// Tests that a stack captured in a build without debug information (a plain
// -DCMAKE_BUILD_TYPE=Release build: this test failed there, expecting file
// and line numbers) keeps function and module names, and its note says why
// the lines are missing; with debug information there is no such note for
// this binary.
TEST(StackTest, WithoutDebugInfoDegradesToFunctionAndModuleSayingWhy) {
  std::optional<ThreadStack> stack = CaptureThreadStack(GetCurrentThreadId());
  ASSERT_TRUE(stack.has_value());
  const std::string text = FormatStack(*stack);
  const StackFrame* own = nullptr;
  for (const StackFrame& f : stack->frames) {
    if (f.function.find("WithoutDebugInfoDegrades") != std::string::npos) own = &f;
  }
  ASSERT_NE(own, nullptr) << text;
  EXPECT_FALSE(own->module.empty()) << text;
  if (own->line > 0) {
    EXPECT_EQ(stack->note.find(Basename(own->module)), std::string::npos) << text;
  } else {
    ExpectNoteExplainsMissingLines(*stack, "WithoutDebugInfoDegrades");
    EXPECT_NE(text.find(stack->note), std::string::npos) << text;
  }
}

// Tests that a thread blocked in WaitForSingleObject(INFINITE) shows its
// caller's frame, and that the wait, interrupted by the captures, still ends
// only when the event is set, with WAIT_OBJECT_0.
TEST(StackTest, InfiniteWaitSurvivesCapture) {
  TestEvent event;
  std::atomic<DWORD> result{0xdead};
  BoundedThread waiter([&] { result = StackTestInfiniteWait(event.get()); });
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(waiter.tid()).kind == BlockKind::kKernelWait; }));
  for (int i = 0; i < 5; ++i) CaptureAndCheck(waiter.tid(), "StackTestInfiniteWait");
  // Still blocked: the interruptions were not taken as the wait's end.
  EXPECT_EQ(ReadWaitRecord(waiter.tid()).kind, BlockKind::kKernelWait);
  EXPECT_EQ(result.load(), 0xdeadu);
  event.Set();
  waiter.Join();
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);
}

// Tests that a timed wait interrupted by captures neither ends early nor
// reports a timeout for a wait that was satisfied, and that a timed wait
// that does time out still lasts its full timeout.
TEST(StackTest, TimedWaitSurvivesCapture) {
  TestEvent event;
  std::atomic<DWORD> result{0xdead};
  BoundedThread waiter([&] { result = StackTestTimedWait(event.get(), kBoundMs); });
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(waiter.tid()).kind == BlockKind::kKernelWait; }));
  for (int i = 0; i < 5; ++i) CaptureAndCheck(waiter.tid(), "StackTestTimedWait");
  EXPECT_EQ(result.load(), 0xdeadu);
  event.Set();
  waiter.Join();
  EXPECT_EQ(result.load(), WAIT_OBJECT_0);

  TestEvent never;
  std::atomic<DWORD> timed_out{0xdead};
  std::atomic<long long> elapsed_ms{0};
  BoundedThread sleeper([&] {
    const auto start = std::chrono::steady_clock::now();
    timed_out = StackTestTimedWait(never.get(), 1500);
    elapsed_ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start)
                     .count();
  });
  ASSERT_TRUE(Eventually([&] { return ReadWaitRecord(sleeper.tid()).kind == BlockKind::kKernelWait; }));
  CaptureAndCheck(sleeper.tid(), "StackTestTimedWait");
  sleeper.Join();
  EXPECT_EQ(timed_out.load(), static_cast<DWORD>(WAIT_TIMEOUT));
  EXPECT_GE(elapsed_ms.load(), 1499);
}

// Tests a thread blocked in GetMessageW: captured, and it still receives the
// message posted afterwards.
TEST(StackTest, GetMessageSurvivesCapture) {
  std::atomic<UINT> received{0};
  std::atomic<BOOL> rc{-2};
  BoundedThread pumper([&] {
    MSG msg{};
    rc = StackTestGetMessage(&msg);
    received = msg.message;
  });
  ASSERT_TRUE(
      Eventually([&] { return ReadWaitRecord(pumper.tid()).kind == BlockKind::kMessageIdle; }));
  for (int i = 0; i < 3; ++i) CaptureAndCheck(pumper.tid(), "StackTestGetMessage");
  EXPECT_EQ(received.load(), 0u);
  ASSERT_TRUE(PostThreadMessageW(pumper.tid(), WM_APP + 7, 0, 0));
  pumper.Join();
  EXPECT_EQ(rc.load(), TRUE);
  EXPECT_EQ(received.load(), static_cast<UINT>(WM_APP + 7));
}

// Tests that a thread with every signal blocked is reported unavailable at
// once (not after the timeout), and a thread that has exited too.
TEST(StackTest, UnavailableWhenBlockedOrGone) {
  TestEvent release;
  TestEvent blocked;
  BoundedThread masked([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    blocked.Set();
    (void)release.Wait();
  });
  ASSERT_TRUE(blocked.Wait());
  // Install the handler first (a capture of ourselves does not need it).
  (void)CaptureThreadStack(masked.tid(), milliseconds(1));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(CaptureThreadStack(masked.tid(), std::chrono::seconds(5)).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  release.Set();
  const DWORD gone = masked.tid();
  masked.Join();
  EXPECT_FALSE(CaptureThreadStack(gone, milliseconds(200)).has_value());
  EXPECT_FALSE(CaptureThreadStack(0).has_value());
}

}  // namespace
}  // namespace apartments::internal::testing
