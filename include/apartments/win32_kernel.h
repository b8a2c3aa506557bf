// apartments/win32_kernel.h
//
// Kernel objects and waits with Win32 names, signatures and values: events,
// mutexes, semaphores, threads, handles, waits, APCs, last-error, thread ids.
//
// Handles. A HANDLE is an index into a process-wide table plus a generation.
// A closed, double-closed, stale or forged handle is detected: the call fails
// with ERROR_INVALID_HANDLE (a wait returns WAIT_FAILED), never undefined
// behaviour. Handle values are multiples of 4 and never NULL, and fit in 32
// bits (below 2^31) as on 64-bit Windows: HandleToULong/ULongToHandle and
// HandleToLong/LongToHandle (win32_types.h) round-trip them. The table holds
// up to 262,143 open handles (CreateEvent and friends then fail with NULL),
// and a stale handle is detected until its slot has been reused 2047 times.
// As on Windows, the two low bits are tag bits that every call ignores: a
// handle with them set names the same object.
// GetCurrentProcess() and GetCurrentThread() return the pseudo-handles
// (HANDLE)-1 and (HANDLE)-2, as on Windows (matched exactly, with all access).
//
// Access rights. Each handle carries the access mask it was granted, checked
// as Windows checks it: Create* (and CreateThread) grant all access
// (*_ALL_ACCESS); Create*Ex, Open* and DuplicateHandle grant what they ask
// for, generic rights (GENERIC_READ/WRITE/EXECUTE/ALL) mapped onto the kind's
// own and MAXIMUM_ALLOWED meaning all. Open* asking for no right, and any
// request for a right the kind does not have, fails with ERROR_ACCESS_DENIED
// (ACCESS_SYSTEM_SECURITY: ERROR_PRIVILEGE_NOT_HELD). There are no security
// descriptors: every object grants its full access to the whole process, so
// nothing else is refused. A call on a handle that lacks the right it needs
// fails with ERROR_ACCESS_DENIED (a wait: WAIT_FAILED) and changes nothing;
// each function names its right below, and LastErrorExplanation() says which
// right the handle lacked.
// Beyond Windows, every call here that fails with ERROR_INVALID_HANDLE also
// says why in apartments::LastErrorExplanation() (apartments/last_error.h):
// which thread created the handle and which closed it (twice?), and when.
//
// A wait holds the objects it waits on: closing a handle another thread is
// waiting on does not break that wait; the object lives until the wait ends.
//
// Differences from Windows, all documented at the function:
// - Security attributes and handle inheritance are accepted and ignored:
//   there are no security descriptors and no other process to inherit into.
// - Named objects are process-local (a name is never seen by another process).
// - WCHAR is a 32-bit wchar_t (see win32_types.h).
//
// Every function here may be called from any thread unless it says otherwise.
// Functions that fail set the thread's last error (GetLastError).
#ifndef APARTMENTS_WIN32_KERNEL_H_
#define APARTMENTS_WIN32_KERNEL_H_

#include "apartments/win32_types.h"

#define INFINITE 0xFFFFFFFFu
#define WAIT_OBJECT_0 0x00000000u
#define WAIT_ABANDONED 0x00000080u
#define WAIT_ABANDONED_0 0x00000080u
#define WAIT_IO_COMPLETION 0x000000C0u
#define WAIT_TIMEOUT 0x00000102u
#define WAIT_FAILED 0xFFFFFFFFu
#define MAXIMUM_WAIT_OBJECTS 64
#define STILL_ACTIVE 259u

#define DUPLICATE_CLOSE_SOURCE 0x00000001u
#define DUPLICATE_SAME_ACCESS 0x00000002u

#define CREATE_SUSPENDED 0x00000004u
#define STACK_SIZE_PARAM_IS_A_RESERVATION 0x00010000u

typedef DWORD ACCESS_MASK;
typedef ACCESS_MASK* PACCESS_MASK;

