// Ablation studies with the real binaries: variants of a CNN on
// Fashion-MNIST (a removed conv layer builds and trains; tensors whose name
// and shape still match start bit for bit from the tuning trial, the rest
// fresh; a variant that cannot be built fails alone), and feature ablation
// on a generated CSV where one column carries the signal, run in parallel.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

class AblationRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("baton-e2e-ablation-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Baton(const std::string& args, int* rc = nullptr) {
    const std::string cmd = "BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir_ / "store").string() +
                            " " + args + " 2>>" + (dir_ / "stderr.log").string();
    testing::CmdResult r = testing::Capture(cmd);
    if (rc != nullptr) *rc = r.exit_code;
    return r.out;
  }

  // Runs the pipeline and returns `show RUN --stage ablate --json`.
  Json RunAblation(const Json& doc) {
    std::ofstream(dir_ / "pipeline.json") << doc.dump(2);
    int rc = 0;
    run_output_ = Baton("run " + (dir_ / "pipeline.json").string() + " --workers 2 --no-progress", &rc);
    EXPECT_EQ(rc, 0) << run_output_;
    auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
    const std::string run = db->ListRuns(1).at(0).id;
    return Json::parse(Baton("show " + run + " --stage ablate --json"));
  }

  fs::path dir_;
  std::string run_output_;
};

TEST_F(AblationRunTest, RemovedConvLayerTrainsAndUnchangedTensorsStartBitForBit) {
  Json doc = Json::parse(R"({"schema_version": "1", "name": "e2e-ablate-cnn", "seed": 3, "stages": {
    "prep": {"type": "prepare", "dataset": {"format": "idx", "path": "/usr/share/datasets/fashion-mnist"},
             "train_subset": 1000, "test_subset": 100, "normalize": true},
    "tune": {"type": "tune", "depends_on": ["prep"],
             "model": {"layers": [
               {"name": "conv1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
               {"name": "act1", "type": "relu"}, {"name": "pool1", "type": "max_pool2d", "kernel_size": 2},
               {"name": "conv2", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
               {"name": "bn2", "type": "batch_norm2d"}, {"name": "act2", "type": "relu"},
               {"name": "pool2", "type": "max_pool2d", "kernel_size": 2},
               {"name": "flat", "type": "flatten"},
               {"name": "fc1", "type": "linear", "out_features": 16}, {"name": "act3", "type": "relu"},
               {"name": "fc2", "type": "linear", "out_features": 10}]},
             "search_space": {"lr": {"type": "float", "low": 0.02, "high": 0.05}},
             "hyperparameters": {"batch_size": 50, "momentum": 0.9},
             "objective": {"metric": "val_accuracy", "mode": "max"},
             "budget": {"max_trials": 1, "max_epochs": 1}},
    "ablate": {"type": "ablate", "depends_on": ["tune"],
               "base": {"from": "tune", "trial": "best"},
               "components": ["conv2", "fc2"],
               "init_from": {"stage": "tune", "trial": "best", "epoch": "last"},
               "epochs": 1}}})");
  Json show = RunAblation(doc);
  ASSERT_EQ(show["status"], "succeeded") << run_output_;
  const Json& a = show["ablation"];
  std::map<std::string, Json> rows;
  rows["base"] = a["base"];
  for (const auto& r : a["variants"]) rows[r["variant"].get<std::string>()] = r;
  // Without conv2 the model still builds and trains.
  EXPECT_EQ(rows["conv2"]["runs"]["succeeded"], 1);
  EXPECT_GT(rows["conv2"]["objective_mean"].get<double>(), 0.3) << "chance is 0.1";
  // Without fc2 the output has 16 features, not 10 classes: that variant
  // fails alone, with a reason naming the problem; the study succeeds.
  EXPECT_EQ(rows["fc2"]["runs"]["failed"], 1);
  const std::string reason = rows["fc2"]["reasons"][0].get<std::string>();
  EXPECT_NE(reason.find("10"), std::string::npos) << reason;
  EXPECT_NE(reason.find("16"), std::string::npos) << reason;

  // conv2's variant: bn2 and fc1's weight change shape (4 channels reach
  // them, not 8) and start fresh; everything else is the trial's epoch, bit
  // for bit: the same blob digests.
  const Json& init = rows["conv2"]["init"];
  auto blobs = store::BlobStore::Open(dir_ / "store" / "blobs");
  const std::string source = show["resolved"]["init_from"]["checkpoint"].get<std::string>();
  store::Manifest from = store::ParseManifest(blobs->Get(source));
  std::map<std::string, std::string> from_blob;
  for (const auto& t : from.tensors) from_blob[t.name] = t.blob;
  std::set<std::string> transferred, reinitialized;
  for (const auto& n : init["transferred"]) transferred.insert(n.get<std::string>());
  for (const auto& n : init["reinitialized"]) reinitialized.insert(n.get<std::string>());
  for (const char* n : {"conv1.weight", "conv1.bias", "fc1.bias", "fc2.weight", "fc2.bias"}) {
    EXPECT_TRUE(transferred.count(n)) << n;
  }
  for (const char* n : {"fc1.weight", "bn2.weight", "bn2.bias", "bn2.running_mean"}) {
    EXPECT_TRUE(reinitialized.count(n)) << n;
  }
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  std::string variant_initial;
  for (const auto& t : show["trials"]) {
    auto rec = db->GetTrial(t["trial_id"].get<int64_t>());
    if (rec->task.value("variant", "") == "conv2") variant_initial = rec->initial_checkpoint;
  }
  ASSERT_FALSE(variant_initial.empty());
  store::Manifest start = store::ParseManifest(blobs->Get(variant_initial));
  int same = 0;
  for (const auto& t : start.tensors) {
    if (transferred.count(t.name)) {
      EXPECT_EQ(t.blob, from_blob[t.name]) << t.name;
      ++same;
    } else {
      EXPECT_NE(t.blob, from_blob[t.name]) << t.name;
    }
  }
  EXPECT_EQ(same, static_cast<int>(transferred.size()));
}

