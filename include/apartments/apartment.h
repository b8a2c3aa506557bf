// apartments/apartment.h
//
// The modern C++ API over the COM core: an apartment is an object. It is the
// same machinery as CoInitializeEx/the channel (apartments/win32_apartment.h),
// not a second implementation: Call() is the channel's cross-apartment call
// (InvokeInApartment), with its modal wait, message filter, quota and error
// explanations; Post() and the coroutine awaitables use the apartment
// thread's own message queue (same FIFO, same posted-message quota).
//
//   apartments::Apartment ui({.name = "ui"});         // a thread in its own STA
//   Result<int> r = ui.Call([] { return 42; });        // runs on "ui", waits
//   HRESULT hr = ui.Post([] { Repaint(); });           // runs on "ui" later
//   co_await ui.Schedule();                            // coroutine moves to "ui"
//
// State table of an Apartment that owns its thread:
//   kRunning    Call/Post/Schedule/CallAsync accepted and run on the thread,
//               in FIFO order of arrival in its message queue.
//   ~Apartment  (1) stop: the thread leaves its message loop after the call
//               it is running returns (messages it retrieves from then on are
//               not run);
//               (2) stop accepting: the STA shuts down (CoUninitialize); new
//               calls fail with RPC_E_DISCONNECTED;
//               (3) what is queued fails: posted callables are destroyed on
//               the apartment thread without running, coroutines waiting to
//               resume on it resume there with internal::kDisconnected, Bound<T>
//               objects still alive are destroyed, queued Calls return
//               RPC_E_DISCONNECTED to their callers;
//               (4) the thread exits and is joined.
//   An Apartment from Current() does not own its thread: destroying it does
//   nothing; the steps (2)-(3) happen at that thread's last CoUninitialize.
//
// The posted-message quota is per process, not per apartment (the message
// layer has one limit for every queue: apartments/message_queue.h,
// SetPostMessageLimit), so Options has no quota field.
//
// Callers in no apartment: while an owning Apartment exists it keeps the
// process's MTA alive (CoIncrementMTAUsage), so a plain std::thread is in the
// implicit MTA and may Call() without CoInitializeEx, as on Windows.
#ifndef APARTMENTS_APARTMENT_H_
#define APARTMENTS_APARTMENT_H_

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "apartments/clock.h"
#include "apartments/result.h"
#include "apartments/win32_typedefs.h"

namespace apartments {

class Apartment;
template <typename T>
class Bound;

// How a Call() may be cancelled. Both members optional; either ends the call
// (see Apartment::Call).
struct CallOptions {
  // Cancelling: stop requested on its source, from any thread, at any time.
  std::stop_token stop;
  // A time point of the process's clock (GetClock(), apartments/clock.h;
  // tests install a FakeClock and advance it: the waiting caller wakes and
  // re-reads it). Passed: the call ends with RPC_E_TIMEOUT.
  std::optional<Clock::TimePoint> deadline;
};

// --- Implementation details (not part of the API) -----------------------------
namespace internal {

class ModernState;

// The HRESULTs the templates below produce, as constants: this header stays
// free of Win32 macros (apartments/win32_errors.h has them as RPC_E_*).
inline constexpr HRESULT kCallCanceled = static_cast<HRESULT>(0x80010002);   // RPC_E_CALL_CANCELED
inline constexpr HRESULT kServerFault = static_cast<HRESULT>(0x80010105);    // RPC_E_SERVERFAULT
inline constexpr HRESULT kDisconnected = static_cast<HRESULT>(0x80010108);   // RPC_E_DISCONNECTED
inline constexpr HRESULT kCallTimeout = static_cast<HRESULT>(0x8001011F);    // RPC_E_TIMEOUT

// Whether `options` can end a call: a token whose stop can be requested, or
// a deadline. Other calls take the plain path and pay nothing.
inline bool IsCancellable(const CallOptions& options) noexcept {
  return options.stop.stop_possible() || options.deadline.has_value();
}

// APARTMENTS_CHECK_ON_APARTMENT's test: an ApartmentChecker's
// CalledOnValidApartment(), or an Apartment's IsCurrent().
template <typename T>
bool IsOnApartment(const T& x) noexcept {
  if constexpr (requires { x.CalledOnValidApartment(); }) {
    return x.CalledOnValidApartment();
  } else {
    return x.IsCurrent();
  }
}

// The channel's record of work queued to an apartment (src/com/apartment_impl.h):
// a call (its caller waits) or a one-way task (PostedTask, below). Its place in the
// target apartment's queue and its stage are the channel's, guarded by that
// apartment's lock; nothing in this header reads or writes them.
struct QueueEntry {
  enum class Stage : std::uint8_t { kIdle, kQueued, kTaken, kWithdrawn, kCancelled };
  enum class Kind : std::uint8_t { kCall, kTask, kRuntimeTask };
  explicit QueueEntry(Kind k) noexcept : kind(k) {}
  QueueEntry* prev = nullptr;
  QueueEntry* next = nullptr;
  const Kind kind;
  Stage stage = Stage::kIdle;
  HRESULT cancelled = 0;  // kCancelled: the error a withdrawer found it with.

