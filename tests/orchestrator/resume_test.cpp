// Resuming a run whose coordinator went away mid-run (Coordinator::ForResume):
// finished trials stay as they are, an interrupted trial continues from its
// last recorded epoch, pending work starts, and the run ends as usual.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::FakeWorker;
using testing::SmallPipeline;
using namespace std::chrono_literals;

class ResumeTest : public CoordinatorTest {
 protected:
  // Takes the next task for `worker`; fails the test if there is none.
  Json Take(Coordinator& c, int worker) {
    Json task;
    EXPECT_EQ(c.NextTask(worker, 1s, &task), Coordinator::Next::kTask);
    return task;
  }

  // Reports the initial weights and epochs [from, to) of a train task, as
  // FakeWorker does (same checkpoint names).
  void Train(Coordinator& c, FakeWorker& w, const Json& task, int from, int to) {
    const int64_t id = task["id"].get<int64_t>();
    const std::string key = task["stage"].get<std::string>() + "/" + std::to_string(task["seed"].get<uint64_t>());
    if (from == 0) c.ReportInitial(id, {{"checkpoint", w.PutCheckpoint(key + "/init")}, {"init", {{"source", nullptr}}}});
    for (int e = from; e < to; ++e) {
      const double acc = FakeWorker::Accuracy(task["hyperparameters"], e);
      EXPECT_EQ(c.ReportEpoch(id, {{"epoch", e}, {"checkpoint", w.PutCheckpoint(key + "/" + std::to_string(e))},
                                   {"metrics", {{"val_accuracy", acc}}}, {"seconds", 0.01}}),
                "continue");
    }
  }

  std::map<int, store::TrialRecord> Trials(const std::string& run_id, const std::string& stage) {
    std::map<int, store::TrialRecord> out;
    for (auto& t : db_->GetTrials(Stage(run_id, stage).id)) out[t.number] = t;
    return out;
  }

  // Finishes a resumed run with `workers` fake workers; returns every
  // (task id, epoch) they reported.
  std::set<std::pair<int64_t, int>> Finish(Coordinator& c, int workers) {
    std::mutex mu;
    std::set<std::pair<int64_t, int>> reported;
    fakes_.clear();
    for (int i = 0; i < workers; ++i) {
      fakes_.push_back(std::make_unique<FakeWorker>(c, *blobs_, 10 + i));
      fakes_.back()->accuracy = [&](const Json& hp, int64_t id, int epoch) {
        std::lock_guard<std::mutex> lock(mu);
        reported.insert({id, epoch});
        return FakeWorker::Accuracy(hp, epoch);
      };
    }
    std::vector<std::thread> threads;
    for (auto& f : fakes_) threads.emplace_back([&f] { f->Loop(); });
    EXPECT_TRUE(c.WaitFinished(30s));
    for (auto& t : threads) t.join();
    return reported;
  }
};

