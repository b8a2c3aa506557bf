// apartments/diagnostics.h
//
// Wait chains, whole-process snapshots and deadlock detection, built from the
// wait records every blocking point of the library publishes (kernel waits,
// SendMessageW, outgoing COM calls, the modal loop).
//
// A wait chain follows, from one thread, what it waits for, as Windows'
// GetThreadWaitChain does, and further, through the waits Windows cannot see:
//   thread --(WaitFor*)--> kernel object --(a mutex's owner)--> thread
//   thread --(SendMessageW)--> thread that owns the window
//   thread --(outgoing COM call)--> apartment --> the thread serving it (an
//                                   STA's thread, or the MTA worker running
//                                   the call once one has started it)
// A chain that comes back to a thread already in it is a cycle.
//
// Consistency. Each hop is read under its layer's lock, one lock at a time,
// briefly; nothing stops the world. A chain is thus a sequence of instants,
// not one instant: a cycle in a chain is a suspicion. The deadlock detector
// (below) re-validates a cycle atomically before it reports it.
//
// Thread safety: every function here may be called from any thread, including
// one that the chain names; none blocks on a lock that a blocked thread holds,
// and none pumps messages.
#ifndef APARTMENTS_DIAGNOSTICS_H_
#define APARTMENTS_DIAGNOSTICS_H_

#include <cstdint>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/win32_types.h"

namespace apartments {

enum class WaitNodeType : std::uint8_t {
  kThread,     // A thread, and what it is blocked in.
  kObject,     // A kernel object a thread waits on.
  kApartment,  // The apartment an outgoing COM call waits on.
};

// One node of a wait chain. Which fields are meaningful depends on `type`.
struct WaitNode {
  WaitNodeType type = WaitNodeType::kThread;

  // kThread (and kApartment: the thread serving it).
  DWORD tid = 0;
  std::string thread_name;  // SetThreadDescription, UTF-8; "" when none.
  std::string apartment;    // "STA 3", "main STA 1", "MTA 2", or "" when none.
  // "none", "kernel wait", "kernel wait (any)" (for any one of several
  // objects), "sleep", "message idle", "SendMessage", "COM call".
  std::string block_kind;
  Clock::TimePoint since{};    // When the wait began (GetClock()).
  Clock::Duration waited{};    // How long it had lasted when read.
  bool timed = false;          // The wait has a finite timeout.
  bool pumps_com = false;      // It serves incoming COM calls (STA modal loop).
  std::uint64_t wait_id = 0;   // Process-unique id of the wait.

