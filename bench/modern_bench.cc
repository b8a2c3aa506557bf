// The modern API's overhead over the Win32 path, for the same call in the
// same run (issue 8, "Speed": at most 5%; a coroutine call at most one
// allocation more than a synchronous one).
//
// One target: an Apartment ("worker", an STA thread pumping GetMessageW).
// The measuring thread is an STA too (CoInitializeEx), so every synchronous
// path is an STA->STA call waiting in the COM modal loop. Rows, each a round
// trip returning v + 1 computed on the worker:
//   win32:IAdder proxy          IAdder::AddOne through a proxy unmarshaled from
//                               CoMarshalInterThreadInterfaceInStream (bench/com_bench.cc)
//   win32:InvokeInApartment     the channel call under every proxy and under
//                               Apartment::Call (internal, src/com/apartment.h)
//   modern:Apartment::Call      worker.Call([v] { return v + 1; })
//   modern:Bound<T>::Call       adder.Call(&Adder::AddOne, v)
//   modern:co_await CallAsync   a coroutine on the measuring thread's own
//                               apartment (Apartment::Current()) doing
//                               co_await worker.CallAsync(...) then
//                               co_await home.Schedule() to come back: the
//                               same two hand-offs as a synchronous call
//   floor:futex ping-pong       two threads, two futex words
// The rows are measured interleaved (one batch of each, round after round),
// so a change in the machine's load hits them all alike; the figure is the
// median over the rounds. Ratios: to the proxy (the Win32 path an
// application uses), to InvokeInApartment (what the modern layer adds to the
// channel) and to the futex floor.
//
// Allocations: a counting global operator new in this binary counts every
// allocation in the process (both threads) while 20,000 calls of one row run
// unpinned, divided by the number of calls.
//
// Usage: modern_bench [--reps=N] [--batch_ms=X] [--placement=same_cpu|cross_cpu|unpinned]
#include <apartments/apartment.h>
#include <apartments/bound.h>
#include <apartments/com_object.h>
#include <apartments/proxy.h>
#include <apartments/task.h>
#include <apartments/win32.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "com/apartment.h"
#include "harness.h"

// --- Counting allocator ------------------------------------------------------
namespace {
std::atomic<bool> g_counting{false};
std::atomic<long long> g_allocations{0};
}  // namespace

// Replacement allocation functions may pair malloc with free; GCC's
// -Wmismatched-new-delete does not know that these are the replacements.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return operator new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& t) noexcept {
  return operator new(size, t);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace bench {

struct IAdder : public IUnknown {
  STDMETHOD(AddOne)(LONGLONG v, LONGLONG* result) PURE;
};
APARTMENTS_INTERFACE(IAdder, IUnknown, "3f5b9a3e-7c1d-4e2a-9b8f-0a1b2c3d4e02");

APARTMENTS_PROXY_BEGIN(IAdder)
  APARTMENTS_PROXY_METHOD(AddOne, (LONGLONG v, LONGLONG* result), (v, result))
APARTMENTS_PROXY_END(IAdder)

namespace {

using apartments::Apartment;
using apartments::Bound;
using apartments::Task;

class ComAdder final : public apartments::ComObject<ComAdder, IAdder> {
 public:
  STDMETHODIMP AddOne(LONGLONG v, LONGLONG* result) override {
    if (result == nullptr) return E_POINTER;
    *result = v + 1;
    return S_OK;
  }
};

struct PlainAdder {
  long long AddOne(long long v) const { return v + 1; }
};

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "modern_bench: %s failed\n", what);
    std::abort();
  }
}

// The futex floor: a partner thread answering each ping with a pong.
class FutexPartner {
 public:
  explicit FutexPartner(int cpu)
      : thread_([this, cpu] {
          PinCurrentThread(cpu);
          std::uint32_t seen = 0;
          for (;;) {
            Wait(ping_, seen);
            seen = ping_.load(std::memory_order_acquire);
            if (stop_.load(std::memory_order_acquire)) return;
            pong_.store(seen, std::memory_order_release);
            Wake(pong_);
          }
        }) {}
  ~FutexPartner() {
    stop_.store(true, std::memory_order_release);
    ping_.fetch_add(1, std::memory_order_release);
    Wake(ping_);
    thread_.join();
  }
  long long Call(long long v) {
    const std::uint32_t next = ping_.load(std::memory_order_relaxed) + 1;
    ping_.store(next, std::memory_order_release);
    Wake(ping_);
    while (pong_.load(std::memory_order_acquire) != next) Wait(pong_, pong_.load());
    return v + 1;
  }

