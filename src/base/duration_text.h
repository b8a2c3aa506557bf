// Durations as the library's reports write them. Internal.
#ifndef APARTMENTS_SRC_BASE_DURATION_TEXT_H_
#define APARTMENTS_SRC_BASE_DURATION_TEXT_H_

#include <string>

#include "apartments/clock.h"

namespace apartments::internal {

// FormatDuration()
//
// "250 ms" below a second, "1.2 s" from there on; a negative duration reads
// as "0 ms". Any thread; allocates.
std::string FormatDuration(Clock::Duration d);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_DURATION_TEXT_H_
