// Apartments: STA and MTA objects, CoInitializeEx and friends, the MTA worker
// pool, and teardown. See apartment_impl.h for the call records and locking.
//
// Why one file over 800 lines: the apartment's one queue (calls, one-way
// tasks and the runtime's work: Enqueue, TakeDispatched, Withdraw, Shutdown)
// and the teardown that empties it share one lock and one set of invariants
// (apartment_impl.h); keeping them side by side lets a reader check each
// transition against the others. The MTA worker pool is the part that could
// move out (its own file) when it grows.

#include <sched.h>

#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "base/check.h"
#include "base/guarded.h"
#include "base/lazy_diagnostics.h"
#include "base/spin.h"
#include "base/thread_state.h"
#include "com/apartment_impl.h"
#include "com/cancel.h"
#include "com/com_thread.h"
#include "kernel/futex.h"
#include "message/queue.h"
#include "message/window.h"

namespace apartments::internal {
namespace {

std::atomic<std::uint64_t> g_next_apartment_id{1};
std::atomic<DWORD> g_next_process_cookie{1};

// The main STA: the first STA created while no main STA is alive. `alive`
// is true while one is; `sta` is it, for MainStaApartment() (in-process
// servers).
struct MainSta {
  bool alive = false;
  std::weak_ptr<ComApartment> sta;
};
Guarded<MainSta>& MainStaState() {
  static auto* main = new Guarded<MainSta>();  // Never destroyed.
  return *main;
}

// --- The MTA ----------------------------------------------------------------

// The process's MTA and its users: threads initialized in it plus
// outstanding CoIncrementMTAUsage cookies. The MTA object is created by the
// first user and shut down by the thread that removes the last one.
struct MtaState {
  std::shared_ptr<ApartmentImpl> slot;
  std::set<CO_MTA_USAGE_COOKIE> cookies;
  int users = 0;
};
Guarded<MtaState>& Mta() {
  static auto* mta = new Guarded<MtaState>();  // Never destroyed.
  return *mta;
}
// The live MTA, readable without the lock for "is there an implicit MTA";
// the object it names is kept alive by Mta()'s slot until it is cleared,
// and callers that keep it take a reference under the lock
// (CurrentApartment).
std::atomic<ApartmentImpl*> g_mta_raw{nullptr};

std::shared_ptr<ApartmentImpl> AddMtaUser() {
  auto mta = Mta().Lock();
  if (!mta->slot) {
    mta->slot = ApartmentImpl::MakeMta();
    g_mta_raw.store(mta->slot.get(), std::memory_order_release);
  }
  ++mta->users;
  return mta->slot;
}

// Removes one user; the last one shuts the MTA down on this thread.
void RemoveMtaUser() {
  std::shared_ptr<ApartmentImpl> ending;
  {
    auto mta = Mta().Lock();
    APARTMENTS_CHECK_VALUES(mta->users > 0, "MTA users", mta->users, 0);
    if (--mta->users == 0) {
      ending = std::move(mta->slot);
      mta->slot.reset();
      g_mta_raw.store(nullptr, std::memory_order_release);
    }
  }
  if (ending) ending->Shutdown();
}

// --- The MTA worker pool ----------------------------------------------------

// Threads that run calls into the MTA. One work item per queued call names
// the apartment to take a call from; a worker that finds the apartment's
// list empty (the teardown took the call) just goes back to waiting. The
// pool grows whenever there is more work than idle workers, so a call that
// blocks (on an STA that calls back into the MTA) never starves another.
// Workers live until the process exits.
//
// The hand-off costs what a futex round trip does: an idle worker parks on a
// futex word of its own, and Submit hands the work item straight to the
// most recently parked worker (LIFO: its stack and caches are the warmest)
// and wakes it with one FUTEX_WAKE, only when it really sleeps. No condition
// variable: its wake-up made the worker take the pool's mutex again, and the
// caller's wait and the worker's wake-up interleaved worse on one vCPU (4.2
// system calls and 2.3 context switches per STA->MTA call, against 2 and 2
// for an STA->STA call).
//
// A worker's park word (Worker::word):
//   kRunning  --(worker finds no work, under the pool lock: on the idle stack)--> kIdle
//   kIdle     --(worker about to sleep, CAS)----------------------------------> kSleeping
//   kIdle | kSleeping --(Submit pops it, under the pool lock; exchange)------> kHanded
//             (FUTEX_WAKE only from kSleeping)
//   kHanded   --(worker takes its item)--------------------------------------> kRunning
// Only Submit moves a worker off the idle stack, so a worker on it is handed
// exactly one item before it runs again.
class WorkerPool {
 public:
  void Submit(std::shared_ptr<ApartmentImpl> apartment) {
    Worker* handed = nullptr;
    bool spawn = false;
    {
      auto pool = pool_.Lock();
      // A hint for idle workers: spin before sleeping only while work comes
      // from another CPU than theirs (base/spin.h). Relaxed: orders nothing.
      submit_cpu_.store(sched_getcpu(), std::memory_order_relaxed);
      if (pool->idle != nullptr) {
        handed = pool->idle;
        pool->idle = handed->next_idle;
        handed->item = std::move(apartment);
      } else {
        // Every worker is busy (or blocked in a call): queue the item and
        // start one more, as the pool always grows past its busy workers.
        pool->work.push_back(std::move(apartment));
        spawn = true;
      }
    }
    if (handed != nullptr) {
      // Release: the worker's acquire load of the word sees `item`. After
      // this the worker may run and park again at once; the word lives as
      // long as the process (workers never exit), so the late FUTEX_WAKE is
      // at worst a spurious one.
      if (handed->word.exchange(kHanded, std::memory_order_release) == kSleeping) {
        FutexWake(&handed->word, 1);
      }
    } else if (spawn) {
      std::thread([this] { WorkerMain(); }).detach();
    }
  }

