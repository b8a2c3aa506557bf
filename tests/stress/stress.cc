// apartments_stress: a seeded, bounded randomized stress of the whole call
// machinery (issue 18). Tens of threads in STAs and the MTA call objects that
// were marshaled every way (CoMarshalInterThreadInterfaceInStream,
// CoMarshalInterface NORMAL / TABLESTRONG / TABLEWEAK, the global interface
// table, the free-threaded marshaler, re-marshaled proxies), with callbacks,
// [out] interfaces, throwing callees, ExitThread inside calls and callbacks,
// cancellation, rejecting message filters, floods to the posted-message quota,
// apartment shutdowns, disconnections, and handle abuse on the side.
//
// What it checks, for every call:
// - the callee ran it zero times or once, never twice, and never after the
//   caller was told the call had ended (a late run);
// - the HRESULT is one the situation allows (the table in CheckOutcome), and
//   agrees with whether the callee ran;
// - a failure made by the runtime comes with an explanation (error info) for
//   that failure (LastErrorHResult() is the call's HRESULT), and the text
//   never says "never ran" of a call that ran, nor omits a throwing callee's
//   message;
// and at the end of every round (quiescence):
// - every object's reference count is back to the one reference the harness
//   holds (no release was lost), no stub or proxy manager is left alive;
// - every object ever created was destroyed exactly once;
// - the process's open handle count is back to where it started.
//
// Each scenario is a switch (--scenarios, --without); a scenario that still
// finds a known library defect is off by default, named in kScenarios with
// the defect. See tests/stress/README.md.
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "apartments/com_object.h"
#include "apartments/error_info.h"
#include "apartments/errors.h"
#include "apartments/message_queue.h"
#include "apartments/proxy.h"
#include "apartments/win32.h"
#include "com/marshal.h"
#include "kernel/kernel.h"

namespace stress {

// --- The interface under test -------------------------------------------------------

struct IStressTarget : public IUnknown {
  // Runs `action` (an Action) for call `seq` of ring `ring` (the caller's
  // record of the call), with `callback` (an object in the caller's
  // apartment, or null) for the actions that call back.
  STDMETHOD(Work)(ULONG ring, ULONG seq, ULONG action, IStressTarget* callback) PURE;
  // Makes a new object in this object's apartment: an [out] interface.
  STDMETHOD(Clone)(ULONG ring, ULONG seq, IStressTarget** copy) PURE;
};
APARTMENTS_INTERFACE(IStressTarget, IUnknown, "5a7e55e1-0b1e-4c2a-9d3b-18e5c0ffee18");

APARTMENTS_PROXY_BEGIN(IStressTarget)
  APARTMENTS_PROXY_METHOD(Work, (ULONG ring, ULONG seq, ULONG action, IStressTarget* callback),
                          (ring, seq, action, callback))
  APARTMENTS_PROXY_METHOD(Clone, (ULONG ring, ULONG seq, IStressTarget** copy), (ring, seq, copy))
APARTMENTS_PROXY_END(IStressTarget)

// What a callee does with a call.
enum Action : ULONG {
  kReturnOk,       // S_OK
  kReturnError,    // kCalleeError, the callee's own failure
  kThrow,          // throws std::runtime_error: RPC_E_SERVERFAULT for the caller
  kCallback,       // calls `callback` back (a nested call into the caller's apartment)
  kExit,           // ExitThread inside the call (only in the harness's STA threads)
  kCallbackExit,   // calls back, and the callback calls ExitThread in the caller's STA
  kWaitCancel,     // waits (bounded) until CoTestCancel reports the caller cancelled
};
constexpr HRESULT kCalleeError = static_cast<HRESULT>(0x80040201);  // FACILITY_ITF
constexpr const char* kThrowText = "stress callee threw";

// --- Options and scenarios -----------------------------------------------------------

struct Scenario {
  const char* name;
  bool on_by_default;
  const char* what;
};
// A scenario off by default names the defect it still finds (issue 18).
constexpr Scenario kScenarios[] = {
    {"callbacks", true, "callees call back into the caller's apartment"},
    {"out", true, "[out] interfaces (Clone)"},
    {"throw", true, "callees throw: RPC_E_SERVERFAULT with the exception's message"},
    {"shutdown", true, "STAs shut down (CoUninitialize) in the middle of a round"},
    {"disconnect", true, "owners call CoDisconnectObject on their objects"},
    {"handles", true, "double closes, waits on closed handles, DuplicateHandle abuse"},
    {"explain", true, "runtime failures carry a true explanation of themselves"},
    {"exit", true, "ExitThread inside a call on a thread that only serves"},
    {"filter", true, "STAs with message filters rejecting calls"},
    {"cancel", true, "callers cancel their calls (CoCancelCall from another thread)"},
    {"flood", true, "STAs flood their own queue to the quota and stop pumping"},
    {"exit-callback", true, "ExitThread inside a callback, or in a call served in a proxy "
                            "Release's modal wait"},
};
constexpr int kScenarioCount = sizeof kScenarios / sizeof kScenarios[0];

struct Options {
  std::uint64_t seed = 1;
  std::uint64_t calls = 200000;
  int stas = 6;
  int server_stas = 2;  // of the STAs, those that only serve
  int mtas = 3;
  int objects = 3;  // per owning thread
  std::uint64_t round_calls = 20000;
  double max_seconds = 0;  // 0: no limit
  bool enabled[kScenarioCount] = {};
  bool verbose = false;
};
Options g_opt;

int ScenarioIndex(const std::string& name) {
  for (int i = 0; i < kScenarioCount; ++i) {
    if (name == kScenarios[i].name) return i;
  }
  return -1;
}
bool On(const char* name) { return g_opt.enabled[ScenarioIndex(name)]; }

// --- Defects and outcome counts ------------------------------------------------------

std::mutex g_report_mu;
std::vector<std::string> g_defects;
std::atomic<std::uint64_t> g_defect_count{0};
std::map<std::string, std::uint64_t> g_outcomes;  // guarded by g_report_mu

void Defect(const std::string& text) {
  ++g_defect_count;
  std::lock_guard lock(g_report_mu);
  if (g_defects.size() < 50) g_defects.push_back(text);
  if (g_opt.verbose) std::fprintf(stderr, "DEFECT: %s\n", text.c_str());
}

std::string HrName(HRESULT hr) {
  char buf[64];
  if (hr == kCalleeError) return "kCalleeError";
  const char* name = apartments::DescribeHResult(hr).name;
  if (name != nullptr) return name;
  std::snprintf(buf, sizeof buf, "0x%08X", static_cast<unsigned>(hr));
  return buf;
}

// Per-thread outcome counts, merged into g_outcomes when the thread ends (or
// exits through ExitThread: the merge runs from a destructor).
struct LocalCounts {
  std::map<std::string, std::uint64_t> counts;
  void Add(const std::string& key) { ++counts[key]; }
  ~LocalCounts() { Merge(); }
  void Merge() {
    std::lock_guard lock(g_report_mu);
    for (auto& [k, v] : counts) g_outcomes[k] += v;
    counts.clear();
  }
};
thread_local LocalCounts t_counts;

std::atomic<std::uint64_t> g_calls{0};        // calls made this run (every method call)
std::atomic<std::uint64_t> g_round_calls{0};  // calls made this round

struct Home;  // below

// --- Call records --------------------------------------------------------------------

// One ring of call records per calling thread. The caller fills a slot before
// the call; the callee (wherever it runs) counts its run in it; the caller
// reads the count after the call and marks the slot done. A run counted in a
// slot already done, or for another sequence number, is a late run.
struct Slot {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint32_t> ran{0};
  std::atomic<bool> done{true};
};
constexpr std::uint32_t kRingSize = 256;
constexpr int kMaxRings = 512;
struct Ring {
  Slot slots[kRingSize];
  std::uint64_t next_seq = 1;  // owner thread only
  std::atomic<bool> cancel_pending{false};
  std::atomic<bool> in_use{false};
  std::atomic<Home*> home{nullptr};  // the owner thread's apartment, for callbacks into it
};
Ring* g_rings = new Ring[kMaxRings];  // never freed: late runs may still touch it

// The calling thread's ring index, taken from a free slot on first use and
// given back when the thread ends.
struct RingLease {
  int index = -1;
  ~RingLease() {
    if (index >= 0) g_rings[index].in_use.store(false);
  }
};
thread_local RingLease t_ring;
int MyRing() {
  if (t_ring.index < 0) {
    for (int i = 0; i < kMaxRings; ++i) {
      bool expected = false;
      if (g_rings[i].in_use.compare_exchange_strong(expected, true)) {
        t_ring.index = i;
        break;
      }
    }
    if (t_ring.index < 0) {
      std::fprintf(stderr, "apartments_stress: out of call rings\n");
      std::abort();
    }
  }
  return t_ring.index;
}

void CountRun(ULONG ring, ULONG seq) {
  if (ring >= static_cast<ULONG>(kMaxRings)) {
    Defect("callee got a corrupted call record index");
    return;
  }
  Slot& slot = g_rings[ring].slots[seq % kRingSize];
  if (slot.seq.load() != seq) {
    Defect("late run: a callee ran call " + std::to_string(seq) + " of ring " + std::to_string(ring) +
           " after its caller had moved on");
    return;
  }
  slot.ran.fetch_add(1);
  if (slot.done.load()) {
    Defect("late run: a callee ran call " + std::to_string(seq) + " after its caller got its result");
  }
}

// --- Objects -------------------------------------------------------------------------

// Where an object lives, as callers need to know to judge outcomes.
struct Home {
  int index = -1;  // STA thread index; -1 for the MTA
  bool sta = false;
  bool filter = false;  // rejects some incoming calls
  bool flood = false;   // fills its queue to the quota now and then
  bool server_only = false;  // its thread only serves calls (never calls out)
  std::atomic<bool> dead{false};  // shut down or thread exited
};

std::mutex g_objects_mu;
struct ObjectRecord {
  int destroyed = 0;
  std::string what;  // "sink", "clone", "published", with its apartment
};
std::map<std::uint64_t, ObjectRecord> g_destroyed;  // object id -> its record
std::atomic<std::uint64_t> g_next_object{1};
std::atomic<std::uint64_t> g_created{0};

thread_local std::minstd_rand t_rng{1};
std::uint32_t Rand(std::uint32_t n) { return n == 0 ? 0 : static_cast<std::uint32_t>(t_rng() % n); }
bool Chance(std::uint32_t one_in) { return Rand(one_in) == 0; }

void MakeCallback(IStressTarget* callback, ULONG caller_ring, bool exit_there);

void Describe(std::uint64_t id, const char* role) {
  std::lock_guard lock(g_objects_mu);
  g_destroyed[id].what = std::string(role) + " " + g_destroyed[id].what;
}

class StressObject final : public apartments::ComObject<StressObject, IStressTarget> {
 public:
  StressObject(Home* home, bool ftm) : id_(g_next_object++), home_(home), ftm_(ftm) {
    ++g_created;
    {
      std::lock_guard lock(g_objects_mu);
      g_destroyed[id_].what = std::string(ftm ? "agile " : "") + (home->sta ? "STA " : "MTA ") +
                              std::to_string(home->index);
    }
    if (ftm_) {
      if (FAILED(CoCreateFreeThreadedMarshaler(Identity(), &marshaler_))) {
        Defect("CoCreateFreeThreadedMarshaler failed");
      }
    }
  }

