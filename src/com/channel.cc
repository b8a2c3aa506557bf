// The channel's caller side: InvokeInApartment (the path of one call, in
// named steps), CoWaitForMultipleHandles, CoRegisterMessageFilter, and the
// explanations the channel attaches to every call it fails. The callee's side
// (serving a call, the STA's modal loop) is in serve_call.cc.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "apartments/message_queue.h"
#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "base/check.h"
#include "base/thread_state.h"
#include "com/apartment_impl.h"
#include "com/cancel.h"
#include "com/channel_explain.h"
#include "com/com_thread.h"
#include "com/error_info.h"
#include "kernel/handle_history.h"
#include "message/pump_filter.h"
#include "message/queue.h"

namespace apartments::internal {
namespace {

constexpr const char* kSource = kChannelSource;

std::atomic<void (*)(HANDLE)> g_reply_event_hook{nullptr};

// Takes a reply event from the thread's pool (or makes one) and resolves it.
// False when the handle is not open (see SetReplyEventHookForTesting); the
// handle is then dropped from the pool.
bool AcquireReplyEvent(ComThreadData& data, HANDLE* handle, ObjectRef* ref) {
  HANDLE h;
  if (!data.reply_events.empty()) {
    h = data.reply_events.back();
    data.reply_events.pop_back();
  } else {
    h = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  }
  if (auto hook = g_reply_event_hook.load(std::memory_order_acquire)) hook(h);
  *handle = h;
  *ref = ResolveHandleAs(h, ObjectKind::kEvent);
  return static_cast<bool>(*ref);
}

// Restores the thread's outgoing-call stack and returns the reply event to
// the pool when the call ends, however it ends.
class OutgoingScope {
 public:
  OutgoingScope(ComThreadData& data, ChannelCall* call, HANDLE reply)
      : data_(data), call_(call), reply_(reply) {
    call_->outer = data_.outgoing;
    data_.outgoing = call_;
  }
  ~OutgoingScope() {
    data_.outgoing = call_->outer;
    data_.reply_events.push_back(reply_);
  }
  OutgoingScope(const OutgoingScope&) = delete;
  OutgoingScope& operator=(const OutgoingScope&) = delete;