TEST_F(AblationRunTest, LeavingOutTheSignalFeatureHurtsMostAndVariantsRunInParallel) {
  // 4000 rows: the label is 1 when `signal` > 0 (5% flipped); three columns
  // of noise. Rows in random order (the split follows the file's order).
  // Big enough that a task outlasts the second worker's start-up.
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  std::ofstream csv(dir_ / "data.csv");
  csv << "noise1,signal,noise2,label,noise3\n";
  for (int i = 0; i < 4000; ++i) {
    const double signal = normal(rng);
    int label = signal > 0 ? 1 : 0;
    if (uniform(rng) < 0.05) label = 1 - label;
    csv << normal(rng) << "," << signal << "," << normal(rng) << "," << label << "," << normal(rng) * 3 << "\n";
  }
  csv.close();
  Json doc = Json::parse(R"({"schema_version": "1", "name": "e2e-ablate-csv", "seed": 9, "stages": {
    "prep": {"type": "prepare", "dataset": {"format": "csv", "path": "X", "label_column": "label"},
             "normalize": true},
    "ablate": {"type": "ablate", "depends_on": ["prep"],
               "base": {"model": {"layers": [{"name": "fc1", "type": "linear", "out_features": 1024},
                                             {"name": "act", "type": "relu"},
                                             {"name": "fc2", "type": "linear", "out_features": 2}]},
                        "hyperparameters": {"lr": 0.1, "momentum": 0.9, "batch_size": 32}},
               "features": ["noise1", "signal", "noise2", "noise3"],
               "epochs": 20, "budget": {"max_parallel": 2}}}})");
  doc["stages"]["prep"]["dataset"]["path"] = (dir_ / "data.csv").string();
  Json show = RunAblation(doc);
  ASSERT_EQ(show["status"], "succeeded") << run_output_;
  const Json& a = show["ablation"];
  EXPECT_GT(a["base"]["objective_mean"].get<double>(), 0.85);
  ASSERT_EQ(a["variants"].size(), 4u);
  EXPECT_EQ(a["variants"][0]["variant"], "feature:signal");
  EXPECT_GT(a["variants"][0]["impact"].get<double>(), 0.2);
  for (size_t i = 1; i < a["variants"].size(); ++i) {
    EXPECT_LT(a["variants"][i]["impact"].get<double>(), 0.05) << a["variants"][i]["variant"];
  }
  // Two slots: some tasks overlapped in time.
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  std::vector<std::pair<double, double>> spans;
  for (const auto& t : show["trials"]) {
    auto rec = db->GetTrial(t["trial_id"].get<int64_t>());
    spans.push_back({rec->started_at, rec->finished_at});
  }
  bool overlap = false;
  for (size_t i = 0; i < spans.size(); ++i) {
    for (size_t j = i + 1; j < spans.size(); ++j) {
      overlap = overlap || (spans[i].first < spans[j].second && spans[j].first < spans[i].second);
    }
  }
  EXPECT_TRUE(overlap);
}

}  // namespace
}  // namespace baton
