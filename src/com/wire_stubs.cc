// The table of interfaces declared for other processes (wire_stubs.h).
#include "com/wire_stubs.h"

#include <mutex>
#include <unordered_map>


namespace apartments::internal {
namespace {

struct Interface {
  IID base{};
  const WireStubEntry* entries = nullptr;
  std::size_t count = 0;
};

struct StubTable {
  std::mutex mu;
  std::unordered_map<IID, Interface> interfaces;
};

StubTable& Stubs() {
  // Leaked: registrations come from static initializers of other objects,
  // and lookups may run while the process exits.
  static StubTable* table = new StubTable;
  return *table;
}

// IClassFactory's own stubs: CreateInstance has a run-time IID, which the
// recipe cannot express (wire.h has no iid_is).
HRESULT CreateInstanceStub(void* object, const WireMessage& in, WireMessage* out) {
  WireReader r(in);
  IID iid{};
  if (!r.Value(&iid) || !r.AtEnd()) return RPC_X_BAD_STUB_DATA;
  IUnknown* created = nullptr;
  HRESULT hr = static_cast<IClassFactory*>(object)->CreateInstance(
      nullptr, iid, reinterpret_cast<void**>(&created));
  WireWriter w(*out);
  w.Interface(SUCCEEDED(hr) ? created : nullptr, iid);
  if (created != nullptr) created->Release();
  return hr;
}

const WireStubEntry kClassFactoryStubs[] = {
    {VtableSlot(&IClassFactory::CreateInstance), &CreateInstanceStub},
    {VtableSlot(&IClassFactory::LockServer), &WireStub<IClassFactory, &IClassFactory::LockServer>},
};

void EnsureStandardWireStubs() {
  static std::once_flag standard;
  std::call_once(standard, [] {
    RegisterWireStubs(IID_IClassFactory, IID_IUnknown, kClassFactoryStubs,
                      sizeof kClassFactoryStubs / sizeof kClassFactoryStubs[0]);
  });
}

}  // namespace

void RegisterWireStubs(const IID& iid, const IID& base, const WireStubEntry* entries,
                       std::size_t count) noexcept {
  StubTable& table = Stubs();
  std::lock_guard lock(table.mu);
  table.interfaces[iid] = Interface{base, entries, count};
}

WireStubFunction LookupWireStub(REFIID iid, WORD slot) noexcept {
  EnsureStandardWireStubs();
  StubTable& table = Stubs();
  std::lock_guard lock(table.mu);
  IID current = iid;
  // A derived interface's table lists only its own methods; its base's are
  // found by walking up (the chain ends at IUnknown, which has no table).
  for (int depth = 0; depth < 64 && current != IID_IUnknown; ++depth) {
    auto it = table.interfaces.find(current);
    if (it == table.interfaces.end()) return nullptr;
    for (std::size_t i = 0; i < it->second.count; ++i) {
      if (it->second.entries[i].slot == slot) return it->second.entries[i].stub;
    }
    current = it->second.base;
  }
  return nullptr;
}

bool IsWireInterface(REFIID iid) noexcept {
  if (iid == IID_IUnknown) return true;
  EnsureStandardWireStubs();
  StubTable& table = Stubs();
  std::lock_guard lock(table.mu);
  return table.interfaces.count(iid) != 0;
}

}  // namespace apartments::internal
