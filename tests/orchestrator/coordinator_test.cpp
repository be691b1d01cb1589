#include "orchestrator/coordinator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

#include "common/digest.h"
#include "common/error.h"
#include "store/checkpoint.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::FakeWorker;
using testing::SmallPipeline;
using testing::TempDir;
using namespace std::chrono_literals;

TEST_F(CoordinatorTest, TrainStartsFromTheBestTrialsLastCheckpoint) {
  std::string run_id = Run(SmallPipeline(data_.string()));
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;

  // Find the best trial independently: highest val_accuracy at the final epoch.
  auto tune = Stage(run_id, "tune");
  auto trials = db_->GetTrials(tune.id);
  ASSERT_EQ(trials.size(), 4u);
  const store::TrialRecord* best = nullptr;
  double best_value = -1;
  for (const auto& t : trials) {
    EXPECT_EQ(t.status, "succeeded");
    auto epochs = db_->GetEpochs(t.id);
    ASSERT_EQ(epochs.size(), 3u);
    double v = epochs.back().metrics["val_accuracy"].get<double>();
    if (v > best_value) {
      best_value = v;
      best = &t;
    }
  }
  const std::string best_last = db_->GetEpochs(best->id).back().checkpoint;

  auto train = Stage(run_id, "train");
  EXPECT_EQ(train.status, "succeeded");
  EXPECT_EQ(train.resolved["init_from"]["trial_id"], best->id);
  EXPECT_EQ(train.resolved["init_from"]["epoch"], 2);
  EXPECT_EQ(train.resolved["init_from"]["checkpoint"], best_last);
  auto train_trials = db_->GetTrials(train.id);
  ASSERT_EQ(train_trials.size(), 1u);
  EXPECT_EQ(train_trials[0].task["init_checkpoint"], best_last);
  EXPECT_EQ(train_trials[0].initial_checkpoint, best_last);
  EXPECT_EQ(train_trials[0].hyperparameters, best->hyperparameters);
  EXPECT_EQ(train_trials[0].task["evaluate_test"], true);

  // Lineage: final model -> train trial -> best trial's checkpoint -> best
  // trial -> tune stage; tune trial -> dataset artifact -> prepare stage.
  const std::string model = "checkpoint:" + train.output;
  auto edges = db_->Upstream(model);
  auto has = [&](const std::string& src, const std::string& dst, const std::string& kind) {
    return std::any_of(edges.begin(), edges.end(), [&](const store::Edge& e) {
      return e.src == src && e.dst == dst && e.kind == kind;
    });
  };
  const std::string train_trial = "trial:" + std::to_string(train_trials[0].id);
  const std::string best_trial = "trial:" + std::to_string(best->id);
  const std::string dataset = "artifact:" + Stage(run_id, "prep").output;
  EXPECT_TRUE(has(model, train_trial, "derived_from"));
  EXPECT_TRUE(has(train_trial, "checkpoint:" + best_last, "initialized_from"));
  EXPECT_TRUE(has("checkpoint:" + best_last, best_trial, "derived_from"));
  EXPECT_TRUE(has(best_trial, "stage:" + std::to_string(tune.id), "part_of"));
  EXPECT_TRUE(has(best_trial, dataset, "trained_on"));
  EXPECT_TRUE(has(dataset, "stage:" + std::to_string(Stage(run_id, "prep").id), "derived_from"));
  EXPECT_TRUE(has(train_trial, best_trial, "hyperparameters_from"));
}

TEST_F(CoordinatorTest, UnchangedPipelineIsAllCacheHits) {
  Json doc = SmallPipeline(data_.string());
  std::string first = Run(doc);
  ASSERT_EQ(db_->GetRun(first)->status, "succeeded");

  Pipeline p = LoadPipeline(doc);
  std::string second = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, second);
  c.Start();
  EXPECT_FALSE(c.HasWork());
  ASSERT_TRUE(c.WaitFinished(1s));
  EXPECT_EQ(c.Status(), "succeeded");
  for (const auto& s : db_->GetStages(second)) {
    EXPECT_EQ(s.status, "cached") << s.name;
    EXPECT_EQ(s.output, Stage(first, s.name).output) << s.name;
  }

  // A changed train stage reruns; its inputs are still cache hits.
  doc["stages"]["train"]["epochs"] = 3;
  std::string third = Run(doc);
  EXPECT_EQ(Stage(third, "prep").status, "cached");
  EXPECT_EQ(Stage(third, "tune").status, "cached");
  EXPECT_EQ(Stage(third, "train").status, "succeeded");
  // init_from resolves against the cached tune stage's trials.
  EXPECT_EQ(Stage(third, "train").resolved["init_from"]["checkpoint"],
            Stage(first, "train").resolved["init_from"]["checkpoint"]);
}

// The cache keys of a pipeline's stages are what stores written by earlier
// Baton versions hold (these were computed by the code before typed stage
// specs, commit aca68b5), so an existing store's stages are still cache
// hits. The data is Debian's Fashion-MNIST files (fixed bytes, fixed path);
// the fake workers' outputs are deterministic.
TEST_F(CoordinatorTest, CacheKeysAreThoseOfStoresMadeByEarlierVersions) {
  const std::string run_id = Run(SmallPipeline("/usr/share/datasets/fashion-mnist"));
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded");
  std::map<std::string, std::string> keys;
  for (const auto& s : db_->GetStages(run_id)) keys[s.name] = s.cache_key;
  EXPECT_EQ(keys["prep"], "1f8b547e2494b9daa648a1c2002436e239db62cb70d8dd5e464d17f1b70c77ba");
  EXPECT_EQ(keys["tune"], "3f5881a321a52e4e69cee861b2e1b27441ff2e22c7db665854cdcea223d7d806");
  EXPECT_EQ(keys["train"], "c3df09ec9864d4bc0b8c91a45987a21dc10c5d855f0f6a661298b05ec4cef86f");
}

