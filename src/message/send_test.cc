// Tests of SendMessageW, SendMessageTimeoutW, InSendMessage(Ex), ReplyMessage.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "message/test_util.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::CreateMessageWindow;
using testing::DrainQueue;
using testing::Eventually;
using testing::ScopedClass;
using testing::TestEvent;

constexpr UINT kDouble = WM_USER + 1;     // Returns wParam * 2.
constexpr UINT kWhoAmI = WM_USER + 2;     // Returns the thread id it runs on.
constexpr UINT kInSend = WM_USER + 3;     // Returns InSendMessageEx(NULL).
constexpr UINT kRecord = WM_USER + 4;     // Appends wParam to t_order.
constexpr UINT kSendBack = WM_USER + 5;   // Sends kDouble(wParam) to the hwnd in lParam, + 1.
constexpr UINT kReplyEarly = WM_USER + 6; // ReplyMessage(42), then waits on the event in lParam.

thread_local std::vector<WPARAM>* t_order = nullptr;
std::atomic<DWORD> g_inner_send_error{0};

LRESULT CALLBACK SendProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  switch (message) {
    case kDouble: return static_cast<LRESULT>(wparam * 2);
    case kWhoAmI: return GetCurrentThreadId();
    case kInSend: return static_cast<LRESULT>(InSendMessageEx(nullptr)) | (InSendMessage() ? 0x100 : 0);
    case kRecord:
      if (t_order != nullptr) t_order->push_back(wparam);
      return 0;
    case kSendBack: {
      DWORD_PTR result = 0;
      if (!SendMessageTimeoutW(reinterpret_cast<HWND>(lparam), kDouble, wparam, 0, SMTO_NORMAL,
                               wparam == 999 ? 100 : testing::kBoundMs, &result)) {
        g_inner_send_error.store(GetLastError());
        return -1;
      }
      return static_cast<LRESULT>(result) + 1;
    }
    case kReplyEarly: {
      EXPECT_TRUE(ReplyMessage(42));
      EXPECT_FALSE(ReplyMessage(43));
      EXPECT_EQ(InSendMessageEx(nullptr), ISMEX_SEND | ISMEX_REPLIED);
      bool resumed = WaitForSingleObject(reinterpret_cast<HANDLE>(lparam), testing::kBoundMs) ==
                     WAIT_OBJECT_0;
      EXPECT_TRUE(resumed);
      return 0;
    }
    default: return DefWindowProcW(hwnd, message, wparam, lparam);
  }
}

class SendTest : public ::testing::Test {
 protected:
  void SetUp() override { DrainQueue(); }
  void TearDown() override { DrainQueue(); }
  ScopedClass class_{L"ApartmentsSendTest", &SendProc};
};

// A thread owning one window that pumps with GetMessageW until WM_QUIT. It
// pumps only after `Start()`, so tests can queue things first.
class PumpThread {
 public:
  explicit PumpThread(const wchar_t* class_name, bool pump = true)
      : thread_([this, class_name, pump] {
          hwnd_ = CreateMessageWindow(class_name);
          created_.Set();
          if (!start_.Wait()) return;
          if (!pump) return;
          std::vector<WPARAM> order;
          t_order = &order;
          MSG msg;
          while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
          t_order = nullptr;
          order_ = order;
        }) {
    EXPECT_TRUE(created_.Wait());
  }
  ~PumpThread() { Stop(); }
  void Start() { start_.Set(); }
  void Stop() {
    Start();
    PostThreadMessageW(thread_.tid(), WM_QUIT, 0, 0);
    thread_.Join();
  }
  HWND hwnd() const { return hwnd_; }
  DWORD tid() const { return thread_.tid(); }
  const std::vector<WPARAM>& order() const { return order_; }

 private:
  TestEvent created_, start_;
  HWND hwnd_ = nullptr;
  std::vector<WPARAM> order_;
  BoundedThread thread_;
};

// Tests that SendMessageW to a window of the calling thread calls the window
// procedure directly (not "in a send").
TEST_F(SendTest, SameThreadSendCallsProcedureDirectly) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  EXPECT_EQ(SendMessageW(hwnd, kDouble, 21, 0), 42);
  EXPECT_EQ(SendMessageW(hwnd, kInSend, 0, 0), static_cast<LRESULT>(ISMEX_NOSEND));
  EXPECT_FALSE(InSendMessage());
  DestroyWindow(hwnd);
}

// Tests that a cross-thread send runs on the window's thread and returns its
// result, and that the procedure sees it is serving a sent message.
TEST_F(SendTest, CrossThreadSendReturnsResultFromOwningThread) {
  PumpThread target(class_.name());
  target.Start();
  EXPECT_EQ(SendMessageW(target.hwnd(), kDouble, 50, 0), 100);
  EXPECT_EQ(static_cast<DWORD>(SendMessageW(target.hwnd(), kWhoAmI, 0, 0)), target.tid());
  EXPECT_EQ(SendMessageW(target.hwnd(), kInSend, 0, 0), static_cast<LRESULT>(ISMEX_SEND | 0x100));
}

