// Kernel objects: lifetime, names, and the per-thread kernel data.
#include <cstdio>
#include <map>

#include "base/check.h"
#include "kernel/handle_history.h"
#include "kernel/kernel.h"

namespace apartments::internal {
namespace {

std::atomic<std::uint64_t> g_next_serial{1};

// The process's named objects. Entries do not own their objects: an object
// removes its own entry when it is destroyed. Innermost lock.
std::mutex g_names_mu;
std::map<std::wstring, KernelObject*>& Names() {
  static auto* names = new std::map<std::wstring, KernelObject*>();
  return *names;
}

}  // namespace

KernelObject::KernelObject(ObjectKind kind, std::wstring name)
    : kind_(kind),
      name_(std::move(name)),
      serial_(g_next_serial.fetch_add(1, std::memory_order_relaxed)),
      creator_tid_(CurrentThreadId()) {}

KernelObject::~KernelObject() {
  APARTMENTS_CHECK(waiters_head == nullptr);
}

bool KernelObject::TryAddRef() noexcept {
  std::int32_t refs = refs_.load(std::memory_order_relaxed);
  while (refs > 0) {
    if (refs_.compare_exchange_weak(refs, refs + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

void KernelObject::ReleaseHandleRef() noexcept {
  if (name_.empty()) {
    handles_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  // Under the names lock, which CreateNamedObject/OpenNamedObject hold from
  // their lookup to their new handle: a name is never found for an object
  // whose last handle is closing, nor removed while a handle is being made.
  std::lock_guard lock(g_names_mu);
  if (handles_.fetch_sub(1, std::memory_order_relaxed) != 1) return;
  auto it = Names().find(name_);
  if (it != Names().end() && it->second == this) Names().erase(it);
}

void KernelObject::Release() noexcept {
  std::int32_t before = refs_.fetch_sub(1, std::memory_order_acq_rel);
  APARTMENTS_CHECK_VALUES(before > 0, "object reference count", before, serial_);
  if (before != 1) return;
  if (!name_.empty()) {
    std::lock_guard lock(g_names_mu);
    auto it = Names().find(name_);
    if (it != Names().end() && it->second == this) Names().erase(it);
  }
  delete this;
}

const char* ObjectKindName(ObjectKind kind) noexcept {
  switch (kind) {
    case ObjectKind::kEvent: return "event";
    case ObjectKind::kMutex: return "mutex";
    case ObjectKind::kSemaphore: return "semaphore";
    case ObjectKind::kThread: return "thread";
    case ObjectKind::kProcess: return "process";
  }
  return "object";
}

const char* BlockKindName(BlockKind kind) noexcept {
  switch (kind) {
    case BlockKind::kNone: return "running";
    case BlockKind::kKernelWait: return "waiting on kernel objects";
    case BlockKind::kSleep: return "sleeping";
    case BlockKind::kMessageIdle: return "idle, waiting for messages";
    case BlockKind::kSendMessage: return "waiting for a reply to a sent message";
    case BlockKind::kComCall: return "waiting for a cross-apartment call";
  }
  return "blocked";
}

namespace {

// What the generic rights mean for each kind (Windows' generic mappings of
// the Event, Mutant, Semaphore, Thread and Process object types).
struct GenericMapping {
  ACCESS_MASK read, write, execute, all;
};
GenericMapping MappingOf(ObjectKind kind) noexcept {
  switch (kind) {
    case ObjectKind::kEvent:
      return {STANDARD_RIGHTS_READ | EVENT_QUERY_STATE, STANDARD_RIGHTS_WRITE | EVENT_MODIFY_STATE,
              STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, EVENT_ALL_ACCESS};
    case ObjectKind::kMutex:
      return {STANDARD_RIGHTS_READ | MUTANT_QUERY_STATE, STANDARD_RIGHTS_WRITE,
              STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, MUTANT_ALL_ACCESS};
    case ObjectKind::kSemaphore:
      return {STANDARD_RIGHTS_READ | SEMAPHORE_QUERY_STATE,
              STANDARD_RIGHTS_WRITE | SEMAPHORE_MODIFY_STATE,
              STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, SEMAPHORE_ALL_ACCESS};
    case ObjectKind::kThread:
      return {STANDARD_RIGHTS_READ | THREAD_GET_CONTEXT | THREAD_QUERY_INFORMATION,
              STANDARD_RIGHTS_WRITE | THREAD_TERMINATE | THREAD_SUSPEND_RESUME |
                  THREAD_SET_INFORMATION | THREAD_SET_CONTEXT,
              STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, THREAD_ALL_ACCESS};
    case ObjectKind::kProcess:
      return {STANDARD_RIGHTS_READ | PROCESS_VM_READ | PROCESS_QUERY_INFORMATION,
              STANDARD_RIGHTS_WRITE | PROCESS_CREATE_THREAD | PROCESS_VM_OPERATION |
                  PROCESS_VM_WRITE | PROCESS_DUP_HANDLE | PROCESS_CREATE_PROCESS |
                  PROCESS_SET_QUOTA | PROCESS_SET_INFORMATION | PROCESS_SUSPEND_RESUME,
              STANDARD_RIGHTS_EXECUTE | SYNCHRONIZE, PROCESS_ALL_ACCESS};
  }
  return {0, 0, 0, 0};
}

}  // namespace

ACCESS_MASK AllAccess(ObjectKind kind) noexcept { return MappingOf(kind).all; }

DWORD GrantAccess(ObjectKind kind, ACCESS_MASK desired, bool allow_none,
                  ACCESS_MASK* granted) noexcept {
  // Only a privileged caller may ask for the right to a SACL.
  if ((desired & ACCESS_SYSTEM_SECURITY) != 0) return ERROR_PRIVILEGE_NOT_HELD;
  const GenericMapping m = MappingOf(kind);
  ACCESS_MASK mask = desired & ~(GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE | GENERIC_ALL |
                                 MAXIMUM_ALLOWED);
  if ((desired & GENERIC_READ) != 0) mask |= m.read;
  if ((desired & GENERIC_WRITE) != 0) mask |= m.write;
  if ((desired & GENERIC_EXECUTE) != 0) mask |= m.execute;
  if ((desired & (GENERIC_ALL | MAXIMUM_ALLOWED)) != 0) mask |= m.all;
  // Every object here grants its kind's full access to everyone in the
  // process (no security descriptors), so the check is whether the kind has
  // the rights at all; an access check for no right fails on Windows.
  if ((mask & ~m.all) != 0 || (mask == 0 && !allow_none)) return ERROR_ACCESS_DENIED;
  // Since Vista, the full query and set rights imply the limited ones.
  if (kind == ObjectKind::kThread) {
    if ((mask & THREAD_QUERY_INFORMATION) != 0) mask |= THREAD_QUERY_LIMITED_INFORMATION;
    if ((mask & THREAD_SET_INFORMATION) != 0) mask |= THREAD_SET_LIMITED_INFORMATION;
  } else if (kind == ObjectKind::kProcess) {
    if ((mask & PROCESS_QUERY_INFORMATION) != 0) mask |= PROCESS_QUERY_LIMITED_INFORMATION;
    if ((mask & PROCESS_SET_INFORMATION) != 0) mask |= PROCESS_SET_LIMITED_INFORMATION;
  }
  *granted = mask;
  return ERROR_SUCCESS;
}

// Creates a named or unnamed object; see CreateEventW for the contract.
// `make` constructs the new object. Sets the last error as Windows does.
HANDLE CreateNamedObject(LPCWSTR name, ObjectKind kind, KernelObject* (*make)(std::wstring, void*),
                         void* context, bool* created, ACCESS_MASK access) {
  *created = false;
  if (name == nullptr || name[0] == L'\0') {
    KernelObject* object = make(std::wstring(), context);
    *created = true;
    HANDLE h = InsertHandle(object, access);
    if (h == nullptr) SetLastError(ERROR_NO_SYSTEM_RESOURCES);
    else SetLastError(ERROR_SUCCESS);
    return h;
  }
  std::wstring key(name);
  KernelObject* object;
  bool existed = false;
  HANDLE h = nullptr;
  {
    // The handle is made under the names lock (see ReleaseHandleRef).
    std::lock_guard lock(g_names_mu);
    auto it = Names().find(key);
    if (it != Names().end() && it->second->TryAddRef()) {
      object = it->second;
      existed = true;
    } else {
      object = make(key, context);
      Names()[key] = object;
    }
    if (!existed || object->kind() == kind) {
      // An extra reference, so that InsertHandle failing (which releases the
      // reference it was given) never destroys the object under this lock.
      object->AddRef();
      h = InsertHandle(object, access);
      if (h == nullptr && !existed) Names().erase(key);
    }
  }
  if (existed && object->kind() != kind) {
    SetLastErrorExplanation(std::string("The name '") + WideToUtf8(key) + "' belongs to a " +
                            ObjectKindName(object->kind()) + ", not a " + ObjectKindName(kind) +
                            ": ERROR_INVALID_HANDLE.");
    object->Release();
    SetLastError(ERROR_INVALID_HANDLE);
    return nullptr;
  }
  object->Release();  // The extra reference.
  if (h == nullptr) {
    SetLastError(ERROR_NO_SYSTEM_RESOURCES);
    return nullptr;
  }
  *created = !existed;
  SetLastError(existed ? ERROR_ALREADY_EXISTS : ERROR_SUCCESS);
  return h;
}

HANDLE OpenNamedObject(LPCWSTR name, ObjectKind kind, ACCESS_MASK desired) {
  if (name == nullptr) {
    SetLastError(ERROR_INVALID_PARAMETER);
    return nullptr;
  }
  // Mapped first (it depends on the kind only), checked after the name: as on
  // Windows, a missing name is ERROR_FILE_NOT_FOUND whatever the access.
  ACCESS_MASK granted = 0;
  const DWORD access_error = GrantAccess(kind, desired, /*allow_none=*/false, &granted);
  KernelObject* object = nullptr;
  HANDLE h = nullptr;
  {
    // The handle is made under the names lock (see ReleaseHandleRef). The
    // object has an open handle, so InsertHandle failing cannot destroy it here.
    std::lock_guard lock(g_names_mu);
    auto it = Names().find(name);
    if (it != Names().end() && it->second->TryAddRef()) {
      object = it->second;
      if (object->kind() == kind && access_error == ERROR_SUCCESS) h = InsertHandle(object, granted);
    }
  }
  if (object == nullptr) {
    SetLastError(ERROR_FILE_NOT_FOUND);
    return nullptr;
  }
  if (object->kind() != kind) {
    SetLastErrorExplanation(std::string("The name '") + WideToUtf8(name) + "' belongs to a " +
                            ObjectKindName(object->kind()) + ", not a " + ObjectKindName(kind) +
                            ": ERROR_INVALID_HANDLE.");
    object->Release();
    SetLastError(ERROR_INVALID_HANDLE);
    return nullptr;
  }
  if (access_error != ERROR_SUCCESS) {
    char mask[16];
    std::snprintf(mask, sizeof mask, "0x%08X", static_cast<unsigned>(desired));
    SetLastErrorExplanation(
        std::string("The ") + ObjectKindName(kind) + " '" + WideToUtf8(name) + "' exists, but " +
        (access_error == ERROR_PRIVILEGE_NOT_HELD
             ? "ACCESS_SYSTEM_SECURITY needs a privilege no caller here holds"
             : desired == 0 ? "an open that asks for no access right is refused, as on Windows"
                            : "the access mask " + std::string(mask) + " asks for rights that " +
                                  ObjectKindName(kind) + " handles do not have") +
        (access_error == ERROR_PRIVILEGE_NOT_HELD ? ": ERROR_PRIVILEGE_NOT_HELD."
                                                  : ": ERROR_ACCESS_DENIED."));
    object->Release();
    SetLastError(access_error);
    return nullptr;
  }
  SetLastError(h == nullptr ? ERROR_NO_SYSTEM_RESOURCES : ERROR_SUCCESS);
  return h;
}

}  // namespace apartments::internal
