// apartments/ref.h
//
// Ref<I>: an owning smart pointer for a COM interface (AddRef on copy,
// Release on destruction, As<J>() = QueryInterface as a typed cast), and
// AgileRef<I>: the form of a Ref that may cross apartments. A raw interface
// pointer is valid only in the apartment it was obtained in; to hand one to
// another thread, make an AgileRef in the home apartment (it registers the
// object in the global interface table, TABLESTRONG) and call Get() in the
// receiving apartment: it returns the object itself at home and a proxy
// elsewhere (calls on a proxy run in the object's apartment while the caller
// waits, as Apartment::Call).
//
//   Ref<ICalc> calc = ...;                      // on apartment A
//   AgileRef<ICalc> agile = *calc.Agile();      // on A
//   worker.Call([&] { Ref<ICalc> p = *agile.Get(); p->Add(...); });  // on B
//
// Thread safety: a Ref belongs to the apartment it was obtained in (use it and
// destroy it there; that is COM's rule, not checked). An AgileRef may be
// copied, used and destroyed on any thread in an apartment; copies share one
// registration, revoked when the last copy goes (which releases the table's
// reference to the object, from any apartment). Errors are Result errors with
// the runtime's explanation: E_NOINTERFACE from As(); from Agile()/Get() the
// marshaling errors (CO_E_NOTINITIALIZED for a thread in no apartment,
// RPC_E_DISCONNECTED when the home apartment has shut down, ...).
#ifndef APARTMENTS_REF_H_
#define APARTMENTS_REF_H_

#include <memory>
#include <utility>

#include "apartments/apartment.h"
#include "apartments/result.h"
#include "apartments/win32_com.h"
#include "apartments/win32_marshal.h"

namespace apartments {

template <typename I>
class AgileRef;

template <typename I>
class Ref {
 public:
  Ref() = default;
  // Adopts `p` (takes over one reference the caller owns).
  static Ref Adopt(I* p) noexcept {
    Ref r;
    r.p_ = p;
    return r;
  }
  // Shares `p` (AddRef).
  static Ref Share(I* p) noexcept {
    if (p != nullptr) p->AddRef();
    return Adopt(p);
  }
  Ref(const Ref& other) noexcept : p_(other.p_) {
    if (p_ != nullptr) p_->AddRef();
  }
  Ref(Ref&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  Ref& operator=(Ref other) noexcept {
    std::swap(p_, other.p_);
    return *this;
  }
  ~Ref() {
    if (p_ != nullptr) p_->Release();
  }

  I* get() const noexcept { return p_; }
  I* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  // Gives up ownership of the reference without releasing it.
  I* Detach() noexcept { return std::exchange(p_, nullptr); }

  // QueryInterface as a typed cast. Calling thread: the Ref's apartment.
  template <typename J>
  Result<Ref<J>> As() const {
    if (p_ == nullptr) return Error{E_POINTER, "As() on an empty Ref"};
    J* out = nullptr;
    HRESULT hr = p_->QueryInterface(__uuidof(J), reinterpret_cast<void**>(&out));
    if (hr < 0) return internal::ErrorFromLastCall(hr);
    return Ref<J>::Adopt(out);
  }

  // The cross-apartment form of this reference; see AgileRef. Calling
  // thread: the Ref's apartment.
  Result<AgileRef<I>> Agile() const;

 private:
  I* p_ = nullptr;
};

template <typename I>
class AgileRef {
 public:
  // In any apartment: the object itself in its home apartment, else a proxy.
  Result<Ref<I>> Get() const {
    I* out = nullptr;
    HRESULT hr = GlobalInterfaceTable()->GetInterfaceFromGlobal(
        cookie_->value, __uuidof(I), reinterpret_cast<void**>(&out));
    if (hr < 0) return internal::ErrorFromLastCall(hr);
    return Ref<I>::Adopt(out);
  }

 private:
  template <typename>
  friend class Ref;
  struct Cookie {
    DWORD value;
    ~Cookie() { (void)GlobalInterfaceTable()->RevokeInterfaceFromGlobal(value); }
  };
  explicit AgileRef(DWORD cookie) : cookie_(new Cookie{cookie}) {}
  std::shared_ptr<const Cookie> cookie_;
};

template <typename I>
Result<AgileRef<I>> Ref<I>::Agile() const {
  if (p_ == nullptr) return Error{E_POINTER, "Agile() on an empty Ref"};
  DWORD cookie = 0;
  HRESULT hr = GlobalInterfaceTable()->RegisterInterfaceInGlobal(p_, __uuidof(I), &cookie);
  if (hr < 0) return internal::ErrorFromLastCall(hr);
  return AgileRef<I>(cookie);
}

}  // namespace apartments

#endif  // APARTMENTS_REF_H_
