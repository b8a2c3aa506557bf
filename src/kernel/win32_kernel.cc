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

// The failure of a wait on a handle that is not open: explains, then sets
// ERROR_INVALID_HANDLE last (explaining may make calls that touch it).
DWORD FailInvalidHandle(const char* function, HANDLE handle, std::size_t position = 0,
                        std::size_t count = 1) {
  ExplainInvalidHandle(function, handle, nullptr, position, count);
  return Fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
}

// The failure of a wait on a handle without SYNCHRONIZE (as on Windows:
// WAIT_FAILED with ERROR_ACCESS_DENIED).
DWORD FailNotWaitable(const char* function, HANDLE handle, const KernelObject& object,
                      ACCESS_MASK granted) {
  ExplainAccessDenied(function, handle, object.kind(), granted, "SYNCHRONIZE");
  return Fail(ERROR_ACCESS_DENIED, WAIT_FAILED);
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
    // Windows takes the pseudo-handles in WaitForSingleObject but not here
    // (sync.c test_WaitForMultipleObjects: WAIT_FAILED, ERROR_INVALID_HANDLE).
    if (IsPseudoHandle(handles[i])) return FailInvalidHandle(function, handles[i], i, count);
    ACCESS_MASK granted;
    refs[i] = ResolveHandle(handles[i], &granted);
    if (!refs[i]) return FailInvalidHandle(function, handles[i], i, count);
    if ((granted & SYNCHRONIZE) == 0) return FailNotWaitable(function, handles[i], *refs[i].get(), granted);
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

// The right SignalObjectAndWait needs on the object it signals, as
// ReleaseSemaphore and SetEvent need it (ReleaseMutex needs only ownership).
ACCESS_MASK SignalRight(ObjectKind kind, const char** name) {
  switch (kind) {
    case ObjectKind::kEvent: *name = "EVENT_MODIFY_STATE"; return EVENT_MODIFY_STATE;
    case ObjectKind::kSemaphore: *name = "SEMAPHORE_MODIFY_STATE"; return SEMAPHORE_MODIFY_STATE;
    default: *name = ""; return 0;
  }
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

HANDLE CreateEventWithAccess(BOOL manual_reset, BOOL initial_state, LPCWSTR name,
                             ACCESS_MASK access) {
  EventParams params{manual_reset != FALSE, initial_state != FALSE};
  bool created;
  return CreateNamedObject(name, ObjectKind::kEvent, &MakeEvent, &params, &created, access);
}

HANDLE CreateMutexWithAccess(BOOL initial_owner, LPCWSTR name, ACCESS_MASK access) {
  // The initial owner must own the mutex before any other thread can reach
  // it (by its name, once published), so it is made and acquired first.
  Mutex* premade = nullptr;
  if (initial_owner) {
    premade = new Mutex(name != nullptr ? std::wstring(name) : std::wstring());
    AcquireNewMutex(*premade);
    premade->AddRef();  // Ours, until we know whether it was used.
  }
  Mutex* const made = premade;
  bool created;
  HANDLE handle =
      CreateNamedObject(name, ObjectKind::kMutex, &MakeMutex, &premade, &created, access);
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

HANDLE CreateSemaphoreWithAccess(LONG initial, LONG maximum, LPCWSTR name, ACCESS_MASK access) {
  if (maximum <= 0 || initial < 0 || initial > maximum) {
    return Fail<HANDLE>(ERROR_INVALID_PARAMETER, nullptr);
  }
  SemaphoreParams params{initial, maximum};
  bool created;
  return CreateNamedObject(name, ObjectKind::kSemaphore, &MakeSemaphore, &params, &created,
                           access);
}

// The access a Create*Ex call asks for, mapped; false (last error set) when
// the kind has no such rights. Asking for none is allowed, as on Windows (the
// handle then can do nothing but be closed or duplicated).
bool MapCreateAccess(ObjectKind kind, DWORD desired, ACCESS_MASK* granted) {
  const DWORD error = GrantAccess(kind, desired, /*allow_none=*/true, granted);
  if (error == ERROR_SUCCESS) return true;
  SetLastError(error);
  return false;
}

}  // namespace

namespace apartments::internal {

ObjectRef ResolveForCall(HANDLE handle, ObjectKind kind, const char* function, ACCESS_MASK needed,
                         const char* needed_name) {
  ACCESS_MASK granted;
  ObjectRef ref = ResolveHandleAs(handle, kind, &granted);
  if (!ref) {
    ExplainInvalidHandle(function, handle, &kind);
    SetLastError(ERROR_INVALID_HANDLE);
    return ref;
  }
  if ((granted & needed) != needed) {
    ExplainAccessDenied(function, handle, kind, granted, needed_name);
    SetLastError(ERROR_ACCESS_DENIED);
    return ObjectRef();
  }
  return ref;
}

}  // namespace apartments::internal

extern "C" {

HANDLE WINAPI CreateEventW(LPSECURITY_ATTRIBUTES, BOOL bManualReset, BOOL bInitialState,
                           LPCWSTR lpName) {
  return CreateEventWithAccess(bManualReset, bInitialState, lpName, kAllAccessForKind);
}

HANDLE WINAPI CreateEventA(LPSECURITY_ATTRIBUTES attributes, BOOL bManualReset,
                           BOOL bInitialState, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return CreateEventW(attributes, bManualReset, bInitialState, lpName ? name.c_str() : nullptr);
}

HANDLE WINAPI CreateEventExW(LPSECURITY_ATTRIBUTES, LPCWSTR lpName, DWORD dwFlags,
                             DWORD dwDesiredAccess) {
  if ((dwFlags & ~(CREATE_EVENT_MANUAL_RESET | CREATE_EVENT_INITIAL_SET)) != 0) {
    return Fail<HANDLE>(ERROR_INVALID_PARAMETER, nullptr);
  }
  ACCESS_MASK access;
  if (!MapCreateAccess(ObjectKind::kEvent, dwDesiredAccess, &access)) return nullptr;
  return CreateEventWithAccess((dwFlags & CREATE_EVENT_MANUAL_RESET) != 0,
                               (dwFlags & CREATE_EVENT_INITIAL_SET) != 0, lpName, access);
}

HANDLE WINAPI OpenEventW(DWORD dwDesiredAccess, BOOL, LPCWSTR lpName) {
  return OpenNamedObject(lpName, ObjectKind::kEvent, dwDesiredAccess);
}

HANDLE WINAPI OpenEventA(DWORD access, BOOL inherit, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return OpenEventW(access, inherit, lpName ? name.c_str() : nullptr);
}

BOOL WINAPI SetEvent(HANDLE hEvent) {
  ObjectRef ref = ResolveForCall(hEvent, ObjectKind::kEvent, "SetEvent", EVENT_MODIFY_STATE,
                                 "EVENT_MODIFY_STATE");
  if (!ref) return FALSE;
  return FromError(SignalEvent(static_cast<Event&>(*ref.get())));
}

BOOL WINAPI ResetEvent(HANDLE hEvent) {
  ObjectRef ref = ResolveForCall(hEvent, ObjectKind::kEvent, "ResetEvent", EVENT_MODIFY_STATE,
                                 "EVENT_MODIFY_STATE");
  if (!ref) return FALSE;
  return FromError(ResetEventObject(static_cast<Event&>(*ref.get())));
}

BOOL WINAPI PulseEvent(HANDLE hEvent) {
  ObjectRef ref = ResolveForCall(hEvent, ObjectKind::kEvent, "PulseEvent", EVENT_MODIFY_STATE,
                                 "EVENT_MODIFY_STATE");
  if (!ref) return FALSE;
  return FromError(PulseEventObject(static_cast<Event&>(*ref.get())));
}

HANDLE WINAPI CreateMutexW(LPSECURITY_ATTRIBUTES, BOOL bInitialOwner, LPCWSTR lpName) {
  return CreateMutexWithAccess(bInitialOwner, lpName, kAllAccessForKind);
}

HANDLE WINAPI CreateMutexExW(LPSECURITY_ATTRIBUTES, LPCWSTR lpName, DWORD dwFlags,
                             DWORD dwDesiredAccess) {
  if ((dwFlags & ~CREATE_MUTEX_INITIAL_OWNER) != 0) {
    return Fail<HANDLE>(ERROR_INVALID_PARAMETER, nullptr);
  }
  ACCESS_MASK access;
  if (!MapCreateAccess(ObjectKind::kMutex, dwDesiredAccess, &access)) return nullptr;
  return CreateMutexWithAccess((dwFlags & CREATE_MUTEX_INITIAL_OWNER) != 0, lpName, access);
}

HANDLE WINAPI CreateMutexA(LPSECURITY_ATTRIBUTES attributes, BOOL bInitialOwner, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return CreateMutexW(attributes, bInitialOwner, lpName ? name.c_str() : nullptr);
}

HANDLE WINAPI OpenMutexW(DWORD dwDesiredAccess, BOOL, LPCWSTR lpName) {
  return OpenNamedObject(lpName, ObjectKind::kMutex, dwDesiredAccess);
}

HANDLE WINAPI OpenMutexA(DWORD access, BOOL inherit, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return OpenMutexW(access, inherit, lpName ? name.c_str() : nullptr);
}

BOOL WINAPI ReleaseMutex(HANDLE hMutex) {
  // No access right: ownership is what counts, as on Windows (which releases
  // through a handle opened with any right, even SYNCHRONIZE alone).
  ObjectRef ref = ResolveForCall(hMutex, ObjectKind::kMutex, "ReleaseMutex", 0, "");
  if (!ref) return FALSE;
  return FromError(ReleaseMutexObject(static_cast<Mutex&>(*ref.get())));
}

HANDLE WINAPI CreateSemaphoreW(LPSECURITY_ATTRIBUTES, LONG lInitialCount, LONG lMaximumCount,
                               LPCWSTR lpName) {
  return CreateSemaphoreWithAccess(lInitialCount, lMaximumCount, lpName, kAllAccessForKind);
}

HANDLE WINAPI CreateSemaphoreExW(LPSECURITY_ATTRIBUTES, LONG lInitialCount, LONG lMaximumCount,
                                 LPCWSTR lpName, DWORD, DWORD dwDesiredAccess) {
  if (lMaximumCount <= 0 || lInitialCount < 0 || lInitialCount > lMaximumCount) {
    return Fail<HANDLE>(ERROR_INVALID_PARAMETER, nullptr);
  }
  ACCESS_MASK access;
  if (!MapCreateAccess(ObjectKind::kSemaphore, dwDesiredAccess, &access)) return nullptr;
  return CreateSemaphoreWithAccess(lInitialCount, lMaximumCount, lpName, access);
}

HANDLE WINAPI CreateSemaphoreA(LPSECURITY_ATTRIBUTES attributes, LONG lInitialCount,
                               LONG lMaximumCount, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return CreateSemaphoreW(attributes, lInitialCount, lMaximumCount, lpName ? name.c_str() : nullptr);
}

HANDLE WINAPI OpenSemaphoreW(DWORD dwDesiredAccess, BOOL, LPCWSTR lpName) {
  return OpenNamedObject(lpName, ObjectKind::kSemaphore, dwDesiredAccess);
}

HANDLE WINAPI OpenSemaphoreA(DWORD access, BOOL inherit, LPCSTR lpName) {
  std::wstring name = Widen(lpName);
  return OpenSemaphoreW(access, inherit, lpName ? name.c_str() : nullptr);
}

BOOL WINAPI ReleaseSemaphore(HANDLE hSemaphore, LONG lReleaseCount, LPLONG lpPreviousCount) {
  ObjectRef ref = ResolveForCall(hSemaphore, ObjectKind::kSemaphore, "ReleaseSemaphore",
                                 SEMAPHORE_MODIFY_STATE, "SEMAPHORE_MODIFY_STATE");
  if (!ref) return FALSE;
  return FromError(
      ReleaseSemaphoreObject(static_cast<Semaphore&>(*ref.get()), lReleaseCount, lpPreviousCount));
}

DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds) {
  return WaitForSingleObjectEx(hHandle, dwMilliseconds, FALSE);
}

DWORD WINAPI WaitForSingleObjectEx(HANDLE hHandle, DWORD dwMilliseconds, BOOL bAlertable) {
  ACCESS_MASK granted;
  ObjectRef ref = ResolveHandle(hHandle, &granted);
  if (!ref) return FailInvalidHandle("WaitForSingleObject", hHandle);
  if ((granted & SYNCHRONIZE) == 0) {
    return FailNotWaitable("WaitForSingleObject", hHandle, *ref.get(), granted);
  }
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
  // In Windows' order: the object to signal (any right), the object to wait
  // on (SYNCHRONIZE), then the kind of the first and the right to signal it.
  ACCESS_MASK signal_granted;
  ACCESS_MASK wait_granted;
  ObjectRef signal_ref = ResolveHandle(hObjectToSignal, &signal_granted);
  if (!signal_ref) return FailInvalidHandle("SignalObjectAndWait (the object to signal)", hObjectToSignal);
  ObjectRef wait_ref = ResolveHandle(hObjectToWaitOn, &wait_granted);
  if (!wait_ref) return FailInvalidHandle("SignalObjectAndWait (the object to wait on)", hObjectToWaitOn);
  if ((wait_granted & SYNCHRONIZE) == 0) {
    return FailNotWaitable("SignalObjectAndWait (the object to wait on)", hObjectToWaitOn,
                           *wait_ref.get(), wait_granted);
  }
  const ObjectKind signal_kind = signal_ref->kind();
  if (signal_kind != ObjectKind::kEvent && signal_kind != ObjectKind::kMutex &&
      signal_kind != ObjectKind::kSemaphore) {
    // Windows: STATUS_OBJECT_TYPE_MISMATCH, which is ERROR_INVALID_HANDLE.
    ExplainNotSignalable("SignalObjectAndWait", hObjectToSignal, signal_kind);
    return Fail(ERROR_INVALID_HANDLE, WAIT_FAILED);
  }
  const char* right_name;
  const ACCESS_MASK right = SignalRight(signal_kind, &right_name);
  if ((signal_granted & right) != right) {
    ExplainAccessDenied("SignalObjectAndWait (the object to signal)", hObjectToSignal, signal_kind,
                        signal_granted, right_name);
    return Fail(ERROR_ACCESS_DENIED, WAIT_FAILED);
  }
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
  ObjectRef ref = ResolveForCall(hThread, ObjectKind::kThread, "QueueUserAPC", THREAD_SET_CONTEXT,
                                 "THREAD_SET_CONTEXT");
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
                            HANDLE hTargetProcessHandle, LPHANDLE lpTargetHandle,
                            DWORD dwDesiredAccess, BOOL, DWORD dwOptions) {
  const void* const call_site = __builtin_return_address(0);
  ObjectRef source_process =
      ResolveForCall(hSourceProcessHandle, ObjectKind::kProcess,
                     "DuplicateHandle (the source process handle)", PROCESS_DUP_HANDLE,
                     "PROCESS_DUP_HANDLE");
  if (!source_process) return FALSE;
  // From here on, DUPLICATE_CLOSE_SOURCE closes the source whatever else
  // fails, as Windows documents ("regardless of any error status returned").
  // Option bits other than these two are ignored, as Wine does (Windows
  // documents no error for them).
  const bool close_source = (dwOptions & DUPLICATE_CLOSE_SOURCE) != 0;
  auto fail = [&](DWORD error) {
    if (close_source) CloseHandleEntry(hSourceHandle, call_site);
    return Fail(error, FALSE);
  };
  ObjectRef target_process =
      ResolveForCall(hTargetProcessHandle, ObjectKind::kProcess,
                     "DuplicateHandle (the target process handle)", PROCESS_DUP_HANDLE,
                     "PROCESS_DUP_HANDLE");
  if (!target_process) return fail(GetLastError());
  ACCESS_MASK source_access;
  ObjectRef object = ResolveHandle(hSourceHandle, &source_access);
  if (!object) {
    ExplainInvalidHandle("DuplicateHandle", hSourceHandle);
    return Fail(ERROR_INVALID_HANDLE, FALSE);  // Nothing open to close.
  }
  ACCESS_MASK access = source_access;
  if ((dwOptions & DUPLICATE_SAME_ACCESS) == 0) {
    // A narrower mask narrows; a wider one is granted when the kind has the
    // rights (every object here grants its full access to the process).
    const DWORD error = GrantAccess(object->kind(), dwDesiredAccess, /*allow_none=*/true, &access);
    if (error != ERROR_SUCCESS) return fail(error);
  }
  if (lpTargetHandle == nullptr) {
    if (close_source) {
      CloseHandleEntry(hSourceHandle, call_site);
      return TRUE;
    }
    return Fail(ERROR_INVALID_PARAMETER, FALSE);
  }
  // The duplicate is made before the source closes (as Windows orders it), so
  // a named object moved to a new handle never loses its name in between.
  HANDLE duplicate = InsertHandle(object.release(), access);
  if (close_source) CloseHandleEntry(hSourceHandle, call_site);
  if (duplicate == nullptr) return Fail(ERROR_NO_SYSTEM_RESOURCES, FALSE);
  *lpTargetHandle = duplicate;
  return TRUE;
}

}  // extern "C"
