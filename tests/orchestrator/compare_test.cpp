// The train stage's `compare`: the comparison table from hand-made curves,
// and the coordinator expanding seeds x starts with the same hyperparameters
// and data order.
#include <gtest/gtest.h>

#include <map>

#include "orchestrator/internal/compare.h"
#include "orchestrator/coordinator.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::SmallPipeline;

CompareRun Curve(const std::string& variant, int seed, std::vector<double> val, double seconds = 10) {
  CompareRun r;
  r.variant = variant;
  r.seed_index = seed;
  r.status = "succeeded";
  r.val = val;
  r.test = val;
  for (size_t i = 0; i < val.size(); ++i) r.test[i] -= 0.01;
  r.seconds.assign(val.size(), seconds);
  return r;
}

const std::vector<CompareVariant> kVariants = {
    {"kaiming_uniform", 0, "", 0}, {"epoch:last", 3, "abc", 1000}, {"epoch:initial", 0, "def", 900}};

std::vector<CompareRun> Runs() {
  std::vector<CompareRun> runs = {Curve("kaiming_uniform", 0, {0.50, 0.70, 0.80}),
                                  Curve("kaiming_uniform", 1, {0.60, 0.75, 0.82}),
                                  Curve("epoch:last", 0, {0.79, 0.81, 0.83}),
                                  Curve("epoch:last", 1, {0.80, 0.83, 0.84}),
                                  Curve("epoch:initial", 0, {0.55, 0.70, 0.79})};
  CompareRun failed;
  failed.variant = "epoch:initial";
  failed.seed_index = 1;
  failed.status = "diverged";
  failed.reason = "loss is nan";
  runs.push_back(failed);
  return runs;
}

