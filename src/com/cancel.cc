// Cancellation of cross-apartment calls: CoEnableCallCancellation,
// CoDisableCallCancellation, CoCancelCall, CoTestCancel, and the shared
// state behind them and behind the modern API's stop tokens and deadlines.
// The channel's side (withdrawing a queued call, the caller's wait) is in
// channel.cc; see cancel.h for the protocol.
#include "com/cancel.h"

#include <memory>
#include <unordered_map>
#include <utility>

#include "apartments/win32_com.h"
#include "base/thread_state.h"
#include "com/apartment_impl.h"

namespace apartments::internal {
namespace {

// Per thread with cancellation enabled at least once: its enable count and
// its current cancellable outgoing call. Entries are found by thread id by
// CoCancelCall; a thread's entry is erased when the thread exits.
struct ThreadCancelEntry {
  int enabled = 0;
  std::shared_ptr<CallCancel> current;
};

std::mutex g_mu;
std::unordered_map<DWORD, ThreadCancelEntry>& Entries() {
  static auto* entries = new std::unordered_map<DWORD, ThreadCancelEntry>();
  return *entries;
}

// Mirrors this thread's entry's `enabled != 0` so that starting a call reads
// no shared state; the destructor erases the entry at thread exit.
struct ThreadCancelLocal {
  bool enabled = false;
  bool has_entry = false;
  DWORD tid = 0;
  ~ThreadCancelLocal() {
    if (!has_entry) return;
    std::lock_guard lock(g_mu);
    Entries().erase(tid);
  }
};
thread_local ThreadCancelLocal t_cancel;

thread_local const ChannelCall* t_incoming = nullptr;

void SignalWake(void* context) { SignalEvent(*static_cast<Event*>(context)); }

}  // namespace

CallCancel::CallCancel() : wake(new Event(std::wstring(), false, false)) {}

CallCancel::~CallCancel() { wake->Release(); }

bool CallCancel::Request(HRESULT why) noexcept {
  HRESULT expected = 0;
  // acq_rel: the winner's earlier writes are visible to the callee's acquire
  // load in requested(); losers change nothing.
  if (!requested_.compare_exchange_strong(expected, why, std::memory_order_acq_rel)) return false;
  callee_stop.request_stop();
  // The event is ours for the object's lifetime; SignalEvent releases, so
  // the waiter that wakes on it sees requested_.
  SignalEvent(*wake);
  return true;
}

void CallCancel::MarkEnded(HRESULT result) {
  {
    auto ending = ending_.Lock();
    ending->ended = true;
    ending->result = result;
  }
  ended_cv_.notify_all();
}

bool CallCancel::WaitEnded(std::chrono::milliseconds timeout, HRESULT* result) {
  auto ending = ending_.Lock();
  if (!ending.WaitFor(ended_cv_, timeout, [&ending] { return ending->ended; })) return false;
  *result = ending->result;
  return true;
}

bool ThreadCancellationEnabled() noexcept { return t_cancel.enabled; }

CancelRegistration::CancelRegistration(std::shared_ptr<CallCancel> cancel) {
  std::lock_guard lock(g_mu);
  ThreadCancelEntry& entry = Entries()[CurrentThreadId()];
  previous_ = std::exchange(entry.current, std::move(cancel));
}

CancelRegistration::~CancelRegistration() {
  std::lock_guard lock(g_mu);
  Entries()[CurrentThreadId()].current = std::move(previous_);
}

ClockWakeRegistration::ClockWakeRegistration(Event* event) : event_(event) {
  AddClockListener(&SignalWake, event_);
}

ClockWakeRegistration::~ClockWakeRegistration() { RemoveClockListener(&SignalWake, event_); }

IncomingCallScope::IncomingCallScope(const ChannelCall* call) noexcept
    : previous_(std::exchange(t_incoming, call)) {}

IncomingCallScope::~IncomingCallScope() { t_incoming = previous_; }

std::stop_token CurrentIncomingStopToken() noexcept {
  const ChannelCall* call = t_incoming;
  if (call == nullptr || call->cancel == nullptr) return std::stop_token();
  return call->cancel->callee_stop.get_token();
}

}  // namespace apartments::internal

using namespace apartments::internal;

extern "C" {

HRESULT WINAPI CoEnableCallCancellation(LPVOID pReserved) {
  if (pReserved != nullptr) return E_INVALIDARG;
  const DWORD tid = CurrentThreadId();
  std::lock_guard lock(g_mu);
  ++Entries()[tid].enabled;
  t_cancel.enabled = true;
  t_cancel.has_entry = true;
  t_cancel.tid = tid;
  return S_OK;
}

HRESULT WINAPI CoDisableCallCancellation(LPVOID pReserved) {
  if (pReserved != nullptr) return E_INVALIDARG;
  std::lock_guard lock(g_mu);
  auto& entries = Entries();
  auto it = entries.find(CurrentThreadId());
  // Windows (Wine's test_call_cancellation, run on Windows): a disable with
  // nothing enabled says CO_E_CANCEL_DISABLED and changes nothing; any other
  // disable undoes one enable and says S_OK, whether or not enables remain.
  if (it == entries.end() || it->second.enabled == 0) return CO_E_CANCEL_DISABLED;
  if (--it->second.enabled == 0) t_cancel.enabled = false;
  return S_OK;
}

HRESULT WINAPI CoCancelCall(DWORD dwThreadId, ULONG ulTimeout) {
  const DWORD tid = dwThreadId != 0 ? dwThreadId : CurrentThreadId();
  std::shared_ptr<CallCancel> cancel;
  {
    std::lock_guard lock(g_mu);
    auto& entries = Entries();
    auto it = entries.find(tid);
    if (it == entries.end() || it->second.enabled == 0) return CO_E_CANCEL_DISABLED;
    cancel = it->second.current;
  }
  // No cancellable call pending on that thread: no cancel object.
  if (!cancel) return E_NOINTERFACE;
  if (!cancel->Request(RPC_E_CALL_CANCELED)) return RPC_E_CALL_CANCELED;
  if (ulTimeout == 0) return S_OK;
  HRESULT result;
  const auto timeout = std::chrono::milliseconds(static_cast<std::uint64_t>(ulTimeout) * 1000);
  if (cancel->WaitEnded(timeout, &result) && result != RPC_E_CALL_CANCELED) {
    // The callee finished with its own result first.
    return RPC_E_CALL_COMPLETE;
  }
  return S_OK;
}

HRESULT WINAPI CoTestCancel(void) {
  const ChannelCall* call = t_incoming;
  if (call == nullptr) return RPC_E_CALL_COMPLETE;  // Not inside an incoming call.
  if (call->cancel != nullptr && call->cancel->requested() != 0) return RPC_E_CALL_CANCELED;
  return RPC_S_CALLPENDING;
}

}  // extern "C"