// Tests that the receiver serves sent messages before posted ones.
TEST_F(SendTest, SentMessagesAreServedBeforePostedOnes) {
  PumpThread target(class_.name());
  ASSERT_TRUE(PostMessageW(target.hwnd(), kRecord, 1, 0));
  LRESULT sent_result = -1;
  BoundedThread sender([&] { sent_result = SendMessageW(target.hwnd(), kRecord, 2, 0); });
  MessageQueueStats stats;
  ASSERT_TRUE(Eventually([&] {
    return ReadMessageQueueStats(target.tid(), &stats) && stats.sent_pending == 1;
  }));
  target.Start();
  sender.Join();
  EXPECT_EQ(sent_result, 0);
  target.Stop();
  ASSERT_EQ(target.order().size(), 2u);
  EXPECT_EQ(target.order()[0], 2u);  // The sent one.
  EXPECT_EQ(target.order()[1], 1u);
}

// Tests that two threads sending to each other complete: the waiting sender
// serves the message sent back to it.
TEST_F(SendTest, MutualSendsComplete) {
  PumpThread other(class_.name());
  other.Start();
  HWND mine = CreateMessageWindow(class_.name());
  ASSERT_NE(mine, nullptr);
  DWORD_PTR result = 0;
  // other's procedure sends kDouble(10) back to `mine` while we wait.
  ASSERT_TRUE(SendMessageTimeoutW(other.hwnd(), kSendBack, 10, reinterpret_cast<LPARAM>(mine),
                                  SMTO_NORMAL, testing::kBoundMs, &result));
  EXPECT_EQ(result, 21u);
  DestroyWindow(mine);
}

// Tests that with SMTO_BLOCK the waiting sender does not serve sends to it:
// the receiver's send back times out.
TEST_F(SendTest, SmtoBlockDoesNotServeIncomingSends) {
  PumpThread other(class_.name());
  other.Start();
  HWND mine = CreateMessageWindow(class_.name());
  g_inner_send_error.store(0);
  DWORD_PTR result = 0;
  ASSERT_TRUE(SendMessageTimeoutW(other.hwnd(), kSendBack, 999, reinterpret_cast<LPARAM>(mine),
                                  SMTO_BLOCK, testing::kBoundMs, &result));
  EXPECT_EQ(static_cast<LRESULT>(result), -1);
  EXPECT_EQ(g_inner_send_error.load(), static_cast<DWORD>(ERROR_TIMEOUT));
  // The withdrawn inner send never runs here.
  MSG msg;
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  DestroyWindow(mine);
}

// Tests that SendMessageTimeoutW to a thread that never pumps returns after
// its timeout with ERROR_TIMEOUT, and the message never runs.
TEST_F(SendTest, TimeoutToThreadThatNeverPumps) {
  PumpThread target(class_.name(), /*pump=*/false);
  auto start = std::chrono::steady_clock::now();
  DWORD_PTR result = 123;
  SetLastError(0);
  EXPECT_EQ(SendMessageTimeoutW(target.hwnd(), kDouble, 1, 0, SMTO_NORMAL, 100, &result), 0);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TIMEOUT));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(95));
  EXPECT_EQ(result, 123u);
  MessageQueueStats stats;
  ASSERT_TRUE(ReadMessageQueueStats(target.tid(), &stats));
  EXPECT_EQ(stats.sent_pending, 0u);  // Withdrawn.
}

// Tests that a zero timeout means no timeout, as on Windows NT (Wine's
// test_SendMessageTimeout): the send waits for a receiver that starts
// pumping later and returns its result. Regression: it failed at once.
TEST_F(SendTest, ZeroTimeoutWaitsForTheReply) {
  PumpThread target(class_.name());  // Pumps once started.
  BoundedThread starter([&] {
    // Start pumping only once the sender waits for its reply.
    if (Eventually([&] {
          MessageQueueStats stats;
          return ReadMessageQueueStats(target.tid(), &stats) && stats.sent_pending == 1;
        })) {
      target.Start();
    }
  });
  DWORD_PTR result = 0;
  EXPECT_NE(SendMessageTimeoutW(target.hwnd(), kDouble, 21, 0, SMTO_NORMAL, 0, &result), 0);
  EXPECT_EQ(result, 42u);
  starter.Join();
}

