// Tuning: the pruners' decisions on hand-computed cases, their validation,
// and the coordinator scheduling with them (median stopping, ASHA with
// promotions that resume from rung checkpoints, synchronous rounds, the
// wall-clock budget, and TPE deciding hyperparameters as trials start).
#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "orchestrator/internal/pruner.h"
#include "orchestrator/internal/search.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::FakeWorker;
using testing::HasPointer;
using testing::PipelineIssues;
using testing::SmallPipeline;
using namespace std::chrono_literals;

TrialCurve Curve(int number, const std::string& status, std::vector<double> values, int promotions = 0) {
  return TrialCurve{number, status, std::move(values), promotions};
}

TEST(MedianRuleTest, StopsOnlyBelowTheMedianOfFinishedTrialsAtThatEpoch) {
  MedianRule rule{2, 2};
  std::vector<TrialCurve> others = {Curve(0, "succeeded", {0.5, 0.6, 0.7}),
                                    Curve(1, "succeeded", {0.3, 0.4, 0.5}),
                                    Curve(2, "running", {0.9, 0.95}),  // not finished: not counted
                                    Curve(3, "pruned", {0.9})};
  // Epoch 0 is before min_resource (2 epochs).
  EXPECT_FALSE(MedianStops(rule, "max", 9, {0.1}, others));
  // After 2 epochs the finished trials had {0.6, 0.4}: median 0.5.
  EXPECT_TRUE(MedianStops(rule, "max", 9, {0.2, 0.45}, others));
  EXPECT_FALSE(MedianStops(rule, "max", 9, {0.55, 0.45}, others));  // its best so far counts
  EXPECT_FALSE(MedianStops(rule, "max", 9, {0.2, 0.5}, others));    // equal is not worse
  // For a loss (min), lower is better: median of {0.6, 0.4} is 0.5.
  EXPECT_TRUE(MedianStops(rule, "min", 9, {0.9, 0.55}, others));
  EXPECT_FALSE(MedianStops(rule, "min", 9, {0.9, 0.45}, others));
  // Fewer finished trials than n_startup_trials: never stops.
  EXPECT_FALSE(MedianStops(MedianRule{1, 3}, "max", 9, {0.0, 0.0}, others));
  // The trial itself is not among "the others".
  EXPECT_FALSE(MedianStops(MedianRule{1, 2}, "max", 1, {0.3, 0.4}, {others[1], others[2]}));
  // Finished trials that never reached this epoch give no median.
  EXPECT_FALSE(MedianStops(rule, "max", 9, {0.0, 0.0, 0.0, 0.0}, others));
}

TEST(AshaRuleTest, RungsAreGeometricBelowTheFullBudget) {
  EXPECT_EQ(AshaRungs({1, 9, 3}), (std::vector<int>{1, 3}));
  EXPECT_EQ(AshaRungs({1, 10, 3}), (std::vector<int>{1, 3, 9}));
  EXPECT_EQ(AshaRungs({2, 16, 2}), (std::vector<int>{2, 4, 8}));
  EXPECT_EQ(AshaRungs({4, 5, 3}), (std::vector<int>{4}));
}