 protected:
  ~QueueEntry() = default;  // Never deleted through this type.
};

// A callable queued by Post()/Schedule()/CallAsync(), one-way, through the
// channel. Exactly one of three things happens to it: Run() on the apartment
// thread; Drop() on the apartment thread during shutdown (it never ran); or,
// when the post itself fails, it stays with the poster, untouched. Run() and
// Drop() end the task: Post()'s task deletes itself; an awaiter's task is a
// member of the awaiter (no allocation per co_await) and resumes the
// coroutine, which may free it. Either way the queue touches nothing of a
// task after calling one of them.
class PostedTask : public QueueEntry {
 public:
  PostedTask() noexcept : QueueEntry(Kind::kTask) {}
  virtual void Run() = 0;
  virtual void Drop() noexcept = 0;

 protected:
  ~PostedTask() = default;  // Never deleted through this type.
};

// A PostedTask that may be withdrawn while it is still queued: the task of a
// cancellable co_await CallAsync (CallOptions). It has a fourth possible end,
// Withdrawn(), called on the thread that withdrew it (the one that requested
// the stop, or the deadline thread), after which the apartment never touches
// it (its message is removed from the queue, or skipped as a tombstone).
// Which end a queued task meets is one decision, taken under the
// apartment's lock (QueueEntry::Stage):
//   kIdle --posted--> kQueued --the apartment thread dispatches it, or its
//         shutdown drains it--> kTaken (then Run() or Drop())
//   kQueued --stop requested / deadline passed--> kWithdrawn (Withdrawn())
//   kIdle --stop requested / deadline passed before the post--> kCancelled
//         (the post then does not queue it and fails with the error)
class WithdrawableTask : public PostedTask {
 public:
  // Ends the task: it never ran and never will; `error` is
  // RPC_E_CALL_CANCELED or RPC_E_TIMEOUT with its explanation.
  virtual void Withdrawn(Error error) noexcept = 0;

