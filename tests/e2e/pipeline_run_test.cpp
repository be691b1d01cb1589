// Runs a small pipeline through the real binaries once, then checks what a
// user relies on: accuracy, bit-identical init, lineage, caching, errors.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

using testing::Capture;
using testing::CmdResult;

const char* kPipeline = R"({
  "schema_version": "1", "name": "e2e-small", "seed": 11,
  "stages": {
    "prep": {"type": "prepare", "dataset": {"format": "idx", "path": "/usr/share/datasets/fashion-mnist"},
             "train_subset": 1500, "test_subset": 1000, "validation_fraction": 0.2, "normalize": true},
    "tune": {"type": "tune", "depends_on": ["prep"],
             "model": {"layers": [{"name": "flat", "type": "flatten"},
                                  {"name": "fc1", "type": "linear", "out_features": "$width"},
                                  {"name": "act1", "type": "relu"},
                                  {"name": "fc2", "type": "linear", "out_features": 10}]},
             "search_space": {"lr": {"type": "float", "low": 0.01, "high": 0.1, "log": true},
                              "momentum": {"type": "float", "low": 0.5, "high": 0.9}},
             "hyperparameters": {"width": 32, "batch_size": 32, "optimizer": "sgd", "lr_schedule": "cosine"},
             "objective": {"metric": "val_accuracy", "mode": "max"},
             "budget": {"max_trials": 3, "max_parallel": 2, "max_epochs": 2}},
    "train": {"type": "train", "depends_on": ["tune"],
              "hyperparameters": {"from": "tune", "trial": "best"},
              "init_from": {"stage": "tune", "trial": "best", "epoch": "last"},
              "epochs": 2}
  }})";

class PipelineRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("baton-e2e-" + std::to_string(getpid())));
    std::filesystem::remove_all(*dir_);
    std::filesystem::create_directories(*dir_);
    std::ofstream(*dir_ / "pipeline.json") << kPipeline;
    first_ = new CmdResult(Baton("run " + (*dir_ / "pipeline.json").string() + " --json"));
    auto t0 = std::chrono::steady_clock::now();
    second_ = new CmdResult(Baton("run " + (*dir_ / "pipeline.json").string() + " --json"));
    second_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete first_;
    delete second_;
  }

  static CmdResult Baton(const std::string& args) {
    return Capture("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (*dir_ / "store").string() + " " + args +
               " 2>>" + (*dir_ / "stderr.log").string());
  }
  static Json JsonOf(const CmdResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return Json::parse(r.out);
  }
  static std::string RunId() { return Json::parse(first_->out)["run_id"].get<std::string>(); }
  static Json Show(const std::string& stage = "") {
    return JsonOf(Baton("show " + RunId() + (stage.empty() ? "" : " --stage " + stage) + " --json"));
  }

  static std::filesystem::path* dir_;
  static CmdResult* first_;
  static CmdResult* second_;
  static double second_seconds_;
};

std::filesystem::path* PipelineRunTest::dir_ = nullptr;
CmdResult* PipelineRunTest::first_ = nullptr;
CmdResult* PipelineRunTest::second_ = nullptr;
double PipelineRunTest::second_seconds_ = 0;

TEST_F(PipelineRunTest, RunSucceedsAndLearns) {
  ASSERT_EQ(first_->exit_code, 0) << first_->out;
  Json run = Json::parse(first_->out);
  EXPECT_EQ(run["status"], "succeeded");
  Json train = Show("train");
  ASSERT_EQ(train["trials"].size(), 1u);
  const Json& epochs = train["trials"][0]["epochs"];
  ASSERT_EQ(epochs.size(), 2u);
  double test_accuracy = epochs.back()["metrics"]["test_accuracy"].get<double>();
  EXPECT_GT(test_accuracy, 0.5) << "chance is 0.1";
  Json tune = Show("tune");
  ASSERT_EQ(tune["trials"].size(), 3u);
  for (const auto& t : tune["trials"]) {
    EXPECT_EQ(t["status"], "succeeded");
    EXPECT_EQ(t["epochs"].size(), 2u);
    EXPECT_GT(t["final_objective"].get<double>(), 0.3);
  }
}

