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

using testing::BlobMap;
using testing::kFashionMnistDir;
using testing::SmallFashionMnist;
using testing::TempDir;
using testing::WriteFile;

using baton::testing::ReadFile;

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
                  R"({"dataset": {"format": "parquet", "path": "/d"}})"));
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

// ---- CSV ----

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

PrepareSpec CsvSpec(const std::string& path) {
  PrepareSpec spec;
  spec.format = "csv";
  spec.path = path;
  return spec;
}

// Ten rows: x = row number (1..10), y = 10 * x, a constant column, labels
// cycling 0, 1, 2.
std::string TenRows() {
  std::string text = "x,y,label,const\n";
  for (int r = 1; r <= 10; ++r) {
    text += std::to_string(r) + "," + std::to_string(10 * r) + "," +
            std::to_string(r % 3) + ",7\n";
  }
  return text;
}

std::vector<float> Column(const torch::Tensor& x, int64_t column) {
  torch::Tensor c = x.select(1, column).contiguous();
  return std::vector<float>(c.data_ptr<float>(),
                            c.data_ptr<float>() + c.numel());
}

TEST(PrepareCsv, ReadsFeaturesAndIntegerLabels) {
  TempDir dir;
  WriteFile(dir.File("d.csv"),
            "\xEF\xBB\xBF\"a\", b ,label\r\n"
            "1.5, -2,1\r\n"
            "\r\n"
            "3e2,\"4\",0\r\n"
            "5,6,3\n"
            "7,8,1\n"
            "9,10,0");  // no final line break
  PrepareSpec spec = CsvSpec(dir.File("d.csv"));
  spec.test_fraction = 0.2;         // 1 of 5 rows
  spec.validation_fraction = 0.25;  // 1 of 4 rows
  Dataset data = PrepareDataset(spec);
  EXPECT_EQ(data.input_shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(data.num_classes, 4);  // max id 3, so ids 0..3
  EXPECT_EQ(data.train_x.sizes().vec(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(data.train_x.scalar_type(), torch::kFloat32);
  EXPECT_EQ(Column(data.train_x, 0), (std::vector<float>{1.5f, 300, 5}));
  EXPECT_EQ(Column(data.train_x, 1), (std::vector<float>{-2, 4, 6}));
  EXPECT_EQ(data.train_y.scalar_type(), torch::kInt64);
  EXPECT_TRUE(
      torch::equal(data.train_y, torch::tensor({1, 0, 3}, torch::kInt64)));
  EXPECT_EQ(data.val_y.item<int64_t>(), 1);
  EXPECT_EQ(data.test_x[0][0].item<float>(), 9);
  const Json& meta = data.meta;
  EXPECT_EQ(meta["format"], "csv");
  EXPECT_EQ(meta["features"], Json({"a", "b"}));
  EXPECT_EQ(meta["label_column"], "label");
  EXPECT_EQ(meta["input_shape"], Json({2}));
  EXPECT_EQ(meta["num_classes"], 4);
  EXPECT_EQ(meta["train"], 3);
  EXPECT_EQ(meta["validation"], 1);
  EXPECT_EQ(meta["test"], 1);
  EXPECT_FALSE(meta.contains("classes"));
  EXPECT_EQ(meta["source"]["files"].size(), 1u);
  EXPECT_TRUE(meta["source"]["files"].contains("d.csv"));
}

TEST(PrepareCsv, StringLabelsBecomeSortedClassIds) {
  TempDir dir;
  WriteFile(dir.File("pets.csv"),
            "weight,kind\n4,cat\n30,dog\n0.1,bird\n5,cat\n25,dog\n"
            "0.2,\"bird, small\"\n");
  PrepareSpec spec = CsvSpec(dir.File("pets.csv"));
  spec.label_column = "kind";
  spec.test_fraction = 0.2;  // 1 row
  Dataset data = PrepareDataset(spec);
  EXPECT_EQ(data.meta["classes"], Json({"bird", "bird, small", "cat", "dog"}));
  EXPECT_EQ(data.num_classes, 4);
  EXPECT_EQ(data.meta["label_column"], "kind");
  EXPECT_EQ(data.meta["features"], Json({"weight"}));
  torch::Tensor all = torch::cat({data.train_y, data.val_y, data.test_y});
  EXPECT_TRUE(
      torch::equal(all, torch::tensor({2, 3, 0, 2, 3, 1}, torch::kInt64)));
}

TEST(PrepareCsv, SplitsFollowTheFileOrder) {
  TempDir dir;
  WriteFile(dir.File("ten.csv"), TenRows());
  PrepareSpec spec = CsvSpec(dir.File("ten.csv"));
  spec.test_fraction = 0.2;
  spec.validation_fraction = 0.25;
  Dataset data = PrepareDataset(spec);
  // Rows 9, 10 are test; of rows 1..8 the last 2 are validation.
  EXPECT_EQ(Column(data.train_x, 0), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(Column(data.val_x, 0), (std::vector<float>{7, 8}));
  EXPECT_EQ(Column(data.test_x, 0), (std::vector<float>{9, 10}));
  EXPECT_EQ(data.num_classes, 3);

  spec.train_subset = 4;  // rows 1..4: 3 train, 1 validation
  spec.test_subset = 1;   // row 9
  data = PrepareDataset(spec);
  EXPECT_EQ(Column(data.train_x, 0), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(Column(data.val_x, 0), (std::vector<float>{4}));
  EXPECT_EQ(Column(data.test_x, 0), (std::vector<float>{9}));
  EXPECT_EQ(data.meta["train"], 3);
  EXPECT_EQ(data.meta["test"], 1);

  spec.train_subset = 9;  // only 8 rows come before the test split
  Error e = CatchError([&] { PrepareDataset(spec); });
  EXPECT_EQ(e.pointer(), "/train_subset");
  EXPECT_TRUE(Contains(e.what(), "8 rows")) << e.what();
}

TEST(PrepareCsv, StandardisesWithTrainingStatistics) {
  TempDir dir;
  WriteFile(dir.File("ten.csv"), TenRows());
  PrepareSpec spec = CsvSpec(dir.File("ten.csv"));
  spec.test_fraction = 0.2;
  spec.validation_fraction = 0.25;
  spec.normalize = true;
  Dataset data = PrepareDataset(spec);
  // Train x = 1..6: mean 3.5, population std sqrt(35/12).
  const double mean = 3.5, stddev = std::sqrt(35.0 / 12.0);
  EXPECT_NEAR(data.meta["mean"][0].get<double>(), mean, 1e-12);
  EXPECT_NEAR(data.meta["std"][0].get<double>(), stddev, 1e-12);
  EXPECT_NEAR(data.meta["mean"][1].get<double>(), 35.0, 1e-12);
  EXPECT_EQ(data.meta["mean"][2], 7.0);
  EXPECT_EQ(data.meta["std"][2], 1.0);  // a constant column is not scaled
  EXPECT_TRUE(data.meta["normalized"].get<bool>());
  for (int64_t f = 0; f < 2; ++f) {
    torch::Tensor column = data.train_x.select(1, f);
    EXPECT_NEAR(column.mean().item<double>(), 0.0, 1e-6);
    EXPECT_NEAR(column.std(/*unbiased=*/false).item<double>(), 1.0, 1e-6);
  }
  EXPECT_EQ(Column(data.train_x, 2), std::vector<float>(6, 0.0f));
  // Validation and test use the training statistics, not their own.
  EXPECT_NEAR(data.val_x[0][0].item<float>(), (7 - mean) / stddev, 1e-6);
  EXPECT_NEAR(data.test_x[1][1].item<float>(), (100 - 35.0) / (10 * stddev),
              1e-5);

  spec.normalize = false;
  Dataset raw = PrepareDataset(spec);
  EXPECT_EQ(raw.val_x[0][0].item<float>(), 7);
  EXPECT_EQ(raw.meta["mean"], data.meta["mean"]);  // recorded either way
}

TEST(PrepareCsv, BadCellNamesFileLineAndColumn) {
  TempDir dir;
  WriteFile(dir.File("bad.csv"), "x,y,label\n1,2,0\n3,abc,1\n");
  Error e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("bad.csv"))); });
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  const std::string what = e.what();
  EXPECT_TRUE(Contains(what, dir.File("bad.csv"))) << what;
  EXPECT_TRUE(Contains(what, "line 3, column 2 (\"y\")")) << what;
  EXPECT_TRUE(Contains(what, "\"abc\" is not a number")) << what;

  WriteFile(dir.File("empty_cell.csv"), "x,y,label\n1,2,0\n3,,1\n");
  EXPECT_TRUE(Contains(CatchError([&] {
                         PrepareDataset(CsvSpec(dir.File("empty_cell.csv")));
                       }).what(),
                       "line 3, column 2 (\"y\"): empty cell"));
  WriteFile(dir.File("inf.csv"), "x,y,label\n1,2,0\n1e39,1,1\n");
  EXPECT_TRUE(Contains(
      CatchError([&] { PrepareDataset(CsvSpec(dir.File("inf.csv"))); }).what(),
      "not a finite float32 number"));
}

TEST(PrepareCsv, RaggedRowAndBadQuotesAreCorrupt) {
  TempDir dir;
  WriteFile(dir.File("ragged.csv"), "x,y,label\n1,2,0\n\n3,1\n");
  Error e =
      CatchError([&] { PrepareDataset(CsvSpec(dir.File("ragged.csv"))); });
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(Contains(e.what(), "line 4: has 2 cells but the header has 3"))
      << e.what();

  WriteFile(dir.File("quote.csv"), "x,label\n\"1,0\n");
  e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("quote.csv"))); });
  EXPECT_TRUE(Contains(e.what(), "line 2, column 1")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "unterminated quote")) << e.what();

  WriteFile(dir.File("twice.csv"), "x,x,label\n1,2,0\n");
  e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("twice.csv"))); });
  EXPECT_TRUE(Contains(e.what(), "\"x\" appears twice")) << e.what();
}

