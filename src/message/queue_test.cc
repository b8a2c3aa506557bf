// Tests of thread message queues: posting, retrieval, filters, WM_QUIT, the
// quota, queue status, thread exit and the diagnostics view.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "apartments/message_queue.h"
#include "message/test_util.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::DrainQueue;
using testing::GetMessageWithin;
using testing::TestEvent;

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override { DrainQueue(); }
  void TearDown() override {
    DrainQueue();
    (void)SetPostMessageLimit(kDefaultPostMessageLimit);
  }
};

// Tests that posting to a thread that never made a message call fails with
// ERROR_INVALID_THREAD_ID, and that its first message call creates its queue.
TEST_F(QueueTest, QueueIsCreatedOnFirstMessageCall) {
  TestEvent try_post, peeked, finish;
  BoundedThread thread([&] {
    if (!try_post.Wait()) return;
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    peeked.Set();
    (void)finish.Wait();
  });
  SetLastError(0);
  EXPECT_FALSE(PostThreadMessageW(thread.tid(), WM_USER, 0, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_THREAD_ID));
  try_post.Set();
  ASSERT_TRUE(peeked.Wait());
  EXPECT_TRUE(PostThreadMessageW(thread.tid(), WM_USER, 0, 0));
  finish.Set();
}

// Tests that thread id 0 and unknown thread ids are refused.
TEST_F(QueueTest, PostToUnknownThreadFails) {
  SetLastError(0);
  EXPECT_FALSE(PostThreadMessageW(0, WM_USER, 0, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_THREAD_ID));
  EXPECT_FALSE(PostThreadMessageW(0xFFFFFFF0u, WM_USER, 0, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_THREAD_ID));
}

// Tests that messages posted to the calling thread come back in order with
// their parameters.
TEST_F(QueueTest, PostedMessagesArriveInOrder) {
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER + 1, i, -i));
  }
  MSG msg;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(GetMessageW(&msg, nullptr, 0, 0), TRUE);
    EXPECT_EQ(msg.hwnd, nullptr);
    EXPECT_EQ(msg.message, static_cast<UINT>(WM_USER + 1));
    EXPECT_EQ(msg.wParam, static_cast<WPARAM>(i));
    EXPECT_EQ(msg.lParam, static_cast<LPARAM>(-i));
  }
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
}

// Tests the quota: the 10,000th post succeeds, the 10,001st fails with
// ERROR_NOT_ENOUGH_QUOTA, and all 10,000 are still delivered in order.
TEST_F(QueueTest, TenThousandthPostSucceedsAndNextFails) {
  ASSERT_EQ(GetPostMessageLimit(), 10000u);
  const DWORD self = GetCurrentThreadId();
  MessageQueueStats before;
  ASSERT_TRUE(ReadMessageQueueStats(self, &before));
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(PostThreadMessageW(self, WM_APP, i, 0)) << "post " << i + 1;
  }
  SetLastError(0);
  EXPECT_FALSE(PostThreadMessageW(self, WM_APP, 10000, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_ENOUGH_QUOTA));
  EXPECT_EQ(GetLastError(), 1816u);

  MessageQueueStats stats;
  ASSERT_TRUE(ReadMessageQueueStats(self, &stats));
  EXPECT_EQ(stats.depth, 10000u);
  EXPECT_EQ(stats.high_water, 10000u);
  EXPECT_EQ(stats.rejected_quota - before.rejected_quota, 1u);  // Lifetime counter.

  MSG msg;
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
    ASSERT_EQ(msg.wParam, static_cast<WPARAM>(i));
  }
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  ASSERT_TRUE(ReadMessageQueueStats(self, &stats));
  EXPECT_EQ(stats.depth, 0u);
  // Room again once drained.
  EXPECT_TRUE(PostThreadMessageW(self, WM_APP, 0, 0));
}

