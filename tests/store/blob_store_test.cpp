#include "store/blob_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "tests/store/temp_dir.h"

namespace baton::store {
namespace {

using testing::CodeOf;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j)
      out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

// Opens the store's RocksDB directly, bypassing BlobStore: the only way to
// damage a stored value the way a bad disk would.
std::unique_ptr<rocksdb::DB> OpenRaw(const std::filesystem::path& dir) {
  rocksdb::Options options;
  options.enable_blob_files = true;
  options.min_blob_size = 4096;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir.string(), &db);
  if (!s.ok()) throw std::runtime_error("raw open failed: " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(db);
}

void FlipLastByte(rocksdb::DB* db, const std::string& key) {
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok()) << key;
  ASSERT_FALSE(value.empty());
  value.back() ^= 0x01;
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
}

std::vector<std::string> KeysWithPrefix(rocksdb::DB* db,
                                        const std::string& prefix) {
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    keys.push_back(it->key().ToString());
  }
  return keys;
}

class BlobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<BlobStore> Open(const BlobStoreOptions& options = {}) {
    return BlobStore::Open(dir_.path() / "blobs", options);
  }
  std::filesystem::path Dir() const { return dir_.path() / "blobs"; }

  testing::TempDir dir_;
};

TEST_F(BlobStoreTest, PutGetRoundTripAtEverySize) {
  BlobStoreOptions options;
  options.chunk_bytes = 64 << 10;
  auto store = Open(options);
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{100}, size_t{4000}, size_t{5000},
        size_t{64 << 10}, size_t{(64 << 10) + 1}, size_t{300000}}) {
    const std::string bytes = RandomBytes(size, size);
    const std::string digest = store->Put(bytes);
    EXPECT_EQ(digest, Sha256Hex(bytes));
    EXPECT_TRUE(store->Has(digest));
    EXPECT_EQ(store->Size(digest), size);
    EXPECT_EQ(store->Get(digest), bytes) << "size " << size;
  }
  EXPECT_EQ(store->Stats().blobs, 8u);
}

TEST_F(BlobStoreTest, IdempotentPutDoesNotGrowStats) {
  auto store = Open();
  const std::string small = "hello";
  const std::string large = RandomBytes(1 << 20, 1);
  store->Put(small);
  store->Put(large);
  const BlobStoreStats before = store->Stats();
  EXPECT_EQ(before.blobs, 2u);
  EXPECT_EQ(before.bytes, small.size() + large.size());
  store->Put(small);
  store->Put(large);
  EXPECT_FALSE(store->PutExpected(Sha256Hex(large), large));
  const BlobStoreStats after = store->Stats();
  EXPECT_EQ(after.blobs, before.blobs);
  EXPECT_EQ(after.bytes, before.bytes);
}

