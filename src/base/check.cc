#include "base/check.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace apartments::internal {

void CheckFailed(const char* condition, const char* file, int line, const char* what,
                 std::int64_t a, std::int64_t b) noexcept {
  // snprintf into a stack buffer and write(2): no allocation, no stdio lock.
  char buffer[512];
  int n;
  if (what != nullptr) {
    n = std::snprintf(buffer, sizeof buffer,
                      "apartments: internal check failed at %s:%d: %s (%s: %lld, %lld)\n", file,
                      line, condition, what, static_cast<long long>(a), static_cast<long long>(b));
  } else {
    n = std::snprintf(buffer, sizeof buffer, "apartments: internal check failed at %s:%d: %s\n",
                      file, line, condition);
  }
  if (n > 0) {
    ssize_t ignored = ::write(STDERR_FILENO, buffer, static_cast<size_t>(n) < sizeof buffer
                                                         ? static_cast<size_t>(n)
                                                         : sizeof buffer - 1);
    (void)ignored;
  }
  std::abort();
}

}  // namespace apartments::internal