 protected:
  ~WithdrawableTask() = default;
};

// Withdraws a queued WithdrawableTask when its stop token is requested or its
// deadline passes (a std::stop_callback and a deadline timer), defined by
// the channel. Destroying it deregisters both, waiting for a callback
// running on another thread to return.
class AsyncCancelWatch;
struct AsyncCancelWatchDeleter {
  void operator()(AsyncCancelWatch* watch) const noexcept;
};
using AsyncCancelWatchPtr = std::unique_ptr<AsyncCancelWatch, AsyncCancelWatchDeleter>;

// Builds the Error for a failed call from the calling thread's error info.
Error ErrorFromLastCall(HRESULT hr);
// The text of the disconnect error given to a task dropped at shutdown.
Error DisconnectedError(const ModernState* state);
// Runs `fn` on the apartment thread when the apartment shuts down, unless
// removed first. Apartment thread only (both).
std::uint64_t AddShutdownHook(ModernState* state, std::function<void()> fn);
void RemoveShutdownHook(ModernState* state, std::uint64_t id);
[[noreturn]] void OnWrongApartment(const char* expr, const char* file, int line) noexcept;

// Inside a cancellable Call's callable: its stop token (stop requested when
// the caller cancels or its deadline passes). Never stop-possible elsewhere.
std::stop_token CurrentCallStopToken() noexcept;

// Call()/CallAsync() pass the callable a std::stop_token when it takes one.
template <typename F, bool = std::is_invocable_v<F&, std::stop_token>>
struct CallResultOf {
  using type = std::invoke_result_t<F&>;
};
template <typename F>
struct CallResultOf<F, true> {
  using type = std::invoke_result_t<F&, std::stop_token>;
};
template <typename F>
decltype(auto) InvokeCallable(F& f, std::stop_token token) {
  if constexpr (std::is_invocable_v<F&, std::stop_token>) {
    return std::invoke(f, std::move(token));
  } else {
    return std::invoke(f);
  }
}

}  // namespace internal

struct ApartmentOptions {
  // The thread's name (SetThreadDescription; shown in error explanations,
  // debuggers, `top -H`). ASCII; Linux keeps the first 15 bytes for the OS.
  std::string name;
};

class Apartment {
 public:
  using Options = ApartmentOptions;

  // Starts a thread in its own STA, pumping messages. Returns when the
  // apartment accepts calls. Thread safety: any thread. Blocks briefly (thread
  // start). A failure to start a thread or an STA is a failed always-on check
  // (resource exhaustion), not an error to handle.
  explicit Apartment(Options options = {});

  // The calling thread's apartment, not owned (destroying it stops nothing).
  // For an STA, Post/Schedule/CallAsync run from that thread's message loop
  // (any GetMessageW/DispatchMessageW loop), so it must pump.
  // Errors: CO_E_NOTINITIALIZED when the thread is in no apartment;
  // CO_E_NOT_SUPPORTED in the MTA (only Call and IsCurrent are meaningful
  // there, so the MTA is not offered).
  static Result<Apartment> Current();

  // Owning: runs the shutdown protocol above and joins the thread. Blocks
  // until the callable the apartment is running returns; calling it on the
  // apartment's own thread is a failed check (it would join itself).
  // Calls already in progress on other threads when it begins end with
  // RPC_E_DISCONNECTED (or their result); starting a call on an Apartment
  // being destroyed is a use of a destroyed object, as for any C++ object:
  // code that may outlive it should hold a Bound<T> (whose calls then return
  // RPC_E_DISCONNECTED) rather than a reference to the Apartment.
  ~Apartment();
  Apartment(Apartment&&) noexcept;
  Apartment& operator=(Apartment&&) = delete;
  Apartment(const Apartment&) = delete;
  Apartment& operator=(const Apartment&) = delete;

