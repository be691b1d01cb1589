// Checkpoint export: the REST view of a checkpoint and its safetensors file,
// against a real BlobStore and LineageDb in a temp dir.
#include "maintenance/checkpoint_export.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "tests/store/temp_dir.h"

namespace baton::maintenance {
namespace {

using store::testing::CodeOf;
using BlobList = std::vector<std::pair<std::string, uint64_t>>;

// Stands in for a checkpoint digest where only the header's metadata uses it.
const std::string kDigest = Sha256Hex("some checkpoint");

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// A tensor and the bytes it should hold.
struct Tensor {
  store::TensorEntry entry;
  std::string bytes;
};

Tensor MakeTensor(const std::string& name, const std::string& dtype,
                  std::vector<int64_t> shape, uint64_t seed) {
  uint64_t numel = 1;
  for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
  Tensor t;
  t.bytes = RandomBytes(numel * store::DtypeSize(dtype), seed);
  t.entry = store::TensorEntry{name, dtype, std::move(shape),
                               Sha256Hex(t.bytes), t.bytes.size()};
  return t;
}

class CheckpointExportTest : public ::testing::Test {
 protected:
  CheckpointExportTest() {
    store::BlobStoreOptions options;
    options.sync = false;
    options.chunk_bytes = 4096;  // so a tensor is read back in several pieces
    blobs_ = store::BlobStore::Open(dir_.path() / "blobs", options);
    db_ = store::LineageDb::Open(dir_.path() / "lineage.db");
  }

  // A run with one stage and one trial; returns the trial id.
  int64_t AddTrial(const std::string& run_id) {
    db_->CreateRun(store::RunRecord{run_id, "pipe", "p", "running", 0, 0, ""});
    store::StageRecord stage;
    stage.run_id = run_id;
    stage.name = "tune";
    stage.type = "tune";
    stage.status = "running";
    store::TrialRecord trial;
    trial.stage_id = db_->AddStage(stage);
    trial.kind = "train";
    trial.status = "running";
    return db_->AddTrial(trial);
  }

  // Stores the tensors and their manifest; `blob_list` gets what
  // RecordEpoch / RecordCheckpoint want. Returns the checkpoint's digest.
  std::string Store(const std::vector<Tensor>& tensors, store::Manifest* manifest,
                    BlobList* blob_list) {
    for (const Tensor& t : tensors) {
      blobs_->Put(t.bytes);
      manifest->tensors.push_back(t.entry);
      blob_list->emplace_back(t.entry.blob, t.entry.bytes);
    }
    const std::string bytes = store::ManifestBytes(*manifest);
    *manifest = store::ParseManifest(bytes);  // sorted by name, as stored
    const std::string digest = blobs_->Put(bytes);
    blob_list->emplace_back(digest, bytes.size());
    return digest;
  }

  // Checkpoint a (epoch 0 of one trial) and b (initial weights of another)
  // share conv.weight and nothing else.
  void StoreTwoCheckpoints() {
    const Tensor shared = MakeTensor("conv.weight", "float32", {50, 60}, 1);
    BlobList list_a, list_b;
    a_ = Store({shared, MakeTensor("fc.bias", "int64", {4}, 2),
                MakeTensor("scale", "float64", {}, 3),
                MakeTensor("mask", "bool", {3}, 4)},
               &manifest_a_, &list_a);
    b_ = Store({shared, MakeTensor("fc.bias", "int64", {4}, 5),
                MakeTensor("ids", "uint8", {5}, 6),
                MakeTensor("counts", "int32", {2, 2}, 7)},
               &manifest_b_, &list_b);
    trial_a_ = AddTrial("r1");
    trial_b_ = AddTrial("r2");
    db_->RecordEpoch(store::EpochRecord{trial_a_, 0, Json::object(), a_, 1, 0}, list_a);
    db_->RecordCheckpoint(b_, trial_b_, /*epoch=*/-1, list_b);
  }

  std::string Export(const store::Manifest& manifest, const std::string& digest) {
    std::string file;
    WriteSafetensors(*blobs_, manifest, digest, [&](std::string_view piece) {
      file.append(piece);
      return true;
    });
    return file;
  }

