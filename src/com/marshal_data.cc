// Marshal data (marshal_data.h).
#include "com/marshal_data.h"

#include <cstring>
#include <mutex>
#include <new>
#include <utility>

#include "apartments/errors.h"
#include "com/com_runtime.h"
#include "com/free_threaded_marshaler.h"
#include "com/marshal_text.h"
#include "com/proxy_manager.h"

namespace apartments::internal {
namespace {

bool IsAgile(IUnknown* unk) {
  IUnknown* agile = nullptr;
  if (SUCCEEDED(unk->QueryInterface(IID_IAgileObject, reinterpret_cast<void**>(&agile))) &&
      agile != nullptr) {
    agile->Release();
    return true;
  }
  IMarshal* marshal = nullptr;
  if (FAILED(unk->QueryInterface(IID_IMarshal, reinterpret_cast<void**>(&marshal))) ||
      marshal == nullptr) {
    return false;
  }
  CLSID clsid = CLSID_NULL;
  HRESULT hr = marshal->GetUnmarshalClass(IID_IUnknown, unk, MSHCTX_INPROC, nullptr,
                                          MSHLFLAGS_NORMAL, &clsid);
  marshal->Release();
  return SUCCEEDED(hr) && clsid == kClsidInProcFreeMarshaler;
}

// The object was disconnected (CoDisconnectObject, its apartment's shutdown)
// after the packet was found connected but before its proxy was ready: the
// unmarshal fails as it would have a moment later, with CO_E_OBJNOTCONNECTED
// (win32_marshal.h), not the RPC_E_DISCONNECTED of a call through a proxy.
HRESULT FailUnmarshalRacedDisconnect(ComRuntime& runtime, const StubManager& stub) {
  std::string text;
  {
    auto guard = runtime.Lock();
    text = stub.connected ? "Cannot unmarshal: " + stub.apartment->Describe() +
                                " shut down while the proxy of " + DescribeStub(stub) +
                                " was being made."
                          : "Cannot unmarshal: " + DescribeDisconnectLocked(guard, stub) +
                                ", while the proxy was being made.";
  }
  SetCallErrorInfo(CO_E_OBJNOTCONNECTED, text, kSource);
  return CO_E_OBJNOTCONNECTED;
}

}  // namespace

HRESULT FailPacketGone(std::uint64_t packet_id) {
  SetCallErrorInfo(CO_E_OBJNOTCONNECTED,
                   "The marshal data (packet " + std::to_string(packet_id) +
                       ") is no longer valid: MSHLFLAGS_NORMAL data unmarshals only once, and "
                       "data released with CoReleaseMarshalData (or a revoked global interface "
                       "table cookie) cannot be unmarshaled.",
                   kSource);
  return CO_E_OBJNOTCONNECTED;
}

std::uint64_t MarshalPackets::Check(const WireRecord& r) const {
  std::uint64_t h = runtime_.secret() ^ 0x9e3779b97f4a7c15ull;
  auto mix = [&h](std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
  };
  mix(r.flags);
  mix(r.kind);
  mix(r.apartment_id);
  mix(r.object_id);
  mix(r.packet_id);
  std::uint64_t iid_words[2];
  std::memcpy(iid_words, &r.iid, sizeof iid_words);
  mix(iid_words[0]);
  mix(iid_words[1]);
  return h;
}

// Registers a standard-marshaling packet for interface `riid` of the object
// behind `stub`, counting it as a strong or weak export, and fills `record`.
// RPC_E_DISCONNECTED when the stub was disconnected meanwhile.
HRESULT MarshalPackets::AddStandardPacket(const std::shared_ptr<StubManager>& stub, DWORD flags,
                                          REFIID riid, bool weak, WireRecord* record) {
  auto guard = runtime_.Lock();
  if (!stub->connected) return RPC_E_DISCONNECTED;
  StubManager::State& state = stub->state.Get(guard);
  ++(weak ? state.weak : state.strong);
  Packet packet;
  packet.flags = flags;
  packet.iid = riid;
  packet.stub = stub;
  packet.apartment_id = stub->apartment_id;
  record->kind = kKindStandard;
  record->apartment_id = stub->apartment_id;
  record->object_id = stub->id;
  record->packet_id = ComRuntime::NextIdLocked(guard);
  packets_.Get(guard).emplace(record->packet_id, std::move(packet));
  record->check = Check(*record);
  return S_OK;
}

// An agile object's packet names the object itself; `itf` is the packet's
// reference.
HRESULT MarshalPackets::AddDirectPacket(IUnknown* itf, DWORD flags, REFIID riid, bool weak,
                                        WireRecord* record) {
  auto guard = runtime_.Lock();
  Packet packet;
  packet.flags = flags;
  packet.iid = riid;
  packet.direct = itf;  // the packet's reference
  // Except for TABLEWEAK data, which holds none (as the free-threaded
  // marshaler's on Windows): its object must be kept alive by its owner.
  if (weak) packet.direct->Release();
  record->kind = kKindDirect;
  record->packet_id = ComRuntime::NextIdLocked(guard);
  packets_.Get(guard).emplace(record->packet_id, std::move(packet));
  record->check = Check(*record);
  return S_OK;
}

// A proxy: the data names the original object in its own apartment.
HRESULT MarshalPackets::MarshalProxy(ProxyManager* pm, REFIID riid, DWORD flags,
                                     WireRecord* record) {
  std::unique_ptr<IUnknown, void (*)(IUnknown*)> hold(pm, [](IUnknown* p) { p->Release(); });
  HRESULT hr = pm->CheckUsable();
  if (FAILED(hr)) return hr;
  void* itf = nullptr;
  hr = pm->QueryInterface(riid, &itf);
  if (FAILED(hr)) return hr;
  static_cast<IUnknown*>(itf)->Release();
  return AddStandardPacket(pm->stub(), flags, riid, (flags & MSHLFLAGS_TABLEWEAK) != 0, record);
}

HRESULT MarshalPackets::Marshal(const ApartmentRef& current, IUnknown* unk, REFIID riid,
                                DWORD flags, WireRecord* record) {
  std::memset(record, 0, sizeof *record);
  std::memcpy(record->signature, kSignature, sizeof kSignature);
  record->flags = flags;
  record->iid = riid;
  const bool weak = (flags & MSHLFLAGS_TABLEWEAK) != 0;

  if (ProxyManager* pm = AsProxyManager(unk)) return MarshalProxy(pm, riid, flags, record);

  void* itf = nullptr;
  HRESULT hr = unk->QueryInterface(riid, &itf);
  if (FAILED(hr)) return hr;
  if (itf == nullptr) return E_NOINTERFACE;

  if (IsAgile(unk)) return AddDirectPacket(static_cast<IUnknown*>(itf), flags, riid, weak, record);
  // The interface's reference is dropped only once the stub manager holds its
  // lasting one: dropping it first lets a caller-less object's count fall back
  // to its starting value inside the call (0, 1, 0 for a fresh object, which
  // destroys it), where Windows' count never goes below 1 until the stub lets go.
  std::unique_ptr<IUnknown, void (*)(IUnknown*)> interface_ref(static_cast<IUnknown*>(itf),
                                                               [](IUnknown* p) { p->Release(); });

  IUnknown* identity = nullptr;
  hr = unk->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity));
  if (FAILED(hr)) return hr;
  std::shared_ptr<StubManager> stub;
  hr = runtime_.stubs().GetOrCreate(current, identity, &stub);
  identity->Release();
  if (FAILED(hr)) return hr;
  hr = runtime_.stubs().EnsureInterface(stub, riid);
  if (FAILED(hr)) return hr;
  return AddStandardPacket(stub, flags, riid, weak, record);
}

