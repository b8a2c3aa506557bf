// The built-in proxies: IClassFactory, ISequentialStream and IStream (the
// proxy manager itself is the IUnknown proxy).
#include <cstdint>

#include "apartments/proxy.h"
#include "com/marshal.h"

namespace apartments::internal {
namespace {

// IClassFactory::CreateInstance returns an object of a run-time IID, which the
// one-line recipe cannot express, so this proxy is written out.
class ClassFactoryProxy final : public InterfaceProxy<IClassFactory> {
 public:
  using InterfaceProxy::InterfaceProxy;

  STDMETHODIMP CreateInstance(IUnknown* pUnkOuter, REFIID riid, void** ppvObject) override {
    if (ppvObject == nullptr) return E_POINTER;
    *ppvObject = nullptr;
    // An outer object cannot aggregate an object living in another apartment.
    if (pUnkOuter != nullptr) return CLASS_E_NOAGGREGATION;
    const IID iid = riid;
    std::uint64_t token = 0;
    bool ran = false;
    auto server = [&](void* itf) -> HRESULT {
      ran = true;
      void* object = nullptr;
      HRESULT hr = static_cast<IClassFactory*>(itf)->CreateInstance(nullptr, iid, &object);
      // The callee's HRESULT comes back unchanged, a success with a null
      // object included (S_FALSE or S_OK with *ppv == NULL, as Windows).
      if (FAILED(hr) || object == nullptr) return hr;
      HRESULT marshaled = MarshalArgument(static_cast<IUnknown*>(object), iid, &token);
      static_cast<IUnknown*>(object)->Release();
      return FAILED(marshaled) ? marshaled : hr;
    };
    HRESULT hr = manager()->Call(IID_IClassFactory,
                                 ServerCall(server, VtableSlot(&IClassFactory::CreateInstance)));
    if (token == 0) return hr;
    if (FAILED(hr)) {
      ReleaseArgument(token);
      return hr;
    }
    HRESULT unmarshaled = UnmarshalArgument(token, iid, ppvObject);
    return FAILED(unmarshaled) ? unmarshaled : hr;
  }

  STDMETHODIMP LockServer(BOOL fLock) override { return Forward(&IClassFactory::LockServer, fLock); }
};

}  // namespace
}  // namespace apartments::internal

APARTMENTS_PROXY_BEGIN(ISequentialStream)
  APARTMENTS_PROXY_METHOD(Read, (void* pv, ULONG cb, ULONG* pcbRead), (pv, cb, pcbRead))
  APARTMENTS_PROXY_METHOD(Write, (const void* pv, ULONG cb, ULONG* pcbWritten), (pv, cb, pcbWritten))
APARTMENTS_PROXY_END(ISequentialStream)

APARTMENTS_PROXY_BEGIN_DERIVED(IStream, ISequentialStream)
  APARTMENTS_PROXY_METHOD(Seek, (LARGE_INTEGER dlibMove, DWORD dwOrigin, ULARGE_INTEGER* plibNewPosition),
                          (dlibMove, dwOrigin, plibNewPosition))
  APARTMENTS_PROXY_METHOD(SetSize, (ULARGE_INTEGER libNewSize), (libNewSize))
  APARTMENTS_PROXY_METHOD(CopyTo, (IStream* pstm, ULARGE_INTEGER cb, ULARGE_INTEGER* pcbRead,
                                   ULARGE_INTEGER* pcbWritten), (pstm, cb, pcbRead, pcbWritten))
  APARTMENTS_PROXY_METHOD(Commit, (DWORD grfCommitFlags), (grfCommitFlags))
  APARTMENTS_PROXY_METHOD(Revert, (), ())
  APARTMENTS_PROXY_METHOD(LockRegion, (ULARGE_INTEGER libOffset, ULARGE_INTEGER cb, DWORD dwLockType),
                          (libOffset, cb, dwLockType))
  APARTMENTS_PROXY_METHOD(UnlockRegion, (ULARGE_INTEGER libOffset, ULARGE_INTEGER cb, DWORD dwLockType),
                          (libOffset, cb, dwLockType))
  APARTMENTS_PROXY_METHOD(Stat, (STATSTG* pstatstg, DWORD grfStatFlag), (pstatstg, grfStatFlag))
  APARTMENTS_PROXY_METHOD(Clone, (IStream** ppstm), (ppstm))
APARTMENTS_PROXY_END(IStream)

namespace apartments::internal {

void RegisterStandardProxies() {
  RegisterProxyFactory(IID_IClassFactory, &MakeProxy<ClassFactoryProxy>);
  RegisterProxyFactory(
      IID_ISequentialStream,
      &MakeProxy<ApartmentsProxyMethods_ISequentialStream<InterfaceProxy<ISequentialStream>>>);
  RegisterProxyFactory(
      IID_IStream,
      &MakeProxy<ApartmentsProxyMethods_IStream<InterfaceProxy<IStream>>>);
}

}  // namespace apartments::internal
