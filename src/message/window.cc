// The window table, window classes, and the Win32 window functions.
#include "message/window.h"

#include <unistd.h>

#include <atomic>
#include <cwctype>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apartments/win32_errors.h"
#include "apartments/win32_kernel.h"
#include "base/activity.h"
#include "base/thread_state.h"
#include "message/queue.h"

namespace apartments::internal {
namespace {

struct WindowClass {
  std::wstring name;
  std::wstring folded;  // Lower case, for case-insensitive lookups.
  ATOM atom = 0;
  WNDPROC proc = nullptr;
  UINT style = 0;
  HINSTANCE hinstance = nullptr;
  int windows = 0;
};

// A slot's identity and the fields the call path reads are atomics, read
// without the lock as a seqlock keyed by `live_hwnd` (ReadSlot): the HWND the
// slot currently is, 0 while free. Everything else is guarded by
// g_window_mu, as are all writes.
struct WindowSlot {
  std::atomic<std::uintptr_t> live_hwnd{0};
  std::atomic<DWORD> owner_tid{0};
  std::atomic<MessageQueue*> queue{nullptr};
  std::atomic<std::uint64_t> incarnation{0};
  std::atomic<WNDPROC> proc{nullptr};
  // Guarded by g_window_mu.
  std::uint16_t generation = 1;
  bool destroying = false;
  WindowClass* window_class = nullptr;
  LONG_PTR userdata = 0;
  LONG_PTR id = 0;
  HINSTANCE hinstance = nullptr;
};

constexpr std::uint32_t kMaxWindows = 0xFFFF;
// Reuse a freed slot only once this many are free, so a destroyed HWND stays
// invalid for a long time (a slot's generation wraps after 32,767 reuses).
constexpr std::size_t kReuseAfterFree = 1024;

// Slots live in chunks that are allocated on demand and never freed or moved,
// so a reader without the lock may index them: chunk pointers are published
// (release) before g_slot_count covers them.
constexpr std::uint32_t kChunkBits = 8;
constexpr std::uint32_t kChunkSize = 1u << kChunkBits;
std::atomic<WindowSlot*> g_chunks[(kMaxWindows >> kChunkBits) + 1];
std::atomic<std::uint32_t> g_slot_count{1};  // Index 0 is never used.

std::mutex g_window_mu;
// Everything below is guarded by g_window_mu.
std::deque<std::uint32_t>& FreeSlots() {
  static auto* free_slots = new std::deque<std::uint32_t>();
  return *free_slots;
}
std::vector<std::unique_ptr<WindowClass>>& Classes() {
  static auto* classes = new std::vector<std::unique_ptr<WindowClass>>();
  return *classes;
}
// Class atoms, 0xC000..0xFFFF as Windows' string atoms: an unregistered
// class's atom is free again (Windows deletes it from the atom table), so
// registering and unregistering classes forever never runs out.
constexpr ATOM kFirstClassAtom = 0xC000;
constexpr std::size_t kClassAtoms = 0x10000 - kFirstClassAtom;
std::vector<bool>& AtomsInUse() {
  static auto* in_use = new std::vector<bool>(kClassAtoms, false);
  return *in_use;
}
std::size_t g_next_atom_index = 0;  // Where the search for a free atom starts.

// A free atom, marked in use; 0 when all are taken. Lock held.
ATOM AllocateAtomLocked() {
  auto& in_use = AtomsInUse();
  for (std::size_t n = 0; n < kClassAtoms; ++n) {
    const std::size_t i = (g_next_atom_index + n) % kClassAtoms;
    if (in_use[i]) continue;
    in_use[i] = true;
    g_next_atom_index = (i + 1) % kClassAtoms;
    return static_cast<ATOM>(kFirstClassAtom + i);
  }
  return 0;
}

void FreeAtomLocked(ATOM atom) { AtomsInUse()[atom - kFirstClassAtom] = false; }

HWND MakeHwnd(std::uint32_t index, std::uint16_t generation) {
  return reinterpret_cast<HWND>(static_cast<std::uintptr_t>((std::uint32_t{generation} << 16) | index));
}

// The slot `hwnd` would name (live or not), or null when it names none.
// Any thread.
WindowSlot* SlotOf(HWND hwnd) noexcept {
  auto value = reinterpret_cast<std::uintptr_t>(hwnd);
  if (value > 0xFFFFFFFFu) return nullptr;
  auto index = static_cast<std::uint32_t>(value & 0xFFFF);
  if (index == 0 || (value >> 16) == 0) return nullptr;
  if (index >= g_slot_count.load(std::memory_order_acquire)) return nullptr;
  return &g_chunks[index >> kChunkBits].load(std::memory_order_relaxed)[index & (kChunkSize - 1)];
}

// The live slot named by `hwnd`, or null. Lock held.
WindowSlot* FindSlotLocked(HWND hwnd) {
  WindowSlot* slot = SlotOf(hwnd);
  if (slot == nullptr ||
      slot->live_hwnd.load(std::memory_order_relaxed) != reinterpret_cast<std::uintptr_t>(hwnd)) {
    return nullptr;
  }
  return slot;
}

// Reads the call path's fields of the live window `hwnd` without the lock;
// false when `hwnd` is not a live window. A seqlock keyed by the HWND itself:
// a slot is written only while it is not live (before CreateWindowExW
// publishes it, after DestroyWindow unpublishes it) except `proc`, a single
// word. So fields read between two loads of `live_hwnd` that both show
// `hwnd` belong to that window: a free (or a reuse, which has another
// generation, so another HWND) in between changes the second load.
bool ReadSlot(HWND hwnd, WindowInfo* info, WNDPROC* proc) noexcept {
  const WindowSlot* slot = SlotOf(hwnd);
  if (slot == nullptr) return false;
  const auto key = reinterpret_cast<std::uintptr_t>(hwnd);
  if (slot->live_hwnd.load(std::memory_order_acquire) != key) return false;
  info->owner_tid = slot->owner_tid.load(kSeqlockField);
  info->queue = slot->queue.load(kSeqlockField);
  info->incarnation = slot->incarnation.load(kSeqlockField);
  if (proc != nullptr) *proc = slot->proc.load(kSeqlockField);
  SeqlockFence(std::memory_order_acquire);
  return slot->live_hwnd.load(kSeqlockField) == key;
}

void FreeSlotLocked(std::uint32_t index) {
  WindowSlot& slot = *SlotOf(reinterpret_cast<HWND>(std::uintptr_t{1} << 16 | index));
  // Unpublish first, then clear (see ReadSlot).
  slot.live_hwnd.store(0, kSeqlockField);
  SeqlockFence(std::memory_order_release);
  slot.destroying = false;
  if (slot.window_class != nullptr) --slot.window_class->windows;
  slot.window_class = nullptr;
  slot.queue.store(nullptr, kSeqlockField);
  slot.proc.store(nullptr, kSeqlockField);
  slot.userdata = 0;
  // Generations stay below 0x8000 so that an HWND is below 2^31: zero- and
  // sign-extending its 32-bit value (ULongToHandle, LongToHandle) agree.
  slot.generation = static_cast<std::uint16_t>((slot.generation + 1) & 0x7FFF);
  if (slot.generation == 0) slot.generation = 1;
  FreeSlots().push_back(index);
}

std::uint32_t IndexOf(HWND hwnd) {
  return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(hwnd) & 0xFFFF);
}

std::wstring Fold(const std::wstring& name) {
  std::wstring folded = name;
  for (auto& c : folded) c = static_cast<wchar_t>(std::towlower(static_cast<wint_t>(c)));
  return folded;
}

bool IsAtom(LPCWSTR name) { return reinterpret_cast<std::uintptr_t>(name) <= 0xFFFF; }

// The class named by a string or an atom. Lock held.
WindowClass* FindClassLocked(LPCWSTR name, std::size_t* position) {
  auto& classes = Classes();
  if (IsAtom(name)) {
    auto atom = static_cast<ATOM>(reinterpret_cast<std::uintptr_t>(name));
    for (std::size_t i = 0; i < classes.size(); ++i) {
      if (classes[i]->atom == atom) {
        if (position != nullptr) *position = i;
        return classes[i].get();
      }
    }
    return nullptr;
  }
  std::wstring folded = Fold(name);
  for (std::size_t i = 0; i < classes.size(); ++i) {
    if (classes[i]->folded == folded) {
      if (position != nullptr) *position = i;
      return classes[i].get();
    }
  }
  return nullptr;
}

template <typename T>
T Fail(DWORD error, T value) {
  SetLastError(error);
  return value;
}

ATOM Register(UINT style, WNDPROC proc, int cls_extra, int wnd_extra, HINSTANCE hinstance,
              LPCWSTR class_name) {
  if (proc == nullptr || class_name == nullptr || IsAtom(class_name) || cls_extra < 0 ||
      wnd_extra < 0) {
    return Fail<ATOM>(ERROR_INVALID_PARAMETER, 0);
  }
  std::lock_guard lock(g_window_mu);
  if (FindClassLocked(class_name, nullptr) != nullptr) {
    return Fail<ATOM>(ERROR_CLASS_ALREADY_EXISTS, 0);
  }
  const ATOM new_atom = AllocateAtomLocked();
  if (new_atom == 0) return Fail<ATOM>(ERROR_NOT_ENOUGH_MEMORY, 0);
  auto window_class = std::make_unique<WindowClass>();
  window_class->name = class_name;
  window_class->folded = Fold(window_class->name);
  window_class->atom = new_atom;
  window_class->proc = proc;
  window_class->style = style;
  window_class->hinstance = hinstance;
  ATOM atom = window_class->atom;
  Classes().push_back(std::move(window_class));
  return atom;
}

}  // namespace