TEST(PrepareCsv, MissingLabelColumnListsTheHeader) {
  TempDir dir;
  WriteFile(dir.File("d.csv"), "x,y,class\n1,2,0\n3,4,1\n5,6,1\n");
  Error e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("d.csv"))); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.pointer(), "/dataset/label_column");
  EXPECT_TRUE(Contains(e.what(), "no label column \"label\"")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "x, y, class")) << e.what();

  PrepareSpec spec = CsvSpec(dir.File("d.csv"));
  spec.label_column = "class";
  EXPECT_EQ(PrepareDataset(spec).meta["features"], Json({"x", "y"}));
}

TEST(PrepareCsv, EmptyFilesAndSingleClassesAreRejected) {
  TempDir dir;
  WriteFile(dir.File("empty.csv"), "\n\n");
  Error e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("empty.csv"))); });
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(Contains(e.what(), "is empty")) << e.what();

  WriteFile(dir.File("header.csv"), "x,label\n");
  EXPECT_TRUE(Contains(CatchError([&] {
                         PrepareDataset(CsvSpec(dir.File("header.csv")));
                       }).what(),
                       "no data rows"));

  WriteFile(dir.File("one.csv"), "x,label\n1,a\n2,a\n3,a\n");
  e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("one.csv"))); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(e.what(), "1 distinct value (\"a\")")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "at least 2 classes")) << e.what();

  WriteFile(dir.File("only_label.csv"), "label\n1\n0\n1\n");
  EXPECT_TRUE(Contains(CatchError([&] {
                         PrepareDataset(CsvSpec(dir.File("only_label.csv")));
                       }).what(),
                       "no feature columns"));

  e = CatchError([&] { PrepareDataset(CsvSpec(dir.File("missing.csv"))); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Contains(e.what(), dir.File("missing.csv")));
}

