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

// "QS_KEY | QS_MOUSEMOVE", or "0".
std::string WakeMaskText(std::uint32_t mask) {
  static constexpr struct {
    std::uint32_t bit;
    const char* name;
  } kBits[] = {{QS_KEY, "QS_KEY"},
               {QS_MOUSEMOVE, "QS_MOUSEMOVE"},
               {QS_MOUSEBUTTON, "QS_MOUSEBUTTON"},
               {QS_POSTMESSAGE, "QS_POSTMESSAGE"},
               {QS_TIMER, "QS_TIMER"},
               {QS_PAINT, "QS_PAINT"},
               {QS_SENDMESSAGE, "QS_SENDMESSAGE"},
               {QS_HOTKEY, "QS_HOTKEY"},
               {QS_ALLPOSTMESSAGE, "QS_ALLPOSTMESSAGE"},
               {QS_RAWINPUT, "QS_RAWINPUT"}};
  std::string out;
  for (const auto& b : kBits) {
    if ((mask & b.bit) == 0) continue;
    if (!out.empty()) out += " | ";
    out += b.name;
    mask &= ~b.bit;
  }
  if (mask != 0) out += (out.empty() ? "" : " | ") + Hex(mask, 0);
  return out.empty() ? "0" : out;
}

std::string DescribeWakeMask(DWORD tid, std::uint32_t mask, HWND window, const char* window_role,
                             std::uint64_t waiting) {
  std::string out = "Thread " + std::to_string(tid) +
                    " waits in MsgWaitForMultipleObjectsEx with a wake mask (" +
                    WakeMaskText(mask) +
                    ") that leaves out posted messages (QS_POSTMESSAGE), so what is posted to ";
  if (window != nullptr) {
    out += std::string(window_role != nullptr ? window_role : "the window") + " " +
           Hex(reinterpret_cast<std::uintptr_t>(window), 0);
  } else {
    out += "it";
  }
  out += " never wakes it; " + std::to_string(waiting) +
         (waiting == 1 ? " message waits" : " messages wait") + " behind it.";
  return out;
}

}  // namespace

std::string DescribePumpFilter(DWORD tid, HWND window, UINT message, const char* window_role,
                               std::uint64_t waiting) {
  bool found = false;
  HWND filter_hwnd = nullptr;
  UINT min = 0;
  UINT max = 0;
  std::uint32_t wake_mask = 0;
  ForEachThreadState([&](ThreadState& state) {
    if (found || state.tid.load(std::memory_order_relaxed) != tid) return;
    found = true;
    filter_hwnd = state.activity.filter_hwnd.load(std::memory_order_relaxed);
    min = state.activity.filter_min.load(std::memory_order_relaxed);
    max = state.activity.filter_max.load(std::memory_order_relaxed);
    wake_mask = state.activity.wake_mask.load(std::memory_order_relaxed);
  });
  if (!found) return std::string();
  // Asleep in MsgWaitForMultipleObjectsEx with a wake mask that posted
  // messages (the apartment's calls) do not match: they never wake it.
  if ((wake_mask & ThreadActivity::kWakeMaskPublished) != 0 &&
      (wake_mask & (QS_POSTMESSAGE | QS_ALLPOSTMESSAGE)) == 0 &&
      ReadWaitRecord(tid).kind == BlockKind::kMessageIdle) {
    return DescribeWakeMask(tid, wake_mask & ~ThreadActivity::kWakeMaskPublished, window,
                            window_role, waiting);
  }
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
