// GlobalAlloc & co. (a minimal global heap) and CreateStreamOnHGlobal.
//
// Ownership: an HGLOBAL is a GlobalBlock*. Streams on a block share one
// BlockRef (the block plus fDeleteOnRelease), counted by the streams and
// their clones; the last stream to go frees the block when asked to.
// Locking: every stream operation holds the block's mutex while it touches
// the bytes or its own seek pointer, so streams and clones may be used from
// several threads at once. CopyTo never holds it while calling the target.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "apartments/com_object.h"
#include "apartments/win32_com.h"
#include "base/guarded.h"

namespace apartments::internal {
namespace {

// Tells our HGLOBALs apart from garbage in GlobalSize/GlobalLock (best effort:
// a freed block's memory may be reused, as on Windows).
constexpr unsigned kBlockMagic = 0x48474C42;  // "HGLB"

struct GlobalBlock {
  struct Contents {
    std::vector<BYTE> bytes;
    int lock_count = 0;
  };
  unsigned magic = kBlockMagic;
  Guarded<Contents> contents;
};

GlobalBlock* BlockFromHandle(HGLOBAL h) {
  auto* block = static_cast<GlobalBlock*>(h);
  return block != nullptr && block->magic == kBlockMagic ? block : nullptr;
}

// Sizes and positions are 32-bit, as in Windows' HGLOBAL stream.
constexpr ULONGLONG kMaxStreamSize = 0xFFFFFFFFull;

struct BlockRef {
  GlobalBlock* block;
  bool delete_on_release;
  std::atomic<int> streams{1};
};

void ReleaseBlockRef(BlockRef* ref) {
  // acq_rel: the last stream sees every other stream's writes before freeing.
  if (ref->streams.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (ref->delete_on_release) GlobalFree(ref->block);
  delete ref;
}

// Grows or shrinks to `size`, zero-filling new bytes.
bool Resize(GlobalBlock::Contents& contents, ULONGLONG size) {
  try {
    contents.bytes.resize(static_cast<size_t>(size));
  } catch (const std::bad_alloc&) {
    return false;
  } catch (const std::length_error&) {
    return false;
  }
  return true;
}

}  // namespace

class HGlobalStream final : public ComObject<HGlobalStream, IStream> {
 public:
  HGlobalStream(BlockRef* ref, ULONGLONG position) : ref_(ref), position_(position) {}

  HGLOBAL block() const { return ref_->block; }

  STDMETHODIMP Read(void* pv, ULONG cb, ULONG* pcbRead) override {
    if (pv == nullptr && cb != 0) return STG_E_INVALIDPOINTER;
    auto contents = ref_->block->contents.Lock();
    const std::vector<BYTE>& bytes = contents->bytes;
    ULONG n = 0;
    if (position_ < bytes.size()) {
      n = static_cast<ULONG>(std::min<ULONGLONG>(cb, bytes.size() - position_));
      std::memcpy(pv, bytes.data() + position_, n);
      position_ += n;
    }
    if (pcbRead != nullptr) *pcbRead = n;
    return S_OK;
  }

  STDMETHODIMP Write(const void* pv, ULONG cb, ULONG* pcbWritten) override {
    if (pcbWritten != nullptr) *pcbWritten = 0;
    if (cb == 0) return S_OK;
    if (pv == nullptr) return STG_E_INVALIDPOINTER;
    auto contents = ref_->block->contents.Lock();
    std::vector<BYTE>& bytes = contents->bytes;
    ULONGLONG end = position_ + cb;
    if (end > kMaxStreamSize) return STG_E_MEDIUMFULL;
    if (end > bytes.size() && !Resize(*contents, end)) return STG_E_MEDIUMFULL;
    std::memcpy(bytes.data() + position_, pv, cb);
    position_ = end;
    if (pcbWritten != nullptr) *pcbWritten = cb;
    return S_OK;
  }