  HRESULT QueryInterfaceExtra(REFIID riid, void** ppv) {
    if (riid == IID_IMarshal && marshaler_ != nullptr) return marshaler_->QueryInterface(riid, ppv);
    return E_NOINTERFACE;
  }

  STDMETHODIMP Work(ULONG ring, ULONG seq, ULONG action, IStressTarget* callback) override;
  STDMETHODIMP Clone(ULONG ring, ULONG seq, IStressTarget** copy) override {
    CountRun(ring, seq);
    if (copy == nullptr) return E_POINTER;
    *copy = new StressObject(home_, ftm_);
    Describe(static_cast<StressObject*>(*copy)->id(), "clone");
    return S_OK;
  }

  std::uint64_t id() const { return id_; }
  Home* home() const { return home_; }
  bool ftm() const { return ftm_; }

 private:
  ~StressObject() override {
    if (marshaler_ != nullptr) marshaler_->Release();
    std::lock_guard lock(g_objects_mu);
    if (++g_destroyed[id_].destroyed != 1) Defect("object " + std::to_string(id_) + " destroyed twice");
  }
  std::uint64_t id_;
  Home* home_;
  bool ftm_;
  IUnknown* marshaler_ = nullptr;
};

// The calling thread's role, as a callee needs to know it.
thread_local bool t_exitable = false;  // a harness STA thread that may ExitThread

STDMETHODIMP StressObject::Work(ULONG ring, ULONG seq, ULONG action, IStressTarget* callback) {
  CountRun(ring, seq);
  switch (action) {
    case kReturnOk: return S_OK;
    case kReturnError: return kCalleeError;
    case kThrow: throw std::runtime_error(std::string(kThrowText) + " in call " + std::to_string(seq));
    case kCallback:
    case kCallbackExit: {
      if (callback == nullptr) {
        Defect("a callback action arrived without its callback");
        return E_POINTER;
      }
      // The nested call's record lives in this (the callee's) thread's ring.
      MakeCallback(callback, ring, action == kCallbackExit);
      return S_OK;
    }
    case kExit:
      if (!t_exitable) {
        Defect("kExit reached a thread that may not exit");
        return E_UNEXPECTED;
      }
      // Dead before it exits: the exit wakes callers (RPC_E_DISCONNECTED)
      // before the thread's own guard runs, and they judge by this flag.
      if (Home* exiting = g_rings[MyRing()].home.load()) exiting->dead.store(true);
      ExitThread(7);
    case kWaitCancel: {
      // Bounded: a cancellation that never arrives ends the wait after 5 s.
      for (int i = 0; i < 5000; ++i) {
        HRESULT hr = CoTestCancel();
        if (hr == RPC_E_CALL_CANCELED) return S_OK;
        if (hr != RPC_S_CALLPENDING) {
          Defect("CoTestCancel in a callee returned " + HrName(hr));
          return S_OK;
        }
        Sleep(1);
      }
      return S_OK;
    }
  }
  Defect("unknown action");
  return E_INVALIDARG;
}

// --- Checking one call ---------------------------------------------------------------

struct CallFacts {
  const char* method;  // "Work" or "Clone"
  ULONG action = kReturnOk;
  const Home* home = nullptr;  // target's apartment (null for the caller's own)
  bool ftm = false;            // direct call, no channel
  bool cancel_requested = false;
  bool nested = false;
};

bool Contains(const std::string& text, const char* what) { return text.find(what) != std::string::npos; }

bool IsChannelFailure(HRESULT hr) {
  return hr == RPC_E_DISCONNECTED || hr == CO_E_OBJNOTCONNECTED || hr == RPC_E_CALL_REJECTED ||
         hr == RPC_E_SYS_CALL_FAILED || hr == RPC_E_CALL_CANCELED || hr == RPC_E_SERVERFAULT;
}

// Judges one call's result against what the callee recorded.
void CheckOutcome(const CallFacts& f, HRESULT hr, std::uint32_t ran) {
  std::string key = std::string(f.nested ? "callback " : "") + f.method + " " +
                    HrName(hr) + (ran ? " (ran)" : " (did not run)");
  t_counts.Add(key);
  auto defect = [&](const std::string& why) {
    std::string text = std::string(f.method) + " (action " + std::to_string(f.action) + ") returned " +
                       HrName(hr) + ", callee ran it " + std::to_string(ran) + " time(s): " + why;
    std::string desc = apartments::LastErrorDescription();
    if (!desc.empty()) text += " [error info: " + desc + "]";
    Defect(text);
  };
  if (ran > 1) return defect("ran more than once");
  const bool home_dead = f.home != nullptr && f.home->dead.load();
  bool allowed = false;
  switch (hr) {
    case S_OK:
      allowed = ran == 1 && (f.action == kReturnOk || f.action == kCallback ||
                             f.action == kCallbackExit || f.action == kWaitCancel);
      break;
    case kCalleeError:
      allowed = ran == 1 && f.action == kReturnError;
      break;
    case RPC_E_SERVERFAULT:
      allowed = ran == 1 && f.action == kThrow && !f.ftm;
      break;
    case RPC_E_DISCONNECTED:
      // Never ran (the object or its apartment was gone), or its thread
      // exited inside it; an [out] interface made by a callee whose apartment
      // went away meanwhile cannot come back either
      // (also one that ran and whose thread then exited while finishing it,
      // serving another call that exited in a proxy Release's modal wait);
      allowed = !f.ftm && (ran == 0 || f.action == kExit || home_dead);
      break;
    case CO_E_OBJNOTCONNECTED:
      allowed = !f.ftm && (ran == 0 || (std::strcmp(f.method, "Clone") == 0 && home_dead));
      break;
    case RPC_E_CALL_REJECTED:
      allowed = !f.ftm && ran == 0 && f.home != nullptr && f.home->filter;
      break;
    case RPC_E_SYS_CALL_FAILED:
      allowed = !f.ftm && ran == 0 && f.home != nullptr && f.home->flood;
      break;
    case RPC_E_CALL_CANCELED:
      allowed = !f.ftm && f.cancel_requested;
      break;
    default:
      break;
  }
  if (!allowed) return defect("not an outcome this call allows");
  if (On("explain") && !f.ftm && IsChannelFailure(hr)) {
    std::string desc = apartments::LastErrorDescription();
    if (desc.empty()) return defect("the runtime failed the call with no explanation");
    if (hr == RPC_E_SERVERFAULT && !Contains(desc, kThrowText)) {
      return defect("the explanation lacks the exception's message");
    }
    if (apartments::LastErrorHResult() != hr && hr != RPC_E_SERVERFAULT) {
      return defect("the explanation is for " + HrName(apartments::LastErrorHResult()) +
                    ", not this call's failure");
    }
    if (ran == 1 && Contains(desc, "never ran")) return defect("the explanation says it never ran");
  }
}

// Cancellation requests, served by one canceller thread (CoCancelCall from
// another thread, as a UI's Cancel button would).
struct Canceller {
  std::mutex mu;
  std::map<DWORD, int> requests;  // thread id -> ring index
};
Canceller g_canceller;

void BeginCall(Slot& slot, std::uint64_t seq) {
  slot.done.store(false);
  slot.ran.store(0);
  slot.seq.store(seq);
}
std::uint32_t EndCall(Slot& slot) {
  slot.done.store(true);
  return slot.ran.load();
}

// One Work call on `target`, judged.
void CallWork(IStressTarget* target, const Home* home, bool ftm, ULONG action, IStressTarget* sink,
              bool nested) {
  int ring_index = MyRing();
  Ring& ring = g_rings[ring_index];
  std::uint64_t seq = ring.next_seq++;
  Slot& slot = ring.slots[seq % kRingSize];
  CallFacts facts{.method = "Work", .action = action, .home = home, .ftm = ftm, .nested = nested};
  const bool cancel = action == kWaitCancel || (On("cancel") && !nested && !ftm && Chance(16));
  if (cancel) {
    std::lock_guard lock(g_canceller.mu);
    g_canceller.requests[GetCurrentThreadId()] = ring_index;
    ring.cancel_pending.store(true);
  }
  facts.cancel_requested = cancel || ring.cancel_pending.load();
  SetErrorInfo(0, nullptr);
  BeginCall(slot, seq);
  ++g_calls;
  ++g_round_calls;
  HRESULT hr = target->Work(static_cast<ULONG>(ring_index), static_cast<ULONG>(seq), action, sink);
  std::uint32_t ran = EndCall(slot);
  if (cancel) {
    std::lock_guard lock(g_canceller.mu);
    g_canceller.requests.erase(GetCurrentThreadId());
    ring.cancel_pending.store(false);
  }
  CheckOutcome(facts, hr, ran);
}

// --- Per-thread state of the harness threads -----------------------------------------

// A proxy (or, for agile objects, the object) held by a calling thread.
struct Held {
  IStressTarget* p = nullptr;
  Home* home = nullptr;
  bool ftm = false;  // called directly: agile, or in the caller's apartment
};

struct Entry;  // a published object, below

struct ThreadCtx {
  int index = 0;
  bool sta = false;
  Home* home = nullptr;               // this thread's apartment
  StressObject* sink = nullptr;       // the callback object, in this apartment
  std::vector<Held> held;
  std::vector<StressObject*> owned;   // objects this thread published (board entries)
};

void MakeCallback(IStressTarget* callback, ULONG caller_ring, bool exit_there) {
  // The callback runs in the original caller's apartment: an STA harness
  // thread when exit_there (the caller chose it so).
  const Home* home = caller_ring < static_cast<ULONG>(kMaxRings) ? g_rings[caller_ring].home.load() : nullptr;
  CallWork(callback, home, false, exit_there ? kExit : (Chance(4) ? kReturnError : kReturnOk),
           nullptr, /*nested=*/true);
}

// --- The board: every object published this round, and its marshaled forms -------------

struct Entry {
  StressObject* object = nullptr;  // the harness's own reference
  Home* home = nullptr;
  DWORD git_cookie = 0;
  std::vector<unsigned char> strong;  // TABLESTRONG marshal data
  std::vector<unsigned char> weak;    // TABLEWEAK marshal data (object locked externally)
  bool locked = false;
  std::mutex mailbox_mu;
  std::deque<IStream*> mailbox;  // NORMAL marshal data, one unmarshal each
};

struct Round {
  std::vector<std::unique_ptr<Home>> homes;  // [0, stas) STAs, then the MTA
  std::vector<std::unique_ptr<Entry>> entries;
  std::mutex entries_mu;
  std::atomic<int> phase{0};  // 0 setup, 1 run, 2 drain, 3 exit
  std::atomic<int> ready{0}, drained{0};
  std::uint64_t call_budget = 0;
  std::chrono::steady_clock::time_point deadline;
};
Round* g_round = nullptr;

IStream* StreamFromBytes(const std::vector<unsigned char>& bytes) {
  IStream* stream = nullptr;
  if (FAILED(CreateStreamOnHGlobal(nullptr, TRUE, &stream))) return nullptr;
  ULONG written = 0;
  stream->Write(bytes.data(), static_cast<ULONG>(bytes.size()), &written);
  LARGE_INTEGER zero{};
  stream->Seek(zero, STREAM_SEEK_SET, nullptr);
  return stream;
}

std::vector<unsigned char> MarshalBytes(IUnknown* object, DWORD flags, HRESULT* hr) {
  std::vector<unsigned char> bytes;
  IStream* stream = nullptr;
  *hr = CreateStreamOnHGlobal(nullptr, TRUE, &stream);
  if (FAILED(*hr)) return bytes;
  *hr = CoMarshalInterface(stream, IID_IStressTarget, object, MSHCTX_INPROC, nullptr, flags);
  if (SUCCEEDED(*hr)) {
    ULARGE_INTEGER end{};
    LARGE_INTEGER zero{};
    stream->Seek(zero, STREAM_SEEK_CUR, &end);
    bytes.resize(static_cast<std::size_t>(end.QuadPart));
    stream->Seek(zero, STREAM_SEEK_SET, nullptr);
    ULONG read = 0;
    stream->Read(bytes.data(), static_cast<ULONG>(bytes.size()), &read);
  }
  stream->Release();
  return bytes;
}

// Puts one NORMAL marshal packet of `object` (the object or a proxy of it)
// into `entry`'s mailbox, by one of the two NORMAL paths.
void PostNormal(Entry& entry, IUnknown* object) {
  IStream* stream = nullptr;
  HRESULT hr;
  if (Chance(2)) {
    hr = CoMarshalInterThreadInterfaceInStream(IID_IStressTarget, object, &stream);
  } else {
    hr = CreateStreamOnHGlobal(nullptr, TRUE, &stream);
    if (SUCCEEDED(hr)) {
      hr = CoMarshalInterface(stream, IID_IStressTarget, object, MSHCTX_INPROC, nullptr, MSHLFLAGS_NORMAL);
      LARGE_INTEGER zero{};
      stream->Seek(zero, STREAM_SEEK_SET, nullptr);
      if (FAILED(hr)) {
        stream->Release();
        stream = nullptr;
      }
    }
  }
  t_counts.Add(std::string("marshal NORMAL ") + HrName(hr));
  if (FAILED(hr)) {
    // A proxy whose object went away, or a disconnected object.
    if (hr != RPC_E_DISCONNECTED && hr != CO_E_OBJNOTCONNECTED) {
      Defect("NORMAL marshaling failed with " + HrName(hr));
    }
    return;
  }
  std::lock_guard lock(entry.mailbox_mu);
  entry.mailbox.push_back(stream);
}

// Unmarshaling data whose object went away: CO_E_OBJNOTCONNECTED (NORMAL data,
// or the apartment shut down), CO_E_OBJNOTREG (table data no longer
// exported), or S_OK with a proxy whose calls fail (released NORMAL data, as
// on Windows).
bool UnmarshalAllowed(HRESULT hr) { return hr == S_OK || hr == CO_E_OBJNOTCONNECTED || hr == CO_E_OBJNOTREG; }

// Gets a proxy (or the agile object) of a random entry by a random path.
void Acquire(ThreadCtx& ctx) {
  Round& round = *g_round;
  Entry* entry;
  {
    std::lock_guard lock(round.entries_mu);
    entry = round.entries[Rand(static_cast<std::uint32_t>(round.entries.size()))].get();
  }
  IStressTarget* p = nullptr;
  HRESULT hr = E_FAIL;
  const char* path = "";
  switch (Rand(5)) {
    case 0:
      path = "GIT";
      hr = apartments::GlobalInterfaceTable()->GetInterfaceFromGlobal(entry->git_cookie, IID_IStressTarget,
                                                                      reinterpret_cast<void**>(&p));
      break;
    case 1:
    case 2: {
      const bool strong = Rand(2) == 0;
      path = strong ? "TABLESTRONG" : "TABLEWEAK";
      IStream* stream = StreamFromBytes(strong ? entry->strong : entry->weak);
      if (stream == nullptr) return;
      hr = CoUnmarshalInterface(stream, IID_IStressTarget, reinterpret_cast<void**>(&p));
      stream->Release();
      break;
    }
    default: {
      IStream* stream = nullptr;
      {
        std::lock_guard lock(entry->mailbox_mu);
        if (!entry->mailbox.empty()) {
          stream = entry->mailbox.front();
          entry->mailbox.pop_front();
        }
      }
      if (stream == nullptr) return;
      if (Chance(8)) {
        path = "CoReleaseMarshalData";
        hr = CoReleaseMarshalData(stream);
        stream->Release();
        t_counts.Add(std::string("unmarshal ") + path + " " + HrName(hr));
        if (!UnmarshalAllowed(hr)) Defect(std::string(path) + " returned " + HrName(hr));
        return;
      }
      if (Chance(2)) {
        path = "CoGetInterfaceAndReleaseStream";
        hr = CoGetInterfaceAndReleaseStream(stream, IID_IStressTarget, reinterpret_cast<void**>(&p));
      } else {
        path = "NORMAL";
        hr = CoUnmarshalInterface(stream, IID_IStressTarget, reinterpret_cast<void**>(&p));
        stream->Release();
      }
      break;
    }
  }
  t_counts.Add(std::string("unmarshal ") + path + " " + HrName(hr));
  if (!UnmarshalAllowed(hr)) {
    Defect(std::string(path) + " unmarshal returned " + HrName(hr) + " [error info: " +
           apartments::LastErrorDescription() + "]");
  }
  if (FAILED(hr)) {
    if (p != nullptr) Defect(std::string(path) + " failed but left a pointer");
    return;
  }
  if (p == nullptr) {
    Defect(std::string(path) + " succeeded with a null pointer");
    return;
  }
  // Agile objects, and objects of the caller's own apartment, are called
  // directly (no channel).
  ctx.held.push_back(Held{p, entry->home, entry->object->ftm() || entry->home == ctx.home});
  // Now and then pass the proxy on: NORMAL marshaling of a proxy.
  if (Chance(8)) PostNormal(*entry, p);
}

void ReleaseHeld(ThreadCtx& ctx, std::size_t i) {
  Held h = ctx.held[i];
  ctx.held.erase(ctx.held.begin() + static_cast<std::ptrdiff_t>(i));
  h.p->Release();
}

// Whether the calling thread may be made to exit by a callback.
bool CanExitHere(const ThreadCtx& ctx) { return ctx.sta && t_exitable; }

// One step of a calling thread: get or drop a proxy, or make a call.
void Step(ThreadCtx& ctx) {
  if (ctx.held.size() < 2 || (ctx.held.size() < 4 && Chance(8))) {
    Acquire(ctx);
    return;
  }
  if (Chance(16)) {
    ReleaseHeld(ctx, Rand(static_cast<std::uint32_t>(ctx.held.size())));
    return;
  }
  std::size_t i = Rand(static_cast<std::uint32_t>(ctx.held.size()));
  Held h = ctx.held[i];
  const bool remote_sta = !h.ftm && h.home->sta && h.home != ctx.home;
  if (On("out") && Chance(12)) {
    int ring_index = MyRing();
    Ring& ring = g_rings[ring_index];
    std::uint64_t seq = ring.next_seq++;
    Slot& slot = ring.slots[seq % kRingSize];
    IStressTarget* copy = nullptr;
    SetErrorInfo(0, nullptr);
    BeginCall(slot, seq);
    ++g_calls;
    ++g_round_calls;
    HRESULT hr = h.p->Clone(static_cast<ULONG>(ring_index), static_cast<ULONG>(seq), &copy);
    std::uint32_t ran = EndCall(slot);
    CheckOutcome(CallFacts{.method = "Clone", .home = h.home, .ftm = h.ftm}, hr, ran);
    if (SUCCEEDED(hr) && copy == nullptr) Defect("Clone succeeded with a null copy");
    if (FAILED(hr) && copy != nullptr) Defect("Clone failed but left a copy");
    if (copy != nullptr) {
      CallWork(copy, h.home, h.ftm, kReturnOk, nullptr, false);
      copy->Release();
    }
    return;
  }
  // Choose the action.
  std::vector<ULONG> actions = {kReturnOk, kReturnOk, kReturnOk, kReturnError};
  if (On("throw") && !h.ftm) actions.push_back(kThrow);
  // A thread that only serves takes no callbacks and no [in] interfaces: it
  // then never waits in a proxy's Release (issue 18 defect 2's second case),
  // so "exit" sees ExitThread with only the dispatch below it.
  const bool plain_server = !h.ftm && h.home->server_only;
  if (On("callbacks") && !plain_server) actions.push_back(kCallback);
  // ExitThread only where nothing of the runtime's is on the thread's stack
  // below the call but the dispatch (a thread that only serves); a thread
  // inside its own outgoing call is exit-callback's case.
  if (On("exit") && remote_sta && h.home->server_only && Chance(32)) actions.push_back(kExit);
  if (On("exit-callback") && !h.ftm && !plain_server && CanExitHere(ctx) && h.home != ctx.home && Chance(64)) {
    actions.push_back(kCallbackExit);
  }
  if (On("cancel") && !h.ftm && Chance(16)) actions.push_back(kWaitCancel);
  ULONG action = actions[Rand(static_cast<std::uint32_t>(actions.size()))];
  CallWork(h.p, h.home, h.ftm, action, plain_server ? nullptr : ctx.sink, false);
}

// Pumps what is queued (an STA serves incoming calls here).
void Pump() {
  MSG msg;
  while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
}

// Fills the calling STA's queue to the quota, then keeps away from its queue
// for a moment so that calls and releases meet the full queue.
void FloodSelf() {
  DWORD tid = GetCurrentThreadId();
  int posted = 0;
  for (;;) {
    if (!PostThreadMessageW(tid, WM_USER + 1, 0, 0)) {
      DWORD error = GetLastError();
      if (error != ERROR_NOT_ENOUGH_QUOTA) Defect("flood: PostThreadMessageW failed with " + std::to_string(error));
      break;
    }
    if (++posted > 1000000) {
      Defect("flood: the queue never reached its quota");
      break;
    }
  }
  t_counts.Add("flood: queue filled to the quota");
  Sleep(2);  // The workload: an STA that stops pumping for a while.
  Pump();
}

// --- Message filter ---------------------------------------------------------------------

class RejectingFilter final : public IMessageFilter {
 public:
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown || riid == IID_IMessageFilter) {
      *ppv = static_cast<IMessageFilter*>(this);
      AddRef();
      return S_OK;
    }
    *ppv = nullptr;
    return E_NOINTERFACE;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return ++refs_; }
  STDMETHODIMP_(ULONG) Release() override {
    ULONG left = --refs_;
    if (left == 0) delete this;
    return left;
  }
  STDMETHODIMP_(DWORD) HandleInComingCall(DWORD call_type, HTASK, DWORD, LPINTERFACEINFO) override {
    if (call_type == CALLTYPE_NESTED) return SERVERCALL_ISHANDLED;
    return Chance(8) ? SERVERCALL_REJECTED : SERVERCALL_ISHANDLED;
  }
  STDMETHODIMP_(DWORD) RetryRejectedCall(HTASK, DWORD, DWORD) override { return static_cast<DWORD>(-1); }
  STDMETHODIMP_(DWORD) MessagePending(HTASK, DWORD, DWORD) override { return PENDINGMSG_WAITDEFPROCESS; }

 private:
  std::atomic<ULONG> refs_{1};
};