bool LookupWindow(HWND hwnd, WindowInfo* info) { return ReadSlot(hwnd, info, nullptr); }

bool IsLiveWindow(HWND hwnd) {
  const WindowSlot* slot = SlotOf(hwnd);
  return slot != nullptr &&
         slot->live_hwnd.load(std::memory_order_acquire) == reinterpret_cast<std::uintptr_t>(hwnd);
}

DWORD CallOwnWindowProc(HWND hwnd, UINT message, WPARAM wparam, LPARAM lparam,
                        LRESULT* result) {
  WindowInfo info;
  WNDPROC proc;
  if (!ReadSlot(hwnd, &info, &proc)) return ERROR_INVALID_WINDOW_HANDLE;
  if (info.owner_tid != CurrentThreadId()) return ERROR_MESSAGE_SYNC_ONLY;
  ScopedDispatch dispatch(CurrentThreadState().activity, hwnd, message, nullptr);
  *result = proc(hwnd, message, wparam, lparam);
  return ERROR_SUCCESS;
}

void DestroyWindowsOfThread(DWORD tid) {
  std::lock_guard lock(g_window_mu);
  const std::uint32_t count = g_slot_count.load(std::memory_order_relaxed);
  for (std::uint32_t i = 1; i < count; ++i) {
    WindowSlot& slot = g_chunks[i >> kChunkBits].load(std::memory_order_relaxed)[i & (kChunkSize - 1)];
    if (slot.live_hwnd.load(std::memory_order_relaxed) != 0 &&
        slot.owner_tid.load(std::memory_order_relaxed) == tid) {
      FreeSlotLocked(i);
    }
  }
}

}  // namespace apartments::internal

