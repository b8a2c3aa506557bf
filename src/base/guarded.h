// Guarded<T>: data reachable only through the mutex that guards it (in the
// manner of KJ's MutexGuarded<T>), so that "guarded by mu_" is something the
// compiler checks rather than a comment.
//
//   Guarded<std::vector<int>> values_;
//
//   values_.Lock()->push_back(1);        // one statement under the lock
//   {
//     auto locked = values_.Lock();      // locked until `locked` goes
//     for (int v : *locked) Use(v);
//     cv_.wait(locked.lock(), [&] { return !locked->empty(); });
//   }
//   values_.With([](auto& v) { v.clear(); });
//
// The only way to the data without the lock is GetWithoutLock(why), for the
// reads (or writes) whose safety comes from elsewhere: `why` says what that
// is at the call site ("only this thread writes it", "not yet shared"), so
// every such access is named and greppable.
//
// Thread safety: Lock(), TryLock() and With() from any thread; a Locked
// guard belongs to the thread that took it (as std::unique_lock).
// Memory ordering: what one thread writes through a guard is visible to the
// next thread that takes the lock (the mutex's release and acquire).
#ifndef APARTMENTS_SRC_BASE_GUARDED_H_
#define APARTMENTS_SRC_BASE_GUARDED_H_

#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

namespace apartments::internal {

template <typename T, typename Mutex = std::mutex>
class Guarded {
 public:
  // The guard: the lock held, and the way to the data.
  class Locked {
   public:
    Locked(Locked&&) noexcept = default;
    Locked& operator=(Locked&&) noexcept = default;

    T* operator->() const noexcept { return value_; }
    T& operator*() const noexcept { return *value_; }

    // The held lock, for std::condition_variable::wait (which releases and
    // retakes it; the data is only the guard's again once wait returns).
    std::unique_lock<Mutex>& lock() noexcept { return lock_; }

   private:
    friend class Guarded;
    Locked(Mutex& mu, T* value) : lock_(mu), value_(value) {}
    Locked(std::unique_lock<Mutex> lock, T* value) noexcept
        : lock_(std::move(lock)), value_(value) {}

    std::unique_lock<Mutex> lock_;
    T* value_;
  };

  template <typename... Args>
  explicit Guarded(Args&&... args) : value_(std::forward<Args>(args)...) {}
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  // Blocks until the lock is free, and returns the guard that holds it.
  [[nodiscard]] Locked Lock() { return Locked(mu_, &value_); }

  // The guard when the lock is free now; nullopt otherwise.
  [[nodiscard]] std::optional<Locked> TryLock() {
    std::unique_lock<Mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return std::nullopt;
    return Locked(std::move(lock), &value_);
  }

  // Runs `f(T&)` under the lock and returns what it returns.
  template <typename F>
  decltype(auto) With(F&& f) {
    std::lock_guard<Mutex> lock(mu_);
    return std::forward<F>(f)(value_);
  }

  // The data without the lock. `why` (a literal, for the reader) says why
  // this access is safe without it; nothing checks it, so keep it true.
  T& GetWithoutLock([[maybe_unused]] std::string_view why) noexcept { return value_; }
  const T& GetWithoutLock([[maybe_unused]] std::string_view why) const noexcept {
    return value_;
  }

 private:
  Mutex mu_;
  T value_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_GUARDED_H_
