// In-process servers: registration lookup, loading, placement by threading
// model, unloading (see inproc_server.h and docs/inproc_servers.md).
#include "com/inproc_server.h"

#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "apartments/clock.h"
#include "apartments/inproc_server.h"
#include "apartments/win32.h"
#include "apartments/win32_inproc.h"
#include "base/thread_state.h"
#include "com/apartment.h"
#include "com/error_info.h"

namespace apartments::internal {
namespace {

constexpr std::string_view kSource = "CoGetClassObject";

// Windows' default unload delay for CoFreeUnusedLibraries (10 minutes).
constexpr auto kDefaultUnloadDelay = std::chrono::minutes(10);

enum class Model { kLegacy, kApartment, kFree, kBoth, kNeutral };

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Registry values are compared case-insensitively, as Windows compares
// ThreadingModel; empty means absent (the legacy model).
bool ParseModel(std::string_view text, Model* model) {
  if (text.empty()) {
    *model = Model::kLegacy;
  } else if (EqualsIgnoringCase(text, "Apartment")) {
    *model = Model::kApartment;
  } else if (EqualsIgnoringCase(text, "Free")) {
    *model = Model::kFree;
  } else if (EqualsIgnoringCase(text, "Both")) {
    *model = Model::kBoth;
  } else if (EqualsIgnoringCase(text, "Neutral")) {
    *model = Model::kNeutral;
  } else {
    return false;
  }
  return true;
}

struct Library {
  std::string path;
  void* handle = nullptr;
  LPFNGETCLASSOBJECT get_class_object = nullptr;
  LPFNCANUNLOADNOW can_unload_now = nullptr;  // Null: never unloaded.
  int pins = 0;
  // A class of it was used with Free, Both or Neutral: the unload delay
  // applies (CoFreeUnusedLibrariesEx).
  bool delayed = false;
  bool candidate = false;
  Clock::TimePoint candidate_since{};
};

// The runtime's STA for Apartment classes created from the MTA (and legacy
// classes when no main STA is alive): a thread that pumps until told to quit.
struct HostSta {
  std::thread thread;
  ApartmentRef apartment;
  DWORD tid = 0;
};

class InprocServers {
 public:
  static InprocServers& Get() {
    // Leaked on purpose: the host STA thread may still run at exit, and
    // loaded servers stay loaded until the process ends, as on Windows.
    static auto* servers = new InprocServers();
    return *servers;
  }

  // Loads (or finds) the library and pins it. Explains failures.
  HRESULT Pin(const std::string& path, Model model, Library** out) {
    std::lock_guard lock(mu_);
    auto it = libraries_.find(path);
    if (it == libraries_.end()) {
      dlerror();
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        const char* why = dlerror();
        SetCallErrorInfo(CO_E_DLLNOTFOUND,
                         "the in-process server '" + path + "' did not load: " +
                             (why != nullptr ? why : "dlopen failed"),
                         kSource);
        return CO_E_DLLNOTFOUND;
      }
      auto get = reinterpret_cast<LPFNGETCLASSOBJECT>(dlsym(handle, "DllGetClassObject"));
      if (get == nullptr) {
        dlclose(handle);
        SetCallErrorInfo(CO_E_ERRORINDLL,
                         "the in-process server '" + path +
                             "' does not export DllGetClassObject (extern \"C\", default "
                             "visibility; apartments/inproc_server.h's "
                             "APARTMENTS_INPROC_SERVER_END defines it)",
                         kSource);
        return CO_E_ERRORINDLL;
      }
      auto library = std::make_unique<Library>();
      library->path = path;
      library->handle = handle;
      library->get_class_object = get;
      library->can_unload_now =
          reinterpret_cast<LPFNCANUNLOADNOW>(dlsym(handle, "DllCanUnloadNow"));
      it = libraries_.emplace(path, std::move(library)).first;
    }
    Library* library = it->second.get();
    ++library->pins;
    library->candidate = false;  // Used again: back to the active list.
    if (model == Model::kFree || model == Model::kBoth || model == Model::kNeutral) {
      library->delayed = true;
    }
    *out = library;
    return S_OK;
  }

