// Tests of window classes and message-only windows, including forged handles.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "message/test_util.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::CreateMessageWindow;
using testing::DrainQueue;
using testing::ScopedClass;
using testing::TestEvent;

// What the test window procedure saw, on the calling thread.
struct Seen {
  std::vector<UINT> messages;
  LPVOID create_param = nullptr;
  WPARAM last_wparam = 0;
};
thread_local Seen* t_seen = nullptr;

LRESULT CALLBACK RecordingProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam) {
  if (t_seen != nullptr) {
    t_seen->messages.push_back(message);
    t_seen->last_wparam = wparam;
    if (message == WM_CREATE) {
      t_seen->create_param = reinterpret_cast<CREATESTRUCTW*>(lparam)->lpCreateParams;
    }
  }
  if (message == WM_USER + 100) return static_cast<LRESULT>(wparam * 2);
  return DefWindowProcW(hwnd, message, wparam, lparam);
}

LRESULT CALLBACK OtherProc(HWND, UINT, WPARAM, LPARAM) { return 77; }

class WindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DrainQueue();
    t_seen = &seen_;
  }
  void TearDown() override {
    t_seen = nullptr;
    DrainQueue();
  }
  Seen seen_;
  ScopedClass class_{L"ApartmentsTestWindow", &RecordingProc};
};

// Tests that an unregistered class's atom is free again: registering and
// unregistering a class more times than there are class atoms never fails
// (it used to fail with ERROR_NOT_ENOUGH_MEMORY after 16,384 registrations).
TEST_F(WindowTest, RegisterUnregisterCyclesNeverExhaustAtoms) {
  WNDCLASSW wc{};
  wc.lpfnWndProc = &RecordingProc;
  wc.lpszClassName = L"ApartmentsCycledClass";
  for (int i = 0; i < 0x4000 + 100; ++i) {
    const ATOM atom = RegisterClassW(&wc);
    ASSERT_NE(atom, 0) << "registration " << i << " failed with " << GetLastError();
    ASSERT_GE(atom, 0xC000);
    ASSERT_TRUE(UnregisterClassW(wc.lpszClassName, nullptr)) << "registration " << i;
  }
}

// Tests that class registration refuses duplicates, case-insensitively.
TEST_F(WindowTest, RegisterClassRefusesDuplicates) {
  ASSERT_NE(class_.atom(), 0);
  EXPECT_GE(class_.atom(), 0xC000);
  WNDCLASSW wc{};
  wc.lpfnWndProc = &RecordingProc;
  wc.lpszClassName = L"apartmentstestWINDOW";
  SetLastError(0);
  EXPECT_EQ(RegisterClassW(&wc), 0);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_CLASS_ALREADY_EXISTS));
  WNDCLASSEXW wcx{};
  wcx.cbSize = sizeof wcx - 1;
  wcx.lpfnWndProc = &RecordingProc;
  wcx.lpszClassName = L"Other";
  EXPECT_EQ(RegisterClassExW(&wcx), 0);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  wcx.cbSize = sizeof wcx;
  ATOM atom = RegisterClassExW(&wcx);
  EXPECT_NE(atom, 0);
  EXPECT_TRUE(UnregisterClassW(MAKEINTATOM(atom), nullptr));
}

// Tests that a class with windows cannot be unregistered, and an unknown one
// is reported as such.
TEST_F(WindowTest, UnregisterClassErrors) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  SetLastError(0);
  EXPECT_FALSE(UnregisterClassW(class_.name(), nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_CLASS_HAS_WINDOWS));
  EXPECT_TRUE(DestroyWindow(hwnd));
  EXPECT_FALSE(UnregisterClassW(L"NoSuchClass", nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_CLASS_DOES_NOT_EXIST));
}

