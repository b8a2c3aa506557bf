// The wait engine: registering waits on objects, satisfying them when objects
// are signaled, and parking threads on their futex. See kernel.h for the
// locking rules and the park-word state table.
#include <sched.h>

#include <chrono>

#include "base/check.h"
#include "base/spin.h"
#include "kernel/futex.h"
#include "kernel/kernel.h"

namespace apartments::internal {
namespace {

constexpr std::uint32_t kParkIdle = 0;
constexpr std::uint32_t kParkWaiting = 1;
constexpr std::uint32_t kParkDone = 2;

FutexLock g_kernel_mu;
std::uint64_t g_next_wait_id = 0;  // Guarded by g_kernel_mu.
std::atomic<BlockHook> g_block_hook{nullptr};
thread_local bool t_in_block_hook = false;

// Every live thread's kernel data, for ReadWaitRecord. Guarded by the lock.
std::vector<KernelThreadData*>& LiveThreads() {
  static auto* threads = new std::vector<KernelThreadData*>();
  return *threads;
}

// Threads whose waits were satisfied under the lock, woken after it drops.
class WakeList {
 public:
  WakeList() = default;
  WakeList(const WakeList&) = delete;
  WakeList& operator=(const WakeList&) = delete;
  ~WakeList() { WakeAll(); }

  void Add(ThreadState* state) {
    if (count_ < kInline) {
      inline_[count_++] = state;
    } else {
      overflow_.push_back(state);
    }
  }
  // FUTEX_WAKE each thread. Safe after the lock is dropped because park words
  // live in type-stable ThreadStates (see thread_state.h).
  void WakeAll() noexcept {
    for (int i = 0; i < count_; ++i) FutexWake(&inline_[i]->park, 1);
    for (ThreadState* s : overflow_) FutexWake(&s->park, 1);
    count_ = 0;
    overflow_.clear();
  }

