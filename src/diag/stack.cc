// Stack capture from outside a thread (apartments/diagnostics.h).
//
// Protocol. One capture at a time (g_requesters serializes requesters). The
// requester publishes the target tid, moves the shared slot to kRequested and
// sends the target the capture signal with tgkill. The target's handler
// claims the slot (kRequested -> kCapturing, by CAS, only when the target tid
// is its own), unwinds into the slot's preallocated buffer, then publishes
// kDone and wakes the requester's futex. The requester waits with a deadline;
// at the deadline it withdraws the request (kRequested -> kIdle by CAS), so a
// late signal (a thread that had it blocked, or ThreadSanitizer delivering it
// after the thread's system call returns) finds nothing to do and returns.
// If the handler has already claimed the slot, the requester waits for it a
// bounded extra time (an unwind takes microseconds); if even that passes, the
// slot is abandoned for good and later captures report "unavailable" rather
// than share a buffer a handler may still write.
//
// Unwinder: glibc's backtrace(). It is not formally async-signal-safe only
// because its first call dlopens libgcc_s; we call it once when installing the
// handler, after which it is a pure walk of the .eh_frame tables (libgcc's
// _Unwind_Backtrace, which on glibc 2.35+ finds the tables with the lock-free
// _dl_find_object) that allocates nothing. It unwinds through the signal
// frame (libgcc recognizes the sigreturn trampoline), which frame-pointer
// walking could not do for code built without frame pointers. Calling
// _Unwind_Backtrace directly would be the same walk with more code.
//
// The signal. A real-time signal that no one handles yet (scanned from
// SIGRTMAX down; SIGRTMIN's low numbers are the ones libraries usually take),
// installed with SA_SIGINFO | SA_RESTART so that interrupted restartable
// system calls resume by themselves. We never replace a handler someone else
// installed; should one still be found in place when we install (a race with
// another installer), the handler forwards every signal that is not a capture
// request to it.
#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <execinfo.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>

#include "apartments/diagnostics.h"
#include "base/thread_state.h"
#include "kernel/futex.h"

