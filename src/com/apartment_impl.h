// The apartment half of the COM core, behind the seam of apartment.h: the
// apartment objects (STA and MTA), the entries the channel queues to them
// (calls, one-way tasks, the runtime's work), the MTA worker pool, and the
// helpers channel.cc, channel_post.cc and apartment.cc share. This is the one
// machine that posts, withdraws and cancels work on an apartment: the Win32
// path, the proxies and the modern API all queue through Enqueue.
//
// A call's life (ChannelCall, on the caller's stack for the whole call):
//   caller: Enqueue -----------------> queued (linked in target's list,
//                                       and for an STA posted to its window)
//   target: ServeDispatched -> TakeDispatched (STA) or TakeOldest (MTA
//           worker) -> ServeCall ->
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
// A one-way task's life (PostedTask, apartments/apartment.h; an STA only):
// the same Enqueue, list, message and withdrawal; its ends are Run() (the
// thread's message loop dispatched it) or Drop() (the teardown took it), or
// Withdrawn() by the withdrawer that unlinked it (channel_post.cc). The
// runtime's one-way work (RuntimeTask) is queued likewise, exempt from the
// quota, and always runs (at the latest during Shutdown).
//
// Posted messages and the list. An STA's posted message carries the entry's
// address. The entry is linked before the message is posted and stays linked
// for as long as the message may be dispatched: the window procedure runs
// only while the window is alive, the teardown empties the list and destroys
// the window without pumping in between (tasks dropped earlier, from a
// shutdown callback, have their messages withdrawn), and messages for a
// destroyed window are dropped unread by the message layer. So a dispatched
// message always names a linked entry, or a tombstone. The post itself
// happens outside the apartment lock (so the woken STA thread never blocks on
// a lock its waker holds); if it fails, the poster unlinks the entry unless
// the teardown took it first, in which case the teardown ends it.
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

#include "apartments/apartment.h"
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

// kComCallMessage (the one message of an STA's window: lParam the entry) is
// in base/activity.h, for diagnostics. Its wParam is the entry's kind as
// bits (0: a call). kComTaskBit marks an application's one-way task, which
// the modal loop leaves queued (MessageQueue::Filter::wparam_mask): it runs
// only from the thread's message loop, as a PostMessage would, while calls
// and runtime work are served in the modal loop too. kComUnlinkedBit marks a
// task that cannot be withdrawn (Post, Schedule, CallFuture, CallAsync
// without options): it is not linked in the apartment's list, so its
// dispatch takes no lock; its message is its only record (see PostTask).
inline constexpr WPARAM kComTaskBit = 1;
inline constexpr WPARAM kComUnlinkedBit = 2;
inline constexpr WPARAM kComRuntimeBit = 4;
inline constexpr WPARAM kComPlainTask = kComTaskBit | kComUnlinkedBit;

// kCancelled: the callee found the call cancelled before it started it (it
// never ran); `result` is RPC_E_CALL_CANCELED or RPC_E_TIMEOUT.
// kDisconnected: the apartment shut down (or its thread was gone) before the
// call ran; it never ran. kThreadExited: the thread running the call exited
// inside it (ExitThread, thread cancellation): it ran and never returned;
// `result` is RPC_E_DISCONNECTED and `exited_at` says when.
enum class CallOutcome : std::uint8_t {
  kPending, kDone, kDisconnected, kRejected, kCancelled, kThreadExited
};

// A call: the caller's record, on its stack for the whole call. Its queue
// links and stage (QueueEntry) are guarded by the target's lock (shared_).
struct ChannelCall : QueueEntry {
  ChannelCall() noexcept : QueueEntry(Kind::kCall) {}
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
};

// The runtime's own one-way work (PostRuntimeWork): queued as a task is, but
// exempt from the posted-message quota, served by the modal loop as calls
// are, never withdrawn, and run (not dropped) when the apartment shuts down.
struct RuntimeTask final : QueueEntry {
  explicit RuntimeTask(std::function<void()> w) : QueueEntry(Kind::kRuntimeTask), work(std::move(w)) {}
  std::function<void()> work;
};

// Completes `call` (see the file comment). Any thread; exactly once per
// Enqueue. Memory ordering: the outcome fields written here are visible to
// the caller once its wait on the reply event returns.
void CompleteCall(ChannelCall* call, CallOutcome outcome, HRESULT result);

// Runs an incoming call the current thread took (an STA thread through
// ServeDispatched, or an MTA worker through TakeOldest), consulting `filter`
// (may be null) first.
// Completes the call in every case, even if invoke unwinds the thread.
void ServeCall(ApartmentImpl* apartment, ChannelCall* call, IMessageFilter* filter);

// Serves an entry named by a dispatched kComCallMessage on its STA's thread
// (the window procedure, the modal loop): takes it (TakeDispatched), then
// serves a call (ServeCall), runs a task or the runtime's work, or, when the
// apartment no longer runs, ends it (a call disconnected, a task dropped;
// runtime work still runs). A withdrawn entry's tombstone is skipped.
void ServeDispatched(ApartmentImpl* sta, QueueEntry* entry, IMessageFilter* filter);