 private:
  static void Wait(std::atomic<std::uint32_t>& word, std::uint32_t value) {
    while (word.load(std::memory_order_acquire) == value) {
      syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value,
              nullptr, nullptr, 0);
    }
  }
  static void Wake(std::atomic<std::uint32_t>& word) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
  }
  std::atomic<std::uint32_t> ping_{0}, pong_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The coroutine row: n round trips, each co_await CallAsync on the worker and
// co_await Schedule() back home; the measuring thread pumps meanwhile.
Task<void> CoroutineLoop(const Apartment& worker, const Apartment& home, std::int64_t n,
                         long long* v, bool* done) {
  for (std::int64_t i = 0; i < n; ++i) {
    const long long x = *v;
    auto r = co_await worker.CallAsync([x] { return x + 1; });
    Check(r.has_value() && *r == x + 1, "co_await CallAsync");
    *v = *r;
    auto back = co_await home.Schedule();
    Check(back.has_value(), "co_await Schedule");
  }
  *done = true;
}

struct Row {
  Row(std::string n, std::function<void(std::int64_t)> b) : name(std::move(n)), body(std::move(b)) {}
  std::string name;
  std::function<void(std::int64_t n)> body;
  std::int64_t n = 1;
  std::vector<double> per_op;
  double allocs_per_call = -1;
};

double TimeBatch(Row& row, std::int64_t n) {
  auto start = std::chrono::steady_clock::now();
  row.body(n);
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
      .count();
}

void Measure(std::vector<Row>& rows, Placement placement) {
  const Options& o = GetOptions();
  const double target_ns = o.batch_ms * 1e6;
  for (Row& row : rows) {  // Calibrate each row to about one batch.
    row.per_op.clear();
    std::int64_t n = 16;
    double ns = TimeBatch(row, n);
    while (ns < target_ns / 4) {
      n *= 2;
      ns = TimeBatch(row, n);
    }
    row.n = std::max<std::int64_t>(1, static_cast<std::int64_t>(n * target_ns / ns));
    TimeBatch(row, row.n);  // Warm-up at the final size.
  }
  for (int r = 0; r < o.reps; ++r) {
    for (Row& row : rows) row.per_op.push_back(TimeBatch(row, row.n) / static_cast<double>(row.n));
  }
  auto median = [](const Row& row) { return Percentile(row.per_op, 0.5); };
  const Row* proxy = &rows[0];
  const Row* invoke = &rows[1];
  const Row* futex = &rows.back();
  std::printf("\n%s: median ns per round trip over %d interleaved rounds (%d vCPUs)\n",
              PlacementName(placement), o.reps, CpuCount());
  // "p10 x": the ratio of the rows' 10th percentiles, the quiet moments of a
  // loaded machine, where a bimodal median (loaded or not) says little.
  auto p10 = [](const Row& row) { return Percentile(row.per_op, 0.1); };
  std::printf("%-30s %9s %19s %9s %9s %9s %9s %9s\n", "row", "median", "p10-p90", "x proxy",
              "x invoke", "p10 x prx", "p10 x inv", "x futex");
  for (const Row& row : rows) {
    const double m = median(row);
    std::printf("%-30s %9.0f %9.0f-%-9.0f %8.3fx %8.3fx %8.3fx %8.3fx %8.2fx\n",
                row.name.c_str(), m, p10(row), Percentile(row.per_op, 0.9), m / median(*proxy),
                m / median(*invoke), p10(row) / p10(*proxy), p10(row) / p10(*invoke),
                m / median(*futex));
    std::printf("RESULT\troundtrip\t%s\t%s\t%.2f\t%.2f\t%.2f\tns\t%d\n", PlacementName(placement),
                row.name.c_str(), m, Percentile(row.per_op, 0.1), Percentile(row.per_op, 0.9),
                o.reps);
  }
  std::fflush(stdout);
}

void CountAllocations(std::vector<Row>& rows) {
  constexpr std::int64_t kCalls = 20000;
  std::printf("\nallocations per round trip (operator new calls in the process, both threads, "
              "over %lld calls)\n",
              static_cast<long long>(kCalls));
  for (Row& row : rows) {
    row.body(100);  // Warm: thread-local caches, lazily made events.
    g_allocations.store(0);
    g_counting.store(true);
    row.body(kCalls);
    g_counting.store(false);
    row.allocs_per_call = static_cast<double>(g_allocations.load()) / kCalls;
    std::printf("%-30s %6.3f\n", row.name.c_str(), row.allocs_per_call);
  }
  std::fflush(stdout);
}

