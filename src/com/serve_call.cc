// The channel's callee side: serving an incoming call (ServeCall,
// CompleteCall) and the STA's modal loop (ModalWait), which serves calls
// while its thread waits for its own (see apartment_impl.h for the
// contracts; channel.cc has the caller's side).
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "apartments/clock.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "base/activity.h"
#include "base/thread_state.h"
#include "com/apartment_impl.h"
#include "com/cancel.h"
#include "com/com_thread.h"
#include "message/queue.h"

namespace apartments::internal {

void CompleteCall(ChannelCall* call, CallOutcome outcome, HRESULT result) {
  call->outcome = outcome;
  call->result = result;
  // The caller may return (and its record and its reference to the event go)
  // as soon as the event is signaled, so touch nothing of the record after
  // the signal; SignalEvent itself never touches an event after the step that
  // can release its waiter (kernel.h). SignalEvent releases: the fields above
  // are visible to the caller whose wait it satisfies.
  SignalEvent(*call->reply);
}

namespace {

// ServeCall's steps: StartOrRefuse, RejectedByFilter, then Run.

// Whether `call` may start here; when not (cancelled or past its deadline),
// it is completed as such. Inline: on every served call's path.
[[gnu::always_inline]] inline bool StartOrRefuse(ChannelCall* call) {
  if (CallCancel* cancel = call->cancel) {
    // Cancelled (or past its deadline) before we start it: it never runs.
    if (cancel->deadline && GetClock().Now() >= *cancel->deadline) cancel->Request(RPC_E_TIMEOUT);
    if (HRESULT why = cancel->requested(); why != 0) {
      CompleteCall(call, CallOutcome::kCancelled, why);
      return false;
    }
  }
  return true;
}

// Asks the serving apartment's message filter (HandleInComingCall) about
// `call`; when it rejects the call, completes it as rejected and returns
// true. The runtime's own calls are not the filter's to judge.
bool RejectedByFilter(ComThreadData& data, ChannelCall* call, IMessageFilter* filter) {
  if (filter == nullptr || call->runtime) return false;
  DWORD call_type = CALLTYPE_TOPLEVEL;
  if (data.outgoing != nullptr) {
    call_type = data.outgoing->causality == call->causality ? CALLTYPE_NESTED
                                                            : CALLTYPE_TOPLEVEL_CALLPENDING;
  }
  INTERFACEINFO info = call->description != nullptr ? call->description->Describe()
                                                    : INTERFACEINFO{nullptr, IID_NULL, 0};
  DWORD verdict = filter->HandleInComingCall(
      call_type, reinterpret_cast<HTASK>(static_cast<std::uintptr_t>(call->caller_tid)),
      GetTickCount() - call->posted_tick, &info);
  if (verdict != SERVERCALL_REJECTED && verdict != SERVERCALL_RETRYLATER) return false;
  call->reject_type = verdict;
  CompleteCall(call, CallOutcome::kRejected, RPC_E_CALL_REJECTED);
  return true;
}

// The call's error info is its own: the serving thread's (it may be in its
// modal loop, waiting for its own call) is put aside and back, so a served
// call never leaves stale text on it; what the callee leaves with a failure
// goes to its caller.
// Touches `call` only in Finish, before it completes (an unwinding
// thread's destructor passes no call).
class RestoreErrorInfo {
 public:
  explicit RestoreErrorInfo(ComThreadData& data)
      : data_(data), saved_(std::exchange(data.error_info, nullptr)) {}
  ~RestoreErrorInfo() { Finish(nullptr); }
  RestoreErrorInfo(const RestoreErrorInfo&) = delete;
  RestoreErrorInfo& operator=(const RestoreErrorInfo&) = delete;
  // Hands what the call left to `call` (null: discards it).
  void Finish(ChannelCall* call) {
    if (finished_) return;
    finished_ = true;
    IErrorInfo* left = std::exchange(data_.error_info, saved_);
    if (left == nullptr) return;
    if (call != nullptr) {
      call->error_info = left;
    } else {
      left->Release();
    }
  }

