// Helpers shared by the libFuzzer targets: a reader of the fuzzer's bytes, and
// the check that fails a run on anything undocumented. Test-only.
#ifndef APARTMENTS_TESTS_FUZZ_FUZZ_UTIL_H_
#define APARTMENTS_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace fuzz {

// Reads the input as a program: each call takes the next bytes, and an
// exhausted input reads as zeros (so every input is a valid program).
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint32_t U32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{Byte()} << (8 * i);
    return v;
  }
  std::uint64_t U64() { return std::uint64_t{U32()} | std::uint64_t{U32()} << 32; }
  // A value below `n` (n > 0).
  std::uint32_t Below(std::uint32_t n) { return Byte() % n; }
  // The rest of the input.
  const std::uint8_t* rest() const { return data_ + (pos_ < size_ ? pos_ : size_); }
  std::size_t rest_size() const { return pos_ < size_ ? size_ - pos_ : 0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Fails the run (libFuzzer saves the input) when `value` is not one of the
// documented results of `what`.
template <typename T>
void ExpectOneOf(const char* what, T value, std::initializer_list<T> documented) {
  for (T d : documented) {
    if (d == value) return;
  }
  std::fprintf(stderr, "%s: undocumented result 0x%llx\n", what, static_cast<unsigned long long>(value));
  std::abort();
}

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "contract broken: %s\n", what);
  std::abort();
}

inline void Expect(bool condition, const char* what) {
  if (!condition) Fail(what);
}

}  // namespace fuzz

#endif  // APARTMENTS_TESTS_FUZZ_FUZZ_UTIL_H_
