#include "message/withdrawn_posts.h"

#include "message/queue.h"

namespace apartments::internal {

bool WithdrawnPosts::Withdraw(MessageQueue& queue, HWND hwnd, UINT message, LPARAM lparam) {
  if (queue.WithdrawPosted(hwnd, message, lparam)) return true;
  tombstones_.push_back(lparam);
  return false;
}

bool WithdrawnPosts::IsTombstone(LPARAM lparam) {
  for (std::size_t i = 0; i < tombstones_.size(); ++i) {
    if (tombstones_[i] != lparam) continue;
    tombstones_.erase(tombstones_.begin() + static_cast<std::ptrdiff_t>(i));
    return true;
  }
  return false;
}

}  // namespace apartments::internal
