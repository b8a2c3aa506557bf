// apartments/result.h
//
// Result<T>: the value of a cross-apartment call, or why there is none.
//
// Why our own type and not std::expected: the project builds as C++20, and
// std::expected exists only under C++23 (GCC 12's libstdc++ hides it in C++20
// mode). Result<T> keeps std::expected's vocabulary (has_value(), value(),
// error(), operator*, operator->, value_or) so moving to std::expected later
// is a search and replace. Unlike std::expected, value() on an error does not
// throw (no C++ exception crosses this library's API): it is a failed
// always-on check that prints the error and aborts.
//
// Error carries the HRESULT (the most specific code, e.g. RPC_E_DISCONNECTED,
// RPC_E_SERVERFAULT, RPC_E_SYS_CALL_FAILED) and the runtime's explanation in
// plain words (the text the caller's COM error info held when the call failed;
// for RPC_E_SERVERFAULT it includes the exception's what()).
//
// Thread safety: a Result is a plain value; like any std type, one thread at a
// time may modify it.
#ifndef APARTMENTS_RESULT_H_
#define APARTMENTS_RESULT_H_

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "apartments/win32_typedefs.h"

namespace apartments {

struct Error {
  HRESULT code = 0;
  std::string message;  // Never empty for errors the library makes.
};

namespace internal {
// Prints `error` and aborts: value() was called on a Result holding an error.
[[noreturn]] void ResultValueOnError(const Error& error) noexcept;
}  // namespace internal

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");

 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    if (!has_value()) internal::ResultValueOnError(std::get<1>(v_));
    return std::get<0>(v_);
  }
  const T& value() const& {
    if (!has_value()) internal::ResultValueOnError(std::get<1>(v_));
    return std::get<0>(v_);
  }
  T&& value() && {
    if (!has_value()) internal::ResultValueOnError(std::get<1>(v_));
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

  // Only when !has_value().
  const Error& error() const& { return std::get<1>(v_); }
  // S_OK when has_value(), else error().code.
  HRESULT code() const noexcept { return has_value() ? 0 : std::get<1>(v_).code; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT

  bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (error_) internal::ResultValueOnError(*error_);
  }
  const Error& error() const& { return *error_; }
  HRESULT code() const noexcept { return error_ ? error_->code : 0; }

 private:
  std::optional<Error> error_;
};

}  // namespace apartments

#endif  // APARTMENTS_RESULT_H_
