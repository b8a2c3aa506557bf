// libFuzzer target: unmarshaling arbitrary bytes. Each input is split into a
// few marshal records, given to CoUnmarshalInterface, CoReleaseMarshalData
// and CoGetInterfaceAndReleaseStream (in the MTA, on the fuzzing thread).
// Some live objects are exported before fuzzing starts (TABLESTRONG, from an
// STA thread and from the MTA), so inputs built from their marshal data (the
// corpus holds them) reach real stubs; a bit flip away is every kind of
// corruption. Every result must be one the header documents, a proxy that
// comes back works or fails as a proxy may, and after each input no proxy
// manager is left alive (no leak).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "apartments/com_object.h"
#include "apartments/win32.h"
#include "com/marshal.h"
#include "fuzz_util.h"

namespace {

using fuzz::Expect;
using fuzz::ExpectOneOf;

class Target final : public apartments::ComObject<Target, IStream> {
 public:
  STDMETHODIMP Read(void*, ULONG, ULONG* read) override {
    if (read != nullptr) *read = 0;
    return S_OK;
  }
  STDMETHODIMP Write(const void*, ULONG n, ULONG* written) override {
    if (written != nullptr) *written = n;
    return S_OK;
  }
  STDMETHODIMP Seek(LARGE_INTEGER, DWORD, ULARGE_INTEGER*) override { return E_NOTIMPL; }
  STDMETHODIMP SetSize(ULARGE_INTEGER) override { return E_NOTIMPL; }
  STDMETHODIMP CopyTo(IStream*, ULARGE_INTEGER, ULARGE_INTEGER*, ULARGE_INTEGER*) override { return E_NOTIMPL; }
  STDMETHODIMP Commit(DWORD) override { return E_NOTIMPL; }
  STDMETHODIMP Revert() override { return E_NOTIMPL; }
  STDMETHODIMP LockRegion(ULARGE_INTEGER, ULARGE_INTEGER, DWORD) override { return E_NOTIMPL; }
  STDMETHODIMP UnlockRegion(ULARGE_INTEGER, ULARGE_INTEGER, DWORD) override { return E_NOTIMPL; }
  STDMETHODIMP Stat(STATSTG*, DWORD) override { return E_NOTIMPL; }
  STDMETHODIMP Clone(IStream**) override { return E_NOTIMPL; }
};

// The live objects and their marshal data, made once.
struct World {
  std::vector<std::vector<unsigned char>> records;
  std::size_t proxies_at_start = 0;
  // The fuzzer's own references: inputs may release the table data (forged
  // or real), never these.
  Target* sta_object = nullptr;
  Target* mta_object = nullptr;
};
World* g_world = nullptr;

std::vector<unsigned char> Marshal(IUnknown* object, REFIID iid, DWORD flags) {
  IStream* stream = nullptr;
  std::vector<unsigned char> bytes;
  if (FAILED(CreateStreamOnHGlobal(nullptr, TRUE, &stream))) std::abort();
  if (FAILED(CoMarshalInterface(stream, iid, object, MSHCTX_INPROC, nullptr, flags))) std::abort();
  ULARGE_INTEGER end{};
  LARGE_INTEGER zero{};
  stream->Seek(zero, STREAM_SEEK_CUR, &end);
  bytes.resize(static_cast<std::size_t>(end.QuadPart));
  stream->Seek(zero, STREAM_SEEK_SET, nullptr);
  ULONG read = 0;
  stream->Read(bytes.data(), static_cast<ULONG>(bytes.size()), &read);
  stream->Release();
  return bytes;
}

// An STA thread that owns two objects and pumps for the life of the process.
void StartWorld() {
  g_world = new World;
  if (FAILED(CoInitializeEx(nullptr, COINIT_MULTITHREADED))) std::abort();
  HANDLE ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::thread([ready] {
    if (FAILED(CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED))) std::abort();
    Target* a = g_world->sta_object = new Target;
    g_world->records.push_back(Marshal(static_cast<IStream*>(a), IID_IStream, MSHLFLAGS_TABLESTRONG));
    g_world->records.push_back(Marshal(static_cast<IStream*>(a), IID_IUnknown, MSHLFLAGS_TABLESTRONG));
    SetEvent(ready);
    MSG msg;
    while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  }).detach();
  WaitForSingleObject(ready, INFINITE);
  CloseHandle(ready);
  Target* mta_object = g_world->mta_object = new Target;
  g_world->records.push_back(Marshal(static_cast<IStream*>(mta_object), IID_ISequentialStream, MSHLFLAGS_TABLESTRONG));
  g_world->proxies_at_start = apartments::internal::LiveProxyManagersForTesting();
  // APARTMENTS_FUZZ_WRITE_CORPUS=dir: write the live objects' records as seed
  // inputs (how corpus/unmarshal_fuzz was made), then exit.
  if (const char* dir = std::getenv("APARTMENTS_FUZZ_WRITE_CORPUS")) {
    for (std::size_t i = 0; i < g_world->records.size(); ++i) {
      for (unsigned op = 0; op < 3; ++op) {
        std::string path = std::string(dir) + "/live-" + std::to_string(i) + "-op" + std::to_string(op);
        FILE* f = std::fopen(path.c_str(), "wb");
        if (f == nullptr) std::abort();
        unsigned char header[2] = {static_cast<unsigned char>(op), static_cast<unsigned char>(i)};
        std::fwrite(header, 1, 2, f);
        std::fwrite(g_world->records[i].data(), 1, g_world->records[i].size(), f);
        std::fclose(f);
      }
    }
    std::_Exit(0);
  }
}

