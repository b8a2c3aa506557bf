// A cross-process call: ours (an STA client calling an object in another
// process's STA, through apartments' remote layer) against the same round
// trip made with Cap'n Proto alone (one event loop each side, the same
// schema, the server answering at once), in the same run.
//
// Usage: remote_bench [--calls N]   (prints per-call times and the ratio)
//
// Both servers are forked before this process starts any thread.
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include "apartments/com_object.h"
#include "apartments/inproc_server.h"
#include "apartments/proxy.h"
#include "apartments/win32.h"
#include "remote/object.capnp.h"

namespace bench {

struct IAdder : public IUnknown {
  STDMETHOD(Add)(int a, int b, int* sum) PURE;
};
APARTMENTS_INTERFACE(IAdder, IUnknown, "7b2f4c1e-9a3d-4e5f-8c6b-1d0e2f3a4b51");
APARTMENTS_PROXY_BEGIN(IAdder)
  APARTMENTS_PROXY_METHOD(Add, (int a, int b, int* sum), (a, b, sum))
APARTMENTS_PROXY_END(IAdder)
APARTMENTS_REMOTE_INTERFACE(IAdder)
inline constexpr CLSID CLSID_Adder =
    apartments::internal::GuidFromLiteral("7b2f4c1e-9a3d-4e5f-8c6b-1d0e2f3a4b52");

class Adder final : public apartments::ComObject<Adder, IAdder, IClassFactory> {
 public:
  STDMETHODIMP Add(int a, int b, int* sum) override {
    *sum = a + b;
    return S_OK;
  }
  STDMETHODIMP CreateInstance(IUnknown*, REFIID riid, void** ppv) override {
    return QueryInterface(riid, ppv);
  }
  STDMETHODIMP LockServer(BOOL) override { return S_OK; }
};

// The raw Cap'n Proto server: answers `call` at once with its sum.
class RawObject final : public Object::Server {
 public:
  kj::Promise<void> call(CallContext context) override {
    auto args = context.getParams().getArgs();
    int a = 0, b = 0;
    if (args.size() >= 8) {
      std::memcpy(&a, args.begin(), 4);
      std::memcpy(&b, args.begin() + 4, 4);
    }
    int sum = a + b;
    context.getResults().setResult(0);
    context.getResults().setOuts(kj::arrayPtr(reinterpret_cast<const kj::byte*>(&sum), 4));
    return kj::READY_NOW;
  }
};

[[noreturn]] void RawServer(int fd) {
  auto io = kj::setupAsyncIo();
  auto stream = io.lowLevelProvider->wrapSocketFd(fd);
  capnp::TwoPartyVatNetwork network(*stream, capnp::rpc::twoparty::Side::SERVER);
  auto rpc = capnp::makeRpcServer(network, kj::heap<RawObject>());
  network.onDisconnect().wait(io.waitScope);
  _exit(0);
}

[[noreturn]] void OurServer() {
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  Adder* adder = apartments::MakeComObject<Adder>();
  DWORD cookie = 0;
  if (FAILED(CoRegisterClassObject(CLSID_Adder, static_cast<IClassFactory*>(adder),
                                   CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE, &cookie))) {
    _exit(1);
  }
  MSG msg;
  while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  _exit(0);
}

double RawCalls(int fd, int calls) {
  auto io = kj::setupAsyncIo();
  auto stream = io.lowLevelProvider->wrapSocketFd(fd);
  capnp::TwoPartyVatNetwork network(*stream, capnp::rpc::twoparty::Side::CLIENT);
  auto rpc = capnp::makeRpcClient(network);
  capnp::MallocMessageBuilder message(8);
  auto vat = message.getRoot<capnp::rpc::twoparty::VatId>();
  vat.setSide(capnp::rpc::twoparty::Side::SERVER);
  Object::Client object = rpc.bootstrap(vat).castAs<Object>();
  auto one = [&](int i) {
    auto request = object.callRequest();
    IID iid{};
    request.setIid(kj::arrayPtr(reinterpret_cast<const kj::byte*>(&iid), sizeof iid));
    request.setMethod(3);
    int args[2] = {i, 1};
    request.setArgs(kj::arrayPtr(reinterpret_cast<const kj::byte*>(args), sizeof args));
    auto response = request.send().wait(io.waitScope);
    int sum = 0;
    std::memcpy(&sum, response.getOuts().begin(), 4);
    if (sum != i + 1) std::abort();
  };
  for (int i = 0; i < 100; ++i) one(i);  // Warm up.
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) one(i);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
         calls;
}

double OurCalls(int calls) {
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  IAdder* adder = nullptr;
  HRESULT hr = E_FAIL;
  for (int attempt = 0; attempt < 2000 && FAILED(hr); ++attempt) {  // Until the server registered.
    hr = CoCreateInstance(CLSID_Adder, nullptr, CLSCTX_LOCAL_SERVER, IID_IAdder,
                          reinterpret_cast<void**>(&adder));
    if (FAILED(hr)) usleep(5000);
  }
  if (FAILED(hr)) {
    std::fprintf(stderr, "remote_bench: activation failed: 0x%08x\n", static_cast<unsigned>(hr));
    std::exit(1);
  }
  int sum = 0;
  for (int i = 0; i < 100; ++i) adder->Add(i, 1, &sum);  // Warm up.
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    if (adder->Add(i, 1, &sum) != S_OK || sum != i + 1) std::abort();
  }
  double per_call =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      calls;
  adder->Release();
  CoUninitialize();
  return per_call;
}

}  // namespace bench

int main(int argc, char** argv) {
  int calls = 2000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--calls") == 0) calls = std::atoi(argv[i + 1]);
  }
  char dir[] = "/tmp/apartments-remote-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  setenv("APARTMENTS_RUNTIME_DIR", dir, 1);
  setenv("APARTMENTS_CLASS_PATH", dir, 1);
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 1;
  pid_t raw = fork();
  if (raw == 0) {
    close(pair[0]);
    bench::RawServer(pair[1]);
  }
  close(pair[1]);
  pid_t ours = fork();
  if (ours == 0) bench::OurServer();
  const double raw_us = bench::RawCalls(pair[0], calls);
  const double our_us = bench::OurCalls(calls);
  std::printf("cross-process call, %d calls (Unix socket, same run)\n", calls);
  std::printf("  Cap'n Proto alone (event loop each side):  %8.1f us/call\n", raw_us);
  std::printf("  apartments, STA -> STA of another process: %8.1f us/call  (%.2fx)\n", our_us,
              our_us / raw_us);
  kill(ours, SIGTERM);
  kill(raw, SIGTERM);
  waitpid(ours, nullptr, 0);
  waitpid(raw, nullptr, 0);
  // Our server was killed: its socket stays behind, as it would for real.
  unlink((std::string(dir) + "/" + apartments::ClassEntryFileName(bench::CLSID_Adder)).c_str());
  rmdir(dir);
  return 0;
}