// --- Threads ------------------------------------------------------------------------------

// Publishes `object` (owned by the calling thread's apartment) on the board.
void Publish(ThreadCtx& ctx, StressObject* object) {
  Round& round = *g_round;
  Describe(object->id(), "published");
  auto entry = std::make_unique<Entry>();
  entry->object = object;
  entry->home = object->home();
  HRESULT hr = apartments::GlobalInterfaceTable()->RegisterInterfaceInGlobal(object->Identity(), IID_IStressTarget,
                                                                             &entry->git_cookie);
  if (FAILED(hr)) Defect("RegisterInterfaceInGlobal failed: " + HrName(hr));
  entry->strong = MarshalBytes(object->Identity(), MSHLFLAGS_TABLESTRONG, &hr);
  if (FAILED(hr)) Defect("TABLESTRONG marshaling failed: " + HrName(hr));
  if (!object->ftm()) {
    hr = CoLockObjectExternal(object->Identity(), TRUE, TRUE);
    if (FAILED(hr)) Defect("CoLockObjectExternal failed: " + HrName(hr));
    entry->locked = SUCCEEDED(hr);
  }
  entry->weak = MarshalBytes(object->Identity(), MSHLFLAGS_TABLEWEAK, &hr);
  if (FAILED(hr)) Defect("TABLEWEAK marshaling failed: " + HrName(hr));
  PostNormal(*entry, object->Identity());
  ctx.owned.push_back(object);
  std::lock_guard lock(round.entries_mu);
  round.entries.push_back(std::move(entry));
}

