#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "apartments/win32.h"
#include "gtest/gtest.h"

namespace {

LARGE_INTEGER Li(LONGLONG v) {
  LARGE_INTEGER li;
  li.QuadPart = v;
  return li;
}

ULARGE_INTEGER Uli(ULONGLONG v) {
  ULARGE_INTEGER uli;
  uli.QuadPart = v;
  return uli;
}

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(CreateStreamOnHGlobal(nullptr, TRUE, &stream_), S_OK); }
  void TearDown() override {
    if (stream_ != nullptr) stream_->Release();
  }

  void WriteAll(IStream* s, const std::string& text) {
    ULONG written = 0;
    ASSERT_EQ(s->Write(text.data(), static_cast<ULONG>(text.size()), &written), S_OK);
    ASSERT_EQ(written, text.size());
  }

  std::string ReadAll(IStream* s, ULONG max = 4096) {
    std::string out(max, '\0');
    ULONG got = 0;
    EXPECT_EQ(s->Read(out.data(), max, &got), S_OK);
    out.resize(got);
    return out;
  }

  ULONGLONG Position(IStream* s) {
    ULARGE_INTEGER pos;
    EXPECT_EQ(s->Seek(Li(0), STREAM_SEEK_CUR, &pos), S_OK);
    return pos.QuadPart;
  }

  ULONGLONG Size(IStream* s) {
    STATSTG st;
    EXPECT_EQ(s->Stat(&st, STATFLAG_NONAME), S_OK);
    return st.cbSize.QuadPart;
  }

  IStream* stream_ = nullptr;
};

