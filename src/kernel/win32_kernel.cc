// The Win32 kernel-object API over the handle table and the wait engine.
#include <cstdlib>
#include <cstring>
#include <utility>

#include "base/check.h"
#include "kernel/handle_history.h"
#include "kernel/kernel.h"

using namespace apartments::internal;

namespace {

// Sets the last error and returns the failure value.
template <typename T>
T Fail(DWORD error, T value) {
  SetLastError(error);
  return value;
}

std::wstring Widen(LPCSTR name) { return name == nullptr ? std::wstring() : Utf8ToWide(name); }

struct EventParams {
  bool manual_reset;
  bool initial_state;
};
KernelObject* MakeEvent(std::wstring name, void* context) {
  auto* p = static_cast<EventParams*>(context);
  return new Event(std::move(name), p->manual_reset, p->initial_state);
}
// `context` points to a mutex made (and owned) in advance for bInitialOwner,
// which is used instead of a new one; the pointer is cleared when it is.
KernelObject* MakeMutex(std::wstring name, void* context) {
  auto* premade = static_cast<Mutex**>(context);
  if (*premade != nullptr) return std::exchange(*premade, nullptr);
  return new Mutex(std::move(name));
}
struct SemaphoreParams {
  LONG initial;
  LONG maximum;
};
KernelObject* MakeSemaphore(std::wstring name, void* context) {
  auto* p = static_cast<SemaphoreParams*>(context);
  return new Semaphore(std::move(name), p->initial, p->maximum);
}

// Resolves `handle` as `kind`, setting ERROR_INVALID_HANDLE (and the last
// error explanation, naming `function`) when it fails.
ObjectRef Resolve(HANDLE handle, ObjectKind kind, const char* function) {
  ObjectRef ref = ResolveHandleAs(handle, kind);
  if (!ref) {
    ExplainInvalidHandle(function, handle, &kind);
    SetLastError(ERROR_INVALID_HANDLE);
  }
  return ref;
}

// The failure of a wait on a handle that is not open: explains, then sets
// ERROR_INVALID_HANDLE last (explaining may make calls that touch it).
DWORD FailInvalidHandle(const char* function, HANDLE handle, std::size_t position = 0,
                        std::size_t count = 1) {
  ExplainInvalidHandle(function, handle, nullptr, position, count);
  return Fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
}

BOOL FromError(DWORD error) {
  if (error == ERROR_SUCCESS) return TRUE;
  SetLastError(error);
  return FALSE;
}

// Shared by the Wait* functions: validates, resolves and waits.
DWORD WaitForHandles(const char* function, DWORD count, const HANDLE* handles, BOOL wait_all,
                     DWORD timeout, BOOL alertable) {
  if (count == 0 || count > MAXIMUM_WAIT_OBJECTS || handles == nullptr) {
    return Fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
  }
  ObjectRef refs[MAXIMUM_WAIT_OBJECTS];
  KernelObject* objects[MAXIMUM_WAIT_OBJECTS];
  for (DWORD i = 0; i < count; ++i) {
    refs[i] = ResolveHandle(handles[i]);
    if (!refs[i]) return FailInvalidHandle(function, handles[i], i, count);
    objects[i] = refs[i].get();
  }
  if (wait_all) {
    for (DWORD i = 0; i < count; ++i) {
      for (DWORD j = 0; j < i; ++j) {
        if (objects[i] == objects[j]) return Fail(ERROR_INVALID_PARAMETER, WAIT_FAILED);
      }
    }
  }
  return WaitForObjects(objects, handles, count, wait_all != FALSE, timeout, alertable != FALSE);
}

DWORD SignalObject(KernelObject& object) {
  switch (object.kind()) {
    case ObjectKind::kEvent: return SignalEvent(static_cast<Event&>(object));
    case ObjectKind::kMutex: return ReleaseMutexObject(static_cast<Mutex&>(object));
    case ObjectKind::kSemaphore:
      return ReleaseSemaphoreObject(static_cast<Semaphore&>(object), 1, nullptr);
    default: return ERROR_INVALID_HANDLE;
  }
}

}  // namespace