 private:
  ComThreadData& data_;
  ChannelCall* call_;
  HANDLE reply_;
};

HRESULT RunDirect(ApartmentImpl* target, std::function<HRESULT()>& invoke) {
  try {
    return invoke();
  } catch (const std::exception& e) {
    ExplainServerFault(target, e.what());
  } catch (...) {
    if (HandlingForcedUnwind()) throw;
    ExplainServerFault(target, "an exception that is not a std::exception");
  }
  return RPC_E_SERVERFAULT;
}

// The calling thread leaves InvokeImpl's frame, which holds `call`, by an
// exception or a forced unwind (ExitThread inside a call it served in its
// modal loop, or in its message filter) before `call` completed. The record
// must outlive every use by the target: withdrawn while still queued, the
// target never touches it again; otherwise wait (without pumping: this
// thread is unwinding) for its one completion. When the thread is exiting
// (`forced`), its STA (`own_sta`, may be null) is shut down first, as its
// exit hook would a moment later: the callee's calls back into it (a
// release, a retry) then fail at once instead of waiting for a thread that
// no longer pumps while it waits for them.
void AbandonOnUnwind(ApartmentImpl* target, ChannelCall* call, KernelObject* reply,
                     HANDLE reply_handle, DWORD target_tid, ApartmentImpl* own_sta, bool forced) {
  if (forced && own_sta != nullptr) own_sta->Shutdown();
  if (target->Withdraw(call) == ApartmentImpl::Withdrawal::kWithdrawn) return;
  KernelObject* objects[1] = {reply};
  HANDLE handles[1] = {reply_handle};
  for (;;) {
    const DWORD r = WaitForObjects(objects, handles, 1, /*wait_all=*/false, INFINITE,
                                   /*alertable=*/false,
                                   WaitOptions{.kind = BlockKind::kComCall,
                                               .target_tid = target_tid,
                                               .target_tid_source = &call->executing_tid});
    if (r == WAIT_OBJECT_0) break;
  }
  // Nobody reads the outcome: drop what the callee handed over.
  if (IErrorInfo* info = std::exchange(call->error_info, nullptr)) info->Release();
}

}  // namespace

void SetReplyEventHookForTesting(void (*hook)(HANDLE reply_event)) {
  g_reply_event_hook.store(hook, std::memory_order_release);
}

namespace {

struct RequestCancelOnStop {
  CallCancel* cancel;
  void operator()() const noexcept { cancel->Request(RPC_E_CALL_CANCELED); }
};

// How InvokeImpl makes a call; name the fields that differ from the defaults.
struct InvokeOptions {
  // The call's cancellation state (com/cancel.h); null: not cancellable.
  CallCancel* cancel = nullptr;
  // When the call is cancelled with RPC_E_TIMEOUT (requires `cancel`).
  std::optional<Clock::TimePoint> deadline = std::nullopt;
  // A call that completes after cancellation was requested returns the
  // cancellation error (the modern API: the value may be partial) rather than
  // the callee's HRESULT (Win32: the callee decides, e.g. by returning
  // RPC_E_CALL_CANCELED after CoTestCancel, as on Windows).
  bool discard_on_cancel = false;
  // For the target's message filter (InvokeInApartment's `description`).
  const CallDescription* description = nullptr;
  // The runtime's own call (InvokeRuntimeInApartment).
  bool runtime = false;
};

HRESULT InvokeImpl(const ApartmentRef& target_ref, std::function<HRESULT()>& invoke,
                   const InvokeOptions& options);

}  // namespace

HRESULT InvokeRuntimeInApartment(const ApartmentRef& target, std::function<HRESULT()> invoke) {
  return InvokeImpl(target, invoke, InvokeOptions{.runtime = true});
}

HRESULT InvokeInApartment(const ApartmentRef& target_ref, std::function<HRESULT()> invoke,
                          const CallControl* control, const CallDescription* description) {
  const bool win32_cancellable = ThreadCancellationEnabled();
  // A message filter may answer PENDINGMSG_CANCELCALL during the wait.
  const ComThreadData* thread_data = ComThreadDataIfAny();
  const bool filter_cancellable = thread_data != nullptr && thread_data->message_filter != nullptr;
  if (control == nullptr && !win32_cancellable && !filter_cancellable) {
    return InvokeImpl(target_ref, invoke, InvokeOptions{.description = description});
  }
  // A cancellable call (com/cancel.h): its state, published to CoCancelCall
  // when the thread enabled cancellation, requested by the caller's stop
  // token, and woken when a test clock advances towards its deadline.
  auto cancel = std::make_shared<CallCancel>();
  std::optional<CancelRegistration> registration;
  if (win32_cancellable) registration.emplace(cancel);
  std::optional<std::stop_callback<RequestCancelOnStop>> on_stop;
  std::optional<ClockWakeRegistration> on_clock;
  InvokeOptions options{.cancel = cancel.get(),
                        .discard_on_cancel = control != nullptr,
                        .description = description};
  if (control != nullptr) {
    if (control->stop.stop_possible()) {
      on_stop.emplace(control->stop, RequestCancelOnStop{cancel.get()});
    }
    if (control->deadline) {
      options.deadline = control->deadline;
      cancel->deadline = control->deadline;
      on_clock.emplace(cancel->wake);
    }
  }
  const HRESULT hr = InvokeImpl(target_ref, invoke, options);
  cancel->MarkEnded(hr);
  return hr;
}

namespace {

// InvokeImpl's steps, in the order a call takes them: CheckCaller and
// CheckNotInInputSyncCall refuse a call that cannot be made; then, for each
// attempt, Enqueue posts it, AwaitReply waits for it (in the modal loop on an
// STA) or withdraws it on cancellation, TakeOutcome turns its outcome into
// the caller's result, and RetryRejected asks the caller's message filter
// whether to try again after the callee's filter rejected it. The steps on
// every call's path are inlined into InvokeImpl (APARTMENTS_CHANNEL_STEP): the call costs
// what it did as one function.
#define APARTMENTS_CHANNEL_STEP [[gnu::always_inline]] inline

// Refuses a call from a thread in no apartment (unless it is the runtime's
// own) or into an apartment that has shut down; S_OK otherwise.
APARTMENTS_CHANNEL_STEP HRESULT CheckCaller(ApartmentImpl* target, ComThreadData& data,
                                            bool runtime) {
  // The runtime's own calls are also made from a thread in no apartment: a
  // client apartment ending (its thread's apartment already let go of)
  // releases its proxies' objects synchronously, as Windows does at
  // CoUninitialize and in DLL_THREAD_DETACH (Wine's marshal tests,
  // test_no_couninitialize_client); the wait does not pump then.
  if (!runtime && CurrentApartmentRaw(&data) == nullptr) {
    SetCallErrorInfo(CO_E_NOTINITIALIZED,
                     "A call into " + target->Describe() + " from " +
                         ThreadText(CurrentThreadId()) +
                         " failed with CO_E_NOTINITIALIZED: the calling thread is in no apartment "
                         "(it never called CoInitializeEx, or uninitialized, and no MTA exists "
                         "for it to be in implicitly).",
                     kSource);
    return CO_E_NOTINITIALIZED;
  }
  if (target->IsShutDown()) {
    ExplainDisconnected(target, DisconnectStage::kBeforeCall);
    return RPC_E_DISCONNECTED;
  }
  return S_OK;
}

// Refuses a call made inside a message sent to this thread with SendMessage
// that it has not replied to (an input-synchronous call); S_OK otherwise.
APARTMENTS_CHANNEL_STEP HRESULT CheckNotInInputSyncCall(ApartmentImpl* target) {
  MessageQueue* queue = CurrentQueueIfAny();
  if (queue == nullptr) return S_OK;
  SentMessage* sent = queue->current_received();
  if (sent == nullptr || sent->replied) return S_OK;
  SetCallErrorInfo(
      RPC_E_CANTCALLOUT_ININPUTSYNCCALL,
      "The call from " + ThreadText(CurrentThreadId()) + " into " + target->Describe() +
          " was refused with RPC_E_CANTCALLOUT_ININPUTSYNCCALL: this thread is inside a "
          "message that " + ThreadText(sent->sender_tid) +
          " sent it with SendMessage (an input-synchronous call), and that thread stays "
          "blocked until the message returns. Post a message to yourself and make the call "
          "from there, or call ReplyMessage first. The call never ran.",
      kSource);
  return RPC_E_CANTCALLOUT_ININPUTSYNCCALL;
}

// One outgoing call on the caller's side, across its attempts.
struct OutgoingCall {
  ApartmentImpl* target;
  ComThreadData& data;
  ApartmentImpl* sta;  // the caller's own STA (kept alive by InvokeImpl), or null
  CallCancel* cancel;  // null when the call is not cancellable
  const std::optional<Clock::TimePoint>& deadline;
  bool discard_on_cancel;
  ChannelCall& call;
  HANDLE reply_handle;
  KernelObject* reply;
  // What the wait is on: the reply event, and for a cancellable call also its
  // wake event (com/cancel.h) until the cancellation is handled (count 2).
  // The arrays are InvokeImpl's locals, so that this struct, which nothing
  // outside InvokeImpl sees, lives in registers.
  KernelObject** objects;
  HANDLE* handles;
  DWORD count;
  // Set by Enqueue for each attempt: whom the wait is for, and where to spin.
  DWORD target_tid = 0;
  int spin_peer_cpu = -1;
};

// Posts the call to its target: S_OK, or the explained failure.
APARTMENTS_CHANNEL_STEP HRESULT Enqueue(OutgoingCall& c) {
  c.call.outcome = CallOutcome::kPending;
  c.call.executing_tid.store(0, std::memory_order_relaxed);
  HRESULT hr = c.target->Enqueue(&c.call);
  if (hr == HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA)) {
    ExplainQueueFull(c.target, Work::kCall);
    return RPC_E_SYS_CALL_FAILED;
  }
  if (FAILED(hr)) {
    ExplainDisconnected(c.target, DisconnectStage::kBeforeCall);
    return hr;
  }
  const bool sta_target = c.target->kind() == ApartmentKind::kSta;
  c.target_tid =
      sta_target ? c.target->thread_id() : c.call.executing_tid.load(std::memory_order_relaxed);
  // Spin-then-sleep on the reply (base/spin.h), only when the callee's
  // thread last went idle on another CPU. In the modal loop the spin also
  // ends at once when input arrives (the queue's own event is among the
  // objects), so incoming calls and sent messages are served as promptly.
  c.spin_peer_cpu = sta_target ? c.target->owner_cpu() : -1;
  return S_OK;
}

// A cancellable call's check before each wait: requests cancellation at the
// deadline, and withdraws the call when cancellation was requested while it
// is still queued (returns the reason, explained, with *withdrawn set). A
// call the target already took keeps waiting for its reply (count 1).
// Otherwise S_OK, with *timeout_ms the time left to the deadline.
HRESULT CheckCancel(OutgoingCall& c, DWORD* timeout_ms, bool* withdrawn) {
  if (c.deadline) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(*c.deadline - GetClock().Now());
    if (left.count() <= 0) {
      c.cancel->Request(RPC_E_TIMEOUT);
    } else {
      // Re-checked on every wakeup: a test's clock wakes us as it advances;
      // the real clock, by this timeout.
      *timeout_ms = static_cast<DWORD>(
          std::min<std::chrono::milliseconds::rep>(left.count(), INFINITE - 1));
    }
  }
  if (const HRESULT why = c.cancel->requested(); why != 0) {
    if (c.target->Withdraw(&c.call) == ApartmentImpl::Withdrawal::kWithdrawn) {
      *withdrawn = true;
      ExplainCancelled(c.target, why, CancelStage::kQueued, S_OK);
      return why;
    }
    // Taken by the target: the callee sees the request; wait for it.
    c.count = 1;
    *timeout_ms = INFINITE;
  }
  return S_OK;
}