  store::testing::TempDir dir_;
  std::unique_ptr<store::BlobStore> blobs_;
  std::unique_ptr<store::LineageDb> db_;
  std::string a_, b_;
  store::Manifest manifest_a_, manifest_b_;
  int64_t trial_a_ = 0, trial_b_ = 0;
};

TEST_F(CheckpointExportTest, CheckpointJsonMatchesTheManifest) {
  StoreTwoCheckpoints();
  const Json json = CheckpointJson(*blobs_, *db_, a_);
  EXPECT_EQ(json["digest"], a_);
  EXPECT_EQ(json["kind"], "model");
  EXPECT_EQ(json["meta"], Json::object());
  EXPECT_EQ(json["recorded"], (Json{{"trial_id", trial_a_}, {"epoch", 0}}));
  ASSERT_EQ(json["tensors"].size(), manifest_a_.tensors.size());
  uint64_t total = 0;
  for (size_t i = 0; i < manifest_a_.tensors.size(); ++i) {
    const store::TensorEntry& t = manifest_a_.tensors[i];
    const Json& j = json["tensors"][i];
    EXPECT_EQ(j["name"], t.name);
    EXPECT_EQ(j["dtype"], t.dtype);
    EXPECT_EQ(j["shape"], Json(t.shape));
    EXPECT_EQ(j["bytes"], t.bytes);
    EXPECT_EQ(j["blob"], t.blob);
    total += t.bytes;
  }
  EXPECT_EQ(json["total_bytes"], total);
  EXPECT_EQ(CheckpointJson(*blobs_, *db_, b_)["recorded"],
            (Json{{"trial_id", trial_b_}, {"epoch", -1}}));
}

TEST_F(CheckpointExportTest, CheckpointsSharingABlobListEachOther) {
  StoreTwoCheckpoints();
  for (const auto& [self, other] : {std::pair(a_, b_), std::pair(b_, a_)}) {
    const Json json = CheckpointJson(*blobs_, *db_, self);
    for (const Json& t : json["tensors"]) {
      const Json expected =
          t["name"] == "conv.weight" ? Json::array({other}) : Json::array();
      EXPECT_EQ(t["shared_with"], expected) << self << " " << t["name"];
    }
  }
}

TEST_F(CheckpointExportTest, SharedWithIsSortedAndCapped) {
  StoreTwoCheckpoints();
  const std::string blob = store::FindTensor(manifest_a_, "conv.weight")->blob;
  std::vector<std::string> others = {b_};
  db_->InTransaction([&] {
    for (int i = 0; i < kMaxSharedWith + 5; ++i) {
      others.push_back(Sha256Hex("checkpoint " + std::to_string(i)));
      db_->RecordCheckpoint(others.back(), trial_b_, i, {{blob, 12000}});
    }
  });
  std::sort(others.begin(), others.end());
  others.resize(kMaxSharedWith);
  const Json json = CheckpointJson(*blobs_, *db_, a_);
  EXPECT_EQ(json["tensors"][0]["name"], "conv.weight");  // first by name
  EXPECT_EQ(json["tensors"][0]["shared_with"], Json(others));
  EXPECT_EQ(db_->CheckpointsWithBlob(blob, 3).size(), 3u);
  EXPECT_TRUE(db_->CheckpointsWithBlob(blob, 0).empty());
  EXPECT_EQ(CodeOf([&] { db_->CheckpointsWithBlob(blob, -1); }),
            ErrorCode::kInvalidArgument);
}

TEST_F(CheckpointExportTest, UnrecordedCheckpointHasNoLineage) {
  store::Manifest manifest;
  BlobList list;
  const std::string digest =
      Store({MakeTensor("w", "float32", {2}, 9)}, &manifest, &list);
  const Json json = CheckpointJson(*blobs_, *db_, digest);
  EXPECT_TRUE(json["recorded"].is_null());
  EXPECT_EQ(json["tensors"][0]["shared_with"], Json::array());
}

TEST_F(CheckpointExportTest, CheckpointJsonRejectsWhatIsNotACheckpoint) {
  EXPECT_EQ(CodeOf([&] { CheckpointJson(*blobs_, *db_, Sha256Hex("absent")); }),
            ErrorCode::kNotFound);
  for (const std::string bytes : {"not json at all", R"({"format": "other"})"}) {
    const std::string digest = blobs_->Put(bytes);
    EXPECT_EQ(CodeOf([&] { CheckpointJson(*blobs_, *db_, digest); }),
              ErrorCode::kInvalidArgument)
        << bytes;
  }
}

TEST_F(CheckpointExportTest, SafetensorsFileParsesPerTheSpec) {
  StoreTwoCheckpoints();
  const std::string file = Export(manifest_a_, a_);
  ASSERT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[i]);
  ASSERT_LE(8 + n, file.size());
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(file.substr(0, 8 + n), SafetensorsHeader(manifest_a_, a_));
  EXPECT_EQ(file.size(), SafetensorsSize(manifest_a_, a_));