TEST_F(PipelineRunTest, TrainStartsBitIdenticalToTheSelectedTrialEpoch) {
  ASSERT_EQ(first_->exit_code, 0);
  Json tune = Show("tune");
  Json best = tune["trials"][0];  // sorted by the objective at the final epoch
  std::string selected = best["epochs"].back()["checkpoint"].get<std::string>();
  Json train = Show("train");
  EXPECT_EQ(train["resolved"]["init_from"]["checkpoint"], selected);
  EXPECT_EQ(train["resolved"]["init_from"]["trial_number"], best["number"]);
  std::string initial = train["trials"][0]["initial_checkpoint"].get<std::string>();

  // Compare the manifests tensor by tensor, through the store itself.
  auto blobs = store::BlobStore::Open(*dir_ / "store" / "blobs");
  store::Manifest a = store::ParseManifest(blobs->Get(selected));
  store::Manifest b = store::ParseManifest(blobs->Get(initial));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  ASSERT_FALSE(a.tensors.empty());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].blob, b.tensors[i].blob) << a.tensors[i].name;
  }
  // The trained model moved away from its start.
  std::string final_model = train["model"]["checkpoint"].get<std::string>();
  EXPECT_NE(final_model, initial);
}

TEST_F(PipelineRunTest, LineageLeadsFromTheModelBackToThePrepareStage) {
  ASSERT_EQ(first_->exit_code, 0);
  Json train = Show("train");
  std::string model = train["model"]["checkpoint"].get<std::string>();
  Json lineage = JsonOf(Baton("lineage " + model + " --json"));
  ASSERT_TRUE(lineage.contains("initialized_from")) << lineage.dump(2);
  EXPECT_EQ(lineage["initialized_from"]["checkpoint"], train["resolved"]["init_from"]["checkpoint"]);
  EXPECT_EQ(lineage["initialized_from"]["trial_number"], train["resolved"]["init_from"]["trial_number"]);
  EXPECT_EQ(lineage["initialized_from"]["epoch"], 1);

  // Follow the chain: model -> train trial -> trial-epoch checkpoint -> tune
  // trial -> tune stage, tune trial -> dataset artifact -> prepare stage.
  auto follow = [&](const std::string& src, const std::string& kind) {
    for (const auto& e : lineage["edges"]) {
      if (e["src"] == src && e["kind"] == kind) return e["dst"].get<std::string>();
    }
    ADD_FAILURE() << "no " << kind << " edge from " << src;
    return std::string();
  };
  std::string train_trial = follow("checkpoint:" + model, "derived_from");
  std::string source = follow(train_trial, "initialized_from");
  std::string tune_trial = follow(source, "derived_from");
  std::string tune_stage = follow(tune_trial, "part_of");
  std::string dataset = follow(tune_trial, "trained_on");
  std::string prep_stage = follow(dataset, "derived_from");
  EXPECT_EQ(lineage["nodes"][tune_stage]["stage"], "tune");
  EXPECT_EQ(lineage["nodes"][prep_stage]["stage"], "prep");
  EXPECT_EQ(lineage["nodes"][prep_stage]["type"], "prepare");
}

TEST_F(PipelineRunTest, SecondRunIsAllCacheHits) {
  ASSERT_EQ(second_->exit_code, 0) << second_->out;
  Json run = Json::parse(second_->out);
  EXPECT_EQ(run["status"], "succeeded");
  Json first = Json::parse(first_->out);
  for (size_t i = 0; i < run["stages"].size(); ++i) {
    EXPECT_EQ(run["stages"][i]["status"], "cached") << run["stages"][i]["name"];
    EXPECT_EQ(run["stages"][i]["output"], first["stages"][i]["output"]);
  }
  EXPECT_LT(second_seconds_, 20.0) << "a fully cached run should take seconds";
}

TEST_F(PipelineRunTest, StoreDuShowsTheInitialCheckpointTookNoNewBytes) {
  ASSERT_EQ(first_->exit_code, 0);
  Json du = JsonOf(Baton("store du --json"));
  bool found = false;
  for (const auto& c : du["initial_checkpoints"]) {
    if (c["stage"] != "train") continue;
    found = true;
    EXPECT_EQ(c["new_bytes"], 0) << c.dump();
    EXPECT_GT(c["bytes"].get<uint64_t>(), 0u);
  }
  EXPECT_TRUE(found) << du.dump(2);
}

// A store holds a user's data, lineage and weights: on a shared machine no
// other user may read it. Its folder is 0700 and what is in it 0600 / 0700,
// also for a store made before (opening it tightens it).
TEST_F(PipelineRunTest, TheStoreIsTheOwnersAlone) {
  ASSERT_EQ(first_->exit_code, 0);
  namespace fs = std::filesystem;
  const fs::path store = *dir_ / "store";
  auto mode = [](const fs::path& p) { return fs::status(p).permissions() & fs::perms::all; };
  auto check = [&] {
    EXPECT_EQ(mode(store), fs::perms::owner_all);
    for (const auto& entry : fs::directory_iterator(store)) {
      const fs::perms want = entry.is_directory() ? fs::perms::owner_all : fs::perms::owner_read | fs::perms::owner_write;
      EXPECT_EQ(mode(entry.path()), want) << entry.path();
    }
  };
  check();
  fs::permissions(store, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                             fs::perms::others_exec);
  fs::permissions(store / "lineage.db", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                            fs::perms::others_read);
  ASSERT_EQ(Baton("store du --json").exit_code, 0);
  check();
}

