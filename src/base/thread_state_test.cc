// Per-thread state, thread ids, last error, and the UTF-8/UTF-32 conversions.
#include "base/thread_state.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "apartments/win32_errors.h"
#include "apartments/win32_kernel.h"
#include "apartments/win32_types.h"

namespace apartments::internal {
namespace {

constexpr int kJoinSeconds = 10;

// A raw pthread whose join is bounded (pthread_timedjoin_np), so a thread that
// never finishes fails the test instead of hanging it. Raw pthreads also keep
// these tests below the kernel layer: nothing here creates a kernel object.
class BoundedThread {
 public:
  explicit BoundedThread(std::function<void()> body)
      : body_(std::make_unique<std::function<void()>>(std::move(body))) {
    started_ = pthread_create(&thread_, nullptr, &Run, body_.get()) == 0;
  }
  ~BoundedThread() {
    if (started_ && !joined_) pthread_detach(thread_);  // Already failing; do not hang.
  }
  BoundedThread(const BoundedThread&) = delete;
  BoundedThread& operator=(const BoundedThread&) = delete;

  // Joins within kJoinSeconds; false (and the thread is abandoned) otherwise.
  [[nodiscard]] bool Join() {
    if (!started_ || joined_) return false;
    timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += kJoinSeconds;
    joined_ = pthread_timedjoin_np(thread_, nullptr, &deadline) == 0;
    if (!joined_) body_.release();  // The thread may still run it.
    return joined_;
  }

 private:
  static void* Run(void* body) {
    (*static_cast<std::function<void()>*>(body))();
    return nullptr;
  }