  // Apartment::Call()
  //
  // Runs `f()` on this apartment and returns its value, or the error.
  // Thread safety: any thread; on the apartment's own thread it runs `f`
  // directly. Blocks until `f` returns; an STA caller pumps meanwhile (serves
  // calls into its own apartment: re-entrancy, as COM), an MTA/no-apartment
  // caller does not.
  // Errors (Error::message says which apartment, which thread, why):
  //   RPC_E_DISCONNECTED    the apartment shut down before `f` ran
  //   RPC_E_SERVERFAULT     `f` threw; the message contains what()
  //   RPC_E_SYS_CALL_FAILED the apartment's queue is at the posted-message
  //                         quota; `f` never ran
  //   RPC_E_CANTCALLOUT_ININPUTSYNCCALL, RPC_E_CALL_REJECTED, CO_E_NOTINITIALIZED
  //                         as a COM call through the channel
  //                         (apartments/win32_apartment.h)
  //   RPC_E_CALL_CANCELED   also without CallOptions, when the calling thread
  //                         enabled call cancellation (CoEnableCallCancellation)
  //                         and another thread cancelled the call (CoCancelCall),
  //                         or the calling STA's message filter answered
  //                         PENDINGMSG_CANCELCALL; per case as below
  //   RPC_E_DISCONNECTED    also when the apartment's thread exited (ExitThread)
  //                         while running `f`: `f` ran but did not return
  // Lifetime: `f` is used by reference; it is never touched after Call
  // returns. Memory ordering: writes before Call are visible to `f`; `f`'s
  // writes are visible after Call returns.
  //
  // Cancellation: the overload with CallOptions also ends with
  //   RPC_E_CALL_CANCELED   `options.stop` was requested
  //   RPC_E_TIMEOUT         `options.deadline` passed (GetClock())
  // per case:
  //   still queued   withdrawn from the apartment's queue (its quota slot
  //                  freed); `f` never runs; Call returns at once
  //   not started    the apartment thread took it but finds it cancelled
  //                  first; `f` never runs
  //   running        `f` is told: when it takes a std::stop_token (as its
  //                  only parameter) stop is requested on it, and CoTestCancel
  //                  returns RPC_E_CALL_CANCELED in it. Call waits for `f` to
  //                  return (it uses the caller's frame) and returns the
  //                  error, discarding f's value.
  //   completed      a call whose completion the caller sees after the
  //                  request also returns the error (its value discarded);
  //                  one that completed before it, its value.
  // Error::message says which case. A Call on the apartment's own thread runs
  // `f` directly and is not cancellable (its token is never stop-possible).
  template <typename F, typename R = typename internal::CallResultOf<F>::type>
  Result<R> Call(F&& f) const {
    return CallWith<R>(f, nullptr);
  }
  template <typename F, typename R = typename internal::CallResultOf<F>::type>
  Result<R> Call(F&& f, const CallOptions& options) const {
    return CallWith<R>(f, &options);
  }

  // Apartment::Post()
  //
  // Queues `f` on this apartment's message queue and returns at once.
  // Thread safety: any thread, including the apartment's own.
  // Returns S_OK when queued; RPC_E_DISCONNECTED once the apartment has shut
  // down; RPC_E_SYS_CALL_FAILED when the queue already holds its quota of
  // messages. On an error `f` is destroyed on the calling thread and never
  // runs. A queued `f` that has not run when the apartment shuts down is
  // destroyed on the apartment thread without running.
  // Runs from the apartment's message loop, in FIFO order with other posts
  // and calls from the same thread; not inside a modal wait (as PostMessage).
  // An exception thrown by `f` has no caller to reach: it is reported on
  // stderr and ignored.
  // Memory ordering: writes made before Post() are visible to `f` when it runs.
  template <typename F>
  [[nodiscard]] HRESULT Post(F&& f) const {
    struct Task final : internal::PostedTask {
      explicit Task(F&& fn) : fn(std::forward<F>(fn)) {}
      void Run() override {
        std::unique_ptr<Task> self(this);  // Deleted after fn returns or throws.
        fn();
      }
      void Drop() noexcept override { delete this; }
      std::decay_t<F> fn;
    };
    auto task = std::make_unique<Task>(std::forward<F>(f));
    const HRESULT hr = PostTask(task.get());
    // Queued: the queue owns it now (it may even have run already); not
    // queued: destroyed here, on the calling thread.
    if (hr >= 0) (void)task.release();
    return hr;
  }

