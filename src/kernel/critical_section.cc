// Critical sections (apartments/win32_synch.h).
//
// LockCount is the one word every path agrees on: -1 free, else the number of
// Enter calls not yet matched by a Leave, minus one. Enter increments it; the
// thread that moves it from -1 owns the section. Any other (not the owner
// re-entering) has counted itself as a waiter and sleeps on the section's
// semaphore until a Leave hands the section over: the Leave that frees the
// owner's last level decrements it, and a result >= 0 means a waiter is
// counted, so it posts one token, which exactly one waiter consumes and
// thereby owns the section. TryEnter only ever moves -1 to 0 (CAS), so it
// never takes a section promised to a waiter.
//
// Race-freedom of the handover: the leaver clears OwningThread before its
// decrement (release), and the waiter writes OwningThread after consuming the
// token (the semaphore's kernel lock orders the two). RecursionCount is only
// touched by the owner, and owners follow each other through LockCount's
// acquire/release or the semaphore. OwningThread is read by other threads
// (recursion checks, which only ask "is it me?", and diagnostics), so it is
// written and read atomically (std::atomic_ref).
//
// The semaphore is a kernel object outside the handle table (no handle can
// fail to be made, and no user code can close it), made by whichever of a
// waiter and a leaver needs it first (CAS into LockSemaphore; the loser
// releases its own). Its name makes the wait chain say what it is, and the
// wait's target is read from OwningThread, so chains and deadlock detection
// continue to the owner.
#include <atomic>
#include <bit>
#include <cstdio>
#include <string>
#include <thread>

#include "apartments/win32_synch.h"
#include "kernel/kernel.h"

namespace apartments::internal {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the wait target reads OwningThread's low 32 bits");

std::atomic_ref<LONG> LockCountOf(LPCRITICAL_SECTION cs) { return std::atomic_ref<LONG>(cs->LockCount); }
std::atomic_ref<HANDLE> OwnerOf(LPCRITICAL_SECTION cs) { return std::atomic_ref<HANDLE>(cs->OwningThread); }
std::atomic_ref<HANDLE> SemaphoreSlotOf(LPCRITICAL_SECTION cs) {
  return std::atomic_ref<HANDLE>(cs->LockSemaphore);
}

HANDLE TidAsHandle(DWORD tid) { return reinterpret_cast<HANDLE>(static_cast<ULONG_PTR>(tid)); }

Semaphore* SemaphoreOf(LPCRITICAL_SECTION cs) {
  std::atomic_ref<HANDLE> slot = SemaphoreSlotOf(cs);
  HANDLE existing = slot.load(std::memory_order_acquire);
  if (existing != nullptr) return static_cast<Semaphore*>(static_cast<KernelObject*>(existing));
  wchar_t name[64];
  std::swprintf(name, 64, L"critical section %p (EnterCriticalSection)", static_cast<void*>(cs));
  auto* made = new Semaphore(name, 0, 0x7FFFFFFF);
  HANDLE expected = nullptr;
  if (slot.compare_exchange_strong(expected, static_cast<KernelObject*>(made),
                                   std::memory_order_acq_rel, std::memory_order_acquire)) {
    return made;
  }
  made->Release();
  return static_cast<Semaphore*>(static_cast<KernelObject*>(expected));
}

void Own(LPCRITICAL_SECTION cs, DWORD tid) {
  OwnerOf(cs).store(TidAsHandle(tid), std::memory_order_relaxed);
  cs->RecursionCount = 1;
}

// Moves LockCount from -1 to 0: TRUE when the caller now owns the section.
bool TryTakeFree(LPCRITICAL_SECTION cs) {
  LONG free_value = -1;
  return LockCountOf(cs).compare_exchange_strong(free_value, 0, std::memory_order_acquire,
                                                 std::memory_order_relaxed);
}

// The contended path: the caller has counted itself in LockCount and sleeps
// until a Leave hands it the section.
void WaitForHandover(LPCRITICAL_SECTION cs) {
  Semaphore* semaphore = SemaphoreOf(cs);
  KernelObject* objects[1] = {semaphore};
  const HANDLE handles[1] = {nullptr};
  WaitOptions options;
  // Little-endian: the low 32 bits of OwningThread are the owner's id.
  options.target_tid_source = reinterpret_cast<const std::atomic<DWORD>*>(&cs->OwningThread);
  (void)WaitForObjects(objects, handles, 1, /*wait_all=*/false, INFINITE, /*alertable=*/false,
                       options);
}

}  // namespace
}  // namespace apartments::internal

using namespace apartments::internal;

