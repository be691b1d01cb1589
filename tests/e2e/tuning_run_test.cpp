// Tuning with the real binaries: real baton-worker processes on loopback
// HTTP, a real store, Fashion-MNIST. Shows what the pruners and the retry
// policy do to real trials: a pruned trial stops at the epoch it was told
// to and its slot takes the next trial, a killed worker's trial resumes from
// its last stored epoch, and an ASHA promotion continues from the rung
// checkpoint, bit for bit.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "common/json_util.h"
#include "store/lineage_db.h"
#include "tests/e2e/processes.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

class TuningRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("baton-e2e-tuning-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Command(const std::string& args) const {
    return "BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir_ / "store").string() + " " + args +
           " 2>>" + (dir_ / "stderr.log").string();
  }

  // Runs `baton run` on `doc`; `on_line` sees each stdout line as it comes.
  int Run(const Json& doc, const std::string& flags, const std::function<void(const std::string&)>& on_line = {}) {
    std::ofstream(dir_ / "pipeline.json") << doc.dump(2);
    FILE* p = popen(Command("run " + (dir_ / "pipeline.json").string() + " " + flags).c_str(), "r");
    if (p == nullptr) return -1;
    char line[8192];
    while (fgets(line, sizeof(line), p) != nullptr) {
      output_ += line;
      if (on_line) on_line(line);
    }
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string RunId() {
    auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
    auto runs = db->ListRuns(1);
    return runs.empty() ? "" : runs.front().id;
  }

  // `baton show RUN --stage NAME --json` of the last run.
  Json ShowStage(const std::string& stage) {
    return Json::parse(testing::Capture(Command("show " + RunId() + " --stage " + stage + " --json")).out);
  }

  // The tune stage's trials by number, from `baton show --json`.
  std::map<int, Json> Trials() {
    std::map<int, Json> trials;
    Json parsed = ShowStage("tune");
    for (const auto& t : parsed["trials"]) trials[t["number"].get<int>()] = t;
    return trials;
  }

  std::vector<store::Edge> ResumedFrom(int64_t trial_id) {
    auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
    std::vector<store::Edge> out;
    for (const auto& e : db->Upstream("trial:" + std::to_string(trial_id), 1)) {
      if (e.kind == "resumed_from") out.push_back(e);
    }
    return out;
  }

  static Json Pipeline(int train_subset, const Json& model_layers) {
    Json doc = {{"schema_version", "1"}, {"name", "e2e-tuning"}, {"seed", 5}};
    doc["stages"]["prep"] = testing::FashionMnistPrep(train_subset);
    doc["stages"]["tune"] = {{"type", "tune"}, {"depends_on", {"prep"}},
                             {"model", {{"layers", model_layers}}},
                             {"hyperparameters", {{"batch_size", 50}, {"optimizer", "sgd"}}},
                             {"objective", {{"metric", "val_accuracy"}, {"mode", "max"}}}};
    return doc;
  }
  static Json Linear() {
    return Json::parse(R"([{"name": "flat", "type": "flatten"}, {"name": "fc", "type": "linear", "out_features": 10}])");
  }

  fs::path dir_;
  std::string output_;
};

TEST_F(TuningRunTest, MedianRulePrunesBadTrialsAtTheEpochItSaysAndTheSlotGoesOn) {
  Json doc = Pipeline(1000, Linear());
  auto& tune = doc["stages"]["tune"];
  // Grid order: (lr 0.1, momentum 0), (0.1, 0.5), (1e-5, 0), (1e-5, 0.5).
  tune["search_space"] = {{"lr", {{"type", "categorical"}, {"values", {0.1, 0.00001}}}},
                          {"momentum", {{"type", "categorical"}, {"values", {0.0, 0.5}}}}};
  tune["sampler"] = {{"type", "grid"}};
  tune["budget"] = {{"max_trials", 4}, {"max_parallel", 1}, {"max_epochs", 4}};
  tune["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 1}};
  ASSERT_EQ(Run(doc, "--workers 1 --no-progress"), 0) << output_;
  auto trials = Trials();
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[0]["status"], "succeeded");
  EXPECT_EQ(trials[0]["epochs_run"], 4);
  // lr 1e-5 barely moves from chance after one epoch: below trial 0's value.
  for (int n : {2, 3}) {
    EXPECT_EQ(trials[n]["status"], "pruned") << n;
    EXPECT_EQ(trials[n]["epochs_run"], 1) << n;  // stopped when told, after epoch 1 of 4
    EXPECT_NE(trials[n]["reason"].get<std::string>().find("median"), std::string::npos);
    EXPECT_EQ(trials[n]["output"], trials[n]["epochs"][0]["checkpoint"]);  // kept
  }
  EXPECT_NE(output_.find("tune: trial 2 told to stop after epoch 1"), std::string::npos) << output_;
  // The one worker took trial 3 right after trial 2 stopped (the order is
  // the log's; trial 2 would otherwise have run 3 more epochs first).
  const size_t stop2 = output_.find("tune: trial 2 pruned");
  const size_t start3 = output_.find("tune: trial 3 started");
  ASSERT_NE(stop2, std::string::npos) << output_;
  ASSERT_NE(start3, std::string::npos) << output_;
  EXPECT_LT(stop2, start3);
  EXPECT_EQ(output_.find("tune: trial 2 epoch 2/4"), std::string::npos);
}