namespace apartments {
namespace {

constexpr int kMaxFrames = 96;

enum SlotState : std::uint32_t { kIdle = 0, kRequested = 1, kCapturing = 2, kDone = 3 };

// The one capture slot: static storage, so the handler allocates nothing.
struct Slot {
  std::atomic<std::uint32_t> state{kIdle};  // Also the requester's futex word.
  std::atomic<pid_t> target{0};
  int count = 0;  // Written by the handler before kDone.
  void* frames[kMaxFrames];
};

Slot g_slot;
std::atomic<int> g_signal{0};  // 0: not installed (or none available: -1).
struct sigaction g_previous;   // Written before the handler is installed.
std::atomic<bool> g_abandoned{false};
std::atomic<int> g_handlers_running{0};  // Handlers entered and not yet left.
std::mutex g_install_mu;
std::mutex g_requesters;

pid_t SysGettid() noexcept { return static_cast<pid_t>(::syscall(SYS_gettid)); }

void CaptureSignalHandler(int signal, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  g_handlers_running.fetch_add(1, std::memory_order_relaxed);
  std::uint32_t expected = kRequested;
  if (g_slot.target.load(std::memory_order_acquire) == SysGettid() &&
      g_slot.state.compare_exchange_strong(expected, kCapturing, std::memory_order_acq_rel)) {
    g_slot.count = ::backtrace(g_slot.frames, kMaxFrames);
    g_slot.state.store(kDone, std::memory_order_release);
    internal::FutexWake(&g_slot.state, 1);
  } else if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(signal, info, context);
  } else if ((g_previous.sa_flags & SA_SIGINFO) == 0 && g_previous.sa_handler != SIG_DFL &&
             g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(signal);
  }
  g_handlers_running.fetch_sub(1, std::memory_order_release);
  errno = saved_errno;
}

// The capture signal, installing the handler on first use; 0 when none is free.
int CaptureSignal() {
  int signal = g_signal.load(std::memory_order_acquire);
  if (signal != 0) return signal > 0 ? signal : 0;
  std::lock_guard lock(g_install_mu);
  signal = g_signal.load(std::memory_order_relaxed);
  if (signal != 0) return signal > 0 ? signal : 0;
  void* warm_up[4];
  ::backtrace(warm_up, 4);  // Loads libgcc_s now, outside any handler.
  int chosen = -1;
  for (int s = SIGRTMAX; s >= SIGRTMIN; --s) {
    struct sigaction current;
    if (::sigaction(s, nullptr, &current) != 0) continue;
    const bool free = (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL;
    if (!free) continue;
    g_previous = current;
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_sigaction = &CaptureSignalHandler;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (::sigaction(s, &action, nullptr) == 0) {
      chosen = s;
      break;
    }
  }
  g_signal.store(chosen, std::memory_order_release);
  return chosen > 0 ? chosen : 0;
}

// Whether thread `tid` blocks `signal` now (from /proc; false when unknown).
bool SignalBlocked(pid_t tid, int signal) {
  std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigBlk:", 0) != 0) continue;
    const unsigned long long mask = std::strtoull(line.c_str() + 7, nullptr, 16);
    return ((mask >> (signal - 1)) & 1) != 0;
  }
  return false;
}

// Raw return addresses of thread `tid`, or false.
bool CaptureRaw(pid_t tid, std::chrono::milliseconds timeout, std::vector<std::uintptr_t>* out) {
  std::lock_guard lock(g_requesters);
  if (tid == SysGettid()) {
    void* frames[kMaxFrames];
    const int n = ::backtrace(frames, kMaxFrames);
    for (int i = 0; i < n; ++i) out->push_back(reinterpret_cast<std::uintptr_t>(frames[i]));
    return true;
  }
  const int signal = CaptureSignal();
  if (signal == 0 || g_abandoned.load(std::memory_order_relaxed)) return false;
  // A thread that blocks the signal would keep it pending: wait for it only
  // briefly. (The signal is also blocked, for a moment, while the thread
  // returns from the previous capture's handler; the grace covers that.)
  const bool blocked = SignalBlocked(tid, signal);
  if (blocked) timeout = std::min(timeout, std::chrono::milliseconds(100));
  g_slot.target.store(tid, std::memory_order_relaxed);
  g_slot.state.store(kRequested, std::memory_order_release);
  if (::syscall(SYS_tgkill, ::getpid(), tid, signal) != 0) {
    g_slot.state.store(kIdle, std::memory_order_relaxed);
    g_slot.target.store(0, std::memory_order_relaxed);
    return false;
  }
  const timespec deadline =
      internal::DeadlineAfterMs(static_cast<std::uint32_t>(std::max<long long>(timeout.count(), 0)));
  // Once the handler has claimed the slot it finishes in microseconds; this
  // only bounds a pathological case (see the file comment).
  const timespec claimed_deadline = internal::DeadlineAfterMs(
      static_cast<std::uint32_t>(std::max<long long>(timeout.count(), 0)) + 1000);
  for (;;) {
    std::uint32_t state = g_slot.state.load(std::memory_order_acquire);
    if (state == kDone) break;
    const timespec* until = state == kRequested ? &deadline : &claimed_deadline;
    // FutexWait returns true on a wakeup, a value change or EINTR: re-check.
    if (internal::FutexWait(&g_slot.state, state, until)) continue;
    if (state == kRequested) {
      std::uint32_t expected = kRequested;
      if (g_slot.state.compare_exchange_strong(expected, kIdle, std::memory_order_acq_rel)) {
        g_slot.target.store(0, std::memory_order_relaxed);
        return false;  // Withdrawn: a late signal will find nothing to do.
      }
      continue;  // Claimed meanwhile: wait for kDone.
    }
    g_abandoned.store(true, std::memory_order_relaxed);
    return false;
  }
  for (int i = 0; i < g_slot.count; ++i) {
    out->push_back(reinterpret_cast<std::uintptr_t>(g_slot.frames[i]));
  }
  g_slot.target.store(0, std::memory_order_relaxed);
  g_slot.state.store(kIdle, std::memory_order_release);
  // Let the handler return (and the thread unblock the signal) before the
  // next capture looks at its mask; bounded, it is a few instructions away.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (g_handlers_running.load(std::memory_order_acquire) != 0 &&
         std::chrono::steady_clock::now() < until) {
    sched_yield();
  }
  return true;
}

// --- Symbolization (libdw) ---------------------------------------------------

std::string Demangle(const char* name) {
  if (name == nullptr) return std::string();
  int status = 0;
  char* demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || demangled == nullptr) return name;
  std::string out(demangled);
  std::free(demangled);
  return out;
}

class Symbolizer {
 public:
  // Fills the symbol fields of `frame` for address `lookup`. Returns false
  // when the frame's module has no DWARF debug information (so no file:line:
  // its function name, if any, comes from the symbol table).
  bool Resolve(std::uintptr_t lookup, StackFrame* frame) {
    std::lock_guard lock(mu_);
    Dwfl_Module* module = FindModule(lookup);
    if (module == nullptr) return true;
    const char* name = dwfl_module_info(module, nullptr, nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr);
    if (name != nullptr) frame->module = name;
    frame->function = Demangle(dwfl_module_addrname(module, lookup));
    if (Dwfl_Line* line = dwfl_module_getsrc(module, lookup)) {
      int lineno = 0;
      const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
      if (file != nullptr) frame->file = file;
      frame->line = lineno;
      return true;
    }
    Dwarf_Addr bias = 0;
    return dwfl_module_getdwarf(module, &bias) != nullptr;
  }

 private:
  Dwfl_Module* FindModule(std::uintptr_t address) {
    if (dwfl_ == nullptr && !Report()) return nullptr;
    Dwfl_Module* module = dwfl_addrmodule(dwfl_, address);
    if (module == nullptr && Report()) module = dwfl_addrmodule(dwfl_, address);  // dlopen'ed since.
    return module;
  }

