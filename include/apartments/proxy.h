// apartments/proxy.h
//
// Proxies for your own interfaces, with one line per method and no IDL
// compiler. After the interface's declaration (with its IID):
//
//   struct ICalculator : public IUnknown {
//     STDMETHOD(Add)(int a, int b, int* sum) PURE;
//     STDMETHOD(Attach)(ICalculator* other) PURE;         // [in] interface
//     STDMETHOD(Clone)(ICalculator** copy) PURE;          // [out] interface
//   };
//   APARTMENTS_INTERFACE(ICalculator, IUnknown, "...");
//
//   APARTMENTS_PROXY_BEGIN(ICalculator)
//     APARTMENTS_PROXY_METHOD(Add, (int a, int b, int* sum), (a, b, sum))
//     APARTMENTS_PROXY_METHOD(Attach, (ICalculator* other), (other))
//     APARTMENTS_PROXY_METHOD(Clone, (ICalculator** copy), (copy))
//   APARTMENTS_PROXY_END(ICalculator)
//
// Use the macros at namespace scope in the interface's namespace, in exactly
// one header or source file that is linked into the program (the proxy
// registers itself during static initialization). An interface derived from
// another user interface lists only its own methods and names its base:
// APARTMENTS_PROXY_BEGIN_DERIVED(IScientific, ICalculator); the base must
// have its proxy declared (the proxy implements the base's methods too).
//
// What the proxy does with each argument (rules of the recipe):
// - `I*` where I is an interface with an IID ([in] interface): marshaled
//   (MSHLFLAGS_NORMAL) in the caller's apartment and unmarshaled in the
//   object's, so the callee receives a proxy (or the object itself, when it
//   lives there, or when it is agile); released there after the call.
// - `I**` ([out] interface): the callee's result is marshaled in the
//   object's apartment after a successful call and unmarshaled in the
//   caller's, so the caller receives a proxy (or its own object back). The
//   caller's *pp is null when the call fails or the callee left it null; a
//   success with a null *pp (S_OK, S_FALSE, ...) comes back as that same
//   success code.
// - Everything else is passed as it is: in-process, the caller waits for the
//   call, so pointers to the caller's data stay valid for the call's
//   duration and the callee reads and writes them directly.
// Methods must return HRESULT (STDMETHOD, not STDMETHOD_): the proxy returns
// the callee's HRESULT or a call failure (win32_marshal.h lists them).
// `[in, out]` interface pointers (an `I**` that already holds a pointer) are
// not supported: the callee sees *pp == nullptr.
//
// Across processes (docs/out_of_process.md): after APARTMENTS_PROXY_END,
// APARTMENTS_REMOTE_INTERFACE(ICalculator) declares the interface for other
// processes. A proxy of an object in another process serializes each
// argument by its type instead (apartments/wire.h lists what crosses; a
// parameter type that cannot cross makes that declaration a compile-time
// error), and the server process runs the method from its stub table. Both
// processes need the declaration.
//
// The object's apartment's message filter is told the call's object,
// interface and method number (HandleInComingCall's INTERFACEINFO, as on
// Windows): the number is the method's vtable slot, QueryInterface, AddRef
// and Release being 0-2.
//
// Thread safety: a proxy is used from the apartment that unmarshaled it
// (other apartments get RPC_E_WRONG_THREAD, except Release). Calls block and
// wait as the channel does (apartments/win32_marshal.h).
#ifndef APARTMENTS_PROXY_H_
#define APARTMENTS_PROXY_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#include "apartments/win32_com.h"
#include "apartments/wire.h"

namespace apartments {
namespace internal {

// A borrowed callable: what a proxy runs in the object's apartment. Holds a
// pointer to the callable, which must outlive the call (it does: the caller
// waits).
// `method` is the method's vtable slot (INTERFACEINFO::wMethod).
class ServerCall {
 public:
  template <typename F>
  explicit ServerCall(F& f, WORD method = 0) noexcept
      : object_(&f),
        invoke_([](void* o, void* itf) -> HRESULT { return (*static_cast<F*>(o))(itf); }),
        method_(method) {}
  HRESULT operator()(void* itf) const { return invoke_(object_, itf); }
  WORD method() const noexcept { return method_; }

