// The channel's explanations (see channel_explain.h).
#include "com/channel_explain.h"

#include <cinttypes>
#include <cstdio>
#include <string>

#include "apartments/message_queue.h"
#include "apartments/win32_kernel.h"
#include "base/explain.h"
#include "base/thread_state.h"
#include "com/apartment_impl.h"
#include "com/error_info.h"
#include "kernel/handle_history.h"
#include "kernel/kernel.h"
#include "message/pump_filter.h"
#include "message/queue.h"

namespace apartments::internal {
namespace {

constexpr const char* kSource = kChannelSource;

// "The call into X", "The post to X", "The asynchronous call (co_await
// CallAsync) into X": how every paragraph opens.
std::string Opening(ApartmentImpl* target, Work work) {
  switch (work) {
    case Work::kCall: return "The call into " + target->Describe();
    case Work::kPost: return "The post to " + target->Describe();
    case Work::kAsyncCall:
      return "The asynchronous call (co_await CallAsync) into " + target->Describe();
  }
  return std::string();
}

// What the work is, inside a sentence.
const char* Noun(Work work) { return work == Work::kPost ? "the task" : "the call"; }

// "event 'name' (handle 0x1c, not signaled)", "mutex (handle 0x20, owned by
// thread 12 'worker')".
std::string DescribeWaited(const WaitedObject& object) {
  std::string out = ObjectKindName(object.kind);
  if (!object.name.empty()) out += " '" + WideToUtf8(object.name) + "'";
  out += " (";
  out += object.handle != nullptr ? "handle " + HandleText(object.handle) : "an internal object";
  if (object.kind == ObjectKind::kMutex) {
    out += object.owner_tid != 0 ? ", owned by " + ThreadText(object.owner_tid) : ", not owned";
  } else {
    out += object.signaled ? ", signaled" : ", not signaled";
  }
  return out + ")";
}

// The full wait chain of the target thread, hop by hop beyond the one
// sentence of DescribeBlocking, from the diagnostics layer's hook
// (base/explain.h): "" for the MTA (no one thread) or without the hook.
std::string TargetWaitChain(DWORD tid) {
  std::string chain = WaitChainText(tid);
  if (chain.empty()) return chain;
  return "\nWait chain of " + ThreadText(tid) + ":\n" + chain;
}

}  // namespace

std::string DescribeBlocking(DWORD tid) {
  WaitRecord record = ReadWaitRecord(tid);
  std::string who = ThreadText(tid);  // "thread 12 'ui'": capitalized to open the sentence.
  if (!who.empty()) who[0] = 'T';
  switch (record.kind) {
    case BlockKind::kNone:
      return who + " is not blocked in a wait this library knows of: it is running code "
                   "that does not pump messages.";
    case BlockKind::kSleep:
      return who + " is sleeping (Sleep/SleepEx) since " + Ago(record.since) + ".";
    case BlockKind::kMessageIdle:
      return who + " is waiting for messages since " + Ago(record.since) +
             ", but not retrieving this apartment's (a filtered GetMessage/PeekMessage loop?).";
    case BlockKind::kSendMessage:
      return who + " is waiting since " + Ago(record.since) +
             " for a reply to a message it sent to " + ThreadText(record.target_tid) + ".";
    case BlockKind::kComCall:
      return who + " is waiting since " + Ago(record.since) +
             " for its own cross-apartment call into " +
             (record.target_tid != 0 ? ThreadText(record.target_tid) : std::string("the MTA")) +
             ".";
    case BlockKind::kKernelWait:
      break;
  }
  std::string out = who + " is blocked in " +
                    (record.objects.size() > 1
                         ? std::string(record.wait_all ? "a wait for all of " : "a wait for any of ")
                         : std::string("a wait on ")) ;
  for (std::size_t i = 0; i < record.objects.size(); ++i) {
    if (i > 0) out += ", ";
    out += DescribeWaited(record.objects[i]);
  }
  return out + ", since " + Ago(record.since) + " (WaitForSingleObject/WaitForMultipleObjects" +
         " does not pump messages).";
}

std::string QueueFullText(ApartmentImpl* target, Work work) {
  const DWORD tid = target->thread_id();
  MessageQueueStats stats;
  const bool have_stats = ReadMessageQueueStats(tid, &stats);
  std::string text = Opening(target, work) +
                     " failed with RPC_E_SYS_CALL_FAILED: the apartment's message queue is full";
  if (have_stats) {
    text += " (depth " + std::to_string(stats.depth) + ", quota " +
            std::to_string(GetPostMessageLimit()) + ")";
  }
  text += std::string(", so ") + Noun(work) + " could not be posted to it and never ran. ";
  if (have_stats) {
    text += "Its " + ThreadText(tid) + " last retrieved a message " + Ago(stats.last_pumped) +
            ". ";
  }
  // A pump whose filter excludes the COM window, when that is the cause.
  const std::string filtered = DescribePumpFilter(tid, target->hwnd(), kComCallMessage,
                                                  "the apartment's window", stats.depth);
  text += filtered.empty() ? DescribeBlocking(tid) : filtered;
  text += work == Work::kCall
              ? " A single-threaded apartment serves calls only while its thread pumps messages "
                "(GetMessage/DispatchMessage, or a COM modal wait such as "
                "CoWaitForMultipleHandles)."
              : " A single-threaded apartment runs posted tasks only while its thread pumps "
                "messages (GetMessage/DispatchMessage).";
  return text + TargetWaitChain(tid);
}

void ExplainQueueFull(ApartmentImpl* target, Work work) {
  SetCallErrorInfo(RPC_E_SYS_CALL_FAILED, QueueFullText(target, work), kSource);
}

// One explanation per record (ChannelCall's outcome and times): the
// apartment's shutdown time is only quoted once shutdown has begun (it is
// set then), and a call whose thread exited inside it is said to have run.
std::string DisconnectedText(ApartmentImpl* target, DisconnectStage stage, Work work,
                             const ChannelCall* call) {
  std::string text = Opening(target, work) + " failed with RPC_E_DISCONNECTED: ";
  const bool sta = target->kind() == ApartmentKind::kSta;
  // Every report that names a thread says what to do next.
  const char* next =
      work != Work::kCall
          ? " What to do next: post to an apartment only while it runs (its owning Apartment "
            "object alive, or its thread in its message loop and initialized)."
      : sta ? " What to do next: an STA's objects live only while its thread does; keep that "
              "thread in its message loop (and initialized) until the proxies into it are "
              "released, or release them first."
            : " What to do next: keep a user of the MTA (CoInitializeEx or CoIncrementMTAUsage) "
              "for as long as its objects are called.";
  if (stage == DisconnectStage::kThreadExited) {
    const DWORD tid = call->executing_tid.load(std::memory_order_relaxed);
    text += "the " + ThreadText(tid) + " running it exited inside the call " +
            Ago(call->exited_at) +
            " (ExitThread, or the thread was cancelled): the call ran but never returned, and "
            "whatever it did before stands.";
    if (sta) text += " The apartment ends with its thread.";
    return text + next;
  }
  if (target->IsShutDown()) {
    bool thread_alive = false;
    if (sta) {
      ForEachThreadState([&](ThreadState& state) {
        if (state.tid.load(std::memory_order_relaxed) == target->thread_id()) thread_alive = true;
      });
    }
    text += "that apartment shut down " + Ago(target->shutdown_time()) +
            (!sta            ? std::string(" (its last user left: CoUninitialize or "
                                           "CoDecrementMTAUsage)")
             : thread_alive ? std::string(" (its thread's last CoUninitialize)")
                            : std::string(" (its thread has exited)"));
  } else {
    // Its thread's queue is gone: the thread exited and its exit hook has
    // not yet begun the shutdown (so there is no shutdown time to quote).
    text += "the apartment's thread has exited (its message queue is gone) and the apartment "
            "is being torn down";
  }
  if (stage == DisconnectStage::kWhileQueued) {
    text += std::string(", while ") + Noun(work) + " was still queued: it never ran.";
  } else {
    text += work == Work::kPost ? ", before the post was made: it never ran."
                                : ", before the call was made: it never ran.";
  }
  return text + next;
}

void ExplainDisconnected(ApartmentImpl* target, DisconnectStage stage, Work work,
                         const ChannelCall* call) {
  SetCallErrorInfo(RPC_E_DISCONNECTED, DisconnectedText(target, stage, work, call), kSource);
}

void ExplainServerFault(ApartmentImpl* target, const std::string& what) {
  SetCallErrorInfo(RPC_E_SERVERFAULT,
                   "The call into " + target->Describe() +
                       " failed with RPC_E_SERVERFAULT: the callee threw a C++ exception: " +
                       what + ". Whatever it did before throwing stands.",
                   kSource);
}

std::string CancelledText(ApartmentImpl* target, HRESULT why, CancelStage stage, Work work,
                          HRESULT callee_hr, ResumedOn resumed_on) {
  const bool timeout = why == RPC_E_TIMEOUT;
  std::string text = Opening(target, work) + " failed with " +
                     (timeout ? "RPC_E_TIMEOUT: its deadline passed" : "RPC_E_CALL_CANCELED: it was "
                                                                       "cancelled");
  switch (stage) {
    case CancelStage::kBeforeQueued:
      text += " before it was queued there; it never ran.";
      break;
    case CancelStage::kQueued:
      text += " while it was still queued there; it was withdrawn from the queue (its slot in "
              "the posted-message quota freed) and never ran.";
      if (resumed_on == ResumedOn::kStopRequester) {
        text += " The coroutine resumed on the thread that requested the stop.";
      } else if (resumed_on == ResumedOn::kDeadlineThread) {
        text += " The coroutine resumed on the library's deadline thread.";
      }
      break;
    case CancelStage::kBeforeStart:
      text += " before the apartment's thread started it; it never ran.";
      break;
    case CancelStage::kRunning: {
      char code[16];
      std::snprintf(code, sizeof code, "0x%08" PRIX32, static_cast<std::uint32_t>(callee_hr));
      text += std::string(" while it was running there; the callee was told (CoTestCancel, "
                          "its stop token), the caller waited for it to return, and its result") +
              (callee_hr != S_OK ? std::string(" (") + code + ")" : std::string()) +
              " was discarded. Whatever it did stands.";
      break;
    }
  }
  if ((stage == CancelStage::kQueued || stage == CancelStage::kBeforeStart) &&
      target->kind() == ApartmentKind::kSta) {
    text += " " + DescribeBlocking(target->thread_id());
  }
  return text;
}

void ExplainCancelled(ApartmentImpl* target, HRESULT why, CancelStage stage, HRESULT callee_hr) {
  SetCallErrorInfo(why, CancelledText(target, why, stage, Work::kCall, callee_hr), kSource);
}

void ExplainReplyEventInvalid(ApartmentImpl* target, HANDLE handle) {
  // The handle history says who closed it (kernel/handle_history.h); the
  // same text goes to the thread's last error explanation.
  const std::string text =
      "The call into " + target->Describe() +
      " failed with RPC_E_SYS_CALL_FAILED: the channel could not wait for its reply, because "
      "the call's reply event handle " +
      HandleText(handle) +
      " is not open (it was closed while the channel owned it: by other code closing a handle "
      "it did not own, or closing one twice). The call was not sent and never ran. From the handle history: " +
      DescribeHandleProblem(handle) + TargetWaitChain(target->thread_id());
  SetLastErrorExplanation(text);
  SetCallErrorInfo(RPC_E_SYS_CALL_FAILED, text, kSource);
}

}  // namespace apartments::internal