  // Apartment::Schedule()
  //
  // `co_await apartment.Schedule()` suspends the coroutine and resumes it on
  // this apartment's thread (like C++/WinRT's resume_foreground), always via
  // the queue, even from the apartment's own thread (a yield).
  // Evaluates to Result<void>: RPC_E_SYS_CALL_FAILED (quota) or
  // RPC_E_DISCONNECTED (already shut down) resume at once on the awaiting
  // thread; if the apartment shuts down while the coroutine waits, it resumes
  // on the apartment thread during shutdown with RPC_E_DISCONNECTED (never
  // "never"). Memory ordering: as Post().
  class ScheduleAwaiter;
  [[nodiscard]] ScheduleAwaiter Schedule() const;

  // Apartment::CallAsync()
  //
  // `co_await apartment.CallAsync(f)` runs `f` on this apartment without
  // blocking the awaiting thread, and evaluates to Result<R> (errors as
  // Schedule(), plus RPC_E_SERVERFAULT with what() when `f` throws).
  // The coroutine resumes on the apartment thread (where `f` ran); to go
  // back, co_await the home apartment's Schedule(). `f` is moved into the
  // awaiter (lives in the coroutine frame).
  // GCC 12 (Debian 12's compiler) destroys twice a temporary with a
  // non-trivial destructor created inside a co_await expression (a lambda
  // capturing a std::string, a braced CallOptions{token, {}}): name such
  // arguments in a variable first (docs/modern-api.md).
  template <typename F>
  class CallAwaiter;
  template <typename F>
  [[nodiscard]] CallAwaiter<std::decay_t<F>> CallAsync(F&& f) const {
    return CallAwaiter<std::decay_t<F>>(state_, std::forward<F>(f));
  }
  // Cancellable form: `options.stop` requested (from any thread) or
  // `options.deadline` passed (GetClock(); a FakeClock's Advance counts)
  // ends the call with RPC_E_CALL_CANCELED / RPC_E_TIMEOUT, per case:
  //   before the post  (already stopped, deadline already passed) `f` is not
  //                    queued; the coroutine resumes at once on the awaiting
  //                    thread (await_suspend returns false)
  //   still queued     withdrawn from the apartment's queue: `f` never runs,
  //                    its quota slot is freed (at once, or, if the apartment
  //                    thread already took the message into its retrieval
  //                    batch, when it reaches and skips it), and the
  //                    coroutine resumes at once, on the thread that
  //                    withdrew it: for a stop, the thread calling
  //                    request_stop(), inside that call (as any
  //                    std::stop_callback: request_stop() returns when the
  //                    coroutine next suspends or ends, so it must not wait
  //                    for anything that needs that request_stop() to
  //                    return); for a deadline, the library's deadline
  //                    thread (one per process, in no apartment: do not
  //                    block there, co_await a Schedule() to move)
  //   taken, not started  the apartment thread finds the request before it
  //                    starts `f`: `f` never runs; resumes there
  //   running          not withdrawn: if `f` takes a std::stop_token it gets
  //                    `options.stop` (and decides what a request means);
  //                    the coroutine resumes on the apartment thread after
  //                    `f` returns, with f's value or fault (unlike Call,
  //                    which discards it and returns the error: here the
  //                    request simply came too late)
  //   shutdown         a queued task the shutdown drains first resumes with
  //                    RPC_E_DISCONNECTED on the apartment thread (as
  //                    Schedule())
  // Exactly one of withdrawal, the apartment taking the task, and its
  // shutdown draining it wins (decided under one lock); the coroutine resumes
  // exactly once, and nothing touches the awaiter afterwards. Error::message
  // says which case. Cost: one small allocation (the stop callback and the
  // deadline registration) per co_await whose options can cancel; none when
  // `options.stop` is not stop-possible and there is no deadline.
  // Memory ordering: what the thread calling request_stop() (or a test's
  // FakeClock::Advance()) wrote before it is visible to a coroutine resumed by
  // the withdrawal it caused.
  template <typename F>
  [[nodiscard]] CallAwaiter<std::decay_t<F>> CallAsync(F&& f, CallOptions options) const {
    return CallAwaiter<std::decay_t<F>>(state_, std::forward<F>(f), std::move(options));
  }

