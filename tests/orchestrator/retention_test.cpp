// The retention policy on hand-built lineage in a real SQLite lineage DB:
// which epochs checkpoints.keep keeps for given metrics, what is kept
// whatever the policy (unfinished and pinned runs, stages without a policy,
// what a stage resolved or was initialised from, what a pending init_from
// may still select), and how released checkpoints leave the references gc
// keeps. The pipeline schema's checkpoints.keep is checked here too.
#include "orchestrator/retention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "store/lineage_db.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using store::EpochRecord;

EpochRecord Epoch(int epoch, Json metrics) {
  EpochRecord e;
  e.epoch = epoch;
  e.metrics = std::move(metrics);
  return e;
}

TEST(EpochsToKeep, BestAndLastPerTrial) {
  const std::vector<EpochRecord> epochs = {Epoch(0, {{"acc", 0.5}}), Epoch(1, {{"acc", 0.9}}),
                                           Epoch(2, {{"acc", 0.7}}), Epoch(3, {{"acc", 0.6}})};
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 1, 1), (std::set<int>{1, 3}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 2, 0), (std::set<int>{1, 2}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 0, 2), (std::set<int>{2, 3}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "min", 1, 0), (std::set<int>{0}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 0, 0), (std::set<int>{}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 10, 10), (std::set<int>{0, 1, 2, 3}));
  EXPECT_EQ(EpochsToKeep({}, "acc", "max", 2, 2), (std::set<int>{}));
}

TEST(EpochsToKeep, BestIsAlsoLastKeepsOneEpoch) {
  const std::vector<EpochRecord> epochs = {Epoch(0, {{"acc", 0.5}}), Epoch(1, {{"acc", 0.9}})};
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 1, 1), (std::set<int>{1}));
}

TEST(EpochsToKeep, TiesKeepTheEarlierEpochAndBadValuesAreNeverBest) {
  const std::vector<EpochRecord> epochs = {Epoch(0, {{"acc", 0.8}}), Epoch(1, {{"acc", 0.8}}),
                                           Epoch(2, {{"loss", 1.0}}),  // no objective
                                           Epoch(3, {{"acc", "nan"}}), Epoch(4, {{"acc", NAN}}),
                                           Epoch(5, {{"acc", 0.1}})};
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 1, 0), (std::set<int>{0}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "max", 3, 0), (std::set<int>{0, 1, 5}));
  EXPECT_EQ(EpochsToKeep(epochs, "acc", "min", 1, 0), (std::set<int>{5}));
}

// A lineage DB with runs, stages, trials and epochs made by hand. Each
// checkpoint is its own only blob (100 bytes), named after where it is.
class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = store::LineageDb::Open(dir_.path() / "lineage.db"); }

  static Json Keep(int best_k, int last_k) {
    return {{"keep", {{"best_k", best_k}, {"last_k", last_k}}}};
  }

  void AddRun(const std::string& id, const std::string& status) {
    store::RunRecord r;
    r.id = id;
    r.pipeline_id = "p";
    r.name = "p";
    r.status = status;
    db_->CreateRun(r);
  }

  int64_t AddStage(const std::string& run, const std::string& name, const std::string& type,
                   const std::string& status, Json spec, int64_t cached_from = 0) {
    store::StageRecord s;
    s.run_id = run;
    s.name = name;
    s.type = type;
    s.status = status;
    spec["type"] = type;
    if (type == "tune") spec["objective"] = {{"metric", "val_accuracy"}, {"mode", "max"}};
    s.spec = spec;
    s.cached_from = cached_from;
    return db_->AddStage(s);
  }

  void Resolve(int64_t stage_id, const std::string& status, Json resolved) {
    store::StageRecord s = *db_->GetStage(stage_id);
    s.status = status;
    s.resolved = std::move(resolved);
    db_->UpdateStage(s);
  }

  static std::string Digest(int64_t trial, int epoch) {
    return Sha256Hex("trial " + std::to_string(trial) + " epoch " + std::to_string(epoch));
  }

  // A trial with initial weights and one epoch per value of val_accuracy.
  int64_t AddTrial(int64_t stage_id, int number, const std::vector<double>& values) {
    store::TrialRecord t;
    t.stage_id = stage_id;
    t.number = number;
    t.kind = "train";
    t.status = "succeeded";
    const int64_t id = db_->AddTrial(t);
    db_->RecordCheckpoint(Digest(id, -1), id, -1, {{Digest(id, -1), 100}});
    t = *db_->GetTrial(id);
    t.initial_checkpoint = Digest(id, -1);
    for (size_t e = 0; e < values.size(); ++e) {
      EpochRecord r;
      r.trial_id = id;
      r.epoch = static_cast<int>(e);
      r.metrics = {{"val_accuracy", values[e]}};
      r.checkpoint = Digest(id, r.epoch);
      db_->RecordEpoch(r, {{r.checkpoint, 100}});
      t.output = r.checkpoint;
    }
    db_->UpdateTrial(t);
    return id;
  }

  std::set<std::string> Released() {
    std::set<std::string> out;
    for (const auto& c : PlanRetention(*db_).release) out.insert(c.digest);
    return out;
  }

  std::set<std::string> AllOf(int64_t trial, int epochs) {
    std::set<std::string> out;
    for (int e = -1; e < epochs; ++e) out.insert(Digest(trial, e));
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<store::LineageDb> db_;
};

