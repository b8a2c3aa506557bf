// GUID strings and generation: StringFromGUID2, StringFromCLSID/IID,
// CLSIDFromString/IIDFromString, CoCreateGuid.
#include <sys/random.h>

#include <cerrno>
#include <cstdlib>
#include <type_traits>

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
  // Windows' parser, as Wine's compobj tests record it: each field is cleared,
  // then built up in place digit by digit, so a failure leaves the fields
  // before the bad character parsed, the field holding it with the digits
  // read so far, and the later fields untouched. Every check stops at the
  // terminator (not a hex digit, not a separator), so nothing past it is read.
  auto hex_digit = [](OLECHAR c) -> int {
    if (c >= L'0' && c <= L'9') return c - L'0';
    if (c >= L'a' && c <= L'f') return c - L'a' + 10;
    if (c >= L'A' && c <= L'F') return c - L'A' + 10;
    return -1;
  };
  if (s[0] != L'{') return false;
  auto field = [&](int pos, int digits, auto& value) {
    value = 0;
    for (int i = pos; i < pos + digits; ++i) {
      int d = hex_digit(s[i]);
      if (d < 0) return false;
      value = static_cast<std::remove_reference_t<decltype(value)>>(value << 4 | d);
    }
    return true;
  };
  if (!field(1, 8, out->Data1) || s[9] != L'-') return false;
  if (!field(10, 4, out->Data2) || s[14] != L'-') return false;
  if (!field(15, 4, out->Data3) || s[19] != L'-') return false;
  // Data4: two bytes, a dash, six bytes; a byte is stored once both its digits
  // are read.
  int pos = 20;
  for (int b = 0; b < 8; ++b) {
    if (b == 2) {
      if (s[pos] != L'-') return false;
      ++pos;
    }
    int hi = hex_digit(s[pos]);
    if (hi < 0) return false;
    int lo = hex_digit(s[pos + 1]);
    if (lo < 0) return false;
    out->Data4[b] = static_cast<unsigned char>(hi << 4 | lo);
    pos += 2;
  }
  return s[37] == L'}' && s[38] == L'\0';
}

}  // namespace apartments::internal

namespace {

using apartments::internal::kGuidStringChars;

// A REFGUID is a reference here but a pointer in Windows' C binding, where a
// caller can pass NULL. Each entry point takes the reference's address itself
// (binding a null reference anew, even to pass it on, is undefined and UBSan
// reports it) and checks it here, read back through a volatile so that the
// compiler cannot fold the check away (a reference is never null in C++).
bool IsNullGuid(const GUID* guid) {
  const GUID* volatile address = guid;
  return address == nullptr;
}

HRESULT StringFromGuidAlloc(const GUID* guid, LPOLESTR* out) {
  if (out == nullptr) return E_INVALIDARG;
  if (IsNullGuid(guid)) {
    *out = nullptr;
    return E_INVALIDARG;
  }
  auto* s = static_cast<LPOLESTR>(CoTaskMemAlloc(kGuidStringChars * sizeof(OLECHAR)));
  if (s == nullptr) {
    *out = nullptr;
    return E_OUTOFMEMORY;
  }
  apartments::internal::FormatGuid(*guid, s);
  *out = s;
  return S_OK;
}

}  // namespace

extern "C" {

int WINAPI StringFromGUID2(REFGUID rguid, LPOLESTR lpsz, int cchMax) {
  // A null GUID gives 0 as a short buffer does, without touching the last
  // error (Windows, Wine's compobj.c test_StringFromGUID2).
  const GUID* guid = &rguid;
  if (IsNullGuid(guid) || lpsz == nullptr || cchMax < kGuidStringChars) return 0;
  apartments::internal::FormatGuid(*guid, lpsz);
  return kGuidStringChars;
}

HRESULT WINAPI StringFromCLSID(REFCLSID rclsid, LPOLESTR* lplpsz) {
  return StringFromGuidAlloc(&rclsid, lplpsz);
}

HRESULT WINAPI StringFromIID(REFIID rclsid, LPOLESTR* lplpsz) {
  return StringFromGuidAlloc(&rclsid, lplpsz);
}

HRESULT WINAPI CLSIDFromString(LPCOLESTR lpsz, LPCLSID pclsid) {
  if (pclsid == nullptr) return E_INVALIDARG;
  if (lpsz == nullptr) {
    *pclsid = CLSID_NULL;
    return NOERROR;
  }
  // A string in braces is parsed in place: on failure *pclsid keeps what was
  // parsed before the bad character (Windows' behaviour). Anything else, and
  // a malformed braced string, Windows then looks up as a ProgID; there is no
  // registry here, so no ProgID is known, and an unknown ProgID leaves
  // CLSID_NULL.
  // TODO(windows-compat): ProgIDs registered in the registry.
  if (lpsz[0] == L'{') {
    return apartments::internal::ParseGuid(lpsz, pclsid) ? NOERROR : CO_E_CLASSSTRING;
  }
  *pclsid = CLSID_NULL;
  return CO_E_CLASSSTRING;
}

HRESULT WINAPI IIDFromString(LPCOLESTR lpsz, LPIID lpiid) {
  if (lpiid == nullptr) return E_INVALIDARG;
  if (lpsz == nullptr) {
    *lpiid = IID_NULL;
    return S_OK;
  }
  // Windows checks the length first (E_INVALIDARG, *lpiid untouched), then the
  // opening brace (CO_E_IIDSTRING, untouched), then parses in place
  // (CO_E_IIDSTRING, *lpiid holding what was parsed before the bad character).
  size_t length = 0;
  while (length < kGuidStringChars && lpsz[length] != L'\0') ++length;
  if (length != kGuidStringChars - 1) return E_INVALIDARG;
  if (lpsz[0] != L'{') return CO_E_IIDSTRING;
  return apartments::internal::ParseGuid(lpsz, lpiid) ? S_OK : CO_E_IIDSTRING;
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