TEST(CompareTest, TimeToAnAbsoluteTargetAndSpeedups) {
  Json c = CompareResults(Runs(), kVariants, {{"accuracy", 0.75}});
  EXPECT_DOUBLE_EQ(c["target"]["value"].get<double>(), 0.75);
  const Json& base = c["variants"][0];
  // Baseline: seed 0 reaches 0.75 at its 3rd epoch, seed 1 at its 2nd.
  EXPECT_EQ(base["tta"]["reached"], 2);
  EXPECT_DOUBLE_EQ(base["tta"]["epochs"]["mean"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(base["tta"]["seconds"]["mean"].get<double>(), 25.0);
  EXPECT_FALSE(base["tta"].contains("speedup_epochs"));
  EXPECT_DOUBLE_EQ(base["best_val_accuracy"]["mean"].get<double>(), 0.81);
  EXPECT_NEAR(base["best_test_accuracy"]["mean"].get<double>(), 0.80, 1e-12);
  const Json& last = c["variants"][1];
  // From the last epoch: both seeds at their 1st epoch -> 2.5x; with the
  // checkpoint's 3 tuning epochs counted, 2.5 / (1 + 3).
  EXPECT_DOUBLE_EQ(last["tta"]["epochs"]["mean"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(last["tta"]["speedup_epochs"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(last["tta"]["speedup_epochs_with_tuning"].get<double>(), 0.625);
  EXPECT_DOUBLE_EQ(last["tta"]["speedup_seconds"].get<double>(), 2.5);
  EXPECT_EQ(last["checkpoint_bytes"], 1000);
  ASSERT_TRUE(last["best_val_welch_t"].contains("p_value"));
  const double p = last["best_val_welch_t"]["p_value"].get<double>();
  EXPECT_GT(p, 0.0);
  EXPECT_LT(p, 1.0);
  // Best test accuracy: 0.825 vs 0.80 (each curve's test is val - 0.01).
  EXPECT_NEAR(last["best_test_difference"].get<double>(), 0.025, 1e-12);
  EXPECT_TRUE(last["best_test_mann_whitney_u"].contains("p_value"));
  // A variant with a failed seed: one seed counted, its failure listed.
  const Json& initial = c["variants"][2];
  EXPECT_EQ(initial["seeds_succeeded"], 1);
  EXPECT_EQ(initial["tta"]["seeds"], 1);
  EXPECT_NE(initial["failures"][0].get<std::string>().find("nan"), std::string::npos);
}

TEST(CompareTest, ATargetNeverReachedIsSaidNotDividedBy) {
  // Default target: 0.99 x the baseline's mean best (0.81) = 0.8019.
  Json c = CompareResults(Runs(), kVariants, Json::object());
  EXPECT_NEAR(c["target"]["value"].get<double>(), 0.8019, 1e-12);
  const Json& base = c["variants"][0];
  EXPECT_EQ(base["tta"]["reached"], 1);  // seed 0's best is 0.80
  EXPECT_EQ(base["tta"]["seeds"], 2);
  EXPECT_TRUE(base["tta"].contains("note"));
  const Json& last = c["variants"][1];
  EXPECT_EQ(last["tta"]["reached"], 2);
  EXPECT_DOUBLE_EQ(last["tta"]["epochs"]["mean"].get<double>(), 2.0);
  // The baseline did not reach it with every seed: no speed-up, no infinity.
  EXPECT_FALSE(last["tta"].contains("speedup_epochs"));
  const Json& initial = c["variants"][2];
  EXPECT_EQ(initial["tta"]["reached"], 0);
  EXPECT_FALSE(initial["tta"]["epochs"].contains("mean"));
  // At 100% of the baseline's best (0.81) only the reuse reaches it.
  EXPECT_EQ(base["tta_100"]["reached"], 1);
  EXPECT_EQ(last["tta_100"]["reached"], 2);
}

TEST_F(CoordinatorTest, CompareRunsEverySeedForEveryStartWithTheSameSettings) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["train"]["compare"] = {{"baseline", "kaiming_uniform"}, {"seeds", 2},
                                       {"epochs_from", {"initial", 1, "last"}}, {"max_parallel", 2}};
  std::string run_id = Run(doc, 2);
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  auto train = Stage(run_id, "train");
  auto tasks = db_->GetTrials(train.id);
  ASSERT_EQ(tasks.size(), 9u);  // the model + 2 seeds x (baseline + 3 starts)
  const auto& model = tasks[0];
  EXPECT_FALSE(model.task.contains("variant"));
  EXPECT_EQ(train.output, model.output);  // the stage's model is still its own
  const Json best = train.resolved["init_from"];
  auto epochs = db_->GetEpochs(best["trial_id"].get<int64_t>());
  const std::map<std::string, Json> want = {
      {"kaiming_uniform", nullptr},
      {"epoch:initial", db_->GetTrial(best["trial_id"].get<int64_t>())->initial_checkpoint},
      {"epoch:1", epochs[1].checkpoint},
      {"epoch:last", epochs.back().checkpoint}};
  std::map<int, uint64_t> seed_of_repeat;
  for (size_t i = 1; i < tasks.size(); ++i) {
    const auto& t = tasks[i];
    const std::string variant = t.task["variant"].get<std::string>();
    ASSERT_TRUE(want.count(variant)) << variant;
    EXPECT_EQ(t.task["init_checkpoint"], want.at(variant)) << variant;
    EXPECT_EQ(t.hyperparameters, model.hyperparameters) << variant;
    EXPECT_EQ(t.task["epochs"], model.task["epochs"]) << variant;
    const int repeat = t.task["repeat"].get<int>();
    if (seed_of_repeat.count(repeat)) {
      EXPECT_EQ(static_cast<uint64_t>(t.seed), seed_of_repeat[repeat]) << variant;
    }
    seed_of_repeat[repeat] = static_cast<uint64_t>(t.seed);
    EXPECT_EQ(t.status, "succeeded");
  }
  EXPECT_NE(seed_of_repeat[0], seed_of_repeat[1]);
  ASSERT_TRUE(train.resolved.contains("comparison"));
  Json c = ParseJson(blobs_->Get(train.resolved["comparison"].get<std::string>()), "comparison");
  ASSERT_EQ(c["variants"].size(), 4u);
  EXPECT_EQ(c["variants"][0]["variant"], "kaiming_uniform");
  EXPECT_EQ(c["variants"][3]["tuning_epochs"], 3);  // "last" of a 3-epoch trial
  EXPECT_EQ(c["variants"][2]["tuning_epochs"], 2);  // epoch 1 = after 2 epochs
  EXPECT_GT(c["variants"][3]["checkpoint_bytes"].get<uint64_t>(), 0u);
  // The initialized_from edge of a compare run names its own epoch.
  for (const auto& t : tasks) {
    if (t.task.value("variant", "") != "epoch:1") continue;
    bool found = false;
    for (const auto& e : db_->Upstream("trial:" + std::to_string(t.id), 1)) {
      if (e.kind == "initialized_from") {
        found = true;
        EXPECT_EQ(e.attrs["epoch"], 1);
      }
    }
    EXPECT_TRUE(found);
  }
}

}  // namespace
}  // namespace baton::orchestrator