extern "C" {

HANDLE WINAPI CreateEventW(LPSECURITY_ATTRIBUTES, BOOL bManualReset, BOOL bInitialState,
                           LPCWSTR lpName) {
  EventParams params{bManualReset != FALSE, bInitialState != FALSE};
  bool created;
  return CreateNamedObject(lpName, ObjectKind::kEvent, &MakeEvent, &params, &created);
}

HANDLE WINAPI CreateEventA(LPSECURITY_ATTRIBUTES attributes, BOOL bManualReset,
                           BOOL bInitialState, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return CreateEventW(attributes, bManualReset, bInitialState, lpName ? name.c_str() : nullptr);
}

HANDLE WINAPI CreateEventExW(LPSECURITY_ATTRIBUTES attributes, LPCWSTR lpName, DWORD dwFlags,
                             DWORD) {
  if ((dwFlags & ~(CREATE_EVENT_MANUAL_RESET | CREATE_EVENT_INITIAL_SET)) != 0) {
    return Fail<HANDLE>(ERROR_INVALID_PARAMETER, nullptr);
  }
  return CreateEventW(attributes, (dwFlags & CREATE_EVENT_MANUAL_RESET) != 0,
                      (dwFlags & CREATE_EVENT_INITIAL_SET) != 0, lpName);
}

HANDLE WINAPI OpenEventW(DWORD, BOOL, LPCWSTR lpName) {
  return OpenNamedObject(lpName, ObjectKind::kEvent);
}

HANDLE WINAPI OpenEventA(DWORD access, BOOL inherit, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return OpenEventW(access, inherit, lpName ? name.c_str() : nullptr);
}

BOOL WINAPI SetEvent(HANDLE hEvent) {
  ObjectRef ref = Resolve(hEvent, ObjectKind::kEvent, "SetEvent");
  if (!ref) return FALSE;
  return FromError(SignalEvent(static_cast<Event&>(*ref.get())));
}

BOOL WINAPI ResetEvent(HANDLE hEvent) {
  ObjectRef ref = Resolve(hEvent, ObjectKind::kEvent, "ResetEvent");
  if (!ref) return FALSE;
  return FromError(ResetEventObject(static_cast<Event&>(*ref.get())));
}

BOOL WINAPI PulseEvent(HANDLE hEvent) {
  ObjectRef ref = Resolve(hEvent, ObjectKind::kEvent, "PulseEvent");
  if (!ref) return FALSE;
  return FromError(PulseEventObject(static_cast<Event&>(*ref.get())));
}

HANDLE WINAPI CreateMutexW(LPSECURITY_ATTRIBUTES, BOOL bInitialOwner, LPCWSTR lpName) {
  // The initial owner must own the mutex before any other thread can reach
  // it (by its name, once published), so it is made and acquired first.
  Mutex* premade = nullptr;
  if (bInitialOwner) {
    premade = new Mutex(lpName != nullptr ? std::wstring(lpName) : std::wstring());
    AcquireNewMutex(*premade);
    premade->AddRef();  // Ours, until we know whether it was used.
  }
  Mutex* const made = premade;
  bool created;
  HANDLE handle = CreateNamedObject(lpName, ObjectKind::kMutex, &MakeMutex, &premade, &created);
  if (made != nullptr) {
    DWORD error = GetLastError();
    // Unused (the name belongs to an existing object, whose ownership
    // bInitialOwner does not change), or used but no handle could be made:
    // nobody else can reach it, so give up its ownership.
    if (premade != nullptr) premade->Release();  // The reference MakeMutex would have passed on.
    if (premade != nullptr || handle == nullptr) ReleaseMutexObject(*made);
    made->Release();
    SetLastError(error);
  }
  return handle;
}

HANDLE WINAPI CreateMutexA(LPSECURITY_ATTRIBUTES attributes, BOOL bInitialOwner, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return CreateMutexW(attributes, bInitialOwner, lpName ? name.c_str() : nullptr);
}

HANDLE WINAPI OpenMutexW(DWORD, BOOL, LPCWSTR lpName) {
  return OpenNamedObject(lpName, ObjectKind::kMutex);
}

HANDLE WINAPI OpenMutexA(DWORD access, BOOL inherit, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return OpenMutexW(access, inherit, lpName ? name.c_str() : nullptr);
}

BOOL WINAPI ReleaseMutex(HANDLE hMutex) {
  ObjectRef ref = Resolve(hMutex, ObjectKind::kMutex, "ReleaseMutex");
  if (!ref) return FALSE;
  return FromError(ReleaseMutexObject(static_cast<Mutex&>(*ref.get())));
}

HANDLE WINAPI CreateSemaphoreW(LPSECURITY_ATTRIBUTES, LONG lInitialCount, LONG lMaximumCount,
                               LPCWSTR lpName) {
  if (lMaximumCount <= 0 || lInitialCount < 0 || lInitialCount > lMaximumCount) {
    return Fail<HANDLE>(ERROR_INVALID_PARAMETER, nullptr);
  }
  SemaphoreParams params{lInitialCount, lMaximumCount};
  bool created;
  return CreateNamedObject(lpName, ObjectKind::kSemaphore, &MakeSemaphore, &params, &created);
}

HANDLE WINAPI CreateSemaphoreA(LPSECURITY_ATTRIBUTES attributes, LONG lInitialCount,
                               LONG lMaximumCount, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return CreateSemaphoreW(attributes, lInitialCount, lMaximumCount, lpName ? name.c_str() : nullptr);
}

HANDLE WINAPI OpenSemaphoreW(DWORD, BOOL, LPCWSTR lpName) {
  return OpenNamedObject(lpName, ObjectKind::kSemaphore);
}

HANDLE WINAPI OpenSemaphoreA(DWORD access, BOOL inherit, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return OpenSemaphoreW(access, inherit, lpName ? name.c_str() : nullptr);
}

BOOL WINAPI ReleaseSemaphore(HANDLE hSemaphore, LONG lReleaseCount, LPLONG lpPreviousCount) {
  ObjectRef ref = Resolve(hSemaphore, ObjectKind::kSemaphore, "ReleaseSemaphore");
  if (!ref) return FALSE;
  return FromError(
      ReleaseSemaphoreObject(static_cast<Semaphore&>(*ref.get()), lReleaseCount, lpPreviousCount));
}

DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds) {
  return WaitForSingleObjectEx(hHandle, dwMilliseconds, FALSE);
}