  // kObject.
  std::string object_kind;  // "event", "mutex", "semaphore", "thread", "process".
  HANDLE handle = nullptr;  // Null for the library's internal objects.
  std::string object_name;  // UTF-8; "" when unnamed.
  DWORD owner_tid = 0;      // Mutexes: the owner (0 when free).
  bool signaled = false;    // Non-mutexes: signaled when read.
};

struct WaitChain {
  DWORD tid = 0;                 // The thread the chain starts from.
  std::vector<WaitNode> nodes;   // nodes[0] is that thread.
  // The chain came back to a thread already in it: nodes[cycle_begin] is that
  // thread, and the chain's last edge points back to it.
  bool is_cycle = false;
  std::size_t cycle_begin = 0;
  // The cycle cannot resolve by itself: every wait in it is untimed, and no
  // thread in it serves the request that waits on it (an STA in its modal
  // loop serves incoming COM calls, so two STAs calling each other that way
  // are not deadlocked). Still a suspicion until re-validated (see above).
  bool is_deadlock = false;
};

// The chain from thread `tid`; a chain of one "none" node when the thread does
// not block in the library (or does not exist).
WaitChain GetWaitChain(DWORD tid);

struct ThreadSnapshot {
  DWORD tid = 0;
  std::string name;
  std::string apartment;
  bool has_queue = false;          // The thread has made a message call.
  std::uint64_t queue_depth = 0;   // Posted messages not yet retrieved.
  std::uint64_t queue_quota = 0;   // The per-queue posted-message limit.
  std::uint64_t sent_pending = 0;  // Sent messages waiting for it.
  Clock::Duration last_pumped_age{};  // Since it last retrieved a message.
  WaitChain chain;
};

struct ProcessSnapshot {
  Clock::TimePoint taken_at{};
  std::vector<ThreadSnapshot> threads;  // Every live thread known to the library.
  // Each cycle once, as its threads' ids in wait order starting at the lowest.
  std::vector<std::vector<DWORD>> cycles;
  std::vector<bool> cycle_is_deadlock;  // Parallel to `cycles`.
};

// Every live thread's state and wait chain. Threads may start and exit while
// it runs: a thread that exits is either absent or described as it was.
ProcessSnapshot TakeSnapshot();

// Human-readable renderings, one line per node / thread.
std::string FormatWaitChain(const WaitChain& chain);
std::string FormatSnapshot(const ProcessSnapshot& snapshot);
// JSON renderings (UTF-8, durations in milliseconds as numbers).
std::string ToJson(const WaitChain& chain);
std::string ToJson(const ProcessSnapshot& snapshot);

// --- Thread stacks -------------------------------------------------------------
//
// CaptureThreadStack(tid) returns the call stack of another thread of this
// process, taken while it runs or blocks, without its cooperation: the
// requester sends it a dedicated real-time signal (installed once, lazily, on
// the first capture, on a real-time signal no one else handles), the thread
// unwinds itself in the handler into a preallocated buffer, and the requester
// symbolizes the addresses afterwards, on its own thread.
//
// Symbolization uses libdw (elfutils): it reads the process's modules from
// /proc/self/maps and gives each address its function, module and DWARF
// file:line in-process. On Debian 12 Boost.Stacktrace would need its
// libbacktrace or addr2line backend (a separate build or a child process per
// lookup); glibc's backtrace_symbols gives no file:line. Names are demangled.
//
// A capture is bounded by `timeout`: it returns std::nullopt ("unavailable")
// when the thread does not exist, has the signal blocked, or does not run the
// handler in time (under ThreadSanitizer, signals to a thread blocked in a
// system call may be deferred until it returns). It never waits on the
// library's locks. Captures are serialized process-wide.
//
// Interrupting a thread is harmless to the library: every blocking point of
// it treats an interrupted sleep (EINTR) as a spurious wakeup and sleeps again
// until its original deadline. As with any signal, the application's own
// poll/epoll_wait/nanosleep calls on a captured thread may return EINTR
// (SA_RESTART restarts only the restartable ones); std::this_thread::sleep_for
// and the pthread/std mutexes and condition variables resume by themselves.

struct StackFrame {
  std::uintptr_t address = 0;  // The program counter (a return address but for frame 0).
  std::string function;        // Demangled; "" when unknown.
  std::string file;            // Source file from DWARF; "" when unknown.
  int line = 0;                // 0 when unknown.
  std::string module;          // The ELF module's path ("" when unknown).
};

struct ThreadStack {
  DWORD tid = 0;
  std::vector<StackFrame> frames;  // Innermost first; the signal frames removed.
  // Why some frames have less than function, file:line and module, or "":
  // a module built without debug information (a plain -DCMAKE_BUILD_TYPE=
  // Release build, a stripped library) gives function and module names only
  // (from its symbol table), or the module and address when it has none.
  // FormatStack prints it after the frames.
  std::string note;
};

// The stack of thread `tid` (any thread of this process, also the caller).
std::optional<ThreadStack> CaptureThreadStack(
    DWORD tid, std::chrono::milliseconds timeout = std::chrono::milliseconds(250));

// One line per frame: "  #3 Function at file.cc:12 (libfoo.so) [0x...]",
// "  #3 Function (libfoo.so) [0x...]" without debug information, then the
// stack's note, if any, on a line of its own.
std::string FormatStack(const ThreadStack& stack);

// --- Deadlock detection -------------------------------------------------------
//
// When enabled, every thread about to sleep in an untimed wait follows its own
// wait chain; when it comes back to itself and the cycle is a deadlock (see
// WaitChain::is_deadlock), the detector re-checks, at one instant under the
// kernel lock, that every wait in it is still the same unsatisfied wait with
// the same edge. Only then is it reported: once per cycle (a cycle is its set
// of waits), on the thread that closed it, before that thread sleeps. Of
// threads closing a cycle at once, at least one sees it (each publishes its
// wait before looking, under the kernel lock), so a cycle is never missed.
//
// Cost: nothing when disabled (the default); when enabled, one kernel-lock
// read of a wait record per hop on each untimed wait that is about to sleep.
// A report also carries the stack of each thread in the cycle, captured by the
// thread that closed it before it sleeps (CaptureThreadStack: bounded, and
// only when a deadlock is found).

enum class DeadlockMode : std::uint8_t {
  kIgnore,  // No detection (the default).
  kReport,  // Report to the callback, or to stderr when none is set.
  kAbort,   // Report, then std::abort().
};

struct DeadlockReport {
  std::vector<DWORD> threads;  // The cycle's threads, in wait order.
  WaitChain chain;             // From the thread that closed the cycle.
  Clock::TimePoint detected_at{};
  // The stack of each thread of the cycle that could be captured, in
  // `threads` order (captured by the thread that closed the cycle).
  std::vector<ThreadStack> stacks;
  std::string text;            // "Deadlock: ..." followed by FormatWaitChain and the stacks.
};

// Any thread. Takes effect for waits that begin afterwards.
void SetDeadlockMode(DeadlockMode mode);
DeadlockMode GetDeadlockMode();

// Replaces the report sink (an empty function restores stderr). The callback
// runs on the thread that closed the cycle, inside its wait, just before it
// sleeps: it must not wait on the library's objects or pump messages (that
// thread's wait is in progress), and should only record or hand off the
// report (setting an event, std::mutex, writing a file are fine).
void SetDeadlockCallback(std::function<void(const DeadlockReport&)> callback);

// --- Hang watchdog ------------------------------------------------------------
//
// A thread is hung when posted messages wait in its queue and it retrieves
// none of them for `threshold` (default 5 s, Windows' "not responding"). A
// thread idle in GetMessage with an empty queue is never hung; one whose loop
// takes only some messages (a filtered GetMessage) while others wait is.
//
// Episodes. An episode starts when the watchdog first sees messages pending
// with no progress since its previous look, and ends when the thread retrieves
// a message or its queue empties. Each episode is reported at most three
// times: kHung when it passes `threshold`, kPermanent when it passes
// `permanent_threshold`, and kResolved (a transient hang, with its duration)
// when it ends after having been reported. Durations are measured by
// GetClock() between the watchdog's looks, so they are accurate to one poll
// interval; tests install a FakeClock and call Poll() instead of waiting.
//
// Single-call overruns. A message (DispatchMessageW, a sent message) or an
// incoming COM call whose handling lasts past `call_threshold` is reported
// as kCallOverrun, with what is being handled, and kCallResolved when it
// returns. The message and COM layers publish the innermost dispatch in
// progress with a few relaxed stores (no clock read); the watchdog times a
// dispatch it sees unchanged across its looks, like an episode above. A
// handler that pumps nested messages is not overrunning (each nested
// dispatch is a new one).
//
// Filtered pumps. A thread may pump, but with a filter (a window, a message
// range) that excludes its apartment's window: its COM calls then never run.
// The message layer publishes the filter of the thread's latest
// GetMessageW/PeekMessageW; hang reports say when it excludes the queue's
// waiting messages.
//
// Stacks. With `capture_stacks`, kHung, kPermanent and kCallOverrun reports
// carry the thread's stack (CaptureThreadStack, bounded wait).
//
// The watchdog reads queues and wait records through their layers' short
// locks only, so its thread keeps running when every apartment is stuck.

enum class HangEvent : std::uint8_t {
  kHung,           // Messages pending, none retrieved for `threshold`.
  kPermanent,      // The same, for `permanent_threshold`.
  kResolved,       // A reported hang ended (a transient hang).
  kCallOverrun,    // One message or COM call has been handled for `call_threshold`.
  kCallResolved,   // That message or call returned.
};

struct HangReport {
  HangEvent event = HangEvent::kHung;
  DWORD tid = 0;
  std::string thread_name;
  std::string apartment;
  std::uint64_t queue_depth = 0;
  std::uint64_t queue_quota = 0;
  std::uint64_t sent_pending = 0;
  Clock::Duration duration{};  // How long the thread has not pumped (so far).
  // kCallOverrun/kCallResolved: what is being handled, e.g. "message 0x8001
  // to window 0x10002" or "COM call"; "" otherwise.
  std::string call;
  // The thread pumps with a filter that excludes waiting messages: the
  // sentence saying so ("" otherwise).
  std::string filter;
  WaitChain chain;             // What it is blocked on, when reported.
  std::optional<ThreadStack> stack;  // When captured (see `capture_stacks`).
  std::string text;            // One paragraph plus FormatWaitChain and the stack.
};

struct HangWatchdogOptions {
  Clock::Duration threshold = std::chrono::seconds(5);
  Clock::Duration permanent_threshold = std::chrono::seconds(60);
  // A single message or COM call handled for longer is reported.
  Clock::Duration call_threshold = std::chrono::seconds(5);
  // Cycles of waits that have lasted this long are reported, also those a
  // timeout or a pumping thread might still end ("may resolve by timeout").
  Clock::Duration cycle_threshold = std::chrono::seconds(5);
  // The watchdog thread's period (real time; Start() only).
  std::chrono::milliseconds poll_interval{500};
  // Attach the hung thread's stack to reports.
  bool capture_stacks = true;
  // Receives every report, on the thread that polls. Empty: stderr.
  std::function<void(const HangReport&)> callback;
  // Live inspection (apartments/inspect.h), served from the watchdog thread
  // by Start(): off unless set here or APARTMENTS_INSPECT=1 at Start().
  bool serve_inspection = false;
  // The socket's directory; empty: DefaultInspectionDirectory().
  std::string inspection_directory;
  // A signal (e.g. SIGQUIT) that makes the watchdog thread dump a snapshot to
  // stderr while it runs; 0: none.
  int dump_signal = 0;
};

class HangWatchdog {
 public:
  explicit HangWatchdog(HangWatchdogOptions options = {});
  // Stops the thread if started.
  ~HangWatchdog();
  HangWatchdog(const HangWatchdog&) = delete;
  HangWatchdog& operator=(const HangWatchdog&) = delete;

