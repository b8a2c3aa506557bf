#include <cstring>
#include <cwchar>
#include <set>
#include <string>
#include <utility>

#include "apartments/win32.h"
#include "gtest/gtest.h"

namespace {

// An interface declared the way users declare theirs, in their own namespace.
namespace user {
struct IFoo : public IUnknown {
  STDMETHOD(Bar)(int x) PURE;
};
APARTMENTS_INTERFACE(IFoo, IUnknown, "{12345678-9abc-def0-1234-56789abcdef0}");
}  // namespace user

constexpr GUID kSample = {0x12345678, 0x9ABC, 0xDEF0, {0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0}};

std::wstring ToString(REFGUID g) {
  OLECHAR buf[39];
  EXPECT_EQ(StringFromGUID2(g, buf, 39), 39);
  return buf;
}

// Tests that GUID has Windows' 16-byte layout with the fields at their offsets.
TEST(GuidTest, LayoutMatchesWindows) {
  EXPECT_EQ(sizeof(GUID), 16u);
  EXPECT_EQ(offsetof(GUID, Data1), 0u);
  EXPECT_EQ(offsetof(GUID, Data2), 4u);
  EXPECT_EQ(offsetof(GUID, Data3), 6u);
  EXPECT_EQ(offsetof(GUID, Data4), 8u);
  EXPECT_EQ(sizeof(GUID::Data1), 4u);
}

// Tests that StringFromGUID2 writes the upper-case registry format.
TEST(GuidTest, StringFromGuid2Format) {
  EXPECT_EQ(ToString(kSample), L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}");
  EXPECT_EQ(ToString(IID_IUnknown), L"{00000000-0000-0000-C000-000000000046}");
}

// Tests that StringFromGUID2 returns 0 and writes nothing for a short buffer.
TEST(GuidTest, StringFromGuid2ShortBuffer) {
  OLECHAR buf[39];
  buf[0] = L'x';
  EXPECT_EQ(StringFromGUID2(kSample, buf, 38), 0);
  EXPECT_EQ(buf[0], L'x');
  EXPECT_EQ(StringFromGUID2(kSample, nullptr, 39), 0);
}

// Windows' C binding passes a REFGUID as a pointer; a C caller's NULL is a
// null pointer in the same register, which this call reproduces.
using GuidPointerFunction2 = int(WINAPI*)(const GUID*, LPOLESTR, int);
using GuidPointerFunctionAlloc = HRESULT(WINAPI*)(const GUID*, LPOLESTR*);

// Tests that StringFromGUID2 with a null GUID returns 0, writes nothing and
// leaves the last error alone (this crashed; Wine's compobj.c
// test_StringFromGUID2, line 642), and that 39 characters is enough while 38
// and 30 are not (lines 652-660).
TEST(GuidTest, StringFromGuid2NullGuidAndBufferSizes) {
  auto from_pointer = reinterpret_cast<GuidPointerFunction2>(&StringFromGUID2);
  OLECHAR buf[50];
  buf[0] = L'x';
  SetLastError(0xdeadbeef);
  EXPECT_EQ(from_pointer(nullptr, buf, 50), 0);
  EXPECT_EQ(GetLastError(), 0xdeadbeefu);
  EXPECT_EQ(buf[0], L'x');
  EXPECT_EQ(StringFromGUID2(kSample, buf, 39), 39);
  EXPECT_STREQ(buf, L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}");
  EXPECT_EQ(StringFromGUID2(kSample, buf, 38), 0);
  EXPECT_EQ(StringFromGUID2(kSample, buf, 30), 0);
}

// Tests that StringFromCLSID and StringFromIID with a null GUID return
// E_INVALIDARG and a null string instead of crashing.
TEST(GuidTest, StringFromClsidNullGuidIsInvalidArg) {
  for (auto function : {reinterpret_cast<GuidPointerFunctionAlloc>(&StringFromCLSID),
                        reinterpret_cast<GuidPointerFunctionAlloc>(&StringFromIID)}) {
    LPOLESTR s = reinterpret_cast<LPOLESTR>(1);
    EXPECT_EQ(function(nullptr, &s), E_INVALIDARG);
    EXPECT_EQ(s, nullptr);
  }
}

// Tests that StringFromCLSID and CLSIDFromString round-trip.
TEST(GuidTest, ClsidStringRoundTrip) {
  LPOLESTR s = nullptr;
  ASSERT_EQ(StringFromCLSID(kSample, &s), S_OK);
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(s, L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}");
  CLSID back;
  EXPECT_EQ(CLSIDFromString(s, &back), NOERROR);
  EXPECT_TRUE(IsEqualCLSID(back, kSample));
  CoTaskMemFree(s);
}

// Tests that StringFromIID and IIDFromString round-trip, lower case accepted.
TEST(GuidTest, IidStringRoundTripAnyCase) {
  LPOLESTR s = nullptr;
  ASSERT_EQ(StringFromIID(IID_IStream, &s), S_OK);
  IID back;
  EXPECT_EQ(IIDFromString(s, &back), S_OK);
  EXPECT_TRUE(IsEqualIID(back, IID_IStream));
  CoTaskMemFree(s);
  EXPECT_EQ(IIDFromString(L"{12345678-9abc-def0-1234-56789abcdef0}", &back), S_OK);
  EXPECT_EQ(back, kSample);
}

// Tests that StringFromCLSID rejects a null out pointer.
TEST(GuidTest, StringFromClsidNullOut) {
  EXPECT_EQ(StringFromCLSID(kSample, nullptr), E_INVALIDARG);
}

// Tests that CLSIDFromString rejects malformed strings with CO_E_CLASSSTRING
// and, for a string that is not in braces (a ProgID to Windows, and none is
// registered here), leaves CLSID_NULL behind.
TEST(GuidTest, ClsidFromStringProgIdLikeGivesNull) {
  const wchar_t* bad[] = {
      L"",
      L"12345678-9ABC-DEF0-1234-56789ABCDEF0",  // no braces
      L"StdFont",
      L"ProgId.ProgId",
  };
  for (const wchar_t* s : bad) {
    CLSID out = kSample;
    EXPECT_EQ(CLSIDFromString(s, &out), CO_E_CLASSSTRING) << std::wstring(s).size();
    EXPECT_EQ(out, CLSID_NULL);
  }
}

// Tests that CLSIDFromString, on a malformed string in braces, returns
// CO_E_CLASSSTRING and leaves the GUID as Windows does: everything parsed
// before the bad character stays (Wine's test_CLSIDFromString on Windows).
TEST(GuidTest, ClsidFromStringMalformedKeepsWhatWasParsed) {
  const wchar_t* whole_guid_then_bad[] = {
      L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}x",        // trailing text
      L"{12345678-9ABC-DEF0-1234-56789ABCDEF0AAAAAAA",  // no closing brace, longer
      L"{12345678-9ABC-DEF0-1234-56789ABCDEF0A",        // brace replaced
      L"{12345678-9ABC-DEF0-1234-56789ABCDEF0",         // no closing brace
  };
  for (const wchar_t* s : whole_guid_then_bad) {
    CLSID out = CLSID_NULL;
    EXPECT_EQ(CLSIDFromString(s, &out), CO_E_CLASSSTRING) << std::wstring(s).size();
    EXPECT_EQ(out, kSample) << std::wstring(s).size();
  }
}

