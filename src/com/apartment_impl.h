// The apartment half of the COM core, behind the seam of apartment.h: the
// apartment objects (STA and MTA), the call records the channel hands them,
// the MTA worker pool, and the helpers channel.cc and apartment.cc share.
//
// A call's life (ChannelCall, on the caller's stack for the whole call):
//   caller: Enqueue -----------------> queued (linked in target's list,
//                                       and for an STA posted to its window)
//   target: TakeDispatched (STA) or TakeOldest (MTA worker) -> ServeCall ->
//           CompleteCall(kDone | kRejected | kCancelled | kThreadExited)
//   teardown (Shutdown): takes the list -> CompleteCall(kDisconnected)
//   caller: Withdraw (a cancelled or timed-out call still queued): unlinked,
//           never runs, no CompleteCall
// Exactly one CompleteCall() per Enqueue() not withdrawn: whoever unlinks the
// record from the target's list (the serving thread or the teardown) owns it
// until it completes it. CompleteCall() stores the outcome, then signals the call's reply
// event, and never touches the record again; the caller reads the outcome
// after its wait on the reply event returns (SignalEvent's release, the
// wait's acquire), so the record may live on the caller's stack.
//
// Posted messages and the list. An STA's posted message carries the record's
// address. The record is linked before the message is posted and stays linked
// for as long as the message may be dispatched: the window procedure runs
// only while the window is alive, the teardown empties the list and destroys
// the window without pumping in between, and messages for a destroyed window
// are dropped unread by the message layer. So a dispatched message always
// names a linked record. The post itself happens outside the apartment lock
// (so the woken STA thread never blocks on a lock its waker holds); if it
// fails, the poster unlinks the record unless the teardown took it first, in
// which case the teardown completes it.
//
// Lock order: ApartmentImpl's lock (shared_) -> message queue lock -> kernel lock. The
// apartment lock is never held while user code runs or while waiting.
#ifndef APARTMENTS_SRC_COM_APARTMENT_IMPL_H_
#define APARTMENTS_SRC_COM_APARTMENT_IMPL_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_message.h"
#include "base/explain.h"
#include "com/apartment.h"
#include "com/com_thread.h"
#include "kernel/kernel.h"
#include "base/guarded.h"
#include "message/withdrawn_posts.h"

namespace apartments::internal {

class MessageQueue;
class ApartmentImpl;
struct CallCancel;

// kComCallMessage (an STA window's incoming call) and kComRuntimeMessage (its
// runtime work, PostRuntimeWork) are in base/activity.h, for diagnostics.

// kCancelled: the callee found the call cancelled before it started it (it
// never ran); `result` is RPC_E_CALL_CANCELED or RPC_E_TIMEOUT.
// kDisconnected: the apartment shut down (or its thread was gone) before the
// call ran; it never ran. kThreadExited: the thread running the call exited
// inside it (ExitThread, thread cancellation): it ran and never returned;
// `result` is RPC_E_DISCONNECTED and `exited_at` says when.
enum class CallOutcome : std::uint8_t {
  kPending, kDone, kDisconnected, kRejected, kCancelled, kThreadExited
};

struct ChannelCall {
  // Set by the caller before Enqueue; read-only afterwards.
  std::function<HRESULT()>* invoke = nullptr;
  GUID causality{};
  DWORD caller_tid = 0;
  DWORD posted_tick = 0;            // GetTickCount() at the first attempt.
  Event* reply = nullptr;           // The caller holds a reference throughout.
  ChannelCall* outer = nullptr;     // The caller's enclosing outgoing call.
  ApartmentImpl* target = nullptr;  // Kept alive by the caller's ApartmentRef.
  // A cancellable call's shared cancellation state (com/cancel.h), or null.
  // Owned by the caller, which outlives every use by the callee: a call
  // withdrawn from the queue is never touched by the target again, and a
  // call the target took is waited for until it completes.
  CallCancel* cancel = nullptr;
  // The runtime's own call (InvokeRuntimeInApartment): the target's message
  // filter is not consulted.
  bool runtime = false;
  // What the target's message filter is told about the call, or null
  // ({NULL, IID_NULL, 0}). Owned by the caller, which waits.
  const CallDescription* description = nullptr;

