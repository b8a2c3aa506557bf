// apartments/inproc_server.h
//
// COM classes in shared libraries (in-process servers): the class
// registration entries, and what a server needs to export its classes in a
// few lines. Header-only: a server library includes it and does NOT link the
// apartments library (the process that loads it has the runtime; a second
// copy inside the server would be a second runtime).
//
// A server (docs/inproc_servers.md has the whole recipe):
//
//   class Greeter final : public apartments::InprocObject<Greeter, IGreeter> {
//    public:
//     STDMETHODIMP Greet(...) override { ... }
//   };
//
//   APARTMENTS_INPROC_SERVER_BEGIN
//     APARTMENTS_INPROC_CLASS(CLSID_Greeter, Greeter, "Apartment")
//   APARTMENTS_INPROC_SERVER_END
//
// Build it with -fvisibility=hidden (CMake: CXX_VISIBILITY_PRESET hidden,
// VISIBILITY_INLINES_HIDDEN ON) so that its object counts are its own; the
// four exports are marked visible by the macros. With GCC also build it with
// -fno-gnu-unique: a GNU unique symbol (a static inside an inline function of
// a header, the standard library's included) makes the loader refuse to
// unload the library, so CoFreeUnusedLibraries could never unmap it.
//
// Registration entries: one file per class, named by the CLSID in registry
// form ("{0A1B...}"), holding `key=value` lines:
//   InprocServer32=/absolute/path/libserver.so
//   ThreadingModel=Apartment      (Apartment, Free, Both, Neutral; absent or
//                                  empty: the legacy model, main STA)
// Looked up in the directories ClassEntryDirectories() lists, first match
// wins (the per-user directory shadows the system one, as HKCU shadows HKLM
// in HKCR).
#ifndef APARTMENTS_INPROC_SERVER_H_
#define APARTMENTS_INPROC_SERVER_H_

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "apartments/com_object.h"
#include "apartments/win32_com.h"
#include "apartments/win32_errors.h"
#include "apartments/win32_inproc.h"

namespace apartments {

// --- Registration entries ------------------------------------------------------

// Where a registration is written.
enum class RegistrationScope {
  // $APARTMENTS_CLASS_PATH's first directory when set, else
  // $XDG_CONFIG_HOME/apartments/classes, else ~/.config/apartments/classes.
  kUser,
  // /etc/apartments/classes (needs the rights to write there).
  kSystem,
};

inline constexpr const char* kSystemClassDirectory = "/etc/apartments/classes";

// ClassEntryDirectories()
//
// The directories searched for class entries, in order. When the environment
// variable APARTMENTS_CLASS_PATH is set (a ':'-separated list, for tests and
// sandboxes), exactly its directories; otherwise the per-user directory
// ($XDG_CONFIG_HOME/apartments/classes, or ~/.config/apartments/classes)
// then /etc/apartments/classes. Thread safety: any thread (reads the
// environment).
inline std::vector<std::string> ClassEntryDirectories() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("APARTMENTS_CLASS_PATH"); path != nullptr) {
    std::string_view rest = path;
    while (!rest.empty()) {
      const std::size_t colon = rest.find(':');
      std::string_view dir = rest.substr(0, colon);
      if (!dir.empty()) dirs.emplace_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    return dirs;
  }
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && xdg[0] == '/') {
    dirs.push_back(std::string(xdg) + "/apartments/classes");
  } else if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != 0) {
    dirs.push_back(std::string(home) + "/.config/apartments/classes");
  }
  dirs.emplace_back(kSystemClassDirectory);
  return dirs;
}

// ClassEntryFileName()
//
// The entry's file name: the CLSID in registry form, upper case, with braces
// ("{00000323-0000-0000-C000-000000000046}").
inline std::string ClassEntryFileName(REFCLSID clsid) {
  char text[40];
  std::snprintf(text, sizeof text, "{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
                static_cast<unsigned>(clsid.Data1), clsid.Data2, clsid.Data3, clsid.Data4[0],
                clsid.Data4[1], clsid.Data4[2], clsid.Data4[3], clsid.Data4[4], clsid.Data4[5],
                clsid.Data4[6], clsid.Data4[7]);
  return text;
}