 private:
  static constexpr std::uint32_t kRunning = 0;
  static constexpr std::uint32_t kIdle = 1;
  static constexpr std::uint32_t kSleeping = 2;
  static constexpr std::uint32_t kHanded = 3;

  // One per worker thread, never freed (workers live until the process exits).
  struct Worker {
    std::atomic<std::uint32_t> word{kRunning};
    // Written by Submit under the pool lock before the word becomes kHanded;
    // read by the worker after it sees kHanded (acquire).
    std::shared_ptr<ApartmentImpl> item;
    Worker* next_idle = nullptr;  // Guarded by the pool lock.
  };

  struct Pool {
    std::deque<std::shared_ptr<ApartmentImpl>> work;  // Items no idle worker took.
    Worker* idle = nullptr;  // Parked workers, most recently parked first.
  };

  // The next item for `self`: queued work if any, else what Submit hands it
  // once it has parked.
  std::shared_ptr<ApartmentImpl> NextItem(Worker& self) {
    {
      auto pool = pool_.Lock();
      if (!pool->work.empty()) {
        std::shared_ptr<ApartmentImpl> item = std::move(pool->work.front());
        pool->work.pop_front();
        return item;
      }
      self.word.store(kIdle, std::memory_order_relaxed);
      self.next_idle = pool->idle;
      pool->idle = &self;
    }
    // Spin-then-sleep (base/spin.h): while calls come from another CPU, the
    // next one usually comes within a few microseconds, far sooner than a
    // cross-CPU wake-up; on one CPU the spin would only delay the caller.
    if (PeerOnOtherCpu(submit_cpu_.load(std::memory_order_relaxed))) {
      SpinUntil([&] { return self.word.load(std::memory_order_relaxed) == kHanded; });
    }
    std::uint32_t word = kIdle;
    // Acquire on failure (kHanded): the item Submit stored is visible.
    if (self.word.compare_exchange_strong(word, kSleeping, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
      word = kSleeping;
    }
    while (word != kHanded) {
      // Spurious returns (EINTR: a diagnostics stack capture) re-check.
      FutexWait(&self.word, kSleeping, nullptr);
      word = self.word.load(std::memory_order_acquire);
    }
    self.word.store(kRunning, std::memory_order_relaxed);
    return std::move(self.item);
  }

  void WorkerMain() {
    ComThreadData& data = CurrentComThreadData();
    data.mta_worker = true;
    SetThreadDescription(GetCurrentThread(), L"MTA worker");
    Worker& self = *new Worker();  // Never freed: see Worker.
    for (;;) {
      std::shared_ptr<ApartmentImpl> apartment = NextItem(self);
      if (apartment->HasRuntimeWork()) {
        data.apartment = apartment;
        PublishApartmentTag(apartment.get());
        apartment->RunRuntimeWork();
        data.apartment.reset();
        PublishApartmentTag(nullptr);
      }
      if (ChannelCall* call = apartment->TakeOldest()) {
        data.apartment = apartment;
        PublishApartmentTag(apartment.get());
        ServeCall(apartment.get(), call, nullptr);
        data.apartment.reset();
        PublishApartmentTag(nullptr);
      }
    }
  }

  Guarded<Pool> pool_;
  std::atomic<int> submit_cpu_{-1};
};

WorkerPool& Pool() {
  static auto* pool = new WorkerPool();  // Never destroyed: workers outlive main.
  return *pool;
}

// --- The STA's window ----------------------------------------------------------

constexpr wchar_t kWindowClass[] = L"OleMainThreadWndClass";

LRESULT CALLBACK ComWindowProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  if (message != kComCallMessage) return DefWindowProcW(hwnd, message, wparam, lparam);
  // A plain task is its message alone (ApartmentImpl::PostTask): ours now.
  if (wparam == kComPlainTask) {
    RunTask(reinterpret_cast<PostedTask*>(lparam));
    return 0;
  }
  ComThreadData* data = ComThreadDataIfAny();
  ApartmentImpl* sta = data != nullptr ? CurrentSta(data) : nullptr;
  // The window is alive, so its apartment is this thread's STA (see
  // apartment_impl.h); a mismatch is a bug.
  APARTMENTS_CHECK(sta != nullptr && sta->hwnd() == hwnd);
  ServeDispatched(sta, reinterpret_cast<QueueEntry*>(lparam), data->message_filter);
  return 0;
}

bool RegisterWindowClassOnce() {
  static const bool registered = [] {
    WNDCLASSW wc{};
    wc.lpfnWndProc = &ComWindowProc;
    wc.lpszClassName = kWindowClass;
    return RegisterClassW(&wc) != 0 || GetLastError() == ERROR_CLASS_ALREADY_EXISTS;
  }();
  return registered;
}

HRESULT CreateSta(ComThreadData& data) {
  if (!RegisterWindowClassOnce()) return E_OUTOFMEMORY;
  HWND hwnd = CreateWindowExW(0, kWindowClass, L"OleMainThreadWndName", 0, 0, 0, 0, 0,
                              HWND_MESSAGE, nullptr, nullptr, nullptr);
  if (hwnd == nullptr) return E_OUTOFMEMORY;
  WindowInfo info;
  APARTMENTS_CHECK(LookupWindow(hwnd, &info));
  bool main_sta;
  {
    auto main = MainStaState().Lock();
    main_sta = !main->alive;
    if (main_sta) main->alive = true;
  }
  data.apartment = ApartmentImpl::MakeSta(main_sta, hwnd, info.queue, info.incarnation);
  if (main_sta) MainStaState().Lock()->sta = data.apartment;
  PublishApartmentTag(data.apartment.get());
  return S_OK;
}

// Leaves the thread's apartment (last CoUninitialize or thread exit).
void LeaveApartment(ComThreadData& data) {
  ApartmentRef apartment = std::move(data.apartment);
  data.apartment.reset();
  PublishApartmentTag(nullptr);
  data.init_count = 0;
  if (!apartment) return;
  if (apartment->kind() == ApartmentKind::kSta) {
    static_cast<ApartmentImpl*>(apartment.get())->Shutdown();
    if (apartment->is_main_sta()) {
      auto main = MainStaState().Lock();
      main->alive = false;
      main->sta.reset();
    }
    // The filter goes with the apartment, as on Windows.
    if (IMessageFilter* filter = std::exchange(data.message_filter, nullptr)) filter->Release();
  } else {
    RemoveMtaUser();
  }
}

}  // namespace

ApartmentRef MainStaApartment() { return MainStaState().Lock()->sta.lock(); }

ApartmentRef MtaApartmentIfAny() { return Mta().Lock()->slot; }

// --- ApartmentImpl -------------------------------------------------------------

ApartmentImpl::ApartmentImpl(ApartmentKind kind, bool main_sta, DWORD tid)
    : kind_(kind),
      main_sta_(main_sta),
      id_(g_next_apartment_id.fetch_add(1, std::memory_order_relaxed)),
      tid_(tid),
      creation_name_(tid != 0 ? ThreadNameOf(tid) : std::string()) {}

std::shared_ptr<ApartmentImpl> ApartmentImpl::MakeSta(bool main_sta, HWND hwnd,
                                                      MessageQueue* queue,
                                                      std::uint64_t incarnation) {
  auto sta = std::make_shared<ApartmentImpl>(ApartmentKind::kSta, main_sta, CurrentThreadId());
  sta->hwnd_ = hwnd;
  sta->queue_ = queue;
  sta->incarnation_ = incarnation;
  return sta;
}

std::shared_ptr<ApartmentImpl> ApartmentImpl::MakeMta() {
  return std::make_shared<ApartmentImpl>(ApartmentKind::kMta, false, 0);
}

bool ApartmentImpl::IsCurrent() const noexcept {
  ComThreadData* data = ComThreadDataIfAny();
  if (data != nullptr && data->apartment) return data->apartment.get() == this;
  return kind_ == ApartmentKind::kMta && g_mta_raw.load(std::memory_order_acquire) == this;
}

std::string ApartmentImpl::Describe() const {
  if (kind_ == ApartmentKind::kMta) return "the MTA (apartment " + std::to_string(id_) + ")";
  std::string name = IsShutDown() ? final_name_ : ThreadNameOf(tid_);
  if (name.empty()) name = creation_name_;
  std::string out = (main_sta_ ? "main STA " : "STA ") + std::to_string(id_) + " (thread " +
                    std::to_string(tid_);
  if (!name.empty()) out += " '" + name + "'";
  return out + ")";
}

bool ApartmentImpl::AddShutdownCallback(std::function<void()> callback) {
  auto locked = shared_.Lock();
  if (locked->state != State::kRunning) return false;
  locked->callbacks.push_back(std::move(callback));
  return true;
}

void ApartmentImpl::SharedState::Link(QueueEntry* entry) {
  entry->stage = QueueEntry::Stage::kQueued;
  entry->next = nullptr;
  entry->prev = tail;
  if (tail != nullptr) {
    tail->next = entry;
  } else {
    head = entry;
  }
  tail = entry;
}

void ApartmentImpl::SharedState::Unlink(QueueEntry* entry) {
  if (entry->prev != nullptr) {
    entry->prev->next = entry->next;
  } else {
    head = entry->next;
  }
  if (entry->next != nullptr) {
    entry->next->prev = entry->prev;
  } else {
    tail = entry->prev;
  }
  entry->prev = entry->next = nullptr;
}

HRESULT ApartmentImpl::RefuseLocked(SharedState& locked, QueueEntry* entry) {
  if (entry->stage == QueueEntry::Stage::kCancelled) return entry->cancelled;
  // Runtime work is never lost: while shutting down, Shutdown runs it.
  if (entry->kind != QueueEntry::Kind::kRuntimeTask || locked.state == State::kGone) {
    return RPC_E_DISCONNECTED;
  }
  locked.Link(entry);
  return S_OK;
}

// Enqueue for an entry of kind K (a call's path pays for no other kind).
template <QueueEntry::Kind K>
[[gnu::always_inline]] inline HRESULT ApartmentImpl::EnqueueAs(QueueEntry* entry) {
  constexpr bool kRuntime = K == QueueEntry::Kind::kRuntimeTask;
  // Only a withdrawable task can be cancelled before it is queued.
  constexpr bool kMayBeCancelled = K == QueueEntry::Kind::kTask;
  if (kind_ == ApartmentKind::kSta) {
    {
      auto locked = shared_.Lock();
      if (__builtin_expect(locked->state != State::kRunning ||
                               (kMayBeCancelled &&
                                entry->stage == QueueEntry::Stage::kCancelled),
                           0)) {
        return RefuseLocked(*locked, entry);
      }
      locked->Link(entry);
    }
    // Outside the lock (see apartment_impl.h): posting may wake the STA
    // thread, which at once takes the lock to unlink the entry. Runtime work
    // is exempt from the quota.
    constexpr WPARAM kBits = K == QueueEntry::Kind::kCall   ? 0
                             : K == QueueEntry::Kind::kTask ? kComTaskBit
                                                            : kComRuntimeBit;
    DWORD error = queue_->Post(tid_, incarnation_, hwnd_, kComCallMessage, kBits,
                               reinterpret_cast<LPARAM>(entry),
                               kRuntime ? MessageQueue::PostQuota::kExempt
                                        : MessageQueue::PostQuota::kCounted);
    if (__builtin_expect(error == ERROR_SUCCESS, 1)) return S_OK;
    auto locked = shared_.Lock();
    // Taken by the teardown meanwhile: it ends the entry (disconnected).
    if (entry->stage != QueueEntry::Stage::kQueued) return S_OK;
    // Runtime work stays linked: the thread's queue is gone (it exited), and
    // its exit hook's Shutdown runs it.
    if (kRuntime) return S_OK;
    locked->Unlink(entry);
    entry->stage = QueueEntry::Stage::kIdle;
    if (error == ERROR_NOT_ENOUGH_QUOTA) return HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA);
    // The thread's queue is gone: it exited, and its exit hook is about to
    // shut this apartment down (or has).
    return RPC_E_DISCONNECTED;
  }
  // The MTA has no thread of its own to post a task to (the modern API
  // posts only to an STA).
  APARTMENTS_CHECK_VALUES(K != QueueEntry::Kind::kTask, "task posted to the MTA",
                          static_cast<int>(K), 0);
  {
    auto locked = shared_.Lock();
    if (locked->state != State::kRunning) return RefuseLocked(*locked, entry);
    locked->Link(entry);
    if (kRuntime) has_runtime_work_.store(true, std::memory_order_release);
  }
  Pool().Submit(shared_from_this());
  return S_OK;
}