// Tests that a bad character inside a field leaves the digits before it in that
// field and the later fields untouched, as Windows' parser does.
TEST(GuidTest, ClsidFromStringStopsAtTheBadCharacter) {
  CLSID out;
  std::memset(&out, 0xcc, sizeof(out));
  EXPECT_EQ(CLSIDFromString(L"{12345678*9ABC-DEF0-1234-56789ABCDEF0}", &out), CO_E_CLASSSTRING);
  EXPECT_EQ(out.Data1, 0x12345678u);  // parsed before the bad separator
  EXPECT_EQ(out.Data2, 0xccccu);      // never reached

  std::memset(&out, 0xcc, sizeof(out));
  EXPECT_EQ(CLSIDFromString(L"{12*45678-9ABC-DEF0-1234-56789ABCDEF0}", &out), CO_E_CLASSSTRING);
  EXPECT_EQ(out.Data1, 0x12u);  // the digits read before the bad one
  EXPECT_EQ(out.Data2, 0xccccu);

  std::memset(&out, 0xcc, sizeof(out));
  EXPECT_EQ(CLSIDFromString(L"{12", &out), CO_E_CLASSSTRING);
  EXPECT_EQ(out.Data1, 0x12u);
  EXPECT_EQ(out.Data2, 0xccccu);

  std::memset(&out, 0xcc, sizeof(out));
  EXPECT_EQ(CLSIDFromString(L"{12345678-9ABC-DEF0-1234-56789ABCDEFG}", &out), CO_E_CLASSSTRING);
  EXPECT_EQ(out.Data3, 0xDEF0u);
  EXPECT_EQ(out.Data4[6], 0xDEu);
  EXPECT_EQ(out.Data4[7], 0xccu);  // the byte with the bad digit is not stored
}

// Tests that IIDFromString gives E_INVALIDARG and leaves the IID untouched for
// a string of the wrong length (ProgIDs included, and a valid IID followed by
// more text), as Windows does.
TEST(GuidTest, IidFromStringWrongLengthIsInvalidArg) {
  const wchar_t* bad[] = {
      L"{not-a-guid}",
      L"12345678-9ABC-DEF0-1234-56789ABCDEF0",
      L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}a",
      L"StdFont",
      L"",
  };
  for (const wchar_t* s : bad) {
    IID out = kSample;
    EXPECT_EQ(IIDFromString(s, &out), E_INVALIDARG) << std::wstring(s).size();
    EXPECT_EQ(out, kSample);
  }
}

