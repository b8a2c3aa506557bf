// The message layer's internals: per-thread message queues, sent-message
// records, and the diagnostics view of the queues.
//
// One MessageQueue per thread that made a message call, kept in
// ThreadState::layer_data[Layer::kMessage] and found by thread id through a
// registry. Queue objects are type-stable: never freed, recycled for new
// threads after their thread exits (each use is a new `incarnation`), so a
// poster holding a stale pointer may still lock it and find out it is gone.
//
// Lifecycle of a queue object:
//   kFree --(thread's first message call)--> kAlive (in the registry)
//   kAlive --(thread exit hook)--> kFree (messages released, sends failed)
//
// Posted messages. Producers append to `incoming_` under `lock_`. The owner
// thread (the only reader) moves the whole incoming batch into its private
// `local_` buffer under one lock acquisition and retrieves from it without
// the lock. Buffers keep their capacity, so steady-state posting allocates
// nothing. The quota counts messages posted and not yet retrieved:
// posted_total_ (producers, under the lock) minus retrieved_total_ (written by
// the owner only, without the lock). Producers keep a snapshot of
// retrieved_total_ under the lock and reload it only when the conservative
// depth (posted - snapshot) reaches the limit or the high-water mark, so the
// fast path never touches the owner's cache line, yet the quota and the
// high-water mark are exact.
//
// Streaming. When one producer streams posts, throughput depends on batch
// size, not on per-message work: on one CPU, an owner that sleeps as soon as
// its queue is empty is woken (and preempts its producer) every few dozen
// messages; across CPUs, an owner faster than its producer refills a few
// messages at a time, and both pull the lock's and the buffers' cache lines
// back and forth. So an owner whose latest run took a batch yields to a
// producer on its own CPU instead of sleeping, and lets the messages of a
// producer on another CPU gather (bounded) before it refills (GetOrPeek,
// LetStreamGather). A round trip takes one message per run and never waits.
//
// Sleeping. The owner sleeps in the kernel wait engine on `event_` (an
// auto-reset kernel Event, plus the user's handles for
// MsgWaitForMultipleObjectsEx). Before sleeping it publishes, under the lock,
// the QS_ bits that should wake it in `wake_mask_`; a producer adding matching
// input clears the mask and signals the event after dropping the lock. A post
// to a queue whose owner is not sleeping makes no system call. A stale signal
// only causes a spurious wakeup, after which the owner re-checks its queue.
//
// Lock order: window table lock -> queue lock -> kernel lock. A thread holds
// at most one queue lock at a time and never calls out (window procedures,
// kernel waits) while holding one.
#ifndef APARTMENTS_SRC_MESSAGE_QUEUE_H_
#define APARTMENTS_SRC_MESSAGE_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "apartments/clock.h"
#include "apartments/win32_message.h"
#include "base/thread_state.h"
#include "kernel/futex.h"
#include "kernel/kernel.h"
#include "message/window.h"

namespace apartments::internal {

// The queue's lock: the kernel's futex lock (Drepper's three-state lock with a
// brief spin, kernel/futex.h); the queue's critical sections are a few dozen
// instructions.
using QueueLock = FutexLock;

// An internal QS_ bit: a reply to a message this thread sent has arrived.
inline constexpr std::uint32_t kQsReply = 0x80000000u;
inline constexpr std::uint32_t kQsPosted = QS_POSTMESSAGE | QS_ALLPOSTMESSAGE;
inline constexpr std::uint32_t kQsValidMask = QS_ALLINPUT | QS_ALLPOSTMESSAGE;
// An internal MsgWait flag (beside the MWMO_ ones): sent messages are only
// reported (QS_SENDMESSAGE), never served inside the wait, as Windows'
// MsgWaitForMultipleObjectsEx does. Without it, MsgWait serves them (the
// runtime's own waits and WaitMessage).
inline constexpr DWORD kMwmoReportSentOnly = 0x80000000u;

// Whether a Get/Peek hwnd filter selects thread messages only, as (HWND)-1
// does: Windows compares the 32 bits a window handle has, so (HWND)1 and
// (HWND)0xFFFFFFFF select the same (Wine's server treats 1 and -1 alike).
inline bool IsThreadMessageFilter(HWND hwnd) noexcept {
  const auto low = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(hwnd));
  return low == 0xFFFFFFFFu || low == 1u;
}

