// The handle history ring and the explanations built on it.
//
// The ring. kHandleHistoryCapacity entries; the n-th close attempt (n from 1,
// taken from one fetch_add) goes to entry (n - 1) % capacity. Each entry is a
// seqlock: `version` is odd while a writer is inside. A writer takes the
// entry by moving `version` from even to odd with a CAS (so two writers that
// wrapped onto the same entry take turns), and writes only if the entry does
// not already hold a newer attempt (the later lap wins); it then stores every
// field relaxed and releases `version` at the next even value. A reader loads
// `version` (acquire), copies the fields (relaxed), fences (acquire) and
// re-reads `version`: equal and even means the copy is one writer's whole
// record. Every field is an atomic, so the racy copy is defined behaviour
// (and ThreadSanitizer agrees); torn copies are discarded by the version check.
#include "kernel/handle_history.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "apartments/last_error.h"
#include "base/explain.h"
#include "base/thread_state.h"

namespace apartments::internal {
namespace {

constexpr std::size_t kNameWords = kHandleHistoryNameBytes / 8;
static_assert(kHandleHistoryNameBytes % 8 == 0);

struct Entry {
  std::atomic<std::uint64_t> version{0};
  std::atomic<std::uint64_t> sequence{0};  // 0: never written.
  std::atomic<std::uint64_t> handle{0};
  std::atomic<std::uint64_t> kind_and_flags{0};  // kind | succeeded << 8.
  std::atomic<std::uint64_t> serial{0};
  std::atomic<std::uint64_t> tids{0};  // creator << 32 | closer.
  std::atomic<std::int64_t> created{0};
  std::atomic<std::int64_t> closed{0};
  std::atomic<std::uintptr_t> call_site{0};
  std::array<std::atomic<std::uint64_t>, kNameWords> name{};
};

// Zero-initialized, so it lives in .bss and costs nothing until closes touch it.
Entry g_ring[kHandleHistoryCapacity];
std::atomic<std::uint64_t> g_next_sequence{0};

// The calling thread's last error explanation (apartments/last_error.h).
// Kept behind a trivially destructible pointer: handle calls can still fail
// while the thread exits (the layers' exit hooks run after C++ thread_local
// destructors), and must then find no destroyed string. The holder frees it
// at thread exit and marks the thread as past that point; later failures on
// the thread are not explained (nobody is left to read them).
thread_local std::string* t_explanation = nullptr;
thread_local bool t_explanation_gone = false;

struct ExplanationHolder {
  ~ExplanationHolder() {
    delete t_explanation;
    t_explanation = nullptr;
    t_explanation_gone = true;
  }
};

void StoreExplanation(std::string text) {
  if (t_explanation_gone) return;
  if (t_explanation == nullptr) {
    static thread_local ExplanationHolder holder;  // Registers the cleanup once.
    (void)holder;
    t_explanation = new std::string(std::move(text));
    return;
  }
  *t_explanation = std::move(text);
}

// The system clock, captured before any test can install another (the clock
// pointer is constant-initialized, so reading it at dynamic initialization
// is safe).
const Clock* const g_system_clock = &GetClock();

// Encodes `wide` (UTF-32) as UTF-8 into `out`, stopping before a character
// that would not fit whole; the rest of `out` stays zero.
void EncodeName(const std::wstring& wide, char (&out)[kHandleHistoryNameBytes]) {
  std::size_t n = 0;
  for (wchar_t wc : wide) {
    auto c = static_cast<std::uint32_t>(wc);
    char bytes[4];
    std::size_t len;
    if (c < 0x80) {
      bytes[0] = static_cast<char>(c);
      len = 1;
    } else if (c < 0x800) {
      bytes[0] = static_cast<char>(0xC0 | (c >> 6));
      bytes[1] = static_cast<char>(0x80 | (c & 0x3F));
      len = 2;
    } else if (c < 0x10000) {
      bytes[0] = static_cast<char>(0xE0 | (c >> 12));
      bytes[1] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      bytes[2] = static_cast<char>(0x80 | (c & 0x3F));
      len = 3;
    } else {
      if (c > 0x10FFFF) c = 0xFFFD;
      bytes[0] = static_cast<char>(0xF0 | (c >> 18));
      bytes[1] = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      bytes[2] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      bytes[3] = static_cast<char>(0x80 | (c & 0x3F));
      len = 4;
    }
    if (n + len > kHandleHistoryNameBytes) break;
    std::memcpy(out + n, bytes, len);
    n += len;
  }
}

struct RecordFields {
  std::uint64_t handle;
  std::uint64_t kind_and_flags;
  std::uint64_t serial;
  std::uint64_t tids;
  std::int64_t created;
  std::int64_t closed;
  std::uintptr_t call_site;
  const char* name;  // kHandleHistoryNameBytes bytes, or null (unnamed).
};

void Push(const RecordFields& f) noexcept {
  const std::uint64_t sequence = g_next_sequence.fetch_add(1, std::memory_order_relaxed) + 1;
  Entry& e = g_ring[(sequence - 1) % kHandleHistoryCapacity];
  // Take the entry: even -> odd. Contended only when a whole lap of closes
  // lands on this entry while we are here.
  std::uint64_t version = e.version.load(std::memory_order_relaxed);
  for (;;) {
    if ((version & 1) != 0) {
      version = e.version.load(std::memory_order_relaxed);
      continue;
    }
    if (e.version.compare_exchange_weak(version, version + 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      break;
    }
  }
  if (e.sequence.load(std::memory_order_relaxed) > sequence) {
    // A later lap already wrote here; ours is the older record: drop it. The
    // version still moves on, which readers tolerate (they re-read).
    e.version.store(version + 2, std::memory_order_release);
    return;
  }
  // Readers that saw the old even version must see the odd one before any
  // new field value: the fence orders the CAS above before the stores below.
  std::atomic_thread_fence(std::memory_order_release);
  e.sequence.store(sequence, std::memory_order_relaxed);
  e.handle.store(f.handle, std::memory_order_relaxed);
  e.kind_and_flags.store(f.kind_and_flags, std::memory_order_relaxed);
  e.serial.store(f.serial, std::memory_order_relaxed);
  e.tids.store(f.tids, std::memory_order_relaxed);
  e.created.store(f.created, std::memory_order_relaxed);
  e.closed.store(f.closed, std::memory_order_relaxed);
  e.call_site.store(f.call_site, std::memory_order_relaxed);
  for (std::size_t i = 0; i < kNameWords; ++i) {
    std::uint64_t word = 0;
    if (f.name != nullptr) std::memcpy(&word, f.name + i * 8, 8);
    e.name[i].store(word, std::memory_order_relaxed);
  }
  e.version.store(version + 2, std::memory_order_release);
}

// Copies entry `e` if it holds a whole record of `handle`.
bool ReadEntry(const Entry& e, std::uint64_t handle, HandleCloseRecord* out) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::uint64_t v1 = e.version.load(std::memory_order_acquire);
    if ((v1 & 1) != 0) continue;
    if (e.handle.load(std::memory_order_relaxed) != handle) {
      // Not ours (a torn read of `handle` can only hide a record written
      // after our search began, which is the race the header allows).
      return false;
    }
    const std::uint64_t sequence = e.sequence.load(std::memory_order_relaxed);
    const std::uint64_t kind_and_flags = e.kind_and_flags.load(std::memory_order_relaxed);
    const std::uint64_t serial = e.serial.load(std::memory_order_relaxed);
    const std::uint64_t tids = e.tids.load(std::memory_order_relaxed);
    const std::int64_t created = e.created.load(std::memory_order_relaxed);
    const std::int64_t closed = e.closed.load(std::memory_order_relaxed);
    const std::uintptr_t call_site = e.call_site.load(std::memory_order_relaxed);
    char name[kHandleHistoryNameBytes + 1] = {};
    for (std::size_t i = 0; i < kNameWords; ++i) {
      const std::uint64_t word = e.name[i].load(std::memory_order_relaxed);
      std::memcpy(name + i * 8, &word, 8);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.version.load(std::memory_order_relaxed) != v1) continue;
    if (sequence == 0) return false;
    out->sequence = sequence;
    out->handle = reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(handle));
    out->kind = static_cast<ObjectKind>(kind_and_flags & 0xFF);
    out->succeeded = ((kind_and_flags >> 8) & 1) != 0;
    out->serial = serial;
    out->name = name;
    out->creator_tid = static_cast<DWORD>(tids >> 32);
    out->closer_tid = static_cast<DWORD>(tids & 0xFFFFFFFFu);
    out->created = Clock::TimePoint(Clock::Duration(created));
    out->closed = Clock::TimePoint(Clock::Duration(closed));
    out->call_site = reinterpret_cast<const void*>(call_site);
    return true;
  }
  return false;  // Rewritten under us again and again: the record is being replaced.
}

