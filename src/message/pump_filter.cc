// Filtered-pump descriptions (pump_filter.h).
#include "message/pump_filter.h"

#include <cinttypes>
#include <cstdio>

#include "base/thread_state.h"
#include "kernel/kernel.h"
#include "message/queue.h"

namespace apartments::internal {
namespace {

std::string Hex(std::uintptr_t value, int width) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "0x%0*" PRIxPTR, width, value);
  return buffer;
}

std::string WindowText(HWND hwnd) { return "window " + Hex(reinterpret_cast<std::uintptr_t>(hwnd), 0); }

}  // namespace

std::string DescribePumpFilter(DWORD tid, HWND window, UINT message, const char* window_role,
                               std::uint64_t waiting) {
  bool found = false;
  HWND filter_hwnd = nullptr;
  UINT min = 0;
  UINT max = 0;
  ForEachThreadState([&](ThreadState& state) {
    if (found || state.tid.load(std::memory_order_relaxed) != tid) return;
    found = true;
    filter_hwnd = state.activity.filter_hwnd.load(std::memory_order_relaxed);
    min = state.activity.filter_min.load(std::memory_order_relaxed);
    max = state.activity.filter_max.load(std::memory_order_relaxed);
  });
  if (!found) return std::string();
  const bool window_filter = filter_hwnd != nullptr;
  const bool range_filter = min != 0 || max != 0;
  if (!window_filter && !range_filter) return std::string();
  // Pumping: idle in a message call, or running (a PeekMessage loop); or
  // pumping only now and then, with this filter, between ordinary waits (the
  // filter stays published while it waits: its next pump uses it again).
  const BlockKind kind = ReadWaitRecord(tid).kind;
  const bool intermittent = kind == BlockKind::kKernelWait || kind == BlockKind::kSleep;
  if (kind != BlockKind::kMessageIdle && kind != BlockKind::kNone && !intermittent) {
    return std::string();
  }
  bool excludes = false;
  if (window_filter) {
    // (HWND)-1 takes thread messages only; another window excludes ours.
    excludes = window == nullptr || filter_hwnd != window;
  }
  if (range_filter && !excludes) {
    excludes = message == 0 || message < min || (max != 0 && message > max);
  }
  if (!excludes) return std::string();
  std::string filter;
  if (IsThreadMessageFilter(filter_hwnd)) {
    filter = "thread messages only";
  } else if (window_filter) {
    filter = WindowText(filter_hwnd);
  }
  if (range_filter) {
    if (!filter.empty()) filter += ", ";
    filter += "messages " + Hex(min, 4) + ".." + Hex(max, 4);
  }
  std::string out = "Thread " + std::to_string(tid) +
                    (intermittent ? " pumps only between other waits (it is in a wait that does "
                                    "not pump now), and then with a filter ("
                                  : " is pumping, but with a filter (") +
                    filter + ") that excludes ";
  if (window != nullptr) {
    out += std::string(window_role != nullptr ? window_role : "the window") + " " +
           Hex(reinterpret_cast<std::uintptr_t>(window), 0);
  } else {
    out += "the waiting messages";
  }
  out += "; " + std::to_string(waiting) + (waiting == 1 ? " message waits" : " messages wait") +
         " behind it.";
  return out;
}

}  // namespace apartments::internal
