// The channel's explanations: one paragraph for each way it fails a call or
// a one-way post, whichever API made it (the Win32 path, the proxies, the
// modern API's Call, Post and co_await CallAsync). Every text is built here,
// from the facts the layers below publish (the target's description, its
// queue, its thread's wait record, the handle history) written with base's
// formatters (base/explain.h), so the same failure reads the same wherever it
// was made.
//
// The ...Text functions return the paragraph; the Explain... functions also
// set it as the calling thread's COM error info (SetCallErrorInfo). Any
// thread, with no library lock held (they read wait records and queue
// statistics, and TargetWaitChain asks diag's hook).
#ifndef APARTMENTS_SRC_COM_CHANNEL_EXPLAIN_H_
#define APARTMENTS_SRC_COM_CHANNEL_EXPLAIN_H_

#include <cstdint>
#include <string>

#include "apartments/win32_errors.h"
#include "apartments/win32_types.h"

namespace apartments::internal {

class ApartmentImpl;
struct ChannelCall;

// What the channel failed to deliver, as its explanations name it.
enum class Work : std::uint8_t {
  kCall,       // "The call into X": a synchronous call (Win32, proxies, Apartment::Call).
  kPost,       // "The post to X": a one-way task (Post, CallFuture, Schedule, CallAsync).
  kAsyncCall,  // "The asynchronous call (co_await CallAsync) into X": a withdrawable task.
};

// Where the work stood when it failed with RPC_E_DISCONNECTED.
enum class DisconnectStage : std::uint8_t { kBeforeCall, kWhileQueued, kThreadExited };

// Where the work stood when it was cancelled or its deadline passed.
enum class CancelStage : std::uint8_t { kBeforeQueued, kQueued, kBeforeStart, kRunning };

// Where a coroutine whose task was withdrawn resumes (kAsyncCall, kQueued).
enum class ResumedOn : std::uint8_t { kNotSaid, kStopRequester, kDeadlineThread };

// The target's queue is at the posted-message quota: RPC_E_SYS_CALL_FAILED.
std::string QueueFullText(ApartmentImpl* target, Work work);
void ExplainQueueFull(ApartmentImpl* target, Work work);

// RPC_E_DISCONNECTED. `call` (kThreadExited only) says who exited and when.
std::string DisconnectedText(ApartmentImpl* target, DisconnectStage stage, Work work,
                             const ChannelCall* call = nullptr);
void ExplainDisconnected(ApartmentImpl* target, DisconnectStage stage, Work work = Work::kCall,
                         const ChannelCall* call = nullptr);

// RPC_E_SERVERFAULT: the callee threw `what`.
void ExplainServerFault(ApartmentImpl* target, const std::string& what);

// RPC_E_CALL_CANCELED or RPC_E_TIMEOUT (`why`); `callee_hr` is the discarded
// result of a call cancelled while running.
std::string CancelledText(ApartmentImpl* target, HRESULT why, CancelStage stage, Work work,
                          HRESULT callee_hr = S_OK, ResumedOn resumed_on = ResumedOn::kNotSaid);
void ExplainCancelled(ApartmentImpl* target, HRESULT why, CancelStage stage, HRESULT callee_hr);

// A call's reply event handle was closed under the channel.
void ExplainReplyEventInvalid(ApartmentImpl* target, HANDLE handle);

// What thread `tid` is blocked on now, from its wait record: one sentence.
std::string DescribeBlocking(DWORD tid);

// The channel's error source name (the error info's source).
inline constexpr char kChannelSource[] = "apartments channel";

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_CHANNEL_EXPLAIN_H_
