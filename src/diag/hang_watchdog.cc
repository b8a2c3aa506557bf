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
#include <cinttypes>
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
#include "base/explain.h"
#include "base/thread_state.h"
#include "diag/default_diagnostics.h"
#include "diag/inspect_server.h"
#include "diag/wait_graph.h"
#include "kernel/kernel.h"
#include "message/pump_filter.h"
#include "message/queue.h"

namespace apartments {
namespace {

// Polls begun and finished by started watchdogs' threads (tests pace a
// FakeClock by them).
std::atomic<std::uint64_t> g_polls_started{0};
std::atomic<std::uint64_t> g_polls_finished{0};

struct Episode {
  std::uint64_t retrieved = 0;  // At the episode's start.
  Clock::TimePoint start{};
  bool active = false;
  bool reported = false;
  bool permanent_reported = false;
};

// One message or call in handling, as seen across the watchdog's looks.
struct CallEpisode {
  std::uint32_t seq = 0;  // ThreadActivity::seq when first seen.
  Clock::TimePoint start{};
  std::string what;
  bool active = false;
  bool reported = false;
};

const char* EventText(HangEvent event) {
  switch (event) {
    case HangEvent::kHung: return "is not responding";
    case HangEvent::kPermanent: return "is still not responding (a permanent hang)";
    case HangEvent::kResolved: return "responded again (a transient hang)";
    case HangEvent::kCallOverrun: return "is overrunning one call";
    case HangEvent::kCallResolved: return "finished an overrunning call";
  }
  return "?";
}

std::string DescribeDispatch(const internal::DispatchView& view) {
  char buffer[96];
  if (view.label != nullptr) {
    if (view.message != internal::kComCallMessage) {
      std::snprintf(buffer, sizeof buffer, "%s (message 0x%04x)", view.label, view.message);
      return buffer;
    }
    return view.label;
  }
  std::snprintf(buffer, sizeof buffer, "message 0x%04x to window 0x%" PRIxPTR, view.message,
                reinterpret_cast<std::uintptr_t>(view.hwnd));
  return buffer;
}

}  // namespace

struct HangWatchdog::Impl {
  explicit Impl(HangWatchdogOptions o) : options(std::move(o)) {}

  static HangReport Begin(HangEvent event, DWORD tid, Clock::Duration duration) {
    HangReport report;
    report.event = event;
    report.tid = tid;
    report.thread_name = internal::ThreadNameOf(tid);
    report.apartment = internal::ApartmentOfThread(tid);
    report.queue_quota = GetPostMessageLimit();
    report.duration = duration;
    report.text = "Thread " + std::to_string(tid);
    if (!report.thread_name.empty()) report.text += " '" + report.thread_name + "'";
    if (!report.apartment.empty()) report.text += " [" + report.apartment + "]";
    return report;
  }

  // The wait chain, what to do next and (option) the stack, then the
  // callback. `advice` replaces the advice drawn from the chain.
  void Finish(HangReport& report, bool busy = false, const std::string& advice = {}) {
    if (report.event != HangEvent::kResolved && report.event != HangEvent::kCallResolved) {
      report.chain = GetWaitChain(report.tid);
      report.text += FormatWaitChain(report.chain);
      report.text += !advice.empty() ? advice : internal::AdviceFor(report.chain, busy);
      if (options.capture_stacks) {
        // Bounded (the capture's timeout); takes none of the library's locks.
        report.stack = CaptureThreadStack(report.tid);
        report.text += "Stack of thread " + std::to_string(report.tid) +
                       (report.stack ? ":\n" + FormatStack(*report.stack)
                                     : std::string(": unavailable.\n"));
      }
    }
    if (options.callback) {
      options.callback(report);
    } else {
      std::fputs(report.text.c_str(), stderr);
      std::fflush(stderr);
    }
  }

