// libFuzzer target: the handle and wait API. Each input is a program of
// operations on a few handle slots (create, close, double close, duplicate
// with any options, waits of every shape with a zero timeout, signals, forged
// handle values). Every result must be one the header documents, a handle's
// state must follow from the operations (a closed handle stays closed), and
// at the end of each input, once its handles are closed, the process's open
// handle count is back where it started: no leak.
#include <cstdint>
#include <vector>

#include "apartments/win32.h"
#include "fuzz_util.h"
#include "kernel/kernel.h"

namespace {

using fuzz::Expect;
using fuzz::ExpectOneOf;

constexpr int kSlots = 8;

struct State {
  HANDLE slot[kSlots] = {};
  bool open[kSlots] = {};
  std::vector<HANDLE> closed;  // handles this input closed: they must stay invalid
};

// The two low bits of a handle value are tag bits every call ignores.
std::uintptr_t Untag(HANDLE h) { return reinterpret_cast<std::uintptr_t>(h) & ~std::uintptr_t{3}; }

// The open slot whose handle `h` names (tag bits ignored), or -1.
int SlotOf(const State& s, HANDLE h) {
  if (h == GetCurrentProcess() || h == GetCurrentThread()) return -1;
  for (int k = 0; k < kSlots; ++k) {
    if (s.open[k] && Untag(s.slot[k]) == Untag(h)) return k;
  }
  return -1;
}

HANDLE Pick(State& s, fuzz::Input& in) {
  std::uint8_t how = in.Byte();
  switch (how % 8) {
    case 0: {  // a handle this input closed
      if (!s.closed.empty()) return s.closed[in.Byte() % s.closed.size()];
      return nullptr;
    }
    case 1: return reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(in.U64()));  // forged
    case 2: return GetCurrentProcess();
    case 3: return nullptr;
    case 4: return reinterpret_cast<HANDLE>(reinterpret_cast<std::uintptr_t>(s.slot[how % kSlots]) | (how >> 6));
    default: return s.slot[how % kSlots];
  }
}

void Close(State& s, int i) {
  if (!s.open[i]) return;
  Expect(CloseHandle(s.slot[i]) == TRUE, "CloseHandle of an open handle failed");
  s.closed.push_back(s.slot[i]);
  s.open[i] = false;
}

DWORD LastError() { return GetLastError(); }