HRESULT ApartmentImpl::Enqueue(ChannelCall* call) {
  return EnqueueAs<QueueEntry::Kind::kCall>(call);
}

HRESULT ApartmentImpl::Enqueue(QueueEntry* entry) {
  switch (entry->kind) {
    case QueueEntry::Kind::kCall: return EnqueueAs<QueueEntry::Kind::kCall>(entry);
    case QueueEntry::Kind::kTask: return EnqueueAs<QueueEntry::Kind::kTask>(entry);
    case QueueEntry::Kind::kRuntimeTask: return EnqueueAs<QueueEntry::Kind::kRuntimeTask>(entry);
  }
  return E_UNEXPECTED;
}

HRESULT ApartmentImpl::PostTask(PostedTask* task) {
  APARTMENTS_CHECK_VALUES(kind_ == ApartmentKind::kSta, "task posted to the MTA", id_, 0);
  // Under the lock, unlike Enqueue's post: nothing in the list stands for
  // the task, so "running" and "queued" must be one step against the
  // shutdown's drain. The woken thread takes no lock to run it.
  auto locked = shared_.Lock();
  if (locked->state != State::kRunning) return RPC_E_DISCONNECTED;
  const DWORD error = queue_->Post(tid_, incarnation_, hwnd_, kComCallMessage, kComPlainTask,
                                   reinterpret_cast<LPARAM>(task));
  if (__builtin_expect(error == ERROR_SUCCESS, 1)) return S_OK;
  if (error == ERROR_NOT_ENOUGH_QUOTA) return HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA);
  return RPC_E_DISCONNECTED;  // The thread's queue is gone (it exited).
}

