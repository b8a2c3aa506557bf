// The configuration of the default diagnostics (apartments/diagnostics.h,
// "Self-diagnosis on by default"): the environment's values, invalid ones,
// and the report destination's formats. The reports themselves, in the
// default configuration, are tested in tests/diagnostics/.
#include "diag/default_diagnostics.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apartments/diagnostics.h"

namespace apartments::internal {
namespace {

using std::chrono::milliseconds;

constexpr const char* kVariables[] = {
    "APARTMENTS_DIAGNOSTICS",        "APARTMENTS_HANG_THRESHOLD_MS",
    "APARTMENTS_CALL_THRESHOLD_MS",  "APARTMENTS_CYCLE_THRESHOLD_MS",
    "APARTMENTS_DIAGNOSTICS_FORMAT", "APARTMENTS_DIAGNOSTICS_OUTPUT",
    "APARTMENTS_INSPECT"};

class DefaultDiagnosticsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kVariables) unsetenv(name);
  }
  void TearDown() override {
    for (const char* name : kVariables) unsetenv(name);
  }
};

// Tests that with no environment the options are the documented defaults:
// report, 5 s thresholds, text to stderr, inspection served.
TEST_F(DefaultDiagnosticsConfigTest, DefaultsWithoutEnvironment) {
  const DiagnosticsOptions options = GetDiagnosticsOptions();
  EXPECT_EQ(options.mode, DiagnosticsMode::kReport);
  EXPECT_EQ(options.hang_threshold, std::chrono::seconds(5));
  EXPECT_EQ(options.call_threshold, std::chrono::seconds(5));
  EXPECT_EQ(options.cycle_threshold, std::chrono::seconds(5));
  EXPECT_EQ(options.format, ReportFormat::kText);
  EXPECT_EQ(options.report_file, "");
  EXPECT_FALSE(options.reports_to_inspection_only);
  EXPECT_TRUE(options.serve_inspection);
}

// Tests that each variable's valid values are taken.
TEST_F(DefaultDiagnosticsConfigTest, EnvironmentValuesAreTaken) {
  setenv("APARTMENTS_DIAGNOSTICS", "abort", 1);
  setenv("APARTMENTS_HANG_THRESHOLD_MS", "250", 1);
  setenv("APARTMENTS_CALL_THRESHOLD_MS", "1000", 1);
  setenv("APARTMENTS_CYCLE_THRESHOLD_MS", "30000", 1);
  setenv("APARTMENTS_DIAGNOSTICS_FORMAT", "json", 1);
  setenv("APARTMENTS_DIAGNOSTICS_OUTPUT", "/tmp/reports.jsonl", 1);
  setenv("APARTMENTS_INSPECT", "0", 1);
  DiagnosticsOptions options = GetDiagnosticsOptions();
  EXPECT_EQ(options.mode, DiagnosticsMode::kAbort);
  EXPECT_EQ(options.hang_threshold, milliseconds(250));
  EXPECT_EQ(options.call_threshold, milliseconds(1000));
  EXPECT_EQ(options.cycle_threshold, milliseconds(30000));
  EXPECT_EQ(options.format, ReportFormat::kJson);
  EXPECT_EQ(options.report_file, "/tmp/reports.jsonl");
  EXPECT_FALSE(options.serve_inspection);
  setenv("APARTMENTS_DIAGNOSTICS", "off", 1);
  setenv("APARTMENTS_DIAGNOSTICS_OUTPUT", "socket", 1);
  options = GetDiagnosticsOptions();
  EXPECT_EQ(options.mode, DiagnosticsMode::kOff);
  EXPECT_TRUE(options.reports_to_inspection_only);
  EXPECT_EQ(options.report_file, "");
}

// Tests that an invalid value gets one clear line on stderr (once, however
// often the environment is read) and the default, never a crash.
TEST_F(DefaultDiagnosticsConfigTest, InvalidValuesWarnOnceAndUseDefaults) {
  setenv("APARTMENTS_DIAGNOSTICS", "loud", 1);
  setenv("APARTMENTS_HANG_THRESHOLD_MS", "-3", 1);
  setenv("APARTMENTS_CALL_THRESHOLD_MS", "5s", 1);
  setenv("APARTMENTS_DIAGNOSTICS_FORMAT", "xml", 1);
  setenv("APARTMENTS_DIAGNOSTICS_OUTPUT", "relative/file", 1);
  setenv("APARTMENTS_INSPECT", "yes", 1);
  ::testing::internal::CaptureStderr();
  DiagnosticsOptions options = GetDiagnosticsOptions();
  options = GetDiagnosticsOptions();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(options.mode, DiagnosticsMode::kReport);
  EXPECT_EQ(options.hang_threshold, std::chrono::seconds(5));
  EXPECT_EQ(options.call_threshold, std::chrono::seconds(5));
  EXPECT_EQ(options.format, ReportFormat::kText);
  EXPECT_EQ(options.report_file, "");
  EXPECT_TRUE(options.serve_inspection);
  EXPECT_THAT(
      err, ::testing::HasSubstr("apartments: ignoring APARTMENTS_DIAGNOSTICS='loud' (expected off, "
                                "report or abort); using report\n"))
      << err;
  EXPECT_THAT(
      err, ::testing::HasSubstr("apartments: ignoring APARTMENTS_HANG_THRESHOLD_MS='-3' (expected "
                                "milliseconds, 1 to 86400000); using 5000 ms\n"))
      << err;
  EXPECT_THAT(err, ::testing::HasSubstr("ignoring APARTMENTS_CALL_THRESHOLD_MS='5s'"));
  EXPECT_THAT(err, ::testing::HasSubstr("ignoring APARTMENTS_DIAGNOSTICS_FORMAT='xml'"));
  EXPECT_THAT(err, ::testing::HasSubstr("ignoring APARTMENTS_DIAGNOSTICS_OUTPUT='relative/file'"));
  EXPECT_THAT(err, ::testing::HasSubstr("ignoring APARTMENTS_INSPECT='yes'"));
  // Six variables, one line each, though read twice.
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 6) << err;
}

// Tests that reports go to a file when asked, as one JSON object per line
// with the report's kind, fields and text, and are kept for inspection.
TEST_F(DefaultDiagnosticsConfigTest, JsonReportsToFile) {
  char path[] = "/tmp/diag-reports-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  const DiagnosticsOptions saved = GetDiagnosticsOptions();
  DiagnosticsOptions options = saved;
  options.format = ReportFormat::kJson;
  options.report_file = path;
  SetDiagnosticsOptions(options);
  EmitReport("hang", "Thread 7 \"x\" is not responding.\n", "\"tid\":7");
  SetDiagnosticsOptions(saved);
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(),
            "{\"report\":\"hang\",\"tid\":7,\"text\":\"Thread 7 \\\"x\\\" is not "
            "responding.\\n\"}\n");
  const std::vector<std::string> recent = RecentReports();
  ASSERT_FALSE(recent.empty());
  EXPECT_EQ(recent.back(), "Thread 7 \"x\" is not responding.\n");
  unlink(path);
}

}  // namespace
}  // namespace apartments::internal