  const std::string text = file.substr(8, n);
  ASSERT_EQ(text.front(), '{');
  const Json header = Json::parse(text);  // trailing spaces are allowed
  EXPECT_EQ(header["__metadata__"],
            (Json{{"format", "pt"}, {"baton_checkpoint", a_}}));
  EXPECT_EQ(header.size(), manifest_a_.tensors.size() + 1);
  const std::string data = file.substr(8 + n);
  uint64_t offset = 0;
  for (const store::TensorEntry& t : manifest_a_.tensors) {  // sorted by name
    const Json& h = header.at(t.name);
    EXPECT_EQ(h["dtype"], SafetensorsDtype(t.dtype));
    EXPECT_EQ(h["shape"], Json(t.shape));
    ASSERT_EQ(h["data_offsets"], Json({offset, offset + t.bytes})) << t.name;
    EXPECT_TRUE(data.substr(offset, t.bytes) == blobs_->Get(t.blob)) << t.name;
    offset += t.bytes;
  }
  EXPECT_EQ(offset, data.size());
}

TEST_F(CheckpointExportTest, SafetensorsDtypesCoverEveryStoreDtype) {
  const std::vector<std::pair<std::string, std::string>> names = {
      {"float32", "F32"}, {"float64", "F64"}, {"int64", "I64"},
      {"int32", "I32"},   {"uint8", "U8"},    {"bool", "BOOL"}};
  for (const auto& [dtype, name] : names) {
    EXPECT_EQ(SafetensorsDtype(dtype), name);
    store::Manifest manifest;
    manifest.tensors = {MakeTensor("t", dtype, {3}, 1).entry};
    const std::string header = SafetensorsHeader(manifest, kDigest);
    EXPECT_EQ(Json::parse(header.substr(8))["t"]["dtype"], name);
  }
  EXPECT_EQ(CodeOf([] { SafetensorsDtype("float16"); }), ErrorCode::kInvalidArgument);

  store::Manifest bad;
  bad.tensors = {MakeTensor("t", "float32", {1}, 1).entry};
  bad.tensors[0].dtype = "complex64";
  EXPECT_EQ(CodeOf([&] { SafetensorsHeader(bad, kDigest); }), ErrorCode::kInvalidArgument);
  bad.tensors = {MakeTensor("__metadata__", "float32", {1}, 1).entry};
  EXPECT_EQ(CodeOf([&] { SafetensorsHeader(bad, kDigest); }), ErrorCode::kInvalidArgument);
}

TEST_F(CheckpointExportTest, WriteSafetensorsStopsWhenTheSinkSaysSo) {
  StoreTwoCheckpoints();
  const std::string header = SafetensorsHeader(manifest_a_, a_);
  for (size_t pieces_wanted : {1, 2}) {
    std::vector<std::string> pieces;
    WriteSafetensors(*blobs_, manifest_a_, a_, [&](std::string_view piece) {
      pieces.emplace_back(piece);
      return pieces.size() < pieces_wanted;
    });
    ASSERT_EQ(pieces.size(), pieces_wanted);
    EXPECT_EQ(pieces[0], header);
  }
}

TEST_F(CheckpointExportTest, WriteSafetensorsChecksTensorBlobsBeforeSending) {
  store::Manifest manifest;
  manifest.tensors = {MakeTensor("never.stored", "float32", {2}, 1).entry};
  bool sent = false;
  EXPECT_EQ(CodeOf([&] {
              WriteSafetensors(*blobs_, manifest, kDigest, [&](std::string_view) {
                sent = true;
                return true;
              });
            }),
            ErrorCode::kCorrupt);
  EXPECT_FALSE(sent);
}

}  // namespace
}  // namespace baton::maintenance
