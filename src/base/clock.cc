#include "apartments/clock.h"

namespace apartments {
namespace {

class SystemClock final : public Clock {
 public:
  TimePoint Now() const noexcept override { return std::chrono::steady_clock::now(); }
};

const SystemClock kSystemClock;
std::atomic<const Clock*> g_clock{&kSystemClock};

}  // namespace

const Clock& GetClock() noexcept { return *g_clock.load(std::memory_order_acquire); }

void SetClockForTesting(const Clock* clock) noexcept {
  g_clock.store(clock != nullptr ? clock : &kSystemClock, std::memory_order_release);
}

}  // namespace apartments
