// Wait chains and process snapshots (apartments/diagnostics.h).
//
// Every read goes through a lower layer's own accessor (ReadWaitRecord,
// ReadMessageQueueStats, ThreadState's description), each taking that layer's
// lock briefly and never two at once, so a reader can never deadlock with the
// threads it inspects, whatever they hold.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "apartments/diagnostics.h"
#include "apartments/message_queue.h"
#include "apartments/win32_kernel.h"
#include "base/explain.h"
#include "base/thread_state.h"
#include "diag/wait_graph.h"
#include "kernel/kernel.h"
#include "message/queue.h"

namespace apartments {
namespace {

using internal::AppendJsonString;
using internal::BlockKind;
using internal::HandleText;
using internal::ThreadLabel;
using internal::ObjectKind;
using internal::WaitRecord;

// A chain longer than this is cut (a live system cannot chain more threads
// than it has, but a reader racing with waits could in principle loop).
constexpr std::size_t kMaxChainThreads = 256;

const char* BlockKindText(BlockKind kind) {
  switch (kind) {
    case BlockKind::kNone: return "none";
    case BlockKind::kKernelWait: return "kernel wait";
    case BlockKind::kSleep: return "sleep";
    case BlockKind::kMessageIdle: return "message idle";
    case BlockKind::kSendMessage: return "SendMessage";
    case BlockKind::kComCall: return "COM call";
  }
  return "?";
}

double Millis(Clock::Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void AppendJsonNumber(std::string* out, double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f", value);
  *out += buffer;
}

const char* NodeTypeText(WaitNodeType type) {
  switch (type) {
    case WaitNodeType::kThread: return "thread";
    case WaitNodeType::kObject: return "object";
    case WaitNodeType::kApartment: return "apartment";
  }
  return "?";
}

void AppendChainJson(std::string* out, const WaitChain& chain) {
  *out += "{\"tid\":" + std::to_string(chain.tid) + ",\"is_cycle\":" +
          (chain.is_cycle ? "true" : "false") + ",\"cycle_begin\":" +
          std::to_string(chain.cycle_begin) + ",\"is_deadlock\":" +
          (chain.is_deadlock ? "true" : "false") + ",\"nodes\":[";
  for (std::size_t i = 0; i < chain.nodes.size(); ++i) {
    const WaitNode& n = chain.nodes[i];
    if (i > 0) *out += ",";
    *out += "{\"type\":";
    AppendJsonString(out, NodeTypeText(n.type));
    if (n.type == WaitNodeType::kObject) {
      *out += ",\"object_kind\":";
      AppendJsonString(out, n.object_kind);
      *out += ",\"handle\":";
      AppendJsonString(out, n.handle != nullptr ? HandleText(n.handle) : std::string());
      *out += ",\"name\":";
      AppendJsonString(out, n.object_name);
      *out += ",\"owner_tid\":" + std::to_string(n.owner_tid) +
              ",\"signaled\":" + (n.signaled ? "true" : "false");
    } else {
      *out += ",\"tid\":" + std::to_string(n.tid) + ",\"thread_name\":";
      AppendJsonString(out, n.thread_name);
      *out += ",\"apartment\":";
      AppendJsonString(out, n.apartment);
      if (n.type == WaitNodeType::kThread) {
        *out += ",\"block_kind\":";
        AppendJsonString(out, n.block_kind);
        *out += ",\"waited_ms\":";
        AppendJsonNumber(out, Millis(n.waited));
        *out += std::string(",\"timed\":") + (n.timed ? "true" : "false") +
                ",\"pumps_com\":" + (n.pumps_com ? "true" : "false");
      }
    }
    *out += "}";
  }
  *out += "]}";
}

}  // namespace

namespace internal {

std::string ApartmentLabel(std::uint64_t tag) {
  if (tag == 0) return std::string();
  const std::uint64_t id = tag & kApartmentTagIdMask;
  switch (tag & kApartmentTagKindMask) {
    case kApartmentTagSta: return "STA " + std::to_string(id);
    case kApartmentTagMainSta: return "main STA " + std::to_string(id);
    case kApartmentTagMta: return "MTA " + std::to_string(id);
  }
  return std::string();
}

std::string ApartmentOfThread(DWORD tid) {
  std::uint64_t tag = 0;
  ForEachThreadState([&](ThreadState& state) {
    if (tag == 0 && state.tid.load(std::memory_order_relaxed) == tid) {
      tag = state.apartment_tag.load(std::memory_order_relaxed);
    }
  });
  return ApartmentLabel(tag);
}

bool EdgeBlocks(const WaitNode& from, const WaitNode& to) {
  if (from.timed || to.type != WaitNodeType::kThread) return false;
  // `to` serves the request only when its own wait pumps for it.
  const bool to_serves_sent = to.block_kind == BlockKindText(BlockKind::kSendMessage) ||
                              (to.block_kind == BlockKindText(BlockKind::kComCall) && to.pumps_com);
  const bool to_serves_com = to.block_kind == BlockKindText(BlockKind::kComCall) && to.pumps_com;
  if (from.block_kind == BlockKindText(BlockKind::kKernelWait)) return true;
  if (from.block_kind == BlockKindText(BlockKind::kSendMessage)) return !to_serves_sent;
  if (from.block_kind == BlockKindText(BlockKind::kComCall)) return !to_serves_com;
  return false;
}

bool EdgeMayBlock(const WaitNode& from, const WaitNode& to, std::uint32_t to_dispatch_depth) {
  if (to.type != WaitNodeType::kThread) return false;
  WaitNode untimed = from;
  untimed.timed = false;
  if (EdgeBlocks(untimed, to)) return true;
  // `to` pumps, so it would serve a new request; but when it is itself
  // handling one (a nested outgoing call), the request `from` waits on may be
  // the one it is handling, which its pumping cannot finish.
  return to.pumps_com && to_dispatch_depth > 0;
}

std::uint32_t DispatchDepthOf(DWORD tid) {
  std::uint32_t depth = 0;
  ForEachThreadState([&](ThreadState& state) {
    if (state.tid.load(std::memory_order_relaxed) != tid) return;
    DispatchView view;
    if (ReadDispatch(state.activity, &view)) depth = view.depth;
  });
  return depth;
}

WaitChain BuildWaitChain(DWORD tid, std::vector<ChainHop>* hops) {
  WaitChain chain;
  chain.tid = tid;
  const Clock::TimePoint now = internal::GuardedNow();
  std::vector<DWORD> seen;            // Threads in chain order.
  std::vector<std::size_t> seen_at;   // Their node indices.
  DWORD current = tid;
  while (current != 0 && seen.size() < kMaxChainThreads) {
    auto it = std::find(seen.begin(), seen.end(), current);
    if (it != seen.end()) {
      chain.is_cycle = true;
      chain.cycle_begin = seen_at[it - seen.begin()];
      break;
    }
    WaitRecord record = ReadWaitRecord(current);
    WaitNode thread;
    thread.type = WaitNodeType::kThread;
    thread.tid = current;
    thread.thread_name = ThreadNameOf(current);
    thread.apartment = ApartmentOfThread(current);
    thread.block_kind = BlockKindText(record.kind);
    thread.since = record.since;
    thread.waited = record.kind == BlockKind::kNone ? Clock::Duration{} : now - record.since;
    thread.timed = record.timed;
    thread.pumps_com = record.pumps_com;
    thread.wait_id = record.wait_id;
    seen.push_back(current);
    seen_at.push_back(chain.nodes.size());
    chain.nodes.push_back(std::move(thread));

    DWORD next = 0;
    switch (record.kind) {
      case BlockKind::kKernelWait: {
        // A wait for any of several objects ends when any is signaled; the
        // chain follows the first owned mutex, but blocks only when it is the
        // one object, or all are needed.
        bool single = record.wait_all || record.objects.size() == 1;
        for (const internal::WaitedObject& object : record.objects) {
          WaitNode node;
          node.type = WaitNodeType::kObject;
          node.object_kind = ObjectKindName(object.kind);
          node.handle = object.handle;
          node.object_name = WideToUtf8(object.name);
          node.owner_tid = object.owner_tid;
          node.signaled = object.signaled;
          chain.nodes.push_back(std::move(node));
          if (next == 0 && object.kind == ObjectKind::kMutex && object.owner_tid != 0 &&
              object.owner_tid != current) {
            next = object.owner_tid;
          }
          // A thread handle: the wait ends when that thread exits, so the
          // chain goes on with what that thread waits for (as Windows' WCT).
          // The handle may have been closed since the record was read: the
          // detector re-checks a cycle before it reports it.
          if (next == 0 && object.kind == ObjectKind::kThread && object.handle != nullptr) {
            // The reader may be a thread inside its own wait (the block
            // hook): leave its last error as it was.
            const DWORD saved_error = GetLastError();
            const DWORD thread = GetThreadId(object.handle);
            SetLastError(saved_error);
            if (thread != 0 && thread != current) next = thread;
          }
        }
        // A wait that names the thread it waits for (EnterCriticalSection:
        // the section's owner) goes on to that thread, shown as the owner of
        // the object.
        if (next == 0 && single && record.target_tid != 0 && record.target_tid != current) {
          next = record.target_tid;
          if (chain.nodes.back().owner_tid == 0) chain.nodes.back().owner_tid = next;
        }
        // Any one of several objects ends the wait: never a deadlock edge.
        if (!single) chain.nodes[seen_at.back()].block_kind = "kernel wait (any)";
        break;
      }
      case BlockKind::kSendMessage:
        next = record.target_tid;
        break;
      case BlockKind::kComCall:
        if (record.target_tid != 0) {
          WaitNode node;
          node.type = WaitNodeType::kApartment;
          node.tid = record.target_tid;
          node.thread_name = ThreadNameOf(record.target_tid);
          node.apartment = ApartmentOfThread(record.target_tid);
          chain.nodes.push_back(std::move(node));
        }
        next = record.target_tid;
        break;
      default:
        break;
    }
    if (next != 0 && hops != nullptr) hops->push_back({current, record.wait_id, next});
    current = next;
  }
  if (chain.is_cycle) {
    // Deadlock: every edge of the cycle blocks.
    std::vector<const WaitNode*> cycle;
    for (std::size_t i = chain.cycle_begin; i < chain.nodes.size(); ++i) {
      if (chain.nodes[i].type == WaitNodeType::kThread) cycle.push_back(&chain.nodes[i]);
    }
    bool blocks = !cycle.empty();
    for (std::size_t i = 0; blocks && i < cycle.size(); ++i) {
      blocks = EdgeBlocks(*cycle[i], *cycle[(i + 1) % cycle.size()]);
    }
    chain.is_deadlock = blocks;
  }
  return chain;
}

}  // namespace internal

namespace internal {

std::string AdviceFor(const WaitChain& chain, bool busy) {
  const auto is_sta = [](const WaitNode& n) {
    return n.apartment.find("STA") != std::string::npos;
  };
  const auto non_pumping = [](const WaitNode& n) {
    return n.block_kind.rfind("kernel wait", 0) == 0 || n.block_kind == "sleep";
  };
  const std::string sta_advice =
      " is a single-threaded apartment blocked in a wait that does not pump messages: use "
      "CoWaitForMultipleHandles (or MsgWaitForMultipleObjectsEx with a message loop) instead "
      "of WaitForSingleObject/WaitForMultipleObjects/Sleep in an STA, so that it keeps "
      "serving its calls and messages.\n";
  const std::string lead = "What to do next: ";
  if (chain.nodes.empty()) return std::string();
  const WaitNode& first = chain.nodes[0];
  if (busy && first.block_kind == "none") {
    return lead + ThreadLabel(first.tid, first.thread_name) +
           " is busy running the call, not waiting: see its stack for the work that takes "
           "this long, and move long work off an apartment's thread (or split it and pump "
           "messages between the parts).\n";
  }
  std::vector<const WaitNode*> threads;
  for (std::size_t i = chain.is_cycle ? chain.cycle_begin : 0; i < chain.nodes.size(); ++i) {
    if (chain.nodes[i].type == WaitNodeType::kThread) threads.push_back(&chain.nodes[i]);
  }
  // An STA in a non-pumping wait is the most common cause, and the easiest fix.
  for (const WaitNode* n : threads) {
    if (is_sta(*n) && non_pumping(*n)) return lead + ThreadLabel(n->tid, n->thread_name) + sta_advice;
  }
  if (chain.is_cycle) {
    // A mutex held across a call or SendMessage that leads back to a waiter.
    for (std::size_t i = chain.cycle_begin; i < chain.nodes.size(); ++i) {
      const WaitNode& n = chain.nodes[i];
      if (n.type != WaitNodeType::kObject || n.object_kind != "mutex" || n.owner_tid == 0) continue;
      for (const WaitNode* t : threads) {
        if (t->tid == n.owner_tid && t->block_kind != "kernel wait") {
          return lead + "do not hold mutex" +
                 (n.object_name.empty() ? std::string() : " '" + n.object_name + "'") +
                 " across a " + t->block_kind + ": " + ThreadLabel(t->tid, t->thread_name) +
                 " holds it while it waits in one, and the wait leads back to the mutex.\n";
        }
      }
    }
    return lead + "break the cycle above: one of these threads must stop waiting for the "
                  "next while it holds what that one needs (take locks in one order, and "
                  "hold none across a call into another apartment or a SendMessageW).\n";
  }
  const WaitNode& last = *threads.back();
  for (const WaitNode* n : threads) {
    if (n->block_kind == "SendMessage" && n != &last) {
      return lead + "SendMessageW waits until the window's thread pumps messages; " +
             ThreadLabel(last.tid, last.thread_name) +
             " does not (see above): make it pump, or send with SendMessageTimeoutW, or post "
             "with PostMessageW.\n";
    }
  }
  if (last.block_kind == "none") {
    if (threads.size() == 1) {
      return lead + ThreadLabel(last.tid, last.thread_name) +
             " is running, not waiting, and retrieves no message: see its stack; an "
             "apartment's thread must return to its message loop (GetMessageW/"
             "DispatchMessageW) to serve what waits.\n";
    }
    return lead + "the chain ends at " + ThreadLabel(last.tid, last.thread_name) +
           ", which is running, not waiting: see its stack for what keeps it busy.\n";
  }
  if (non_pumping(last)) {
    return lead + ThreadLabel(last.tid, last.thread_name) +
           " waits for an object nobody has signaled (the chain ends there): find the code "
           "that should signal it, or wait with a timeout.\n";
  }
  return std::string();
}

}  // namespace internal

WaitChain GetWaitChain(DWORD tid) { return internal::BuildWaitChain(tid, nullptr); }

ProcessSnapshot TakeSnapshot() {
  ProcessSnapshot snapshot;
  snapshot.taken_at = internal::GuardedNow();
  std::vector<DWORD> tids;
  internal::ForEachThreadState([&](internal::ThreadState& state) {
    const DWORD tid = state.tid.load(std::memory_order_relaxed);
    if (tid != 0) tids.push_back(tid);
  });
  std::sort(tids.begin(), tids.end());
  tids.erase(std::unique(tids.begin(), tids.end()), tids.end());
  const std::uint64_t quota = GetPostMessageLimit();
  for (DWORD tid : tids) {
    ThreadSnapshot thread;
    thread.tid = tid;
    thread.name = internal::ThreadNameOf(tid);
    thread.apartment = internal::ApartmentOfThread(tid);
    internal::MessageQueueStats stats;
    if (internal::ReadMessageQueueStats(tid, &stats)) {
      thread.has_queue = true;
      thread.queue_depth = stats.depth;
      thread.queue_quota = quota;
      thread.sent_pending = stats.sent_pending;
      thread.last_pumped_age = snapshot.taken_at - stats.last_pumped;
    }
    thread.chain = GetWaitChain(tid);
    if (thread.chain.is_cycle) {
      std::vector<DWORD> cycle;
      for (std::size_t i = thread.chain.cycle_begin; i < thread.chain.nodes.size(); ++i) {
        if (thread.chain.nodes[i].type == WaitNodeType::kThread) {
          cycle.push_back(thread.chain.nodes[i].tid);
        }
      }
      std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
      if (std::find(snapshot.cycles.begin(), snapshot.cycles.end(), cycle) ==
          snapshot.cycles.end()) {
        snapshot.cycles.push_back(std::move(cycle));
        snapshot.cycle_is_deadlock.push_back(thread.chain.is_deadlock);
      }
    }
    snapshot.threads.push_back(std::move(thread));
  }
  return snapshot;
}

std::string FormatWaitChain(const WaitChain& chain) {
  std::string out;
  for (std::size_t i = 0; i < chain.nodes.size(); ++i) {
    const WaitNode& n = chain.nodes[i];
    out += i == 0 ? "  " : "  -> ";
    switch (n.type) {
      case WaitNodeType::kThread:
        out += ThreadLabel(n.tid, n.thread_name);
        if (!n.apartment.empty()) out += " [" + n.apartment + "]";
        if (n.block_kind == "none") {
          out += " is not blocked";
        } else {
          out += " blocked in " + n.block_kind + " for " +
                 internal::FormatDuration(n.waited) + (n.timed ? " (with a timeout)" : "") +
                 (n.pumps_com ? " (serving incoming COM calls)" : "");
        }
        break;
      case WaitNodeType::kObject:
        out += n.object_kind;
        if (!n.object_name.empty()) out += " '" + n.object_name + "'";
        out += n.handle != nullptr ? " handle " + HandleText(n.handle) : " (internal)";
        if (n.object_kind == "mutex") {
          out += n.owner_tid != 0 ? ", owned by thread " + std::to_string(n.owner_tid)
                                  : ", not owned";
        } else {
          out += n.signaled ? ", signaled" : ", not signaled";
        }
        break;
      case WaitNodeType::kApartment:
        out += "call into " + (n.apartment.empty() ? std::string("an apartment") : n.apartment) +
               ", served by " + ThreadLabel(n.tid, n.thread_name);
        break;
    }
    out += "\n";
  }
  if (chain.is_cycle) {
    const WaitNode& back = chain.nodes[chain.cycle_begin];
    out += "  -> back to " + ThreadLabel(back.tid, back.thread_name) +
           (chain.is_deadlock ? ": a deadlock cycle\n"
                              : ": a cycle (not a deadlock: a wait in it can end)\n");
  }
  return out;
}

std::string FormatSnapshot(const ProcessSnapshot& snapshot) {
  std::string out = std::to_string(snapshot.threads.size()) + " threads\n";
  for (const ThreadSnapshot& t : snapshot.threads) {
    out += ThreadLabel(t.tid, t.name);
    if (!t.apartment.empty()) out += " [" + t.apartment + "]";
    if (t.has_queue) {
      out += ": queue " + std::to_string(t.queue_depth) + "/" + std::to_string(t.queue_quota) +
             ", " + std::to_string(t.sent_pending) + " sent pending, last pumped " +
             internal::FormatDuration(t.last_pumped_age) + " ago";
    }
    out += "\n" + FormatWaitChain(t.chain);
  }
  for (std::size_t i = 0; i < snapshot.cycles.size(); ++i) {
    out += snapshot.cycle_is_deadlock[i] ? "DEADLOCK:" : "cycle:";
    for (DWORD tid : snapshot.cycles[i]) out += " " + std::to_string(tid);
    out += "\n";
  }
  return out;
}

std::string ToJson(const WaitChain& chain) {
  std::string out;
  AppendChainJson(&out, chain);
  return out;
}

std::string ToJson(const ProcessSnapshot& snapshot) {
  std::string out = "{\"threads\":[";
  for (std::size_t i = 0; i < snapshot.threads.size(); ++i) {
    const ThreadSnapshot& t = snapshot.threads[i];
    if (i > 0) out += ",";
    out += "{\"tid\":" + std::to_string(t.tid) + ",\"name\":";
    AppendJsonString(&out, t.name);
    out += ",\"apartment\":";
    AppendJsonString(&out, t.apartment);
    out += std::string(",\"has_queue\":") + (t.has_queue ? "true" : "false") +
           ",\"queue_depth\":" + std::to_string(t.queue_depth) +
           ",\"queue_quota\":" + std::to_string(t.queue_quota) +
           ",\"sent_pending\":" + std::to_string(t.sent_pending) + ",\"last_pumped_ms\":";
    AppendJsonNumber(&out, Millis(t.last_pumped_age));
    out += ",\"chain\":";
    AppendChainJson(&out, t.chain);
    out += "}";
  }
  out += "],\"cycles\":[";
  for (std::size_t i = 0; i < snapshot.cycles.size(); ++i) {
    if (i > 0) out += ",";
    out += std::string("{\"deadlock\":") + (snapshot.cycle_is_deadlock[i] ? "true" : "false") +
           ",\"threads\":[";
    for (std::size_t j = 0; j < snapshot.cycles[i].size(); ++j) {
      if (j > 0) out += ",";
      out += std::to_string(snapshot.cycles[i][j]);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

}  // namespace apartments
