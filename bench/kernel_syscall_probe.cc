// Runs the event fast paths a million times each, so that `strace -c -f`
// (or `perf stat -e raw_syscalls:sys_enter`) shows they make no system call:
// the counts must not grow with the number of iterations.
//
// Usage: kernel_syscall_probe [iterations]
#include <cstdio>
#include <cstdlib>

#include "apartments/win32.h"

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 1000000;
  HANDLE manual = CreateEventW(nullptr, TRUE, TRUE, nullptr);
  HANDLE automatic = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  long ok = 0;
  for (long i = 0; i < iterations; ++i) {
    ok += WaitForSingleObject(manual, INFINITE) == WAIT_OBJECT_0;  // Signaled: no syscall.
    ok += SetEvent(automatic) != FALSE;                             // No waiter: no syscall.
    ok += WaitForSingleObject(automatic, 0) == WAIT_OBJECT_0;       // Consume: no syscall.
  }
  CloseHandle(manual);
  CloseHandle(automatic);
  std::printf("%ld of %ld operations succeeded\n", ok, iterations * 3);
  return ok == iterations * 3 ? 0 : 1;
}