TEST_F(RetentionTest, KeepsBestAndLastEpochsOfEachTrialOfAFinishedRun) {
  AddRun("r1", "succeeded");
  const int64_t tune = AddStage("r1", "tune", "tune", "succeeded", {{"checkpoints", Keep(1, 1)}});
  const int64_t a = AddTrial(tune, 0, {0.5, 0.9, 0.7, 0.6});  // best 1, last 3
  const int64_t b = AddTrial(tune, 1, {0.2, 0.3, 0.4});       // best = last = 2
  const RetentionPlan plan = PlanRetention(*db_);
  std::set<std::string> released;
  for (const auto& c : plan.release) {
    released.insert(c.digest);
    EXPECT_EQ(c.run_id, "r1");
    EXPECT_EQ(c.stage, "tune");
  }
  EXPECT_EQ(released, (std::set<std::string>{Digest(a, -1), Digest(a, 0), Digest(a, 2), Digest(b, -1), Digest(b, 0),
                                             Digest(b, 1)}));
  EXPECT_EQ(plan.kept, 3u);  // a:1, a:3, b:2
  // In run, stage, trial, epoch order, with where each was.
  ASSERT_EQ(plan.release.size(), 6u);
  EXPECT_EQ(plan.release[0].trial_id, a);
  EXPECT_EQ(plan.release[0].epoch, -1);
  EXPECT_EQ(plan.release[2].epoch, 2);
  EXPECT_EQ(plan.release[5].trial_number, 1);
}

TEST_F(RetentionTest, StagesWithoutAPolicyAndTrainStagesKeepEverything) {
  AddRun("r1", "succeeded");
  const int64_t tune = AddStage("r1", "tune", "tune", "succeeded", Json::object());
  AddTrial(tune, 0, {0.5, 0.9, 0.7});
  const int64_t train = AddStage("r1", "train", "train", "succeeded", Json::object());
  AddTrial(train, 0, {0.1, 0.2});
  EXPECT_TRUE(Released().empty());
  EXPECT_EQ(PlanRetention(*db_).kept, 7u);
}

TEST_F(RetentionTest, UnfinishedRunsKeepEverything) {
  for (const char* status : {"pending", "running"}) {
    const std::string run = std::string("r-") + status;
    AddRun(run, status);
    const int64_t tune = AddStage(run, "tune", "tune", "succeeded", {{"checkpoints", Keep(0, 1)}});
    AddTrial(tune, 0, {0.5, 0.9, 0.7});
  }
  EXPECT_TRUE(Released().empty());
  AddRun("r-failed", "failed");
  const int64_t tune = AddStage("r-failed", "tune", "tune", "succeeded", {{"checkpoints", Keep(0, 1)}});
  const int64_t t = AddTrial(tune, 0, {0.5, 0.9, 0.7});
  EXPECT_EQ(Released(), (std::set<std::string>{Digest(t, -1), Digest(t, 0), Digest(t, 1)}));
}

