#include "com/com_thread.h"

#include <utility>

#include "base/check.h"
#include "base/thread_state.h"

namespace apartments::internal {
namespace {

constexpr int kComSlot = static_cast<int>(Layer::kCom);

// Runs on the exiting thread. Releasing the error info may run user code
// that calls SetErrorInfo again (re-filling the slot), so drain until empty
// before freeing the data.
void ComThreadExit(ThreadState& state) {
  auto* data = static_cast<ComThreadData*>(state.layer_data[kComSlot]);
  if (data == nullptr) return;
  // The apartment first: its teardown runs user code (shutdown callbacks,
  // Release of the filter) that may still use the thread's COM data.
  ApartmentThreadExit(*data);
  while (IErrorInfo* info = std::exchange(data->error_info, nullptr)) info->Release();
  state.layer_data[kComSlot] = nullptr;
  delete data;
}

void ComThreadExitStarting(ThreadState& state) {
  if (auto* data = static_cast<ComThreadData*>(state.layer_data[kComSlot])) {
    ApartmentThreadExitStarting(*data);
  }
}

void RegisterExitHookOnce() {
  // Registered lazily, on the first creation of any thread's data, so the
  // hook exists whenever data does (no dependence on static-initializer
  // order or on this object file being linked for another reason).
  static const bool registered = [] {
    SetThreadExitHook(Layer::kCom, &ComThreadExit);
    SetThreadExitStartingHook(Layer::kCom, &ComThreadExitStarting);
    return true;
  }();
  (void)registered;
}

}  // namespace

ComThreadData& CurrentComThreadData() {
  ThreadState& state = CurrentThreadState();
  auto* data = static_cast<ComThreadData*>(state.layer_data[kComSlot]);
  if (data != nullptr) return *data;
  RegisterExitHookOnce();
  data = new ComThreadData();
  state.layer_data[kComSlot] = data;
  return *data;
}

ComThreadData* ComThreadDataIfAny() noexcept {
  return static_cast<ComThreadData*>(CurrentThreadState().layer_data[kComSlot]);
}

IErrorInfo* ExchangeThreadErrorInfo(IErrorInfo* info) {
  if (info == nullptr) {
    ComThreadData* data = ComThreadDataIfAny();
    return data == nullptr ? nullptr : std::exchange(data->error_info, nullptr);
  }
  return std::exchange(CurrentComThreadData().error_info, info);
}

}  // namespace apartments::internal
