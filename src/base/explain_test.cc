// The explanation formatters and the diagnostics layer's hook (base/explain.h).
#include "base/explain.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "apartments/clock.h"

namespace apartments::internal {
namespace {

using std::chrono::milliseconds;

// Tests that durations read in milliseconds below a second and in tenths of a
// second from there on, and a negative one as 0 ms.
TEST(ExplainTest, FormatDurationUsesOneFormat) {
  EXPECT_EQ(FormatDuration(milliseconds(4)), "4 ms");
  EXPECT_EQ(FormatDuration(milliseconds(999)), "999 ms");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1.5 s");
  EXPECT_EQ(FormatDuration(milliseconds(-3)), "0 ms");
}

// Tests that a time in the past reads as the duration since it, on the
// library's clock, followed by "ago".
TEST(ExplainTest, AgoReadsTheLibraryClock) {
  FakeClock clock;
  ScopedClockForTesting installed(&clock);
  const Clock::TimePoint then = clock.Now();
  clock.Advance(milliseconds(2500));
  EXPECT_EQ(Ago(then), "2.5 s ago");
  EXPECT_EQ(Ago(clock.Now()), "0 ms ago");
}

// Tests that a handle reads as its hexadecimal value, and a null one as NULL.
TEST(ExplainTest, HandleTextIsHexOrNull) {
  EXPECT_EQ(HandleText(reinterpret_cast<HANDLE>(0x1c)), "0x1c");
  EXPECT_EQ(HandleText(nullptr), "NULL");
}

// Tests that a thread reads as its id, with its name quoted when it has one.
TEST(ExplainTest, ThreadLabelQuotesTheName) {
  EXPECT_EQ(ThreadLabel(12, "worker"), "thread 12 'worker'");
  EXPECT_EQ(ThreadLabel(12, ""), "thread 12");
}

// Tests that a thread the library does not know reads without a name.
TEST(ExplainTest, ThreadTextOfAnUnknownThreadHasNoName) {
  EXPECT_EQ(ThreadText(0x7fffffff), "thread 2147483647");
}

// Tests that JSON strings escape quotes, backslashes and control characters,
// and pass UTF-8 through.
TEST(ExplainTest, JsonStringEscapes) {
  EXPECT_EQ(JsonString("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(JsonString("1\n2\r3\t4"), R"("1\n2\r3\t4")");
  EXPECT_EQ(JsonString(std::string("\x01", 1)), R"("\u0001")");
  EXPECT_EQ(JsonString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

std::string FakeChain(DWORD tid) { return "chain of " + std::to_string(tid); }

// Tests that the wait chain comes from the installed hook, and is empty
// without one or for thread 0 (the MTA: no one thread).
TEST(ExplainTest, WaitChainTextAsksTheInstalledHook) {
  static constexpr ExplanationHooks kHooks{.wait_chain_text = &FakeChain};
  SetExplanationHooksForDiagnostics(nullptr);
  EXPECT_EQ(WaitChainText(7), "");
  SetExplanationHooksForDiagnostics(&kHooks);
  EXPECT_EQ(WaitChainText(7), "chain of 7");
  EXPECT_EQ(WaitChainText(0), "");
  SetExplanationHooksForDiagnostics(nullptr);
}

}  // namespace
}  // namespace apartments::internal