TEST(AshaRuleTest, TopOneOverEtaOfEachRungIsPromoted) {
  const AshaRule rule{1, 9, 3};
  // Three trials reached rung 0 (1 epoch): the top floor(3/3) = 1 goes on.
  std::vector<TrialCurve> trials = {Curve(0, "pruned", {0.50}), Curve(1, "pruned", {0.60}),
                                    Curve(2, "pruned", {0.55}), Curve(3, "running", {})};
  EXPECT_TRUE(AshaInTop(rule, "max", 1, 0, trials));
  EXPECT_FALSE(AshaInTop(rule, "max", 2, 0, trials));
  EXPECT_TRUE(AshaInTop(rule, "min", 0, 0, trials));  // a loss: lowest is best
  auto promo = AshaNextPromotion(rule, "max", trials);
  ASSERT_TRUE(promo.has_value());
  EXPECT_EQ(promo->number, 1);
  EXPECT_EQ(promo->rung, 0);
  // Once promoted from rung 0 it is not promoted from there again.
  trials[1] = Curve(1, "running", {0.60, 0.61}, 1);
  EXPECT_FALSE(AshaNextPromotion(rule, "max", trials).has_value());
  // Two trials only: floor(2/3) = 0, nobody goes on yet.
  EXPECT_FALSE(AshaNextPromotion(rule, "max", {trials[0], trials[2]}).has_value());
  // Higher rungs first: trial 4 waits at rung 1 (3 epochs) as the best of 3
  // there, while trial 5 would be promoted from rung 0.
  std::vector<TrialCurve> two = {
      Curve(4, "pruned", {0.7, 0.71, 0.72}, 1), Curve(6, "pruned", {0.65, 0.66, 0.67}, 1),
      Curve(7, "succeeded", {0.6, 0.61, 0.62, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6}, 2),
      Curve(5, "pruned", {0.9}), Curve(8, "pruned", {0.1}), Curve(9, "pruned", {0.1})};
  promo = AshaNextPromotion(rule, "max", two);
  ASSERT_TRUE(promo.has_value());
  EXPECT_EQ(promo->number, 4);
  EXPECT_EQ(promo->rung, 1);
  // Failed trials are never promoted, even at the top.
  two[0].status = "failed";
  promo = AshaNextPromotion(rule, "max", two);
  ASSERT_TRUE(promo.has_value());
  EXPECT_EQ(promo->number, 5);
  EXPECT_EQ(promo->rung, 0);
}

