// The modern API's apartments (include/apartments/apartment.h) over the COM
// core: Call is InvokeInApartment; Post and the coroutine awaitables use the
// non-blocking post path below.
//
// The non-blocking post path. The channel has no fire-and-forget call (its
// ChannelCall lives on the waiting caller's stack), so a posted callable
// travels as a PostedTask* in a message posted to a message-only window the
// apartment thread owns ("ApartmentsPostWindow"), in the same thread queue as
// the channel's calls: same FIFO, same posted-message quota, dispatched by
// any GetMessageW/DispatchMessageW loop on that thread. Every task is owned by
// exactly one party at a time:
//   poster --PostMessageW ok--> queue --window procedure--> Run()
//                                     --shutdown drain----> Drop()
//   poster --PostMessageW fails (quota)--> stays with the poster
// Run() and Drop() end the task (PostedTask, apartment.h): Post()'s task
// deletes itself; an awaiter's task lives in the coroutine frame.
// ModernState::mu_ makes "accepting" and the post one step, so once the
// shutdown callback has set accepting = false (under mu_) no message can be
// added behind its drain: every queued task is found by the drain, none is
// dropped unread by DestroyWindow.
//
// Withdrawal (a cancellable co_await CallAsync: WithdrawableTask, apartment.h).
// Its message carries the ModernState as wParam (0 for every other task), so
// the apartment thread knows, without touching the task, that it must first
// claim it. Three parties may end a queued withdrawable task, and its stage
// (guarded by mu_) lets exactly one of them:
//   the apartment thread, dispatching or draining its message: Claim():
//     kQueued -> kTaken, then Run() or Drop();
//   a withdrawer (the std::stop_callback, on the thread requesting the stop;
//     the deadline thread, com/deadline_timer.h): Withdraw(): kQueued ->
//     kWithdrawn, the message removed from the queue or left as a tombstone
//     (message/withdrawn_posts.h), then Withdrawn() outside the lock;
//   the losers see another stage and touch nothing more.
// A withdrawn task's memory may be freed at once (the coroutine resumes and
// ends its awaiter), so the apartment thread checks a retrieved message
// against the tombstones before it reads the task, under the same lock.
// A withdrawer's callbacks run only while the awaiter's AsyncCancelWatch
// exists, and destroying the watch waits for one running elsewhere, so a
// withdrawer that lost still reads a live task. The watch is armed before the
// post, so a request that comes first finds kIdle: it marks the task
// kCancelled, and the post (under mu_) then fails with its error instead of
// queuing a task nobody would withdraw.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "apartments/apartment.h"
#include "apartments/error_info.h"
#include "apartments/errors.h"
#include "apartments/message_queue.h"
#include "apartments/win32.h"
#include "base/check.h"
#include "base/guarded.h"
#include "com/apartment.h"
#include "com/cancel.h"
#include "com/deadline_timer.h"
#include "com/error_info.h"
#include "message/queue.h"
#include "message/withdrawn_posts.h"

namespace apartments {
namespace internal {

namespace {
constexpr UINT kTaskMessage = WM_USER + 0x0D0E;
constexpr wchar_t kPostWindowClass[] = L"ApartmentsPostWindow";

LPARAM TaskKey(PostedTask* task) { return reinterpret_cast<LPARAM>(task); }

// What an early cancellation's error says happened.
enum class AsyncCancelStage : std::uint8_t { kBeforeQueued, kQueued };

LRESULT CALLBACK PostWindowProc(HWND hwnd, UINT msg, WPARAM wparam, LPARAM lparam);

void RegisterPostWindowClass() {
  static std::once_flag once;
  std::call_once(once, [] {
    WNDCLASSW wc{};
    wc.lpfnWndProc = PostWindowProc;
    wc.lpszClassName = kPostWindowClass;
    APARTMENTS_CHECK(RegisterClassW(&wc) != 0);
  });
}
}  // namespace

// Shared by an Apartment, its views, Bound<T>s and awaiters; kept alive by the
// COM apartment's shutdown callback until the apartment shuts down.
class ModernState {
 public:
  ModernState(ApartmentRef apartment, DWORD tid) : apartment_(std::move(apartment)), tid_(tid) {}