TEST_F(BlobStoreTest, MissingKeepsOrderAndGetOfAbsentIsNotFound) {
  auto store = Open();
  const std::string a = store->Put("a");
  const std::string b = Sha256Hex("b");
  const std::string c = Sha256Hex("c");
  EXPECT_EQ(store->Missing({c, a, b}), (std::vector<std::string>{c, b}));
  EXPECT_FALSE(store->Has(b));
  EXPECT_EQ(CodeOf([&] { store->Get(b); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Size(b); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { store->Get("../../etc/passwd"); }),
            ErrorCode::kInvalidArgument);
  store->Delete(b);  // absent: not an error
}

TEST_F(BlobStoreTest, PutExpectedChecksTheDigest) {
  auto store = Open();
  EXPECT_EQ(CodeOf([&] { store->PutExpected(Sha256Hex("x"), "y"); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { store->PutExpected("not-a-digest", "y"); }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store->Stats().blobs, 0u);
  EXPECT_TRUE(store->PutExpected(Sha256Hex("y"), "y"));
  EXPECT_FALSE(store->PutExpected(Sha256Hex("y"), "y"));
}

// Every blob in RocksDB (the layout before file blobs, still used below
// file_min_bytes).
BlobStoreOptions RocksOnly() {
  BlobStoreOptions options;
  options.file_min_bytes = UINT64_MAX;
  return options;
}

TEST_F(BlobStoreTest, LargeBlobThroughWriterStreamsBackInChunks) {
  auto store = Open(RocksOnly());  // default 16 MiB chunks
  const std::string bytes = RandomBytes(40 << 20, 40);
  auto writer = store->NewWriter();
  for (size_t offset = 0; offset < bytes.size();) {
    const size_t n = std::min<size_t>(bytes.size() - offset, (1 << 20) + 7);
    writer->Append(std::string_view(bytes).substr(offset, n));
    offset += n;
  }
  const std::string digest = writer->Commit();
  EXPECT_EQ(digest, Sha256Hex(bytes));
  EXPECT_EQ(store->Size(digest), bytes.size());

  std::string streamed;
  int pieces = 0;
  store->Read(digest, [&](std::string_view piece) {
    EXPECT_LE(piece.size(), 16u << 20);
    streamed.append(piece);
    ++pieces;
  });
  EXPECT_EQ(pieces, 3);
  EXPECT_TRUE(streamed == bytes);
  EXPECT_TRUE(store->Get(digest) == bytes);

  // Writing the same bytes again stores nothing new and keeps no chunks.
  auto again = store->NewWriter();
  again->Append(bytes);
  EXPECT_EQ(again->Commit(), digest);
  EXPECT_EQ(store->Stats().blobs, 1u);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_EQ(KeysWithPrefix(raw.get(), "z/").size(), 3u);
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
}

TEST_F(BlobStoreTest, SmallWriterBlobIsStoredLikePut) {
  auto store = Open();
  auto writer = store->NewWriter();
  writer->Append("hel");
  writer->Append("lo");
  EXPECT_EQ(writer->Commit(), Sha256Hex("hello"));
  EXPECT_EQ(store->Get(Sha256Hex("hello")), "hello");
  EXPECT_EQ(store->Put("hello"), Sha256Hex("hello"));
  EXPECT_EQ(store->Stats().blobs, 1u);
}

TEST_F(BlobStoreTest, AbandonedWriterLeavesNoChunks) {
  BlobStoreOptions options;
  options.chunk_bytes = 8 << 10;
  {
    auto store = Open(options);
    auto writer = store->NewWriter();
    writer->Append(RandomBytes(100 << 10, 3));
    writer.reset();
    EXPECT_EQ(store->Stats().blobs, 0u);
  }
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "z/").empty());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
}

TEST_F(BlobStoreTest, ForEachListsOnlyDigestsAndDeleteFreesThem) {
  BlobStoreOptions options;
  options.chunk_bytes = 8 << 10;
  auto store = Open(options);
  const std::string small = store->Put("small");
  const std::string big = store->Put(RandomBytes(50 << 10, 5));
  std::map<std::string, uint64_t> listed;
  store->ForEach(
      [&](const std::string& digest, uint64_t size) { listed[digest] = size; });
  EXPECT_EQ(listed,
            (std::map<std::string, uint64_t>{{small, 5}, {big, 50 << 10}}));

  store->Delete(big);
  EXPECT_FALSE(store->Has(big));
  EXPECT_EQ(store->Stats().blobs, 1u);
  EXPECT_EQ(store->Stats().bytes, 5u);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "z/").empty());
}

TEST_F(BlobStoreTest, FlippedByteInInlineBlobIsCorrupt) {
  const std::string bytes = RandomBytes(1000, 9);
  const std::string digest = Sha256Hex(bytes);
  Open()->Put(bytes);
  FlipLastByte(OpenRaw(Dir()).get(), digest);

  auto store = Open();
  EXPECT_EQ(CodeOf([&] { store->Get(digest); }), ErrorCode::kCorrupt);
  bool sink_called = false;
  EXPECT_EQ(CodeOf([&] {
              store->Read(digest,
                          [&](std::string_view) { sink_called = true; });
            }),
            ErrorCode::kCorrupt);
  EXPECT_FALSE(sink_called);
}

TEST_F(BlobStoreTest, FlippedByteInChunkIsCorrupt) {
  BlobStoreOptions options;
  options.chunk_bytes = 16 << 10;
  const std::string bytes = RandomBytes(100 << 10, 11);
  const std::string digest = Sha256Hex(bytes);
  Open(options)->Put(bytes);
  {
    auto raw = OpenRaw(Dir());
    const auto chunks = KeysWithPrefix(raw.get(), "z/");
    ASSERT_EQ(chunks.size(), 7u);
    FlipLastByte(raw.get(), chunks[3]);
  }
  auto store = Open(options);
  EXPECT_EQ(CodeOf([&] { store->Get(digest); }), ErrorCode::kCorrupt);
  EXPECT_EQ(CodeOf([&] { store->Read(digest, [](std::string_view) {}); }),
            ErrorCode::kCorrupt);
}

TEST_F(BlobStoreTest, ReopenKeepsBlobsAndStats) {
  const std::string big = RandomBytes(20 << 20, 13);
  std::string a, b;
  {
    auto store = Open();
    a = store->Put("persist me");
    b = store->Put(big);
  }
  auto store = Open();
  EXPECT_EQ(store->Get(a), "persist me");
  EXPECT_TRUE(store->Get(b) == big);
  EXPECT_EQ(store->Stats().blobs, 2u);
  EXPECT_EQ(store->Stats().bytes, big.size() + 10);
}

