// The kernel-object layer's internals: objects, the handle table, and the wait
// engine that upper layers (message queues, COM) build their waits on.
//
// Locking. One process-wide kernel lock guards every object's wait state
// (waiter lists, mutex ownership, semaphore counts, thread exit state) and
// every thread's wait record. It is held only for short, non-blocking
// sections, never while sleeping. Lock order: kernel lock, then the names
// table lock, then the handle table lock (innermost). One lock makes wait-all
// atomicity simple and correct; events avoid it entirely on their fast paths
// (an event with no waiter is set, reset and consumed with one atomic
// operation).
//
// State table of a wait (per thread, in ThreadState::park):
//   kParkIdle    --(waiter registers, under lock)------------> kParkWaiting
//   kParkWaiting --(a signaler satisfies it, under lock)-----> kParkDone
//   kParkWaiting --(waiter times out / is alerted, under lock) kParkIdle
//   kParkDone    --(waiter reads its result)-----------------> kParkIdle
// The signaler issues FUTEX_WAKE after dropping the lock; the park word is
// type-stable, so a late wake is at worst a spurious wakeup.
#ifndef APARTMENTS_SRC_KERNEL_KERNEL_H_
#define APARTMENTS_SRC_KERNEL_KERNEL_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "apartments/clock.h"
#include "apartments/win32_errors.h"
#include "apartments/win32_kernel.h"
#include "base/thread_state.h"
#include "kernel/futex.h"

namespace apartments::internal {

enum class ObjectKind : std::uint8_t { kEvent, kMutex, kSemaphore, kThread, kProcess };
const char* ObjectKindName(ObjectKind kind) noexcept;

struct WaitBlock;
struct Wait;
struct KernelThreadData;

// The process-wide kernel lock (see the file comment): a futex lock
// (kernel/futex.h), taken on every blocking wait and every SetEvent that
// wakes a waiter.
FutexLock& KernelLock() noexcept;

class KernelObject {
 public:
  KernelObject(ObjectKind kind, std::wstring name);
  virtual ~KernelObject();
  KernelObject(const KernelObject&) = delete;
  KernelObject& operator=(const KernelObject&) = delete;

  ObjectKind kind() const noexcept { return kind_; }
  const std::wstring& name() const noexcept { return name_; }
  // A process-unique serial number, for reports.
  std::uint64_t serial() const noexcept { return serial_; }
  DWORD creator_tid() const noexcept { return creator_tid_; }

  void AddRef() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Adds a reference unless the object is already being destroyed.
  bool TryAddRef() noexcept;
  void Release() noexcept;

  // Open handles to the object, counted by the handle table (InsertHandle,
  // and the slot's recycling after CloseHandle). A named object loses its
  // name when its last handle closes, as on Windows, even while waits or a
  // mutex owner still hold references to the object. Takes the names lock
  // for named objects.
  void AddHandleRef() noexcept { handles_.fetch_add(1, std::memory_order_relaxed); }
  void ReleaseHandleRef() noexcept;

  // Guarded by the kernel lock: the waits registered on this object, FIFO.
  WaitBlock* waiters_head = nullptr;
  WaitBlock* waiters_tail = nullptr;

 private:
  std::atomic<std::int32_t> refs_{1};
  // Named objects: decremented, and incremented by name lookups, under the
  // names lock (DuplicateHandle increments without it, from an open handle).
  std::atomic<std::int32_t> handles_{0};
  const ObjectKind kind_;
  const std::wstring name_;
  const std::uint64_t serial_;
  const DWORD creator_tid_;
};

class Event final : public KernelObject {
 public:
  // Bits of `state`. kHasWaiters forces every change through the kernel lock,
  // so that a waiter registered on the event never misses a SetEvent, and a
  // wait-all that has checked the event sees it unchanged until it consumes.
  static constexpr std::uint32_t kSignaled = 1;
  static constexpr std::uint32_t kHasWaiters = 2;

  Event(std::wstring name, bool manual_reset, bool initial_state)
      : KernelObject(ObjectKind::kEvent, std::move(name)),
        manual_reset(manual_reset),
        state(initial_state ? kSignaled : 0) {}

