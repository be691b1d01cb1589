#include "stages/tensor_codec.h"

#include <gtest/gtest.h>

#include "common/digest.h"
#include "common/error.h"
#include "stages/model.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

using testing::BlobMap;
using testing::TinyCnn;

const std::vector<int64_t> kMnistShape = {1, 28, 28};

std::map<std::string, std::string> TensorDigests(const torch::nn::Module& m) {
  std::map<std::string, std::string> digests;
  for (const auto& [name, tensor] : ModuleState(m)) {
    digests[name] = Sha256Hex(TensorBytes(tensor));
  }
  return digests;
}

TEST(TensorCodec, RoundTripsEveryDtypeBitForBit) {
  torch::manual_seed(5);
  std::vector<torch::Tensor> tensors = {
      torch::randn({3, 4, 5}),
      torch::randn({7}, torch::kFloat64),
      torch::randint(-1000000, 1000000, {2, 3}, torch::kInt64),
      torch::randint(-1000, 1000, {9}, torch::kInt32),
      torch::randint(0, 256, {4, 4}, torch::kUInt8),
      torch::randint(0, 2, {6}).to(torch::kBool),
      torch::tensor(42, torch::kInt64),  // a scalar, shape []
      torch::empty({0, 3}),
      torch::tensor({std::nanf(""), -0.0f, INFINITY}),
  };
  for (const torch::Tensor& t : tensors) {
    std::string bytes = TensorBytes(t);
    ASSERT_EQ(bytes.size(), t.nbytes());
    torch::Tensor back =
        TensorFromBytes(bytes, t.scalar_type(), t.sizes().vec(), "t");
    EXPECT_EQ(back.scalar_type(), t.scalar_type());
    EXPECT_EQ(back.sizes(), t.sizes());
    EXPECT_EQ(TensorBytes(back), bytes);
    EXPECT_EQ(ParseDtype(DtypeName(t.scalar_type())), t.scalar_type());
  }
}

TEST(TensorCodec, BytesAreLittleEndianAndRowMajor) {
  EXPECT_EQ(TensorBytes(torch::tensor({1, 258}, torch::kInt32)),
            std::string("\x01\0\0\0\x02\x01\0\0", 8));
  torch::Tensor m = torch::arange(6, torch::kUInt8).reshape({2, 3});
  EXPECT_EQ(TensorBytes(m.t()), std::string("\0\x03\x01\x04\x02\x05", 6));
}

TEST(TensorCodec, SizeMismatchIsCorrupt) {
  try {
    TensorFromBytes(std::string(10, '\0'), torch::kFloat32, {3}, "fc1.bias");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("fc1.bias"), std::string::npos);
  }
  EXPECT_THROW(ParseDtype("float16"), Error);
  EXPECT_THROW(DtypeName(torch::kFloat16), Error);
}

TEST(TensorCodec, ModelStateBecomesASortedManifest) {
  torch::manual_seed(1);
  Model model(TinyCnn(), kMnistShape, 10);
  EncodedTensors encoded = EncodeModelState(*model);
  const store::Manifest& manifest = encoded.manifest;
  EXPECT_EQ(manifest.kind, "model");
  std::vector<std::string> names;
  for (const auto& entry : manifest.tensors) {
    names.push_back(entry.name);
    ASSERT_TRUE(encoded.blobs.count(entry.blob)) << entry.name;
    EXPECT_EQ(Sha256Hex(encoded.blobs.at(entry.blob)), entry.blob);
    EXPECT_EQ(entry.bytes, encoded.blobs.at(entry.blob).size());
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "bn1.bias", "bn1.num_batches_tracked", "bn1.running_mean",
                "bn1.running_var", "bn1.weight", "conv1.bias", "conv1.weight",
                "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"}));
  EXPECT_EQ(store::FindTensor(manifest, "bn1.num_batches_tracked")->dtype,
            "int64");
  // bn1.weight and bn1.running_var are both eight ones: one blob.
  EXPECT_EQ(store::FindTensor(manifest, "bn1.weight")->blob,
            store::FindTensor(manifest, "bn1.running_var")->blob);
  // The manifest survives the store's canonical form.
  store::Manifest parsed = store::ParseManifest(store::ManifestBytes(manifest));
  EXPECT_EQ(store::ManifestDigest(parsed), store::ManifestDigest(manifest));
}