  void ReportCall(HangEvent event, DWORD tid, const CallEpisode& call, Clock::Duration duration) {
    HangReport report = Begin(event, tid, duration);
    report.call = call.what;
    bool busy = false;
    if (event == HangEvent::kCallOverrun) {
      report.text += " " + std::string(EventText(event)) + ": it has been handling " + call.what +
                     " for " + internal::FormatDuration(duration) + ".";
      // Busy or blocked, and what waits behind the call.
      const internal::BlockKind kind = internal::ReadWaitRecord(tid).kind;
      busy = kind == internal::BlockKind::kNone;
      report.text += busy ? " It is busy running it, not blocked in a wait (see its stack)."
                          : " It is blocked inside it (see the wait chain).";
      internal::MessageQueueStats stats;
      if (internal::ReadMessageQueueStats(tid, &stats)) {
        report.queue_depth = stats.depth;
        report.sent_pending = stats.sent_pending;
        report.text += " Behind it wait " + std::to_string(stats.depth) + " posted messages "
                       "and calls and " + std::to_string(stats.sent_pending) +
                       " sent messages.";
      }
      report.text += "\n";
    } else {
      report.text += " " + std::string(EventText(event)) + ": it handled " + call.what + " for " +
                     internal::FormatDuration(duration) + ".\n";
    }
    Finish(report, busy);
  }

  // A SendMessageW that has waited past the threshold for `target` to
  // handle it: `target` is not responding (it handles sent messages only
  // while it pumps).
  void ReportUnansweredSend(DWORD sender, DWORD target, Clock::Duration waited) {
    HangReport report = Begin(HangEvent::kHung, target, waited);
    internal::MessageQueueStats stats;
    if (internal::ReadMessageQueueStats(target, &stats)) {
      report.queue_depth = stats.depth;
      report.sent_pending = stats.sent_pending;
    }
    const std::string sender_name = internal::ThreadNameOf(sender);
    report.text += " is not responding: thread " + std::to_string(sender) +
                   (sender_name.empty() ? std::string() : " '" + sender_name + "'") +
                   " has waited " + internal::FormatDuration(waited) +
                   " in SendMessageW for it to handle a sent message (" +
                   std::to_string(report.sent_pending) +
                   " sent messages wait; a thread handles them only while it pumps).\n";
    const WaitChain sender_chain = GetWaitChain(sender);
    report.text += "Wait chain of the sender:\n" + FormatWaitChain(sender_chain) +
                   "Wait chain of the window's thread:\n";
    Finish(report, false, internal::AdviceFor(sender_chain));
  }

  // Cycles that have lasted past the cycle threshold, and SendMessageW
  // calls left unanswered past the hang threshold. Reads each thread's wait
  // record (the kernel lock, briefly); builds chains only for threads that
  // have waited that long.
  void ScanWaits(const Clock::TimePoint now, const std::vector<DWORD>& tids) {
    std::vector<std::uint64_t> live_sends;
    for (DWORD tid : tids) {
      const internal::WaitRecord record = internal::ReadWaitRecord(tid);
      if (record.kind == internal::BlockKind::kNone) continue;
      const Clock::Duration waited = now - record.since;
      if (record.kind == internal::BlockKind::kSendMessage && record.target_tid != 0) {
        live_sends.push_back(record.wait_id);
        if (waited >= options.threshold &&
            std::find(sends_reported.begin(), sends_reported.end(), record.wait_id) ==
                sends_reported.end()) {
          sends_reported.push_back(record.wait_id);
          ReportUnansweredSend(tid, record.target_tid, waited);
        }
      }
      if (waited >= options.cycle_threshold) ScanCycleFrom(tid);
    }
    // Forget sends that have ended.
    std::erase_if(sends_reported, [&](std::uint64_t id) {
      return std::find(live_sends.begin(), live_sends.end(), id) == live_sends.end();
    });
  }

