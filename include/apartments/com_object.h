// apartments/com_object.h
//
// ComObject: the IUnknown half of a COM object, so an implementation writes
// only its interfaces' methods.
//
//   class Counter final : public apartments::ComObject<Counter, ICounter, IAgileObject> {
//    public:
//     STDMETHODIMP Increment() override { ...; return S_OK; }
//   };
//   ICounter* c = apartments::MakeComObject<Counter>();  // count 1, caller owns
//
// What it gives:
// - AddRef/Release: a thread-safe reference count starting at 1; the last
//   Release deletes the object (through ComObject's virtual destructor, so the
//   derived destructor may be protected or private).
// - QueryInterface answers IUnknown and every listed interface together with
//   all the interfaces each derives from (as declared by APARTMENTS_INTERFACE),
//   first listed interface first. IUnknown identity holds: QueryInterface for
//   IID_IUnknown returns the same pointer whichever interface it is called on
//   (the first listed interface's IUnknown). Null `ppv` gives E_POINTER; an
//   unsupported IID sets *ppv = nullptr and returns E_NOINTERFACE.
// - A derived class that answers more IIDs (tear-offs, aggregation) defines
//   `HRESULT QueryInterfaceExtra(REFIID riid, void** ppv)`; it is asked after
//   the table and must AddRef what it returns.
//
// Thread safety: AddRef, Release and QueryInterface may be called from any
// thread at any time. Memory ordering: everything a thread did to the object
// before its last Release happens-before the destructor runs.
// Lifetime: the object lives until its count drops to 0; never delete it
// directly and never create it on the stack.
#ifndef APARTMENTS_COM_OBJECT_H_
#define APARTMENTS_COM_OBJECT_H_

#include <atomic>
#include <concepts>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#include "apartments/win32_com.h"

namespace apartments {
namespace internal {

// Walks I, its base, its base's base, ... down to (not including) IUnknown,
// returning `p` converted to the interface whose IID is `riid`, or nullptr.
template <typename I>
void* MatchInterfaceChain(I* p, REFIID riid) noexcept {
  if constexpr (std::is_same_v<I, IUnknown>) {
    return nullptr;
  } else {
    if (riid == InterfaceId<I>()) return static_cast<void*>(p);
    return MatchInterfaceChain<InterfaceBase<I>>(static_cast<InterfaceBase<I>*>(p), riid);
  }
}

template <typename T>
concept HasQueryInterfaceExtra = requires(T& t, const IID& iid, void** pp) {
  { t.QueryInterfaceExtra(iid, pp) } -> std::same_as<HRESULT>;
};

}  // namespace internal

template <typename Derived, ComInterface... Interfaces>
class ComObject : public Interfaces... {
  static_assert(sizeof...(Interfaces) > 0, "ComObject needs at least one interface");
  using First = std::tuple_element_t<0, std::tuple<Interfaces...>>;

 public:
  ComObject(const ComObject&) = delete;
  ComObject& operator=(const ComObject&) = delete;

  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    void* found = nullptr;
    if (riid == IID_IUnknown) {
      found = Identity();
    } else {
      // Left to right: the first interface whose chain holds riid wins.
      ((found = found != nullptr ? found
                                 : internal::MatchInterfaceChain<Interfaces>(
                                       static_cast<Interfaces*>(this), riid)),
       ...);
    }
    if (found == nullptr) {
      if constexpr (internal::HasQueryInterfaceExtra<Derived>) {
        *ppv = nullptr;
        return static_cast<Derived*>(this)->QueryInterfaceExtra(riid, ppv);
      }
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    AddRef();
    *ppv = found;
    return S_OK;
  }

  STDMETHODIMP_(ULONG) AddRef() override {
    // Relaxed: taking a new reference requires already holding one, so no
    // ordering with the destructor is needed here (the Release that might
    // reach 0 is ordered by its own acq_rel).
    return refs_.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  STDMETHODIMP_(ULONG) Release() override {
    // acq_rel: each release publishes its thread's writes (release), and the
    // thread that drops the count to 0 acquires all of them before deleting.
    ULONG remaining = refs_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (remaining == 0) delete this;
    return remaining;
  }

  // The object's identity: its IUnknown, the same for every interface.
  IUnknown* Identity() noexcept { return static_cast<IUnknown*>(static_cast<First*>(this)); }

  // The current count, for tests and diagnostics only (racy by nature).
  ULONG RefCountForTesting() const noexcept { return refs_.load(std::memory_order_relaxed); }

 protected:
  ComObject() = default;
  virtual ~ComObject() = default;

 private:
  std::atomic<ULONG> refs_{1};
};

// MakeComObject<T>(args...)
//
// Creates a T (derived from ComObject) with a count of 1 that the caller
// owns. Returns nullptr when out of memory (never throws bad_alloc).
template <typename T, typename... Args>
T* MakeComObject(Args&&... args) {
  return new (std::nothrow) T(std::forward<Args>(args)...);
}

}  // namespace apartments

#endif  // APARTMENTS_COM_OBJECT_H_