DWORD WINAPI WaitForSingleObjectEx(HANDLE hHandle, DWORD dwMilliseconds, BOOL bAlertable) {
  ObjectRef ref = ResolveHandle(hHandle);
  if (!ref) return FailInvalidHandle("WaitForSingleObject", hHandle);
  KernelObject* object = ref.get();
  return WaitForObjects(&object, &hHandle, 1, false, dwMilliseconds, bAlertable != FALSE);
}

DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE* lpHandles, BOOL bWaitAll,
                                    DWORD dwMilliseconds) {
  return WaitForHandles("WaitForMultipleObjects", nCount, lpHandles, bWaitAll, dwMilliseconds,
                        FALSE);
}

DWORD WINAPI WaitForMultipleObjectsEx(DWORD nCount, const HANDLE* lpHandles, BOOL bWaitAll,
                                      DWORD dwMilliseconds, BOOL bAlertable) {
  return WaitForHandles("WaitForMultipleObjectsEx", nCount, lpHandles, bWaitAll, dwMilliseconds,
                        bAlertable);
}

DWORD WINAPI SignalObjectAndWait(HANDLE hObjectToSignal, HANDLE hObjectToWaitOn,
                                 DWORD dwMilliseconds, BOOL bAlertable) {
  ObjectRef wait_ref = ResolveHandle(hObjectToWaitOn);
  ObjectRef signal_ref = ResolveHandle(hObjectToSignal);
  if (!signal_ref) return FailInvalidHandle("SignalObjectAndWait (the object to signal)", hObjectToSignal);
  if (!wait_ref) return FailInvalidHandle("SignalObjectAndWait (the object to wait on)", hObjectToWaitOn);
  DWORD error = SignalObject(*signal_ref.get());
  if (error != ERROR_SUCCESS) return Fail(error, WAIT_FAILED);
  KernelObject* object = wait_ref.get();
  return WaitForObjects(&object, &hObjectToWaitOn, 1, false, dwMilliseconds, bAlertable != FALSE);
}

