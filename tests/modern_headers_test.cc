// Tests that the modern API's headers bring no Win32 macro: a program that
// includes only them keeps S_OK, INFINITE, TRUE, WINAPI, ... free for its own
// use. This translation unit includes nothing before them; a macro they leak
// fails its compilation (#error below), so the build itself checks it.
// proxy.h and ref.h are not here: they declare COM interfaces
// (apartments/win32_com.h) and bring its macros by design.
#include "apartments/apartment.h"
#include "apartments/bound.h"
#include "apartments/clock.h"
#include "apartments/result.h"
#include "apartments/task.h"

#if defined(S_OK) || defined(S_FALSE) || defined(E_FAIL) || defined(INFINITE) ||          \
    defined(WAIT_OBJECT_0) || defined(TRUE) || defined(FALSE) || defined(WINAPI) ||        \
    defined(RPC_E_DISCONNECTED) || defined(INVALID_HANDLE_VALUE) || defined(FAILED) ||     \
    defined(SUCCEEDED) || defined(WM_USER)
#error "a modern API header (apartment.h, bound.h, clock.h, result.h, task.h) defines a Win32 macro"
#endif

#include <gtest/gtest.h>

#include "apartments/win32_errors.h"

namespace apartments {
namespace {

// The header's own constants for the HRESULTs its templates return are
// Windows' values.
static_assert(internal::kCallCanceled == RPC_E_CALL_CANCELED);
static_assert(internal::kServerFault == RPC_E_SERVERFAULT);
static_assert(internal::kDisconnected == RPC_E_DISCONNECTED);
static_assert(internal::kCallTimeout == RPC_E_TIMEOUT);

// Tests that a program using only the modern headers can start an apartment,
// call into it and check it is on it.
TEST(ModernHeadersTest, ApartmentWorksWithoutWin32Headers) {
  Apartment apartment({.name = "modern-only"});
  Result<int> r = apartment.Call([&] {
    APARTMENTS_CHECK_ON_APARTMENT(apartment);
    return 42;
  });
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, 42);
}

}  // namespace
}  // namespace apartments