TEST_F(BlobStoreTest, UnfinishedChunkSetsAreSweptOnOpen) {
  Open();  // creates the store, then closes it
  {
    // What a crash between writing chunks and committing leaves behind.
    auto raw = OpenRaw(Dir());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "p/deadbeef", "").ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "z/deadbeef/00000000",
                         RandomBytes(10000, 1))
                    .ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "z/deadbeef/00000001",
                         RandomBytes(10000, 2))
                    .ok());
  }
  {
    auto store = Open();
    EXPECT_EQ(store->Stats().blobs, 0u);
    int listed = 0;
    store->ForEach([&](const std::string&, uint64_t) { ++listed; });
    EXPECT_EQ(listed, 0);
  }
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "z/").empty());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
}

TEST_F(BlobStoreTest, SecondOpenWhileOpenIsUnavailable) {
  auto store = Open();
  EXPECT_EQ(CodeOf([&] { Open(); }), ErrorCode::kUnavailable);
  try {
    Open();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(Dir().string()), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos)
        << e.what();
  }
}

TEST_F(BlobStoreTest, ConcurrentPutsOfOneBlobCountItOnce) {
  BlobStoreOptions options;
  options.chunk_bytes = 16 << 10;
  options.sync = false;
  auto store = Open(options);
  const std::string bytes = RandomBytes(200 << 10, 17);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 5; ++j) store->Put(bytes);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store->Stats().blobs, 1u);
  EXPECT_EQ(store->Stats().bytes, bytes.size());
  EXPECT_TRUE(store->Get(Sha256Hex(bytes)) == bytes);
}

TEST_F(BlobStoreTest, PutExpectedAllStoresABatchAndDeduplicates) {
  BlobStoreOptions options;
  options.chunk_bytes = 64 << 10;
  auto store = Open(options);
  const std::string small = "small", medium = RandomBytes(50000, 21),
                    large = RandomBytes(300000, 22);  // several chunks
  const std::string ds = Sha256Hex(small), dm = Sha256Hex(medium),
                    dl = Sha256Hex(large);
  EXPECT_EQ(store->PutExpectedAll({{ds, small}, {dm, medium}, {dl, large},
                                   {dm, medium}}),
            3u);
  EXPECT_EQ(store->Get(ds), small);
  EXPECT_TRUE(store->Get(dm) == medium);
  EXPECT_TRUE(store->Get(dl) == large);
  EXPECT_EQ(store->Stats().blobs, 3u);
  EXPECT_EQ(store->Stats().bytes, small.size() + medium.size() + large.size());

  // Only the new one counts; the known ones are not written again.
  const std::string other = RandomBytes(7000, 23);
  EXPECT_EQ(store->PutExpectedAll(
                {{ds, small}, {dl, large}, {Sha256Hex(other), other}}),
            1u);
  EXPECT_EQ(store->PutExpectedAll({}), 0u);
  EXPECT_EQ(store->Stats().blobs, 4u);
  store.reset();
  auto reopened = Open(options);
  EXPECT_TRUE(reopened->Get(dl) == large);
  EXPECT_EQ(reopened->Stats().blobs, 4u);
  reopened.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
  EXPECT_EQ(KeysWithPrefix(raw.get(), "z/").size(), 1u + 5u + 1u);
}

TEST_F(BlobStoreTest, PutExpectedAllWithOneBadBlobStoresNothing) {
  BlobStoreOptions options;
  options.chunk_bytes = 64 << 10;
  options.unlogged_min_bytes = 100 << 10;
  auto store = Open(options);
  const std::string good = RandomBytes(200000, 31), also = "also good";
  const std::string wrong = Sha256Hex("something else");
  try {
    store->PutExpectedAll({{Sha256Hex(good), good},
                           {Sha256Hex(also), also},
                           {wrong, "tampered"}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string message = e.what();
    EXPECT_NE(message.find("blob 3 of 3"), std::string::npos) << message;
    EXPECT_NE(message.find(wrong), std::string::npos) << message;
    EXPECT_NE(message.find("none of the 3 blobs was stored"), std::string::npos)
        << message;
  }
  EXPECT_FALSE(store->Has(Sha256Hex(good)));
  EXPECT_FALSE(store->Has(Sha256Hex(also)));
  EXPECT_EQ(store->Stats().blobs, 0u);
  EXPECT_EQ(CodeOf([&] { store->PutExpectedAll({{"not-a-digest", "x"}}); }),
            ErrorCode::kInvalidArgument);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "z/").empty());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
}