TEST(ParsePrepareSpec, ReadsCsvFields) {
  PrepareSpec spec = ParsePrepareSpec(Json::parse(R"({
    "dataset": {"format": "csv", "path": "/d.csv", "label_column": "y"},
    "test_fraction": 0.3, "test_subset": 10})"));
  EXPECT_EQ(spec.format, "csv");
  EXPECT_EQ(spec.path, "/d.csv");
  EXPECT_EQ(spec.label_column, "y");
  EXPECT_DOUBLE_EQ(spec.test_fraction, 0.3);
  EXPECT_EQ(spec.test_subset, 10);
  PrepareSpec defaults = ParsePrepareSpec(
      Json::parse(R"({"dataset": {"format": "csv", "path": "/d.csv"}})"));
  EXPECT_EQ(defaults.label_column, "label");
  EXPECT_DOUBLE_EQ(defaults.test_fraction, 0.2);
  EXPECT_EQ(CatchError([] {
              ParsePrepareSpec(Json::parse(
                  R"({"dataset": {"format": "csv", "path": "/d"},
                      "test_fraction": 1})"));
            }).pointer(),
            "/test_fraction");
  EXPECT_EQ(CatchError([] {
              ParsePrepareSpec(Json::parse(
                  R"({"dataset": {"format": "csv", "path": "/d",
                                  "label_column": 3}})"));
            }).pointer(),
            "/dataset/label_column");
}