  // Apartment::CallFuture()
  //
  // The std::future form of CallAsync, for code that is not a coroutine:
  // queues `f` as Post() does and returns at once; the future becomes ready
  // with f's value, RPC_E_SERVERFAULT (f threw; what() in the message),
  // RPC_E_DISCONNECTED (the apartment shut down before f ran: f is destroyed
  // without running), or, at once, the error of the post itself
  // (RPC_E_SYS_CALL_FAILED at the quota, RPC_E_DISCONNECTED). Never a
  // broken promise. Thread safety: any thread. Waiting on the future on the
  // apartment's own thread deadlocks (it is a plain std::future: it does not
  // pump); co_await CallAsync there instead. `f` is moved into the queue.
  // No cancellable form: cancelling needs CallAsync(f, options).
  template <typename F, typename R = std::invoke_result_t<std::decay_t<F>&>>
  [[nodiscard]] std::future<Result<R>> CallFuture(F&& f) const {
    struct Task final : internal::PostedTask {
      Task(F&& fn, std::shared_ptr<internal::ModernState> s)
          : fn(std::forward<F>(fn)), state(std::move(s)) {}
      void Run() override {
        std::unique_ptr<Task> self(this);  // Deleted after fn returns or throws.
        try {
          if constexpr (std::is_void_v<R>) {
            std::invoke(fn);
            promise.set_value(Result<void>());
          } else {
            promise.set_value(Result<R>(std::invoke(fn)));
          }
        } catch (const std::exception& e) {
          promise.set_value(Result<R>(ServerFault(e.what())));
        } catch (...) {
          if (!std::current_exception()) {
            // ExitThread inside f (a forced unwind, which must go on): the
            // future still gets its answer.
            promise.set_value(Result<R>(ThreadExited()));
            throw;
          }
          promise.set_value(Result<R>(ServerFault("an exception that is not a std::exception")));
        }
      }
      static Error ThreadExited() {
        return Error{internal::kDisconnected,
                     "The call failed with RPC_E_DISCONNECTED: the apartment's thread exited "
                     "(ExitThread) inside it: it ran but never returned, and whatever it did "
                     "before stands."};
      }
      void Drop() noexcept override {
        promise.set_value(Result<R>(internal::DisconnectedError(state.get())));
        delete this;
      }
      static Error ServerFault(const char* what) {
        return Error{internal::kServerFault,
                     std::string("The call failed with RPC_E_SERVERFAULT: the callee threw a C++ "
                                 "exception: ") +
                         what + ". Whatever it did before throwing stands."};
      }
      std::decay_t<F> fn;
      std::shared_ptr<internal::ModernState> state;
      std::promise<Result<R>> promise;
    };
    auto task = std::make_unique<Task>(std::forward<F>(f), state_);
    std::future<Result<R>> future = task->promise.get_future();
    const HRESULT hr = PostTask(task.get());
    if (hr < 0) {
      task->promise.set_value(Result<R>(internal::ErrorFromLastCall(hr)));
      return future;  // The task is destroyed here, never queued.
    }
    (void)task.release();  // The queue owns it now.
    return future;
  }

  // Whether the calling thread is this apartment's (its STA thread). Any
  // thread; never blocks; one thread-local read and a compare.
  bool IsCurrent() const noexcept;
  // The STA thread's id (GetCurrentThreadId on it).
  DWORD thread_id() const noexcept;
  // "STA 3 (thread 1234 'ui')".
  std::string Describe() const;
  // Whether ~Apartment has asked the loop to stop (step 1). Any thread.
  bool StopRequestedForTesting() const noexcept;

 private:
  template <typename T>
  friend class Bound;

