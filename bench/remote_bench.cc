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

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

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

// The raw client: its own event loop on this thread.
class RawClient {
 public:
  explicit RawClient(int fd)
      : io_(kj::setupAsyncIo()),
        stream_(io_.lowLevelProvider->wrapSocketFd(fd)),
        network_(*stream_, capnp::rpc::twoparty::Side::CLIENT),
        rpc_(capnp::makeRpcClient(network_)) {
    capnp::MallocMessageBuilder message(8);
    auto vat = message.getRoot<capnp::rpc::twoparty::VatId>();
    vat.setSide(capnp::rpc::twoparty::Side::SERVER);
    object_ = rpc_.bootstrap(vat).castAs<Object>();
  }
  void Call(int i) {
    auto request = object_.callRequest();
    IID iid{};
    request.setIid(kj::arrayPtr(reinterpret_cast<const kj::byte*>(&iid), sizeof iid));
    request.setMethod(3);
    int args[2] = {i, 1};
    request.setArgs(kj::arrayPtr(reinterpret_cast<const kj::byte*>(args), sizeof args));
    auto response = request.send().wait(io_.waitScope);
    int sum = 0;
    std::memcpy(&sum, response.getOuts().begin(), 4);
    if (sum != i + 1) std::abort();
  }

 private:
  kj::AsyncIoContext io_;
  kj::Own<kj::AsyncIoStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
  Object::Client object_{nullptr};
};

IAdder* Activate() {
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
  return adder;
}

template <typename F>
double MicrosPerCall(int calls, F&& call) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) call(i);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
         calls;
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
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  bench::RawClient raw_client(pair[0]);
  bench::IAdder* adder = bench::Activate();
  auto raw_call = [&](int i) { raw_client.Call(i); };
  auto our_call = [&](int i) {
    int sum = 0;
    if (adder->Add(i, 1, &sum) != S_OK || sum != i + 1) std::abort();
  };
  bench::MicrosPerCall(100, raw_call);  // Warm up.
  bench::MicrosPerCall(100, our_call);
  // Alternating rounds, so that both see the same machine; medians.
  constexpr int kRounds = 7;
  std::vector<double> raw_us, our_us, ratios;
  for (int round = 0; round < kRounds; ++round) {
    raw_us.push_back(bench::MicrosPerCall(calls / kRounds, raw_call));
    our_us.push_back(bench::MicrosPerCall(calls / kRounds, our_call));
    ratios.push_back(our_us.back() / raw_us.back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("cross-process call, %d calls in %d alternating rounds (Unix socket, same run; medians)\n",
              calls, kRounds);
  std::printf("  Cap'n Proto alone (event loop each side):  %8.1f us/call\n", median(raw_us));
  std::printf("  apartments, STA -> STA of another process: %8.1f us/call\n", median(our_us));
  std::printf("  ratio (median of the rounds' ratios):      %8.2fx\n", median(ratios));
  adder->Release();
  CoUninitialize();
  kill(ours, SIGTERM);
  kill(raw, SIGTERM);
  waitpid(ours, nullptr, 0);
  waitpid(raw, nullptr, 0);
  // Our server was killed: its socket stays behind, as it would for real.
  unlink((std::string(dir) + "/" + apartments::ClassEntryFileName(bench::CLSID_Adder)).c_str());
  rmdir(dir);
  return 0;
}
