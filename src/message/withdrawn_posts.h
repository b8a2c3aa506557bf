// Withdrawing posted messages whose lParam names a record that its poster
// frees once the message is withdrawn (a channel call on its caller's stack,
// a coroutine's task in its frame), so the target thread must never touch a
// withdrawn one.
//
// A withdrawal either removes the message from the target thread's queue
// (MessageQueue::WithdrawPosted: it was still in the shared incoming buffer,
// and its quota slot is freed at once), or, when the thread has already moved
// it into its private retrieval batch, leaves a tombstone: the lParam,
// remembered here, which the thread matches against the messages it
// dispatches (IsTombstone) before touching what they name, and skips; that
// retrieval frees the quota slot.
//
// Reuse of an address is safe: a new record at a tombstone's address posts
// its message after the withdrawn one, and the messages of one window and
// message number are retrieved in FIFO order, so the tombstone is consumed by
// the old message first.
//
// Thread safety: none of its own. Its owner guards it with the lock under
// which "withdrawn" and "taken by the target" are decided (so that they are
// one decision): the apartment's lock (ApartmentImpl::shared_), for the
// channel's calls and one-way tasks alike. Lock order: that lock -> the
// queue's lock.
#ifndef APARTMENTS_SRC_MESSAGE_WITHDRAWN_POSTS_H_
#define APARTMENTS_SRC_MESSAGE_WITHDRAWN_POSTS_H_

#include <vector>

#include "apartments/win32_message.h"

namespace apartments::internal {

class MessageQueue;

class WithdrawnPosts {
 public:
  // Withdraws the message (hwnd, message, lparam) its caller posted to
  // `queue` and that the queue's thread has not dispatched (nor drained) yet.
  // Returns true when it was removed from the queue, false when it is left
  // as a tombstone.
  bool Withdraw(MessageQueue& queue, HWND hwnd, UINT message, LPARAM lparam);
  // The queue's thread, for a retrieved message naming `lparam`: true (and
  // the tombstone is consumed) when it was withdrawn, so nothing it names may
  // be touched; false when it names a live record.
  bool IsTombstone(LPARAM lparam);
  // Forgets every tombstone (the window is about to be destroyed unpumped).
  void Clear() { tombstones_.clear(); }

 private:
  std::vector<LPARAM> tombstones_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_MESSAGE_WITHDRAWN_POSTS_H_
