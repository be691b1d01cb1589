#include "store/file_artifact.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/digest.h"
#include "common/file_digest.h"
#include "tests/store/temp_dir.h"

namespace baton::store {
namespace {

namespace fs = std::filesystem;
using testing::CodeOf;
using testing::TempDir;

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(FileArtifactTest, AFolderRoundTripsThroughTheStoreFormat) {
  TempDir dir;
  const fs::path src = fs::path(dir.path()) / "out";
  Write(src / "clean.csv", "a,label\n1,0\n");
  Write(src / "images" / "cat" / "1.png", std::string("\x89PNG\0\1", 6));
  Write(src / "same.csv", "a,label\n1,0\n");  // equal bytes share a blob

  FileBlobs files = ReadFileArtifact(src.string(), {{"stage", "clean"}});
  EXPECT_EQ(files.manifest.kind, "files");
  EXPECT_EQ(files.manifest.meta["layout"], "folder");
  EXPECT_EQ(files.manifest.meta["stage"], "clean");
  ASSERT_EQ(files.manifest.tensors.size(), 3u);
  EXPECT_EQ(files.manifest.tensors[0].name, "clean.csv");
  EXPECT_EQ(files.manifest.tensors[1].name, "images/cat/1.png");
  EXPECT_EQ(files.manifest.tensors[1].bytes, 6u);
  EXPECT_EQ(files.blobs.size(), 2u);
  // The manifest survives its canonical bytes (what the store keeps).
  const Manifest back = ParseManifest(ManifestBytes(files.manifest));

  const fs::path dest = fs::path(dir.path()) / "restored";
  WriteFileArtifact(back, [&](const std::string& d) { return files.blobs.at(d); }, dest.string());
  EXPECT_EQ(PathDigest(dest.string()), PathDigest(src.string()));
  EXPECT_EQ(Read(dest / "images" / "cat" / "1.png"), std::string("\x89PNG\0\1", 6));
}

TEST(FileArtifactTest, ASingleFileIsWrittenAsTheDestinationItself) {
  TempDir dir;
  const fs::path src = fs::path(dir.path()) / "model.pt";
  Write(src, "torchscript bytes");
  FileBlobs files = ReadFileArtifact(src.string());
  ASSERT_EQ(files.manifest.tensors.size(), 1u);
  EXPECT_EQ(files.manifest.tensors[0].name, "model.pt");
  EXPECT_EQ(files.manifest.tensors[0].blob, Sha256Hex("torchscript bytes"));
  const fs::path dest = fs::path(dir.path()) / "copy" / "m.pt";
  WriteFileArtifact(files.manifest, [&](const std::string& d) { return files.blobs.at(d); }, dest.string());
  EXPECT_EQ(Read(dest), "torchscript bytes");
}

TEST(FileArtifactTest, ABlobThatDoesNotMatchOrAnEscapingPathIsCorrupt) {
  TempDir dir;
  const fs::path src = fs::path(dir.path()) / "a.txt";
  Write(src, "abc");
  FileBlobs files = ReadFileArtifact(src.string());
  const std::string dest = (fs::path(dir.path()) / "b.txt").string();
  EXPECT_EQ(CodeOf([&] { WriteFileArtifact(files.manifest, [](const std::string&) { return std::string("abd"); }, dest); }),
            ErrorCode::kCorrupt);
  EXPECT_FALSE(fs::exists(dest));

  Manifest escaping = files.manifest;
  escaping.meta["layout"] = "folder";
  escaping.tensors[0].name = "../../etc/x";
  EXPECT_EQ(CodeOf([&] { WriteFileArtifact(escaping, [&](const std::string& d) { return files.blobs.at(d); }, dest); }),
            ErrorCode::kCorrupt);
  EXPECT_EQ(CodeOf([&] { ReadFileArtifact((fs::path(dir.path()) / "none").string()); }), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace baton::store