// Tests that IIDFromString gives CO_E_IIDSTRING for a malformed string of the
// right length: untouched when it does not start with a brace, partly parsed
// when it does (Wine's test_IIDFromString on Windows).
TEST(GuidTest, IidFromStringMalformedIsIidString) {
  IID out = kSample;
  EXPECT_EQ(IIDFromString(L"broken001=0000-0000-g000-000000000046}", &out), CO_E_IIDSTRING);
  EXPECT_EQ(out, kSample);

  std::memset(&out, 0xab, sizeof(out));
  EXPECT_EQ(IIDFromString(L"{00000001-0000-0000-g000-000000000046}", &out), CO_E_IIDSTRING);
  EXPECT_EQ(out.Data1, 0x00000001u);

  std::memset(&out, 0xab, sizeof(out));
  EXPECT_EQ(IIDFromString(L"{00000001=0000-0000-g000-000000000046}", &out), CO_E_IIDSTRING);
  EXPECT_EQ(out.Data1, 0x00000001u);
  EXPECT_EQ(out.Data2, 0xababu);
}

// Tests that null strings parse as the null GUID and null outputs are errors.
TEST(GuidTest, NullArguments) {
  CLSID c = kSample;
  EXPECT_EQ(CLSIDFromString(nullptr, &c), NOERROR);
  EXPECT_EQ(c, CLSID_NULL);
  IID i = kSample;
  EXPECT_EQ(IIDFromString(nullptr, &i), S_OK);
  EXPECT_EQ(i, IID_NULL);
  EXPECT_EQ(CLSIDFromString(L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}", nullptr), E_INVALIDARG);
  EXPECT_EQ(IIDFromString(L"{12345678-9ABC-DEF0-1234-56789ABCDEF0}", nullptr), E_INVALIDARG);
}

// Tests that CoCreateGuid makes distinct version-4 GUIDs.
TEST(GuidTest, CoCreateGuidUniqueVersion4) {
  std::set<std::wstring> seen;
  for (int i = 0; i < 100; ++i) {
    GUID g;
    ASSERT_EQ(CoCreateGuid(&g), S_OK);
    EXPECT_EQ(g.Data3 >> 12, 4);
    EXPECT_EQ(g.Data4[0] & 0xC0, 0x80);
    seen.insert(ToString(g));
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(CoCreateGuid(nullptr), E_INVALIDARG);
}

// Tests that equality compares every field and IsEqualGUID agrees.
TEST(GuidTest, Equality) {
  GUID a = kSample;
  GUID b = kSample;
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(IsEqualGUID(a, b));
  b.Data4[7] ^= 1;
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a != b);
  EXPECT_FALSE(IsEqualGUID(a, b));
  EXPECT_NE(std::hash<GUID>()(a), std::hash<GUID>()(b));
}

// Tests that DEFINE_GUID defines a constant with the given fields.
DEFINE_GUID(kDefined, 0x12345678, 0x9ABC, 0xDEF0, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0);
TEST(GuidTest, DefineGuid) {
  static_assert(kDefined == kSample);
  EXPECT_EQ(kDefined, kSample);
}

// Tests that a user interface declared in one line gets IID_IFoo, InterfaceId
// and __uuidof, for a type, a pointer type and an expression.
TEST(GuidTest, UserInterfaceDeclaration) {
  static_assert(user::IID_IFoo == kSample);
  static_assert(apartments::InterfaceId<user::IFoo>() == kSample);
  static_assert(std::is_same_v<apartments::InterfaceBase<user::IFoo>, IUnknown>);
  user::IFoo* p = nullptr;
  EXPECT_EQ(__uuidof(user::IFoo), kSample);
  EXPECT_EQ(__uuidof(user::IFoo*), kSample);
  EXPECT_EQ(__uuidof(p), kSample);
  EXPECT_EQ(__uuidof(*p), kSample);
  EXPECT_EQ(&__uuidof(user::IFoo), &apartments::InterfaceId<user::IFoo>());
  static_assert(!apartments::ComInterface<int>);
}

// Tests that IID_PPV_ARGS expands to the interface's IID and a void**.
TEST(GuidTest, IidPpvArgs) {
  IStream* stream = nullptr;
  auto capture = [](REFIID riid, void** ppv) { return std::make_pair(riid, ppv); };
  auto [iid, ppv] = capture(IID_PPV_ARGS(&stream));
  EXPECT_EQ(iid, IID_IStream);
  EXPECT_EQ(ppv, reinterpret_cast<void**>(&stream));
}

}  // namespace