// Tests that a timeout with the high bit set (other than INFINITE) fails at
// once with ERROR_TIMEOUT and the message is never delivered, as Windows
// reads it as negative (Wine's test_SendMessageTimeout, 0x80000000).
TEST_F(SendTest, HighBitTimeoutFailsAtOnceWithoutDelivering) {
  PumpThread target(class_.name(), /*pump=*/false);
  for (UINT timeout : {0x80000000u, 0xFFFFFFFEu}) {
    DWORD_PTR result = 123;
    SetLastError(0);
    EXPECT_EQ(SendMessageTimeoutW(target.hwnd(), kDouble, 1, 0, SMTO_NORMAL, timeout, &result), 0);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TIMEOUT));
    EXPECT_EQ(result, 123u);
    MessageQueueStats stats;
    ASSERT_TRUE(ReadMessageQueueStats(target.tid(), &stats));
    EXPECT_EQ(stats.sent_pending, 0u);  // Never queued.
  }
}

// Tests that INFINITE (high bit set too) still waits for the reply.
TEST_F(SendTest, InfiniteTimeoutWaits) {
  PumpThread target(class_.name());
  target.Start();
  DWORD_PTR result = 0;
  EXPECT_NE(SendMessageTimeoutW(target.hwnd(), kDouble, 4, 0, SMTO_NORMAL, INFINITE, &result), 0);
  EXPECT_EQ(result, 8u);
}

// Tests that SMTO_ABORTIFHUNG fails at once for a receiver that has not
// looked at its queue for 5 s (by the injectable clock).
TEST_F(SendTest, AbortIfHungFailsAtOnceForHungReceiver) {
  FakeClock clock;
  ScopedClockForTesting scoped(&clock);
  PumpThread target(class_.name(), /*pump=*/false);
  clock.Advance(std::chrono::seconds(6));
  auto start = std::chrono::steady_clock::now();
  SetLastError(0);
  EXPECT_EQ(SendMessageTimeoutW(target.hwnd(), kDouble, 1, 0, SMTO_ABORTIFHUNG, testing::kBoundMs,
                                nullptr),
            0);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_TIMEOUT));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// Tests that ReplyMessage lets the sender resume before the procedure returns.
TEST_F(SendTest, ReplyMessageReleasesSenderEarly) {
  TestEvent sender_resumed;  // Outlives the target, which waits on it.
  PumpThread target(class_.name());
  target.Start();
  EXPECT_EQ(SendMessageW(target.hwnd(), kReplyEarly, 0, reinterpret_cast<LPARAM>(sender_resumed.get())),
            42);
  sender_resumed.Set();  // The procedure is still waiting for this.
  EXPECT_FALSE(ReplyMessage(1));  // Not serving a send here.
}

// Tests that a sender waiting for a reply publishes kSendMessage with the
// receiver's thread id.
TEST_F(SendTest, WaitingSenderPublishesSendMessageBlock) {
  PumpThread target(class_.name());
  LRESULT result = 0;
  BoundedThread sender([&] { result = SendMessageW(target.hwnd(), kDouble, 4, 0); });
  ASSERT_TRUE(Eventually([&] {
    WaitRecord record = ReadWaitRecord(sender.tid());
    return record.kind == BlockKind::kSendMessage && record.target_tid == target.tid();
  }));
  target.Start();
  sender.Join();
  EXPECT_EQ(result, 8);
}

// Tests that a send fails when the receiver exits without serving it.
TEST_F(SendTest, SendFailsWhenReceiverExits) {
  auto target = std::make_unique<PumpThread>(class_.name(), /*pump=*/false);
  HWND hwnd = target->hwnd();
  DWORD tid = target->tid();
  LRESULT result = 1;
  DWORD error = 0;
  BoundedThread sender([&] {
    SetLastError(0);
    result = SendMessageW(hwnd, kDouble, 4, 0);
    error = GetLastError();
  });
  MessageQueueStats stats;
  ASSERT_TRUE(Eventually(
      [&] { return ReadMessageQueueStats(tid, &stats) && stats.sent_pending == 1; }));
  target.reset();  // Exits without pumping.
  sender.Join();
  EXPECT_EQ(result, 0);
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
}

// Tests many concurrent senders to one receiver: every reply reaches its own
// sender.
TEST_F(SendTest, ConcurrentSendersGetTheirOwnReplies) {
  PumpThread target(class_.name());
  target.Start();
  std::atomic<int> wrong{0};
  {
    std::vector<std::unique_ptr<BoundedThread>> senders;
    for (int s = 0; s < 4; ++s) {
      senders.push_back(std::make_unique<BoundedThread>([&, s] {
        for (int i = 0; i < 200; ++i) {
          WPARAM value = static_cast<WPARAM>(s * 1000 + i);
          if (SendMessageW(target.hwnd(), kDouble, value, 0) != static_cast<LRESULT>(value * 2)) {
            wrong.fetch_add(1);
          }
        }
      }));
    }
  }
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace apartments::internal