Entry* EntryOf(StressObject* object) {
  std::lock_guard lock(g_round->entries_mu);
  for (auto& e : g_round->entries) {
    if (e->object == object) return e.get();
  }
  return nullptr;
}

bool RoundRunning() {
  Round& round = *g_round;
  return round.phase.load() == 1 && g_round_calls.load() < round.call_budget &&
         std::chrono::steady_clock::now() < round.deadline;
}

// Drops what the thread holds at the end of its calling phase; for an owner,
// also the external locks (CoLockObjectExternal must be undone in the
// object's apartment).
void DropAll(ThreadCtx& ctx) {
  while (!ctx.held.empty()) ReleaseHeld(ctx, ctx.held.size() - 1);
}

void UnlockOwned(ThreadCtx& ctx) {
  for (StressObject* object : ctx.owned) {
    Entry* entry = EntryOf(object);
    if (entry != nullptr && entry->locked) {
      entry->locked = false;
      HRESULT hr = CoLockObjectExternal(object->Identity(), FALSE, TRUE);
      if (hr != S_OK) Defect("CoLockObjectExternal(FALSE) failed: " + HrName(hr));
    }
  }
}

struct ThreadArgs {
  int index;
  bool sta;
  std::uint64_t seed;
  HANDLE exit_event;  // set by the coordinator: leave
};

