// In-process servers: registration lookup, loading, placement by threading
// model, unloading (see inproc_server.h and docs/inproc_servers.md).
#include "com/inproc_server.h"

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

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

// A loaded server library, shared by every apartment that listed it.
struct Library {
  std::string path;
  void* handle = nullptr;
  LPFNGETCLASSOBJECT get_class_object = nullptr;
  LPFNCANUNLOADNOW can_unload_now = nullptr;  // Null: never unloaded.
  int pins = 0;   // CoGetClassObject calls using it now.
  int lists = 0;  // Apartments whose list of loaded libraries names it.
};

// A library in one apartment's list (CoFreeUnusedLibrariesEx: "COM maintains
// a list of active DLLs that have had components loaded for the apartments
// that can be hosted on the thread where this function is called").
struct Listing {
  Library* library = nullptr;
  // A class of it was used with Free, Both or Neutral: the unload delay
  // applies.
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
  HRESULT Pin(const std::string& path, Library** out) {
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
    *out = library;
    return S_OK;
  }

  // Lists the pinned `library` as loaded for `apartment` (where its class
  // object is got), or marks it used again there. False when the apartment
  // has already shut down.
  bool List(const ApartmentRef& apartment, Library* library, Model model) {
    const std::uint64_t id = apartment->id();
    bool first_in_apartment = false;
    {
      std::lock_guard lock(mu_);
      auto [lists, inserted] = lists_.try_emplace(id);
      first_in_apartment = inserted;
      auto [listing, added] = lists->second.try_emplace(library->path);
      if (added) {
        listing->second.library = library;
        ++library->lists;
      }
      listing->second.candidate = false;  // Used again: back to the active list.
      if (model == Model::kFree || model == Model::kBoth || model == Model::kNeutral) {
        listing->second.delayed = true;
      }
    }
    // Registered outside mu_: the apartment's lock is never taken under it.
    if (first_in_apartment &&
        !apartment->AddShutdownCallback([this, id] { ApartmentEnded(id); })) {
      ApartmentEnded(id);
      return false;
    }
    return true;
  }

  void Unpin(Library* library) {
    void* to_close = nullptr;
    {
      std::lock_guard lock(mu_);
      --library->pins;
      // In no apartment's list (its last apartment ended, or the call failed
      // before listing it): nothing else will ask it again.
      if (library->pins == 0 && library->lists == 0 && CanUnload(*library)) {
        to_close = Forget(library);
      }
    }
    if (to_close != nullptr) dlclose(to_close);
  }

  // CoFreeUnusedLibrariesEx on the calling thread: the libraries listed for
  // its apartment (for the MTA, also the host STA's, which hosts objects on
  // the MTA's behalf), and those no apartment lists any more.
  void FreeUnused(DWORD delay_ms) {
    const auto delay = delay_ms == INFINITE
                           ? std::chrono::duration_cast<Clock::Duration>(kDefaultUnloadDelay)
                           : std::chrono::duration_cast<Clock::Duration>(
                                 std::chrono::milliseconds(delay_ms));
    std::vector<std::uint64_t> ids;
    if (ApartmentRef current = CurrentApartment()) {
      ids.push_back(current->id());
      if (current->kind() == ApartmentKind::kMta) {
        std::lock_guard lock(host_mu_);
        if (host_sta_) ids.push_back(host_sta_->apartment->id());
      }
    }
    std::vector<void*> to_close;
    {
      std::lock_guard lock(mu_);
      const Clock::TimePoint now = GetClock().Now();
      for (std::uint64_t id : ids) {
        if (auto it = lists_.find(id); it != lists_.end()) Sweep(&it->second, delay, now, &to_close);
      }
      for (auto it = libraries_.begin(); it != libraries_.end();) {
        Library& library = *(it++)->second;
        if (library.lists == 0 && library.pins == 0 && CanUnload(library)) {
          to_close.push_back(Forget(&library));
        }
      }
    }
    // Outside the lock: a server's static destructors may call into COM.
    for (void* handle : to_close) dlclose(handle);
  }