// 32 bytes: two to a cache line.
struct PostedMessage {
  HWND hwnd;  // kHoleHwnd: a hole left by a filtered retrieval (owner's buffer only).
  UINT message;
  DWORD time;
  WPARAM wparam;
  LPARAM lparam;

  void CopyTo(MSG* msg) const noexcept {
    msg->hwnd = hwnd;
    msg->message = message;
    msg->wParam = wparam;
    msg->lParam = lparam;
    msg->time = time;
    msg->pt = POINT{0, 0};
  }
};
static_assert(sizeof(PostedMessage) == 32);
// Never a window (an HWND's generation is at least 1, so its value at least
// 0x10001) and never null (a thread message).
inline const HWND kHoleHwnd = reinterpret_cast<HWND>(std::uintptr_t{1});

class MessageQueue;

// A message sent by one thread to another's window. Heap-allocated with two
// references (sender, receiver), because either side may give up on it
// first (a sender's timeout, a receiver's thread exit).
// States: kPending (in the receiver's list) -> kRunning (taken by the
// receiver) -> kReplied | kFailed. A timed-out sender unlinks a kPending
// record under the receiver's lock and it never runs.
struct SentMessage {
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kReplied = 2;
  static constexpr std::uint32_t kFailed = 3;

  HWND hwnd = nullptr;
  UINT message = 0;
  WPARAM wparam = 0;
  LPARAM lparam = 0;
  MessageQueue* sender = nullptr;  // Type-stable; woken on reply.
  DWORD sender_tid = 0;
  // Written by the receiver before it publishes kReplied (release); read by
  // the sender after it observes kReplied (acquire).
  LRESULT result = 0;
  std::atomic<std::uint32_t> state{kPending};
  std::atomic<int> refs{2};
  // Receiver side, owner thread only.
  bool replied = false;
  SentMessage* next = nullptr;           // Guarded by the receiver's lock.
  SentMessage* outer_received = nullptr;  // The receiver's stack of sends being served.

  void Release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

class MessageQueue {
 public:
  MessageQueue();
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;

  // --- Producer side (any thread) -------------------------------------------

  // Whether a post counts against the quota. kExempt is for the runtime's
  // own wake-ups that must not be lost (the COM runtime's deferred releases,
  // at most one queued per apartment): it is queued even at the quota, and
  // counts towards the depth like any other message once queued.
  enum class PostQuota : std::uint8_t { kCounted, kExempt };
  // Queues a posted message if this queue still belongs to thread `tid` in
  // incarnation `incarnation` (0: any incarnation of a live queue of `tid`).
  // Returns ERROR_SUCCESS, ERROR_INVALID_THREAD_ID (gone) or
  // ERROR_NOT_ENOUGH_QUOTA (kCounted only).
  DWORD Post(DWORD tid, std::uint64_t incarnation, HWND hwnd, UINT message, WPARAM wparam,
             LPARAM lparam, PostQuota quota = PostQuota::kCounted) noexcept;
  // Withdraws the posted message (hwnd, message, lparam) that the owner has
  // not yet retrieved, if it is still in the shared incoming buffer: it is
  // removed and its quota slot freed. False when the owner already moved it
  // into its private batch (it counts as retrieved from then on) or it is not
  // queued. Atomic with the owner's retrieval: both happen under lock_.
  // Thread safety: any thread.
  bool WithdrawPosted(HWND hwnd, UINT message, LPARAM lparam) noexcept;
  // Queues a sent message. ERROR_SUCCESS or ERROR_INVALID_WINDOW_HANDLE (the
  // queue's thread has gone).
  DWORD QueueSent(std::uint64_t incarnation, SentMessage* sent) noexcept;
  // Withdraws a sent message not yet taken by the receiver; false when it was
  // taken (or failed) already.
  bool WithdrawSent(SentMessage* sent) noexcept;
  // Publishes the reply to `sent` (whose sender is this queue) and wakes the
  // sender if it sleeps waiting for replies.
  void DeliverReply(SentMessage* sent, LRESULT result, bool failed) noexcept;

  // --- Owner side (the owning thread only) ---------------------------------