 private:
  ComThreadData& data_;
  IErrorInfo* saved_;
  bool finished_ = false;
};

// Runs the callee: its result, or RPC_E_SERVERFAULT (with call->threw and
// call->fault) when it throws. A forced unwind (ExitThread inside the call)
// completes the call as kThreadExited and goes on unwinding.
[[gnu::always_inline]] inline HRESULT Run(ComThreadData& data, ChannelCall* call,
                                          const GUID* saved_causality) {
  try {
    return (*call->invoke)();
  } catch (const std::exception& e) {
    call->threw = true;
    call->fault = e.what();
  } catch (...) {
    if (HandlingForcedUnwind()) {
      // ExitThread inside the call: it ran and never returns; the caller
      // must still wake up, told so (the record says when).
      data.incoming_causality = saved_causality;
      call->exited_at = GetClock().Now();
      CompleteCall(call, CallOutcome::kThreadExited, RPC_E_DISCONNECTED);
      throw;
    }
    call->threw = true;
    call->fault = "an exception that is not a std::exception";
  }
  return RPC_E_SERVERFAULT;
}

// ServeCall's body, inlined into ServeDispatched too (every STA call's path).
[[gnu::always_inline]] inline void ServeCallHere(ApartmentImpl* apartment, ChannelCall* call,
                                                 IMessageFilter* filter) {
  if (!StartOrRefuse(call)) return;
  ComThreadData& data = CurrentComThreadData();
  if (RejectedByFilter(data, call, filter)) return;
  call->executing_tid.store(CurrentThreadId(), std::memory_order_relaxed);
  ScopedDispatch dispatch(CurrentThreadState().activity, nullptr, kComCallMessage, "COM call");
  const GUID* saved_causality = data.incoming_causality;
  data.incoming_causality = &call->causality;
  IncomingCallScope incoming(call);
  RestoreErrorInfo restore(data);
  const HRESULT hr = Run(data, call, saved_causality);
  data.incoming_causality = saved_causality;
  restore.Finish(FAILED(hr) && !call->threw ? call : nullptr);
  CompleteCall(call, CallOutcome::kDone, hr);
}

}  // namespace

void ServeCall(ApartmentImpl* apartment, ChannelCall* call, IMessageFilter* filter) {
  ServeCallHere(apartment, call, filter);
}

// Run() ends the task: nothing of it afterwards.
void RunTask(PostedTask* task) {
  try {
    task->Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "apartments: a callable posted with Apartment::Post threw (ignored): %s\n",
                 e.what());
  } catch (...) {
    // A forced unwind (ExitThread inside the callable) goes on: the thread
    // is ending, and swallowing it would abort the process.
    if (HandlingForcedUnwind()) throw;
    std::fprintf(stderr, "apartments: a callable posted with Apartment::Post threw (ignored)\n");
  }
}

void ServeDispatched(ApartmentImpl* sta, QueueEntry* entry, IMessageFilter* filter) {
  const ApartmentImpl::Take take = sta->TakeDispatched(entry);
  if (take == ApartmentImpl::Take::kWithdrawn) return;  // A tombstone: the record may be gone.
  switch (entry->kind) {
    case QueueEntry::Kind::kCall: {
      auto* call = static_cast<ChannelCall*>(entry);
      if (take == ApartmentImpl::Take::kDisconnected) {
        CompleteCall(call, CallOutcome::kDisconnected, RPC_E_DISCONNECTED);
        return;
      }
      ServeCallHere(sta, call, filter);
      return;
    }
    case QueueEntry::Kind::kTask: {
      auto* task = static_cast<PostedTask*>(entry);
      if (take == ApartmentImpl::Take::kDisconnected) {
        task->Drop();
        return;
      }
      RunTask(task);
      return;
    }
    case QueueEntry::Kind::kRuntimeTask: {
      // Never lost: it runs also while the apartment shuts down.
      std::unique_ptr<RuntimeTask> task(static_cast<RuntimeTask*>(entry));
      task->work();
      return;
    }
  }
}

