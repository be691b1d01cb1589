// GuardedBlobStore over a real RocksDB blob store: a blob that was just
// asked about or stored is not deleted by gc's DeleteUnlessRecent, nothing
// is while a Writer is open, and an old enough blob is.
#include "store/guarded_blob_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/digest.h"
#include "tests/store/temp_dir.h"

namespace baton::store {
namespace {

std::unique_ptr<GuardedBlobStore> Open(const testing::TempDir& dir, std::chrono::seconds window) {
  return std::make_unique<GuardedBlobStore>(BlobStore::Open(dir.path() / "blobs"), window);
}

TEST(GuardedBlobStore, SparesBlobsJustAskedAboutOrStored) {
  testing::TempDir dir;
  auto blobs = Open(dir, std::chrono::seconds(3600));
  const std::string a = blobs->Put("stored just now");
  EXPECT_FALSE(blobs->DeleteUnlessRecent(a));
  EXPECT_TRUE(blobs->Has(a));
  blobs.reset();
  // A fresh process knows of no writer: the blob may go, once it has not
  // been asked about.
  blobs = Open(dir, std::chrono::seconds(3600));
  EXPECT_TRUE(blobs->DeleteUnlessRecent(a));
  EXPECT_FALSE(blobs->Has(a));
  // A worker asked which blobs are missing and was told this one is not.
  const std::string b = blobs->Put("old");
  blobs.reset();
  blobs = Open(dir, std::chrono::seconds(3600));
  EXPECT_TRUE(blobs->Missing({b}).empty());
  EXPECT_FALSE(blobs->DeleteUnlessRecent(b));
  EXPECT_TRUE(blobs->Has(b));
}

TEST(GuardedBlobStore, DeletesOnceTheWindowHasPassed) {
  testing::TempDir dir;
  auto blobs = Open(dir, std::chrono::seconds(0));
  const std::string a = blobs->Put("bytes");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(blobs->DeleteUnlessRecent(a));
  EXPECT_FALSE(blobs->Has(a));
}

TEST(GuardedBlobStore, NothingIsDeletedWhileAWriterIsOpen) {
  testing::TempDir dir;
  auto blobs = Open(dir, std::chrono::seconds(3600));
  const std::string old = blobs->Put("old");
  blobs.reset();
  blobs = Open(dir, std::chrono::seconds(3600));
  auto writer = blobs->NewWriter();
  writer->Append("streamed ");
  EXPECT_FALSE(blobs->DeleteUnlessRecent(old));  // its digest is not known yet
  writer->Append("bytes");
  const std::string streamed = writer->Commit();
  EXPECT_EQ(streamed, Sha256Hex("streamed bytes"));
  EXPECT_FALSE(blobs->DeleteUnlessRecent(streamed));  // just stored
  writer.reset();
  EXPECT_TRUE(blobs->DeleteUnlessRecent(old));
  auto abandoned = blobs->NewWriter();
  abandoned.reset();  // never committed: deletions go on
  EXPECT_TRUE(blobs->DeleteUnlessRecent(old));  // already absent
}

}  // namespace
}  // namespace baton::store