// A cancelled run's cancelled tune stage is finished: its policy applies
// (retention had its own list of finished states without "cancelled", and
// kept every checkpoint of such a stage for ever). An interrupted one may
// resume: everything stays.
TEST_F(RetentionTest, ACancelledStageKeepsWhatItsPolicyKeeps) {
  AddRun("r-cancelled", "cancelled");
  const int64_t tune = AddStage("r-cancelled", "tune", "tune", "cancelled", {{"checkpoints", Keep(0, 1)}});
  const int64_t t = AddTrial(tune, 0, {0.5, 0.9, 0.7});
  EXPECT_EQ(Released(), (std::set<std::string>{Digest(t, -1), Digest(t, 0), Digest(t, 1)}));
  AddRun("r-interrupted", "interrupted");
  const int64_t tune2 = AddStage("r-interrupted", "tune", "tune", "interrupted", {{"checkpoints", Keep(0, 1)}});
  const int64_t u = AddTrial(tune2, 0, {0.5, 0.9, 0.7});
  for (const auto& d : Released()) EXPECT_FALSE(AllOf(u, 3).count(d)) << "released from an interrupted run: " << d;
}

TEST_F(RetentionTest, PinnedRunsKeepEverythingUntilUnpinned) {
  AddRun("r1", "succeeded");
  const int64_t tune = AddStage("r1", "tune", "tune", "succeeded", {{"checkpoints", Keep(1, 0)}});
  const int64_t t = AddTrial(tune, 0, {0.5, 0.9});
  db_->PinRun("r1");
  db_->PinRun("r1");  // idempotent
  EXPECT_EQ(db_->PinnedRuns(), std::vector<std::string>{"r1"});
  EXPECT_TRUE(Released().empty());
  db_->UnpinRun("r1");
  EXPECT_TRUE(db_->PinnedRuns().empty());
  EXPECT_EQ(Released(), (std::set<std::string>{Digest(t, -1), Digest(t, 0)}));
  try {
    db_->PinRun("no-such-run");
    FAIL() << "pinned an unknown run";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("no-such-run"), std::string::npos) << e.what();
  }
}

TEST_F(RetentionTest, WhatAStageResolvedOrWasInitialisedFromIsKept) {
  AddRun("r1", "succeeded");
  const int64_t tune = AddStage("r1", "tune", "tune", "succeeded", {{"checkpoints", Keep(0, 1)}});
  const int64_t t = AddTrial(tune, 0, {0.5, 0.9, 0.7, 0.8});
  const int64_t train =
      AddStage("r1", "train", "train", "succeeded", {{"init_from", {{"stage", "tune"}, {"epoch", 0}}}});
  Resolve(train, "succeeded",
          {{"init_from", {{"checkpoint", Digest(t, 0)}}},
           {"compare", {{"variants", {{{"checkpoint", ""}}, {{"checkpoint", Digest(t, 1)}}}}}}});
  // An initialized_from edge alone also keeps its checkpoint.
  db_->AddEdge({"trial:999", "checkpoint:" + Digest(t, 2), "initialized_from", Json::object()});
  EXPECT_EQ(Released(), (std::set<std::string>{Digest(t, -1)}));
}

// A run that is still going has a train stage whose init_from names a tune
// stage cached from a finished run: every epoch of that finished stage may
// still be selected, until the train stage has resolved.
TEST_F(RetentionTest, DemandKeepsEveryEpochUntilTheInitFromResolves) {
  AddRun("r1", "succeeded");
  const int64_t tune1 = AddStage("r1", "tune", "tune", "succeeded", {{"checkpoints", Keep(1, 1)}});
  const int64_t t = AddTrial(tune1, 0, {0.5, 0.9, 0.7, 0.6});
  AddRun("r2", "running");
  AddStage("r2", "tune", "tune", "cached", {{"checkpoints", Keep(1, 1)}}, /*cached_from=*/tune1);
  const Json init = {{"stage", "tune"}, {"trial", "best"}, {"epoch", 0}};
  const int64_t train = AddStage("r2", "train", "train", "pending", {{"init_from", init}});
  EXPECT_TRUE(Released().empty());
  // Resolved (written when the stage starts): only its choice is demanded.
  Resolve(train, "running", {{"init_from", {{"checkpoint", Digest(t, 0)}, {"epoch", 0}}}});
  EXPECT_EQ(Released(), (std::set<std::string>{Digest(t, -1), Digest(t, 2)}));
  // hyperparameters.from demands the same while it is pending.
  AddRun("r3", "running");
  AddStage("r3", "tune", "tune", "cached", {{"checkpoints", Keep(1, 1)}}, /*cached_from=*/tune1);
  const int64_t train3 = AddStage("r3", "train", "train", "pending", {{"hyperparameters", {{"from", "tune"}}}});
  EXPECT_TRUE(Released().empty());
  Resolve(train3, "failed", Json::object());
  AddStage("r3", "x", "train", "pending", Json::object());  // names nothing
  EXPECT_EQ(Released().size(), 2u);
}