 private:
  void* object_;
  HRESULT (*invoke_)(void*, void*);
  WORD method_;
};

// The vtable slot of a virtual member function. Itanium C++ ABI (GCC and
// Clang on Linux): a pointer to a virtual member function holds 1 + the byte
// offset of its slot. COM interfaces inherit singly, so the slot in the
// declaring interface is the slot in every interface derived from it. The
// argument is a constant at every call site, so this folds to a constant.
template <typename M>
WORD VtableSlot(M method) noexcept {
  struct Representation {
    std::uintptr_t pointer;
    std::ptrdiff_t adjustment;
  } representation;
  static_assert(sizeof(M) == sizeof(Representation), "Itanium C++ ABI member pointers expected");
  std::memcpy(&representation, &method, sizeof representation);
  if ((representation.pointer & 1) == 0) return 0;  // Not virtual: never a COM method.
  return static_cast<WORD>((representation.pointer - 1) / sizeof(void*));
}

// The calls of a proxy manager whose object lives in another process
// (src/remote): arguments are serialized by type (apartments/wire.h) instead
// of being passed as they are.
class RemoteCalls {
 public:
  // Runs method `method` (vtable slot) of interface `iid` on the object,
  // in its process and apartment, with the [in] arguments `in`; `*out`
  // receives the [out] arguments when the method ran (*ran true). Waits as
  // the channel does (an STA caller in the modal loop). Returns the method's
  // HRESULT or the call's failure, with error info set.
  virtual HRESULT CallRemote(REFIID iid, WORD method, WireMessage in, WireMessage* out,
                             bool* ran) = 0;
  // A method whose parameters cannot cross a process (its interface was not
  // declared with APARTMENTS_REMOTE_INTERFACE): fails it with an
  // explanation.
  virtual HRESULT CannotCross(REFIID iid, WORD method) = 0;

 protected:
  ~RemoteCalls() = default;
};

// The proxy manager as interface proxies see it (implemented by the library).
class ProxyManagerBase {
 public:
  // Non-null for a proxy of an object in another process.
  virtual RemoteCalls* Remote() noexcept { return nullptr; }
  // The proxy manager's reference count, shared by all its interface proxies
  // (they are parts of one object, as aggregated proxies are on Windows).
  virtual ULONG AddRefProxy() noexcept = 0;
  // Not noexcept, nor is anything below that may wait for another
  // apartment: a call served meanwhile may end the thread (ExitThread), whose
  // forced unwind must pass through on its way out.
  virtual ULONG ReleaseProxy() = 0;
  virtual HRESULT QueryInterfaceProxy(REFIID riid, void** ppv) = 0;
  // Runs `call` in the object's apartment with the object's interface
  // `iid` (a pointer to that interface type, as void*). Returns its result,
  // or a call failure with error info set on the calling thread.
  virtual HRESULT Call(REFIID iid, const ServerCall& call) = 0;

 protected:
  ~ProxyManagerBase() = default;
};

// Marshal tokens for interface arguments: a NORMAL packet marshaled in the
// calling apartment, unmarshaled (consumed) in another, or released when the
// call never ran. 0 means "null pointer".
HRESULT MarshalArgument(IUnknown* object, REFIID iid, std::uint64_t* token);
HRESULT UnmarshalArgument(std::uint64_t token, REFIID iid, void** ppv);
void ReleaseArgument(std::uint64_t token);

// The base of every interface proxy. Lifetime: owned by its proxy manager,
// destroyed with it.
class InterfaceProxyBase {
 public:
  virtual ~InterfaceProxyBase() = default;
  // The proxy as a pointer to its interface.
  virtual void* InterfacePointer() noexcept = 0;
};

using ProxyFactory = InterfaceProxyBase* (*)(ProxyManagerBase* manager);

// Registers the proxy factory of interface `iid`; called at static
// initialization by APARTMENTS_PROXY_END. A later registration of the same
// IID replaces the earlier one.
void RegisterProxyFactory(const IID& iid, ProxyFactory factory) noexcept;

// How one argument crosses. Default: as it is.
template <typename P>
class ProxyArgument {
 public:
  explicit ProxyArgument(P value) noexcept : value_(value) {}
  HRESULT ClientPrepare() noexcept { return S_OK; }
  HRESULT ServerPrepare() noexcept { return S_OK; }
  P ServerValue() noexcept { return value_; }
  HRESULT ServerFinish(bool) noexcept { return S_OK; }
  HRESULT ClientFinish(bool) noexcept { return S_OK; }