  void Unpin(Library* library) {
    std::lock_guard lock(mu_);
    --library->pins;
  }

  void FreeUnused(DWORD delay_ms) {
    const auto delay = delay_ms == INFINITE
                           ? std::chrono::duration_cast<Clock::Duration>(kDefaultUnloadDelay)
                           : std::chrono::duration_cast<Clock::Duration>(
                                 std::chrono::milliseconds(delay_ms));
    const Clock::TimePoint now = GetClock().Now();
    std::vector<void*> to_close;
    {
      std::lock_guard lock(mu_);
      for (auto it = libraries_.begin(); it != libraries_.end();) {
        Library& library = *it->second;
        const bool can_unload = library.pins == 0 && library.can_unload_now != nullptr &&
                                library.can_unload_now() == S_OK;
        if (!can_unload) {
          library.candidate = false;
          ++it;
          continue;
        }
        const auto wait = library.delayed ? delay : Clock::Duration::zero();
        if (wait == Clock::Duration::zero() ||
            (library.candidate && now - library.candidate_since >= wait)) {
          to_close.push_back(library.handle);
          it = libraries_.erase(it);
          continue;
        }
        if (!library.candidate) {
          library.candidate = true;
          library.candidate_since = now;
        }
        ++it;
      }
    }
    // Outside the lock: a server's static destructors may call into COM.
    for (void* handle : to_close) dlclose(handle);
  }

  // The host STA, started on first use. Explains failures.
  HRESULT HostStaApartment(REFCLSID clsid, ApartmentRef* out) {
    std::lock_guard lock(host_mu_);
    if (host_sta_ && !host_sta_->apartment->IsShutDown()) {
      *out = host_sta_->apartment;
      return S_OK;
    }
    StopHostSta();
    auto host = std::make_unique<HostSta>();
    std::mutex ready_mu;
    std::condition_variable ready_cv;
    bool ready = false;
    HRESULT start_hr = S_OK;
    // Named for diagnostics (explanations, wait chains, apartments-wct show
    // the thread's name): which class made the runtime start it.
    const std::string name = "host STA (for " + ClassEntryFileName(clsid) + ")";
    host->thread = std::thread([&, name, raw = host.get()] {
      SetThreadDescription(GetCurrentThread(), Utf8ToWide(name).c_str());
      const HRESULT hr = CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
      MSG msg;
      if (SUCCEEDED(hr)) {
        PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // The queue exists before anyone posts.
        raw->apartment = CurrentApartment();
        raw->tid = GetCurrentThreadId();
      }
      {
        // Notified under the lock: the waiter destroys `ready_cv` as soon as
        // it returns, which it cannot do before this lock is released (TSan
        // saw notify_one racing with the destructor).
        std::lock_guard ready_lock(ready_mu);
        start_hr = hr;
        ready = true;
        ready_cv.notify_one();
      }
      if (FAILED(hr)) return;
      while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
      CoUninitialize();
    });
    {
      std::unique_lock ready_lock(ready_mu);
      ready_cv.wait(ready_lock, [&] { return ready; });
    }
    if (FAILED(start_hr)) {
      host->thread.join();
      SetCallErrorInfo(E_OUTOFMEMORY,
                       "the host STA for " + ClassEntryFileName(clsid) +
                           " could not start: CoInitializeEx failed on its thread",
                       kSource);
      return E_OUTOFMEMORY;
    }
    host_sta_ = std::move(host);
    *out = host_sta_->apartment;
    return S_OK;
  }