// Waits until the call's reply event is signaled (S_OK), or until the call
// is withdrawn on cancellation (the reason, explained). An exception or a
// forced unwind through the wait abandons the call safely (AbandonOnUnwind).
APARTMENTS_CHANNEL_STEP HRESULT AwaitReply(OutgoingCall& c) {
  // No cost on the path that does not throw (table-driven unwinding).
  bool withdrawn = false;
  try {
    for (;;) {
      DWORD timeout_ms = INFINITE;
      if (c.count == 2) {
        if (const HRESULT why = CheckCancel(c, &timeout_ms, &withdrawn); why != S_OK) return why;
      }
      DWORD r;
      if (c.sta != nullptr) {
        r = ModalWait(c.data, c.sta, c.objects, c.handles, c.count,
                      ModalWaitOptions{.timeout_ms = timeout_ms,
                                       .pending = &c.call,
                                       .target_tid = c.target_tid,
                                       .spin_peer_cpu = c.spin_peer_cpu});
      } else {
        r = WaitForObjects(c.objects, c.handles, c.count, /*wait_all=*/false, timeout_ms,
                           /*alertable=*/false,
                           WaitOptions{.kind = BlockKind::kComCall,
                                       .target_tid = c.target_tid,
                                       .spin_peer_cpu = c.spin_peer_cpu,
                                       .target_tid_source = &c.call.executing_tid});
      }
      if (r == WAIT_OBJECT_0) return S_OK;
    }
  } catch (...) {
    if (!withdrawn) {
      AbandonOnUnwind(c.target, &c.call, c.reply, c.reply_handle, c.target_tid, c.sta,
                      HandlingForcedUnwind());
    }
    throw;
  }
}