  STDMETHODIMP Seek(LARGE_INTEGER dlibMove, DWORD dwOrigin,
                    ULARGE_INTEGER* plibNewPosition) override {
    auto contents = ref_->block->contents.Lock();
    LONGLONG base;
    switch (dwOrigin) {
      case STREAM_SEEK_SET:
        base = 0;
        break;
      case STREAM_SEEK_CUR:
        base = static_cast<LONGLONG>(position_);
        break;
      case STREAM_SEEK_END:
        base = static_cast<LONGLONG>(contents->bytes.size());
        break;
      default:
        return STG_E_INVALIDFUNCTION;
    }
    // base <= 2^32 and |move| < 2^63: compare without overflowing.
    LONGLONG move = dlibMove.QuadPart;
    if (move < -base || move > static_cast<LONGLONG>(kMaxStreamSize) - base) {
      return STG_E_INVALIDFUNCTION;
    }
    position_ = static_cast<ULONGLONG>(base + move);
    if (plibNewPosition != nullptr) plibNewPosition->QuadPart = position_;
    return S_OK;
  }

  STDMETHODIMP SetSize(ULARGE_INTEGER libNewSize) override {
    if (libNewSize.QuadPart > kMaxStreamSize) return STG_E_INVALIDFUNCTION;
    auto contents = ref_->block->contents.Lock();
    return Resize(*contents, libNewSize.QuadPart) ? S_OK : STG_E_MEDIUMFULL;
  }

  STDMETHODIMP CopyTo(IStream* pstm, ULARGE_INTEGER cb, ULARGE_INTEGER* pcbRead,
                      ULARGE_INTEGER* pcbWritten) override {
    if (pcbRead != nullptr) pcbRead->QuadPart = 0;
    if (pcbWritten != nullptr) pcbWritten->QuadPart = 0;
    if (pstm == nullptr) return STG_E_INVALIDPOINTER;
    // Chunked, and never holding our lock while the target runs: the target
    // may be a clone of this very stream (sharing the mutex).
    BYTE chunk[8192];
    ULONGLONG remaining = cb.QuadPart;
    ULONGLONG total_read = 0;
    ULONGLONG total_written = 0;
    HRESULT hr = S_OK;
    while (remaining > 0) {
      ULONG want = static_cast<ULONG>(std::min<ULONGLONG>(remaining, sizeof(chunk)));
      ULONG got = 0;
      hr = Read(chunk, want, &got);
      if (FAILED(hr) || got == 0) break;
      total_read += got;
      ULONG put = 0;
      hr = pstm->Write(chunk, got, &put);
      total_written += put;
      if (FAILED(hr)) break;
      if (put < got) {
        // The target took less than offered; report what was read but stop.
        break;
      }
      remaining -= got;
    }
    if (pcbRead != nullptr) pcbRead->QuadPart = total_read;
    if (pcbWritten != nullptr) pcbWritten->QuadPart = total_written;
    return FAILED(hr) ? hr : S_OK;
  }

  STDMETHODIMP Commit(DWORD grfCommitFlags) override { return S_OK; }
  STDMETHODIMP Revert() override { return S_OK; }

  STDMETHODIMP LockRegion(ULARGE_INTEGER libOffset, ULARGE_INTEGER cb,
                          DWORD dwLockType) override {
    return STG_E_INVALIDFUNCTION;
  }
  STDMETHODIMP UnlockRegion(ULARGE_INTEGER libOffset, ULARGE_INTEGER cb,
                            DWORD dwLockType) override {
    return STG_E_INVALIDFUNCTION;
  }

  STDMETHODIMP Stat(STATSTG* pstatstg, DWORD grfStatFlag) override {
    if (pstatstg == nullptr) return STG_E_INVALIDPOINTER;
    if ((grfStatFlag & ~static_cast<DWORD>(STATFLAG_NONAME | STATFLAG_NOOPEN)) != 0) {
      return STG_E_INVALIDFLAG;
    }
    std::memset(pstatstg, 0, sizeof(*pstatstg));
    pstatstg->pwcsName = nullptr;
    pstatstg->type = STGTY_STREAM;
    pstatstg->grfMode = STGM_READWRITE;
    pstatstg->cbSize.QuadPart = ref_->block->contents.Lock()->bytes.size();
    return S_OK;
  }