// Tests that the limit is configurable and that a refused post leaves the
// queue unharmed.
TEST_F(QueueTest, LimitIsConfigurable) {
  ASSERT_EQ(SetPostMessageLimit(100), S_OK);
  EXPECT_EQ(GetPostMessageLimit(), 100u);
  const DWORD self = GetCurrentThreadId();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(PostThreadMessageW(self, WM_APP, i, 0));
  EXPECT_FALSE(PostThreadMessageW(self, WM_APP, 100, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_ENOUGH_QUOTA));
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 0u);
  EXPECT_TRUE(PostThreadMessageW(self, WM_APP, 100, 0));  // One slot freed.
  EXPECT_FALSE(PostThreadMessageW(self, WM_APP, 101, 0));
  for (int i = 1; i <= 100; ++i) {
    ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
    EXPECT_EQ(msg.wParam, static_cast<WPARAM>(i));
  }
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
}

// Tests that limits outside the documented range are refused.
TEST_F(QueueTest, LimitOutOfRangeIsRefused) {
  EXPECT_EQ(SetPostMessageLimit(0), E_INVALIDARG);
  EXPECT_EQ(SetPostMessageLimit(kMaxPostMessageLimit + 1), E_INVALIDARG);
  EXPECT_EQ(GetPostMessageLimit(), kDefaultPostMessageLimit);
  EXPECT_EQ(SetPostMessageLimit(kMaxPostMessageLimit), S_OK);
  EXPECT_EQ(SetPostMessageLimit(kMinPostMessageLimit), S_OK);
}

// Tests that APARTMENTS_POST_MESSAGE_LIMIT sets the limit when read at first
// use (in a fresh process), and that a malformed value is ignored.
TEST(QueueDeathTest, EnvironmentVariableSetsLimit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("APARTMENTS_POST_MESSAGE_LIMIT", "4000", 1);
        std::exit(GetPostMessageLimit() == 4000 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("APARTMENTS_POST_MESSAGE_LIMIT", "12x", 1);
        std::exit(GetPostMessageLimit() == kDefaultPostMessageLimit ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// Tests that messages from several producers keep each producer's order.
TEST_F(QueueTest, PerSenderFifoWithSeveralProducers) {
  constexpr int kProducers = 4;
  constexpr int kEach = 2000;
  const DWORD self = GetCurrentThreadId();
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
  std::vector<std::unique_ptr<BoundedThread>> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(std::make_unique<BoundedThread>([self, p] {
      for (int i = 0; i < kEach; ++i) {
        while (!PostThreadMessageW(self, WM_APP, p, i)) {
          if (GetLastError() != ERROR_NOT_ENOUGH_QUOTA) return;
          std::this_thread::yield();
        }
      }
    }));
  }
  std::vector<LPARAM> next(kProducers, 0);
  for (int n = 0; n < kProducers * kEach; ++n) {
    ASSERT_TRUE(GetMessageWithin(&msg)) << "after " << n << " messages";
    ASSERT_LT(msg.wParam, static_cast<WPARAM>(kProducers));
    ASSERT_EQ(msg.lParam, next[msg.wParam]) << "producer " << msg.wParam;
    ++next[msg.wParam];
  }
}

// Tests WM_QUIT: a flag returned once no other posted message remains, with
// the exit code; GetMessageW returns 0 for it; retrieving it clears it.
TEST_F(QueueTest, QuitIsReturnedAfterOtherPostedMessages) {
  const DWORD self = GetCurrentThreadId();
  ASSERT_TRUE(PostThreadMessageW(self, WM_USER, 1, 0));
  PostQuitMessage(7);
  ASSERT_TRUE(PostThreadMessageW(self, WM_USER, 2, 0));
  MSG msg;
  ASSERT_EQ(GetMessageW(&msg, nullptr, 0, 0), TRUE);
  EXPECT_EQ(msg.wParam, 1u);
  ASSERT_EQ(GetMessageW(&msg, nullptr, 0, 0), TRUE);
  EXPECT_EQ(msg.wParam, 2u);
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE));  // Stays.
  EXPECT_EQ(msg.message, static_cast<UINT>(WM_QUIT));
  ASSERT_EQ(GetMessageW(&msg, nullptr, 0, 0), FALSE);
  EXPECT_EQ(msg.message, static_cast<UINT>(WM_QUIT));
  EXPECT_EQ(msg.wParam, 7u);
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
}

// Tests that a posted WM_QUIT is an ordinary message for which GetMessageW
// returns 0.
TEST_F(QueueTest, PostedQuitMessageMakesGetMessageReturnZero) {
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_QUIT, 3, 0));
  MSG msg;
  EXPECT_EQ(GetMessageW(&msg, nullptr, 0, 0), FALSE);
  EXPECT_EQ(msg.wParam, 3u);
}