void ApartmentImpl::DiscardRetrieved(const MSG& msg) {
  if (msg.hwnd == hwnd_ && msg.message == kComCallMessage && msg.wParam == kComPlainTask) {
    reinterpret_cast<PostedTask*>(msg.lParam)->Drop();  // Ends the task.
  }
}

void ApartmentImpl::DrainPlainTasks(std::vector<PostedTask*>* dropped) {
  // The thread's own queue; gone when the thread is exiting (its messages
  // with it).
  MessageQueue* queue = CurrentQueueIfAny();
  if (kind_ != ApartmentKind::kSta || queue == nullptr) return;
  MessageQueue::Filter plain;
  plain.hwnd = hwnd_;
  plain.min = plain.max = kComCallMessage;
  plain.sent = false;  // No handler runs here: nothing may post in between.
  plain.wparam_mask = kComPlainTask;
  plain.wparam_value = kComPlainTask;
  MSG msg;
  while (queue->GetOrPeek(plain, false, &msg)) {
    dropped->push_back(reinterpret_cast<PostedTask*>(msg.lParam));
  }
}

int ApartmentImpl::owner_cpu() const noexcept {
  if (queue_ == nullptr) return -1;
  // The queue is type-stable, so reading a recycled one is harmless: at worst
  // a useless (bounded) spin. A relaxed load of a hint (MessageQueue::
  // owner_cpu): it orders nothing.
  return queue_->owner_cpu();
}

