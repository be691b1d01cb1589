#include "store/blob_store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/digest.h"
#include "tests/store/blob_store_fixture.h"

// BlobStore writes that skip RocksDB's write-ahead log, and a crash before
// a chunked blob is committed. The crash runs in a child process: this
// binary started again with a filter on BlobStoreCrashChild.*.
namespace baton::store {
namespace {

using testing::BlobStoreTest;
using testing::KeysWithPrefix;
using testing::OpenRaw;
using testing::RandomBytes;
using testing::RocksOnly;
using testing::RunCrashChild;

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

}  // namespace
}  // namespace baton::store