// A class's registration as read back.
struct ClassEntry {
  std::string entry_path;       // The file it came from.
  std::string library_path;     // InprocServer32; "" when the entry has none.
  std::string threading_model;  // ThreadingModel as written; "" when absent.
  // LocalServer32: the server executable's path, launched with -Embedding by
  // CLSCTX_LOCAL_SERVER activation (docs/out_of_process.md); "" when absent.
  std::string local_server;
};

// ReadClassEntry()
//
// Finds `clsid`'s entry in ClassEntryDirectories() (first match) and parses
// it: `key=value` lines, keys case-insensitive (as registry value names),
// blank lines and lines starting with '#' ignored. Returns false when no
// directory has an entry for it (unreadable files count as absent).
inline bool ReadClassEntry(REFCLSID clsid, ClassEntry* entry) {
  const std::string name = ClassEntryFileName(clsid);
  for (const std::string& dir : ClassEntryDirectories()) {
    const std::string path = dir + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "re");
    if (f == nullptr) continue;
    *entry = ClassEntry{};
    entry->entry_path = path;
    char line[4096];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      std::string_view text = line;
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
      if (text.empty() || text.front() == '#') continue;
      const std::size_t eq = text.find('=');
      if (eq == std::string_view::npos) continue;
      std::string key(text.substr(0, eq));
      for (char& c : key) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      const std::string_view value = text.substr(eq + 1);
      if (key == "inprocserver32") entry->library_path = value;
      if (key == "threadingmodel") entry->threading_model = value;
      if (key == "localserver32") entry->local_server = value;
    }
    std::fclose(f);
    return true;
  }
  return false;
}

// What RegisterInprocServer writes.
struct InprocServerRegistration {
  CLSID clsid{};
  // The shared library; should be absolute (dlopen of a bare name searches
  // the loader's path instead).
  std::string library_path;
  // "Apartment", "Free", "Both", "Neutral", or "" for the legacy model.
  std::string threading_model;
  RegistrationScope scope = RegistrationScope::kUser;
};

namespace internal {

inline std::string ClassEntryDirectoryFor(RegistrationScope scope) {
  if (scope == RegistrationScope::kSystem) return kSystemClassDirectory;
  std::vector<std::string> dirs = ClassEntryDirectories();
  return dirs.empty() || dirs.front() == kSystemClassDirectory ? std::string() : dirs.front();
}

// mkdir -p; true when `dir` exists as a directory afterwards.
inline bool MakeDirectories(const std::string& dir) {
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    const std::string prefix = dir.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  struct stat st;
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

inline HRESULT RegistrationErrno(int error) {
  return error == EACCES || error == EPERM || error == EROFS ? E_ACCESSDENIED : SELFREG_E_CLASS;
}

}  // namespace internal

// RegisterInprocServer()
//
// Writes (or replaces) the class's entry in the directory of `scope`,
// atomically (a reader sees the old entry or the new one). The Linux form of
// what regsvr32 makes a DllRegisterServer write; apartments-regsvr and
// APARTMENTS_INPROC_SERVER_END's DllRegisterServer call it.
// Returns S_OK; E_INVALIDARG for an empty library path or a threading model
// with a line break; E_ACCESSDENIED when the directory is not writable;
// SELFREG_E_CLASS for other file-system failures (nothing half-written).
inline HRESULT RegisterInprocServer(const InprocServerRegistration& registration) {
  if (registration.library_path.empty() ||
      registration.library_path.find_first_of("\r\n") != std::string::npos ||
      registration.threading_model.find_first_of("\r\n") != std::string::npos) {
    return E_INVALIDARG;
  }
  const std::string dir = internal::ClassEntryDirectoryFor(registration.scope);
  if (dir.empty()) return SELFREG_E_CLASS;
  if (!internal::MakeDirectories(dir)) return internal::RegistrationErrno(errno);
  const std::string path = dir + "/" + ClassEntryFileName(registration.clsid);
  // snprintf, not std::to_string: the latter's digit table is a GNU unique
  // symbol, which makes a server that registers itself impossible to unload.
  char pid[24];
  std::snprintf(pid, sizeof pid, ".tmp.%ld", static_cast<long>(::getpid()));
  const std::string temp = path + pid;
  std::FILE* f = std::fopen(temp.c_str(), "we");
  if (f == nullptr) return internal::RegistrationErrno(errno);
  std::string text = "# apartments in-process server (docs/inproc_servers.md)\nInprocServer32=" +
                     registration.library_path + "\n";
  if (!registration.threading_model.empty()) {
    text += "ThreadingModel=" + registration.threading_model + "\n";
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed || std::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temp.c_str());
    return internal::RegistrationErrno(error);
  }
  return S_OK;
}

