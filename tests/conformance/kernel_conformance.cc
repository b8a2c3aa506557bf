// Kernel-object conformance: one Win32 program, built unchanged against
// <windows.h> (MinGW-w64, run under Wine) and against <apartments/win32.h>.
// It prints one line per observed behaviour; the test compares the native
// output with the output recorded under Wine (kernel_conformance.expected).
// Only values are printed, never handle values or thread ids.
#ifdef _WIN32
#include <windows.h>
#else
#include <apartments/win32.h>
#endif

#include <cstdio>

namespace {

void Print(const char* what, unsigned long value) { std::printf("%s: %lu\n", what, value); }

// The value and the last error it left, on one line: evaluates `value` first.
void PrintWithError(const char* what, unsigned long value) {
  std::printf("%s: %lu, last error %lu\n", what, value, static_cast<unsigned long>(GetLastError()));
}

HANDLE g_apc_thread_ready;
HANDLE g_apc_thread_go;
int g_apc_ran = 0;

VOID CALLBACK CountApc(ULONG_PTR amount) { g_apc_ran += static_cast<int>(amount); }

DWORD WINAPI AlertableSleeper(LPVOID) {
  SetEvent(g_apc_thread_ready);
  WaitForSingleObject(g_apc_thread_go, INFINITE);
  DWORD result = SleepEx(INFINITE, TRUE);
  return result == WAIT_IO_COMPLETION ? 100 + g_apc_ran : 1;
}

DWORD WINAPI HoldMutexAndExit(LPVOID mutex) {
  WaitForSingleObject(static_cast<HANDLE>(mutex), INFINITE);
  return 5;
}

DWORD WINAPI TryReleaseForeignMutex(LPVOID mutex) {
  BOOL released = ReleaseMutex(static_cast<HANDLE>(mutex));
  return released ? 0 : GetLastError();
}

DWORD WINAPI WaitThenReturn(LPVOID event) {
  WaitForSingleObject(static_cast<HANDLE>(event), INFINITE);
  return 42;
}

}  // namespace

