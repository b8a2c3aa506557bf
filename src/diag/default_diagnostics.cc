// Self-diagnosis on by default (apartments/diagnostics.h): the one owner of
// the process's default watchdog, its options and its report destination.
//
// Lazy start. StartDiagnosticsOnFirstUse() (base/lazy_diagnostics.h) is called
// by the message layer at each queue's creation and by CoInitializeEx. The
// first call reads the environment, starts the watchdog thread, turns
// deadlock detection on and (unless turned off) serves inspection; every
// later call is one acquire load. The owner object is created on that first
// call and never destroyed (the watchdog thread may still be reporting while
// static destructors run), so nothing here runs at static initialization.
//
// Fork. A child of fork() has no watchdog thread, so the owner forgets it
// started (pthread_atfork, installed with the first start): the child's first
// queue starts its own, with its own pid's socket. The parent's objects are
// abandoned in the child, not destroyed (their thread does not exist there).
#include "diag/default_diagnostics.h"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "apartments/diagnostics.h"
#include "base/explain.h"
#include "base/lazy_diagnostics.h"
#include "diag/inspect_server.h"

namespace apartments {
namespace internal {
namespace {

// One line on stderr, once per process for each distinct line: the
// environment is read again at each (re)start and by GetDiagnosticsOptions.
void Warn(const std::string& line) {
  static std::mutex mu;
  static std::set<std::string>* warned = new std::set<std::string>();
  {
    std::lock_guard lock(mu);
    if (!warned->insert(line).second) return;
  }
  const std::string text = "apartments: " + line + "\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

// A duration in milliseconds from the environment: a positive integer, at
// most a day. Invalid values keep `fallback` and say so once.
Clock::Duration DurationFromEnv(const char* name, Clock::Duration fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long ms = std::strtoll(value, &end, 10);
  if (value[0] == '\0' || *end != '\0' || errno != 0 || ms <= 0 || ms > 86'400'000) {
    Warn(std::string("ignoring ") + name + "='" + value +
         "' (expected milliseconds, 1 to 86400000); using " +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(fallback).count()) +
         " ms");
    return fallback;
  }
  return std::chrono::milliseconds(ms);
}

// Applies the environment over `options` (see diagnostics.h).
void ApplyEnvironment(DiagnosticsOptions& options) {
  if (const char* v = std::getenv("APARTMENTS_DIAGNOSTICS")) {
    const std::string s = v;
    if (s == "off") {
      options.mode = DiagnosticsMode::kOff;
    } else if (s == "report") {
      options.mode = DiagnosticsMode::kReport;
    } else if (s == "abort") {
      options.mode = DiagnosticsMode::kAbort;
    } else {
      Warn("ignoring APARTMENTS_DIAGNOSTICS='" + s +
           "' (expected off, report or abort); using report");
      options.mode = DiagnosticsMode::kReport;
    }
  }
  options.hang_threshold = DurationFromEnv("APARTMENTS_HANG_THRESHOLD_MS", options.hang_threshold);
  options.call_threshold = DurationFromEnv("APARTMENTS_CALL_THRESHOLD_MS", options.call_threshold);
  options.cycle_threshold =
      DurationFromEnv("APARTMENTS_CYCLE_THRESHOLD_MS", options.cycle_threshold);
  if (const char* v = std::getenv("APARTMENTS_DIAGNOSTICS_FORMAT")) {
    const std::string s = v;
    if (s == "text") {
      options.format = ReportFormat::kText;
    } else if (s == "json") {
      options.format = ReportFormat::kJson;
    } else {
      Warn("ignoring APARTMENTS_DIAGNOSTICS_FORMAT='" + s + "' (expected text or json); using text");
      options.format = ReportFormat::kText;
    }
  }
  if (const char* v = std::getenv("APARTMENTS_DIAGNOSTICS_OUTPUT")) {
    const std::string s = v;
    if (s == "stderr") {
      options.report_file.clear();
      options.reports_to_inspection_only = false;
    } else if (s == "socket") {
      options.report_file.clear();
      options.reports_to_inspection_only = true;
    } else if (!s.empty() && s[0] == '/') {
      options.report_file = s;
      options.reports_to_inspection_only = false;
    } else {
      Warn("ignoring APARTMENTS_DIAGNOSTICS_OUTPUT='" + s +
           "' (expected stderr, socket or an absolute file path); using stderr");
      options.report_file.clear();
      options.reports_to_inspection_only = false;
    }
  }
  if (const char* v = std::getenv("APARTMENTS_INSPECT")) {
    const std::string s = v;
    if (s == "1") {
      options.serve_inspection = true;
    } else if (s == "0") {
      options.serve_inspection = false;
    } else {
      Warn("ignoring APARTMENTS_INSPECT='" + s + "' (expected 1 or 0); using 1");
      options.serve_inspection = true;
    }
  }
}

// Where reports go. Its lock is a leaf: nothing is called while it is held
// but stdio.
class ReportSink {
 public:
  void Configure(const DiagnosticsOptions& options) {
    std::lock_guard lock(mu_);
    if (file_ != nullptr) {
      std::fclose(file_);
      file_ = nullptr;
    }
    format_ = options.format;
    inspection_only_ = options.reports_to_inspection_only;
    if (!options.report_file.empty()) {
      file_ = std::fopen(options.report_file.c_str(), "ae");
      if (file_ == nullptr) {
        Warn("cannot open the report file " + options.report_file + ": " +
             std::strerror(errno) + "; reporting to stderr");
      }
    }
  }

