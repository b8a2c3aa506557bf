// The process-wide handle table.
//
// A handle value fits in 32 bits, as on 64-bit Windows (which guarantees it so
// that handles can cross to 32-bit processes: code truncates them with
// HandleToULong and widens them back with ULongToHandle or LongToHandle):
//   bit  31      always 0, so zero- and sign-extension give the same HANDLE
//   bits 30..20  generation (1..2047), bumped when the slot is recycled
//   bits 19..2   index (1..262143)
//   bits 1..0    tag bits: every lookup ignores them, as Windows does
// A multiple of 4, never NULL, never a pseudo-handle (-1, -2, matched exactly
// before the tag bits are dropped). A value with any of bits 63..32 set was
// never issued and is rejected.
// The split: 2^18 - 1 handles open at once is far beyond what a COM process
// holds (Windows' own per-process limit is 2^24, but processes near it are
// broken anyway), and 11 generation bits detect a stale handle until its slot
// has been recycled 2047 times; a wider index would leave too few generations
// for that detection to mean much.
// Each slot packs its state into one 64-bit word so lookups take no lock:
//   bits 63..32  generation (1..kMaxGeneration), bumped when the slot is recycled
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
constexpr std::uint32_t kIndexBits = 18;
constexpr std::uint32_t kGenerationBits = 11;
constexpr std::uint32_t kMaxGeneration = (1u << kGenerationBits) - 1;
constexpr std::uint32_t kMaxChunks = (1u << kIndexBits) >> kChunkBits;  // 262,143 handles at most.
static_assert(2 + kIndexBits + kGenerationBits == 31, "bit 31 stays clear");

// The slot index and generation a handle value names (tag bits ignored);
// {0, 0}, which names nothing, for a value that was never issued.
struct DecodedHandle {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
};
DecodedHandle Decode(HANDLE handle) noexcept {
  auto value = reinterpret_cast<std::uintptr_t>(handle);
  if ((value >> 31) != 0) return {};  // Bits we never set: forged.
  return {static_cast<std::uint32_t>(value >> 2) & ((1u << kIndexBits) - 1),
          static_cast<std::uint32_t>(value >> (2 + kIndexBits))};
}
HANDLE Encode(std::uint32_t index, std::uint32_t generation) noexcept {
  return reinterpret_cast<HANDLE>(
      static_cast<std::uintptr_t>((generation << (2 + kIndexBits)) | (index << 2)));
}

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
// The free slots, a FIFO queue (0: none), guarded by g_table_mu. With only
// 11 generation bits, LIFO reuse would bring a closed handle's value back
// after 2047 create/close pairs; instead a freed slot waits behind
// kReuseAfterFree others (the table grows meanwhile), so a value comes back
// only after about 2047 * 1024 closes.
constexpr std::uint32_t kReuseAfterFree = 1024;
std::uint32_t g_free_head = 0;
std::uint32_t g_free_tail = 0;
std::uint32_t g_free_count = 0;
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
  if (generation > kMaxGeneration) generation = 1;
  slot.state.store(std::uint64_t{generation} << 32, std::memory_order_release);
  {
    std::lock_guard lock(g_table_mu);
    slot.free_next = 0;
    if (g_free_tail != 0) {
      SlotAt(g_free_tail)->free_next = index;
    } else {
      g_free_head = index;
    }
    g_free_tail = index;
    ++g_free_count;
  }
  g_open_count.fetch_sub(1, std::memory_order_relaxed);
  object->ReleaseHandleRef();  // Outside g_table_mu: it may take the names lock.
  object->Release();
}

static_assert(sizeof(Slot) == 32);

// Pins the slot named by `handle` (tag bits ignored); nullptr when the handle
// is not open.
Slot* Pin(HANDLE handle, std::uint32_t* index_out) noexcept {
  const auto [index, generation] = Decode(handle);
  if (index == 0 || generation == 0) return nullptr;
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
    const std::uint32_t next_unused = g_next_unused.load(std::memory_order_relaxed);
    const bool can_grow = (next_unused >> kChunkBits) < kMaxChunks;
    if (g_free_head != 0 && (g_free_count >= kReuseAfterFree || !can_grow)) {
      index = g_free_head;
      slot = SlotAt(index);
      g_free_head = slot->free_next;
      if (g_free_head == 0) g_free_tail = 0;
      --g_free_count;
    } else if (can_grow) {
      index = next_unused;
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
  return Encode(index, Generation(state));
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
  const auto [index, generation] = Decode(handle);
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
  // Generations count up from 1 and wrap from kMaxGeneration to 1: a generation
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
