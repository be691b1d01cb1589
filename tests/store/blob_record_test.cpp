#include "store/blob_record.h"

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
  for (const std::string& value :
       {truncated, bad_version, bad_kind, std::string("x"),
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