 private:
  static constexpr int kInline = 8;
  ThreadState* inline_[kInline];
  int count_ = 0;
  std::vector<ThreadState*> overflow_;
};

// The thread a wait waits on: fixed, or published later by its call record
// (read under the kernel lock while the wait is published, so the record,
// on the waiter's stack, is alive).
DWORD TargetOf(const Wait& wait) {
  if (wait.target_tid != 0 || wait.target_tid_source == nullptr) return wait.target_tid;
  return wait.target_tid_source->load(std::memory_order_relaxed);
}

bool IsSignaledFor(const KernelObject* object, const KernelThreadData* data) {
  switch (object->kind()) {
    case ObjectKind::kEvent:
      return (static_cast<const Event*>(object)->state.load(std::memory_order_acquire) &
              Event::kSignaled) != 0;
    case ObjectKind::kMutex: {
      const auto* mutex = static_cast<const Mutex*>(object);
      return mutex->owner == nullptr || mutex->owner == data;
    }
    case ObjectKind::kSemaphore:
      return static_cast<const Semaphore*>(object)->count > 0;
    case ObjectKind::kThread:
      return static_cast<const Thread*>(object)->exited;
    case ObjectKind::kProcess:
      return false;
  }
  return false;
}

void LinkOwned(Mutex& mutex, KernelThreadData& data) {
  mutex.owned_prev = nullptr;
  mutex.owned_next = data.owned_head;
  if (data.owned_head != nullptr) data.owned_head->owned_prev = &mutex;
  data.owned_head = &mutex;
}

void UnlinkOwned(Mutex& mutex, KernelThreadData& data) {
  if (mutex.owned_prev != nullptr) {
    mutex.owned_prev->owned_next = mutex.owned_next;
  } else {
    data.owned_head = mutex.owned_next;
  }
  if (mutex.owned_next != nullptr) mutex.owned_next->owned_prev = mutex.owned_prev;
  mutex.owned_prev = mutex.owned_next = nullptr;
}

// Takes one unit of a signaled object for `data`'s thread. Returns true when
// it acquired an abandoned mutex.
bool Acquire(KernelObject* object, KernelThreadData* data) {
  switch (object->kind()) {
    case ObjectKind::kEvent: {
      auto* event = static_cast<Event*>(object);
      if (!event->manual_reset) event->state.fetch_and(~Event::kSignaled, std::memory_order_acq_rel);
      return false;
    }
    case ObjectKind::kMutex: {
      auto* mutex = static_cast<Mutex*>(object);
      if (mutex->owner == data) {
        ++mutex->recursion;
        return false;
      }
      mutex->owner = data;
      mutex->recursion = 1;
      mutex->owner_tid.store(data->tid, std::memory_order_relaxed);
      mutex->AddRef();  // The owner's list holds the mutex until released or abandoned.
      LinkOwned(*mutex, *data);
      bool abandoned = mutex->abandoned;
      mutex->abandoned = false;
      return abandoned;
    }
    case ObjectKind::kSemaphore:
      --static_cast<Semaphore*>(object)->count;
      return false;
    case ObjectKind::kThread:
    case ObjectKind::kProcess:
      return false;
  }
  return false;
}

// Satisfies `wait` now if it can, acquiring its objects. Lock held.
bool TrySatisfy(Wait& wait, DWORD* result) {
  if (wait.wait_all) {
    if (wait.count == 0) return false;
    for (DWORD i = 0; i < wait.count; ++i) {
      if (!IsSignaledFor(wait.objects[i], wait.data)) return false;
    }
    DWORD abandoned_index = MAXIMUM_WAIT_OBJECTS + 1;
    for (DWORD i = 0; i < wait.count; ++i) {
      if (Acquire(wait.objects[i], wait.data) && abandoned_index > i) abandoned_index = i;
    }
    *result = abandoned_index <= MAXIMUM_WAIT_OBJECTS ? WAIT_ABANDONED_0 + abandoned_index
                                                      : WAIT_OBJECT_0;
    return true;
  }
  for (DWORD i = 0; i < wait.count; ++i) {
    if (IsSignaledFor(wait.objects[i], wait.data)) {
      *result = (Acquire(wait.objects[i], wait.data) ? WAIT_ABANDONED_0 : WAIT_OBJECT_0) + i;
      return true;
    }
  }
  return false;
}

void Register(Wait& wait) {
  wait.block_count = 0;
  for (DWORD i = 0; i < wait.count; ++i) {
    KernelObject* object = wait.objects[i];
    bool seen = false;
    for (DWORD j = 0; j < wait.block_count && !seen; ++j) seen = wait.blocks[j].object == object;
    if (seen) continue;  // A wait-any may name an object twice; one block is enough.
    WaitBlock& block = wait.blocks[wait.block_count++];
    block.wait = &wait;
    block.object = object;
    block.next = nullptr;
    block.prev = object->waiters_tail;
    if (object->waiters_tail != nullptr) {
      object->waiters_tail->next = &block;
    } else {
      object->waiters_head = &block;
    }
    object->waiters_tail = &block;
    if (object->kind() == ObjectKind::kEvent) {
      static_cast<Event*>(object)->state.fetch_or(Event::kHasWaiters, std::memory_order_acq_rel);
    }
  }
}

void Unregister(Wait& wait) {
  for (DWORD j = 0; j < wait.block_count; ++j) {
    WaitBlock& block = wait.blocks[j];
    KernelObject* object = block.object;
    if (block.prev != nullptr) {
      block.prev->next = block.next;
    } else {
      object->waiters_head = block.next;
    }
    if (block.next != nullptr) {
      block.next->prev = block.prev;
    } else {
      object->waiters_tail = block.prev;
    }
    if (object->waiters_head == nullptr && object->kind() == ObjectKind::kEvent) {
      static_cast<Event*>(object)->state.fetch_and(~Event::kHasWaiters, std::memory_order_acq_rel);
    }
  }
  wait.block_count = 0;
}

// Whether one of the events among `objects` is signaled now (other kinds of
// object are not looked at). A relaxed-enough hint for a spin: acquire so a
// caller that goes on to consume the event also sees the signaler's writes,
// though the wait that follows re-checks under the kernel lock anyway.
bool AnyEventSignaled(KernelObject* const* objects, DWORD count) noexcept {
  for (DWORD i = 0; i < count; ++i) {
    if (objects[i]->kind() == ObjectKind::kEvent &&
        (static_cast<const Event*>(objects[i])->state.load(std::memory_order_acquire) &
         Event::kSignaled) != 0) {
      return true;
    }
  }
  return false;
}

// The CPU of the thread expected to end a wait: the one the caller names, or
// for a wait-any whose first object is an event, the CPU of that event's last
// SetEvent (Event::signaler_cpu): an event ping-pong, or a reply event waited
// on together with a message queue's (the COM modal loop waiting for a call
// into the MTA, whose worker thread nobody names in advance).
int SpinPeerCpu(KernelObject* const* objects, DWORD count, const WaitOptions& options) noexcept {
  if (options.spin_peer_cpu >= 0 || count == 0 || objects[0]->kind() != ObjectKind::kEvent) {
    return options.spin_peer_cpu;
  }
  return static_cast<const Event*>(objects[0])->signaler_cpu.load(std::memory_order_relaxed);
}

// Adaptive spinning, per thread. A spin pays when the peer answers within it
// (a round trip across CPUs) or soon after (the peer was asleep and is being
// woken: the next spin catches the ping-pong again). It is wasted when the
// signal comes much later (a slow producer, a worker with a long job), and
// on these hosts a spin is tens of microseconds of a shared CPU. So a thread
// whose spin failed and whose wait then lasted longer than kSlowWait skips
// its next 1, 3, 7, ... 63 spins (doubling while it keeps happening); any
// spin that succeeds, or a failed one followed by a short wait, spins again
// at once. Only the waiting thread reads or writes its history.
struct SpinHistory {
  std::uint8_t skip = 0;   // Spins to skip before the next one.
  std::uint8_t shift = 0;  // log2(skip + 1) after the last slow wait.
};
thread_local SpinHistory t_spin;
constexpr auto kSlowWait = std::chrono::microseconds(200);
constexpr std::uint8_t kMaxSpinBackoffShift = 6;

// Spins (when the history allows) until one of the events among `objects` is
// signaled. Returns true when the spin ran and failed: the caller then times
// its wait and reports it to EndSpinWait.
bool SpinBeforeWait(KernelObject* const* objects, DWORD count) noexcept {
  SpinHistory& history = t_spin;
  if (history.skip > 0) {
    --history.skip;
    return false;
  }
  if (SpinUntil([&] { return AnyEventSignaled(objects, count); })) {
    history.shift = 0;
    return false;
  }
  return true;
}

// After a failed spin: `waited` is how long the wait took beyond it.
void EndSpinWait(std::chrono::steady_clock::duration waited) noexcept {
  SpinHistory& history = t_spin;
  if (waited < kSlowWait) {
    history.shift = 0;
    return;
  }
  if (history.shift < kMaxSpinBackoffShift) ++history.shift;
  history.skip = static_cast<std::uint8_t>((1u << history.shift) - 1);
}

// Ends a registered wait with `result` and schedules its thread's wakeup.
void Complete(Wait& wait, DWORD result, WakeList& wake) {
  Unregister(wait);
  KernelThreadData* data = wait.data;
  data->wait_result = result;
  data->current_wait = nullptr;
  // Release: the waiter's acquire load of `park` then sees wait_result and
  // everything the signaler wrote before signaling.
  data->state->park.store(kParkDone, std::memory_order_release);
  wake.Add(data->state);
}

// Whether more waiters of `object` could still be satisfied.
bool MaySatisfyMore(const KernelObject* object) {
  switch (object->kind()) {
    case ObjectKind::kEvent:
      return (static_cast<const Event*>(object)->state.load(std::memory_order_relaxed) &
              Event::kSignaled) != 0;
    case ObjectKind::kMutex:
      return static_cast<const Mutex*>(object)->owner == nullptr;
    case ObjectKind::kSemaphore:
      return static_cast<const Semaphore*>(object)->count > 0;
    case ObjectKind::kThread:
      return true;
    case ObjectKind::kProcess:
      return false;
  }
  return false;
}

// Satisfies the waits on `object` that its new state allows, in FIFO order.
void WakeWaiters(KernelObject* object, WakeList& wake) {
  WaitBlock* next;
  for (WaitBlock* block = object->waiters_head; block != nullptr; block = next) {
    // Complete() unlinks only this wait's blocks, one per object, so `next`
    // (another wait's block on this object) stays valid.
    next = block->next;
    DWORD result;
    if (TrySatisfy(*block->wait, &result)) Complete(*block->wait, result, wake);
    if (!MaySatisfyMore(object)) break;
  }
}

void RunApcs(KernelThreadData& data) {
  for (;;) {
    std::vector<Apc> apcs;
    {
      std::lock_guard lock(g_kernel_mu);
      apcs.swap(data.apcs);
    }
    if (apcs.empty()) return;
    for (const Apc& apc : apcs) apc.function(apc.data);
  }
}

void KernelThreadExit(ThreadState& state) {
  auto* data = static_cast<KernelThreadData*>(state.layer_data[static_cast<int>(Layer::kKernel)]);
  if (data == nullptr) return;
  Thread* self;
  {
    WakeList wake;
    std::lock_guard lock(g_kernel_mu);
    // Read under the lock that SetThreadDescription holds while it writes the
    // live thread's description, so a description set during exit is kept.
    std::wstring description = state.Description();
    // Abandon every mutex the thread still owns: the next acquirer gets
    // WAIT_ABANDONED and becomes the owner.
    while (Mutex* mutex = data->owned_head) {
      UnlinkOwned(*mutex, *data);
      mutex->owner = nullptr;
      mutex->recursion = 0;
      mutex->abandoned = true;
      mutex->owner_tid.store(0, std::memory_order_relaxed);
      WakeWaiters(mutex, wake);
      mutex->Release();
    }
    self = data->self;
    if (self != nullptr) {
      self->exited = true;
      self->exit_code = data->pending_exit_code;
      self->data = nullptr;
      self->final_description = std::move(description);
      WakeWaiters(self, wake);
    }
    data->apcs.clear();
    auto& live = LiveThreads();
    for (size_t i = 0; i < live.size(); ++i) {
      if (live[i] == data) {
        live[i] = live.back();
        live.pop_back();
        break;
      }
    }
    state.layer_data[static_cast<int>(Layer::kKernel)] = nullptr;
  }
  if (self != nullptr) self->Release();
  delete data;
}

[[maybe_unused]] const bool kExitHookRegistered = [] {
  SetThreadExitHook(Layer::kKernel, &KernelThreadExit);
  return true;
}();

}  // namespace

FutexLock& KernelLock() noexcept { return g_kernel_mu; }

KernelThreadData& CurrentKernelData() {
  ThreadState& state = CurrentThreadState();
  auto*& slot = state.layer_data[static_cast<int>(Layer::kKernel)];
  if (__builtin_expect(slot != nullptr, 1)) return *static_cast<KernelThreadData*>(slot);
  auto* data = new KernelThreadData();
  data->state = &state;
  data->tid = state.tid.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(g_kernel_mu);
    LiveThreads().push_back(data);
  }
  slot = data;
  return *data;
}

