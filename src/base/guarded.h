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
//     locked.Wait(cv_, [&] { return !locked->empty(); });
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

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

namespace apartments::internal {

template <typename T, typename Mutex = std::mutex>
class Guarded {
 public:
  // The guard: the lock held, and the way to the data. Neither copied nor
  // moved, so its destructor always unlocks (no "do I own it" test on the
  // hot paths that use it).
  class Locked {
   public:
    // Only a Guarded makes guards (a passkey: std::optional constructs them
    // in place for TryLock).
    class Key {
      friend class Guarded;
      Key() = default;
    };
    Locked(Key, Mutex& mu, T* value) : mu_(mu), value_(value) { mu_.lock(); }
    Locked(Key, std::adopt_lock_t, Mutex& mu, T* value) noexcept : mu_(mu), value_(value) {}
    ~Locked() { mu_.unlock(); }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

    T* operator->() const noexcept { return value_; }
    T& operator*() const noexcept { return *value_; }

    // Waits on `cv` until `ready()` (called with the lock held), releasing
    // the lock while it waits (std::condition_variable::wait).
    template <typename Predicate>
    void Wait(std::condition_variable& cv, Predicate ready) {
      std::unique_lock<Mutex> lock(mu_, std::adopt_lock);
      cv.wait(lock, std::move(ready));
      (void)lock.release();  // Still held: this guard unlocks it.
    }
    // As Wait, for at most `timeout`; returns ready().
    template <typename Rep, typename Period, typename Predicate>
    bool WaitFor(std::condition_variable& cv, std::chrono::duration<Rep, Period> timeout,
                 Predicate ready) {
      std::unique_lock<Mutex> lock(mu_, std::adopt_lock);
      const bool result = cv.wait_for(lock, timeout, std::move(ready));
      (void)lock.release();
      return result;
    }

    // As Wait, until `deadline` at the latest; returns ready().
    template <typename Clock, typename Duration, typename Predicate>
    bool WaitUntil(std::condition_variable& cv,
                   const std::chrono::time_point<Clock, Duration>& deadline, Predicate ready) {
      std::unique_lock<Mutex> lock(mu_, std::adopt_lock);
      const bool result = cv.wait_until(lock, deadline, std::move(ready));
      (void)lock.release();
      return result;
    }

   private:
    Mutex& mu_;
    T* value_;
  };

  // constexpr: a namespace-scope Guarded of a literal type is constant-
  // initialized (constinit), so it is usable during static initialization.
  template <typename... Args>
  constexpr explicit Guarded(Args&&... args) : value_(std::forward<Args>(args)...) {}
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  // Blocks until the lock is free, and returns the guard that holds it.
  [[nodiscard]] Locked Lock() { return Locked(typename Locked::Key{}, mu_, &value_); }

  // The guard when the lock is free now; nullopt otherwise.
  [[nodiscard]] std::optional<Locked> TryLock() {
    if (!mu_.try_lock()) return std::nullopt;
    return std::optional<Locked>(std::in_place, typename Locked::Key{}, std::adopt_lock, mu_,
                                 &value_);
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

// GuardedBy<T, Guard>: data guarded by a lock that lives elsewhere, for the
// fields of several objects under one lock (the COM runtime's), reachable
// only with a guard of that lock in hand: Get(guard). The guard's type stands
// for the lock, so use it with a lock that has a guard type of its own (a
// Guarded<T> whose T is that lock's alone); GetWithoutLock(why) as above.
//
//   struct Tables { ... };                    // what the lock itself guards
//   using TablesGuard = Guarded<Tables>::Locked;
//   struct Item { GuardedBy<long, TablesGuard> count; };
//   void AddLocked(const TablesGuard& guard, Item& item) { ++item.count.Get(guard); }
template <typename T, typename Guard>
class GuardedBy {
 public:
  template <typename... Args>
  constexpr explicit GuardedBy(Args&&... args) : value_(std::forward<Args>(args)...) {}
  GuardedBy(const GuardedBy&) = delete;
  GuardedBy& operator=(const GuardedBy&) = delete;

  T& Get(const Guard&) noexcept { return value_; }
  const T& Get(const Guard&) const noexcept { return value_; }

  T& GetWithoutLock([[maybe_unused]] std::string_view why) noexcept { return value_; }
  const T& GetWithoutLock([[maybe_unused]] std::string_view why) const noexcept {
    return value_;
  }

 private:
  T value_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_GUARDED_H_