// UnregisterInprocServer()
//
// Removes the class's entry from the directory of `scope`. Returns S_OK (also
// when there was none, as DllUnregisterServer of an unregistered server);
// E_ACCESSDENIED; SELFREG_E_CLASS.
inline HRESULT UnregisterInprocServer(REFCLSID clsid,
                                      RegistrationScope scope = RegistrationScope::kUser) {
  const std::string dir = internal::ClassEntryDirectoryFor(scope);
  if (dir.empty()) return SELFREG_E_CLASS;
  const std::string path = dir + "/" + ClassEntryFileName(clsid);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return internal::RegistrationErrno(errno);
  return S_OK;
}

// --- Writing a server --------------------------------------------------------------

// The server's counts for DllCanUnloadNow: live objects (InprocObject and
// InprocClassFactory instances) and IClassFactory::LockServer locks. One per
// server library when built with hidden visibility (see the file comment).
// Thread safety: any thread.
class InprocModule {
 public:
  static InprocModule& Get() noexcept {
    static InprocModule module;
    return module;
  }
  void AddObject() noexcept { objects_.fetch_add(1, std::memory_order_relaxed); }
  // Release: the object's last writes happen-before an unload that sees 0.
  void RemoveObject() noexcept { objects_.fetch_sub(1, std::memory_order_release); }
  void Lock() noexcept { locks_.fetch_add(1, std::memory_order_relaxed); }
  void Unlock() noexcept { locks_.fetch_sub(1, std::memory_order_release); }
  // S_OK when nothing is alive or locked, else S_FALSE (DllCanUnloadNow).
  HRESULT CanUnloadNow() const noexcept {
    return objects_.load(std::memory_order_acquire) == 0 &&
                   locks_.load(std::memory_order_acquire) == 0
               ? S_OK
               : S_FALSE;
  }
  long ObjectCount() const noexcept { return objects_.load(std::memory_order_acquire); }

 private:
  std::atomic<long> objects_{0};
  std::atomic<long> locks_{0};
};

// InprocObject<T, Interfaces...>: ComObject (apartments/com_object.h) that
// counts toward its server's DllCanUnloadNow while alive.
template <typename Derived, ComInterface... Interfaces>
class InprocObject : public ComObject<Derived, Interfaces...> {
 protected:
  InprocObject() noexcept { InprocModule::Get().AddObject(); }
  ~InprocObject() override { InprocModule::Get().RemoveObject(); }
};

// InprocClassFactory<T>: the class object of a default-constructible
// InprocObject T. CreateInstance makes a T (no aggregation:
// CLASS_E_NOAGGREGATION; E_OUTOFMEMORY; the T's QueryInterface result);
// LockServer counts toward DllCanUnloadNow.
template <typename T>
class InprocClassFactory final : public InprocObject<InprocClassFactory<T>, IClassFactory> {
 public:
  STDMETHODIMP CreateInstance(IUnknown* outer, REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    *ppv = nullptr;
    if (outer != nullptr) return CLASS_E_NOAGGREGATION;
    T* object = new (std::nothrow) T();
    if (object == nullptr) return E_OUTOFMEMORY;
    const HRESULT hr = object->QueryInterface(riid, ppv);
    object->Release();
    return hr;
  }
  STDMETHODIMP LockServer(BOOL lock) override {
    if (lock) {
      InprocModule::Get().Lock();
    } else {
      InprocModule::Get().Unlock();
    }
    return S_OK;
  }
};

