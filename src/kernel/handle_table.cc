// The process-wide handle table.
//
// A handle value is (generation << 32) | (index << 2): a multiple of 4, never
// NULL, never one of the pseudo-handles (-1, -2). Each slot packs its state
// into one 64-bit word so lookups take no lock:
//   bits 63..32  generation (never 0), bumped when the slot is recycled
//   bits 31..1   pin count: lookups in progress
//   bit  0       open
// Lookup: CAS the pin count up if the generation matches and the slot is
// open; then the slot's object cannot be released until unpinned, so taking
// an object reference is safe; then unpin. Close: CAS the open bit off; the
// slot's own object reference is dropped by whoever leaves the slot closed
// with no pins (the closer, or the last unpinner), exactly once, and only then
// is the slot recycled with a new generation.
#include <mutex>

#include "base/check.h"
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
  std::uint32_t free_next = 0;     // Guarded by g_table_mu.
};

std::atomic<Slot*> g_chunks[kMaxChunks];
std::mutex g_table_mu;
std::uint32_t g_next_unused = 1;  // Index 0 is never used. Guarded by g_table_mu.
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

// Pins the slot named by `handle`; nullptr when the handle is not open.
Slot* Pin(HANDLE handle, std::uint32_t* index_out) noexcept {
  auto value = reinterpret_cast<std::uintptr_t>(handle);
  if ((value & 3) != 0) return nullptr;
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

ObjectRef ResolveHandle(HANDLE handle) noexcept {
  if (handle == GetCurrentProcess()) {
    g_process_object.AddRef();
    return ObjectRef(&g_process_object);
  }
  if (handle == GetCurrentThread()) return ObjectRef(CurrentThreadObject());
  std::uint32_t index;
  Slot* slot = Pin(handle, &index);
  if (slot == nullptr) return ObjectRef();
  KernelObject* object = slot->object;
  object->AddRef();
  Unpin(index, slot);
  return ObjectRef(object);
}

ObjectRef ResolveHandleAs(HANDLE handle, ObjectKind kind) noexcept {
  ObjectRef ref = ResolveHandle(handle);
  if (ref && ref->kind() != kind) return ObjectRef();
  return ref;
}

HANDLE InsertHandle(KernelObject* object) noexcept {
  APARTMENTS_CHECK(object != nullptr);
  std::uint32_t index;
  Slot* slot = nullptr;
  {
    std::lock_guard lock(g_table_mu);
    if (g_free_head != 0) {
      index = g_free_head;
      slot = SlotAt(index);
      g_free_head = slot->free_next;
    } else if (index = g_next_unused; (index >> kChunkBits) < kMaxChunks) {
      std::atomic<Slot*>& chunk = g_chunks[index >> kChunkBits];
      if (chunk.load(std::memory_order_relaxed) == nullptr) {
        // Chunks are never freed: lookups of stale handles may read them.
        chunk.store(new Slot[kChunkSize], std::memory_order_release);
      }
      ++g_next_unused;
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
  std::uint64_t state = slot->state.load(std::memory_order_relaxed);
  g_open_count.fetch_add(1, std::memory_order_relaxed);
  slot->state.store(state | kOpen, std::memory_order_release);
  return reinterpret_cast<HANDLE>((std::uint64_t{Generation(state)} << 32) |
                                  (std::uint64_t{index} << 2));
}

bool CloseHandleEntry(HANDLE handle) noexcept {
  if (IsPseudoHandle(handle)) return true;
  std::uint32_t index;
  Slot* slot = Pin(handle, &index);
  if (slot == nullptr) return false;
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
  Unpin(index, slot);
  return closed;
}

std::size_t OpenHandleCountForTesting() noexcept {
  return g_open_count.load(std::memory_order_relaxed);
}

}  // namespace apartments::internal