const IID* PickIid(fuzz::Input& in) {
  static const IID* const kIids[] = {&IID_IUnknown, &IID_IStream, &IID_ISequentialStream, &IID_NULL,
                                     &IID_IClassFactory, &IID_IMarshal};
  return kIids[in.Below(sizeof kIids / sizeof kIids[0])];
}

IStream* StreamOf(const unsigned char* bytes, std::size_t size) {
  IStream* stream = nullptr;
  if (FAILED(CreateStreamOnHGlobal(nullptr, TRUE, &stream))) std::abort();
  ULONG written = 0;
  if (size > 0) stream->Write(bytes, static_cast<ULONG>(size), &written);
  LARGE_INTEGER zero{};
  stream->Seek(zero, STREAM_SEEK_SET, nullptr);
  return stream;
}

// What a proxy (or object) that came back must do: answer QueryInterface and
// a call, or fail the way a proxy may.
void Exercise(IUnknown* p) {
  IUnknown* identity = nullptr;
  HRESULT hr = p->QueryInterface(IID_IUnknown, reinterpret_cast<void**>(&identity));
  ExpectOneOf<HRESULT>("QueryInterface(IUnknown) on an unmarshaled pointer", hr,
                       {S_OK, RPC_E_DISCONNECTED, CO_E_OBJNOTCONNECTED, RPC_E_SYS_CALL_FAILED});
  if (SUCCEEDED(hr)) identity->Release();
  ISequentialStream* seq = nullptr;
  if (SUCCEEDED(p->QueryInterface(IID_ISequentialStream, reinterpret_cast<void**>(&seq)))) {
    ULONG written = 0;
    hr = seq->Write("x", 1, &written);
    ExpectOneOf<HRESULT>("ISequentialStream::Write through an unmarshaled pointer", hr,
                         {S_OK, RPC_E_DISCONNECTED, CO_E_OBJNOTCONNECTED, RPC_E_SYS_CALL_FAILED});
    seq->Release();
  }
}

const std::initializer_list<HRESULT> kUnmarshalResults = {
    S_OK, E_INVALIDARG, STG_E_READFAULT, RPC_E_INVALID_OBJREF, CO_E_OBJNOTCONNECTED, CO_E_OBJNOTREG,
    E_NOINTERFACE, RPC_E_DISCONNECTED, RPC_E_SYS_CALL_FAILED, E_OUTOFMEMORY};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (g_world == nullptr) StartWorld();
  fuzz::Input in(data, size);
  const unsigned op = in.Byte();
  const unsigned base = in.Byte();
  // The record: the rest of the input, or (when it is short) a live record
  // with the input's bytes written over it.
  std::vector<unsigned char> record(in.rest(), in.rest() + in.rest_size());
  if (op & 0x80) {
    const auto& live = g_world->records[base % g_world->records.size()];
    std::vector<unsigned char> patched = live;
    for (std::size_t k = 0; k + 1 < record.size(); k += 2) patched[record[k] % patched.size()] = record[k + 1];
    record = patched;
  }
  fuzz::Input choices(data, size > 2 ? 2 : size);
  IStream* stream = StreamOf(record.data(), record.size());
  void* p = nullptr;
  switch (op % 3) {
    case 0: {
      HRESULT hr = CoUnmarshalInterface(stream, *PickIid(choices), &p);
      ExpectOneOf<HRESULT>("CoUnmarshalInterface", hr, kUnmarshalResults);
      Expect(SUCCEEDED(hr) == (p != nullptr), "CoUnmarshalInterface: result and pointer disagree");
      stream->Release();
      break;
    }
    case 1: {
      HRESULT hr = CoReleaseMarshalData(stream);
      ExpectOneOf<HRESULT>("CoReleaseMarshalData", hr,
                           {S_OK, E_INVALIDARG, STG_E_READFAULT, RPC_E_INVALID_OBJREF, CO_E_OBJNOTCONNECTED,
                            CO_E_OBJNOTREG, RPC_E_DISCONNECTED, RPC_E_SYS_CALL_FAILED});
      stream->Release();
      break;
    }
    default: {
      HRESULT hr = CoGetInterfaceAndReleaseStream(stream, *PickIid(choices), &p);
      ExpectOneOf<HRESULT>("CoGetInterfaceAndReleaseStream", hr, kUnmarshalResults);
      Expect(SUCCEEDED(hr) == (p != nullptr), "CoGetInterfaceAndReleaseStream: result and pointer disagree");
      break;
    }
  }
  if (p != nullptr) {
    Exercise(static_cast<IUnknown*>(p));
    static_cast<IUnknown*>(p)->Release();
  }
  if (apartments::internal::LiveProxyManagersForTesting() != g_world->proxies_at_start) {
    fuzz::Fail("a proxy manager outlived every reference to it");
  }
  return 0;
}
