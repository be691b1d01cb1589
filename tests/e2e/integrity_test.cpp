// Integrity end to end: damage a stored blob the way a disk or a careless
// user would (one byte flipped in a tensor's file, a file deleted), then
// check that `baton store fsck` finds it and names what uses it, that the
// server never sends the bad bytes, and that training from the damaged
// checkpoint fails saying so. The model's fc1.weight (400 x 784 float32,
// 1.2 MiB) is stored as a plain file under <store>/blobs/files/.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "common/json_util.h"
#include "maintenance/checkpoint_export.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"
#include "tests/e2e/serve_process.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/files.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

using testing::Server;

using testing::Capture;
using testing::CmdResult;

using testing::ReadFile;

// prep, and a tune stage of one trial whose fc1.weight is over 1 MiB. The
// train subset is small enough that the dataset's tensors stay in RocksDB.
Json Pipeline(bool with_train) {
  Json doc = Json::parse(R"({
    "schema_version": "1", "name": "integrity-e2e", "seed": 5,
    "stages": {
      "tune": {"type": "tune", "depends_on": ["prep"],
               "model": {"layers": [{"name": "flat", "type": "flatten"},
                                    {"name": "fc1", "type": "linear", "out_features": 400},
                                    {"name": "act", "type": "relu"},
                                    {"name": "fc2", "type": "linear", "out_features": 10}]},
               "search_space": {"lr": {"type": "categorical", "values": [0.05]}},
               "sampler": {"type": "grid"},
               "hyperparameters": {"batch_size": 50, "optimizer": "sgd"},
               "objective": {"metric": "val_accuracy", "mode": "max"},
               "budget": {"max_trials": 1, "max_parallel": 1, "max_epochs": 2}}}})");
  doc["stages"]["prep"] = testing::FashionMnistPrep(300);
  if (with_train) {
    doc["stages"]["train"] = Json::parse(R"({"type": "train", "depends_on": ["tune"],
        "hyperparameters": {"from": "tune", "trial": "best"},
        "init_from": {"stage": "tune", "trial": "best", "epoch": "last"}, "epochs": 1})");
  }
  return doc;
}

// Flips one byte of a file; flipping it again restores it. The destructor
// restores it if the test did not.
class FlippedByte {
 public:
  FlippedByte(fs::path file, uint64_t offset) : file_(std::move(file)), offset_(offset) { Flip(); }
  ~FlippedByte() {
    if (flipped_) Flip();
  }
  void Restore() {
    if (flipped_) Flip();
  }

 private:
  void Flip() {
    std::fstream f(file_, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f) << file_;
    f.seekg(static_cast<std::streamoff>(offset_));
    char c = 0;
    f.get(c);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(offset_));
    f.put(c);
    f.flush();
    ASSERT_TRUE(f) << file_;
    flipped_ = !flipped_;
  }

  const fs::path file_;
  const uint64_t offset_;
  bool flipped_ = false;
};

class IntegrityTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kFlipAt = 4000;  // a byte inside fc1.weight

  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("baton-e2e-integrity-" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    std::ofstream(*dir_ / "tune.json") << Pipeline(/*with_train=*/false).dump();
    std::ofstream(*dir_ / "train.json") << Pipeline(/*with_train=*/true).dump();
    run_ = new CmdResult(Baton("run " + (*dir_ / "tune.json").string() + " --json"));
    ASSERT_EQ(run_->exit_code, 0) << run_->out << ReadFile(*dir_ / "stderr.log");
    const std::string run_id = Json::parse(run_->out)["run_id"];
    auto db = store::LineageDb::Open(Store() / "lineage.db");
    for (const auto& stage : db->GetStages(run_id)) {
      if (stage.name != "tune") continue;
      const auto trials = db->GetTrials(stage.id);
      ASSERT_EQ(trials.size(), 1u);
      trial_id_ = trials[0].id;
      const auto epochs = db->GetEpochs(trials[0].id);
      ASSERT_EQ(epochs.size(), 2u);
      checkpoint_ = new std::string(epochs.back().checkpoint);
    }
    ASSERT_NE(checkpoint_, nullptr);
    auto blobs = store::BlobStore::Open(Store() / "blobs");
    manifest_ = new store::Manifest(store::ParseManifest(blobs->Get(*checkpoint_)));
    const store::TensorEntry* fc1 = store::FindTensor(*manifest_, "fc1.weight");
    ASSERT_NE(fc1, nullptr);
    ASSERT_GE(fc1->bytes, 1u << 20);
    fc1_ = new std::string(fc1->blob);
    fc1_bytes_ = new std::string(blobs->Get(*fc1_));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete run_;
    delete checkpoint_;
    delete manifest_;
    delete fc1_;
    delete fc1_bytes_;
  }
  void SetUp() override {
    ASSERT_EQ(run_->exit_code, 0);
    ASSERT_NE(fc1_, nullptr);
  }

  static fs::path Store() { return *dir_ / "store"; }
  static fs::path Fc1File() { return Store() / "blobs" / "files" / fc1_->substr(0, 2) / *fc1_; }
  static CmdResult Baton(const std::string& args) {
    return Capture("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + Store().string() + " " + args +
                 " 2>>" + (*dir_ / "stderr.log").string());
  }
  static Json Fsck(int expect_exit) {
    const CmdResult r = Baton("store fsck --json");
    EXPECT_EQ(r.exit_code, expect_exit) << r.out;
    return Json::parse(r.out);
  }
  // The problem fsck reports for `digest`, or null.
  static Json ProblemFor(const Json& report, const std::string& digest) {
    for (const Json& p : report["problems"]) {
      if (p["digest"] == digest) return p;
    }
    return nullptr;
  }

  static fs::path* dir_;
  static CmdResult* run_;
  static int64_t trial_id_;
  static std::string* checkpoint_;  // the tune trial's last epoch
  static store::Manifest* manifest_;
  static std::string* fc1_;  // its fc1.weight blob
  static std::string* fc1_bytes_;
};
fs::path* IntegrityTest::dir_ = nullptr;
CmdResult* IntegrityTest::run_ = nullptr;
int64_t IntegrityTest::trial_id_ = 0;
std::string* IntegrityTest::checkpoint_ = nullptr;
store::Manifest* IntegrityTest::manifest_ = nullptr;
std::string* IntegrityTest::fc1_ = nullptr;
std::string* IntegrityTest::fc1_bytes_ = nullptr;

TEST_F(IntegrityTest, FsckNamesACorruptTensorAndTheCheckpointThatUsesIt) {
  Json clean = Fsck(0);
  EXPECT_EQ(clean["ok"], true) << clean.dump();
  EXPECT_EQ(clean["corrupt"], 0);
  EXPECT_EQ(clean["missing"], 0);
  EXPECT_EQ(clean["orphaned"], 0) << "a finished run refers to every blob it stored";
  EXPECT_GE(clean["checkpoints"].get<int>(), 3);  // initial weights and two epochs
  EXPECT_EQ(clean["artifacts"], 1);
  EXPECT_GE(clean["blobs_checked"].get<int>(), clean["referenced_blobs"].get<int>());

  FlippedByte flip(Fc1File(), kFlipAt);
  Json report = Fsck(5);
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["corrupt"], 1) << report.dump(2);
  EXPECT_EQ(report["missing"], 0);
  const Json p = ProblemFor(report, *fc1_);
  ASSERT_FALSE(p.is_null()) << report.dump(2);
  EXPECT_EQ(p["kind"], "corrupt");
  EXPECT_NE(p["message"].get<std::string>().find("corrupt"), std::string::npos) << p.dump();
  bool names_checkpoint = false;
  for (const Json& by : p["referenced_by"]) {
    if (by.value("checkpoint", "") != *checkpoint_) continue;
    names_checkpoint = true;
    EXPECT_EQ(by["tensor"], "fc1.weight");
    EXPECT_EQ(by["trial_id"], trial_id_);
    EXPECT_EQ(by["epoch"], 1);
    EXPECT_EQ(by["stage"], "tune");
    EXPECT_EQ(by["run_id"], Json::parse(run_->out)["run_id"]);
  }
  EXPECT_TRUE(names_checkpoint) << p.dump(2);

  const CmdResult text = Baton("store fsck");
  EXPECT_EQ(text.exit_code, 5);
  EXPECT_NE(text.out.find("corrupt  " + *fc1_), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("tensor \"fc1.weight\" of checkpoint " + *checkpoint_), std::string::npos) << text.out;

  flip.Restore();
  EXPECT_EQ(Fsck(0)["ok"], true);
}