  struct Filter {
    // nullptr any, (HWND)-1 (or another IsThreadMessageFilter value) thread
    // messages, else a window.
    HWND hwnd = nullptr;
    UINT min = 0;
    UINT max = 0;
    bool posted = true;  // Examine posted messages (and WM_QUIT).
    bool sent = true;    // Serve sent messages.
    bool remove = true;
    // Also require (wParam & wparam_mask) == wparam_value of a posted
    // message: the COM modal loop retrieves its window's calls and leaves the
    // one-way tasks posted there with the same message queued, and the
    // teardown drains those tasks alone (com/apartment_impl.h).
    WPARAM wparam_mask = 0;
    WPARAM wparam_value = 0;
  };
  // Serves pending sent messages, then looks for a posted message (or quit).
  // With `wait`, blocks (idle) until one arrives. Returns true with *msg set.
  bool GetOrPeek(const Filter& filter, bool wait, MSG* msg);
  // The unfiltered GetMessageW/PeekMessageW(PM_REMOVE) fast path: takes the
  // next posted message of the private batch (a thread message, or one for a
  // live window) when no sent message waits. False (nothing changed) sends
  // the caller to GetOrPeek, which handles everything else (holes, messages
  // of destroyed windows, refills, sends, quit, waits).
  bool TakeNextMessage(MSG* msg) noexcept {
    if (local_pos_ >= local_.size() || has_sent_.load(std::memory_order_relaxed)) return false;
    PostedMessage& m = local_[local_pos_];
    if (m.hwnd != nullptr && (m.hwnd == kHoleHwnd || !IsLiveWindow(m.hwnd))) return false;
    m.CopyTo(msg);
    if (++local_pos_ == local_.size()) {
      local_.clear();
      local_pos_ = 0;
    }
    MarkRetrieved(1);
    StampPumped();
    return true;
  }
  // Serves every sent message pending now. Returns how many ran.
  int ServeSentMessages();
  // MsgWaitForMultipleObjectsEx over already-resolved objects (`count` user
  // objects followed by room for one more). `flags`: MWMO_* and
  // kMwmoReportSentOnly. `options` is what the wait
  // publishes (the COM modal loop publishes BlockKind::kComCall and the
  // thread its call waits on).
  DWORD MsgWait(KernelObject** objects, const HANDLE* handles, DWORD count, DWORD timeout_ms,
                DWORD wake_mask, DWORD flags,
                const WaitOptions& options = WaitOptions{.kind = BlockKind::kMessageIdle});
  DWORD QueueStatus(UINT flags);
  void PostQuit(int exit_code);
  // The sent message being served (innermost), or null.
  SentMessage* current_received() const noexcept { return current_received_; }
  // Replies to a received message (first reply wins).
  void Reply(SentMessage* sent, LRESULT result);
  // Waits for the reply to `sent` (sent to `target_tid`), serving sends to
  // this thread unless `block`. Returns ERROR_SUCCESS, ERROR_TIMEOUT (after
  // withdrawing or abandoning the message) or ERROR_INVALID_WINDOW_HANDLE
  // (the receiver exited).
  DWORD AwaitReply(SentMessage* sent, MessageQueue* target, DWORD target_tid, DWORD timeout_ms,
                   bool block);

  // --- Lifecycle (registry, exit hook) ------------------------------------
  void Activate(DWORD tid);
  // Marks the queue dead; returns how many posted messages it released.
  std::uint64_t Deactivate();

  DWORD tid() const noexcept { return tid_.load(std::memory_order_relaxed); }
  std::uint64_t incarnation() const noexcept {
    return incarnation_.load(std::memory_order_acquire);
  }
  // The CPU the owner last went idle on (-1 before it ever did): a hint for
  // other threads deciding whether spinning for its answer can pay.
  int owner_cpu() const noexcept { return owner_cpu_.load(std::memory_order_relaxed); }
  // Whether the owner looks hung: not waiting for input, and has not examined
  // its queue for `threshold`.
  bool LooksHung(Clock::Duration threshold) const noexcept;

  struct Stats {
    DWORD tid = 0;
    std::uint64_t depth = 0;
    std::uint64_t high_water = 0;
    std::uint64_t posted = 0;
    std::uint64_t rejected_quota = 0;
    std::uint64_t dropped_destroyed_window = 0;
    std::uint64_t sent_pending = 0;
    Clock::TimePoint last_pumped{};
    bool waiting_for_input = false;
  };
  Stats ReadStats();