  std::unique_ptr<std::function<void()>> body_;
  pthread_t thread_{};
  bool started_ = false;
  bool joined_ = false;
};

// A one-shot gate threads block on, with a bounded wait.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  [[nodiscard]] bool WaitOpen() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(kJoinSeconds), [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A counter the main thread waits on (bounded) until it reaches a value.
class Latch {
 public:
  void Arrive() {
    std::lock_guard lock(mu_);
    ++count_;
    cv_.notify_all();
  }
  [[nodiscard]] bool WaitFor(int count) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(kJoinSeconds), [&] { return count_ >= count; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

DWORD LinuxTid() { return static_cast<DWORD>(::syscall(SYS_gettid)); }

// Tests that CurrentThreadState returns the same live state on every call
// from one thread, carrying that thread's id.
TEST(ThreadStateTest, SameStateForTheSameThread) {
  ThreadState& first = CurrentThreadState();
  ThreadState& second = CurrentThreadState();
  EXPECT_EQ(&first, &second);
  EXPECT_TRUE(first.live.load());
  EXPECT_EQ(first.tid.load(), LinuxTid());
}

// Tests that CurrentThreadId and GetCurrentThreadId are the Linux tid (gettid),
// different on every thread.
TEST(ThreadStateTest, ThreadIdIsGettid) {
  EXPECT_EQ(CurrentThreadId(), LinuxTid());
  EXPECT_EQ(GetCurrentThreadId(), LinuxTid());
  DWORD other_cached = 0, other_linux = 0, other_api = 0;
  BoundedThread t([&] {
    other_cached = CurrentThreadId();
    other_linux = LinuxTid();
    other_api = GetCurrentThreadId();
  });
  ASSERT_TRUE(t.Join());
  EXPECT_EQ(other_cached, other_linux);
  EXPECT_EQ(other_api, other_linux);
  EXPECT_NE(other_cached, CurrentThreadId());
}

// Tests that two live threads have different states, each with its own tid.
TEST(ThreadStateTest, LiveThreadsHaveDistinctStates) {
  Gate release;
  Latch ready;
  ThreadState* states[2] = {};
  DWORD tids[2] = {};
  std::vector<std::unique_ptr<BoundedThread>> threads;
  for (int i = 0; i < 2; ++i) {
    threads.push_back(std::make_unique<BoundedThread>([&, i] {
      states[i] = &CurrentThreadState();
      tids[i] = LinuxTid();
      ready.Arrive();
      (void)release.WaitOpen();
    }));
  }
  ASSERT_TRUE(ready.WaitFor(2));
  EXPECT_NE(states[0], states[1]);
  EXPECT_NE(states[0], &CurrentThreadState());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(states[i]->tid.load(), tids[i]);
    EXPECT_TRUE(states[i]->live.load());
  }
  release.Open();
  for (auto& t : threads) ASSERT_TRUE(t->Join());
}

// Tests that a thread's state is recycled when it exits: it is no longer live,
// its generation is bumped, and the next new thread gets it back with a new
// tid, its generation unchanged, and no leftover description.
TEST(ThreadStateTest, StateIsRecycledWithNewGenerationAfterExit) {
  ThreadState* first_state = nullptr;
  std::uint32_t first_generation = 0;
  BoundedThread first([&] {
    first_state = &CurrentThreadState();
    first_generation = first_state->generation.load();
    first_state->SetDescription(L"first owner");
  });
  ASSERT_TRUE(first.Join());
  ASSERT_NE(first_state, nullptr);
  // The state is type-stable memory: reading it after its thread exited is allowed.
  EXPECT_FALSE(first_state->live.load());
  EXPECT_EQ(first_state->generation.load(), first_generation + 1);

  ThreadState* second_state = nullptr;
  std::uint32_t second_generation = 0;
  DWORD second_tid = 0;
  DWORD second_linux_tid = 0;
  bool second_live = false;
  std::wstring second_description = L"<unset>";
  BoundedThread second([&] {
    second_state = &CurrentThreadState();
    second_generation = second_state->generation.load();
    second_tid = second_state->tid.load();
    second_linux_tid = LinuxTid();
    second_live = second_state->live.load();
    second_description = second_state->Description();
  });
  ASSERT_TRUE(second.Join());
  EXPECT_EQ(second_state, first_state);  // The freed state was reused.
  EXPECT_EQ(second_generation, first_generation + 1);
  EXPECT_EQ(second_tid, second_linux_tid);  // Its own tid, not the first owner's.
  EXPECT_TRUE(second_live);
  EXPECT_EQ(second_description, L"");
}

// Tests that ForEachThreadState visits every live thread (with its tid) and no
// longer visits a thread once it has exited.
TEST(ThreadStateTest, ForEachThreadStateSeesLiveThreads) {
  constexpr int kThreads = 3;
  Gate release;
  Latch ready;
  std::vector<DWORD> tids(kThreads);
  std::vector<std::unique_ptr<BoundedThread>> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.push_back(std::make_unique<BoundedThread>([&, i] {
      CurrentThreadState();
      tids[i] = LinuxTid();
      ready.Arrive();
      (void)release.WaitOpen();
    }));
  }
  ASSERT_TRUE(ready.WaitFor(kThreads));
  CurrentThreadState();
  std::set<DWORD> seen;
  ForEachThreadState([&](ThreadState& state) { seen.insert(state.tid.load()); });
  for (DWORD tid : tids) EXPECT_TRUE(seen.count(tid)) << tid;
  EXPECT_TRUE(seen.count(LinuxTid()));