void RunPlacement(Placement placement, bool count_allocations) {
  PinMain(placement);
  Check(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) == S_OK, "CoInitializeEx (caller)");
  {
    auto home_or = Apartment::Current();
    Check(home_or.has_value(), "Apartment::Current");
    const Apartment home = std::move(*home_or);

    Apartment worker({.name = "worker"});
    const int partner_cpu = CpusFor(placement).second;
    Check(worker.Call([partner_cpu] { PinCurrentThread(partner_cpu); }).has_value(), "pin worker");

    // The Win32 path: an object in the worker's STA, marshaled to this thread.
    IStream* stream = nullptr;
    Check(worker
              .Call([&stream] {
                ComAdder* adder = apartments::MakeComObject<ComAdder>();
                HRESULT hr = CoMarshalInterThreadInterfaceInStream(IID_IAdder, adder, &stream);
                adder->Release();
                return hr;
              })
              .value_or(E_FAIL) == S_OK,
          "CoMarshalInterThreadInterfaceInStream");
    IAdder* proxy = nullptr;
    Check(CoGetInterfaceAndReleaseStream(stream, IID_IAdder, reinterpret_cast<void**>(&proxy)) ==
              S_OK,
          "CoGetInterfaceAndReleaseStream");
    auto target_or = worker.Call([] { return apartments::internal::CurrentApartment(); });
    Check(target_or.has_value(), "CurrentApartment");
    const apartments::internal::ApartmentRef target = *target_or;

    auto bound_or = Bound<PlainAdder>::Create(worker);
    Check(bound_or.has_value(), "Bound::Create");
    const Bound<PlainAdder> bound = std::move(*bound_or);

    FutexPartner futex(partner_cpu);

    long long v = 0;
    std::vector<Row> rows;
    rows.emplace_back("win32:IAdder proxy", [&](std::int64_t n) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        LONGLONG out = 0;
                        Check(proxy->AddOne(v, &out) == S_OK && out == v + 1, "AddOne");
                        v = out;
                      }
                    });
    rows.emplace_back("win32:InvokeInApartment", [&](std::int64_t n) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        long long out = 0;
                        const long long x = v;
                        HRESULT hr = apartments::internal::InvokeInApartment(
                            target, [x, &out]() -> HRESULT {
                              out = x + 1;
                              return S_OK;
                            });
                        Check(hr == S_OK && out == v + 1, "InvokeInApartment");
                        v = out;
                      }
                    });
    rows.emplace_back("modern:Apartment::Call", [&](std::int64_t n) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        const long long x = v;
                        auto r = worker.Call([x] { return x + 1; });
                        Check(r.has_value() && *r == x + 1, "Apartment::Call");
                        v = *r;
                      }
                    });
    rows.emplace_back("modern:Bound<T>::Call", [&](std::int64_t n) {
                      for (std::int64_t i = 0; i < n; ++i) {
                        auto r = bound.Call(&PlainAdder::AddOne, v);
                        Check(r.has_value() && *r == v + 1, "Bound::Call");
                        v = *r;
                      }
                    });
    rows.emplace_back("modern:co_await CallAsync", [&](std::int64_t n) {
                      bool done = false;
                      Task<void> task = CoroutineLoop(worker, home, n, &v, &done);
                      MSG msg;
                      while (!done && GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
                    });
    rows.emplace_back("floor:futex ping-pong", [&](std::int64_t n) {
                      for (std::int64_t i = 0; i < n; ++i) v = futex.Call(v);
                    });

    Measure(rows, placement);
    if (count_allocations) CountAllocations(rows);
    proxy->Release();
  }
  CoUninitialize();
  PinCurrentThread(-1);
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  Options& o = GetOptions();
  o.batch_ms = 10;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strncmp(a, "--reps=", 7) == 0) {
      o.reps = std::atoi(a + 7);
    } else if (std::strncmp(a, "--batch_ms=", 11) == 0) {
      o.batch_ms = std::atof(a + 11);
    } else if (std::strncmp(a, "--placement=", 12) == 0) {
      only = a + 12;
    } else {
      std::fprintf(stderr,
                   "usage: modern_bench [--reps=N] [--batch_ms=X] "
                   "[--placement=same_cpu|cross_cpu|unpinned]\n");
      return 2;
    }
  }
  bool counted = false;
  for (Placement p : kAllPlacements) {
    if (!only.empty() && only != PlacementName(p)) continue;
    const bool count = p == Placement::kUnpinned || (!only.empty() && !counted);
    RunPlacement(p, count);
    counted = counted || count;
  }
  return 0;
}