TEST_F(ResumeTest, FinishedTrialsStayAndAnInterruptedTrialContinuesFromItsLastEpoch) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["tune"]["budget"] = {{"max_trials", 4}, {"max_parallel", 2}, {"max_epochs", 3}};
  Pipeline p = LoadPipeline(doc);
  const std::string run_id = CreateRun(*db_, p);
  {
    // The first process: prepares, finishes trial 0, records two epochs of
    // trial 1, starts trial 2 (initial weights only), then ends.
    Coordinator c(*blobs_, *db_, p, run_id);
    c.Start();
    FakeWorker helper(c, *blobs_, 0);
    Json prep = Take(c, 0);
    ASSERT_EQ(prep["kind"], "prepare");
    c.Complete(prep["id"].get<int64_t>(), {{"output", helper.PutCheckpoint("dataset", "dataset")}});
    Json t0 = Take(c, 0);
    Json t1 = Take(c, 1);
    Train(c, helper, t0, 0, 3);
    c.Complete(t0["id"].get<int64_t>(), {{"output", db_->GetEpochs(t0["id"].get<int64_t>()).back().checkpoint}});
    Train(c, helper, t1, 0, 2);
    Json t2 = Take(c, 0);
    Train(c, helper, t2, 0, 0);
  }
  ASSERT_EQ(db_->GetRun(run_id)->status, "running");
  auto before = Trials(run_id, "tune");
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before[0].status, "succeeded");
  EXPECT_EQ(before[1].status, "running");
  EXPECT_EQ(before[2].status, "running");
  EXPECT_EQ(before[3].status, "pending");
  const auto epochs0 = db_->GetEpochs(before[0].id);
  const auto epochs1 = db_->GetEpochs(before[1].id);
  ASSERT_EQ(epochs0.size(), 3u);
  ASSERT_EQ(epochs1.size(), 2u);

  auto c = Coordinator::ForResume(*blobs_, *db_, run_id);
  EXPECT_EQ(c->run_id(), run_id);
  EXPECT_EQ(c->pipeline().id, p.id);
  c->Start();
  EXPECT_EQ(db_->GetRun(run_id)->status, "running");
  const auto reported = Finish(*c, 2);
  const auto run = db_->GetRun(run_id);
  ASSERT_EQ(run->status, "succeeded") << run->error;
  EXPECT_EQ(c->Status(), "succeeded");

  auto after = Trials(run_id, "tune");
  for (int n = 0; n < 4; ++n) EXPECT_EQ(after[n].status, "succeeded") << n;
  // Trial 0 was not handed out again: same record, same epoch rows.
  for (const auto& [id, epoch] : reported) EXPECT_NE(id, before[0].id) << "epoch " << epoch;
  EXPECT_EQ(after[0].attempts, 1);
  EXPECT_EQ(after[0].finished_at, before[0].finished_at);
  const auto epochs0_after = db_->GetEpochs(before[0].id);
  ASSERT_EQ(epochs0_after.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(epochs0_after[i].checkpoint, epochs0[i].checkpoint);
    EXPECT_EQ(epochs0_after[i].created_at, epochs0[i].created_at);
  }
  // Trial 1 went on from epoch 2 only, from its epoch-1 checkpoint; the
  // interrupted attempt did not count.
  EXPECT_EQ(reported.count({before[1].id, 0}), 0u);
  EXPECT_EQ(reported.count({before[1].id, 1}), 0u);
  EXPECT_EQ(reported.count({before[1].id, 2}), 1u);
  EXPECT_EQ(after[1].attempts, 1);
  const auto epochs1_after = db_->GetEpochs(before[1].id);
  ASSERT_EQ(epochs1_after.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(epochs1_after[i].checkpoint, epochs1[i].checkpoint);
    EXPECT_EQ(epochs1_after[i].created_at, epochs1[i].created_at);
  }
  int resumed = 0;
  for (const auto& e : db_->Upstream("trial:" + std::to_string(before[1].id), 1)) {
    if (e.kind != "resumed_from") continue;
    ++resumed;
    EXPECT_EQ(e.dst, "checkpoint:" + epochs1[1].checkpoint);
    EXPECT_EQ(e.attrs["start_epoch"], 2);
    EXPECT_EQ(e.attrs["promoted"], false);
  }
  EXPECT_EQ(resumed, 1);
  EXPECT_EQ(after[1].output, epochs1_after[2].checkpoint);
  // Trial 2 had no epoch: it starts over at epoch 0 with the same seed and
  // hyperparameters, and its initial weights are the same checkpoint.
  for (int e = 0; e < 3; ++e) EXPECT_EQ(reported.count({before[2].id, e}), 1u) << e;
  EXPECT_EQ(after[2].initial_checkpoint, before[2].initial_checkpoint);
  for (int n = 0; n < 4; ++n) {
    EXPECT_EQ(after[n].hyperparameters, before[n].hyperparameters) << n;
    EXPECT_EQ(after[n].seed, before[n].seed) << n;
    EXPECT_EQ(db_->GetEpochs(after[n].id).size(), 3u) << n;
  }
  // The stage that was still pending ran from the resumed study.
  EXPECT_EQ(Stage(run_id, "train").status, "succeeded");
  EXPECT_EQ(Stage(run_id, "tune").status, "succeeded");
  EXPECT_EQ(Stage(run_id, "prep").status, "succeeded");
}

