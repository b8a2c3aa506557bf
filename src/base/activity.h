// What a thread is handling, published for the hang watchdog at near-zero
// cost (diagnostics.h: single-call overruns, filtered pumps).
//
// The owner thread is the only writer; the watchdog reads from another
// thread. Dispatch fields are a seqlock: the owner makes `seq` odd, writes the
// fields, makes it even again, with relaxed stores and release fences (plain
// stores on x86); readers retry or give up on an odd or changed `seq`. No
// clock is read: the watchdog times a dispatch it sees with the same `seq`
// across its looks. `seq` changes at every dispatch begin and end, so an
// unchanged even `seq` with depth > 0 means the same dispatch is in flight.
#ifndef APARTMENTS_SRC_BASE_ACTIVITY_H_
#define APARTMENTS_SRC_BASE_ACTIVITY_H_

#include <atomic>
#include <cstdint>

#include "apartments/win32_typedefs.h"  // HWND, UINT (types only).

namespace apartments::internal {

// ThreadSanitizer does not model fences (-Wtsan): there, the seqlock uses
// sequentially consistent accesses instead, which it does model.
#if defined(__SANITIZE_THREAD__)
inline constexpr std::memory_order kSeqlockField = std::memory_order_seq_cst;
inline void SeqlockFence(std::memory_order) noexcept {}
#else
inline constexpr std::memory_order kSeqlockField = std::memory_order_relaxed;
inline void SeqlockFence(std::memory_order order) noexcept { std::atomic_thread_fence(order); }
#endif

// The messages an STA's window (ThreadActivity::apartment_hwnd) receives,
// published here, below the COM layer that owns them, so that diagnostics can
// tell a COM call from other traffic. WM_USER (0x0400) + 0x0C0A: the one
// message of the channel, lParam the queued entry (a call, a one-way task or
// the runtime's work), wParam its kind (com/apartment_impl.h).
inline constexpr UINT kComCallMessage = 0x0400 + 0x0C0A;

struct ThreadActivity {
  // --- The innermost dispatch in progress (seqlock) ---
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> depth{0};
  std::atomic<HWND> hwnd{nullptr};
  std::atomic<UINT> message{0};
  // Null for a window message, else a static label ("COM call").
  std::atomic<const char*> label{nullptr};

  // --- The filter of the latest GetMessageW/PeekMessageW (relaxed) ---
  std::atomic<HWND> filter_hwnd{nullptr};
  std::atomic<UINT> filter_min{0};
  std::atomic<UINT> filter_max{0};

  // --- The wake mask of the MsgWaitForMultipleObjectsEx the thread sleeps
  // in, with kWakeMaskPublished set; 0 when it is in none (relaxed) ---
  static constexpr std::uint32_t kWakeMaskPublished = 0x80000000u;
  std::atomic<std::uint32_t> wake_mask{0};

  // --- The thread's STA window (COM layer), or null ---
  std::atomic<HWND> apartment_hwnd{nullptr};

  // Owner only.
  void Write(std::uint32_t new_depth, HWND h, UINT m, const char* l) noexcept {
    const std::uint32_t s = seq.load(std::memory_order_relaxed);
    seq.store(s + 1, kSeqlockField);
    SeqlockFence(std::memory_order_release);
    depth.store(new_depth, kSeqlockField);
    hwnd.store(h, kSeqlockField);
    message.store(m, kSeqlockField);
    label.store(l, kSeqlockField);
    seq.store(s + 2, std::memory_order_release);
  }

  // Owner only: cheap when the filter is unchanged (loads of its own line).
  void PublishFilter(HWND h, UINT min, UINT max) noexcept {
    if (filter_hwnd.load(std::memory_order_relaxed) != h) {
      filter_hwnd.store(h, std::memory_order_relaxed);
    }
    if (filter_min.load(std::memory_order_relaxed) != min) {
      filter_min.store(min, std::memory_order_relaxed);
    }
    if (filter_max.load(std::memory_order_relaxed) != max) {
      filter_max.store(max, std::memory_order_relaxed);
    }
  }
};

// A consistent view of a thread's dispatch state.
struct DispatchView {
  std::uint32_t seq = 0;
  std::uint32_t depth = 0;
  HWND hwnd = nullptr;
  UINT message = 0;
  const char* label = nullptr;
};

// Any thread. False when the owner was writing (try again at the next look).
inline bool ReadDispatch(const ThreadActivity& a, DispatchView* view) noexcept {
  const std::uint32_t s1 = a.seq.load(std::memory_order_acquire);
  if ((s1 & 1) != 0) return false;
  view->depth = a.depth.load(kSeqlockField);
  view->hwnd = a.hwnd.load(kSeqlockField);
  view->message = a.message.load(kSeqlockField);
  view->label = a.label.load(kSeqlockField);
  SeqlockFence(std::memory_order_acquire);
  if (a.seq.load(kSeqlockField) != s1) return false;
  view->seq = s1;
  return true;
}

// Marks a dispatch (a window procedure call, an incoming COM call) for its
// scope; restores the enclosing one after. Owner thread only.
class ScopedDispatch {
 public:
  ScopedDispatch(ThreadActivity& a, HWND h, UINT m, const char* l) noexcept
      : a_(a),
        depth_(a.depth.load(std::memory_order_relaxed)),
        hwnd_(a.hwnd.load(std::memory_order_relaxed)),
        message_(a.message.load(std::memory_order_relaxed)),
        label_(a.label.load(std::memory_order_relaxed)) {
    a_.Write(depth_ + 1, h, m, l);
  }
  ~ScopedDispatch() { a_.Write(depth_, hwnd_, message_, label_); }
  ScopedDispatch(const ScopedDispatch&) = delete;
  ScopedDispatch& operator=(const ScopedDispatch&) = delete;

 private:
  ThreadActivity& a_;
  std::uint32_t depth_;
  HWND hwnd_;
  UINT message_;
  const char* label_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_ACTIVITY_H_