TEST(DatasetCodec, RoundTripsACsvDataset) {
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), 50);
  PrepareSpec spec = CsvSpec(dir.File("signal.csv"));
  spec.normalize = true;
  Dataset data = PrepareDataset(spec);
  EncodedTensors encoded = EncodeDataset(data);
  BlobMap blobs;
  blobs.Add(encoded);
  Dataset decoded = DecodeDataset(encoded.manifest, blobs.Fetcher());
  EXPECT_TRUE(torch::equal(decoded.train_x, data.train_x));
  EXPECT_TRUE(torch::equal(decoded.val_x, data.val_x));
  EXPECT_TRUE(torch::equal(decoded.test_y, data.test_y));
  EXPECT_EQ(decoded.input_shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(decoded.num_classes, 3);
  EXPECT_EQ(decoded.meta, data.meta);
  EXPECT_EQ(decoded.meta["features"], Json(testing::kSignalCsvFeatures));
  // The same file and spec give the same manifest.
  EXPECT_EQ(store::ManifestDigest(EncodeDataset(PrepareDataset(spec)).manifest),
            store::ManifestDigest(encoded.manifest));

  store::Manifest bad = encoded.manifest;
  bad.meta["features"] = Json({"a", "b"});
  EXPECT_EQ(CatchError([&] { DecodeDataset(bad, blobs.Fetcher()); }).code(),
            ErrorCode::kCorrupt);
}

TEST(DropFeatures, RemovesTheNamedColumnsFromACopy) {
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), 60);
  PrepareSpec spec = CsvSpec(dir.File("signal.csv"));
  spec.normalize = true;
  const Dataset data = PrepareDataset(spec);
  const torch::Tensor original = data.train_x.clone();
  Dataset dropped = DropFeatures(data, {"noise_b", "signal"});
  EXPECT_EQ(dropped.input_shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(dropped.train_x.sizes().vec(),
            (std::vector<int64_t>{data.train_x.size(0), 3}));
  EXPECT_EQ(dropped.val_x.size(1), 3);
  EXPECT_EQ(dropped.test_x.size(1), 3);
  EXPECT_EQ(dropped.meta["features"], Json({"noise_a", "noise_c", "noise_d"}));
  EXPECT_EQ(dropped.meta["input_shape"], Json({3}));
  EXPECT_EQ(dropped.meta["dropped_features"], Json({"noise_b", "signal"}));
  EXPECT_EQ(
      dropped.meta["mean"],
      Json({data.meta["mean"][0], data.meta["mean"][3], data.meta["mean"][4]}));
  // Kept columns 0, 3, 4 of the original, in order.
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t source = std::vector<int64_t>{0, 3, 4}[k];
    EXPECT_TRUE(torch::equal(dropped.train_x.select(1, k),
                             data.train_x.select(1, source)));
    EXPECT_TRUE(torch::equal(dropped.test_x.select(1, k),
                             data.test_x.select(1, source)));
  }
  EXPECT_TRUE(torch::equal(dropped.train_y, data.train_y));
  // The source dataset is untouched.
  EXPECT_TRUE(torch::equal(data.train_x, original));
  EXPECT_EQ(data.input_shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(data.meta["features"].size(), 5u);
}

TEST(DropFeatures, UnknownNamesAndImagesAreRejected) {
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), 30);
  const Dataset data = PrepareDataset(CsvSpec(dir.File("signal.csv")));
  Error e = CatchError([&] { DropFeatures(data, {"signal", "sigal"}); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(e.what(), "\"sigal\"")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "noise_a, signal, noise_b")) << e.what();
  EXPECT_TRUE(Contains(CatchError([&] {
                         DropFeatures(data, {"signal", "signal"});
                       }).what(),
                       "listed twice"));
  EXPECT_TRUE(Contains(CatchError([&] {
                         DropFeatures(data, testing::kSignalCsvFeatures);
                       }).what(),
                       "nothing to learn from"));
  e = CatchError([&] { DropFeatures(SmallFashionMnist(), {"pixel"}); });
  EXPECT_TRUE(Contains(e.what(), "\"pixel\"")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "not tabular")) << e.what();
  EXPECT_EQ(DropFeatures(data, {}).input_shape, data.input_shape);
}

}  // namespace
}  // namespace baton::stages