// The result of a completed call (the callee's, or the channel's explained
// failure); nullopt when the callee's message filter rejected it and the
// caller may retry.
APARTMENTS_CHANNEL_STEP std::optional<HRESULT> TakeOutcome(OutgoingCall& c) {
  ChannelCall& call = c.call;
  switch (call.outcome) {
    case CallOutcome::kDone:
      // The callee's explanation of its failure (a later explanation of the
      // channel's own replaces it).
      if (IErrorInfo* transported = std::exchange(call.error_info, nullptr)) {
        if (IErrorInfo* old = ExchangeThreadErrorInfo(transported)) old->Release();
      }
      if (c.cancel != nullptr) {
        if (const HRESULT why = c.cancel->requested(); why != 0 && c.discard_on_cancel) {
          ExplainCancelled(c.target, why, CancelStage::kRunning, call.result);
          return why;
        }
        if (call.result == RPC_E_CALL_CANCELED && !call.threw) {
          SetCallErrorInfo(RPC_E_CALL_CANCELED,
                           "The call into " + c.target->Describe() +
                               " was cancelled while it was running there: the callee saw the "
                               "request (CoTestCancel) and returned RPC_E_CALL_CANCELED.",
                           kSource);
        }
      }
      if (call.threw) ExplainServerFault(c.target, call.fault);
      return call.result;
    case CallOutcome::kCancelled:
      ExplainCancelled(c.target, call.result, CancelStage::kBeforeStart, S_OK);
      return call.result;
    case CallOutcome::kDisconnected:
      ExplainDisconnected(c.target, DisconnectStage::kWhileQueued);
      return RPC_E_DISCONNECTED;
    case CallOutcome::kThreadExited:
      ExplainDisconnected(c.target, DisconnectStage::kThreadExited, Work::kCall, &call);
      return RPC_E_DISCONNECTED;
    case CallOutcome::kRejected:
      if (c.cancel != nullptr) {
        if (const HRESULT why = c.cancel->requested(); why != 0) {
          ExplainCancelled(c.target, why, CancelStage::kBeforeStart, S_OK);
          return why;
        }
      }
      return std::nullopt;
    case CallOutcome::kPending:
      APARTMENTS_CHECK_VALUES(false, "call woken while pending", call.caller_tid, c.target_tid);
  }
  return std::nullopt;
}