  // Written by whoever completes the call, before it signals `reply`.
  CallOutcome outcome = CallOutcome::kPending;
  HRESULT result = S_OK;
  DWORD reject_type = 0;  // SERVERCALL_REJECTED or SERVERCALL_RETRYLATER.
  bool threw = false;
  std::string fault;      // The exception's message (RPC_E_SERVERFAULT).
  Clock::TimePoint exited_at{};  // kThreadExited: when the thread left the call.
  // kDone with a failure: the error info the callee left on its thread (one
  // reference, handed to the caller), as Windows' channel carries a server's
  // error object back to its client; null when it left none.
  IErrorInfo* error_info = nullptr;

  // The thread running the call (MTA worker or STA thread), 0 until it starts.
  std::atomic<DWORD> executing_tid{0};

  // Links in the target's queued list; guarded by the target's lock (shared_).
  ChannelCall* prev = nullptr;
  ChannelCall* next = nullptr;
  bool linked = false;
};

// Completes `call` (see the file comment). Any thread; exactly once per
// Enqueue. Memory ordering: the outcome fields written here are visible to
// the caller once its wait on the reply event returns.
void CompleteCall(ChannelCall* call, CallOutcome outcome, HRESULT result);

// Runs an incoming call on the current thread (an STA thread from its window
// procedure, or an MTA worker), consulting `filter` (may be null) first.
// Completes the call in every case, even if invoke unwinds the thread.
void ServeCall(ApartmentImpl* apartment, ChannelCall* call, IMessageFilter* filter);

// Whether the exception being handled (inside a catch) is a forced unwind
// (ExitThread's pthread_exit, thread cancellation) or another foreign one,
// which must be rethrown. Not by catching abi::__forced_unwind&: it has no
// C++ object, and binding the reference trips UBSan ("reference binding to
// null pointer"); std::current_exception() is empty exactly for those.
inline bool HandlingForcedUnwind() noexcept { return !std::current_exception(); }

// State table of an apartment (see also apartment.h):
//   kRunning --Shutdown()--> kShuttingDown (new Enqueue: RPC_E_DISCONNECTED;
//            callbacks run) --> kGone (queued calls completed kDisconnected;
//            STA window destroyed)
class ApartmentImpl final : public ComApartment, public std::enable_shared_from_this<ApartmentImpl> {
 public:
  enum class State : std::uint8_t { kRunning, kShuttingDown, kGone };

  // An STA owned by the calling thread, whose window is `hwnd` on `queue`.
  static std::shared_ptr<ApartmentImpl> MakeSta(bool main_sta, HWND hwnd, MessageQueue* queue,
                                                std::uint64_t incarnation);
  static std::shared_ptr<ApartmentImpl> MakeMta();

  ApartmentImpl(ApartmentKind kind, bool main_sta, DWORD tid);

  // ComApartment.
  ApartmentKind kind() const noexcept override { return kind_; }
  bool is_main_sta() const noexcept override { return main_sta_; }
  std::uint64_t id() const noexcept override { return id_; }
  DWORD thread_id() const noexcept override { return tid_; }
  bool IsCurrent() const noexcept override;
  bool IsShutDown() const noexcept override {
    return shut_down_.load(std::memory_order_acquire);
  }
  Clock::TimePoint shutdown_time() const noexcept override {
    return Clock::TimePoint(Clock::Duration(shutdown_rep_.load(std::memory_order_acquire)));
  }
  std::string Describe() const override;
  bool AddShutdownCallback(std::function<void()> callback) override;

  HWND hwnd() const noexcept { return hwnd_; }
  // STA: the CPU its thread last went idle on (-1: unknown, or an MTA), the
  // hint a caller passes as WaitOptions::spin_peer_cpu so that it spins for
  // the reply only when that is another CPU than its own. Any thread.
  int owner_cpu() const noexcept;

