// The channel's one-way posts: an application's task (the modern API's
// Apartment::Post, CallFuture, Schedule and CallAsync) queued to an STA
// through the same machine as a call (ApartmentImpl::Enqueue: the apartment's
// queue of entries, its window's one message, the posted-message quota,
// withdrawal with tombstones, the teardown), failing with the channel's
// explanations (channel_explain.h). A cancellable co_await CallAsync's task
// is withdrawn while still queued when its stop token is requested or its
// deadline passes (AsyncCancelWatch, with a DeadlineTimer).
//
// The runtime's own one-way work (PostRuntimeWork, com/apartment.h) is the
// same machine's third kind of entry.
#ifndef APARTMENTS_SRC_COM_CHANNEL_POST_H_
#define APARTMENTS_SRC_COM_CHANNEL_POST_H_

#include <string>

#include "apartments/apartment.h"
#include "apartments/win32_message.h"
#include "com/apartment.h"
#include "com/cancel.h"

namespace apartments::internal {

// Queues `task` on `target` (an STA), one-way. Any thread, including the
// apartment's own. S_OK: queued, and exactly one of Run() (from the thread's
// message loop, never inside a modal wait) or Drop() (its shutdown) follows.
// Otherwise `task` was not queued and the caller still owns it, and the
// calling thread's error info says why: RPC_E_SYS_CALL_FAILED (the queue is
// at the posted-message quota), RPC_E_DISCONNECTED (shut down).
// Memory ordering: writes before the post are visible to Run().
HRESULT PostTask(const ApartmentRef& target, PostedTask* task);

// Queues a cancellable `task` and arms `*watch` to withdraw it when
// `control.stop` is requested or `control.deadline` passes while it is still
// queued (then Withdrawn() runs, on the thread that requested the stop or
// the deadline thread). Errors as PostTask, plus RPC_E_CALL_CANCELED /
// RPC_E_TIMEOUT when already cancelled (before it was queued); on an error
// `*watch` is empty. On success touches nothing of `task`, `control` or
// `watch` after queuing it (they live in an awaiter, which may be gone).
HRESULT PostWithdrawableTask(const ApartmentRef& target, WithdrawableTask* task,
                             const CallControl& control, AsyncCancelWatchPtr* watch);

// The apartment's thread, from a shutdown callback: drops the tasks still
// queued (ApartmentImpl::DropQueuedTasks).
void DropQueuedTasks(const ApartmentRef& target);
// The apartment's thread: a message loop that stops retrieved `msg` and will
// not dispatch it: drops the task it names, if it names one that nothing
// else would end (ApartmentImpl::DiscardRetrieved).
void DiscardRetrieved(const ApartmentRef& target, const MSG& msg);

// The explanation a task dropped at `target`'s shutdown ends with
// (RPC_E_DISCONNECTED, while queued).
std::string DroppedTaskText(const ApartmentRef& target);

// Sets the explanation of a call refused because `target` has shut down
// (RPC_E_DISCONNECTED, before the call was made).
void ExplainShutDownBeforeCall(const ApartmentRef& target);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_CHANNEL_POST_H_