namespace {

// ModalWait's steps: PumpModal before each wait, then CheckOtherInput when
// the wait woke for input it does not serve, then the wait itself.

// Serves incoming COM calls (GetOrPeek serves sent messages first) and, with
// `dispatch_window_messages`, the other posted messages, noting a WM_QUIT's
// code in *quit. Returns whether it served a COM call.
[[gnu::always_inline]] inline bool PumpModal(MessageQueue& queue, ComThreadData& data,
                                             ApartmentImpl* sta,
                                             const MessageQueue::Filter& com_filter,
                                             bool dispatch_window_messages,
                                             std::optional<int>* quit) {
  MSG msg;
  bool served_call = false;
  while (queue.GetOrPeek(com_filter, false, &msg)) {
    if (msg.message == kComCallMessage) {
      ServeDispatched(sta, reinterpret_cast<QueueEntry*>(msg.lParam), data.message_filter);
      served_call = msg.wParam == 0;  // A call, not the runtime's work.
    } else {
      DispatchMessageW(&msg);
    }
  }
  if (dispatch_window_messages) {
    const MessageQueue::Filter any_filter;
    while (queue.GetOrPeek(any_filter, false, &msg)) {
      if (msg.message == WM_QUIT) {
        *quit = static_cast<int>(msg.wParam);
        continue;
      }
      DispatchMessageW(&msg);
    }
  }
  return served_call;
}

// Whether input the loop does not serve (a posted message) is queued. When
// the wait woke for it during an outgoing call, the thread's message filter
// is asked (MessagePending): PENDINGMSG_CANCELCALL cancels the call as
// CoCancelCall does (calls from a thread with a message filter are
// cancellable: com/cancel.h); otherwise the message stays queued
// (PENDINGMSG_WAITNOPROCESS).
bool CheckOtherInput(MessageQueue& queue, ComThreadData& data, const ModalWaitOptions& options,
                     bool woke_for_input) {
  MessageQueue::Filter peek_posted;
  peek_posted.sent = false;
  peek_posted.remove = false;
  MSG msg;
  const bool other_input = queue.GetOrPeek(peek_posted, false, &msg);
  const ChannelCall* pending = options.pending;
  if (other_input && woke_for_input && pending != nullptr && data.message_filter != nullptr) {
    const DWORD answer = data.message_filter->MessagePending(
        reinterpret_cast<HTASK>(static_cast<std::uintptr_t>(options.target_tid)),
        GetTickCount() - pending->posted_tick,
        pending->outer != nullptr ? PENDINGTYPE_NESTED : PENDINGTYPE_TOPLEVEL);
    if (answer == PENDINGMSG_CANCELCALL && pending->cancel != nullptr) {
      pending->cancel->Request(RPC_E_CALL_CANCELED);
    }
  }
  return other_input;
}

// The milliseconds left until `deadline`, rounded up (0 once past it).
DWORD RemainingMs(std::chrono::steady_clock::time_point deadline) {
  auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<DWORD>(left.count()) : 0;
}

}  // namespace

DWORD ModalWait(ComThreadData& data, ApartmentImpl* sta, KernelObject** objects,
                const HANDLE* handles, DWORD count, const ModalWaitOptions& options) {
  MessageQueue& queue = CurrentQueue();
  const bool finite = options.timeout_ms != INFINITE;
  // No clock read for an infinite wait (every COM call's): nothing reads the
  // deadline then (an infinite wait never returns WAIT_TIMEOUT).
  const auto deadline = finite ? std::chrono::steady_clock::now() +
                                     std::chrono::milliseconds(options.timeout_ms)
                               : std::chrono::steady_clock::time_point{};
  const bool return_on_input = (options.mwmo_flags & MWMO_INPUTAVAILABLE) != 0;
  const DWORD mwmo_flags = options.mwmo_flags & ~MWMO_INPUTAVAILABLE;
  MessageQueue::Filter com_filter;
  com_filter.hwnd = sta->hwnd();
  // One-way tasks run from the message loop only, as a posted message would.
  com_filter.wparam_mask = kComTaskBit;
  const WaitOptions wait_options{
      .kind = BlockKind::kComCall,
      .target_tid = options.target_tid,
      .spin_peer_cpu = options.spin_peer_cpu,
      .pumps_com = true,
      .target_tid_source = options.pending != nullptr ? &options.pending->executing_tid : nullptr};
  std::optional<int> quit;
  bool woke_for_input = false;
  DWORD result;
  for (;;) {
    const bool served_call =
        PumpModal(queue, data, sta, com_filter, options.dispatch_window_messages, &quit);
    if ((woke_for_input && !served_call) || return_on_input) {
      if (CheckOtherInput(queue, data, options, woke_for_input) && return_on_input) {
        result = WAIT_OBJECT_0 + count;
        break;
      }
    }
    // Rounded up, and re-checked below: the kernel's timeout may end a
    // little early by our clock, and a modal wait never ends early.
    const DWORD remaining = finite ? RemainingMs(deadline) : INFINITE;
    // QS_ALLPOSTMESSAGE too: the COM-window pass above is a filtered
    // retrieval, which clears QS_POSTMESSAGE (as on Windows) for a message it
    // moved in but left queued; without it, a message that arrived during
    // that pass would never wake this wait (nor reach MessagePending). This
    // hung a call whose message filter was to cancel it on such a message.
    DWORD r = queue.MsgWait(objects, handles, count, remaining,
                            QS_POSTMESSAGE | QS_ALLPOSTMESSAGE | QS_SENDMESSAGE, mwmo_flags,
                            wait_options);
    if (r == WAIT_OBJECT_0 + count && (mwmo_flags & MWMO_WAITALL) == 0) {
      woke_for_input = true;
      if (finite && remaining == 0) {
        result = WAIT_TIMEOUT;
        break;
      }
      continue;
    }
    if (r == WAIT_TIMEOUT && remaining != 0 && std::chrono::steady_clock::now() < deadline) {
      continue;
    }
    result = r;
    break;
  }
  if (quit) PostQuitMessage(*quit);
  return result;
}

}  // namespace apartments::internal