// Tests that WM_QUIT is retrieved whatever the message range filter, as the
// GetMessage and PeekMessage pages document, once no posted message in the
// range remains. Regression: a range that excluded WM_QUIT never saw it.
TEST_F(QueueTest, QuitIgnoresRangeFilter) {
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER + 5, 1, 0));
  PostQuitMessage(4);
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, WM_USER, WM_USER + 10, PM_REMOVE));
  EXPECT_EQ(msg.message, static_cast<UINT>(WM_USER + 5));
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, WM_USER, WM_USER + 10, PM_NOREMOVE));
  EXPECT_EQ(msg.message, static_cast<UINT>(WM_QUIT));
  EXPECT_EQ(GetMessageW(&msg, nullptr, WM_APP, WM_APP), FALSE);
  EXPECT_EQ(msg.message, static_cast<UINT>(WM_QUIT));
  EXPECT_EQ(msg.wParam, 4u);
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));  // Taken by GetMessageW.
}

// Tests that the hWnd filter values Windows reads as (HWND)-1 select thread
// messages only: (HWND)1 and (HWND)0xFFFFFFFF (Windows compares 32 bits;
// Wine's server treats 1 like -1).
TEST_F(QueueTest, OneAndTruncatedMinusOneFilterThreadMessages) {
  for (HWND filter : {reinterpret_cast<HWND>(1), reinterpret_cast<HWND>(-1),
                      reinterpret_cast<HWND>(std::uintptr_t{0xFFFFFFFFu})}) {
    ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER + 1, 7, 0));
    MSG msg;
    SetLastError(0);
    ASSERT_TRUE(PeekMessageW(&msg, filter, 0, 0, PM_REMOVE)) << filter;
    EXPECT_EQ(msg.hwnd, nullptr);
    EXPECT_EQ(msg.wParam, 7u);
    EXPECT_FALSE(PeekMessageW(&msg, filter, 0, 0, PM_REMOVE)) << filter;
    EXPECT_EQ(GetLastError(), 0u) << filter;
  }
}

// Tests that posting a system message whose parameters carry pointers fails
// with ERROR_MESSAGE_SYNC_ONLY and queues nothing (Wine's user32 list, which
// Windows refuses likewise), while ordinary messages post.
TEST_F(QueueTest, PostingPointerMessagesFailsWithSyncOnly) {
  const DWORD self = GetCurrentThreadId();
  for (UINT message : {0x000Cu /*WM_SETTEXT*/, 0x004Au /*WM_COPYDATA*/, 0x0081u /*WM_NCCREATE*/,
                       0x0046u /*WM_WINDOWPOSCHANGING*/, 0x0180u /*LB_ADDSTRING*/}) {
    SetLastError(0);
    EXPECT_FALSE(PostThreadMessageW(self, message, 0, 0)) << message;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_MESSAGE_SYNC_ONLY)) << message;
    SetLastError(0);
    EXPECT_FALSE(PostMessageW(nullptr, message, 0, 0)) << message;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_MESSAGE_SYNC_ONLY)) << message;
  }
  EXPECT_EQ(GetQueueStatus(QS_POSTMESSAGE), 0u);
  // WM_DEVICECHANGE carries a pointer only for its 0x8000 events.
  EXPECT_FALSE(PostThreadMessageW(self, 0x0219, 0x8000, 0));
  EXPECT_TRUE(PostThreadMessageW(self, 0x0219, 0x0007, 0));
  EXPECT_TRUE(PostThreadMessageW(self, WM_CLOSE, 0, 0));
  EXPECT_TRUE(PostThreadMessageW(self, 0x000E /*WM_GETTEXTLENGTH*/, 0, 0));
}

// Tests message-range filters and PM_NOREMOVE.
TEST_F(QueueTest, RangeFilterAndNoRemove) {
  const DWORD self = GetCurrentThreadId();
  ASSERT_TRUE(PostThreadMessageW(self, WM_USER + 50, 1, 0));
  ASSERT_TRUE(PostThreadMessageW(self, WM_USER + 5, 2, 0));
  ASSERT_TRUE(PostThreadMessageW(self, WM_USER + 60, 3, 0));
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, WM_USER, WM_USER + 10, PM_NOREMOVE));
  EXPECT_EQ(msg.wParam, 2u);
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, WM_USER, WM_USER + 10, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 2u);
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, WM_USER, WM_USER + 10, PM_REMOVE));
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 1u);
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 3u);
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
}