struct MarshalPackets::Claim {
  Packet packet;
  bool normal = false;
  bool same_apartment = false;
  IUnknown* identity = nullptr;  // a reference, in the object's own apartment
  std::string gone;              // set when the object is gone
  HRESULT gone_hr = CO_E_OBJNOTCONNECTED;
};

// The locked half of Unmarshal: takes (NORMAL) or copies the packet, and the
// references the rest needs. Requires the runtime's lock; sets no error info
// (it allocates and may release).
HRESULT MarshalPackets::ClaimLocked(const ComGuard& guard, std::uint64_t packet_id,
                                    const ApartmentRef& current, const WireRecord* expected,
                                    Claim* claim) {
  auto& packets = packets_.Get(guard);
  auto it = packets.find(packet_id);
  if (it == packets.end()) return CO_E_OBJNOTCONNECTED;  // consumed meanwhile
  if (expected != nullptr &&
      (it->second.apartment_id != expected->apartment_id ||
       (it->second.stub ? it->second.stub->id : 0) != expected->object_id ||
       it->second.flags != expected->flags || !(it->second.iid == expected->iid))) {
    return RPC_E_INVALID_OBJREF;
  }
  claim->packet = it->second;
  const bool normal = claim->normal = IsNormal(claim->packet.flags);
  if (normal) packets.erase(it);
  if (claim->packet.direct != nullptr) {
    if (!normal) claim->packet.direct->AddRef();
    return S_OK;
  }
  const auto& stub = claim->packet.stub;
  StubManager::State& state = stub->state.Get(guard);
  if (!stub->connected) {
    claim->gone = "Cannot unmarshal: " + DescribeDisconnectLocked(guard, *stub) + ".";
    // Table data asks the object's apartment for references, which no
    // longer knows the object (Windows: CO_E_OBJNOTREG).
    if (!normal && state.reason != DisconnectReason::kApartmentShutDown) {
      claim->gone_hr = CO_E_OBJNOTREG;
    }
    return S_OK;
  }
  claim->same_apartment = stub->apartment_id == current->id();
  if (claim->same_apartment) {
    claim->identity = state.identity;
    claim->identity->AddRef();
  } else if (!normal) {
    ++state.strong;  // for the proxy manager; NORMAL data hands over its own
  }
  return S_OK;
}

