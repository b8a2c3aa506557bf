// Shared helpers for the benchmarks: CPU pinning, the futex floor, and a
// reporter that prints each benchmark's median as a ratio to a floor measured
// in the same run.
#ifndef APARTMENTS_BENCH_BENCH_UTIL_H_
#define APARTMENTS_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace apartments::bench {

// How the two threads of a ping-pong are placed on the machine's vCPUs.
enum class Placement { kSameCpu, kCrossCpu, kUnpinned };

inline const char* PlacementName(Placement p) {
  switch (p) {
    case Placement::kSameCpu: return "same_cpu";
    case Placement::kCrossCpu: return "cross_cpu";
    case Placement::kUnpinned: return "unpinned";
  }
  return "?";
}

inline int CpuCount() { return static_cast<int>(std::thread::hardware_concurrency()); }

// Pins the calling thread to `cpu`, or unpins it (cpu < 0).
inline void PinCurrentThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int i = 0; i < CpuCount(); ++i) CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  sched_setaffinity(0, sizeof set, &set);
}

// The CPUs for (main thread, partner thread) under a placement.
inline std::pair<int, int> CpusFor(Placement p) {
  switch (p) {
    case Placement::kSameCpu: return {0, 0};
    case Placement::kCrossCpu: return {0, CpuCount() > 1 ? 1 : 0};
    case Placement::kUnpinned: return {-1, -1};
  }
  return {-1, -1};
}

inline void FutexWaitWhile(std::atomic<std::uint32_t>& word, std::uint32_t value) {
  while (word.load(std::memory_order_acquire) == value) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value,
            nullptr, nullptr, 0);
  }
}

inline void FutexWakeOne(std::atomic<std::uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
}

// Runs `partner` on a thread pinned per `placement` for the lifetime of the
// object; pins the calling (benchmark) thread too, and unpins it at the end.
class PinnedPartner {
 public:
  template <typename F>
  PinnedPartner(Placement placement, F partner) {
    auto [main_cpu, partner_cpu] = CpusFor(placement);
    PinCurrentThread(main_cpu);
    thread_ = std::thread([partner_cpu, partner]() mutable {
      PinCurrentThread(partner_cpu);
      partner();
    });
  }
  ~PinnedPartner() {
    thread_.join();
    PinCurrentThread(-1);
  }

 private:
  std::thread thread_;
};

inline double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = q * static_cast<double>(v.size() - 1);
  auto lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

inline void AddSpreadStatistics(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("p10", [](const std::vector<double>& v) { return Percentile(v, 0.10); });
  b->ComputeStatistics("p90", [](const std::vector<double>& v) { return Percentile(v, 0.90); });
}

// Console output as usual, then a table: each benchmark's median ns/op with
// its p10-p90 spread and its ratio to the floor benchmark named by
// `floors[name_prefix]` with the same placement suffix.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // `floor_of(name)` returns the floor benchmark's name for `name`, or "".
  using FloorOf = std::string (*)(const std::string& name);
  explicit RatioReporter(FloorOf floor_of) : floor_of_(floor_of) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Aggregate) continue;
      std::string base = ShortName(run.run_name.str());
      double ns = run.GetAdjustedRealTime();  // Per iteration, in the benchmark's unit.
      if (run.aggregate_name == "median") median_[base] = ns;
      if (run.aggregate_name == "p10") p10_[base] = ns;
      if (run.aggregate_name == "p90") p90_[base] = ns;
      if (run.aggregate_name == "median") repetitions_ = run.repetitions;
      if (run.aggregate_name == "median") order_.push_back(base);
    }
  }

  // "event_pingpong/same_cpu/min_time:0.050/repeats:12/real_time" ->
  // "event_pingpong/same_cpu": drops the harness's own parameters.
  static std::string ShortName(const std::string& name) {
    std::string out;
    size_t start = 0;
    while (start <= name.size()) {
      size_t end = name.find('/', start);
      if (end == std::string::npos) end = name.size();
      std::string part = name.substr(start, end - start);
      if (part.find(':') == std::string::npos && part != "real_time" && !part.empty()) {
        out += (out.empty() ? "" : "/") + part;
      }
      start = end + 1;
    }
    return out;
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nRatios (median ns/op, p10-p90 over %lld repetitions; %d vCPUs):\n",
                static_cast<long long>(repetitions_), CpuCount());
    std::printf("%-40s %12s %23s  %s\n", "benchmark", "median", "p10-p90", "ratio");
    for (const std::string& name : order_) {
      std::string floor = floor_of_(name);
      std::printf("%-40s %12.1f %11.1f-%-11.1f", name.c_str(), median_[name], p10_[name],
                  p90_[name]);
      if (!floor.empty() && median_.count(floor) != 0 && median_[floor] > 0) {
        std::printf(" %6.2fx of %s", median_[name] / median_[floor], floor.c_str());
      }
      std::printf("\n");
    }
  }

 private:
  FloorOf floor_of_;
  std::map<std::string, double> median_, p10_, p90_;
  std::vector<std::string> order_;
  long long repetitions_ = 0;
};

}  // namespace apartments::bench

#endif  // APARTMENTS_BENCH_BENCH_UTIL_H_