Thread* CurrentThreadObject() {
  KernelThreadData& data = CurrentKernelData();
  std::lock_guard lock(g_kernel_mu);
  if (data.self == nullptr) {
    auto* thread = new Thread();
    thread->tid.store(data.tid, std::memory_order_relaxed);
    thread->data = &data;
    data.self = thread;  // Adopts the initial reference.
  }
  data.self->AddRef();
  return data.self;
}

DWORD WaitForObjects(KernelObject* const* objects, const HANDLE* handles, DWORD count,
                     bool wait_all, DWORD timeout_ms, bool alertable, const WaitOptions& options) {
  APARTMENTS_CHECK_VALUES(count <= MAXIMUM_WAIT_OBJECTS + 1, "wait count", count, 0);
  // Spin-then-sleep (base/spin.h): when the thread expected to end the wait
  // runs on another CPU, spin briefly for one of the events to be signaled
  // before registering. Spinning before registering (rather than on the park
  // word after it) keeps the signaler on SetEvent's lock-free path: no
  // kernel lock, no FUTEX_WAKE on either side when the spin wins.
  // Race-free: no lock is held; the spin only reads event states (acquire)
  // and decides nothing: the wait below re-checks every object under the
  // kernel lock as if we had not spun. Not for wait-all, zero timeouts, or
  // alertable waits (an APC must run promptly, and we cannot see it here).
  // A wait-any whose first object is an event, with no named peer (an event
  // ping-pong between two threads, a COM reply from an MTA worker), takes the
  // CPU of that event's last SetEvent as its peer's (SpinPeerCpu).
  // Adaptive: a thread whose spins keep failing before long waits skips
  // them for a while (SpinBeforeWait).
  bool spin_failed = false;
  if (!wait_all && timeout_ms != 0 && !alertable &&
      PeerOnOtherCpu(SpinPeerCpu(objects, count, options)) && !AnyEventSignaled(objects, count)) {
    spin_failed = SpinBeforeWait(objects, count);
  }
  // Times the wait after a failed spin (only then: two vDSO clock reads on a
  // path that is about to sleep anyway).
  struct SpinWaitTimer {
    bool on;
    std::chrono::steady_clock::time_point start;
    ~SpinWaitTimer() {
      if (on) EndSpinWait(std::chrono::steady_clock::now() - start);
    }
  } spin_timer{spin_failed, spin_failed ? std::chrono::steady_clock::now()
                                        : std::chrono::steady_clock::time_point{}};
  // Fast path: the first object an event, signaled, nobody queued on it. No
  // lock, no syscall. Also for wait-any over several objects (the COM modal
  // loop waits on its reply event first, then its queue's event): index 0 is
  // the lowest index, so taking it when it is signaled is what the full wait
  // would return whatever the other objects' states (wait-any reports the
  // lowest signaled index). Consuming an auto-reset event by CAS from
  // "signaled, no waiters" is the same step SetEvent's no-waiter path pairs
  // with; a registered waiter (kHasWaiters) sends us to the locked path.
  if ((count == 1 || (count > 1 && !wait_all)) && objects[0]->kind() == ObjectKind::kEvent) {
    auto* event = static_cast<Event*>(objects[0]);
    std::uint32_t s = event->state.load(std::memory_order_acquire);
    if (event->manual_reset) {
      if ((s & Event::kSignaled) != 0) return WAIT_OBJECT_0;
    } else if (s == Event::kSignaled &&
               event->state.compare_exchange_strong(s, 0, std::memory_order_acquire)) {
      return WAIT_OBJECT_0;
    }
  }

  // The block hook runs inside this thread's published wait; a nested wait
  // would overwrite it (see SetBlockHookForDiagnostics).
  APARTMENTS_CHECK_VALUES(!t_in_block_hook, "wait from inside the diagnostics block hook", count,
                          timeout_ms);
  KernelThreadData& data = CurrentKernelData();
  ThreadState& state = *data.state;
  timespec deadline;
  const bool has_deadline = timeout_ms != INFINITE && timeout_ms != 0;
  if (has_deadline) deadline = DeadlineAfterMs(timeout_ms);

  Wait wait;
  wait.data = &data;
  wait.count = count;
  wait.wait_all = wait_all;
  wait.alertable = alertable;
  wait.kind = count == 0 && options.kind == BlockKind::kKernelWait ? BlockKind::kSleep : options.kind;
  wait.target_tid = options.target_tid;
  wait.target_tid_source = options.target_tid_source;
  wait.pumps_com = options.pumps_com;
  wait.timed = has_deadline;
  // Whether the wait has an edge a wait chain follows: only such a wait can
  // close a cycle, so only it runs the deadlock hook (a thread idle in its
  // message loop, on its queue's event alone, does not).
  bool has_edge = options.target_tid != 0 || options.target_tid_source != nullptr;
  for (DWORD i = 0; i < count; ++i) {
    wait.objects[i] = objects[i];
    wait.handles[i] = handles != nullptr ? handles[i] : nullptr;
    const ObjectKind kind = objects[i]->kind();
    has_edge |= kind == ObjectKind::kMutex || kind == ObjectKind::kThread;
  }

  {
    std::unique_lock lock(g_kernel_mu);
    Register(wait);
    DWORD result;
    if (TrySatisfy(wait, &result)) {
      Unregister(wait);
      return result;
    }
    if (alertable && !data.apcs.empty()) {
      Unregister(wait);
      lock.unlock();
      RunApcs(data);
      return WAIT_IO_COMPLETION;
    }
    if (timeout_ms == 0) {
      Unregister(wait);
      return WAIT_TIMEOUT;
    }
    wait.since = CoarseNow();  // Milliseconds are plenty for "blocked since".
    wait.id = ++g_next_wait_id;
    data.current_wait = &wait;
    state.park.store(kParkWaiting, std::memory_order_relaxed);
  }
  if (!has_deadline && has_edge) {
    // Relaxed: installing the hook races with waits by design; a wait that
    // misses a just-installed hook is checked by the next one to block.
    BlockHook hook = g_block_hook.load(std::memory_order_relaxed);
    if (hook != nullptr && !t_in_block_hook) {
      t_in_block_hook = true;
      hook();
      t_in_block_hook = false;
    }
  }

  for (;;) {
    if (state.park.load(std::memory_order_acquire) == kParkDone) break;
    if (!FutexWait(&state.park, kParkWaiting, has_deadline ? &deadline : nullptr)) {
      std::lock_guard lock(g_kernel_mu);
      if (state.park.load(std::memory_order_relaxed) == kParkWaiting) {
        Unregister(wait);
        data.current_wait = nullptr;
        state.park.store(kParkIdle, std::memory_order_relaxed);
        return WAIT_TIMEOUT;
      }
      // Satisfied while we timed out: the satisfaction wins.
    }
  }
  DWORD result = data.wait_result;
  state.park.store(kParkIdle, std::memory_order_relaxed);
  if (result == WAIT_IO_COMPLETION) RunApcs(data);
  return result;
}

