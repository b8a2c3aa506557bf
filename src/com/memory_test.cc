#include <cstring>

#include "apartments/win32.h"
#include "gtest/gtest.h"

namespace {

// Tests that CoTaskMemAlloc returns usable, distinct blocks, even for 0 bytes.
TEST(CoTaskMemTest, AllocFree) {
  void* a = CoTaskMemAlloc(0);
  void* b = CoTaskMemAlloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  CoTaskMemFree(a);
  CoTaskMemFree(b);
  auto* p = static_cast<char*>(CoTaskMemAlloc(100));
  ASSERT_NE(p, nullptr);
  std::memset(p, 'x', 100);
  CoTaskMemFree(p);
  CoTaskMemFree(nullptr);
}

// Tests that CoTaskMemRealloc keeps contents, allocates from null and frees
// at size 0.
TEST(CoTaskMemTest, Realloc) {
  auto* p = static_cast<char*>(CoTaskMemRealloc(nullptr, 4));
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "abc", 4);
  p = static_cast<char*>(CoTaskMemRealloc(p, 1000));
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(p, "abc");
  EXPECT_EQ(CoTaskMemRealloc(p, 0), nullptr);
}

// Tests that a BSTR's length is stored in the DWORD before it, in bytes.
TEST(BstrTest, LengthPrefix) {
  BSTR s = SysAllocString(L"hello");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(SysStringLen(s), 5u);
  EXPECT_EQ(SysStringByteLen(s), 5u * sizeof(OLECHAR));
  DWORD prefix;
  std::memcpy(&prefix, reinterpret_cast<char*>(s) - sizeof(DWORD), sizeof(prefix));
  EXPECT_EQ(prefix, 5u * sizeof(OLECHAR));
  EXPECT_STREQ(s, L"hello");
  SysFreeString(s);
}

// Tests that embedded NULs are kept and counted.
TEST(BstrTest, EmbeddedNuls) {
  const OLECHAR data[] = {L'a', L'\0', L'b', L'\0', L'c'};
  BSTR s = SysAllocStringLen(data, 5);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(SysStringLen(s), 5u);
  EXPECT_EQ(std::memcmp(s, data, sizeof(data)), 0);
  EXPECT_EQ(s[5], L'\0');
  SysFreeString(s);
}

// Tests that null BSTRs are empty strings everywhere.
TEST(BstrTest, NullHandling) {
  EXPECT_EQ(SysAllocString(nullptr), nullptr);
  EXPECT_EQ(SysStringLen(nullptr), 0u);
  EXPECT_EQ(SysStringByteLen(nullptr), 0u);
  SysFreeString(nullptr);
  BSTR zeros = SysAllocStringLen(nullptr, 3);
  ASSERT_NE(zeros, nullptr);
  EXPECT_EQ(SysStringLen(zeros), 3u);
  EXPECT_EQ(zeros[0], L'\0');
  EXPECT_EQ(zeros[3], L'\0');
  SysFreeString(zeros);
  BSTR empty = SysAllocString(L"");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(SysStringLen(empty), 0u);
  SysFreeString(empty);
}

// Tests that SysAllocStringByteLen counts bytes and terminates.
TEST(BstrTest, ByteLen) {
  BSTR s = SysAllocStringByteLen("abcdefgh", 8);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(SysStringByteLen(s), 8u);
  EXPECT_EQ(SysStringLen(s), 8u / sizeof(OLECHAR));
  EXPECT_EQ(std::memcmp(s, "abcdefgh", 8), 0);
  SysFreeString(s);
}

// Tests that SysReAllocString replaces the string, even from inside itself.
TEST(BstrTest, ReAlloc) {
  BSTR s = SysAllocString(L"hello world");
  ASSERT_TRUE(SysReAllocString(&s, s + 6));
  EXPECT_STREQ(s, L"world");
  EXPECT_EQ(SysStringLen(s), 5u);
  ASSERT_TRUE(SysReAllocStringLen(&s, L"xyz", 2));
  EXPECT_STREQ(s, L"xy");
  EXPECT_FALSE(SysReAllocString(nullptr, L"x"));
  ASSERT_TRUE(SysReAllocString(&s, nullptr));
  EXPECT_EQ(s, nullptr);
  BSTR t = nullptr;
  ASSERT_TRUE(SysReAllocString(&t, L"new"));
  EXPECT_STREQ(t, L"new");
  SysFreeString(t);
}

// Tests that an impossible length fails instead of overflowing.
TEST(BstrTest, HugeLengthFails) {
  EXPECT_EQ(SysAllocStringLen(nullptr, 0xFFFFFFFFu), nullptr);
  EXPECT_EQ(SysAllocStringByteLen(nullptr, 0xFFFFFFFFu), nullptr);
}

}  // namespace
