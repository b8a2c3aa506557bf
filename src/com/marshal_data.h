// Marshal data: the record CoMarshalInterface writes into a stream, and
// MarshalPackets, the runtime's part that keeps the state each record names
// (a packet) and turns records back into objects or proxies (marshal.h has
// the ownership and the states).
#ifndef APARTMENTS_SRC_COM_MARSHAL_DATA_H_
#define APARTMENTS_SRC_COM_MARSHAL_DATA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "apartments/win32_com.h"
#include "apartments/win32_marshal.h"
#include "com/apartment.h"
#include "com/com_lock.h"
#include "com/marshal.h"
#include "com/stub_manager.h"

namespace apartments::internal {

class ComRuntime;
class ProxyManager;

inline constexpr char kSignature[8] = {'A', 'P', 'T', 'O', 'B', 'J', 'R', '1'};
inline constexpr std::uint32_t kKindStandard = 1;
inline constexpr std::uint32_t kKindDirect = 2;
// The MSHLFLAGS marshal data may carry.
inline constexpr DWORD kKnownFlags = MSHLFLAGS_TABLESTRONG | MSHLFLAGS_TABLEWEAK | MSHLFLAGS_NOPING;

// The marshal record. Every field is checked on the way in; the stream never
// carries an address.
struct WireRecord {
  char signature[8];
  std::uint32_t flags;
  std::uint32_t kind;
  std::uint64_t apartment_id;
  std::uint64_t object_id;
  std::uint64_t packet_id;
  IID iid;
  std::uint64_t check;
};
static_assert(sizeof(WireRecord) == kMarshalRecordSize);

// The state one record names.
struct Packet {
  DWORD flags = 0;
  IID iid{};
  std::shared_ptr<StubManager> stub;  // standard marshaling
  IUnknown* direct = nullptr;          // agile object: one reference
  std::uint64_t apartment_id = 0;
};

// Whether `flags` are NORMAL (unmarshaled once) rather than table data.
inline bool IsNormal(DWORD flags) {
  return (flags & (MSHLFLAGS_TABLESTRONG | MSHLFLAGS_TABLEWEAK)) == 0;
}

class MarshalPackets {
 public:
  explicit MarshalPackets(ComRuntime& runtime) noexcept : runtime_(runtime) {}
  MarshalPackets(const MarshalPackets&) = delete;
  MarshalPackets& operator=(const MarshalPackets&) = delete;

  // Marshals interface `riid` of `unk` into a new packet and fills `record`.
  // The calling thread must be in an apartment (`current`). Returns S_OK,
  // the object's QueryInterface failure, or the failures of exporting it
  // (RPC_E_DISCONNECTED, E_OUTOFMEMORY; a proxy's CheckUsable failures).
  HRESULT Marshal(const ApartmentRef& current, IUnknown* unk, REFIID riid, DWORD flags,
                  WireRecord* record);

  // Unmarshals packet `packet_id` in the calling apartment. NORMAL packets
  // are consumed whatever the outcome. `expected` (when non-null) is the
  // record the packet must match; a record whose packet is gone gets the
  // outcome Windows gives such data (UnmarshalStale).
  HRESULT Unmarshal(std::uint64_t packet_id, REFIID riid, void** ppv, const WireRecord* expected);

  // Discards packet `packet_id` (CoReleaseMarshalData). `expected` as above.
  HRESULT Release(std::uint64_t packet_id, const WireRecord* expected);

  // Reads and checks a marshal record: S_OK, the stream's failure,
  // STG_E_READFAULT when it ends early, RPC_E_INVALID_OBJREF when the record
  // is not one this process wrote.
  HRESULT ReadRecord(IStream* stream, WireRecord* record) const;

 private:
  // What the locked part of Unmarshal found.
  struct Claim;

  std::uint64_t Check(const WireRecord& r) const;
  HRESULT AddStandardPacket(const std::shared_ptr<StubManager>& stub, DWORD flags, REFIID riid,
                            bool weak, WireRecord* record);
  HRESULT AddDirectPacket(IUnknown* itf, DWORD flags, REFIID riid, bool weak,
                          WireRecord* record);
  HRESULT MarshalProxy(ProxyManager* pm, REFIID riid, DWORD flags, WireRecord* record);
  HRESULT ClaimLocked(const ComGuard& guard, std::uint64_t packet_id,
                      const ApartmentRef& current, const WireRecord* expected, Claim* claim);
  HRESULT FinishUnmarshal(const ApartmentRef& current, Claim& claim, REFIID riid_in, void** ppv);
  HRESULT UnmarshalStale(const ApartmentRef& current, const WireRecord& record, REFIID riid_in,
                         void** ppv);
  HRESULT UnmarshalDisconnectedProxy(const ApartmentRef& current, const ApartmentRef& server,
                                     const WireRecord& record, REFIID riid, void** ppv);

  ComRuntime& runtime_;
  ComGuarded<std::unordered_map<std::uint64_t, Packet>> packets_;
};

// The marshal data's explanation when its packet is gone.
HRESULT FailPacketGone(std::uint64_t packet_id);

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_MARSHAL_DATA_H_
