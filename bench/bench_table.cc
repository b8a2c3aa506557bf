// Collects the lines every suite binary prints (RESULT, SKIP, NOTE, INFO; see
// harness.h) from stdin and prints the suite's one table: per workload and
// placement, each implementation's median with its p10-p90 spread and its
// ratio to the floor measured in the same run, then the memory and syscall
// figures, the notes, and the targets of issues 7 and 14 with how far each is.
//
// Usage: (suite binaries) | bench_table [--title=TEXT]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

struct Row {
  std::string group, placement, impl;
  bool skipped = false;
  std::string reason;
  double median = 0, p10 = 0, p90 = 0;
  int reps = 0;
};

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string field;
  while (std::getline(ss, field, '\t')) out.push_back(field);
  return out;
}

std::string Kind(const std::string& impl) { return impl.substr(0, impl.find(':')); }
std::string What(const std::string& impl) {
  size_t colon = impl.find(':');
  return colon == std::string::npos ? impl : impl.substr(colon + 1);
}
int KindOrder(const std::string& kind) {
  if (kind == "floor") return 0;
  if (kind == "ours") return 1;
  if (kind == "wine") return 2;
  return 3;
}

std::vector<Row> rows;
std::vector<std::string> notes;
std::vector<std::pair<std::string, std::vector<std::string>>> infos;  // section, fields

const Row* Find(const std::string& group, const std::string& placement, const std::string& impl) {
  for (const Row& r : rows) {
    if (r.group == group && r.placement == placement && r.impl == impl && !r.skipped) return &r;
  }
  return nullptr;
}

std::string Fmt(double ns) {
  char buf[32];
  if (ns >= 100) std::snprintf(buf, sizeof buf, "%.0f", ns);
  else if (ns >= 10) std::snprintf(buf, sizeof buf, "%.1f", ns);
  else std::snprintf(buf, sizeof buf, "%.2f", ns);
  return buf;
}

struct Group {
  const char* id;
  const char* title;
  bool throughput;  // Ratios as throughput relative to the floor (floor / ours).
  const char* floor_group;
  const char* floor_impl;
  const char* floor_label;
};

const Group kGroups[] = {
    {"roundtrip",
     "Synchronous cross-thread round trip (ns per call or ping-pong; the callee returns v + 1)",
     false, "roundtrip", "floor:futex ping-pong", "x futex"},
    {"post1", "One-way posts, 1 producer -> 1 consumer (ns per message)", true, "post1",
     "floor:mutex+condvar deque", "x deque"},
    {"post2", "One-way posts, 2 producers -> 1 consumer (ns per message)", true, "post2",
     "floor:mutex+condvar deque", "x deque"},
    {"wait", "Single-thread fast paths (ns per operation)", false, "wait",
     "floor:one syscall (getppid)", "x syscall"},
};

void PrintGroup(const Group& g) {
  std::vector<std::string> placements;
  for (const Row& r : rows) {
    if (r.group == g.id && std::find(placements.begin(), placements.end(), r.placement) ==
                               placements.end()) {
      placements.push_back(r.placement);
    }
  }
  if (placements.empty()) return;
  std::printf("\n## %s\n", g.title);
  if (g.throughput) {
    std::printf("%s = throughput relative to the mutex+condvar deque in the same placement "
                "(higher is faster)\n", g.floor_label);
  } else if (std::string(g.id) == "roundtrip") {
    std::printf("x futex = time relative to the futex ping-pong in the same placement; x spin = "
                "relative to the spinning ping-pong across vCPUs (cross_cpu rows)\n");
  } else {
    std::printf("x syscall = time relative to one getppid() system call\n");
  }
  std::printf("\n%-10s  %-5s %-44s %10s %21s %10s%s\n", "placement", "kind", "implementation",
              "median", "p10-p90", g.floor_label, g.throughput ? "     M msg/s" :
              (std::string(g.id) == "roundtrip" ? "     x spin" : ""));
  for (const std::string& placement : placements) {
    std::vector<const Row*> group_rows;
    for (const Row& r : rows) {
      if (r.group == g.id && r.placement == placement) group_rows.push_back(&r);
    }
    std::stable_sort(group_rows.begin(), group_rows.end(), [](const Row* a, const Row* b) {
      return KindOrder(Kind(a->impl)) < KindOrder(Kind(b->impl));
    });
    const Row* floor = Find(g.floor_group, placement, g.floor_impl);
    const Row* spin = Find("roundtrip", "cross_cpu", "floor:spin ping-pong");
    bool first = true;
    for (const Row* r : group_rows) {
      std::printf("%-10s  %-5s %-44s ", first ? placement.c_str() : "", Kind(r->impl).c_str(),
                  What(r->impl).c_str());
      first = false;
      if (r->skipped) {
        std::printf("%s\n", r->reason.c_str());
        continue;
      }
      std::string spread = Fmt(r->p10) + "-" + Fmt(r->p90);
      std::printf("%10s %21s", Fmt(r->median).c_str(), spread.c_str());
      if (floor != nullptr && r->median > 0) {
        double ratio = g.throughput ? floor->median / r->median : r->median / floor->median;
        std::printf(" %9.2fx", ratio);
      } else {
        std::printf(" %10s", "-");
      }
      if (g.throughput) std::printf(" %11.2f", 1e3 / r->median);
      if (std::string(g.id) == "roundtrip" && placement == "cross_cpu" && spin != nullptr) {
        std::printf(" %9.1fx", r->median / spin->median);
      }
      std::printf("\n");
    }
  }
}