ApartmentImpl::Take ApartmentImpl::TakeDispatched(QueueEntry* entry) {
  auto locked = shared_.Lock();
  if (locked->withdrawn.IsTombstone(reinterpret_cast<LPARAM>(entry))) return Take::kWithdrawn;
  locked->Unlink(entry);
  entry->stage = QueueEntry::Stage::kTaken;
  return locked->state == State::kRunning ? Take::kRun : Take::kDisconnected;
}

void ApartmentImpl::WithdrawMessageLocked(SharedState& locked, QueueEntry* entry) {
  (void)locked.withdrawn.Withdraw(*queue_, hwnd_, kComCallMessage,
                                  reinterpret_cast<LPARAM>(entry));
}

ApartmentImpl::Withdrawal ApartmentImpl::Withdraw(QueueEntry* entry, HRESULT why) {
  auto locked = shared_.Lock();
  switch (entry->stage) {
    case QueueEntry::Stage::kIdle:
      // Not queued yet (a withdrawable task whose watch fired before the
      // post): Enqueue refuses it with `why`.
      entry->stage = QueueEntry::Stage::kCancelled;
      entry->cancelled = why;
      return Withdrawal::kCancelledBeforeQueued;
    case QueueEntry::Stage::kQueued:
      break;
    case QueueEntry::Stage::kTaken:
    case QueueEntry::Stage::kWithdrawn:
    case QueueEntry::Stage::kCancelled:
      return Withdrawal::kTaken;
  }
  locked->Unlink(entry);
  entry->stage = QueueEntry::Stage::kWithdrawn;
  if (kind_ == ApartmentKind::kSta) WithdrawMessageLocked(*locked, entry);
  return Withdrawal::kWithdrawn;
}

