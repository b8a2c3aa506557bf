// Always-on internal checks for the library's own invariants.
//
// A failed check is a bug in this library, never the caller's fault: it prints
// the condition, the location and up to two values, then aborts. It allocates
// nothing, so it is safe inside any lock. Never "handle" a failed check; errors
// a caller can cause are returned as HRESULT or Win32 error codes instead.
#ifndef APARTMENTS_SRC_BASE_CHECK_H_
#define APARTMENTS_SRC_BASE_CHECK_H_

#include <cstdint>

namespace apartments::internal {

[[noreturn]] void CheckFailed(const char* condition, const char* file, int line,
                              const char* what, std::int64_t a, std::int64_t b) noexcept;

}  // namespace apartments::internal

#define APARTMENTS_CHECK(cond)                                                       \
  do {                                                                               \
    if (__builtin_expect(!(cond), 0))                                                \
      ::apartments::internal::CheckFailed(#cond, __FILE__, __LINE__, nullptr, 0, 0); \
  } while (0)

// Checks `cond`, printing `a` and `b` (integers) when it fails.
#define APARTMENTS_CHECK_VALUES(cond, what, a, b)                                 \
  do {                                                                            \
    if (__builtin_expect(!(cond), 0))                                             \
      ::apartments::internal::CheckFailed(#cond, __FILE__, __LINE__, what,        \
                                          static_cast<std::int64_t>(a),           \
                                          static_cast<std::int64_t>(b));          \
  } while (0)

#endif  // APARTMENTS_SRC_BASE_CHECK_H_
