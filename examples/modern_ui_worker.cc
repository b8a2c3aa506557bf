// A "UI" apartment and a worker, with the modern API (apartments/apartment.h).
//
// - The UI state (a label) lives on the UI apartment, in a Bound<Label>: it
//   is created, used and destroyed only on the UI thread.
// - A coroutine asks the worker to compute (CallAsync), then moves back to the
//   UI thread (Schedule) to update the label.
// - A worker that goes away: calls into it fail with RPC_E_DISCONNECTED and an
//   explanation, instead of hanging or crashing.
// Exits 0 when everything behaved as described.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include "apartments/apartment.h"
#include "apartments/bound.h"
#include "apartments/task.h"
#include "apartments/win32_errors.h"  // RPC_E_*, to compare with Error::code

using apartments::Apartment;
using apartments::ApartmentChecker;
using apartments::Bound;
using apartments::CallOptions;
using apartments::Result;
using apartments::Task;

// UI-thread-only state. The checker makes a wrong-thread call abort loudly.
class Label {
 public:
  void Set(std::string text) {
    APARTMENTS_CHECK_ON_APARTMENT(checker_);
    text_ = std::move(text);
  }
  std::string Get() const {
    APARTMENTS_CHECK_ON_APARTMENT(checker_);
    return text_;
  }

 private:
  ApartmentChecker checker_;  // Bound to the thread that constructs it: the UI's.
  std::string text_ = "(empty)";
};

// Computes on the worker, then updates the label on the UI thread.
Task<Result<void>> Refresh(const Apartment& ui, const Apartment& worker,
                           const Bound<Label>& label) {
  Result<long> sum = co_await worker.CallAsync([] {
    long total = 0;
    for (long i = 1; i <= 1000; ++i) total += i;
    return total;
  });
  if (!sum) co_return sum.error();
  // CallAsync resumed us on the worker; go back to the UI thread.
  if (Result<void> back = co_await ui.Schedule(); !back) co_return back.error();
  Result<void> set = label.Call(&Label::Set, "sum = " + std::to_string(*sum));
  if (!set) co_return set.error();
  co_return Result<void>();
}

int main() {
  Apartment ui({.name = "ui"});
  auto worker = std::make_unique<Apartment>(Apartment::Options{.name = "worker"});

  Result<Bound<Label>> label = Bound<Label>::Create(ui);
  if (!label) return 1;

  // 1. Calls across, as a coroutine.
  Task<Result<void>> refresh = Refresh(ui, *worker, *label);
  if (Result<void> r = refresh.Get(); !r) {
    std::printf("refresh failed: %s\n", r.error().message.c_str());
    return 1;
  }
  Result<std::string> text = label->Call(&Label::Get);
  std::printf("label: %s\n", text.value_or("?").c_str());
  if (text.value_or("") != "sum = 500500") return 1;

  // 2. The worker goes away: a call into it is an error with an explanation.
  struct Cache {
    int hits = 0;
    int Hit() { return ++hits; }
  };
  Result<Bound<Cache>> cache = Bound<Cache>::Create(*worker);
  if (!cache) return 1;
  worker.reset();  // Joins the worker; Cache is destroyed on the worker thread.
  Result<int> hit = cache->Call(&Cache::Hit);
  if (hit || hit.error().code != RPC_E_DISCONNECTED) return 1;
  std::printf("after the worker left: %s\n", hit.error().message.c_str());

  // 3. Exceptions become errors too.
  Result<int> fault = ui.Call([]() -> int { throw std::runtime_error("no such widget"); });
  if (fault || fault.error().code != RPC_E_SERVERFAULT) return 1;
  std::printf("a throwing call: %s\n", fault.error().message.c_str());

  // 4. Cancelling a long call: the callable takes a std::stop_token, which is
  // stop-requested when the caller cancels; the caller gets RPC_E_CALL_CANCELED.
  std::stop_source stop;
  std::thread canceller;
  Result<int> slow = ui.Call(
      [&](std::stop_token token) {
        canceller = std::thread([&] { stop.request_stop(); });  // "The user pressed Cancel."
        int steps = 0;
        while (!token.stop_requested() && steps < 100000000) ++steps;  // A long job that checks.
        return steps;
      },
      CallOptions{stop.get_token(), std::nullopt});
  canceller.join();
  if (slow || slow.error().code != RPC_E_CALL_CANCELED) return 1;
  std::printf("a cancelled call: %s\n", slow.error().message.c_str());
  return 0;
}
