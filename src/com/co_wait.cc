// CoWaitForMultipleHandles in an STA: Windows' own pumping rule, which is not
// the modal loop of an outgoing call (ModalWait in channel.cc).
//
// What Windows does there (Wine's compobj.c test_CoWaitForMultipleHandles,
// whose assertions run on Windows):
//   - the handles come first: a wait that is already satisfied returns at
//     once and dispatches nothing, even with messages queued;
//   - with COWAIT_ALERTABLE, queued APCs run first, even while messages are
//     pending, and the call returns S_OK with *lpdwindex = WAIT_IO_COMPLETION;
//   - otherwise it waits for the handles or for new input; on input it serves
//     incoming COM calls, messages sent to the thread, and dispatches the
//     posted DDE messages (WM_DDE_FIRST..WM_DDE_LAST, for any window of the
//     thread), in the order they were posted; every other posted message
//     stays queued, but counts as examined (a later MsgWaitForMultipleObjects
//     does not wake for it);
//   - a quit posted with PostQuitMessage is consumed and not posted again
//     (a WM_QUIT posted as a message to a window is an ordinary posted
//     message outside the DDE range: it stays queued).
#include <chrono>

#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_message.h"
#include "com/apartment_impl.h"
#include "com/com_thread.h"
#include "message/queue.h"

namespace apartments::internal {

namespace {

// Windows' loop goes back to the handles after this many messages, so that a
// flood of DDE messages (or a window that keeps repainting) cannot keep a
// satisfied wait from returning.
constexpr int kMaxMessagesPerWake = 100;

// Serves or dispatches one message of those CoWaitForMultipleHandles handles
// (see the file comment). Returns false when there was none.
// With `all_window_messages` (COWAIT_DISPATCH_WINDOW_MESSAGES) every posted
// message is dispatched, not only the DDE ones.
bool PumpOne(ApartmentImpl* sta, ComThreadData& data, MessageQueue& queue,
             bool all_window_messages) {
  MSG msg;
  MessageQueue::Filter com_window;  // Serves sent messages first.
  com_window.hwnd = sta->hwnd();
  // One-way tasks run from the message loop only (or with
  // COWAIT_DISPATCH_WINDOW_MESSAGES, below), as a posted message would.
  com_window.wparam_mask = kComTaskBit;
  if (queue.GetOrPeek(com_window, false, &msg)) {
    if (msg.message == kComCallMessage) {
      ServeDispatched(sta, reinterpret_cast<QueueEntry*>(msg.lParam), data.message_filter);
    } else {
      DispatchMessageW(&msg);
    }
    return true;
  }
  MessageQueue::Filter dde;
  if (!all_window_messages) {
    dde.min = WM_DDE_FIRST;
    dde.max = WM_DDE_LAST;
  }
  if (queue.GetOrPeek(dde, false, &msg)) {
    // Only reached for WM_QUIT with all_window_messages: consumed, as below.
    if (msg.message != WM_QUIT) DispatchMessageW(&msg);
    return true;
  }
  // The quit flag: consumed (a thread message WM_QUIT posted with
  // PostThreadMessage is taken the same way).
  MessageQueue::Filter quit;
  quit.hwnd = reinterpret_cast<HWND>(-1);
  quit.min = WM_QUIT;
  quit.max = WM_QUIT;
  quit.sent = false;
  return queue.GetOrPeek(quit, false, &msg);
}

}  // namespace

DWORD CoWaitInSta(ComThreadData& data, ApartmentImpl* sta, KernelObject** objects,
                  const HANDLE* handles, DWORD count, DWORD timeout_ms, DWORD flags) {
  MessageQueue& queue = CurrentQueue();
  const bool wait_all = (flags & COWAIT_WAITALL) != 0;
  const bool alertable = (flags & COWAIT_ALERTABLE) != 0;
  const bool return_on_input = (flags & COWAIT_INPUTAVAILABLE) != 0;
  const bool all_window_messages = (flags & COWAIT_DISPATCH_WINDOW_MESSAGES) != 0;
  // COWAIT_INPUTAVAILABLE: input already examined also counts; the loop then
  // returns when, after pumping, input it does not take remains.
  const DWORD mwmo = (wait_all ? MWMO_WAITALL : 0) | (alertable ? MWMO_ALERTABLE : 0) |
                     (return_on_input ? MWMO_INPUTAVAILABLE : 0);
  const bool finite = timeout_ms != INFINITE;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(finite ? timeout_ms : 0);
  const WaitOptions options{.kind = BlockKind::kComCall};
  if (alertable) {
    // APCs before anything else, even with messages pending.
    const DWORD r = WaitForObjects(objects, handles, count, wait_all, 0, true, options);
    if (r != WAIT_TIMEOUT) return r;
  }
  bool more_queued = false;
  for (;;) {
    DWORD remaining = INFINITE;
    if (finite) {
      // Rounded up, and re-checked below: the wait never ends early.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      remaining = left.count() > 0 ? static_cast<DWORD>(left.count()) : 0;
    }
    const DWORD r = queue.MsgWait(objects, handles, count, remaining,
                                  QS_SENDMESSAGE | QS_POSTMESSAGE | QS_ALLPOSTMESSAGE,
                                  mwmo | (more_queued ? MWMO_INPUTAVAILABLE : 0), options);
    if (r == WAIT_OBJECT_0 + count) {
      // Everything queued now counts as examined (Windows peeks at all of
      // it, without a filter): the next wait, here or in a later
      // MsgWaitForMultipleObjects, waits for new input. Reading the status
      // clears the posted-input change bits as that peek does. Cleared
      // before pumping, so that a COM call arriving during the pump still
      // wakes the next wait.
      (void)queue.QueueStatus(QS_POSTMESSAGE | QS_ALLPOSTMESSAGE);
      int n = 0;
      while (n < kMaxMessagesPerWake && PumpOne(sta, data, queue, all_window_messages)) ++n;
      // Stopped at the cap: what remains was marked examined, so look again
      // at once rather than wait for new input.
      more_queued = n == kMaxMessagesPerWake;
      if (return_on_input) {
        // Input the loop does not take (COWAIT_INPUTAVAILABLE).
        MessageQueue::Filter peek_posted;
        peek_posted.sent = false;
        peek_posted.remove = false;
        MSG msg;
        if (queue.GetOrPeek(peek_posted, false, &msg)) return WAIT_OBJECT_0 + count;
      }
      if (finite && remaining == 0) return WAIT_TIMEOUT;
      continue;
    }
    if (r == WAIT_TIMEOUT && remaining != 0 && std::chrono::steady_clock::now() < deadline) {
      continue;
    }
    return r;
  }
}

}  // namespace apartments::internal