// Rejected by the callee's message filter: asks ours (RetryRejectedCall) and
// waits as it says before the next attempt (S_OK), or gives up with
// RPC_E_CALL_REJECTED, explained.
HRESULT RetryRejected(OutgoingCall& c) {
  IMessageFilter* filter = c.sta != nullptr ? c.data.message_filter : nullptr;
  const DWORD answer =
      filter != nullptr
          ? filter->RetryRejectedCall(
                reinterpret_cast<HTASK>(static_cast<std::uintptr_t>(c.target->thread_id())),
                GetTickCount() - c.call.posted_tick, c.call.reject_type)
          : static_cast<DWORD>(-1);
  if (answer == static_cast<DWORD>(-1)) {
    SetCallErrorInfo(
        RPC_E_CALL_REJECTED,
        "The call into " + c.target->Describe() + " failed with RPC_E_CALL_REJECTED: the " +
            "callee's message filter answered " +
            (c.call.reject_type == SERVERCALL_REJECTED ? "SERVERCALL_REJECTED"
                                                       : "SERVERCALL_RETRYLATER") +
            " and the caller " +
            (filter != nullptr ? "'s RetryRejectedCall returned -1 (give up)"
                               : " has no message filter to retry it") +
            ". The call never ran.",
        kSource);
    return RPC_E_CALL_REJECTED;
  }
  if (answer >= 100) {
    if (c.sta != nullptr) {
      ModalWait(c.data, c.sta, nullptr, nullptr, 0,
                ModalWaitOptions{.timeout_ms = answer,
                                 .pending = &c.call,
                                 .target_tid = c.target->thread_id()});
    } else {
      Sleep(answer);
    }
  }
  return S_OK;
}

HRESULT InvokeImpl(const ApartmentRef& target_ref, std::function<HRESULT()>& invoke,
                   const InvokeOptions& options) {
  if (!target_ref) return E_INVALIDARG;
  CallCancel* const cancel = options.cancel;
  const bool runtime = options.runtime;
  auto* target = static_cast<ApartmentImpl*>(target_ref.get());
  ComThreadData& data = CurrentComThreadData();
  if (HRESULT hr = CheckCaller(target, data, runtime); FAILED(hr)) return hr;
  if (target->IsCurrent()) return RunDirect(target, invoke);
  if (HRESULT hr = CheckNotInInputSyncCall(target); FAILED(hr)) return hr;
  // Keep our own STA alive across the wait: a call served in the modal loop
  // may uninitialize it.
  ApartmentRef self_sta;
  if (CurrentSta(&data) != nullptr) self_sta = data.apartment;

  HANDLE reply_handle;
  ObjectRef reply_ref;
  if (!AcquireReplyEvent(data, &reply_handle, &reply_ref)) {
    ExplainReplyEventInvalid(target, reply_handle);
    return RPC_E_SYS_CALL_FAILED;
  }
  ChannelCall call;
  call.invoke = &invoke;
  call.causality = CurrentCausality(data);
  call.caller_tid = CurrentThreadId();
  call.posted_tick = GetTickCount();
  call.reply = static_cast<Event*>(reply_ref.get());
  call.target = target;
  call.cancel = cancel;
  call.runtime = runtime;
  call.description = options.description;
  OutgoingScope scope(data, &call, reply_handle);
  KernelObject* objects[2] = {reply_ref.get(), cancel != nullptr ? cancel->wake : nullptr};
  HANDLE handles[2] = {reply_handle, nullptr};
  OutgoingCall c{.target = target,
                 .data = data,
                 .sta = static_cast<ApartmentImpl*>(self_sta.get()),
                 .cancel = cancel,
                 .deadline = options.deadline,
                 .discard_on_cancel = options.discard_on_cancel,
                 .call = call,
                 .reply_handle = reply_handle,
                 .reply = reply_ref.get(),
                 .objects = objects,
                 .handles = handles,
                 .count = cancel != nullptr ? 2u : 1u};
  for (;;) {
    if (HRESULT hr = Enqueue(c); FAILED(hr)) return hr;
    if (HRESULT hr = AwaitReply(c); hr != S_OK) return hr;
    if (std::optional<HRESULT> result = TakeOutcome(c)) return *result;
    if (HRESULT hr = RetryRejected(c); FAILED(hr)) return hr;
  }
}

}  // namespace
}  // namespace apartments::internal