using namespace apartments::internal;

extern "C" {

ATOM WINAPI RegisterClassW(const WNDCLASSW* lpWndClass) {
  if (lpWndClass == nullptr) return Fail<ATOM>(ERROR_INVALID_PARAMETER, 0);
  return Register(lpWndClass->style, lpWndClass->lpfnWndProc, lpWndClass->cbClsExtra,
                  lpWndClass->cbWndExtra, lpWndClass->hInstance, lpWndClass->lpszClassName);
}

ATOM WINAPI RegisterClassExW(const WNDCLASSEXW* lpWndClass) {
  if (lpWndClass == nullptr || lpWndClass->cbSize != sizeof(WNDCLASSEXW)) {
    return Fail<ATOM>(ERROR_INVALID_PARAMETER, 0);
  }
  return Register(lpWndClass->style, lpWndClass->lpfnWndProc, lpWndClass->cbClsExtra,
                  lpWndClass->cbWndExtra, lpWndClass->hInstance, lpWndClass->lpszClassName);
}

BOOL WINAPI UnregisterClassW(LPCWSTR lpClassName, HINSTANCE) {
  if (lpClassName == nullptr) return Fail(ERROR_CLASS_DOES_NOT_EXIST, FALSE);
  std::lock_guard lock(g_window_mu);
  std::size_t position = 0;
  WindowClass* window_class = FindClassLocked(lpClassName, &position);
  if (window_class == nullptr) return Fail(ERROR_CLASS_DOES_NOT_EXIST, FALSE);
  if (window_class->windows > 0) return Fail(ERROR_CLASS_HAS_WINDOWS, FALSE);
  FreeAtomLocked(window_class->atom);
  auto& classes = Classes();
  classes.erase(classes.begin() + static_cast<std::ptrdiff_t>(position));
  return TRUE;
}

HWND WINAPI CreateWindowExW(DWORD dwExStyle, LPCWSTR lpClassName, LPCWSTR lpWindowName,
                            DWORD dwStyle, int X, int Y, int nWidth, int nHeight,
                            HWND hWndParent, HMENU hMenu, HINSTANCE hInstance, LPVOID lpParam) {
  MessageQueue& queue = CurrentQueue();
  if (hWndParent != nullptr && hWndParent != HWND_MESSAGE) {
    return Fail<HWND>(IsLiveWindow(hWndParent) ? ERROR_NOT_SUPPORTED : ERROR_INVALID_WINDOW_HANDLE,
                      nullptr);
  }
  if (lpClassName == nullptr) return Fail<HWND>(ERROR_CANNOT_FIND_WND_CLASS, nullptr);
  HWND hwnd;
  {
    std::lock_guard lock(g_window_mu);
    WindowClass* window_class = FindClassLocked(lpClassName, nullptr);
    if (window_class == nullptr) return Fail<HWND>(ERROR_CANNOT_FIND_WND_CLASS, nullptr);
    auto& free_slots = FreeSlots();
    const std::uint32_t count = g_slot_count.load(std::memory_order_relaxed);
    std::uint32_t index;
    if (free_slots.size() > kReuseAfterFree || (count > kMaxWindows && !free_slots.empty())) {
      index = free_slots.front();
      free_slots.pop_front();
    } else if (count <= kMaxWindows) {
      index = count;
      std::atomic<WindowSlot*>& chunk = g_chunks[index >> kChunkBits];
      if (chunk.load(std::memory_order_relaxed) == nullptr) {
        chunk.store(new WindowSlot[kChunkSize], std::memory_order_relaxed);  // Never freed.
      }
      // Release: a reader that sees the new count also sees the chunk.
      g_slot_count.store(count + 1, std::memory_order_release);
    } else {
      return Fail<HWND>(ERROR_NOT_ENOUGH_MEMORY, nullptr);
    }
    WindowSlot& slot = *SlotOf(MakeHwnd(index, 1));
    slot.destroying = false;
    slot.owner_tid.store(queue.tid(), kSeqlockField);
    slot.queue.store(&queue, kSeqlockField);
    slot.incarnation.store(queue.incarnation(), kSeqlockField);
    slot.window_class = window_class;
    slot.proc.store(window_class->proc, kSeqlockField);
    slot.userdata = 0;
    slot.id = reinterpret_cast<LONG_PTR>(hMenu);
    slot.hinstance = hInstance;
    ++window_class->windows;
    hwnd = MakeHwnd(index, slot.generation);
    // Publish (see ReadSlot): the fields above are visible to a reader that
    // sees the slot live.
    slot.live_hwnd.store(reinterpret_cast<std::uintptr_t>(hwnd), std::memory_order_release);
  }
  CREATESTRUCTW create{lpParam, hInstance, hMenu,   hWndParent,   nHeight,    nWidth,
                       Y,       X,         static_cast<LONG>(dwStyle), lpWindowName, lpClassName,
                       dwExStyle};
  LRESULT result = 0;
  if (CallOwnWindowProc(hwnd, WM_NCCREATE, 0, reinterpret_cast<LPARAM>(&create), &result) !=
          ERROR_SUCCESS ||
      result == 0) {
    std::lock_guard lock(g_window_mu);
    if (FindSlotLocked(hwnd) != nullptr) FreeSlotLocked(IndexOf(hwnd));
    return nullptr;
  }
  if (CallOwnWindowProc(hwnd, WM_CREATE, 0, reinterpret_cast<LPARAM>(&create), &result) !=
          ERROR_SUCCESS ||
      result == -1) {
    if (IsLiveWindow(hwnd)) DestroyWindow(hwnd);
    return nullptr;
  }
  return hwnd;
}

BOOL WINAPI DestroyWindow(HWND hWnd) {
  {
    std::lock_guard lock(g_window_mu);
    WindowSlot* slot = FindSlotLocked(hWnd);
    if (slot == nullptr) return Fail(ERROR_INVALID_WINDOW_HANDLE, FALSE);
    if (slot->owner_tid.load(std::memory_order_relaxed) != CurrentThreadId()) {
      return Fail(ERROR_ACCESS_DENIED, FALSE);
    }
    if (slot->destroying) return TRUE;  // Called again from WM_DESTROY: already on its way.
    slot->destroying = true;
  }
  LRESULT ignored;
  CallOwnWindowProc(hWnd, WM_DESTROY, 0, 0, &ignored);
  CallOwnWindowProc(hWnd, WM_NCDESTROY, 0, 0, &ignored);
  std::lock_guard lock(g_window_mu);
  if (FindSlotLocked(hWnd) != nullptr) FreeSlotLocked(IndexOf(hWnd));
  return TRUE;
}

LRESULT WINAPI DefWindowProcW(HWND hWnd, UINT Msg, WPARAM, LPARAM) {
  switch (Msg) {
    case WM_NCCREATE:
      return TRUE;
    case WM_CLOSE:
      DestroyWindow(hWnd);
      return 0;
    default:
      return 0;
  }
}

DWORD WINAPI GetWindowThreadProcessId(HWND hWnd, LPDWORD lpdwProcessId) {
  WindowInfo info;
  if (!LookupWindow(hWnd, &info)) return Fail<DWORD>(ERROR_INVALID_WINDOW_HANDLE, 0);
  if (lpdwProcessId != nullptr) *lpdwProcessId = static_cast<DWORD>(::getpid());
  return info.owner_tid;
}

BOOL WINAPI IsWindow(HWND hWnd) { return IsLiveWindow(hWnd) ? TRUE : FALSE; }

LONG_PTR WINAPI SetWindowLongPtrW(HWND hWnd, int nIndex, LONG_PTR dwNewLong) {
  std::lock_guard lock(g_window_mu);
  WindowSlot* slot = FindSlotLocked(hWnd);
  if (slot == nullptr) return Fail<LONG_PTR>(ERROR_INVALID_WINDOW_HANDLE, 0);
  LONG_PTR previous;
  switch (nIndex) {
    case GWLP_USERDATA:
      previous = slot->userdata;
      slot->userdata = dwNewLong;
      return previous;
    case GWLP_WNDPROC:
      if (dwNewLong == 0) return Fail<LONG_PTR>(ERROR_INVALID_PARAMETER, 0);
      previous = reinterpret_cast<LONG_PTR>(slot->proc.load(std::memory_order_relaxed));
      slot->proc.store(reinterpret_cast<WNDPROC>(dwNewLong), kSeqlockField);
      return previous;
    case GWLP_ID:
      previous = slot->id;
      slot->id = dwNewLong;
      return previous;
    case GWLP_HINSTANCE:
      previous = reinterpret_cast<LONG_PTR>(slot->hinstance);
      slot->hinstance = reinterpret_cast<HINSTANCE>(dwNewLong);
      return previous;
    default:
      return Fail<LONG_PTR>(ERROR_INVALID_INDEX, 0);
  }
}

LONG_PTR WINAPI GetWindowLongPtrW(HWND hWnd, int nIndex) {
  std::lock_guard lock(g_window_mu);
  WindowSlot* slot = FindSlotLocked(hWnd);
  if (slot == nullptr) return Fail<LONG_PTR>(ERROR_INVALID_WINDOW_HANDLE, 0);
  switch (nIndex) {
    case GWLP_USERDATA: return slot->userdata;
    case GWLP_WNDPROC: return reinterpret_cast<LONG_PTR>(slot->proc.load(std::memory_order_relaxed));
    case GWLP_ID: return slot->id;
    case GWLP_HINSTANCE: return reinterpret_cast<LONG_PTR>(slot->hinstance);
    case GWLP_HWNDPARENT: return 0;
    default: return Fail<LONG_PTR>(ERROR_INVALID_INDEX, 0);
  }
}

}  // extern "C"
