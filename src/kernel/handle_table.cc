// The process-wide handle table.
//
// A handle value is (generation << 32) | (index << 2): a multiple of 4, never
// NULL, never one of the pseudo-handles (-1, -2). As on Windows, the two low
// bits are tag bits that every lookup ignores: a handle with them set names the
// same object (the pseudo-handles are matched exactly, before that).
// Each slot packs its state into one 64-bit word so lookups take no lock:
//   bits 63..32  generation (never 0), bumped when the slot is recycled
//   bits 31..1   pin count: lookups in progress
//   bit  0       open
// Lookup: CAS the pin count up if the generation matches and the slot is
// open; then the slot's object cannot be released until unpinned, so taking
// an object reference is safe; then unpin. Close: CAS the open bit off; the
// slot's own object reference is dropped by whoever leaves the slot closed
// with no pins (the closer, or the last unpinner), exactly once, and only then
// is the slot recycled with a new generation.
//
// Access. Each slot holds the access mask its handle was granted, written
// with the object while the slot is unreachable and read under a pin, so a
// right check is one load and one test beside the lookup.
//
// History (kernel/handle_history.h): each slot remembers who made its handle
// and when (two plain stores, made while the slot is unreachable), and the
// closer that wins the open bit pushes one record into the close history
// while it still holds its pin, so the slot cannot be recycled under it.
#include <mutex>

#include "base/check.h"
#include "kernel/handle_history.h"
#include "kernel/kernel.h"