// Tests creation: WM_NCCREATE then WM_CREATE with the creation parameter; the
// window is live and owned by the calling thread.
TEST_F(WindowTest, CreateWindowSendsCreationMessages) {
  int param = 0;
  HWND hwnd = CreateMessageWindow(class_.name(), &param);
  ASSERT_NE(hwnd, nullptr);
  ASSERT_GE(seen_.messages.size(), 2u);
  EXPECT_EQ(seen_.messages[0], static_cast<UINT>(WM_NCCREATE));
  EXPECT_EQ(seen_.messages[1], static_cast<UINT>(WM_CREATE));
  EXPECT_EQ(seen_.create_param, &param);
  EXPECT_TRUE(IsWindow(hwnd));
  DWORD pid = 0;
  EXPECT_EQ(GetWindowThreadProcessId(hwnd, &pid), GetCurrentThreadId());
  EXPECT_EQ(pid, GetCurrentProcessId());
  EXPECT_TRUE(DestroyWindow(hwnd));
}

// Tests that a NULL parent also gives a (message-only) window, by atom too.
TEST_F(WindowTest, NullParentAndAtomClassName) {
  HWND hwnd = CreateWindowExW(0, MAKEINTATOM(class_.atom()), nullptr, 0, 0, 0, 0, 0, nullptr,
                              nullptr, nullptr, nullptr);
  ASSERT_NE(hwnd, nullptr);
  EXPECT_TRUE(DestroyWindow(hwnd));
}

// Tests creation failures: unknown class, a real window as parent, a bad parent.
TEST_F(WindowTest, CreateWindowErrors) {
  SetLastError(0);
  EXPECT_EQ(CreateMessageWindow(L"NoSuchClass"), nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_CANNOT_FIND_WND_CLASS));
  HWND parent = CreateMessageWindow(class_.name());
  ASSERT_NE(parent, nullptr);
  EXPECT_EQ(CreateWindowExW(0, class_.name(), L"", 0, 0, 0, 0, 0, parent, nullptr, nullptr, nullptr),
            nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_NOT_SUPPORTED));
  EXPECT_EQ(CreateWindowExW(0, class_.name(), L"", 0, 0, 0, 0, 0,
                            reinterpret_cast<HWND>(0x7777), nullptr, nullptr, nullptr),
            nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
  EXPECT_TRUE(DestroyWindow(parent));
}

// Tests that a message posted to a window is retrieved with its hwnd and
// dispatched to the window procedure.
TEST_F(WindowTest, PostedWindowMessageIsDispatched) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  ASSERT_TRUE(PostMessageW(hwnd, WM_USER + 100, 21, 0));
  MSG msg;
  ASSERT_TRUE(testing::GetMessageWithin(&msg));
  EXPECT_EQ(msg.hwnd, hwnd);
  EXPECT_EQ(DispatchMessageW(&msg), 42);
  EXPECT_EQ(seen_.messages.back(), static_cast<UINT>(WM_USER + 100));
  EXPECT_TRUE(DestroyWindow(hwnd));
}

// Tests that a window filter retrieves only that window's messages.
TEST_F(WindowTest, WindowFilterSelectsMessages) {
  HWND a = CreateMessageWindow(class_.name());
  HWND b = CreateMessageWindow(class_.name());
  ASSERT_TRUE(PostMessageW(a, WM_USER, 1, 0));
  ASSERT_TRUE(PostMessageW(b, WM_USER, 2, 0));
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 3, 0));
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, b, 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 2u);
  EXPECT_FALSE(PeekMessageW(&msg, b, 0, 0, PM_REMOVE));
  ASSERT_TRUE(PeekMessageW(&msg, reinterpret_cast<HWND>(-1), 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 3u);
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 1u);
  DestroyWindow(a);
  DestroyWindow(b);
}