TEST_F(ResumeTest, TheMedianRuleSeesTheRecordedEpochsOfResumedTrials) {
  Json doc = SmallPipeline(data_.string());
  auto& tune = doc["stages"]["tune"];
  tune["budget"] = {{"max_trials", 3}, {"max_parallel", 1}, {"max_epochs", 3}};
  tune["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 1}};
  Pipeline p = LoadPipeline(doc);
  const std::string run_id = CreateRun(*db_, p);
  int64_t first = 0;
  {
    Coordinator c(*blobs_, *db_, p, run_id);
    c.Start();
    FakeWorker helper(c, *blobs_, 0);
    Json prep = Take(c, 0);
    c.Complete(prep["id"].get<int64_t>(), {{"output", helper.PutCheckpoint("dataset", "dataset")}});
    Json t0 = Take(c, 0);
    first = t0["id"].get<int64_t>();
    Train(c, helper, t0, 0, 3);
    c.Complete(first, {{"output", db_->GetEpochs(first).back().checkpoint}});
  }
  // Trial 0 (finished, values from the DB) is the median's only reference:
  // later trials far below it at epoch 0 are stopped there.
  auto c = Coordinator::ForResume(*blobs_, *db_, run_id);
  c->Start();
  fakes_.clear();
  fakes_.push_back(std::make_unique<FakeWorker>(*c, *blobs_, 5));
  fakes_.back()->accuracy = [first](const Json& hp, int64_t id, int epoch) {
    return id == first ? FakeWorker::Accuracy(hp, epoch) : 0.01;
  };
  std::thread t([&] { fakes_.back()->Loop(); });
  EXPECT_TRUE(c->WaitFinished(30s));
  t.join();
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  auto trials = Trials(run_id, "tune");
  EXPECT_EQ(trials[0].status, "succeeded");
  for (int n : {1, 2}) {
    EXPECT_EQ(trials[n].status, "pruned") << n;
    EXPECT_EQ(db_->GetEpochs(trials[n].id).size(), 1u) << n;
  }
}

// A run cut off after `kill_after` epoch reports (its one worker dies on the
// next one) and resumed, against the same study run uninterrupted: with one
// worker every decision is deterministic, so they must agree trial by trial.
class ResumeAnywhereTest : public ResumeTest, public ::testing::WithParamInterface<std::string> {
 protected:
  Json Study(int tag) {
    Json doc = SmallPipeline(data_.string());
    auto& tune = doc["stages"]["tune"];
    tune["budget"] = {{"max_trials", 9}, {"max_parallel", 1}, {"max_epochs", 9}};
    if (GetParam() == "asha") {
      tune["pruner"] = {{"type", "asha"}, {"min_resource", 1}, {"reduction_factor", 3}};
    } else {
      tune["sampler"] = {{"type", "tpe"}, {"n_startup_trials", 3}};
      tune["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 2}};
    }
    tune["hyperparameters"] = {{"tag", tag}};  // a study of its own (no cache hit)
    doc["stages"]["train"]["epochs"] = 1;
    return doc;
  }

  struct Outcome {
    std::string status;
    Json hyperparameters;
    std::vector<double> values;
    bool operator==(const Outcome& o) const {
      return status == o.status && hyperparameters == o.hyperparameters && values == o.values;
    }
  };
  std::map<int, Outcome> Outcomes(const std::string& run_id) {
    std::map<int, Outcome> out;
    for (const auto& [n, t] : Trials(run_id, "tune")) {
      Json hp = t.hyperparameters;
      hp.erase("tag");
      Outcome o{t.status, hp, {}};
      for (const auto& e : db_->GetEpochs(t.id)) o.values.push_back(e.metrics["val_accuracy"].get<double>());
      out[n] = o;
    }
    return out;
  }
};

TEST_P(ResumeAnywhereTest, AResumedStudyDecidesAsAnUninterruptedOne) {
  const std::string reference = Run(Study(0), 1);
  ASSERT_EQ(db_->GetRun(reference)->status, "succeeded");
  const auto expected = Outcomes(reference);
  int pruned = 0;
  for (const auto& [n, o] : expected) pruned += o.status == "pruned" ? 1 : 0;
  ASSERT_GE(pruned, 2) << "the study should prune";
  for (int kill_after : {1, 4, 9, 13, 20}) {
    SCOPED_TRACE("killed after " + std::to_string(kill_after) + " epoch reports");
    Pipeline p = LoadPipeline(Study(kill_after));
    const std::string run_id = CreateRun(*db_, p);
    {
      Coordinator c(*blobs_, *db_, p, run_id);
      c.Start();
      FakeWorker w(c, *blobs_, 0);
      int reports = 0;
      w.accuracy = [&](const Json& hp, int64_t, int epoch) {
        if (reports++ == kill_after) throw std::runtime_error("killed");
        return FakeWorker::Accuracy(hp, epoch);
      };
      EXPECT_THROW(w.Loop(), std::runtime_error);
    }
    ASSERT_EQ(db_->GetRun(run_id)->status, "running");
    auto c = Coordinator::ForResume(*blobs_, *db_, run_id);
    c->Start();
    Finish(*c, 1);
    ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
    const auto got = Outcomes(run_id);
    ASSERT_EQ(got.size(), expected.size());
    for (const auto& [n, o] : expected) {
      EXPECT_EQ(got.at(n).status, o.status) << "trial " << n;
      EXPECT_EQ(got.at(n).hyperparameters, o.hyperparameters) << "trial " << n;
      EXPECT_EQ(got.at(n).values, o.values) << "trial " << n;
    }
  }
}

TEST_P(ResumeAnywhereTest, AnAnswerGivenButNotActedOnIsDecidedAgain) {
  const std::string reference = Run(Study(0), 1);
  const auto expected = Outcomes(reference);
  Pipeline p = LoadPipeline(Study(1));
  const std::string run_id = CreateRun(*db_, p);
  std::string answer;
  {
    // The first trial's first epoch is answered (ASHA: "stop", it pauses at
    // rung 0 as the only trial there), and the process ends before the
    // worker's :complete.
    Coordinator c(*blobs_, *db_, p, run_id);
    c.Start();
    FakeWorker helper(c, *blobs_, 0);
    Json t0 = Take(c, 0);
    ASSERT_EQ(t0["kind"], "train");  // prep is a cache hit of the reference run
    const int64_t id = t0["id"].get<int64_t>();
    const std::string key = "tune/" + std::to_string(t0["seed"].get<uint64_t>());
    c.ReportInitial(id, {{"checkpoint", helper.PutCheckpoint(key + "/init")}, {"init", {{"source", nullptr}}}});
    answer = c.ReportEpoch(id, {{"epoch", 0}, {"checkpoint", helper.PutCheckpoint(key + "/0")},
                                {"metrics", {{"val_accuracy", FakeWorker::Accuracy(t0["hyperparameters"], 0)}}}});
  }
  EXPECT_EQ(answer, GetParam() == "asha" ? "stop" : "continue");
  auto c = Coordinator::ForResume(*blobs_, *db_, run_id);
  // ASHA pauses it at rung 0 again; the median rule lets it go on.
  const auto first = Trials(run_id, "tune").at(0);
  EXPECT_EQ(first.status, GetParam() == "asha" ? "pruned" : "pending") << first.reason;
  c->Start();
  Finish(*c, 1);
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  const auto got = Outcomes(run_id);
  for (const auto& [n, o] : expected) {
    EXPECT_EQ(got.at(n).status, o.status) << "trial " << n;
    EXPECT_EQ(got.at(n).values, o.values) << "trial " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Pruners, ResumeAnywhereTest, ::testing::Values("asha", "tpe_median"));

TEST_F(ResumeTest, UnknownAndFinishedRunsAreRefused) {
  try {
    Coordinator::ForResume(*blobs_, *db_, "20260101-000000-beef");
    FAIL() << "resumed an unknown run";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  const std::string run_id = Run(SmallPipeline(data_.string()));
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded");
  try {
    Coordinator::ForResume(*blobs_, *db_, run_id);
    FAIL() << "resumed a finished run";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConflict);
    EXPECT_EQ(std::string(e.what()), "run " + run_id + " already succeeded; nothing to resume");
  }
}

}  // namespace
}  // namespace baton::orchestrator
