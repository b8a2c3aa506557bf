// The modern API's apartments (include/apartments/apartment.h) over the COM
// core. Every call and post goes through the channel, the one machine that
// posts, withdraws and cancels work on an apartment: Call is the channel's
// call (InvokeInApartment); Post, CallFuture, Schedule and CallAsync queue
// one-way tasks with it (com/channel_post.h), in the same queue, with the
// same message, quota, withdrawal, teardown and explanations as a call. What
// is left here is the Apartment object itself: its thread and message loop,
// and the shutdown hooks of Bound<T> objects.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <utility>

#include "apartments/apartment.h"
#include "apartments/error_info.h"
#include "apartments/errors.h"
#include "apartments/win32.h"
#include "base/check.h"
#include "com/apartment.h"
#include "com/cancel.h"
#include "com/channel_post.h"
#include "com/error_info.h"

namespace apartments {
namespace internal {

// Shared by an Apartment, its views, Bound<T>s and awaiters; kept alive by the
// COM apartment's shutdown callback until the apartment shuts down.
class ModernState {
 public:
  ModernState(ApartmentRef apartment, DWORD tid) : apartment_(std::move(apartment)), tid_(tid) {}

  // Apartment thread: hooks shutdown.
  void Attach(const std::shared_ptr<ModernState>& self) {
    // The callback holds `self`: the state outlives every task in the queue.
    APARTMENTS_CHECK(apartment_->AddShutdownCallback([self] { self->OnShutdown(); }));
  }

  // Apartment thread, from the COM apartment's shutdown (new posts are
  // refused from its start): drop the queued tasks, then destroy the
  // Bound<T> objects.
  void OnShutdown() {
    DropQueuedTasks(apartment_);
    std::map<std::uint64_t, std::function<void()>> hooks;
    hooks.swap(hooks_);
    for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) it->second();
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
  const ApartmentRef apartment_;
  const DWORD tid_;

  // Apartment thread only.
  std::map<std::uint64_t, std::function<void()>> hooks_;
  std::uint64_t next_hook_ = 0;
};

Error ErrorFromLastCall(HRESULT hr) {
  std::string text;
  if (LastErrorHResult() == hr) text = LastErrorDescription();
  if (text.empty()) text = FormatHResult(hr);
  return Error{hr, std::move(text)};
}

Error DisconnectedError(const ModernState* state) {
  return Error{RPC_E_DISCONNECTED, DroppedTaskText(state->apartment())};
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
      // Acquire: pairs with the owner's release store; see ~Apartment. A
      // message retrieved now is not dispatched: a call's entry is still
      // queued (the teardown below fails it), a plain task is dropped here.
      if (state->stopping.load(std::memory_order_acquire)) {
        internal::DiscardRetrieved(state->apartment(), msg);
        break;
      }
      DispatchMessageW(&msg);
    }
    // Stop accepting, fail what is queued (tasks dropped in
    // ModernState::OnShutdown, then the channel's queued calls), destroy the
    // window.
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
    internal::ExplainShutDownBeforeCall(target);
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
  // coroutine that frees the awaiter holding the caller's reference before
  // the post returns.
  return internal::PostTask(state->apartment(), task);
}

HRESULT Apartment::PostWithdrawableTo(std::shared_ptr<ModernState> state,
                                      internal::WithdrawableTask* task,
                                      const CallOptions& options,
                                      internal::AsyncCancelWatchPtr* watch) {
  // A copy, as in PostTaskTo: the awaiter holding the caller's reference may
  // be gone before this returns.
  const internal::CallControl control{options.stop, options.deadline};
  return internal::PostWithdrawableTask(state->apartment(), task, control, watch);
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