 private:
  P value_;
};

template <typename T>
concept ProxiedInterface = ComInterface<T> && std::is_base_of_v<IUnknown, T>;

// [in] interface pointer.
template <ProxiedInterface T>
class ProxyArgument<T*> {
 public:
  explicit ProxyArgument(T* value) noexcept : client_(value) {}
  ProxyArgument(const ProxyArgument&) = delete;
  ProxyArgument& operator=(const ProxyArgument&) = delete;
  // noexcept(false): releasing the data may wait for another apartment (see
  // ProxyManagerBase).
  ~ProxyArgument() noexcept(false) {
    // The call never reached the object's apartment: drop the marshal data.
    if (token_ != 0 && !consumed_) ReleaseArgument(token_);
  }
  HRESULT ClientPrepare() {
    if (client_ == nullptr) return S_OK;
    return MarshalArgument(client_, InterfaceId<T>(), &token_);
  }
  HRESULT ServerPrepare() {
    if (token_ == 0) return S_OK;
    consumed_ = true;
    return UnmarshalArgument(token_, InterfaceId<T>(), reinterpret_cast<void**>(&server_));
  }
  T* ServerValue() noexcept { return server_; }
  HRESULT ServerFinish(bool) {
    if (server_ != nullptr) server_->Release();
    server_ = nullptr;
    return S_OK;
  }
  HRESULT ClientFinish(bool) noexcept { return S_OK; }

 private:
  T* client_;
  T* server_ = nullptr;
  std::uint64_t token_ = 0;
  bool consumed_ = false;
};

// [out] interface pointer.
template <ProxiedInterface T>
class ProxyArgument<T**> {
 public:
  explicit ProxyArgument(T** out) noexcept : out_(out) {}
  ProxyArgument(const ProxyArgument&) = delete;
  ProxyArgument& operator=(const ProxyArgument&) = delete;
  ~ProxyArgument() noexcept(false) {
    if (token_ != 0) ReleaseArgument(token_);
  }
  HRESULT ClientPrepare() noexcept {
    if (out_ != nullptr) *out_ = nullptr;
    return S_OK;
  }
  HRESULT ServerPrepare() noexcept { return S_OK; }
  T** ServerValue() noexcept { return out_ == nullptr ? nullptr : &server_; }
  HRESULT ServerFinish(bool succeeded) {
    if (server_ == nullptr) return S_OK;
    HRESULT hr = succeeded ? MarshalArgument(server_, InterfaceId<T>(), &token_) : S_OK;
    server_->Release();
    server_ = nullptr;
    return hr;
  }
  HRESULT ClientFinish(bool succeeded) {
    if (token_ == 0) return S_OK;
    std::uint64_t token = token_;
    token_ = 0;
    if (!succeeded) {
      ReleaseArgument(token);
      return S_OK;
    }
    return UnmarshalArgument(token, InterfaceId<T>(), reinterpret_cast<void**>(out_));
  }

