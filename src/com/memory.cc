// The COM task allocator and BSTRs.
//
// BSTR layout (as Windows): one malloc block holding a DWORD byte count, the
// characters, and a terminating NUL OLECHAR; the BSTR points just past the
// count. malloc's alignment keeps the characters 4-byte aligned.
#include <cstdlib>
#include <cstring>
#include <cwchar>

#include "apartments/win32_com.h"

namespace {

constexpr size_t kPrefixBytes = sizeof(DWORD);
// The largest byte count a BSTR can hold: it must fit the DWORD prefix, with
// room for the prefix and terminator in a 32-bit total as on Windows.
constexpr size_t kMaxBstrBytes = 0xFFFFFFFFu - kPrefixBytes - sizeof(OLECHAR);

// Allocates a BSTR of `bytes` bytes, copying from `src` when non-null and
// zeroing otherwise, always terminated. Null when too large or out of memory.
BSTR AllocBstrBytes(const void* src, size_t bytes) {
  if (bytes > kMaxBstrBytes) return nullptr;
  auto* block = static_cast<unsigned char*>(std::malloc(kPrefixBytes + bytes + sizeof(OLECHAR)));
  if (block == nullptr) return nullptr;
  DWORD count = static_cast<DWORD>(bytes);
  std::memcpy(block, &count, sizeof(count));
  unsigned char* chars = block + kPrefixBytes;
  if (src != nullptr) {
    std::memcpy(chars, src, bytes);
  } else {
    std::memset(chars, 0, bytes);
  }
  std::memset(chars + bytes, 0, sizeof(OLECHAR));
  return reinterpret_cast<BSTR>(chars);
}

DWORD ByteCount(BSTR s) {
  DWORD count;
  std::memcpy(&count, reinterpret_cast<unsigned char*>(s) - kPrefixBytes, sizeof(count));
  return count;
}

}  // namespace

extern "C" {

LPVOID WINAPI CoTaskMemAlloc(SIZE_T cb) {
  // malloc(0) may return null; COM hands out a real block for 0 bytes.
  return std::malloc(cb == 0 ? 1 : cb);
}

LPVOID WINAPI CoTaskMemRealloc(LPVOID pv, SIZE_T cb) {
  if (pv == nullptr) return CoTaskMemAlloc(cb);
  if (cb == 0) {
    std::free(pv);
    return nullptr;
  }
  return std::realloc(pv, cb);
}

void WINAPI CoTaskMemFree(LPVOID pv) { std::free(pv); }

BSTR WINAPI SysAllocString(const OLECHAR* psz) {
  if (psz == nullptr) return nullptr;
  return AllocBstrBytes(psz, std::wcslen(psz) * sizeof(OLECHAR));
}

BSTR WINAPI SysAllocStringLen(const OLECHAR* strIn, UINT ui) {
  if (ui > kMaxBstrBytes / sizeof(OLECHAR)) return nullptr;
  return AllocBstrBytes(strIn, static_cast<size_t>(ui) * sizeof(OLECHAR));
}

BSTR WINAPI SysAllocStringByteLen(LPCSTR psz, UINT len) { return AllocBstrBytes(psz, len); }

INT WINAPI SysReAllocStringLen(BSTR* pbstr, const OLECHAR* psz, UINT len) {
  if (pbstr == nullptr) return FALSE;
  // Allocate before freeing: `psz` may point into *pbstr.
  BSTR fresh = SysAllocStringLen(psz, len);
  if (fresh == nullptr) return FALSE;
  SysFreeString(*pbstr);
  *pbstr = fresh;
  return TRUE;
}

INT WINAPI SysReAllocString(BSTR* pbstr, const OLECHAR* psz) {
  if (pbstr == nullptr) return FALSE;
  if (psz == nullptr) {
    SysFreeString(*pbstr);
    *pbstr = nullptr;
    return TRUE;
  }
  return SysReAllocStringLen(pbstr, psz, static_cast<UINT>(std::wcslen(psz)));
}

void WINAPI SysFreeString(BSTR bstrString) {
  if (bstrString == nullptr) return;
  std::free(reinterpret_cast<unsigned char*>(bstrString) - kPrefixBytes);
}

UINT WINAPI SysStringLen(BSTR pbstr) {
  return pbstr == nullptr ? 0 : ByteCount(pbstr) / sizeof(OLECHAR);
}

UINT WINAPI SysStringByteLen(BSTR bstr) { return bstr == nullptr ? 0 : ByteCount(bstr); }

}  // extern "C"
