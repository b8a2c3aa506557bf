// Helpers shared by the cancellation tests of the modern API (cancel_test.cc,
// async_cancel_test.cc).
#ifndef APARTMENTS_SRC_COM_CANCEL_TEST_UTIL_H_
#define APARTMENTS_SRC_COM_CANCEL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <string>

#include "apartments/apartment.h"
#include "message/test_util.h"

namespace apartments::internal::testing {

// Blocks `apartment`'s thread in a posted callable until `release` is set;
// returns once the callable runs.
inline void Block(const ::apartments::Apartment& apartment, TestEvent& started, TestEvent& release) {
  ASSERT_EQ(apartment.Post([&] {
    started.Set();
    (void)release.Wait();
  }), S_OK);
  ASSERT_TRUE(started.Wait());
}

}  // namespace apartments::internal::testing

#endif  // APARTMENTS_SRC_COM_CANCEL_TEST_UTIL_H_
