// Filtered pumps, for diagnostics: a thread that pumps messages, but with a
// GetMessageW/PeekMessageW filter that excludes the messages waiting for it
// (its STA's COM window, for instance), so they never run.
#ifndef APARTMENTS_SRC_MESSAGE_PUMP_FILTER_H_
#define APARTMENTS_SRC_MESSAGE_PUMP_FILTER_H_

#include <cstdint>
#include <string>

#include "apartments/win32_message.h"

namespace apartments::internal {

// When thread `tid` pumps (idle in a message call, or running, or now and
// then between non-pumping waits: "pumps only between other waits") and the filter
// of its latest GetMessageW/PeekMessageW excludes messages to `window` (null:
// any window) with id `message` (0: any id), one sentence saying so, e.g.
// "Thread 12 is pumping, but with a filter (window 0x10002, messages
// 0x0400..0x0400) that excludes the apartment's window 0x10001; 5 messages
// wait behind it." `window_role` names the window ("the apartment's window").
// Also when the thread sleeps in MsgWaitForMultipleObjectsEx with a wake
// mask that leaves out posted messages (QS_POSTMESSAGE): "Thread 12 waits in
// MsgWaitForMultipleObjectsEx with a wake mask (QS_KEY) that leaves out
// posted messages ...".
// "" otherwise. Any thread; reads only relaxed atomics and the wait record.
std::string DescribePumpFilter(DWORD tid, HWND window, UINT message, const char* window_role,
                               std::uint64_t waiting);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_MESSAGE_PUMP_FILTER_H_
