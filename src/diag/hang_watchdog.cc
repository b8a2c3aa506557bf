// The hang watchdog (apartments/diagnostics.h).
//
// Progress is measured by the number of posted messages a thread has
// retrieved (posted minus depth), not by the queue's last-pumped stamp, which
// the message layer samples (it is refreshed only every few retrievals to keep
// the fast path cheap) and which says nothing about when the oldest waiting
// message arrived: a thread idle for an hour that just received a message is
// not hung.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "apartments/diagnostics.h"
#include "apartments/message_queue.h"
#include "apartments/win32_kernel.h"
#include "base/thread_state.h"
#include "com/apartment_impl.h"
#include "diag/inspect_server.h"
#include "diag/wait_graph.h"
#include "message/queue.h"

namespace apartments {
namespace {

struct Episode {
  std::uint64_t retrieved = 0;  // At the episode's start.
  Clock::TimePoint start{};
  bool active = false;
  bool reported = false;
  bool permanent_reported = false;
};

const char* EventText(HangEvent event) {
  switch (event) {
    case HangEvent::kHung: return "is not responding";
    case HangEvent::kPermanent: return "is still not responding (a permanent hang)";
    case HangEvent::kResolved: return "responded again (a transient hang)";
  }
  return "?";
}

}  // namespace

struct HangWatchdog::Impl {
  explicit Impl(HangWatchdogOptions o) : options(std::move(o)) {}

  void Report(HangEvent event, DWORD tid, const internal::MessageQueueStats& stats,
              Clock::Duration duration) {
    HangReport report;
    report.event = event;
    report.tid = tid;
    report.thread_name = internal::ThreadNameOf(tid);
    report.apartment = internal::ApartmentOfThread(tid);
    report.queue_depth = stats.depth;
    report.queue_quota = GetPostMessageLimit();
    report.sent_pending = stats.sent_pending;
    report.duration = duration;
    report.text = "Thread " + std::to_string(tid);
    if (!report.thread_name.empty()) report.text += " '" + report.thread_name + "'";
    if (!report.apartment.empty()) report.text += " [" + report.apartment + "]";
    report.text += std::string(" ") + EventText(event) + ": " +
                   (event == HangEvent::kResolved ? "it retrieved no message for "
                                                  : "it has retrieved no message for ") +
                   internal::FormatDuration(duration) + " while " +
                   std::to_string(stats.depth) + " posted (quota " +
                   std::to_string(report.queue_quota) + ") and " +
                   std::to_string(stats.sent_pending) + " sent messages waited.\n";
    if (event != HangEvent::kResolved) {
      report.chain = GetWaitChain(tid);
      report.text += FormatWaitChain(report.chain);
    }
    if (options.callback) {
      options.callback(report);
    } else {
      std::fputs(report.text.c_str(), stderr);
      std::fflush(stderr);
    }
  }

  void Poll() {
    const Clock::TimePoint now = GetClock().Now();
    std::vector<DWORD> tids;
    internal::ForEachThreadState([&](internal::ThreadState& state) {
      const DWORD tid = state.tid.load(std::memory_order_relaxed);
      if (tid != 0) tids.push_back(tid);
    });
    std::sort(tids.begin(), tids.end());
    tids.erase(std::unique(tids.begin(), tids.end()), tids.end());
    // Forget threads that have gone.
    for (auto it = episodes.begin(); it != episodes.end();) {
      it = std::binary_search(tids.begin(), tids.end(), it->first) ? std::next(it)
                                                                   : episodes.erase(it);
    }
    for (DWORD tid : tids) {
      internal::MessageQueueStats stats;
      if (!internal::ReadMessageQueueStats(tid, &stats)) continue;
      const std::uint64_t retrieved = stats.posted - stats.depth;
      Episode& e = episodes[tid];
      const bool pending = stats.depth > 0;
      if (e.active && (!pending || retrieved != e.retrieved)) {
        if (e.reported) Report(HangEvent::kResolved, tid, stats, now - e.start);
        e = Episode{};
      }
      if (!pending) continue;
      if (!e.active) {
        e.active = true;
        e.start = now;
        e.retrieved = retrieved;
        continue;
      }
      const Clock::Duration stuck = now - e.start;
      if (!e.reported && stuck >= options.threshold) {
        e.reported = true;
        Report(HangEvent::kHung, tid, stats, stuck);
      }
      if (e.reported && !e.permanent_reported && stuck >= options.permanent_threshold) {
        e.permanent_reported = true;
        Report(HangEvent::kPermanent, tid, stats, stuck);
      }
    }
  }

  // The episodes in progress, for inspection. Poller only (the watchdog
  // thread answers inspection requests between polls).
  internal::InspectionContext Inspect() const {
    internal::InspectionContext context;
    context.threshold = options.threshold;
    context.permanent_threshold = options.permanent_threshold;
    const Clock::TimePoint now = GetClock().Now();
    for (const auto& [tid, e] : episodes) {
      if (!e.active) continue;
      internal::HangState hang;
      hang.tid = tid;
      hang.thread_name = internal::ThreadNameOf(tid);
      hang.apartment = internal::ApartmentOfThread(tid);
      hang.duration = now - e.start;
      hang.state = e.permanent_reported ? "permanent" : e.reported ? "hung" : "pending";
      context.hangs.push_back(std::move(hang));
    }
    return context;
  }

  const HangWatchdogOptions options;
  std::map<DWORD, Episode> episodes;  // Poller only.

  // Waits between polls and serves inspection; exists while started.
  std::unique_ptr<internal::WatchdogWaiter> waiter;
  std::thread thread;
};

HangWatchdog::HangWatchdog(HangWatchdogOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HangWatchdog::~HangWatchdog() { Stop(); }

void HangWatchdog::Poll() { impl_->Poll(); }

void HangWatchdog::Start() {
  if (impl_->thread.joinable()) return;
  impl_->waiter = std::make_unique<internal::WatchdogWaiter>(impl_->options);
  impl_->thread = std::thread([impl = impl_.get()] {
    SetThreadDescription(GetCurrentThread(), L"hang watchdog");
    const auto inspect = [impl] { return impl->Inspect(); };
    do {
      impl->Poll();
    } while (impl->waiter->WaitAndServe(
        std::chrono::steady_clock::now() + impl->options.poll_interval, inspect));
  });
}

void HangWatchdog::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->waiter->Wake();
  impl_->thread.join();
  impl_->waiter.reset();
}

std::string HangWatchdog::inspection_socket_path() const {
  return impl_->waiter != nullptr ? impl_->waiter->socket_path() : std::string();
}

}  // namespace apartments