// One class a server exports (APARTMENTS_INPROC_CLASS).
struct InprocClass {
  CLSID clsid;
  IClassFactory* (*make_factory)();  // A new class object, count 1; null: out of memory.
  const char* threading_model;       // Written by DllRegisterServer ("" = legacy).
};

namespace internal {

template <typename T>
IClassFactory* MakeInprocFactory() {
  return new (std::nothrow) InprocClassFactory<T>();
}

template <std::size_t N>
HRESULT InprocGetClassObject(const InprocClass (&classes)[N], REFCLSID clsid, REFIID riid,
                             void** ppv) {
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  for (const InprocClass& c : classes) {
    if (c.clsid != clsid) continue;
    IClassFactory* factory = c.make_factory();
    if (factory == nullptr) return E_OUTOFMEMORY;
    const HRESULT hr = factory->QueryInterface(riid, ppv);
    factory->Release();
    return hr;
  }
  return CLASS_E_CLASSNOTAVAILABLE;
}

// The path of the shared library holding `address`, or "".
inline std::string LibraryPathOf(const void* address) {
  Dl_info info{};
  if (::dladdr(address, &info) == 0 || info.dli_fname == nullptr) return {};
  return info.dli_fname;
}

template <std::size_t N>
HRESULT InprocRegister(const InprocClass (&classes)[N], bool install) {
  const std::string path = LibraryPathOf(&classes);
  if (path.empty()) return SELFREG_E_CLASS;
  for (const InprocClass& c : classes) {
    const HRESULT hr =
        install ? RegisterInprocServer({.clsid = c.clsid,
                                        .library_path = path,
                                        .threading_model = c.threading_model,
                                        .scope = RegistrationScope::kUser})
                : UnregisterInprocServer(c.clsid);
    if (FAILED(hr)) return hr;
  }
  return S_OK;
}

}  // namespace internal
}  // namespace apartments

// APARTMENTS_INPROC_SERVER_BEGIN / APARTMENTS_INPROC_CLASS(clsid, Class,
// "ThreadingModel") / APARTMENTS_INPROC_SERVER_END: the server's class table
// and its four exports, once per server library, at global scope:
//   DllGetClassObject    a new InprocClassFactory<Class> for a listed CLSID,
//                        CLASS_E_CLASSNOTAVAILABLE for others
//   DllCanUnloadNow      S_OK when no object or class object is alive and
//                        no LockServer lock is held, else S_FALSE
//   DllRegisterServer    writes every listed class's entry (per-user scope)
//                        naming this library (found with dladdr)
//   DllUnregisterServer  removes them
#define APARTMENTS_INPROC_SERVER_BEGIN \
  static const ::apartments::InprocClass kApartmentsInprocClasses[] = {
#define APARTMENTS_INPROC_CLASS(clsid, Class, threading_model) \
  {clsid, &::apartments::internal::MakeInprocFactory<Class>, threading_model},
#define APARTMENTS_INPROC_SERVER_END                                                      \
  }                                                                                       \
  ;                                                                                       \
  extern "C" __attribute__((visibility("default"))) HRESULT STDAPICALLTYPE               \
  DllGetClassObject(REFCLSID rclsid, REFIID riid, LPVOID* ppv) {                          \
    return ::apartments::internal::InprocGetClassObject(kApartmentsInprocClasses, rclsid, \
                                                        riid, ppv);                       \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) HRESULT STDAPICALLTYPE               \
  DllCanUnloadNow(void) {                                                                 \
    return ::apartments::InprocModule::Get().CanUnloadNow();                              \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) HRESULT STDAPICALLTYPE               \
  DllRegisterServer(void) {                                                               \
    return ::apartments::internal::InprocRegister(kApartmentsInprocClasses, true);        \
  }                                                                                       \
  extern "C" __attribute__((visibility("default"))) HRESULT STDAPICALLTYPE               \
  DllUnregisterServer(void) {                                                             \
    return ::apartments::internal::InprocRegister(kApartmentsInprocClasses, false);       \
  }

#endif  // APARTMENTS_INPROC_SERVER_H_