  const bool manual_reset;
  std::atomic<std::uint32_t> state;
  // The CPU the last SetEvent ran on (-1: never set): a hint, like
  // MessageQueue::owner_cpu, for a waiter that names no peer thread. A wait
  // (any) whose first object is this event, last set from another CPU, spins
  // briefly before it sleeps (WaitForObjects), so a ping-pong across CPUs
  // skips the cross-CPU futex wake-up; on one CPU it never spins. Relaxed:
  // it orders nothing.
  // Beside `state`, whose line SetEvent writes anyway.
  std::atomic<int> signaler_cpu{-1};
};

class Mutex final : public KernelObject {
 public:
  explicit Mutex(std::wstring name) : KernelObject(ObjectKind::kMutex, std::move(name)) {}

  // Guarded by the kernel lock.
  KernelThreadData* owner = nullptr;
  std::uint32_t recursion = 0;
  bool abandoned = false;
  Mutex* owned_prev = nullptr;  // Links in the owner's list of owned mutexes.
  Mutex* owned_next = nullptr;
  // The owner's thread id, readable without the lock (for reports).
  std::atomic<DWORD> owner_tid{0};
};

class Semaphore final : public KernelObject {
 public:
  Semaphore(std::wstring name, LONG initial, LONG maximum)
      : KernelObject(ObjectKind::kSemaphore, std::move(name)), count(initial), maximum(maximum) {}

  LONG count;  // Guarded by the kernel lock.
  const LONG maximum;
};

class Thread final : public KernelObject {
 public:
  Thread() : KernelObject(ObjectKind::kThread, std::wstring()) {}

  std::atomic<DWORD> tid{0};
  // Guarded by the kernel lock.
  bool exited = false;
  DWORD exit_code = STILL_ACTIVE;
  KernelThreadData* data = nullptr;  // Null once the thread has exited.
  std::wstring final_description;    // The description the thread had at exit.
  // CREATE_SUSPENDED: the start routine waits while this is non-zero.
  std::atomic<std::uint32_t> suspend_count{0};
};

// The current process, for GetCurrentProcess(): never signaled.
class Process final : public KernelObject {
 public:
  Process() : KernelObject(ObjectKind::kProcess, std::wstring()) {}
};

// What a blocked thread is doing, published for diagnostics.
enum class BlockKind : std::uint8_t {
  kNone,
  kKernelWait,   // Wait*/SleepEx on kernel objects.
  kSleep,        // Sleep/SleepEx with no object.
  kMessageIdle,  // Waiting for messages with an empty queue (pumping, not hung).
  kSendMessage,  // Waiting for another thread to reply to a sent message.
  kComCall,      // Waiting for a cross-apartment call to return.
};
const char* BlockKindName(BlockKind kind) noexcept;

// No default initializers: Register() sets every field of the blocks it
// uses (and nothing reads past block_count), so a Wait on the stack costs no
// zeroing of its arrays.
struct WaitBlock {
  Wait* wait;
  KernelObject* object;
  WaitBlock* prev;
  WaitBlock* next;
};

// One blocking wait, on the waiting thread's stack.
struct Wait {
  KernelThreadData* data = nullptr;
  DWORD count = 0;
  bool wait_all = false;
  bool alertable = false;
  BlockKind kind = BlockKind::kKernelWait;
  DWORD target_tid = 0;  // For kSendMessage/kComCall: the thread waited on.
  // When target_tid is 0: where the thread waited on will be published (an
  // MTA call's worker, once one starts running it). Valid while the wait is
  // published: it points into the waiter's call record.
  const std::atomic<DWORD>* target_tid_source = nullptr;
  bool pumps_com = false;  // The waiter serves incoming COM calls (STA modal loop).
  bool timed = false;      // The wait has a finite timeout.
  std::uint64_t id = 0;    // Process-unique, assigned when published.
  Clock::TimePoint since{};
  // Entries [0, count) are set by WaitForObjects; nothing reads beyond (left
  // uninitialized: zeroing ~3 KiB per blocking wait showed on the COM call path).
  KernelObject* objects[MAXIMUM_WAIT_OBJECTS + 1];
  HANDLE handles[MAXIMUM_WAIT_OBJECTS + 1];
  WaitBlock blocks[MAXIMUM_WAIT_OBJECTS + 1];
  DWORD block_count = 0;
};

struct Apc {
  PAPCFUNC function;
  ULONG_PTR data;
};

// The kernel layer's per-thread data, created on the thread's first blocking
// call or thread-handle use; destroyed by the layer's exit hook.
struct KernelThreadData {
  ThreadState* state = nullptr;
  DWORD tid = 0;
  // Guarded by the kernel lock.
  Wait* current_wait = nullptr;  // Non-null while blocked in a wait.
  DWORD wait_result = 0;         // Set by whoever completes current_wait.
  Mutex* owned_head = nullptr;   // Mutexes this thread owns.
  std::vector<Apc> apcs;
  Thread* self = nullptr;  // This thread's object, created on demand (owns a reference).
  DWORD pending_exit_code = 0;
};

// The calling thread's kernel data, created on first use.
KernelThreadData& CurrentKernelData();

// This thread's Thread object (created on first use). The caller gets a new
// reference.
Thread* CurrentThreadObject();

// A resolved handle: keeps the object alive while it exists.
class ObjectRef {
 public:
  ObjectRef() = default;
  // Adopts one reference to `object` (may be null).
  explicit ObjectRef(KernelObject* object) noexcept : object_(object) {}
  ObjectRef(ObjectRef&& other) noexcept : object_(other.object_) { other.object_ = nullptr; }
  ObjectRef& operator=(ObjectRef&& other) noexcept;
  ~ObjectRef() { if (object_ != nullptr) object_->Release(); }

