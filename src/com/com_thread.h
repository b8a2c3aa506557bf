// The COM layer's per-thread data, kept in
// ThreadState::layer_data[Layer::kCom].
//
// Lifecycle: created on the thread's first COM call that needs it
// (CurrentComThreadData); destroyed on that thread when it exits, by the COM
// layer's exit hook, which first releases everything the data holds (the
// error info now; apartment state later). A thread that never needed COM data
// has none (ComThreadDataIfAny returns null).
//
// Thread safety: a thread's ComThreadData is touched only by that thread.
// Other threads must not read it (diagnostics that need to will get their own
// published fields).
#ifndef APARTMENTS_SRC_COM_COM_THREAD_H_
#define APARTMENTS_SRC_COM_COM_THREAD_H_

#include <cstdint>
#include <vector>

#include "apartments/win32_com.h"
#include "com/apartment.h"

namespace apartments::internal {

struct ChannelCall;

struct ComThreadData {
  // The thread's error info (SetErrorInfo/GetErrorInfo): one reference owned
  // by this slot, or null.
  IErrorInfo* error_info = nullptr;

  // --- Apartment state (apartment.cc, channel.cc) ---------------------------
  // The apartment the thread joined with CoInitializeEx (its STA or the MTA),
  // or, on an MTA worker, the MTA whose call it runs; null otherwise.
  ApartmentRef apartment;
  // Successful CoInitialize(Ex) calls not yet undone.
  int init_count = 0;
  // The thread is one of the runtime's MTA workers.
  bool mta_worker = false;
  // The STA's message filter (one reference), or null.
  IMessageFilter* message_filter = nullptr;
  // Reply events (auto-reset event handles) free for the next outgoing call;
  // a nested call takes another. Closed at thread exit.
  std::vector<HANDLE> reply_events;
  // CoGetCurrentProcess(): 0 until first asked.
  DWORD process_cookie = 0;
  // This thread's own logical thread id (valid when has_logical_thread_id).
  GUID logical_thread_id{};
  bool has_logical_thread_id = false;
  // While running an incoming call: the causality id it carries (points into
  // the call record, valid while it runs); null otherwise.
  const GUID* incoming_causality = nullptr;
  // The innermost outgoing call this thread waits for (its modal loop), or
  // null; each record links to the one it nests in.
  ChannelCall* outgoing = nullptr;
};

// Leaves the thread's apartment at thread exit (apartment.cc): tears its STA
// down or gives up its MTA use, releases the filter and the reply events.
// Called by the COM layer's exit hook before it frees `data`.
void ApartmentThreadExit(ComThreadData& data);

// ExitThread was called (apartment.cc): shuts the thread's STA down before
// the thread's frames unwind, so that nothing more is served on the way out
// (calls still queued fail, calls on the stack end as "thread exited"), and
// the proxies the apartment holds have already let go of their objects when
// an unwinding frame releases them.
void ApartmentThreadExitStarting(ComThreadData& data);

// The calling thread's data, created on first use (allocates once per
// thread; aborts only if that allocation fails).
ComThreadData& CurrentComThreadData();

// The calling thread's data, or null when it has none yet. Never creates it.
ComThreadData* ComThreadDataIfAny() noexcept;

// Swaps the calling thread's error info for `info` (whose reference the slot
// takes over) and returns the previous one (whose reference the caller now
// owns), without AddRef or Release. Release the result outside any lock: its
// Release may run arbitrary code, including SetErrorInfo.
IErrorInfo* ExchangeThreadErrorInfo(IErrorInfo* info);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_COM_THREAD_H_
