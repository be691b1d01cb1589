#include "store/checkpoint.h"

#include <gtest/gtest.h>

#include <string>

#include "common/digest.h"
#include "common/error.h"

namespace baton::store {
namespace {

TensorEntry Tensor(const std::string& name, std::vector<int64_t> shape,
                   const std::string& dtype = "float32") {
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
  return TensorEntry{name, dtype, std::move(shape), Sha256Hex(name),
                     numel * DtypeSize(dtype)};
}

Manifest Example() {
  Manifest m;
  m.tensors = {Tensor("fc1.weight", {128, 3136}), Tensor("conv1.bias", {32}),
               Tensor("bn2.num_batches_tracked", {}, "int64")};
  m.meta = {{"epoch", 3}, {"framework", "libtorch"}};
  return m;
}

// Runs ManifestFromJson on `json` after `edit`, expecting kCorrupt whose
// message contains `needle`.
template <typename Edit>
void ExpectCorrupt(Edit edit, const std::string& needle) {
  Json json = ManifestToJson(Example());
  edit(json);
  try {
    ManifestFromJson(json);
    ADD_FAILURE() << "accepted " << json.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << e.what();
  }
}

TEST(CheckpointTest, DtypeSizes) {
  EXPECT_EQ(DtypeSize("float32"), 4u);
  EXPECT_EQ(DtypeSize("float64"), 8u);
  EXPECT_EQ(DtypeSize("int64"), 8u);
  EXPECT_EQ(DtypeSize("int32"), 4u);
  EXPECT_EQ(DtypeSize("uint8"), 1u);
  EXPECT_EQ(DtypeSize("bool"), 1u);
  EXPECT_THROW(DtypeSize("complex128"), Error);
}

TEST(CheckpointTest, JsonShapeIsSortedAndVersioned) {
  const Json json = ManifestToJson(Example());
  EXPECT_EQ(json["format"], "baton.checkpoint/1");
  EXPECT_EQ(json["kind"], "model");
  ASSERT_EQ(json["tensors"].size(), 3u);
  EXPECT_EQ(json["tensors"][0]["name"], "bn2.num_batches_tracked");
  EXPECT_EQ(json["tensors"][0]["shape"], Json::array());
  EXPECT_EQ(json["tensors"][1]["name"], "conv1.bias");
  EXPECT_EQ(json["tensors"][2]["bytes"], 128u * 3136u * 4u);
  EXPECT_EQ(json["meta"]["framework"], "libtorch");
}

TEST(CheckpointTest, DigestIsStableUnderTensorOrder) {
  Manifest a = Example();
  Manifest b = Example();
  std::reverse(b.tensors.begin(), b.tensors.end());
  EXPECT_EQ(ManifestBytes(a), ManifestBytes(b));
  EXPECT_EQ(ManifestDigest(a), ManifestDigest(b));
  EXPECT_EQ(ManifestDigest(a), Sha256Hex(ManifestBytes(a)));

  b.meta["epoch"] = 4;
  EXPECT_NE(ManifestDigest(a), ManifestDigest(b));
}

TEST(CheckpointTest, RoundTripsThroughBytes) {
  const Manifest m = ParseManifest(ManifestBytes(Example()));
  EXPECT_EQ(m.kind, "model");
  ASSERT_EQ(m.tensors.size(), 3u);
  const TensorEntry* fc = FindTensor(m, "fc1.weight");
  ASSERT_NE(fc, nullptr);
  EXPECT_EQ(fc->shape, (std::vector<int64_t>{128, 3136}));
  EXPECT_EQ(fc->blob, Sha256Hex("fc1.weight"));
  EXPECT_EQ(FindTensor(m, "missing"), nullptr);
  EXPECT_EQ(ManifestBytes(m), ManifestBytes(Example()));
}

TEST(CheckpointTest, ValidationNamesWhatIsWrong) {
  ExpectCorrupt([](Json& j) { j["format"] = "baton.checkpoint/2"; }, "/format");
  ExpectCorrupt([](Json& j) { j.erase("format"); }, "format");
  ExpectCorrupt(
      [](Json& j) { j["tensors"][1]["name"] = j["tensors"][0]["name"]; },
      "duplicate tensor name");
  ExpectCorrupt([](Json& j) { j["tensors"][2]["bytes"] = 12; },
                "/tensors/2/bytes");
  ExpectCorrupt([](Json& j) { j["tensors"][1]["blob"] = "ABC"; },
                "/tensors/1/blob");
  ExpectCorrupt([](Json& j) { j["tensors"][1]["blob"] = std::string(64, 'A'); },
                "not a SHA-256");
  ExpectCorrupt([](Json& j) { j["tensors"][0]["dtype"] = "float8"; },
                "unknown dtype");
  ExpectCorrupt([](Json& j) { j["tensors"][1]["shape"] = {-1}; },
                "/tensors/1/shape/0");
  ExpectCorrupt(
      [](Json& j) {
        j["tensors"][1]["shape"] = {1ll << 40, 1ll << 40};
      },
      "/tensors/1/bytes");
  ExpectCorrupt([](Json& j) { j["tensors"][1]["extra"] = true; },
                "unknown key");
  ExpectCorrupt([](Json& j) { j["meta"] = 3; }, "/meta");
  ExpectCorrupt([](Json& j) { j = Json::array(); }, "object");
}

TEST(CheckpointTest, ParseRejectsBadJsonAsCorrupt) {
  try {
    ParseManifest("{\"format\": ");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  }
}

TEST(CheckpointTest, InvalidManifestCannotBeSerialised) {
  Manifest m = Example();
  m.tensors.push_back(m.tensors[0]);
  try {
    ManifestBytes(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace baton::store