TEST_F(CoordinatorTest, FailedTrialsRetryAndTheStudyGoesOn) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["tune"]["retry"] = {{"max_attempts", 2}, {"backoff_seconds", 0}};
  std::string run_id = Run(doc, 2, [](FakeWorker& w) {
    w.fail_first = {2};  // task ids: 1 = prep, 2..5 = tune trials
    w.diverge = {3};
  });
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded");
  auto trials = db_->GetTrials(Stage(run_id, "tune").id);
  std::map<int64_t, store::TrialRecord> by_id;
  for (auto& t : trials) by_id[t.id] = t;
  EXPECT_EQ(by_id[2].status, "succeeded");
  EXPECT_EQ(by_id[2].attempts, 2);
  EXPECT_EQ(by_id[3].status, "diverged");
  EXPECT_EQ(by_id[3].attempts, 1);  // a divergence repeats; it is not retried
  EXPECT_NE(by_id[3].reason.find("nan"), std::string::npos);
}

TEST_F(CoordinatorTest, EveryTrialFailingFailsTheRunAndSkipsDownstream) {
  std::string run_id = Run(SmallPipeline(data_.string()), 2, [](FakeWorker& w) { w.always_fail = {2, 3, 4, 5}; });
  auto run = db_->GetRun(run_id);
  EXPECT_EQ(run->status, "failed");
  EXPECT_NE(run->error.find("tune"), std::string::npos) << run->error;
  EXPECT_EQ(Stage(run_id, "tune").status, "failed");
  EXPECT_EQ(Stage(run_id, "train").status, "skipped");
  // The same reason for every trial is said once, with the trials it hit.
  const std::string error = Stage(run_id, "tune").error;
  const auto trials = db_->GetTrials(Stage(run_id, "tune").id);
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(error, "every task failed: trials 0-3: " + trials[0].reason) << error;
}

TEST_F(CoordinatorTest, MaxParallelBoundsRunningTrials) {
  Pipeline p = LoadPipeline(SmallPipeline(data_.string()));
  std::string run_id = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, run_id);
  FakeWorker helper(c, *blobs_, 9);
  c.Start();
  Json task;
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  EXPECT_EQ(task["kind"], "prepare");
  EXPECT_EQ(c.NextTask(1, 10ms, &task), Coordinator::Next::kWait);  // tune waits for prep
  c.Complete(task["id"].get<int64_t>(), {{"output", helper.PutCheckpoint("d", "dataset")}});
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  ASSERT_EQ(c.NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  EXPECT_EQ(c.NextTask(2, 10ms, &task), Coordinator::Next::kWait);  // max_parallel = 2
  // A lost worker frees its slot; its trial is failed (no retry configured).
  c.WorkerLost(1, "worker 1 was killed by signal 9");
  ASSERT_EQ(c.NextTask(2, 10ms, &task), Coordinator::Next::kTask);
  auto trials = db_->GetTrials(Stage(run_id, "tune").id);
  int failed = 0;
  for (auto& t : trials) {
    if (t.status == "failed") {
      ++failed;
      EXPECT_NE(t.reason.find("signal 9"), std::string::npos);
    }
  }
  EXPECT_EQ(failed, 1);
}

TEST_F(CoordinatorTest, RepeatedReportsAreAnsweredLikeTheFirst) {
  // A worker retries a report whose answer it did not see.
  Pipeline p = LoadPipeline(SmallPipeline(data_.string()));
  std::string run_id = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, run_id);
  FakeWorker helper(c, *blobs_, 9);
  c.Start();
  Json task;
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  const std::string dataset = helper.PutCheckpoint("d", "dataset");
  c.Complete(task["id"].get<int64_t>(), {{"output", dataset}});
  EXPECT_NO_THROW(c.Complete(task["id"].get<int64_t>(), {{"output", dataset}}));
  EXPECT_THROW(c.Complete(task["id"].get<int64_t>(), {{"output", std::string(64, 'c')}}), Error);

  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  Json report = {{"epoch", 0}, {"checkpoint", helper.PutCheckpoint("e0")}, {"metrics", {{"val_accuracy", 0.5}}}};
  EXPECT_EQ(c.ReportEpoch(id, report), "continue");
  EXPECT_EQ(c.ReportEpoch(id, report), "continue");
  EXPECT_EQ(db_->GetEpochs(id).size(), 1u);
  c.Fail(id, {{"status", "diverged"}, {"reason", "nan"}});
  EXPECT_NO_THROW(c.Fail(id, {{"status", "diverged"}, {"reason", "nan"}}));
  EXPECT_EQ(db_->GetTrial(id)->status, "diverged");
  EXPECT_EQ(db_->GetTrial(id)->attempts, 1);
}

TEST_F(CoordinatorTest, BadReportsAreRejectedWithoutChangingState) {
  Pipeline p = LoadPipeline(SmallPipeline(data_.string()));
  std::string run_id = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, run_id);
  c.Start();
  Json task;
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  try {
    c.ReportEpoch(999, {{"epoch", 0}, {"checkpoint", std::string(64, 'a')}, {"metrics", Json::object()}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  try {
    c.Complete(id, {{"output", std::string(64, 'b')}});  // never uploaded
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(db_->GetTrial(id)->status, "running");
}

}  // namespace
}  // namespace baton::orchestrator
