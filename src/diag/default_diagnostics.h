// The process's default diagnostics (apartments/diagnostics.h, "Self-
// diagnosis on by default"): their owner, and the one report destination
// every report without a callback of its own goes to.
#ifndef APARTMENTS_SRC_DIAG_DEFAULT_DIAGNOSTICS_H_
#define APARTMENTS_SRC_DIAG_DEFAULT_DIAGNOSTICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "apartments/diagnostics.h"

namespace apartments::internal {

// Writes one report to the destination DiagnosticsOptions choose (stderr or
// a file, text or JSON) and keeps it for inspection. `kind` is the JSON
// "report" value ("hang", "deadlock"); `json_fields` the object's other
// members, ready to follow a comma ("" when none). Any thread; takes only
// the sink's own lock (never a library lock), so report callbacks of the
// kernel's block hook may call it.
void EmitReport(const char* kind, const std::string& text, const std::string& json_fields);

// The most recent reports' text, oldest first (at most kKeptReports).
inline constexpr std::size_t kKeptReports = 16;
std::vector<std::string> RecentReports();

// Whether the default diagnostics have started in this process.
bool DefaultDiagnosticsStartedForTesting();
// How many polls started watchdog threads have begun (before reading the
// clock) and finished (after reporting); tests pace a FakeClock by them.
struct WatchdogPollCounts {
  std::uint64_t started = 0;
  std::uint64_t finished = 0;
};
WatchdogPollCounts DefaultWatchdogPollCountsForTesting();

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_DIAG_DEFAULT_DIAGNOSTICS_H_