 private:
  T** out_;
  T* server_ = nullptr;
  std::uint64_t token_ = 0;
};

// Forwards one method call to an object in another process: the arguments
// are serialized by type (apartments/wire.h).
template <typename I, typename C, typename... Params, typename... Args>
HRESULT ForwardRemoteCall(RemoteCalls& remote, HRESULT (STDMETHODCALLTYPE C::*method)(Params...),
                          Args&&... args) {
  if constexpr (!(WireArg<Params>::kSupported && ...)) {
    return remote.CannotCross(InterfaceId<I>(), VtableSlot(method));
  } else {
    WireMessage in;
    WireMessage out;
    WriteInArguments<Params...>(in, args...);
    bool ran = false;
    HRESULT hr = remote.CallRemote(InterfaceId<I>(), VtableSlot(method), std::move(in), &out, &ran);
    if (!ran) return hr;
    if (!ReadOutArguments<Params...>(out, SUCCEEDED(hr), args...)) return RPC_X_BAD_STUB_DATA;
    return hr;
  }
}

// Forwards one method call through `manager`: prepares the arguments in the
// calling apartment, runs the method on the object in its apartment, and
// brings [out] interfaces back.
template <typename I, typename C, typename... Params, typename... Args>
HRESULT ForwardCall(ProxyManagerBase* manager, HRESULT (STDMETHODCALLTYPE C::*method)(Params...),
                    Args&&... args) {
  static_assert(std::is_base_of_v<C, I>, "the method must belong to the proxied interface");
  if (RemoteCalls* remote = manager->Remote()) {
    return ForwardRemoteCall<I>(*remote, method, std::forward<Args>(args)...);
  }
  std::tuple<ProxyArgument<Params>...> state{static_cast<Params>(args)...};
  return std::apply(
      [&](ProxyArgument<Params>&... a) -> HRESULT {
        HRESULT hr = S_OK;
        ((hr = SUCCEEDED(hr) ? a.ClientPrepare() : hr), ...);
        if (FAILED(hr)) return hr;
        bool ran = false;
        HRESULT method_hr = S_OK;
        auto server = [&](void* itf) -> HRESULT {
          ran = true;
          HRESULT prepared = S_OK;
          ((prepared = SUCCEEDED(prepared) ? a.ServerPrepare() : prepared), ...);
          if (FAILED(prepared)) {
            (a.ServerFinish(false), ...);
            return method_hr = prepared;
          }
          // On an exception, what was unmarshaled here is released on this
          // thread and the exception goes on (the channel turns it into
          // RPC_E_SERVERFAULT). The release comes after the handler has
          // ended: releasing a proxy may wait in the modal loop and serve a
          // call that ends the thread (ExitThread), and a forced unwind that
          // starts while an exception is being handled cannot be caught
          // further up without std::terminate.
          std::exception_ptr thrown;
          try {
            method_hr = (static_cast<I*>(itf)->*method)(a.ServerValue()...);
          } catch (...) {
            thrown = std::current_exception();
            if (!thrown) {
              // A forced unwind (ExitThread, cancellation): it has no
              // exception object and must go on at once. ExitThread has
              // already ended the thread's apartment, so these releases
              // wait for nothing.
              (a.ServerFinish(false), ...);
              throw;
            }
          }
          if (thrown) {
            (a.ServerFinish(false), ...);
            std::rethrow_exception(std::move(thrown));
          }
          HRESULT finished = S_OK;
          ((finished = FAILED(finished) ? finished : a.ServerFinish(SUCCEEDED(method_hr))), ...);
          if (FAILED(finished)) method_hr = finished;
          return method_hr;
        };
        hr = manager->Call(InterfaceId<I>(), ServerCall(server, VtableSlot(method)));
        bool succeeded = ran && SUCCEEDED(hr);
        HRESULT finished = S_OK;
        ((finished = FAILED(finished) ? finished : a.ClientFinish(succeeded)), ...);
        if (succeeded && FAILED(finished)) return finished;
        return hr;
      },
      state);
}

// The generated proxy's root: IUnknown delegating to the proxy manager.
template <ProxiedInterface I>
class InterfaceProxy : public I, public InterfaceProxyBase {
 public:
  explicit InterfaceProxy(ProxyManagerBase* manager) noexcept : manager_(manager) {}
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    return manager_->QueryInterfaceProxy(riid, ppv);
  }
  STDMETHODIMP_(ULONG) AddRef() override { return manager_->AddRefProxy(); }
  STDMETHODIMP_(ULONG) Release() override { return manager_->ReleaseProxy(); }
  void* InterfacePointer() noexcept override { return static_cast<I*>(this); }

 protected:
  ProxyManagerBase* manager() const noexcept { return manager_; }

  template <typename C, typename... Params, typename... Args>
  HRESULT Forward(HRESULT (STDMETHODCALLTYPE C::*method)(Params...), Args&&... args) {
    return ForwardCall<I>(manager_, method, std::forward<Args>(args)...);
  }

 private:
  ProxyManagerBase* manager_;
};

template <typename Proxy>
InterfaceProxyBase* MakeProxy(ProxyManagerBase* manager) {
  return new (std::nothrow) Proxy(manager);
}

template <ProxiedInterface I, typename Proxy>
struct ProxyRegistration {
  ProxyRegistration() noexcept { RegisterProxyFactory(InterfaceId<I>(), &MakeProxy<Proxy>); }
};

// The server's side of APARTMENTS_REMOTE_INTERFACE: one entry per method,
// by vtable slot.
struct WireStubEntry {
  WORD slot;
  WireStubFunction stub;
};
// Registers interface `iid`'s methods (an interface derived from another
// user interface names it as `base`; IID_IUnknown otherwise). Called at
// static initialization; a later registration of the same IID replaces the
// earlier one. `entries` must stay valid for the program's life.
void RegisterWireStubs(const IID& iid, const IID& base, const WireStubEntry* entries,
                       std::size_t count) noexcept;

// Collects the methods numbered between the recipe's two counters.
template <ProxiedInterface I, typename Methods>
struct WireStubRegistration {
  template <int N>
  static constexpr bool kHasMethod =
      requires { Methods::ApartmentsMethodAt(std::integral_constant<int, N>{}); };

