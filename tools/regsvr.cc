// apartments-regsvr: registers and unregisters in-process servers, the Linux
// form of regsvr32 (docs/inproc_servers.md).
//
//   apartments-regsvr [--system] LIBRARY          calls LIBRARY's DllRegisterServer
//   apartments-regsvr -u [--system] LIBRARY       calls its DllUnregisterServer
//   apartments-regsvr [--system] --clsid {CLSID} [--threading-model MODEL] LIBRARY
//                                                  writes the entry itself
//   apartments-regsvr -u [--system] --clsid {CLSID}
//                                                  removes the entry
//
// --system writes /etc/apartments/classes instead of the per-user directory
// (for a server's own DllRegisterServer: by pointing APARTMENTS_CLASS_PATH
// there while it runs). Exit status 0 on success, 1 on failure (with the
// HRESULT and the loader's message), 2 on bad usage.
#include <dlfcn.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "apartments/inproc_server.h"
#include "apartments/win32.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: apartments-regsvr [-u] [--system] LIBRARY\n"
               "       apartments-regsvr [--system] --clsid {CLSID} [--threading-model M] LIBRARY\n"
               "       apartments-regsvr -u [--system] --clsid {CLSID}\n");
  return 2;
}

int Report(const char* what, HRESULT hr) {
  if (SUCCEEDED(hr)) return 0;
  std::fprintf(stderr, "apartments-regsvr: %s failed: 0x%08X\n", what, static_cast<unsigned>(hr));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool unregister = false;
  bool system = false;
  std::string clsid_text, model, library;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-u" || arg == "/u" || arg == "--unregister") {
      unregister = true;
    } else if (arg == "--system") {
      system = true;
    } else if (arg == "--clsid" && i + 1 < argc) {
      clsid_text = argv[++i];
    } else if (arg == "--threading-model" && i + 1 < argc) {
      model = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && library.empty()) {
      library = arg;
    } else {
      return Usage();
    }
  }
  const auto scope = system ? apartments::RegistrationScope::kSystem
                            : apartments::RegistrationScope::kUser;
  if (!clsid_text.empty()) {
    const std::wstring wide(clsid_text.begin(), clsid_text.end());
    CLSID clsid;
    if (FAILED(CLSIDFromString(wide.c_str(), &clsid))) {
      std::fprintf(stderr, "apartments-regsvr: '%s' is not a CLSID\n", clsid_text.c_str());
      return 2;
    }
    if (unregister) {
      if (!library.empty()) return Usage();
      return Report("removing the entry", apartments::UnregisterInprocServer(clsid, scope));
    }
    if (library.empty()) return Usage();
    char* absolute = realpath(library.c_str(), nullptr);
    const std::string path = absolute != nullptr ? absolute : library;
    free(absolute);
    return Report("writing the entry", apartments::RegisterInprocServer({.clsid = clsid,
                                                                         .library_path = path,
                                                                         .threading_model = model,
                                                                         .scope = scope}));
  }
  if (library.empty() || !model.empty()) return Usage();
  if (system) setenv("APARTMENTS_CLASS_PATH", apartments::kSystemClassDirectory, 1);
  // A path with a '/' so that dlopen does not search the loader's path.
  char* absolute = realpath(library.c_str(), nullptr);
  const std::string path = absolute != nullptr ? absolute : library;
  free(absolute);
  void* server = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (server == nullptr) {
    std::fprintf(stderr, "apartments-regsvr: %s did not load: %s\n", path.c_str(), dlerror());
    return 1;
  }
  const char* entry = unregister ? "DllUnregisterServer" : "DllRegisterServer";
  auto* function = reinterpret_cast<HRESULT (*)()>(dlsym(server, entry));
  if (function == nullptr) {
    std::fprintf(stderr, "apartments-regsvr: %s does not export %s\n", path.c_str(), entry);
    dlclose(server);
    return 1;
  }
  const int status = Report(entry, function());
  dlclose(server);
  return status;
}
