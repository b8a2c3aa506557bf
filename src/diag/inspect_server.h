// The hang watchdog thread's waiting and serving (apartments/inspect.h).
#ifndef APARTMENTS_SRC_DIAG_INSPECT_SERVER_H_
#define APARTMENTS_SRC_DIAG_INSPECT_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/diagnostics.h"

namespace apartments::internal {

// One hang episode the watchdog is tracking: messages wait in `tid`'s queue
// and it has retrieved none of them for `duration`.
struct HangState {
  DWORD tid = 0;
  std::string thread_name;
  std::string apartment;
  Clock::Duration duration{};
  // "pending" (below the threshold), "hung" (reported), "permanent".
  std::string state;
};

// What a served snapshot says besides TakeSnapshot(): the watchdog's hangs.
struct InspectionContext {
  Clock::Duration threshold{};
  Clock::Duration permanent_threshold{};
  std::vector<HangState> hangs;
  // The most recent reports of the default diagnostics, oldest first.
  std::vector<std::string> recent_reports;
};

// The text and JSON answers (also the dump signal's text).
std::string FormatInspection(const ProcessSnapshot& snapshot, const InspectionContext& context);
std::string InspectionToJson(const ProcessSnapshot& snapshot, const InspectionContext& context);

// The watchdog thread's wait between polls: owns the wake eventfd, the
// listening socket and the dump signal, as HangWatchdogOptions ask.
//
// Lifecycle: constructed by Start() on the starting thread (the socket exists
// when the constructor returns), WaitAndServe() on the watchdog thread only,
// Wake() from any thread, destroyed after the watchdog thread is joined.
class WatchdogWaiter {
 public:
  explicit WatchdogWaiter(const HangWatchdogOptions& options);
  ~WatchdogWaiter();
  WatchdogWaiter(const WatchdogWaiter&) = delete;
  WatchdogWaiter& operator=(const WatchdogWaiter&) = delete;

  // Waits until `deadline` passes (true) or Wake() is called (false),
  // answering inspection requests and dump signals meanwhile. `context` is
  // called on this thread for each answer. Never takes a library lock itself.
  bool WaitAndServe(std::chrono::steady_clock::time_point deadline,
                    const std::function<InspectionContext()>& context);
  // Makes WaitAndServe() return false, now and from then on, including from
  // the middle of a client's request. Any thread.
  void Wake();
  // Makes WaitAndServe() return true soon (a test clock advanced: poll now).
  // Any thread; async-signal-safe apart from the flag.
  void PollSoon();

  // The socket served; "" when none. Immutable after construction.
  const std::string& socket_path() const { return socket_path_; }

 private:
  void ServeClient(int fd, const std::function<InspectionContext()>& context);
  void Dump(const std::function<InspectionContext()>& context);

  std::atomic<bool> stopped_{false};
  std::atomic<bool> poll_soon_{false};
  int wake_fd_ = -1;
  int listen_fd_ = -1;
  bool owns_serving_ = false;
  bool owns_dump_ = false;
  int dump_signal_ = 0;
  std::uint64_t socket_inode_ = 0;
  std::string socket_path_;
};

// In the child of a fork(): the parent's serving watchdog does not exist
// here, so the one-server and dump-signal slots are free again (the
// inherited descriptors stay with the abandoned objects; the socket file is
// the parent's). Called by the default diagnostics' atfork child handler.
void ForgetServingAfterFork() noexcept;

// The request and write timeout of inspection clients (default 1 s); tests
// shorten it to see the cut-off, or lengthen it to see Stop() interrupt.
void SetInspectionTimeoutForTesting(std::chrono::milliseconds timeout);
// How many inspection connections the server has accepted, process-wide.
std::uint64_t InspectionConnectionsAcceptedForTesting();

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_DIAG_INSPECT_SERVER_H_
