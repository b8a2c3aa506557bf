// apartments/message_queue.h
//
// Process-wide settings of the thread message queues (apartments/win32_message.h).
//
// The posted-message limit. Each thread's queue holds at most this many posted
// messages; a post past it fails with ERROR_NOT_ENOUGH_QUOTA (1816) and queues
// nothing. Windows reads it from the registry value USERPostMessageLimit
// (default 10,000; Windows accepts 4,000 to 10,000). This library accepts
// 1 to 1,000,000 (kMinPostMessageLimit..kMaxPostMessageLimit): values below
// 4,000 exist for tests and for code that wants back-pressure early, values
// above 10,000 for code that relied on never reaching the limit.
//
// Where the limit comes from, first match wins:
//   1. SetPostMessageLimit(), whenever it is called (it also stops the
//      environment variable from being read later);
//   2. the environment variable APARTMENTS_POST_MESSAGE_LIMIT, read once, at
//      the first post or first GetPostMessageLimit(): a decimal number in the
//      accepted range; anything else is ignored (the default applies);
//   3. the default, 10,000.
// A new limit applies at once to every queue, to posts made after it; it never
// drops queued messages (a queue above a lowered limit refuses posts until it
// drains below it).
#ifndef APARTMENTS_MESSAGE_QUEUE_H_
#define APARTMENTS_MESSAGE_QUEUE_H_

#include "apartments/win32_types.h"

namespace apartments {

inline constexpr DWORD kDefaultPostMessageLimit = 10000;
inline constexpr DWORD kMinPostMessageLimit = 1;
inline constexpr DWORD kMaxPostMessageLimit = 1000000;

// Sets the posted-message limit of every queue in the process.
// Thread safety: any thread; posts racing with the call see the old or the
// new limit. Never blocks.
// Returns S_OK, or E_INVALIDARG (limit unchanged) outside
// [kMinPostMessageLimit, kMaxPostMessageLimit].
[[nodiscard]] HRESULT SetPostMessageLimit(DWORD limit) noexcept;

// The limit in force (reading the environment variable if nothing else set it).
// Thread safety: any thread. Never blocks.
DWORD GetPostMessageLimit() noexcept;

}  // namespace apartments

#endif  // APARTMENTS_MESSAGE_QUEUE_H_
