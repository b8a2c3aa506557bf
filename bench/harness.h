// The suite's measuring harness: standard C++ only (plus one pinning call per
// platform), so the same header serves our binaries, each peer's binary and
// the Win32 workloads built with MinGW and run under Wine.
//
// A suite binary registers cases; each case sets up its threads, then hands
// the harness a `body(n)` that performs n operations. The harness calibrates n
// so that one batch lasts about --batch_ms, runs one warm-up batch and
// --reps measured batches, and prints one machine-readable line per case:
//
//   RESULT <group> <placement> <impl> <median> <p10> <p90> <unit> <reps>
//
// (tab-separated; ns per operation). bench_table collects the lines of every
// binary into the suite's one table. A case that cannot run prints
//   SKIP <group> <placement> <impl> <reason>
// and a note meant for the table's footer prints  NOTE <text>.
//
// --probe=<group>/<placement>/<impl> --ops=N runs that one case for exactly N
// operations, unmeasured, and prints  PROBE <name> <ops> <voluntary ctx sw>
// <involuntary ctx sw> (getrusage, all threads). scripts/bench.sh runs it
// under `perf stat` (or strace -c) to count system calls per operation.
//
// Options: --reps=N (default 15) --batch_ms=X (default 20) --filter=substring
// --list.
#ifndef APARTMENTS_BENCH_HARNESS_H_
#define APARTMENTS_BENCH_HARNESS_H_

#if defined(_WIN32)
#include <windows.h>
#else
#include <sched.h>
#include <sys/resource.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

// How the threads of a case are placed on the machine's vCPUs. kSingle: the
// case has one thread, placement does not apply.
enum class Placement { kSameCpu, kCrossCpu, kUnpinned, kSingle };

inline const char* PlacementName(Placement p) {
  switch (p) {
    case Placement::kSameCpu: return "same_cpu";
    case Placement::kCrossCpu: return "cross_cpu";
    case Placement::kUnpinned: return "unpinned";
    case Placement::kSingle: return "one_thread";
  }
  return "?";
}

inline constexpr Placement kAllPlacements[] = {Placement::kSameCpu, Placement::kCrossCpu,
                                               Placement::kUnpinned};

inline int CpuCount() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Pins the calling thread to `cpu`, or lets it run anywhere (cpu < 0).
inline void PinCurrentThread(int cpu) {
#if defined(_WIN32)
  DWORD_PTR all = 0;
  for (int i = 0; i < CpuCount() && i < 64; ++i) all |= DWORD_PTR{1} << i;
  SetThreadAffinityMask(GetCurrentThread(), cpu < 0 ? all : (DWORD_PTR{1} << cpu));
#else
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int i = 0; i < CpuCount(); ++i) CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  sched_setaffinity(0, sizeof set, &set);
#endif
}

// The CPUs of (the measuring thread, its partners) under a placement.
inline std::pair<int, int> CpusFor(Placement p) {
  switch (p) {
    case Placement::kSameCpu: return {0, 0};
    case Placement::kCrossCpu: return {0, CpuCount() > 1 ? 1 : 0};
    default: return {-1, -1};
  }
}
inline void PinMain(Placement p) { PinCurrentThread(CpusFor(p).first); }
inline void PinPartner(Placement p) { PinCurrentThread(CpusFor(p).second); }

inline double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * static_cast<double>(v.size() - 1);
  auto lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

struct Options {
  int reps = 15;
  double batch_ms = 20;
  std::string filter;
  std::string probe;
  std::int64_t probe_ops = 0;
  bool list = false;
};

inline Options& GetOptions() {
  static Options options;
  return options;
}

// What a case hands the harness: runs `n` operations, returns when they are done.
using Body = std::function<void(std::int64_t n)>;

