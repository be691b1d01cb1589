// TorchScript models with the real binaries: a small CNN scripted by
// Python's torch (/usr/bin/python3; torch.jit.script) is tuned with the
// median pruner, every epoch of every trial stored; train stages start from
// one of those epochs, as TorchScript and as the same network given as a
// layer list; the file is part of the cache key; hyperparameters reach its
// attributes; a wrong output shape and a missing file are clear errors.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

// Writes a scripted CNN for 1x28x28 images to argv[1]: conv1 (8 channels,
// 3x3, padding 1), bn1, relu, 2x2 max pooling, fc to argv[2] classes, the
// logits times the float attribute `scale`; weights drawn with seed argv[3].
constexpr const char* kMakeModel = R"(import sys
import torch
from torch import nn

torch.manual_seed(int(sys.argv[3]))


class Net(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.scale: float = 1.0
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 14 * 14, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(x, 1)) * self.scale


torch.jit.script(Net(int(sys.argv[2]))).save(sys.argv[1])
)";

// The same network as a layer list: the same tensor names.
Json JsonTwin() {
  return {{"layers", Json::parse(R"([
      {"name": "conv1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
      {"name": "bn1", "type": "batch_norm2d"}, {"name": "act", "type": "relu"},
      {"name": "pool", "type": "max_pool2d", "kernel_size": 2}, {"name": "flat", "type": "flatten"},
      {"name": "fc", "type": "linear", "out_features": 10}])")}};
}

class TorchScriptRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton-e2e-torchscript-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "make_model.py") << kMakeModel;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Scripts the CNN into dir_/name with `classes` outputs.
  fs::path MakeModel(const std::string& name, int classes, int seed) {
    const fs::path out = dir_ / name;
    testing::CmdResult r = testing::Capture("/usr/bin/python3 " + (dir_ / "make_model.py").string() + " " +
                                            out.string() + " " + std::to_string(classes) + " " +
                                            std::to_string(seed) + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return out;
  }

  std::string Command(const std::string& args) const {
    return "BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir_ / "store").string() + " " + args +
           " 2>>" + (dir_ / "stderr.log").string();
  }

  int Run(const Json& doc, const std::string& flags = "--workers 2 --no-progress") {
    std::ofstream(dir_ / "pipeline.json") << doc.dump(2);
    testing::CmdResult r = testing::Capture(Command("run " + (dir_ / "pipeline.json").string() + " " + flags));
    output_ += r.out;
    return r.exit_code;
  }

  // baton's stderr and every worker's log (store/logs/RUN/worker-N.log).
  std::string Log() const {
    std::string text;
    std::vector<fs::path> files = {dir_ / "stderr.log"};
    if (fs::exists(dir_ / "store" / "logs")) {
      for (const auto& f : fs::recursive_directory_iterator(dir_ / "store" / "logs")) {
        if (f.is_regular_file()) files.push_back(f.path());
      }
    }
    for (const fs::path& f : files) {
      std::ifstream in(f);
      text += std::string(std::istreambuf_iterator<char>(in), {});
    }
    return text;
  }

  // The newest run's stages by name.
  std::map<std::string, store::StageRecord> Stages() {
    auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
    std::map<std::string, store::StageRecord> out;
    auto runs = db->ListRuns(1);
    if (runs.empty()) return out;
    for (const auto& s : db->GetStages(runs.front().id)) out[s.name] = s;
    return out;
  }

  // Tensor name -> blob digest of a stored checkpoint.
  static std::map<std::string, std::string> TensorBlobs(store::BlobStore& blobs, const std::string& checkpoint) {
    std::map<std::string, std::string> out;
    for (const auto& t : store::ParseManifest(blobs.Get(checkpoint)).tensors) out[t.name] = t.blob;
    return out;
  }

  static Json Pipeline(const fs::path& model, int train_subset) {
    Json doc = {{"schema_version", "1"}, {"name", "e2e-torchscript"}, {"seed", 5}};
    doc["stages"]["prep"] = testing::FashionMnistPrep(train_subset);
    doc["stages"]["tune"] = {{"type", "tune"}, {"depends_on", {"prep"}},
                             {"model", {{"torchscript", model.string()}}},
                             {"hyperparameters", {{"batch_size", 50}, {"optimizer", "sgd"}}},
                             {"objective", {{"metric", "val_accuracy"}, {"mode", "max"}}}};
    return doc;
  }

  fs::path dir_;
  std::string output_;
};

TEST_F(TorchScriptRunTest, TunedWithPruningEveryEpochStoredAndTrainStagesStartFromOne) {
  const fs::path model = MakeModel("cnn.pt", 10, 1);
  Json doc = Pipeline(model, 600);
  auto& tune = doc["stages"]["tune"];
  // Grid order: (lr 0.05, momentum 0), (0.05, 0.5), (1e-5, 0), (1e-5, 0.5).
  tune["search_space"] = {{"lr", {{"type", "categorical"}, {"values", {0.05, 0.00001}}}},
                          {"momentum", {{"type", "categorical"}, {"values", {0.0, 0.5}}}}};
  tune["sampler"] = {{"type", "grid"}};
  tune["budget"] = {{"max_trials", 4}, {"max_parallel", 1}, {"max_epochs", 3}};
  tune["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 1}};
  // The best trial's epoch 1, into the scripted model and into its twin
  // given as a layer list.
  doc["stages"]["train"] = {{"type", "train"}, {"depends_on", {"tune"}},
                            {"hyperparameters", {{"from", "tune"}, {"trial", "best"}}},
                            {"init_from", {{"stage", "tune"}, {"trial", "best"}, {"epoch", 1}}},
                            {"epochs", 1}};
  doc["stages"]["train_json"] = {{"type", "train"}, {"depends_on", {"tune"}},
                                 {"model", JsonTwin()},
                                 {"hyperparameters", {{"batch_size", 50}, {"lr", 0.05}}},
                                 {"init_from", {{"stage", "tune"}, {"trial", "best"}, {"epoch", 1}}},
                                 {"epochs", 1}};
  ASSERT_EQ(Run(doc, "--workers 1 --no-progress"), 0) << output_ << Log();

  auto stages = Stages();
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  auto blobs = store::BlobStore::Open(dir_ / "store" / "blobs");
  const store::StageRecord& tune_stage = stages.at("tune");
  ASSERT_EQ(tune_stage.status, "succeeded");
  const std::string manifest = tune_stage.resolved["torchscript"]["manifest"].get<std::string>();
  int pruned = 0;
  for (const auto& t : db->GetTrials(tune_stage.id)) {
    auto epochs = db->GetEpochs(t.id);
    if (t.status == "pruned") ++pruned;
    if (t.status == "pruned") {
      EXPECT_LT(epochs.size(), 3u) << "trial " << t.number;
    } else {
      EXPECT_EQ(epochs.size(), 3u) << "trial " << t.number;
    }
    ASSERT_FALSE(epochs.empty()) << "trial " << t.number;
    // Every epoch's checkpoint is stored, with the scripted module's names,
    // and is lineage of its trial.
    for (const auto& e : epochs) {
      ASSERT_TRUE(blobs->Has(e.checkpoint)) << "trial " << t.number << " epoch " << e.epoch;
      const auto tensors = TensorBlobs(*blobs, e.checkpoint);
      EXPECT_TRUE(tensors.count("conv1.weight") && tensors.count("bn1.running_mean") && tensors.count("fc.bias"));
      for (const auto& [name, blob] : tensors) EXPECT_TRUE(blobs->Has(blob)) << name;
      bool of_trial = false;
      for (const auto& edge : db->Upstream("checkpoint:" + e.checkpoint, 1)) {
        of_trial |= edge.dst == "trial:" + std::to_string(t.id);
      }
      EXPECT_TRUE(of_trial) << "trial " << t.number << " epoch " << e.epoch;
    }
    bool model_edge = false;
    for (const auto& edge : db->Upstream("trial:" + std::to_string(t.id), 1)) {
      model_edge |= edge.kind == "model_from" && edge.dst == "artifact:" + manifest;
    }
    EXPECT_TRUE(model_edge) << "trial " << t.number;
  }
  EXPECT_GE(pruned, 1) << "the median rule pruned no trial of lr 1e-5";

  // Both train stages start from exactly the chosen epoch's tensors.
  for (const std::string name : {"train", "train_json"}) {
    const store::StageRecord& stage = stages.at(name);
    ASSERT_EQ(stage.status, "succeeded") << name << ": " << stage.error;
    const std::string chosen = stage.resolved["init_from"]["checkpoint"].get<std::string>();
    const auto trial = db->GetTrials(stage.id).front();
    EXPECT_EQ(TensorBlobs(*blobs, trial.initial_checkpoint), TensorBlobs(*blobs, chosen)) << name;
    EXPECT_EQ(TensorBlobs(*blobs, chosen).size(), 9u);
  }
  db.reset();  // the next baton run needs the store to itself
  blobs.reset();

  // Unchanged: cached. Another file at the same path: tune and train rerun.
  ASSERT_EQ(Run(doc, "--workers 1 --no-progress"), 0) << output_ << Log();
  stages = Stages();
  EXPECT_EQ(stages.at("tune").status, "cached");
  EXPECT_EQ(stages.at("train").status, "cached");
  MakeModel("cnn.pt", 10, 2);
  ASSERT_EQ(Run(doc, "--workers 1 --no-progress"), 0) << output_ << Log();
  stages = Stages();
  EXPECT_EQ(stages.at("prep").status, "cached");
  EXPECT_EQ(stages.at("tune").status, "succeeded");
  EXPECT_NE(stages.at("tune").cache_key, tune_stage.cache_key);
  EXPECT_EQ(stages.at("train").status, "succeeded");
}

TEST_F(TorchScriptRunTest, AHyperparameterSetsTheModulesAttribute) {
  Json doc = Pipeline(MakeModel("cnn.pt", 10, 1), 300);
  auto& tune = doc["stages"]["tune"];
  tune["hyperparameters"]["lr"] = 0.05;
  // scale 0 makes every logit 0: the loss is ln(10) whatever the weights.
  tune["search_space"] = {{"scale", {{"type", "categorical"}, {"values", {0.0, 1.0}}}}};
  tune["sampler"] = {{"type", "grid"}};
  tune["budget"] = {{"max_trials", 2}, {"max_parallel", 2}, {"max_epochs", 1}};
  ASSERT_EQ(Run(doc), 0) << output_ << Log();
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  std::map<double, double> loss_by_scale;
  for (const auto& t : db->GetTrials(Stages().at("tune").id)) {
    auto epochs = db->GetEpochs(t.id);
    ASSERT_EQ(epochs.size(), 1u);
    loss_by_scale[t.hyperparameters["scale"].get<double>()] = epochs[0].metrics["train_loss"].get<double>();
  }
  ASSERT_EQ(loss_by_scale.size(), 2u);
  EXPECT_NEAR(loss_by_scale[0.0], std::log(10.0), 1e-4);
  EXPECT_GT(std::fabs(loss_by_scale[1.0] - std::log(10.0)), 0.1);
  EXPECT_NE(Log().find("TorchScript attributes {\"scale\":0.0}"), std::string::npos) << Log();
}

TEST_F(TorchScriptRunTest, AWrongOutputShapeAndAMissingFileAreClearErrors) {
  const fs::path five = MakeModel("five.pt", 5, 1);
  Json doc = Pipeline(five, 300);
  doc["stages"].erase("tune");
  doc["stages"]["train"] = {{"type", "train"}, {"depends_on", {"prep"}},
                            {"model", {{"torchscript", five.string()}}},
                            {"hyperparameters", {{"batch_size", 50}, {"lr", 0.05}}},
                            {"epochs", 1}};
  EXPECT_NE(Run(doc), 0);
  const store::StageRecord train = Stages().at("train");
  EXPECT_EQ(train.status, "failed");
  EXPECT_NE(train.error.find("TorchScript model " + five.string()), std::string::npos) << train.error;
  EXPECT_NE(train.error.find("needs [N,10]"), std::string::npos) << train.error;
  EXPECT_NE(train.error.find("/model/torchscript"), std::string::npos) << train.error;

  doc["stages"]["train"]["model"]["torchscript"] = (dir_ / "absent.pt").string();
  output_.clear();
  EXPECT_NE(Run(doc), 0);
  const std::string said = output_ + Log();
  EXPECT_NE(said.find("/stages/train/model/torchscript"), std::string::npos) << said;
  EXPECT_NE(said.find("no such file: " + (dir_ / "absent.pt").string()), std::string::npos) << said;
}

}  // namespace
}  // namespace baton