  template <int... K>
  static void Register(std::integer_sequence<int, K...>) noexcept {
    constexpr int kFirst = Methods::kApartmentsFirstMethod + 1;
    static WireStubEntry entries[sizeof...(K) + 1];
    std::size_t count = 0;
    (
        [&] {
          if constexpr (kHasMethod<kFirst + K>) {
            constexpr auto method = Methods::ApartmentsMethodAt(std::integral_constant<int, kFirst + K>{});
            entries[count++] = WireStubEntry{VtableSlot(method), &WireStub<I, method>};
          }
        }(),
        ...);
    RegisterWireStubs(InterfaceId<I>(), InterfaceId<typename Methods::ApartmentsBaseInterface>(),
                      entries, count);
  }

  WireStubRegistration() noexcept {
    Register(std::make_integer_sequence<int, Methods::kApartmentsLastMethod -
                                                 Methods::kApartmentsFirstMethod - 1>{});
  }
};

}  // namespace internal
}  // namespace apartments

// The root of the proxy method chain: proxies of interfaces derived directly
// from IUnknown add their methods to InterfaceProxy<I>.
template <typename ProxyBase>
using ApartmentsProxyMethods_IUnknown = ProxyBase;

#define APARTMENTS_PROXY_BEGIN(Interface) APARTMENTS_PROXY_BEGIN_DERIVED(Interface, IUnknown)

#define APARTMENTS_PROXY_BEGIN_DERIVED(Interface, Base)                                  \
  template <typename ApartmentsProxyBase>                                                 \
  class ApartmentsProxyMethods_##Interface                                                \
      : public ApartmentsProxyMethods_##Base<ApartmentsProxyBase> {                       \
    using ApartmentsProxied = Interface;                                                  \
                                                                                          \
   public:                                                                                \
    explicit ApartmentsProxyMethods_##Interface(                                          \
        ::apartments::internal::ProxyManagerBase* manager) noexcept                       \
        : ApartmentsProxyMethods_##Base<ApartmentsProxyBase>(manager) {}                  \
    /* For APARTMENTS_REMOTE_INTERFACE: the methods are numbered between */              \
    /* these two counters. */                                                             \
    using ApartmentsBaseInterface = Base;                                                 \
    static constexpr int kApartmentsFirstMethod = __COUNTER__;

// APARTMENTS_PROXY_METHOD(Name, (parameters with names), (the names))
#define APARTMENTS_PROXY_METHOD(Method, params, args)                                     \
  STDMETHODIMP Method params override {                                                   \
    return this->Forward(&ApartmentsProxied::Method APARTMENTS_PROXY_INTERNAL_COMMA args); \
  }                                                                                       \
  static constexpr auto ApartmentsMethodAt(::std::integral_constant<int, __COUNTER__>) noexcept { \
    return &ApartmentsProxied::Method;                                                    \
  }

#define APARTMENTS_PROXY_END(Interface)                                                   \
  static constexpr int kApartmentsLastMethod = __COUNTER__;                               \
  }                                                                                       \
  ;                                                                                       \
  inline const ::apartments::internal::ProxyRegistration<                                 \
      Interface, ApartmentsProxyMethods_##Interface<::apartments::internal::InterfaceProxy<Interface>>> \
      apartments_proxy_registration_##Interface{};

// APARTMENTS_REMOTE_INTERFACE(Interface)
//
// Declares `Interface` (whose proxy recipe precedes it) for other processes:
// its methods' arguments are serialized by type (apartments/wire.h), and a
// parameter type that cannot cross is a compile-time error naming it. A
// process serves calls from other processes on an interface only when it
// declared it so (the server); the client needs it too, for the same
// compile-time check (its proxies serialize whatever the recipe lists). A
// derived interface needs its base declared too. At namespace scope, after
// APARTMENTS_PROXY_END, once per program (like the recipe).
#define APARTMENTS_REMOTE_INTERFACE(Interface)                                            \
  inline const ::apartments::internal::WireStubRegistration<                              \
      Interface, ApartmentsProxyMethods_##Interface<::apartments::internal::InterfaceProxy<Interface>>> \
      apartments_remote_registration_##Interface{};

// (a, b) -> , a, b   and   () -> (nothing)
#define APARTMENTS_PROXY_INTERNAL_COMMA(...) __VA_OPT__(, ) __VA_ARGS__

#endif  // APARTMENTS_PROXY_H_