ChannelCall* ApartmentImpl::TakeOldest() {
  auto locked = shared_.Lock();
  QueueEntry* entry = locked->head;
  // Runtime work is RunRuntimeWork's; the MTA holds no tasks.
  while (entry != nullptr && entry->kind != QueueEntry::Kind::kCall) entry = entry->next;
  if (entry == nullptr) return nullptr;
  locked->Unlink(entry);
  entry->stage = QueueEntry::Stage::kTaken;
  return static_cast<ChannelCall*>(entry);
}

void ApartmentImpl::DropQueuedTasks() {
  std::vector<PostedTask*> dropped;
  {
    auto locked = shared_.Lock();
    for (QueueEntry* entry = locked->head; entry != nullptr;) {
      QueueEntry* next = entry->next;
      if (entry->kind == QueueEntry::Kind::kTask) {
        locked->Unlink(entry);
        entry->stage = QueueEntry::Stage::kTaken;
        // Its message must never be dispatched now: removed, or a tombstone.
        if (kind_ == ApartmentKind::kSta) WithdrawMessageLocked(*locked, entry);
        dropped.push_back(static_cast<PostedTask*>(entry));
      }
      entry = next;
    }
  }
  // Posted under the lock while running: all of them are queued by now.
  DrainPlainTasks(&dropped);
  // Outside the lock: Drop() may resume a coroutine, which may post again
  // (and be refused: the apartment is shutting down).
  for (PostedTask* task : dropped) task->Drop();  // Ends the task.
}

namespace {
// Runs and frees a chain of runtime work (linked by `next`) the caller took.
void RunRuntimeChain(QueueEntry* chain) {
  while (chain != nullptr) {
    std::unique_ptr<RuntimeTask> task(static_cast<RuntimeTask*>(chain));
    chain = chain->next;
    task->work();
  }
}
}  // namespace

void ApartmentImpl::Shutdown() {
  std::vector<std::function<void()>> callbacks;
  {
    auto locked = shared_.Lock();
    if (locked->state != State::kRunning) return;
    locked->state = State::kShuttingDown;
    if (kind_ == ApartmentKind::kSta) final_name_ = ThreadNameOf(tid_);
    shutdown_rep_.store(GetClock().Now().time_since_epoch().count(), std::memory_order_relaxed);
    shut_down_.store(true, std::memory_order_release);
    callbacks.swap(locked->callbacks);
  }
  for (auto it = callbacks.rbegin(); it != callbacks.rend(); ++it) {
    try {
      (*it)();
    } catch (...) {
      // A callback's failure must not stop the teardown: callers wait on it.
    }
  }
  QueueEntry* queued;
  {
    auto locked = shared_.Lock();
    locked->state = State::kGone;
    queued = locked->head;
    locked->head = locked->tail = nullptr;
    locked->withdrawn.Clear();
    for (QueueEntry* e = queued; e != nullptr; e = e->next) e->stage = QueueEntry::Stage::kTaken;
  }
  // Nothing pumps between emptying the list and destroying the window, so
  // the messages left for these entries are never dispatched. Calls are
  // completed (a completed call's record may go at once: `next` first),
  // tasks dropped, and runtime work set aside to run after them.
  QueueEntry* runtime = nullptr;
  QueueEntry** runtime_tail = &runtime;
  while (queued != nullptr) {
    QueueEntry* next = queued->next;
    switch (queued->kind) {
      case QueueEntry::Kind::kCall:
        CompleteCall(static_cast<ChannelCall*>(queued), CallOutcome::kDisconnected,
                     RPC_E_DISCONNECTED);
        break;
      case QueueEntry::Kind::kTask:
        static_cast<PostedTask*>(queued)->Drop();
        break;
      case QueueEntry::Kind::kRuntimeTask:
        queued->next = nullptr;
        *runtime_tail = queued;
        runtime_tail = &queued->next;
        break;
    }
    queued = next;
  }
  // Plain tasks left (an apartment whose tasks no callback dropped).
  std::vector<PostedTask*> dropped;
  DrainPlainTasks(&dropped);
  for (PostedTask* task : dropped) task->Drop();
  // The runtime work queued until now (none can be added once kGone) runs
  // here, on the shutting-down thread: it is never lost.
  RunRuntimeChain(runtime);
  if (kind_ == ApartmentKind::kSta) DestroyWindow(hwnd_);
}