  // (Re)reads the process's modules; false when libdw cannot.
  bool Report() {
    if (dwfl_ == nullptr) {
      dwfl_ = dwfl_begin(&callbacks_);
      if (dwfl_ == nullptr) return false;
    }
    dwfl_report_begin(dwfl_);
    const int rc = dwfl_linux_proc_report(dwfl_, ::getpid());
    dwfl_report_end(dwfl_, nullptr, nullptr);
    return rc == 0;
  }

  std::mutex mu_;
  Dwfl* dwfl_ = nullptr;  // Kept for the process's lifetime (cached debug info).
  char* debuginfo_path_ = nullptr;
  const Dwfl_Callbacks callbacks_{dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo, nullptr,
                                  &debuginfo_path_};
};

Symbolizer& TheSymbolizer() {
  static auto* symbolizer = new Symbolizer();
  return *symbolizer;
}

std::string Basename(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::optional<ThreadStack> CaptureThreadStack(DWORD tid, std::chrono::milliseconds timeout) {
  if (tid == 0) return std::nullopt;
  std::vector<std::uintptr_t> raw;
  if (!CaptureRaw(static_cast<pid_t>(tid), timeout, &raw)) return std::nullopt;
  ThreadStack stack;
  stack.tid = tid;
  Symbolizer& symbolizer = TheSymbolizer();
  // Modules without debug information, in order of first appearance (for
  // the note).
  std::vector<std::string> without_debug_info;
  // Return addresses are looked up one byte back, so that a call at a
  // function's end (to a noreturn callee) is not charged to the next function.
  for (std::size_t i = 0; i < raw.size(); ++i) {
    StackFrame frame;
    frame.address = raw[i];
    if (!symbolizer.Resolve(i == 0 ? raw[i] : raw[i] - 1, &frame) &&
        std::find(without_debug_info.begin(), without_debug_info.end(), frame.module) ==
            without_debug_info.end()) {
      without_debug_info.push_back(frame.module);
    }
    stack.frames.push_back(std::move(frame));
  }
  // Drop the capture's own frames: up to the handler (or, for the caller's
  // own stack, CaptureThreadStack), and the signal trampoline after it
  // (glibc's __restore_rt, often unnamed: libc's .symtab is stripped).
  std::size_t drop = 0;
  bool signal_frame = false;
  for (std::size_t i = 0; i < stack.frames.size() && i < 16; ++i) {
    const std::string& f = stack.frames[i].function;
    if (f.find("CaptureSignalHandler") != std::string::npos) {
      drop = i + 1;
      signal_frame = true;
    } else if (f.find("CaptureThreadStack") != std::string::npos ||
               f.find("CaptureRaw") != std::string::npos) {
      drop = i + 1;
    }
  }
  if (signal_frame && drop < stack.frames.size()) {
    // The trampoline's address is its first byte: look it up exactly. The
    // handler may also run inside a sanitizer's runtime instead (deferred
    // delivery), with no trampoline right after it.
    StackFrame& next = stack.frames[drop];
    StackFrame exact;
    exact.address = next.address;
    symbolizer.Resolve(next.address, &exact);
    if (exact.function == "__restore_rt" || exact.function.empty()) {
      ++drop;
      if (drop < stack.frames.size()) {
        // The interrupted frame holds the exact PC, not a return address.
        StackFrame interrupted;
        interrupted.address = stack.frames[drop].address;
        symbolizer.Resolve(interrupted.address, &interrupted);
        stack.frames[drop] = std::move(interrupted);
      }
    }
  }
  stack.frames.erase(stack.frames.begin(),
                     stack.frames.begin() + static_cast<std::ptrdiff_t>(drop));
  // Only the modules of the frames kept are worth a word.
  std::string names;
  for (const std::string& module : without_debug_info) {
    const bool kept = std::any_of(stack.frames.begin(), stack.frames.end(),
                                  [&](const StackFrame& f) { return f.module == module; });
    if (!kept) continue;
    names += (names.empty() ? "" : ", ") + Basename(module);
  }
  if (!names.empty()) {
    stack.note = "No source file and line for frames in " + names +
                 ": built without debug information (no DWARF; compile with -g, e.g. "
                 "CMAKE_BUILD_TYPE=RelWithDebInfo, or install its debug symbols), so those "
                 "frames show function and module names only.";
  }
  return stack;
}

std::string FormatStack(const ThreadStack& stack) {
  std::string out;
  char buffer[64];
  for (std::size_t i = 0; i < stack.frames.size(); ++i) {
    const StackFrame& f = stack.frames[i];
    std::snprintf(buffer, sizeof buffer, "  #%-2zu ", i);
    out += buffer;
    out += f.function.empty() ? std::string("??") : f.function;
    if (!f.file.empty()) out += " at " + Basename(f.file) + ":" + std::to_string(f.line);
    if (!f.module.empty()) out += " (" + Basename(f.module) + ")";
    std::snprintf(buffer, sizeof buffer, " [0x%" PRIxPTR "]\n", f.address);
    out += buffer;
  }
  if (!stack.note.empty()) out += "  (" + stack.note + ")\n";
  return out;
}

}  // namespace apartments
