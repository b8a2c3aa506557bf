// The one place for explanations: how the library's reports write each kind of
// fact, and the hook through which lower layers ask the diagnostics layer for
// the facts only it can gather. Internal.
//
// Every report (a failed call's explanation, a last-error explanation, the
// hang and deadlock reports, the wait chain's text and JSON, the inspection
// server's JSON) writes a handle, a thread, a duration, a time in the past and
// a JSON string with the formatters here, so the same fact reads the same
// everywhere. They are pure text (plus the thread registry for names), so they
// live in base and every layer may use them.
//
// Layers below diag (kernel, message, com and the modern API) never include
// diag's headers (the build refuses it, see CMakeLists.txt); where their
// explanation wants a fact that diag computes (a thread's full wait chain),
// they call the hook below, which diag installs when diagnostics start
// (StartDiagnosticsOnFirstUse, base/lazy_diagnostics.h), as the kernel's block
// hook is installed.
#ifndef APARTMENTS_SRC_BASE_EXPLAIN_H_
#define APARTMENTS_SRC_BASE_EXPLAIN_H_

#include <string>
#include <string_view>

#include "apartments/clock.h"
#include "apartments/win32_types.h"

namespace apartments::internal {

// --- Formatters: one per kind of fact ----------------------------------------

// FormatDuration()
//
// "250 ms" below a second, "1.2 s" from there on; a negative duration reads
// as "0 ms". Any thread; allocates.
std::string FormatDuration(Clock::Duration d);

// Ago()
//
// How long before the library clock's now `when` was, as FormatDuration
// writes it: "4 ms ago", "1.5 s ago".
std::string Ago(Clock::TimePoint when);

// HandleText()
//
// A handle's value as the reports quote it: "0x1c"; "NULL" for a null handle.
std::string HandleText(HANDLE handle);

// ThreadLabel() / ThreadText()
//
// A thread as the reports name it: "thread 12 'worker'", or "thread 12" when
// it has no name. ThreadText looks the name up in the thread registry (the
// thread's SetThreadDescription, "" once it has exited); ThreadLabel takes a
// name already read.
std::string ThreadLabel(DWORD tid, std::string_view name);
std::string ThreadText(DWORD tid);

// ThreadNameOf()
//
// A live thread's description (SetThreadDescription) in UTF-8; "" when it has
// none or is not a live thread of the library.
std::string ThreadNameOf(DWORD tid);

// AppendJsonString() / JsonString()
//
// `s` as a JSON string literal, quotes included: `"` and `\` escaped, \n, \r,
// \t as such, other control characters as \u00XX; bytes from 0x80 up pass
// through (the library's text is UTF-8).
void AppendJsonString(std::string* out, std::string_view s);
std::string JsonString(std::string_view s);

// --- The diagnostics layer's hook ---------------------------------------------

struct ExplanationHooks {
  // The full wait chain of thread `tid`, hop by hop, as text (a newline
  // between hops); "" when the chain cannot be read. Any thread; must not be
  // called with a library lock held (it takes the kernel lock and reads other
  // threads' records).
  std::string (*wait_chain_text)(DWORD tid) = nullptr;
};

// Installs the hooks (diag, when diagnostics start; `hooks` must outlive the
// process, a static). Any thread; later calls replace earlier ones.
void SetExplanationHooksForDiagnostics(const ExplanationHooks* hooks) noexcept;

// WaitChainText()
//
// The installed hook's wait chain of `tid`; "" when diag has installed none
// (diagnostics not started) or `tid` is 0 (the MTA: no one thread).
std::string WaitChainText(DWORD tid);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_EXPLAIN_H_