  KernelObject* get() const noexcept { return object_; }
  KernelObject* operator->() const noexcept { return object_; }
  explicit operator bool() const noexcept { return object_ != nullptr; }
  KernelObject* release() noexcept {
    KernelObject* o = object_;
    object_ = nullptr;
    return o;
  }

 private:
  KernelObject* object_ = nullptr;
};

// Access rights. Every handle carries the access mask it was granted, as on
// Windows: Create* grants everything (*_ALL_ACCESS) unless a Create*Ex asked
// for less; Open* and DuplicateHandle grant what they asked for; the
// pseudo-handles have all access. The Win32 functions check the right their
// documentation names (win32_kernel.h). Internal callers (the message and COM
// layers' own waits and events) resolve handles without a check.
//
// Everything a handle to an object of `kind` can be granted (its
// *_ALL_ACCESS, with the implied "limited" rights of threads and processes).
ACCESS_MASK AllAccess(ObjectKind kind) noexcept;
// Maps a requested access mask for an object of `kind`, as the object manager
// does: generic rights become the kind's specific ones, MAXIMUM_ALLOWED
// becomes all access, and a thread's or process's full query/set right brings
// its limited one. Returns ERROR_SUCCESS and sets *granted; ERROR_ACCESS_DENIED
// for a right the kind does not have (or, unless `allow_none`, for no right at
// all); ERROR_PRIVILEGE_NOT_HELD for ACCESS_SYSTEM_SECURITY.
DWORD GrantAccess(ObjectKind kind, ACCESS_MASK desired, bool allow_none,
                  ACCESS_MASK* granted) noexcept;

// The handle table.
// `handle` without its tag bits (the two low bits, which Windows ignores);
// pseudo-handles unchanged.
HANDLE UntaggedHandle(HANDLE handle) noexcept;
// Resolves a handle (including the pseudo-handles; tag bits ignored) to its
// object, with a new reference; empty when the handle is not open. Stores the
// handle's access mask in *granted when not null. No right is checked.
ObjectRef ResolveHandle(HANDLE handle, ACCESS_MASK* granted = nullptr) noexcept;
// Resolves a handle to an object of `kind`; empty when not open or another kind.
ObjectRef ResolveHandleAs(HANDLE handle, ObjectKind kind, ACCESS_MASK* granted = nullptr) noexcept;
// The Win32 functions' resolve: `handle` as `kind`, with the rights `needed`
// (0: none; `needed_name` names them for the explanation). On failure, empty,
// with the last error ERROR_INVALID_HANDLE (not open, or another kind) or
// ERROR_ACCESS_DENIED, and the last error explanation naming `function`.
ObjectRef ResolveForCall(HANDLE handle, ObjectKind kind, const char* function, ACCESS_MASK needed,
                         const char* needed_name);
// InsertHandle's default: all access for the object's kind (AllAccess).
inline constexpr ACCESS_MASK kAllAccessForKind = 0xFFFFFFFFu;
// Inserts `object`, adopting one reference; returns the new handle, granted
// `access`.
HANDLE InsertHandle(KernelObject* object, ACCESS_MASK access = kAllAccessForKind) noexcept;
// Closes a handle; false when it is not open. Pseudo-handles: true, no-op.
// Either way the attempt is recorded in the handle history
// (kernel/handle_history.h), with `call_site` (the closer's return address,
// or null) as where it came from.
bool CloseHandleEntry(HANDLE handle, const void* call_site = nullptr) noexcept;
// The number of open handles (for leak checks in tests).
std::size_t OpenHandleCountForTesting() noexcept;

bool IsPseudoHandle(HANDLE handle) noexcept;

// The wait engine. Waits on `count` objects (references held by the caller),
// `handles` naming them for reports (may be null). `count` may be 0 (a sleep)
// and at most MAXIMUM_WAIT_OBJECTS + 1 (one internal object for the message
// layer). Returns WAIT_OBJECT_0 + i, WAIT_ABANDONED_0 + i, WAIT_TIMEOUT or
// WAIT_IO_COMPLETION (APCs have run). Never fails: arguments are validated by
// the callers.
//
// `spin_peer_cpu`: the CPU the thread expected to end the wait last ran on
// (-1: unknown or no such thread). When it is another CPU than the waiter's,
// a wait for any of the objects (not alertable, timeout not 0) first spins
// briefly (base/spin.h), with no lock held, until one of its events is
// signaled; on the same CPU it goes straight to the sleep. When it is
// unknown and the first object is an event, the CPU that last set that event
// stands in for it (Event::signaler_cpu). Adaptive: a thread whose spin
// failed before a long wait (over 200 µs) skips its next spins, 1 then up to
// 63 of them while that keeps happening; a spin that succeeds or a short wait
// ends the back-off. The spin decides nothing: the wait's result, order and
// semantics are those of the same wait without it.
struct WaitOptions {
  BlockKind kind = BlockKind::kKernelWait;
  DWORD target_tid = 0;
  // The CPU the thread expected to end the wait last ran on (-1: unknown);
  // the waiter spins briefly first when it differs from its own (base/spin.h).
  int spin_peer_cpu = -1;
  // The waiter serves incoming COM calls while it waits (the STA modal loop),
  // so a call into its apartment does not deadlock with this wait.
  bool pumps_com = false;
  // Read for the target when target_tid is 0 (see Wait::target_tid_source).
  const std::atomic<DWORD>* target_tid_source = nullptr;
};
DWORD WaitForObjects(KernelObject* const* objects, const HANDLE* handles, DWORD count,
                     bool wait_all, DWORD timeout_ms, bool alertable,
                     const WaitOptions& options = {});
// The calling thread's spin back-off level (0: it spins before its next
// eligible wait; n: its last n failed spins were followed by long waits, and
// it skips up to 2^n - 1 spins). For tests.
int SpinBackoffLevelForTesting() noexcept;

// Signals an object on behalf of SetEvent/ReleaseMutex/ReleaseSemaphore.
// Returns the Win32 error (ERROR_SUCCESS on success).
// Lifetime: the caller need not hold a reference beyond the one its waiter
// holds: SignalEvent does not touch `event` after the step that can let a
// waiter return (it holds its own reference across a wakeup), so a waiter
// that drops the last reference as soon as it sees the signal is safe.
DWORD SignalEvent(Event& event) noexcept;
DWORD ResetEventObject(Event& event) noexcept;
DWORD PulseEventObject(Event& event) noexcept;
DWORD ReleaseMutexObject(Mutex& mutex) noexcept;
DWORD ReleaseSemaphoreObject(Semaphore& semaphore, LONG release_count, LONG* previous) noexcept;
// Gives the calling thread ownership of a just-created mutex.
void AcquireNewMutex(Mutex& mutex) noexcept;

// A snapshot of one thread's wait record, for diagnostics and tests.
struct WaitedObject {
  ObjectKind kind;
  HANDLE handle;
  std::wstring name;
  std::uint64_t serial;
  DWORD owner_tid;  // Mutexes: the owner's thread id (0 when free).
  bool signaled;
};
struct WaitRecord {
  BlockKind kind = BlockKind::kNone;
  Clock::TimePoint since{};
  bool wait_all = false;
  bool alertable = false;
  DWORD target_tid = 0;
  bool pumps_com = false;
  bool timed = false;
  // For COM calls: target_tid came from the call record (an MTA worker), not
  // from the apartment (an STA's thread).
  bool target_from_call = false;
  // Identifies this wait (process-unique); a record read later with the same
  // id describes the same, still ongoing, wait.
  std::uint64_t wait_id = 0;
  std::vector<WaitedObject> objects;
};
// Reads the record of the thread with id `tid`; kind kNone when it does not
// block (or does not exist). Takes the kernel lock briefly.
WaitRecord ReadWaitRecord(DWORD tid);

// --- Diagnostics hooks (src/diag) ---------------------------------------------

// Called on a thread that is about to sleep in an untimed wait that has an
// edge a wait chain follows (a target thread, or a mutex or thread object
// among its objects: only such a wait can close a cycle), after its wait
// record is published and with no lock held. Null (the default) calls nothing.
// The hook may read wait records and signal objects, but must not wait on
// kernel objects: the thread's own wait is published and in progress.
using BlockHook = void (*)();
void SetBlockHookForDiagnostics(BlockHook hook) noexcept;

// The thread that thread `tid`'s current wait waits for, as wait chains
// follow it (the target of a SendMessageW or COM call, a waited-on mutex's
// owner, a waited-on thread that has not exited), or 0 (not blocked, or an
// object no thread holds). Allocates nothing; takes the kernel lock briefly.
// The deadlock hook's fast path: most chains end at the first or second hop.
DWORD NextWaitHopTid(DWORD tid) noexcept;

// One edge of a suspected cycle: thread `tid`, in the wait `wait_id`, waits
// for thread `next_tid` (a mutex it owns, or the target of a sent message or
// COM call).
struct CycleHop {
  DWORD tid;
  std::uint64_t wait_id;
  DWORD next_tid;
};
// True when, at one instant (under the kernel lock), every hop's wait is still
// the same ongoing, unsatisfied wait and its edge to `next_tid` still holds.
bool WaitCycleStillHolds(const CycleHop* hops, std::size_t count);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_KERNEL_KERNEL_H_

namespace apartments::internal {

// Creates an object of `kind` or opens the one named `name`, as CreateEventW
// documents; `make(name, context)` builds a new object. Sets the last error.
// The handle is granted `access` (already mapped by GrantAccess).
HANDLE CreateNamedObject(LPCWSTR name, ObjectKind kind,
                         KernelObject* (*make)(std::wstring, void*), void* context,
                         bool* created, ACCESS_MASK access);
// Opens the object named `name` if it is of `kind`, with the access
// `desired` (checked and mapped by GrantAccess); sets the last error.
HANDLE OpenNamedObject(LPCWSTR name, ObjectKind kind, ACCESS_MASK desired);

}  // namespace apartments::internal

namespace apartments::internal {

// Queues an APC to `thread`; ERROR_GEN_FAILURE once it has exited.
DWORD QueueApc(Thread& thread, PAPCFUNC function, ULONG_PTR parameter);
// Makes `thread` (a CreateThread object) the calling thread's own object.
void AdoptThreadObject(Thread* thread);

}  // namespace apartments::internal
