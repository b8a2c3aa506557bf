// The modern-API twin of examples/win32_snippet.cc: the same program, step
// for step, without CoInitializeEx, raw IUnknown*, streams or out-parameters.
//
//   win32_snippet.cc                          here
//   CoInitializeEx(STA) on main               Apartment home({.name = "home"})
//   CreateThread + CoInitializeEx(MTA)        Apartment worker({.name = "worker"})
//   CoMarshalInterThreadInterfaceInStream     Ref<ICounter>::Agile() (on home)
//   CoGetInterfaceAndReleaseStream            AgileRef<ICounter>::Get() (on worker)
//   HRESULT + out-parameter                   Result<T> (value or Error{code, message})
//   CoWaitForMultipleHandles while pumping    worker.Call(...) blocks; home pumps itself
//   CoUninitialize on main                    home.reset() (~Apartment: shutdown protocol)
//   RPC_E_DISCONNECTED + GetErrorInfo         Result error: code RPC_E_DISCONNECTED + message
//
// And, for code that has no COM interface to keep, the same counter as a
// plain C++ object: Bound<PlainCounter>.
// Exits 0 when everything behaved as described.
#include <apartments/apartment.h>
#include <apartments/bound.h>
#include <apartments/com_object.h>
#include <apartments/proxy.h>
#include <apartments/ref.h>

#include <cstdio>
#include <optional>

using apartments::AgileRef;
using apartments::Apartment;
using apartments::Bound;
using apartments::Ref;
using apartments::Result;

struct ICounter : public IUnknown {
  STDMETHOD(Increment)(LONG* value) PURE;
};
APARTMENTS_INTERFACE(ICounter, IUnknown, "5d3c9a10-2b7e-4f61-8a4d-6e5f70819a02");

APARTMENTS_PROXY_BEGIN(ICounter)
  APARTMENTS_PROXY_METHOD(Increment, (LONG* value), (value))
APARTMENTS_PROXY_END(ICounter)

class Counter final : public apartments::ComObject<Counter, ICounter> {
 public:
  STDMETHODIMP Increment(LONG* value) override {
    APARTMENTS_CHECK_ON_APARTMENT(checker_);  // COM runs it on its home thread
    if (value == nullptr) return E_POINTER;
    *value = ++count_;
    return S_OK;
  }

 private:
  apartments::ApartmentChecker checker_;  // The thread that constructed it.
  LONG count_ = 0;
};

// The plain C++ version: no interface, no IID, no proxy.
class PlainCounter {
 public:
  int Increment() { return ++count_; }

 private:
  int count_ = 0;
};

int main() {
  int failures = 0;
  auto expect = [&failures](bool ok, const char* what) {
    if (!ok) {
      std::printf("FAILED: %s\n", what);
      ++failures;
    }
  };

  std::optional<Apartment> home(std::in_place, Apartment::Options{.name = "home"});
  Apartment worker({.name = "worker"});

  // The object is created on home; its AgileRef may travel to any thread.
  Result<AgileRef<ICounter>> agile = home->Call([] {
    Ref<ICounter> counter = Ref<ICounter>::Adopt(apartments::MakeComObject<Counter>());
    return counter.Agile().value();
  });
  expect(agile.has_value(), "Agile() on home");
  Result<Bound<PlainCounter>> plain = Bound<PlainCounter>::Create(*home);
  expect(plain.has_value(), "Bound<PlainCounter>::Create");
  if (!agile || !plain) return 1;

  // The worker keeps its proxy across calls; it is created, used and
  // released only on the worker's thread.
  std::optional<Ref<ICounter>> proxy;
  Result<LONG> value = worker.Call([&]() -> LONG {
    proxy.emplace(agile->Get().value());  // A proxy: home is another apartment.
    LONG v = 0;
    for (int i = 0; i < 3; ++i) (void)(*proxy)->Increment(&v);  // Runs on home.
    return v;
  });
  expect(value.has_value() && *value == 3, "three calls through the proxy");
  std::printf("worker: counter is %d after three calls through the proxy\n",
              static_cast<int>(value.value_or(-1)));
  Result<int> plain_value = worker.Call([&] { return plain->Call(&PlainCounter::Increment).value(); });
  expect(plain_value.has_value() && *plain_value == 1, "Bound<PlainCounter>::Call from the worker");

  home.reset();  // Shutdown protocol: stop, fail what is queued, join.

  Result<HRESULT> after = worker.Call([&] {
    LONG v = 0;
    return (*proxy)->Increment(&v);
  });
  expect(after.has_value() && *after == RPC_E_DISCONNECTED, "RPC_E_DISCONNECTED through the proxy");
  Result<int> plain_after = plain->Call(&PlainCounter::Increment);
  expect(!plain_after && plain_after.code() == RPC_E_DISCONNECTED,
         "RPC_E_DISCONNECTED from Bound::Call");
  if (!plain_after) {
    std::printf("after home shut down: %s\n", plain_after.error().message.c_str());
  }

  (void)worker.Call([&] { proxy.reset(); });  // Release the proxy where it lives.
  std::printf("%s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
