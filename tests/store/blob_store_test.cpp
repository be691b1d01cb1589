#include "store/blob_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "tests/store/blob_store_fixture.h"

// BlobStore in RocksDB alone: put and get, the writer, delete, damaged
// inline and chunked blobs, reopen, concurrency and batches. Unlogged writes
// and crashes are in blob_store_crash_test.cpp, blobs stored as files in
// blob_files_test.cpp.
namespace baton::store {
namespace {

using testing::BlobStoreTest;
using testing::CodeOf;
using testing::KeysWithPrefix;
using testing::OpenRaw;
using testing::RandomBytes;
using testing::RocksOnly;

void FlipLastByte(rocksdb::DB* db, const std::string& key) {
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok()) << key;
  ASSERT_FALSE(value.empty());
  value.back() ^= 0x01;
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
}

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

}  // namespace
}  // namespace baton::store