  // Queues `call` for execution in this apartment. Any thread.
  // Returns S_OK (queued: exactly one CompleteCall will follow);
  // RPC_E_DISCONNECTED (shutting down or gone); or, for an STA, the Win32
  // error of the post as HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA) when its
  // queue is full. On failure `call` is untouched and never runs.
  HRESULT Enqueue(ChannelCall* call);

  // STA thread: unlinks `call`, named by a dispatched message (so linked, see
  // the file comment, unless withdrawn). Returns kRun to serve it;
  // kDisconnected when the apartment no longer runs (the caller completes the
  // call as disconnected); kWithdrawn when the message is the tombstone of a
  // call its caller withdrew (Withdraw): the record may be gone, touch nothing.
  enum class Take : std::uint8_t { kRun, kDisconnected, kWithdrawn };
  Take TakeDispatched(ChannelCall* call);

  // The caller of `call` (only it, after a successful Enqueue and before the
  // call completed) withdraws it: true when it was still queued, so it never
  // runs, no CompleteCall follows, and the target never touches the record
  // again; false when the target (or the teardown) already took it, so
  // exactly one CompleteCall follows. Atomic with TakeDispatched/TakeOldest
  // and the teardown (all under its lock). For an STA, the posted message is
  // removed from the thread's queue (freeing its quota slot) if the thread
  // has not yet moved it into its retrieval batch; otherwise it stays as a
  // tombstone that TakeDispatched recognizes (its quota slot is freed when
  // the thread retrieves it, without running anything).
  bool Withdraw(ChannelCall* call);
  // MTA worker: unlinks and returns the oldest queued call, or null.
  ChannelCall* TakeOldest();

  // Shuts the apartment down on the calling thread: callbacks (reverse
  // order), then queued calls completed with RPC_E_DISCONNECTED, then the
  // runtime work still queued run, then (STA) the window destroyed.
  // Idempotent.
  void Shutdown();

  // Queues `work` (the runtime's own, e.g. releasing a stub's references) to
  // run on this apartment's thread (an MTA worker for the MTA), one-way. Any
  // thread. Never refused by a message filter nor by the posted-message
  // quota: an STA gets one wake-up message (kComRuntimeMessage, exempt from
  // the quota) per batch. Work queued before the apartment is gone runs, at
  // the latest, during Shutdown(); returns false (and drops `work`) only
  // once it is gone.
  bool PostRuntimeWork(std::function<void()> work);
  // Runs the queued runtime work. The apartment's thread (STA: its window
  // procedure; MTA: a worker).
  void RunRuntimeWork();
  // Whether runtime work may be queued (a hint: RunRuntimeWork re-checks).
  bool HasRuntimeWork() const noexcept {
    return has_runtime_work_.load(std::memory_order_acquire);
  }

 private:
  // What the apartment's lock guards (its callers', its own thread's and the
  // teardown's shared state): reachable only through shared_.Lock().
  struct SharedState {
    State state = State::kRunning;
    std::vector<std::function<void()>> callbacks;
    // The queued calls, oldest first (ChannelCall::prev/next).
    ChannelCall* head = nullptr;
    ChannelCall* tail = nullptr;
    // STA: calls withdrawn while their message was already in the thread's
    // retrieval batch (message/withdrawn_posts.h). An address there names no
    // live record: it is matched against dispatched messages only, then
    // forgotten.
    WithdrawnPosts withdrawn;
    // PostRuntimeWork's queue, and whether a wake-up for it is outstanding.
    std::vector<std::function<void()>> runtime_work;
    bool runtime_wake_pending = false;

    void Link(ChannelCall* call);
    void Unlink(ChannelCall* call);
  };

  const ApartmentKind kind_;
  const bool main_sta_;
  const std::uint64_t id_;
  const DWORD tid_;
  HWND hwnd_ = nullptr;             // STA: set once at creation.
  MessageQueue* queue_ = nullptr;   // STA: the thread's queue (type-stable).
  std::uint64_t incarnation_ = 0;   // STA: the queue's incarnation.
  std::string creation_name_;       // The thread's name when created.
  // STA: the thread's name when shutdown began (thread ids are reused, so a
  // gone apartment does not look its thread up again). Written once, before
  // shut_down_ is set (release); read after seeing it set (acquire).
  std::string final_name_;

