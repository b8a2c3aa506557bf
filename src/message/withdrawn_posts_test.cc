// Tests of withdrawing posted messages with tombstones (message/withdrawn_posts.h).
#include "message/withdrawn_posts.h"

#include <gtest/gtest.h>

#include "apartments/message_queue.h"
#include "message/queue.h"
#include "message/test_util.h"

namespace apartments::internal {
namespace {

using testing::CreateMessageWindow;
using testing::DrainQueue;
using testing::QueueDepth;
using testing::ScopedClass;

class WithdrawnPostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DrainQueue();
    hwnd_ = CreateMessageWindow(window_class_.name());
    ASSERT_NE(hwnd_, nullptr);
  }
  void TearDown() override {
    DestroyWindow(hwnd_);
    DrainQueue();
  }
  ScopedClass window_class_{L"WithdrawnPostsTest", DefWindowProcW};
  HWND hwnd_ = nullptr;
};

TEST_F(WithdrawnPostsTest, QueuedMessageIsRemovedAndItsQuotaSlotFreed) {
  // Tests that a message still in the shared incoming buffer is removed from the queue
  // (the depth, which the quota counts, drops at once) and leaves no tombstone.
  ASSERT_TRUE(PostMessageW(hwnd_, WM_APP, 0, 42));
  ASSERT_EQ(QueueDepth(GetCurrentThreadId()), 1u);
  WithdrawnPosts withdrawn;
  EXPECT_TRUE(withdrawn.Withdraw(CurrentQueue(), hwnd_, WM_APP, 42));
  EXPECT_EQ(QueueDepth(GetCurrentThreadId()), 0u);
  MSG msg;
  EXPECT_FALSE(PeekMessageW(&msg, hwnd_, 0, 0, PM_REMOVE));
  EXPECT_FALSE(withdrawn.IsTombstone(42));
}

TEST_F(WithdrawnPostsTest, MessageInRetrievalBatchBecomesTombstoneConsumedOnce) {
  // Tests that a message the owner already moved into its retrieval batch stays queued
  // as a tombstone: recognized once when retrieved (then forgotten), its slot freed by
  // that retrieval.
  ASSERT_TRUE(PostMessageW(hwnd_, WM_APP, 0, 1));
  ASSERT_TRUE(PostMessageW(hwnd_, WM_APP, 0, 42));
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, hwnd_, 0, 0, PM_REMOVE));  // Moves both into the batch.
  ASSERT_EQ(msg.lParam, 1);
  WithdrawnPosts withdrawn;
  EXPECT_FALSE(withdrawn.Withdraw(CurrentQueue(), hwnd_, WM_APP, 42));
  EXPECT_EQ(QueueDepth(GetCurrentThreadId()), 1u);
  ASSERT_TRUE(PeekMessageW(&msg, hwnd_, 0, 0, PM_REMOVE));
  ASSERT_EQ(msg.lParam, 42);
  EXPECT_EQ(QueueDepth(GetCurrentThreadId()), 0u);
  EXPECT_TRUE(withdrawn.IsTombstone(42));
  EXPECT_FALSE(withdrawn.IsTombstone(42));  // Consumed: a new message at 42 is live.
}

}  // namespace
}  // namespace apartments::internal
