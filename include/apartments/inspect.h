// apartments/inspect.h
//
// Live inspection: a running process that uses the library answers
// `apartments-wct <pid>` (tools/wct.cc) with every thread's apartment, queue
// depth and quota, last-pumped age, wait chain, the cycles among them and the
// hang watchdog's current hangs, as text or JSON. See docs/diagnostics.md.
//
// Who serves. By default, the process's default diagnostics (diagnostics.h,
// "Self-diagnosis on by default"): the first message queue or CoInitializeEx
// starts their watchdog, whose thread serves, with no code; the environment
// variable APARTMENTS_INSPECT=0 or DiagnosticsOptions::serve_inspection =
// false turns it off (APARTMENTS_DIAGNOSTICS=off turns off everything). A
// process that never makes a queue or enters an apartment creates no file.
// A HangWatchdog of the program's own serves when
// HangWatchdogOptions::serve_inspection is set or APARTMENTS_INSPECT is "1"
// when Start() runs, unless another watchdog serves already. Serving from the
// watchdog's thread, which only takes the layers' short locks (see
// diagnostics.h), means a process whose every apartment is stuck still
// answers. At most one watchdog per process serves; a second one logs to
// stderr and does not. The default watchdog runs until the process ends; its
// socket file is removed at exit (atexit).
//
// Where. `<dir>/<pid>.sock`, where <dir> is HangWatchdogOptions::
// inspection_directory when set, else $XDG_RUNTIME_DIR/apartments when
// XDG_RUNTIME_DIR is set (an absolute path), else /tmp/apartments-<euid>.
// The directory is created with mode 0700; an existing one must be a real
// directory (not a symlink) owned by the effective uid with no group or other
// permission bits, or serving is refused (someone else could otherwise have
// planted it to intercept or spoof the socket). The socket is mode 0600 and
// is removed when the watchdog stops; at start, the server removes sockets in
// the directory left by processes that no longer exist (and its own pid's,
// left by an earlier process with the same pid).
//
// Security model. Three checks, any one of which refuses another user: the
// directory's mode (0700), the socket's mode (0600), and the peer's
// credentials (SO_PEERCRED): a peer whose effective uid is neither ours nor 0
// gets one "error permission denied ..." line and is disconnected. Root is
// accepted because it can read the process's memory anyway (ptrace,
// /proc/<pid>/mem): refusing it protects nothing and stops an administrator
// from inspecting a stuck service with `sudo apartments-wct <pid>`.
//
// Protocol (one request per connection). The client sends one line,
// "snapshot text", "snapshot json" or "version", at most
// kInspectionMaxRequest bytes, within the request timeout (1 s); the server
// answers "ok\n" followed by the body, or one line "error <reason>\n", and
// closes. A client that sends nothing, too much, or does not read the answer
// is cut off at the timeout, so it cannot wedge the watchdog for longer;
// Stop() interrupts a client at once.
//
// Dump signal. HangWatchdogOptions::dump_signal (e.g. SIGQUIT): while the
// watchdog runs, that signal makes its thread write the same text snapshot to
// stderr. The handler only writes one byte to a pipe (async-signal-safe);
// the watchdog thread does the work. The handler is installed by Start() and
// the previous disposition restored by Stop(): without a running watchdog the
// signal keeps its default action (for SIGQUIT, terminate with a core dump).
// At most one watchdog per process owns the dump signal.
#ifndef APARTMENTS_INSPECT_H_
#define APARTMENTS_INSPECT_H_

#include <cstddef>
#include <string>

namespace apartments {

// The protocol's version, answered to "version" as
// "apartments-inspect <kInspectionProtocolVersion>".
inline constexpr int kInspectionProtocolVersion = 1;
// The longest request line accepted, newline included.
inline constexpr std::size_t kInspectionMaxRequest = 256;

// The directory a watchdog serving inspection uses when no
// inspection_directory is set (see above), for the effective uid. Any thread
// (reads the environment: do not race it with setenv).
std::string DefaultInspectionDirectory();

// `<directory>/<pid>.sock`; DefaultInspectionDirectory() when `directory` is
// empty.
std::string InspectionSocketPath(int pid, const std::string& directory = {});

}  // namespace apartments

#endif  // APARTMENTS_INSPECT_H_
