// Kernel objects: lifetime, names, and the per-thread kernel data.
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

// Creates a named or unnamed object; see CreateEventW for the contract.
// `make` constructs the new object. Sets the last error as Windows does.
HANDLE CreateNamedObject(LPCWSTR name, ObjectKind kind, KernelObject* (*make)(std::wstring, void*),
                         void* context, bool* created) {
  *created = false;
  if (name == nullptr || name[0] == L'\0') {
    KernelObject* object = make(std::wstring(), context);
    *created = true;
    HANDLE h = InsertHandle(object);
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
      h = InsertHandle(object);
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

HANDLE OpenNamedObject(LPCWSTR name, ObjectKind kind) {
  if (name == nullptr) {
    SetLastError(ERROR_INVALID_PARAMETER);
    return nullptr;
  }
  KernelObject* object = nullptr;
  HANDLE h = nullptr;
  {
    // The handle is made under the names lock (see ReleaseHandleRef). The
    // object has an open handle, so InsertHandle failing cannot destroy it here.
    std::lock_guard lock(g_names_mu);
    auto it = Names().find(name);
    if (it != Names().end() && it->second->TryAddRef()) {
      object = it->second;
      if (object->kind() == kind) h = InsertHandle(object);
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
  SetLastError(h == nullptr ? ERROR_NO_SYSTEM_RESOURCES : ERROR_SUCCESS);
  return h;
}

}  // namespace apartments::internal