  // Looks at every thread once and reports what changed, on the calling
  // thread. Do not call concurrently with itself or with a started watchdog.
  void Poll();
  // Starts a thread ("hang watchdog") calling Poll() every poll_interval,
  // and, when asked to, serving inspection requests and the dump signal
  // between polls (apartments/inspect.h). The socket exists when it returns.
  void Start();
  // Stops and joins that thread; idempotent. Blocks at most one Poll() (a
  // connected inspection client is cut off at once).
  void Stop();
  // The inspection socket this watchdog serves; "" when it does not (not
  // started, not asked to, or refused: the reason went to stderr).
  std::string inspection_socket_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// --- Self-diagnosis on by default ---------------------------------------------
//
// A process that uses the library's message queues or COM diagnoses itself
// without a line of code, as Windows' "not responding" detection is always
// on: the first message queue (any message call) or CoInitializeEx starts,
// once per process,
//   - a hang watchdog (its thread is named "hang watchdog"), thresholds below,
//     which also reports cycles whose waits have lasted past
//     `cycle_threshold` (including waits with timeouts, and cycles through a
//     WaitForSingleObject on a helper thread), SendMessageW calls left
//     unanswered past `hang_threshold`, and calls handled for longer than
//     `call_threshold` (busy or blocked, with the stack);
//   - deadlock detection (SetDeadlockMode) in `mode`;
//   - live inspection (apartments/inspect.h) unless `serve_inspection` is off.
// Nothing runs at static initialization; a process that never makes a queue
// or enters an apartment starts no thread and allocates nothing for this.
//
// Configuration. The defaults below; then the program's
// SetDiagnosticsOptions(); then the environment, which has the last word (the
// person running a program that misbehaves cannot recompile it). Variables
// (docs/diagnostics.md):
//   APARTMENTS_DIAGNOSTICS=off|report|abort     mode
//   APARTMENTS_HANG_THRESHOLD_MS=<ms>           hang_threshold
//   APARTMENTS_CALL_THRESHOLD_MS=<ms>           call_threshold
//   APARTMENTS_CYCLE_THRESHOLD_MS=<ms>          cycle_threshold
//   APARTMENTS_DIAGNOSTICS_FORMAT=text|json     format
//   APARTMENTS_DIAGNOSTICS_OUTPUT=stderr|socket|<absolute file path>
//   APARTMENTS_INSPECT=1|0                      serve_inspection
// An invalid value is reported with one line on stderr and the default used.
//
// Reports go, in `format`, to stderr, or appended to `report_file`, and the
// most recent ones are always kept for live inspection (`apartments-wct
// <pid>` shows them); with `reports_to_inspection_only` nothing is printed.
// A callback set with SetDeadlockCallback, or a HangWatchdog of the
// program's own with a callback, still receives its reports instead.

enum class DiagnosticsMode : std::uint8_t {
  kOff,     // No watchdog, no deadlock detection, no inspection.
  kReport,  // Report (the default).
  kAbort,   // Report; a deadlock no timeout can end then std::abort()s.
};

enum class ReportFormat : std::uint8_t {
  kText,  // Paragraphs as documented per report.
  kJson,  // One JSON object per line: {"report": "hang"|"deadlock"|..., ...}.
};

struct DiagnosticsOptions {
  DiagnosticsMode mode = DiagnosticsMode::kReport;
  // A thread with messages waiting that retrieves none for this long is
  // reported (Windows' "not responding": 5 s).
  Clock::Duration hang_threshold = std::chrono::seconds(5);
  // One message or incoming call handled for this long is reported.
  Clock::Duration call_threshold = std::chrono::seconds(5);
  // A cycle of waits that a timeout or a pumping thread might still end is
  // reported once it has lasted this long (one no wait can end is reported
  // at once, by deadlock detection).
  Clock::Duration cycle_threshold = std::chrono::seconds(5);
  ReportFormat format = ReportFormat::kText;
  // Empty: stderr. Else a file the reports are appended to.
  std::string report_file;
  // Keep reports for inspection only (APARTMENTS_DIAGNOSTICS_OUTPUT=socket).
  bool reports_to_inspection_only = false;
  // Answer apartments-wct (an owner-only socket, created lazily).
  bool serve_inspection = true;
};

// The options in effect (or that will be, at the first queue): defaults,
// the program's, then the environment's. Any thread.
DiagnosticsOptions GetDiagnosticsOptions();

// Replaces the program's options. When diagnostics already run, they are
// restarted with the new options before this returns (a watchdog episode in
// progress starts over); otherwise they apply at the first queue. Any thread
// but the diagnostics thread itself; do not call from a report callback.
void SetDiagnosticsOptions(const DiagnosticsOptions& options);

}  // namespace apartments

#endif  // APARTMENTS_DIAGNOSTICS_H_