// "an event", "a mutex": the article for ObjectKindName.
std::string WithArticle(ObjectKind kind) {
  const char* name = ObjectKindName(kind);
  const bool vowel = std::strchr("aeiou", name[0]) != nullptr;
  return std::string(vowel ? "an " : "a ") + name;
}

// "demo_main+0x1c", "libfoo.so+0x1234" or "0x5581f0": where `site` is.
std::string CallSiteText(const void* site) {
  char buffer[64];
  Dl_info info{};
  if (site != nullptr && dladdr(site, &info) != 0) {
    const auto address = reinterpret_cast<std::uintptr_t>(site);
    if (info.dli_sname != nullptr && info.dli_saddr != nullptr) {
      int status = 0;
      char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
      std::string name = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
      std::free(demangled);
      std::snprintf(buffer, sizeof buffer, "+0x%" PRIxPTR,
                    address - reinterpret_cast<std::uintptr_t>(info.dli_saddr));
      return name + buffer;
    }
    if (info.dli_fname != nullptr && info.dli_fbase != nullptr) {
      const char* slash = std::strrchr(info.dli_fname, '/');
      std::snprintf(buffer, sizeof buffer, "+0x%" PRIxPTR,
                    address - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
      return std::string(slash != nullptr ? slash + 1 : info.dli_fname) + buffer;
    }
  }
  std::snprintf(buffer, sizeof buffer, "%p", site);
  return buffer;
}

std::string CloserText(const HandleCloseRecord& r) {
  std::string out = ThreadText(r.closer_tid) + " " + Ago(r.closed);
  if (r.call_site != nullptr) out += " (CloseHandle called from " + CallSiteText(r.call_site) + ")";
  return out;
}

}  // namespace