// The unlocked half of Unmarshal: the object, or a proxy for it.
HRESULT MarshalPackets::FinishUnmarshal(const ApartmentRef& current, Claim& claim, REFIID riid_in,
                                        void** ppv) {
  const Packet& packet = claim.packet;
  const IID& riid = riid_in == IID_NULL ? packet.iid : riid_in;
  if (packet.direct != nullptr) {
    HRESULT hr = packet.direct->QueryInterface(riid, ppv);
    packet.direct->Release();
    return hr;
  }
  if (!claim.gone.empty()) {
    SetCallErrorInfo(claim.gone_hr, claim.gone, kSource);
    return claim.gone_hr;
  }
  if (claim.same_apartment) {
    // In the object's own apartment: the object itself.
    HRESULT hr = claim.identity->QueryInterface(riid, ppv);
    claim.identity->Release();
    if (claim.normal) runtime_.stubs().ReleaseStrong(packet.stub);
    return hr;
  }
  ProxyManager* pm = nullptr;
  HRESULT hr = runtime_.proxies().GetOrCreate(current, packet.stub, &pm);
  if (FAILED(hr)) return hr;
  hr = pm->QueryInterfaceProxy(riid, ppv);
  pm->ReleaseProxy();
  if (hr == RPC_E_DISCONNECTED) return FailUnmarshalRacedDisconnect(runtime_, *packet.stub);
  return hr;
}