bool ApartmentImpl::PostRuntimeWork(std::function<void()> work) {
  auto task = std::make_unique<RuntimeTask>(std::move(work));
  if (FAILED(Enqueue(task.get()))) return false;  // Gone.
  (void)task.release();  // The queue owns it now.
  return true;
}

void ApartmentImpl::RunRuntimeWork() {
  QueueEntry* chain = nullptr;
  QueueEntry** chain_tail = &chain;
  {
    auto locked = shared_.Lock();
    has_runtime_work_.store(false, std::memory_order_relaxed);
    for (QueueEntry* entry = locked->head; entry != nullptr;) {
      QueueEntry* next = entry->next;
      if (entry->kind == QueueEntry::Kind::kRuntimeTask) {
        locked->Unlink(entry);
        entry->stage = QueueEntry::Stage::kTaken;
        *chain_tail = entry;
        chain_tail = &entry->next;
      }
      entry = next;
    }
  }
  RunRuntimeChain(chain);
}

bool PostRuntimeWork(const ApartmentRef& target, std::function<void()> work) {
  return static_cast<ApartmentImpl*>(target.get())->PostRuntimeWork(std::move(work));
}

// --- Current apartment -----------------------------------------------------------

ApartmentImpl* CurrentApartmentRaw(ComThreadData* data) {
  if (data != nullptr && data->apartment) return static_cast<ApartmentImpl*>(data->apartment.get());
  return g_mta_raw.load(std::memory_order_acquire);
}

ApartmentImpl* CurrentSta(ComThreadData* data) {
  if (data == nullptr || !data->apartment || data->apartment->kind() != ApartmentKind::kSta) {
    return nullptr;
  }
  return static_cast<ApartmentImpl*>(data->apartment.get());
}

ApartmentRef CurrentApartment() {
  ComThreadData* data = ComThreadDataIfAny();
  if (data != nullptr && data->apartment) return data->apartment;
  return Mta().Lock()->slot;
}

GUID CurrentCausality(ComThreadData& data) {
  if (data.incoming_causality != nullptr) return *data.incoming_causality;
  if (!data.has_logical_thread_id) {
    CoCreateGuid(&data.logical_thread_id);
    data.has_logical_thread_id = true;
  }
  return data.logical_thread_id;
}

void PublishApartmentTag(const ComApartment* apartment) noexcept {
  std::uint64_t tag = 0;
  if (apartment != nullptr) {
    const std::uint64_t kind = apartment->kind() == ApartmentKind::kMta ? kApartmentTagMta
                               : apartment->is_main_sta()              ? kApartmentTagMainSta
                                                                       : kApartmentTagSta;
    tag = kind | (apartment->id() & kApartmentTagIdMask);
  }
  // Relaxed: a diagnostic label, read by reports that tolerate staleness.
  CurrentThreadState().apartment_tag.store(tag, std::memory_order_relaxed);
  // The STA's window, for the hang watchdog's filtered-pump reports.
  const auto* sta = apartment != nullptr && apartment->kind() == ApartmentKind::kSta
                        ? dynamic_cast<const ApartmentImpl*>(apartment)
                        : nullptr;
  CurrentThreadState().activity.apartment_hwnd.store(sta != nullptr ? sta->hwnd() : nullptr,
                                                     std::memory_order_relaxed);
}

void ApartmentThreadExit(ComThreadData& data) {
  if (data.apartment && !data.mta_worker) LeaveApartment(data);
  if (IMessageFilter* filter = std::exchange(data.message_filter, nullptr)) filter->Release();
  for (HANDLE event : data.reply_events) CloseHandle(event);
  data.reply_events.clear();
}

