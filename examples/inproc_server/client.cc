// The sample in-process server's client: registers the server (as regsvr32
// would, through its DllRegisterServer), creates both classes from an STA
// and from the MTA, and prints where each object lives. Exit status 0 when
// every object lives where Windows would put it.
//
//   example_inproc_client /path/to/libapartments_sample_server.so
#include <dlfcn.h>
#include <stdlib.h>

#include <cstdio>
#include <string>
#include <thread>

#include "apartments/inproc_server.h"
#include "apartments/win32.h"
#define APARTMENTS_SAMPLE_DEFINE_PROXIES
#include "sample_interfaces.h"

namespace {

int failures = 0;

// Creates `clsid` and reports the object's thread and whether the caller
// holds the object itself or a proxy.
void Show(const char* caller, const char* what, REFCLSID clsid, bool expect_direct,
          bool expect_own_thread) {
  sample::IWhere* where = nullptr;
  HRESULT hr = CoCreateInstance(clsid, nullptr, CLSCTX_INPROC_SERVER, IID_PPV_ARGS(&where));
  if (FAILED(hr)) {
    std::printf("%s: CoCreateInstance(%s) failed: 0x%08X\n", caller, what,
                static_cast<unsigned>(hr));
    ++failures;
    return;
  }
  DWORD tid = 0;
  ULONGLONG address = 0;
  hr = where->WhereAmI(&tid, &address);
  const bool direct = address == reinterpret_cast<std::uintptr_t>(where);
  const bool own_thread = tid == GetCurrentThreadId();
  std::printf("%-4s creates %-9s: runs on %s thread (%u), caller holds %s\n", caller, what,
              own_thread ? "the caller's" : "another", static_cast<unsigned>(tid),
              direct ? "the object" : "a proxy");
  if (FAILED(hr) || direct != expect_direct || own_thread != expect_own_thread) ++failures;
  where->Release();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SERVER_LIBRARY\n", argv[0]);
    return 2;
  }
  // A private registration directory, so the example leaves no trace.
  char dir[] = "/tmp/apartments-inproc-example-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  setenv("APARTMENTS_CLASS_PATH", dir, 1);

  // regsvr32's job: load the server and let it register its classes.
  void* server = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  auto* register_server =
      server != nullptr ? reinterpret_cast<HRESULT (*)()>(dlsym(server, "DllRegisterServer")) : nullptr;
  if (register_server == nullptr || FAILED(register_server())) {
    std::fprintf(stderr, "could not register %s\n", argv[1]);
    return 1;
  }

  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  Show("STA", "Apartment", sample::CLSID_SampleApartment, true, true);
  Show("STA", "Free", sample::CLSID_SampleFree, false, false);
  std::thread([] {
    CoInitializeEx(nullptr, COINIT_MULTITHREADED);
    Show("MTA", "Apartment", sample::CLSID_SampleApartment, false, false);
    Show("MTA", "Free", sample::CLSID_SampleFree, true, true);
    CoUninitialize();
  }).join();
  CoFreeUnusedLibrariesEx(0, 0);
  CoUninitialize();

  auto* unregister_server = reinterpret_cast<HRESULT (*)()>(dlsym(server, "DllUnregisterServer"));
  if (unregister_server == nullptr || FAILED(unregister_server())) ++failures;
  dlclose(server);
  rmdir(dir);
  std::printf("%s\n", failures == 0 ? "all objects live where Windows puts them" : "FAILED");
  return failures == 0 ? 0 : 1;
}