TEST_F(IntegrityTest, ServerNeverSendsTheCorruptBytes) {
  FlippedByte flip(Fc1File(), kFlipAt);
  Server server(Store(), "");
  httplib::Client c = server.Client();
  // A window of the blob around the flipped byte, as stored and as it was.
  const std::string window = fc1_bytes_->substr(kFlipAt - 32, 64);
  std::string bad_window = window;
  bad_window[32] = static_cast<char>(bad_window[32] ^ 0x5a);

  auto res = c.Get(("/api/v1/blobs/" + *fc1_).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  const Json body = Json::parse(res->body);
  EXPECT_EQ(body["error_code"], "DATA_CORRUPTED") << res->body;
  EXPECT_NE(body["message"].get<std::string>().find(*fc1_), std::string::npos);
  EXPECT_LT(res->body.size(), 4096u);
  EXPECT_EQ(res->body.find(bad_window.substr(16, 32)), std::string::npos);
  // With a Range, cpp-httplib applies the range to the error body too (416,
  // or a slice of the JSON); what matters here is that it is no success and
  // carries none of the blob.
  for (const char* range : {"bytes=0-", "bytes=3900-4100", "bytes=0-10"}) {
    auto part = c.Get(("/api/v1/blobs/" + *fc1_).c_str(), {{"Range", range}});
    ASSERT_TRUE(part) << range;
    EXPECT_GE(part->status, 400) << range;
    EXPECT_LT(part->body.size(), 4096u) << range;
    EXPECT_EQ(part->body.find(bad_window.substr(16, 32)), std::string::npos) << range;
  }

  // Every tensor is verified before the 200, so a corrupt one is a clean
  // 500; whatever the route does, a complete body never holds a bad byte.
  const std::string expected_size =
      std::to_string(maintenance::SafetensorsSize(*manifest_, *checkpoint_));
  res = c.Get(("/api/v1/checkpoints/" + *checkpoint_ + "/safetensors").c_str());
  if (res && res->status == 200) {
    ASSERT_NE(std::to_string(res->body.size()), expected_size) << "a complete body with a corrupt tensor";
  }
  ASSERT_TRUE(res) << "the route answers with an error status before any byte";
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(Json::parse(res->body)["error_code"], "DATA_CORRUPTED") << res->body;
  EXPECT_NE(res->body.find("fc1.weight"), std::string::npos) << res->body;
  EXPECT_EQ(res->body.find(bad_window.substr(16, 32)), std::string::npos);

  // The server is still up, and serves the checkpoint whole once repaired.
  flip.Restore();
  auto fixed = c.Get(("/api/v1/checkpoints/" + *checkpoint_ + "/safetensors").c_str());
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->status, 200);
  EXPECT_EQ(std::to_string(fixed->body.size()), expected_size);
  EXPECT_NE(fixed->body.find(window), std::string::npos);
  EXPECT_EQ(server.Stop(), 0);
}

// The streaming half on its own: a tensor that is corrupt when its turn
// comes (here the second, fc1.weight, after fc1.bias) ends the stream with
// Error(kCorrupt) before any of its bytes reach the sink.
TEST_F(IntegrityTest, SafetensorsStreamStopsBeforeACorruptTensor) {
  ASSERT_EQ(manifest_->tensors[0].name, "fc1.bias");
  ASSERT_EQ(manifest_->tensors[1].name, "fc1.weight");
  FlippedByte flip(Fc1File(), kFlipAt);
  auto blobs = store::BlobStore::Open(Store() / "blobs");
  std::string sent;
  try {
    maintenance::WriteSafetensors(*blobs, *manifest_, *checkpoint_, [&](std::string_view piece) {
      sent.append(piece);
      return true;
    });
    ADD_FAILURE() << "no error for a corrupt tensor";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.what();
  }
  const std::string header = maintenance::SafetensorsHeader(*manifest_, *checkpoint_);
  EXPECT_EQ(sent, header + blobs->Get(manifest_->tensors[0].blob));

  // Corrupt the first tensor instead: nothing at all is sent, not even the header.
  flip.Restore();
  const fs::path bias_dir = Store() / "blobs" / "files" / manifest_->tensors[0].blob.substr(0, 2);
  ASSERT_FALSE(fs::exists(bias_dir / manifest_->tensors[0].blob)) << "fc1.bias is small: it lives in RocksDB";
  store::Manifest fc1_first = *manifest_;
  fc1_first.tensors.erase(fc1_first.tensors.begin());  // fc1.weight first
  FlippedByte again(Fc1File(), kFlipAt);
  sent.clear();
  EXPECT_THROW(maintenance::WriteSafetensors(*blobs, fc1_first, *checkpoint_,
                                     [&](std::string_view piece) {
                                       sent.append(piece);
                                       return true;
                                     }),
               Error);
  EXPECT_TRUE(sent.empty()) << sent.size() << " bytes sent";
  EXPECT_THROW(maintenance::VerifyTensorBlobs(*blobs, fc1_first, *checkpoint_), Error);
  again.Restore();
  EXPECT_NO_THROW(maintenance::VerifyTensorBlobs(*blobs, *manifest_, *checkpoint_));
}