// Tests that written bytes read back after seeking to the start.
TEST_F(StreamTest, WriteSeekRead) {
  WriteAll(stream_, "hello world");
  EXPECT_EQ(Position(stream_), 11u);
  ASSERT_EQ(stream_->Seek(Li(0), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(ReadAll(stream_), "hello world");
}

// Tests that a read past the end is short but succeeds, and at the end reads 0.
TEST_F(StreamTest, ShortReadAtEnd) {
  WriteAll(stream_, "abc");
  ASSERT_EQ(stream_->Seek(Li(1), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(ReadAll(stream_, 10), "bc");
  char c;
  ULONG got = 99;
  EXPECT_EQ(stream_->Read(&c, 1, &got), S_OK);
  EXPECT_EQ(got, 0u);
}

// Tests SEEK_CUR and SEEK_END arithmetic and the reported new position.
TEST_F(StreamTest, SeekOrigins) {
  WriteAll(stream_, "0123456789");
  ULARGE_INTEGER pos;
  ASSERT_EQ(stream_->Seek(Li(-3), STREAM_SEEK_END, &pos), S_OK);
  EXPECT_EQ(pos.QuadPart, 7u);
  ASSERT_EQ(stream_->Seek(Li(-2), STREAM_SEEK_CUR, &pos), S_OK);
  EXPECT_EQ(pos.QuadPart, 5u);
  EXPECT_EQ(ReadAll(stream_, 2), "56");
}

// Tests that a bad origin and a negative result fail with
// STG_E_INVALIDFUNCTION and leave the position alone.
TEST_F(StreamTest, SeekErrors) {
  WriteAll(stream_, "abc");
  EXPECT_EQ(stream_->Seek(Li(0), 3, nullptr), STG_E_INVALIDFUNCTION);
  EXPECT_EQ(stream_->Seek(Li(-1), STREAM_SEEK_SET, nullptr), STG_E_INVALIDFUNCTION);
  EXPECT_EQ(stream_->Seek(Li(-4), STREAM_SEEK_END, nullptr), STG_E_INVALIDFUNCTION);
  EXPECT_EQ(stream_->Seek(Li(0x100000000LL), STREAM_SEEK_SET, nullptr), STG_E_INVALIDFUNCTION);
  EXPECT_EQ(Position(stream_), 3u);
}

// Tests that writing past the end after a seek grows the stream and zero-fills
// the gap.
TEST_F(StreamTest, WritePastEndGrowsWithZeros) {
  WriteAll(stream_, "ab");
  ASSERT_EQ(stream_->Seek(Li(5), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(Size(stream_), 2u);  // Seeking alone does not grow.
  WriteAll(stream_, "z");
  EXPECT_EQ(Size(stream_), 6u);
  ASSERT_EQ(stream_->Seek(Li(0), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(ReadAll(stream_), std::string("ab\0\0\0z", 6));
}

// Tests that many writes grow the stream well beyond its start.
TEST_F(StreamTest, GrowsLarge) {
  std::string chunk(1000, 'q');
  for (int i = 0; i < 300; ++i) WriteAll(stream_, chunk);
  EXPECT_EQ(Size(stream_), 300000u);
}

// Tests that SetSize truncates and extends without moving the seek pointer.
TEST_F(StreamTest, SetSize) {
  WriteAll(stream_, "abcdef");
  ASSERT_EQ(stream_->SetSize(Uli(3)), S_OK);
  EXPECT_EQ(Size(stream_), 3u);
  EXPECT_EQ(Position(stream_), 6u);
  ASSERT_EQ(stream_->SetSize(Uli(5)), S_OK);
  ASSERT_EQ(stream_->Seek(Li(0), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(ReadAll(stream_), std::string("abc\0\0", 5));
  EXPECT_EQ(stream_->SetSize(Uli(0x100000000ULL)), STG_E_INVALIDFUNCTION);
}

// Tests that null buffers are STG_E_INVALIDPOINTER, but a 0-byte write is OK.
TEST_F(StreamTest, NullPointerErrors) {
  ULONG n = 0;
  EXPECT_EQ(stream_->Read(nullptr, 1, &n), STG_E_INVALIDPOINTER);
  EXPECT_EQ(stream_->Write(nullptr, 1, &n), STG_E_INVALIDPOINTER);
  EXPECT_EQ(stream_->Write(nullptr, 0, &n), S_OK);
  EXPECT_EQ(stream_->Stat(nullptr, STATFLAG_DEFAULT), STG_E_INVALIDPOINTER);
  EXPECT_EQ(stream_->Clone(nullptr), STG_E_INVALIDPOINTER);
  EXPECT_EQ(stream_->CopyTo(nullptr, Uli(1), nullptr, nullptr), STG_E_INVALIDPOINTER);
  EXPECT_EQ(CreateStreamOnHGlobal(nullptr, TRUE, nullptr), E_INVALIDARG);
}

// Tests Stat's fields and its flag check.
TEST_F(StreamTest, Stat) {
  WriteAll(stream_, "1234");
  STATSTG st;
  ASSERT_EQ(stream_->Stat(&st, STATFLAG_DEFAULT), S_OK);
  EXPECT_EQ(st.type, static_cast<DWORD>(STGTY_STREAM));
  EXPECT_EQ(st.cbSize.QuadPart, 4u);
  EXPECT_EQ(st.pwcsName, nullptr);
  EXPECT_EQ(st.grfLocksSupported, 0u);
  EXPECT_EQ(stream_->Stat(&st, 0x80), STG_E_INVALIDFLAG);
}

// Tests that a clone shares the bytes, starts at the same position and then
// seeks independently.
TEST_F(StreamTest, CloneSharesBytesNotPosition) {
  WriteAll(stream_, "abcdef");
  ASSERT_EQ(stream_->Seek(Li(2), STREAM_SEEK_SET, nullptr), S_OK);
  IStream* clone = nullptr;
  ASSERT_EQ(stream_->Clone(&clone), S_OK);
  EXPECT_EQ(Position(clone), 2u);
  EXPECT_EQ(ReadAll(clone, 2), "cd");
  EXPECT_EQ(Position(stream_), 2u);
  WriteAll(clone, "XY");  // Visible through the original.
  EXPECT_EQ(ReadAll(stream_), "cdXY");
  // The clone keeps the bytes alive after the original goes.
  stream_->Release();
  stream_ = nullptr;
  ASSERT_EQ(clone->Seek(Li(0), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(ReadAll(clone), "abcdXY");
  clone->Release();
}

// Tests CopyTo copying part of a stream and reporting counts.
TEST_F(StreamTest, CopyTo) {
  WriteAll(stream_, "0123456789");
  ASSERT_EQ(stream_->Seek(Li(2), STREAM_SEEK_SET, nullptr), S_OK);
  IStream* target = nullptr;
  ASSERT_EQ(CreateStreamOnHGlobal(nullptr, TRUE, &target), S_OK);
  ULARGE_INTEGER read;
  ULARGE_INTEGER written;
  ASSERT_EQ(stream_->CopyTo(target, Uli(5), &read, &written), S_OK);
  EXPECT_EQ(read.QuadPart, 5u);
  EXPECT_EQ(written.QuadPart, 5u);
  EXPECT_EQ(Position(stream_), 7u);
  ASSERT_EQ(target->Seek(Li(0), STREAM_SEEK_SET, nullptr), S_OK);
  EXPECT_EQ(ReadAll(target), "23456");
  // Asking for more than remains copies what is there.
  ASSERT_EQ(stream_->CopyTo(target, Uli(1000), &read, &written), S_OK);
  EXPECT_EQ(read.QuadPart, 3u);
  target->Release();
}

// Tests that CopyTo into a clone of itself does not deadlock.
TEST_F(StreamTest, CopyToOwnClone) {
  std::string big(20000, 'k');
  WriteAll(stream_, big);
  IStream* clone = nullptr;
  ASSERT_EQ(stream_->Clone(&clone), S_OK);  // At the end.
  ASSERT_EQ(stream_->Seek(Li(0), STREAM_SEEK_SET, nullptr), S_OK);
  ULARGE_INTEGER written;
  ASSERT_EQ(stream_->CopyTo(clone, Uli(20000), nullptr, &written), S_OK);
  EXPECT_EQ(written.QuadPart, 20000u);
  EXPECT_EQ(Size(stream_), 40000u);
  clone->Release();
}

// Tests that Commit/Revert succeed and region locking is unsupported.
TEST_F(StreamTest, CommitRevertLock) {
  EXPECT_EQ(stream_->Commit(STGC_DEFAULT), S_OK);
  EXPECT_EQ(stream_->Revert(), S_OK);
  EXPECT_EQ(stream_->LockRegion(Uli(0), Uli(1), LOCK_WRITE), STG_E_INVALIDFUNCTION);
  EXPECT_EQ(stream_->UnlockRegion(Uli(0), Uli(1), LOCK_WRITE), STG_E_INVALIDFUNCTION);
}

// Tests the stream's QueryInterface: IStream, ISequentialStream, IUnknown.
TEST_F(StreamTest, QueryInterface) {
  ISequentialStream* seq = nullptr;
  ASSERT_EQ(stream_->QueryInterface(IID_PPV_ARGS(&seq)), S_OK);
  EXPECT_EQ(seq, static_cast<ISequentialStream*>(stream_));
  seq->Release();
  IMarshal* marshal = nullptr;
  EXPECT_EQ(stream_->QueryInterface(IID_PPV_ARGS(&marshal)), E_NOINTERFACE);
  EXPECT_EQ(marshal, nullptr);
}

// Tests a stream over a caller's HGLOBAL: sees its bytes, and with
// fDeleteOnRelease FALSE leaves it to the caller.
TEST(HGlobalTest, StreamOverCallerBlock) {
  HGLOBAL h = GlobalAlloc(GMEM_MOVEABLE, 4);
  ASSERT_NE(h, nullptr);
  std::memcpy(GlobalLock(h), "wxyz", 4);
  GlobalUnlock(h);
  IStream* s = nullptr;
  ASSERT_EQ(CreateStreamOnHGlobal(h, FALSE, &s), S_OK);
  HGLOBAL back = nullptr;
  ASSERT_EQ(GetHGlobalFromStream(s, &back), S_OK);
  EXPECT_EQ(back, h);
  char buf[8] = {};
  ULONG got = 0;
  ASSERT_EQ(s->Read(buf, 8, &got), S_OK);
  EXPECT_EQ(got, 4u);
  EXPECT_EQ(std::string(buf, 4), "wxyz");
  ASSERT_EQ(s->Write("12", 2, nullptr), S_OK);
  s->Release();
  EXPECT_EQ(GlobalSize(h), 6u);
  EXPECT_EQ(std::memcmp(GlobalLock(h), "wxyz12", 6), 0);
  GlobalUnlock(h);
  EXPECT_EQ(GlobalFree(h), nullptr);
}

// Tests GetHGlobalFromStream's argument checks.
TEST(HGlobalTest, GetHGlobalFromStreamErrors) {
  HGLOBAL h;
  EXPECT_EQ(GetHGlobalFromStream(nullptr, &h), E_INVALIDARG);
  IStream* s = nullptr;
  ASSERT_EQ(CreateStreamOnHGlobal(nullptr, TRUE, &s), S_OK);
  EXPECT_EQ(GetHGlobalFromStream(s, nullptr), E_INVALIDARG);
  s->Release();
}

// Tests that concurrent writers through clones lose no bytes.
TEST(HGlobalTest, ConcurrentClonesWrite) {
  IStream* s = nullptr;
  ASSERT_EQ(CreateStreamOnHGlobal(nullptr, TRUE, &s), S_OK);
  constexpr int kThreads = 4;
  constexpr int kWrites = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    IStream* clone = nullptr;
    ASSERT_EQ(s->Clone(&clone), S_OK);
    threads.emplace_back([clone] {
      for (int i = 0; i < kWrites; ++i) {
        LARGE_INTEGER zero;
        zero.QuadPart = 0;
        clone->Seek(zero, STREAM_SEEK_END, nullptr);
        clone->Write("ab", 2, nullptr);
      }
      clone->Release();
    });
  }
  for (auto& t : threads) t.join();
  STATSTG st;
  ASSERT_EQ(s->Stat(&st, STATFLAG_NONAME), S_OK);
  // Seek-to-end then write is not atomic across clones, so bytes may be
  // overwritten, but the size is bounded and nothing tears or crashes.
  EXPECT_GE(st.cbSize.QuadPart, 2u * kWrites);
  EXPECT_LE(st.cbSize.QuadPart, 2u * kWrites * kThreads);
  s->Release();
}

}  // namespace