using namespace apartments::internal;

extern "C" {

HRESULT WINAPI CoWaitForMultipleHandles(DWORD dwFlags, DWORD dwTimeout, ULONG cHandles,
                                        LPHANDLE pHandles, LPDWORD lpdwindex) {
  constexpr DWORD kValidFlags = COWAIT_WAITALL | COWAIT_ALERTABLE | COWAIT_INPUTAVAILABLE |
                                COWAIT_DISPATCH_CALLS | COWAIT_DISPATCH_WINDOW_MESSAGES;
  if (lpdwindex == nullptr) return E_INVALIDARG;
  *lpdwindex = 0;
  if (pHandles == nullptr || (dwFlags & ~kValidFlags) != 0) return E_INVALIDARG;
  if (cHandles == 0) return RPC_E_NO_SYNC;
  if (cHandles > MAXIMUM_WAIT_OBJECTS - 1) return E_INVALIDARG;
  ObjectRef refs[MAXIMUM_WAIT_OBJECTS];
  KernelObject* objects[MAXIMUM_WAIT_OBJECTS];
  for (ULONG i = 0; i < cHandles; ++i) {
    refs[i] = ResolveHandle(pHandles[i]);
    if (!refs[i]) {
      // Same text in the last error explanation and the COM error info.
      SetCallErrorInfo(HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE),
                       ExplainInvalidHandle("CoWaitForMultipleHandles", pHandles[i], nullptr, i,
                                            cHandles),
                       kSource);
      return HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE);
    }
    objects[i] = refs[i].get();
  }
  const bool wait_all = (dwFlags & COWAIT_WAITALL) != 0;
  if (wait_all) {
    for (ULONG i = 0; i < cHandles; ++i) {
      for (ULONG j = 0; j < i; ++j) {
        if (objects[i] == objects[j]) return E_INVALIDARG;
      }
    }
  }
  ComThreadData* data = ComThreadDataIfAny();
  ApartmentRef sta_ref;
  if (CurrentSta(data) != nullptr) sta_ref = data->apartment;
  DWORD r;
  if (sta_ref) {
    r = CoWaitInSta(*data, static_cast<ApartmentImpl*>(sta_ref.get()), objects, pHandles,
                    cHandles, dwTimeout, dwFlags);
  } else {
    r = WaitForObjects(objects, pHandles, cHandles, wait_all, dwTimeout,
                       (dwFlags & COWAIT_ALERTABLE) != 0,
                       WaitOptions{.kind = BlockKind::kComCall});
  }
  if (r == WAIT_TIMEOUT) return RPC_S_CALLPENDING;
  *lpdwindex = r;
  return S_OK;
}

HRESULT WINAPI CoRegisterMessageFilter(LPMESSAGEFILTER lpMessageFilter,
                                       LPMESSAGEFILTER* lplpMessageFilter) {
  ComThreadData* data = ComThreadDataIfAny();
  if (CurrentSta(data) == nullptr) {
    // Windows leaves *lplpMessageFilter untouched on failure, and answers
    // CO_E_NOT_SUPPORTED in the MTA and on a thread that never initialized
    // COM alike (Wine's ole32 tests, which run on Windows, check both).
    return CO_E_NOT_SUPPORTED;
  }
  if (lpMessageFilter != nullptr) lpMessageFilter->AddRef();
  IMessageFilter* previous = std::exchange(data->message_filter, lpMessageFilter);
  if (lplpMessageFilter != nullptr) {
    *lplpMessageFilter = previous;
  } else if (previous != nullptr) {
    previous->Release();
  }
  return S_OK;
}

}  // extern "C"