Clock::TimePoint HandleHistoryNow() noexcept {
  const Clock& clock = GetClock();
  if (&clock != g_system_clock) return clock.Now();
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Clock::TimePoint(std::chrono::duration_cast<Clock::Duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

void RecordHandleClose(HANDLE handle, const KernelObject& object, DWORD creator_tid,
                       Clock::TimePoint created, const void* call_site) noexcept {
  char name[kHandleHistoryNameBytes] = {};
  const bool named = !object.name().empty();
  if (named) EncodeName(object.name(), name);
  Push(RecordFields{reinterpret_cast<std::uintptr_t>(handle),
                    static_cast<std::uint64_t>(object.kind()) | (std::uint64_t{1} << 8),
                    object.serial(), (std::uint64_t{creator_tid} << 32) | CurrentThreadId(),
                    created.time_since_epoch().count(),
                    HandleHistoryNow().time_since_epoch().count(),
                    reinterpret_cast<std::uintptr_t>(call_site), named ? name : nullptr});
}

void RecordFailedClose(HANDLE handle, const void* call_site) noexcept {
  Push(RecordFields{reinterpret_cast<std::uintptr_t>(handle), 0, 0, CurrentThreadId(), 0,
                    HandleHistoryNow().time_since_epoch().count(),
                    reinterpret_cast<std::uintptr_t>(call_site), nullptr});
}

bool FindHandleClose(HANDLE handle, HandleCloseRecord* close,
                     std::vector<HandleCloseRecord>* later_failed_closes) {
  const auto value =
      static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(UntaggedHandle(handle)));
  std::vector<HandleCloseRecord> found;
  for (const Entry& e : g_ring) {
    HandleCloseRecord r;
    if (ReadEntry(e, value, &r)) found.push_back(std::move(r));
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
  // The last successful close of the value: after a generation wrap the same
  // value may have been closed more than once, and the latest is the one
  // that made it invalid now.
  auto last = std::find_if(found.rbegin(), found.rend(), [](const auto& r) { return r.succeeded; });
  if (last == found.rend()) return false;
  if (later_failed_closes != nullptr) {
    later_failed_closes->clear();
    for (auto it = last.base(); it != found.end(); ++it) later_failed_closes->push_back(*it);
  }
  if (close != nullptr) *close = *last;
  return true;
}

std::string DescribeHandleProblem(HANDLE handle, const ObjectKind* expected) {
  const std::string value = "handle " + HandleText(handle);
  const HandleClass c = ClassifyHandle(handle);
  switch (c.status) {
    case HandleStatus::kPseudo:
      return value + " is the pseudo-handle of the current " +
             (handle == GetCurrentProcess() ? "process" : "thread") +
             (expected != nullptr ? std::string(", not ") + WithArticle(*expected) : "") + ".";
    case HandleStatus::kOpen:
      if (c.kind_known && expected != nullptr && c.kind != *expected) {
        return value + " is open, but it is " + WithArticle(c.kind) + ", not " +
               WithArticle(*expected) + ".";
      }
      return value + " is open now: it was opened or reopened while the call was failing, "
                     "or it is of a kind the call does not take.";
    case HandleStatus::kNeverIssued:
      if (handle == nullptr) {
        return value + " was never a handle: a function that fails to make one returns NULL "
                       "(check the result of CreateEvent, CreateThread, ...).";
      }
      return value + " was never a handle of this process: no CreateEvent, CreateMutex, "
                     "CreateSemaphore, CreateThread, Open* or DuplicateHandle returned it (a "
                     "forged, uninitialized or corrupted value).";
    case HandleStatus::kClosed:
      break;
  }
  HandleCloseRecord close;
  std::vector<HandleCloseRecord> again;
  if (!FindHandleClose(handle, &close, &again)) {
    return value + " is not open: it was a handle of this process and has been closed, but the "
                   "handle history (the last " + std::to_string(kHandleHistoryCapacity) +
           " closes) has no record of who closed it or when.";
  }
  std::string out = value + " is not open: it was " + WithArticle(close.kind);
  if (!close.name.empty()) out += " '" + close.name + "'";
  out += " (object #" + std::to_string(close.serial) + "), created by " +
         ThreadText(close.creator_tid) + " " + Ago(close.created) + ", and closed by " +
         CloserText(close) + ".";
  if (!again.empty()) {
    out += again.size() == 1 ? " It was closed again by "
                             : " It was closed again " + std::to_string(again.size()) +
                                   " times, first by ";
    out += CloserText(again.front());
    out += ": a double close (the second closer did not own it, or closed it twice).";
  }
  return out;
}

void SetLastErrorExplanation(std::string text) { StoreExplanation(std::move(text)); }

std::string ExplainInvalidHandle(const char* function, HANDLE handle, const ObjectKind* expected,
                                 std::size_t position, std::size_t count) {
  std::string text = std::string(function) + " failed with ERROR_INVALID_HANDLE: ";
  if (count > 1) {
    text += "of its " + std::to_string(count) + " handles, number " + std::to_string(position) +
            " (counting from 0) is bad: ";
  }
  text += DescribeHandleProblem(handle, expected);
  StoreExplanation(text);
  return text;
}

std::string ExplainAccessDenied(const char* function, HANDLE handle, ObjectKind kind,
                                ACCESS_MASK granted, const char* needed) {
  char mask[16];
  std::snprintf(mask, sizeof mask, "0x%08X", static_cast<unsigned>(granted));
  std::string text = std::string(function) + " failed with ERROR_ACCESS_DENIED: handle " +
                     HandleText(handle) + " is " + WithArticle(kind) +
                     " handle without the " + needed + " right (its access mask is " + mask +
                     "). Rights are fixed when a handle is made: Create* grants all of them, "
                     "Open*, Create*Ex and DuplicateHandle grant what they were asked for.";
  StoreExplanation(text);
  return text;
}

std::string ExplainNotSignalable(const char* function, HANDLE handle, ObjectKind kind) {
  std::string text = std::string(function) + " failed with ERROR_INVALID_HANDLE: handle " +
                     HandleText(handle) + " is open, but it is " + WithArticle(kind) +
                     ", which cannot be signaled: the object to signal must be an event, a "
                     "mutex or a semaphore.";
  StoreExplanation(text);
  return text;
}

}  // namespace apartments::internal

namespace apartments {

std::string LastErrorExplanation() {
  return internal::t_explanation != nullptr ? *internal::t_explanation : std::string();
}

void ClearLastErrorExplanation() noexcept {
  if (internal::t_explanation != nullptr) internal::t_explanation->clear();
}

std::string DescribeHandleHistory(HANDLE handle) {
  return internal::DescribeHandleProblem(handle);
}

}  // namespace apartments