  // Apartment thread: creates the post window and hooks shutdown.
  void Attach(const std::shared_ptr<ModernState>& self) {
    RegisterPostWindowClass();
    hwnd_ = CreateWindowExW(0, kPostWindowClass, L"", 0, 0, 0, 0, 0, HWND_MESSAGE, nullptr,
                            nullptr, nullptr);
    APARTMENTS_CHECK(hwnd_ != nullptr);
    queue_ = &CurrentQueue();  // Created by the window, if not before.
    posting_.Lock()->accepting = true;
    // The callback holds `self`: the state outlives every task in the queue.
    APARTMENTS_CHECK(apartment_->AddShutdownCallback([self] { self->OnShutdown(); }));
  }

  // On an error `task` was not queued; the caller still owns it. A
  // `withdrawable` task (the same object as `task`) is queued kQueued, or
  // not at all when a withdrawer got to it first (kCancelled: its error).
  HRESULT Post(PostedTask* task, WithdrawableTask* withdrawable = nullptr) {
    auto posting = posting_.Lock();
    if (!posting->accepting) {
      SetLastDisconnected();
      return RPC_E_DISCONNECTED;
    }
    if (withdrawable != nullptr && withdrawable->stage_ == WithdrawableTask::Stage::kCancelled) {
      const HRESULT why = withdrawable->cancelled_;
      SetErrorText(why, AsyncCancelText(why, AsyncCancelStage::kBeforeQueued));
      return why;
    }
    const WPARAM claim = withdrawable != nullptr ? reinterpret_cast<WPARAM>(this) : 0;
    if (!PostMessageW(hwnd_, kTaskMessage, claim, TaskKey(task))) {
      const DWORD error = GetLastError();
      if (error == ERROR_NOT_ENOUGH_QUOTA) {
        SetErrorText(RPC_E_SYS_CALL_FAILED,
                     "The post to " + apartment_->Describe() +
                         " failed with RPC_E_SYS_CALL_FAILED: its message queue holds the "
                         "posted-message quota (" +
                         std::to_string(GetPostMessageLimit()) +
                         " messages, per process); the callable was destroyed without "
                         "running. The apartment's thread is not pumping fast enough.");
        return RPC_E_SYS_CALL_FAILED;
      }
      SetErrorText(RPC_E_DISCONNECTED, "The post to " + apartment_->Describe() +
                                           " failed: " + FormatWin32Error(error));
      return RPC_E_DISCONNECTED;
    }
    // Under mu_ still: the apartment thread claims it under mu_ too, so it
    // finds kQueued even if it retrieved the message already.
    if (withdrawable != nullptr) withdrawable->stage_ = WithdrawableTask::Stage::kQueued;
    return S_OK;  // The queue owns it now.
  }

  // Any thread: queues a cancellable `task` (Apartment::PostWithdrawableTo).
  HRESULT PostWithdrawable(WithdrawableTask* task, const CallOptions& options,
                           AsyncCancelWatchPtr* watch);

  // A withdrawer (AsyncCancelWatch's callbacks, any thread): ends `task` with
  // `why` if it is still queued (see the file comment). May resume the
  // coroutine, which may free the task, its watch and this state: the last
  // thing its callers do.
  void Withdraw(WithdrawableTask* task, HRESULT why) noexcept {
    {
      auto posting = posting_.Lock();
      switch (task->stage_) {
        case WithdrawableTask::Stage::kIdle:
          // The watch is armed before the post: let the post fail instead.
          task->stage_ = WithdrawableTask::Stage::kCancelled;
          task->cancelled_ = why;
          return;
        case WithdrawableTask::Stage::kQueued:
          break;
        case WithdrawableTask::Stage::kTaken:      // The apartment runs or drops it.
        case WithdrawableTask::Stage::kWithdrawn:  // The other callback won.
        case WithdrawableTask::Stage::kCancelled:
          return;
      }
      task->stage_ = WithdrawableTask::Stage::kWithdrawn;
      // Quota slot freed now, or when the thread retrieves the tombstone.
      (void)posting->withdrawn.Withdraw(*queue_, hwnd_, kTaskMessage, TaskKey(task));
    }
    // Ours alone now: the apartment thread will not touch the task.
    task->Withdrawn(Error{why, AsyncCancelText(why, AsyncCancelStage::kQueued)});
  }

