// Peer: FreeRDP's WinPR, the other Linux implementation of the Win32 sync API
// (its own binary: WinPR exports the same C names as ours).
//   roundtrip  CreateEvent/SetEvent/WaitForSingleObject ping-pong. WinPR 2
//              has no auto-reset events ("auto-reset events not yet
//              implemented"), so each side waits and then ResetEvent()s:
//              race-free because the other side sets the event again only
//              after the reply, which follows the reset.
//   post1/2    MessageQueue_Post -> MessageQueue_Wait + MessageQueue_Peek
//   wait       WaitForSingleObject on a signaled event; SetEvent + consume
#include <memory>
#include <string>

#include "harness.h"
#include "workloads.h"

#if PEER_AVAILABLE
#include <winpr/collections.h>
#include <winpr/handle.h>
#include <winpr/synch.h>

#include <atomic>

namespace bench {
namespace {

void WinprEventPingPong(Runner& r, Placement p) {
  HANDLE ping = CreateEvent(nullptr, TRUE, FALSE, nullptr);
  HANDLE pong = CreateEvent(nullptr, TRUE, FALSE, nullptr);
  std::atomic<bool> stop{false};
  long long value = 0;  // Handed over by the events.
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        ready.Notify();
        for (;;) {
          WaitForSingleObject(ping, INFINITE);
          ResetEvent(ping);
          if (stop.load(std::memory_order_acquire)) return;
          ++value;
          SetEvent(pong);
        }
      },
      [&](long long v) {
        value = v;
        SetEvent(ping);
        WaitForSingleObject(pong, INFINITE);
        ResetEvent(pong);
        return value;
      },
      [&] {
        stop.store(true, std::memory_order_release);
        SetEvent(ping);
      });
  CloseHandle(ping);
  CloseHandle(pong);
}

class WinprMessageQueue {
 public:
  WinprMessageQueue() : queue_(MessageQueue_New(nullptr)) {}
  ~WinprMessageQueue() { MessageQueue_Free(queue_); }
  template <typename OnMarker>
  void Consume(Signal& ready, OnMarker on_marker) {
    ready.Notify();
    while (MessageQueue_Wait(queue_)) {
      wMessage message;
      while (MessageQueue_Peek(queue_, &message, TRUE) > 0) {
        if (message.id == WMQ_QUIT) return;
        if (message.id == kMarker) on_marker();
      }
    }
  }
  void Post(std::int64_t i) {
    MessageQueue_Post(queue_, nullptr, kMessage, reinterpret_cast<void*>(i), nullptr);
  }
  void PostMarker() { MessageQueue_Post(queue_, nullptr, kMarker, nullptr, nullptr); }
  void PostStop() { MessageQueue_PostQuit(queue_, 0); }

 private:
  static constexpr UINT32 kMessage = 0x400, kMarker = 0x8000;
  wMessageQueue* queue_;
};

void WinprWaitSignaled(Runner& r, Placement) {
  HANDLE e = CreateEvent(nullptr, TRUE, TRUE, nullptr);
  r.Run([&](std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) WaitForSingleObject(e, 0);
  });
  CloseHandle(e);
}

void WinprSetEventNoWaiter(Runner& r, Placement) {
  HANDLE e = CreateEvent(nullptr, TRUE, FALSE, nullptr);  // No auto-reset in WinPR.
  r.Run([&](std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
      SetEvent(e);
      WaitForSingleObject(e, 0);
      ResetEvent(e);
    }
  });
  CloseHandle(e);
}

}  // namespace
}  // namespace bench
#endif  // PEER_AVAILABLE

int main(int argc, char** argv) {
  using namespace bench;
  const char* kEvents = "peer:WinPR events (manual-reset)";
  const char* kQueue = "peer:WinPR MessageQueue";
  const char* kWait = "peer:WinPR WaitForSingleObject(signaled)";
  const char* kSet = "peer:WinPR SetEvent(no waiter)+wait+reset";
#if PEER_AVAILABLE
  RegisterAllPlacements("roundtrip", kEvents, WinprEventPingPong);
  RegisterPosting(kQueue, [] { return std::make_unique<WinprMessageQueue>(); });
  Register("wait", kWait, {Placement::kSingle}, WinprWaitSignaled);
  Register("wait", kSet, {Placement::kSingle}, WinprSetEventNoWaiter);
#else
  const char* reason = "skipped: not installed (libwinpr2-dev)";
  auto all = {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned};
  RegisterSkipped("roundtrip", kEvents, all, reason);
  RegisterSkipped("post1", kQueue, all, reason);
  RegisterSkipped("post2", kQueue, all, reason);
  RegisterSkipped("wait", kWait, {Placement::kSingle}, reason);
  RegisterSkipped("wait", kSet, {Placement::kSingle}, reason);
#endif
  return RunCases(argc, argv);
}