  void ScanCycleFrom(DWORD tid) {
    std::vector<internal::ChainHop> hops;
    WaitChain chain = internal::BuildWaitChain(tid, &hops);
    // Each cycle once per poll: from its lowest thread id.
    if (!chain.is_cycle || chain.cycle_begin != 0 || hops.empty()) return;
    std::vector<const WaitNode*> cycle;
    for (const WaitNode& n : chain.nodes) {
      if (n.type == WaitNodeType::kThread) cycle.push_back(&n);
    }
    Clock::Duration lasted = Clock::Duration::max();
    bool timed = false;
    for (std::size_t i = 0; i < cycle.size(); ++i) {
      const WaitNode& from = *cycle[i];
      const WaitNode& to = *cycle[(i + 1) % cycle.size()];
      if (from.tid < tid || from.waited < options.cycle_threshold) return;
      if (!internal::EdgeMayBlock(from, to, internal::DispatchDepthOf(to.tid))) return;
      lasted = std::min(lasted, from.waited);
      timed = timed || from.timed;
    }
    // The chain was read hop by hop: each hop must still be the same wait.
    for (const internal::ChainHop& hop : hops) {
      if (internal::ReadWaitRecord(hop.tid).wait_id != hop.wait_id) return;
    }
    internal::CycleFinding finding;
    finding.definite = chain.is_deadlock && internal::WaitCycleStillHolds(hops.data(), hops.size());
    finding.timed = timed;
    finding.lasted = lasted;
    internal::ReportCycle(std::move(chain), hops, finding);
  }

  void Report(HangEvent event, DWORD tid, const internal::MessageQueueStats& stats,
              Clock::Duration duration, HWND apartment_hwnd) {
    HangReport report = Begin(event, tid, duration);
    report.queue_depth = stats.depth;
    report.sent_pending = stats.sent_pending;
    report.text += std::string(" ") + EventText(event) + ": " +
                   (event == HangEvent::kResolved ? "it retrieved no message for "
                                                  : "it has retrieved no message for ") +
                   internal::FormatDuration(duration) + " while " +
                   std::to_string(stats.depth) + " posted (quota " +
                   std::to_string(report.queue_quota) + ") and " +
                   std::to_string(stats.sent_pending) + " sent messages waited.\n";
    if (event != HangEvent::kResolved) {
      report.filter = internal::DescribePumpFilter(
          tid, apartment_hwnd, apartment_hwnd != nullptr ? internal::kComCallMessage : 0,
          "the apartment's window", stats.depth);
      if (!report.filter.empty()) report.text += report.filter + "\n";
    }
    Finish(report, false,
           report.filter.empty()
               ? std::string()
               : "What to do next: pump without a filter (GetMessageW(&msg, nullptr, 0, 0); "
                 "in MsgWaitForMultipleObjectsEx a wake mask with QS_POSTMESSAGE, such as "
                 "QS_ALLINPUT), or let the filter include the apartment's window: a filtered "
                 "loop never runs the calls and messages that wait behind it.\n");
  }

  void PollCalls(const Clock::TimePoint now,
                 const std::vector<std::pair<DWORD, internal::ThreadState*>>& threads) {
    for (auto it = calls.begin(); it != calls.end();) {
      const bool live = std::any_of(threads.begin(), threads.end(),
                                    [&](const auto& t) { return t.first == it->first; });
      if (!live && it->second.reported) {
        ReportCall(HangEvent::kCallResolved, it->first, it->second, now - it->second.start);
      }
      it = live ? std::next(it) : calls.erase(it);
    }
    for (const auto& [tid, state] : threads) {
      internal::DispatchView view;
      if (!internal::ReadDispatch(state->activity, &view)) continue;  // Changing: next look.
      if (state->tid.load(std::memory_order_relaxed) != tid) continue;  // Recycled.
      CallEpisode& call = calls[tid];
      const bool same = call.active && view.depth > 0 && view.seq == call.seq;
      if (call.active && !same) {
        if (call.reported) ReportCall(HangEvent::kCallResolved, tid, call, now - call.start);
        call = CallEpisode{};
      }
      if (view.depth == 0) continue;
      if (!call.active) {
        call.active = true;
        call.seq = view.seq;
        call.start = now;
        call.what = DescribeDispatch(view);
        continue;
      }
      const Clock::Duration running = now - call.start;
      // A handler idle in a nested message loop (a modal dialog's) is
      // responsive, not overrunning: only report it once it is busy again.
      if (!call.reported && running >= options.call_threshold &&
          internal::ReadWaitRecord(tid).kind != internal::BlockKind::kMessageIdle) {
        call.reported = true;
        ReportCall(HangEvent::kCallOverrun, tid, call, running);
      }
    }
  }