// Kills the baton-worker children of the `baton` process using our store.
int KillWorkers(const fs::path& store_dir) {
  int killed = 0;
  for (const auto& [pid, ppid] : testing::BatonWorkers()) {
    std::ifstream parent("/proc/" + std::to_string(ppid) + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(parent)), std::istreambuf_iterator<char>());
    if (cmdline.find(store_dir.string()) == std::string::npos) continue;
    if (::kill(pid, SIGKILL) == 0) ++killed;
  }
  return killed;
}

TEST_F(TuningRunTest, AKilledWorkersTrialResumesFromItsLastEpochAndTheStudyCompletes) {
  Json doc = Pipeline(4000, Json::parse(R"([{"name": "flat", "type": "flatten"},
      {"name": "fc1", "type": "linear", "out_features": 256}, {"name": "act", "type": "relu"},
      {"name": "fc2", "type": "linear", "out_features": 10}])"));
  auto& tune = doc["stages"]["tune"];
  tune["search_space"] = {{"lr", {{"type", "float"}, {"low", 0.01}, {"high", 0.1}, {"log", true}}}};
  tune["budget"] = {{"max_trials", 2}, {"max_parallel", 1}, {"max_epochs", 3}};
  tune["retry"] = {{"max_attempts", 2}, {"backoff_seconds", 0}};
  int killed = 0;
  const int rc = Run(doc, "--workers 1 --no-progress", [&](const std::string& line) {
    // Trial 0 has stored epoch 1 of 3 and trains the next: kill its worker.
    if (killed == 0 && line.find("tune: trial 0 epoch 1/3") != std::string::npos) killed = KillWorkers(dir_ / "store");
  });
  ASSERT_EQ(killed, 1) << output_;
  ASSERT_EQ(rc, 0) << output_;
  EXPECT_NE(output_.find("tune: trial 0 will be retried"), std::string::npos) << output_;
  EXPECT_NE(output_.find("signal 9"), std::string::npos) << output_;
  auto trials = Trials();
  ASSERT_EQ(trials.size(), 2u);
  for (auto& [n, t] : trials) EXPECT_EQ(t["status"], "succeeded") << n;
  const Json& t0 = trials[0];
  EXPECT_EQ(t0["attempts"], 2);
  ASSERT_EQ(t0["epochs"].size(), 3u);  // epoch 0 from attempt 1, epochs 1-2 from attempt 2
  auto edges = ResumedFrom(t0["trial_id"].get<int64_t>());
  ASSERT_EQ(edges.size(), 1u);
  // Killed while training epoch 2 (index 1), it resumes after epoch 1; should
  // the kill land a little late, after the epoch it had stored last.
  const int start = edges[0].attrs["start_epoch"].get<int>();
  ASSERT_TRUE(start == 1 || start == 2) << start;
  const Json& stored = t0["epochs"][start - 1]["checkpoint"];
  EXPECT_EQ(edges[0].dst, "checkpoint:" + stored.get<std::string>());
  EXPECT_EQ(edges[0].attrs["loaded"], stored);  // the worker's own digest of what it loaded
  EXPECT_EQ(edges[0].attrs["promoted"], false);
}

TEST_F(TuningRunTest, AshaPromotedTrialContinuesFromItsRungCheckpoint) {
  Json doc = Pipeline(1000, Linear());
  auto& tune = doc["stages"]["tune"];
  // Grid order: lr 0.1, 0.03, then 1e-5 (the worst) reaches rung 0 third,
  // so it cannot go straight on and one of the first two is promoted.
  tune["search_space"] = {{"lr", {{"type", "categorical"}, {"values", {0.1, 0.03, 0.00001}}}}};
  tune["sampler"] = {{"type", "grid"}};
  tune["budget"] = {{"max_trials", 3}, {"max_parallel", 1}, {"max_epochs", 3}};
  tune["pruner"] = {{"type", "asha"}, {"min_resource", 1}, {"reduction_factor", 3}};
  ASSERT_EQ(Run(doc, "--workers 1 --no-progress"), 0) << output_;
  auto trials = Trials();
  ASSERT_EQ(trials.size(), 3u);
  int promoted = -1;
  for (auto& [n, t] : trials) {
    if (t["status"] == "succeeded") {
      EXPECT_EQ(promoted, -1) << "one trial reaches the full budget";
      promoted = n;
    } else {
      EXPECT_EQ(t["status"], "pruned") << n;
      EXPECT_EQ(t["epochs_run"], 1) << n;
    }
  }
  ASSERT_TRUE(promoted == 0 || promoted == 1) << promoted;
  const Json& t = trials[promoted];
  ASSERT_EQ(t["epochs"].size(), 3u);
  auto edges = ResumedFrom(t["trial_id"].get<int64_t>());
  ASSERT_EQ(edges.size(), 1u);
  const std::string rung_checkpoint = t["epochs"][0]["checkpoint"].get<std::string>();
  EXPECT_EQ(edges[0].dst, "checkpoint:" + rung_checkpoint);
  EXPECT_EQ(edges[0].attrs["promoted"], true);
  EXPECT_EQ(edges[0].attrs["start_epoch"], 1);
  EXPECT_EQ(edges[0].attrs["loaded"], rung_checkpoint);
  EXPECT_NE(output_.find("tune: trial " + std::to_string(promoted) + " promoted at rung 0 (1 epochs), resumes"),
            std::string::npos)
      << output_;
  // Its first new epoch trained on from there: a different checkpoint.
  EXPECT_NE(t["epochs"][1]["checkpoint"], t["epochs"][0]["checkpoint"]);
}

