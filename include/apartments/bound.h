// apartments/bound.h
//
// Bound<T>: an object that lives on one apartment (like Chromium's
// base::SequenceBound<T>). T is constructed on the apartment's thread, every
// method runs there through Apartment::Call, and T is destroyed there. No T*
// is ever handed to another thread.
//
//   auto counter = Bound<Counter>::Create(ui, /*start=*/5);   // Result<Bound>
//   Result<int> n = counter->Call(&Counter::Add, 2);           // runs on "ui"
//
// State table:
//   Create()     T constructed on the apartment (Call); a Bound returned.
//   live         Call() runs methods on the apartment.
//   apartment shuts down first: T is destroyed on the apartment thread during
//                its shutdown; later Call()s return RPC_E_DISCONNECTED and the
//                Bound's destruction does nothing more.
//   ~Bound       T destroyed on the apartment (a Call; blocks as Call does).
//   moved-from   holds nothing; destruction does nothing; Call() is invalid.
//
// Thread safety: a Bound may be used from any thread, one at a time (the
// usual rule for a C++ object); concurrent Call()s on one Bound from several
// threads are fine (they serialize on the apartment). Must not outlive the
// Apartment object that owns its thread (the owner joins that thread; a Bound
// destroyed after that would find it gone: RPC_E_DISCONNECTED, T already
// destroyed, so this is safe, just pointless).
#ifndef APARTMENTS_BOUND_H_
#define APARTMENTS_BOUND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "apartments/apartment.h"
#include "apartments/result.h"

namespace apartments {

template <typename T>
class Bound {
 public:
  // Constructs T(args...) on `apartment`. Blocks as Apartment::Call; errors
  // as Call (RPC_E_SERVERFAULT when T's constructor throws). `args` are used
  // by reference during the call.
  template <typename... Args>
  static Result<Bound> Create(const Apartment& apartment, Args&&... args) {
    Apartment view = apartment.View();
    internal::ModernState* state = view.state_.get();
    auto made = view.Call([&]() -> std::pair<T*, std::uint64_t> {
      T* object = new T(std::forward<Args>(args)...);
      // If the apartment shuts down first, T dies there, on its thread.
      std::uint64_t hook = internal::AddShutdownHook(state, [object] { delete object; });
      return {object, hook};
    });
    if (!made) return made.error();
    return Bound(std::move(view), made->first, made->second);
  }

  Bound(Bound&& other) noexcept
      : apartment_(std::move(other.apartment_)),
        object_(std::exchange(other.object_, nullptr)),
        hook_(other.hook_) {}
  Bound& operator=(Bound&&) = delete;
  Bound(const Bound&) = delete;
  Bound& operator=(const Bound&) = delete;

  ~Bound() {
    if (object_ == nullptr) return;
    T* object = object_;
    internal::ModernState* state = apartment_.state_.get();
    const std::uint64_t hook = hook_;
    // RPC_E_DISCONNECTED: the shutdown hook destroyed T already.
    (void)apartment_.Call([object, state, hook] {
      internal::RemoveShutdownHook(state, hook);
      delete object;
    });
  }

  // Calls `method` on T on its apartment with `args` (by reference during the
  // call). Returns Result<return type>; errors as Apartment::Call.
  template <typename M, typename... Args>
  auto Call(M method, Args&&... args) const {
    T* object = object_;
    return apartment_.Call(
        [&] { return std::invoke(method, *object, std::forward<Args>(args)...); });
  }

  // As above, cancellable (Apartment::Call with CallOptions: errors
  // RPC_E_CALL_CANCELED and RPC_E_TIMEOUT, per case as documented there).
  template <typename M, typename... Args>
  auto CallWithOptions(const CallOptions& options, M method, Args&&... args) const {
    T* object = object_;
    return apartment_.Call(
        [&] { return std::invoke(method, *object, std::forward<Args>(args)...); }, options);
  }

  const Apartment& apartment() const { return apartment_; }

 private:
  Bound(Apartment apartment, T* object, std::uint64_t hook)
      : apartment_(std::move(apartment)), object_(object), hook_(hook) {}

  Apartment apartment_;  // A view; never owns the thread.
  T* object_;            // Dereferenced only on the apartment thread.
  std::uint64_t hook_;
};

}  // namespace apartments

#endif  // APARTMENTS_BOUND_H_
