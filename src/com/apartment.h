// The seam between the apartment/channel half of the COM core and the
// marshaling/proxy half. Owned by the apartment half (apartment.cc,
// channel.cc); the marshaling half (stub manager, proxies, the global
// interface table) uses only what is declared here.
//
// Lifecycle of an apartment:
//   kRunning  --(last CoUninitialize on an STA / last MTA user leaves)--> kShuttingDown
//   kShuttingDown: new calls into it fail with RPC_E_DISCONNECTED; shutdown
//     callbacks run (on the STA's own thread; for the MTA on the thread that
//     ended it); calls still queued fail with RPC_E_DISCONNECTED.
//   kShuttingDown --> kGone: IsShutDown() is true; the object lives on while
//     referenced (proxies keep an ApartmentRef to report "which apartment went
//     away and when").
#ifndef APARTMENTS_SRC_COM_APARTMENT_H_
#define APARTMENTS_SRC_COM_APARTMENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "apartments/clock.h"
#include "apartments/win32_com.h"

namespace apartments::internal {

enum class ApartmentKind : std::uint8_t { kSta, kMta };

// The COM core's apartment (an STA or the MTA), as the marshaling half sees
// it. Named apart from the modern API's apartments::Apartment
// (apartments/apartment.h), which owns a thread in one of these.
class ComApartment {
 public:
  virtual ~ComApartment() = default;

  virtual ApartmentKind kind() const noexcept = 0;
  // True for the first STA of the process (APTTYPE_MAINSTA).
  virtual bool is_main_sta() const noexcept = 0;
  // Unique for the life of the process; never reused.
  virtual std::uint64_t id() const noexcept = 0;
  // STA: the thread that owns it. MTA: 0.
  virtual DWORD thread_id() const noexcept = 0;
  // Whether the calling thread is in this apartment (a thread in the
  // implicit MTA is in the MTA).
  virtual bool IsCurrent() const noexcept = 0;
  virtual bool IsShutDown() const noexcept = 0;
  // When shutdown began (IsShutDown() true), from GetClock().
  virtual Clock::TimePoint shutdown_time() const noexcept = 0;
  // "STA 3 (thread 1234 'ui')" or "the MTA", for error explanations.
  virtual std::string Describe() const = 0;