// Global options go before or after the subcommand, as in most CLIs.
TEST_F(PipelineRunTest, GlobalOptionsMayFollowTheSubcommand) {
  ASSERT_EQ(first_->exit_code, 0);
  const std::string store = (*dir_ / "store").string();
  const CmdResult before = Capture(BATON_BIN " --store " + store + " show " + RunId() + " --json");
  const CmdResult after = Capture(BATON_BIN " show " + RunId() + " --json --store " + store);
  ASSERT_EQ(after.exit_code, 0) << after.out;
  EXPECT_EQ(Json::parse(after.out), Json::parse(before.out));
  const CmdResult nested = Capture(BATON_BIN " store du --store " + store + " --json");
  ASSERT_EQ(nested.exit_code, 0) << nested.out;
  EXPECT_EQ(Json::parse(nested.out), JsonOf(Baton("store du --json")));
  EXPECT_NE(Capture(BATON_BIN " store du --no-such-option --store " + store + " 2>/dev/null").exit_code, 0);
}

// --max-model-bytes (before or after the subcommand) refuses a model that
// needs more memory, at its largest layer; a run is refused before anything
// is recorded. The model (Fashion-MNIST's 1 x 28 x 28 images, read from the
// idx header, flattened into fc1 of width 32; batch 32) needs at least
// 208.1 KiB: fc1's 25,120 and fc2's 330 parameters with their gradients
// (203,600 bytes) and 74 layer outputs an example (9,472 bytes a batch).
TEST_F(PipelineRunTest, AModelAboveMaxModelBytesIsRefusedAtItsLargestLayer) {
  const std::string file = (*dir_ / "pipeline.json").string();
  CmdResult r = Baton("validate " + file + " --max-model-bytes 1KiB --json");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  const Json out = Json::parse(r.out);
  ASSERT_EQ(out["errors"].size(), 1u) << out.dump(2);
  EXPECT_EQ(out["errors"][0]["pointer"], "/stages/tune/model/layers/1");
  const std::string message = out["errors"][0]["message"];
  EXPECT_NE(message.find("the model needs at least 208.1 KiB of memory"), std::string::npos) << message;
  EXPECT_NE(message.find("the limit is 1.0 KiB (--max-model-bytes)"), std::string::npos) << message;
  EXPECT_EQ(Baton("--max-model-bytes 1MiB validate " + file).exit_code, 0);

  const size_t runs = JsonOf(Baton("runs --json")).size();
  r = Capture(BATON_BIN " run " + file + " --store " + (*dir_ / "store").string() +
              " --max-model-bytes 1KiB --no-progress 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("/stages/tune/model/layers/1: the model needs at least"), std::string::npos) << r.out;
  EXPECT_EQ(JsonOf(Baton("runs --json")).size(), runs);
}

TEST_F(PipelineRunTest, BrokenPipelineGivesJsonPointerErrors) {
  Json doc = Json::parse(kPipeline);
  doc["stages"]["tune"]["search_space"]["lr"]["low"] = 0;
  doc["stages"]["train"]["depends_on"] = {"nowhere"};
  std::ofstream(*dir_ / "bad.json") << doc.dump();
  CmdResult r = Baton("validate " + (*dir_ / "bad.json").string() + " --json");
  EXPECT_EQ(r.exit_code, 2);
  Json out = Json::parse(r.out);
  EXPECT_FALSE(out["valid"].get<bool>());
  std::vector<std::string> pointers;
  for (const auto& e : out["errors"]) pointers.push_back(e["pointer"].get<std::string>());
  EXPECT_NE(std::find(pointers.begin(), pointers.end(), "/stages/tune/search_space/lr/low"), pointers.end());
  EXPECT_NE(std::find(pointers.begin(), pointers.end(), "/stages/train/depends_on/0"), pointers.end());
  // `run` refuses it too, before creating anything.
  size_t runs_before = JsonOf(Baton("runs --json")).size();
  EXPECT_EQ(Baton("run " + (*dir_ / "bad.json").string()).exit_code, 2);
  EXPECT_EQ(JsonOf(Baton("runs --json")).size(), runs_before);
}

}  // namespace
}  // namespace baton
