// Per-thread state, created on a thread's first use of the library.
//
// Every thread that touches the library gets one ThreadState. The memory is
// type-stable: states are never freed, only recycled for new threads after
// their thread exits. That lets another thread (a signaler finishing a futex
// wake, the diagnostics reader) touch a state it found a moment ago without a
// use-after-free; whatever it reads must still be validated by the layer that
// owns the field (generation checks, the kernel lock).
//
// Lifecycle of a ThreadState:
//   kFree --(thread's first call)--> kLive --(thread exit: hooks run)--> kFree
// Upper layers attach their per-thread data to `layer_data` and register an
// exit hook; hooks run on the exiting thread, from the top layer down.
#ifndef APARTMENTS_SRC_BASE_THREAD_STATE_H_
#define APARTMENTS_SRC_BASE_THREAD_STATE_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "apartments/win32_types.h"
#include "base/activity.h"

namespace apartments::internal {

// The layers that keep per-thread data, bottom-up. Exit hooks run top-down.
enum class Layer : int { kKernel = 0, kMessage, kCom, kDiag, kCount };

// ThreadState::apartment_tag: the kind in the top two bits, the id below.
inline constexpr std::uint64_t kApartmentTagSta = 1ull << 62;
inline constexpr std::uint64_t kApartmentTagMainSta = 2ull << 62;
inline constexpr std::uint64_t kApartmentTagMta = 3ull << 62;
inline constexpr std::uint64_t kApartmentTagKindMask = 3ull << 62;
inline constexpr std::uint64_t kApartmentTagIdMask = ~kApartmentTagKindMask;

struct ThreadState {
  // The Linux thread id (what GetCurrentThreadId returns). Written before the
  // state is published in the registry; stable while `live`.
  std::atomic<DWORD> tid{0};
  // Incremented each time the state is recycled for another thread, so a
  // reader holding (state, generation) can tell the thread it meant has gone.
  std::atomic<std::uint32_t> generation{0};
  std::atomic<bool> live{false};

  // The apartment the thread is in, published by the COM layer for
  // diagnostics (read from other threads without a lock): 0 when none, else
  // the apartment id with the kind in the top bits (kApartmentTag* below).
  std::atomic<std::uint64_t> apartment_tag{0};

  // The thread's parking word: a futex the kernel layer sleeps on while the
  // thread blocks. It lives here, in type-stable memory, so that a waker may
  // still touch it (FUTEX_WAKE) after the sleeper has returned or even exited.
  std::atomic<std::uint32_t> park{0};

  // What the thread is handling, for the hang watchdog (base/activity.h).
  ThreadActivity activity;

  // Data of the upper layers, owned by them; created lazily on the owning
  // thread, destroyed by that layer's exit hook.
  std::array<void*, static_cast<int>(Layer::kCount)> layer_data{};

  // Registry link (all states ever created). Immutable once published.
  ThreadState* registry_next = nullptr;
  ThreadState* free_next = nullptr;  // Guarded by the registry mutex.

  // The thread's description (SetThreadDescription), UTF-32 as WCHAR.
  std::wstring Description() const;
  void SetDescription(std::wstring description);
  // The description as UTF-8 (for reports), or "" when none was set.
  std::string DescriptionUtf8() const;

 private:
  mutable std::mutex description_mu_;
  std::wstring description_;  // Guarded by description_mu_.
};

// The hot-path thread-locals behind the two functions below, inline because
// every call path asks for them several times. `__thread` (constant-
// initialized, trivially destructible) so an access is one %fs-relative
// load: no TLS wrapper call, no init check.
extern __thread ThreadState* t_current_state;
extern __thread DWORD t_current_tid;
ThreadState& CreateCurrentThreadState();
DWORD InitCurrentThreadId() noexcept;

// The calling thread's state, created on first use.
// Thread safety: the calling thread only (it is the caller's own state).
inline ThreadState& CurrentThreadState() noexcept {
  ThreadState* s = t_current_state;
  if (__builtin_expect(s != nullptr, 1)) return *s;
  return CreateCurrentThreadState();
}

// The calling thread's Linux thread id, cached per thread (no system call
// after the first).
inline DWORD CurrentThreadId() noexcept {
  const DWORD tid = t_current_tid;
  if (__builtin_expect(tid != 0, 1)) return tid;
  return InitCurrentThreadId();
}

// A layer's hook, run on the exiting thread for each ThreadState that thread
// used. Register at static-initialization time (from the layer's .cc file);
// registering twice for one layer replaces the hook.
using ThreadExitHook = void (*)(ThreadState& state);
void SetThreadExitHook(Layer layer, ThreadExitHook hook) noexcept;

// A layer's hook, run by ExitThread on the calling thread before the forced
// unwind starts (from the top layer down), while every frame of the thread
// is still in place: the COM layer ends the thread's STA there, so that
// nothing is served on the way out and releases made by the unwinding
// frames have nothing left to wait for. Not run for a thread that returns
// or is cancelled.
void SetThreadExitStartingHook(Layer layer, ThreadExitHook hook) noexcept;
void RunThreadExitStartingHooks() noexcept;

// Calls `visit(state)` for every live thread state. The registry is only ever
// appended to, so this takes no lock; each state may be going away while it is
// visited, which `visit` must tolerate (see the file comment).
template <typename Visitor>
void ForEachThreadState(Visitor&& visit);

// The head of the registry list (for ForEachThreadState).
ThreadState* ThreadRegistryHead() noexcept;

template <typename Visitor>
void ForEachThreadState(Visitor&& visit) {
  for (ThreadState* s = ThreadRegistryHead(); s != nullptr; s = s->registry_next) {
    if (s->live.load(std::memory_order_acquire)) visit(*s);
  }
}

// Converts between the library's wide strings (UTF-32 wchar_t) and UTF-8.
std::string WideToUtf8(const std::wstring& wide);
std::wstring Utf8ToWide(const std::string& utf8);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_THREAD_STATE_H_