// Per-batch coordination between the measuring thread and helper threads
// (extra producers, consumers acknowledging a batch). Costs one mutex and
// condvar hand-off per batch, never per operation, so any implementation can
// use it without skewing its figure.
class Signal {
 public:
  void Notify() {
    std::lock_guard lock(mu_);
    ++count_;
    cv_.notify_all();
  }
  // Waits until Notify() was called `n` times since the last Wait.
  void Wait(int n = 1) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return count_ >= n; });
    count_ -= n;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// Helper threads that each run `work(n)` when the measuring thread calls
// Go(n) (which returns once all of them are done).
class Helpers {
 public:
  // Each helper is pinned to `cpu` (< 0: unpinned).
  Helpers(int count, int cpu, std::function<void(std::int64_t)> work) : work_(std::move(work)) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, cpu] {
        PinCurrentThread(cpu);
        std::uint64_t seen = 0;
        for (;;) {
          std::int64_t n;
          {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return generation_ != seen; });
            seen = generation_;
            n = n_;
          }
          if (n < 0) return;
          work_(n);
          done_.Notify();
        }
      });
    }
  }
  ~Helpers() {
    Start(-1);
    for (auto& t : threads_) t.join();
  }
  void Start(std::int64_t n) {
    std::lock_guard lock(mu_);
    n_ = n;
    ++generation_;
    cv_.notify_all();
  }
  void WaitDone() { done_.Wait(static_cast<int>(threads_.size())); }

 private:
  std::function<void(std::int64_t)> work_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;
  std::int64_t n_ = 0;
  Signal done_;
};

// Passed to each case; the case calls Run() once its threads are up.
class Runner {
 public:
  explicit Runner(std::string name) : name_(std::move(name)) {}

  // Measures `body` (or, in probe mode, runs it for exactly --ops operations).
  void Run(const Body& body) {
    ran_ = true;
    const Options& o = GetOptions();
    if (!o.probe.empty()) {
      std::int64_t csw0 = 0, icsw0 = 0;
      ContextSwitches(&csw0, &icsw0);
      body(o.probe_ops);
      std::int64_t csw1 = 0, icsw1 = 0;
      ContextSwitches(&csw1, &icsw1);
      std::printf("PROBE\t%s\t%lld\t%lld\t%lld\n", name_.c_str(),
                  static_cast<long long>(o.probe_ops), static_cast<long long>(csw1 - csw0),
                  static_cast<long long>(icsw1 - icsw0));
      return;
    }
    using Clock = std::chrono::steady_clock;
    auto time = [&](std::int64_t n) {
      auto start = Clock::now();
      body(n);
      return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    };
    // Calibrate: grow n until one batch takes a quarter of the target and
    // eight times a one-operation batch (so a per-batch cost, such as a
    // consumer's sleep and wake-up, cannot dominate; capped at 4x the
    // target), then scale n to the target.
    const double target_ns = o.batch_ms * 1e6;
    std::int64_t n = 1;
    double ns = time(n);
    const double enough = std::max(target_ns / 4, std::min(8 * ns, 4 * target_ns));
    while (ns < enough && n < (std::int64_t{1} << 40)) {
      n *= ns < enough / 16 ? 8 : 2;
      ns = time(n);
    }
    const std::int64_t floor_n = std::max<std::int64_t>(1, n / 2);
    n = std::max(floor_n, static_cast<std::int64_t>(static_cast<double>(n) * target_ns / ns));
    // A preemption during calibration makes a batch look slow and n too
    // small: re-check, scaling up.
    for (int i = 0; i < 3; ++i) {
      ns = time(n);  // Also the warm-up at the final size.
      if (ns >= target_ns / 2) break;
      n = static_cast<std::int64_t>(static_cast<double>(n) * target_ns / std::max(ns, 1.0));
    }
    std::vector<double> per_op;
    for (int r = 0; r < o.reps; ++r) per_op.push_back(time(n) / static_cast<double>(n));
    median_ = Percentile(per_op, 0.5);
    std::printf("RESULT\t%s\t%.2f\t%.2f\t%.2f\tns\t%d\n", Tabbed(name_).c_str(), median_,
                Percentile(per_op, 0.1), Percentile(per_op, 0.9), o.reps);
    std::fflush(stdout);
  }

