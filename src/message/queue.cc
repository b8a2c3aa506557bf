// Per-thread message queues: posting with quota accounting, retrieval,
// sent messages and replies, and the waits of the message layer. See queue.h
// for the design and the locking rules.
//
// Why one file over 800 lines: posted messages, sent messages, the quit flag
// and the wake bits are guarded by one queue lock, and every wait of the
// message layer reads all of them under it; split, the invariants that tie a
// wake bit to the message that set it would live in several files.
#include "message/queue.h"

#include <sched.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "apartments/message_queue.h"
#include "apartments/win32_kernel.h"
#include "base/check.h"
#include "base/lazy_diagnostics.h"
#include "base/spin.h"
#include "message/window.h"

namespace apartments::internal {
namespace {

// --- The posted-message limit ------------------------------------------------

// 0 until initialized (from the API or the environment).
std::atomic<DWORD> g_post_limit{0};

DWORD InitPostLimitSlow() noexcept {
  DWORD value = kDefaultPostMessageLimit;
  if (const char* text = std::getenv("APARTMENTS_POST_MESSAGE_LIMIT")) {
    char* end = nullptr;
    unsigned long long parsed = std::strtoull(text, &end, 10);
    if (end != text && *end == '\0' && parsed >= kMinPostMessageLimit &&
        parsed <= kMaxPostMessageLimit) {
      value = static_cast<DWORD>(parsed);
    }
  }
  DWORD expected = 0;
  // A concurrent SetPostMessageLimit wins over the environment.
  if (!g_post_limit.compare_exchange_strong(expected, value, std::memory_order_relaxed)) {
    return expected;
  }
  return value;
}

inline DWORD PostLimit() noexcept {
  DWORD limit = g_post_limit.load(std::memory_order_relaxed);
  return __builtin_expect(limit != 0, 1) ? limit : InitPostLimitSlow();
}

// Spins (see base/spin.h) while `word` holds `value`; true once it changed.
template <typename T>
bool SpinWhileEqual(const std::atomic<T>& word, T value,
                    int pauses_per_check = kPausesPerCheck) noexcept {
  return SpinUntil([&] { return word.load(std::memory_order_acquire) != value; },
                   pauses_per_check);
}

inline Clock::Duration::rep NowRep() noexcept {
  return GetClock().Now().time_since_epoch().count();
}

// The pump stamps: coarse (see CoarseNow), as they are taken on every refill.
inline Clock::Duration::rep StampRep() noexcept {
  return CoarseNow().time_since_epoch().count();
}

// --- The registry ---------------------------------------------------------

std::mutex g_registry_mu;
std::unordered_map<DWORD, MessageQueue*>& Registry() {
  static auto* registry = new std::unordered_map<DWORD, MessageQueue*>();
  return *registry;
}
std::vector<MessageQueue*>& FreeQueues() {
  static auto* free_queues = new std::vector<MessageQueue*>();
  return *free_queues;
}

std::atomic<std::uint64_t> g_released_at_exit{0};
std::atomic<std::uint64_t> g_dropped_destroyed{0};

// The poster's cache of the last queue it posted to. Trivially destructible.
struct PostCache {
  DWORD tid;
  MessageQueue* queue;
  std::uint64_t incarnation;
};
thread_local PostCache t_post_cache{0, nullptr, 0};

constexpr int kMessageLayer = static_cast<int>(Layer::kMessage);
constexpr std::uint32_t kPumpStampEvery = 64;
// How many posted messages one run of the owner must have taken for it to
// treat its producer as streaming (see GetOrPeek's idle path).
constexpr std::uint64_t kStreamingBatch = 2;
// Gathering (MessageQueue::LetStreamGather). A consumer faster than its
// producer on another CPU takes a few messages at a time, and then both
// trade the queue's lock and buffer lines across CPUs for every few: the
// producer slows down, the consumer stays ahead, and throughput settles at
// one cross-CPU line transfer per message or two (measured: 15 messages per
// refill, no faster than a mutex+condvar deque). A slower consumer takes the
// whole quota each time and neither side waits on the other's cache. So
// while a stream lasts, the owner lets up to kGatherBatch messages gather
// before it takes them, as long as more keep coming (each check, 64 pauses
// apart, must see new ones) and for kGatherMaxPauses pauses at most
// (about 50 µs, under one cross-CPU wake-up on the machines we measure): a
// burst's tail waits one check interval. Never a round trip (one message
// per refill).
constexpr std::uint32_t kGatherBatch = 1024;
// Each check reads the line the producer writes on every post, and costs it
// a cross-CPU transfer on its next post: few checks, far apart.
constexpr int kGatherPausesPerCheck = 64;
constexpr int kGatherMaxPauses = 2048;

void MessageThreadExit(ThreadState& state) {
  auto* queue = static_cast<MessageQueue*>(state.layer_data[kMessageLayer]);
  if (queue == nullptr) return;
  DWORD tid = queue->tid();
  DestroyWindowsOfThread(tid);
  // Dead first (posts fail from here on), counted, then unlisted, so that a
  // reader who no longer finds the queue also sees its count.
  std::uint64_t released = queue->Deactivate();
  g_released_at_exit.fetch_add(released, std::memory_order_relaxed);
  {
    std::lock_guard lock(g_registry_mu);
    auto& registry = Registry();
    auto it = registry.find(tid);
    if (it != registry.end() && it->second == queue) registry.erase(it);
  }
  state.layer_data[kMessageLayer] = nullptr;
  t_post_cache = PostCache{0, nullptr, 0};
  std::lock_guard lock(g_registry_mu);
  FreeQueues().push_back(queue);
}

[[maybe_unused]] const bool kExitHookRegistered = [] {
  SetThreadExitHook(Layer::kMessage, &MessageThreadExit);
  return true;
}();

bool InRange(UINT message, UINT min, UINT max) noexcept {
  if (min == 0 && max == 0) return true;
  if (min > max) return message >= min || message <= max;
  return message >= min && message <= max;
}

bool Matches(const MessageQueue::Filter& filter, const PostedMessage& m) noexcept {
  if (filter.hwnd != nullptr) {
    if (IsThreadMessageFilter(filter.hwnd)) {
      if (m.hwnd != nullptr) return false;
    } else if (m.hwnd != filter.hwnd) {
      return false;
    }
  }
  if ((m.wparam & filter.wparam_mask) != filter.wparam_value) return false;
  return InRange(m.message, filter.min, filter.max);
}

}  // namespace

MessageQueue::MessageQueue() : event_(new Event(std::wstring(), false, false)) {}

void MessageQueue::Activate(DWORD tid) {
  std::lock_guard lock(lock_);
  tid_.store(tid, std::memory_order_relaxed);
  incarnation_.fetch_add(1, std::memory_order_release);
  alive_ = true;
  posted_total_ = 0;
  retrieved_snapshot_ = 0;
  retrieved_total_.store(0, std::memory_order_relaxed);
  retrieved_at_idle_ = 0;
  high_water_ = 0;
  rejected_quota_ = 0;
  changed_bits_ = 0;
  wake_mask_ = 0;
  sent_count_ = 0;
  has_sent_.store(false, std::memory_order_relaxed);
  dropped_destroyed_.store(0, std::memory_order_relaxed);
  last_pumped_.store(NowRep(), std::memory_order_relaxed);
  waiting_for_input_.store(false, std::memory_order_relaxed);
  pump_stamp_countdown_ = kPumpStampEvery;
  quit_ = false;
  quit_code_ = 0;
  current_received_ = nullptr;
  local_pos_ = 0;
}

std::uint64_t MessageQueue::Deactivate() {
  SentMessage* sent;
  std::uint64_t released;
  std::vector<PostedMessage> incoming;
  {
    std::lock_guard lock(lock_);
    alive_ = false;
    released = posted_total_ - retrieved_total_.load(std::memory_order_relaxed);
    sent = sent_head_;
    sent_head_ = sent_tail_ = nullptr;
    sent_count_ = 0;
    has_sent_.store(false, std::memory_order_relaxed);
    wake_mask_ = 0;
    incoming.swap(incoming_);
  }
  std::vector<PostedMessage>().swap(local_);
  local_pos_ = 0;
  // Senders waiting on messages this thread will never run fail now.
  while (sent != nullptr) {
    SentMessage* next = sent->next;
    sent->state.store(SentMessage::kRunning, std::memory_order_relaxed);
    sent->replied = true;
    sent->sender->DeliverReply(sent, 0, true);
    sent->Release();
    sent = next;
  }
  // And so do the ones it was serving when it exited (ExitThread in a window
  // procedure); their records are leaked with the unwound frames.
  for (SentMessage* s = current_received_; s != nullptr; s = s->outer_received) {
    if (!s->replied) {
      s->replied = true;
      s->sender->DeliverReply(s, 0, true);
    }
  }
  current_received_ = nullptr;
  return released;
}

DWORD MessageQueue::Post(DWORD tid, std::uint64_t incarnation, HWND hwnd, UINT message,
                         WPARAM wparam, LPARAM lparam, PostQuota quota) noexcept {
  const DWORD limit = PostLimit();
  const DWORD time = GetTickCount();
  bool wake = false;
  lock_.lock();
  if (!alive_ || tid_.load(std::memory_order_relaxed) != tid ||
      (incarnation != 0 && incarnation_.load(std::memory_order_relaxed) != incarnation)) {
    lock_.unlock();
    return ERROR_INVALID_THREAD_ID;
  }
  // posted - snapshot >= the true depth (the snapshot only lags). Reload the
  // owner's counter only when that bound could reach the limit or a new
  // high-water mark: exact answers, without touching the owner's cache line
  // on every post.
  std::uint64_t depth = posted_total_ - retrieved_snapshot_;
  if (__builtin_expect(depth >= limit || depth >= high_water_, 0)) {
    retrieved_snapshot_ = retrieved_total_.load(std::memory_order_acquire);
    depth = posted_total_ - retrieved_snapshot_;
    if (depth >= limit && quota == PostQuota::kCounted) {
      ++rejected_quota_;
      lock_.unlock();
      return ERROR_NOT_ENOUGH_QUOTA;
    }
    if (depth + 1 > high_water_) high_water_ = depth + 1;
  }
  incoming_.push_back(PostedMessage{hwnd, message, time, wparam, lparam});
  ++posted_total_;
  input_seq_.store(input_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  poster_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
  changed_bits_ |= kQsPosted;
  if ((wake_mask_ & kQsPosted) != 0) {
    wake_mask_ = 0;
    wake = true;
  }
  lock_.unlock();
  // The event is never freed (type-stable queue), so signaling after the
  // unlock is safe even if the owner has exited meanwhile: at worst a
  // spurious wakeup of the queue's next owner.
  if (wake) SignalEvent(*event_);
  return ERROR_SUCCESS;
}

DWORD MessageQueue::QueueSent(std::uint64_t incarnation, SentMessage* sent) noexcept {
  bool wake = false;
  lock_.lock();
  if (!alive_ || incarnation_.load(std::memory_order_relaxed) != incarnation) {
    lock_.unlock();
    return ERROR_INVALID_WINDOW_HANDLE;
  }
  sent->next = nullptr;
  if (sent_tail_ != nullptr) {
    sent_tail_->next = sent;
  } else {
    sent_head_ = sent;
  }
  sent_tail_ = sent;
  ++sent_count_;
  input_seq_.store(input_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  poster_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
  has_sent_.store(true, std::memory_order_release);
  changed_bits_ |= QS_SENDMESSAGE;
  if ((wake_mask_ & QS_SENDMESSAGE) != 0) {
    wake_mask_ = 0;
    wake = true;
  }
  lock_.unlock();
  if (wake) SignalEvent(*event_);
  return ERROR_SUCCESS;
}

bool MessageQueue::WithdrawPosted(HWND hwnd, UINT message, LPARAM lparam) noexcept {
  std::lock_guard lock(lock_);
  // Newest first: a caller withdraws a message it posted recently.
  for (std::size_t i = incoming_.size(); i-- > 0;) {
    const PostedMessage& m = incoming_[i];
    if (m.hwnd != hwnd || m.message != message || m.lparam != lparam) continue;
    incoming_.erase(incoming_.begin() + static_cast<std::ptrdiff_t>(i));
    // Never retrieved, so posted_total_ - retrieved_total_ >= 1 before this:
    // the depth (and the quota) drops by one and never goes negative. The
    // stats' `posted` counts it no more either.
    --posted_total_;
    return true;
  }
  return false;
}

bool MessageQueue::WithdrawSent(SentMessage* sent) noexcept {
  std::lock_guard lock(lock_);
  SentMessage* prev = nullptr;
  for (SentMessage* s = sent_head_; s != nullptr; prev = s, s = s->next) {
    if (s != sent) continue;
    if (prev != nullptr) {
      prev->next = s->next;
    } else {
      sent_head_ = s->next;
    }
    if (sent_tail_ == s) sent_tail_ = prev;
    --sent_count_;
    if (sent_head_ == nullptr) {
      has_sent_.store(false, std::memory_order_relaxed);
      changed_bits_ &= ~QS_SENDMESSAGE;
    }
    return true;
  }
  return false;
}

void MessageQueue::DeliverReply(SentMessage* sent, LRESULT result, bool failed) noexcept {
  sent->result = result;
  bool wake = false;
  lock_.lock();
  // Release: the sender's acquire load of `state` sees `result`.
  sent->state.store(failed ? SentMessage::kFailed : SentMessage::kReplied,
                    std::memory_order_release);
  if ((wake_mask_ & kQsReply) != 0) {
    wake_mask_ = 0;
    wake = true;
  }
  lock_.unlock();
  if (wake) SignalEvent(*event_);
}

void MessageQueue::StampPumpedSlow() noexcept {
  pump_stamp_countdown_ = kPumpStampEvery;
  last_pumped_.store(StampRep(), std::memory_order_relaxed);
}

bool MessageQueue::TakeFromLocal(const Filter& filter, MSG* msg) {
  const std::size_t n = local_.size();
  for (std::size_t i = local_pos_; i < n; ++i) {
    PostedMessage& m = local_[i];
    if (m.hwnd == kHoleHwnd) {
      if (i == local_pos_) ++local_pos_;
      continue;
    }
    if (m.hwnd != nullptr && !IsLiveWindow(m.hwnd)) {
      // Posted to a window destroyed since: dropped, and counted.
      m.hwnd = kHoleHwnd;
      if (i == local_pos_) ++local_pos_;
      MarkRetrieved(1);
      dropped_destroyed_.fetch_add(1, std::memory_order_relaxed);
      g_dropped_destroyed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!Matches(filter, m)) continue;
    m.CopyTo(msg);
    if (filter.remove) {
      m.hwnd = kHoleHwnd;
      if (i == local_pos_) ++local_pos_;
      MarkRetrieved(1);
    }
    if (local_pos_ == n) {
      local_.clear();
      local_pos_ = 0;
    }
    StampPumped();
    return true;
  }
  if (local_pos_ == n) {
    local_.clear();
    local_pos_ = 0;
  }
  return false;
}

void MessageQueue::LetStreamGather() noexcept {
  // Streaming: the last refill took a batch (a round trip's takes one
  // message, and never waits here), from a producer on another CPU.
  if (last_refill_size_ < kStreamingBatch) return;
  auto pending = [this] {
    return input_seq_.load(std::memory_order_relaxed) - seq_at_refill_;
  };
  std::uint32_t seen = pending();
  // Nothing yet: the idle path spins or sleeps. Enough: take it.
  if (seen == 0 || seen >= kGatherBatch) return;
  if (!PeerOnOtherCpu(poster_cpu_.load(std::memory_order_relaxed))) return;
  // A hint only (input_seq_ counts posts and sends; the refill under the
  // lock decides what is taken). Waits while messages keep coming, so a
  // burst's tail waits one check interval, and never longer than the bound.
  for (int i = 0; i < kGatherMaxPauses; i += kGatherPausesPerCheck) {
    for (int j = 0; j < kGatherPausesPerCheck; ++j) CpuRelax();
    const std::uint32_t now = pending();
    if (now >= kGatherBatch || now == seen) return;
    seen = now;
  }
}

void MessageQueue::RefillLocked(bool unfiltered) {
  // input_seq_ only changes under the lock: posts and sends since this.
  seq_at_refill_ = input_seq_.load(std::memory_order_relaxed);
  last_refill_size_ = incoming_.size();
  if (!incoming_.empty()) {
    if (local_pos_ == local_.size()) {
      local_.clear();
      local_pos_ = 0;
      local_.swap(incoming_);  // O(1); both buffers keep their capacity.
    } else {
      local_.insert(local_.end(), incoming_.begin(), incoming_.end());
      incoming_.clear();
    }
  }
  // Windows: GetMessage/PeekMessage clear QS_POSTMESSAGE whatever the filter,
  // QS_ALLPOSTMESSAGE only without one.
  changed_bits_ &= ~QS_POSTMESSAGE;
  if (unfiltered) changed_bits_ &= ~QS_ALLPOSTMESSAGE;
  last_pumped_.store(StampRep(), std::memory_order_relaxed);
}

std::uint32_t MessageQueue::WakeBitsLocked() const noexcept {
  std::uint32_t bits = 0;
  if (posted_total_ != retrieved_total_.load(std::memory_order_relaxed) || quit_) bits |= kQsPosted;
  if (sent_head_ != nullptr) bits |= QS_SENDMESSAGE;
  return bits;
}

DWORD MessageQueue::Block(KernelObject** objects, const HANDLE* handles, DWORD count,
                          bool wait_all, DWORD timeout_ms, bool alertable,
                          const WaitOptions& options) {
  KernelObject* all[MAXIMUM_WAIT_OBJECTS + 1];
  HANDLE all_handles[MAXIMUM_WAIT_OBJECTS + 1];
  for (DWORD i = 0; i < count; ++i) {
    all[i] = objects[i];
    all_handles[i] = handles != nullptr ? handles[i] : nullptr;
  }
  all[count] = event_;
  all_handles[count] = nullptr;
  return WaitForObjects(all, all_handles, count + 1, wait_all, timeout_ms, alertable, options);
}

int MessageQueue::ServeSentMessages() {
  int served = 0;
  for (;;) {
    SentMessage* sent;
    lock_.lock();
    sent = sent_head_;
    if (sent != nullptr) {
      sent_head_ = sent->next;
      if (sent_head_ == nullptr) sent_tail_ = nullptr;
      --sent_count_;
      sent->state.store(SentMessage::kRunning, std::memory_order_relaxed);
    }
    if (sent_head_ == nullptr) {
      has_sent_.store(false, std::memory_order_relaxed);
      changed_bits_ &= ~QS_SENDMESSAGE;
    }
    lock_.unlock();
    if (sent == nullptr) return served;
    RunSent(sent);
    ++served;
  }
}

void MessageQueue::RunSent(SentMessage* sent) {
  sent->outer_received = current_received_;
  current_received_ = sent;
  LRESULT result = 0;
  DWORD error = CallOwnWindowProc(sent->hwnd, sent->message, sent->wparam, sent->lparam, &result);
  current_received_ = sent->outer_received;
  if (!sent->replied) {
    sent->replied = true;
    sent->sender->DeliverReply(sent, result, error != ERROR_SUCCESS);
  }
  sent->Release();
}

void MessageQueue::Reply(SentMessage* sent, LRESULT result) {
  if (sent->replied) return;
  sent->replied = true;
  sent->sender->DeliverReply(sent, result, false);
}

DWORD MessageQueue::AwaitReply(SentMessage* sent, MessageQueue* target, DWORD target_tid,
                               DWORD timeout_ms, bool block) {
  const bool finite = timeout_ms != INFINITE;
  // Read only when finite: no clock read for an infinite wait.
  const auto deadline = finite ? std::chrono::steady_clock::now() +
                                     std::chrono::milliseconds(timeout_ms)
                               : std::chrono::steady_clock::time_point{};
  for (;;) {
    std::uint32_t state = sent->state.load(std::memory_order_acquire);
    if (state == SentMessage::kReplied) return ERROR_SUCCESS;
    if (state == SentMessage::kFailed) return ERROR_INVALID_WINDOW_HANDLE;
    if (!block && has_sent_.load(std::memory_order_acquire)) {
      ServeSentMessages();
      continue;
    }
    if (PeerOnOtherCpu(target->owner_cpu_.load(std::memory_order_relaxed)) &&
        SpinWhileEqual(sent->state, state)) {
      continue;
    }
    lock_.lock();
    state = sent->state.load(std::memory_order_acquire);
    if (state >= SentMessage::kReplied || (!block && sent_head_ != nullptr)) {
      lock_.unlock();
      continue;
    }
    wake_mask_ = kQsReply | (block ? 0 : QS_SENDMESSAGE);
    lock_.unlock();
    DWORD remaining = INFINITE;
    if (finite) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      remaining = left.count() > 0 ? static_cast<DWORD>(left.count()) : 0;
    }
    DWORD result = BlockForInput(
        remaining, WaitOptions{.kind = BlockKind::kSendMessage, .target_tid = target_tid});
    lock_.lock();
    wake_mask_ = 0;
    lock_.unlock();
    if (result == WAIT_TIMEOUT) {
      state = sent->state.load(std::memory_order_acquire);
      if (state >= SentMessage::kReplied) continue;
      // Not started yet: withdraw it so it never runs (the receiver's
      // reference goes with it). Running: the receiver will reply into the
      // record, which its reference keeps alive.
      if (target->WithdrawSent(sent)) sent->Release();
      return ERROR_TIMEOUT;
    }
  }
}

bool MessageQueue::GetOrPeek(const Filter& filter, bool wait, MSG* msg) {
  const bool unfiltered = filter.hwnd == nullptr && filter.min == 0 && filter.max == 0 &&
                          filter.wparam_mask == 0;
  const bool plain = unfiltered && filter.posted && filter.remove;  // TakeNextMessage's case.
  for (;;) {
    if (filter.sent && has_sent_.load(std::memory_order_acquire)) ServeSentMessages();
    if (plain && TakeNextMessage(msg)) return true;
    if (filter.posted && TakeFromLocal(filter, msg)) return true;
    if (wait) LetStreamGather();
    lock_.lock();
    const bool refilled = !incoming_.empty();
    RefillLocked(unfiltered);
    if ((filter.posted && refilled) || (filter.sent && sent_head_ != nullptr)) {
      lock_.unlock();
      continue;
    }
    // WM_QUIT whatever the message range (both Get and Peek document it), once
    // no posted message matches the filter.
    if (filter.posted && quit_ && (filter.hwnd == nullptr || IsThreadMessageFilter(filter.hwnd))) {
      lock_.unlock();
      msg->hwnd = nullptr;
      msg->message = WM_QUIT;
      msg->wParam = static_cast<WPARAM>(quit_code_);
      msg->lParam = 0;
      msg->time = GetTickCount();
      msg->pt = POINT{0, 0};
      if (filter.remove) quit_ = false;
      return true;
    }
    if (!wait) {
      lock_.unlock();
      return false;
    }
    // Going idle: publish our CPU first, also when the spin below ends the
    // idleness, so that senders (and COM callers) deciding whether to spin
    // for our answer read a fresh hint. A relaxed store of a hint: a stale
    // value costs at most one useless (bounded) spin or one skipped spin.
    const int cpu = sched_getcpu();
    owner_cpu_.store(cpu, std::memory_order_relaxed);
    const int poster_cpu = poster_cpu_.load(std::memory_order_relaxed);
    const std::uint64_t retrieved = retrieved_total_.load(std::memory_order_relaxed);
    // This run took a batch, not one message: a producer is streaming posts
    // to us (rather than making round trips).
    const bool streaming = retrieved - retrieved_at_idle_ >= kStreamingBatch;
    if (PeerOnOtherCpu(poster_cpu)) {
      // Spin before sleeping; input_seq_ only changes under the lock, so
      // re-checking it under the lock below loses no wakeup. A streaming
      // producer is checked on less often, so each check finds a batch.
      const std::uint32_t seq = input_seq_.load(std::memory_order_relaxed);
      lock_.unlock();
      retrieved_at_idle_ = retrieved;
      if (SpinWhileEqual(input_seq_, seq,
                         streaming ? kStreamingPausesPerCheck : kPausesPerCheck)) {
        continue;
      }
      lock_.lock();
      if (input_seq_.load(std::memory_order_relaxed) != seq) {
        lock_.unlock();
        continue;
      }
    } else if (poster_cpu == cpu && streaming) {
      // A producer on our own CPU is streaming posts to us (this run took a
      // batch, not one message): yield to it rather than sleep, so it goes on
      // posting without a wake-up system call per batch and we take a long
      // batch next time. Sleeping here makes the scheduler switch every few
      // dozen messages. Once per batch: a yield that brings nothing new
      // leads to the real sleep below. A round trip (one message per wake)
      // never yields.
      retrieved_at_idle_ = retrieved;
      lock_.unlock();
      sched_yield();
      continue;
    }
    retrieved_at_idle_ = retrieved;
    wake_mask_ = kQsPosted | QS_SENDMESSAGE;
    waiting_for_input_.store(true, std::memory_order_relaxed);
    lock_.unlock();
    BlockForInput(INFINITE, WaitOptions{.kind = BlockKind::kMessageIdle});
    waiting_for_input_.store(false, std::memory_order_relaxed);
    lock_.lock();
    wake_mask_ = 0;
    lock_.unlock();
  }
}

DWORD MessageQueue::MsgWait(KernelObject** objects, const HANDLE* handles, DWORD count,
                            DWORD timeout_ms, DWORD wake_mask, DWORD flags,
                            const WaitOptions& options) {
  const bool wait_all = (flags & MWMO_WAITALL) != 0;
  const bool alertable = (flags & MWMO_ALERTABLE) != 0;
  const bool input_available = (flags & MWMO_INPUTAVAILABLE) != 0;
  // Windows' MsgWaitForMultipleObjectsEx reports a sent message (as
  // QS_SENDMESSAGE input) and leaves it to the next Get/PeekMessage.
  const bool serve_sent = !wait_all && (flags & kMwmoReportSentOnly) == 0;
  const bool finite = timeout_ms != INFINITE;
  // Read only when finite: no clock read for an infinite wait.
  const auto deadline = finite ? std::chrono::steady_clock::now() +
                                     std::chrono::milliseconds(timeout_ms)
                               : std::chrono::steady_clock::time_point{};
  bool served = false;
  for (;;) {
    if (serve_sent && has_sent_.load(std::memory_order_acquire)) {
      served |= ServeSentMessages() > 0;
    }
    lock_.lock();
    if (serve_sent && sent_head_ != nullptr) {
      lock_.unlock();
      continue;
    }
    const std::uint32_t wake_bits = WakeBitsLocked();
    const std::uint32_t bits = input_available ? wake_bits : (changed_bits_ & wake_bits);
    const bool input = (bits & wake_mask) != 0 || (served && (wake_mask & QS_SENDMESSAGE) != 0);
    DWORD remaining = INFINITE;
    if (finite) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      remaining = left.count() > 0 ? static_cast<DWORD>(left.count()) : 0;
    }
    if (input && !wait_all) {
      lock_.unlock();
      if (count == 0) return WAIT_OBJECT_0;
      // The handles come first in the array, so a signaled one wins.
      DWORD r = WaitForObjects(objects, handles, count, false, 0, false);
      return r != WAIT_TIMEOUT ? r : WAIT_OBJECT_0 + count;
    }
    std::uint32_t mask = wake_mask;
    if ((mask & kQsPosted) != 0) mask |= kQsPosted;
    wake_mask_ = serve_sent ? (mask | QS_SENDMESSAGE) : mask;
    // A thread in a modal loop is idle too (see GetOrPeek): a hint, relaxed.
    owner_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
    waiting_for_input_.store(true, std::memory_order_relaxed);
    lock_.unlock();
    // Wait-all: the event stands for "input present"; when it already is,
    // set the event ourselves so the wait needs only the handles.
    if (wait_all && input) SignalEvent(*event_);
    // The application's own MsgWait publishes its wake mask (for the
    // diagnosis of a mask that leaves out the apartment's posted calls).
    ThreadActivity* activity = nullptr;
    if ((flags & kMwmoReportSentOnly) != 0) {
      activity = &CurrentThreadState().activity;
      activity->wake_mask.store(wake_mask | ThreadActivity::kWakeMaskPublished,
                                std::memory_order_relaxed);
    }
    DWORD r = Block(objects, handles, count, wait_all, remaining, alertable, options);
    if (activity != nullptr) activity->wake_mask.store(0, std::memory_order_relaxed);
    waiting_for_input_.store(false, std::memory_order_relaxed);
    lock_.lock();
    wake_mask_ = 0;
    lock_.unlock();
    if (r == WAIT_TIMEOUT || r == WAIT_IO_COMPLETION || wait_all) return r;
    if (r != WAIT_OBJECT_0 + count) return r;  // A handle (or an abandoned mutex).
    // Our event: re-check the queue (the wakeup may be stale).
    if (finite && remaining == 0) return WAIT_TIMEOUT;
  }
}

DWORD MessageQueue::QueueStatus(UINT flags) {
  std::lock_guard lock(lock_);
  const std::uint32_t wake = WakeBitsLocked();
  const std::uint32_t changed = changed_bits_ & wake;
  changed_bits_ &= ~flags;
  return static_cast<DWORD>(MAKELONG(changed & flags, wake & flags));
}

void MessageQueue::PostQuit(int exit_code) {
  quit_ = true;
  quit_code_ = exit_code;
  std::lock_guard lock(lock_);
  changed_bits_ |= kQsPosted;
}

bool MessageQueue::LooksHung(Clock::Duration threshold) const noexcept {
  if (waiting_for_input_.load(std::memory_order_relaxed)) return false;
  auto last = last_pumped_.load(std::memory_order_relaxed);
  return NowRep() - last > threshold.count();
}

MessageQueue::Stats MessageQueue::ReadStats() {
  Stats stats;
  std::lock_guard lock(lock_);
  stats.tid = tid_.load(std::memory_order_relaxed);
  stats.depth = posted_total_ - retrieved_total_.load(std::memory_order_acquire);
  stats.high_water = high_water_;
  stats.posted = posted_total_;
  stats.rejected_quota = rejected_quota_;
  stats.dropped_destroyed_window = dropped_destroyed_.load(std::memory_order_relaxed);
  stats.sent_pending = sent_count_;
  stats.last_pumped = Clock::TimePoint(Clock::Duration(last_pumped_.load(std::memory_order_relaxed)));
  stats.waiting_for_input = waiting_for_input_.load(std::memory_order_relaxed);
  return stats;
}

MessageQueue& CurrentQueue() {
  ThreadState& state = CurrentThreadState();
  void*& slot = state.layer_data[kMessageLayer];
  if (__builtin_expect(slot != nullptr, 1)) return *static_cast<MessageQueue*>(slot);
  PostLimit();  // Reads the environment once, early.
  MessageQueue* queue = nullptr;
  {
    std::lock_guard lock(g_registry_mu);
    auto& free_queues = FreeQueues();
    if (!free_queues.empty()) {
      queue = free_queues.back();
      free_queues.pop_back();
    }
  }
  if (queue == nullptr) queue = new MessageQueue();  // Type-stable: never deleted.
  DWORD tid = CurrentThreadId();
  queue->Activate(tid);
  {
    std::lock_guard lock(g_registry_mu);
    Registry()[tid] = queue;
  }
  slot = queue;
  // Self-diagnosis is on by default in a process that uses queues; no lock held.
  StartDiagnosticsOnFirstUse();
  return *queue;
}

MessageQueue* CurrentQueueIfAny() noexcept {
  return static_cast<MessageQueue*>(CurrentThreadState().layer_data[kMessageLayer]);
}

MessageQueue* FindQueue(DWORD tid, std::uint64_t* incarnation) {
  std::lock_guard lock(g_registry_mu);
  auto& registry = Registry();
  auto it = registry.find(tid);
  if (it == registry.end()) return nullptr;
  *incarnation = it->second->incarnation();
  return it->second;
}

DWORD PostToThread(DWORD tid, HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) noexcept {
  PostCache& cache = t_post_cache;
  if (cache.tid == tid && cache.queue != nullptr) {
    DWORD error = cache.queue->Post(tid, cache.incarnation, hwnd, message, wparam, lparam);
    if (error != ERROR_INVALID_THREAD_ID) return error;
  }
  std::uint64_t incarnation = 0;
  MessageQueue* queue = tid != 0 ? FindQueue(tid, &incarnation) : nullptr;
  if (queue == nullptr) {
    cache = PostCache{0, nullptr, 0};
    return ERROR_INVALID_THREAD_ID;
  }
  cache = PostCache{tid, queue, incarnation};
  return queue->Post(tid, incarnation, hwnd, message, wparam, lparam);
}

bool ReadMessageQueueStats(DWORD tid, MessageQueueStats* stats) {
  std::uint64_t incarnation;
  MessageQueue* queue = FindQueue(tid, &incarnation);
  if (queue == nullptr) return false;
  *stats = queue->ReadStats();
  return stats->tid == tid;
}

std::uint64_t MessagesReleasedAtThreadExit() noexcept {
  return g_released_at_exit.load(std::memory_order_relaxed);
}

std::uint64_t MessagesDroppedForDestroyedWindows() noexcept {
  return g_dropped_destroyed.load(std::memory_order_relaxed);
}

}  // namespace apartments::internal

namespace apartments {

HRESULT SetPostMessageLimit(DWORD limit) noexcept {
  if (limit < kMinPostMessageLimit || limit > kMaxPostMessageLimit) return E_INVALIDARG;
  internal::g_post_limit.store(limit, std::memory_order_relaxed);
  return S_OK;
}

DWORD GetPostMessageLimit() noexcept { return internal::PostLimit(); }

}  // namespace apartments