  // Apartment thread, for a retrieved message of a withdrawable task (wParam
  // names this state): true when the thread owns the task now (Run or Drop
  // it); false when it was withdrawn (a tombstone: touch nothing of it).
  bool Claim(LPARAM key) {
    auto posting = posting_.Lock();
    if (posting->withdrawn.IsTombstone(key)) return false;
    auto* task = static_cast<WithdrawableTask*>(reinterpret_cast<PostedTask*>(key));
    APARTMENTS_CHECK_VALUES(task->stage_ == WithdrawableTask::Stage::kQueued,
                            "withdrawable task retrieved in stage",
                            static_cast<int>(task->stage_), static_cast<int>(tid_));
    task->stage_ = WithdrawableTask::Stage::kTaken;
    return true;
  }

  // Apartment thread: whether it owns the task of a retrieved message.
  bool TakeRetrieved(const MSG& msg) { return msg.wParam == 0 || Claim(msg.lParam); }

  // Apartment thread, from the COM apartment's shutdown: stop accepting,
  // drain, drop the tasks and Bound<T> objects, destroy the window.
  void OnShutdown() {
    std::vector<PostedTask*> dropped;
    {
      // Every Post() posts under mu_, so once accepting is false under it,
      // all posts that will ever be queued already are: the drain below
      // needs no lock (and must not hold one: PeekMessageW serves messages
      // sent to this thread, whose handlers may Post()).
      posting_.Lock()->accepting = false;
    }
    MSG msg;
    while (PeekMessageW(&msg, hwnd_, kTaskMessage, kTaskMessage, PM_REMOVE)) {
      // A withdrawable task is claimed at once, so that a withdrawal from now
      // on finds it taken.
      if (TakeRetrieved(msg)) dropped.push_back(reinterpret_cast<PostedTask*>(msg.lParam));
    }
    // Outside mu_: Drop() may resume a coroutine, which may post again (and
    // get RPC_E_DISCONNECTED).
    for (PostedTask* task : dropped) task->Drop();  // Ends the task.
    std::map<std::uint64_t, std::function<void()>> hooks;
    hooks.swap(hooks_);
    for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) it->second();
    DestroyWindow(hwnd_);
  }

  // Discards a message the owning loop retrieved after being told to stop.
  void Discard(const MSG& msg) {
    if (msg.hwnd == hwnd_ && msg.message == kTaskMessage && TakeRetrieved(msg)) {
      reinterpret_cast<PostedTask*>(msg.lParam)->Drop();  // Ends the task.
    }
  }

  std::uint64_t AddHook(std::function<void()> fn) {
    hooks_.emplace(++next_hook_, std::move(fn));
    return next_hook_;
  }
  void RemoveHook(std::uint64_t id) { hooks_.erase(id); }

  const ApartmentRef& apartment() const { return apartment_; }
  DWORD tid() const { return tid_; }

  // Owner thread <-> apartment thread: the loop's stop request. Release by
  // the owner, acquire by the loop: nothing else is published through it.
  std::atomic<bool> stopping{false};
  CO_MTA_USAGE_COOKIE mta_cookie = nullptr;

 private:
  void SetLastDisconnected() {
    SetErrorText(RPC_E_DISCONNECTED, DisconnectedError(this).message);
  }
  static void SetErrorText(HRESULT hr, const std::string& text);
  std::string AsyncCancelText(HRESULT why, AsyncCancelStage stage) const;

  const ApartmentRef apartment_;
  const DWORD tid_;
  HWND hwnd_ = nullptr;                // Set once by Attach on the apartment thread.
  MessageQueue* queue_ = nullptr;      // Its thread's queue (type-stable); set likewise.

  // Its lock (mu_ in the comments) also guards the stage of every queued
  // withdrawable task: a guard held proves it for them too.
  struct Posting {
    bool accepting = false;
    WithdrawnPosts withdrawn;  // Tombstones of withdrawn tasks.
  };
  Guarded<Posting> posting_;

