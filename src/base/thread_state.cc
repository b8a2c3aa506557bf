#include "base/thread_state.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/check.h"

namespace apartments::internal {

__thread ThreadState* t_current_state = nullptr;
__thread DWORD t_current_tid = 0;

namespace {

std::atomic<ThreadExitHook> g_exit_hooks[static_cast<int>(Layer::kCount)];
std::atomic<ThreadExitHook> g_exit_starting_hooks[static_cast<int>(Layer::kCount)];

// The registry: every ThreadState ever allocated, linked through
// registry_next and published with a release store of the head, so readers
// walk it without a lock. The free list is guarded by g_registry_mu.
std::atomic<ThreadState*> g_registry_head{nullptr};
std::mutex g_registry_mu;
ThreadState* g_free_list = nullptr;  // Guarded by g_registry_mu.

thread_local bool t_exited = false;

void ExitCurrentThreadState() noexcept;

// Runs the exit hooks when the thread exits. Only instantiated on a thread's
// slow path, so the hot path never pays for its TLS guard.
struct ExitGuard {
  ~ExitGuard() { ExitCurrentThreadState(); }
};

ThreadState* AllocateState() {
  std::lock_guard lock(g_registry_mu);
  if (g_free_list != nullptr) {
    ThreadState* s = g_free_list;
    g_free_list = s->free_next;
    s->free_next = nullptr;
    return s;
  }
  auto* s = new ThreadState();  // Type-stable: never deleted (see header).
  s->registry_next = g_registry_head.load(std::memory_order_relaxed);
  g_registry_head.store(s, std::memory_order_release);
  return s;
}

void ExitCurrentThreadState() noexcept {
  ThreadState* s = t_current_state;
  if (s == nullptr) return;
  for (int layer = static_cast<int>(Layer::kCount) - 1; layer >= 0; --layer) {
    if (ThreadExitHook hook = g_exit_hooks[layer].load(std::memory_order_acquire)) hook(*s);
  }
  for (void* data : s->layer_data) {
    APARTMENTS_CHECK_VALUES(data == nullptr, "layer data left behind by exit hook", s->tid.load(), 0);
  }
  s->SetDescription(std::wstring());
  s->apartment_tag.store(0, std::memory_order_relaxed);
  s->activity.Write(0, nullptr, 0, nullptr);
  s->activity.PublishFilter(nullptr, 0, 0);
  s->activity.apartment_hwnd.store(nullptr, std::memory_order_relaxed);
  s->live.store(false, std::memory_order_release);
  s->generation.fetch_add(1, std::memory_order_acq_rel);
  t_current_state = nullptr;
  t_exited = true;
  std::lock_guard lock(g_registry_mu);
  s->free_next = g_free_list;
  g_free_list = s;
}

}  // namespace

ThreadState& CreateCurrentThreadState() {
  ThreadState* s = AllocateState();
  s->tid.store(CurrentThreadId(), std::memory_order_relaxed);
  s->live.store(true, std::memory_order_release);
  t_current_state = s;
  if (!t_exited) {
    // A library call made by a thread-local destructor after our hooks ran
    // gets a fresh state that is not recycled; it stays in the registry.
    static thread_local ExitGuard guard;
    (void)guard;
  }
  return *s;
}

DWORD InitCurrentThreadId() noexcept {
  const auto tid = static_cast<DWORD>(::syscall(SYS_gettid));
  t_current_tid = tid;
  return tid;
}

void SetThreadExitHook(Layer layer, ThreadExitHook hook) noexcept {
  g_exit_hooks[static_cast<int>(layer)].store(hook, std::memory_order_release);
}

void SetThreadExitStartingHook(Layer layer, ThreadExitHook hook) noexcept {
  g_exit_starting_hooks[static_cast<int>(layer)].store(hook, std::memory_order_release);
}

void RunThreadExitStartingHooks() noexcept {
  ThreadState* s = t_current_state;
  if (s == nullptr) return;
  for (int layer = static_cast<int>(Layer::kCount) - 1; layer >= 0; --layer) {
    if (ThreadExitHook hook = g_exit_starting_hooks[layer].load(std::memory_order_acquire)) hook(*s);
  }
}

ThreadState* ThreadRegistryHead() noexcept {
  return g_registry_head.load(std::memory_order_acquire);
}

std::wstring ThreadState::Description() const {
  std::lock_guard lock(description_mu_);
  return description_;
}

void ThreadState::SetDescription(std::wstring description) {
  std::lock_guard lock(description_mu_);
  description_ = std::move(description);
}

std::string ThreadState::DescriptionUtf8() const { return WideToUtf8(Description()); }

std::string WideToUtf8(const std::wstring& wide) {
  std::string out;
  out.reserve(wide.size());
  for (wchar_t wc : wide) {
    auto c = static_cast<std::uint32_t>(wc);
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) c = 0xFFFD;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::wstring Utf8ToWide(const std::string& utf8) {
  std::wstring out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    auto b = static_cast<unsigned char>(utf8[i]);
    std::uint32_t c;
    int extra;
    if (b < 0x80) {
      c = b, extra = 0;
    } else if ((b & 0xE0) == 0xC0) {
      c = b & 0x1F, extra = 1;
    } else if ((b & 0xF0) == 0xE0) {
      c = b & 0x0F, extra = 2;
    } else if ((b & 0xF8) == 0xF0) {
      c = b & 0x07, extra = 3;
    } else {
      out += static_cast<wchar_t>(0xFFFD);
      ++i;
      continue;
    }
    bool ok = true;
    for (int k = 1; k <= extra; ++k) {
      if (i + k >= utf8.size()) { ok = false; break; }
      auto cb = static_cast<unsigned char>(utf8[i + k]);
      if ((cb & 0xC0) != 0x80) { ok = false; break; }
      c = (c << 6) | (cb & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8:
    // decoding them would smuggle in a NUL, a lone surrogate or a non-character.
    static constexpr std::uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (ok && (c < kMinForLength[extra] || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)) {
      ok = false;
    }
    if (!ok) {
      out += static_cast<wchar_t>(0xFFFD);
      ++i;
      continue;
    }
    out += static_cast<wchar_t>(c);
    i += extra + 1;
  }
  return out;
}

}  // namespace apartments::internal