TEST_F(TuningRunTest, CompareStartsEachVariantFromTheCheckpointItNames) {
  Json doc = Pipeline(1000, Linear());
  auto& tune = doc["stages"]["tune"];
  tune["search_space"] = {{"lr", {{"type", "float"}, {"low", 0.01}, {"high", 0.1}, {"log", true}}}};
  tune["budget"] = {{"max_trials", 2}, {"max_parallel", 2}, {"max_epochs", 2}};
  doc["stages"]["train"] = {{"type", "train"}, {"depends_on", {"tune"}},
                            {"hyperparameters", {{"from", "tune"}, {"trial", "best"}}},
                            {"init_from", {{"stage", "tune"}, {"trial", "best"}, {"epoch", "last"}}},
                            {"epochs", 3},
                            {"compare", {{"baseline", "kaiming_uniform"}, {"seeds", 2},
                                         {"epochs_from", {"initial", "last"}}}}};
  ASSERT_EQ(Run(doc, "--workers 2 --no-progress"), 0) << output_;
  const Json train = ShowStage("train");
  ASSERT_TRUE(train.contains("comparison")) << train.dump().substr(0, 2000);
  const Json& variants = train["resolved"]["compare"]["variants"];
  std::map<std::string, std::string> named;  // variant -> the checkpoint it names
  for (const auto& v : variants) named[v["variant"].get<std::string>()] = v["checkpoint"].get<std::string>();
  ASSERT_EQ(named.size(), 3u);
  const Json& trials = train["trials"];
  ASSERT_EQ(trials.size(), 7u);  // the model + 2 seeds x 3 starts
  Json model_hp;
  std::map<int, Json> hp_by_seed;
  std::map<std::string, std::set<std::string>> initial_by_variant;
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  for (const auto& t : trials) {
    auto rec = db->GetTrial(t["trial_id"].get<int64_t>());
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(t["status"], "succeeded");
    if (!rec->task.contains("variant")) {
      model_hp = rec->hyperparameters;
      continue;
    }
    const std::string variant = rec->task["variant"].get<std::string>();
    const int repeat = rec->task["repeat"].get<int>();
    // Same hyperparameters everywhere; the same seed (data order) per repeat.
    Json key = {{"hp", rec->hyperparameters}, {"seed", rec->seed}, {"epochs", rec->task["epochs"]}};
    if (hp_by_seed.count(repeat)) {
      EXPECT_EQ(hp_by_seed[repeat], key) << variant;
    }
    hp_by_seed[repeat] = key;
    // Its initial weights are the named checkpoint, digest for digest (the
    // linear model's tensors all transfer); the baseline's are its own.
    if (variant == "kaiming_uniform") {
      EXPECT_EQ(named[variant], "");
      EXPECT_NE(rec->initial_checkpoint, named["epoch:last"]);
      EXPECT_NE(rec->initial_checkpoint, named["epoch:initial"]);
    } else {
      EXPECT_EQ(rec->initial_checkpoint, named[variant]) << variant;
    }
    initial_by_variant[variant].insert(rec->initial_checkpoint);
  }
  EXPECT_EQ(hp_by_seed.size(), 2u);
  EXPECT_NE(hp_by_seed[0]["seed"], hp_by_seed[1]["seed"]);
  EXPECT_EQ(hp_by_seed[0]["hp"], model_hp);
  EXPECT_EQ(hp_by_seed[1]["hp"], model_hp);
  EXPECT_EQ(initial_by_variant["kaiming_uniform"].size(), 2u);  // a fresh start per seed
  EXPECT_EQ(train["comparison"]["variants"].size(), 3u);
  EXPECT_NE(train["speedup_line"].get<std::string>().find("speed-up"), std::string::npos);
}

}  // namespace
}  // namespace baton
