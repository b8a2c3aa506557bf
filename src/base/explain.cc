#include "base/explain.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>

#include "base/thread_state.h"

namespace apartments::internal {

namespace {
std::atomic<const ExplanationHooks*> g_hooks{nullptr};
}  // namespace

std::string FormatDuration(Clock::Duration d) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  auto ms = duration_cast<milliseconds>(d).count();
  if (ms < 0) ms = 0;
  char buffer[32];
  if (ms < 1000) {
    std::snprintf(buffer, sizeof buffer, "%lld ms", static_cast<long long>(ms));
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f s", static_cast<double>(ms) / 1000.0);
  }
  return buffer;
}

std::string Ago(Clock::TimePoint when) { return FormatDuration(GetClock().Now() - when) + " ago"; }

std::string HandleText(HANDLE handle) {
  if (handle == nullptr) return "NULL";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "0x%" PRIxPTR, reinterpret_cast<std::uintptr_t>(handle));
  return buffer;
}

std::string ThreadLabel(DWORD tid, std::string_view name) {
  std::string out = "thread " + std::to_string(tid);
  if (!name.empty()) {
    out += " '";
    out += name;
    out += "'";
  }
  return out;
}

std::string ThreadNameOf(DWORD tid) {
  std::string name;
  ForEachThreadState([&](ThreadState& state) {
    if (name.empty() && state.tid.load(std::memory_order_relaxed) == tid) {
      name = state.DescriptionUtf8();
    }
  });
  return name;
}

std::string ThreadText(DWORD tid) { return ThreadLabel(tid, ThreadNameOf(tid)); }

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
          *out += buffer;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

void SetExplanationHooksForDiagnostics(const ExplanationHooks* hooks) noexcept {
  g_hooks.store(hooks, std::memory_order_release);
}

std::string WaitChainText(DWORD tid) {
  if (tid == 0) return std::string();
  const ExplanationHooks* hooks = g_hooks.load(std::memory_order_acquire);
  if (hooks == nullptr || hooks->wait_chain_text == nullptr) return std::string();
  return hooks->wait_chain_text(tid);
}

}  // namespace apartments::internal