int main() {
  // Events.
  HANDLE manual = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  Print("wait unsignaled manual event, 0 ms", WaitForSingleObject(manual, 0));
  Print("wait unsignaled manual event, 30 ms", WaitForSingleObject(manual, 30));
  SetEvent(manual);
  Print("wait signaled manual event", WaitForSingleObject(manual, 0));
  Print("wait signaled manual event again", WaitForSingleObject(manual, 0));
  ResetEvent(manual);
  Print("wait after ResetEvent", WaitForSingleObject(manual, 0));
  HANDLE automatic = CreateEventW(nullptr, FALSE, TRUE, nullptr);
  Print("wait auto event initially set", WaitForSingleObject(automatic, 0));
  Print("wait auto event after consumption", WaitForSingleObject(automatic, 0));
  PulseEvent(automatic);
  Print("wait auto event after PulseEvent with no waiter", WaitForSingleObject(automatic, 0));

  // Handles.
  HANDLE closed = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  Print("CloseHandle first", CloseHandle(closed));
  SetLastError(0);
  PrintWithError("CloseHandle second", CloseHandle(closed));
  SetLastError(0);
  PrintWithError("wait on closed handle", WaitForSingleObject(closed, 0));
  SetLastError(0);
  PrintWithError("SetEvent on closed handle", SetEvent(closed));
  SetLastError(0);
  PrintWithError("wait on NULL handle", WaitForSingleObject(nullptr, 0));
  SetLastError(0);
  PrintWithError("CloseHandle(NULL)", CloseHandle(nullptr));
  HANDLE duplicate = nullptr;
  Print("DuplicateHandle", DuplicateHandle(GetCurrentProcess(), manual, GetCurrentProcess(),
                                           &duplicate, 0, FALSE, DUPLICATE_SAME_ACCESS));
  SetEvent(duplicate);
  Print("wait original after SetEvent on duplicate", WaitForSingleObject(manual, 0));
  ResetEvent(manual);
  HANDLE both[2] = {manual, duplicate};
  SetLastError(0);
  PrintWithError("wait-all on the same object twice", WaitForMultipleObjects(2, both, TRUE, 0));
  SetEvent(manual);
  Print("wait-any on the same object twice", WaitForMultipleObjects(2, both, FALSE, 0));
  ResetEvent(manual);
  CloseHandle(duplicate);
  SetLastError(0);
  PrintWithError("wait on 0 handles", WaitForMultipleObjects(0, both, FALSE, 0));
  SetLastError(0);
  PrintWithError("wait on 65 handles", WaitForMultipleObjects(65, both, FALSE, 0));

  // Wait-any and wait-all.
  HANDLE e[3] = {CreateEventW(nullptr, TRUE, FALSE, nullptr), CreateEventW(nullptr, TRUE, TRUE, nullptr),
                 CreateEventW(nullptr, TRUE, TRUE, nullptr)};
  Print("wait-any returns lowest signaled index", WaitForMultipleObjects(3, e, FALSE, 0));
  Print("wait-all with one unsignaled", WaitForMultipleObjects(3, e, TRUE, 0));
  SetEvent(e[0]);
  Print("wait-all all signaled", WaitForMultipleObjects(3, e, TRUE, 0));
  HANDLE sem0 = CreateSemaphoreW(nullptr, 0, 1, nullptr);
  HANDLE auto_set = CreateEventW(nullptr, FALSE, TRUE, nullptr);
  HANDLE pair[2] = {auto_set, sem0};
  Print("wait-all event + empty semaphore", WaitForMultipleObjects(2, pair, TRUE, 0));
  Print("  event still signaled afterwards", WaitForSingleObject(auto_set, 0));
  for (HANDLE h : e) CloseHandle(h);

  // Semaphores.
  HANDLE sem = CreateSemaphoreW(nullptr, 1, 2, nullptr);
  LONG previous = -1;
  Print("ReleaseSemaphore within max", ReleaseSemaphore(sem, 1, &previous));
  Print("  previous count", static_cast<unsigned long>(previous));
  SetLastError(0);
  previous = -1;
  PrintWithError("ReleaseSemaphore past max", ReleaseSemaphore(sem, 1, &previous));
  Print("wait semaphore", WaitForSingleObject(sem, 0));
  Print("wait semaphore", WaitForSingleObject(sem, 0));
  Print("wait semaphore exhausted", WaitForSingleObject(sem, 0));
  SetLastError(0);
  PrintWithError("CreateSemaphore initial > max", CreateSemaphoreW(nullptr, 3, 2, nullptr) == nullptr);
  SetLastError(0);
  PrintWithError("ReleaseSemaphore by 0", ReleaseSemaphore(sem, 0, nullptr));

  // Mutexes.
  HANDLE mutex = CreateMutexW(nullptr, TRUE, nullptr);
  Print("wait owned mutex recursively", WaitForSingleObject(mutex, 0));
  Print("ReleaseMutex 1", ReleaseMutex(mutex));
  Print("ReleaseMutex 2", ReleaseMutex(mutex));
  SetLastError(0);
  PrintWithError("ReleaseMutex 3 (not owner any more)", ReleaseMutex(mutex));
  WaitForSingleObject(mutex, 0);
  HANDLE foreign = CreateThread(nullptr, 0, &TryReleaseForeignMutex, mutex, 0, nullptr);
  WaitForSingleObject(foreign, 10000);
  DWORD code = 0;
  GetExitCodeThread(foreign, &code);
  Print("ReleaseMutex from another thread: error", code);
  CloseHandle(foreign);
  ReleaseMutex(mutex);
  HANDLE leaker = CreateThread(nullptr, 0, &HoldMutexAndExit, mutex, 0, nullptr);
  Print("join mutex leaker", WaitForSingleObject(leaker, 10000));
  Print("wait abandoned mutex", WaitForSingleObject(mutex, 0));
  Print("wait it again (now owned)", WaitForSingleObject(mutex, 0));
  ReleaseMutex(mutex);
  ReleaseMutex(mutex);
  CloseHandle(leaker);
  HANDLE leaker2 = CreateThread(nullptr, 0, &HoldMutexAndExit, mutex, 0, nullptr);
  WaitForSingleObject(leaker2, 10000);
  HANDLE with_mutex[2] = {sem0, mutex};
  Print("wait-any reaching an abandoned mutex at index 1", WaitForMultipleObjects(2, with_mutex, FALSE, 0));
  ReleaseMutex(mutex);
  CloseHandle(leaker2);

  // Named objects.
  HANDLE named = CreateEventW(nullptr, TRUE, FALSE, L"apartments-conformance-event");
  Print("create named event: last error", GetLastError());
  HANDLE named2 = CreateEventW(nullptr, TRUE, FALSE, L"apartments-conformance-event");
  Print("create it again: last error", GetLastError());
  SetEvent(named2);
  Print("second handle reaches the same event", WaitForSingleObject(named, 0));
  HANDLE wrong_kind = CreateMutexW(nullptr, FALSE, L"apartments-conformance-event");
  PrintWithError("mutex with an event's name is NULL", wrong_kind == nullptr);
  HANDLE opened = OpenEventW(EVENT_ALL_ACCESS, FALSE, L"apartments-conformance-event");
  Print("OpenEventW finds it", opened != nullptr);
  SetLastError(0);
  PrintWithError("OpenEventW of a missing name is NULL", OpenEventW(EVENT_ALL_ACCESS, FALSE, L"apartments-conformance-missing") == nullptr);
  SetLastError(0);
  PrintWithError("OpenMutexW of an event's name is NULL", OpenMutexW(MUTEX_ALL_ACCESS, FALSE, L"apartments-conformance-event") == nullptr);
  CloseHandle(named);
  CloseHandle(named2);
  CloseHandle(opened);
  SetLastError(0);
  PrintWithError("name gone after the last close", OpenEventW(EVENT_ALL_ACCESS, FALSE, L"apartments-conformance-event") == nullptr);

  // Threads.
  HANDLE gate = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE worker = CreateThread(nullptr, 0, &WaitThenReturn, gate, 0, nullptr);
  GetExitCodeThread(worker, &code);
  Print("exit code while running", code);
  Print("wait running thread, 0 ms", WaitForSingleObject(worker, 0));
  SetEvent(gate);
  Print("join thread", WaitForSingleObject(worker, 10000));
  GetExitCodeThread(worker, &code);
  Print("exit code after return", code);
  CloseHandle(worker);
  HANDLE suspended = CreateThread(nullptr, 0, &WaitThenReturn, gate, CREATE_SUSPENDED, nullptr);
  Print("suspended thread not finished", WaitForSingleObject(suspended, 30));
  Print("ResumeThread previous count", ResumeThread(suspended));
  Print("join resumed thread", WaitForSingleObject(suspended, 10000));
  Print("ResumeThread on a finished thread", ResumeThread(suspended));
  CloseHandle(suspended);
  Print("wait on own thread pseudo-handle, 0 ms", WaitForSingleObject(GetCurrentThread(), 0));
  Print("CloseHandle on pseudo-handle", CloseHandle(GetCurrentThread()));

  // APCs and alertable waits.
  g_apc_thread_ready = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  g_apc_thread_go = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  HANDLE sleeper = CreateThread(nullptr, 0, &AlertableSleeper, nullptr, 0, nullptr);
  WaitForSingleObject(g_apc_thread_ready, 10000);
  Print("QueueUserAPC", QueueUserAPC(&CountApc, sleeper, 2) != 0);
  Print("QueueUserAPC", QueueUserAPC(&CountApc, sleeper, 3) != 0);
  SetEvent(g_apc_thread_go);
  Print("join alertable sleeper", WaitForSingleObject(sleeper, 10000));
  GetExitCodeThread(sleeper, &code);
  Print("sleeper saw WAIT_IO_COMPLETION after both APCs (100 + 5)", code);
  CloseHandle(sleeper);
  Print("QueueUserAPC to self", QueueUserAPC(&CountApc, GetCurrentThread(), 1) != 0);
  Print("non-alertable wait ignores the APC", WaitForSingleObject(manual, 0));
  Print("alertable SleepEx runs it", SleepEx(0, TRUE));
  Print("APC total", static_cast<unsigned long>(g_apc_ran));
  Print("SleepEx with nothing queued", SleepEx(0, TRUE));

  // SignalObjectAndWait.
  HANDLE to_signal = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  Print("SignalObjectAndWait on a signaled wait", SignalObjectAndWait(to_signal, to_signal, 0, FALSE));
  Print("SignalObjectAndWait timing out", SignalObjectAndWait(to_signal, sem0, 0, FALSE));
  Print("  event left signaled", WaitForSingleObject(to_signal, 0));

  // Tag bits: the two low bits of a handle value are ignored.
  HANDLE tagged_event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE tagged = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(tagged_event) | 3);
  PrintWithError("wait on a tagged handle", WaitForSingleObject(tagged, 0));
  Print("SetEvent on a tagged handle", SetEvent(tagged));
  Print("  seen through the untagged one", WaitForSingleObject(tagged_event, 0));
  HANDLE tagged_copy = nullptr;
  Print("DuplicateHandle of a tagged handle",
        DuplicateHandle(GetCurrentProcess(), tagged, GetCurrentProcess(), &tagged_copy, 0, FALSE,
                        DUPLICATE_SAME_ACCESS));
  Print("  the duplicate is untagged", (reinterpret_cast<ULONG_PTR>(tagged_copy) & 3) == 0);
  CloseHandle(tagged_copy);
  Print("CloseHandle of a tagged handle",
        CloseHandle(reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(tagged_event) | 1)));
  PrintWithError("  the untagged one is closed too", CloseHandle(tagged_event));

  // Access rights.
  HANDLE access_event = CreateEventW(nullptr, TRUE, FALSE, L"apartments-conformance-access");
  PrintWithError("OpenEventW with no access is NULL",
                 OpenEventW(0, FALSE, L"apartments-conformance-access") == nullptr);
  PrintWithError("OpenEventW with a right events lack is NULL",
                 OpenEventW(0x4, FALSE, L"apartments-conformance-access") == nullptr);
  HANDLE sync_only = OpenEventW(SYNCHRONIZE, FALSE, L"apartments-conformance-access");
  Print("OpenEventW(SYNCHRONIZE)", sync_only != nullptr);
  PrintWithError("  SetEvent without EVENT_MODIFY_STATE", SetEvent(sync_only));
  PrintWithError("  wait with SYNCHRONIZE", WaitForSingleObject(sync_only, 0));
  CloseHandle(sync_only);
  HANDLE write_only = OpenEventW(GENERIC_WRITE, FALSE, L"apartments-conformance-access");
  Print("OpenEventW(GENERIC_WRITE)", write_only != nullptr);
  Print("  SetEvent with GENERIC_WRITE", SetEvent(write_only));
  PrintWithError("  wait without SYNCHRONIZE", WaitForSingleObject(write_only, 0));
  PrintWithError("  wait-multiple without SYNCHRONIZE",
                 WaitForMultipleObjects(1, &write_only, FALSE, 0));
  CloseHandle(write_only);
  HANDLE narrowed = nullptr;
  Print("DuplicateHandle to SYNCHRONIZE",
        DuplicateHandle(GetCurrentProcess(), access_event, GetCurrentProcess(), &narrowed, SYNCHRONIZE,
                        FALSE, 0));
  PrintWithError("  ResetEvent on the narrowed duplicate", ResetEvent(narrowed));
  HANDLE same = nullptr;
  Print("  DUPLICATE_SAME_ACCESS of it",
        DuplicateHandle(GetCurrentProcess(), narrowed, GetCurrentProcess(), &same,
                        EVENT_ALL_ACCESS, FALSE, DUPLICATE_SAME_ACCESS));
  PrintWithError("  ResetEvent on that", ResetEvent(same));
  CloseHandle(same);
  CloseHandle(narrowed);
  HANDLE sem_sync = nullptr;
  DuplicateHandle(GetCurrentProcess(), sem, GetCurrentProcess(), &sem_sync, SYNCHRONIZE, FALSE, 0);
  PrintWithError("ReleaseSemaphore without SEMAPHORE_MODIFY_STATE", ReleaseSemaphore(sem_sync, 1, nullptr));
  CloseHandle(sem_sync);
  HANDLE owned = CreateMutexW(nullptr, TRUE, nullptr);
  HANDLE owned_sync = nullptr;
  DuplicateHandle(GetCurrentProcess(), owned, GetCurrentProcess(), &owned_sync, SYNCHRONIZE, FALSE, 0);
  PrintWithError("ReleaseMutex with SYNCHRONIZE only", ReleaseMutex(owned_sync));
  CloseHandle(owned_sync);
  CloseHandle(owned);
  HANDLE ex_event = CreateEventExW(nullptr, nullptr, 0, SYNCHRONIZE);
  Print("CreateEventExW(SYNCHRONIZE)", ex_event != nullptr);
  PrintWithError("  SetEvent on it", SetEvent(ex_event));
  CloseHandle(ex_event);
  HANDLE thread_sync = nullptr;
  DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &thread_sync,
                  SYNCHRONIZE, FALSE, 0);
  PrintWithError("wait on a SYNCHRONIZE thread handle", WaitForSingleObject(thread_sync, 0));
  PrintWithError("GetThreadId without THREAD_QUERY_LIMITED_INFORMATION",
                 GetThreadId(thread_sync));
  PrintWithError("QueueUserAPC without THREAD_SET_CONTEXT",
                 QueueUserAPC(&CountApc, thread_sync, 1));
  CloseHandle(thread_sync);
  HANDLE thread_query = nullptr;
  DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &thread_query,
                  THREAD_QUERY_INFORMATION, FALSE, 0);
  Print("GetThreadId with THREAD_QUERY_INFORMATION",
        GetThreadId(thread_query) == GetCurrentThreadId());
  PrintWithError("wait on a THREAD_QUERY_INFORMATION thread handle",
                 WaitForSingleObject(thread_query, 0));

  // SignalObjectAndWait with an object that cannot be signaled.
  PrintWithError("SignalObjectAndWait signaling a thread",
                 SignalObjectAndWait(thread_query, access_event, 0, FALSE));
  CloseHandle(thread_query);

  // DuplicateHandle: unknown options are ignored; DUPLICATE_CLOSE_SOURCE
  // closes the source even when the duplication fails.
  HANDLE source = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE moved = nullptr;
  Print("DuplicateHandle with an unknown option",
        DuplicateHandle(GetCurrentProcess(), source, GetCurrentProcess(), &moved, 0, FALSE,
                        DUPLICATE_SAME_ACCESS | 0x100));
  CloseHandle(moved);
  PrintWithError("DuplicateHandle to a bad process, closing the source",
                 DuplicateHandle(GetCurrentProcess(), source, nullptr, &moved, 0, FALSE,
                                 DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
  PrintWithError("  the source is closed", CloseHandle(source));
  CloseHandle(access_event);

  CloseHandle(manual);
  CloseHandle(automatic);
  CloseHandle(sem0);
  CloseHandle(auto_set);
  CloseHandle(sem);
  CloseHandle(mutex);
  CloseHandle(gate);
  CloseHandle(g_apc_thread_ready);
  CloseHandle(g_apc_thread_go);
  CloseHandle(to_signal);
  std::printf("done\n");
  return 0;
}
