// GUID text formatting and parsing shared by the COM layer.
#ifndef APARTMENTS_SRC_COM_GUID_FORMAT_H_
#define APARTMENTS_SRC_COM_GUID_FORMAT_H_

#include "apartments/win32_com.h"

namespace apartments::internal {

// "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" plus the terminator.
inline constexpr int kGuidStringChars = 39;

// Writes `g` in registry format, upper-case, NUL-terminated.
void FormatGuid(const GUID& g, OLECHAR out[kGuidStringChars]) noexcept;

// Parses exactly the registry format (braces required, hex of either case,
// nothing after the closing brace); returns false for anything else. As
// Windows' parser, it writes *out field by field as it reads: on failure the
// fields before the bad character are parsed, the field holding it has the
// digits read before it, later fields are untouched. `s` must be
// NUL-terminated.
bool ParseGuid(const OLECHAR* s, GUID* out) noexcept;

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_GUID_FORMAT_H_
