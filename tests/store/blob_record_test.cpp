#include "store/internal/blob_record.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace baton::store::blob_record {
namespace {

const std::string kDigest(64, 'a');

TEST(BlobRecordTest, InlineRoundTrip) {
  const Record r = Decode(kDigest, EncodeInline("hello"), "test");
  EXPECT_EQ(r.kind, Kind::kInline);
  EXPECT_EQ(r.size, 5u);
  EXPECT_EQ(r.Payload(), "hello");
  EXPECT_EQ(Decode(kDigest, EncodeInline(""), "test").size, 0u);
}

TEST(BlobRecordTest, ChunkedRoundTrip) {
  const Record r =
      Decode(kDigest, EncodeChunked(2500, 1000, 3, "set1"), "test");
  EXPECT_EQ(r.kind, Kind::kChunked);
  EXPECT_EQ(r.size, 2500u);
  EXPECT_EQ(r.chunk_size, 1000u);
  EXPECT_EQ(r.chunks, 3u);
  EXPECT_EQ(r.chunk_set, "set1");
  EXPECT_EQ(r.ChunkLength(0), 1000u);
  EXPECT_EQ(r.ChunkLength(2), 500u);
  EXPECT_EQ(ChunkCount(3000, 1000), 3u);
  EXPECT_EQ(ChunkCount(3001, 1000), 4u);
}

TEST(BlobRecordTest, FileRoundTripAndVersionOneRecordsStillDecode) {
  const Record f = Decode(kDigest, EncodeFile(3u << 20), "test");
  EXPECT_EQ(f.kind, Kind::kFile);
  EXPECT_EQ(f.size, 3u << 20);
  EXPECT_EQ(f.value.size(), kHeaderBytes);
  EXPECT_EQ(f.value[0], 2);
  // Records as version 1 wrote them, byte by byte.
  const std::string inline_v1("\x01\x00\x02\0\0\0\0\0\0\0hi", 12);
  const Record i = Decode(kDigest, inline_v1, "test");
  EXPECT_EQ(i.kind, Kind::kInline);
  EXPECT_EQ(i.Payload(), "hi");
  EXPECT_EQ(EncodeInline("hi"), inline_v1);  // still written as version 1
  std::string chunked_v1("\x01\x01", 2);
  chunked_v1 += std::string("\x10\0\0\0\0\0\0\0", 8);  // size 16
  chunked_v1 += std::string("\x08\0\0\0\0\0\0\0", 8);  // chunk 8
  chunked_v1 += std::string("\x02\0\0\0", 4) + "set";        // 2 chunks
  const Record c = Decode(kDigest, chunked_v1, "test");
  EXPECT_EQ(c.kind, Kind::kChunked);
  EXPECT_EQ(c.chunks, 2u);
  EXPECT_EQ(c.chunk_set, "set");
  EXPECT_EQ(EncodeChunked(16, 8, 2, "set"), chunked_v1);
}

TEST(BlobRecordTest, KeysSortAfterEveryDigest) {
  EXPECT_EQ(ChunkKey("s", 10), "z/s/0000000a");
  EXPECT_LT(ChunkKey("s", 9), ChunkKey("s", 10));
  EXPECT_GT(ChunkKey("s", 0), std::string(64, 'f'));
  EXPECT_GT(PendingKey("s"), std::string(64, 'f'));
  EXPECT_LT(kInlineMax, kMinBlobSize - kHeaderBytes);
}

TEST(BlobRecordTest, MalformedRecordsAreCorrupt) {
  std::string inline_record = EncodeInline("hello");
  std::string truncated = inline_record.substr(0, inline_record.size() - 1);
  std::string bad_version = inline_record;
  bad_version[0] = 9;
  std::string bad_kind = EncodeChunked(2500, 1000, 3, "set1");
  bad_kind[1] = 7;
  std::string file_in_v1 = EncodeFile(10);
  file_in_v1[0] = 1;
  const std::string file_extra = EncodeFile(10) + "x";
  for (const std::string& value :
       {truncated, bad_version, bad_kind, file_in_v1, file_extra,
        std::string("x"),
        EncodeChunked(2500, 1000, 2, "set1"), EncodeChunked(2500, 0, 3, "s"),
        EncodeChunked(2500, 1000, 3, "")}) {
    try {
      Decode(kDigest, value, "store X");
      ADD_FAILURE() << "accepted a malformed record";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
      EXPECT_NE(std::string(e.what()).find(kDigest), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace baton::store::blob_record
