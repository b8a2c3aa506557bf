// Threads: CreateThread and the thread-handle functions.
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cwchar>

#include "base/check.h"
#include "kernel/futex.h"
#include "kernel/handle_history.h"
#include "kernel/kernel.h"

using namespace apartments::internal;

namespace {

struct StartBlock {
  Thread* thread;  // Holds a reference until the child adopts the object.
  LPTHREAD_START_ROUTINE routine;
  LPVOID parameter;
};

void* ThreadMain(void* argument) {
  auto* start = static_cast<StartBlock*>(argument);
  Thread* thread = start->thread;
  LPTHREAD_START_ROUTINE routine = start->routine;
  LPVOID parameter = start->parameter;
  delete start;

  AdoptThreadObject(thread);
  // Publish the tid: CreateThread waits for it so it can return it.
  thread->tid.store(GetCurrentThreadId(), std::memory_order_release);
  FutexWake(reinterpret_cast<std::atomic<std::uint32_t>*>(&thread->tid), 1);
  // CREATE_SUSPENDED: hold until ResumeThread brings the count to zero.
  for (std::uint32_t n; (n = thread->suspend_count.load(std::memory_order_acquire)) != 0;) {
    FutexWait(&thread->suspend_count, n, nullptr);
  }
  thread->Release();  // The start block's reference; the thread's own one remains.

  DWORD code = routine(parameter);
  CurrentKernelData().pending_exit_code = code;
  return nullptr;  // Thread exit hooks signal the handle.
}

// Resolves a thread handle for `function`, which needs the right `needed`
// (named `needed_name`); sets the last error and its explanation on failure.
ObjectRef ResolveThread(HANDLE handle, const char* function, ACCESS_MASK needed,
                        const char* needed_name) {
  return ResolveForCall(handle, ObjectKind::kThread, function, needed, needed_name);
}

void SetLinuxThreadName(DWORD tid, const std::wstring& description) {
  std::string name = WideToUtf8(description).substr(0, 15);
  if (tid == GetCurrentThreadId()) {
    pthread_setname_np(pthread_self(), name.c_str());
    return;
  }
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%u/comm", tid);
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;  // The thread may have exited meanwhile; the name is cosmetic.
  ssize_t ignored = ::write(fd, name.data(), name.size());
  (void)ignored;
  ::close(fd);
}

}  // namespace

extern "C" {

HANDLE WINAPI CreateThread(LPSECURITY_ATTRIBUTES, SIZE_T dwStackSize,
                           LPTHREAD_START_ROUTINE lpStartAddress, LPVOID lpParameter,
                           DWORD dwCreationFlags, LPDWORD lpThreadId) {
  if (lpStartAddress == nullptr ||
      (dwCreationFlags & ~(CREATE_SUSPENDED | STACK_SIZE_PARAM_IS_A_RESERVATION)) != 0) {
    SetLastError(ERROR_INVALID_PARAMETER);
    return nullptr;
  }
  auto* thread = new Thread();
  if ((dwCreationFlags & CREATE_SUSPENDED) != 0) thread->suspend_count.store(1);
  thread->AddRef();  // For the start block.
  HANDLE handle = InsertHandle(thread);  // Adopts the initial reference.
  if (handle == nullptr) {
    thread->Release();
    SetLastError(ERROR_NO_SYSTEM_RESOURCES);
    return nullptr;
  }

  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  if (dwStackSize != 0) {
    SIZE_T size = dwStackSize < static_cast<SIZE_T>(PTHREAD_STACK_MIN) ? static_cast<SIZE_T>(PTHREAD_STACK_MIN) : dwStackSize;
    auto page = static_cast<SIZE_T>(::sysconf(_SC_PAGESIZE));
    size = (size + page - 1) / page * page;
    pthread_attr_setstacksize(&attributes, size);
  }
  auto* start = new StartBlock{thread, lpStartAddress, lpParameter};
  pthread_t pthread;
  int rc = pthread_create(&pthread, &attributes, &ThreadMain, start);
  pthread_attr_destroy(&attributes);
  if (rc != 0) {
    delete start;
    thread->Release();
    CloseHandle(handle);
    SetLastError(ERROR_NOT_ENOUGH_MEMORY);
    return nullptr;
  }
  auto* tid_word = reinterpret_cast<std::atomic<std::uint32_t>*>(&thread->tid);
  while (tid_word->load(std::memory_order_acquire) == 0) FutexWait(tid_word, 0, nullptr);
  if (lpThreadId != nullptr) *lpThreadId = thread->tid.load(std::memory_order_relaxed);
  SetLastError(ERROR_SUCCESS);
  return handle;
}

DWORD WINAPI ResumeThread(HANDLE hThread) {
  ObjectRef ref = ResolveThread(hThread, "ResumeThread", THREAD_SUSPEND_RESUME,
                                "THREAD_SUSPEND_RESUME");
  if (!ref) return static_cast<DWORD>(-1);
  auto& thread = static_cast<Thread&>(*ref.get());
  std::uint32_t previous = thread.suspend_count.load(std::memory_order_acquire);
  while (previous != 0 && !thread.suspend_count.compare_exchange_weak(
                              previous, previous - 1, std::memory_order_acq_rel)) {
  }
  if (previous == 1) FutexWake(&thread.suspend_count, 1);
  return previous;
}

BOOL WINAPI GetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode) {
  ObjectRef ref = ResolveThread(hThread, "GetExitCodeThread", THREAD_QUERY_LIMITED_INFORMATION,
                                "THREAD_QUERY_LIMITED_INFORMATION");
  if (!ref) return FALSE;
  if (lpExitCode == nullptr) {
    SetLastError(ERROR_INVALID_PARAMETER);
    return FALSE;
  }
  auto& thread = static_cast<Thread&>(*ref.get());
  std::lock_guard lock(KernelLock());
  *lpExitCode = thread.exit_code;
  return TRUE;
}