void ApartmentThreadExitStarting(ComThreadData& data) {
  if (!data.apartment || data.mta_worker || data.apartment->kind() != ApartmentKind::kSta) return;
  static_cast<ApartmentImpl*>(data.apartment.get())->Shutdown();
}

}  // namespace apartments::internal

using namespace apartments::internal;

extern "C" {

HRESULT WINAPI CoInitializeEx(LPVOID pvReserved, DWORD dwCoInit) {
  constexpr DWORD kValid = COINIT_APARTMENTTHREADED | COINIT_DISABLE_OLE1DDE |
                           COINIT_SPEED_OVER_MEMORY;
  if (pvReserved != nullptr || (dwCoInit & ~kValid) != 0) return E_INVALIDARG;
  const bool sta = (dwCoInit & COINIT_APARTMENTTHREADED) != 0;
  ComThreadData& data = CurrentComThreadData();
  if (data.mta_worker) return sta ? RPC_E_CHANGED_MODE : S_FALSE;
  if (data.init_count > 0) {
    const bool is_sta = data.apartment->kind() == ApartmentKind::kSta;
    if (is_sta != sta) return RPC_E_CHANGED_MODE;
    ++data.init_count;
    return S_FALSE;
  }
  if (sta) {
    HRESULT hr = CreateSta(data);
    if (FAILED(hr)) return hr;
  } else {
    data.apartment = AddMtaUser();
    PublishApartmentTag(data.apartment.get());
  }
  data.init_count = 1;
  // Self-diagnosis is on by default in a process that uses COM (an STA also
  // started it with its queue; an MTA thread may have none).
  StartDiagnosticsOnFirstUse();
  return S_OK;
}

HRESULT WINAPI CoInitialize(LPVOID pvReserved) {
  return CoInitializeEx(pvReserved, COINIT_APARTMENTTHREADED);
}

void WINAPI CoUninitialize(void) {
  ComThreadData* data = ComThreadDataIfAny();
  if (data == nullptr || data->init_count == 0 || data->mta_worker) return;
  if (--data->init_count > 0) return;
  LeaveApartment(*data);
}

HRESULT WINAPI CoGetApartmentType(APTTYPE* pAptType, APTTYPEQUALIFIER* pAptQualifier) {
  if (pAptType == nullptr || pAptQualifier == nullptr) return E_INVALIDARG;
  ComThreadData* data = ComThreadDataIfAny();
  *pAptQualifier = APTTYPEQUALIFIER_NONE;
  if (data != nullptr && (data->init_count > 0 || data->mta_worker)) {
    if (data->mta_worker || data->apartment->kind() == ApartmentKind::kMta) {
      *pAptType = APTTYPE_MTA;
    } else {
      *pAptType = data->apartment->is_main_sta() ? APTTYPE_MAINSTA : APTTYPE_STA;
    }
    return S_OK;
  }
  if (g_mta_raw.load(std::memory_order_acquire) != nullptr) {
    *pAptType = APTTYPE_MTA;
    *pAptQualifier = APTTYPEQUALIFIER_IMPLICIT_MTA;
    return S_OK;
  }
  *pAptType = APTTYPE_CURRENT;
  return CO_E_NOTINITIALIZED;
}

HRESULT WINAPI CoIncrementMTAUsage(CO_MTA_USAGE_COOKIE* pCookie) {
  if (pCookie == nullptr) return E_INVALIDARG;
  AddMtaUser();
  auto* cookie = new CO_MTA_USAGE_COOKIE__{0};
  Mta().Lock()->cookies.insert(cookie);
  *pCookie = cookie;
  return S_OK;
}

HRESULT WINAPI CoDecrementMTAUsage(CO_MTA_USAGE_COOKIE Cookie) {
  {
    if (Mta().Lock()->cookies.erase(Cookie) == 0) return E_INVALIDARG;
  }
  delete Cookie;
  RemoveMtaUser();
  return S_OK;
}

DWORD WINAPI CoGetCurrentProcess(void) {
  ComThreadData& data = CurrentComThreadData();
  if (data.process_cookie == 0) {
    data.process_cookie = g_next_process_cookie.fetch_add(1, std::memory_order_relaxed);
  }
  return data.process_cookie;
}

HRESULT WINAPI CoGetCurrentLogicalThreadId(GUID* pguid) {
  if (pguid == nullptr) return E_INVALIDARG;
  *pguid = CurrentCausality(CurrentComThreadData());
  return S_OK;
}

}  // extern "C"