// Runs on the way out of a harness thread, normally or through ExitThread's
// unwind: releases what the thread holds and counts it out of the phases it
// has not passed.
struct ThreadGuard {
  ThreadCtx* ctx;
  bool drained = false;
  ~ThreadGuard() {
    if (ctx->home != nullptr && ctx->sta) ctx->home->dead.store(true);
    {
      // A thread that exits inside its own cancellable call leaves no request
      // behind for a later thread with the same id.
      std::lock_guard lock(g_canceller.mu);
      g_canceller.requests.erase(GetCurrentThreadId());
    }
    if (t_ring.index >= 0) {
      g_rings[t_ring.index].cancel_pending.store(false);
      g_rings[t_ring.index].home.store(nullptr);
    }
    if (!drained) {
      DropAll(*ctx);
      ++g_round->drained;
    }
    if (ctx->sink != nullptr) ctx->sink->Release();
    t_counts.Merge();
  }
};

DWORD WINAPI HarnessThread(LPVOID param) {
  ThreadArgs args = *static_cast<ThreadArgs*>(param);
  delete static_cast<ThreadArgs*>(param);
  Round& round = *g_round;
  t_rng.seed(static_cast<std::uint32_t>(args.seed));
  ThreadCtx ctx;
  ctx.index = args.index;
  ctx.sta = args.sta;
  Home* home = args.sta ? round.homes[static_cast<std::size_t>(args.index)].get() : round.homes.back().get();
  ctx.home = home;
  g_rings[MyRing()].home.store(home);
  if (FAILED(CoInitializeEx(nullptr, args.sta ? COINIT_APARTMENTTHREADED : COINIT_MULTITHREADED))) {
    std::fprintf(stderr, "CoInitializeEx failed\n");
    std::abort();
  }
  bool uninitialized = false;
  if (args.sta && home->filter) {
    auto* filter = new RejectingFilter;
    if (FAILED(CoRegisterMessageFilter(filter, nullptr))) Defect("CoRegisterMessageFilter failed");
    filter->Release();
  }
  if (On("cancel")) CoEnableCallCancellation(nullptr);
  ctx.sink = new StressObject(home, false);
  Describe(ctx.sink->id(), "sink");
  for (int i = 0; i < g_opt.objects; ++i) {
    Publish(ctx, new StressObject(home, /*ftm=*/i == g_opt.objects - 1 && Chance(2)));
  }
  {
    ThreadGuard guard{&ctx};
    t_exitable = args.sta;
    ++round.ready;
    while (round.phase.load() == 0) {
      if (args.sta) Pump();
      Sleep(0);
    }
    const bool will_shut_down = args.sta && On("shutdown") && Chance(6);
    while (RoundRunning()) {
      if (home->server_only) {
        MsgWaitForMultipleObjectsEx(0, nullptr, 1, QS_ALLINPUT, 0);
      } else {
        Step(ctx);
      }
      if (args.sta) {
        Pump();
        if (home->flood && Chance(200)) FloodSelf();
      }
      if (On("disconnect") && Chance(2000) && !ctx.owned.empty()) {
        StressObject* victim = ctx.owned[Rand(static_cast<std::uint32_t>(ctx.owned.size()))];
        HRESULT hr = CoDisconnectObject(victim->Identity(), 0);
        t_counts.Add("CoDisconnectObject " + HrName(hr));
        if (hr != S_OK) Defect("CoDisconnectObject returned " + HrName(hr));
      }
      if (will_shut_down && Chance(500)) break;
    }
    t_exitable = false;
    DropAll(ctx);
    UnlockOwned(ctx);
    if (ctx.sink != nullptr) {
      ctx.sink->Release();
      ctx.sink = nullptr;
    }
    if (args.sta && round.phase.load() == 1 && RoundRunning()) {
      // An apartment shutting down in the middle of the round.
      home->dead.store(true);
      CoUninitialize();
      uninitialized = true;
      t_counts.Add("STA shut down mid-round");
    }
    guard.drained = true;
    ++round.drained;
    // Serve calls (and release traffic) until the coordinator is done.
    while (WaitForSingleObject(args.exit_event, 0) == WAIT_TIMEOUT) {
      if (args.sta && !uninitialized) {
        MsgWaitForMultipleObjectsEx(1, &args.exit_event, 5, QS_ALLINPUT, 0);
        Pump();
      } else {
        WaitForSingleObject(args.exit_event, 5);
      }
    }
    if (args.sta) home->dead.store(true);
  }
  if (!uninitialized) CoUninitialize();
  return 0;
}