  void Emit(const char* kind, const std::string& text, const std::string& json_fields) {
    std::lock_guard lock(mu_);
    recent_.push_back(text);
    if (recent_.size() > kKeptReports) recent_.pop_front();
    if (inspection_only_) return;
    std::string out;
    if (format_ == ReportFormat::kJson) {
      out = "{\"report\":" + JsonString(kind) +
            (json_fields.empty() ? std::string() : "," + json_fields) +
            ",\"text\":" + JsonString(text) + "}\n";
    } else {
      out = text;
      if (out.empty() || out.back() != '\n') out += "\n";
    }
    FILE* to = file_ != nullptr ? file_ : stderr;
    std::fputs(out.c_str(), to);
    std::fflush(to);
  }

  std::vector<std::string> Recent() {
    std::lock_guard lock(mu_);
    return {recent_.begin(), recent_.end()};
  }

 private:
  std::mutex mu_;
  ReportFormat format_ = ReportFormat::kText;  // Guarded by mu_.
  bool inspection_only_ = false;               // Guarded by mu_.
  FILE* file_ = nullptr;                       // Guarded by mu_.
  std::deque<std::string> recent_;             // Guarded by mu_.
};

// The process's default diagnostics. Created by the first start, never
// destroyed (see the file comment).
class DefaultDiagnostics {
 public:
  // Starts once. Concurrent first callers serialize on mu_.
  void Start() {
    std::lock_guard lock(mu_);
    if (started_.load(std::memory_order_relaxed)) return;
    StartLocked();
    started_.store(true, std::memory_order_release);
  }

  bool started() const { return started_.load(std::memory_order_acquire); }

  void SetProgramOptions(const DiagnosticsOptions& options) {
    std::lock_guard lock(mu_);
    program_ = options;
    if (!started_.load(std::memory_order_relaxed)) {
      // Reports made before the start (deadlock detection the program turned
      // on itself, say) already go where the options say.
      DiagnosticsOptions effective = program_;
      ApplyEnvironment(effective);
      sink_.Configure(effective);
      return;
    }
    StopLocked();
    StartLocked();
  }

  DiagnosticsOptions Effective() {
    std::lock_guard lock(mu_);
    DiagnosticsOptions options = program_;
    ApplyEnvironment(options);
    return options;
  }

  ReportSink& sink() { return sink_; }

  void ForgetAfterFork() {
    // Only the forking thread exists in the child, and mu_ was not held by
    // it across fork() (the prepare handler takes it): reset in place. The
    // watchdog object is leaked on purpose: its thread is not in this process.
    static_cast<void>(watchdog_.release());
    socket_path_.clear();  // The parent's.
    started_.store(false, std::memory_order_relaxed);
  }

  std::mutex& mu() { return mu_; }

 private:
  void StartLocked() {
    DiagnosticsOptions options = program_;
    ApplyEnvironment(options);
    sink_.Configure(options);
    SetDeadlockMode(options.mode == DiagnosticsMode::kOff     ? DeadlockMode::kIgnore
                    : options.mode == DiagnosticsMode::kAbort ? DeadlockMode::kAbort
                                                              : DeadlockMode::kReport);
    if (options.mode == DiagnosticsMode::kOff) return;
    HangWatchdogOptions w;
    w.threshold = options.hang_threshold;
    w.call_threshold = options.call_threshold;
    w.cycle_threshold = options.cycle_threshold;
    // Reports go to the sink, whatever the format.
    w.callback = [](const HangReport& report) { EmitHangReport(report); };
    w.serve_inspection = options.serve_inspection;
    watchdog_ = std::make_unique<HangWatchdog>(std::move(w));
    watchdog_->Start();
    // The watchdog runs until the process ends (it is never stopped at
    // exit: other threads may still be stuck and worth reporting), but its
    // socket file goes with the process, as a stopped watchdog's does.
    socket_path_ = watchdog_->inspection_socket_path();
    struct stat st;
    socket_inode_ = !socket_path_.empty() && stat(socket_path_.c_str(), &st) == 0 ? st.st_ino : 0;
    static std::once_flag at_exit_once;
    std::call_once(at_exit_once, [] { std::atexit(&RemoveSocketAtExit); });
  }

  static void RemoveSocketAtExit() {
    DefaultDiagnostics* self = g_defaults_raw;
    std::lock_guard lock(self->mu_);
    struct stat st;
    if (!self->socket_path_.empty() && stat(self->socket_path_.c_str(), &st) == 0 &&
        st.st_ino == self->socket_inode_) {
      unlink(self->socket_path_.c_str());
    }
    self->socket_path_.clear();
  }

