#include "store/blob_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "tests/store/blob_store_fixture.h"

// BlobStore blobs of file_min_bytes and up, stored as files under files/:
// round trips, damaged and missing files, batches, concurrency, a crash
// before a file's record is written, and stores from before file blobs.
namespace baton::store {
namespace {

using testing::BlobStoreTest;
using testing::CodeOf;
using testing::KeysWithPrefix;
using testing::OpenRaw;
using testing::RandomBytes;
using testing::RocksOnly;
using testing::RunCrashChild;

// Every file under the store's files/ folder, relative to it ("ab/<digest>").
std::vector<std::string> StoredFiles(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(dir / "files")) {
    if (entry.is_regular_file()) {
      out.push_back(
          std::filesystem::relative(entry.path(), dir / "files").string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string FileOf(const std::string& digest) {
  return digest.substr(0, 2) + "/" + digest;
}

void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string MessageOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(BlobStoreTest, FileBlobsRoundTripThroughPutWriterAndReopen) {
  BlobStoreOptions options;  // file_min_bytes 1 MiB
  options.chunk_bytes = 1 << 20;
  const std::string put = RandomBytes((3 << 20) + 5, 71);
  const std::string exact = RandomBytes(1 << 20, 72);
  const std::string below = RandomBytes((1 << 20) - 1, 73);
  const std::string streamed = RandomBytes((5 << 20) + 3, 74);
  std::string streamed_digest;
  {
    auto store = Open(options);
    EXPECT_EQ(store->Put(put), Sha256Hex(put));
    EXPECT_TRUE(store->PutExpected(Sha256Hex(exact), exact));
    EXPECT_EQ(store->Put(below), Sha256Hex(below));
    auto writer = store->NewWriter();
    for (size_t offset = 0; offset < streamed.size(); offset += 300000) {
      writer->Append(std::string_view(streamed).substr(offset, 300000));
    }
    streamed_digest = writer->Commit();
    EXPECT_EQ(streamed_digest, Sha256Hex(streamed));
    // Blobs of at least file_min_bytes are files; the one below is not.
    std::vector<std::string> expected = {FileOf(Sha256Hex(put)),
                                         FileOf(Sha256Hex(exact)),
                                         FileOf(streamed_digest)};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(StoredFiles(Dir()), expected);
    EXPECT_TRUE(store->Get(Sha256Hex(put)) == put);
  }
  auto store = Open(options);
  EXPECT_EQ(store->Stats().blobs, 4u);
  EXPECT_EQ(store->Stats().bytes,
            put.size() + exact.size() + below.size() + streamed.size());
  EXPECT_TRUE(store->Get(Sha256Hex(put)) == put);
  EXPECT_TRUE(store->Get(Sha256Hex(exact)) == exact);
  EXPECT_TRUE(store->Get(Sha256Hex(below)) == below);
  EXPECT_EQ(store->Size(streamed_digest), streamed.size());
  std::string read;
  int pieces = 0;
  store->Read(streamed_digest, [&](std::string_view piece) {
    EXPECT_LE(piece.size(), options.chunk_bytes);
    read.append(piece);
    ++pieces;
  });
  EXPECT_TRUE(read == streamed);
  EXPECT_EQ(pieces, 6);

  // Idempotent: the same bytes again write nothing and keep one file each.
  EXPECT_FALSE(store->PutExpected(Sha256Hex(put), put));
  auto again = store->NewWriter();
  again->Append(streamed);
  EXPECT_EQ(again->Commit(), streamed_digest);
  EXPECT_EQ(store->Stats().blobs, 4u);
  EXPECT_EQ(StoredFiles(Dir()).size(), 3u);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
  EXPECT_EQ(KeysWithPrefix(raw.get(), "z/").size(), 1u);  // `below` only
}

TEST_F(BlobStoreTest, SmallWriterBlobBelowFileSizeIsNotAFile) {
  auto store = Open();
  auto writer = store->NewWriter();
  const std::string bytes = RandomBytes(300000, 75);
  writer->Append(bytes);
  EXPECT_EQ(writer->Commit(), Sha256Hex(bytes));
  EXPECT_TRUE(store->Get(Sha256Hex(bytes)) == bytes);
  EXPECT_TRUE(StoredFiles(Dir()).empty());
}

TEST_F(BlobStoreTest, AbandonedFileWriterLeavesNoFile) {
  auto store = Open();
  auto writer = store->NewWriter();
  writer->Append(RandomBytes(3 << 20, 76));
  EXPECT_EQ(StoredFiles(Dir()).size(), 1u);  // its temporary file
  writer.reset();
  EXPECT_TRUE(StoredFiles(Dir()).empty());
  EXPECT_EQ(store->Stats().blobs, 0u);
}

TEST_F(BlobStoreTest, FlippedByteInFileIsCorrupt) {
  const std::string bytes = RandomBytes(2 << 20, 77);
  const std::string digest = Sha256Hex(bytes);
  Open()->Put(bytes);
  std::string damaged = bytes;
  damaged[12345] ^= 0x01;
  WriteFile(Dir() / "files" / FileOf(digest), damaged);

  auto store = Open();
  EXPECT_TRUE(store->Has(digest));
  EXPECT_EQ(CodeOf([&] { store->Get(digest); }), ErrorCode::kCorrupt);
  EXPECT_NE(MessageOf([&] { store->Get(digest); }).find(digest),
            std::string::npos);
  EXPECT_EQ(CodeOf([&] { store->Read(digest, [](std::string_view) {}); }),
            ErrorCode::kCorrupt);
  // A truncated file is caught before any byte is read.
  WriteFile(Dir() / "files" / FileOf(digest), bytes.substr(0, 1000));
  bool sink_called = false;
  EXPECT_EQ(CodeOf([&] {
              store->Read(digest,
                          [&](std::string_view) { sink_called = true; });
            }),
            ErrorCode::kCorrupt);
  EXPECT_FALSE(sink_called);
  EXPECT_EQ(CodeOf([&] { store->Get(digest); }), ErrorCode::kCorrupt);
}

TEST_F(BlobStoreTest, MissingFileIsCorruptNamingTheDigest) {
  const std::string bytes = RandomBytes(2 << 20, 78);
  const std::string digest = Sha256Hex(bytes);
  auto store = Open();
  store->Put(bytes);
  std::filesystem::remove(Dir() / "files" / FileOf(digest));
  EXPECT_EQ(CodeOf([&] { store->Get(digest); }), ErrorCode::kCorrupt);
  const std::string message = MessageOf([&] { store->Get(digest); });
  EXPECT_NE(message.find(digest), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_EQ(CodeOf([&] { store->Read(digest, [](std::string_view) {}); }),
            ErrorCode::kCorrupt);
  // Putting the blob again does not repair it (the record is there); fsck
  // finds it. Deleting it works.
  store->Delete(digest);
  EXPECT_FALSE(store->Has(digest));
  EXPECT_EQ(CodeOf([&] { store->Get(digest); }), ErrorCode::kNotFound);
  EXPECT_TRUE(store->PutExpected(digest, bytes));
  EXPECT_TRUE(store->Get(digest) == bytes);
}

TEST_F(BlobStoreTest, FileBlobsInMissingHasStatsForEachAndDelete) {
  auto store = Open();
  const std::string small = "small", big = RandomBytes(3 << 20, 79);
  const std::string ds = store->Put(small), db = store->Put(big);
  const std::string absent = Sha256Hex("absent");
  EXPECT_TRUE(store->Has(db));
  EXPECT_EQ(store->Size(db), big.size());
  EXPECT_EQ(store->Missing({absent, db, ds}), std::vector<std::string>{absent});
  std::map<std::string, uint64_t> listed;
  store->ForEach(
      [&](const std::string& digest, uint64_t size) { listed[digest] = size; });
  EXPECT_EQ(listed,
            (std::map<std::string, uint64_t>{{ds, 5}, {db, big.size()}}));
  EXPECT_EQ(store->Stats().blobs, 2u);
  EXPECT_EQ(store->Stats().bytes, 5 + big.size());

  store->Delete(db);
  EXPECT_FALSE(store->Has(db));
  EXPECT_EQ(store->Missing({db}), std::vector<std::string>{db});
  EXPECT_EQ(store->Stats().blobs, 1u);
  EXPECT_EQ(store->Stats().bytes, 5u);
  EXPECT_TRUE(StoredFiles(Dir()).empty());
  EXPECT_EQ(CodeOf([&] { store->Get(db); }), ErrorCode::kNotFound);
  store.reset();
  EXPECT_EQ(Open()->Stats().blobs, 1u);
}

TEST_F(BlobStoreTest, PutExpectedAllMixesFilesAndSmallBlobs) {
  auto store = Open();
  const std::string a = RandomBytes(2 << 20, 81), b = RandomBytes(5 << 20, 82),
                    c = RandomBytes(3000, 83), d = RandomBytes(200000, 84);
  const std::string da = Sha256Hex(a), dbb = Sha256Hex(b), dc = Sha256Hex(c),
                    dd = Sha256Hex(d);
  EXPECT_EQ(store->PutExpectedAll(
                {{da, a}, {dc, c}, {dbb, b}, {dd, d}, {da, a}}),
            4u);
  EXPECT_EQ(StoredFiles(Dir()).size(), 2u);
  EXPECT_EQ(store->PutExpectedAll({{da, a}, {dbb, b}}), 0u);
  EXPECT_EQ(StoredFiles(Dir()).size(), 2u);
  store.reset();
  store = Open();
  EXPECT_EQ(store->Stats().blobs, 4u);
  for (const auto& [digest, bytes] :
       std::vector<std::pair<std::string, std::string>>{
           {da, a}, {dbb, b}, {dc, c}, {dd, d}}) {
    EXPECT_TRUE(store->Get(digest) == bytes);
  }
  // One bad blob: nothing stored, no file left behind.
  const std::string e = RandomBytes(4 << 20, 85);
  EXPECT_EQ(CodeOf([&] {
              store->PutExpectedAll(
                  {{Sha256Hex(e), e}, {Sha256Hex("x"), "tampered"}});
            }),
            ErrorCode::kInvalidArgument);
  EXPECT_FALSE(store->Has(Sha256Hex(e)));
  EXPECT_EQ(StoredFiles(Dir()).size(), 2u);
}

TEST_F(BlobStoreTest, ConcurrentPutsOfOneFileBlobCountItOnce) {
  auto store = Open();
  const std::string bytes = RandomBytes(3 << 20, 86);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 3; ++j) {
        if (i % 2 == 0) {
          store->Put(bytes);
        } else {
          auto writer = store->NewWriter();
          writer->Append(bytes);
          writer->Commit();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store->Stats().blobs, 1u);
  EXPECT_EQ(store->Stats().bytes, bytes.size());
  EXPECT_TRUE(store->Get(Sha256Hex(bytes)) == bytes);
  EXPECT_EQ(StoredFiles(Dir()),
            std::vector<std::string>{FileOf(Sha256Hex(bytes))});
}

// The child half of CrashBeforeFileRecordLeavesNoBlob: writer A streams
// 3 MiB into its temporary file and is never committed; B is put; then the
// process dies without closing the store.
TEST(BlobStoreCrashChild, WritesFilesAndDies) {
  const char* dir = std::getenv("BATON_TEST_CRASH_DIR");
  if (dir == nullptr) GTEST_SKIP() << "only run by CrashBeforeFileRecordLeavesNoBlob";
  auto store = BlobStore::Open(dir);
  auto a = store->NewWriter();
  a->Append(RandomBytes(3 << 20, 91));
  store->Put(RandomBytes(2 << 20, 92));
  std::_Exit(0);
}

TEST_F(BlobStoreTest, CrashBeforeFileRecordLeavesNoBlob) {
  Open().reset();
  ASSERT_EQ(RunCrashChild(Dir(), "BlobStoreCrashChild.WritesFilesAndDies"), 0);
  const std::string b = RandomBytes(2 << 20, 92);
  const std::string c = RandomBytes(4 << 20, 93);
  // What a crash between renaming a file into place and writing its record
  // leaves: a complete file that no record names; and a temporary file of
  // a put that never finished.
  WriteFile(Dir() / "files" / FileOf(Sha256Hex(c)), c);
  WriteFile(Dir() / "files" / "ab" / ".tmp-0123", RandomBytes(5000, 94));
  EXPECT_EQ(StoredFiles(Dir()).size(), 4u);  // A's temp, B, C, .tmp-0123

  auto store = Open();
  EXPECT_EQ(store->Stats().blobs, 1u);
  EXPECT_TRUE(store->Get(Sha256Hex(b)) == b);
  EXPECT_FALSE(store->Has(Sha256Hex(c)));
  EXPECT_EQ(StoredFiles(Dir()),
            std::vector<std::string>{FileOf(Sha256Hex(b))});
  // The orphan's blob can be put again.
  EXPECT_TRUE(store->PutExpected(Sha256Hex(c), c));
  EXPECT_TRUE(store->Get(Sha256Hex(c)) == c);
}

// A store written before file blobs (version 1 records only, large blobs in
// chunks) reads unchanged, and takes new file blobs beside the old ones.
TEST_F(BlobStoreTest, StoreWithoutFileBlobsStillReads) {
  const std::string small = "old small", mid = RandomBytes(300000, 95),
                    large = RandomBytes(20 << 20, 96);
  {
    auto old = Open(RocksOnly());
    old->Put(small);
    old->Put(mid);
    old->Put(large);
  }
  EXPECT_TRUE(StoredFiles(Dir()).empty());
  const std::string fresh = RandomBytes(2 << 20, 97);
  {
    auto store = Open();
    EXPECT_EQ(store->Stats().blobs, 3u);
    EXPECT_EQ(store->Get(Sha256Hex(small)), small);
    EXPECT_TRUE(store->Get(Sha256Hex(mid)) == mid);
    EXPECT_TRUE(store->Get(Sha256Hex(large)) == large);
    EXPECT_FALSE(store->PutExpected(Sha256Hex(large), large));  // not a file
    store->Put(fresh);
  }
  EXPECT_EQ(StoredFiles(Dir()),
            std::vector<std::string>{FileOf(Sha256Hex(fresh))});
  auto store = Open();
  EXPECT_EQ(store->Stats().blobs, 4u);
  EXPECT_TRUE(store->Get(Sha256Hex(fresh)) == fresh);
  EXPECT_TRUE(store->Get(Sha256Hex(large)) == large);
}

}  // namespace
}  // namespace baton::store