TEST(TuningSpecTest, PrunerAndSamplerSettingsAreChecked) {
  Json doc = SmallPipeline("/usr/share/datasets/fashion-mnist");
  doc["stages"]["tune"]["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 2}};
  doc["stages"]["tune"]["sampler"] = {{"type", "tpe"}, {"n_startup_trials", 3}};
  EXPECT_TRUE(PipelineIssues(doc).empty()) << PipelineIssues(doc).front();

  Json bad = doc;
  bad["stages"]["tune"]["pruner"]["reduction_factor"] = 3;
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/pruner/reduction_factor"));
  bad = doc;
  bad["stages"]["tune"]["pruner"]["min_resource"] = 4;  // max_epochs is 3
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/pruner/min_resource"));
  bad = doc;
  bad["stages"]["tune"]["pruner"] = {{"type", "asha"}, {"min_resource", 3}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/pruner/min_resource"));
  bad["stages"]["tune"]["pruner"] = {{"type", "asha"}, {"max_resource", 5}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/pruner/max_resource"));
  bad["stages"]["tune"]["pruner"] = {{"type", "asha"}, {"reduction_factor", 1}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/pruner/reduction_factor"));
  bad["stages"]["tune"]["pruner"] = {{"type", "asha"}};
  bad["stages"]["tune"]["scheduling"] = "synchronous";
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/scheduling"));
  bad = doc;
  bad["stages"]["tune"]["pruner"] = {{"type", "hyperband"}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/pruner/type"));
  bad = doc;
  bad["stages"]["tune"]["sampler"] = {{"type", "random"}, {"n_ei_candidates", 10}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/sampler/n_ei_candidates"));
  bad = doc;
  bad["stages"]["tune"]["budget"]["timeout_seconds"] = 0;
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/budget/timeout_seconds"));
  bad = doc;
  bad["stages"]["tune"]["search_space"]["lr"]["low"] = 0;  // log needs low > 0
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/tune/search_space/lr/low"));
}

class TuningTest : public CoordinatorTest {
 protected:
  std::map<int, store::TrialRecord> Trials(const std::string& run_id) {
    std::map<int, store::TrialRecord> out;
    for (auto& t : db_->GetTrials(Stage(run_id, "tune").id)) out[t.number] = t;
    return out;
  }
};

TEST_F(TuningTest, MedianRuleStopsABadTrialAndItsSlotTakesTheNext) {
  Json doc = SmallPipeline(data_.string());
  auto& tune = doc["stages"]["tune"];
  tune["budget"] = {{"max_trials", 5}, {"max_parallel", 1}, {"max_epochs", 4}};
  tune["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 2}};
  // Task ids: 1 = prep, 2.. = trials 0.. (one worker, in order).
  std::map<int64_t, double> base = {{2, 0.5}, {3, 0.6}, {4, 0.2}, {5, 0.7}, {6, 0.58}};
  std::string run_id = Run(doc, 1, [&](FakeWorker& w) {
    w.accuracy = [base](const Json&, int64_t id, int epoch) { return base.count(id) ? base.at(id) + 0.01 * epoch : 0.9; };
  });
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  auto trials = Trials(run_id);
  // Trial 2 (0.2) is below the median 0.55 of trials 0 and 1 after epoch 0;
  // trial 4 (0.58) is below the median 0.6 of trials 0, 1 and 3.
  for (int n : {0, 1, 3}) {
    EXPECT_EQ(trials[n].status, "succeeded") << n;
    EXPECT_EQ(db_->GetEpochs(trials[n].id).size(), 4u) << n;
  }
  for (int n : {2, 4}) {
    EXPECT_EQ(trials[n].status, "pruned") << n;
    EXPECT_NE(trials[n].reason.find("median"), std::string::npos) << trials[n].reason;
    auto epochs = db_->GetEpochs(trials[n].id);
    ASSERT_EQ(epochs.size(), 1u) << n;  // it stopped at the epoch it was told to
    EXPECT_EQ(StoppedAt().at(trials[n].id), 0);
    EXPECT_EQ(trials[n].output, epochs[0].checkpoint);  // its checkpoint is kept
  }
  // The trial after a pruned one started once the pruned one ended.
  EXPECT_GE(trials[3].started_at, trials[2].finished_at);
  // The study's winner and the train stage are unaffected.
  EXPECT_EQ(Stage(run_id, "train").resolved["init_from"]["trial_number"], 3);
}

TEST_F(TuningTest, AshaPromotesPausedTrialsFromTheirRungCheckpoints) {
  Json doc = SmallPipeline(data_.string());
  auto& tune = doc["stages"]["tune"];
  tune["budget"] = {{"max_trials", 9}, {"max_parallel", 1}, {"max_epochs", 9}};
  tune["pruner"] = {{"type", "asha"}, {"min_resource", 1}, {"reduction_factor", 3}};
  doc["stages"]["train"]["epochs"] = 1;
  std::map<int64_t, double> base = {{2, 0.50}, {3, 0.60}, {4, 0.55}, {5, 0.40}, {6, 0.70},
                                    {7, 0.45}, {8, 0.65}, {9, 0.30}, {10, 0.52}};
  std::string run_id = Run(doc, 1, [&](FakeWorker& w) {
    w.accuracy = [base](const Json&, int64_t id, int epoch) { return base.count(id) ? base.at(id) + 0.01 * epoch : 0.9; };
  });
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  auto trials = Trials(run_id);
  // Rungs at 1 and 3 epochs, eta 3 (worked through by hand):
  // trial 1 is promoted from rung 0 after trials 0..2 reached it, trial 4
  // goes straight on as the best at rung 0, trial 6 as the second best of 7,
  // and trial 4 is promoted from rung 1 once three trials are there.
  const std::map<int, size_t> epochs_run = {{0, 1}, {1, 3}, {2, 1}, {3, 1}, {4, 9},
                                            {5, 1}, {6, 3}, {7, 1}, {8, 1}};
  for (const auto& [n, count] : epochs_run) {
    EXPECT_EQ(db_->GetEpochs(trials[n].id).size(), count) << "trial " << n;
    EXPECT_EQ(trials[n].status, n == 4 ? "succeeded" : "pruned") << "trial " << n;
  }
  EXPECT_NE(trials[0].reason.find("ASHA"), std::string::npos) << trials[0].reason;
  // Promotions resumed from the rung checkpoint: a resumed_from edge to the
  // checkpoint of the rung's last epoch, reported back by the worker as the
  // state it loaded (the coordinator refuses any other digest).
  auto resumed = [&](int n) {
    std::vector<store::Edge> out;
    for (const auto& e : db_->Upstream("trial:" + std::to_string(trials[n].id), 1)) {
      if (e.kind == "resumed_from") out.push_back(e);
    }
    return out;
  };
  auto r1 = resumed(1);
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(r1[0].dst, "checkpoint:" + db_->GetEpochs(trials[1].id)[0].checkpoint);
  EXPECT_EQ(r1[0].attrs["start_epoch"], 1);
  EXPECT_EQ(r1[0].attrs["promoted"], true);
  auto r4 = resumed(4);
  ASSERT_EQ(r4.size(), 1u);
  EXPECT_EQ(r4[0].dst, "checkpoint:" + db_->GetEpochs(trials[4].id)[2].checkpoint);
  EXPECT_EQ(r4[0].attrs["start_epoch"], 3);
  EXPECT_TRUE(resumed(6).empty());  // it went straight on at rung 0, then paused for good
  EXPECT_EQ(Stage(run_id, "train").resolved["init_from"]["trial_number"], 4);
}

TEST_F(TuningTest, AResumedStateThatIsNotTheGivenCheckpointIsRefused) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["tune"]["retry"] = {{"max_attempts", 2}, {"backoff_seconds", 0}};
  Pipeline p = LoadPipeline(doc);
  std::string run_id = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, run_id);
  FakeWorker helper(c, *blobs_, 9);
  c.Start();
  Json task;
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  c.Complete(task["id"].get<int64_t>(), {{"output", helper.PutCheckpoint("d", "dataset")}});
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  c.ReportInitial(id, {{"checkpoint", helper.PutCheckpoint("init")}});
  const std::string e0 = helper.PutCheckpoint("e0");
  EXPECT_EQ(c.ReportEpoch(id, {{"epoch", 0}, {"checkpoint", e0}, {"metrics", {{"val_accuracy", 0.5}}}}), "continue");
  c.Fail(id, {{"status", "failed"}, {"reason", "worker killed"}});
  // The retry resumes from epoch 0's checkpoint.
  ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
  while (task["id"].get<int64_t>() != id) ASSERT_EQ(c.NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  EXPECT_EQ(task["start_epoch"], 1);
  EXPECT_EQ(task["resume_checkpoint"], e0);
  try {
    c.ReportInitial(id, {{"checkpoint", helper.PutCheckpoint("something else")}, {"resumed", true}});
    FAIL() << "a wrong resumed state was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(e0), std::string::npos) << e.what();
  }
  c.ReportInitial(id, {{"checkpoint", e0}, {"resumed", true}});
  bool edge = false;
  for (const auto& e : db_->Upstream("trial:" + std::to_string(id), 1)) {
    edge = edge || (e.kind == "resumed_from" && e.dst == "checkpoint:" + e0 && e.attrs["promoted"] == false);
  }
  EXPECT_TRUE(edge);
}

TEST_F(TuningTest, SynchronousRoundsWaitForTheirSlowestTrial) {
  for (const char* mode : {"synchronous", "asynchronous"}) {
    Json doc = SmallPipeline(data_.string());
    doc["stages"]["tune"]["scheduling"] = mode;
    doc["stages"]["tune"]["cache"] = {{"version", mode}};
    doc["stages"]["tune"]["budget"] = {{"max_trials", 4}, {"max_parallel", 2}, {"max_epochs", 2}};
    // Trial 0 is slow; its hyperparameters identify it: on the clock below
    // it takes 4 x the others. Asynchronously it does not finish before a
    // third trial has reported an epoch (or 20 s have passed, which then
    // fails the check below): that happens only if trial 1's slot took
    // trial 2 while trial 0 still ran, so the check does not hang on the
    // machine's speed.
    Pipeline p = LoadPipeline(doc);
    const Json slow = SampleTrials(p.stage("tune"), DeriveSeed(p.seed, "tune"))[0];
    const bool synchronous = std::string(mode) == "synchronous";
    std::mutex mu;
    std::condition_variable cv;
    std::set<std::string> fast_seen;  // hyperparameters of other trials that reported
    // Trials take time on a clock the workers move: 200 ms an epoch for the
    // slow one, 50 ms for the others.
    testing::ManualClock clock;
    options_.clock = &clock;
    std::string run_id = Run(doc, 2, [&](FakeWorker& w) {
      w.accuracy = [&](const Json& hp, int64_t, int epoch) {
        clock.Advance(hp == slow ? 200ms : 50ms);
        if (hp == slow) {
          // In its first epoch trial 0 waits until two other trials have
          // reported: trial 1's slot must have taken trial 2 by then.
          // Asynchronously that happens (or 20 s pass, which fails the
          // check below). Synchronously it must not: trial 2 waits for the
          // round, so trial 0 goes on after 1 s, and a scheduler that did
          // not wait is caught (trial 2 would start before trial 0 ends).
          std::unique_lock<std::mutex> lock(mu);
          if (epoch == 0) cv.wait_for(lock, synchronous ? 1s : 20s, [&] { return fast_seen.size() >= 2; });
        } else {
          std::lock_guard<std::mutex> lock(mu);
          fast_seen.insert(hp.dump());
          cv.notify_all();
        }
        return FakeWorker::Accuracy(hp, epoch);
      };
    });
    ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded");
    auto trials = Trials(run_id);
    const double round_one_end = std::max(trials[0].finished_at, trials[1].finished_at);
    if (synchronous) {
      EXPECT_GE(trials[2].started_at, round_one_end);
      EXPECT_GE(trials[3].started_at, round_one_end);
    } else {
      // Trial 1's slot takes trial 2 while trial 0 still runs.
      EXPECT_LT(trials[2].started_at, trials[0].finished_at);
    }
  }
}

TEST_F(TuningTest, NoTrialStartsAfterTheTimeout) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["tune"]["budget"] = {{"max_trials", 4}, {"max_parallel", 1}, {"max_epochs", 3},
                                     {"timeout_seconds", 0.3}};
  // Each epoch takes 150 ms of a clock the worker moves.
  testing::ManualClock clock;
  options_.clock = &clock;
  std::string run_id = Run(doc, 1, [&](FakeWorker& w) {
    w.accuracy = [&](const Json& hp, int64_t, int epoch) {
      clock.Advance(150ms);
      return FakeWorker::Accuracy(hp, epoch);
    };
  });
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  auto trials = Trials(run_id);
  EXPECT_EQ(trials[0].status, "succeeded");  // a running trial finishes
  EXPECT_EQ(db_->GetEpochs(trials[0].id).size(), 3u);
  for (int n : {1, 2, 3}) {
    EXPECT_EQ(trials[n].status, "skipped") << n;
    EXPECT_EQ(trials[n].attempts, 0) << n;
    EXPECT_NE(trials[n].reason.find("timeout"), std::string::npos) << trials[n].reason;
  }
  EXPECT_EQ(Stage(run_id, "train").status, "succeeded");
}

TEST_F(TuningTest, TpeDecidesHyperparametersAsTrialsStartAndIsReproducible) {
  Json doc = SmallPipeline(data_.string());
  auto& tune = doc["stages"]["tune"];
  tune["sampler"] = {{"type", "tpe"}, {"n_startup_trials", 3}};
  tune["budget"] = {{"max_trials", 8}, {"max_parallel", 1}, {"max_epochs", 1}};
  Pipeline p = LoadPipeline(doc);
  {
    // Every trial is in the lineage DB from the start, hyperparameters to come.
    std::string run_id = CreateRun(*db_, p);
    Coordinator c(*blobs_, *db_, p, run_id);
    FakeWorker helper(c, *blobs_, 9);
    c.Start();
    Json task;
    ASSERT_EQ(c.NextTask(0, 10ms, &task), Coordinator::Next::kTask);
    c.Complete(task["id"].get<int64_t>(), {{"output", helper.PutCheckpoint("d", "dataset")}});
    auto trials = Trials(run_id);
    ASSERT_EQ(trials.size(), 8u);
    for (auto& [n, t] : trials) EXPECT_EQ(t.hyperparameters, Json::object()) << n;
  }
  auto sequence = [&](const std::string& version) {
    Json d = doc;
    d["stages"]["tune"]["cache"] = {{"version", version}};  // not a cache hit
    std::string run_id = Run(d, 1);
    EXPECT_EQ(db_->GetRun(run_id)->status, "succeeded");
    std::vector<Json> hps;
    for (auto& [n, t] : Trials(run_id)) {
      EXPECT_EQ(t.task["hyperparameters"], t.hyperparameters);
      EXPECT_EQ(t.task["model"]["layers"][1]["p"], t.hyperparameters["dropout"]);
      const double lr = t.hyperparameters["lr"].get<double>();
      EXPECT_TRUE(lr >= 0.001 && lr <= 0.1) << lr;
      hps.push_back(t.hyperparameters);
    }
    return hps;
  };
  auto a = sequence("a");
  auto b = sequence("b");
  EXPECT_EQ(a, b);  // same seed, one worker: the same sequence
  EXPECT_EQ(a.size(), 8u);
}

}  // namespace
}  // namespace baton::orchestrator