  // Marks the case as not runnable here (printed as a SKIP line).
  void Skip(const std::string& reason) {
    ran_ = true;
    std::printf("SKIP\t%s\t%s\n", Tabbed(name_).c_str(), reason.c_str());
    std::fflush(stdout);
  }

  bool ran() const { return ran_; }

 private:
  static std::string Tabbed(std::string s) {
    std::replace(s.begin(), s.end(), '/', '\t');
    return s;
  }
  static void ContextSwitches(std::int64_t* voluntary, std::int64_t* involuntary) {
#if defined(_WIN32)
    *voluntary = *involuntary = -1;
#else
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);  // Linux: all threads of the process.
    *voluntary = usage.ru_nvcsw;
    *involuntary = usage.ru_nivcsw;
#endif
  }

  std::string name_;
  bool ran_ = false;
  double median_ = 0;
};

struct Case {
  std::string group;  // e.g. "roundtrip": cases in one group share a floor.
  Placement placement;
  std::string impl;   // e.g. "ours:event", "peer:asio", "floor:futex"
  std::function<void(Runner&, Placement)> fn;
  std::string Name() const { return group + "/" + PlacementName(placement) + "/" + impl; }
};

inline std::vector<Case>& Cases() {
  static std::vector<Case> cases;
  return cases;
}

// Registers `fn` once per placement in `placements`.
template <typename F>
void Register(const std::string& group, const std::string& impl,
              std::initializer_list<Placement> placements, F fn) {
  for (Placement p : placements) Cases().push_back(Case{group, p, impl, fn});
}
template <typename F>
void RegisterAllPlacements(const std::string& group, const std::string& impl, F fn) {
  Register(group, impl, {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned}, fn);
}

// Registers a case that cannot run in this build, for every placement.
inline void RegisterSkipped(const std::string& group, const std::string& impl,
                            std::initializer_list<Placement> placements, std::string reason) {
  for (Placement p : placements) {
    Cases().push_back(Case{group, p, impl, [reason](Runner& r, Placement) { r.Skip(reason); }});
  }
}

inline void Note(const std::string& text) {
  if (!GetOptions().probe.empty() || GetOptions().list) return;
  std::printf("NOTE\t%s\n", text.c_str());
  std::fflush(stdout);
}

inline bool ParseArgs(int argc, char** argv) {
  Options& o = GetOptions();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* key) -> const char* {
      size_t len = std::strlen(key);
      return a.compare(0, len, key) == 0 ? a.c_str() + len : nullptr;
    };
    if (const char* v = value("--reps=")) o.reps = std::max(3, std::atoi(v));
    else if (const char* v = value("--batch_ms=")) o.batch_ms = std::atof(v);
    else if (const char* v = value("--filter=")) o.filter = v;
    else if (const char* v = value("--probe=")) o.probe = v;
    else if (const char* v = value("--ops=")) o.probe_ops = std::atoll(v);
    else if (a == "--list") o.list = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return false;
    }
  }
  return true;
}

// Runs every registered case that matches the options; returns the exit code.
inline int RunCases(int argc, char** argv) {
  if (!ParseArgs(argc, argv)) return 2;
  const Options& o = GetOptions();
  for (const Case& c : Cases()) {
    const std::string name = c.Name();
    if (o.list) {
      std::printf("%s\n", name.c_str());
      continue;
    }
    if (!o.probe.empty() ? name != o.probe
                         : (!o.filter.empty() && name.find(o.filter) == std::string::npos)) {
      continue;
    }
    Runner runner(name);
    c.fn(runner, c.placement);
    PinCurrentThread(-1);
    if (!runner.ran()) runner.Skip("the case did not run");
  }
  return 0;
}

}  // namespace bench

#endif  // APARTMENTS_BENCH_HARNESS_H_