  // The entry points of the templates above (the awaiters, nested here, and
  // Bound<T> reach them). Invoke: the channel's call, `fn`'s HRESULT or the
  // call's error.
  HRESULT Invoke(std::function<HRESULT()> fn, const CallOptions* options = nullptr) const;
  // Queue `task`; on an error it was not queued and the caller still owns it.
  HRESULT PostTask(internal::PostedTask* task) const;
  static HRESULT PostTaskTo(std::shared_ptr<internal::ModernState> state,
                            internal::PostedTask* task);
  // Queue a cancellable `task` and arm `*watch` to withdraw it (CallAsync
  // with options). On an error it was not queued (RPC_E_CALL_CANCELED /
  // RPC_E_TIMEOUT when already cancelled, or as PostTaskTo) and `*watch` is
  // empty. On success touches nothing of `task`, `options` or `watch` after
  // queuing it (they live in the awaiter, which may be gone by then).
  static HRESULT PostWithdrawableTo(std::shared_ptr<internal::ModernState> state,
                                    internal::WithdrawableTask* task,
                                    const CallOptions& options,
                                    internal::AsyncCancelWatchPtr* watch);
  struct NotOwned {};
  Apartment(std::shared_ptr<internal::ModernState> state, NotOwned);
  Apartment View() const { return Apartment(state_, NotOwned{}); }

  template <typename R, typename F>
  Result<R> CallWith(F& f, const CallOptions* options) const {
    if constexpr (std::is_void_v<R>) {
      HRESULT hr = Invoke(
          [&f]() -> HRESULT {
            internal::InvokeCallable(f, internal::CurrentCallStopToken());
            return 0;
          },
          options);
      if (hr < 0) return internal::ErrorFromLastCall(hr);
      return Result<void>();
    } else {
      std::optional<R> value;
      HRESULT hr = Invoke(
          [&f, &value]() -> HRESULT {
            value.emplace(internal::InvokeCallable(f, internal::CurrentCallStopToken()));
            return 0;
          },
          options);
      if (hr < 0) return internal::ErrorFromLastCall(hr);
      return Result<R>(std::move(*value));
    }
  }

  std::shared_ptr<internal::ModernState> state_;
  std::thread thread_;  // Joinable only for an owning Apartment.
};

class Apartment::ScheduleAwaiter {
 public:
  explicit ScheduleAwaiter(std::shared_ptr<internal::ModernState> state)
      : state_(std::move(state)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle) {
    task_.awaiter = this;
    task_.handle = handle;
    // Once posted, the task may resume the coroutine (and end this awaiter)
    // on another thread before PostTaskTo returns: touch nothing of `this`
    // after a successful post.
    HRESULT hr = PostTaskTo(state_, &task_);
    if (hr < 0) {
      error_ = internal::ErrorFromLastCall(hr);
      return false;
    }
    return true;
  }
  Result<void> await_resume() {
    if (error_) return std::move(*error_);
    return Result<void>();
  }

 private:
  // Lives in the awaiter, so in the coroutine frame: no allocation.
  struct Task final : internal::PostedTask {
    void Run() override { handle.resume(); }
    void Drop() noexcept override {
      awaiter->error_ = internal::DisconnectedError(awaiter->state_.get());
      handle.resume();
    }
    ScheduleAwaiter* awaiter = nullptr;
    std::coroutine_handle<> handle;
  };

  std::shared_ptr<internal::ModernState> state_;
  std::optional<Error> error_;
  Task task_;
};

inline Apartment::ScheduleAwaiter Apartment::Schedule() const { return ScheduleAwaiter(state_); }

template <typename F>
class Apartment::CallAwaiter {
 public:
  using R = typename internal::CallResultOf<F>::type;
  CallAwaiter(std::shared_ptr<internal::ModernState> state, F f, CallOptions options = {})
      : state_(std::move(state)), f_(std::move(f)), options_(std::move(options)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle) {
    task_.awaiter = this;
    task_.handle = handle;
    // As ScheduleAwaiter: nothing of `this` after a successful post. With
    // options the post arms watch_ first; from then on the task may also be
    // withdrawn, and the coroutine resumed, on another thread.
    const HRESULT hr = internal::IsCancellable(options_)
                           ? PostWithdrawableTo(state_, &task_, options_, &watch_)
                           : PostTaskTo(state_, &task_);
    if (hr < 0) {
      result_.emplace(internal::ErrorFromLastCall(hr));
      return false;
    }
    return true;
  }
  Result<R> await_resume() { return std::move(*result_); }