VOID WINAPI InitializeCriticalSection(LPCRITICAL_SECTION lpCriticalSection) {
  (void)InitializeCriticalSectionEx(lpCriticalSection, 0, 0);
}

BOOL WINAPI InitializeCriticalSectionAndSpinCount(LPCRITICAL_SECTION lpCriticalSection,
                                                  DWORD dwSpinCount) {
  return InitializeCriticalSectionEx(lpCriticalSection, dwSpinCount, 0);
}

BOOL WINAPI InitializeCriticalSectionEx(LPCRITICAL_SECTION lpCriticalSection, DWORD dwSpinCount,
                                        DWORD Flags) {
  if ((Flags & RTL_CRITICAL_SECTION_FLAG_RESERVED) != 0) {
    SetLastError(ERROR_INVALID_PARAMETER);
    return FALSE;
  }
  lpCriticalSection->DebugInfo = nullptr;
  lpCriticalSection->LockCount = -1;
  lpCriticalSection->RecursionCount = 0;
  lpCriticalSection->OwningThread = nullptr;
  lpCriticalSection->LockSemaphore = nullptr;
  lpCriticalSection->SpinCount = 0;
  (void)SetCriticalSectionSpinCount(lpCriticalSection, dwSpinCount);
  return TRUE;
}

DWORD WINAPI SetCriticalSectionSpinCount(LPCRITICAL_SECTION lpCriticalSection, DWORD dwSpinCount) {
  const auto previous = static_cast<DWORD>(lpCriticalSection->SpinCount);
  // As Windows: spinning is useless on one CPU; only the low 24 bits count.
  lpCriticalSection->SpinCount =
      std::thread::hardware_concurrency() > 1 ? (dwSpinCount & 0x00FFFFFFu) : 0;
  return previous;
}

VOID WINAPI DeleteCriticalSection(LPCRITICAL_SECTION lpCriticalSection) {
  HANDLE semaphore = lpCriticalSection->LockSemaphore;
  if (semaphore != nullptr) static_cast<KernelObject*>(semaphore)->Release();
  lpCriticalSection->LockSemaphore = nullptr;
  lpCriticalSection->LockCount = -1;
  lpCriticalSection->RecursionCount = 0;
  lpCriticalSection->OwningThread = nullptr;
}

VOID WINAPI EnterCriticalSection(LPCRITICAL_SECTION lpCriticalSection) {
  const DWORD tid = CurrentThreadId();
  for (ULONG_PTR spin = lpCriticalSection->SpinCount; spin > 0; --spin) {
    if (LockCountOf(lpCriticalSection).load(std::memory_order_relaxed) != -1) {
      if (OwnerOf(lpCriticalSection).load(std::memory_order_relaxed) == TidAsHandle(tid)) break;
      __builtin_ia32_pause();
      continue;
    }
    if (TryTakeFree(lpCriticalSection)) {
      Own(lpCriticalSection, tid);
      return;
    }
  }
  // One atomic increment on the fast path: from -1, the section is ours.
  if (LockCountOf(lpCriticalSection).fetch_add(1, std::memory_order_acquire) != -1) {
    if (OwnerOf(lpCriticalSection).load(std::memory_order_relaxed) == TidAsHandle(tid)) {
      ++lpCriticalSection->RecursionCount;
      return;
    }
    WaitForHandover(lpCriticalSection);
  }
  Own(lpCriticalSection, tid);
}

BOOL WINAPI TryEnterCriticalSection(LPCRITICAL_SECTION lpCriticalSection) {
  const DWORD tid = CurrentThreadId();
  if (TryTakeFree(lpCriticalSection)) {
    Own(lpCriticalSection, tid);
    return TRUE;
  }
  if (OwnerOf(lpCriticalSection).load(std::memory_order_relaxed) == TidAsHandle(tid)) {
    LockCountOf(lpCriticalSection).fetch_add(1, std::memory_order_relaxed);
    ++lpCriticalSection->RecursionCount;
    return TRUE;
  }
  return FALSE;
}

VOID WINAPI LeaveCriticalSection(LPCRITICAL_SECTION lpCriticalSection) {
  if (--lpCriticalSection->RecursionCount > 0) {
    LockCountOf(lpCriticalSection).fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  OwnerOf(lpCriticalSection).store(nullptr, std::memory_order_relaxed);
  // One atomic decrement on the fast path: back to -1, nobody waits.
  if (LockCountOf(lpCriticalSection).fetch_sub(1, std::memory_order_release) - 1 >= 0) {
    (void)ReleaseSemaphoreObject(*SemaphoreOf(lpCriticalSection), 1, nullptr);
  }
}
