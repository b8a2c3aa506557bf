// The channel's one-way posts and the withdrawal of a cancellable co_await
// CallAsync (see channel_post.h).
//
// Withdrawal. Three parties may end a queued withdrawable task, and its
// stage (QueueEntry::Stage, under the apartment's lock) lets exactly one of
// them:
//   the apartment thread, dispatching its message or draining it at
//     shutdown: TakeDispatched / DropQueuedTasks: kQueued -> kTaken, then
//     Run() or Drop();
//   a withdrawer (the std::stop_callback, on the thread requesting the stop;
//     the deadline thread, com/deadline_timer.h): ApartmentImpl::Withdraw:
//     kQueued -> kWithdrawn, the message removed from the queue or left as a
//     tombstone (message/withdrawn_posts.h), then Withdrawn() outside the
//     lock;
//   the losers see another stage and touch nothing more.
// A withdrawn task's memory may be freed at once (the coroutine resumes and
// ends its awaiter), so the apartment thread checks a retrieved message
// against the tombstones before it reads the task, under the same lock.
// A withdrawer's callbacks run only while the awaiter's AsyncCancelWatch
// exists, and destroying the watch waits for one running elsewhere, so a
// withdrawer that lost still reads a live task. The watch is armed before the
// post, so a request that comes first finds kIdle: it marks the task
// kCancelled, and Enqueue then refuses it with its error instead of queuing
// a task nobody would withdraw.
#include "com/channel_post.h"

#include <optional>
#include <stop_token>
#include <utility>

#include "apartments/win32_errors.h"
#include "com/apartment_impl.h"
#include "com/channel_explain.h"
#include "com/deadline_timer.h"
#include "com/error_info.h"

namespace apartments::internal {
namespace {

ApartmentImpl* Impl(const ApartmentRef& target) {
  return static_cast<ApartmentImpl*>(target.get());
}

// Explains why `target` refused a task (`hr`, from Enqueue or PostTask); the
// task stays with its poster. Returns the error the poster returns.
[[gnu::noinline]] HRESULT Refused(ApartmentImpl* target, HRESULT hr, Work work) {
  if (hr == HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA)) {
    ExplainQueueFull(target, work);
    return RPC_E_SYS_CALL_FAILED;
  }
  if (hr == RPC_E_CALL_CANCELED || hr == RPC_E_TIMEOUT) {
    // A withdrawer came first (Stage::kCancelled).
    SetCallErrorInfo(hr, CancelledText(target, hr, CancelStage::kBeforeQueued, work),
                     kChannelSource);
    return hr;
  }
  ExplainDisconnected(target, DisconnectStage::kBeforeCall, work);
  return RPC_E_DISCONNECTED;
}

}  // namespace

// The cancellation sources of one cancellable co_await CallAsync, armed for
// as long as its awaiter waits (see the file comment).
class AsyncCancelWatch {
 public:
  AsyncCancelWatch(ApartmentImpl* target, WithdrawableTask* task) : target_(target), task_(task) {}

  // Either callback may run at once, on this thread (a stop already
  // requested) or the deadline thread.
  void Arm(const CallControl& control) {
    if (control.deadline) deadline_.Arm(*control.deadline, &OnDeadline, this);
    if (control.stop.stop_possible()) stop_.emplace(control.stop, OnStop{this});
  }

 private:
  struct OnStop {
    void operator()() const noexcept { watch->Fire(RPC_E_CALL_CANCELED, ResumedOn::kStopRequester); }
    AsyncCancelWatch* watch;
  };
  static void OnDeadline(void* watch) {
    static_cast<AsyncCancelWatch*>(watch)->Fire(RPC_E_TIMEOUT, ResumedOn::kDeadlineThread);
  }
  // Ends the task with `why` if it is still queued. May destroy this watch
  // from inside its own callback (Withdrawn() resumes the coroutine, which
  // ends the awaiter): std::stop_callback and DeadlineTimer both allow it.
  // Nothing after it in either callback.
  void Fire(HRESULT why, ResumedOn resumed_on) noexcept {
    if (target_->Withdraw(task_, why) != ApartmentImpl::Withdrawal::kWithdrawn) return;
    // Ours alone now: the apartment thread will not touch the task.
    task_->Withdrawn(
        Error{why, CancelledText(target_, why, CancelStage::kQueued, Work::kAsyncCall, S_OK,
                                 resumed_on)});
  }

  ApartmentImpl* const target_;    // Kept alive by the awaiter.
  WithdrawableTask* const task_;   // A member of the awaiter.
  DeadlineTimer deadline_;
  // Declared last, so deregistered first.
  std::optional<std::stop_callback<OnStop>> stop_;
};

void AsyncCancelWatchDeleter::operator()(AsyncCancelWatch* watch) const noexcept { delete watch; }

HRESULT PostTask(const ApartmentRef& target, PostedTask* task) {
  ApartmentImpl* const impl = Impl(target);
  const HRESULT hr = impl->PostTask(task);
  if (__builtin_expect(hr == S_OK, 1)) return S_OK;  // Nothing of `task` from here on.
  return Refused(impl, hr, Work::kPost);
}

void DiscardRetrieved(const ApartmentRef& target, const MSG& msg) {
  Impl(target)->DiscardRetrieved(msg);
}

HRESULT PostWithdrawableTask(const ApartmentRef& target_ref, WithdrawableTask* task,
                             const CallControl& control, AsyncCancelWatchPtr* watch) {
  ApartmentImpl* const target = Impl(target_ref);
  // An awaiter awaited again still holds its first watch: end it (waiting for
  // its callbacks) so that nothing is armed and no other thread reads the
  // stage while it is reset.
  watch->reset();
  task->stage = QueueEntry::Stage::kIdle;
  task->cancelled = 0;
  HRESULT why = 0;
  if (control.stop.stop_requested()) {
    why = RPC_E_CALL_CANCELED;
  } else if (control.deadline && GetClock().Now() >= *control.deadline) {
    why = RPC_E_TIMEOUT;
  }
  if (why != 0) {
    SetCallErrorInfo(why, CancelledText(target, why, CancelStage::kBeforeQueued, Work::kAsyncCall),
                     kChannelSource);
    return why;
  }
  watch->reset(new AsyncCancelWatch(target, task));
  (*watch)->Arm(control);
  const HRESULT hr = target->Enqueue(task);
  // Queued: the task may have ended already; nothing of it, `control` or
  // `watch` from here on.
  if (hr == S_OK) return hr;
  // Not queued: nothing to withdraw. Waits for a callback running on another
  // thread (it found the task kIdle or kCancelled and changed nothing else).
  watch->reset();
  return Refused(target, hr, Work::kAsyncCall);
}

void DropQueuedTasks(const ApartmentRef& target) { Impl(target)->DropQueuedTasks(); }

std::string DroppedTaskText(const ApartmentRef& target) {
  return DisconnectedText(Impl(target), DisconnectStage::kWhileQueued, Work::kPost);
}

void ExplainShutDownBeforeCall(const ApartmentRef& target) {
  ExplainDisconnected(Impl(target), DisconnectStage::kBeforeCall, Work::kCall);
}

}  // namespace apartments::internal