TEST_F(RetentionTest, ReleasedCheckpointsLeaveWhatGcKeepsAndComeBackWhenRecordedAgain) {
  AddRun("r1", "succeeded");
  const int64_t tune = AddStage("r1", "tune", "tune", "succeeded", {{"checkpoints", Keep(1, 0)}});
  const int64_t t = AddTrial(tune, 0, {0.9, 0.5});  // keeps epoch 0
  std::vector<std::string> digests;
  for (const auto& c : PlanRetention(*db_).release) digests.push_back(c.digest);
  ASSERT_EQ(digests.size(), 2u);
  db_->ReleaseCheckpoints(digests);
  EXPECT_GT(db_->CheckpointReleasedAt(Digest(t, 1)), 0);
  EXPECT_EQ(db_->CheckpointReleasedAt(Digest(t, 0)), 0);
  EXPECT_TRUE(PlanRetention(*db_).release.empty());  // released once
  const auto listed = db_->ListCheckpoints();
  EXPECT_EQ(listed, std::vector<std::string>{Digest(t, 0)});
  const auto referenced = db_->ReferencedBlobs();
  const std::set<std::string> refs(referenced.begin(), referenced.end());
  EXPECT_TRUE(refs.count(Digest(t, 0)));
  EXPECT_FALSE(refs.count(Digest(t, 1)));   // the trial's output, released
  EXPECT_FALSE(refs.count(Digest(t, -1)));  // its initial weights, released
  // The lineage stays: the epoch still names its checkpoint.
  EXPECT_EQ(db_->GetEpochs(t).at(1).checkpoint, Digest(t, 1));
  EXPECT_EQ(db_->ReleasedCheckpoints().size(), 2u);
  // The same weights recorded again by another trial are kept again.
  const int64_t train = AddStage("r1", "train", "train", "succeeded", Json::object());
  store::TrialRecord other;
  other.stage_id = train;
  other.kind = "train";
  other.status = "running";
  const int64_t o = db_->AddTrial(other);
  db_->RecordCheckpoint(Digest(t, 1), o, -1, {{Digest(t, 1), 100}});
  EXPECT_EQ(db_->CheckpointReleasedAt(Digest(t, 1)), 0);
  const auto again = db_->ReferencedBlobs();
  EXPECT_TRUE(std::count(again.begin(), again.end(), Digest(t, 1)));
}

