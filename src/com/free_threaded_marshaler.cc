// The free-threaded marshaler (free_threaded_marshaler.h).
#include "com/free_threaded_marshaler.h"

#include <atomic>
#include <cstring>
#include <new>
#include <string>

#include "apartments/win32_marshal.h"
#include "com/marshal_data.h"
#include "com/marshal_text.h"

namespace apartments::internal {
namespace {

// The free-threaded marshaler's own in-process data (its IMarshal methods
// called directly), laid out as Windows': the MSHLFLAGS (4 bytes), the
// interface pointer (8 bytes), then 16 bytes that Windows leaves opaque and
// that hold here a keyed check of the first two, so that data not written by
// this process's marshaler is refused (RPC_E_INVALID_OBJREF) before its
// pointer is touched. Like Windows', the data is not tracked: it may be
// unmarshaled or released in any order, and keeping the object alive is the
// caller's affair (NORMAL and TABLESTRONG data hold one reference, which
// unmarshaling NORMAL data and releasing either hands back; TABLEWEAK data
// holds none).
constexpr std::size_t kFtmDataSize = sizeof(DWORD) + sizeof(std::uint64_t) + sizeof(GUID);

bool IsInProcess(DWORD context) { return context == MSHCTX_INPROC || context == MSHCTX_CROSSCTX; }

void FtmCheck(std::uint64_t secret, DWORD flags, std::uint64_t pointer, std::uint64_t check[2]) {
  std::uint64_t h = secret ^ 0x5bd1e9955bd1e995ull;
  auto mix = [&h](std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  };
  mix(flags);
  mix(pointer);
  check[0] = h;
  mix(0xc4ceb9fe1a85ec53ull);
  check[1] = h;
}

HRESULT MarshalFreeThreaded(std::uint64_t secret, IStream* stream, REFIID riid, IUnknown* unk,
                            DWORD flags) {
  if (stream == nullptr || unk == nullptr || (flags & ~kKnownFlags) != 0) return E_INVALIDARG;
  void* itf = nullptr;
  HRESULT hr = unk->QueryInterface(riid, &itf);
  if (FAILED(hr)) return hr;
  if (itf == nullptr) return E_NOINTERFACE;
  const auto pointer = reinterpret_cast<std::uint64_t>(itf);
  unsigned char data[kFtmDataSize];
  std::uint64_t check[2];
  FtmCheck(secret, flags, pointer, check);
  std::memcpy(data, &flags, sizeof(DWORD));
  std::memcpy(data + sizeof(DWORD), &pointer, sizeof pointer);
  std::memcpy(data + sizeof(DWORD) + sizeof pointer, check, sizeof check);
  ULONG written = 0;
  hr = stream->Write(data, sizeof data, &written);
  if (SUCCEEDED(hr) && written != sizeof data) hr = STG_E_MEDIUMFULL;
  // TABLEWEAK data holds no reference (Windows'); the others keep the
  // QueryInterface's one.
  if (FAILED(hr) || (flags & MSHLFLAGS_TABLEWEAK) != 0) static_cast<IUnknown*>(itf)->Release();
  return hr;
}

// Reads and checks free-threaded marshal data; *object is its pointer.
HRESULT ReadFreeThreaded(std::uint64_t secret, IStream* stream, DWORD* flags, IUnknown** object) {
  if (stream == nullptr) return E_INVALIDARG;
  unsigned char data[kFtmDataSize];
  ULONG read = 0;
  HRESULT hr = stream->Read(data, sizeof data, &read);
  if (FAILED(hr)) return hr;
  if (read != sizeof data) return STG_E_READFAULT;
  std::uint64_t pointer = 0;
  std::uint64_t check[2];
  std::uint64_t expected[2];
  std::memcpy(flags, data, sizeof(DWORD));
  std::memcpy(&pointer, data + sizeof(DWORD), sizeof pointer);
  std::memcpy(check, data + sizeof(DWORD) + sizeof pointer, sizeof check);
  FtmCheck(secret, *flags, pointer, expected);
  if (pointer == 0 || check[0] != expected[0] || check[1] != expected[1]) {
    SetCallErrorInfo(RPC_E_INVALID_OBJREF,
                     "The stream does not hold data written by this process's free-threaded "
                     "marshaler.",
                     kSource);
    return RPC_E_INVALID_OBJREF;
  }
  *object = reinterpret_cast<IUnknown*>(pointer);
  return S_OK;
}

HRESULT UnmarshalFreeThreaded(std::uint64_t secret, IStream* stream, REFIID riid, void** ppv) {
  if (ppv == nullptr) return E_INVALIDARG;
  *ppv = nullptr;
  DWORD flags = 0;
  IUnknown* object = nullptr;
  HRESULT hr = ReadFreeThreaded(secret, stream, &flags, &object);
  if (FAILED(hr)) return hr;
  hr = object->QueryInterface(riid, ppv);
  // NORMAL data hands its reference over, whatever the QueryInterface gave.
  if (IsNormal(flags)) object->Release();
  return hr;
}

HRESULT ReleaseFreeThreaded(std::uint64_t secret, IStream* stream) {
  DWORD flags = 0;
  IUnknown* object = nullptr;
  HRESULT hr = ReadFreeThreaded(secret, stream, &flags, &object);
  if (FAILED(hr)) return hr;
  if ((flags & MSHLFLAGS_TABLEWEAK) == 0) object->Release();
  return S_OK;
}

class FreeThreadedMarshaler final : public IUnknown {
 public:
  FreeThreadedMarshaler(std::uint64_t secret, IUnknown* outer) : marshal_(this, outer, secret) {}