// Tests destruction: WM_DESTROY then WM_NCDESTROY, then the handle is invalid
// everywhere.
TEST_F(WindowTest, DestroyWindowInvalidatesHandle) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  seen_.messages.clear();
  ASSERT_TRUE(DestroyWindow(hwnd));
  ASSERT_EQ(seen_.messages.size(), 2u);
  EXPECT_EQ(seen_.messages[0], static_cast<UINT>(WM_DESTROY));
  EXPECT_EQ(seen_.messages[1], static_cast<UINT>(WM_NCDESTROY));
  EXPECT_FALSE(IsWindow(hwnd));
  SetLastError(0);
  EXPECT_FALSE(PostMessageW(hwnd, WM_USER, 0, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
  EXPECT_FALSE(DestroyWindow(hwnd));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
}

// Tests that an HWND fits in 31 bits, as on 64-bit Windows: truncated to 32
// bits and widened back, signed or unsigned, it is the same live window.
TEST_F(WindowTest, HwndSurvivesTruncationTo32Bits) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  EXPECT_LT(reinterpret_cast<std::uintptr_t>(hwnd), std::uintptr_t{0x80000000u});
  HWND unsigned_copy = static_cast<HWND>(ULongToHandle(HandleToULong(hwnd)));
  HWND signed_copy = static_cast<HWND>(LongToHandle(HandleToLong(hwnd)));
  EXPECT_EQ(unsigned_copy, hwnd);
  EXPECT_EQ(signed_copy, hwnd);
  EXPECT_TRUE(IsWindow(signed_copy));
  EXPECT_TRUE(DestroyWindow(unsigned_copy));
}

// Tests that messages posted to a window destroyed before they are pumped are
// dropped and counted.
TEST_F(WindowTest, MessagesForDestroyedWindowAreDroppedAndCounted) {
  const std::uint64_t dropped_before = MessagesDroppedForDestroyedWindows();
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_TRUE(PostMessageW(hwnd, WM_USER, 1, 0));
  ASSERT_TRUE(PostMessageW(hwnd, WM_USER, 2, 0));
  ASSERT_TRUE(PostThreadMessageW(GetCurrentThreadId(), WM_USER, 3, 0));
  ASSERT_TRUE(DestroyWindow(hwnd));
  MSG msg;
  ASSERT_TRUE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(msg.wParam, 3u);
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
  EXPECT_EQ(MessagesDroppedForDestroyedWindows() - dropped_before, 2u);
  MessageQueueStats stats;
  ASSERT_TRUE(ReadMessageQueueStats(GetCurrentThreadId(), &stats));
  EXPECT_GE(stats.dropped_destroyed_window, 2u);
  EXPECT_EQ(stats.depth, 0u);
}

// Tests that only the owning thread may destroy a window.
TEST_F(WindowTest, DestroyWindowFromOtherThreadIsDenied) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  BOOL destroyed = TRUE;
  DWORD error = 0;
  BoundedThread([&] {
    destroyed = DestroyWindow(hwnd);
    error = GetLastError();
  }).Join();
  EXPECT_FALSE(destroyed);
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_ACCESS_DENIED));
  EXPECT_TRUE(IsWindow(hwnd));
  EXPECT_TRUE(DestroyWindow(hwnd));
}

// Tests GWLP_USERDATA and GWLP_WNDPROC, and an unsupported index.
TEST_F(WindowTest, WindowLongPtrUserDataAndWndProc) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  EXPECT_EQ(GetWindowLongPtrW(hwnd, GWLP_USERDATA), 0);
  EXPECT_EQ(SetWindowLongPtrW(hwnd, GWLP_USERDATA, 1234), 0);
  EXPECT_EQ(GetWindowLongPtrW(hwnd, GWLP_USERDATA), 1234);
  EXPECT_EQ(GetWindowLongPtrW(hwnd, GWLP_WNDPROC), reinterpret_cast<LONG_PTR>(&RecordingProc));
  EXPECT_EQ(SetWindowLongPtrW(hwnd, GWLP_WNDPROC, reinterpret_cast<LONG_PTR>(&OtherProc)),
            reinterpret_cast<LONG_PTR>(&RecordingProc));
  EXPECT_EQ(SendMessageW(hwnd, WM_USER, 0, 0), 77);
  SetLastError(0);
  EXPECT_EQ(GetWindowLongPtrW(hwnd, 12345), 0);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_INDEX));
  EXPECT_TRUE(DestroyWindow(hwnd));
}