namespace apartments::internal {
namespace {

constexpr std::uint64_t kOpen = 1;
constexpr std::uint64_t kPinOne = 2;
constexpr std::uint64_t kPinMask = 0xFFFFFFFEull;
constexpr std::uint32_t kChunkBits = 10;
constexpr std::uint32_t kChunkSize = 1u << kChunkBits;
constexpr std::uint32_t kMaxChunks = 1024;  // 1,048,576 handles at most.

struct Slot {
  std::atomic<std::uint64_t> state{std::uint64_t{1} << 32};
  KernelObject* object = nullptr;  // Written only while the slot is unreachable.
  // One word for two lives, so a slot stays 32 bytes (two to a cache line):
  // `free_next` while the slot is on the free list (guarded by g_table_mu),
  // `access` while it is taken (written with `object`, while the slot is
  // unreachable; read under a pin). Nobody reads one while the other is live.
  union {
    std::uint32_t free_next = 0;
    ACCESS_MASK access;
  };
  // Who made the open handle, and when: written with `object`, while the slot
  // is unreachable; read by the closer under its pin (see CloseHandleEntry).
  DWORD creator_tid = 0;
  Clock::TimePoint created{};
};

std::atomic<Slot*> g_chunks[kMaxChunks];
std::mutex g_table_mu;
// Index 0 is never used. Written under g_table_mu; read without it by
// ClassifyHandle (relaxed: a diagnostic that tolerates a just-grown table).
std::atomic<std::uint32_t> g_next_unused{1};
std::uint32_t g_free_head = 0;    // 0: empty. Guarded by g_table_mu.
std::atomic<std::size_t> g_open_count{0};

Process g_process_object;  // Never destroyed: the handle table refers to it.

Slot* SlotAt(std::uint32_t index) noexcept {
  Slot* chunk = g_chunks[index >> kChunkBits].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[index & (kChunkSize - 1)];
}

std::uint32_t Generation(std::uint64_t state) noexcept { return static_cast<std::uint32_t>(state >> 32); }

void Recycle(std::uint32_t index, Slot& slot) noexcept {
  KernelObject* object = slot.object;
  slot.object = nullptr;
  std::uint32_t generation = Generation(slot.state.load(std::memory_order_relaxed)) + 1;
  if (generation == 0) generation = 1;
  slot.state.store(std::uint64_t{generation} << 32, std::memory_order_release);
  {
    std::lock_guard lock(g_table_mu);
    slot.free_next = g_free_head;
    g_free_head = index;
  }
  g_open_count.fetch_sub(1, std::memory_order_relaxed);
  object->ReleaseHandleRef();  // Outside g_table_mu: it may take the names lock.
  object->Release();
}

static_assert(sizeof(Slot) == 32);

// Pins the slot named by `handle` (tag bits ignored); nullptr when the handle
// is not open.
Slot* Pin(HANDLE handle, std::uint32_t* index_out) noexcept {
  auto value = reinterpret_cast<std::uintptr_t>(handle) & ~std::uintptr_t{3};
  auto index = static_cast<std::uint32_t>((value & 0xFFFFFFFFu) >> 2);
  std::uint32_t generation = static_cast<std::uint32_t>(value >> 32);
  if (index == 0 || generation == 0 || (index >> kChunkBits) >= kMaxChunks) return nullptr;
  Slot* slot = SlotAt(index);
  if (slot == nullptr) return nullptr;
  std::uint64_t state = slot->state.load(std::memory_order_acquire);
  for (;;) {
    if (Generation(state) != generation || (state & kOpen) == 0) return nullptr;
    if ((state & kPinMask) == kPinMask) return nullptr;  // 2^31 concurrent lookups: refuse.
    if (slot->state.compare_exchange_weak(state, state + kPinOne, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
      *index_out = index;
      return slot;
    }
  }
}

void Unpin(std::uint32_t index, Slot* slot) noexcept {
  std::uint64_t after = slot->state.fetch_sub(kPinOne, std::memory_order_acq_rel) - kPinOne;
  if ((after & kOpen) == 0 && (after & kPinMask) == 0) Recycle(index, *slot);
}

}  // namespace

ObjectRef& ObjectRef::operator=(ObjectRef&& other) noexcept {
  if (this != &other) {
    if (object_ != nullptr) object_->Release();
    object_ = other.object_;
    other.object_ = nullptr;
  }
  return *this;
}

bool IsPseudoHandle(HANDLE handle) noexcept {
  return handle == GetCurrentProcess() || handle == GetCurrentThread();
}

HANDLE UntaggedHandle(HANDLE handle) noexcept {
  if (IsPseudoHandle(handle)) return handle;
  return reinterpret_cast<HANDLE>(reinterpret_cast<std::uintptr_t>(handle) & ~std::uintptr_t{3});
}

ObjectRef ResolveHandle(HANDLE handle, ACCESS_MASK* granted) noexcept {
  if (handle == GetCurrentProcess()) {
    if (granted != nullptr) *granted = PROCESS_ALL_ACCESS;
    g_process_object.AddRef();
    return ObjectRef(&g_process_object);
  }
  if (handle == GetCurrentThread()) {
    if (granted != nullptr) *granted = THREAD_ALL_ACCESS;
    return ObjectRef(CurrentThreadObject());
  }
  std::uint32_t index;
  Slot* slot = Pin(handle, &index);
  if (slot == nullptr) return ObjectRef();
  KernelObject* object = slot->object;
  if (granted != nullptr) *granted = slot->access;
  object->AddRef();
  Unpin(index, slot);
  return ObjectRef(object);
}

ObjectRef ResolveHandleAs(HANDLE handle, ObjectKind kind, ACCESS_MASK* granted) noexcept {
  ObjectRef ref = ResolveHandle(handle, granted);
  if (ref && ref->kind() != kind) return ObjectRef();
  return ref;
}

HANDLE InsertHandle(KernelObject* object, ACCESS_MASK access) noexcept {
  APARTMENTS_CHECK(object != nullptr);
  std::uint32_t index;
  Slot* slot = nullptr;
  {
    std::lock_guard lock(g_table_mu);
    if (g_free_head != 0) {
      index = g_free_head;
      slot = SlotAt(index);
      g_free_head = slot->free_next;
    } else if (index = g_next_unused.load(std::memory_order_relaxed);
               (index >> kChunkBits) < kMaxChunks) {
      std::atomic<Slot*>& chunk = g_chunks[index >> kChunkBits];
      if (chunk.load(std::memory_order_relaxed) == nullptr) {
        // Chunks are never freed: lookups of stale handles may read them.
        chunk.store(new Slot[kChunkSize], std::memory_order_release);
      }
      g_next_unused.store(index + 1, std::memory_order_relaxed);
      slot = SlotAt(index);
    }
  }
  if (slot == nullptr) {
    // The table is full. Released outside g_table_mu: dropping a named
    // object's last reference takes the names lock, which is taken before
    // g_table_mu (CreateNamedObject inserts under it).
    object->Release();
    return nullptr;
  }
  object->AddHandleRef();
  slot->object = object;
  slot->access = access == kAllAccessForKind ? AllAccess(object->kind()) : access;
  slot->creator_tid = CurrentThreadId();
  slot->created = HandleHistoryNow();
  std::uint64_t state = slot->state.load(std::memory_order_relaxed);
  g_open_count.fetch_add(1, std::memory_order_relaxed);
  slot->state.store(state | kOpen, std::memory_order_release);
  return reinterpret_cast<HANDLE>((std::uint64_t{Generation(state)} << 32) |
                                  (std::uint64_t{index} << 2));
}

bool CloseHandleEntry(HANDLE handle, const void* call_site) noexcept {
  if (IsPseudoHandle(handle)) return true;
  // The history records the handle's own value, so that a later failure on
  // it, tagged or not, finds its close.
  handle = UntaggedHandle(handle);
  std::uint32_t index;
  Slot* slot = Pin(handle, &index);
  if (slot == nullptr) {
    RecordFailedClose(handle, call_site);  // The double close itself (or a forged value).
    return false;
  }
  // Holding a pin, clear the open bit; exactly one closer wins.
  std::uint64_t state = slot->state.load(std::memory_order_acquire);
  bool closed = false;
  while ((state & kOpen) != 0) {
    if (slot->state.compare_exchange_weak(state, state & ~kOpen, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      closed = true;
      break;
    }
  }
  if (closed) {
    // Our pin keeps the slot (and its object and creation stamps) from being
    // recycled until Unpin, and the acquire in Pin made the inserter's
    // writes visible.
    RecordHandleClose(handle, *slot->object, slot->creator_tid, slot->created, call_site);
  } else {
    RecordFailedClose(handle, call_site);  // Lost the race to another closer.
  }
  Unpin(index, slot);
  return closed;
}

HandleClass ClassifyHandle(HANDLE handle) noexcept {
  HandleClass out;
  if (handle == nullptr) return out;
  if (IsPseudoHandle(handle)) {
    out.status = HandleStatus::kPseudo;
    return out;
  }
  handle = UntaggedHandle(handle);
  auto value = reinterpret_cast<std::uintptr_t>(handle);
  auto index = static_cast<std::uint32_t>((value & 0xFFFFFFFFu) >> 2);
  std::uint32_t generation = static_cast<std::uint32_t>(value >> 32);
  if (index == 0 || generation == 0 ||
      index >= g_next_unused.load(std::memory_order_relaxed)) {
    return out;
  }
  Slot* slot = SlotAt(index);
  if (slot == nullptr) return out;
  std::uint32_t pinned_index;
  if (Pin(handle, &pinned_index) == slot) {
    out.status = HandleStatus::kOpen;
    out.kind_known = true;
    out.kind = slot->object->kind();
    Unpin(pinned_index, slot);
    return out;
  }
  const std::uint64_t state = slot->state.load(std::memory_order_acquire);
  const std::uint32_t current = Generation(state);
  // Generations count up from 1 and wrap from 2^32 - 1 to 1: a generation
  // below the slot's current one was issued and has closed; the current one
  // was issued if the slot is open or closed-but-pinned; a higher one has not
  // been issued yet in this lap (after a wrap, an old lap's value looks like
  // this too, and nothing here can tell: see the header).
  if (generation < current) {
    out.status = HandleStatus::kClosed;
  } else if (generation == current && (state & kOpen) != 0) {
    out.status = HandleStatus::kOpen;  // Opened since our Pin failed: a race, kind unknown.
  } else if (generation == current && (state & kPinMask) != 0) {
    out.status = HandleStatus::kClosed;  // Closed, not yet recycled: lookups still hold pins.
  }
  return out;
}

std::size_t OpenHandleCountForTesting() noexcept {
  return g_open_count.load(std::memory_order_relaxed);
}

}  // namespace apartments::internal
