// The one call lower layers make to start the library's self-diagnosis.
//
// Diagnostics (the hang watchdog, deadlock detection, live inspection) are on
// by default, but only in a process that uses message queues or COM: the
// message layer calls this when it creates a thread's queue and the COM layer
// when CoInitializeEx enters an apartment. Nothing runs at static
// initialization, and a process that never does either starts no thread and
// allocates nothing for diagnostics.
//
// The function is the diagnostics layer's (src/diag/default_diagnostics.cc);
// lower layers reach it only through this declaration, never through diag's
// headers. After the first call it is one acquire load.
#ifndef APARTMENTS_SRC_BASE_LAZY_DIAGNOSTICS_H_
#define APARTMENTS_SRC_BASE_LAZY_DIAGNOSTICS_H_

namespace apartments::internal {

// Any thread, any number of times; must not be called with a library lock
// held (the first call may start the watchdog thread and create the
// inspection socket). Never blocks on another thread.
void StartDiagnosticsOnFirstUse() noexcept;

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_LAZY_DIAGNOSTICS_H_