  // The inner (non-delegating) IUnknown.
  STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
    if (ppv == nullptr) return E_POINTER;
    if (riid == IID_IUnknown) {
      *ppv = static_cast<IUnknown*>(this);
    } else if (riid == IID_IMarshal) {
      *ppv = static_cast<IMarshal*>(&marshal_);
    } else {
      *ppv = nullptr;
      return E_NOINTERFACE;
    }
    static_cast<IUnknown*>(*ppv)->AddRef();
    return S_OK;
  }
  STDMETHODIMP_(ULONG) AddRef() override { return refs_.fetch_add(1, std::memory_order_relaxed) + 1; }
  STDMETHODIMP_(ULONG) Release() override {
    ULONG remaining = refs_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (remaining == 0) delete this;
    return remaining;
  }

 private:
  class Marshal final : public IMarshal {
   public:
    Marshal(FreeThreadedMarshaler* inner, IUnknown* outer, std::uint64_t secret)
        : controlling_(outer != nullptr ? outer : inner), secret_(secret) {}
    STDMETHODIMP QueryInterface(REFIID riid, void** ppv) override {
      return controlling_->QueryInterface(riid, ppv);
    }
    STDMETHODIMP_(ULONG) AddRef() override { return controlling_->AddRef(); }
    STDMETHODIMP_(ULONG) Release() override { return controlling_->Release(); }

    STDMETHODIMP GetUnmarshalClass(REFIID, void*, DWORD, void*, DWORD, CLSID* pCid) override {
      if (pCid == nullptr) return E_POINTER;
      *pCid = kClsidInProcFreeMarshaler;
      return S_OK;
    }
    STDMETHODIMP GetMarshalSizeMax(REFIID, void*, DWORD dwDestContext, void*, DWORD,
                                   DWORD* pSize) override {
      if (pSize == nullptr) return E_POINTER;
      *pSize = IsInProcess(dwDestContext) ? static_cast<DWORD>(kFtmDataSize)
                                          : static_cast<DWORD>(kMarshalRecordSize);
      return S_OK;
    }
    STDMETHODIMP MarshalInterface(IStream* pStm, REFIID riid, void* pv, DWORD dwDestContext,
                                  void* pvDestContext, DWORD mshlflags) override {
      IUnknown* unk = pv != nullptr ? static_cast<IUnknown*>(pv) : controlling_;
      if (!IsInProcess(dwDestContext)) {
        return CoMarshalInterface(pStm, riid, unk, dwDestContext, pvDestContext, mshlflags);
      }
      return MarshalFreeThreaded(secret_, pStm, riid, unk, mshlflags);
    }
    STDMETHODIMP UnmarshalInterface(IStream* pStm, REFIID riid, void** ppv) override {
      return UnmarshalFreeThreaded(secret_, pStm, riid, ppv);
    }
    STDMETHODIMP ReleaseMarshalData(IStream* pStm) override {
      return ReleaseFreeThreaded(secret_, pStm);
    }
    STDMETHODIMP DisconnectObject(DWORD) override { return S_OK; }

   private:
    IUnknown* controlling_;  // not counted: the outer object owns us
    const std::uint64_t secret_;
  };

  ~FreeThreadedMarshaler() = default;

  std::atomic<ULONG> refs_{1};
  Marshal marshal_;
};

}  // namespace

HRESULT CreateFreeThreadedMarshaler(std::uint64_t secret, IUnknown* outer, IUnknown** out) {
  *out = new (std::nothrow) FreeThreadedMarshaler(secret, outer);
  return *out == nullptr ? E_OUTOFMEMORY : S_OK;
}

}  // namespace apartments::internal