// Handle abuse next to the calls: double closes, waits on closed handles,
// DuplicateHandle with bad handles; each failure must be the documented one.
DWORD WINAPI HandleAbuseThread(LPVOID param) {
  t_rng.seed(static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(param)));
  while (RoundRunning() || g_round->phase.load() == 0) {
    HANDLE h = Chance(2) ? CreateEventW(nullptr, FALSE, FALSE, nullptr) : CreateSemaphoreW(nullptr, 0, 4, nullptr);
    if (h == nullptr) {
      Defect("CreateEventW/CreateSemaphoreW failed");
      continue;
    }
    if (Chance(2)) {
      HANDLE dup = nullptr;
      if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, FALSE,
                           DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE)) {
        Defect("DuplicateHandle(DUPLICATE_CLOSE_SOURCE) failed");
      } else {
        h = dup;
      }
    }
    if (!CloseHandle(h)) Defect("CloseHandle of an open handle failed");
    SetLastError(0);
    if (CloseHandle(h) || GetLastError() != ERROR_INVALID_HANDLE) {
      Defect("a double close did not fail with ERROR_INVALID_HANDLE");
    }
    SetLastError(0);
    if (WaitForSingleObject(h, 0) != WAIT_FAILED || GetLastError() != ERROR_INVALID_HANDLE) {
      Defect("a wait on a closed handle did not fail with ERROR_INVALID_HANDLE");
    }
    HANDLE dup = nullptr;
    SetLastError(0);
    if (DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, FALSE, DUPLICATE_SAME_ACCESS) ||
        GetLastError() != ERROR_INVALID_HANDLE || dup != nullptr) {
      Defect("DuplicateHandle of a closed handle did not fail with ERROR_INVALID_HANDLE");
    }
    if (SetEvent(h) || GetLastError() != ERROR_INVALID_HANDLE) {
      Defect("SetEvent on a closed handle did not fail with ERROR_INVALID_HANDLE");
    }
    t_counts.Add("handles: double close and stale use refused");
    Sleep(0);
  }
  t_counts.Merge();
  return 0;
}