int SpinBackoffLevelForTesting() noexcept { return t_spin.shift; }

DWORD SignalEvent(Event& event) noexcept {
  // Before the CAS below, which may be this path's last access to `event`.
  // Stored only when it changes, so that a ping-pong on one CPU or a steady
  // pair of CPUs does not write the line twice.
  const int cpu = sched_getcpu();
  if (event.signaler_cpu.load(std::memory_order_relaxed) != cpu) {
    event.signaler_cpu.store(cpu, std::memory_order_relaxed);
  }
  std::uint32_t s = event.state.load(std::memory_order_relaxed);
  while ((s & Event::kHasWaiters) == 0) {
    // A release RMW even when already signaled, so that a later consumer's
    // acquire sees this thread's writes too. The successful CAS is this
    // path's last access to `event`: a waiter it releases (a spinning COM
    // caller) may drop the last reference at once.
    if (event.state.compare_exchange_weak(s, s | Event::kSignaled, std::memory_order_release,
                                          std::memory_order_relaxed)) {
      return ERROR_SUCCESS;
    }
  }
  // Our own reference across the wakeup: a waiter woken here may return and
  // drop the last other reference while we still walk the waiter list. Taken
  // before the event is signaled, so while its waiters still hold theirs.
  event.AddRef();
  {
    WakeList wake;
    std::lock_guard lock(g_kernel_mu);
    event.state.fetch_or(Event::kSignaled, std::memory_order_release);
    WakeWaiters(&event, wake);
  }
  event.Release();
  return ERROR_SUCCESS;
}

