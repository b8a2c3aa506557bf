// The handle history: a bounded record of closed handles, and the per-thread
// "last error explanation" built on it (apartments/last_error.h).
//
// Why. A handle closed twice, or closed by code that did not own it, makes a
// later wait or call by its real owner fail with ERROR_INVALID_HANDLE, far
// from the bug. Windows says only "The handle is invalid."; this layer
// remembers, for the last kHandleHistoryCapacity closes, which thread made
// the handle and when, which thread closed it, when, and from where, so the
// failure can name the culprit.
//
// Cost. Creating a handle adds two stores to its slot (creator tid, and the
// time from HandleHistoryNow(), a coarse clock read). Closing one adds one record to a ring: a fetch_add
// on the ring's cursor and about a dozen relaxed stores into one entry, under
// that entry's own sequence word (a per-entry seqlock). No allocation, no
// lock shared between closers. Reading the history (on failure paths only)
// scans the whole ring.
//
// Lifetime of a record: the ring keeps the most recent kHandleHistoryCapacity
// close attempts (successful or not) and forgets older ones; no record owns
// or keeps alive the object it describes (only its kind, serial number and
// the first bytes of its name are copied).
#ifndef APARTMENTS_SRC_KERNEL_HANDLE_HISTORY_H_
#define APARTMENTS_SRC_KERNEL_HANDLE_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "apartments/clock.h"
#include "kernel/kernel.h"

namespace apartments::internal {

// How many close attempts the history remembers.
inline constexpr std::size_t kHandleHistoryCapacity = 4096;
// How many bytes of an object's name (UTF-8) a record keeps.
inline constexpr std::size_t kHandleHistoryNameBytes = 40;

// The time stamps of the history: GetClock().Now() when a test installed
// another clock, else CLOCK_MONOTONIC_COARSE (the same time base as the
// steady clock, at the kernel tick's resolution, 1 to 4 ms), because a
// precise clock read costs more than the rest of a create or close (150 ns
// on this project's virtual machines, against 65 ns for the coarse one).
// Any thread; never blocks.
Clock::TimePoint HandleHistoryNow() noexcept;

// Called by CloseHandleEntry while it holds the closed slot's pin (so
// `object`, `creator_tid` and `created` are stable). Thread safety: any
// thread; lock-free (waits only if kHandleHistoryCapacity closes wrap onto the
// same entry at once).
void RecordHandleClose(HANDLE handle, const KernelObject& object, DWORD creator_tid,
                       Clock::TimePoint created, const void* call_site) noexcept;
// Called by CloseHandleEntry when `handle` was not open: the second close of
// a double close, or a forged value. Thread safety: as RecordHandleClose.
void RecordFailedClose(HANDLE handle, const void* call_site) noexcept;

// What the handle table can say about a value right now.
enum class HandleStatus : std::uint8_t {
  kPseudo,       // GetCurrentProcess() / GetCurrentThread().
  kOpen,         // Open now (a failure on it was a wrong kind, or it raced).
  kClosed,       // Issued by this process at some point, and closed since.
  kNeverIssued,  // Never a handle of this process (NULL, forged, not yet issued).
};
struct HandleClass {
  HandleStatus status = HandleStatus::kNeverIssued;
  bool kind_known = false;  // kOpen only: `kind` is the open object's kind.
  ObjectKind kind = ObjectKind::kEvent;
};
// Classifies `handle` (handle_table.cc). A slot's 32-bit generation wraps
// after 2^32 - 1 reuses of that slot; a value from an earlier lap then reads
// as "not issued yet" or "closed" by the current lap's count. Any thread.
HandleClass ClassifyHandle(HANDLE handle) noexcept;

// One remembered close attempt (a snapshot of a ring entry).
struct HandleCloseRecord {
  std::uint64_t sequence = 0;  // Order of the attempt among all attempts, from 1.
  HANDLE handle = nullptr;
  bool succeeded = false;  // False: the handle was not open (a second close).
  // Successful closes only: what the handle referred to and who made it.
  ObjectKind kind = ObjectKind::kEvent;
  std::uint64_t serial = 0;
  std::string name;  // UTF-8, at most kHandleHistoryNameBytes bytes; "" when unnamed.
  DWORD creator_tid = 0;
  Clock::TimePoint created{};
  // Every attempt.
  DWORD closer_tid = 0;
  Clock::TimePoint closed{};
  const void* call_site = nullptr;  // The return address into CloseHandle's caller.
};

// The most recent successful close of exactly `handle` still in the history,
// and the failed closes of it that came after (oldest first). False when the
// history holds no successful close of it.
// Thread safety: any thread; a close racing with the read may be missed.
bool FindHandleClose(HANDLE handle, HandleCloseRecord* close,
                     std::vector<HandleCloseRecord>* later_failed_closes);

// One or two sentences on why `handle` is not usable, from the handle table
// and the history: "handle 0x100000010 is not open: it was an event 'jobs'
// created by thread 12 'worker' 1.5 s ago and closed by thread 34 'ui' 1.2 s ago
// (from demo+0x1c4); it was closed again by thread 34 'ui' 1.1 s ago (a
// double close)." `expected` (or null) names the kind the caller needed, for
// a handle that is open but of another kind. Any thread; allocates.
std::string DescribeHandleProblem(HANDLE handle, const ObjectKind* expected = nullptr);

// The calling thread's last error explanation (apartments/last_error.h).
void SetLastErrorExplanation(std::string text);

// Failure paths of handle-taking functions: sets the calling thread's last
// error explanation to "`function` failed with ERROR_INVALID_HANDLE: " plus
// DescribeHandleProblem, and returns that text. `position`/`count` say which
// of several handles it was (count 1: the only one).
std::string ExplainInvalidHandle(const char* function, HANDLE handle,
                                 const ObjectKind* expected = nullptr, std::size_t position = 0,
                                 std::size_t count = 1);

// Failure paths of functions that need an access right: sets the last error
// explanation to "`function` failed with ERROR_ACCESS_DENIED: handle ... is
// an event handle without the `needed` right (its access mask is ...)" and
// returns it.
std::string ExplainAccessDenied(const char* function, HANDLE handle, ObjectKind kind,
                                ACCESS_MASK granted, const char* needed);
// SignalObjectAndWait's failure on an object that cannot be signaled (a
// thread, the process): sets the explanation and returns it.
std::string ExplainNotSignalable(const char* function, HANDLE handle, ObjectKind kind);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_KERNEL_HANDLE_HISTORY_H_