DWORD WINAPI CancellerThread(LPVOID param) {
  HANDLE stop = param;
  while (WaitForSingleObject(stop, 1) == WAIT_TIMEOUT) {
    std::lock_guard lock(g_canceller.mu);
    for (auto& [tid, ring] : g_canceller.requests) {
      HRESULT hr = CoCancelCall(tid, 0);
      t_counts.Add("CoCancelCall " + HrName(hr));
      if (hr != S_OK && hr != RPC_E_CALL_CANCELED && hr != E_NOINTERFACE && hr != RPC_E_CALL_COMPLETE &&
          hr != CO_E_CANCEL_DISABLED) {
        Defect("CoCancelCall returned " + HrName(hr));
      }
    }
  }
  t_counts.Merge();
  return 0;
}

// --- The coordinator ----------------------------------------------------------------------

template <typename F>
bool WaitUntil(F condition, int ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return condition();
    Sleep(1);
  }
  return true;
}

std::size_t g_handle_baseline = 0;

void RunRound(int round_number, std::uint64_t seed, std::uint64_t budget) {
  std::mt19937_64 rng(seed);
  Round round;
  g_round = &round;
  g_round_calls = 0;
  round.call_budget = budget;
  const auto round_start = std::chrono::steady_clock::now();
  round.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const std::size_t handles_before = apartments::internal::OpenHandleCountForTesting();
  const std::uint64_t created_before = g_created.load();
  const std::uint64_t first_id = g_next_object.load();
  for (int i = 0; i < g_opt.stas; ++i) {
    auto home = std::make_unique<Home>();
    home->index = i;
    home->sta = true;
    home->filter = On("filter") && rng() % 3 == 0;
    home->flood = On("flood") && rng() % 3 == 0;
    home->server_only = i >= g_opt.stas - g_opt.server_stas;
    round.homes.push_back(std::move(home));
  }
  round.homes.push_back(std::make_unique<Home>());  // the MTA
  HANDLE exit_event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::vector<HANDLE> threads;
  const int total = g_opt.stas + g_opt.mtas;
  for (int i = 0; i < total; ++i) {
    auto* args = new ThreadArgs{i < g_opt.stas ? i : i - g_opt.stas, i < g_opt.stas, rng(), exit_event};
    HANDLE t = CreateThread(nullptr, 0, HarnessThread, args, 0, nullptr);
    if (t == nullptr) {
      std::fprintf(stderr, "CreateThread failed\n");
      std::abort();
    }
    threads.push_back(t);
  }
  if (!WaitUntil([&] { return round.ready.load() == total; }, 30000)) {
    Defect("round " + std::to_string(round_number) + ": threads did not get ready");
  }
  HANDLE abuse = nullptr;
  if (On("handles")) {
    abuse = CreateThread(nullptr, 0, HandleAbuseThread, reinterpret_cast<LPVOID>(rng()), 0, nullptr);
  }
  round.phase = 1;
  // The calling phase ends by budget or deadline (each thread checks).
  if (!WaitUntil([&] { return round.drained.load() == total; }, 120000)) {
    Defect("round " + std::to_string(round_number) + ": calling threads did not finish in 120 s");
  }
  round.phase = 2;
  auto phase_time = [&](const char* what) {
    if (g_opt.verbose) {
      std::fprintf(stderr, "  round %d: %s at %.2f s\n", round_number, what,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - round_start).count());
    }
  };
  phase_time("calls done");
  if (abuse != nullptr) {
    WaitForSingleObject(abuse, INFINITE);
    CloseHandle(abuse);
  }
  // Discard the marshal data still on the board (in the MTA: this thread).
  for (auto& entry : round.entries) {
    for (IStream* stream : entry->mailbox) {
      HRESULT hr = CoReleaseMarshalData(stream);
      if (!UnmarshalAllowed(hr)) Defect("CoReleaseMarshalData (mailbox) returned " + HrName(hr));
      stream->Release();
    }
    entry->mailbox.clear();
    HRESULT hr = apartments::GlobalInterfaceTable()->RevokeInterfaceFromGlobal(entry->git_cookie);
    if (hr != S_OK) Defect("RevokeInterfaceFromGlobal returned " + HrName(hr));
    for (auto* bytes : {&entry->strong, &entry->weak}) {
      IStream* stream = StreamFromBytes(*bytes);
      hr = CoReleaseMarshalData(stream);
      // TABLEWEAK data of an object whose last strong reference went is
      // already dead.
      if (!UnmarshalAllowed(hr)) Defect("CoReleaseMarshalData (table) returned " + HrName(hr));
      stream->Release();
    }
  }
  // Quiescence: every object holds only the harness's reference.
  auto settled = [&] {
    for (auto& entry : round.entries) {
      if (entry->object->RefCountForTesting() != 1) return false;
    }
    return apartments::internal::LiveStubManagersForTesting() == 0;
  };
  if (!WaitUntil(settled, 10000)) {
    for (auto& entry : round.entries) {
      ULONG refs = entry->object->RefCountForTesting();
      if (refs != 1) {
        Defect("round " + std::to_string(round_number) + ": lost release: object " +
               std::to_string(entry->object->id()) + " (" +
               (entry->object->ftm() ? "agile" : entry->home->sta ? "STA" : "MTA") +
               (entry->home->filter ? ", filter" : "") + (entry->home->flood ? ", flood" : "") +
               (entry->home->dead ? ", apartment gone" : "") + ") holds " + std::to_string(refs) +
               " references at quiescence, expected 1");
      }
    }
    if (apartments::internal::LiveStubManagersForTesting() != 0) {
      Defect("round " + std::to_string(round_number) + ": lost release: " +
             std::to_string(apartments::internal::LiveStubManagersForTesting()) +
             " stub managers alive at quiescence (callbacks' and clones' objects kept until their "
             "apartment shuts down)");
    }
  }
  phase_time("quiescent");
  SetEvent(exit_event);
  for (HANDLE t : threads) {
    if (WaitForSingleObject(t, 60000) != WAIT_OBJECT_0) {
      Defect("round " + std::to_string(round_number) + ": a thread did not end");
    }
    CloseHandle(t);
  }
  CloseHandle(exit_event);
  phase_time("threads ended");
  for (auto& entry : round.entries) entry->object->Release();
  if (!WaitUntil([] { return apartments::internal::LiveProxyManagersForTesting() == 0; }, 10000)) {
    Defect("round " + std::to_string(round_number) + ": " +
           std::to_string(apartments::internal::LiveProxyManagersForTesting()) +
           " proxy managers alive after the round");
  }
  // Every object made this round (published, sinks, clones) was destroyed
  // exactly once.
  {
    std::lock_guard lock(g_objects_mu);
    std::uint64_t alive = 0;
    for (auto it = g_destroyed.lower_bound(first_id); it != g_destroyed.end();) {
      if (it->second.destroyed == 0) {
        ++alive;
        Defect("round " + std::to_string(round_number) + ": object " + std::to_string(it->first) + " (" +
               it->second.what + ") never destroyed");
      }
      if (it->second.destroyed > 1) Defect("object " + std::to_string(it->first) + " destroyed more than once");
      it = g_destroyed.erase(it);
    }
    if (alive != 0) {
      Defect("round " + std::to_string(round_number) + ": " + std::to_string(alive) + " of " +
             std::to_string(g_created.load() - created_before) + " objects never destroyed");
    }
  }
  // The runtime keeps some handles for the life of the process (its MTA
  // worker pool, made on demand), so the baseline is taken after the first
  // round; the pool may still grow a little with the load later.
  const std::size_t handles_after = apartments::internal::OpenHandleCountForTesting();
  if (g_opt.verbose) std::fprintf(stderr, "  handles %zu -> %zu\n", handles_before, handles_after);
  if (g_handle_baseline == 0) {
    g_handle_baseline = handles_after;
  } else if (!WaitUntil([] { return apartments::internal::OpenHandleCountForTesting() <= g_handle_baseline + 16; },
                        10000)) {
    Defect("round " + std::to_string(round_number) + ": " +
           std::to_string(apartments::internal::OpenHandleCountForTesting() - g_handle_baseline) +
           " more handles open than after the first round");
  }
  g_round = nullptr;
}

