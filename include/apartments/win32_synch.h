// apartments/win32_synch.h
//
// User-mode synchronization with Win32 names, signatures, layouts and values
// (synchapi.h, winnt.h): critical sections.
//
// Critical sections. A CRITICAL_SECTION has winnt.h's RTL_CRITICAL_SECTION
// layout. LockCount follows the classic (Windows XP, and Wine) meaning: -1
// when free, else the number of Enter calls (the owner's recursive ones
// included) beyond the first that have not left yet: 0 owned once with no
// waiter. RecursionCount is the owner's recursion depth; OwningThread is the
// owner's thread id as a HANDLE (as on Windows), NULL when free.
// LockSemaphore is made on the first contended Enter: the library's own wait
// object (not a handle: user code cannot close it, and a full handle table
// cannot make Enter fail), released by DeleteCriticalSection. DebugInfo is
// NULL.
// Uncontended Enter and Leave cost one atomic read-modify-write each and no
// system call.
// Diagnostics: a thread blocked in EnterCriticalSection publishes its wait as
// a kernel wait on the section's wait object, named
// "critical section 0x<address> (EnterCriticalSection)", whose wait chain
// continues to the owning thread; so a cycle through critical sections (and
// mutexes, sent messages, COM calls) is reported as a deadlock.
//
// Lifecycle of a critical section:
//   uninitialized --(Initialize*)--> free --(Enter/TryEnter)--> owned (n times)
//   owned --(Leave n times)--> free --(DeleteCriticalSection)--> uninitialized
// Entering or leaving an uninitialized or deleted section, leaving one the
// caller does not own, and deleting one that is owned are undefined on
// Windows; here they are not detected either (no check costs a fast path).
#ifndef APARTMENTS_WIN32_SYNCH_H_
#define APARTMENTS_WIN32_SYNCH_H_

#include "apartments/win32_types.h"

typedef struct _RTL_CRITICAL_SECTION_DEBUG* PRTL_CRITICAL_SECTION_DEBUG;
typedef struct _RTL_CRITICAL_SECTION {
  PRTL_CRITICAL_SECTION_DEBUG DebugInfo;
  LONG LockCount;
  LONG RecursionCount;
  HANDLE OwningThread;
  HANDLE LockSemaphore;
  ULONG_PTR SpinCount;
} RTL_CRITICAL_SECTION, *PRTL_CRITICAL_SECTION;
typedef RTL_CRITICAL_SECTION CRITICAL_SECTION;
typedef PRTL_CRITICAL_SECTION PCRITICAL_SECTION;
typedef PRTL_CRITICAL_SECTION LPCRITICAL_SECTION;

// InitializeCriticalSectionEx flags (winnt.h). Accepted; no debug info is kept.
#define CRITICAL_SECTION_NO_DEBUG_INFO 0x01000000
#define RTL_CRITICAL_SECTION_FLAG_NO_DEBUG_INFO 0x01000000
#define RTL_CRITICAL_SECTION_FLAG_DYNAMIC_SPIN 0x02000000
#define RTL_CRITICAL_SECTION_FLAG_STATIC_INIT 0x04000000
#define RTL_CRITICAL_SECTION_FLAG_RESOURCE_TYPE 0x08000000
#define RTL_CRITICAL_SECTION_FLAG_FORCE_DEBUG_INFO 0x10000000
#define RTL_CRITICAL_SECTION_ALL_FLAG_BITS 0xFF000000
#define RTL_CRITICAL_SECTION_FLAG_RESERVED \
  (RTL_CRITICAL_SECTION_ALL_FLAG_BITS & ~0x1F000000)

// Makes `lpCriticalSection` a free critical section (spin count 0). Any
// thread; must not be called on a section in use. Never fails.
VOID WINAPI InitializeCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
// As above with a spin count (the low 24 bits of `dwSpinCount`; on a single
// CPU, 0, as Windows does). Returns TRUE.
BOOL WINAPI InitializeCriticalSectionAndSpinCount(LPCRITICAL_SECTION lpCriticalSection,
                                                  DWORD dwSpinCount);
// As above with flags: FALSE with ERROR_INVALID_PARAMETER for a reserved flag
// bit (RTL_CRITICAL_SECTION_FLAG_RESERVED); the others are accepted.
BOOL WINAPI InitializeCriticalSectionEx(LPCRITICAL_SECTION lpCriticalSection, DWORD dwSpinCount,
                                        DWORD Flags);
// Sets the spin count; returns the previous one.
DWORD WINAPI SetCriticalSectionSpinCount(LPCRITICAL_SECTION lpCriticalSection, DWORD dwSpinCount);
// Releases what the section holds (its semaphore handle, if one was made).
// The section must be free. Any thread.
VOID WINAPI DeleteCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
// Takes the section for the calling thread; recursive (the owner enters again
// at once). Blocks without pumping messages until the owner leaves, spinning
// first up to the spin count. Waiters are served in no particular order.
// Memory ordering: everything the previous owner wrote before Leave is
// visible after Enter returns.
VOID WINAPI EnterCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
// Takes the section if it is free or already the caller's: TRUE; FALSE at
// once when another thread owns it. Never blocks.
BOOL WINAPI TryEnterCriticalSection(LPCRITICAL_SECTION lpCriticalSection);
// Leaves one level of the caller's ownership; at the last, frees the section
// and wakes one waiter. Only the owner may call it.
VOID WINAPI LeaveCriticalSection(LPCRITICAL_SECTION lpCriticalSection);

#endif  // APARTMENTS_WIN32_SYNCH_H_
