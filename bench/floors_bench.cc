// The floors every figure is a ratio to, and the standard-library peers, all
// measured in the same run as the rest of the suite (scripts/bench.sh):
//   roundtrip  floor:futex ping-pong          two futex words, FUTEX_WAIT/WAKE
//              floor:spin ping-pong           one cache line, no system call
//                                             (cross_cpu only: on one vCPU a
//                                             spinner waits for the tick)
//              peer:std mutex+condvar+promise a call returning v + 1
//   post1/2    floor:mutex+condvar deque      the posting floor of the targets
//   wait       floor:one syscall              getppid()
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>

#include "harness.h"
#include "workloads.h"

namespace bench {
namespace {

void FutexWait(std::atomic<std::uint32_t>& word, std::uint32_t value) {
  // Race-free: FUTEX_WAIT re-checks `word == value` in the kernel under the
  // futex bucket lock, so a store + wake between our load and the syscall
  // makes it return at once.
  while (word.load(std::memory_order_acquire) == value) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value,
            nullptr, nullptr, 0);
  }
}
void FutexWake(std::atomic<std::uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

// Two words, one per direction: each side stores its flag, wakes, then sleeps
// on the other's.
void FutexPingPong(Runner& r, Placement p) {
  std::atomic<std::uint32_t> ping{0}, pong{0};
  std::atomic<bool> stop{false};
  long long value = 0;  // Handed over by the flags' release/acquire.
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        ready.Notify();
        for (;;) {
          FutexWait(ping, 0);
          ping.store(0, std::memory_order_relaxed);
          if (stop.load(std::memory_order_acquire)) return;
          ++value;
          pong.store(1, std::memory_order_release);
          FutexWake(pong);
        }
      },
      [&](long long v) {
        value = v;
        ping.store(1, std::memory_order_release);
        FutexWake(ping);
        FutexWait(pong, 0);
        pong.store(0, std::memory_order_relaxed);
        return value;
      },
      [&] {
        stop.store(true, std::memory_order_release);
        ping.store(1, std::memory_order_release);
        FutexWake(ping);
      });
}

// One cache line: the caller writes a request sequence number, the server
// answers by writing the reply; both spin. The physical floor across vCPUs.
void SpinPingPong(Runner& r, Placement p) {
  struct alignas(64) Line {
    std::atomic<long long> request{0};
    std::atomic<long long> reply{0};
  } line;
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        ready.Notify();
        long long last = 0;
        for (;;) {
          long long req;
          while ((req = line.request.load(std::memory_order_acquire)) == last) {
            __builtin_ia32_pause();
          }
          if (req < 0) return;
          last = req;
          line.reply.store(req + 1, std::memory_order_release);
        }
      },
      [&](long long v) {
        // Requests are v + 1 >= 1 so they differ from the previous one.
        line.request.store(v + 1, std::memory_order_release);
        long long reply;
        while ((reply = line.reply.load(std::memory_order_acquire)) != v + 2) {
          __builtin_ia32_pause();
        }
        return reply - 1;
      },
      [&] { line.request.store(-1, std::memory_order_release); });
}

// A call as a std::function-free task queue: the caller enqueues {v,
// promise} under a mutex and notifies; the server pops, fulfils the promise.
void CondvarPromiseCall(Runner& r, Placement p) {
  struct Task {
    long long v;
    std::promise<long long>* result;  // nullptr: stop.
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Task> tasks;  // Guarded by mu.
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        ready.Notify();
        for (;;) {
          Task t;
          {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return !tasks.empty(); });
            t = tasks.front();
            tasks.pop_front();
          }
          if (t.result == nullptr) return;
          t.result->set_value(t.v + 1);
        }
      },
      [&](long long v) {
        std::promise<long long> result;
        std::future<long long> f = result.get_future();
        {
          std::lock_guard lock(mu);
          tasks.push_back(Task{v, &result});
        }
        cv.notify_one();
        return f.get();
      },
      [&] {
        {
          std::lock_guard lock(mu);
          tasks.push_back(Task{0, nullptr});
        }
        cv.notify_one();
      });
}

// The posting floor: a deque of MSG-sized items under a mutex, the consumer
// woken by a condvar.
class MutexCondvarDeque {
 public:
  template <typename OnMarker>
  void Consume(Signal& ready, OnMarker on_marker) {
    ready.Notify();
    for (;;) {
      Item item;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        item = queue_.front();
        queue_.pop_front();
      }
      if (item.kind == kStop) return;
      if (item.kind == kMarker) on_marker();
    }
  }
  void Post(std::int64_t i) { Push(Item{kMessage, static_cast<std::uintptr_t>(i), 0}); }
  void PostMarker() { Push(Item{kMarker, 0, 0}); }
  void PostStop() { Push(Item{kStop, 0, 0}); }

 private:
  enum Kind : unsigned { kMessage, kMarker, kStop };
  struct Item {
    unsigned kind;
    std::uintptr_t wparam;
    std::intptr_t lparam;
  };
  void Push(Item item) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(item);
    }
    cv_.notify_one();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // Guarded by mu_.
};

void OneSyscall(Runner& r, Placement) {
  r.Run([](std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) syscall(SYS_getppid);
  });
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  RegisterAllPlacements("roundtrip", "floor:futex ping-pong", FutexPingPong);
  Register("roundtrip", "floor:spin ping-pong", {Placement::kCrossCpu}, SpinPingPong);
  RegisterAllPlacements("roundtrip", "peer:std mutex+condvar+promise", CondvarPromiseCall);
  RegisterPosting("floor:mutex+condvar deque", [] { return std::make_unique<MutexCondvarDeque>(); });
  Register("wait", "floor:one syscall (getppid)", {Placement::kSingle}, OneSyscall);
  return RunCases(argc, argv);
}