void RunOne(fuzz::Input& in, State& s) {
  const int i = in.Below(kSlots);
  switch (in.Below(14)) {
    case 0: {  // create something in slot i
      Close(s, i);
      HANDLE h = nullptr;
      switch (in.Below(3)) {
        case 0: h = CreateEventW(nullptr, in.Byte() & 1, in.Byte() & 1, nullptr); break;
        case 1: {
          LONG max = static_cast<LONG>(in.Byte() % 4);
          LONG initial = static_cast<LONG>(in.Byte() % 5);
          h = CreateSemaphoreW(nullptr, initial, max, nullptr);
          if (h == nullptr) {
            Expect(!(0 <= initial && initial <= max && max > 0), "CreateSemaphoreW failed for valid counts");
            ExpectOneOf<DWORD>("CreateSemaphoreW", LastError(), {ERROR_INVALID_PARAMETER});
          }
          break;
        }
        default: h = CreateMutexW(nullptr, in.Byte() & 1, nullptr); break;
      }
      if (h != nullptr) {
        s.slot[i] = h;
        s.open[i] = true;
      }
      break;
    }
    case 1: Close(s, i); break;
    case 2: {  // close anything: open slots succeed, the rest fail as documented
      HANDLE h = Pick(s, in);
      if (int k = SlotOf(s, h); k >= 0) {
        // Through the value given (tag bits and all): it names slot k.
        Expect(CloseHandle(h) == TRUE, "CloseHandle of an open handle (tagged) failed");
        s.closed.push_back(s.slot[k]);
        s.open[k] = false;
        return;
      }
      SetLastError(0);
      BOOL ok = CloseHandle(h);
      if (h == GetCurrentProcess() || h == GetCurrentThread()) {
        Expect(ok == TRUE, "CloseHandle of a pseudo-handle failed");
      } else if (!ok) {
        ExpectOneOf<DWORD>("CloseHandle", LastError(), {ERROR_INVALID_HANDLE});
      } else {
        // A forged value that happened to name a live handle is not ours to
        // close; the library's own handles must never be guessable that way
        // in a short input, so treat it as a failure of the check itself.
        fuzz::Fail("CloseHandle succeeded on a value this input never opened");
      }
      break;
    }
    case 3: {  // DuplicateHandle, any options
      HANDLE source = Pick(s, in);
      DWORD options = in.Byte() & 3;
      if (in.Byte() % 8 == 0) options |= in.U32();
      // Access: none, a random mask (rights the kind lacks, generic rights,
      // MAXIMUM_ALLOWED, ACCESS_SYSTEM_SECURITY), or all.
      DWORD access = 0;
      switch (in.Below(4)) {
        case 0: access = in.U32(); break;
        case 1: access = 0x1F0003; break;  // EVENT_ALL_ACCESS
        default: break;
      }
      HANDLE dup = nullptr;
      const bool null_target = in.Byte() % 8 == 0;
      const int source_slot = SlotOf(s, source);
      SetLastError(0);
      BOOL ok = DuplicateHandle(GetCurrentProcess(), source, GetCurrentProcess(), null_target ? nullptr : &dup,
                                access, FALSE, options);
      if (!ok) {
        ExpectOneOf<DWORD>("DuplicateHandle", LastError(),
                           {ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_NOT_SUPPORTED,
                            ERROR_ACCESS_DENIED, ERROR_PRIVILEGE_NOT_HELD});
        Expect(dup == nullptr, "failed DuplicateHandle left a handle");
      }
      if (source_slot >= 0 && (options & DUPLICATE_CLOSE_SOURCE)) {
        // The source is closed, whether or not the duplication succeeded
        // (the header's promise, as Windows documents).
        SetLastError(0);
        if (WaitForSingleObject(s.slot[source_slot], 0) != WAIT_FAILED || LastError() != ERROR_INVALID_HANDLE) {
          fuzz::Fail("DUPLICATE_CLOSE_SOURCE left the source open");
        }
        s.closed.push_back(s.slot[source_slot]);
        s.open[source_slot] = false;
      }
      if (ok && dup != nullptr) {
        // Keep the duplicate (it must be closed before the input ends).
        int k = in.Below(kSlots);
        Close(s, k);
        s.slot[k] = dup;
        s.open[k] = true;
      }
      break;
    }
    case 4: {  // WaitForSingleObject, zero timeout
      HANDLE h = Pick(s, in);
      SetLastError(0);
      DWORD r = WaitForSingleObject(h, 0);
      ExpectOneOf<DWORD>("WaitForSingleObject", r, {WAIT_OBJECT_0, WAIT_ABANDONED, WAIT_TIMEOUT, WAIT_FAILED});
      if (r == WAIT_FAILED) {
        ExpectOneOf<DWORD>("WaitForSingleObject error", LastError(), {ERROR_INVALID_HANDLE, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 5: {  // WaitForMultipleObjects(Ex), zero timeout, any count
      HANDLE handles[70];
      DWORD n = in.Byte() % 70;
      for (DWORD k = 0; k < n; ++k) handles[k] = Pick(s, in);
      const BOOL all = in.Byte() & 1;
      const bool null_array = in.Byte() % 16 == 0;
      SetLastError(0);
      DWORD r = WaitForMultipleObjectsEx(n, null_array ? nullptr : handles, all, 0, FALSE);
      if (r == WAIT_FAILED) {
        ExpectOneOf<DWORD>("WaitForMultipleObjects error", LastError(),
                           {ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_ACCESS_DENIED});
      } else if (r != WAIT_TIMEOUT) {
        Expect((r < WAIT_OBJECT_0 + n) || (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + n),
               "WaitForMultipleObjects: result out of range");
        Expect(n >= 1 && n <= MAXIMUM_WAIT_OBJECTS && !null_array, "WaitForMultipleObjects accepted bad arguments");
      }
      break;
    }
    case 6: {  // SetEvent / ResetEvent / PulseEvent on anything
      HANDLE h = Pick(s, in);
      SetLastError(0);
      BOOL ok = in.Byte() % 3 == 0 ? SetEvent(h) : in.Byte() % 2 ? ResetEvent(h) : PulseEvent(h);
      if (!ok) {
        ExpectOneOf<DWORD>("SetEvent/ResetEvent/PulseEvent", LastError(), {ERROR_INVALID_HANDLE, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 7: {  // ReleaseSemaphore, any count
      HANDLE h = Pick(s, in);
      LONG count = static_cast<LONG>(static_cast<std::int8_t>(in.Byte()));
      LONG previous = -12345;
      SetLastError(0);
      if (!ReleaseSemaphore(h, count, in.Byte() & 1 ? &previous : nullptr)) {
        ExpectOneOf<DWORD>("ReleaseSemaphore", LastError(),
                           {ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_TOO_MANY_POSTS, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 8: {  // ReleaseMutex
      HANDLE h = Pick(s, in);
      SetLastError(0);
      if (!ReleaseMutex(h)) {
        ExpectOneOf<DWORD>("ReleaseMutex", LastError(), {ERROR_INVALID_HANDLE, ERROR_NOT_OWNER, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 9: {  // SignalObjectAndWait, zero timeout
      HANDLE a = Pick(s, in), b = Pick(s, in);
      SetLastError(0);
      DWORD r = SignalObjectAndWait(a, b, 0, FALSE);
      ExpectOneOf<DWORD>("SignalObjectAndWait", r, {WAIT_OBJECT_0, WAIT_ABANDONED, WAIT_TIMEOUT, WAIT_FAILED});
      if (r == WAIT_FAILED) {
        ExpectOneOf<DWORD>("SignalObjectAndWait error", LastError(),
                           {ERROR_INVALID_HANDLE, ERROR_TOO_MANY_POSTS, ERROR_NOT_OWNER, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 10: {  // GetHandleInformation-like queries: the thread id of anything
      HANDLE h = Pick(s, in);
      SetLastError(0);
      if (GetThreadId(h) == 0) {
        ExpectOneOf<DWORD>("GetThreadId", LastError(), {ERROR_INVALID_HANDLE, ERROR_ACCESS_DENIED});
      }
      break;
    }
    case 11: {  // CoWaitForMultipleHandles outside any apartment (waits without pumping)
      HANDLE handles[4];
      ULONG n = in.Byte() % 5;
      for (ULONG k = 0; k < n; ++k) handles[k] = Pick(s, in);
      DWORD index = 0;
      DWORD flags = in.Byte() % 4 == 0 ? in.U32() : (in.Byte() & COWAIT_WAITALL);
      HRESULT hr = CoWaitForMultipleHandles(flags, 0, n, handles, &index);
      ExpectOneOf<HRESULT>("CoWaitForMultipleHandles", hr,
                           {S_OK, RPC_S_CALLPENDING, E_INVALIDARG, RPC_E_NO_SYNC,
                            HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE), E_ACCESSDENIED,
                            HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)});
      break;
    }
    case 12: {  // closed handles stay closed
      if (s.closed.empty()) break;
      HANDLE h = s.closed[in.Byte() % s.closed.size()];
      SetLastError(0);
      Expect(WaitForSingleObject(h, 0) == WAIT_FAILED && LastError() == ERROR_INVALID_HANDLE,
             "a closed handle became usable again");
      break;
    }
    default: {  // a thread-less process handle duplicate, and its close
      HANDLE process = nullptr;
      Expect(DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &process, 0, FALSE,
                             DUPLICATE_SAME_ACCESS) == TRUE,
             "duplicating the process pseudo-handle failed");
      Close(s, i);
      s.slot[i] = process;
      s.open[i] = true;
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::size_t before = apartments::internal::OpenHandleCountForTesting();
  fuzz::Input in(data, size);
  State s;
  for (int step = 0; step < 256 && !in.empty(); ++step) RunOne(in, s);
  for (int i = 0; i < kSlots; ++i) {
    // A mutex this thread owns is released before its handle goes (else it
    // would stay owned by the fuzzing thread forever: not a leak, but it
    // changes later inputs).
    if (s.open[i]) {
      while (ReleaseMutex(s.slot[i])) {
      }
    }
    Close(s, i);
  }
  if (apartments::internal::OpenHandleCountForTesting() != before) fuzz::Fail("handles leaked by this input");
  return 0;
}