// Tests that WM_CLOSE through DefWindowProcW destroys the window.
TEST_F(WindowTest, DefWindowProcClosesWindow) {
  HWND hwnd = CreateMessageWindow(class_.name());
  ASSERT_NE(hwnd, nullptr);
  SendMessageW(hwnd, WM_CLOSE, 0, 0);
  EXPECT_FALSE(IsWindow(hwnd));
}

// Tests that a thread's windows are destroyed when it exits.
TEST_F(WindowTest, ThreadExitDestroysItsWindows) {
  HWND hwnd = nullptr;
  BoundedThread([&] { hwnd = CreateMessageWindow(class_.name()); }).Join();
  ASSERT_NE(hwnd, nullptr);
  ASSERT_TRUE(testing::Eventually([&] { return !IsWindow(hwnd); }));
  SetLastError(0);
  EXPECT_FALSE(PostMessageW(hwnd, WM_USER, 0, 0));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
}

// Tests every HWND-taking and thread-id-taking function with random forged
// and stale values: each fails cleanly with the documented error.
TEST_F(WindowTest, ForgedHandlesAndThreadIdsFailCleanly) {
  std::mt19937_64 random(20240604);
  std::vector<HWND> candidates;
  // Stale handles: created and destroyed.
  for (int i = 0; i < 8; ++i) {
    HWND hwnd = CreateMessageWindow(class_.name());
    ASSERT_NE(hwnd, nullptr);
    DestroyWindow(hwnd);
    candidates.push_back(hwnd);
  }
  for (int i = 0; i < 400; ++i) {
    std::uint64_t value = random();
    switch (i % 4) {
      case 0: break;                                  // Any 64-bit value.
      case 1: value &= 0xFFFFFFFFu; break;            // 32-bit values.
      case 2: value &= 0xFFFFu; break;                // Bare indexes.
      case 3: value = (value & 0xFFFF0000u) | 1; break;  // Index 1, any generation.
    }
    candidates.push_back(reinterpret_cast<HWND>(value));
  }
  HWND live = CreateMessageWindow(class_.name());
  ASSERT_NE(live, nullptr);
  for (HWND hwnd : candidates) {
    if (hwnd == nullptr || hwnd == live || hwnd == HWND_BROADCAST ||
        hwnd == reinterpret_cast<HWND>(-1)) {
      continue;
    }
    SCOPED_TRACE(reinterpret_cast<std::uintptr_t>(hwnd));
    EXPECT_FALSE(IsWindow(hwnd));
    SetLastError(0);
    EXPECT_FALSE(PostMessageW(hwnd, WM_USER, 0, 0));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
    SetLastError(0);
    EXPECT_EQ(SendMessageW(hwnd, WM_USER, 0, 0), 0);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
    DWORD_PTR result = 0;
    EXPECT_EQ(SendMessageTimeoutW(hwnd, WM_USER, 0, 0, SMTO_NORMAL, 10, &result), 0);
    EXPECT_FALSE(DestroyWindow(hwnd));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
    EXPECT_EQ(GetWindowThreadProcessId(hwnd, nullptr), 0u);
    EXPECT_EQ(GetWindowLongPtrW(hwnd, GWLP_USERDATA), 0);
    EXPECT_EQ(SetWindowLongPtrW(hwnd, GWLP_USERDATA, 5), 0);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
    MSG msg{};
    msg.hwnd = hwnd;
    msg.message = WM_USER;
    EXPECT_EQ(DispatchMessageW(&msg), 0);
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_WINDOW_HANDLE));
    EXPECT_EQ(GetMessageW(&msg, hwnd, 0, 0), -1);
    EXPECT_FALSE(PeekMessageW(&msg, hwnd, 0, 0, PM_REMOVE));
    EXPECT_EQ(CreateWindowExW(0, class_.name(), L"", 0, 0, 0, 0, 0, hwnd, nullptr, nullptr,
                              nullptr),
              nullptr);
  }
  EXPECT_TRUE(IsWindow(live));
  EXPECT_EQ(GetWindowLongPtrW(live, GWLP_USERDATA), 0);  // Untouched by the forgeries.
  EXPECT_TRUE(DestroyWindow(live));
  // Thread ids: random values that name no queue.
  for (int i = 0; i < 400; ++i) {
    DWORD tid = static_cast<DWORD>(random());
    if (i % 2 == 0) tid &= 0x3FFFFF;  // Plausible Linux thread ids.
    MessageQueueStats stats;
    if (ReadMessageQueueStats(tid, &stats)) continue;
    SetLastError(0);
    EXPECT_FALSE(PostThreadMessageW(tid, WM_USER, 0, 0)) << tid;
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_THREAD_ID)) << tid;
  }
  MSG msg;
  EXPECT_FALSE(PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE));
}