 private:
  // Not noexcept: ExitThread inside f unwinds through here (the awaiting
  // coroutine is then never resumed: its thread of resumption is gone).
  void RunHere() {
    // Taken by the apartment after the request but before this check: it
    // was too late to withdraw, but not to skip.
    if (options_.stop.stop_requested() ||
        (options_.deadline && GetClock().Now() >= *options_.deadline)) {
      const bool timeout = !options_.stop.stop_requested();
      result_.emplace(Error{
          timeout ? internal::kCallTimeout : internal::kCallCanceled,
          std::string("The asynchronous call failed with ") +
              (timeout ? "RPC_E_TIMEOUT: its deadline passed" : "RPC_E_CALL_CANCELED: it was "
                                                                "cancelled") +
              " before the apartment's thread started it; it never ran."});
      return;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        internal::InvokeCallable(f_, options_.stop);
        result_.emplace();
      } else {
        result_.emplace(internal::InvokeCallable(f_, options_.stop));
      }
    } catch (const std::exception& e) {
      result_.emplace(ServerFault(e.what()));
    } catch (...) {
      if (!std::current_exception()) throw;  // A forced unwind (ExitThread) goes on.
      result_.emplace(ServerFault("an exception that is not a std::exception"));
    }
  }
  static Error ServerFault(const char* what) {
    return Error{internal::kServerFault,
                 std::string("The asynchronous call failed with RPC_E_SERVERFAULT: the callee "
                             "threw a C++ exception: ") +
                     what + ". Whatever it did before throwing stands."};
  }

  // Lives in the awaiter, so in the coroutine frame: no allocation (with
  // options, watch_ is one).
  struct Task final : internal::WithdrawableTask {
    void Run() override {
      awaiter->RunHere();
      handle.resume();
    }
    void Drop() noexcept override {
      awaiter->result_.emplace(internal::DisconnectedError(awaiter->state_.get()));
      handle.resume();
    }
    void Withdrawn(Error error) noexcept override {
      awaiter->result_.emplace(std::move(error));
      handle.resume();
    }
    CallAwaiter* awaiter = nullptr;
    std::coroutine_handle<> handle;
  };

  std::shared_ptr<internal::ModernState> state_;
  F f_;
  CallOptions options_;
  std::optional<Result<R>> result_;
  Task task_;
  // Declared last, so destroyed first: its callbacks use task_ and state_.
  internal::AsyncCancelWatchPtr watch_;
};

// ApartmentChecker
//
// Remembers the apartment (thread) it was created on; CalledOnValidApartment()
// tells whether the caller is on it. For apartment-affine objects in
// application code, as Chromium's SEQUENCE_CHECKER. Cheap enough for release
// builds: one thread-local read and a compare. Thread safety: any thread.
class ApartmentChecker {
 public:
  ApartmentChecker() noexcept;
  bool CalledOnValidApartment() const noexcept;

 private:
  DWORD tid_;
};

}  // namespace apartments

// APARTMENTS_CHECK_ON_APARTMENT(apartment_or_checker)
//
// Always on, in every build: aborts with the expression, file and line when
// the calling thread is not the apartment's. Accepts an Apartment
// (IsCurrent) or an ApartmentChecker.
#define APARTMENTS_CHECK_ON_APARTMENT(x)                                           \
  (::apartments::internal::IsOnApartment(x)                                        \
       ? (void)0                                                                   \
       : ::apartments::internal::OnWrongApartment(#x, __FILE__, __LINE__))

#endif  // APARTMENTS_APARTMENT_H_