// Tests that PM_QS_SENDMESSAGE alone examines no posted message.
TEST_F(QueueTest, PmQsSendMessageSkipsPostedMessages) {
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0));
  MSG msg;
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE | PM_QS_SENDMESSAGE));
  EXPECT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE | PM_QS_POSTMESSAGE));
}

// Tests GetQueueStatus: high word what is queued, low word what was added
// since the last look; invalid flags fail.
TEST_F(QueueTest, GetQueueStatusReportsCurrentAndNewKinds) {
  EXPECT_EQ(GetQueueStatus(QS_ALLINPUT), 0u);
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 0, 0));
  DWORD status = GetQueueStatus(QS_ALLINPUT);
  EXPECT_EQ(HIWORD(status), QS_POSTMESSAGE);
  EXPECT_EQ(LOWORD(status), QS_POSTMESSAGE);
  status = GetQueueStatus(QS_ALLINPUT);
  EXPECT_EQ(HIWORD(status), QS_POSTMESSAGE);
  EXPECT_EQ(LOWORD(status), 0u);
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(GetQueueStatus(QS_ALLINPUT), 0u);
  SetLastError(0);
  EXPECT_EQ(GetQueueStatus(0x80000000u), 0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_FLAGS));
}

// Tests that a thread's exit releases its queued messages (counted) and that
// later posts to it fail with ERROR_INVALID_THREAD_ID.
TEST_F(QueueTest, ThreadExitDropsQueue) {
  const std::uint64_t released_before = MessagesReleasedAtThreadExit();
  DWORD tid = 0;
  {
    BoundedThread thread([&] {
      MSG msg;
      PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
      for (int i = 0; i < 5; ++i) PostThreadMessageW(GetCurrentThreadId(), WM_USER, i, 0);
    });
    tid = thread.tid();
    thread.Join();
  }
  // The exit hooks run after the body; wait for the queue to go.
  MessageQueueStats stats;
  ASSERT_TRUE(testing::Eventually([&] { return !ReadMessageQueueStats(tid, &stats); }));
  EXPECT_EQ(MessagesReleasedAtThreadExit() - released_before, 5u);
  SetLastError(0);
  EXPECT_FALSE(PostThreadMessageW(tid, WM_USER, 0, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_THREAD_ID));
}

// Tests that an invalid window filter makes GetMessageW return -1 with
// ERROR_INVALID_WINDOW_HANDLE, and PeekMessageW FALSE.
TEST_F(QueueTest, InvalidWindowFilterFails) {
  MSG msg;
  SetLastError(0);
  EXPECT_EQ(GetMessageW(&msg, reinterpret_cast<HWND>(0x12345678), 0, 0), -1);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
  SetLastError(0);
  EXPECT_FALSE(PeekMessageW(&msg, reinterpret_cast<HWND>(0x12345678), 0, 0, PM_REMOVE));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
  EXPECT_EQ(GetMessageW(nullptr, nullptr, 0, 0), -1);
}

// Tests that the diagnostics view reports the last time the queue was
// examined, by the injectable clock.
TEST_F(QueueTest, StatsReportLastPumpedTime) {
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE);
  MessageQueueStats stats;
  ASSERT_TRUE(ReadMessageQueueStats(GetCurrentThreadId(), &stats));
  EXPECT_EQ(stats.last_pumped, clock.Now());
  clock.Advance(std::chrono::seconds(3));
  PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE);
  ASSERT_TRUE(ReadMessageQueueStats(GetCurrentThreadId(), &stats));
  EXPECT_EQ(stats.last_pumped, clock.Now());
  EXPECT_EQ(stats.depth, 0u);
}