  void Poll() {
    const Clock::TimePoint now = internal::GuardedNow();
    std::vector<DWORD> tids;
    std::vector<std::pair<DWORD, internal::ThreadState*>> threads;
    internal::ForEachThreadState([&](internal::ThreadState& state) {
      const DWORD tid = state.tid.load(std::memory_order_relaxed);
      if (tid != 0) {
        tids.push_back(tid);
        threads.emplace_back(tid, &state);
      }
    });
    PollCalls(now, threads);
    std::sort(tids.begin(), tids.end());
    tids.erase(std::unique(tids.begin(), tids.end()), tids.end());
    ScanWaits(now, tids);
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
        if (e.reported) Report(HangEvent::kResolved, tid, stats, now - e.start, nullptr);
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
        Report(HangEvent::kHung, tid, stats, stuck, ApartmentWindow(threads, tid));
      }
      if (e.reported && !e.permanent_reported && stuck >= options.permanent_threshold) {
        e.permanent_reported = true;
        Report(HangEvent::kPermanent, tid, stats, stuck, ApartmentWindow(threads, tid));
      }
    }
  }

  // The episodes in progress, for inspection. Poller only (the watchdog
  // thread answers inspection requests between polls).
  internal::InspectionContext Inspect() const {
    internal::InspectionContext context;
    context.threshold = options.threshold;
    context.permanent_threshold = options.permanent_threshold;
    context.recent_reports = internal::RecentReports();
    const Clock::TimePoint now = internal::GuardedNow();
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

  static void OnClockAdvanced(void* context) {
    static_cast<Impl*>(context)->waiter->PollSoon();
  }

  static HWND ApartmentWindow(
      const std::vector<std::pair<DWORD, internal::ThreadState*>>& threads, DWORD tid) {
    for (const auto& [t, state] : threads) {
      if (t == tid) return state->activity.apartment_hwnd.load(std::memory_order_relaxed);
    }
    return nullptr;
  }

  const HangWatchdogOptions options;
  std::map<DWORD, Episode> episodes;  // Poller only.
  std::map<DWORD, CallEpisode> calls;  // Poller only.
  std::vector<std::uint64_t> sends_reported;  // Poller only: wait ids.

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
  // A test's FakeClock::Advance makes the thread poll at once, so tests
  // need not wait a real poll interval for the time they skipped.
  internal::AddClockListener(&Impl::OnClockAdvanced, impl_.get());
  impl_->thread = std::thread([impl = impl_.get()] {
    SetThreadDescription(GetCurrentThread(), L"hang watchdog");
    const auto inspect = [impl] { return impl->Inspect(); };
    do {
      g_polls_started.fetch_add(1, std::memory_order_seq_cst);  // Before Poll reads the clock.
      impl->Poll();
      g_polls_finished.fetch_add(1, std::memory_order_release);
    } while (impl->waiter->WaitAndServe(
        std::chrono::steady_clock::now() + impl->options.poll_interval, inspect));
  });
}

void HangWatchdog::Stop() {
  if (!impl_->thread.joinable()) return;
  // After this returns no listener call is running or will run.
  internal::RemoveClockListener(&Impl::OnClockAdvanced, impl_.get());
  impl_->waiter->Wake();
  impl_->thread.join();
  impl_->waiter.reset();
}

std::string HangWatchdog::inspection_socket_path() const {
  return impl_->waiter != nullptr ? impl_->waiter->socket_path() : std::string();
}

namespace internal {
WatchdogPollCounts DefaultWatchdogPollCountsForTesting() {
  WatchdogPollCounts counts;
  counts.started = g_polls_started.load(std::memory_order_seq_cst);
  counts.finished = g_polls_finished.load(std::memory_order_acquire);
  return counts;
}
}  // namespace internal

}  // namespace apartments