HRESULT MarshalPackets::Unmarshal(std::uint64_t packet_id, REFIID riid_in, void** ppv,
                                  const WireRecord* expected) {
  *ppv = nullptr;
  ApartmentRef current = CurrentApartment();
  if (!current) return CO_E_NOTINITIALIZED;
  bool missing = false;
  missing = !packets_.Get(runtime_.Lock()).contains(packet_id);
  // Error info is set outside the lock (it allocates and may release).
  if (missing) {
    return expected != nullptr ? UnmarshalStale(current, *expected, riid_in, ppv)
                               : FailPacketGone(packet_id);
  }
  Claim claim;
  {
    auto guard = runtime_.Lock();
    HRESULT hr = ClaimLocked(guard, packet_id, current, expected, &claim);
    if (FAILED(hr)) return hr;
  }
  return FinishUnmarshal(current, claim, riid_in, ppv);
}

// A proxy for marshal data whose object is gone, built without asking
// anyone: its calls fail with RPC_E_DISCONNECTED. `server` is the object's
// apartment (still alive).
HRESULT MarshalPackets::UnmarshalDisconnectedProxy(const ApartmentRef& current,
                                                   const ApartmentRef& server,
                                                   const WireRecord& record, REFIID riid,
                                                   void** ppv) {
  std::shared_ptr<StubManager> placeholder;
  try {
    placeholder = std::make_shared<StubManager>();
  } catch (const std::bad_alloc&) {
    return E_OUTOFMEMORY;
  }
  placeholder->id = record.object_id;
  placeholder->apartment = server;
  placeholder->apartment_id = record.apartment_id;
  placeholder->connected = false;
  StubManager::State& state = placeholder->state.GetWithoutLock("not yet shared: just made");
  state.reason = DisconnectReason::kReleased;
  state.disconnect_time = GetClock().Now();
  ProxyManager* manager = nullptr;
  HRESULT hr = runtime_.proxies().CreateForGoneObject(current, std::move(placeholder), &manager);
  if (FAILED(hr)) return hr;
  hr = manager->QueryInterfaceUnchecked(riid, ppv);
  manager->ReleaseProxy();
  return hr;
}

// Unmarshals a checked record whose packet no longer exists (consumed or
// released), with the outcomes Windows gives such data:
// - NORMAL data: while its object is still exported (the data was
//   consumed), CO_E_OBJNOTCONNECTED ("unmarshals only once"); once the
//   object is gone (the data was consumed or released), CO_E_OBJNOTCONNECTED
//   in the object's apartment, elsewhere a proxy whose calls return
//   RPC_E_DISCONNECTED.
// - TABLESTRONG/TABLEWEAK data released with CoReleaseMarshalData: a working
//   proxy while something else (a proxy, a lock) keeps the object exported,
//   otherwise CO_E_OBJNOTREG.
// - Data of an apartment that shut down: CO_E_OBJNOTCONNECTED.
HRESULT MarshalPackets::UnmarshalStale(const ApartmentRef& current, const WireRecord& record,
                                       REFIID riid_in, void** ppv) {
  const IID& riid = riid_in == IID_NULL ? record.iid : riid_in;
  if (record.kind != kKindStandard) return FailPacketGone(record.packet_id);
  const bool normal = IsNormal(record.flags);
  ApartmentRef server;
  std::shared_ptr<StubManager> stub;
  IUnknown* identity = nullptr;
  {
    auto guard = runtime_.Lock();
    ApartmentRecord* apartment = ComRuntime::FindLiveApartmentLocked(guard, record.apartment_id);
    if (apartment != nullptr) {
      server = apartment->apartment;
      auto found = apartment->stubs.find(record.object_id);
      if (found != apartment->stubs.end() && found->second->connected) {
        stub = found->second;
        StubManager::State& state = stub->state.Get(guard);
        if (!normal) {
          if (stub->apartment_id == current->id()) {
            identity = state.identity;
            identity->AddRef();
          } else {
            ++state.strong;  // for the proxy manager
          }
        }
      }
    }
  }
  if (!server) return FailPacketGone(record.packet_id);
  if (normal) {
    // In the object's own apartment Windows looks the object up locally and,
    // with its stub gone (the data's only strong reference was consumed or
    // released), fails; elsewhere it builds a proxy without asking the
    // server, whose calls then fail (marshal.c test_normal_marshal_and_
    // unmarshal_twice, test_marshal_and_unmarshal_invalid).
    if (stub || record.apartment_id == current->id()) return FailPacketGone(record.packet_id);
    return UnmarshalDisconnectedProxy(current, server, record, riid, ppv);
  }
  if (!stub) {
    SetCallErrorInfo(CO_E_OBJNOTREG,
                     "The marshal data (packet " + std::to_string(record.packet_id) +
                         ") was released with CoReleaseMarshalData and its object is no "
                         "longer exported from " + server->Describe() +
                         ": released table data unmarshals only while a proxy or a lock "
                         "keeps the object exported.",
                     kSource);
    return CO_E_OBJNOTREG;
  }
  if (identity != nullptr) {
    HRESULT hr = identity->QueryInterface(riid, ppv);
    identity->Release();
    return hr;
  }
  ProxyManager* pm = nullptr;
  HRESULT hr = runtime_.proxies().GetOrCreate(current, stub, &pm);
  if (FAILED(hr)) return hr;
  hr = pm->QueryInterfaceProxy(riid, ppv);
  pm->ReleaseProxy();
  return hr;
}