  std::atomic<bool> shut_down_{false};
  std::atomic<Clock::Duration::rep> shutdown_rep_{0};

  // A cache line of its own (with what it guards): callers on other CPUs
  // read the fields above on every call, and must not miss on them because
  // the apartment's thread just took this lock.
  // A futex lock (kernel/futex.h): every call into the apartment takes it
  // twice (Enqueue, then TakeDispatched or TakeOldest), for a few dozen
  // instructions.
  alignas(64) Guarded<SharedState, FutexLock> shared_;
  // Set with runtime_wake_pending (release, under the lock): lets MTA workers
  // skip the lock when there is nothing to run (acquire).
  std::atomic<bool> has_runtime_work_{false};
};

// The calling thread's apartment without taking a reference: its STA, the
// MTA (explicit, worker or implicit) or null. The pointer stays valid while
// the thread stays in it (an implicit-MTA pointer: until the MTA shuts down;
// use CurrentApartment() to hold it).
ApartmentImpl* CurrentApartmentRaw(ComThreadData* data);

// The calling thread's STA, or null.
ApartmentImpl* CurrentSta(ComThreadData* data);

// The calling thread's causality id for a new outgoing call.
GUID CurrentCausality(ComThreadData& data);

// Publishes the calling thread's apartment (null: none) for diagnostics.
void PublishApartmentTag(const ComApartment* apartment) noexcept;

// How ModalWait waits; name the fields that differ from the defaults
// (ModalWaitOptions{.timeout_ms = 100, .pending = &call}).
struct ModalWaitOptions {
  DWORD timeout_ms = INFINITE;
  // MWMO_* flags (MsgWaitForMultipleObjectsEx's).
  DWORD mwmo_flags = 0;
  // Also dispatch posted messages for other windows, not only the COM
  // window's.
  bool dispatch_window_messages = false;
  // The outgoing call the wait is for (may be null; must outlive the wait),
  // for the message filter's MessagePending and the wait chain.
  const ChannelCall* pending = nullptr;
  // The thread the wait is for, published with BlockKind::kComCall.
  DWORD target_tid = 0;
  // See WaitOptions (the callee's CPU hint for an outgoing call's reply
  // wait, else -1).
  int spin_peer_cpu = -1;
};

// The modal loop of an STA thread (see CoWaitForMultipleHandles): waits on
// `count` objects like MsgWaitForMultipleObjectsEx, serving incoming COM
// calls and sent messages, dispatching other posted messages only with
// `options.dispatch_window_messages`; a WM_QUIT seen is re-posted before
// returning. Returns as MsgWaitForMultipleObjectsEx, never WAIT_OBJECT_0 +
// count (input is served, not returned) unless `options.mwmo_flags` has
// MWMO_INPUTAVAILABLE and other input is queued.
DWORD ModalWait(ComThreadData& data, ApartmentImpl* sta, KernelObject** objects,
                const HANDLE* handles, DWORD count, const ModalWaitOptions& options);

// CoWaitForMultipleHandles in an STA (co_wait.cc): Windows' rule, which
// differs from ModalWait's (see co_wait.cc). `flags` are the COWAIT_* flags.
// Returns as WaitForMultipleObjectsEx (WAIT_IO_COMPLETION when alertable and
// APCs ran; WAIT_OBJECT_0 + count only for COWAIT_INPUTAVAILABLE).
DWORD CoWaitInSta(ComThreadData& data, ApartmentImpl* sta, KernelObject** objects,
                  const HANDLE* handles, DWORD count, DWORD timeout_ms, DWORD flags);

// Test-only: `hook` is called with each outgoing call's reply event handle
// (the per-call event the callee signals) right before the channel resolves
// it to wait on. A test closes the handle there to stand for "a handle on the
// call path was closed by mistake": the channel then finds it invalid and
// fails the call with RPC_E_SYS_CALL_FAILED before posting it (so it never
// runs), with an explanation. Null removes the hook. Any thread; the hook runs
// on the calling thread.
void SetReplyEventHookForTesting(void (*hook)(HANDLE reply_event));

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_APARTMENT_IMPL_H_