// Access rights (see "Access rights" in the file comment).
#define DELETE 0x00010000u
#define READ_CONTROL 0x00020000u
#define WRITE_DAC 0x00040000u
#define WRITE_OWNER 0x00080000u
#define SYNCHRONIZE 0x00100000u
#define STANDARD_RIGHTS_REQUIRED 0x000F0000u
#define STANDARD_RIGHTS_READ READ_CONTROL
#define STANDARD_RIGHTS_WRITE READ_CONTROL
#define STANDARD_RIGHTS_EXECUTE READ_CONTROL
#define STANDARD_RIGHTS_ALL 0x001F0000u
#define SPECIFIC_RIGHTS_ALL 0x0000FFFFu
#define ACCESS_SYSTEM_SECURITY 0x01000000u
#define MAXIMUM_ALLOWED 0x02000000u
#define GENERIC_ALL 0x10000000u
#define GENERIC_EXECUTE 0x20000000u
#define GENERIC_WRITE 0x40000000u
#define GENERIC_READ 0x80000000u
#define EVENT_QUERY_STATE 0x0001u
#define EVENT_MODIFY_STATE 0x0002u
#define EVENT_ALL_ACCESS 0x001F0003u
#define MUTANT_QUERY_STATE 0x0001u
#define MUTANT_ALL_ACCESS 0x001F0001u
#define MUTEX_MODIFY_STATE 0x0001u
#define MUTEX_ALL_ACCESS 0x001F0001u
#define SEMAPHORE_QUERY_STATE 0x0001u
#define SEMAPHORE_MODIFY_STATE 0x0002u
#define SEMAPHORE_ALL_ACCESS 0x001F0003u
#define THREAD_TERMINATE 0x0001u
#define THREAD_SUSPEND_RESUME 0x0002u
#define THREAD_GET_CONTEXT 0x0008u
#define THREAD_SET_CONTEXT 0x0010u
#define THREAD_SET_INFORMATION 0x0020u
#define THREAD_QUERY_INFORMATION 0x0040u
#define THREAD_SET_THREAD_TOKEN 0x0080u
#define THREAD_IMPERSONATE 0x0100u
#define THREAD_DIRECT_IMPERSONATION 0x0200u
#define THREAD_SET_LIMITED_INFORMATION 0x0400u
#define THREAD_QUERY_LIMITED_INFORMATION 0x0800u
#define THREAD_RESUME 0x1000u
#define THREAD_ALL_ACCESS 0x001FFFFFu
#define PROCESS_TERMINATE 0x0001u
#define PROCESS_CREATE_THREAD 0x0002u
#define PROCESS_SET_SESSIONID 0x0004u
#define PROCESS_VM_OPERATION 0x0008u
#define PROCESS_VM_READ 0x0010u
#define PROCESS_VM_WRITE 0x0020u
#define PROCESS_DUP_HANDLE 0x0040u
#define PROCESS_CREATE_PROCESS 0x0080u
#define PROCESS_SET_QUOTA 0x0100u
#define PROCESS_SET_INFORMATION 0x0200u
#define PROCESS_QUERY_INFORMATION 0x0400u
#define PROCESS_SUSPEND_RESUME 0x0800u
#define PROCESS_QUERY_LIMITED_INFORMATION 0x1000u
#define PROCESS_SET_LIMITED_INFORMATION 0x2000u
#define PROCESS_ALL_ACCESS 0x001FFFFFu
#define CREATE_EVENT_MANUAL_RESET 0x00000001u
#define CREATE_EVENT_INITIAL_SET 0x00000002u
#define CREATE_MUTEX_INITIAL_OWNER 0x00000001u

typedef struct _SECURITY_ATTRIBUTES {
  DWORD nLength;
  LPVOID lpSecurityDescriptor;
  BOOL bInheritHandle;
} SECURITY_ATTRIBUTES, *PSECURITY_ATTRIBUTES, *LPSECURITY_ATTRIBUTES;

typedef DWORD(WINAPI* PTHREAD_START_ROUTINE)(LPVOID lpThreadParameter);
typedef PTHREAD_START_ROUTINE LPTHREAD_START_ROUTINE;
typedef VOID(WINAPI* PAPCFUNC)(ULONG_PTR Parameter);

