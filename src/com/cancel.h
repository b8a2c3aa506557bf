// Cancellation and deadlines of cross-apartment calls: the state a
// cancellable call shares with whoever may cancel it (CoCancelCall from any
// thread, a std::stop_token's callback, the clock reaching a deadline) and
// with its callee (CoTestCancel, the callee's std::stop_token).
//
// A call is cancellable when the caller passed a CallControl (modern API) or
// its thread had call cancellation enabled (CoEnableCallCancellation) when
// the call began. Other calls take the channel's usual path and pay nothing.
//
// State of a cancellable call (the channel's caller side, channel.cc):
//   waiting --cancel requested (any thread: Request) or deadline passed
//           (the caller sees it)--> the caller tries ApartmentImpl::Withdraw:
//       still queued  -> withdrawn: never runs, quota slot freed, the caller
//                        returns RPC_E_CALL_CANCELED / RPC_E_TIMEOUT at once
//       taken         -> the request stays visible to the callee
//                        (CoTestCancel, stop_token); the caller waits for the
//                        callee to return (its arguments live in the caller's
//                        frame), discards its result, and returns
//                        RPC_E_CALL_CANCELED / RPC_E_TIMEOUT
//   A callee that finds the request before it starts does not run the call.
#ifndef APARTMENTS_SRC_COM_CANCEL_H_
#define APARTMENTS_SRC_COM_CANCEL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>

#include "apartments/clock.h"
#include "apartments/win32_types.h"
#include "base/guarded.h"
#include "kernel/kernel.h"

namespace apartments::internal {

struct ChannelCall;

// What the caller of a cancellable call asks for. Both members optional.
struct CallControl {
  std::stop_token stop;                      // stop requested: cancel
  std::optional<Clock::TimePoint> deadline;  // a time point of GetClock()
};

// Shared by the caller (owner; lives for the whole call), the callee, and
// cancellers that hold a std::shared_ptr to it (CoCancelCall).
struct CallCancel {
  CallCancel();
  ~CallCancel();
  CallCancel(const CallCancel&) = delete;
  CallCancel& operator=(const CallCancel&) = delete;

  // Requests cancellation with `why` (RPC_E_CALL_CANCELED or RPC_E_TIMEOUT):
  // the first request wins and returns true. Wakes the waiting caller and
  // requests stop on the callee's token. Any thread.
  // Memory ordering: a callee that reads requested() != 0 (acquire) sees
  // everything the requester wrote before.
  bool Request(HRESULT why) noexcept;
  HRESULT requested() const noexcept { return requested_.load(std::memory_order_acquire); }

  // Marks the call ended with `result` (caller, once), waking CoCancelCall
  // waiters. WaitEnded: waits up to `timeout` for that; true with *result
  // when it ended.
  void MarkEnded(HRESULT result);
  bool WaitEnded(std::chrono::milliseconds timeout, HRESULT* result);

  // The caller's wake event (auto-reset), signaled by Request and by the
  // clock advancing (FakeClock) while the caller waits for a deadline.
  Event* wake;
  std::stop_source callee_stop;
  // The call's deadline (a GetClock() time point), set before the call is
  // queued and read-only afterwards: the callee refuses to start a call past
  // it, as the caller would withdraw it.
  std::optional<Clock::TimePoint> deadline;

 private:
  std::atomic<HRESULT> requested_{0};
  // Whether the call ended (MarkEnded), and its result.
  struct Ending {
    bool ended = false;
    HRESULT result = 0;
  };
  Guarded<Ending> ending_;
  std::condition_variable ended_cv_;  // Waited on with ending_'s lock.
};

// Whether calls the current thread starts now are cancellable with
// CoCancelCall (CoEnableCallCancellation). Cheap: a thread-local read.
bool ThreadCancellationEnabled() noexcept;
// Publishes `cancel` as the calling thread's current cancellable outgoing
// call for CoCancelCall (restoring the previous one, for nested calls, when
// the scope ends). Only for calls made with cancellation enabled.
class CancelRegistration {
 public:
  explicit CancelRegistration(std::shared_ptr<CallCancel> cancel);
  ~CancelRegistration();
  CancelRegistration(const CancelRegistration&) = delete;
  CancelRegistration& operator=(const CancelRegistration&) = delete;

 private:
  std::shared_ptr<CallCancel> previous_;
};

// While alive, FakeClock::Advance (any clock change reported through
// internal::NotifyClockAdvanced) signals `event`. Any thread.
class ClockWakeRegistration {
 public:
  explicit ClockWakeRegistration(Event* event);
  ~ClockWakeRegistration();
  ClockWakeRegistration(const ClockWakeRegistration&) = delete;
  ClockWakeRegistration& operator=(const ClockWakeRegistration&) = delete;

 private:
  Event* event_;
};

// The callee side: the incoming call the current thread runs (set by
// ServeCall for the duration of the call), for CoTestCancel and the modern
// API's stop token.
class IncomingCallScope {
 public:
  explicit IncomingCallScope(const ChannelCall* call) noexcept;
  ~IncomingCallScope();
  IncomingCallScope(const IncomingCallScope&) = delete;
  IncomingCallScope& operator=(const IncomingCallScope&) = delete;

 private:
  const ChannelCall* previous_;
};

// The stop token of the incoming call the current thread runs (never
// stop-possible when it is not cancellable, or outside a call).
std::stop_token CurrentIncomingStopToken() noexcept;

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_CANCEL_H_
