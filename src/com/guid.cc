// GUID strings and generation: StringFromGUID2, StringFromCLSID/IID,
// CLSIDFromString/IIDFromString, CoCreateGuid.
#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

#include "apartments/win32_com.h"
#include "com/guid_format.h"

namespace apartments::internal {

void MalformedGuidLiteral() {
  // Only reachable from constant evaluation, where calling this non-constexpr
  // function is the compile error; a runtime call is a library bug.
  std::abort();
}

void FormatGuid(const GUID& g, OLECHAR out[kGuidStringChars]) noexcept {
  static constexpr char kHex[] = "0123456789ABCDEF";
  int n = 0;
  auto put_hex = [&](unsigned long long v, int digits) {
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) {
      out[n++] = static_cast<OLECHAR>(kHex[(v >> shift) & 0xF]);
    }
  };
  out[n++] = L'{';
  put_hex(g.Data1, 8);
  out[n++] = L'-';
  put_hex(g.Data2, 4);
  out[n++] = L'-';
  put_hex(g.Data3, 4);
  out[n++] = L'-';
  put_hex(g.Data4[0], 2);
  put_hex(g.Data4[1], 2);
  out[n++] = L'-';
  for (int i = 2; i < 8; ++i) put_hex(g.Data4[i], 2);
  out[n++] = L'}';
  out[n] = L'\0';
}

bool ParseGuid(const OLECHAR* s, GUID* out) noexcept {
  // Exactly "{8-4-4-4-12}": 38 characters then the terminator.
  for (int i = 0; i < kGuidStringChars - 1; ++i) {
    if (s[i] == L'\0') return false;
  }
  if (s[kGuidStringChars - 1] != L'\0' || s[0] != L'{' || s[37] != L'}') return false;
  if (s[9] != L'-' || s[14] != L'-' || s[19] != L'-' || s[24] != L'-') return false;
  bool ok = true;
  auto hex = [&](int pos, int digits) {
    unsigned long long v = 0;
    for (int i = 0; i < digits; ++i) {
      OLECHAR c = s[pos + i];
      int d;
      if (c >= L'0' && c <= L'9') {
        d = c - L'0';
      } else if (c >= L'a' && c <= L'f') {
        d = c - L'a' + 10;
      } else if (c >= L'A' && c <= L'F') {
        d = c - L'A' + 10;
      } else {
        ok = false;
        d = 0;
      }
      v = v * 16 + static_cast<unsigned>(d);
    }
    return v;
  };
  GUID g{};
  g.Data1 = static_cast<unsigned int>(hex(1, 8));
  g.Data2 = static_cast<unsigned short>(hex(10, 4));
  g.Data3 = static_cast<unsigned short>(hex(15, 4));
  g.Data4[0] = static_cast<unsigned char>(hex(20, 2));
  g.Data4[1] = static_cast<unsigned char>(hex(22, 2));
  for (int i = 0; i < 6; ++i) g.Data4[2 + i] = static_cast<unsigned char>(hex(25 + 2 * i, 2));
  if (!ok) return false;
  *out = g;
  return true;
}

}  // namespace apartments::internal

namespace {

using apartments::internal::kGuidStringChars;

HRESULT StringFromGuidAlloc(REFGUID guid, LPOLESTR* out) {
  if (out == nullptr) return E_INVALIDARG;
  auto* s = static_cast<LPOLESTR>(CoTaskMemAlloc(kGuidStringChars * sizeof(OLECHAR)));
  if (s == nullptr) {
    *out = nullptr;
    return E_OUTOFMEMORY;
  }
  apartments::internal::FormatGuid(guid, s);
  *out = s;
  return S_OK;
}

}  // namespace

extern "C" {

int WINAPI StringFromGUID2(REFGUID rguid, LPOLESTR lpsz, int cchMax) {
  if (lpsz == nullptr || cchMax < kGuidStringChars) return 0;
  apartments::internal::FormatGuid(rguid, lpsz);
  return kGuidStringChars;
}

HRESULT WINAPI StringFromCLSID(REFCLSID rclsid, LPOLESTR* lplpsz) {
  return StringFromGuidAlloc(rclsid, lplpsz);
}

HRESULT WINAPI StringFromIID(REFIID rclsid, LPOLESTR* lplpsz) {
  return StringFromGuidAlloc(rclsid, lplpsz);
}

HRESULT WINAPI CLSIDFromString(LPCOLESTR lpsz, LPCLSID pclsid) {
  if (pclsid == nullptr) return E_INVALIDARG;
  *pclsid = CLSID_NULL;
  if (lpsz == nullptr) return NOERROR;
  // TODO(windows-compat): Windows looks a string without braces up as a
  // ProgID in the registry; there is no registry, so it is never found.
  return apartments::internal::ParseGuid(lpsz, pclsid) ? NOERROR : CO_E_CLASSSTRING;
}

HRESULT WINAPI IIDFromString(LPCOLESTR lpsz, LPIID lpiid) {
  if (lpiid == nullptr) return E_INVALIDARG;
  *lpiid = IID_NULL;
  if (lpsz == nullptr) return S_OK;
  return apartments::internal::ParseGuid(lpsz, lpiid) ? S_OK : E_INVALIDARG;
}

HRESULT WINAPI CoCreateGuid(GUID* pguid) {
  if (pguid == nullptr) return E_INVALIDARG;
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return E_FAIL;
    }
    got += static_cast<size_t>(n);
  }
  GUID g;
  g.Data1 = static_cast<unsigned int>(bytes[0]) << 24 | static_cast<unsigned int>(bytes[1]) << 16 |
            static_cast<unsigned int>(bytes[2]) << 8 | bytes[3];
  g.Data2 = static_cast<unsigned short>(bytes[4] << 8 | bytes[5]);
  // Version 4 (random) in the top nibble of Data3, RFC 4122 variant (10xx) in
  // the top bits of Data4[0], as Windows' CoCreateGuid produces.
  g.Data3 = static_cast<unsigned short>(((bytes[6] & 0x0F) | 0x40) << 8 | bytes[7]);
  g.Data4[0] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);
  for (int i = 1; i < 8; ++i) g.Data4[i] = bytes[8 + i];
  *pguid = g;
  return S_OK;
}

}  // extern "C"