// Tests that lock-free window lookups racing with creation and destruction
// (and reuse of the slots by another thread's windows) never see a mix of two
// windows: a looked-up HWND is either the live window of the thread that
// created it, or invalid with ERROR_INVALID_WINDOW_HANDLE.
TEST_F(WindowTest, LookupsRacingDestroyAndReuseNeverMixWindows) {
  constexpr int kWindows = 3000;  // Beyond the 1,024 frees before slot reuse.
  std::atomic<std::uintptr_t> latest{0};
  std::atomic<DWORD> owner{0};
  std::atomic<bool> done{false};
  std::atomic<int> mixed{0}, wrong_error{0}, valid{0};
  auto churn = [&](bool publish) {
    if (publish) owner.store(GetCurrentThreadId());
    for (int i = 0; i < kWindows; ++i) {
      HWND hwnd = CreateMessageWindow(class_.name());
      if (hwnd == nullptr) continue;
      if (publish) latest.store(reinterpret_cast<std::uintptr_t>(hwnd));
      PostMessageW(hwnd, WM_USER, 0, 0);
      DestroyWindow(hwnd);
      DrainQueue();
    }
  };
  BoundedThread reader([&] {
    while (!done.load()) {
      const auto hwnd = reinterpret_cast<HWND>(latest.load());
      if (hwnd == nullptr) continue;
      SetLastError(0);
      const DWORD tid = GetWindowThreadProcessId(hwnd, nullptr);
      if (tid == 0) {
        if (GetLastError() != ERROR_INVALID_WINDOW_HANDLE) wrong_error.fetch_add(1);
      } else if (tid != owner.load()) {
        mixed.fetch_add(1);
      } else {
        valid.fetch_add(1);
      }
      // A live window's queue may also be full (its thread drains it only
      // between windows): ERROR_NOT_ENOUGH_QUOTA is right then.
      if (!PostMessageW(hwnd, WM_USER + 1, 0, 0) &&
          GetLastError() != ERROR_INVALID_WINDOW_HANDLE &&
          GetLastError() != ERROR_NOT_ENOUGH_QUOTA) {
        wrong_error.fetch_add(1);
      }
    }
  });
  {
    BoundedThread publisher([&] { churn(true); });
    BoundedThread other([&] { churn(false); });
  }
  done.store(true);
  reader.Join();
  EXPECT_EQ(mixed.load(), 0);
  EXPECT_EQ(wrong_error.load(), 0);
  std::printf("window lookups: %d saw the live window\n", valid.load());
}

}  // namespace
}  // namespace apartments::internal
