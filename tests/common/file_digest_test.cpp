#include "common/file_digest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/digest.h"
#include "common/error.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

class FileDigestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton-file-digest-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data" / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
  fs::path dir_;
};

TEST_F(FileDigestTest, AFileIsItsBytesSha256) {
  Write(dir_ / "a.txt", "hello");
  EXPECT_EQ(FileSha256((dir_ / "a.txt").string()), Sha256Hex("hello"));
  EXPECT_EQ(PathDigest((dir_ / "a.txt").string()), Sha256Hex("hello"));
}

TEST_F(FileDigestTest, AFolderChangesWithAnyFileItsNameOrANewFileButNotWithTimes) {
  Write(dir_ / "data" / "x.csv", "1,2\n");
  Write(dir_ / "data" / "sub" / "y.csv", "3,4\n");
  const std::string data = (dir_ / "data").string();
  const std::string first = PathDigest(data);
  ASSERT_EQ(ListFiles(data).size(), 2u);
  EXPECT_EQ(ListFiles(data)[0].path, "sub/y.csv");

  fs::last_write_time(dir_ / "data" / "x.csv", fs::file_time_type::clock::now() - std::chrono::hours(3));
  EXPECT_EQ(PathDigest(data), first);

  Write(dir_ / "data" / "x.csv", "1,3\n");
  const std::string changed = PathDigest(data);
  EXPECT_NE(changed, first);

  fs::rename(dir_ / "data" / "x.csv", dir_ / "data" / "z.csv");
  EXPECT_NE(PathDigest(data), changed);
  const std::string renamed = PathDigest(data);

  Write(dir_ / "data" / "sub" / "empty", "");
  const std::string added = PathDigest(data);
  EXPECT_NE(added, renamed);

  // The folder's own name is not part of it.
  fs::rename(dir_ / "data", dir_ / "other");
  EXPECT_EQ(PathDigest((dir_ / "other").string()), added);
}

TEST_F(FileDigestTest, AMissingPathIsNotFoundAndNamed) {
  const std::string missing = (dir_ / "nope").string();
  try {
    PathDigest(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);
  }
  EXPECT_THROW(FileSha256((dir_ / "data").string()), Error);
}

}  // namespace
}  // namespace baton