TEST_F(IntegrityTest, TrainingFromACorruptCheckpointFailsSayingSo) {
  FlippedByte flip(Fc1File(), kFlipAt);
  const CmdResult r = Baton("run " + (*dir_ / "train.json").string() + " --json");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  const Json run = Json::parse(r.out);
  EXPECT_EQ(run["status"], "failed");
  const std::string error = run.value("error", "");
  EXPECT_NE(error.find(*fc1_), std::string::npos) << error;
  EXPECT_NE(error.find("corrupt"), std::string::npos) << error;

  const CmdResult show = Baton("show " + run["run_id"].get<std::string>() + " --json");
  ASSERT_EQ(show.exit_code, 0);
  const Json shown = Json::parse(show.out);
  EXPECT_EQ(shown["status"], "failed");
  bool train_failed = false;
  for (const Json& s : shown["stages"]) {
    if (s["name"] != "train") continue;
    train_failed = s["status"] == "failed";
    EXPECT_NE(s["error"].get<std::string>().find("corrupt"), std::string::npos) << s.dump();
    EXPECT_NE(s["error"].get<std::string>().find(*fc1_), std::string::npos) << s.dump();
  }
  EXPECT_TRUE(train_failed) << shown.dump(2);
  const CmdResult stage = Baton("show " + run["run_id"].get<std::string>() + " --stage train --json");
  ASSERT_EQ(stage.exit_code, 0);
  const Json trials = Json::parse(stage.out)["trials"];
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0]["status"], "failed");
  EXPECT_NE(trials[0]["reason"].get<std::string>().find("corrupt"), std::string::npos) << trials[0].dump();
}

TEST_F(IntegrityTest, DeletedBlobIsMissing) {
  // The file of a large blob gone, its record still there.
  const fs::path aside = *dir_ / "fc1.aside";
  fs::rename(Fc1File(), aside);
  Json report = Fsck(5);
  EXPECT_EQ(report["missing"], 1) << report.dump(2);
  Json p = ProblemFor(report, *fc1_);
  ASSERT_FALSE(p.is_null()) << report.dump(2);
  EXPECT_EQ(p["kind"], "missing");
  EXPECT_FALSE(p["referenced_by"].empty());
  const CmdResult text = Baton("store fsck");
  EXPECT_EQ(text.exit_code, 5);
  EXPECT_NE(text.out.find("missing  " + *fc1_), std::string::npos) << text.out;
  fs::rename(aside, Fc1File());
  EXPECT_EQ(Fsck(0)["ok"], true);

  // A small blob deleted outright, record and all: the lineage still names it.
  const std::string bias = manifest_->tensors[0].blob;
  std::string bytes;
  {
    auto blobs = store::BlobStore::Open(Store() / "blobs");
    bytes = blobs->Get(bias);
    blobs->Delete(bias);
  }
  report = Fsck(5);
  p = ProblemFor(report, bias);
  ASSERT_FALSE(p.is_null()) << report.dump(2);
  EXPECT_EQ(p["kind"], "missing");
  bool names_checkpoint = false;
  for (const Json& by : p["referenced_by"]) names_checkpoint |= by.value("checkpoint", "") == *checkpoint_;
  EXPECT_TRUE(names_checkpoint) << p.dump(2);
  store::BlobStore::Open(Store() / "blobs")->Put(bytes);
  EXPECT_EQ(Fsck(0)["ok"], true);
}

TEST_F(IntegrityTest, OrphanIsReportedButIsNotDamage) {
  const std::string orphan = "bytes that no run, checkpoint or artifact refers to";
  store::BlobStore::Open(Store() / "blobs")->Put(orphan);
  Json report = Fsck(0);
  EXPECT_EQ(report["ok"], true);
  EXPECT_EQ(report["orphaned"], 1) << report.dump(2);
  EXPECT_EQ(report["orphaned_bytes"], orphan.size());
  const Json p = ProblemFor(report, Sha256Hex(orphan));
  ASSERT_FALSE(p.is_null()) << report.dump(2);
  EXPECT_EQ(p["kind"], "orphaned");
  const CmdResult text = Baton("store fsck");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("orphaned " + Sha256Hex(orphan)), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("no damage"), std::string::npos) << text.out;
  store::BlobStore::Open(Store() / "blobs")->Delete(Sha256Hex(orphan));
}

}  // namespace
}  // namespace baton