  // Apartment thread only.
  std::map<std::uint64_t, std::function<void()>> hooks_;
  std::uint64_t next_hook_ = 0;
};

// The cancellation sources of one cancellable co_await CallAsync, armed for
// as long as its awaiter waits (see the file comment).
class AsyncCancelWatch {
 public:
  AsyncCancelWatch(ModernState* state, WithdrawableTask* task) : state_(state), task_(task) {}

  // Either callback may run at once, on this thread (a stop already
  // requested) or the deadline thread.
  void Arm(const CallOptions& options) {
    if (options.deadline) deadline_.Arm(*options.deadline, &OnDeadline, this);
    if (options.stop.stop_possible()) stop_.emplace(options.stop, OnStop{this});
  }

 private:
  struct OnStop {
    void operator()() const noexcept { watch->Fire(RPC_E_CALL_CANCELED); }
    AsyncCancelWatch* watch;
  };
  static void OnDeadline(void* watch) { static_cast<AsyncCancelWatch*>(watch)->Fire(RPC_E_TIMEOUT); }
  // May destroy this watch from inside its own callback (it resumes the
  // coroutine, which ends the awaiter): std::stop_callback and DeadlineTimer
  // both allow it. Nothing after it in either callback.
  void Fire(HRESULT why) noexcept { state_->Withdraw(task_, why); }

  ModernState* const state_;       // Kept alive by the awaiter.
  WithdrawableTask* const task_;   // A member of the awaiter.
  DeadlineTimer deadline_;
  // Declared last, so deregistered first.
  std::optional<std::stop_callback<OnStop>> stop_;
};

void AsyncCancelWatchDeleter::operator()(AsyncCancelWatch* watch) const noexcept { delete watch; }

HRESULT ModernState::PostWithdrawable(WithdrawableTask* task, const CallOptions& options,
                                      AsyncCancelWatchPtr* watch) {
  // An awaiter awaited again still holds its first watch: end it (waiting for
  // its callbacks) so that nothing is armed and no other thread reads the
  // stage while it is reset.
  watch->reset();
  task->stage_ = WithdrawableTask::Stage::kIdle;
  task->cancelled_ = 0;
  HRESULT why = 0;
  if (options.stop.stop_requested()) {
    why = RPC_E_CALL_CANCELED;
  } else if (options.deadline && GetClock().Now() >= *options.deadline) {
    why = RPC_E_TIMEOUT;
  }
  if (why != 0) {
    SetErrorText(why, AsyncCancelText(why, AsyncCancelStage::kBeforeQueued));
    return why;
  }
  watch->reset(new AsyncCancelWatch(this, task));
  (*watch)->Arm(options);
  const HRESULT hr = Post(task, task);
  // Queued: the task may have ended already; nothing of it, `options` or
  // `watch` from here on.
  if (hr >= 0) return hr;
  // Not queued: nothing to withdraw. Waits for a callback running on another
  // thread (it found the task kIdle or kCancelled and changed nothing else).
  watch->reset();
  return hr;
}

std::string ModernState::AsyncCancelText(HRESULT why, AsyncCancelStage stage) const {
  const bool timeout = why == RPC_E_TIMEOUT;
  std::string text = "The asynchronous call (co_await CallAsync) into " + apartment_->Describe() +
                     " failed with " +
                     (timeout ? "RPC_E_TIMEOUT: its deadline passed"
                              : "RPC_E_CALL_CANCELED: it was cancelled");
  switch (stage) {
    case AsyncCancelStage::kBeforeQueued:
      return text + " before it was queued there; it never ran.";
    case AsyncCancelStage::kQueued:
      return text +
             " while it was still queued there; it was withdrawn from the queue (its slot in the "
             "posted-message quota freed) and never ran. The coroutine resumed on " +
             (timeout ? "the library's deadline thread." : "the thread that requested the stop.");
  }
  return text;
}

namespace {
LRESULT CALLBACK PostWindowProc(HWND hwnd, UINT msg, WPARAM wparam, LPARAM lparam) {
  if (msg != kTaskMessage) return DefWindowProcW(hwnd, msg, wparam, lparam);
  // A withdrawable task's message names its ModernState (alive while its
  // window is): claim the task before reading it, or skip its tombstone.
  if (wparam != 0 && !reinterpret_cast<ModernState*>(wparam)->Claim(lparam)) return 0;
  // Run() ends the task (see PostedTask): nothing of it after this call.
  auto* task = reinterpret_cast<PostedTask*>(lparam);
  try {
    task->Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "apartments: a callable posted with Apartment::Post threw (ignored): %s\n",
                 e.what());
  } catch (...) {
    // A forced unwind (ExitThread inside the callable) goes on: the thread
    // is ending, and swallowing it would abort the process.
    if (!std::current_exception()) throw;
    std::fprintf(stderr, "apartments: a callable posted with Apartment::Post threw (ignored)\n");
  }
  return 0;
}

}  // namespace