extern "C" {

// --- Last error and identity ---------------------------------------------

// The calling thread's last-error value. Never fails; no system call.
DWORD WINAPI GetLastError(void);
VOID WINAPI SetLastError(DWORD dwErrCode);

// The calling thread's id: its Linux thread id (gettid). Cached per thread.
DWORD WINAPI GetCurrentThreadId(void);
// The process id (getpid).
DWORD WINAPI GetCurrentProcessId(void);
// Pseudo-handles for the calling thread and process: valid only in the
// calling thread, never closed (CloseHandle on them returns TRUE and does
// nothing), turned into real handles with DuplicateHandle.
HANDLE WINAPI GetCurrentThread(void);
HANDLE WINAPI GetCurrentProcess(void);

// The id of the thread behind a thread handle; 0 and ERROR_INVALID_HANDLE for
// a handle that is not a live thread handle.
DWORD WINAPI GetThreadId(HANDLE Thread);

// Thread descriptions (names). SetThreadDescription also sets the Linux
// thread name (truncated to 15 bytes) so debuggers and `top -H` show it.
// Errors: HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE) for a bad handle,
// E_INVALIDARG for a null description pointer (GetThreadDescription: E_POINTER
// for a null out pointer). GetThreadDescription returns a copy the caller
// frees with LocalFree; an unnamed thread gives "".
HRESULT WINAPI SetThreadDescription(HANDLE hThread, LPCWSTR lpThreadDescription);
HRESULT WINAPI GetThreadDescription(HANDLE hThread, LPWSTR* ppszThreadDescription);

// Milliseconds since an arbitrary start (CLOCK_MONOTONIC_COARSE). As on
// Windows, the value moves by timer ticks (here 1-4 ms, the kernel's HZ;
// Windows: 10-16 ms), which makes it cheap enough for every call.
DWORD WINAPI GetTickCount(void);
ULONGLONG WINAPI GetTickCount64(void);

// --- Events -----------------------------------------------------------------

// Creates an event, or opens the existing one when `lpName` names an event in
// this process (then the last error is ERROR_ALREADY_EXISTS and the flags are
// ignored, as on Windows). A name already used by a mutex or semaphore fails
// with ERROR_INVALID_HANDLE. Returns NULL on failure. As on Windows, a name
// lives while some handle to its object is open: closing the last handle
// removes it, even while a wait or a mutex owner still holds the object.
HANDLE WINAPI CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
                           BOOL bInitialState, LPCWSTR lpName);
HANDLE WINAPI CreateEventA(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
                           BOOL bInitialState, LPCSTR lpName);
// As CreateEventW, with CREATE_EVENT_MANUAL_RESET/CREATE_EVENT_INITIAL_SET in
// dwFlags (others: ERROR_INVALID_PARAMETER) and the handle's access in
// dwDesiredAccess (0 is allowed: a handle that can only be closed or
// duplicated; a right events lack: ERROR_ACCESS_DENIED). The same holds for
// CreateMutexExW and CreateSemaphoreExW.
HANDLE WINAPI CreateEventExW(LPSECURITY_ATTRIBUTES lpEventAttributes, LPCWSTR lpName,
                             DWORD dwFlags, DWORD dwDesiredAccess);
// Opens a named event with the access dwDesiredAccess. ERROR_FILE_NOT_FOUND
// when no object has that name (whatever the access), ERROR_INVALID_HANDLE when
// the name belongs to another kind of object, ERROR_ACCESS_DENIED for no right
// or a right events lack, ERROR_INVALID_PARAMETER for a null name. The same
// holds for OpenMutexW and OpenSemaphoreW.
HANDLE WINAPI OpenEventW(DWORD dwDesiredAccess, BOOL bInheritHandle, LPCWSTR lpName);
HANDLE WINAPI OpenEventA(DWORD dwDesiredAccess, BOOL bInheritHandle, LPCSTR lpName);