  STDMETHODIMP Clone(IStream** ppstm) override {
    if (ppstm == nullptr) return STG_E_INVALIDPOINTER;
    ULONGLONG position;
    {
      auto contents = ref_->block->contents.Lock();
      position = position_;
    }
    // Relaxed: we hold a stream on the block, so the count cannot reach 0.
    ref_->streams.fetch_add(1, std::memory_order_relaxed);
    auto* clone = MakeComObject<HGlobalStream>(ref_, position);
    if (clone == nullptr) {
      ReleaseBlockRef(ref_);
      *ppstm = nullptr;
      return E_OUTOFMEMORY;
    }
    *ppstm = clone;
    return S_OK;
  }

 private:
  ~HGlobalStream() override { ReleaseBlockRef(ref_); }

  BlockRef* const ref_;
  // Guarded by the block's lock (read and written with a guard of
  // ref_->block->contents held): clones share the block, not the position.
  ULONGLONG position_;
};

}  // namespace apartments::internal

using apartments::internal::BlockFromHandle;
using apartments::internal::GlobalBlock;

extern "C" {

HGLOBAL WINAPI GlobalAlloc(UINT uFlags, SIZE_T dwBytes) {
  auto* block = new (std::nothrow) GlobalBlock();
  if (block == nullptr) return nullptr;
  // Bytes are always zeroed (GMEM_ZEROINIT or not): never hand out garbage.
  if (!apartments::internal::Resize(block->contents.GetWithoutLock("not yet shared: just made"),
                                    dwBytes)) {
    delete block;
    return nullptr;
  }
  return block;
}

LPVOID WINAPI GlobalLock(HGLOBAL hMem) {
  GlobalBlock* block = BlockFromHandle(hMem);
  if (block == nullptr) return nullptr;
  auto contents = block->contents.Lock();
  ++contents->lock_count;
  // A zero-byte block has no bytes to address (Windows returns null too).
  return contents->bytes.empty() ? nullptr : contents->bytes.data();
}

BOOL WINAPI GlobalUnlock(HGLOBAL hMem) {
  GlobalBlock* block = BlockFromHandle(hMem);
  if (block == nullptr) return FALSE;
  auto contents = block->contents.Lock();
  if (contents->lock_count > 0) --contents->lock_count;
  return contents->lock_count > 0 ? TRUE : FALSE;
}

SIZE_T WINAPI GlobalSize(HGLOBAL hMem) {
  GlobalBlock* block = BlockFromHandle(hMem);
  if (block == nullptr) return 0;
  return block->contents.Lock()->bytes.size();
}

HGLOBAL WINAPI GlobalFree(HGLOBAL hMem) {
  GlobalBlock* block = BlockFromHandle(hMem);
  if (block == nullptr) return hMem;
  block->magic = 0;
  delete block;
  return nullptr;
}

HRESULT WINAPI CreateStreamOnHGlobal(HGLOBAL hGlobal, BOOL fDeleteOnRelease, LPSTREAM* ppstm) {
  using apartments::internal::BlockRef;
  using apartments::internal::HGlobalStream;
  if (ppstm == nullptr) return E_INVALIDARG;
  *ppstm = nullptr;
  GlobalBlock* block;
  if (hGlobal == nullptr) {
    block = static_cast<GlobalBlock*>(GlobalAlloc(GMEM_MOVEABLE, 0));
    if (block == nullptr) return E_OUTOFMEMORY;
  } else {
    block = BlockFromHandle(hGlobal);
    if (block == nullptr) return E_INVALIDARG;
  }
  auto* ref = new (std::nothrow) BlockRef{block, fDeleteOnRelease != FALSE};
  HGlobalStream* stream = ref == nullptr ? nullptr : apartments::MakeComObject<HGlobalStream>(ref, 0);
  if (stream == nullptr) {
    delete ref;
    if (hGlobal == nullptr) GlobalFree(block);
    return E_OUTOFMEMORY;
  }
  *ppstm = stream;
  return S_OK;
}

HRESULT WINAPI GetHGlobalFromStream(LPSTREAM pstm, HGLOBAL* phglobal) {
  if (phglobal == nullptr) return E_INVALIDARG;
  *phglobal = nullptr;
  if (pstm == nullptr) return E_INVALIDARG;
  auto* ours = dynamic_cast<apartments::internal::HGlobalStream*>(pstm);
  if (ours == nullptr) return E_INVALIDARG;
  *phglobal = ours->block();
  return S_OK;
}

}  // extern "C"