void ModernState::SetErrorText(HRESULT hr, const std::string& text) {
  SetCallErrorInfo(hr, text, "apartments modern API");
}

Error ErrorFromLastCall(HRESULT hr) {
  std::string text;
  if (LastErrorHResult() == hr) text = LastErrorDescription();
  if (text.empty()) text = FormatHResult(hr);
  return Error{hr, std::move(text)};
}

Error DisconnectedError(const ModernState* state) {
  return Error{RPC_E_DISCONNECTED,
               "The call into " + state->apartment()->Describe() +
                   " failed with RPC_E_DISCONNECTED: that apartment has shut down; the call "
                   "(a Call, a posted callable or a coroutine waiting to resume there) never "
                   "ran."};
}

std::uint64_t AddShutdownHook(ModernState* state, std::function<void()> fn) {
  return state->AddHook(std::move(fn));
}
void RemoveShutdownHook(ModernState* state, std::uint64_t id) { state->RemoveHook(id); }

void OnWrongApartment(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "%s:%d: APARTMENTS_CHECK_ON_APARTMENT(%s) failed on thread %u\n", file,
               line, expr, static_cast<unsigned>(GetCurrentThreadId()));
  std::fflush(stderr);
  std::abort();
}

void ResultValueOnError(const Error& error) noexcept {
  std::fprintf(stderr, "Result::value() called on an error: %s: %s\n",
               FormatHResult(error.code).c_str(), error.message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace internal

using internal::ModernState;

Apartment::Apartment(Options options) {
  // Keep the MTA alive so callers in no apartment are in the implicit MTA.
  CO_MTA_USAGE_COOKIE cookie = nullptr;
  APARTMENTS_CHECK(CoIncrementMTAUsage(&cookie) == S_OK);
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<ModernState> ready;
  thread_ = std::thread([&mu, &cv, &ready, name = std::move(options.name)] {
    if (!name.empty()) {
      std::wstring wide(name.begin(), name.end());
      SetThreadDescription(GetCurrentThread(), wide.c_str());
    }
    APARTMENTS_CHECK(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) == S_OK);
    auto state = std::make_shared<ModernState>(internal::CurrentApartment(), GetCurrentThreadId());
    state->Attach(state);
    {
      std::lock_guard lock(mu);
      ready = state;
      cv.notify_one();
    }
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) {
      // Acquire: pairs with the owner's release store; see ~Apartment.
      if (state->stopping.load(std::memory_order_acquire)) {
        state->Discard(msg);  // A channel call's message: the teardown fails it.
        break;
      }
      DispatchMessageW(&msg);
    }
    // Stop accepting, fail what is queued (ModernState::OnShutdown, then the
    // channel's queued calls), destroy the windows.
    CoUninitialize();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return ready != nullptr; });
  state_ = std::move(ready);
  state_->mta_cookie = cookie;
}

Apartment::Apartment(std::shared_ptr<ModernState> state, NotOwned) : state_(std::move(state)) {}

Apartment::Apartment(Apartment&& other) noexcept
    : state_(std::move(other.state_)), thread_(std::move(other.thread_)) {}