// Runs an application's one-way task on its apartment's thread (Run() ends
// it); an exception it throws has no caller to reach: reported on stderr.
void RunTask(PostedTask* task);

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

  // Queues `entry` for this apartment: a call (ChannelCall), an application's
  // one-way task (PostedTask) or the runtime's (RuntimeTask). Any thread.
  // Returns S_OK: queued, and exactly one end follows (a call's
  // CompleteCall; a task's Run or Drop; a runtime task runs), unless it is
  // withdrawn first. Otherwise `entry` is untouched and never runs:
  // RPC_E_DISCONNECTED (shutting down or gone; runtime work is still accepted
  // while shutting down and runs during Shutdown); for an STA,
  // HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA) when its queue is full
  // (runtime work is exempt from the quota); or the error a withdrawer
  // cancelled a task with before it was queued (Stage::kCancelled).
  // An STA gets one message per entry (kComCallMessage, lParam the entry,
  // wParam its kind: the modal loop serves calls and runtime work and leaves
  // tasks queued, see kComTaskBit).
  HRESULT Enqueue(QueueEntry* entry);
  // The same for a call (its path decides nothing about other kinds).
  HRESULT Enqueue(ChannelCall* call);

  // An STA's plain one-way task (one that is never withdrawn): posted with
  // kComPlainTask, not linked, under the apartment's lock, so that once the
  // shutdown has begun (under that lock) every such message the teardown
  // must drop is already queued (DropQueuedTasks). Any thread. Returns as
  // Enqueue; on S_OK exactly one of Run() (the window procedure, no lock
  // taken) or Drop() follows.
  HRESULT PostTask(PostedTask* task);
  // The apartment's thread: drops the plain task a message loop retrieved
  // (`msg`) and will not dispatch (it is stopping). Other messages: nothing.
  void DiscardRetrieved(const MSG& msg);

  // STA thread: unlinks `entry`, named by a dispatched message (so linked, see
  // the file comment, unless withdrawn). Returns kRun to serve it;
  // kDisconnected when the apartment no longer runs (the caller ends it:
  // a call completed as disconnected, a task dropped, runtime work run);
  // kWithdrawn when the message is the tombstone of an entry its poster
  // withdrew (Withdraw): the record may be gone, touch nothing.
  enum class Take : std::uint8_t { kRun, kDisconnected, kWithdrawn };
  Take TakeDispatched(QueueEntry* entry);

  // Withdraws `entry` (a call, by its caller after a successful Enqueue and
  // before it completed; a withdrawable task, by a withdrawer holding it
  // alive). kWithdrawn when it was still queued: it never runs, no end
  // follows, and the apartment never touches it again. kTaken when the
  // apartment (or the teardown) already took it: its one end follows.
  // kCancelledBeforeQueued when it was not queued yet (Stage::kIdle): it is
  // marked cancelled with `why`, and Enqueue then refuses it with that error.
  // Atomic with Enqueue, TakeDispatched/TakeOldest and the teardown (all
  // under its lock). For an STA, the posted message is removed from the
  // thread's queue (freeing its quota slot) if the thread has not yet moved
  // it into its retrieval batch; otherwise it stays as a tombstone that
  // TakeDispatched recognizes (its quota slot is freed when the thread
  // retrieves it, without running anything).
  enum class Withdrawal : std::uint8_t { kWithdrawn, kTaken, kCancelledBeforeQueued };
  Withdrawal Withdraw(QueueEntry* entry, HRESULT why = 0);
  // MTA worker: unlinks and returns the oldest queued call, or null.
  ChannelCall* TakeOldest();

  // The apartment's thread, from a shutdown callback (the modern API's):
  // drops the one-way tasks still queued (Drop, outside the lock), removing
  // their messages (plain tasks are found by their messages alone). Later
  // tasks are refused (the apartment is shutting down).
  void DropQueuedTasks();

  // Shuts the apartment down on the calling thread: callbacks (reverse
  // order), then queued calls completed with RPC_E_DISCONNECTED (and tasks
  // left dropped), then the runtime work still queued run, then (STA) the
  // window destroyed. Idempotent.
  void Shutdown();

  // Queues `work` (the runtime's own, e.g. releasing a stub's references) to
  // run on this apartment's thread (an MTA worker for the MTA), one-way: a
  // RuntimeTask through Enqueue. Any thread. Never refused by a message
  // filter nor by the posted-message quota; served by the modal loop as
  // calls are. Work queued before the apartment is gone runs, at the latest,
  // during Shutdown(); returns false (and drops `work`) only once it is gone.
  bool PostRuntimeWork(std::function<void()> work);
  // MTA: runs the queued runtime work (a worker). Any thread of the MTA.
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
    // The queued entries, oldest first (QueueEntry::prev/next): calls,
    // tasks and runtime work, each in Stage::kQueued.
    QueueEntry* head = nullptr;
    QueueEntry* tail = nullptr;
    // STA: entries withdrawn while their message was already in the thread's
    // retrieval batch (message/withdrawn_posts.h). An address there names no
    // live record: it is matched against dispatched messages only, then
    // forgotten.
    WithdrawnPosts withdrawn;

    void Link(QueueEntry* entry);     // -> kQueued
    void Unlink(QueueEntry* entry);   // The caller sets the new stage.
  };
  // Removes `entry`'s message from the STA's queue, or leaves its tombstone.
  void WithdrawMessageLocked(SharedState& locked, QueueEntry* entry);
  template <QueueEntry::Kind K>
  HRESULT EnqueueAs(QueueEntry* entry);
  // Enqueue's refusals (not running, or cancelled before queued).
  HRESULT RefuseLocked(SharedState& locked, QueueEntry* entry);
  // The apartment's thread: removes the plain tasks' messages from its
  // queue, adding their tasks to *dropped.
  void DrainPlainTasks(std::vector<PostedTask*>* dropped);

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
  // MTA: set when runtime work is linked (release, under the lock): lets
  // workers skip the lock when there is nothing to run (acquire).
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