// Signals the event. An auto-reset event releases one waiter (or stays
// signaled until one comes); a manual-reset event releases all, and stays
// signaled until ResetEvent. With no waiter, makes no system call.
// Memory ordering: writes before SetEvent are visible to the thread whose wait
// it satisfies. ERROR_INVALID_HANDLE for a bad handle or a non-event;
// ERROR_ACCESS_DENIED without EVENT_MODIFY_STATE (also for ResetEvent and
// PulseEvent).
BOOL WINAPI SetEvent(HANDLE hEvent);
BOOL WINAPI ResetEvent(HANDLE hEvent);
// Releases the waiters present now (one for auto-reset, all for manual-reset)
// and leaves the event non-signaled. Unreliable on Windows; here it is exact.
BOOL WINAPI PulseEvent(HANDLE hEvent);

// --- Mutexes ----------------------------------------------------------------

// Creates (or opens, as for events) a mutex. `bInitialOwner` makes the caller
// the owner of a newly created mutex.
HANDLE WINAPI CreateMutexW(LPSECURITY_ATTRIBUTES lpMutexAttributes, BOOL bInitialOwner,
                           LPCWSTR lpName);
HANDLE WINAPI CreateMutexA(LPSECURITY_ATTRIBUTES lpMutexAttributes, BOOL bInitialOwner,
                           LPCSTR lpName);
// As CreateMutexW, with CREATE_MUTEX_INITIAL_OWNER in dwFlags (other flags:
// ERROR_INVALID_PARAMETER) and the handle's access in dwDesiredAccess.
HANDLE WINAPI CreateMutexExW(LPSECURITY_ATTRIBUTES lpMutexAttributes, LPCWSTR lpName,
                             DWORD dwFlags, DWORD dwDesiredAccess);
HANDLE WINAPI OpenMutexW(DWORD dwDesiredAccess, BOOL bInheritHandle, LPCWSTR lpName);
HANDLE WINAPI OpenMutexA(DWORD dwDesiredAccess, BOOL bInheritHandle, LPCSTR lpName);
// Releases one level of ownership. ERROR_NOT_OWNER when the caller does not
// own the mutex. Needs no access right (ownership is what counts, as on
// Windows, where a handle with any single right releases it). When the owner thread exits holding it, the mutex is
// abandoned: the next thread to acquire it gets WAIT_ABANDONED_0 (+ index) and
// becomes its owner.
BOOL WINAPI ReleaseMutex(HANDLE hMutex);

// --- Semaphores -------------------------------------------------------------

// ERROR_INVALID_PARAMETER unless 0 <= lInitialCount <= lMaximumCount and
// lMaximumCount > 0.
HANDLE WINAPI CreateSemaphoreW(LPSECURITY_ATTRIBUTES lpSemaphoreAttributes, LONG lInitialCount,
                               LONG lMaximumCount, LPCWSTR lpName);
HANDLE WINAPI CreateSemaphoreA(LPSECURITY_ATTRIBUTES lpSemaphoreAttributes, LONG lInitialCount,
                               LONG lMaximumCount, LPCSTR lpName);
// As CreateSemaphoreW, with the handle's access in dwDesiredAccess. dwFlags is
// reserved and ignored (as Wine ignores it).
HANDLE WINAPI CreateSemaphoreExW(LPSECURITY_ATTRIBUTES lpSemaphoreAttributes, LONG lInitialCount,
                                 LONG lMaximumCount, LPCWSTR lpName, DWORD dwFlags,
                                 DWORD dwDesiredAccess);
HANDLE WINAPI OpenSemaphoreW(DWORD dwDesiredAccess, BOOL bInheritHandle, LPCWSTR lpName);
HANDLE WINAPI OpenSemaphoreA(DWORD dwDesiredAccess, BOOL bInheritHandle, LPCSTR lpName);
// Adds `lReleaseCount` (> 0, else ERROR_INVALID_PARAMETER). Past the maximum
// it fails with ERROR_TOO_MANY_POSTS and the count is unchanged. The previous
// count is stored in `lpPreviousCount` when not null. ERROR_ACCESS_DENIED
// without SEMAPHORE_MODIFY_STATE.
BOOL WINAPI ReleaseSemaphore(HANDLE hSemaphore, LONG lReleaseCount, LPLONG lpPreviousCount);