  // The MTA, kept alive by the runtime (a host MTA) once a Free class needed
  // it while the process had none.
  HRESULT HostMtaApartment(ApartmentRef* out) {
    std::lock_guard lock(host_mu_);
    if (mta_cookie_ == nullptr) {
      const HRESULT hr = CoIncrementMTAUsage(&mta_cookie_);
      if (FAILED(hr)) {
        mta_cookie_ = nullptr;
        SetCallErrorInfo(hr, "the host MTA could not start (CoIncrementMTAUsage failed)",
                         kSource);
        return hr;
      }
    }
    *out = MtaApartmentIfAny();
    return *out ? S_OK : E_UNEXPECTED;
  }

  DWORD HostStaTid() {
    std::lock_guard lock(host_mu_);
    return host_sta_ ? host_sta_->tid : 0;
  }

  void ShutdownHosts() {
    std::lock_guard lock(host_mu_);
    StopHostSta();
    if (mta_cookie_ != nullptr) {
      (void)CoDecrementMTAUsage(mta_cookie_);
      mta_cookie_ = nullptr;
    }
  }

  bool IsLoaded(const std::string& path) {
    std::lock_guard lock(mu_);
    return libraries_.count(path) != 0;
  }
  std::size_t LoadedCount() {
    std::lock_guard lock(mu_);
    return libraries_.size();
  }

 private:
  void StopHostSta() {  // Holding host_mu_.
    if (!host_sta_) return;
    PostThreadMessageW(host_sta_->tid, WM_QUIT, 0, 0);
    host_sta_->thread.join();
    host_sta_.reset();
  }

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Library>> libraries_;  // Guarded by mu_.
  // Serializes starting and stopping the host apartments.
  std::mutex host_mu_;
  std::unique_ptr<HostSta> host_sta_;         // Guarded by host_mu_.
  CO_MTA_USAGE_COOKIE mta_cookie_ = nullptr;  // Guarded by host_mu_.
};

// Where an object of `model` created from `current` lives
// (docs/inproc_servers.md, after Microsoft's InprocServer32 page).
HRESULT ChooseApartment(Model model, const ApartmentRef& current, REFCLSID clsid,
                        ApartmentRef* target) {
  const bool in_sta = current->kind() == ApartmentKind::kSta;
  switch (model) {
    case Model::kBoth:
    case Model::kNeutral:  // No neutral apartment here: as Both (see the doc).
      *target = current;
      return S_OK;
    case Model::kApartment:
      if (in_sta) {
        *target = current;
        return S_OK;
      }
      return InprocServers::Get().HostStaApartment(clsid, target);
    case Model::kFree:
      if (!in_sta) {
        *target = current;
        return S_OK;
      }
      if (ApartmentRef mta = MtaApartmentIfAny(); mta && !mta->IsShutDown()) {
        *target = std::move(mta);
        return S_OK;
      }
      return InprocServers::Get().HostMtaApartment(target);
    case Model::kLegacy:
      if (ApartmentRef main = MainStaApartment(); main && !main->IsShutDown()) {
        *target = std::move(main);
        return S_OK;
      }
      // No main STA: the host STA, which becomes the main STA when it is the
      // process's first (Windows: "COM creates a host STA").
      return InprocServers::Get().HostStaApartment(clsid, target);
  }
  return E_UNEXPECTED;
}

std::string HResultText(HRESULT hr) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", static_cast<unsigned>(hr));
  return text;
}

}  // namespace