DWORD ResetEventObject(Event& event) noexcept {
  // Safe without the lock even with waiters queued: no waiter is satisfied by
  // an event becoming non-signaled, and a wait-all that saw it signaled under
  // the lock linearizes before this reset.
  event.state.fetch_and(~Event::kSignaled, std::memory_order_acq_rel);
  return ERROR_SUCCESS;
}

DWORD PulseEventObject(Event& event) noexcept {
  WakeList wake;
  std::lock_guard lock(g_kernel_mu);
  event.state.fetch_or(Event::kSignaled, std::memory_order_release);
  WakeWaiters(&event, wake);
  event.state.fetch_and(~Event::kSignaled, std::memory_order_acq_rel);
  return ERROR_SUCCESS;
}

DWORD ReleaseMutexObject(Mutex& mutex) noexcept {
  KernelThreadData& data = CurrentKernelData();
  WakeList wake;
  std::lock_guard lock(g_kernel_mu);
  if (mutex.owner != &data) return ERROR_NOT_OWNER;
  if (--mutex.recursion > 0) return ERROR_SUCCESS;
  UnlinkOwned(mutex, data);
  mutex.owner = nullptr;
  mutex.owner_tid.store(0, std::memory_order_relaxed);
  WakeWaiters(&mutex, wake);
  mutex.Release();  // The owner list's reference; the caller still holds one.
  return ERROR_SUCCESS;
}

