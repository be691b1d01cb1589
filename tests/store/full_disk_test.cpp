// The store on a full disk: a small real tmpfs (tests/store/small_filesystem.h)
// fills up under the blob store and the lineage DB. Every write that does not
// fit fails with Error(kResourceExhausted) naming the store and what to do;
// everything stored before stays intact; once space is freed the same open
// store writes again, and a reopened one finds everything.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "store/blob_store.h"
#include "store/lineage_db.h"
#include "tests/store/small_filesystem.h"
#include "tests/store/temp_dir.h"

namespace baton::store {
namespace {

namespace fs = std::filesystem;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

// What a call threw (thrown false if nothing).
struct Failure {
  bool thrown = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

template <typename Fn>
Failure Catch(Fn&& fn) {
  Failure f;
  try {
    fn();
  } catch (const Error& e) {
    f.thrown = true;
    f.code = e.code();
    f.message = e.what();
  }
  return f;
}

void ExpectOutOfSpace(const Failure& f, const fs::path& store) {
  ASSERT_TRUE(f.thrown);
  EXPECT_EQ(f.code, ErrorCode::kResourceExhausted) << f.message;
  EXPECT_NE(f.message.find(store.string()), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("free space"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("baton resume"), std::string::npos) << f.message;
}

TEST(FullDisk, BlobStoreFailsWithResourceExhaustedKeepsWhatItHadAndWritesAgainOnceFreed) {
  testing::TempDir tmp;
  baton::testing::SmallFilesystem disk(tmp.path() / "disk", 8u << 20);
  ASSERT_TRUE(disk.ok()) << disk.error();
  const fs::path dir = disk.dir() / "blobs";
  std::vector<std::pair<std::string, std::string>> stored;  // digest, bytes
  Failure small, large;
  {
    auto blobs = BlobStore::Open(dir);
    // Small blobs (RocksDB) until one does not fit.
    for (uint64_t seed = 1; seed < 1000 && !small.thrown; ++seed) {
      std::string bytes = RandomBytes(200u << 10, seed);
      small = Catch([&] { stored.push_back({blobs->Put(bytes), bytes}); });
    }
    ExpectOutOfSpace(small, dir);
    // A large blob (a file of its own) does not fit either.
    large = Catch([&] { blobs->Put(RandomBytes(3u << 20, 5000)); });
    ExpectOutOfSpace(large, dir);
    ASSERT_GT(stored.size(), 3u);
    // What was stored before reads back intact from the same store.
    for (const auto& [digest, bytes] : stored) ASSERT_EQ(blobs->Get(digest), bytes) << digest;

    // Space freed: the same open store takes writes again (RocksDB resumes
    // once 64 MiB, a memtable's worth, are free).
    ASSERT_TRUE(disk.Resize(96u << 20)) << disk.error();
    std::string more = RandomBytes(200u << 10, 9000);
    std::string digest;
    const Failure again = Catch([&] { digest = blobs->Put(more); });
    ASSERT_FALSE(again.thrown) << again.message;
    stored.push_back({digest, more});
    std::string big = RandomBytes(3u << 20, 9001);
    stored.push_back({blobs->Put(big), big});
  }
  // Reopened (as `baton resume` does): everything is there and verifies.
  auto blobs = BlobStore::Open(dir);
  EXPECT_EQ(blobs->Stats().blobs, stored.size());
  for (const auto& [digest, bytes] : stored) EXPECT_EQ(blobs->Get(digest), bytes) << digest;
}

TEST(FullDisk, LineageDbFailsWithResourceExhaustedKeepsWhatItHadAndWritesAgainOnceFreed) {
  testing::TempDir tmp;
  baton::testing::SmallFilesystem disk(tmp.path() / "disk", 2u << 20);
  ASSERT_TRUE(disk.ok()) << disk.error();
  const fs::path file = disk.dir() / "lineage.db";
  std::vector<std::string> ids;
  auto pipeline = [](int i) {
    return Json{{"name", "p" + std::to_string(i)}, {"padding", std::string(60000, static_cast<char>('a' + i % 26))}};
  };
  {
    auto db = LineageDb::Open(file);
    Failure full;
    for (int i = 0; i < 1000 && !full.thrown; ++i) {
      const std::string id = Sha256Hex("pipeline " + std::to_string(i));
      full = Catch([&] {
        db->PutPipeline(id, "p" + std::to_string(i), pipeline(i));
        ids.push_back(id);
      });
    }
    ExpectOutOfSpace(full, file);
    ASSERT_GT(ids.size(), 3u);
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_EQ(db->GetPipeline(ids[i]), pipeline(static_cast<int>(i))) << i;
    }
    ASSERT_TRUE(disk.Resize(64u << 20)) << disk.error();
    const std::string id = Sha256Hex("after");
    const Failure again = Catch([&] { db->PutPipeline(id, "after", pipeline(999)); });
    ASSERT_FALSE(again.thrown) << again.message;
  }
  auto db = LineageDb::Open(file);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(db->GetPipeline(ids[i]), pipeline(static_cast<int>(i))) << i;
  EXPECT_EQ(db->GetPipeline(Sha256Hex("after")), pipeline(999));
}

}  // namespace
}  // namespace baton::store