VOID WINAPI Sleep(DWORD dwMilliseconds) { SleepEx(dwMilliseconds, FALSE); }

DWORD WINAPI SleepEx(DWORD dwMilliseconds, BOOL bAlertable) {
  if (dwMilliseconds == 0 && !bAlertable) {
    sched_yield();
    return 0;
  }
  DWORD result = WaitForObjects(nullptr, nullptr, 0, false, dwMilliseconds, bAlertable != FALSE);
  return result == WAIT_IO_COMPLETION ? WAIT_IO_COMPLETION : 0;
}

DWORD WINAPI QueueUserAPC(PAPCFUNC pfnAPC, HANDLE hThread, ULONG_PTR dwData) {
  ObjectRef ref = Resolve(hThread, ObjectKind::kThread, "QueueUserAPC");
  if (!ref) return 0;
  if (pfnAPC == nullptr) return Fail<DWORD>(ERROR_INVALID_PARAMETER, 0);
  DWORD error = QueueApc(static_cast<Thread&>(*ref.get()), pfnAPC, dwData);
  if (error != ERROR_SUCCESS) return Fail<DWORD>(error, 0);
  return 1;
}

BOOL WINAPI CloseHandle(HANDLE hObject) {
  if (!CloseHandleEntry(hObject, __builtin_return_address(0))) {
    ExplainInvalidHandle("CloseHandle", hObject);
    return Fail(ERROR_INVALID_HANDLE, FALSE);
  }
  return TRUE;
}

BOOL WINAPI DuplicateHandle(HANDLE hSourceProcessHandle, HANDLE hSourceHandle,
                            HANDLE hTargetProcessHandle, LPHANDLE lpTargetHandle, DWORD, BOOL,
                            DWORD dwOptions) {
  ObjectRef source_process = ResolveHandleAs(hSourceProcessHandle, ObjectKind::kProcess);
  ObjectRef target_process = ResolveHandleAs(hTargetProcessHandle, ObjectKind::kProcess);
  if (!source_process || !target_process) {
    const ObjectKind process = ObjectKind::kProcess;
    ExplainInvalidHandle("DuplicateHandle (a process handle)",
                         !source_process ? hSourceProcessHandle : hTargetProcessHandle, &process);
    return Fail(ERROR_INVALID_HANDLE, FALSE);
  }
  if ((dwOptions & ~(DUPLICATE_CLOSE_SOURCE | DUPLICATE_SAME_ACCESS)) != 0) {
    return Fail(ERROR_INVALID_PARAMETER, FALSE);
  }
  ObjectRef object = ResolveHandle(hSourceHandle);
  if (!object) {
    ExplainInvalidHandle("DuplicateHandle", hSourceHandle);
    return Fail(ERROR_INVALID_HANDLE, FALSE);
  }
  const bool close_source = (dwOptions & DUPLICATE_CLOSE_SOURCE) != 0;
  if (lpTargetHandle == nullptr) {
    if (close_source) {
      CloseHandleEntry(hSourceHandle, __builtin_return_address(0));
      return TRUE;
    }
    return Fail(ERROR_INVALID_PARAMETER, FALSE);
  }
  // The duplicate is made before the source closes (as Windows orders it), so
  // a named object moved to a new handle never loses its name in between.
  HANDLE duplicate = InsertHandle(object.release());
  if (close_source) CloseHandleEntry(hSourceHandle, __builtin_return_address(0));
  if (duplicate == nullptr) return Fail(ERROR_NO_SYSTEM_RESOURCES, FALSE);
  *lpTargetHandle = duplicate;
  return TRUE;
}

}  // extern "C"