  release.Open();
  for (auto& t : threads) ASSERT_TRUE(t->Join());
  std::set<DWORD> after;
  ForEachThreadState([&](ThreadState& state) { after.insert(state.tid.load()); });
  for (DWORD tid : tids) EXPECT_FALSE(after.count(tid)) << tid;
  EXPECT_TRUE(after.count(LinuxTid()));
}

// Tests that a state's description is stored and read back, as UTF-32 and as
// UTF-8.
TEST(ThreadStateTest, DescriptionRoundTrips) {
  std::wstring wide;
  std::string utf8;
  BoundedThread t([&] {
    ThreadState& state = CurrentThreadState();
    EXPECT_EQ(state.Description(), L"");
    EXPECT_EQ(state.DescriptionUtf8(), "");
    state.SetDescription(L"io \u00FC\U0001F680");
    wide = state.Description();
    utf8 = state.DescriptionUtf8();
  });
  ASSERT_TRUE(t.Join());
  EXPECT_EQ(wide, L"io \u00FC\U0001F680");
  EXPECT_EQ(utf8, "io \xC3\xBC\xF0\x9F\x9A\x80");
}

// Tests that the last error is per thread: setting it on one thread does not
// change another's, and each reads back its own value.
TEST(ThreadStateTest, LastErrorIsPerThread) {
  SetLastError(1111);
  DWORD other_initial = 0xFFFF, other_after = 0;
  Gate main_changed;
  Latch other_set;
  BoundedThread t([&] {
    other_initial = GetLastError();
    SetLastError(2222);
    other_set.Arrive();
    (void)main_changed.WaitOpen();
    other_after = GetLastError();
  });
  ASSERT_TRUE(other_set.WaitFor(1));
  EXPECT_EQ(GetLastError(), 1111u);
  SetLastError(3333);
  main_changed.Open();
  ASSERT_TRUE(t.Join());
  EXPECT_EQ(other_initial, 0u);  // A new thread starts with 0.
  EXPECT_EQ(other_after, 2222u);
  EXPECT_EQ(GetLastError(), 3333u);
}

// Tests that SetLastError stores any 32-bit value exactly.
TEST(ThreadStateTest, LastErrorStoresAnyValue) {
  for (DWORD value : {0u, 6u, 0x80070006u, 0xFFFFFFFFu}) {
    SetLastError(value);
    EXPECT_EQ(GetLastError(), value);
  }
  SetLastError(0);
}

// --- UTF-8 <-> UTF-32 ---------------------------------------------------------

// Tests that ASCII converts both ways unchanged, including the empty string.
TEST(Utf8Test, AsciiRoundTrips) {
  EXPECT_EQ(WideToUtf8(L""), "");
  EXPECT_EQ(Utf8ToWide(""), L"");
  EXPECT_EQ(WideToUtf8(L"plain text 123"), "plain text 123");
  EXPECT_EQ(Utf8ToWide("plain text 123"), L"plain text 123");
}

// Tests that each UTF-8 sequence length is encoded correctly at its boundaries.
TEST(Utf8Test, EncodesEachLengthAtItsBoundaries) {
  EXPECT_EQ(WideToUtf8(std::wstring(1, L'\x7F')), "\x7F");
  EXPECT_EQ(WideToUtf8(L"\u0080"), "\xC2\x80");
  EXPECT_EQ(WideToUtf8(L"\u07FF"), "\xDF\xBF");
  EXPECT_EQ(WideToUtf8(L"\u0800"), "\xE0\xA0\x80");
  EXPECT_EQ(WideToUtf8(L"\uFFFF"), "\xEF\xBF\xBF");
  EXPECT_EQ(WideToUtf8(L"\U00010000"), "\xF0\x90\x80\x80");
  EXPECT_EQ(WideToUtf8(L"\U0010FFFF"), "\xF4\x8F\xBF\xBF");
}

// Tests that every Unicode scalar value survives UTF-32 -> UTF-8 -> UTF-32.
TEST(Utf8Test, EveryScalarValueRoundTrips) {
  std::wstring all;
  for (std::uint32_t c = 1; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    all.push_back(static_cast<wchar_t>(c));
  }
  std::string utf8 = WideToUtf8(all);
  EXPECT_EQ(Utf8ToWide(utf8), all);
  EXPECT_EQ(WideToUtf8(Utf8ToWide(utf8)), utf8);
}

// Tests that an embedded NUL survives both conversions.
TEST(Utf8Test, EmbeddedNulRoundTrips) {
  std::wstring wide(L"a\0b", 3);
  std::string utf8("a\0b", 3);
  EXPECT_EQ(WideToUtf8(wide), utf8);
  EXPECT_EQ(Utf8ToWide(utf8), wide);
}

// Tests that values that are not Unicode scalar values (surrogates, above
// U+10FFFF, negative wchar_t) encode as U+FFFD.
TEST(Utf8Test, NonScalarWideValuesBecomeReplacementCharacter) {
  const std::string kReplacement = "\xEF\xBF\xBD";
  for (std::uint32_t c : {0xD800u, 0xDBFFu, 0xDC00u, 0xDFFFu, 0x110000u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
    std::wstring wide = L"x";
    wide.push_back(static_cast<wchar_t>(c));
    wide.push_back(L'y');
    EXPECT_EQ(WideToUtf8(wide), "x" + kReplacement + "y") << std::hex << c;
  }
}

// Tests that malformed UTF-8 decodes to U+FFFD without swallowing the valid
// text around it: stray continuation bytes, invalid lead bytes, truncated
// sequences (also at the end of input).
TEST(Utf8Test, MalformedSequencesBecomeReplacementCharacters) {
  auto strip = [](std::wstring s) {
    std::wstring kept;
    int replacements = 0;
    for (wchar_t c : s) {
      if (c == 0xFFFD) {
        ++replacements;
      } else {
        kept.push_back(c);
      }
    }
    return std::make_pair(kept, replacements);
  };
  struct Case {
    std::string input;
    std::wstring valid_part;
  };
  for (const Case& c : {Case{"a\x80z", L"az"}, Case{"a\xBFz", L"az"}, Case{"a\xFFz", L"az"},
                        Case{"a\xFEz", L"az"}, Case{"a\xF8\x88\x80\x80\x80z", L"az"},
                        Case{"a\xE2\x82z", L"az"}, Case{"a\xF0\x9F\x98z", L"az"},
                        Case{"a\xC3", L"a"}, Case{"a\xE2\x82", L"a"}, Case{"\xC3\xA9\x80", L"\u00E9"}}) {
    auto [kept, replacements] = strip(Utf8ToWide(c.input));
    EXPECT_EQ(kept, c.valid_part) << "input length " << c.input.size();
    EXPECT_GE(replacements, 1) << "input length " << c.input.size();
  }
}

// Tests that overlong encodings, encoded surrogates and sequences above
// U+10FFFF are rejected (U+FFFD per byte), never decoded to the value they
// smuggle. Regression: the decoder accepted them, so "\xC0\x80" became an
// embedded NUL and "\xED\xA0\x80" a lone surrogate.
TEST(Utf8Test, OverlongSurrogateAndOutOfRangeSequencesAreRejected) {
  const wchar_t kR = 0xFFFD;
  struct Case {
    std::string input;
    std::wstring expected;
  };
  for (const Case& c : {
           Case{"\xC0\x80", {kR, kR}},                  // Overlong NUL.
           Case{"\xC1\xBF", {kR, kR}},                  // Overlong U+007F.
           Case{"\xE0\x80\xAF", {kR, kR, kR}},          // Overlong '/'.
           Case{"\xE0\x9F\xBF", {kR, kR, kR}},          // Overlong U+07FF.
           Case{"\xF0\x8F\xBF\xBF", {kR, kR, kR, kR}},  // Overlong U+FFFF.
           Case{"\xED\xA0\x80", {kR, kR, kR}},          // U+D800.
           Case{"\xED\xBF\xBF", {kR, kR, kR}},          // U+DFFF.
           Case{"\xF4\x90\x80\x80", {kR, kR, kR, kR}},  // U+110000.
           Case{"\xF7\xBF\xBF\xBF", {kR, kR, kR, kR}},  // U+1FFFFF.
       }) {
    std::wstring decoded = Utf8ToWide("<" + c.input + ">");
    EXPECT_EQ(decoded, L"<" + c.expected + L">") << "input length " << c.input.size();
  }
  // The boundaries next to them are valid.
  EXPECT_EQ(Utf8ToWide("\xED\x9F\xBF"), L"\uD7FF");
  EXPECT_EQ(Utf8ToWide("\xEE\x80\x80"), L"\uE000");
  EXPECT_EQ(Utf8ToWide("\xF4\x8F\xBF\xBF"), L"\U0010FFFF");
  EXPECT_EQ(Utf8ToWide("\xE0\xA0\x80"), L"\u0800");
  EXPECT_EQ(Utf8ToWide("\xC2\x80"), L"\u0080");
}

}  // namespace
}  // namespace apartments::internal
