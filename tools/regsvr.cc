// apartments-regsvr: registers and unregisters in-process servers, the Linux
// form of regsvr32 (docs/inproc_servers.md).
//
//   apartments-regsvr [--system] LIBRARY          calls LIBRARY's DllRegisterServer
//   apartments-regsvr -u [--system] LIBRARY       calls its DllUnregisterServer
//   apartments-regsvr [--system] --clsid {CLSID} [--threading-model MODEL] LIBRARY
//                                                  writes the entry itself
//   apartments-regsvr -u [--system] --clsid {CLSID}
//                                                  removes the entry
//   apartments-regsvr [--system] --clsid {CLSID} --local-server EXECUTABLE
//                                                  writes an out-of-process
//                                                  server's entry (LocalServer32,
//                                                  docs/out_of_process.md)
//
// --system writes /etc/apartments/classes instead of the per-user directory
// (for a server's own DllRegisterServer: by pointing APARTMENTS_CLASS_PATH
// there while it runs). Exit status 0 on success, 1 on failure (with the
// HRESULT and the loader's message), 2 on bad usage.
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

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
               "       apartments-regsvr -u [--system] --clsid {CLSID}\n"
               "       apartments-regsvr [--system] --clsid {CLSID} --local-server EXECUTABLE\n");
  return 2;
}

// Writes `LocalServer32=executable` as the class's entry, atomically (as
// RegisterInprocServer writes its own).
HRESULT RegisterLocalServer(REFCLSID clsid, const std::string& executable,
                            apartments::RegistrationScope scope) {
  if (executable.empty() || executable.find_first_of("\r\n") != std::string::npos) {
    return E_INVALIDARG;
  }
  const std::string dir = apartments::internal::ClassEntryDirectoryFor(scope);
  if (dir.empty()) return SELFREG_E_CLASS;
  if (!apartments::internal::MakeDirectories(dir)) return apartments::internal::RegistrationErrno(errno);
  const std::string path = dir + "/" + apartments::ClassEntryFileName(clsid);
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  std::FILE* f = std::fopen(temp.c_str(), "we");
  if (f == nullptr) return apartments::internal::RegistrationErrno(errno);
  const std::string text =
      "# apartments out-of-process server (docs/out_of_process.md)\nLocalServer32=" + executable + "\n";
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temp.c_str());
    return apartments::internal::RegistrationErrno(error);
  }
  return S_OK;
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
  std::string clsid_text, model, library, local_server;
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
    } else if (arg == "--local-server" && i + 1 < argc) {
      local_server = argv[++i];
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
      if (!library.empty() || !local_server.empty()) return Usage();
      return Report("removing the entry", apartments::UnregisterInprocServer(clsid, scope));
    }
    if (!local_server.empty()) {
      if (!library.empty() || !model.empty()) return Usage();
      char* absolute = realpath(local_server.c_str(), nullptr);
      const std::string path = absolute != nullptr ? absolute : local_server;
      free(absolute);
      return Report("writing the entry", RegisterLocalServer(clsid, path, scope));
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
  if (library.empty() || !model.empty() || !local_server.empty()) return Usage();
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