  void StopLocked() {
    socket_path_.clear();  // The watchdog's Stop() removes it.
    if (watchdog_ != nullptr) {
      watchdog_->Stop();
      watchdog_.reset();
    }
    SetDeadlockMode(DeadlockMode::kIgnore);
  }

  static void EmitHangReport(const HangReport& report);

  std::mutex mu_;
  std::atomic<bool> started_{false};
  DiagnosticsOptions program_;              // Guarded by mu_.
  std::unique_ptr<HangWatchdog> watchdog_;  // Guarded by mu_.
  std::string socket_path_;                 // Guarded by mu_: served, or "".
  ino_t socket_inode_ = 0;                  // Guarded by mu_.
  ReportSink sink_;
  static DefaultDiagnostics* g_defaults_raw;  // For the atexit handler.
  friend DefaultDiagnostics& Defaults();
};

DefaultDiagnostics* DefaultDiagnostics::g_defaults_raw = nullptr;

// Set once under g_defaults_once; read without it by the fast path.
std::atomic<DefaultDiagnostics*> g_defaults{nullptr};
std::once_flag g_defaults_once;

DefaultDiagnostics& Defaults() {
  std::call_once(g_defaults_once, [] {
    DefaultDiagnostics::g_defaults_raw = new DefaultDiagnostics();
    g_defaults.store(DefaultDiagnostics::g_defaults_raw, std::memory_order_release);
    // The child of a fork has no watchdog thread: forget it, so its first
    // queue starts one. prepare/parent hold the owner's lock across fork()
    // so the child never inherits it locked.
    pthread_atfork([] { g_defaults.load()->mu().lock(); },
                   [] { g_defaults.load()->mu().unlock(); },
                   [] {
                     g_defaults.load()->mu().unlock();
                     g_defaults.load()->ForgetAfterFork();
                     ForgetServingAfterFork();
                   });
  });
  return *g_defaults.load(std::memory_order_acquire);
}

const char* HangEventName(HangEvent event) {
  switch (event) {
    case HangEvent::kHung: return "hung";
    case HangEvent::kPermanent: return "permanent";
    case HangEvent::kResolved: return "resolved";
    case HangEvent::kCallOverrun: return "call_overrun";
    case HangEvent::kCallResolved: return "call_resolved";
  }
  return "?";
}

void DefaultDiagnostics::EmitHangReport(const HangReport& report) {
  std::string fields = "\"event\":" + JsonString(HangEventName(report.event)) +
                       ",\"tid\":" + std::to_string(report.tid) +
                       ",\"thread_name\":" + JsonString(report.thread_name) +
                       ",\"apartment\":" + JsonString(report.apartment) +
                       ",\"duration_ms\":" +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          report.duration)
                                          .count()) +
                       ",\"queue_depth\":" + std::to_string(report.queue_depth) +
                       ",\"sent_pending\":" + std::to_string(report.sent_pending) +
                       ",\"call\":" + JsonString(report.call) +
                       ",\"filter\":" + JsonString(report.filter);
  if (report.event != HangEvent::kResolved && report.event != HangEvent::kCallResolved) {
    fields += ",\"chain\":" + ToJson(report.chain);
  }
  EmitReport("hang", report.text, fields);
}

}  // namespace

void EmitReport(const char* kind, const std::string& text, const std::string& json_fields) {
  Defaults().sink().Emit(kind, text, json_fields);
}

std::vector<std::string> RecentReports() {
  DefaultDiagnostics* defaults = g_defaults.load(std::memory_order_acquire);
  return defaults != nullptr ? defaults->sink().Recent() : std::vector<std::string>();
}

bool DefaultDiagnosticsStartedForTesting() {
  DefaultDiagnostics* defaults = g_defaults.load(std::memory_order_acquire);
  return defaults != nullptr && defaults->started();
}

namespace {
// What lower layers' explanations ask diag for (base/explain.h).
std::string WaitChainTextForExplanations(DWORD tid) { return FormatWaitChain(GetWaitChain(tid)); }
constexpr ExplanationHooks kExplanationHooks{.wait_chain_text = &WaitChainTextForExplanations};
}  // namespace

// The hook lower layers call (base/lazy_diagnostics.h).
void StartDiagnosticsOnFirstUse() noexcept {
  // The fast path: two acquire loads once started.
  DefaultDiagnostics* defaults = g_defaults.load(std::memory_order_acquire);
  if (defaults != nullptr && defaults->started()) return;
  // Before anything else (and whatever the mode): explanations are not
  // diagnostics one can turn off.
  SetExplanationHooksForDiagnostics(&kExplanationHooks);
  Defaults().Start();
}

}  // namespace internal

DiagnosticsOptions GetDiagnosticsOptions() { return internal::Defaults().Effective(); }

void SetDiagnosticsOptions(const DiagnosticsOptions& options) {
  internal::Defaults().SetProgramOptions(options);
}

}  // namespace apartments