// --- Threads ----------------------------------------------------------------

// Starts a thread running `lpStartAddress(lpParameter)`. The returned handle
// is signaled when the thread exits; GetExitCodeThread gives the routine's
// return value (STILL_ACTIVE while it runs). CREATE_SUSPENDED holds the thread
// before its routine until ResumeThread. `dwStackSize` 0 uses the default.
// Other flags: ERROR_INVALID_PARAMETER. Null routine: ERROR_INVALID_PARAMETER.
HANDLE WINAPI CreateThread(LPSECURITY_ATTRIBUTES lpThreadAttributes, SIZE_T dwStackSize,
                           LPTHREAD_START_ROUTINE lpStartAddress, LPVOID lpParameter,
                           DWORD dwCreationFlags, LPDWORD lpThreadId);
// Thread handles check THREAD_* rights: ResumeThread THREAD_SUSPEND_RESUME;
// GetExitCodeThread, GetThreadId and GetThreadDescription
// THREAD_QUERY_LIMITED_INFORMATION (which THREAD_QUERY_INFORMATION implies);
// SetThreadDescription THREAD_SET_LIMITED_INFORMATION (implied by
// THREAD_SET_INFORMATION); QueueUserAPC THREAD_SET_CONTEXT; waits SYNCHRONIZE.
// Without it: ERROR_ACCESS_DENIED (E_ACCESSDENIED for the HRESULT ones).
//
// Decrements the suspend count of a thread created suspended; returns the
// previous count (0 for a running thread), or (DWORD)-1 on error.
DWORD WINAPI ResumeThread(HANDLE hThread);
BOOL WINAPI GetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode);
// Ends the calling thread: unwinds its stack (C++ destructors run), then the
// thread's handle becomes signaled with `dwExitCode`. An STA on the thread
// ends first, before the unwind: nothing more is served on the way out,
// calls still queued to it fail (RPC_E_DISCONNECTED), calls it was running
// end as "thread exited inside the call", and its proxies have already
// released their objects when the unwinding frames release them.
[[noreturn]] VOID WINAPI ExitThread(DWORD dwExitCode);

// --- Waits ------------------------------------------------------------------

// Waits until the object is signaled or `dwMilliseconds` pass (INFINITE: no
// limit). Returns WAIT_OBJECT_0, WAIT_ABANDONED (an abandoned mutex, now owned
// by the caller), WAIT_TIMEOUT, or WAIT_FAILED with ERROR_INVALID_HANDLE, or
// ERROR_ACCESS_DENIED for a handle without SYNCHRONIZE (every wait function).
// Blocks without pumping messages. A signaled event, no waiter queued: no
// system call. The pseudo-handles are accepted, as on Windows: the current
// process and the current thread are never signaled while the caller runs,
// so the wait times out (INFINITE: never returns).
DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
// As above; with `bAlertable`, APCs queued to the thread (QueueUserAPC) run
// inside the wait, which then returns WAIT_IO_COMPLETION.
DWORD WINAPI WaitForSingleObjectEx(HANDLE hHandle, DWORD dwMilliseconds, BOOL bAlertable);
// Waits for any (`bWaitAll` FALSE: returns WAIT_OBJECT_0 + the lowest index
// that is signaled) or all (acquires every object atomically, or none) of
// 1..MAXIMUM_WAIT_OBJECTS handles. ERROR_INVALID_PARAMETER for a count of 0
// or above 64, a null array, or the same object twice in a wait-all (a
// wait-any accepts duplicates). WAIT_ABANDONED_0 + i when an abandoned mutex
// was acquired (wait-all: i is the lowest such index). Unlike
// WaitForSingleObject, the pseudo-handles GetCurrentProcess() and
// GetCurrentThread() are refused with WAIT_FAILED and ERROR_INVALID_HANDLE,
// as on Windows (duplicate them with DuplicateHandle to wait on them here).
DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE* lpHandles, BOOL bWaitAll,
                                    DWORD dwMilliseconds);