// The fastest peer row of `group` in `placement` (null: none measured).
const Row* FastestPeer(const std::string& group, const std::string& placement) {
  const Row* best = nullptr;
  for (const Row& r : rows) {
    if (r.group == group && r.placement == placement && !r.skipped && Kind(r.impl) == "peer" &&
        (best == nullptr || r.median < best->median)) {
      best = &r;
    }
  }
  return best;
}

// The targets of issues 7 and 14 (DESIGN.md "Performance targets"), each
// checked against this run's figures.
void PrintTargets() {
  std::printf("\n## Targets (issues 7 and 14), checked against this run\n\n");
  auto ratio = [](const Row* a, const Row* b) { return a && b ? a->median / b->median : 0.0; };
  auto verdict = [](bool met) { return met ? "MET" : "NOT MET"; };
  const char* sta = "ours:COM STA->STA (IAdder proxy)";
  const Row* futex = Find("roundtrip", "same_cpu", "floor:futex ping-pong");
  const Row* fastest_peer = FastestPeer("roundtrip", "same_cpu");
  // One vCPU: at most `limit` x the futex round trip (and, for the calls
  // into an STA, below every peer of the same run).
  for (const auto& [impl, label, limit, below_peers] :
       {std::tuple{sta, "STA->STA", 1.10, true},
        std::tuple{"ours:COM MTA->STA (IAdder proxy)", "MTA->STA", 1.10, true},
        std::tuple{"ours:COM STA->MTA (IAdder proxy)", "STA->MTA", 1.15, false}}) {
    const Row* ours = Find("roundtrip", "same_cpu", impl);
    if (!ours || !futex) {
      std::printf("- %s call on one vCPU <= %.2fx futex: not measured in this run\n", label, limit);
      continue;
    }
    const double x = ratio(ours, futex);
    bool met = x <= limit;
    std::printf("- %s call on one vCPU <= %.2fx futex: %.2fx", label, limit, x);
    if (below_peers && fastest_peer) {
      met = met && ours->median < fastest_peer->median;
      std::printf("; fastest peer %s at %.2fx: %s", What(fastest_peer->impl).c_str(),
                  ratio(fastest_peer, futex),
                  ours->median < fastest_peer->median ? "ours below it" : "ours NOT below it");
    }
    std::printf(", %s\n", verdict(met));
  }
  {
    const Row* ours = Find("roundtrip", "cross_cpu", sta);
    const Row* spin = Find("roundtrip", "cross_cpu", "floor:spin ping-pong");
    if (ours && spin) {
      double x = ratio(ours, spin);
      double spread = ours->p90 / ours->median;
      std::printf("- STA->STA call across vCPUs <= 5x spinning round trip, p90 <= 2x median: "
                  "%.1fx (%.2f us vs %.2f us), p90 %.2fx the median, %s\n",
                  x, ours->median / 1e3, spin->median / 1e3, spread,
                  verdict(x <= 5 && spread <= 2));
    } else {
      std::printf("- STA->STA call across vCPUs <= 5x spin: not measured in this run\n");
    }
  }
  {
    const Row* ours = Find("roundtrip", "cross_cpu", "ours:event ping-pong");
    const Row* peer = FastestPeer("roundtrip", "cross_cpu");
    if (ours && peer) {
      double x = peer->median / ours->median;
      std::printf("- event ping-pong across vCPUs >= 10x faster than every peer: %.1fx the "
                  "fastest peer (%s, %.2f us vs ours %.2f us), %s\n",
                  x, What(peer->impl).c_str(), peer->median / 1e3, ours->median / 1e3,
                  verdict(x >= 10));
    }
  }
  for (const char* placement : {"same_cpu", "cross_cpu", "unpinned"}) {
    const Row* ours = Find("post1", placement, "ours:PostThreadMessageW");
    const Row* deque = Find("post1", placement, "floor:mutex+condvar deque");
    if (!ours || !deque) continue;
    double x = deque->median / ours->median;
    std::string best_peer;
    double best = 1e300;
    for (const Row& r : rows) {
      if (r.group == "post1" && r.placement == placement && !r.skipped &&
          (Kind(r.impl) == "peer") && r.median < best) {
        best = r.median;
        best_peer = What(r.impl);
      }
    }
    std::printf("- posts, 1 producer, %s: >= 2x the deque: %.2fx, %s", placement, x,
                verdict(x >= 2));
    if (!best_peer.empty()) {
      std::printf("; fastest peer %s at %.1f ns/msg vs ours %.1f: %s", best_peer.c_str(), best,
                  ours->median, ours->median <= best ? "ours ahead" : "peer ahead");
    }
    std::printf("\n");
  }
  for (const auto& [section, f] : infos) {
    if (section == "memory" && f.size() >= 2 && f[0] == "bytes per queued message") {
      double b = std::atof(f[1].c_str());
      std::printf("- memory per queued message <= 128 bytes: %.0f bytes, %s\n", b, verdict(b <= 128));
    }
    if (section == "memory" && f.size() >= 2 && f[0].rfind("bytes per idle STA", 0) == 0) {
      double b = std::atof(f[1].c_str());
      std::printf("- memory per idle STA beyond its stack <= 64 KiB: %.1f KiB, %s\n", b / 1024,
                  verdict(b <= 65536));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string title;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--title=", 0) == 0) title = a.substr(8);
  }
  std::string line;
  int reps = 0;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> f = Split(line);
    if (f.empty()) continue;
    if (f[0] == "RESULT" && f.size() >= 9) {
      Row r;
      r.group = f[1];
      r.placement = f[2];
      r.impl = f[3];
      r.median = std::atof(f[4].c_str());
      r.p10 = std::atof(f[5].c_str());
      r.p90 = std::atof(f[6].c_str());
      r.reps = std::atoi(f[8].c_str());
      reps = std::max(reps, r.reps);
      rows.push_back(r);
    } else if (f[0] == "SKIP" && f.size() >= 5) {
      Row r;
      r.group = f[1];
      r.placement = f[2];
      r.impl = f[3];
      r.skipped = true;
      r.reason = f[4];
      rows.push_back(r);
    } else if (f[0] == "NOTE" && f.size() >= 2) {
      notes.push_back(f[1]);
    } else if (f[0] == "INFO" && f.size() >= 3) {
      infos.emplace_back(f[1], std::vector<std::string>(f.begin() + 2, f.end()));
    }
  }
  if (!title.empty()) std::printf("%s\n", title.c_str());
  std::printf("Medians over %d repetitions (batches of ~20 ms each), spread p10-p90.\n", reps);
  for (const auto& g : kGroups) PrintGroup(g);
  for (const char* section : {"memory", "syscalls"}) {
    bool any = false;
    for (const auto& [s, f] : infos) {
      if (s != section) continue;
      if (!any) {
        std::printf("\n## %s\n\n", std::string(section) == "memory"
                                       ? "Memory (ours)"
                                       : "System calls and context switches per operation");
        any = true;
      }
      std::printf("- %s: %s", f[0].c_str(), f.size() > 1 ? f[1].c_str() : "");
      for (size_t i = 2; i < f.size(); ++i) std::printf(" %s", f[i].c_str());
      std::printf("\n");
    }
  }
  PrintTargets();
  if (!notes.empty()) {
    std::printf("\n## Notes\n\n");
    for (const auto& n : notes) std::printf("- %s\n", n.c_str());
  }
  return 0;
}