DWORD ReleaseSemaphoreObject(Semaphore& semaphore, LONG release_count, LONG* previous) noexcept {
  if (release_count <= 0) return ERROR_INVALID_PARAMETER;
  WakeList wake;
  std::lock_guard lock(g_kernel_mu);
  if (release_count > semaphore.maximum - semaphore.count) return ERROR_TOO_MANY_POSTS;
  if (previous != nullptr) *previous = semaphore.count;
  semaphore.count += release_count;
  WakeWaiters(&semaphore, wake);
  return ERROR_SUCCESS;
}

void AcquireNewMutex(Mutex& mutex) noexcept {
  KernelThreadData& data = CurrentKernelData();
  std::lock_guard lock(g_kernel_mu);
  Acquire(&mutex, &data);
}

DWORD QueueApc(Thread& thread, PAPCFUNC function, ULONG_PTR parameter) {
  WakeList wake;
  std::lock_guard lock(g_kernel_mu);
  KernelThreadData* data = thread.data;
  if (data == nullptr || thread.exited) return ERROR_GEN_FAILURE;
  data->apcs.push_back(Apc{function, parameter});
  if (data->current_wait != nullptr && data->current_wait->alertable) {
    Complete(*data->current_wait, WAIT_IO_COMPLETION, wake);
  }
  return ERROR_SUCCESS;
}