  // The host STA, started on first use. Explains failures.
  HRESULT HostStaApartment(REFCLSID clsid, ApartmentRef* out) {
    const std::string name = "host STA (for " + ClassEntryFileName(clsid) + ")";
    auto fail = [&](HRESULT hr, const std::string& why) {
      SetCallErrorInfo(hr, "the " + name + " could not start: " + why, kSource);
      return hr;
    };
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
    const HRESULT injected = start_fault_.exchange(S_OK);
    // Named for diagnostics (explanations, wait chains, apartments-wct show
    // the thread's name): which class made the runtime start it.
    auto body = [&, raw = host.get()] {
      SetThreadDescription(GetCurrentThread(), Utf8ToWide(name).c_str());
      const HRESULT hr =
          FAILED(injected) ? injected : CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
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
    };
    try {
      host->thread = std::thread(body);
    } catch (const std::system_error& e) {  // No thread: the process is at a limit.
      return fail(E_OUTOFMEMORY, std::string("its thread was not created (") + e.what() + ")");
    }
    {
      std::unique_lock ready_lock(ready_mu);
      ready_cv.wait(ready_lock, [&] { return ready; });
    }
    if (FAILED(start_hr)) {
      host->thread.join();
      char code[16];
      std::snprintf(code, sizeof code, "0x%08X", static_cast<unsigned>(start_hr));
      return fail(E_OUTOFMEMORY, std::string("CoInitializeEx failed on its thread (") + code + ")");
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
  ApartmentRef HostStaApartmentIfAny() {
    std::lock_guard lock(host_mu_);
    return host_sta_ ? host_sta_->apartment : nullptr;
  }
  void FailNextHostStaStart(HRESULT hr) { start_fault_.store(hr); }

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
  // An apartment shut down (on its thread, or the MTA's last user's): its
  // unused libraries are unloaded, as at the end of Windows' CoUninitialize;
  // the others stay loaded (an object may outlive its apartment) and are no
  // apartment's any more.
  void ApartmentEnded(std::uint64_t id) {
    std::vector<void*> to_close;
    {
      std::lock_guard lock(mu_);
      auto it = lists_.find(id);
      if (it == lists_.end()) return;
      Sweep(&it->second, Clock::Duration::zero(), GetClock().Now(), &to_close);
      for (auto& [path, listing] : it->second) --listing.library->lists;
      lists_.erase(it);
    }
    for (void* handle : to_close) dlclose(handle);
  }

  // One apartment's list, holding mu_: a library whose DllCanUnloadNow says
  // S_OK becomes a candidate, or leaves the list once `delay` has passed since
  // (at once for Apartment and legacy libraries); a library no list names
  // and no call pins is unloaded.
  void Sweep(std::map<std::string, Listing>* list, Clock::Duration delay, Clock::TimePoint now,
             std::vector<void*>* to_close) {
    for (auto it = list->begin(); it != list->end();) {
      Listing& listing = it->second;
      Library& library = *listing.library;
      if (library.pins != 0 || !CanUnload(library)) {
        listing.candidate = false;
        ++it;
        continue;
      }
      const auto wait = listing.delayed ? delay : Clock::Duration::zero();
      if (wait == Clock::Duration::zero() ||
          (listing.candidate && now - listing.candidate_since >= wait)) {
        it = list->erase(it);
        if (--library.lists == 0) to_close->push_back(Forget(&library));
        continue;
      }
      if (!listing.candidate) {
        listing.candidate = true;
        listing.candidate_since = now;
      }
      ++it;
    }
  }

  // Holding mu_. DllCanUnloadNow is asked under the lock so that no
  // CoGetClassObject pins the library between its answer and the dlclose.
  static bool CanUnload(const Library& library) {
    return library.can_unload_now != nullptr && library.can_unload_now() == S_OK;
  }

  // Holding mu_: drops the library from the table; returns the handle to
  // dlclose once the lock is released.
  void* Forget(Library* library) {
    void* handle = library->handle;
    libraries_.erase(library->path);
    return handle;
  }

  void StopHostSta() {  // Holding host_mu_.
    if (!host_sta_) return;
    PostThreadMessageW(host_sta_->tid, WM_QUIT, 0, 0);
    host_sta_->thread.join();
    host_sta_.reset();
  }

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Library>> libraries_;  // Guarded by mu_.
  // Each apartment's list of loaded libraries, by apartment id (never
  // reused). Guarded by mu_.
  std::map<std::uint64_t, std::map<std::string, Listing>> lists_;
  // Serializes starting and stopping the host apartments.
  std::mutex host_mu_;
  std::unique_ptr<HostSta> host_sta_;         // Guarded by host_mu_.
  CO_MTA_USAGE_COOKIE mta_cookie_ = nullptr;  // Guarded by host_mu_.
  std::atomic<HRESULT> start_fault_{S_OK};    // FailNextHostStaStartForTesting.
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
  HRESULT hr = servers.Pin(entry.library_path, &library);
  if (FAILED(hr)) return hr;
  ApartmentRef target;
  hr = ChooseApartment(model, current, clsid, &target);
  if (SUCCEEDED(hr) && !servers.List(target, library, model)) {
    SetCallErrorInfo(RPC_E_DISCONNECTED,
                     target->Describe() + ", where " + ClassEntryFileName(clsid) +
                         "'s objects live, has shut down",
                     kSource);
    hr = RPC_E_DISCONNECTED;
  }
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

ApartmentRef InprocHostStaApartmentForTesting() { return InprocServers::Get().HostStaApartmentIfAny(); }

void FailNextHostStaStartForTesting(HRESULT hr) { InprocServers::Get().FailNextHostStaStart(hr); }

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