Apartment::~Apartment() {
  if (!thread_.joinable()) return;
  APARTMENTS_CHECK_VALUES(GetCurrentThreadId() != state_->tid(),
                          "an owning Apartment destroyed on its own thread", state_->tid(), 0);
  // Release: the loop that sees `stopping` (acquire) stops. The wake-up post
  // may fail only when the queue is full (so the loop has messages to read
  // and will see the flag) or the thread is already gone.
  state_->stopping.store(true, std::memory_order_release);
  PostThreadMessageW(state_->tid(), WM_NULL, 0, 0);
  thread_.join();
  CO_MTA_USAGE_COOKIE cookie = std::exchange(state_->mta_cookie, nullptr);
  if (cookie != nullptr) (void)CoDecrementMTAUsage(cookie);
}

Result<Apartment> Apartment::Current() {
  internal::ApartmentRef apartment = internal::CurrentApartment();
  if (!apartment) {
    return Error{CO_E_NOTINITIALIZED,
                 "Apartment::Current() failed with CO_E_NOTINITIALIZED: the calling thread is in "
                 "no apartment (CoInitializeEx was not called)."};
  }
  if (apartment->kind() != internal::ApartmentKind::kSta) {
    return Error{CO_E_NOT_SUPPORTED,
                 "Apartment::Current() failed with CO_E_NOT_SUPPORTED: the calling thread is in "
                 "the MTA, which has no thread of its own to post to; use an STA."};
  }
  // One ModernState per STA: reuse the thread's while its apartment lives.
  thread_local std::weak_ptr<ModernState> cached;
  std::shared_ptr<ModernState> state = cached.lock();
  if (!state || state->apartment() != apartment) {
    state = std::make_shared<ModernState>(apartment, GetCurrentThreadId());
    state->Attach(state);
    cached = state;
  }
  return Apartment(std::move(state), NotOwned{});
}

HRESULT Apartment::Invoke(std::function<HRESULT()> fn, const CallOptions* options) const {
  // Our own references for the whole call: the Apartment object may be
  // destroyed by another thread while this call waits (it then returns
  // RPC_E_DISCONNECTED), so nothing of *this is used after this line.
  std::shared_ptr<ModernState> state = state_;
  internal::ApartmentRef target = state->apartment();
  // Checked here too because the channel checks the caller first: a caller
  // in no apartment (the MTA kept alive by the owner is gone with it) would
  // otherwise hear CO_E_NOTINITIALIZED about an apartment that is simply gone.
  if (target->IsShutDown()) {
    internal::SetCallErrorInfo(RPC_E_DISCONNECTED, internal::DisconnectedError(state.get()).message,
                               "apartments modern API");
    return RPC_E_DISCONNECTED;
  }
  if (options == nullptr) return internal::InvokeInApartment(target, std::move(fn));
  internal::CallControl control{options->stop, options->deadline};
  return internal::InvokeInApartment(target, std::move(fn), &control);
}

namespace internal {
std::stop_token CurrentCallStopToken() noexcept { return CurrentIncomingStopToken(); }
}  // namespace internal

HRESULT Apartment::PostTask(internal::PostedTask* task) const {
  return PostTaskTo(state_, task);
}

HRESULT Apartment::PostTaskTo(std::shared_ptr<ModernState> state, internal::PostedTask* task) {
  // `state` is a copy on purpose: once the task is queued it may resume a
  // coroutine that frees the awaiter holding the caller's reference, while
  // Post() still holds the state's lock.
  return state->Post(task);
}

HRESULT Apartment::PostWithdrawableTo(std::shared_ptr<ModernState> state,
                                      internal::WithdrawableTask* task,
                                      const CallOptions& options,
                                      internal::AsyncCancelWatchPtr* watch) {
  // A copy, as in PostTaskTo: the awaiter holding the caller's reference may
  // be gone before this returns.
  return state->PostWithdrawable(task, options, watch);
}

bool Apartment::IsCurrent() const noexcept { return GetCurrentThreadId() == state_->tid(); }
bool Apartment::StopRequestedForTesting() const noexcept {
  return state_->stopping.load(std::memory_order_acquire);
}
DWORD Apartment::thread_id() const noexcept { return state_->tid(); }
std::string Apartment::Describe() const { return state_->apartment()->Describe(); }

ApartmentChecker::ApartmentChecker() noexcept : tid_(GetCurrentThreadId()) {}
bool ApartmentChecker::CalledOnValidApartment() const noexcept {
  return GetCurrentThreadId() == tid_;
}

}  // namespace apartments