HRESULT MarshalPackets::Release(std::uint64_t packet_id, const WireRecord* expected) {
  Packet packet;
  bool missing = false;
  missing = !packets_.Get(runtime_.Lock()).contains(packet_id);
  if (missing) return FailPacketGone(packet_id);
  {
    auto guard = runtime_.Lock();
    auto& packets = packets_.Get(guard);
    auto it = packets.find(packet_id);
    if (it == packets.end()) return CO_E_OBJNOTCONNECTED;  // released meanwhile
    if (expected != nullptr && it->second.apartment_id != expected->apartment_id) {
      return RPC_E_INVALID_OBJREF;
    }
    packet = std::move(it->second);
    packets.erase(it);
  }
  if (packet.direct != nullptr) {
    if ((packet.flags & MSHLFLAGS_TABLEWEAK) == 0) packet.direct->Release();
    return S_OK;
  }
  if ((packet.flags & MSHLFLAGS_TABLEWEAK) != 0) {
    runtime_.stubs().ReleaseWeak(packet.stub);
    return S_OK;
  }
  runtime_.stubs().ReleaseStrong(packet.stub);
  return S_OK;
}

HRESULT MarshalPackets::ReadRecord(IStream* stream, WireRecord* record) const {
  ULONG read = 0;
  HRESULT hr = stream->Read(record, sizeof *record, &read);
  if (FAILED(hr)) return hr;
  auto invalid = [](const char* why) {
    SetCallErrorInfo(RPC_E_INVALID_OBJREF,
                     std::string("The stream does not hold valid marshal data: ") + why + ".",
                     kSource);
    return RPC_E_INVALID_OBJREF;
  };
  if (read != sizeof *record) {
    // As Windows, for which a stream that runs out is a read fault.
    SetCallErrorInfo(STG_E_READFAULT,
                     "The stream ends before the end of the marshal record (" +
                         std::to_string(read) + " of " + std::to_string(sizeof *record) +
                         " bytes left at its current position).",
                     kSource);
    return STG_E_READFAULT;
  }
  if (std::memcmp(record->signature, kSignature, sizeof kSignature) != 0) {
    return invalid("the record's signature is wrong (not written by CoMarshalInterface, or "
                   "the stream is not positioned at its start)");
  }
  if ((record->kind != kKindStandard && record->kind != kKindDirect) ||
      (record->flags & ~kKnownFlags) != 0 || record->check != Check(*record)) {
    return invalid("the record is corrupted");
  }
  return S_OK;
}

}  // namespace apartments::internal