// Blobs at or above unlogged_min_bytes skip RocksDB's write-ahead log; once
// Put, PutExpectedAll or Commit returns they must still be there after a
// reopen, whole and verified.
TEST_F(BlobStoreTest, UnloggedLargeBlobsSurviveReopen) {
  BlobStoreOptions options = RocksOnly();
  options.chunk_bytes = 1 << 20;
  options.unlogged_min_bytes = 1 << 20;
  const std::string put = RandomBytes(3 << 20, 41);
  const std::string batched = RandomBytes((2 << 20) + 5, 42);
  const std::string streamed = RandomBytes((5 << 20) + 3, 43);
  std::string streamed_digest;
  {
    auto store = Open(options);
    EXPECT_EQ(store->Put(put), Sha256Hex(put));
    EXPECT_EQ(store->PutExpectedAll({{Sha256Hex(batched), batched},
                                     {Sha256Hex("tiny"), "tiny"}}),
              2u);
    auto writer = store->NewWriter();
    for (size_t offset = 0; offset < streamed.size(); offset += 300000) {
      writer->Append(std::string_view(streamed).substr(offset, 300000));
    }
    streamed_digest = writer->Commit();
    EXPECT_EQ(streamed_digest, Sha256Hex(streamed));
  }
  auto store = Open(options);
  EXPECT_EQ(store->Stats().blobs, 4u);
  EXPECT_TRUE(store->Get(Sha256Hex(put)) == put);
  EXPECT_TRUE(store->Get(Sha256Hex(batched)) == batched);
  EXPECT_EQ(store->Get(Sha256Hex("tiny")), "tiny");
  std::string read;
  store->Read(streamed_digest, [&](std::string_view piece) { read.append(piece); });
  EXPECT_TRUE(read == streamed);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
  EXPECT_EQ(KeysWithPrefix(raw.get(), "z/").size(), 3u + 3u + 6u);
}

TEST_F(BlobStoreTest, AbandonedUnloggedWriterLeavesNothingAfterReopen) {
  BlobStoreOptions options = RocksOnly();
  options.chunk_bytes = 1 << 20;
  options.unlogged_min_bytes = 1 << 20;
  {
    auto store = Open(options);
    auto writer = store->NewWriter();
    writer->Append(RandomBytes(4 << 20, 51));
    writer.reset();
  }
  auto store = Open(options);
  EXPECT_EQ(store->Stats().blobs, 0u);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "z/").empty());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
}

// The child half of CrashBeforeCommitLeavesNoBlob: runs only when that test
// starts this binary with BATON_TEST_CRASH_DIR set. Writer A streams 40 MiB
// (two unlogged chunks) and is never committed; writer B commits a 20 MiB
// blob, which flushes A's chunks to disk too; then the process dies without
// closing the store.
TEST(BlobStoreCrashChild, WritesUnloggedChunksAndDies) {
  const char* dir = std::getenv("BATON_TEST_CRASH_DIR");
  if (dir == nullptr) GTEST_SKIP() << "only run by CrashBeforeCommitLeavesNoBlob";
  auto store = BlobStore::Open(dir, RocksOnly());  // 16 MiB chunks
  auto a = store->NewWriter();
  a->Append(RandomBytes(40 << 20, 61));
  auto b = store->NewWriter();
  b->Append(RandomBytes(20 << 20, 62));
  b->Commit();
  std::_Exit(0);
}

// Runs this binary's test `name` in a child process with
// BATON_TEST_CRASH_DIR set to `dir`, and returns its exit status.
int RunCrashChild(const std::filesystem::path& dir, const std::string& name) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    ::setenv("BATON_TEST_CRASH_DIR", dir.c_str(), 1);
    const std::string filter = "--gtest_filter=" + name;
    ::execl("/proc/self/exe", "blob_store_crash_child", filter.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST_F(BlobStoreTest, CrashBeforeCommitLeavesNoBlob) {
  Open(RocksOnly()).reset();
  ASSERT_EQ(RunCrashChild(Dir(), "BlobStoreCrashChild.WritesUnloggedChunksAndDies"),
            0);
  {
    // A's chunks reached disk under their pending marker, B is published.
    auto raw = OpenRaw(Dir());
    EXPECT_EQ(KeysWithPrefix(raw.get(), "p/").size(), 1u);
    EXPECT_EQ(KeysWithPrefix(raw.get(), "z/").size(), 2u + 2u);
  }
  const std::string b = RandomBytes(20 << 20, 62);
  auto store = Open(RocksOnly());
  EXPECT_EQ(store->Stats().blobs, 1u);
  EXPECT_TRUE(store->Get(Sha256Hex(b)) == b);
  store.reset();
  auto raw = OpenRaw(Dir());
  EXPECT_TRUE(KeysWithPrefix(raw.get(), "p/").empty());
  EXPECT_EQ(KeysWithPrefix(raw.get(), "z/").size(), 2u);  // B's only
}


// --- blobs stored as files (file_min_bytes and up) ---------------------------

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
