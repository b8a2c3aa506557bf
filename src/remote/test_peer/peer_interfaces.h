// The interfaces the cross-process tests (src/remote/local_server_test.cc)
// and their peer process (peer.cc) share, with their recipes, declared for
// other processes. Test-only.
#ifndef APARTMENTS_SRC_REMOTE_TEST_PEER_PEER_INTERFACES_H_
#define APARTMENTS_SRC_REMOTE_TEST_PEER_PEER_INTERFACES_H_

#include "apartments/proxy.h"
#include "apartments/win32.h"

namespace peer {

struct ICallback : public IUnknown {
  STDMETHOD(Notify)(int value) PURE;
};
APARTMENTS_INTERFACE(ICallback, IUnknown, "3c5e1a7b-0d2f-4e6a-8b9c-7d1e2f3a4b01");

struct IPeer : public IUnknown {
  STDMETHOD(Add)(int a, int b, int* sum) PURE;
  STDMETHOD(GetPid)(DWORD* pid) PURE;
  // Calls callback->Notify(value) while the caller waits.
  STDMETHOD(CallBack)(ICallback* callback, int value) PURE;
  STDMETHOD(Keep)(ICallback* callback) PURE;
  STDMETHOD(GetKept)(ICallback** callback) PURE;
  // Calls started->Notify(0), then blocks its STA until the process is
  // killed (or its safety bound ends it).
  STDMETHOD(Block)(ICallback* started) PURE;
  STDMETHOD(Echo)(LPCWSTR in, BSTR* out) PURE;
  // Fails with `code`, setting error info "peer failed on purpose".
  STDMETHOD(Fail)(HRESULT code) PURE;
  // Fills its STA's posted-message queue to the quota, calls
  // callback->Notify(0) (the caller may call in meanwhile: its call cannot be
  // posted), then lets the queue drain.
  STDMETHOD(FillQueueThenCall)(ICallback* callback) PURE;
};
APARTMENTS_INTERFACE(IPeer, IUnknown, "3c5e1a7b-0d2f-4e6a-8b9c-7d1e2f3a4b02");

APARTMENTS_PROXY_BEGIN(ICallback)
  APARTMENTS_PROXY_METHOD(Notify, (int value), (value))
APARTMENTS_PROXY_END(ICallback)
APARTMENTS_REMOTE_INTERFACE(ICallback)

APARTMENTS_PROXY_BEGIN(IPeer)
  APARTMENTS_PROXY_METHOD(Add, (int a, int b, int* sum), (a, b, sum))
  APARTMENTS_PROXY_METHOD(GetPid, (DWORD* pid), (pid))
  APARTMENTS_PROXY_METHOD(CallBack, (ICallback* callback, int value), (callback, value))
  APARTMENTS_PROXY_METHOD(Keep, (ICallback* callback), (callback))
  APARTMENTS_PROXY_METHOD(GetKept, (ICallback** callback), (callback))
  APARTMENTS_PROXY_METHOD(Block, (ICallback* started), (started))
  APARTMENTS_PROXY_METHOD(Echo, (LPCWSTR in, BSTR* out), (in, out))
  APARTMENTS_PROXY_METHOD(Fail, (HRESULT code), (code))
  APARTMENTS_PROXY_METHOD(FillQueueThenCall, (ICallback* callback), (callback))
APARTMENTS_PROXY_END(IPeer)
APARTMENTS_REMOTE_INTERFACE(IPeer)

// The class the peer serves (launched from its registration entry).
inline constexpr CLSID CLSID_Peer =
    apartments::internal::GuidFromLiteral("3c5e1a7b-0d2f-4e6a-8b9c-7d1e2f3a4c01");
// The class the test process serves to a peer started with --client.
inline constexpr CLSID CLSID_InTest =
    apartments::internal::GuidFromLiteral("3c5e1a7b-0d2f-4e6a-8b9c-7d1e2f3a4c02");

}  // namespace peer

#endif  // APARTMENTS_SRC_REMOTE_TEST_PEER_PEER_INTERFACES_H_