TEST(TransferInit, CopiesMatchingTensorsBitForBitAndKeepsTheRest) {
  torch::manual_seed(1);
  Model source(TinyCnn(/*hidden=*/32), kMnistShape, 10);
  {
    // Make the buffers non-trivial, as after training.
    source->train();
    source->forward(torch::randn({4, 1, 28, 28}));
  }
  EncodedTensors checkpoint = EncodeModelState(*source);
  BlobMap blobs;
  blobs.Add(checkpoint);

  torch::manual_seed(2);
  Model target(TinyCnn(/*hidden=*/16), kMnistShape, 10);  // fc1 resized
  auto before = TensorDigests(*target);
  InitReport report =
      TransferInit(*target, checkpoint.manifest, blobs.Fetcher());

  EXPECT_EQ(report.reinitialized,
            (std::vector<std::string>{"fc1.bias", "fc1.weight", "fc2.weight"}));
  EXPECT_EQ(report.transferred,
            (std::vector<std::string>{"bn1.bias", "bn1.num_batches_tracked",
                                      "bn1.running_mean", "bn1.running_var",
                                      "bn1.weight", "conv1.bias",
                                      "conv1.weight", "fc2.bias"}));
  auto after = TensorDigests(*target);
  auto original = TensorDigests(*source);
  for (const auto& name : report.transferred) {
    EXPECT_EQ(after[name], original[name]) << name;
  }
  for (const auto& name : report.reinitialized) {
    EXPECT_EQ(after[name], before[name]) << name;
    EXPECT_NE(after[name], original[name]) << name;
  }
  EXPECT_TRUE(target->parameters()[0].requires_grad());
}

TEST(TransferInit, IdenticalModelGivesTheSameCheckpoint) {
  torch::manual_seed(1);
  Model source(TinyCnn(), kMnistShape, 10);
  EncodedTensors checkpoint = EncodeModelState(*source);
  BlobMap blobs;
  blobs.Add(checkpoint);
  torch::manual_seed(99);
  Model target(TinyCnn(), kMnistShape, 10);
  InitReport report =
      TransferInit(*target, checkpoint.manifest, blobs.Fetcher());
  EXPECT_TRUE(report.reinitialized.empty());
  EXPECT_EQ(store::ManifestDigest(EncodeModelState(*target).manifest),
            store::ManifestDigest(checkpoint.manifest));
}

TEST(TransferInit, FetchFailureLeavesTheModelUnchanged) {
  torch::manual_seed(1);
  Model source(TinyCnn(), kMnistShape, 10);
  EncodedTensors checkpoint = EncodeModelState(*source);
  BlobMap empty;  // knows no blobs
  torch::manual_seed(2);
  Model target(TinyCnn(), kMnistShape, 10);
  auto before = TensorDigests(*target);
  EXPECT_THROW(TransferInit(*target, checkpoint.manifest, empty.Fetcher()),
               Error);
  EXPECT_EQ(TensorDigests(*target), before);
}

TEST(LoadState, RestoresEveryTensorOrRefusesMismatches) {
  torch::manual_seed(1);
  Model source(TinyCnn(), kMnistShape, 10);
  EncodedTensors checkpoint = EncodeModelState(*source);
  BlobMap blobs;
  blobs.Add(checkpoint);

  torch::manual_seed(2);
  Model same(TinyCnn(), kMnistShape, 10);
  LoadState(*same, checkpoint.manifest, blobs.Fetcher());
  EXPECT_EQ(TensorDigests(*same), TensorDigests(*source));

  Model resized(TinyCnn(/*hidden=*/16), kMnistShape, 10);
  auto before = TensorDigests(*resized);
  try {
    LoadState(*resized, checkpoint.manifest, blobs.Fetcher());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("fc1."), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(TensorDigests(*resized), before);
}

}  // namespace
}  // namespace baton::stages