  // Runs `callback` during shutdown, on the thread that shuts the apartment
  // down (the STA's own thread), before queued calls are failed. Callbacks run
  // in reverse order of registration. Registering on an apartment already
  // shut down runs nothing and returns false.
  virtual bool AddShutdownCallback(std::function<void()> callback) = 0;
};

using ApartmentRef = std::shared_ptr<ComApartment>;

// The calling thread's apartment: its STA, the MTA (explicit or implicit),
// or null when the thread is in none (CO_E_NOTINITIALIZED territory).
ApartmentRef CurrentApartment();

// The process's main STA while it is alive (the first STA created while no
// main STA was alive), or null. Any thread.
ApartmentRef MainStaApartment();

// The process's MTA while it exists (some thread is in it or a
// CoIncrementMTAUsage cookie is outstanding), or null. Any thread; the
// reference keeps the object, not the MTA's users.
ApartmentRef MtaApartmentIfAny();

// The channel. Runs `invoke` inside `target` on behalf of the calling thread,
// and waits for it as COM does: an STA caller waits in the modal loop
// (serving incoming calls and sent messages, consulting its message filter),
// an MTA caller waits without pumping. When `target` is the caller's own
// apartment, runs `invoke` directly.
//
// Returns invoke's HRESULT, or a channel failure, in which case `invoke`
// never ran (or, for RPC_E_SERVERFAULT, threw), and the channel has set error
// info on the calling thread explaining why:
//   RPC_E_SYS_CALL_FAILED  the target STA's queue is at its quota, or a wait
//                          or handle duplication on the call path failed
//   RPC_E_DISCONNECTED     the target apartment has shut down (or does so
//                          before the call runs)
//   RPC_E_SERVERFAULT      `invoke` threw; the exception's message is in the
//                          error info
//   RPC_E_CALL_REJECTED    the target's message filter rejected the call and
//                          the caller's filter gave up
//   RPC_E_CANTCALLOUT_ININPUTSYNCCALL  the caller is inside a sent message
//   CO_E_NOTINITIALIZED    the calling thread is in no apartment
// `invoke` runs on the target's thread (STA) or an MTA worker; whatever it
// captured by reference stays valid because the caller waits, except after a
// channel failure, where the channel guarantees `invoke` will never run.
//
// Cancellation (com/cancel.h): with `control` (its stop token, its deadline),
// or when the calling thread enabled call cancellation (CoCancelCall), the
// call may also end with RPC_E_CALL_CANCELED or RPC_E_TIMEOUT: withdrawn
// while still queued (never ran), found cancelled by the callee before it
// started (never ran), or cancelled while running (the caller waited for
// `invoke` to return and discarded its result). A call into the caller's own
// apartment runs directly and is not cancellable.
//
// `description` (may be null; must outlive the call) says which object,
// interface and method the call is, for the target's message filter
// (HandleInComingCall's INTERFACEINFO); a call without one is described as
// {NULL, IID_NULL, 0}.
struct CallControl;
class CallDescription;
HRESULT InvokeInApartment(const ApartmentRef& target, std::function<HRESULT()> invoke,
                          const CallControl* control = nullptr,
                          const CallDescription* description = nullptr);

// What a message filter is told about an incoming call. Describe() runs on
// the serving thread, before the call, only when that apartment has a
// message filter, so the per-call cost is storing one pointer.
class CallDescription {
 public:
  virtual INTERFACEINFO Describe() const noexcept = 0;

 protected:
  ~CallDescription() = default;
};

// The IRemUnknown method numbers of the runtime's own calls between
// apartments (remote QueryInterface and Release), as Windows' message filters
// see them, and the object they name (the apartment's IRemUnknown stands in).
inline constexpr WORD kRemQueryInterfaceMethod = 3;
inline constexpr WORD kRemReleaseMethod = 5;
IUnknown* RemUnknownObject() noexcept;

// A runtime call described as IRemUnknown method `method`.
class RemUnknownCall final : public CallDescription {
 public:
  explicit constexpr RemUnknownCall(WORD method) noexcept : method_(method) {}
  INTERFACEINFO Describe() const noexcept override {
    return INTERFACEINFO{RemUnknownObject(), IID_IRemUnknown, method_};
  }

 private:
  WORD method_;
};

// The runtime's own synchronous calls (releasing a stub's references): as
// InvokeInApartment, but the target's message filter is not consulted (an
// application's filter rejects the application's calls, not the runtime's
// bookkeeping) and the call is never cancellable (neither CoCancelCall nor
// the caller's filter's PENDINGMSG_CANCELCALL can drop it). It may be made
// from a thread in no apartment (a client apartment ending), waiting without
// pumping. It still fails when it cannot be made now: RPC_E_SYS_CALL_FAILED
// at the target's queue quota, RPC_E_CANTCALLOUT_ININPUTSYNCCALL,
// RPC_E_DISCONNECTED; the caller then uses PostRuntimeWork.
HRESULT InvokeRuntimeInApartment(const ApartmentRef& target, std::function<HRESULT()> invoke);

// Runs `work` in `target` later, one-way, for the runtime's work that must
// never be lost (see ApartmentImpl::PostRuntimeWork): not subject to message
// filters, cancellation or the posted-message quota; run at the latest when
// the apartment shuts down. Any thread, also one in no apartment. Returns
// false (dropping `work`) only when `target` has already shut down.
bool PostRuntimeWork(const ApartmentRef& target, std::function<void()> work);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_APARTMENT_H_
