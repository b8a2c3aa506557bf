// Tests that the Win32 surface compiles after the system headers a Linux
// program typically includes first, and that the Windows meanings win where
// both define a name.
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/types.h>
#include <unistd.h>

#include "apartments/win32.h"

#include <gtest/gtest.h>

namespace {

// Tests that LOCK_WRITE is IStream's LOCKTYPE value (1) even after glibc's
// <fcntl.h> defined its own LOCK_WRITE (this failed to compile before).
TEST(SystemHeadersFirstTest, LockTypeKeepsWindowsValues) {
  EXPECT_EQ(LOCK_WRITE, 1);
  EXPECT_EQ(LOCK_EXCLUSIVE, 2);
  EXPECT_EQ(LOCK_ONLYONCE, 4);
  // flock's own flags are untouched.
  EXPECT_EQ(LOCK_EX, 2);
  EXPECT_EQ(LOCK_SH, 1);
}

}  // namespace