DWORD WINAPI WaitForMultipleObjectsEx(DWORD nCount, const HANDLE* lpHandles, BOOL bWaitAll,
                                      DWORD dwMilliseconds, BOOL bAlertable);
// Signals `hObjectToSignal` (event, mutex or semaphore) and waits on
// `hObjectToWaitOn`, as one call. Checked in Windows' order before anything is
// signaled: both handles open (ERROR_INVALID_HANDLE), SYNCHRONIZE on the one
// waited on, an object that can be signaled (another kind, such as a thread:
// ERROR_INVALID_HANDLE, explained in LastErrorExplanation()), and the right
// to signal it (EVENT_MODIFY_STATE, SEMAPHORE_MODIFY_STATE; a mutex needs
// ownership only); a missing right is ERROR_ACCESS_DENIED. The signal's own
// errors (ERROR_NOT_OWNER, ERROR_TOO_MANY_POSTS) fail it without waiting.
DWORD WINAPI SignalObjectAndWait(HANDLE hObjectToSignal, HANDLE hObjectToWaitOn,
                                 DWORD dwMilliseconds, BOOL bAlertable);

// Sleeps; Sleep(0) yields the processor.
VOID WINAPI Sleep(DWORD dwMilliseconds);
// Returns 0 after the time, or WAIT_IO_COMPLETION when `bAlertable` and APCs ran.
DWORD WINAPI SleepEx(DWORD dwMilliseconds, BOOL bAlertable);

// Queues `pfnAPC(dwData)` to run on the thread behind `hThread` the next time
// it enters (or is in) an alertable wait. Returns 0 with ERROR_INVALID_HANDLE
// for a bad handle, ERROR_INVALID_PARAMETER for a null function, and
// ERROR_GEN_FAILURE when the thread has exited.
DWORD WINAPI QueueUserAPC(PAPCFUNC pfnAPC, HANDLE hThread, ULONG_PTR dwData);

// --- Handles ----------------------------------------------------------------

// Closes a handle. ERROR_INVALID_HANDLE for a handle that is not open (closed
// already, forged, NULL). Every attempt, failed ones too, is recorded in the
// handle history (apartments/last_error.h) with the calling thread, the time
// and the caller's return address. Pseudo-handles: TRUE, no-op; that includes
// INVALID_HANDLE_VALUE, which is GetCurrentProcess() as on Windows.
BOOL WINAPI CloseHandle(HANDLE hObject);
// Duplicates a handle within the process: both process handles must be
// GetCurrentProcess() (or a duplicate of it with PROCESS_DUP_HANDLE, else
// ERROR_ACCESS_DENIED); anything else fails with ERROR_INVALID_HANDLE. The
// duplicate has the source's access with DUPLICATE_SAME_ACCESS, else
// dwDesiredAccess (narrower or wider; 0 is allowed; a right the kind lacks:
// ERROR_ACCESS_DENIED). Option bits other than DUPLICATE_CLOSE_SOURCE and
// DUPLICATE_SAME_ACCESS are ignored (Windows documents no error for them;
// Wine ignores them). With
// DUPLICATE_CLOSE_SOURCE the source is closed even when the duplication fails
// (a bad target process handle, a refused access, no target pointer), as
// Windows documents; only a bad source process handle closes nothing.
// Duplicating GetCurrentThread() gives a real handle to the calling thread.
// ERROR_INVALID_PARAMETER for a null target pointer without
// DUPLICATE_CLOSE_SOURCE (Windows makes a handle nobody can close).
BOOL WINAPI DuplicateHandle(HANDLE hSourceProcessHandle, HANDLE hSourceHandle,
                            HANDLE hTargetProcessHandle, LPHANDLE lpTargetHandle,
                            DWORD dwDesiredAccess, BOOL bInheritHandle, DWORD dwOptions);

}  // extern "C"

#endif  // APARTMENTS_WIN32_KERNEL_H_