int Usage() {
  std::fprintf(stderr,
               "usage: apartments_stress [--calls N] [--seed N] [--seeds N] [--stas N] [--server-stas N] [--mtas N]\n"
               "                         [--objects N] [--round-calls N] [--max-seconds S]\n"
               "                         [--scenarios a,b|all|none] [--with a,b] [--without a,b] [--verbose]\n"
               "scenarios (* = on by default):\n");
  for (const Scenario& s : kScenarios) {
    std::fprintf(stderr, "  %c %-14s %s\n", s.on_by_default ? '*' : ' ', s.name, s.what);
  }
  return 2;
}

bool SetScenarios(const std::string& list, bool value) {
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (name == "none") {
      for (bool& e : g_opt.enabled) e = false;
    } else if (name == "all") {
      for (bool& e : g_opt.enabled) e = value;
    } else if (!name.empty()) {
      int i = ScenarioIndex(name);
      if (i < 0) {
        std::fprintf(stderr, "unknown scenario '%s'\n", name.c_str());
        return false;
      }
      g_opt.enabled[i] = value;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

}  // namespace stress

int main(int argc, char** argv) {
  using namespace stress;
  for (int i = 0; i < kScenarioCount; ++i) g_opt.enabled[i] = kScenarios[i].on_by_default;
  int seeds = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--verbose") {
      g_opt.verbose = true;
      continue;
    }
    if (a == "--help" || (v = next()) == nullptr) return Usage();
    if (a == "--calls") g_opt.calls = std::strtoull(v, nullptr, 0);
    else if (a == "--seed") g_opt.seed = std::strtoull(v, nullptr, 0);
    else if (a == "--seeds") seeds = std::atoi(v);
    else if (a == "--stas") g_opt.stas = std::atoi(v);
    else if (a == "--server-stas") g_opt.server_stas = std::atoi(v);
    else if (a == "--mtas") g_opt.mtas = std::atoi(v);
    else if (a == "--objects") g_opt.objects = std::atoi(v);
    else if (a == "--round-calls") g_opt.round_calls = std::strtoull(v, nullptr, 0);
    else if (a == "--max-seconds") g_opt.max_seconds = std::atof(v);
    else if (a == "--scenarios") {
      SetScenarios("all", false);
      if (!SetScenarios(v, true)) return Usage();
    } else if (a == "--with") {
      if (!SetScenarios(v, true)) return Usage();
    } else if (a == "--without") {
      if (!SetScenarios(v, false)) return Usage();
    } else {
      return Usage();
    }
  }
  if (g_opt.server_stas < 0 || g_opt.stas - g_opt.server_stas < 1 || g_opt.mtas < 1 || g_opt.objects < 1 || seeds < 1 || g_opt.round_calls < 1) return Usage();
  std::string enabled;
  for (int i = 0; i < kScenarioCount; ++i) {
    if (g_opt.enabled[i]) enabled += std::string(enabled.empty() ? "" : ",") + kScenarios[i].name;
  }
  std::printf("apartments_stress: %" PRIu64 " calls per seed, seeds %" PRIu64 "..%" PRIu64
              ", %d STAs + %d MTA threads, scenarios %s\n",
              g_opt.calls, g_opt.seed, g_opt.seed + static_cast<std::uint64_t>(seeds) - 1, g_opt.stas, g_opt.mtas,
              enabled.empty() ? "(none)" : enabled.c_str());
  std::fflush(stdout);
  // A small quota makes floods cheap.
  if (On("flood") && apartments::SetPostMessageLimit(500) != S_OK) return 1;
  if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) return 1;
  HANDLE stop_canceller = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE canceller = On("cancel") ? CreateThread(nullptr, 0, CancellerThread, stop_canceller, 0, nullptr) : nullptr;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  int rounds = 0;
  bool out_of_time = false;
  for (int s = 0; s < seeds && !out_of_time; ++s) {
    std::uint64_t seed = g_opt.seed + static_cast<std::uint64_t>(s);
    std::mt19937_64 seeder(seed);
    std::uint64_t done_before = g_calls.load();
    while (g_calls.load() - done_before < g_opt.calls) {
      if (g_opt.max_seconds > 0 && elapsed() > g_opt.max_seconds) {
        out_of_time = true;
        break;
      }
      std::uint64_t left = g_opt.calls - (g_calls.load() - done_before);
      RunRound(rounds++, seeder(), std::min(left, g_opt.round_calls));
      if (g_opt.verbose) {
        std::fprintf(stderr, "round %d: %" PRIu64 " calls in total, %.1f s\n", rounds, g_calls.load(), elapsed());
      }
    }
  }
  SetEvent(stop_canceller);
  if (canceller != nullptr) {
    WaitForSingleObject(canceller, INFINITE);
    CloseHandle(canceller);
  }
  CloseHandle(stop_canceller);
  t_counts.Merge();
  CoUninitialize();
  const double seconds = elapsed();
  std::printf("%" PRIu64 " calls in %d rounds, %.1f s: %.0f calls/s%s\n", g_calls.load(), rounds, seconds,
              static_cast<double>(g_calls.load()) / seconds, out_of_time ? " (stopped at --max-seconds)" : "");
  std::printf("outcomes:\n");
  for (auto& [key, count] : g_outcomes) std::printf("  %12" PRIu64 "  %s\n", count, key.c_str());
  if (g_defect_count.load() != 0) {
    std::printf("DEFECTS: %" PRIu64 " (first %zu below)\n", g_defect_count.load(), g_defects.size());
    for (auto& d : g_defects) std::printf("  %s\n", d.c_str());
    return 1;
  }
  std::printf("no defects\n");
  return 0;
}