void AdoptThreadObject(Thread* thread) {
  KernelThreadData& data = CurrentKernelData();
  std::lock_guard lock(g_kernel_mu);
  APARTMENTS_CHECK(data.self == nullptr);
  thread->AddRef();
  thread->data = &data;
  data.self = thread;
}

WaitRecord ReadWaitRecord(DWORD tid) {
  WaitRecord record;
  std::lock_guard lock(g_kernel_mu);
  for (KernelThreadData* data : LiveThreads()) {
    if (data->tid != tid) continue;
    const Wait* wait = data->current_wait;
    if (wait == nullptr) return record;
    record.kind = wait->kind;
    record.since = wait->since;
    record.wait_all = wait->wait_all;
    record.alertable = wait->alertable;
    record.target_tid = TargetOf(*wait);
    record.target_from_call = wait->target_tid == 0 && record.target_tid != 0;
    record.pumps_com = wait->pumps_com;
    record.timed = wait->timed;
    record.wait_id = wait->id;
    for (DWORD i = 0; i < wait->count; ++i) {
      const KernelObject* object = wait->objects[i];
      WaitedObject waited{object->kind(), wait->handles[i], object->name(), object->serial(), 0,
                          IsSignaledFor(object, data)};
      if (object->kind() == ObjectKind::kMutex) {
        waited.owner_tid = static_cast<const Mutex*>(object)->owner_tid.load(std::memory_order_relaxed);
      }
      record.objects.push_back(std::move(waited));
    }
    return record;
  }
  return record;
}

void SetBlockHookForDiagnostics(BlockHook hook) noexcept {
  g_block_hook.store(hook, std::memory_order_relaxed);
}

DWORD NextWaitHopTid(DWORD tid) noexcept {
  std::lock_guard lock(g_kernel_mu);
  for (const KernelThreadData* data : LiveThreads()) {
    if (data->tid != tid) continue;
    const Wait* wait = data->current_wait;
    if (wait == nullptr) return 0;
    const DWORD target = TargetOf(*wait);
    if (target != 0) return target;
    for (DWORD i = 0; i < wait->count; ++i) {
      const KernelObject* object = wait->objects[i];
      if (object->kind() == ObjectKind::kMutex) {
        const KernelThreadData* owner = static_cast<const Mutex*>(object)->owner;
        if (owner != nullptr && owner->tid != tid) return owner->tid;
      }
    }
    for (DWORD i = 0; i < wait->count; ++i) {
      const KernelObject* object = wait->objects[i];
      if (object->kind() == ObjectKind::kThread) {
        const auto* thread = static_cast<const Thread*>(object);
        const DWORD waited = thread->tid.load(std::memory_order_relaxed);
        if (!thread->exited && waited != 0 && waited != tid) return waited;
      }
    }
    return 0;
  }
  return 0;
}

bool WaitCycleStillHolds(const CycleHop* hops, std::size_t count) {
  std::lock_guard lock(g_kernel_mu);
  for (std::size_t h = 0; h < count; ++h) {
    const KernelThreadData* found = nullptr;
    for (KernelThreadData* data : LiveThreads()) {
      if (data->tid == hops[h].tid) {
        found = data;
        break;
      }
    }
    if (found == nullptr) return false;
    const Wait* wait = found->current_wait;
    // kParkWaiting: nobody has satisfied the wait yet (a satisfied wait
    // leaves current_wait set until its thread runs again).
    if (wait == nullptr || wait->id != hops[h].wait_id ||
        found->state->park.load(std::memory_order_relaxed) != kParkWaiting) {
      return false;
    }
    const DWORD target = TargetOf(*wait);
    bool edge = target != 0 && target == hops[h].next_tid;
    for (DWORD i = 0; !edge && i < wait->count; ++i) {
      const KernelObject* object = wait->objects[i];
      if (object->kind() != ObjectKind::kMutex) continue;
      const KernelThreadData* owner = static_cast<const Mutex*>(object)->owner;
      edge = owner != nullptr && owner->tid == hops[h].next_tid;
    }
    if (!edge) return false;
  }
  return true;
}

}  // namespace apartments::internal