 private:
  // Owner side helpers.
  bool TakeFromLocal(const Filter& filter, MSG* msg);
  // Moves incoming_ to local_ and updates the examined state. Lock held.
  void RefillLocked(bool unfiltered);
  std::uint32_t WakeBitsLocked() const noexcept;
  // Before a refill, lets a streaming producer's messages gather (queue.cc).
  void LetStreamGather() noexcept;
  void MarkRetrieved(std::uint64_t n) noexcept {
    // Single writer (the owner): a plain store, no read-modify-write.
    retrieved_total_.store(retrieved_total_.load(std::memory_order_relaxed) + n,
                           std::memory_order_release);
  }
  void StampPumped() noexcept {
    if (__builtin_expect(--pump_stamp_countdown_ == 0, 0)) StampPumpedSlow();
  }
  void StampPumpedSlow() noexcept;
  void RunSent(SentMessage* sent);
  // Sleeps on event_ (plus `objects`) until woken; wake_mask_ set by caller.
  DWORD Block(KernelObject** objects, const HANDLE* handles, DWORD count, bool wait_all,
              DWORD timeout_ms, bool alertable, const WaitOptions& options);
  // Block on event_ alone (new input, as wake_mask_ says), not alertable.
  DWORD BlockForInput(DWORD timeout_ms, const WaitOptions& options) {
    return Block(nullptr, nullptr, 0, /*wait_all=*/false, timeout_ms, /*alertable=*/false,
                 options);
  }

  // Identity.
  std::atomic<DWORD> tid_{0};
  std::atomic<std::uint64_t> incarnation_{0};
  Event* const event_;  // Never freed (the queue is type-stable too).

  // Written under lock_ by every post and send, read without it by the owner
  // spinning before it sleeps: new input bumps the sequence; the CPU tells
  // the owner whether its producer runs elsewhere (spinning pays) or on its
  // own CPU (spinning would only delay the producer). A cache line of their
  // own: the spinner's polls must not pull the lock's line away from a
  // producer in the middle of its post.
  alignas(64) std::atomic<std::uint32_t> input_seq_{0};
  std::atomic<int> poster_cpu_{-1};

  alignas(64) QueueLock lock_;
  // Guarded by lock_.
  bool alive_ = false;
  std::vector<PostedMessage> incoming_;
  std::uint64_t posted_total_ = 0;
  std::uint64_t retrieved_snapshot_ = 0;
  std::uint64_t high_water_ = 0;
  std::uint64_t rejected_quota_ = 0;
  std::uint32_t changed_bits_ = 0;
  std::uint32_t wake_mask_ = 0;
  SentMessage* sent_head_ = nullptr;
  SentMessage* sent_tail_ = nullptr;
  std::uint64_t sent_count_ = 0;

  // Owner thread only (read by others through atomics where noted).
  alignas(64) std::vector<PostedMessage> local_;
  std::size_t local_pos_ = 0;
  std::atomic<std::uint64_t> retrieved_total_{0};  // Single writer: the owner.
  std::atomic<bool> has_sent_{false};  // Set under lock_ by senders; a hint.
  std::atomic<std::uint64_t> dropped_destroyed_{0};
  std::atomic<Clock::Duration::rep> last_pumped_{0};
  std::atomic<bool> waiting_for_input_{false};
  std::atomic<int> owner_cpu_{-1};  // Where the owner last went idle.
  std::uint32_t pump_stamp_countdown_ = 0;
  // retrieved_total_ when the owner last went idle (or yielded to a producer
  // on its CPU): how many messages its latest run took.
  std::uint64_t retrieved_at_idle_ = 0;
  // input_seq_ and the number of messages taken at the latest refill.
  std::uint32_t seq_at_refill_ = 0;
  std::size_t last_refill_size_ = 0;
  bool quit_ = false;
  int quit_code_ = 0;
  SentMessage* current_received_ = nullptr;
};

// The calling thread's queue, created (and registered) on first use.
MessageQueue& CurrentQueue();
// The calling thread's queue, or null when it has none.
MessageQueue* CurrentQueueIfAny() noexcept;
// Posts to thread `tid`'s queue (see MessageQueue::Post).
DWORD PostToThread(DWORD tid, HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) noexcept;
// The live queue of thread `tid` and its incarnation, or null.
MessageQueue* FindQueue(DWORD tid, std::uint64_t* incarnation);

// --- Diagnostics (any thread) ------------------------------------------------

using MessageQueueStats = MessageQueue::Stats;
// Reads the queue of thread `tid`: false when the thread has no queue.
bool ReadMessageQueueStats(DWORD tid, MessageQueueStats* stats);
// Posted messages released because their thread exited with them queued,
// process-wide since start.
std::uint64_t MessagesReleasedAtThreadExit() noexcept;
// Posted messages dropped because their window was destroyed first,
// process-wide since start.
std::uint64_t MessagesDroppedForDestroyedWindows() noexcept;

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_MESSAGE_QUEUE_H_
