#include "stages/dataset.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

namespace fs = std::filesystem;
using testing::BlobMap;
using testing::kFashionMnistDir;
using testing::SmallFashionMnist;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A fresh folder under the test temp dir, removed at the end.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("baton-stages-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string File(const std::string& name) const { return path_ / name; }
  std::string path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

template <typename F>
Error CatchError(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no baton::Error thrown";
  return Error(ErrorCode::kInternal, "none");
}

TEST(ReadIdx, ReadsFashionMnistTrainingSet) {
  const std::string dir = kFashionMnistDir;
  IdxArray images = ReadIdx(dir + "/train-images-idx3-ubyte.gz");
  IdxArray labels = ReadIdx(dir + "/train-labels-idx1-ubyte.gz");
  EXPECT_EQ(images.dims, (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(images.data.size(), 60000u * 28 * 28);
  ASSERT_EQ(labels.dims, (std::vector<int64_t>{60000}));
  std::vector<int> counts(256, 0);
  for (uint8_t label : labels.data) ++counts[label];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], 6000) << "class " << c;
  for (int c = 10; c < 256; ++c) EXPECT_EQ(counts[c], 0);
}

TEST(ReadIdx, ReadsOnlyTheFirstItemsWhenAsked) {
  IdxArray all =
      ReadIdx(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
  IdxArray some =
      ReadIdx(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz", 7);
  EXPECT_EQ(all.dims, (std::vector<int64_t>{10000, 28, 28}));
  EXPECT_EQ(some.dims, (std::vector<int64_t>{7, 28, 28}));
  EXPECT_TRUE(std::equal(some.data.begin(), some.data.end(), all.data.begin()));
}

TEST(ReadIdx, MissingFileIsNotFoundAndNamesThePath) {
  Error e = CatchError([] { ReadIdx("/nonexistent/baton/train.gz"); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find("/nonexistent/baton/train.gz"),
            std::string::npos);
}

TEST(ReadIdx, TruncatedGzipIsCorruptAndNamesThePath) {
  TempDir dir;
  std::string bytes =
      ReadFile(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz");
  WriteFile(dir.File("cut.gz"), bytes.substr(0, bytes.size() / 2));
  Error e = CatchError([&] { ReadIdx(dir.File("cut.gz")); });
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_NE(std::string(e.what()).find(dir.File("cut.gz")), std::string::npos);
}

TEST(ReadIdx, DamagedGzipIsCorrupt) {
  TempDir dir;
  std::string bytes =
      ReadFile(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz");
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) {
    bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  }
  WriteFile(dir.File("damaged.gz"), bytes);
  EXPECT_EQ(CatchError([&] { ReadIdx(dir.File("damaged.gz")); }).code(),
            ErrorCode::kCorrupt);
}

TEST(ReadIdx, WrongMagicIsCorrupt) {
  TempDir dir;
  WriteFile(dir.File("text"), "this is not an idx file at all");
  Error e = CatchError([&] { ReadIdx(dir.File("text")); });
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_NE(std::string(e.what()).find("magic"), std::string::npos);
}

TEST(ReadIdx, ReadsUncompressedFilesToo) {
  TempDir dir;
  // magic 0x00000801, 3 items: labels 1, 2, 3.
  WriteFile(dir.File("labels"),
            std::string("\0\0\x08\x01\0\0\0\x03\x01\x02\x03", 11));
  IdxArray labels = ReadIdx(dir.File("labels"));
  EXPECT_EQ(labels.dims, (std::vector<int64_t>{3}));
  EXPECT_EQ(labels.data, (std::vector<uint8_t>{1, 2, 3}));
}

TEST(PrepareDataset, SplitsScalesAndNormalises) {
  const Dataset& data = SmallFashionMnist();
  EXPECT_EQ(data.train_x.sizes().vec(), (std::vector<int64_t>{800, 1, 28, 28}));
  EXPECT_EQ(data.val_x.sizes().vec(), (std::vector<int64_t>{200, 1, 28, 28}));
  EXPECT_EQ(data.test_x.sizes().vec(), (std::vector<int64_t>{500, 1, 28, 28}));
  EXPECT_EQ(data.train_y.scalar_type(), torch::kInt64);
  EXPECT_EQ(data.num_classes, 10);
  EXPECT_EQ(data.input_shape, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_NEAR(data.train_x.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(data.train_x.std(/*unbiased=*/false).item<double>(), 1.0, 1e-4);
  EXPECT_GE(data.train_y.min().item<int64_t>(), 0);
  EXPECT_LE(data.train_y.max().item<int64_t>(), 9);

  // Validation is the tail of the first 1000 training examples.
  IdxArray labels = ReadIdx(
      std::string(kFashionMnistDir) + "/train-labels-idx1-ubyte.gz", 1000);
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(data.val_y[i].item<int64_t>(), labels.data[800 + i]);
  }
  const Json& meta = data.meta;
  EXPECT_EQ(meta["train"], 800);
  EXPECT_EQ(meta["validation"], 200);
  EXPECT_EQ(meta["test"], 500);
  EXPECT_EQ(meta["num_classes"], 10);
  EXPECT_EQ(meta["input_shape"], Json({1, 28, 28}));
  EXPECT_GT(meta["mean"].get<double>(), 0.2);
  EXPECT_LT(meta["mean"].get<double>(), 0.4);
  EXPECT_EQ(meta["source"]["files"].size(), 4u);
}

TEST(PrepareDataset, WithoutNormalizeScalesToUnitInterval) {
  PrepareSpec spec;
  spec.path = kFashionMnistDir;
  spec.train_subset = 100;
  spec.test_subset = 10;
  Dataset data = PrepareDataset(spec);
  EXPECT_EQ(data.val_x.size(0), 10);  // default validation_fraction 0.1
  EXPECT_GE(data.train_x.min().item<float>(), 0.0f);
  EXPECT_LE(data.train_x.max().item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(data.train_x.max().item<float>(), 1.0f);
}

TEST(PrepareDataset, MissingFolderNamesTheFile) {
  PrepareSpec spec;
  spec.path = "/nonexistent/fashion";
  Error e = CatchError([&] { PrepareDataset(spec); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find(
                "/nonexistent/fashion/train-images-idx3-ubyte"),
            std::string::npos);
}

TEST(PrepareDataset, SubsetLargerThanTheDataIsInvalid) {
  PrepareSpec spec;
  spec.path = kFashionMnistDir;
  spec.test_subset = 20000;
  Error e = CatchError([&] { PrepareDataset(spec); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.pointer(), "/test_subset");
}

TEST(ParsePrepareSpec, ReadsTheStageSpecAndIgnoresOtherKeys) {
  PrepareSpec spec = ParsePrepareSpec(Json::parse(R"({
    "type": "prepare", "depends_on": [],
    "dataset": {"format": "idx", "path": "/data"},
    "train_subset": 20000, "validation_fraction": 0.2, "normalize": true})"));
  EXPECT_EQ(spec.path, "/data");
  EXPECT_EQ(spec.train_subset, 20000);
  EXPECT_FALSE(spec.test_subset.has_value());
  EXPECT_DOUBLE_EQ(spec.validation_fraction, 0.2);
  EXPECT_TRUE(spec.normalize);
}

TEST(ParsePrepareSpec, RejectsBadFieldsWithTheirPointer) {
  Error e = CatchError([] {
    ParsePrepareSpec(Json::parse(
        R"({"dataset": {"format": "idx", "path": "/d"}, "validation_fraction": 1.5})"));
  });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.pointer(), "/validation_fraction");
  EXPECT_EQ(CatchError([] {
              ParsePrepareSpec(Json::parse(
                  R"({"dataset": {"format": "csv", "path": "/d"}})"));
            }).pointer(),
            "/dataset/format");
  EXPECT_EQ(CatchError([] {
              ParsePrepareSpec(Json::parse(R"({"train_subset": 5})"));
            }).pointer(),
            "/dataset");
}

TEST(DatasetCodec, RoundTripsThroughAManifest) {
  const Dataset& data = SmallFashionMnist();
  EncodedTensors encoded = EncodeDataset(data);
  EXPECT_EQ(encoded.manifest.kind, "dataset");
  EXPECT_EQ(encoded.manifest.tensors.size(), 6u);
  BlobMap blobs;
  blobs.Add(encoded);
  Dataset decoded = DecodeDataset(encoded.manifest, blobs.Fetcher());
  EXPECT_TRUE(torch::equal(decoded.train_x, data.train_x));
  EXPECT_TRUE(torch::equal(decoded.val_y, data.val_y));
  EXPECT_TRUE(torch::equal(decoded.test_x, data.test_x));
  EXPECT_EQ(decoded.num_classes, 10);
  EXPECT_EQ(decoded.input_shape, data.input_shape);
  EXPECT_EQ(decoded.meta, data.meta);

  store::Manifest model_manifest = encoded.manifest;
  model_manifest.kind = "model";
  EXPECT_THROW(DecodeDataset(model_manifest, blobs.Fetcher()), Error);
}

}  // namespace
}  // namespace baton::stages
