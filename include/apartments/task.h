// apartments/task.h
//
// Task<T>: the smallest coroutine type that lets plain code start a coroutine
// using Apartment::Schedule()/CallAsync() and wait for its result.
//
//   Task<int> Work(Apartment& worker) {
//     auto r = co_await worker.CallAsync([] { return 6 * 7; });
//     co_return r.value_or(-1);
//   }
//   Task<int> t = Work(worker);             // starts at once (eager)
//   if (t.WaitFor(std::chrono::seconds(5))) use(t.Get());
//
// Thread safety: the coroutine may finish on any thread (wherever it last
// resumed); WaitFor/Get may be called from any one other thread. Memory
// ordering: everything the coroutine wrote is visible after WaitFor returns
// true (mutex). Errors: carry them in T (e.g. Task<Result<int>>); an exception
// escaping the coroutine body terminates the process (none crosses the API).
// Lifetime: ~Task blocks until the coroutine has finished (an apartment that
// shuts down resumes its waiting coroutines with RPC_E_DISCONNECTED, so this
// ends), then frees the frame. Do not destroy a Task on the thread the
// coroutine needs to make progress.
#ifndef APARTMENTS_TASK_H_
#define APARTMENTS_TASK_H_

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace apartments {
namespace internal {

struct TaskPromiseBase {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // Guarded by mu.

  std::suspend_never initial_suspend() noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <typename P>
    void await_suspend(std::coroutine_handle<P> h) noexcept {
      // The frame is suspended; the waiter may free it as soon as it sees
      // `done`, which it can only read after we unlock: notify under the lock
      // and touch nothing after.
      auto& p = h.promise();
      std::lock_guard lock(p.mu);
      p.done = true;
      p.cv.notify_all();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { std::terminate(); }
};

template <typename T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  template <typename U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  void return_void() noexcept {}
};

}  // namespace internal

template <typename T = void>
class Task {
 public:
  struct promise_type : internal::TaskPromise<T> {
    Task get_return_object() {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };

  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Task& operator=(Task&&) = delete;
  ~Task() {
    if (!handle_) return;
    Wait();
    handle_.destroy();
  }

  // Whether the coroutine finished within `timeout`.
  template <typename Rep, typename Period>
  bool WaitFor(std::chrono::duration<Rep, Period> timeout) {
    auto& p = handle_.promise();
    std::unique_lock lock(p.mu);
    return p.cv.wait_for(lock, timeout, [&] { return p.done; });
  }
  void Wait() {
    auto& p = handle_.promise();
    std::unique_lock lock(p.mu);
    p.cv.wait(lock, [&] { return p.done; });
  }
  // Waits, then the coroutine's co_return value (moved out).
  auto Get() {
    Wait();
    if constexpr (!std::is_void_v<T>) return T(std::move(*handle_.promise().value));
  }

 private:
  explicit Task(std::coroutine_handle<promise_type> h) : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

}  // namespace apartments

#endif  // APARTMENTS_TASK_H_
