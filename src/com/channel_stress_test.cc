// Stress test of the channel: many threads calling into several STAs (some
// calls nesting into another STA) while some of the STAs shut down.
#include <atomic>
#include <memory>
#include <random>
#include <vector>

#include "apartments/win32.h"
#include "com/apartment.h"
#include "com/com_test_util.h"
#include "gtest/gtest.h"
#include "kernel/kernel.h"

namespace apartments::internal {
namespace {

using testing::BoundedThread;
using testing::Eventually;
using testing::StaThread;

struct Outcomes {
  std::atomic<int> ok{0}, disconnected{0}, other{0};
  void Count(HRESULT hr) {
    if (hr == S_OK) {
      ++ok;
    } else if (hr == RPC_E_DISCONNECTED) {
      ++disconnected;
    } else {
      ++other;
    }
  }
  int total() const { return ok + disconnected + other; }
};

// Tests that every call ends while STAs shut down under load: the outcome
// counts add up to the calls made, every successful call ran exactly once,
// calls fail only with RPC_E_DISCONNECTED, and no handle leaks.
TEST(ChannelStressTest, CallsWhileStasShutDownAllEnd) {
  constexpr int kStas = 4;
  constexpr int kCallers = 8;
  constexpr int kCallsEach = 150;
  const std::size_t handles_before = OpenHandleCountForTesting();
  std::atomic<int> ran{0}, nested_ran{0};
  Outcomes outer, nested;
  {
    std::vector<std::unique_ptr<StaThread>> stas;
    std::vector<ApartmentRef> targets;
    for (int i = 0; i < kStas; ++i) {
      stas.push_back(std::make_unique<StaThread>(L"stress-sta"));
      targets.push_back(stas.back()->apartment());
    }
    std::vector<std::unique_ptr<BoundedThread>> callers;
    for (int c = 0; c < kCallers; ++c) {
      callers.push_back(std::make_unique<BoundedThread>([&, c] {
        const bool sta = c % 2 == 0;
        ASSERT_TRUE(SUCCEEDED(
            CoInitializeEx(nullptr, sta ? COINIT_APARTMENTTHREADED : COINIT_MULTITHREADED)));
        std::minstd_rand rng(static_cast<unsigned>(c + 1));
        for (int i = 0; i < kCallsEach; ++i) {
          const ApartmentRef& target = targets[rng() % kStas];
          const ApartmentRef& other = targets[rng() % kStas];
          const bool nest = rng() % 4 == 0 && other != target;
          outer.Count(InvokeInApartment(target, [&] {
            ++ran;
            if (nest) {
              nested.Count(InvokeInApartment(other, [&] {
                ++nested_ran;
                return S_OK;
              }));
            }
            return S_OK;
          }));
        }
        CoUninitialize();
      }));
    }
    // Shut two STAs down while the calls flow.
    ASSERT_TRUE(Eventually([&] { return outer.total() >= kCallers * kCallsEach / 3; }));
    stas[0]->Stop();
    stas[1]->Stop();
    for (auto& c : callers) c->Join();
  }
  EXPECT_EQ(outer.total(), kCallers * kCallsEach);
  EXPECT_EQ(outer.other.load(), 0);
  EXPECT_EQ(nested.other.load(), 0);
  EXPECT_EQ(ran.load(), outer.ok.load());
  EXPECT_EQ(nested_ran.load(), nested.ok.load());
  EXPECT_GT(outer.disconnected.load(), 0);
  EXPECT_GT(outer.ok.load(), 0);
  EXPECT_EQ(OpenHandleCountForTesting(), handles_before);
}

}  // namespace
}  // namespace apartments::internal