VOID WINAPI ExitThread(DWORD dwExitCode) {
  CurrentKernelData().pending_exit_code = dwExitCode;
  // The layers above end what the thread serves before its frames unwind.
  RunThreadExitStartingHooks();
  pthread_exit(nullptr);
}

DWORD WINAPI GetThreadId(HANDLE Thread) {
  ObjectRef ref = ResolveThread(Thread, "GetThreadId", THREAD_QUERY_LIMITED_INFORMATION,
                                "THREAD_QUERY_LIMITED_INFORMATION");
  if (!ref) return 0;
  return static_cast<apartments::internal::Thread&>(*ref.get()).tid.load(std::memory_order_relaxed);
}

HRESULT WINAPI SetThreadDescription(HANDLE hThread, LPCWSTR lpThreadDescription) {
  if (lpThreadDescription == nullptr) return E_INVALIDARG;
  ObjectRef ref = ResolveThread(hThread, "SetThreadDescription", THREAD_SET_LIMITED_INFORMATION,
                                "THREAD_SET_LIMITED_INFORMATION");
  if (!ref) return HRESULT_FROM_WIN32(GetLastError());
  auto& thread = static_cast<Thread&>(*ref.get());
  std::wstring description(lpThreadDescription);
  DWORD tid;
  {
    std::lock_guard lock(KernelLock());
    if (thread.data == nullptr) {
      thread.final_description = description;
      return S_OK;
    }
    thread.data->state->SetDescription(description);
    tid = thread.data->tid;
  }
  SetLinuxThreadName(tid, description);
  return S_OK;
}

HRESULT WINAPI GetThreadDescription(HANDLE hThread, LPWSTR* ppszThreadDescription) {
  if (ppszThreadDescription == nullptr) return E_POINTER;
  *ppszThreadDescription = nullptr;
  ObjectRef ref = ResolveThread(hThread, "GetThreadDescription", THREAD_QUERY_LIMITED_INFORMATION,
                                "THREAD_QUERY_LIMITED_INFORMATION");
  if (!ref) return HRESULT_FROM_WIN32(GetLastError());
  auto& thread = static_cast<Thread&>(*ref.get());
  std::wstring description;
  {
    std::lock_guard lock(KernelLock());
    description = thread.data != nullptr ? thread.data->state->Description() : thread.final_description;
  }
  // Freed by the caller with LocalFree, which is free(3).
  auto* copy = static_cast<LPWSTR>(std::malloc((description.size() + 1) * sizeof(WCHAR)));
  if (copy == nullptr) return E_OUTOFMEMORY;
  std::wmemcpy(copy, description.c_str(), description.size() + 1);
  *ppszThreadDescription = copy;
  return S_OK;
}

}  // extern "C"