// The reasons the web UI's gc dry run shows on the lineage graph: every
// reason that keeps a checkpoint, none for what would go or is gone.
TEST_F(RetentionTest, ExplainsWhyEachAskedCheckpointStays) {
  AddRun("r1", "succeeded");
  const int64_t tune = AddStage("r1", "tune", "tune", "succeeded", {{"checkpoints", Keep(1, 1)}});
  const int64_t t = AddTrial(tune, 0, {0.5, 0.9, 0.7, 0.6});  // best 1, last 3
  const int64_t train =
      AddStage("r1", "train", "train", "succeeded", {{"init_from", {{"stage", "tune"}, {"epoch", 1}}}});
  Resolve(train, "succeeded", {{"init_from", {{"checkpoint", Digest(t, 1)}}}});
  const int64_t final_model = AddTrial(train, 0, {0.8});
  AddRun("r2", "succeeded");
  const int64_t tune2 = AddStage("r2", "tune", "tune", "succeeded", {{"checkpoints", Keep(0, 1)}});
  const int64_t p = AddTrial(tune2, 0, {0.4, 0.3});
  db_->PinRun("r2");

  std::unordered_set<std::string> asked;
  for (const auto& d : AllOf(t, 4)) asked.insert(d);
  asked.insert(Digest(final_model, 0));
  asked.insert(Digest(p, 0));
  asked.insert(Sha256Hex("not recorded"));
  const RetentionPlan plan = PlanRetention(*db_, &asked);
  auto reasons = [&](const std::string& d) {
    std::set<std::string> out;
    auto it = plan.kept_because.find(d);
    if (it != plan.kept_because.end()) {
      for (KeptBecause why : it->second) out.insert(KeptBecauseName(why));
    }
    return out;
  };
  EXPECT_EQ(reasons(Digest(t, 1)), (std::set<std::string>{"best_k", "init_from"}));
  EXPECT_EQ(reasons(Digest(t, 3)), (std::set<std::string>{"last_k"}));
  EXPECT_TRUE(reasons(Digest(t, 0)).empty());  // would go
  EXPECT_TRUE(reasons(Digest(t, -1)).empty());
  EXPECT_EQ(reasons(Digest(final_model, 0)), (std::set<std::string>{"no_policy"}));
  EXPECT_EQ(reasons(Digest(p, 0)), (std::set<std::string>{"pinned"}));
  EXPECT_EQ(plan.kept_because.count(Sha256Hex("not recorded")), 0u);
  EXPECT_EQ(plan.kept_because.size(), 4u) << "reasons only for what was asked and stays";
  // Explaining changes no decision.
  const RetentionPlan plain = PlanRetention(*db_);
  EXPECT_TRUE(plain.kept_because.empty());
  EXPECT_EQ(plain.release.size(), plan.release.size());
  EXPECT_EQ(plain.kept, plan.kept);

  // Released: no reason to stay any more.
  std::vector<std::string> digests;
  for (const auto& c : plan.release) digests.push_back(c.digest);
  db_->ReleaseCheckpoints(digests);
  db_->UnpinRun("r2");
  const RetentionPlan after = PlanRetention(*db_, &asked);
  ASSERT_EQ(after.kept_because.count(Digest(t, 1)), 1u);
  EXPECT_EQ(after.kept_because.at(Digest(t, 1)).size(), 2u);
  EXPECT_EQ(after.kept_because.count(Digest(t, 0)), 0u);
  EXPECT_EQ(after.kept_because.count(Digest(p, 0)), 0u) << "unpinned: p's epoch 0 would go now";
}

TEST(RetentionSchema, ChecksCheckpointsKeep) {
  using testing::HasPointer;
  using testing::PipelineIssues;
  Json doc = testing::SmallPipeline("/nonexistent");
  doc["stages"]["tune"]["checkpoints"] = {{"keep", {{"best_k", 2}, {"last_k", 0}}}};
  for (const auto& issue : PipelineIssues(doc)) EXPECT_EQ(issue.find("checkpoints"), std::string::npos) << issue;
  doc["stages"]["tune"]["checkpoints"]["keep"]["best_k"] = -1;
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/tune/checkpoints/keep/best_k"));
  doc["stages"]["tune"]["checkpoints"]["keep"] = {{"best_k", 1.5}};
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/tune/checkpoints/keep/best_k"));
  doc["stages"]["tune"]["checkpoints"]["keep"] = {{"best", 1}};
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/tune/checkpoints/keep/best"));
  doc["stages"]["tune"]["checkpoints"]["keep"] = Json::object();  // keeps nothing by accident
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/tune/checkpoints/keep"));
  doc["stages"]["tune"]["checkpoints"] = {{"last_k", 1}};
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/tune/checkpoints"));
  doc["stages"]["tune"].erase("checkpoints");
  doc["stages"]["train"]["checkpoints"] = {{"keep", {{"last_k", 1}}}};  // train outputs are always kept
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/train/checkpoints"));
}

}  // namespace
}  // namespace baton::orchestrator