HRESULT GetInprocServerClassObject(REFCLSID clsid, REFIID riid, void** ppv) {
  ClassEntry entry;
  if (!ReadClassEntry(clsid, &entry)) {
    std::string dirs;
    for (const std::string& dir : ClassEntryDirectories()) dirs += (dirs.empty() ? "" : ", ") + dir;
    SetCallErrorInfo(REGDB_E_CLASSNOTREG,
                     "class " + ClassEntryFileName(clsid) +
                         " has no class object registered at run time (CoRegisterClassObject) "
                         "and no registration entry in " +
                         (dirs.empty() ? std::string("(no directories)") : dirs) +
                         " (apartments-regsvr writes one)",
                     kSource);
    return REGDB_E_CLASSNOTREG;
  }
  if (entry.library_path.empty()) {
    SetCallErrorInfo(REGDB_E_CLASSNOTREG,
                     "the registration entry " + entry.entry_path +
                         " has no InprocServer32 line (the server library's path)",
                     kSource);
    return REGDB_E_CLASSNOTREG;
  }
  Model model;
  if (!ParseModel(entry.threading_model, &model)) {
    SetCallErrorInfo(REGDB_E_BADTHREADINGMODEL,
                     "the registration entry " + entry.entry_path + " has ThreadingModel=" +
                         entry.threading_model +
                         "; expected Apartment, Free, Both, Neutral, or none (legacy: main STA)",
                     kSource);
    return REGDB_E_BADTHREADINGMODEL;
  }
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  InprocServers& servers = InprocServers::Get();
  Library* library = nullptr;
  HRESULT hr = servers.Pin(entry.library_path, model, &library);
  if (FAILED(hr)) return hr;
  ApartmentRef target;
  hr = ChooseApartment(model, current, clsid, &target);
  if (SUCCEEDED(hr)) {
    const LPFNGETCLASSOBJECT get = library->get_class_object;
    // DllGetClassObject's own answer, to explain its failures (the channel
    // explains its own).
    HRESULT server_hr = S_OK;
    if (target->IsCurrent()) {
      hr = server_hr = get(clsid, riid, ppv);
    } else {
      // Got and marshaled in the object's apartment, unmarshaled here: the
      // caller gets a proxy, as from Windows' host apartments. `server_hr`
      // and `stream` are read after the call returned (the channel's wait
      // orders them).
      IStream* stream = nullptr;
      hr = InvokeInApartment(target, [&]() -> HRESULT {
        IUnknown* object = nullptr;
        server_hr = get(clsid, riid, reinterpret_cast<void**>(&object));
        if (FAILED(server_hr)) return server_hr;
        const HRESULT marshaled = CoMarshalInterThreadInterfaceInStream(riid, object, &stream);
        object->Release();
        return marshaled;
      });
      if (SUCCEEDED(hr)) hr = CoGetInterfaceAndReleaseStream(stream, riid, ppv);
    }
    if (server_hr == CLASS_E_CLASSNOTAVAILABLE) {
      SetCallErrorInfo(server_hr,
                       "the in-process server '" + entry.library_path + "' does not serve " +
                           ClassEntryFileName(clsid) +
                           " (its DllGetClassObject said CLASS_E_CLASSNOTAVAILABLE)",
                       kSource);
    } else if (FAILED(server_hr)) {
      SetCallErrorInfo(server_hr,
                       "DllGetClassObject of the in-process server '" + entry.library_path +
                           "' failed for " + ClassEntryFileName(clsid) + ": " +
                           HResultText(server_hr),
                       kSource);
    }
  }
  servers.Unpin(library);
  return hr;
}

DWORD InprocHostStaThreadIdForTesting() { return InprocServers::Get().HostStaTid(); }

bool IsInprocServerLoadedForTesting(const std::string& path) {
  return InprocServers::Get().IsLoaded(path);
}

std::size_t LoadedInprocServersForTesting() { return InprocServers::Get().LoadedCount(); }

void ShutdownInprocHostsForTesting() { InprocServers::Get().ShutdownHosts(); }

}  // namespace apartments::internal

extern "C" {

void WINAPI CoFreeUnusedLibrariesEx(DWORD dwUnloadDelay, DWORD dwReserved) {
  apartments::internal::InprocServers::Get().FreeUnused(dwUnloadDelay);
}

void WINAPI CoFreeUnusedLibraries(void) { CoFreeUnusedLibrariesEx(INFINITE, 0); }

}  // extern "C"
