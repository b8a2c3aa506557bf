// The out-of-process example's client (README, "An out-of-process server"):
// registers the server's executable as the LocalServer32 of CLSID_Greeter
// (what `apartments-regsvr --local-server` would write), creates a greeter
// with CLSCTX_LOCAL_SERVER (COM starts the server), calls it, lets it call
// back into this STA while it waits, and releases it (the server exits).
// Exits 0 when everything went as described.
//
// Usage: example_out_of_process_client <path of example_out_of_process_server>
// The registration goes to a private directory unless APARTMENTS_CLASS_PATH
// is set, so running the example changes nothing of yours.
#include <apartments/com_object.h>
#include <apartments/error_info.h>
#include <apartments/inproc_server.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "greeter.h"

namespace {

class Listener final : public apartments::ComObject<Listener, greeter::IListener> {
 public:
  STDMETHODIMP Heard(LPCWSTR text) override {
    std::printf("  the server called us back on thread %u (ours: %u): \"%ls\"\n",
                GetCurrentThreadId(), main_thread_, text);
    called_on_main_ = GetCurrentThreadId() == main_thread_;
    return S_OK;
  }
  DWORD main_thread_ = GetCurrentThreadId();
  bool called_on_main_ = false;
};

int Fail(const char* what, HRESULT hr) {
  std::printf("%s failed: 0x%08x\n  why: %s\n", what, static_cast<unsigned>(hr),
              apartments::LastErrorDescription().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <server executable>\n", argv[0]);
    return 2;
  }
  // 1. The registration entry (one file per class, docs/out_of_process.md).
  std::string classes;
  bool made_directory = false;
  if (const char* set = std::getenv("APARTMENTS_CLASS_PATH")) {
    classes = set;
  } else {
    made_directory = true;
    char dir[] = "/tmp/apartments-example-XXXXXX";
    if (mkdtemp(dir) == nullptr) return 1;
    classes = dir;
    setenv("APARTMENTS_CLASS_PATH", dir, 1);
  }
  const std::string entry = classes + "/" + apartments::ClassEntryFileName(greeter::CLSID_Greeter);
  std::ofstream(entry) << "LocalServer32=" << argv[1] << "\n";

  // 2. Ordinary COM from here on.
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  greeter::IGreeter* greeter = nullptr;
  HRESULT hr = CoCreateInstance(greeter::CLSID_Greeter, nullptr, CLSCTX_LOCAL_SERVER,
                                greeter::IID_IGreeter, reinterpret_cast<void**>(&greeter));
  if (FAILED(hr)) return Fail("CoCreateInstance", hr);
  DWORD pid = 0;
  greeter->GetPid(&pid);
  std::printf("apartments out-of-process example: client %d, server %u\n", getpid(), pid);
  BSTR greeting = nullptr;
  hr = greeter->Greet(L"client", &greeting);
  if (FAILED(hr)) return Fail("Greet", hr);
  std::printf("  Greet: \"%ls\"\n", greeting);
  SysFreeString(greeting);
  Listener* listener = apartments::MakeComObject<Listener>();
  hr = greeter->Tell(listener, L"calls go both ways");
  if (FAILED(hr)) return Fail("Tell", hr);
  const bool ok = listener->called_on_main_ && pid != static_cast<DWORD>(getpid());
  greeter->Release();  // The server's last object: it exits.
  listener->Release();
  CoUninitialize();
  std::remove(entry.c_str());
  if (made_directory) rmdir(classes.c_str());
  std::printf("%s\n", ok ? "All went as described." : "Something went differently.");
  return ok ? 0 : 1;
}