// Tests that a thread blocked in GetMessageW with an empty queue publishes
// itself as idle (kMessageIdle), and wakes for a post.
TEST_F(QueueTest, GetMessageBlocksAsIdle) {
  TestEvent ready;
  std::atomic<UINT> got{0};
  BoundedThread thread([&] {
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    ready.Set();
    if (GetMessageW(&msg, nullptr, 0, 0) > 0) got.store(msg.message);
  });
  ASSERT_TRUE(ready.Wait());
  ASSERT_TRUE(testing::Eventually(
      [&] { return ReadWaitRecord(thread.tid()).kind == BlockKind::kMessageIdle; }));
  MessageQueueStats stats;
  ASSERT_TRUE(ReadMessageQueueStats(thread.tid(), &stats));
  EXPECT_TRUE(stats.waiting_for_input);
  ASSERT_TRUE(PostThreadMessageW(thread.tid(), WM_USER + 9, 0, 0));
  thread.Join();
  EXPECT_EQ(got.load(), static_cast<UINT>(WM_USER + 9));
}

// Tests that a producer racing with a consumer that sleeps between messages
// never loses a wakeup.
TEST_F(QueueTest, NoLostWakeupsUnderRacingPostsAndSleeps) {
  constexpr int kMessages = 3000;
  const DWORD self = GetCurrentThreadId();
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
  BoundedThread producer([self] {
    for (int i = 0; i < kMessages; ++i) {
      PostThreadMessageW(self, WM_USER, i, 0);
      if (i % 7 == 0) std::this_thread::yield();
    }
  });
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(GetMessageWithin(&msg)) << i;
    ASSERT_EQ(msg.wParam, static_cast<WPARAM>(i));
  }
}

// Pins the calling thread to `cpu` (modulo the CPUs it may use).
void PinTo(int cpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  const int count = CPU_COUNT(&allowed);
  int seen = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (seen++ == cpu % count) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
      return;
    }
  }
}

// Streams bursts of posts from a producer pinned to `producer_cpu` to a
// consumer in a plain GetMessageW loop pinned to `consumer_cpu`; after each
// burst the producer waits (bounded) until the consumer has its last message.
void StreamBursts(int producer_cpu, int consumer_cpu) {
  constexpr int kBursts[] = {1, 2, 3, 64, 1, 1500, 2, 9000, 1, 20000, 5, 300};
  std::atomic<DWORD> consumer_tid{0};
  TestEvent ready, burst_done;
  std::atomic<int> failures{0};
  BoundedThread consumer([&] {
    PinTo(consumer_cpu);
    MSG msg;
    PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
    consumer_tid.store(GetCurrentThreadId());
    ready.Set();
    WPARAM expected = 0;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) {
      if (msg.wParam != expected) failures.fetch_add(1);
      expected = msg.wParam + 1;
      if (msg.lParam == 1) burst_done.Set();  // The burst's last message.
    }
  });
  ASSERT_TRUE(ready.Wait());
  BoundedThread producer([&] {
    PinTo(producer_cpu);
    WPARAM sequence = 0;
    for (int burst : kBursts) {
      ResetEvent(burst_done.get());
      for (int i = 0; i < burst; ++i) {
        const LPARAM last = i == burst - 1 ? 1 : 0;
        while (!PostThreadMessageW(consumer_tid.load(), WM_USER, sequence, last)) {
          if (GetLastError() != ERROR_NOT_ENOUGH_QUOTA) {
            failures.fetch_add(1);
            return;
          }
          std::this_thread::yield();
        }
        ++sequence;
      }
      // A burst's tail must arrive without more posts behind it.
      if (!burst_done.Wait()) {
        failures.fetch_add(1000);
        break;
      }
    }
    PostThreadMessageW(consumer_tid.load(), WM_QUIT, 0, 0);
  });
  producer.Join();
  consumer.Join();
  EXPECT_EQ(failures.load(), 0);
}

// Tests that bursts streamed from a producer on the consumer's own CPU all
// arrive, in order, each burst's last message without a later post to push it
// (the consumer yields to such a producer instead of sleeping).
TEST_F(QueueTest, StreamedBurstsArriveInOrderFromTheSameCpu) { StreamBursts(0, 0); }

// Tests the same from another CPU (the consumer lets a stream's messages
// gather before taking them, and must never hold back a burst's tail).
TEST_F(QueueTest, StreamedBurstsArriveInOrderFromAnotherCpu) { StreamBursts(0, 1); }

}  // namespace
}  // namespace apartments::internal
